// The connection table (ip_vs_conn.c): fixed-capacity entries (conn/entry.ts: a hot line, a cold line and a
// wheel position each, in three arrays indexed alike), two hash indexes
// (client side "in", and reply side "out" for NAT), and a timer wheel for expiry driven by the host's
// clock. Nothing here allocates after connInit().
import { AF_INET, FWD_MASQ, FWD_FULLNAT } from "../common";
import { Dest, destById, destOf } from "../dest/dest";
import { getService, destUnreferenced } from "../service/service";
import { GROUP, pfA, pfB, pfC, keep, touchDests } from "../prefetch";
import {
  E,
  entriesAlloc,
  ADDR_CLIENT,
  ADDR_DEST,
  ADDR_LOCAL,
  ADDR_VIRTUAL,
  entAddr,
  entAddrEq,
  entAf,
  entClear,
  entTouchCold,
  entCport,
  entCtl,
  entDest,
  entDport,
  entExpires,
  entFlags,
  entInKeyEq,
  entLinkAt,
  entLive,
  entLport,
  entNctl,
  entNext,
  entProto,
  entState,
  entTimeout,
  entVport,
  entWheelPos,
  entWheelTick,
  setEntAddr,
  setEntAf,
  setEntCport,
  setEntCtl,
  setEntDest,
  setEntDport,
  setEntExpires,
  setEntFlags,
  setEntLive,
  setEntLport,
  setEntNctl,
  setEntNext,
  setEntProto,
  setEntState,
  setEntTimeout,
  setEntVport,
  setEntWheelPos,
  setEntWheelTick,
} from "./entry";
export { E };

// Connection flags (IP_VS_CONN_F_*)
export const CF_FWD_MASK: u32 = 0x0007;
export const CF_HASHED: u32 = 0x0040;
export const CF_NOOUTPUT: u32 = 0x0080;
export const CF_INACTIVE: u32 = 0x0100;
export const CF_NO_CPORT: u32 = 0x0800;
export const CF_TEMPLATE: u32 = 0x1000;
export const CF_ONE_PACKET: u32 = 0x2000;
export const CF_OUT_HASHED: u32 = 0x10000; // ours: linked in the reply-side index

export let capacity: u32 = 0;
// One bucket array for both indexes, a pair of chain heads (client side, reply side) per bucket, and both
// keyed by the client side's (protocol, address, port) alone, as the kernel keys its one table: a
// connection's client-side and reply-side links share one bucket line (and page), so making or expiring
// it misses once there, not twice. Full-NAT's reply side is its local address and port.
let buckets: usize = 0;
let bucketMask: u32 = 0;
@inline function inHead(h: u32): usize {
  return buckets + ((<usize>h) << 3);
}
@inline function outHead(h: u32): usize {
  return buckets + ((<usize>h) << 3) + 4;
}
// The free entries' indexes, a stack (the next taken on top): LIFO as the linked list through the position
// words it replaced, so entries are taken in the same order, but the next few are known without a chain of
// dependent loads, and a batch's pre-pass touches the entries its SYNs will take (touchFreeEntries; round 8).
let freeStack: usize = 0;
let freeTop: u32 = 0;
export let connCount: u32 = 0;
export let templateCount: u32 = 0;
export let refusedFull: u64 = 0; // new connections refused because the table was full
// When the table is full a new connection takes the place of a finished one (TCP TIME_WAIT or CLOSE),
// else of another entry that is not established (inactive: FIN_WAIT, CLOSE_WAIT, LAST_ACK, a UDP flow,
// an SCTP association not yet or no longer established); an established entry or a template is never
// evicted. The kernel's table has no fixed size: without this a churn of short connections faster than
// capacity / TIME_WAIT (65,536 / 120 s: 546 conn/s) refused every new connection for two minutes.
export let evictedClosed: u64 = 0;
export let evictedOther: u64 = 0;
let closedLive: u32 = 0; // live entries of eviction class 0
let otherLive: u32 = 0; // live entries of eviction class 1
let evictHand: u32 = 0; // where the next search for a victim starts (it goes round the table)

