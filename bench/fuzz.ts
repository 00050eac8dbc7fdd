// Seeded fuzzing of the packet path: random and mutated IPv4/IPv6 TCP/UDP/SCTP packets through the
// batch area, asserting that nothing traps (the debug build asserts every packet byte access is inside
// its packet), that every verdict/reason/method is valid, that no byte outside a packet's range changes
// (guard bytes around every packet, and the whole used area compared), that a packet with valid
// checksums leaves with valid checksums, and that bogus descriptors are refused.
//   npm run fuzz [-- count [seed]]        (default 10,000,000 packets, debug build)
import { pathToFileURL } from "node:url";
import { Core } from "../src/core/index.ts";
import { PacketBatch, DESC_SIZE, REASON } from "../src/core/packets.ts";
import {
  build,
  checksumsValid,
  hex,
  type PacketSpec,
  type ExtHeader,
  TCP,
  UDP,
  SCTP,
  ICMP,
  ICMP6,
} from "../test/fixtures/packets/build.ts";

export interface FuzzOptions {
  count?: number; // packets (default 1,000,000)
  seed?: number;
  debug?: boolean; // the bounds-checked build (default true)
  batchSize?: number; // packets per batch (default 256)
  progress?: (done: number, total: number, stats: FuzzStats) => void;
  progressEvery?: number; // packets between progress calls
}

export interface FuzzStats {
  packets: number;
  batches: number;
  verdicts: number[];
  reasons: Record<number, number>;
  checksumChecked: number;
  badDescriptors: number;
  ms: number;
}

const VALID_REASONS = new Set([1, 2, 3, 4, 5, 6, ...Object.values(REASON)]);

// mulberry32
function rng(seed: number) {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return {
    next,
    int: (n: number) => Math.floor(next() * n),
    pick: <T>(xs: readonly T[]): T => xs[Math.floor(next() * xs.length)],
  };
}

const V4 = {
  vip: "10.0.0.1",
  rs: ["192.168.1.10", "192.168.1.11"],
  snat: "172.16.0.1",
  clients: ["198.51.100.1", "198.51.100.2", "203.0.113.9"],
};
const V6 = {
  vip: "2001:db8::1",
  rs: ["fd00::10", "fd00::11"],
  snat: "fd00::ffff",
  clients: ["2001:db8:c::1", "2001:db8:c::2", "2001:db8:d::9"],
};
const PORTS: Record<number, number> = { [TCP]: 80, [UDP]: 53, [SCTP]: 3868 };

async function makeCore(debug: boolean): Promise<Core> {
  const core = await Core.load({ debug, connCapacity: 1 << 16 });
  core.setSnat(V4.snat);
  core.setSnat(V6.snat);
  const fwds = ["masq", "fullnat", "route"] as const;
  for (const fam of [V4, V6]) {
    for (const proto of ["tcp", "udp", "sctp"] as const) {
      const port = PORTS[proto === "tcp" ? TCP : proto === "udp" ? UDP : SCTP];
      const svc = core.addService({ proto, addr: fam.vip, port, scheduler: "rr" });
      fam.rs.forEach((rs, i) => core.addDest(svc, { addr: rs, port: port + 8000, fwd: fwds[(i + port) % 3] }));
    }
  }
  const fw = core.addService({ fwmark: 5, scheduler: "rr" });
  core.addDest(fw, { addr: V4.rs[0], port: 0, fwd: "fullnat" });
  return core;
}

