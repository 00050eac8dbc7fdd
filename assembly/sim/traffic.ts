// The simulator's traffic generator (src/sim/engine.ts drives it through src/core/sim.ts).
//
// Poisson arrivals of new TCP connections at `rate` per simulated second, each to a Service drawn
// uniformly or by a Zipf law, from one of `clients` client addresses (100.64.0.0/10 onwards, each with its
// own source-port counter). A connection sends SYN, then the handshake's ACK, then `requests` data
// packets spread over its length (exponential, capped at 20x the mean), and ends with an RST; with
// requests = 0 it sends SYN then RST, as the benchmark's connector does.
//
// Why here and not in the host: writing each 40-byte packet from JS cost more than the data plane itself.
// The generator writes packets straight into the batch area (packet/exports.ts) and runs processBatch on
// a simulated clock in 1 ms ticks, so the connection table, its states and timers and the schedulers are
// the real ones, fed exactly as the host would feed them; the host makes one call per run of ticks.
// Everything is allocated once by simInit; nothing per packet or per connection.
import { processBatch, batchDescPtr, batchDataPtr, batchMaxPackets, batchMaxBytes } from "../packet/exports";
import { runClock } from "../clock";

const PKT: u32 = 40; // IPv4 (20) + TCP (20), no options
const CLOCK_EVERY: i64 = 64; // ticks between clock steps (expiry, scheduler timers)
const F_SYN: u32 = 2,
  F_RST: u32 = 4,
  F_PSH: u32 = 8,
  F_ACK: u32 = 16;
const CLIENT_BASE: u32 = 0x64400000; // 100.64.0.0
const SPORT_FIRST: u32 = 1024;

// per open connection ("slot"), 32 bytes
const SL_CADDR: usize = 0; // u32 host order
const SL_CPORT: usize = 4; // u32
const SL_SVC: usize = 8; // u32 index into the Service arrays
const SL_NEXT: usize = 12; // u32 slot+1: the next connection filed under the same tick
const SL_START: usize = 16; // i64 tick of the SYN
const SL_LEN: usize = 24; // u32 length in ticks (>= 1)
const SL_Q: usize = 28; // u32 the next event: 1..requests = data packet q, requests+1 = the RST
const SLOT_SHIFT: u32 = 5;

const REC_BYTES: usize = 20; // svc, caddr, cport, daddr, dport as u32 (host order)

// simRun results
export const SIM_MORE: i32 = 0;
export const SIM_DONE: i32 = 1;
export const SIM_E_SLOTS: i32 = -1; // more connections open at once than slots
export const SIM_E_NOT_READY: i32 = -2; // simInit not called, or the batch area changed since

let block: usize = 0; // the one allocation everything below lives in

// configuration
let nSvc: u32 = 0;
let svcVip: usize = 0,
  svcPort: usize = 0,
  perSvc: usize = 0,
  cdf: usize = 0;
let total: u64 = 0;
let requests: u32 = 0;
let nClients: u32 = 1;
let meanLen: f64 = 0,
  maxLen: f64 = 0,
  meanGap: f64 = 0;
let nSlots: u32 = 0;
let slots: usize = 0,
  freeStack: usize = 0;
let ringLen: u32 = 0;
let ringHead: usize = 0,
  ringTail: usize = 0;
let sportNext: usize = 0;
let recMax: u32 = 0;
let recArea: usize = 0,
  recSlot: usize = 0;

// the batch area as simInit found it
let desc: usize = 0,
  data: usize = 0,
  batchN: u32 = 0;

// progress
let rs: u32 = 1; // mulberry32 state
let made: u64 = 0,
  packets: u64 = 0;
let tick: i64 = 0;
let nextArrival: f64 = 0;
let freeTop: u32 = 0,
  nextSlot: u32 = 0,
  openNow: u32 = 0,
  openPeak: u32 = 0;
let n: u32 = 0; // packets in the batch
let recCount: u32 = 0,
  recPending: u32 = 0;
let dry = false;
let finished = false;

// mulberry32: the same stream as src/sim/engine.ts's rng(seed) had in JS
@inline function rnd(): f64 {
  rs += 0x6d2b79f5;
  let t = rs;
  t = (t ^ (t >>> 15)) * (t | 1);
  t ^= t + (t ^ (t >>> 7)) * (t | 61);
  return <f64>(t ^ (t >>> 14)) / 4294967296.0;
}
@inline function expo(mean: f64): f64 {
  return -Math.log(1 - rnd()) * mean;
}