// timer wheel: WHEEL_SLOTS slots of TICK_MS; entries further out wait in their slot for later rounds.
// 16 ms slots: advance() re-walks the still open current slot on every call, so with 1 s slots a host
// calling it every 64 ms walked each due entry about 8 times. 65,536 slots keep one turn (17.5 min)
// longer than the TCP ESTABLISHED timeout (15 min).
//
// A slot holds its entries' indexes in a stack of 64-byte chunks (word 0 links the next chunk, words
// 1..15 hold indexes), not a list threaded through the entries: walking such a list is a chain of
// dependent cache misses, one entry at a time (300 ns each at 256 MB on a 2-vCPU EPYC, 32 ns when 8
// are in flight). With the indexes in hand, advance() first touches the due entries, then their bucket
// words, chain heads, destinations and Services, a level at a time (touchSlot), so those misses overlap,
// and only then expires them. An entry leaves a slot by taking the slot's last index into its place.
const TICK_MS: i64 = 16;
const WHEEL_BITS: u32 = 16;
const WHEEL_SLOTS: u32 = 1 << WHEEL_BITS;
const CHUNK_ITEMS: u32 = 15;
let wheel: usize = 0; // per slot: u32 head chunk+1, u32 entries filed
let chunks: usize = 0; // the chunk pool, 64-byte aligned
let chunkFree: u32 = 0; // chunk+1, free chunks linked through word 0
let wheelTick: i64 = 0; // the last tick fully processed
let clockStarted = false;
export let clockMs: i64 = 0;

export function connInit(cap: u32): i32 {
  if (cap < 16) cap = 16;
  // at least two buckets per entry: a chain step is a random entry (a cache and TLB miss of its own),
  // dearer than the bucket line; measured at 1.2M live entries, 1 per entry was 7% slower, 1/2 12% worse
  let nb: u32 = 16;
  while (nb < cap * 2) nb <<= 1;
  entriesAlloc(cap);
  buckets = heap.alloc((<usize>nb) << 3);
  memory.fill(buckets, 0, (<usize>nb) << 3);
  wheel = heap.alloc((<usize>WHEEL_SLOTS) << 3);
  memory.fill(wheel, 0, (<usize>WHEEL_SLOTS) << 3);
  // enough chunks for every entry filed at once: full chunks, plus one part-filled chunk per slot in use
  const nChunks = cap / CHUNK_ITEMS + 1 + min(cap, WHEEL_SLOTS);
  chunks = (heap.alloc(((<usize>nChunks) << 6) + 64) + 63) & ~(<usize>63);
  for (let c: u32 = 0; c < nChunks; c++) store<u32>(chunks + ((<usize>c) << 6), c + 1 < nChunks ? c + 2 : 0);
  chunkFree = 1;
  bucketMask = nb - 1;
  capacity = cap;
  // the free stack, lowest index on top
  freeStack = heap.alloc((<usize>cap) << 2);
  for (let j: u32 = 0; j < cap; j++) store<u32>(freeStack + ((<usize>j) << 2), cap - 1 - j);
  freeTop = cap;
  connCount = 0;
  templateCount = 0;
  refusedFull = 0;
  evictedClosed = 0;
  evictedOther = 0;
  closedLive = 0;
  otherLive = 0;
  evictHand = 0;
  wheelTick = 0;
  clockStarted = false;
  return <i32>cap;
}

@inline function mix32(h: u32): u32 {
  h ^= h >>> 16;
  h *= 0x85ebca6b;
  h ^= h >>> 13;
  h *= 0xc2b2ae35;
  h ^= h >>> 16;
  return h;
}

// the client side's (protocol, address, port): the bucket of both a connection's links
@inline function hashSide(proto: u32, a0: u32, a1: u32, a2: u32, a3: u32, p: u32): u32 {
  let h = mix32(a3 ^ (p << 16) ^ proto);
  if ((a0 | a1 | a2) != 0) h = mix32(h ^ a0 ^ (a1 * 31) ^ (a2 * 961));
  return h & bucketMask;
}

// ---- lookups -----------------------------------------------------------------------------------------

// Client-side match (af, proto, caddr, cport, vaddr, vport); templates are matched only with tpl=true.
export function lookupIn(
  af: i32,
  proto: i32,
  c0: u32,
  c1: u32,
  c2: u32,
  c3: u32,
  cport: u32,
  v0: u32,
  v1: u32,
  v2: u32,
  v3: u32,
  vport: u32,
  tpl: bool,
): i32 {
  return lookupInFrom(
    load<u32>(inHead(hashSide(<u32>proto, c0, c1, c2, c3, cport))),
    af,
    proto,
    c0,
    c1,
    c2,
    c3,
    cport,
    v0,
    v1,
    v2,
    v3,
    vport,
    tpl,
  );
}

