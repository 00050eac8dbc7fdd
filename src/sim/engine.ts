// The simulator's engine: synthetic traffic through the REAL WASM data plane (build/core.wasm via Core and
// the PacketBatch area), with every new connection also costed by the kernel modes' rule-matching models.
//
// Traffic: Poisson arrivals at `rate` new connections per simulated second; each connection goes to a
// Service drawn uniformly or by a Zipf law, from one of `clients` client addresses (each with its own
// source-port counter); it sends SYN, then the handshake's ACK, then `requests` data packets spread over
// its length (exponential, mean `meanLengthMs`; keepalive = several requests on one connection), and ends
// with an RST, as the benchmark's connector does. Packets are 40-byte IPv4/TCP, written straight into the
// WASM batch area (IPv4 header checksum computed here; the data plane verifies it) and run in batches on a
// simulated clock in 1 ms ticks, so the data plane's connection table, timers and states are all real.
import { Core } from "../core/index.ts";
import { PacketBatch, DESC_SIZE, packetCounters, resetPacketCounters } from "../core/packets.ts";

export interface SimService { vip: number; port: number; endpoints: [number, number][]; walkRules: number }

export interface TrafficSpec {
  connections: number;
  rate: number;              // new connections per simulated second
  meanLengthMs: number;      // mean connection length (exponential; capped at 20× the mean)
  requests: number;          // data packets per connection (1 = one request, no keepalive; 0 = SYN then RST)
  clients: number;           // distinct client addresses (100.64.0.0/10 onwards)
  zipf: number;              // Service popularity exponent; 0 = uniform
  seed: number;
  scheduler?: string;        // (rr)
  record?: number;           // record the first `record` decisions (for checks)
}

export interface CostModel { name: string; ns: (walkRules: number) => number; measured: boolean }

export interface EngineResult {
  connections: number; packets: number; simSeconds: number;
  wallMs: number; wasmMs: number; writeMs: number; setupMs: number;
  nsPerConn: number; wasmNsPerPacket: number;
  forwarded: number; dropped: Record<string, number>; liveAtEnd: number; tableCapacity: number;
  perService: Uint32Array;   // new connections per Service
  decisions: { svc: number; caddr: number; cport: number; daddr: number; dport: number }[];
}

export function rng(seed: number): () => number {
  let a = seed >>> 0 || 1;
  return () => { a = (a + 0x6d2b79f5) >>> 0; let t = a; t = Math.imul(t ^ (t >>> 15), t | 1); t ^= t + Math.imul(t ^ (t >>> 7), t | 61); return ((t ^ (t >>> 14)) >>> 0) / 4294967296; };
}

const ipStr = (a: number) => `${a >>> 24}.${(a >>> 16) & 255}.${(a >>> 8) & 255}.${a & 255}`;
const SYN = 2, RST = 4, PSH = 8, ACK = 16;
const PKT = 40, TICK_MS = 1, BATCH = 512;

/** Loads the Services into a fresh Core (one per run: each Core is its own instance and tables). */
export async function loadCore(services: SimService[], capacity: number, scheduler = "rr"): Promise<{ core: Core; ids: Int32Array }> {
  const core = await Core.load({ debug: false, connCapacity: capacity });
  const ids = new Int32Array(services.length);
  services.forEach((s, i) => {
    ids[i] = core.addService({ proto: "tcp", addr: ipStr(s.vip), port: s.port, scheduler });
    for (const [a, p] of s.endpoints) core.addDest(ids[i], { addr: ipStr(a), port: p, fwd: "masq" });
  });
  return { core, ids };
}

