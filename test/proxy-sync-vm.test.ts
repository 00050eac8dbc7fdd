// Connection sync between kernel and wasmvs directors (issue 20), on the director-pair bed in the kernel VM
// (test/kernel-vm/sync-scenarios.ts runs there): real kernels, real sync daemons, real TCP streams.
import * as assert from "uvu/assert";
import { runInVm } from "../bench/kernel-sync.ts";
import { pairVmEnv, scaledLimitS } from "./helpers/director-pair-host.ts";
import { needs, testOrSkip } from "./helpers/skip.ts";
import { test } from "uvu";
import { existsSync } from "node:fs";

const why =
  needs(["qemu-system-x86_64"], "../shared/ipvs-vm/ipvs-vm.sh installs it", { root: false }) ||
  (existsSync(new URL("../native/packet/build/Release/wasmvs_packet.node", import.meta.url))
    ? ""
    : "the packet-mode addon is not built (node native/build.mjs)");

async function scenario(name: string, n: number, quietS: number) {
  const limitS = scaledLimitS(quietS);
  const { code, stdout } = await runInVm(
    `node --import tsx test/kernel-vm/sync-scenarios.ts ${name} ${n}`,
    pairVmEnv(limitS),
  );
  const line = stdout.split("\n").find((l) => l.startsWith("@@RESULT "));
  assert.ok(line, `no result from the VM (exit ${code}, limit ${limitS} s):\n${stdout.slice(-3000)}`);
  const r = JSON.parse(line.slice(9));
  assert.not.ok(r.fatal, `${r.fatal}\nsteps: ${r.steps?.join("; ")}`);
  return r;
}

testOrSkip(
  import.meta.url,
  why,
  "kernel master -> wasmvs backup: every connection in wasmvs's table, same real server",
  async () => {
    const N = 8;
    // quiet machine: boot 20 s, wasmvs start 20 s, streams and sync 20 s
    const r = await scenario("kernel-to-wasmvs", N, 90);
    console.log(`  ${r.same} of ${N} connections synced kernel -> wasmvs with the same real server`);
    assert.is(r.onA, N, r.listingA);
    assert.ok(r.synced, `B's listing:\n${r.listingB}\nsync counters: ${JSON.stringify(r.sync?.counters)}`);
    assert.is(r.same, N, `A:\n${r.listingA}\nB:\n${r.listingB}`);
    assert.is(r.sync.counters.no_dest, 0);
    assert.ok(r.sync.counters.created >= N);
  },
);

test.run();