@inline function slotAt(i: u32): usize {
  return slots + ((<usize>i) << SLOT_SHIFT);
}

function pickService(): u32 {
  const u = rnd();
  if (cdf == 0) return min(nSvc - 1, <u32>Math.floor(u * <f64>nSvc));
  let lo: u32 = 0,
    hi: u32 = nSvc - 1;
  while (lo < hi) {
    const m = (lo + hi) >>> 1;
    if (load<f64>(cdf + ((<usize>m) << 3)) < u) lo = m + 1;
    else hi = m;
  }
  return lo;
}

// Zipf popularity: the cumulative distribution over the services, normalised to end at 1.
function fillZipfCdf(services: u32, zipf: f64): void {
  let acc: f64 = 0;
  for (let i: u32 = 0; i < services; i++) {
    acc += 1 / Math.pow(<f64>(i + 1), zipf);
    store<f64>(cdf + ((<usize>i) << 3), acc);
  }
  for (let i: u32 = 0; i < services; i++) store<f64>(cdf + ((<usize>i) << 3), load<f64>(cdf + ((<usize>i) << 3)) / acc);
}

// A run's counters, clock and free lists back to zero.
function resetRun(): void {
  made = 0;
  packets = 0;
  tick = 0;
  nextArrival = 0;
  freeTop = 0;
  nextSlot = 0;
  openNow = 0;
  openPeak = 0;
  n = 0;
  recCount = 0;
  recPending = 0;
}

// Each batch position keeps one packet's constant bytes; per packet only what differs, and what the
// NAT rewrite changed in place, is written again.
function primeBatch(): void {
  for (let k: u32 = 0; k < batchN; k++) {
    const d = desc + ((<usize>k) << 5);
    store<u32>(d, k * PKT);
    store<u32>(d, PKT, 4);
    store<u32>(d, 0, 8);
    store<u32>(d, 0, 12);
    const p = data + <usize>k * PKT;
    memory.fill(p, 0, PKT);
    store<u8>(p, 0x45);
    store<u8>(p, <u8>PKT, 3);
    store<u8>(p, 0x40, 6);
    store<u8>(p, 6, 9);
    store<u8>(p, 1, 27);
    store<u8>(p, 0x50, 32);
    store<u16>(p, 0xffff, 34);
  }
}

// Sets up a run: the batch area (which must hold at least 8 packets of 40 bytes) becomes the generator's,
// and the Service arrays are allocated for the host to fill (vip u32 at the returned pointer, port u32
// at pointer + 4 x services, both host order). Returns 0 when an argument is out of range.
export function simInit(
  services: u32,
  connections: f64,
  rate: f64,
  meanLengthMs: f64,
  reqs: u32,
  clients: u32,
  zipf: f64,
  seed: u32,
  record: u32,
  slotCount: u32,
): usize {
  if (block != 0) {
    heap.free(block);
    block = 0;
  }
  nSvc = 0;
  finished = false;
  batchN = min(batchMaxPackets(), batchMaxBytes() / PKT);
  if (
    batchN < 8 ||
    services == 0 ||
    services > 1 << 24 ||
    !(connections >= 0 && connections <= 1e15) ||
    !(rate > 0) ||
    !(meanLengthMs >= 0 && meanLengthMs <= 3.6e6) ||
    reqs > 1000000 ||
    clients == 0 ||
    clients > 1 << 22 ||
    !(zipf >= 0) ||
    record > 1 << 24 ||
    slotCount == 0 ||
    slotCount > 1 << 24
  )
    return 0;
  desc = batchDescPtr();
  data = batchDataPtr();

  maxLen = max(1.0, meanLengthMs * 20);
  ringLen = <u32>Math.ceil(maxLen) + 2;
  const cdfBytes: usize = zipf > 0 ? (<usize>services) << 3 : 0;
  let size: usize = cdfBytes;
  const oVip = size;
  size += (<usize>services) << 2;
  const oPort = size;
  size += (<usize>services) << 2;
  const oPer = size;
  size += (<usize>services) << 2;
  size = (size + 7) & ~7;
  const oSlots = size;
  size += (<usize>slotCount) << SLOT_SHIFT;
  const oFree = size;
  size += (<usize>slotCount) << 2;
  const oHead = size;
  size += (<usize>ringLen) << 2;
  const oTail = size;
  size += (<usize>ringLen) << 2;
  const oSport = size;
  size += (<usize>clients) << 2;
  const oRec = size;
  size += <usize>record * REC_BYTES;
  const oRecSlot = size;
  size += (<usize>batchN) << 2;
  block = heap.alloc(size);
  memory.fill(block, 0, size);

  nSvc = services;
  cdf = cdfBytes ? block : 0;
  svcVip = block + oVip;
  svcPort = block + oPort;
  perSvc = block + oPer;
  slots = block + oSlots;
  freeStack = block + oFree;
  nSlots = slotCount;
  ringHead = block + oHead;
  ringTail = block + oTail;
  sportNext = block + oSport;
  nClients = clients;
  recArea = block + oRec;
  recSlot = block + oRecSlot;
  recMax = record;
  for (let c: u32 = 0; c < clients; c++) store<u32>(sportNext + ((<usize>c) << 2), SPORT_FIRST);
  for (let k: u32 = 0; k < batchN; k++) store<i32>(recSlot + ((<usize>k) << 2), -1);
  if (cdf) fillZipfCdf(services, zipf);

  total = <u64>connections;
  requests = reqs;
  meanLen = meanLengthMs;
  meanGap = 1000 / rate;
  rs = seed != 0 ? seed : 1;
  resetRun();
  primeBatch();
  return svcVip;
}

