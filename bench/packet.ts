// Packet-path throughput on the release build: established flows (parse + lookup + state + NAT +
// checksums), batches written into the WASM batch area and run with one call each. Flows are spread
// over the batches in random order so lookups are not cache-hot for the large tables.
//   node --import tsx bench/packet.ts [flows,...] [batch]
// Figures: Mpps including the host's copy of the packet bytes into the batch area (what a real driver
// pays), Mpps of the WASM alone (copy time measured separately and taken out), and the ratio against a
// baseline measured in the same run: Core.packet(), one JS->WASM call per packet, no bytes (lookup and
// state only).
import { pathToFileURL } from "node:url";
import { Core } from "../src/core/index.ts";
import { PacketBatch } from "../src/core/packets.ts";
import { build, TCP, UDP, SYN, ACK, PSH } from "../test/fixtures/packets/build.ts";
import { interleaved, type Stat } from "./lib/measure.ts";

export interface PacketBenchOptions {
  flows?: number[]; // default [1000, 10000, 100000]
  batch?: number; // packets per batch (256)
  rounds?: number; // timed rounds per configuration (7)
  roundMs?: number; // target duration of a round (200)
  proto?: "tcp" | "udp"; // (tcp)
  v6?: boolean; // (false)
  fwd?: "masq" | "fullnat"; // (masq)
  payload?: number; // payload bytes per packet (0: 40-byte IPv4 TCP ACKs)
  prefetch?: -1 | 0 | 1; // the lookup pre-pass: -1 auto (default), 0 off, 1 on
  log?: (line: string) => void;
}

export interface PacketBenchFigure {
  flows: number;
  batch: number;
  packetBytes: number;
  prefetch: number;
  mpps: { median: number; min: number; max: number }; // including the copy into WASM memory
  wasmMpps: { median: number; min: number; max: number }; // copy taken out
  baselineMpps: number; // Core.packet() per call
  ratio: number; // mpps.median / baselineMpps
  forwarded: number;
  packets: number;
}

function stats(xs: number[]) {
  const s = [...xs].sort((a, b) => a - b);
  return { median: s[Math.floor(s.length / 2)], min: s[0], max: s[s.length - 1] };
}

function shuffle(n: number, seed: number): Uint32Array {
  const a = new Uint32Array(n);
  for (let i = 0; i < n; i++) a[i] = i;
  let x = seed >>> 0 || 1;
  for (let i = n - 1; i > 0; i--) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    const j = x % (i + 1);
    const t = a[i];
    a[i] = a[j];
    a[j] = t;
  }
  return a;
}

function clientOf(i: number, v6: boolean): string {
  const hi = (i >>> 16) & 0xff,
    mid = (i >>> 8) & 0xff,
    lo = i & 0xff;
  return v6 ? `2001:db8:${hi.toString(16)}::${((mid << 8) | lo).toString(16)}` : `100.${hi}.${mid}.${lo}`;
}

// A Core with `flows` established flows and batch images sending each flow once per pass in random order.
interface Bed {
  core: Core;
  batch: PacketBatch;
  images: Uint8Array[];
  bs: number;
  sampleLen: number;
  now: number;
  v6: boolean;
  proto: "tcp" | "udp";
  flagsData: number;
  vip: string;
  next: number; // next: the next image
}

const cpuMs = (c0: NodeJS.CpuUsage) => {
  const c = process.cpuUsage(c0);
  return (c.user + c.system) / 1000;
};

function capacityFor(flows: number): number {
  let cap = 1024;
  while (cap < flows * 2) cap <<= 1;
  return cap;
}

async function packetBed(core: Core, flows: number, opts: PacketBenchOptions): Promise<Bed> {
  const bs = opts.batch ?? 256;
  const v6 = opts.v6 ?? false;
  const proto = opts.proto ?? "tcp";
  const fwd = opts.fwd ?? "masq";
  const VIP = v6 ? "2001:db8::80" : "10.0.0.80";
  const RS = v6
    ? ["fd00::1", "fd00::2", "fd00::3", "fd00::4"]
    : ["192.168.0.1", "192.168.0.2", "192.168.0.3", "192.168.0.4"];
  core.x.packetSetPrefetch(opts.prefetch ?? -1);
  const svc = core.addService({ proto, addr: VIP, port: 80, scheduler: "rr" });
  for (const rs of RS) core.addDest(svc, { addr: rs, port: 8080, fwd });
  core.setSnat(v6 ? "fd00::ffff" : "172.16.0.1");
  const p = proto === "tcp" ? TCP : UDP;
  const payload = new Uint8Array(opts.payload ?? 0).fill(0x61);
  const pktOf = (i: number, flags: number) =>
    build({ src: clientOf(i, v6), dst: VIP, proto: p, sport: 10000 + (i % 50000), dport: 80, flags, payload });
  const sample = pktOf(0, ACK);
  const slot = (sample.length + 7) & ~7;
  const batch = new PacketBatch(core, { maxPackets: bs, maxBytes: bs * slot });
  const now = 1000;
  establish(core, batch, flows, bs, now, proto, pktOf);

  // batch images: every flow once per pass, in random order
  const perm = shuffle(Math.max(flows, bs * 64), flows);
  const nImages = Math.ceil(perm.length / bs);
  const images: Uint8Array[] = [];
  const flagsData = proto === "tcp" ? ACK | PSH : 0;
  const cache = new Map<number, Uint8Array>();
  for (let j = 0; j < nImages; j++) {
    const img = new Uint8Array(bs * slot);
    for (let k = 0; k < bs; k++) {
      const f = perm[(j * bs + k) % perm.length] % flows;
      let b = cache.get(f);
      if (!b) {
        b = pktOf(f, flagsData);
        cache.set(f, b);
      }
      img.set(b, k * slot);
    }
    images.push(img);
  }
  // descriptors once: processing writes only the result fields
  for (let k = 0; k < bs; k++) batch.setDescriptor(k, k * slot, sample.length, 0);
  core.x.packetResetCounters();
  return { core, batch, images, bs, sampleLen: sample.length, now, v6, proto, flagsData, vip: VIP, next: 0 };
}