// lookupIn's walk from a client-side chain's head (the bucket word: entry index+1, 0 for none), for a batch
// whose pre-pass has loaded the word already (assembly/index.ts's lookupBatch).
@inline export function lookupInFrom(
  head: u32,
  af: i32,
  proto: i32,
  c0: u32,
  c1: u32,
  c2: u32,
  c3: u32,
  cport: u32,
  v0: u32,
  v1: u32,
  v2: u32,
  v3: u32,
  vport: u32,
  tpl: bool,
): i32 {
  let n = head;
  // a port above 16 bits, or an af or protocol above 8, matches no entry (its fields are that wide): out
  // first, so that the packed compare of entInKeyEq is exact
  if ((cport | vport) >>> 16 != 0 || (<u32>af | <u32>proto) >>> 8 != 0) return -1;
  const want: u32 = tpl ? CF_TEMPLATE : 0;
  while (n != 0) {
    const e = E(n - 1);
    if (
      entInKeyEq(e, <u32>af, <u32>proto, c0, c1, c2, c3, cport, v0, v1, v2, v3, vport) &&
      (entFlags(e) & CF_TEMPLATE) == want
    )
      return <i32>(n - 1);
    n = entNext(e, 0);
  }
  return -1;
}

// Reply-side match: a packet from the real server (s: daddr:dport) to the client side
// (d: caddr:cport, or the full-NAT local address:port).
export function lookupOut(
  af: i32,
  proto: i32,
  s0: u32,
  s1: u32,
  s2: u32,
  s3: u32,
  sport: u32,
  d0: u32,
  d1: u32,
  d2: u32,
  d3: u32,
  dport: u32,
): i32 {
  let n = load<u32>(outHead(hashSide(<u32>proto, d0, d1, d2, d3, dport)));
  while (n != 0) {
    const e = E(n - 1);
    if (
      entDport(e) == sport &&
      entLport(e) == dport &&
      entAddrEq(e, ADDR_DEST, s0, s1, s2, s3) &&
      entAddrEq(e, ADDR_LOCAL, d0, d1, d2, d3) &&
      entProto(e) == <u32>proto &&
      entAf(e) == <u32>af
    )
      return <i32>(n - 1);
    n = entNext(e, 1);
  }
  return -1;
}

// Batch pre-pass helpers (packet/exports.ts): the address of the bucket word a lookup starts from, and
// the staged touch of those words and their chains' first entries (see assembly/prefetch.ts).
export function inBucketOf(proto: i32, c0: u32, c1: u32, c2: u32, c3: u32, cport: u32): usize {
  return inHead(hashSide(<u32>proto, c0, c1, c2, c3, cport));
}
export function outBucketOf(proto: i32, d0: u32, d1: u32, d2: u32, d3: u32, dport: u32): usize {
  return outHead(hashSide(<u32>proto, d0, d1, d2, d3, dport));
}

// A batch's pre-pass (assembly/index.ts's lookupBatch, a group of keys per pass) loads every key's bucket
// word (inBucketOf's address) before any chain head, then touches each chain's first entry with this, and
// nothing more, so the group's misses overlap at each level (docs/conn-table.md, rounds 2 and 5).
export function touchInEntry(n: u32): u32 {
  return n != 0 && n <= capacity ? <u32>entCport(E(n - 1)) : 0;
}

// pfA[k]: a bucket word's address (0: none). Loads the words, then the hot line of each chain's first
// entry; where pfC[k] is 1 it becomes that entry's destination id (-1 otherwise), for touchDests.
export function touchChainHeads(n: u32): void {
  loadChainBuckets(n);
  touchLoadedHeads(n);
}

// touchChainHeads in two halves, so that a batch's pre-pass can run another chain's level between them (round
// 9): pfA[k] a bucket word's address becomes the word; then the heads those words name are touched.
export function loadChainBuckets(n: u32): void {
  for (let k: u32 = 0; k < n; k++) {
    const a = <usize>unchecked(pfA[k]);
    unchecked((pfA[k] = a != 0 ? load<u32>(a) : 0));
  }
}
export function touchLoadedHeads(n: u32): void {
  let acc: u32 = 0;
  for (let k: u32 = 0; k < n; k++) {
    const h = unchecked(pfA[k]);
    let id: i32 = -1;
    if (h != 0 && h <= capacity) {
      const e = E(h - 1);
      acc += <u32>entCport(e);
      const d = entDest(e);
      if (unchecked(pfC[k]) == 1) id = d;
    }
    unchecked((pfC[k] = <u32>id));
  }
  // then the cold lines of the heads that have one (IPv6 addresses): a third level of misses, overlapped
  for (let k: u32 = 0; k < n; k++) {
    const h = unchecked(pfA[k]);
    if (h != 0 && h <= capacity) acc += entTouchCold(E(h - 1));
  }
  keep(acc);
}

