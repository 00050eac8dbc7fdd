// Staged touches for the batch pre-passes (packet/exports.ts before a batch, conn/table.ts before a wheel
// slot is expired). WASM has no prefetch instruction, so a touch is a real load whose value is summed
// into a sink. A load that misses holds its place in the CPU's reorder window until it returns, so a
// pre-pass that follows one packet's whole chain (bucket, entry, destination, Service, scheduler) before
// starting the next keeps only a few misses in flight. Here each level of the chain is its own tight loop
// over a group of up to GROUP items, which keeps many independent misses in flight at every level (group
// prefetching). The scratch arrays carry each item's pointer from one level to the next; 0 ends a chain.
import { Dest, destById } from "./dest/dest";
import { Service, serviceById, MIRROR_LONG } from "./service/service";

export const GROUP: u32 = 256;
export const pfA = new StaticArray<u32>(GROUP);
export const pfB = new StaticArray<u32>(GROUP);
export const pfC = new StaticArray<u32>(GROUP);
const pfD = new StaticArray<u32>(GROUP); // touchServices' own: pfC holds touchDests' ids meanwhile
let sink: u32 = 0;

// Keeps a pre-pass's loads: their sum goes somewhere the optimiser cannot prove unused.
export function keep(acc: u32): void {
  sink += acc;
}

// Item k starts no chain (a packet the pre-pass cannot parse, or a descriptor outside the area).
@inline export function pfClear(k: u32): void {
  unchecked((pfA[k] = 0));
  unchecked((pfB[k] = 0));
  unchecked((pfC[k] = 0));
}

// A managed object: its header (20 bytes before the pointer; it holds the class id a virtual call reads
// and the payload's size) and every cache line of its payload.
@inline function touchObject(p: usize): u32 {
  const size = <usize>load<u32>(p - 4);
  let acc = load<u32>(p - 8);
  for (let o: usize = 44; o < size; o += 64) acc += load<u32>(p + o);
  return acc + load<u32>(p + size - 4);
}

// pfC[0..n) holds destination ids (-1: none). Touches each Dest, then its Service: for a packet (countIn,
// countOut) the Dest's lines up to its load counters and the Service's counters, without the objects'
// headers (neither has a virtual method) and without the scheduler, which only a state change between
// active and inactive reads (loadChanged); `expiring`: what a connection's expiry reads (unbind: the Dest's
// fields up to its thresholds, the Service's hot line, and the scheduler's header for the virtual call
// where the Service says its scheduler has a load hook). Rounds 6 and 7 (docs/conn-table.md): the classes
// put these fields first, so each touch reads one or two lines.
// A destination already touched by this call is not touched again (nor its Service and scheduler): a batch
// to a few destinations names each of them many times, and each touch reads several lines.
// seenDest remembers the last id (+1) seen in each of its slots, so a repeat is skipped most of the time.
const SEEN_SLOTS: u32 = 64;
const seenDest = new StaticArray<u32>(SEEN_SLOTS);
export function touchDests(n: u32, expiring: bool = false): void {
  let acc: u32 = 0;
  const nd = <u32>destById.length,
    dd = destById.dataStart;
  // stores, not memory.fill (a call into the engine; see entry.ts's zeroLine)
  const sp = changetype<usize>(seenDest);
  for (let o: usize = 0; o < SEEN_SLOTS << 2; o += 8) store<u64>(sp + o, 0);
  // the destinations not seen yet, packed to the front of pfC: the levels below walk only those
  let m: u32 = 0;
  for (let k: u32 = 0; k < n; k++) {
    const id = unchecked(pfC[k]);
    if (id < nd) {
      const slot = id & (SEEN_SLOTS - 1);
      if (unchecked(seenDest[slot]) != id + 1) {
        unchecked((seenDest[slot] = id + 1));
        const p = load<u32>(dd + ((<usize>id) << 2));
        if (p != 0) unchecked((pfC[m++] = p));
      }
    }
  }
  n = m;
  const ns = <u32>serviceById.length,
    sd = serviceById.dataStart;
  for (let k: u32 = 0; k < n; k++) {
    const p = <usize>unchecked(pfC[k]);
    if (p == 0) continue;
    acc += touchFields(p, expiring ? DEST_EXPIRY_END : DEST_PACKET_END);
    const sid = <u32>load<i32>(p + offsetof<Dest>("svcId"));
    unchecked((pfC[k] = sid < ns ? <u32>(sd + ((<usize>sid) << 2)) : 0));
  }
  for (let k: u32 = 0; k < n; k++) {
    const a = <usize>unchecked(pfC[k]);
    if (a != 0) unchecked((pfC[k] = load<u32>(a)));
  }
  for (let k: u32 = 0; k < n; k++) {
    const p = <usize>unchecked(pfC[k]);
    if (p == 0) continue;
    if (expiring) {
      const hook = load<u8>(p + offsetof<Service>("loadHook")) != 0;
      unchecked((pfC[k] = hook ? load<u32>(p + offsetof<Service>("sched")) : 0));
    } else {
      acc += touchFields(p, SVC_PACKET_END);
      unchecked((pfC[k] = 0));
    }
  }
  for (let k: u32 = 0; k < n; k++) {
    const p = <usize>unchecked(pfC[k]);
    if (p != 0) acc += load<u32>(p - 8);
  }
  keep(acc);
}

