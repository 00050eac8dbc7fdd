// The reconciler's periodic full pass without a kernel: Reconciler.sync(desired, {refresh: true}) against
// a client that hands back a ready table and whose apply() accepts everything. What is left is the pass's
// own work: every service and real server compared with the table, the one change found. Two ways, in
// alternation: the table encoded as the kernel sends it (dumpEncoded(), what the pass reads when the
// native dump loop is built: unchanged services checked on the bytes), and as objects (dump(), the
// parser's output: the view rebuilt from them, key normalisation, field by field; encodedRead: false).
// The same pass in the VM (bench/kernel-sync.ts) adds the table read itself.
//   node --import tsx bench/reconcile-pass.ts [--services=10000] [--rounds=9] [--ab=OTHER/reconcile.ts]
import type { DesiredState, VirtualService } from "../src/model/types.ts";
import type { IpvsClient, ServiceWithDests, Op } from "../src/kernel/client.ts";
import { Reconciler, type ReconcileOptions } from "../src/kernel/reconcile.ts";
import { encodeTable } from "../src/kernel/table.ts";

const arg = (name: string, d: number) =>
  Number(process.argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3) ?? d);
const n = arg("services", 10_000),
  rounds = arg("rounds", 9);

function desiredOf(n: number): DesiredState {
  const services: VirtualService[] = [];
  for (let i = 0; i < n; i++) {
    const addr = `10.96.${i >> 8}.${i & 255}`;
    const s: VirtualService = { protocol: "tcp", addr, port: 80, scheduler: "rr", flags: [], realServers: [] };
    for (let j = 0; j < 10; j++) {
      const addr = `10.${128 + (i >> 12)}.${(i >> 4) & 255}.${((i & 15) << 4) | j}`;
      s.realServers.push({ addr, port: 8080, weight: 1, fwd: "masq", upperThreshold: 0, lowerThreshold: 0 });
    }
    services.push(s);
  }
  return { services };
}

// the dump as the parser returns it: fresh objects each read, with the kernel's counters and fields
function dumpOf(d: DesiredState): ServiceWithDests[] {
  return d.services.map((s) => ({
    protocol: s.protocol,
    addr: s.addr,
    port: s.port,
    scheduler: s.scheduler,
    flags: [],
    netmask: "255.255.255.255",
    family: "inet",
    realServers: s.realServers.map((r) => ({
      addr: r.addr,
      port: r.port,
      weight: r.weight,
      fwd: r.fwd,
      upperThreshold: 0,
      lowerThreshold: 0,
      activeConns: 0,
      inactConns: 0,
      persistConns: 0,
    })),
  })) as unknown as ServiceWithDests[];
}

type Rec = { sync(d: DesiredState, o?: { refresh?: boolean }): Promise<{ changes: unknown[] }> };
type RecClass = new (c: IpvsClient, o?: ReconcileOptions) => Rec;

// one reconciler over its own fake kernel; pass() makes one change and times the full pass finding it
async function setup(R: RecClass, encodedRead = true) {
  const desired = desiredOf(n);
  let kernel = dumpOf(desired);
  // the encoded table arrives ready (the native loop's buffer: no JS work), made outside the timing
  let encoded = encodeTable(kernel);
  const fake = {
    async dump() {
      return dumpOf({ services: kernel as unknown as VirtualService[] });
    },
    async dumpEncoded() {
      return encodedRead ? encoded : null;
    },
    async apply(ops: Op[]) {
      return ops.map(() => ({}));
    },
    async dests() {
      return [];
    },
  } as unknown as IpvsClient;
  const rec = new R(fake, { encodedRead });
  await rec.sync(desired);
  let cur = desired,
    r = 0;
  return async (): Promise<number> => {
    const k = (r++ * 7919) % n,
      sv = cur.services[k];
    const flip = (x: VirtualService["realServers"][number], j: number) =>
      j === 3 ? { ...x, weight: x.weight === 1 ? 2 : 1 } : x;
    const ns: VirtualService = { ...sv, realServers: sv.realServers.map(flip) };
    const services = cur.services.slice();
    services[k] = ns;
    cur = { services };
    // in the process's CPU time (the collector's threads included; not the slices other tenants ran in)
    const cpu = () => {
      const c = process.cpuUsage();
      return (c.user + c.system) / 1000;
    };
    const t0 = cpu();
    await (encodedRead ? fake.dumpEncoded() : fake.dump());
    const t1 = cpu();
    const rep = await rec.sync(cur, { refresh: true });
    const t2 = cpu();
    if (rep.changes.length !== 1) throw new Error(`expected one change, got ${rep.changes.length}`);
    kernel = dumpOf(cur); // the kernel now holds the change (apply() only pretended)
    if (encodedRead) encoded = encodeTable(kernel);
    return t2 - t1 - (t1 - t0); // the fake dump's own building (objects or bytes) excluded
  };
}

// --ab=MODULE: the same with MODULE's Reconciler (another version of reconcile.ts) in alternation, B/A
const abPath = process.argv.find((a) => a.startsWith("--ab="))?.slice(5);
const runs: { name: string; pass: () => Promise<number>; ms: number[] }[] = [];
if (abPath) {
  const other = (await import(new URL(abPath, `file://${process.cwd()}/`).href)) as { Reconciler: RecClass };
  runs.push({ name: `A (${abPath})`, pass: await setup(other.Reconciler), ms: [] });
}
const ours = await setup(Reconciler as unknown as RecClass);
runs.push({ name: abPath ? "B (this tree)" : "full pass, encoded read", pass: ours, ms: [] });
if (!abPath) {
  runs.unshift({ name: "full pass, object read", pass: await setup(Reconciler as unknown as RecClass, false), ms: [] });
}
for (let r = 0; r < rounds + 2; r++)
  for (const x of runs) {
    const ms = await x.pass();
    if (r >= 2) x.ms.push(ms);
  }
const med = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1];
for (const x of runs) {
  const range = `${Math.min(...x.ms).toFixed(1)}–${Math.max(...x.ms).toFixed(1)}`;
  console.log(`${n}×10, ${x.name}, the table handed over: ${med(x.ms).toFixed(1)} ms CPU median (${range})`);
}
const ratioName = abPath ? "B/A" : "encoded/object";
if (runs.length === 2) console.log(`${ratioName} ${(med(runs[1].ms) / med(runs[0].ms)).toFixed(3)}`);
