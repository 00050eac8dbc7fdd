// Inside the VM (root, Linux 6.1 with IPVS): the reconciler, the drift check, the sync loop and graceful
// termination against the real kernel, with real TCP and UDP flows from a client namespace.
// Prints "@@RESULT {checks, timeline}" for test/kernel-reconcile.test.ts.
import { spawn, type ChildProcessWithoutNullStreams } from "node:child_process";
import { createInterface } from "node:readline";
import type { DesiredState, VirtualService } from "../../src/model/types.ts";
import { IpvsClient } from "../../src/kernel/client.ts";
import {
  Reconciler,
  SyncLoop,
  drift,
  checkDrift,
  formatReport,
  type ReconcileReport,
} from "../../src/kernel/reconcile.ts";
import { addServiceArgs, addDestArgs, ipvsadm, sh, rng, result } from "./rules.ts";
import { masqServer } from "../helpers/real-server.ts";

const checks: { name: string; ok: boolean; want?: unknown; got?: unknown }[] = [];
const check = (name: string, ok: boolean, want?: unknown, got?: unknown) =>
  checks.push(ok ? { name, ok } : { name, ok, want, got });
const eq = (name: string, got: unknown, want: unknown) =>
  check(name, JSON.stringify(got) === JSON.stringify(want), want, got);
const timeline: string[] = [];
const t0 = Date.now();
const mark = (s: string) => {
  const l = `${((Date.now() - t0) / 1000).toFixed(1)}s ${s}`;
  timeline.push(l);
  process.stderr.write(l + "\n");
};
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const rs = masqServer;

// ---------------------------------------------------------------------------------------------------
// 1. random starting states → desired state: zero differences, then nothing to do

const SCHEDS = ["rr", "wrr", "lc", "wlc", "sed", "nq", "fo", "ovf", "dh", "sh", "mh", "lblc", "lblcr"];
function randomService(r: () => number, idx: number): VirtualService {
  const pick = <T>(xs: T[]) => xs[Math.floor(r() * xs.length)];
  const kind = r();
  const sched = pick(SCHEDS);
  const flagPool =
    sched === "sh"
      ? ["sh-fallback", "sh-port"]
      : sched === "mh"
        ? ["mh-fallback", "mh-port"]
        : ["flag-1", "flag-2", "flag-3"];
  const flags = flagPool.filter(() => r() < 0.3);
  const ops = r() < 0.15;
  let s: VirtualService;
  if (kind < 0.6)
    s = {
      protocol: pick(["tcp", "udp", "sctp"] as const),
      addr: `10.30.0.${idx}`,
      port: 80,
      scheduler: sched,
      flags,
      realServers: [],
    };
  else if (kind < 0.85)
    s = {
      protocol: pick(["tcp", "udp"] as const),
      addr: `fd30::${idx.toString(16)}`,
      port: 443,
      scheduler: sched,
      flags,
      realServers: [],
    };
  else s = { fwmark: 100 + idx, family: r() < 0.5 ? "inet" : "inet6", scheduler: sched, flags, realServers: [] };
  if (ops && (s.fwmark || s.protocol === "udp")) s.flags.push("ops"); // ipvsadm: one-packet only for UDP
  if (r() < 0.3) {
    s.persistent = 1 + Math.floor(r() * 1000);
    if (r() < 0.5)
      s.netmask = serviceAfV6(s) ? String(64 + Math.floor(r() * 64)) : pick(["255.255.255.0", "255.255.0.0"]);
  }
  const v6 = serviceAfV6(s);
  const n = Math.floor(r() * 6);
  const used = new Set<number>();
  for (let i = 0; i < n; i++) {
    const h = 1 + Math.floor(r() * 12);
    if (used.has(h)) continue;
    used.add(h);
    const fwd = pick(["masq", "route", "tunnel"] as const);
    const d = rs(v6 ? `fd31::${h.toString(16)}` : `10.31.0.${h}`, fwd === "masq" ? 8000 + h : (s.port ?? 0), {
      fwd,
      weight: Math.floor(r() * 5),
    });
    if (r() < 0.2) {
      d.upperThreshold = 10 + Math.floor(r() * 50);
      d.lowerThreshold = Math.floor(r() * 10);
    }
    if (fwd === "tunnel") {
      d.tunType = pick(["ipip", "gue", "gre"] as const);
      if (d.tunType === "gue") d.tunPort = 6000 + h;
      if (d.tunType !== "ipip")
        // ipvsadm: no remcsum with gre
        d.tunFlags = [pick(d.tunType === "gre" ? ["nocsum", "csum"] : ["nocsum", "csum", "remcsum"])];
    }
    s.realServers.push(d);
  }
  return s;
}
function serviceAfV6(s: VirtualService): boolean {
  return s.fwmark ? s.family === "inet6" : (s.addr ?? "").includes(":");
}