// A pool of well-formed packets: requests toward the services and replies from the real servers.
function basePool(r: ReturnType<typeof rng>, n: number): { bytes: Uint8Array; dir: 0 | 1; mark: number }[] {
  const pool: { bytes: Uint8Array; dir: 0 | 1; mark: number }[] = [];
  for (let i = 0; i < n; i++) {
    const fam = r.next() < 0.5 ? V4 : V6;
    const proto = r.pick([TCP, TCP, UDP, SCTP, ICMP]);
    const reply = r.next() < 0.35;
    const client = r.pick(fam.clients);
    const cport = 1000 + r.int(48);
    const port = PORTS[proto] ?? 0;
    const spec: PacketSpec = reply
      ? {
          src: r.pick(fam.rs),
          dst: r.next() < 0.7 ? client : fam.snat,
          proto,
          sport: port + 8000,
          dport: r.next() < 0.7 ? cport : 1024 + r.int(64512),
        }
      : {
          src: client,
          dst: r.next() < 0.9 ? fam.vip : r.pick(fam.rs),
          proto,
          sport: cport,
          dport: r.next() < 0.9 ? port : r.int(65536),
        };
    spec.ttl = r.next() < 0.05 ? r.int(3) : 64;
    spec.payload = new Uint8Array(r.int(r.next() < 0.8 ? 40 : 300)).map(() => r.int(256));
    if (proto === TCP) {
      spec.flags = r.pick([2, 2, 16, 16, 24, 17, 4, 18, 20, 1, 0, r.int(256)]);
      if (r.next() < 0.2) spec.tcpOptions = new Uint8Array(4 * (1 + r.int(4))).map(() => 1);
    }
    if (proto === UDP && fam === V4 && r.next() < 0.1) spec.udpZeroCsum = true;
    if (proto === SCTP) {
      const t = r.pick([1, 1, 2, 0, 10, 11, 6, 7, 8, 9, 14, r.int(256)]);
      spec.chunks = [{ type: t, body: new Uint8Array(r.int(24)).map(() => r.int(256)) }];
      if (r.next() < 0.3) spec.chunks.push({ type: r.pick([6, 0, 3]), body: new Uint8Array(r.int(8)) });
      spec.vtag = r.int(0x7fffffff);
    }
    if (fam === V4 && r.next() < 0.1) spec.ipOptions = new Uint8Array(4 * (1 + r.int(10))).map(() => 1);
    if (fam === V6 && r.next() < 0.15) {
      const ext: ExtHeader[] = [];
      const k = 1 + r.int(3);
      for (let j = 0; j < k; j++)
        ext.push({
          type: r.pick([0, 43, 60, 60, 44, 51]),
          body: new Uint8Array(6 + 8 * r.int(3)),
          segmentsLeft: r.int(2),
        });
      spec.ext = ext;
    }
    if (r.next() < 0.03) spec.fragField = r.pick([0x2000, 0x0001, 0x3fff]);
    if (r.next() < 0.05) spec.trailer = new Uint8Array(r.int(20)).fill(0xee);
    if (proto !== ICMP && r.next() < 0.06) {
      pool.push(icmpError(r, fam, spec, reply, port, cport));
      continue;
    }
    pool.push({ bytes: build(spec), dir: reply ? 1 : 0, mark: r.next() < 0.03 ? 5 : 0 });
  }
  return pool;
}

// An ICMP(v6) error about one of the pool's flows, quoting it (cut anywhere) as the balancer sent it on: to
// the real server (the error comes back to the client's or the local address: dir 1) or, for a reply, to
// the client (the error comes to the VIP: dir 0). Masqueraded flows match; full-NAT ones mostly do not
// (their local port is the core's choice): the parser meets both.
function icmpError(
  r: ReturnType<typeof rng>,
  fam: typeof V4,
  spec: PacketSpec,
  reply: boolean,
  port: number,
  cport: number,
): { bytes: Uint8Array; dir: 0 | 1; mark: number } {
  const v6 = fam === V6;
  const local = r.next() < 0.5 ? fam.snat : spec.src;
  const quoted = reply
    ? build({ ...spec, src: fam.vip, sport: port, dst: r.pick(fam.clients), dport: cport })
    : build({ ...spec, src: local, dst: r.pick(fam.rs), dport: port + 8000 });
  const body = new Uint8Array(8 + r.int(quoted.length + 1));
  body[0] = v6 ? r.pick([1, 2, 3, 4, 128, r.int(256)]) : r.pick([3, 3, 4, 11, 8, r.int(256)]);
  body[1] = r.int(16);
  body.set(quoted.subarray(0, body.length - 8), 8);
  const router = v6 ? "fd00:2::1" : "192.168.2.1";
  const bytes = build({
    src: router,
    dst: reply ? fam.vip : local,
    proto: v6 ? ICMP6 : ICMP,
    payload: body,
    ttl: r.next() < 0.05 ? 1 : 64,
  });
  return { bytes, dir: reply ? 0 : 1, mark: 0 };
}

