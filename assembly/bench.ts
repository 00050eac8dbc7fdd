// Benchmark-only exports (bench/ is the one caller, through src/core/bench-api.ts): a pointer-chasing
// test of this machine's random memory access latency, run inside WASM linear memory so it can be printed
// beside the connection lookup figures of the same run. Nothing here is used by the data plane.
//
// The chase area is `lines` cache lines of 64 bytes; the first u32 of each line holds the byte offset of the
// next line to visit, following one random cycle through every line (Sattolo's algorithm), so each step is
// a dependent load the prefetchers cannot predict.

const LINE: usize = 64;
let chaseBase: usize = 0;
let chaseLines: u32 = 0;
let chaseAt: usize = 0;

// xorshift64*: deterministic, seeded from the host
let rs: u64 = 0x9e3779b97f4a7c15;
@inline function rnd(): u64 {
  rs ^= rs >> 12;
  rs ^= rs << 25;
  rs ^= rs >> 27;
  return rs * 0x2545f4914f6cdd1d;
}

// Builds the cycle over `lines` lines (allocating lines * 64 bytes, freeing a previous area); returns the
// area's address, or 0 when the memory could not be had.
export function benchChaseInit(lines: u32, seed: u64): usize {
  if (chaseBase != 0) {
    heap.free(chaseBase);
    chaseBase = 0;
    chaseLines = 0;
  }
  if (lines < 2) return 0;
  rs = seed != 0 ? seed : 0x9e3779b97f4a7c15;
  const base = heap.alloc(<usize>lines * LINE);
  // identity, then Sattolo's shuffle of the line numbers (one cycle through all of them), kept in the
  // second word of each line; then the links in the first word
  for (let i: u32 = 0; i < lines; i++) store<u32>(base + <usize>i * LINE, i, 4);
  for (let i: u32 = lines - 1; i > 0; i--) {
    const j = <u32>(rnd() % <u64>i); // j < i: Sattolo, a single cycle
    const pi = base + <usize>i * LINE + 4,
      pj = base + <usize>j * LINE + 4;
    const t = load<u32>(pi);
    store<u32>(pi, load<u32>(pj));
    store<u32>(pj, t);
  }
  // perm[] read as "next line after i is perm[i]": a single cycle because Sattolo makes one
  for (let i: u32 = 0; i < lines; i++) {
    const p = base + <usize>i * LINE;
    store<u32>(p, load<u32>(p, 4) << 6);
  }
  chaseBase = base;
  chaseLines = lines;
  chainCount = 0;
  chaseAt = 0;
  return base;
}

// Follows `steps` links from where the last call stopped; returns the line reached (so the loads count).
export function benchChase(steps: i32): u32 {
  const base = chaseBase;
  if (base == 0) return 0;
  let at = chaseAt;
  for (let k = 0; k < steps; k++) at = <usize>load<u32>(base + at);
  chaseAt = at;
  return <u32>(at >> 6);
}

// `chains` independent walks of the same cycle in flight at once (at most 16), each starting at its own
// line, `steps` links each: the loads of different chains overlap as a batch of independent lookups'
// misses can, so this is the throughput baseline for lookupBatch (benchChase is the latency one). Returns
// a checksum of where the chains stopped.
const chainAt = new StaticArray<usize>(16);
let chainCount: i32 = 0;
export function benchChaseMulti(chains: i32, steps: i32): u32 {
  const base = chaseBase;
  if (base == 0 || chains < 1) return 0;
  if (chains > 16) chains = 16;
  if (chains != chainCount) {
    for (let c = 0; c < chains; c++) unchecked((chainAt[c] = ((<usize>chaseLines * <usize>c) / <usize>chains) * LINE));
    chainCount = chains;
  }
  for (let k = 0; k < steps; k++) {
    for (let c = 0; c < chains; c++) unchecked((chainAt[c] = <usize>load<u32>(base + unchecked(chainAt[c]))));
  }
  let sum: u32 = 0;
  for (let c = 0; c < chains; c++) sum += <u32>unchecked(chainAt[c]);
  return sum >> 6;
}

export function benchChaseFree(): void {
  if (chaseBase != 0) {
    heap.free(chaseBase);
    chaseBase = 0;
    chaseLines = 0;
  }
}