// A batch pre-pass helper (packet/exports.ts): touches the hot lines and position words of the next n
// free entries, those the step's n SYNs will most likely take (a new entry's line is written whole, but
// its first read after that waits for the line to arrive). Independent loads: the free stack holds them.
export function touchFreeEntries(n: u32): void {
  let acc: u32 = 0;
  const m = min(n, freeTop);
  for (let j: u32 = 1; j <= m; j++) {
    const e = E(load<u32>(freeStack + ((<usize>(freeTop - j)) << 2)));
    acc += <u32>entLive(e) + entWheelPos(e);
  }
  keep(acc);
}

// A connection's two index links: side 0 is the client side (the "in" chain, keyed by caddr:cport), side 1
// the reply side ("out", keyed by laddr:lport, which is caddr:cport unless full-NAT moved it).
@inline function hashedFlag(side: u32): u32 {
  return side == 0 ? CF_HASHED : CF_OUT_HASHED;
}

function sideHashOf(e: usize, side: u32): u32 {
  const a: usize = side == 0 ? ADDR_CLIENT : ADDR_LOCAL;
  return hashSide(
    entProto(e),
    entAddr(e, a, 0),
    entAddr(e, a, 1),
    entAddr(e, a, 2),
    entAddr(e, a, 3),
    side == 0 ? entCport(e) : entLport(e),
  );
}
@inline function inHashOf(e: usize): u32 {
  return sideHashOf(e, 0);
}
@inline function sideHead(h: u32, side: u32): usize {
  return side == 0 ? inHead(h) : outHead(h);
}

// Links entry i at the head of its chain on one side (newest first, as the kernel's hlist_add_head_rcu).
function hashSideOf(i: u32, side: u32): void {
  const e = E(i);
  const b = sideHead(sideHashOf(e, side), side);
  setEntNext(e, side, load<u32>(b));
  store<u32>(b, i + 1);
  setEntFlags(e, entFlags(e) | hashedFlag(side));
}

function unhashSideOf(i: u32, side: u32): void {
  const e = E(i);
  const f = entFlags(e);
  if (!(f & hashedFlag(side))) return;
  let p = sideHead(sideHashOf(e, side), side);
  let n = load<u32>(p);
  while (n != 0) {
    if (n == i + 1) {
      store<u32>(p, entNext(e, side));
      break;
    }
    p = entLinkAt(E(n - 1), side);
    n = load<u32>(p);
  }
  setEntFlags(e, f & ~hashedFlag(side));
}

@inline function hashIn(i: u32): void {
  hashSideOf(i, 0);
}
@inline function unhashIn(i: u32): void {
  unhashSideOf(i, 0);
}
@inline function hashOut(i: u32): void {
  hashSideOf(i, 1);
}
@inline function unhashOut(i: u32): void {
  unhashSideOf(i, 1);
}

// ---- the timer wheel -----------------------------------------------------------------------------------

// the wheel's time starts with the first entry or the first advance(), whichever comes first
function startClock(now: i64): void {
  wheelTick = now / TICK_MS - 1;
  clockStarted = true;
}

@inline function slotOf(tick: i64): usize {
  return wheel + ((<usize>(<u32>tick & (WHEEL_SLOTS - 1))) << 3);
}
@inline function chunkAt(c: u32): usize {
  return chunks + ((<usize>c) << 6);
}

function wheelLink(i: u32, tick: i64): void {
  const s = slotOf(tick);
  const n = load<u32>(s, 4);
  let head = load<u32>(s);
  const w = (n % CHUNK_ITEMS) + 1;
  if (w == 1) {
    // the head chunk is full (or there is none): push a new one
    const c = chunkFree;
    assert(c != 0, "timer wheel chunk pool exhausted");
    chunkFree = load<u32>(chunkAt(c - 1));
    store<u32>(chunkAt(c - 1), head);
    head = c;
    store<u32>(s, head);
  }
  store<u32>(chunkAt(head - 1) + ((<usize>w) << 2), i);
  store<u32>(s, n + 1, 4);
  const e = E(i);
  setEntWheelPos(e, ((head - 1) << 4) | w);
  setEntWheelTick(e, <u32>tick);
}

