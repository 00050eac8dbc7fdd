// The batch area and its exported surface (re-exported by assembly/index.ts).
//
// Layout, all little-endian, allocated once by batchInit(maxPackets, maxBytes):
//   descriptors: maxPackets x 32 bytes at batchDescPtr()
//     0  u32 offset of the packet in the data area (the IP header's first byte)   [host writes]
//     4  u32 length                                                                [host writes]
//     8  u32 direction: 0 client -> virtual service, 1 real server -> client        [host writes]
//    12  u32 fwmark (0: none)                                                      [host writes]
//    16  u8  verdict: 0 not ours, 1 forward, 2 drop                                [processBatch writes]
//    17  u8  drop reason (1..6 conn/in.ts, 16.. assembly/packet/path.ts)
//    18  u8  forwarding method of the connection (0 masq, 1 local, 2 tunnel, 3 route, 4 bypass, 5 fullnat; 255 none)
//    19  u8  flags: 1 the packet created its connection, 2 bytes rewritten
//    20  i32 connection index (-1 none)
//    24  i32 destination id (-1 none)
//    28  u16 offset of the L4 header (0 when not parsed that far)
//    30  u8  L4 protocol (or the IPv6 next header that stopped the parse)
//    31  u8  IP version
//   data: maxBytes at batchDataPtr(); packets are rewritten in place and never grow or shrink.
import {
  capacity as connCapacityNow,
  connInit as tableInit,
  connCount,
  loadChainBuckets,
  touchLoadedHeads,
  touchFreeEntries,
} from "../conn/table";
import { GROUP, pfB, pfClear, loadServiceBuckets, touchLoadedServices, touchDests } from "../prefetch";
import { V_DROP, setFwmarkTwins } from "../conn/in";
import {
  handlePacket,
  prefetchPacket,
  rReason,
  rConn,
  rDest,
  rFwd,
  rFlags,
  rL4,
  rProto,
  rVer,
  setTtlMode,
  ttlMode,
  R_BAD_DESCRIPTOR,
  R_LAST,
  FWD_NONE,
} from "./path";
import { pb, pl } from "./bytes";
import { fragmentsForwarded } from "./frag";

export const DESC_SIZE: i32 = 32;

// The lookup pre-pass (path.ts prefetchPacket): -1 auto (on from PREFETCH_AUTO_CONNS live connections,
// where the table no longer fits the caches), 0 off, 1 on.
const PREFETCH_AUTO_CONNS: u32 = 32768;
let prefetchMode: i32 = -1;
// A batch runs in steps of PACKET_STEP packets, each its pre-pass and then its packets, so that a line the
// pre-pass touched is used while still cached: the whole batch's pre-pass first (256 packets) left the
// lookups of the packets after it missing again on the bucket word and the entry they had touched (perf,
// 100k flows: 23 % and 54 % of lookupIn's samples at those two loads). Round 7, docs/conn-table.md: 64
// against the whole batch at 100k flows 1.02-1.03x the Mpps, both ways round; rounds 5's 32 and 48 did not
// hold. The simulator's batches (about 40 packets) are one step either way.
const PACKET_STEP: u32 = 64;
export function packetSetPrefetch(mode: i32): void {
  prefetchMode = mode;
}

let descBase: usize = 0;
let dataBase: usize = 0;
let maxPackets: u32 = 0;
let dataSize: u32 = 0;

const reasonCount = new StaticArray<u64>(64);
const verdictCount = new StaticArray<u64>(4);

// (Re)allocates the batch area; returns the descriptor pointer (0 if it cannot be had). Pointers change
// only here; memory may grow, so the host re-makes its views afterwards.
export function batchInit(packets: u32, bytes: u32): usize {
  if (descBase != 0) {
    heap.free(descBase);
    descBase = 0;
  }
  if (dataBase != 0) {
    heap.free(dataBase);
    dataBase = 0;
  }
  maxPackets = 0;
  dataSize = 0;
  if (packets == 0 || bytes == 0 || packets > 1 << 24 || bytes > 0x40000000) return 0;
  descBase = heap.alloc((<usize>packets) << 5);
  memory.fill(descBase, 0, (<usize>packets) << 5);
  dataBase = heap.alloc(<usize>bytes);
  memory.fill(dataBase, 0, <usize>bytes);
  maxPackets = packets;
  dataSize = bytes;
  return descBase;
}
export function batchDescPtr(): usize {
  return descBase;
}
export function batchDataPtr(): usize {
  return dataBase;
}
export function batchMaxPackets(): u32 {
  return maxPackets;
}
export function batchMaxBytes(): u32 {
  return dataSize;
}

