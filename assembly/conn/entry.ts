// A connection entry's fields, each read and written only through the accessors here, by name: the entry's
// layout (which bytes, which line, which array) is this file's alone, so trying another layout is a change
// here and not in every module of the data plane. `e` is an entry's address as E(i) gives it.
//
// An entry is split in three arrays indexed alike (docs/conn-table.md):
// - the hot line, 64 bytes, 64-aligned: the chain links, the key with each address's word 3 (an IPv4
//   address whole), state, flags, destination, timers and packets in: all a packet of an established IPv4
//   flow reads or writes, so it touches this one line of the entry;
// - the cold line, 64 bytes: words 0-2 of the four addresses (IPv6), the template links, the sync state.
//   A fresh entry's cold line is not cleared; HAS_COLD (in the live byte) says it was since, and until it
//   is set every cold field reads 0 without a load, so an IPv4 connection without a template or sync never
//   touches its cold line, from its first packet to its expiry. Nor is the cold array cleared when it is
//   made: its pages are the memory the WASM memory grew by, which the OS maps in on first touch, so a table
//   whose entries never write a cold line costs 68 B an entry in resident memory, not 132 (its 64 B of
//   address space stay reserved). The debug build fills it with a pattern instead, so that a cold field
//   read before it was written shows;
// - the wheel position of each entry (0: not filed, as a free entry), 4 bytes in a dense array: the timer
//   wheel moves another entry's position when one leaves a slot, and that write lands here, not in a random
//   entry.
const HOT_SHIFT: u32 = 6;
const O_IN_NEXT: usize = 0; // u32 index+1 in the "in" chain (O_OUT_NEXT = O_IN_NEXT + 4: entLinkAt)
const O_WTICK: usize = 8; // u32 the wheel tick the entry is filed under
const O_AF: usize = 12; // u8
const O_PROTO: usize = 13; // u8
const O_STATE: usize = 14; // u8
const O_LIVE: usize = 15; // u8: LIVE | HAS_COLD
const O_FLAGS: usize = 16; // u32
const O_CPORT: usize = 20; // u16 (host order)
const O_VPORT: usize = 22;
const O_DPORT: usize = 24;
const O_LPORT: usize = 26; // full-NAT local port (= cport otherwise)
const O_DEST: usize = 28; // i32 destination id
const O_ADDR3: usize = 32; // u32 word 3 of each address, ADDR_* order
const O_TIMEOUT: usize = 48; // u32 ms
const O_INPKTS: usize = 52; // u32
const O_EXPIRES: usize = 56; // i64 ms
const LIVE: u8 = 1;
const HAS_COLD: u8 = 2;

const COLD_SHIFT: u32 = 6;
const OC_ADDR: usize = 0; // words 0-2 of each address, 12 bytes each, ADDR_* order
const OC_CTL: usize = 48; // u32 template index+1
const OC_NCTL: usize = 52; // u32 children of a template
const OC_SYNC_STATE: usize = 56; // u8 the state last sent to the sync backups (cp->old_state)

// An entry's four addresses, each four host-order words (an IPv4 address is word 3, words 0-2 zero)
export const ADDR_CLIENT: usize = 0;
export const ADDR_VIRTUAL: usize = 1;
export const ADDR_DEST: usize = 2;
export const ADDR_LOCAL: usize = 3; // full-NAT local address (= the client's otherwise)

let base: usize = 0;
let coldDelta: usize = 0; // cold line address minus hot line address (wrapping)
let positions: usize = 0;

@inline export function E(i: u32): usize {
  return base + ((<usize>i) << HOT_SHIFT);
}
@inline function cold(e: usize): usize {
  return e + coldDelta;
}
@inline function posAt(e: usize): usize {
  return positions + ((e - base) >>> (HOT_SHIFT - 2));
}

// A 64-aligned block of n lines, zeroed.
function lines(n: usize): usize {
  const p = (heap.alloc((n << 6) + 64) + 63) & ~(<usize>63);
  memory.fill(p, 0, n << 6);
  return p;
}
// A 64-aligned block of n lines, not written (a line is cleared when first used); the debug build's, filled
// with 0xa5 bytes, so that reading a line before it is cleared gives something no test expects.
function linesUnwritten(n: usize): usize {
  const p = (heap.alloc((n << 6) + 64) + 63) & ~(<usize>63);
  if (!ASC_NO_ASSERT) memory.fill(p, 0xa5, n << 6);
  return p;
}

// The entries' memory for cap entries, zeroed (once, from connInit).
export function entriesAlloc(cap: u32): void {
  base = lines(<usize>cap);
  coldDelta = linesUnwritten(<usize>cap) - base;
  positions = heap.alloc((<usize>cap) << 2);
  memory.fill(positions, 0, (<usize>cap) << 2);
}