function wheelUnlink(i: u32): void {
  const e = E(i);
  const pos = entWheelPos(e);
  if (pos == 0) return;
  const s = slotOf(<i64>entWheelTick(e));
  const n = load<u32>(s, 4) - 1;
  const head = load<u32>(s);
  const lastW = (n % CHUNK_ITEMS) + 1;
  const last = load<u32>(chunkAt(head - 1) + ((<usize>lastW) << 2));
  if (last != i) {
    store<u32>(chunkAt(pos >>> 4) + ((<usize>(pos & 15)) << 2), last);
    setEntWheelPos(E(last), pos);
  }
  store<u32>(s, n, 4);
  if (lastW == 1) {
    // the head chunk is empty: back to the pool
    store<u32>(s, load<u32>(chunkAt(head - 1)));
    store<u32>(chunkAt(head - 1), chunkFree);
    chunkFree = head;
  }
  setEntWheelPos(e, 0);
}

// Re-arm an entry's timer: expires = now + its timeout, and the entry moves to that tick's slot at once
// (as the kernel's mod_timer does). Moving later lazily, when the old slot came round, cost a second visit
// to nearly every connection: a new entry is filed at 3 s and its first transition sets the protocol's
// timeout, and each later packet pushes the expiry out again; by the time the old slot came round those
// entries were cold, while now every line the move touches (the entry, its slot neighbours, the new
// slot's head) was touched moments ago. Which entries expire at each advance() is the same either way:
// expiry checks each entry's own time.
//
// One exception (round 6, docs/conn-table.md): an entry with a long timeout (ESTABLISHED, UDP: more than
// LAZY_MIN_TIMEOUT_MS) whose expiry moved later stays in its slot. An established flow's every packet
// pushed its expiry a little later and so moved it (a slot's word, two chunks and two position words, most
// of them cold at 100k flows). An entry is never filed later than its expiry, only earlier, so it expires
// in the same advance() call as before: advance() finds it not yet due when its early slot comes round
// and files it where it is due then (a visit once per timeout for a busy flow, once for one gone idle). An
// expiry moved earlier moves the entry at once. Shorter timeouts (SYN_RECV, TIME_WAIT) move as before:
// those entries mostly expire, and the simulator's SYN-then-RST traffic paid for the second visit
// (1.05-1.08x the time per connection with every entry lazy).
const LAZY_MIN_TIMEOUT_MS: u32 = 120000;
export function arm(i: u32, now: i64): void {
  const e = E(i);
  const exp = now + <i64>entTimeout(e);
  setEntExpires(e, exp);
  if (entFlags(e) & CF_ONE_PACKET) return; // never filed: freed after its one packet
  let t = exp / TICK_MS;
  if (t <= wheelTick) t = wheelTick + 1;
  // ticks as the entry holds them (u32; compared by their difference, which stays below 2^31)
  const tt = <u32>t,
    wt = entWheelTick(e);
  if (tt == wt) return;
  if (<i32>(tt - wt) > 0 && entTimeout(e) > LAZY_MIN_TIMEOUT_MS) return;
  wheelUnlink(i);
  wheelLink(i, t);
}

export function setTimeout(i: u32, ms: u32): void {
  setEntTimeout(E(i), ms);
}

// ---- create, bind, expire ------------------------------------------------------------------------------

// 0: finished (TCP TIME_WAIT, CLOSE), 1: other inactive, 2: never evicted (established, templates)
@inline function evictClass(e: usize): i32 {
  const f = entFlags(e);
  if (f & (CF_TEMPLATE | CF_ONE_PACKET)) return 2;
  if (entProto(e) == 6) {
    const st = entState(e);
    if (st == 5 || st == 6) return 0; // TCP_S_TIME_WAIT, TCP_S_CLOSE
  }
  return f & CF_INACTIVE ? 1 : 2;
}

@inline function classCount(c: i32, add: bool): void {
  if (c == 0) {
    if (add) closedLive++;
    else closedLive--;
  } else if (c == 1) {
    if (add) otherLive++;
    else otherLive--;
  }
}

// Frees one entry of the lowest class there is, searching round the table from where the last search
// stopped: with the table full of finished entries (the churn case) the first look finds one; the counts
// say whether any exists, so a search never goes round for nothing. False when every entry is class 2.
function evictOne(now: i64): bool {
  const want: i32 = closedLive > 0 ? 0 : otherLive > 0 ? 1 : -1;
  if (want < 0) return false;
  for (let n: u32 = 0; n < capacity; n++) {
    const i = evictHand;
    evictHand = i + 1 == capacity ? 0 : i + 1;
    const e = E(i);
    if (entLive(e) != 0 && evictClass(e) == want && expire(i, now)) {
      if (want == 0) evictedClosed++;
      else evictedOther++;
      return true;
    }
  }
  return false;
}