function mutate(r: ReturnType<typeof rng>, src: Uint8Array): Uint8Array {
  const b = src.slice();
  const kind = r.int(12);
  switch (kind) {
    case 0:
      return b.slice(0, r.int(b.length + 1)); // truncate anywhere
    case 1: {
      const n = 1 + r.int(4);
      for (let i = 0; i < n && b.length; i++) b[r.int(b.length)] ^= 1 << r.int(8);
      return b;
    }
    case 2: {
      if (b.length) b[0] = (b[0] & 0xf0) | r.int(16);
      return b;
    } // bogus IHL
    case 3: {
      if (b.length > 5) {
        b[2] = r.int(256);
        b[3] = r.int(256);
        b[4] = r.int(256);
        b[5] = r.int(256);
      }
      return b;
    } // bogus lengths
    case 4: {
      if (b.length > 6) b[6] = r.pick([0, 43, 44, 60, 51, 59, 135, 253, 6, 17, 132, r.int(256)]);
      return b;
    } // bogus next header
    case 5: {
      const o = 20 + r.int(Math.max(1, b.length - 20));
      if (o < b.length) b[o] = r.int(256);
      return b;
    } // L4 byte
    case 6: {
      if (b.length > 40) {
        b[40] = r.pick([0, 43, 60, 6, 17]);
        b[41] = r.int(256);
      }
      return b;
    } // ext header length
    case 7: {
      const n = r.int(120);
      const x = new Uint8Array(n).map(() => r.int(256));
      if (n) x[0] = (r.next() < 0.5 ? 0x40 : 0x60) | (x[0] & 15);
      return x;
    } // random
    case 8: {
      const extra = new Uint8Array(r.int(64)).map(() => r.int(256));
      const t = new Uint8Array(b.length + extra.length);
      t.set(b);
      t.set(extra, b.length);
      return t;
    }
    case 9: {
      for (let i = 0; i < b.length; i++) if (r.next() < 0.05) b[i] = r.int(256);
      return b;
    }
    default:
      return b; // unchanged (valid packets keep connections and states moving)
  }
}

// One batch's working arrays: what was laid out where, and the guard pattern around it.
interface BatchLayout {
  ins: Uint8Array[];
  offs: Int32Array;
  lens: Int32Array;
  bogus: Uint8Array;
  dirs: Uint8Array;
  area: Uint8Array;
}

// Lays up to n packets from the pool (60 % mutated) into the area with guard bytes between them.
function layOut(
  r: ReturnType<typeof rng>,
  pool: ReturnType<typeof basePool>,
  L: BatchLayout,
  n: number,
  seed: number,
): number {
  const { area } = L;
  for (let i = 0; i < area.length; i++) area[i] = (i * 131 + seed) & 0xff;
  let at = 0;
  let m = 0;
  for (; m < n; m++) {
    const base = r.pick(pool);
    const b = r.next() < 0.6 ? mutate(r, base.bytes) : base.bytes;
    const gap = 1 + r.int(24);
    if (at + gap + b.length + 32 > area.length) break;
    at += gap;
    area.set(b, at);
    L.ins[m] = b;
    L.offs[m] = at;
    L.lens[m] = b.length;
    L.dirs[m] = base.dir;
    L.bogus[m] = 0;
    at += b.length;
  }
  return m;
}