export async function runEngine(services: SimService[], t: TrafficSpec): Promise<EngineResult> {
  const setup0 = performance.now();
  const r = rng(t.seed);
  const maxLenMs = Math.max(1, t.meanLengthMs * 20);
  // live entries ≈ rate × (length + the state's timeout after the RST: CLOSE 10 s after an ACK; without
  // one the entry stays in SYN_RECV, 60 s, as the kernel's table ignores a client RST there)
  const liveEst = t.rate * ((t.meanLengthMs + (t.requests > 0 ? 10_000 : 60_000)) / 1000);
  let cap = 1 << 14;
  while (cap < liveEst * 1.25 && cap < 1 << 23) cap <<= 1;
  const { core, ids } = await loadCore(services, cap, t.scheduler ?? "rr");
  const batch = new PacketBatch(core, { maxPackets: BATCH, maxBytes: BATCH * PKT, align: 8 });
  for (let k = 0; k < BATCH; k++) batch.setDescriptor(k, k * PKT, PKT, 0);
  resetPacketCounters(core);
  const x = core.x;
  const data = batch.data, desc = batch.desc;

  // Service popularity: cumulative weights for Zipf, or uniform
  const S = services.length;
  let cdf: Float64Array | null = null;
  if (t.zipf > 0) {
    cdf = new Float64Array(S);
    let acc = 0;
    for (let i = 0; i < S; i++) { acc += 1 / Math.pow(i + 1, t.zipf); cdf[i] = acc; }
    for (let i = 0; i < S; i++) cdf[i] /= acc;
  }
  const pickSvc = () => {
    const u = r();
    if (!cdf) return Math.min(S - 1, Math.floor(u * S));
    let lo = 0, hi = S - 1;
    while (lo < hi) { const m = (lo + hi) >> 1; if (cdf[m] < u) lo = m + 1; else hi = m; }
    return lo;
  };
  const vip = Uint32Array.from(services, (s) => s.vip), vport = Uint16Array.from(services, (s) => s.port);

  // connection slots
  const slots = 1 << 20;
  const sCaddr = new Uint32Array(slots), sCport = new Uint16Array(slots), sSvc = new Int32Array(slots), sLeft = new Int32Array(slots);
  const free: number[] = [];
  let nextSlot = 0;
  const sportNext = new Uint16Array(t.clients).fill(1024);
  // event ring: per tick, a list of (slot << 2 | kind); kind 0 = data, 1 = RST
  const ringLen = Math.ceil(maxLenMs / TICK_MS) + 2;
  const ring: Int32Array[] = Array.from({ length: ringLen }, () => new Int32Array(16));
  const ringN = new Int32Array(ringLen);
  const push = (tick: number, v: number) => {
    const b = tick % ringLen;
    if (ringN[b] === ring[b].length) { const g = new Int32Array(ring[b].length * 2); g.set(ring[b]); ring[b] = g; }
    ring[b][ringN[b]++] = v;
  };

  const perService = new Uint32Array(S);
  const decisions: EngineResult["decisions"] = [];
  const recordN = t.record ?? 0;
  let u8 = core.u8;
  let n = 0, packets = 0, wasmMs = 0, now = 0;
  // per batch slot: which connection (for recorded SYNs), -1 otherwise
  const recSlot = new Int32Array(BATCH).fill(-1);
  const flush = () => {
    if (!n) return;
    const t0 = performance.now();
    x.processBatch(n, now);
    wasmMs += performance.now() - t0;
    if (recordN && decisions.length < recordN) {
      const dv = core.dv;
      for (let k = 0; k < n; k++) if (recSlot[k] >= 0) {
        const s = recSlot[k], p = data + k * PKT;
        if (dv.getUint8(desc + k * DESC_SIZE + 16) === 1 && decisions.length < recordN)
          decisions.push({ svc: sSvc[s], caddr: sCaddr[s], cport: sCport[s], daddr: dv.getUint32(p + 16, false), dport: dv.getUint16(p + 22, false) });
        recSlot[k] = -1;
      }
    }
    packets += n;
    n = 0;
    u8 = core.u8;
  };
  // Constant bytes are written once per batch slot; per packet only what differs (and what the data
  // plane's NAT rewrote in place: TTL, addresses, ports, both checksums) is written again.
  const bswap = (v: number) => (((v >>> 24) | ((v >>> 8) & 0xff00) | ((v << 8) & 0xff0000) | (v << 24)) >>> 0);
  const vipLE = Uint32Array.from(vip, bswap);
  const portBE = Uint16Array.from(vport, (p) => ((p >>> 8) | (p << 8)) & 0xffff);
  const slotCaddrLE = new Uint32Array(slots), slotCportBE = new Uint16Array(slots);
  let u32 = new Uint32Array(x.memory.buffer), u16 = new Uint16Array(x.memory.buffer);
  for (let k = 0; k < BATCH; k++) {
    const p = data + k * PKT;
    u8.fill(0, p, p + PKT);
    u8[p] = 0x45; u8[p + 3] = 40; u8[p + 6] = 0x40; u8[p + 9] = 6; u8[p + 27] = 1; u8[p + 32] = 0x50; u8[p + 34] = 0xff; u8[p + 35] = 0xff;
  }
  const emit = (slot: number, flags: number, rec: boolean) => {
    if (n === BATCH) { flush(); if (u32.buffer !== x.memory.buffer) { u32 = new Uint32Array(x.memory.buffer); u16 = new Uint16Array(x.memory.buffer); } }
    const p = data + n * PKT;
    const src = sCaddr[slot], svc = sSvc[slot], dst = vip[svc];
    u8[p + 8] = 64;
    let c = 0x4500 + 40 + 0x4000 + 0x4006 + (src >>> 16) + (src & 0xffff) + (dst >>> 16) + (dst & 0xffff);
    c = (c & 0xffff) + (c >>> 16); c = (c & 0xffff) + (c >>> 16);
    c = ~c & 0xffff;
    u16[(p + 10) >>> 1] = ((c >>> 8) | (c << 8)) & 0xffff;
    u32[(p + 12) >>> 2] = slotCaddrLE[slot];
    u32[(p + 16) >>> 2] = vipLE[svc];
    u16[(p + 20) >>> 1] = slotCportBE[slot];
    u16[(p + 22) >>> 1] = portBE[svc];
    u8[p + 33] = flags;
    if (rec) recSlot[n] = slot;
    n++;
  };
  const setupMs = performance.now() - setup0;

  const w0 = performance.now();
  let made = 0, tick = 0, nextArrival = 0;
  const meanGapMs = 1000 / t.rate;
  while (made < t.connections || nextSlot - free.length > 0) {
    now = tick * TICK_MS;
    // due events of this tick
    const b = tick % ringLen, list = ring[b], cnt = ringN[b];
    ringN[b] = 0;
    for (let i = 0; i < cnt; i++) {
      const v = list[i], slot = v >>> 2;
      if ((v & 3) === 1) { emit(slot, RST | ACK, false); free.push(slot); }
      else emit(slot, PSH | ACK, false);
    }
    // arrivals of this tick
    while (made < t.connections && nextArrival < now + TICK_MS) {
      const slot = free.length ? free.pop()! : nextSlot++;
      if (slot >= slots) throw new Error(`more than ${slots} connections open at once: lower the rate or the length`);
      const cl = Math.floor(r() * t.clients);
      const svc = pickSvc();
      sCaddr[slot] = (0x64400000 + cl) >>> 0;
      let sp = sportNext[cl]; sportNext[cl] = sp === 65535 ? 1024 : sp + 1;
      sCport[slot] = sp; sSvc[slot] = svc; perService[svc]++;
      slotCaddrLE[slot] = bswap(sCaddr[slot]); slotCportBE[slot] = ((sp >>> 8) | (sp << 8)) & 0xffff;
      emit(slot, SYN, made < recordN);
      if (t.requests > 0) emit(slot, ACK, false);        // no data: SYN then RST, as the benchmark's connector
      const len = Math.min(maxLenMs, -Math.log(1 - r()) * t.meanLengthMs);
      const lenTicks = Math.max(1, Math.round(len / TICK_MS));
      for (let q = 1; q <= t.requests; q++) push(tick + Math.max(0, Math.floor((lenTicks * q) / (t.requests + 1))), slot << 2);
      push(tick + lenTicks, (slot << 2) | 1);
      made++;
      nextArrival += -Math.log(1 - r()) * meanGapMs;
    }
    flush();
    if ((tick & 63) === 0) x.advance(now);
    tick++;
    if (made >= t.connections && nextSlot - free.length === 0) break;
  }
  flush();
  const wallMs = performance.now() - w0;
  const pc = packetCounters(core);
  void ids;
  return {
    connections: made, packets, simSeconds: tick * TICK_MS / 1000, wallMs, wasmMs, writeMs: wallMs - wasmMs, setupMs,
    nsPerConn: (wallMs * 1e6) / made, wasmNsPerPacket: (wasmMs * 1e6) / packets,
    forwarded: pc.verdicts["forward"] ?? 0, dropped: pc.drops, liveAtEnd: core.connStats().live, tableCapacity: cap,
    perService, decisions,
  };
}

