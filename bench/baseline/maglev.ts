// A straightforward Maglev table build (Eisenbud et al., NSDI '16, pseudocode 1) in TypeScript over plain
// arrays, with the kernel's weighting (each destination claims weight/gcd slots per round). offset/skip come
// from a 32-bit mix of the address and port instead of the kernel's siphash.

export interface MaglevDest { addr: number; port: number; weight: number }

export function mix32(h: number): number {
  h ^= h >>> 16; h = Math.imul(h, 0x85ebca6b); h ^= h >>> 13; h = Math.imul(h, 0xc2b2ae35); h ^= h >>> 16;
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
  const offset: number[] = [], skip: number[] = [], next: number[] = [], turns: number[] = [];
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
        while (entry[c] >= 0) { next[i]++; c = (offset[i] + next[i] * skip[i]) % m; }
        entry[c] = i;
        next[i]++;
        if (++filled === m) return entry;
      }
    }
  }
}