// Writes the descriptors: mostly the packets as laid out, 0.2 % pointing outside the area or with a bad
// direction (refused, nothing touched), 3 % with a firewall mark.
function describe(r: ReturnType<typeof rng>, batch: PacketBatch, L: BatchLayout, m: number): void {
  const maxBytes = L.area.length;
  for (let i = 0; i < m; i++) {
    let dir: number = r.next() < 0.8 ? L.dirs[i] : r.int(2);
    let off = L.offs[i],
      len = L.lens[i];
    if (r.next() < 0.002) {
      L.bogus[i] = 1;
      const k = r.int(3);
      if (k === 0) {
        off = maxBytes - r.int(8);
        len = 16 + r.int(100);
      } else if (k === 1) {
        off = 0xffffff00 + r.int(256);
        len = r.int(0x7fffffff);
      } else dir = 2 + r.int(100);
    }
    batch.setDescriptor(i, off, len, dir as 0, r.next() < 0.03 ? 5 : 0);
  }
}

// A fragment's L4 checksum covers the whole datagram (or its header is elsewhere): not checkable alone.
function isFragment(b: Uint8Array): boolean {
  if (b.length >= 20 && b[0] >> 4 === 4) return (((b[6] << 8) | b[7]) & 0x3fff) !== 0;
  if (b.length < 40 || b[0] >> 4 !== 6) return false;
  let nh = b[6],
    off = 40;
  for (let n = 0; n < 10 && off + 8 <= b.length; n++) {
    if (nh === 44) return true;
    if (nh !== 0 && nh !== 43 && nh !== 60) return false;
    nh = b[off];
    off += (b[off + 1] + 1) * 8;
  }
  return false;
}

// Checks every result of the batch against the invariants; throws naming the packet that broke one.
function checkBatch(core: Core, batch: PacketBatch, L: BatchLayout, m: number, stats: FuzzStats, seed: number): void {
  const maxBytes = L.area.length;
  const u8 = core.u8,
    dv = core.dv;
  const out = u8.subarray(batch.data, batch.data + maxBytes);
  let cursor = 0;
  for (let i = 0; i < m; i++) {
    const p = batch.desc + i * DESC_SIZE;
    const v = dv.getUint8(p + 16),
      reason = dv.getUint8(p + 17),
      fwd = dv.getUint8(p + 18);
    const fail = (msg: string) => {
      throw new Error(`fuzz seed ${seed} batch ${stats.batches} packet ${i}: ${msg}; in ${hex(L.ins[i])}`);
    };
    if (v > 2) fail(`verdict ${v}`);
    if (v === 2 ? !VALID_REASONS.has(reason) : reason !== 0) fail(`verdict ${v} reason ${reason}`);
    if (!(fwd <= 5 || fwd === 255)) fail(`fwd ${fwd}`);
    if (v === 1 && fwd === 255) fail("forward without a method");
    const conn = dv.getInt32(p + 20, true);
    if (v === 1 && conn < 0) fail("forward without a connection");
    if (L.bogus[i]) {
      if (v !== 2 || reason !== REASON.badDescriptor) fail(`bogus descriptor verdict ${v} reason ${reason}`);
      stats.badDescriptors++;
    }
    stats.verdicts[v]++;
    if (v === 2) stats.reasons[reason] = (stats.reasons[reason] ?? 0) + 1;
    // bytes before this packet (guards) unchanged
    for (let k = cursor; k < L.offs[i]; k++) if (out[k] !== L.area[k]) fail(`byte ${k} outside packets changed`);
    cursor = L.offs[i] + L.lens[i];
    const after = out.subarray(L.offs[i], L.offs[i] + L.lens[i]);
    if (v !== 1) {
      for (let k = 0; k < L.lens[i]; k++) if (after[k] !== L.ins[i][k]) fail(`a packet with verdict ${v} was changed`);
    } else if (!L.bogus[i]) {
      // valid checksums in, valid checksums out
      const before = checksumsValid(L.ins[i]);
      const now2 = checksumsValid(after);
      if (before.ip && !now2.ip) fail(`IP checksum broken: out ${hex(after)}`);
      if (before.l4 && !now2.l4 && !isFragment(L.ins[i])) fail(`L4 checksum broken: out ${hex(after)}`);
      stats.checksumChecked++;
    }
  }
  for (let k = cursor; k < maxBytes; k++) {
    if (out[k] === L.area[k]) continue;
    throw new Error(`fuzz seed ${seed} batch ${stats.batches}: byte ${k} after the packets changed`);
  }
}

