// Against the real kernel, now: boots Linux 6.1 with IPVS in ../shared/ipvs-vm, runs a cross-section of
// the recorded scenarios there (every scheduler the kernel has, flags, thresholds, answered connections,
// UDP, persistence, IPv6), and asserts the WASM data plane makes exactly the kernel's choices. This keeps
// the stored transcripts honest: if the kernel's behaviour and the fixtures ever part, this fails.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { execFileSync } from "node:child_process";
import { existsSync, readFileSync, rmSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { replay, type Scenario, type Observed } from "./helpers/replay.ts";

const repo = fileURLToPath(new URL("..", import.meta.url));
const vm = fileURLToPath(new URL("../../shared/ipvs-vm/ipvs-vm.sh", import.meta.url));
const LIVE = "^(rr-changes|wrr-changes|lc-overload|wlc-answered|sed-answered|nq-changes|fo-overload|ovf-answered|" +
  "dh-5dests-vip-10.0.3.61|sh-port-fallback-weight0|mh-weight0-fallback|mh-10dests-changes|lblc-answered|" +
  "lblcr-overload|udp-sed|persist-netmask|mh-ipv6-port)$";

test("the real kernel (Linux 6.1 in the VM) and the WASM data plane choose alike", async () => {
  assert.ok(existsSync(vm), `${vm} is missing: the kernel VM from ../shared is needed`);
  const out = "/tmp/wasmvs-kernel-live.json";
  rmSync(out, { force: true });
  // record.cjs boots the VMs (installing qemu on first use), runs the scenarios, prints progress on stderr
  execFileSync("node", ["test/kernel/record.cjs", "--filter", LIVE, "--out", out], {
    cwd: repo, stdio: ["ignore", "ignore", "inherit"], timeout: 600_000, env: { ...process.env, IPVSVM_SH: vm },
  });
  const scenarios: Scenario[] = JSON.parse(readFileSync(`${repo}/test/fixtures/kernel/scenarios.json`, "utf8"));
  const live: { kernel: string; scenarios: Observed[] } = JSON.parse(readFileSync(out, "utf8"));
  assert.match(live.kernel, /^6\.1\./);
  assert.is(live.scenarios.length, 17, "every live scenario ran");
  let compared = 0;
  const mismatches: string[] = [];
  for (const obs of live.scenarios) {
    const sc = scenarios.find((s) => s.name === obs.name)!;
    await replay(sc, (i, got) => {
      compared++;
      if (got !== obs.choices[i].dest) mismatches.push(`${sc.name} #${i}: kernel ${obs.choices[i].dest}, wasm ${got}`);
    }, () => {});
  }
  assert.equal(mismatches.slice(0, 10), [], `${mismatches.length} mismatches`);
  assert.ok(compared >= 1000, `compared ${compared} live connections`);
  rmSync(out, { force: true });
});

test.run();
