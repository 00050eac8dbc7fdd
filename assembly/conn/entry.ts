// A connection entry's fields, each read and written only through the accessors here, by name: the entry's
// layout (which bytes, which line, which array) is this file's alone, so trying another layout is a change
// here and not in every module of the data plane. `e` is an entry's address as E(i) gives it.
//
// Entry layout, 128 bytes each (docs/conn-table.md)
export const ENTRY_SHIFT: u32 = 7;
const O_IN_NEXT: usize = 0; // u32 index+1 in the "in" chain
const O_OUT_NEXT: usize = 4; // u32 index+1 in the "out" chain
const O_W_POS: usize = 8; // u32 where the entry sits in its wheel slot (chunk << 4 | word), 0: not filed
const O_FREE_NEXT: usize = 8; // u32 index+1 in the free list (a free entry is never filed)
const O_SYNC_STATE: usize = 12; // u8 the state last sent to the sync backups (cp->old_state)
const O_AF: usize = 16; // u8
const O_PROTO: usize = 17; // u8
const O_STATE: usize = 18; // u8
const O_LIVE: usize = 19; // u8
const O_FLAGS: usize = 20; // u32
const O_CPORT: usize = 24; // u16 (host order)
const O_VPORT: usize = 26;
const O_DPORT: usize = 28;
const O_LPORT: usize = 30; // full-NAT local port (= cport otherwise)
const O_CADDR: usize = 32; // 4 x u32 host-order words
const O_VADDR: usize = 48;
const O_DADDR: usize = 64;
const O_LADDR: usize = 80; // full-NAT local address (= caddr otherwise)
const O_DEST: usize = 96; // i32 destination id
const O_CTL: usize = 100; // u32 template index+1
const O_NCTL: usize = 104; // u32 children of a template
const O_TIMEOUT: usize = 108; // u32 ms
const O_EXPIRES: usize = 112; // i64 ms
const O_WTICK: usize = 120; // u32 the wheel tick the entry is filed under
const O_INPKTS: usize = 124; // u32

// An entry's four addresses, each four host-order words (an IPv4 address is word 3, words 0-2 zero)
export const ADDR_CLIENT: usize = O_CADDR;
export const ADDR_VIRTUAL: usize = O_VADDR;
export const ADDR_DEST: usize = O_DADDR;
export const ADDR_LOCAL: usize = O_LADDR; // full-NAT local address (= the client's otherwise)

let base: usize = 0;

@inline export function E(i: u32): usize {
  return base + ((<usize>i) << ENTRY_SHIFT);
}

// The entries' memory for cap entries, zeroed (once, from connInit).
export function entriesAlloc(cap: u32): void {
  const bytes = (<usize>cap) << ENTRY_SHIFT;
  base = heap.alloc(bytes);
  memory.fill(base, 0, bytes);
}

// A fresh entry: every field zero, live.
@inline export function entClear(e: usize): void {
  memory.fill(e, 0, 1 << ENTRY_SHIFT);
  store<u8>(e, 1, O_LIVE);
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
  return load<u8>(e, O_LIVE);
}
@inline export function setEntLive(e: usize, v: u8): void {
  store<u8>(e, v, O_LIVE);
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

// ---- addresses: word w (0-3) of one of ADDR_*

@inline export function entAddr(e: usize, which: usize, w: usize): u32 {
  return load<u32>(e + which + (w << 2));
}
@inline export function setEntAddr(e: usize, which: usize, a0: u32, a1: u32, a2: u32, a3: u32): void {
  store<u32>(e + which, a0);
  store<u32>(e + which, a1, 4);
  store<u32>(e + which, a2, 8);
  store<u32>(e + which, a3, 12);
}
// word 3 first: it differs first between IPv4 addresses, and between most IPv6 ones
@inline export function entAddrEq(e: usize, which: usize, a0: u32, a1: u32, a2: u32, a3: u32): bool {
  return (
    load<u32>(e + which, 12) == a3 &&
    load<u32>(e + which, 8) == a2 &&
    load<u32>(e + which, 4) == a1 &&
    load<u32>(e + which) == a0
  );
}
@inline export function entAddrSame(e: usize, x: usize, y: usize): bool {
  return entAddrEq(e, x, entAddr(e, y, 0), entAddr(e, y, 1), entAddr(e, y, 2), entAddr(e, y, 3));
}

// ---- persistence templates and the sync master (rarely read)

// the controlling template's index+1, 0 none
@inline export function entCtl(e: usize): u32 {
  return load<u32>(e, O_CTL);
}
@inline export function setEntCtl(e: usize, v: u32): void {
  store<u32>(e, v, O_CTL);
}
// connections a template controls
@inline export function entNctl(e: usize): u32 {
  return load<u32>(e, O_NCTL);
}
@inline export function setEntNctl(e: usize, v: u32): void {
  store<u32>(e, v, O_NCTL);
}
// the state last sent to the sync backups (the kernel's cp->old_state)
@inline export function entSyncState(e: usize): u8 {
  return load<u8>(e, O_SYNC_STATE);
}
@inline export function setEntSyncState(e: usize, v: u8): void {
  store<u8>(e, v, O_SYNC_STATE);
}

// ---- the table's own links (conn/table.ts)

// the address of the entry's link in its client-side (side 0) or reply-side (1) chain: index+1 of the next
@inline export function entLinkAt(e: usize, side: u32): usize {
  return e + (side == 0 ? O_IN_NEXT : O_OUT_NEXT);
}
@inline export function entNext(e: usize, side: u32): u32 {
  return load<u32>(entLinkAt(e, side));
}
@inline export function setEntNext(e: usize, side: u32, v: u32): void {
  store<u32>(entLinkAt(e, side), v);
}
// index+1 of the next free entry (a free entry only)
@inline export function entFreeNext(e: usize): u32 {
  return load<u32>(e, O_FREE_NEXT);
}
@inline export function setEntFreeNext(e: usize, v: u32): void {
  store<u32>(e, v, O_FREE_NEXT);
}
// where the entry sits in its wheel slot (chunk << 4 | word), 0: not filed
@inline export function entWheelPos(e: usize): u32 {
  return load<u32>(e, O_W_POS);
}
@inline export function setEntWheelPos(e: usize, v: u32): void {
  store<u32>(e, v, O_W_POS);
}
// the wheel tick the entry is filed under
@inline export function entWheelTick(e: usize): u32 {
  return load<u32>(e, O_WTICK);
}
@inline export function setEntWheelTick(e: usize, v: u32): void {
  store<u32>(e, v, O_WTICK);
}
