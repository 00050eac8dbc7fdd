// hash_32 (include/linux/hash.h): multiplicative hashing with the golden-ratio constant, keeping the top
// `bits` bits of the 32-bit product. dh, sh, lblc and lblcr key their tables with it.

export const GOLDEN_RATIO_32: u32 = 0x61c88647;

// hash_32(val, bits) for 1 <= bits <= 32
@inline export function hash32(val: u32, bits: i32): u32 {
  return (val * GOLDEN_RATIO_32) >>> <u32>(32 - bits);
}