// The lookup pre-pass for descriptors [g, g + m): each level of the lookups' chains one tight loop
// (assembly/prefetch.ts).
function prePass(g: u32, m: u32): void {
  for (let k: u32 = 0; k < m; k++) {
    const d = descBase + ((<usize>(g + k)) << 5);
    const off = load<u32>(d),
      len = load<u32>(d, 4);
    if (<u64>off + <u64>len > <u64>dataSize) {
      pfClear(k);
      continue;
    }
    pb = dataBase + <usize>off;
    pl = len;
    prefetchPacket(load<u32>(d, 8), k);
  }
  // the entries this step's SYNs (a Service bucket word filed) will take, beside the chains' misses
  let syns: u32 = 0;
  for (let k: u32 = 0; k < m; k++) if (unchecked(pfB[k]) != 0) syns++;
  if (syns != 0) touchFreeEntries(syns);
  // the connections' chains and the Services' side by side, level by level (round 9): a level of one waits
  // for its misses while the other's are in flight, where one after the other waited for each in turn
  loadChainBuckets(m);
  if (syns != 0) loadServiceBuckets(m);
  touchLoadedHeads(m);
  if (syns != 0) touchLoadedServices(m);
  touchDests(m);
}

// Runs descriptors [from, to).
@inline function runPackets(from: u32, to: u32, now: i64): void {
  const reasons = changetype<usize>(reasonCount);
  const verdicts = changetype<usize>(verdictCount);
  for (let i: u32 = from; i < to; i++) {
    const d = descBase + ((<usize>i) << 5);
    const off = load<u32>(d),
      len = load<u32>(d, 4),
      dir = load<u32>(d, 8),
      mark = load<u32>(d, 12);
    let v: i32;
    if (<u64>off + <u64>len > <u64>dataSize || dir > 1) {
      v = V_DROP;
      store<u64>(d, 0, 16);
      store<u32>(d, 0xffffffff, 20);
      store<u32>(d, 0xffffffff, 24);
      store<u8>(d, <u8>V_DROP, 16);
      store<u8>(d, <u8>R_BAD_DESCRIPTOR, 17);
      store<u8>(d, <u8>FWD_NONE, 18);
      store<u32>(d, 0, 28);
      const rp = reasons + ((<usize>R_BAD_DESCRIPTOR) << 3);
      store<u64>(rp, load<u64>(rp) + 1);
    } else {
      pb = dataBase + <usize>off;
      pl = len;
      v = handlePacket(dir, mark, now);
      store<u8>(d, <u8>v, 16);
      store<u8>(d, <u8>rReason, 17);
      store<u8>(d, <u8>rFwd, 18);
      store<u8>(d, <u8>rFlags, 19);
      store<i32>(d, rConn, 20);
      store<i32>(d, rDest, 24);
      store<u16>(d, <u16>rL4, 28);
      store<u8>(d, <u8>rProto, 30);
      store<u8>(d, <u8>rVer, 31);
      if (v == V_DROP) {
        const rp = reasons + ((<usize>(rReason & 63)) << 3);
        store<u64>(rp, load<u64>(rp) + 1);
      }
    }
    const vp = verdicts + ((<usize>v) << 3);
    store<u64>(vp, load<u64>(vp) + 1);
  }
}

// Runs descriptors [0, n) (n is clamped to the area). Returns the number processed.
export function processBatch(n: i32, nowMs: f64): i32 {
  if (connCapacityNow == 0) tableInit(65536);
  const now = <i64>nowMs;
  const cnt: u32 = n < 0 ? 0 : min(<u32>n, maxPackets);
  if (cnt < 8 || !(prefetchMode > 0 || (prefetchMode < 0 && connCount >= PREFETCH_AUTO_CONNS))) {
    runPackets(0, cnt, now);
    return <i32>cnt;
  }
  for (let g: u32 = 0; g < cnt; g += PACKET_STEP) {
    const m = min(PACKET_STEP, cnt - g);
    prePass(g, m);
    runPackets(g, g + m, now);
  }
  return <i32>cnt;
}

// Counters since the last reset: packetDropCount(reason) for drops by reason, packetVerdictCount(v)
// for verdicts (0 not ours, 1 forward, 2 drop). f64 so the host reads them without BigInt.
export function packetDropCount(reason: i32): f64 {
  if (reason < 0 || reason >= 64) return 0;
  return <f64>unchecked(reasonCount[reason]);
}
export function packetVerdictCount(v: i32): f64 {
  if (v < 0 || v >= 4) return 0;
  return <f64>unchecked(verdictCount[v]);
}
export function packetResetCounters(): void {
  for (let i = 0; i < 64; i++) unchecked((reasonCount[i] = 0));
  for (let i = 0; i < 4; i++) unchecked((verdictCount[i] = 0));
}
export function packetReasonLimit(): i32 {
  return R_LAST;
}

// 1: the kernel's TTL / hop-limit handling (default), 0: leave it alone.
// 1: a fwmark service's packets come through a netfilter queue beside the AF_PACKET tap (conn/in.ts)
export function packetSetFwmarkTwins(on: i32): void {
  setFwmarkTwins(on != 0);
}
export function packetSetTtlMode(mode: i32): void {
  setTtlMode(mode);
}
export function packetTtlMode(): i32 {
  return ttlMode;
}

// Later fragments forwarded by their first fragment's connection (frag.ts), since start.
export function packetFragmentCount(): f64 {
  return <f64>fragmentsForwarded;
}
