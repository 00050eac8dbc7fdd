// Random memory access latency by pointer chasing: a single random cycle through the 64-byte lines of a
// large typed array (Sattolo's algorithm), each step a load whose address is the previous load's value.
// The same test runs in WASM (assembly/bench.ts) through src/core/bench-api.ts.

export class JsChase {
  readonly words: Uint32Array;
  private at = 0;
  constructor(
    readonly bytes: number,
    seed = 0x1234567,
  ) {
    const lines = Math.floor(bytes / 64);
    this.words = new Uint32Array(lines * 16);
    // Sattolo over line numbers, then link line i to perm[i] (word index = line * 16)
    const perm = new Uint32Array(lines);
    for (let i = 0; i < lines; i++) perm[i] = i;
    let s = seed >>> 0 || 1;
    const rnd = () => {
      s ^= s << 13;
      s >>>= 0;
      s ^= s >>> 17;
      s ^= s << 5;
      s >>>= 0;
      return s;
    };
    for (let i = lines - 1; i > 0; i--) {
      const j = ((rnd() * 2 ** 21 + (rnd() >>> 11)) % i) >>> 0; // j < i
      const t = perm[i];
      perm[i] = perm[j];
      perm[j] = t;
    }
    for (let i = 0; i < lines; i++) this.words[i * 16] = perm[i] * 16;
  }
  // `chains` independent walks at once (the batched baseline), `steps` links each, each from its own line
  private chainAt = new Uint32Array(0);
  chaseMulti(chains: number, steps: number): number {
    if (this.chainAt.length !== chains) {
      const lines = this.words.length / 16;
      this.chainAt = new Uint32Array(chains);
      for (let c = 0; c < chains; c++) this.chainAt[c] = Math.floor((lines * c) / chains) * 16;
    }
    const w = this.words,
      at = this.chainAt;
    for (let k = 0; k < steps; k++) for (let c = 0; c < chains; c++) at[c] = w[at[c]];
    let sum = 0;
    for (let c = 0; c < chains; c++) sum += at[c];
    return sum;
  }
  // follows `steps` links; returns where it stopped
  chase(steps: number): number {
    const w = this.words;
    let at = this.at;
    for (let k = 0; k < steps; k++) at = w[at];
    this.at = at;
    return at;
  }
}