async function randomStates(c: IpvsClient) {
  const EXCLUDE = ["192.168.0.0/16", "fd99::/64"];
  let totalChanges = 0;
  const seeds = 12;
  for (let seed = 1; seed <= seeds; seed++) {
    const r = rng(seed);
    ipvsadm(["-C"]);
    // the starting state: made with ipvsadm (so: entries the reconciler did not make), including
    // services in the excluded CIDRs, stale weight-0 real servers, wrong schedulers and flags
    const start: VirtualService[] = [];
    for (let i = 1; i <= 14; i++) if (r() < 0.6) start.push(randomService(r, i));
    start.push({
      protocol: "tcp",
      addr: "192.168.7.1",
      port: 80,
      scheduler: "rr",
      flags: [],
      realServers: [rs("10.31.0.50", 80)],
    });
    start.push({ protocol: "udp", addr: "fd99::7", port: 53, scheduler: "rr", flags: [], realServers: [] });
    for (const s of start) {
      ipvsadm(addServiceArgs(s));
      for (const d of s.realServers) ipvsadm(addDestArgs(s, d));
    }
    const excludedBefore = ipvsadm(["-Sn"])
      .split("\n")
      .filter((l) => l.includes("192.168.") || l.includes("fd99::"))
      .sort();
    const desired: DesiredState = { services: [] };
    for (let i = 1; i <= 14; i++) if (r() < 0.6) desired.services.push(randomService(r, i));
    // an mh service with a weight-0 real server and no mh-fallback: worth a note
    if (seed === 1)
      desired.services.push({
        protocol: "tcp",
        addr: "10.30.1.1",
        port: 80,
        scheduler: "mh",
        flags: ["mh-port"],
        realServers: [rs("10.31.1.1", 80), rs("10.31.1.2", 80, { weight: 0 })],
      });

    const rec = new Reconciler(c, { excludeCidrs: EXCLUDE });
    const rep1 = await rec.sync(desired);
    totalChanges += rep1.changes.length;
    eq(
      `seed ${seed}: no failures`,
      rep1.failures.map((f) => f.error),
      [],
    );
    eq(
      `seed ${seed}: zero differences after`,
      (await checkDrift(c, desired, { excludeCidrs: EXCLUDE })).map((d) => d.message),
      [],
    );
    eq(
      `seed ${seed}: excluded services untouched`,
      ipvsadm(["-Sn"])
        .split("\n")
        .filter((l) => l.includes("192.168.") || l.includes("fd99::"))
        .sort(),
      excludedBefore,
    );
    const rep2 = await rec.sync(desired);
    eq(
      `seed ${seed}: second run changes nothing`,
      [rep2.changes.length, rep2.messages, rep2.failures.length],
      [0, 0, 0],
    );
    const rep3 = await new Reconciler(c, { excludeCidrs: EXCLUDE }).sync(desired);
    eq(
      `seed ${seed}: a fresh reconciler (kernel re-read) changes nothing`,
      [rep3.changes.map((x) => x.kind), rep3.messages],
      [[], 0],
    );
    if (seed === 1)
      check(
        "mh weight-0 without mh-fallback is noted",
        rep1.notes.some((n) => n.includes("mh keeps the table slots") && n.includes("10.30.1.1")),
        "a note",
        rep1.notes,
      );
    // the edits are minimal: each edited real server/service names exactly its changed fields
    for (const ch of rep1.changes.filter((x) => x.kind === "edit-rs" || x.kind === "edit-service"))
      check(`seed ${seed}: edit names its fields`, !!ch.fields?.length, "fields", ch);
  }
  check("random states needed changes", totalChanges > 50, ">50", totalChanges);
  mark(`random states: ${seeds} seeds, ${totalChanges} changes`);
  await refusedChange(c);
}