// A 64-byte line to zero in eight stores: memory.fill is a call out of the WASM code into the engine's C
// (V8's memory_fill_wrapper, then memset), dearer than the stores for a line (round 8). Both lines are 64
// bytes (HOT_SHIFT and COLD_SHIFT are 6).
@inline function zeroLine(p: usize): void {
  store<u64>(p, 0);
  store<u64>(p, 0, 8);
  store<u64>(p, 0, 16);
  store<u64>(p, 0, 24);
  store<u64>(p, 0, 32);
  store<u64>(p, 0, 40);
  store<u64>(p, 0, 48);
  store<u64>(p, 0, 56);
}

// A fresh entry: every field zero, live (the cold line is left as it is: HAS_COLD is clear).
@inline export function entClear(e: usize): void {
  zeroLine(e);
  store<u32>(posAt(e), 0);
  store<u8>(e, LIVE, O_LIVE);
}

@inline function hasCold(e: usize): bool {
  return (load<u8>(e, O_LIVE) & HAS_COLD) != 0;
}
// the cold line, cleared the first time anything is written there since the entry was made
@inline function coldForWrite(e: usize): usize {
  const c = cold(e);
  const live = load<u8>(e, O_LIVE);
  if (!(live & HAS_COLD)) {
    zeroLine(c);
    store<u8>(e, live | HAS_COLD, O_LIVE);
  }
  return c;
}

// The batch pre-passes' touch of an entry's cold line, where it has one (an IPv6 entry, a template's): a
// value to sum into their sink, 0 without a load otherwise.
@inline export function entTouchCold(e: usize): u32 {
  return hasCold(e) ? load<u32>(cold(e)) : 0;
}

// ---- the key and the state a packet reads

@inline export function entAf(e: usize): u8 {
  return load<u8>(e, O_AF);
}
@inline export function setEntAf(e: usize, v: u8): void {
  store<u8>(e, v, O_AF);
}
@inline export function entProto(e: usize): u8 {
  return load<u8>(e, O_PROTO);
}
@inline export function setEntProto(e: usize, v: u8): void {
  store<u8>(e, v, O_PROTO);
}
@inline export function entState(e: usize): u8 {
  return load<u8>(e, O_STATE);
}
@inline export function setEntState(e: usize, v: u8): void {
  store<u8>(e, v, O_STATE);
}
// 0 for a free entry
@inline export function entLive(e: usize): u8 {
  return load<u8>(e, O_LIVE) & LIVE;
}
@inline export function setEntLive(e: usize, v: u8): void {
  store<u8>(e, (load<u8>(e, O_LIVE) & ~LIVE) | (v & LIVE), O_LIVE);
}
@inline export function entFlags(e: usize): u32 {
  return load<u32>(e, O_FLAGS);
}
@inline export function setEntFlags(e: usize, v: u32): void {
  store<u32>(e, v, O_FLAGS);
}
// ports, host order
@inline export function entCport(e: usize): u16 {
  return load<u16>(e, O_CPORT);
}
@inline export function setEntCport(e: usize, v: u16): void {
  store<u16>(e, v, O_CPORT);
}
@inline export function entVport(e: usize): u16 {
  return load<u16>(e, O_VPORT);
}
@inline export function setEntVport(e: usize, v: u16): void {
  store<u16>(e, v, O_VPORT);
}
@inline export function entDport(e: usize): u16 {
  return load<u16>(e, O_DPORT);
}
@inline export function setEntDport(e: usize, v: u16): void {
  store<u16>(e, v, O_DPORT);
}
@inline export function entLport(e: usize): u16 {
  return load<u16>(e, O_LPORT);
}
@inline export function setEntLport(e: usize, v: u16): void {
  store<u16>(e, v, O_LPORT);
}
// destination id, -1 when unbound
@inline export function entDest(e: usize): i32 {
  return load<i32>(e, O_DEST);
}
@inline export function setEntDest(e: usize, v: i32): void {
  store<i32>(e, v, O_DEST);
}
@inline export function entTimeout(e: usize): u32 {
  return load<u32>(e, O_TIMEOUT);
}
@inline export function setEntTimeout(e: usize, v: u32): void {
  store<u32>(e, v, O_TIMEOUT);
}
@inline export function entExpires(e: usize): i64 {
  return load<i64>(e, O_EXPIRES);
}
@inline export function setEntExpires(e: usize, v: i64): void {
  store<i64>(e, v, O_EXPIRES);
}
// packets in (the kernel's in_pkts, which the sync threshold counts)
@inline export function entInpkts(e: usize): u32 {
  return load<u32>(e, O_INPKTS);
}
@inline export function setEntInpkts(e: usize, v: u32): void {
  store<u32>(e, v, O_INPKTS);
}

// ---- addresses: word w (0-3) of one of ADDR_*; word 3 in the hot line, words 0-2 in the cold one

