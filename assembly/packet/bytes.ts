// The current packet, [pb, pb+pl), and bounds-asserted access to it (little-endian loads; be16 for numbers
// on the wire). The debug build traps on any access outside the packet; the release build compiles the
// asserts out, so the parsers' own length checks are what keep them inside.
export let pb: usize = 0;
export let pl: u32 = 0;

@inline export function ld8(o: u32): u32 {
  assert(<u64>o + 1 <= <u64>pl);
  return <u32>load<u8>(pb + <usize>o);
}
@inline export function ld16(o: u32): u32 {
  assert(<u64>o + 2 <= <u64>pl);
  return <u32>load<u16>(pb + <usize>o);
}
@inline export function ld32(o: u32): u32 {
  assert(<u64>o + 4 <= <u64>pl);
  return load<u32>(pb + <usize>o);
}
@inline export function be16(o: u32): u32 {
  return <u32>bswap<u16>(<u16>ld16(o));
}
@inline export function st8(o: u32, v: u32): void {
  assert(<u64>o + 1 <= <u64>pl);
  store<u8>(pb + <usize>o, <u8>v);
}
@inline export function st16(o: u32, v: u32): void {
  assert(<u64>o + 2 <= <u64>pl);
  store<u16>(pb + <usize>o, <u16>v);
}
@inline export function st32(o: u32, v: u32): void {
  assert(<u64>o + 4 <= <u64>pl);
  store<u32>(pb + <usize>o, v);
}
// a connection port (host order u16) as it sits on the wire, loaded little-endian
@inline export function wirePort(port: u16): u32 {
  return <u32>bswap<u16>(port);
}

// The one's complement sum of [o, o+n) as loaded little-endian (n even or odd), unfolded.
export function sumBytes(o: u32, n: u32): u64 {
  assert(<u64>o + <u64>n <= <u64>pl);
  let s: u64 = 0;
  let i: u32 = 0;
  for (; i + 4 <= n; i += 4) s += <u64>load<u32>(pb + <usize>(o + i));
  for (; i + 2 <= n; i += 2) s += <u64>load<u16>(pb + <usize>(o + i));
  if (i < n) s += <u64>load<u8>(pb + <usize>(o + i));
  return s;
}