export async function runFuzz(opts: FuzzOptions = {}): Promise<FuzzStats> {
  const total = opts.count ?? 1_000_000;
  const seed = opts.seed ?? 0x5eed;
  const bs = opts.batchSize ?? 256;
  const r = rng(seed);
  const core = await makeCore(opts.debug ?? true);
  const maxBytes = bs * 512;
  const batch = new PacketBatch(core, { maxPackets: bs, maxBytes });
  const pool = basePool(r, 4096);
  const stats: FuzzStats = {
    packets: 0,
    batches: 0,
    verdicts: [0, 0, 0],
    reasons: {},
    checksumChecked: 0,
    badDescriptors: 0,
    ms: 0,
  };
  const t0 = performance.now();
  let now = 1000;
  let nextProgress = opts.progressEvery ?? 100_000;
  const L: BatchLayout = {
    ins: new Array(bs),
    offs: new Int32Array(bs),
    lens: new Int32Array(bs),
    bogus: new Uint8Array(bs),
    dirs: new Uint8Array(bs),
    area: new Uint8Array(maxBytes),
  };

  while (stats.packets < total) {
    const m = layOut(r, pool, L, Math.min(bs, total - stats.packets), seed);
    core.u8.set(L.area, batch.data);
    describe(r, batch, L, m);
    core.x.packetSetPrefetch(r.int(3) - 1); // the lookup pre-pass too (auto / off / on)
    core.x.packetSetFwmarkTwins(r.int(2)); // and packet mode's fwmark-queue twins rule (conn/in.ts), on or off
    const done = core.x.processBatch(m, now);
    if (done !== m) throw new Error(`processBatch ran ${done} of ${m}`);
    checkBatch(core, batch, L, m, stats, seed);
    stats.packets += m;
    stats.batches++;
    now += 1000;
    core.advance(now);
    if (opts.progress && stats.packets >= nextProgress) {
      stats.ms = performance.now() - t0;
      opts.progress(stats.packets, total, stats);
      nextProgress += opts.progressEvery ?? 100_000;
    }
  }
  stats.ms = performance.now() - t0;
  return stats;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const count = Number(process.argv[2] ?? 10_000_000);
  const seed = Number(process.argv[3] ?? Date.now() % 1_000_000);
  console.log(`fuzzing the packet path: ${count.toLocaleString()} packets, seed ${seed}, debug build`);
  const s = await runFuzz({
    count,
    seed,
    progressEvery: 500_000,
    progress: (done, total, st) => {
      const rate = done / (st.ms / 1000);
      console.log(
        `  ${done.toLocaleString()} / ${total.toLocaleString()}  ${((100 * done) / total).toFixed(0)}%  ` +
          (`${Math.round(rate).toLocaleString()} pkt/s  forward ${st.verdicts[1]} drop ${st.verdicts[2]} ` +
            `not-ours ${st.verdicts[0]}`),
      );
    },
  });
  console.log(
    `ok: ${s.packets.toLocaleString()} packets in ${(s.ms / 1000).toFixed(1)} s, no trap, no stray write;` +
      (` verdicts not-ours/forward/drop ${s.verdicts.join("/")}, checksums checked ${s.checksumChecked}, bad desc` +
        `riptors ${s.badDescriptors}`),
  );
  console.log(`drops by reason: ${JSON.stringify(s.reasons)}`);
}
