// A straightforward Maglev table build (Eisenbud et al., NSDI '16, pseudocode 1) in TypeScript over plain
// arrays, with the kernel's weighting (each destination claims weight/gcd slots per round). offset/skip come
// from a 32-bit mix of the address and port instead of the kernel's siphash.

export interface MaglevDest {
  addr: number;
  port: number;
  weight: number;
}

export function mix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

const gcd = (a: number, b: number): number => (b ? gcd(b, a % b) : a);

// entry[slot] = index into ds, -1 when no destination has weight
export function maglevTable(ds: MaglevDest[], m: number): Int32Array {
  const n = ds.length;
  const entry = new Int32Array(m).fill(-1);
  let g = 0;
  for (const d of ds) if (d.weight > 0) g = g ? gcd(d.weight, g) : d.weight;
  if (n === 0 || g === 0) return entry;
  const offset: number[] = [],
    skip: number[] = [],
    next: number[] = [],
    turns: number[] = [];
  for (const d of ds) {
    offset.push(mix32(d.addr ^ Math.imul(d.port, 0x9e3779b1)) % m);
    skip.push((mix32(d.addr + d.port + 0x27d4eb2d) % (m - 1)) + 1);
    next.push(0);
    turns.push(Math.floor(d.weight / g));
  }
  let filled = 0;
  for (;;) {
    for (let i = 0; i < n; i++) {
      for (let t = 0; t < turns[i]; t++) {
        let c = (offset[i] + next[i] * skip[i]) % m;
        while (entry[c] >= 0) {
          next[i]++;
          c = (offset[i] + next[i] * skip[i]) % m;
        }
        entry[c] = i;
        next[i]++;
        if (++filled === m) return entry;
      }
    }
  }
}

// The kernel's lookup hash for mh, hsiphash of one u32 as a 64-bit kernel computes it (SipHash-1-3 on
// 64-bit words: one compression round, three finalization rounds), written as a TypeScript engineer would:
// each 64-bit word as two 32-bit halves (a: high, b: low) in locals. mh's two keys have both key words
// equal and below 2^32: hsiphash1u32(v, key) is hsiphashKeyed(v, 0, key, 0, key).
export function hsiphash1u32(v: number, key: number): number {
  return hsiphashKeyed(v, 0, key, 0, key);
}
export function hsiphashKeyed(v: number, k0h: number, k0l: number, k1h: number, k1l: number): number {
  // v0..v3 = IV ^ (k0, k1, k0, k1)
  let a0 = (0x736f6d65 ^ k0h) >>> 0,
    b0 = (0x70736575 ^ k0l) >>> 0;
  let a1 = (0x646f7261 ^ k1h) >>> 0,
    b1 = (0x6e646f6d ^ k1l) >>> 0;
  let a2 = (0x6c796765 ^ k0h) >>> 0,
    b2 = (0x6e657261 ^ k0l) >>> 0;
  let a3 = (0x74656462 ^ k1h) >>> 0,
    b3 = (0x79746573 ^ k1l) >>> 0;
  // the last block: length 4 in the top byte, the word's 4 bytes at the bottom
  const mh = 0x04000000,
    ml = v >>> 0;
  a3 = (a3 ^ mh) >>> 0;
  b3 = (b3 ^ ml) >>> 0;
  for (let r = 0; r < 4; r++) {
    let t: number, lo: number;
    // v0 += v1; v1 = rotl(v1, 13); v1 ^= v0; v0 = rotl(v0, 32)
    lo = (b0 + b1) >>> 0;
    a0 = (a0 + a1 + (lo < b0 ? 1 : 0)) >>> 0;
    b0 = lo;
    t = a1;
    a1 = ((a1 << 13) | (b1 >>> 19)) >>> 0;
    b1 = ((b1 << 13) | (t >>> 19)) >>> 0;
    a1 = (a1 ^ a0) >>> 0;
    b1 = (b1 ^ b0) >>> 0;
    t = a0;
    a0 = b0;
    b0 = t;
    // v2 += v3; v3 = rotl(v3, 16); v3 ^= v2
    lo = (b2 + b3) >>> 0;
    a2 = (a2 + a3 + (lo < b2 ? 1 : 0)) >>> 0;
    b2 = lo;
    t = a3;
    a3 = ((a3 << 16) | (b3 >>> 16)) >>> 0;
    b3 = ((b3 << 16) | (t >>> 16)) >>> 0;
    a3 = (a3 ^ a2) >>> 0;
    b3 = (b3 ^ b2) >>> 0;
    // v0 += v3; v3 = rotl(v3, 21); v3 ^= v0
    lo = (b0 + b3) >>> 0;
    a0 = (a0 + a3 + (lo < b0 ? 1 : 0)) >>> 0;
    b0 = lo;
    t = a3;
    a3 = ((a3 << 21) | (b3 >>> 11)) >>> 0;
    b3 = ((b3 << 21) | (t >>> 11)) >>> 0;
    a3 = (a3 ^ a0) >>> 0;
    b3 = (b3 ^ b0) >>> 0;
    // v2 += v1; v1 = rotl(v1, 17); v1 ^= v2; v2 = rotl(v2, 32)
    lo = (b2 + b1) >>> 0;
    a2 = (a2 + a1 + (lo < b2 ? 1 : 0)) >>> 0;
    b2 = lo;
    t = a1;
    a1 = ((a1 << 17) | (b1 >>> 15)) >>> 0;
    b1 = ((b1 << 17) | (t >>> 15)) >>> 0;
    a1 = (a1 ^ a2) >>> 0;
    b1 = (b1 ^ b2) >>> 0;
    t = a2;
    a2 = b2;
    b2 = t;
    if (r === 0) {
      a0 = (a0 ^ mh) >>> 0;
      b0 = (b0 ^ ml) >>> 0;
      b2 = (b2 ^ 0xff) >>> 0;
    }
  }
  return (b0 ^ b1 ^ b2 ^ b3) >>> 0;
}
