// Failover with the kernel's own sync daemon (issue 20), on the director-pair bed (test/helpers/
// director-pair.ts) in the kernel VM: N long-lived TCP connections stream through director A (masquerading);
// A runs the sync daemon as master, B as backup; A dies
// and B takes the VIP; every connection must go on with no reset and no lost or duplicated byte.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { runInVm } from "../bench/kernel-sync.ts";
import { pairVmEnv, scaledLimitS } from "./helpers/director-pair-host.ts";

const N = 16;

test(`kernel -> kernel failover: ${N} long-lived TCP connections kept`, async () => {
  // quiet machine: boot 20 s, two wasmvs starts 20 s, streams and sync 30 s, failover and drain 30 s
  const limitS = scaledLimitS(120);
  const { code, stdout } = await runInVm(
    `node --import tsx test/kernel-vm/failover.ts ${N} ipvsadm`,
    pairVmEnv(limitS),
  );
  const line = stdout.split("\n").find((l) => l.startsWith("@@RESULT "));
  assert.ok(line, `no result from the VM (exit ${code}, limit ${limitS} s):\n${stdout.slice(-3000)}`);
  const r = JSON.parse(line!.slice(9)) as {
    fatal?: string;
    total: number;
    kept: number;
    synced: number;
    moved: boolean;
    conns: { id: number; sent: number; recv: number; err?: string }[];
    served: { accepted: number };
    daemons: { a: string; b: string };
    bStatsBefore: string;
    bStatsAfter: string;
    steps: string[];
  };
  assert.not.ok(r.fatal, `${r.fatal}\nsteps: ${r.steps?.join("; ")}`);
  console.log(`  ${r.kept} of ${r.total} connections kept across failover (kernel -> kernel, masquerading)`);
  assert.match(r.daemons.a, /^master sync daemon \(mcast=front, syncid=42, /);
  assert.match(r.daemons.b, /^backup sync daemon \(mcast=front, syncid=42, /);
  assert.is(r.synced, N, "every connection's entry reached the backup before the failover");
  assert.ok(r.moved, "every stream moved on after the failover");
  const bad = r.conns.filter((c) => c.err || c.recv !== c.sent);
  assert.equal(bad, [], "no reset, no lost or duplicated byte");
  assert.is(r.kept, N);
  // the real server saw each connection once: none was re-opened behind the client's back
  assert.is(r.served.accepted, N);
  // after the failover, B forwarded the streams (its counters grew)
  assert.not.equal(r.bStatsAfter, r.bStatsBefore);
  assert.is(code, 0);
});

test.run();