// A refused change leaves the rest applied and reported; the next run retries it.
async function refusedChange(c: IpvsClient) {
  ipvsadm(["-C"]);
  const ok1: VirtualService = {
    protocol: "tcp",
    addr: "10.32.0.1",
    port: 80,
    scheduler: "rr",
    flags: [],
    realServers: [rs("10.33.0.1", 80)],
  };
  const bad: VirtualService = {
    protocol: "tcp",
    addr: "10.32.0.2",
    port: 80,
    scheduler: "nosuch",
    flags: [],
    realServers: [rs("10.33.0.2", 80)],
  };
  const ok2: VirtualService = {
    protocol: "udp",
    addr: "10.32.0.3",
    port: 53,
    scheduler: "rr",
    flags: [],
    realServers: [rs("10.33.0.3", 53), rs("fd33::1", 53)],
  };
  const rec = new Reconciler(c);
  const d1: DesiredState = { services: [ok1, bad, ok2] };
  const a = await rec.sync(d1);
  eq(
    "refused: the failures",
    a.failures.map((f) => `${f.kind} ${f.service}${f.rs ? " " + f.rs : ""}: ${f.errno}`),
    [
      "add-service tcp 10.32.0.2:80: 2",
      "add-rs tcp 10.32.0.2:80 10.33.0.2:80: 3",
      "add-rs udp 10.32.0.3:53 [fd33::1]:53: 22",
    ],
  );
  eq("refused: the rest applied", ipvsadm(["-Sn"]).split("\n").filter(Boolean).sort(), [
    "-A -t 10.32.0.1:80 -s rr",
    "-A -u 10.32.0.3:53 -s rr",
    "-a -t 10.32.0.1:80 -r 10.33.0.1:80 -m -w 1",
    "-a -u 10.32.0.3:53 -r 10.33.0.3:53 -m -w 1",
  ]);
  const b = await rec.sync(d1);
  eq("refused: retried by the next run", [b.failures.length, b.changes.length, b.messages], [3, 0, 3]);
  const fixed: DesiredState = {
    services: [ok1, { ...bad, scheduler: "wlc" }, { ...ok2, realServers: [ok2.realServers[0]] }],
  };
  const f = await rec.sync(fixed);
  eq("refused: fixed desired state converges", [f.failures.length, (await checkDrift(c, fixed)).length], [0, 0]);
  check(
    "formatReport names failures",
    formatReport(b).includes("FAILED add service tcp 10.32.0.2:80: unknown scheduler"),
    "FAILED line",
    formatReport(b),
  );
  ipvsadm(["-C"]);
}

// ---------------------------------------------------------------------------------------------------
// 2. graceful termination with real traffic

class Client {
  private lines: string[] = [];
  private waiters: ((l: string) => void)[] = [];
  constructor(readonly p: ChildProcessWithoutNullStreams) {
    createInterface({ input: p.stdout }).on("line", (l) => {
      const w = this.waiters.shift();
      if (w) w(l);
      else this.lines.push(l);
    });
    p.stderr.on("data", (d) => mark(`client stderr: ${String(d).trim()}`));
  }
  next(): Promise<any> {
    return new Promise((res) => {
      const l = this.lines.shift();
      if (l) res(JSON.parse(l));
      else this.waiters.push((x) => res(JSON.parse(x)));
    });
  }
  async cmd(c: object): Promise<any> {
    this.p.stdin.write(JSON.stringify(c) + "\n");
    return this.next();
  }
}