function flush(): void {
  if (n == 0) return;
  if (!dry) processBatch(<i32>n, <f64>tick);
  if (recPending) {
    for (let k: u32 = 0; k < n; k++) {
      const rp = recSlot + ((<usize>k) << 2);
      const s = load<i32>(rp);
      if (s < 0) continue;
      store<i32>(rp, -1);
      recPending--;
      if (dry || load<u8>(desc + ((<usize>k) << 5), 16) != 1 || recCount >= recMax) continue;
      const e = slotAt(<u32>s),
        p = data + <usize>k * PKT,
        r = recArea + <usize>recCount * REC_BYTES;
      store<u32>(r, load<u32>(e, SL_SVC));
      store<u32>(r, load<u32>(e, SL_CADDR), 4);
      store<u32>(r, load<u32>(e, SL_CPORT), 8);
      store<u32>(r, bswap<u32>(load<u32>(p, 16)), 12);
      store<u32>(r, <u32>bswap<u16>(load<u16>(p, 22)), 16);
      recCount++;
    }
  }
  packets += n;
  n = 0;
}

function emit(slot: u32, flags: u32, rec: bool): void {
  if (n == batchN) flush();
  const e = slotAt(slot);
  const p = data + <usize>n * PKT;
  const src = load<u32>(e, SL_CADDR),
    svc = <usize>load<u32>(e, SL_SVC);
  const dst = load<u32>(svcVip + (svc << 2));
  let c: u32 = 0x4500 + PKT + 0x4000 + 0x4006 + (src >>> 16) + (src & 0xffff) + (dst >>> 16) + (dst & 0xffff);
  c = (c & 0xffff) + (c >>> 16);
  c = (c & 0xffff) + (c >>> 16);
  store<u8>(p, 64, 8);
  store<u16>(p, bswap<u16>(<u16>~c), 10);
  store<u32>(p, bswap<u32>(src), 12);
  store<u32>(p, bswap<u32>(dst), 16);
  store<u16>(p, bswap<u16>(<u16>load<u32>(e, SL_CPORT)), 20);
  store<u16>(p, bswap<u16>(<u16>load<u32>(svcPort + (svc << 2))), 22);
  store<u8>(p, <u8>flags, 33);
  store<u16>(p, 0, 36); // the TCP checksum (not verified; the NAT rewrite adjusts whatever is there)
  if (rec) {
    store<i32>(recSlot + ((<usize>n) << 2), <i32>slot);
    recPending++;
  }
  n++;
}

