// hsiphash as a 64-bit Linux kernel computes it (lib/siphash.c, BITS_PER_LONG == 64): there the
// "half" SipHash is really SipHash-1-3 on 64-bit words, with an hsiphash_key_t of two 64-bit words,
// the input length in the top byte of the final block, and the low 32 bits of v0^v1^v2^v3 as the
// result. (32-bit kernels run HalfSipHash-1-3 instead and give other values; we follow x86_64.)
// mh hashes a 4-byte host-order word with it, see hsiphash1u32().

// the SipHash initial state ("somepseudorandomlygeneratedbytes")
const IV0: u64 = 0x736f6d6570736575;
const IV1: u64 = 0x646f72616e646f6d;
const IV2: u64 = 0x6c7967656e657261;
const IV3: u64 = 0x7465646279746573;

// the four state words, kept in globals so the rounds inline into straight-line code
let v0: u64 = 0,
  v1: u64 = 0,
  v2: u64 = 0,
  v3: u64 = 0;

@inline function sipRound(): void {
  v0 += v1;
  v1 = rotl<u64>(v1, 13);
  v1 ^= v0;
  v0 = rotl<u64>(v0, 32);
  v2 += v3;
  v3 = rotl<u64>(v3, 16);
  v3 ^= v2;
  v0 += v3;
  v3 = rotl<u64>(v3, 21);
  v3 ^= v0;
  v2 += v1;
  v1 = rotl<u64>(v1, 17);
  v1 ^= v2;
  v2 = rotl<u64>(v2, 32);
}

@inline function start(k0: u64, k1: u64): void {
  v0 = IV0 ^ k0;
  v1 = IV1 ^ k1;
  v2 = IV2 ^ k0;
  v3 = IV3 ^ k1;
}

// one compression round per 8-byte block
@inline function block(m: u64): void {
  v3 ^= m;
  sipRound();
  v0 ^= m;
}

// the last block (length byte + tail bytes), then three finalization rounds
@inline function finish(b: u64): u32 {
  v3 ^= b;
  sipRound();
  v0 ^= b;
  v2 ^= 0xff;
  sipRound();
  sipRound();
  sipRound();
  return <u32>(v0 ^ v1 ^ v2 ^ v3);
}

// hsiphash(&v, 4, key) for a u32 v: its 4 bytes in (little-endian) host order are the whole tail. mh's
// per-decision hash: the state lives in locals here, not in the globals above (a WASM global is a memory
// load and store in V8 at every use, a local a register), the same four rounds written out.
@inline export function hsiphash1u32(v: u32, k0: u64, k1: u64): u32 {
  let a = IV0 ^ k0,
    b = IV1 ^ k1,
    c = IV2 ^ k0,
    d = IV3 ^ k1;
  const m = ((<u64>4) << 56) | <u64>v;
  d ^= m;
  for (let r = 0; r < 4; r++) {
    a += b;
    b = rotl<u64>(b, 13);
    b ^= a;
    a = rotl<u64>(a, 32);
    c += d;
    d = rotl<u64>(d, 16);
    d ^= c;
    a += d;
    d = rotl<u64>(d, 21);
    d ^= a;
    c += b;
    b = rotl<u64>(b, 17);
    b ^= c;
    c = rotl<u64>(c, 32);
    if (r == 0) {
      a ^= m;
      c ^= 0xff;
    }
  }
  return <u32>(a ^ b ^ c ^ d);
}

// hsiphash over len bytes at data (any length; bytes read little-endian as the kernel does on x86_64).
export function hsiphash(data: usize, len: i32, k0: u64, k1: u64): u32 {
  start(k0, k1);
  const end = data + <usize>(len & ~7);
  let p = data;
  while (p < end) {
    block(load<u64>(p));
    p += 8;
  }
  let b: u64 = (<u64>len) << 56;
  const left = len & 7;
  for (let i = 0; i < left; i++) b |= (<u64>load<u8>(p + <usize>i)) << (<u64>(i * 8));
  return finish(b);
}

// ---- self test: the kernel's own hsiphash vectors (lib/siphash_kunit.c, 64-bit table) ----------------
// Key bytes 00 01 .. 0f (key words 0x0706050403020100, 0x0f0e0d0c0b0a0908); vector i is the hash of
// the i bytes 00 01 .. (i-1).
const TEST_K0: u64 = 0x0706050403020100;
const TEST_K1: u64 = 0x0f0e0d0c0b0a0908;
const TEST_VECTORS: StaticArray<u32> = [
  0x050fc4dc, 0x7d57ca93, 0x4dc7d44d, 0xe7ddf7fb, 0x88d38328, 0x49533b67, 0xc59f22a7, 0x9bb11140, 0x8d299a8e,
  0x6c063de4, 0x92ff097f, 0xf94dc352, 0x57b4d9a2, 0x1229ffa7, 0xc0f95d34, 0x2a519956, 0x7d908b66, 0x63dbd80c,
  0xb473e63e, 0x8d297d1c, 0xa6cce040, 0x2b45f844, 0xa320872e, 0xdae6c123, 0x67349c8c, 0x705b0979, 0xca9913a5,
  0x4ade3b35, 0xef6cd00d, 0x4ab1e1f4, 0x43c5e663, 0x8c21d1bc, 0x16a7b60d, 0x7a8ff9bf, 0x1f2a753e, 0xbf186b91,
  0xada26206, 0xa3c33057, 0xae3a36a1, 0x7b108392, 0x99e41531, 0x3f1ad944, 0xc8138825, 0xc28949a6, 0xfaf8876b,
  0x9f042196, 0x68b1d623, 0x8b5114fd, 0xdf074c46, 0x12cc86b3, 0x0a52098f, 0x9d292f9a, 0xa2f41f12, 0x43a71ed0,
  0x73f0bce6, 0x70a7e980, 0x243c6d75, 0xfdb71513, 0xa67d8a08, 0xb7e8f148, 0xf7a644ee, 0x0f1837f2, 0x4b6694e0,
  0xb7bbb3a8,
];

// Returns the number of failing checks (0 = all pass): the 64 vectors at an aligned and at an unaligned
// address, plus the 4-byte fast path against vector 4.
export function hsiphashSelfTest(): i32 {
  const aligned = new StaticArray<u8>(64);
  const shifted = new StaticArray<u8>(65);
  const a = changetype<usize>(aligned);
  const u = changetype<usize>(shifted) + 1;
  let fails = 0;
  for (let i = 0; i < 64; i++) {
    store<u8>(a + <usize>i, <u8>i);
    store<u8>(u + <usize>i, <u8>i);
  }
  for (let i = 0; i < 64; i++) {
    const want = unchecked(TEST_VECTORS[i]);
    if (hsiphash(a, i, TEST_K0, TEST_K1) != want) fails++;
    if (hsiphash(u, i, TEST_K0, TEST_K1) != want) fails++;
  }
  if (hsiphash1u32(0x03020100, TEST_K0, TEST_K1) != unchecked(TEST_VECTORS[4])) fails++;
  return fails;
}