const VIP = "10.90.9.1",
  A = "10.90.1.1",
  B = "10.90.1.2";
const tcp = (dests: string[]): VirtualService => ({
  protocol: "tcp",
  addr: VIP,
  port: 80,
  scheduler: "rr",
  flags: [],
  realServers: dests.map((d) => rs(d, 80)),
});
const udp = (dests: string[]): VirtualService => ({
  protocol: "udp",
  addr: VIP,
  port: 53,
  scheduler: "rr",
  flags: [],
  realServers: dests.map((d) => rs(d, 53)),
});
// what the phases of the graceful test share: the kernel, the flow client, every report, the desired state
interface Flows {
  c: IpvsClient;
  client: Client;
  reports: { kind: string; r: ReconcileReport; at: number }[];
  desired: DesiredState;
}

async function graceful(c: IpvsClient) {
  sh(
    `sysctl -qw net.ipv4.ip_forward=1
    ip netns add srv; ip netns add cli
    ip link add s0 type veth peer name s1 netns srv; ip link add c0 type veth peer name c1 netns cli
    ip addr add 10.90.0.1/24 dev s0; ip link set s0 up; ip addr add 10.91.0.1/24 dev c0; ip link set c0 up
    ip route add 10.90.1.0/24 via 10.90.0.2 dev s0
    ip addr add ${VIP}/32 dev lo
    ip -n srv link set lo up; ip -n srv addr add 10.90.0.2/24 dev s1; ip -n srv link set s1 up
    ip -n srv addr add ${A}/32 dev lo; ip -n srv addr add ${B}/32 dev lo; ip -n srv route add default via 10.90.0.1
    ip -n cli link set lo up; ip -n cli addr add 10.91.0.2/24 dev c1; ip -n cli link set c1 up
    ip -n cli route add default via 10.91.0.1`
      .split("\n")
      .join(" && "),
  );
  const server = spawn("ip", [
    "netns",
    "exec",
    "srv",
    process.execPath,
    "test/kernel-vm/echo-server.cjs",
    "80",
    "53",
    A,
    B,
  ]);
  await new Promise<void>((res) => server.stdout.once("data", () => res()));
  const client = new Client(
    spawn("ip", ["netns", "exec", "cli", process.execPath, "test/kernel-vm/flow-client.cjs", VIP, "80", "53"]),
  );
  await client.next();

  // UDP entries expire 3 s after their last packet, so the UDP drain is observable within the test
  const f: Flows = {
    c,
    client,
    reports: [],
    desired: { services: [tcp([A, B]), udp([A, B])], timeouts: { tcp: 900, tcpfin: 120, udp: 3 } },
  };
  await drainWithFlows(f);
  mark("phase: bound");
  const bounded = await drainBound(f);
  mark("phase: removed service");
  await removedService(f, bounded);
  mark("phase: sync loop timing");
  await syncLoopTiming(f);
  client.p.kill();
  server.kill();
}