@inline function word3At(e: usize, which: usize): usize {
  return e + O_ADDR3 + (which << 2);
}
@inline function highAt(e: usize, which: usize): usize {
  return cold(e) + OC_ADDR + which * 12;
}
@inline export function entAddr(e: usize, which: usize, w: usize): u32 {
  if (w == 3) return load<u32>(word3At(e, which));
  return hasCold(e) ? load<u32>(highAt(e, which) + (w << 2)) : 0;
}
@inline export function setEntAddr(e: usize, which: usize, a0: u32, a1: u32, a2: u32, a3: u32): void {
  store<u32>(word3At(e, which), a3);
  if ((a0 | a1 | a2) != 0 || hasCold(e)) {
    const h = coldForWrite(e) + OC_ADDR + which * 12;
    store<u32>(h, a0);
    store<u32>(h, a1, 4);
    store<u32>(h, a2, 8);
  }
}
// word 3 first: it differs first between IPv4 addresses, and between most IPv6 ones
@inline export function entAddrEq(e: usize, which: usize, a0: u32, a1: u32, a2: u32, a3: u32): bool {
  if (load<u32>(word3At(e, which)) != a3) return false;
  if (!hasCold(e)) return (a0 | a1 | a2) == 0;
  const h = highAt(e, which);
  return load<u32>(h, 8) == a2 && load<u32>(h, 4) == a1 && load<u32>(h) == a0;
}
// A client-side lookup's key compare in packed words, the same predicate as comparing the fields one by
// one (entCport, entVport, entAddrEq of the client and virtual addresses, entProto, entAf): the two ports
// as one u32, word 3 of both addresses as one u64, af and protocol as one u16, then words 0-2.
@inline export function entInKeyEq(
  e: usize,
  af: u32,
  proto: u32,
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
): bool {
  if (load<u32>(e, O_CPORT) != (cport | (vport << 16))) return false;
  if (load<u64>(word3At(e, ADDR_CLIENT)) != (((<u64>v3) << 32) | <u64>c3)) return false;
  if (<u32>load<u16>(e, O_AF) != (af | (proto << 8))) return false;
  if (!hasCold(e)) return (c0 | c1 | c2 | v0 | v1 | v2) == 0;
  const hc = highAt(e, ADDR_CLIENT),
    hv = highAt(e, ADDR_VIRTUAL);
  return (
    load<u32>(hc, 8) == c2 &&
    load<u32>(hc, 4) == c1 &&
    load<u32>(hc) == c0 &&
    load<u32>(hv, 8) == v2 &&
    load<u32>(hv, 4) == v1 &&
    load<u32>(hv) == v0
  );
}
@inline export function entAddrSame(e: usize, x: usize, y: usize): bool {
  return entAddrEq(e, x, entAddr(e, y, 0), entAddr(e, y, 1), entAddr(e, y, 2), entAddr(e, y, 3));
}

// ---- persistence templates and the sync master (rarely read: the cold line)

// the controlling template's index+1, 0 none
@inline export function entCtl(e: usize): u32 {
  return hasCold(e) ? load<u32>(cold(e), OC_CTL) : 0;
}
@inline export function setEntCtl(e: usize, v: u32): void {
  if (v != 0 || hasCold(e)) store<u32>(coldForWrite(e), v, OC_CTL);
}
// connections a template controls
@inline export function entNctl(e: usize): u32 {
  return hasCold(e) ? load<u32>(cold(e), OC_NCTL) : 0;
}
@inline export function setEntNctl(e: usize, v: u32): void {
  if (v != 0 || hasCold(e)) store<u32>(coldForWrite(e), v, OC_NCTL);
}
// the state last sent to the sync backups (the kernel's cp->old_state)
@inline export function entSyncState(e: usize): u8 {
  return hasCold(e) ? load<u8>(cold(e), OC_SYNC_STATE) : 0;
}
@inline export function setEntSyncState(e: usize, v: u8): void {
  if (v != 0 || hasCold(e)) store<u8>(coldForWrite(e), v, OC_SYNC_STATE);
}

// ---- the table's own links (conn/table.ts)

// the address of the entry's link in its client-side (side 0) or reply-side (1) chain: index+1 of the next
@inline export function entLinkAt(e: usize, side: u32): usize {
  return e + O_IN_NEXT + ((<usize>side) << 2);
}
@inline export function entNext(e: usize, side: u32): u32 {
  return load<u32>(entLinkAt(e, side));
}
@inline export function setEntNext(e: usize, side: u32, v: u32): void {
  store<u32>(entLinkAt(e, side), v);
}
// where the entry sits in its wheel slot (chunk << 4 | word), 0: not filed
@inline export function entWheelPos(e: usize): u32 {
  return load<u32>(posAt(e));
}
@inline export function setEntWheelPos(e: usize, v: u32): void {
  store<u32>(posAt(e), v);
}
// the wheel tick the entry is filed under
@inline export function entWheelTick(e: usize): u32 {
  return load<u32>(e, O_WTICK);
}
@inline export function setEntWheelTick(e: usize, v: u32): void {
  store<u32>(e, v, O_WTICK);
}