// Every flow's SYN in (then, for TCP, the server's SYN-ACK out and the client's ACK in), a batch at a time.
function establish(
  core: Core,
  batch: PacketBatch,
  flows: number,
  bs: number,
  now: number,
  proto: string,
  pktOf: (i: number, flags: number) => Uint8Array,
): void {
  const p = proto === "tcp" ? TCP : UDP;
  for (let i = 0; i < flows; i += bs) {
    batch.clear();
    for (let k = i; k < Math.min(flows, i + bs); k++) batch.add(pktOf(k, SYN), { dir: "in" });
    batch.run(now);
    if (proto !== "tcp") continue;
    const rep: Uint8Array[] = [];
    for (let k = 0; k < batch.count; k++) {
      const c = core.conn(batch.result(k).conn)!;
      rep.push(build({ src: c.daddr, dst: c.laddr, proto: p, sport: c.dport, dport: c.lport, flags: SYN | ACK }));
    }
    batch.clear();
    rep.forEach((b) => batch.add(b, { dir: "out" }));
    batch.run(now);
    batch.clear();
    for (let k = i; k < Math.min(flows, i + bs); k++) batch.add(pktOf(k, ACK), { dir: "in" });
    batch.run(now);
  }
  if (core.connStats().live !== flows) throw new Error(`expected ${flows} connections, have ${core.connStats().live}`);
}

// Copies the next `count` images into the batch area and runs each (run: false copies only).
function runBatches(bed: Bed, count: number, run = true): number {
  const u8 = bed.core.u8,
    data = bed.batch.data,
    x = bed.core.x,
    n = bed.images.length;
  let j = bed.next;
  for (let b = 0; b < count; b++, j++) {
    u8.set(bed.images[j % n], data);
    if (run) x.processBatch(bed.bs, bed.now + j);
  }
  if (run) bed.next = j;
  return count * bed.bs;
}

// Batches per round for about roundMs of CPU time (after a 100 ms warm-up).
function batchesPerRound(bed: Bed, roundMs: number): number {
  const c0 = process.cpuUsage();
  let nb = 0;
  while (cpuMs(c0) < 100) nb += runBatches(bed, 1) / bed.bs;
  return Math.max(16, Math.round((nb * roundMs) / 100));
}

// Mpps per round in CPU time: copy + process, and the WASM alone (the copy timed separately, taken out).
function timeRounds(bed: Bed, rounds: number, perRound: number): { mpps: number[]; wasm: number[] } {
  const mpps: number[] = [],
    wasm: number[] = [];
  for (let r = 0; r < rounds; r++) {
    let c0 = process.cpuUsage();
    runBatches(bed, perRound, false);
    const copyMs = cpuMs(c0);
    c0 = process.cpuUsage();
    const pkts = runBatches(bed, perRound);
    const ms = cpuMs(c0);
    mpps.push(pkts / ms / 1000);
    wasm.push(pkts / Math.max(ms - copyMs, 1e-6) / 1000);
  }
  return { mpps, wasm };
}

// One Core.packet() call per packet by numbers (lookup and state, no bytes); the first round warms up.
function perCallBaseline(bed: Bed, flows: number): number {
  const nBase = Math.min(Math.max(flows, 50_000), 200_000);
  const srcs = Array.from({ length: Math.min(flows, 4096) }, (_, i) => clientOf(i, bed.v6));
  const baseRounds: number[] = [];
  for (let r = 0; r < 6; r++) {
    const c0 = process.cpuUsage();
    for (let i = 0; i < nBase; i++) {
      const f = i % srcs.length;
      bed.core.packet("in", bed.proto, srcs[f], 10000 + (f % 50000), bed.vip, 80, {
        flags: bed.flagsData,
        now: bed.now + bed.next,
      });
    }
    if (r > 0) baseRounds.push(nBase / cpuMs(c0) / 1000);
  }
  return stats(baseRounds).median;
}