// A sync loop drains a removed real server while real TCP and UDP flows run: none is cut or moved, it
// comes back with its weight, and it is deleted once its flows end.
async function drainWithFlows(f: Flows) {
  const { c, client, reports } = f;
  const rec = new Reconciler(c, { drainTimeoutMs: 60_000, sysctls: true });
  const loop = new SyncLoop(rec, () => f.desired, {
    syncPeriodMs: 4000,
    minSyncPeriodMs: 100,
    drainCheckMs: 250,
    onReport: (r, kind) => {
      reports.push({ kind, r, at: Date.now() });
      for (const ch of r.changes)
        mark(`${kind}: ${ch.kind} ${ch.service ?? ""} ${ch.rs ?? ""} ${ch.fields?.join(",") ?? ""} ${ch.reason ?? ""}`);
      for (const x of r.failures) mark(`FAIL ${x.error}`);
    },
    onError: (e) => mark(`loop error: ${e.message}`),
  });
  loop.start();
  await loop.idle();
  eq("initial sync: both services with both real servers", (await checkDrift(c, f.desired)).length, 0);

  // flows: 4 TCP connections and 4 UDP flows, spread over A and B by rr
  const tIds: string[] = (await client.cmd({ op: "open", proto: "tcp", n: 4 })).ids;
  const uIds: string[] = (await client.cmd({ op: "open", proto: "udp", n: 4 })).ids;
  const p0 = (await client.cmd({ op: "ping" })).res as Record<string, string>;
  mark(`flows: ${JSON.stringify(p0)}`);
  const onB = [...tIds, ...uIds].filter((id) => p0[id] === B),
    onA = [...tIds, ...uIds].filter((id) => p0[id] === A);
  eq(
    "flows answered, spread over A and B",
    [onA.length, onB.length, Object.values(p0).every((v) => v === A || v === B)],
    [4, 4, true],
  );

  // remove B: it must go to weight 0 and stay while its flows live (a partial trigger: the loop is told
  // which services changed, as the cluster watch tells it, and syncs only those)
  f.desired = { ...f.desired, services: [tcp([A]), udp([A])] };
  loop.trigger({ changed: f.desired.services, removed: [] });
  await loop.idle();
  const weightsB = () =>
    ipvsadm(["-Sn"])
      .split("\n")
      .filter((l) => l.includes(`-r ${B}:`))
      .map((l) => l.split(" -w ")[1]);
  eq("removed real server B: weight 0 in both services, not deleted", weightsB(), ["0", "0"]);
  check(
    "drain-rs reported",
    reports.some((x) => x.r.changes.some((ch) => ch.kind === "drain-rs" && ch.rs === `${B}:80`)),
    "drain-rs",
    null,
  );
  // a drift check while draining calls B draining, not stale
  const dd = drift(f.desired, await c.dump(), { draining: rec.drainingKeys() });
  check(
    "drift while draining names B as draining",
    dd.length === 2 && dd.every((d) => d.kind === "extra-rs" && d.message.startsWith("draining")),
    "2 draining",
    dd.map((d) => d.message),
  );

  // every flow keeps working for a while, B's included; new connections go to A only
  let cut = 0;
  for (let i = 0; i < 6; i++) {
    const p = (await client.cmd({ op: "ping" })).res as Record<string, string>;
    for (const id of [...tIds, ...uIds])
      if (p[id] !== p0[id]) {
        cut++;
        mark(`flow ${id} moved or failed: ${p[id]}`);
      }
    await sleep(300);
  }
  eq("no established flow cut or moved while B drains", cut, 0);
  const newIds: string[] = (await client.cmd({ op: "open", proto: "tcp", n: 4 })).ids;
  const pn = (await client.cmd({ op: "ping" })).res as Record<string, string>;
  eq(
    "new connections go to A only",
    newIds.map((id) => pn[id]),
    [A, A, A, A],
  );
  eq("B still there while its flows live", weightsB(), ["0", "0"]);

  await restoreThenDelete(f, rec, loop, { tIds, uIds, p0, onA, onB });
  await loop.stop();
}

