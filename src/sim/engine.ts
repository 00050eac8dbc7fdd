// The simulator's engine: synthetic traffic through the REAL WASM data plane (build/core.wasm via Core and
// the PacketBatch area), with every new connection also costed by the kernel modes' rule-matching models.
//
// Traffic (generated inside the core by assembly/sim/traffic.ts, driven through src/core/sim.ts): Poisson
// arrivals at `rate` new connections per simulated second; each connection goes to a Service drawn
// uniformly or by a Zipf law, from one of `clients` client addresses (each with its own source-port
// counter); it sends SYN, then the handshake's ACK, then `requests` data packets spread over its length
// (exponential, mean `meanLengthMs`; keepalive = several requests on one connection), and ends with an
// RST, as the benchmark's connector does. Packets are 40-byte IPv4/TCP written straight into the batch
// area and run through processBatch on a simulated clock in 1 ms ticks, so the data plane's connection
// table, timers and states are all real; the host makes one call per simulated second.
import { Core } from "../core/index.ts";
import { PacketBatch, packetCounters, resetPacketCounters } from "../core/packets.ts";
import { TrafficGenerator, type RecordedDecision } from "../core/sim.ts";
import { ntoa4 } from "../model/inet.ts";

export interface SimService {
  vip: number;
  port: number;
  endpoints: [number, number][];
  walkRules: number;
}

export interface TrafficSpec {
  connections: number;
  rate: number; // new connections per simulated second
  meanLengthMs: number; // mean connection length (exponential; capped at 20× the mean)
  requests: number; // data packets per connection (1 = one request, no keepalive; 0 = SYN then RST)
  clients: number; // distinct client addresses (100.64.0.0/10 onwards)
  zipf: number; // Service popularity exponent; 0 = uniform
  seed: number;
  scheduler?: string; // (rr)
  record?: number; // record the first `record` decisions (for checks)
  timeGenerator?: boolean; // also time the traffic generator alone (a second, dry pass)
}

export interface EngineResult {
  connections: number;
  packets: number;
  simSeconds: number;
  wallMs: number;
  setupMs: number; // wall: traffic generation + data plane, one core
  nsPerConn: number;
  nsPerPacket: number;
  generatorMs?: number; // the generator alone, same traffic (timeGenerator)
  forwarded: number;
  dropped: Record<string, number>;
  liveAtEnd: number;
  tableCapacity: number;
  openPeak: number;
  perService: Uint32Array; // new connections per Service
  decisions: RecordedDecision[];
}