export async function benchPackets(opts: PacketBenchOptions = {}): Promise<PacketBenchFigure[]> {
  const flowsList = opts.flows ?? [1000, 10000, 100000];
  const rounds = opts.rounds ?? 7;
  const roundMs = opts.roundMs ?? 200;
  const log = opts.log ?? (() => {});
  const out: PacketBenchFigure[] = [];
  for (const flows of flowsList) {
    const core = await Core.load({ debug: false, connCapacity: capacityFor(flows) });
    const bed = await packetBed(core, flows, opts);
    const perRound = batchesPerRound(bed, roundMs);
    const { mpps, wasm } = timeRounds(bed, rounds, perRound);
    const total = bed.next * bed.bs;
    const forwarded = core.x.packetVerdictCount(1);
    if (forwarded !== total) throw new Error(`only ${forwarded} of ${total} packets forwarded`);
    const baselineMpps = perCallBaseline(bed, flows);
    const fig: PacketBenchFigure = {
      flows,
      batch: bed.bs,
      prefetch: opts.prefetch ?? -1,
      packetBytes: bed.sampleLen,
      mpps: stats(mpps),
      wasmMpps: stats(wasm),
      baselineMpps,
      ratio: stats(mpps).median / baselineMpps,
      forwarded,
      packets: total,
    };
    log(
      `${String(flows).padStart(7)} flows  ${bed.bs}-packet batches  ${bed.sampleLen} B  ` +
        `${fig.mpps.median.toFixed(2)} Mpps (min ${fig.mpps.min.toFixed(2)}, max ${fig.mpps.max.toFixed(2)})  ` +
        `wasm-only ${fig.wasmMpps.median.toFixed(2)} Mpps  baseline per-call ${baselineMpps.toFixed(2)} Mpps  ` +
        `ratio ${fig.ratio.toFixed(1)}x  (CPU time)`,
    );
    out.push(fig);
  }
  return out;
}

// Two builds' packet paths on the same traffic, each with its own Core, timed in interleaved rounds in CPU
// time (bench/scaling/ab.ts --what=packet). Logs each build's median Mpps with its interquartile range,
// and B/A.
type Bytes = Uint8Array<ArrayBuffer>;
export async function packetAb(
  a: Bytes,
  b: Bytes,
  flowsList: number[],
  rounds: number,
  log: (s: string) => void,
  opts: PacketBenchOptions = {},
): Promise<void> {
  for (const flows of flowsList) {
    const beds = [
      await packetBed(await Core.fromBytes(a, capacityFor(flows)), flows, opts),
      await packetBed(await Core.fromBytes(b, capacityFor(flows)), flows, opts),
    ];
    const perRound = batchesPerRound(beds[0], 100);
    batchesPerRound(beds[1], 100);
    const st = interleaved(
      beds.map((bed, j) => ({ name: j ? "B" : "A", ops: perRound * bed.bs, fn: () => runBatches(bed, perRound) })),
      rounds,
    );
    for (const bed of beds) {
      const fwd = bed.core.x.packetVerdictCount(1);
      if (fwd !== bed.next * bed.bs) throw new Error(`only ${fwd} of ${bed.next * bed.bs} packets forwarded`);
    }
    const mpps = (s: Stat) =>
      `${(1000 / s.median).toFixed(2)} Mpps (${(1000 / s.p75).toFixed(2)}–${(1000 / s.p25).toFixed(2)})`;
    log(
      `${flows} flows, ${beds[0].bs}-packet batches, CPU time, ${rounds} interleaved rounds: A ${mpps(st[0])}, ` +
        `B ${mpps(st[1])}; B/A ${(st[0].median / st[1].median).toFixed(3)} ` +
        `(${(st[0].p25 / st[1].p75).toFixed(3)}–${(st[0].p75 / st[1].p25).toFixed(3)})`,
    );
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const flows = process.argv[2] ? process.argv[2].split(",").map(Number) : undefined;
  const batch = process.argv[3] ? Number(process.argv[3]) : undefined;
  const log = (s: string) => console.log(s);
  for (const [name, o] of [
    ["IPv4 TCP masq", {}],
    ["IPv4 TCP masq, lookup pre-pass off", { prefetch: 0 }],
    ["IPv4 TCP fullnat", { fwd: "fullnat" }],
    ["IPv6 TCP masq", { v6: true }],
    ["IPv4 UDP masq", { proto: "udp" }],
  ] as [string, PacketBenchOptions][]) {
    console.log(`packet path, established flows, release build: ${name}`);
    await benchPackets({ flows, batch, log, ...o });
  }
}