// B comes back while draining (weight restored, flows untouched), goes again, and is deleted once drained.
async function restoreThenDelete(
  f: Flows,
  rec: Reconciler,
  loop: SyncLoop,
  { uIds, p0, onA, onB }: { tIds: string[]; uIds: string[]; p0: Record<string, string>; onA: string[]; onB: string[] },
) {
  const { c, client, reports } = f;
  const weightsB = () =>
    ipvsadm(["-Sn"])
      .split("\n")
      .filter((l) => l.includes(`-r ${B}:`))
      .map((l) => l.split(" -w ")[1]);
  // B comes back while draining: weight restored, its flows untouched (kube-proxy deletes and re-adds)
  f.desired = { ...f.desired, services: [tcp([A]), udp([A, B])] };
  loop.trigger({ changed: [f.desired.services[1]], removed: [] });
  await loop.idle();
  check(
    "restore-rs reported for B (udp)",
    reports.some((x) => x.r.changes.some((ch) => ch.kind === "restore-rs" && ch.service === `udp ${VIP}:53`)),
    "restore-rs",
    null,
  );
  const pr = (await client.cmd({ op: "ping" })).res as Record<string, string>;
  eq(
    "restored: flows still on their real servers",
    uIds.map((id) => pr[id]),
    uIds.map((id) => p0[id]),
  );
  f.desired = { ...f.desired, services: [tcp([A]), udp([A])] };
  loop.trigger();
  await loop.idle();

  // B's flows end (TCP: reset → the kernel's CLOSE state, 10 s; UDP: no more packets → 3 s)
  const tClose = Date.now();
  await client.cmd({ op: "close", ids: onB });
  mark(`closed B's flows ${onB.join(",")}`);
  // A's flows keep working during B's drain; wait for B to be deleted (at most 30 s)
  let aFail = 0,
    deletedAt = 0;
  for (let i = 0; i < 120 && !deletedAt; i++) {
    const p = (await client.cmd({ op: "ping" })).res as Record<string, string>;
    for (const id of onA) if (p[id] !== A) aFail++;
    if (weightsB().length === 0) deletedAt = Date.now();
    else await sleep(250);
  }
  mark(`B deleted after ${((deletedAt - tClose) / 1000).toFixed(1)} s`);
  eq("A's flows never failed", aFail, 0);
  check("B deleted once drained", deletedAt > 0, "deleted", ipvsadm(["-Sn"]));
  check("B deleted only after its flows ended", deletedAt > tClose, ">", deletedAt - tClose);
  const delReasons = reports.flatMap((x) =>
    x.r.changes.filter((ch) => ch.kind === "delete-rs" && ch.rs?.startsWith(B)).map((ch) => ch.reason ?? ""),
  );
  check(
    "deleted because drained (not the bound)",
    delReasons.length === 2 && delReasons.every((x) => x.startsWith("drained after")),
    "drained",
    delReasons,
  );
  // the UDP one drained by its connection entries: after its last packet + the UDP timeout, not at once
  await loop.idle();
  eq(
    "nothing stale after: zero differences",
    (await checkDrift(c, f.desired)).map((d) => d.message),
    [],
  );
  eq("nothing draining", rec.drainingCount, 0);
}

// the bound: a flow that never ends is cut after drainTimeoutMs
async function drainBound(f: Flows): Promise<Reconciler> {
  const { c, client } = f;
  const bounded = new Reconciler(c, { drainTimeoutMs: 1500 });
  await bounded.sync(f.desired);
  const held: string[] = (await client.cmd({ op: "open", proto: "tcp", n: 1 })).ids;
  const dNoA: DesiredState = { ...f.desired, services: [tcp([B]), udp([A])] };
  const r1 = await bounded.sync(dNoA);
  check(
    "bound: A drains (weight 0), B added",
    r1.changes.some((ch) => ch.kind === "drain-rs" && ch.rs === `${A}:80`) &&
      r1.changes.some((ch) => ch.kind === "add-rs" && ch.rs === `${B}:80`),
    "drain A + add B",
    r1.changes,
  );
  const ph = (await client.cmd({ op: "ping" })).res as Record<string, string>;
  eq("bound: the held flow still works during the drain", ph[held[0]], A);
  await sleep(1700);
  const r2 = await bounded.drain();
  check(
    "bound: deleted after the bound",
    r2.changes.some(
      (ch) => ch.kind === "delete-rs" && ch.rs === `${A}:80` && (ch.reason ?? "").startsWith("drain bound"),
    ),
    "bound reached",
    r2.changes,
  );
  eq("bound: zero differences", (await checkDrift(c, dNoA)).length, 0);
  return bounded;
}