function rng(seed: number): () => number {
  let a = seed >>> 0 || 1;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const SYN = 2;
const PKT = 40,
  BATCH = 512,
  TICKS_PER_CALL = 1000;

/** Loads the Services into a fresh Core (one per run: each Core is its own instance and tables); `wasm`:
 * another build's bytes instead of build/core.wasm (bench/scaling/ab.ts compares two). */
export async function loadCore(
  services: SimService[],
  capacity: number,
  scheduler = "rr",
  wasm?: BufferSource,
): Promise<{ core: Core; ids: Int32Array }> {
  const core = wasm ? await Core.fromBytes(wasm, capacity) : await Core.load({ debug: false, connCapacity: capacity });
  const ids = new Int32Array(services.length);
  services.forEach((s, i) => {
    ids[i] = core.addService({ proto: "tcp", addr: ntoa4(s.vip), port: s.port, scheduler });
    for (const [a, p] of s.endpoints) core.addDest(ids[i], { addr: ntoa4(a), port: p, fwd: "masq" });
  });
  return { core, ids };
}

/** A Core loaded with the Services, its table sized for the traffic, and the generator set up on it. */
export async function startTraffic(
  services: SimService[],
  t: TrafficSpec,
  wasm?: BufferSource,
): Promise<{ core: Core; batch: PacketBatch; gen: TrafficGenerator; cap: number }> {
  // live entries ≈ rate × (length + the state's timeout after the RST: CLOSE 10 s after an ACK; without
  // one the entry stays in SYN_RECV, 60 s, as the kernel's table ignores a client RST there)
  const liveEst = t.rate * ((t.meanLengthMs + (t.requests > 0 ? 10_000 : 60_000)) / 1000);
  let cap = 1 << 14;
  while (cap < liveEst * 1.25 && cap < 1 << 23) cap <<= 1;
  const { core } = await loadCore(services, cap, t.scheduler ?? "rr", wasm);
  const batch = new PacketBatch(core, { maxPackets: BATCH, maxBytes: BATCH * PKT, align: 8 });
  resetPacketCounters(core);
  const gen = new TrafficGenerator(core, batch, services, { ...t, record: t.record ?? 0 });
  return { core, batch, gen, cap };
}

export async function runEngine(services: SimService[], t: TrafficSpec): Promise<EngineResult> {
  const setup0 = performance.now();
  const { core, batch, gen, cap } = await startTraffic(services, t);
  const setupMs = performance.now() - setup0;

  const w0 = performance.now();
  while (!gen.run(TICKS_PER_CALL));
  const wallMs = performance.now() - w0;
  const made = gen.made,
    packets = gen.packets,
    ticks = gen.ticks,
    openPeak = gen.openPeak;
  const perService = gen.perService(),
    decisions = gen.decisions();
  const pc = packetCounters(core);
  const liveAtEnd = core.connStats().live;

  let generatorMs: number | undefined;
  if (t.timeGenerator) {
    // the same traffic again without the data plane: what producing the packets costs by itself
    const dry = new TrafficGenerator(core, batch, services, { ...t, record: 0 });
    const g0 = performance.now();
    while (!dry.run(TICKS_PER_CALL, true));
    generatorMs = performance.now() - g0;
  }
  return {
    connections: made,
    packets,
    simSeconds: ticks / 1000,
    wallMs,
    setupMs,
    generatorMs,
    nsPerConn: (wallMs * 1e6) / made,
    nsPerPacket: (wallMs * 1e6) / packets,
    forwarded: pc.verdicts.forward ?? 0,
    dropped: pc.drops,
    liveAtEnd,
    tableCapacity: cap,
    openPeak,
    perService,
    decisions,
  };
}

/** The data plane's cost per new connection alone: batches of SYNs (SYN → schedule → NAT) to random
 * Services, on a fresh Core, timed around processBatch. */
export async function synCost(
  services: SimService[],
  conns: number,
  seed = 7,
): Promise<{ nsPerSyn: number; forwarded: number; conns: number }> {
  let cap = 1 << 14;
  while (cap < conns * 2 && cap < 1 << 22) cap <<= 1;
  const { core } = await loadCore(services, cap);
  const batch = new PacketBatch(core, { maxPackets: BATCH, maxBytes: BATCH * PKT });
  for (let k = 0; k < BATCH; k++) batch.setDescriptor(k, k * PKT, PKT, 0);
  resetPacketCounters(core);
  const r = rng(seed);
  const time = { wasmNs: 0 };
  let done = 0;
  // the SYNs are written in place into the batch's data area (PacketBatch.cycle), timed around the run alone
  const fill = (memory: ArrayBuffer, _desc: number, data: number) => {
    const m = Math.min(BATCH, conns - done),
      u8 = new Uint8Array(memory);
    for (let k = 0; k < m; k++) {
      const s = services[Math.floor(r() * services.length)],
        i = done + k;
      writeSyn(u8, data + k * PKT, (0x64400000 + (i >>> 14)) >>> 0, 1024 + (i & 16383), s.vip, s.port);
    }
    return m;
  };
  while (done < conns) done += batch.cycle(fill, () => {}, 1000, time);
  return { nsPerSyn: time.wasmNs / conns, forwarded: packetCounters(core).verdicts.forward ?? 0, conns };
}

// A 40-byte IPv4 TCP SYN from src:sport to dst:dport at u8[p] (checksummed IP header; TCP checksum 0).
function writeSyn(u8: Uint8Array, p: number, src: number, sport: number, dst: number, dport: number): void {
  u8.fill(0, p, p + PKT);
  u8[p] = 0x45;
  u8[p + 3] = 40;
  u8[p + 6] = 0x40;
  u8[p + 8] = 64;
  u8[p + 9] = 6;
  for (let b = 0; b < 4; b++) {
    u8[p + 12 + b] = (src >>> (24 - 8 * b)) & 255;
    u8[p + 16 + b] = (dst >>> (24 - 8 * b)) & 255;
  }
  let c = 0x4500 + 40 + 0x4000 + 0x4006 + (src >>> 16) + (src & 0xffff) + (dst >>> 16) + (dst & 0xffff);
  c = (c & 0xffff) + (c >>> 16);
  c = (c & 0xffff) + (c >>> 16);
  c = ~c & 0xffff;
  u8[p + 10] = c >>> 8;
  u8[p + 11] = c & 255;
  u8[p + 20] = sport >>> 8;
  u8[p + 21] = sport & 255;
  u8[p + 22] = dport >>> 8;
  u8[p + 23] = dport & 255;
  u8[p + 27] = 1;
  u8[p + 32] = 0x50;
  u8[p + 33] = SYN;
  u8[p + 34] = 0xff;
  u8[p + 35] = 0xff;
}