// Takes a free entry, evicting one that is not established when none is free; -1 when every entry is
// established or a template (counted; nothing established is touched).
export function allocEntry(now: i64): i32 {
  if (freeTop == 0 && !evictOne(now)) {
    refusedFull++;
    return -1;
  }
  freeTop--;
  const i = load<u32>(freeStack + ((<usize>freeTop) << 2));
  const e = E(i);
  entClear(e);
  return <i32>i;
}

// ip_vs_conn_new + ip_vs_bind_dest. Addresses are taken from the globals set by setKey/setDest below.
export let k_af: i32 = AF_INET;
export let k_proto: i32 = 6;
export let k_c0: u32 = 0;
export let k_c1: u32 = 0;
export let k_c2: u32 = 0;
export let k_c3: u32 = 0;
export let k_v0: u32 = 0;
export let k_v1: u32 = 0;
export let k_v2: u32 = 0;
export let k_v3: u32 = 0;
export let k_cport: u32 = 0;
export let k_vport: u32 = 0;

export function setKey(
  af: i32,
  proto: i32,
  c0: u32,
  c1: u32,
  c2: u32,
  c3: u32,
  cport: u32,
  v0: u32,
  v1: u32,
  v2: u32,
  v3: u32,
  vport: u32,
): void {
  k_af = af;
  k_proto = proto;
  k_c0 = c0;
  k_c1 = c1;
  k_c2 = c2;
  k_c3 = c3;
  k_cport = cport;
  k_v0 = v0;
  k_v1 = v1;
  k_v2 = v2;
  k_v3 = v3;
  k_vport = vport;
}

// Creates an entry for the current key bound to dest d (dport: the destination port to use).
// Returns its index or -1 when the table is full.
export function connNew(d: Dest, dport: u32, flags: u32, now: i64): i32 {
  if (!clockStarted) startClock(now);
  const r = allocEntry(now);
  if (r < 0) return -1;
  const i = <u32>r;
  const e = E(i);
  setEntAf(e, <u8>k_af);
  setEntProto(e, <u8>k_proto);
  setEntAddr(e, ADDR_CLIENT, k_c0, k_c1, k_c2, k_c3);
  setEntAddr(e, ADDR_VIRTUAL, k_v0, k_v1, k_v2, k_v3);
  setEntCport(e, <u16>k_cport);
  setEntVport(e, <u16>k_vport);
  setEntAddr(e, ADDR_DEST, d.a0, d.a1, d.a2, d.a3);
  setEntDport(e, <u16>dport);
  // the reply side is the client unless full-NAT picks a local address later
  setEntAddr(e, ADDR_LOCAL, k_c0, k_c1, k_c2, k_c3);
  setEntLport(e, <u16>k_cport);
  // ip_vs_bind_dest: the destination's connection flags
  let f = flags | d.fwd | CF_INACTIVE;
  if (d.fwd != FWD_MASQ && d.fwd != FWD_FULLNAT) f |= CF_NOOUTPUT;
  if (k_proto != 17) f &= ~CF_ONE_PACKET;
  setEntFlags(e, f);
  setEntDest(e, d.id);
  setEntState(e, 0);
  d.refs++;
  classCount(evictClass(e), true);
  if (f & CF_TEMPLATE) {
    d.persistConns++;
    templateCount++;
  } else {
    d.inactConns++;
    connCount++;
  }
  d.updateOverload();
  const s = getService(d.svcId);
  if (s && !(f & CF_TEMPLATE)) {
    const sc = s.sched;
    if (sc && s.loadHook) sc.loadChanged(s, d);
  }
  // a new entry lives 3 s until its first state transition sets the protocol timeout
  setEntTimeout(e, 3000);
  if (!(f & CF_ONE_PACKET)) {
    hashIn(i);
    if (d.fwd == FWD_MASQ || d.fwd == FWD_FULLNAT) if (!(f & CF_TEMPLATE)) hashOut(i);
    const exp = now + 3000;
    setEntExpires(e, exp);
    wheelLink(i, exp / TICK_MS > wheelTick ? exp / TICK_MS : wheelTick + 1);
  }
  return <i32>i;
}

// Full-NAT: the reply side becomes (laddr, lport); re-files the entry in the reply index.
export function setLocal(i: u32, l0: u32, l1: u32, l2: u32, l3: u32, lport: u32): void {
  const e = E(i);
  unhashOut(i);
  setEntAddr(e, ADDR_LOCAL, l0, l1, l2, l3);
  setEntLport(e, <u16>lport);
  hashOut(i);
}