// a removed service drains its real servers first, then goes
async function removedService(f: Flows, bounded: Reconciler) {
  const { client } = f;
  const tIds2: string[] = (await client.cmd({ op: "open", proto: "tcp", n: 1 })).ids;
  const withTcp = (await client.cmd({ op: "ping" })).res as Record<string, string>;
  eq("flow on B for the service removal", withTcp[tIds2[0]], B);
  const r3 = await bounded.sync({ services: [udp([A])] });
  check(
    "removed service: real servers drain first",
    r3.changes.some((ch) => ch.kind === "drain-rs" && ch.service === `tcp ${VIP}:80`) &&
      !r3.changes.some((ch) => ch.kind === "delete-service"),
    "drain",
    r3.changes,
  );
  const pr3 = (await client.cmd({ op: "ping" })).res as Record<string, string>;
  eq("removed service: its flow still works", pr3[tIds2[0]], B);
  await sleep(1700);
  const r4 = await bounded.drain();
  check(
    "removed service: deleted after its real servers",
    r4.changes.some((ch) => ch.kind === "delete-service"),
    "delete-service",
    r4.changes,
  );
}

// the sync loop: minSyncPeriod with burst 2 bounds triggered runs; the periodic run re-reads and repairs drift
async function syncLoopTiming(f: Flows) {
  const { c, reports } = f;
  ipvsadm(["-C"]);
  f.desired = { services: [tcp([A, B])] };
  const fast = new SyncLoop(new Reconciler(c), () => f.desired, {
    syncPeriodMs: 1500,
    minSyncPeriodMs: 600,
    burst: 2,
    onReport: (r, k) => reports.push({ kind: k, r, at: Date.now() }),
  });
  fast.start();
  await fast.idle();
  const runs0 = fast.runs;
  const tt = Date.now();
  for (let i = 0; i < 10; i++) {
    fast.trigger();
    await sleep(20);
  }
  await sleep(450);
  const inWindow = fast.runs - runs0;
  check(
    "minSyncPeriod 600 ms, burst 2: at most 2 triggered runs in the first 650 ms",
    inWindow <= 2 && inWindow >= 1,
    "1..2",
    { inWindow, ms: Date.now() - tt },
  );
  await fast.idle();
  // drift made behind the loop's back (someone sets B's weight to 0, adds a stale real server) is repaired
  ipvsadm(["-e", "-t", `${VIP}:80`, "-r", `${B}:80`, "-m", "-w", "0"]);
  ipvsadm(["-a", "-t", `${VIP}:80`, "-r", "10.90.1.77:80", "-m", "-w", "0"]);
  const driftNow = (await checkDrift(c, f.desired)).map((d) => d.message);
  check(
    "drift check sees the stale weight-0 real server and the wrong weight",
    driftNow.some((m) => m.includes("stale real server 10.90.1.77:80") && m.includes("weight-0 leftover")) &&
      driftNow.some((m) => m.includes("weight 0 → 1")),
    "both",
    driftNow,
  );
  await sleep(2200);
  await fast.idle();
  eq(
    "the periodic full sync repaired it",
    (await checkDrift(c, f.desired)).map((d) => d.message),
    [],
  );
  await fast.stop();
}

async function main() {
  // a watchdog: report what ran rather than hang the VM (170 s on a quiet machine; the host scales it with
  // its load, since qemu's emulation gets that much less of a core)
  const limitS = Number(process.env.KR_WATCHDOG_S) || 170;
  setTimeout(() => {
    result({ checks, timeline, fatal: `watchdog: still running after ${limitS} s` });
    process.exit(1);
  }, limitS * 1000).unref();
  const c = await IpvsClient.open({ timeoutMs: 10_000 });
  await randomStates(c);
  mark("random states done");
  await graceful(c);
  mark("graceful done");
  c.close();
  result({ checks, timeline });
  process.exit(0);
}
main().catch((e) => {
  result({ checks, timeline, fatal: String(e?.stack ?? e) });
  process.exit(1);
});
