// Failover with the kernel's own sync daemon (issue 20), on the director-pair bed (test/helpers/
// director-pair.ts) in the kernel VM: N long-lived TCP connections stream through director A (masquerading);
// `wasmvs --start-daemon master` on A, `wasmvs --start-daemon backup` on B; A dies
// and B takes the VIP; every connection must go on with no reset and no lost or duplicated byte.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { runInVm } from "../bench/kernel-sync.ts";
import { pairVmEnv, scaledLimitS } from "./helpers/director-pair-host.ts";
import { testOrSkip } from "./helpers/skip.ts";
import { vmMissing } from "./helpers/vm-share.ts";

const why = vmMissing();
const N = 16;
const CONTROL_N = 8;

interface FailoverResult {
  fatal?: string;
  total: number;
  kept: number;
  synced: number;
  moved: boolean;
  conns: { id: number; sent: number; recv: number; err?: string }[];
  served: { accepted: number };
  daemons: { a: string; b: string };
  bRxBytes: number;
  sentAfterFailover: number;
  steps: string[];
}
// one VM boot: the failover with the sync daemons, then the control without them
let vmRun: Promise<{ code: number; stdout: string; limitS: number }> | undefined;
async function vmResult(i: number): Promise<FailoverResult> {
  // quiet machine: boot 20 s, two wasmvs starts 20 s, streams and sync 30 s, failover and drain 30 s; the
  // control 40 s
  const limitS = scaledLimitS(160);
  vmRun ??= runInVm(
    `node --import tsx test/kernel-vm/failover.ts ${N} wasmvs; ` +
      `node --import tsx test/kernel-vm/failover.ts ${CONTROL_N} none`,
    pairVmEnv(limitS),
  ).then((r) => ({ ...r, limitS }));
  const { code, stdout, limitS: limit } = await vmRun;
  const line = stdout.split("\n").filter((l) => l.startsWith("@@RESULT "))[i];
  assert.ok(line, `no result ${i + 1} from the VM (exit ${code}, limit ${limit} s):\n${stdout.slice(-3000)}`);
  const r = JSON.parse(line!.slice(9)) as FailoverResult;
  assert.not.ok(r.fatal, `${r.fatal}\nsteps: ${r.steps?.join("; ")}`);
  return r;
}

testOrSkip(import.meta.url, why, `kernel -> kernel failover: ${N} long-lived TCP connections kept`, async () => {
  const r = await vmResult(0);
  console.log(`  ${r.kept} of ${r.total} connections kept across failover (kernel -> kernel, masquerading)`);
  // the daemons wasmvs started, as the real ipvsadm lists them
  assert.match(r.daemons.a, /^master sync daemon \(mcast=front, syncid=42, /);
  assert.match(r.daemons.b, /^backup sync daemon \(mcast=front, syncid=42, /);
  assert.is(r.synced, N, "every connection's entry reached the backup before the failover");
  assert.ok(r.moved, "every stream moved on after the failover");
  const bad = r.conns.filter((c) => c.err || c.recv !== c.sent);
  assert.equal(bad, [], "no reset, no lost or duplicated byte");
  assert.is(r.kept, N);
  // the real server saw each connection once: none was re-opened behind the client's back
  assert.is(r.served.accepted, N);
  // after the failover the streams went through B: its front link received at least every byte sent since
  assert.ok(r.sentAfterFailover > 0, "bytes were sent after the failover");
  assert.ok(r.bRxBytes >= r.sentAfterFailover, `B received ${r.bRxBytes} bytes, ${r.sentAfterFailover} were sent`);
});

testOrSkip(
  import.meta.url,
  why,
  `the control: without the sync daemons the same failover resets all ${CONTROL_N} connections`,
  async () => {
    const r = await vmResult(1);
    console.log(`  ${r.kept} of ${r.total} connections kept across failover without sync daemons (the control)`);
    assert.is(r.daemons.a + r.daemons.b, "", "no daemon ran");
    assert.is(r.synced, 0, "B knew none of the connections");
    assert.is(r.kept, 0);
    assert.ok(
      r.conns.every((c) => c.err),
      `every connection failed: ${JSON.stringify(r.conns)}`,
    );
  },
);

test.run();