// Moves a connection between active and inactive (set_tcp_state's bookkeeping).
export function setState(i: u32, newState: u8, activeState: bool): void {
  const e = E(i);
  const before = evictClass(e);
  moveState(i, newState, activeState);
  const after = evictClass(e);
  if (after != before) {
    classCount(before, false);
    classCount(after, true);
  }
}

function moveState(i: u32, newState: u8, activeState: bool): void {
  const e = E(i);
  const old = entState(e);
  if (old == newState) return;
  setEntState(e, newState);
  const id = entDest(e);
  if (id < 0) return;
  const d = destOf(id);
  const f = entFlags(e);
  if (!(f & CF_INACTIVE) && !activeState) {
    d.activeConns--;
    d.inactConns++;
    setEntFlags(e, f | CF_INACTIVE);
  } else if (f & CF_INACTIVE && activeState) {
    d.activeConns++;
    d.inactConns--;
    setEntFlags(e, f & ~CF_INACTIVE);
  } else return;
  const s = getService(d.svcId);
  if (s && s.loadHook) {
    const sc = s.sched;
    if (sc) sc.loadChanged(s, d);
  }
}

// ip_vs_unbind_dest: counters, the OVERLOAD hysteresis, and the destination's reference.
function unbind(i: u32): void {
  const e = E(i);
  const id = entDest(e);
  if (id < 0) return;
  const d = destOf(id);
  const f = entFlags(e);
  if (f & CF_TEMPLATE) d.persistConns--;
  else if (f & CF_INACTIVE) d.inactConns--;
  else d.activeConns--;
  if (d.overloaded()) d.updateOverload();
  setEntDest(e, -1);
  if (!(f & CF_TEMPLATE)) {
    const s = getService(d.svcId);
    // loadHook first: the expiry's pre-pass touched its line, not always the one holding sched (round 8)
    if (s && d.available() && s.loadHook) {
      const sc = s.sched;
      if (sc) sc.loadChanged(s, d);
    }
  }
  d.refs--;
  if (d.refs <= 0) destUnreferenced(d);
}

// Frees an entry now (ip_vs_conn_expire's final part). A template with children is not freed: its
// expiry is put off by 60 s, as the kernel does.
export function expire(i: u32, now: i64): bool {
  const e = E(i);
  const f = entFlags(e);
  if (f & CF_TEMPLATE && entNctl(e) > 0) {
    setEntTimeout(e, 60000);
    arm(i, now);
    return false;
  }
  classCount(evictClass(e), false);
  wheelUnlink(i);
  unhashIn(i);
  unhashOut(i);
  const ctl = entCtl(e);
  if (ctl != 0) {
    const ce = E(ctl - 1);
    setEntNctl(ce, entNctl(ce) - 1);
  }
  unbind(i);
  if (f & CF_TEMPLATE) templateCount--;
  else connCount--;
  setEntLive(e, 0);
  store<u32>(freeStack + ((<usize>freeTop) << 2), i);
  freeTop++;
  return true;
}

// ip_vs_expire_nodest_conn_flush, which the kernel queues when a destination is deleted with
// expire_nodest_conn=1: every entry whose destination is gone goes at once, unless it controls others; a
// template left without children goes with its last one. Queued as the kernel queues it: a batch of
// deletions walks the table once, before the next packet, clock step or listing (nodestFlushDue).
let nodestQueued = false;
export function queueNodestFlush(): void {
  nodestQueued = true;
}
@inline export function nodestFlushDue(now: i64): void {
  if (nodestQueued) {
    nodestQueued = false;
    expireNodest(now);
  }
}
function expireNodest(now: i64): u32 {
  let n: u32 = 0;
  for (let i: u32 = 0; i < capacity; i++) {
    const e = E(i);
    if (!entLive(e)) continue;
    const id = entDest(e);
    if (id < 0 || destOf(id).available() || entNctl(e) > 0) continue;
    const ctl = entCtl(e);
    if (expire(i, now)) n++;
    if (ctl == 0) continue;
    const t = E(ctl - 1);
    if (entLive(t) && entNctl(t) == 0 && expire(ctl - 1, now)) n++;
  }
  return n;
}

// Touches the entries filed in slot s, then their bucket words, chain heads, destinations and Services,
// in groups, each level one tight loop (see assembly/prefetch.ts); advance() then finds them in cache.
function touchSlot(s: usize): void {
  let c = load<u32>(s);
  let top = ((load<u32>(s, 4) - 1) % CHUNK_ITEMS) + 1;
  let m: u32 = 0;
  while (c != 0) {
    const ch = chunkAt(c - 1);
    for (let w: u32 = top; w >= 1; w--) {
      unchecked((pfB[m] = load<u32>(ch + ((<usize>w) << 2))));
      if (++m == GROUP) {
        touchEntries(m);
        m = 0;
      }
    }
    c = load<u32>(ch);
    top = CHUNK_ITEMS;
  }
  if (m != 0) touchEntries(m);
}