/** The data plane's cost per new connection alone: batches of SYNs (SYN → schedule → NAT) to random
 * Services, on a fresh Core, timed around processBatch. */
export async function synCost(services: SimService[], conns: number, seed = 7): Promise<{ nsPerSyn: number; forwarded: number; conns: number }> {
  let cap = 1 << 14;
  while (cap < conns * 2 && cap < 1 << 22) cap <<= 1;
  const { core } = await loadCore(services, cap);
  const batch = new PacketBatch(core, { maxPackets: BATCH, maxBytes: BATCH * PKT });
  for (let k = 0; k < BATCH; k++) batch.setDescriptor(k, k * PKT, PKT, 0);
  resetPacketCounters(core);
  const r = rng(seed);
  const data = batch.data;
  let ms = 0, done = 0;
  while (done < conns) {
    const m = Math.min(BATCH, conns - done);
    const u8 = core.u8;
    for (let k = 0; k < m; k++) {
      const s = services[Math.floor(r() * services.length)], i = done + k;
      const src = (0x64400000 + (i >>> 14)) >>> 0, sp = 1024 + (i & 16383), p = data + k * PKT;
      u8.fill(0, p, p + PKT);
      u8[p] = 0x45; u8[p + 3] = 40; u8[p + 6] = 0x40; u8[p + 8] = 64; u8[p + 9] = 6;
      for (let b = 0; b < 4; b++) { u8[p + 12 + b] = (src >>> (24 - 8 * b)) & 255; u8[p + 16 + b] = (s.vip >>> (24 - 8 * b)) & 255; }
      let c = 0x4500 + 40 + 0x4000 + 0x4006 + (src >>> 16) + (src & 0xffff) + (s.vip >>> 16) + (s.vip & 0xffff);
      c = (c & 0xffff) + (c >>> 16); c = (c & 0xffff) + (c >>> 16); c = ~c & 0xffff;
      u8[p + 10] = c >>> 8; u8[p + 11] = c & 255;
      u8[p + 20] = sp >>> 8; u8[p + 21] = sp & 255; u8[p + 22] = s.port >>> 8; u8[p + 23] = s.port & 255;
      u8[p + 27] = 1; u8[p + 32] = 0x50; u8[p + 33] = SYN; u8[p + 34] = 0xff; u8[p + 35] = 0xff;
    }
    const t0 = performance.now();
    core.x.processBatch(m, 1000);
    ms += performance.now() - t0;
    done += m;
  }
  return { nsPerSyn: (ms * 1e6) / conns, forwarded: packetCounters(core).verdicts["forward"] ?? 0, conns };
}