// The ends of the field ranges each touch reads (the classes put these fields first; round 7): a new connection
// reads the Service's and the Dest's hot fields; a packet of a connection adds to the Dest's and the Service's
// counters (and reads the Dest's flags, service and load on a state change); an expiry unbinds the Dest.
const SVC_HOT_END: usize = offsetof<Service>("dest1") + 4;
const SVC_PACKET_END: usize = offsetof<Service>("inBytes") + 8;
const DEST_HOT_END: usize = offsetof<Dest>("a3") + 4;
const DEST_PACKET_END: usize = offsetof<Dest>("inactConns") + 4;
const DEST_EXPIRY_END: usize = offsetof<Dest>("lThreshold") + 4;

// The lines of an object's fields [0, end), without its header.
@inline function touchFields(p: usize, end: usize): u32 {
  let acc = load<u32>(p);
  for (let o: usize = 64 - (p & 63); o < end; o += 64) acc += load<u32>(p + o);
  return acc;
}

// pfB[0..n) holds Service bucket words' addresses (0: none). Touches each bucket's first Service's hot
// fields, its scheduler, and its first two destinations' hot fields: what scheduling a new connection reads.
export function touchServices(n: u32): void {
  // a step without a new connection (established traffic) has nothing more here
  if (loadServiceBuckets(n) != 0) touchLoadedServices(n);
}

// touchServices in two halves, so that a batch's pre-pass can run another chain's level between them (round
// 9): pfB[k] a bucket word's address becomes the word (returns how many there were); then the Services those
// words name are touched, and the rest below them.
export function loadServiceBuckets(n: u32): u32 {
  let syns: u32 = 0;
  for (let k: u32 = 0; k < n; k++) {
    const a = <usize>unchecked(pfB[k]);
    if (a != 0) {
      unchecked((pfB[k] = load<u32>(a)));
      syns++;
    }
  }
  return syns;
}
export function touchLoadedServices(n: u32): void {
  let acc: u32 = 0;
  for (let k: u32 = 0; k < n; k++) {
    const p = <usize>unchecked(pfB[k]);
    if (p == 0) {
      unchecked((pfA[k] = 0));
      continue;
    }
    acc += touchFields(p, SVC_HOT_END);
    const inline = load<u8>(p + offsetof<Service>("schedInline")) != 0;
    unchecked((pfA[k] = inline ? 0 : load<u32>(p + offsetof<Service>("sched"))));
    // a short list is mirrored in the lines just touched (round 9): its destinations are known now
    if (load<u8>(p + offsetof<Service>("nMirror")) != MIRROR_LONG) {
      unchecked((pfD[k] = load<u32>(p + offsetof<Service>("dest0"))));
      unchecked((pfB[k] = load<u32>(p + offsetof<Service>("dest1")) | 1));
    } else unchecked((pfB[k] = load<u32>(p + offsetof<Service>("dests"))));
  }
  for (let k: u32 = 0; k < n; k++) {
    const sc = <usize>unchecked(pfA[k]);
    if (sc != 0) acc += touchObject(sc);
    const p = <usize>unchecked(pfB[k]);
    if (p == 0) continue;
    if (p & 1) {
      // the mirror's two (an object's address is 16-aligned, so bit 0 marks them), touched a level earlier
      const d0 = <usize>unchecked(pfD[k]),
        d1 = p & ~1;
      if (d0 != 0) acc += touchFields(d0, DEST_HOT_END);
      if (d1 != 0) acc += touchFields(d1, DEST_HOT_END);
      unchecked((pfA[k] = 0));
      unchecked((pfB[k] = 0));
      continue;
    }
    const ds = changetype<Array<Dest>>(p);
    const len = ds.length,
      data = ds.dataStart;
    unchecked((pfA[k] = len > 0 ? load<u32>(data) : 0));
    unchecked((pfB[k] = len > 1 ? load<u32>(data, 4) : 0));
  }
  for (let k: u32 = 0; k < n; k++) {
    const d0 = <usize>unchecked(pfA[k]),
      d1 = <usize>unchecked(pfB[k]);
    if (d0 != 0) acc += touchFields(d0, DEST_HOT_END);
    if (d1 != 0) acc += touchFields(d1, DEST_HOT_END);
  }
  keep(acc);
}