// pfB[0..n): entry indexes about to be expired
function touchEntries(n: u32): void {
  let acc: u32 = 0;
  for (let k: u32 = 0; k < n; k++) {
    const e = E(unchecked(pfB[k]));
    acc += entAddr(e, ADDR_CLIENT, 3) + entWheelTick(e);
  }
  for (let k: u32 = 0; k < n; k++) {
    const e = E(unchecked(pfB[k]));
    unchecked((pfA[k] = <u32>inHead(inHashOf(e))));
    unchecked((pfC[k] = <u32>entDest(e)));
  }
  // the bucket words, then the destinations and Services, then the chain heads the words name: each level of
  // one chain with the other's misses in flight (round 9), where the heads came before the destinations
  for (let k: u32 = 0; k < n; k++) unchecked((pfA[k] = load<u32>(<usize>unchecked(pfA[k]))));
  touchDests(n, true);
  for (let k: u32 = 0; k < n; k++) {
    // the chain's head, when it is not this entry: unhashIn steps through it
    const h = unchecked(pfA[k]);
    if (h != 0 && h != unchecked(pfB[k]) + 1) acc += entNext(E(h - 1), 0);
  }
  keep(acc);
}

// Runs the clock forward to now, expiring what is due. Returns how many entries were freed.
export function advance(now: i64): i32 {
  let freed = 0;
  clockMs = now;
  const target = now / TICK_MS;
  if (!clockStarted) startClock(now);
  let t = wheelTick + 1;
  // a jump of more than a turn visits every slot once; what is filed for a later round stays
  if (target - t >= <i64>WHEEL_SLOTS) t = target - <i64>WHEEL_SLOTS + 1;
  for (; t <= target; t++) {
    const s = slotOf(t);
    const n = load<u32>(s, 4);
    if (n == 0) continue;
    if (n >= 8) touchSlot(s);
    // Newest first: an entry leaving takes the slot's last index into its place, and the last is always
    // one already seen (or itself), so nothing is skipped or seen twice. A chunk emptied goes back to the
    // pool only once its lowest word has been seen, and its link is read before.
    let c = load<u32>(s);
    let top = ((n - 1) % CHUNK_ITEMS) + 1;
    while (c != 0) {
      const ch = chunkAt(c - 1);
      const next = load<u32>(ch);
      for (let w: u32 = top; w >= 1; w--) {
        const i = load<u32>(ch + ((<usize>w) << 2));
        const e = E(i);
        const wt = <i64>entWheelTick(e);
        if (wt > target) continue;
        if (entExpires(e) <= now && expire(i, now)) {
          freed++;
          continue;
        }
        const et = entExpires(e) / TICK_MS;
        if (et != wt) {
          wheelUnlink(i);
          wheelLink(i, et);
        }
      }
      c = next;
      top = CHUNK_ITEMS;
    }
  }
  // the current tick stays open: entries due later within it are checked on the next call
  wheelTick = target - 1;
  return freed;
}

// Sets a connection's protocol timeout and re-arms its timer.
export function refresh(i: u32, timeoutMs: u32, now: i64): void {
  setEntTimeout(E(i), timeoutMs);
  arm(i, now);
}

export function controlAdd(child: u32, tpl: u32): void {
  setEntCtl(E(child), tpl + 1);
  const te = E(tpl);
  setEntNctl(te, entNctl(te) + 1);
}

// Invalidates a template so it never matches again (ip_vs_check_template): ports 0xffff, cport 0.
export function invalidateTemplate(i: u32): void {
  const e = E(i);
  if (entVport(e) == 0xffff) return;
  unhashIn(i);
  setEntVport(e, 0xffff);
  setEntDport(e, 0xffff);
  setEntCport(e, 0);
  hashIn(i);
}

// Expires every connection now (ipvsadm -C does not, but a table reset for tests and reloads does).
export function flushConns(now: i64): void {
  for (let i: u32 = 0; i < capacity; i++) {
    const e = E(i);
    if (entLive(e) && !(entFlags(e) & CF_TEMPLATE)) expire(i, now);
  }
  for (let i: u32 = 0; i < capacity; i++) {
    const e = E(i);
    if (entLive(e)) expire(i, now);
  }
}
