// Checksums for the packet path: the Internet checksum (RFC 1071) with incremental updates (RFC 1624,
// eqn. 3: HC' = ~(~HC + ~m + m')), and CRC32c for SCTP (RFC 4960 appendix B, reflected, as the
// kernel's sctp_compute_cksum).
//
// Everything works on values loaded little-endian straight from memory: the one's complement sum is
// byte-order independent (RFC 1071 §2(B)), so as long as the checksum field and the data are loaded the
// same way, no byte swaps are needed. Deltas are accumulated in a u64 (32-bit words add as two 16-bit
// halves modulo 0xffff) and folded once.

// Folds a 64-bit one's complement accumulator to 16 bits.
@inline export function fold(s: u64): u32 {
  s = (s & 0xffffffff) + (s >> 32);
  s = (s & 0xffff) + (s >> 16);
  s = (s & 0xffff) + (s >> 16);
  s = (s & 0xffff) + (s >> 16);
  return <u32>s;
}

// The delta for replacing a 32-bit word old by new: ~old + new.
@inline export function delta32(oldv: u32, newv: u32): u64 {
  return <u64>~oldv + <u64>newv;
}

// The delta for replacing a 16-bit word old by new.
@inline export function delta16(oldv: u32, newv: u32): u64 {
  return <u64>(~oldv & 0xffff) + <u64>(newv & 0xffff);
}

// Applies a delta to a checksum field value (as loaded): returns the new field value.
@inline export function csumApply(field: u32, d: u64): u32 {
  return ~fold(<u64>(~field & 0xffff) + d) & 0xffff;
}

// CRC32c (Castagnoli, reflected polynomial 0x82F63B78), slice-by-4 tables built once at start-up.
const CRC_T = new StaticArray<u32>(1024);
function crcInit(): void {
  for (let i: u32 = 0; i < 256; i++) {
    let c = i;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
    unchecked((CRC_T[i] = c));
  }
  for (let i: u32 = 0; i < 256; i++) {
    let c = unchecked(CRC_T[i]);
    for (let t: u32 = 1; t < 4; t++) {
      c = unchecked(CRC_T[c & 0xff]) ^ (c >>> 8);
      unchecked((CRC_T[t * 256 + i] = c));
    }
  }
}
crcInit();

// CRC32c of [p, p+len) with the 4 bytes at p+zeroAt read as zero (the SCTP checksum field), finished
// (inverted); the caller stores it little-endian, as the kernel's cpu_to_le32.
export function crc32cSkip(p: usize, len: u32, zeroAt: u32): u32 {
  const t = changetype<usize>(CRC_T);
  let c: u32 = 0xffffffff;
  let i: u32 = 0;
  // bytes before the field
  while (i < zeroAt) {
    c = load<u32>(t + ((<usize>((c ^ load<u8>(p + i)) & 0xff)) << 2)) ^ (c >>> 8);
    i++;
  }
  // the field as zeros
  for (let k = 0; k < 4; k++) {
    c = load<u32>(t + ((<usize>(c & 0xff)) << 2)) ^ (c >>> 8);
  }
  i += 4;
  // 4 bytes at a time
  while (i + 4 <= len) {
    c ^= load<u32>(p + i);
    c =
      load<u32>(t + ((<usize>(768 + (c & 0xff))) << 2)) ^
      load<u32>(t + ((<usize>(512 + ((c >>> 8) & 0xff))) << 2)) ^
      load<u32>(t + ((<usize>(256 + ((c >>> 16) & 0xff))) << 2)) ^
      load<u32>(t + ((<usize>(c >>> 24)) << 2));
    i += 4;
  }
  while (i < len) {
    c = load<u32>(t + ((<usize>((c ^ load<u8>(p + i)) & 0xff)) << 2)) ^ (c >>> 8);
    i++;
  }
  return ~c;
}
