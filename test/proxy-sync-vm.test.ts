// Connection sync between kernel and wasmvs directors (issue 20), on the director-pair bed in the kernel VM
// (test/kernel-vm/sync-scenarios.ts runs there, every scenario in one boot): real kernels, real sync
// daemons, real TCP streams checked byte by byte.
import { existsSync } from "node:fs";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { runInVm } from "../bench/kernel-sync.ts";
import { pairVmEnv, scaledLimitS } from "./helpers/director-pair-host.ts";
import { needs, testOrSkip } from "./helpers/skip.ts";
import { vmMissing } from "./helpers/vm-share.ts";

const N = 8;
const SCENARIOS = ["kernel-to-wasmvs", "wasmvs-to-kernel", "failover-kernel-wasmvs", "failover-wasmvs-wasmvs"];
const why =
  vmMissing() ||
  needs(["qemu-system-x86_64"], "../shared/ipvs-vm/ipvs-vm.sh installs it", { root: false }) ||
  (existsSync(new URL("../native/packet/build/Release/wasmvs_packet.node", import.meta.url))
    ? ""
    : "the packet-mode addon is not built (node native/build.mjs)");

// quiet machine: boot 20 s; per scenario a bed, one or two wasmvs starts, streams, sync and a failover: 60 s
// (wasmvs-to-kernel fails over too: 30 s more)
let run: Promise<{ code: number; stdout: string; limitS: number }> | undefined;
function vm() {
  const limitS = scaledLimitS(20 + 60 * SCENARIOS.length + 30);
  run ??= runInVm(
    `node --import tsx test/kernel-vm/sync-scenarios.ts ${SCENARIOS.join(",")} ${N}`,
    pairVmEnv(limitS),
  ).then((r) => ({ ...r, limitS }));
  return run;
}
async function scenario(name: string): Promise<any> {
  const { code, stdout, limitS } = await vm();
  const line = stdout
    .split("\n")
    .filter((l) => l.startsWith("@@RESULT "))
    .map((l) => JSON.parse(l.slice(9)))
    .find((r) => r.scenario === name);
  assert.ok(line, `no result for ${name} from the VM (exit ${code}, limit ${limitS} s):\n${stdout.slice(-3000)}`);
  assert.not.ok(line.fatal, `${line.fatal}\nsteps: ${line.steps?.join("; ")}`);
  return line;
}

testOrSkip(
  import.meta.url,
  why,
  "kernel master -> wasmvs backup: every connection in wasmvs's table, same real server",
  async () => {
    const r = await scenario("kernel-to-wasmvs");
    console.log(`  ${r.same} of ${N} connections synced kernel -> wasmvs with the same real server`);
    assert.is(r.onA, N, r.listingA);
    assert.ok(r.synced, `B's listing:\n${r.listingB}\nsync counters: ${JSON.stringify(r.sync?.counters)}`);
    assert.is(r.same, N, `A:\n${r.listingA}\nB:\n${r.listingB}`);
    assert.is(r.sync.counters.no_dest, 0);
    assert.ok(r.sync.counters.created >= N);
  },
);

testOrSkip(
  import.meta.url,
  why,
  "wasmvs master -> kernel backup: every connection in the kernel's ipvsadm -Lnc as the master lists it " +
    "(masq, and full-NAT's entries kept past their option)",
  async () => {
    const r = await scenario("wasmvs-to-kernel");
    const all = N + r.fullNatTotal;
    console.log(`  ${r.same} of ${all} connections synced wasmvs -> kernel with the same -Lnc row`);
    assert.is(r.streamsOk, N, "the streams run through wasmvs");
    assert.ok(r.synced, `B's listing:\n${r.listingB}\nA's:\n${r.listingA}\n${JSON.stringify(r.sync)}`);
    assert.is(r.same, all, `A:\n${r.listingA}\nB:\n${r.listingB}`);
    assert.is(r.fullNatOnB, r.fullNatTotal, `full-NAT entries in the kernel's table:\n${r.listingB}`);
    assert.ok(r.sync.counters.sent_entries >= all);
  },
);

testOrSkip(
  import.meta.url,
  why,
  "failover under load, wasmvs -> kernel (masq): every connection kept, no byte lost",
  async () => {
    const r = await scenario("wasmvs-to-kernel");
    console.log(`  ${r.kept} of ${r.total} connections kept across failover (wasmvs -> kernel)`);
    const bad = r.conns.filter((c: { err?: string; recv: number; sent: number }) => c.err || c.recv !== c.sent);
    assert.equal(bad, [], `no reset, no lost or duplicated byte; steps: ${r.steps.join("; ")}`);
    assert.ok(r.moved, "every stream moved on after the failover");
    assert.is(r.kept, N);
    assert.is(r.served.accepted, N + r.fullNatTotal, "no connection re-opened behind the client's back");
  },
);

for (const [name, what] of [
  ["failover-kernel-wasmvs", "kernel -> wasmvs"],
  ["failover-wasmvs-wasmvs", "wasmvs -> wasmvs"],
] as const)
  testOrSkip(import.meta.url, why, `failover under load, ${what}: every connection kept, no byte lost`, async () => {
    const r = await scenario(name);
    console.log(`  ${r.kept} of ${r.total} connections kept across failover (${what})`);
    assert.is(r.synced, N, `every entry reached B first; steps: ${r.steps.join("; ")}`);
    const bad = r.conns.filter((c: { err?: string; recv: number; sent: number }) => c.err || c.recv !== c.sent);
    assert.equal(bad, [], `no reset, no lost or duplicated byte; sync ${JSON.stringify(r.sync?.counters)}`);
    assert.ok(r.moved, "every stream moved on after the failover");
    assert.is(r.kept, N);
    assert.is(r.served.accepted, N, "no connection re-opened behind the client's back");
  });

test.run();