// Emits every event of connection `slot` due at the current tick, then files the next one under its tick
// (or frees the slot after the RST).
function runDue(slot: u32): void {
  const e = slotAt(slot);
  const len = load<u32>(e, SL_LEN);
  const start = load<i64>(e, SL_START);
  while (true) {
    const q = load<u32>(e, SL_Q);
    const at = start + (q <= requests ? <i64>((<u64>len * q) / <u64>(requests + 1)) : <i64>len);
    if (at > tick) {
      const b = (<usize>(<u64>at % <u64>ringLen)) << 2;
      store<u32>(e, 0, SL_NEXT);
      const tail = load<u32>(ringTail + b);
      if (tail) store<u32>(slotAt(tail - 1), slot + 1, SL_NEXT);
      else store<u32>(ringHead + b, slot + 1);
      store<u32>(ringTail + b, slot + 1);
      return;
    }
    if (q <= requests) {
      emit(slot, F_PSH | F_ACK, false);
      store<u32>(e, q + 1, SL_Q);
    } else {
      emit(slot, F_RST | F_ACK, false);
      store<u32>(freeStack + ((<usize>freeTop) << 2), slot);
      freeTop++;
      openNow--;
      return;
    }
  }
}

// Runs up to maxTicks ticks of simulated time. dry = generate the packets but do not run them (what the
// generator alone costs). Returns SIM_DONE once every connection has ended, SIM_MORE, or an error.
export function simRun(maxTicks: i32, dryRun: bool): i32 {
  if (block == 0 || batchDescPtr() != desc || batchDataPtr() != data) return SIM_E_NOT_READY;
  if (finished) return SIM_DONE;
  dry = dryRun;
  for (let left = maxTicks; left > 0; left--) {
    const now = <f64>tick;
    // due events of this tick, in the order they were filed
    const b = (<usize>(<u64>tick % <u64>ringLen)) << 2;
    let s = load<u32>(ringHead + b);
    store<u32>(ringHead + b, 0);
    store<u32>(ringTail + b, 0);
    while (s != 0) {
      const next = load<u32>(slotAt(s - 1), SL_NEXT);
      runDue(s - 1);
      s = next;
    }
    // arrivals of this tick
    while (made < total && nextArrival < now + 1) {
      let slot: u32;
      if (freeTop) {
        freeTop--;
        slot = load<u32>(freeStack + ((<usize>freeTop) << 2));
      } else {
        if (nextSlot >= nSlots) {
          flush();
          return SIM_E_SLOTS;
        }
        slot = nextSlot++;
      }
      openNow++;
      if (openNow > openPeak) openPeak = openNow;
      const e = slotAt(slot);
      const cl = <u32>Math.floor(rnd() * <f64>nClients);
      const svc = pickService();
      const sp = sportNext + ((<usize>cl) << 2);
      const port = load<u32>(sp);
      store<u32>(sp, port == 65535 ? SPORT_FIRST : port + 1);
      store<u32>(e, CLIENT_BASE + cl, SL_CADDR);
      store<u32>(e, port, SL_CPORT);
      store<u32>(e, svc, SL_SVC);
      const pc = perSvc + ((<usize>svc) << 2);
      store<u32>(pc, load<u32>(pc) + 1);
      emit(slot, F_SYN, made < <u64>recMax);
      if (requests > 0) emit(slot, F_ACK, false);
      const len = min(maxLen, expo(meanLen));
      store<i64>(e, tick, SL_START);
      store<u32>(e, <u32>max(1.0, Math.round(len)), SL_LEN);
      store<u32>(e, 1, SL_Q);
      runDue(slot);
      made++;
      nextArrival += expo(meanGap);
    }
    flush();
    if (!dry && tick % CLOCK_EVERY == 0) runClock(tick);
    tick++;
    if (made >= total && openNow == 0) {
      finished = true;
      return SIM_DONE;
    }
  }
  return SIM_MORE;
}

export function simMade(): f64 {
  return <f64>made;
}
export function simPackets(): f64 {
  return <f64>packets;
}
export function simTicks(): f64 {
  return <f64>tick;
}
export function simOpenPeak(): u32 {
  return openPeak;
}
// new connections per Service (u32 x services), and the recorded decisions (REC_BYTES each)
export function simPerServicePtr(): usize {
  return perSvc;
}
export function simRecordPtr(): usize {
  return recArea;
}
export function simRecorded(): u32 {
  return recCount;
}
