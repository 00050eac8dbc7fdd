// A test-only entry point for the hash functions: test/hash.test.ts compiles this file on its own (its
// exports become the module's exports), so the kernel vectors are checked without touching index.ts.
import { hash32 } from "./hash32";
import { hsiphash, hsiphash1u32, hsiphashSelfTest as selfTest } from "./siphash";

export function hash_32(val: u32, bits: i32): u32 {
  return hash32(val, bits);
}
export function hsiphash_1u32(v: u32, k0: u64, k1: u64): u32 {
  return hsiphash1u32(v, k0, k1);
}
export function hsiphashSelfTest(): i32 {
  return selfTest();
}

// hsiphash over the first len bytes of a 64-byte buffer the host fills through bufPtr()
const buf = new StaticArray<u8>(64);
export function bufPtr(): usize {
  return changetype<usize>(buf);
}
export function hsiphashBuf(len: i32, k0: u64, k1: u64): u32 {
  return hsiphash(changetype<usize>(buf), len, k0, k1);
}
