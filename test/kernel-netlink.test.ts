// The IPVS generic netlink client (src/kernel) against the real kernel: boots Linux 6.1 with IPVS once
// (../shared/ipvs-vm) and runs test/kernel-vm/netlink.ts inside, which checks, with the real ipvsadm 1.31:
// rules made by wasmvs read back by ipvsadm (-Sn, -Ln, --tun-info, --thresholds, --persistent-conn)
// identical to the same rules made by ipvsadm; rules made by ipvsadm read back field by field (IPv4,
// IPv6, fwmark, persistence with netmasks, every scheduler and flag, tunnels, thresholds); edits,
// deletes, errors with the kernel's errno (EEXIST, ESRCH, ENOENT, EINVAL, EPERM), batches with refused
// messages inside, a multi-datagram dump, timeouts, stats and ZERO with real traffic, connections().
// On this host (no IPVS) the client must say so in exactly one line.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { IpvsClient, NoIpvsError, NO_IPVS_MESSAGE } from "../src/kernel/client.ts";
import { KernelTarget } from "../src/kernel/target.ts";
import { runInVm, vmEnv } from "../bench/kernel-sync.ts";

const vm = fileURLToPath(new URL("../../shared/ipvs-vm/ipvs-vm.sh", import.meta.url));

test("a kernel without IPVS: one clear line, pointing to wasmvs proxy", async () => {
  let err: unknown;
  try {
    (await IpvsClient.open({ loadModule: false, timeoutMs: 3000 })).close();
  } catch (e) {
    err = e;
  }
  if (!err) {
    console.log("  (this kernel has IPVS: the no-IPVS message is not testable here)");
    return;
  }
  assert.instance(err, NoIpvsError);
  const m = (err as Error).message;
  assert.is(m, NO_IPVS_MESSAGE);
  assert.not.match(m, /\n/);
  assert.match(m, /no IPVS/);
  assert.match(m, /ip_vs module is missing or CONFIG_IP_VS is unset/);
  assert.match(m, /wasmvs proxy/);
  // the same through the target
  let e2: unknown;
  try {
    await KernelTarget.open({ loadModule: false });
  } catch (e) {
    e2 = e;
  }
  assert.is((e2 as Error).message, NO_IPVS_MESSAGE);
});

test("netlink client against Linux 6.1 and ipvsadm 1.31 (in the VM)", async () => {
  assert.ok(existsSync(vm), `${vm} is missing: the kernel VM from ../shared is needed`);
  const { code, stdout } = await runInVm("node --import tsx test/kernel-vm/netlink.ts", vmEnv(), () => true);
  const line = stdout.split("\n").find((l) => l.startsWith("@@RESULT "));
  assert.ok(line, `no result from the VM (exit ${code}):\n${stdout.slice(-3000)}`);
  const r = JSON.parse(line!.slice(9)) as {
    checks: { name: string; ok: boolean; want?: unknown; got?: unknown }[];
    fatal?: string;
    kernel?: string;
  };
  assert.not.ok(r.fatal, r.fatal);
  const bad = r.checks.filter((c) => !c.ok);
  assert.equal(
    bad.map((c) => `${c.name}: want ${JSON.stringify(c.want)} got ${JSON.stringify(c.got)}`),
    [],
  );
  assert.ok(r.checks.length >= 150, `${r.checks.length} checks ran`);
  assert.match(r.kernel ?? "", /^6\.1\./);
  assert.is(code, 0);
});

test.run();
