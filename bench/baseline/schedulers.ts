// Straightforward TypeScript schedulers over a plain array of destination objects: what one would write
// without an index. Same rules as the kernel's (and ours) in the common case, none of the int-overflow
// corners: rr/wrr walk the list, the least-loaded family scans every destination per decision, sh/dh/mh
// look a hash up in a table rebuilt on change, lblc/lblcr keep a Map from destination address to choice.
import { maglevTable, hsiphash1u32 } from "./maglev.ts";

export interface BDest {
  id: number;
  addr: number;
  port: number;
  weight: number;
  active: number;
  inact: number;
  overloaded: boolean;
}

export interface BaselineScheduler {
  // src, sport: the client; dst: the packet's destination address (the VIP)
  schedule(src: number, sport: number, dst: number, now: number): BDest | null;
}

const overhead = (d: BDest) => d.active * 256 + d.inact;
const usable = (d: BDest) => !d.overloaded && d.weight > 0;
const GOLDEN = 0x61c88647;
const hash32 = (v: number, bits: number) => Math.imul(v, GOLDEN) >>> (32 - bits);

class RR implements BaselineScheduler {
  i = -1;
  constructor(readonly ds: BDest[]) {}
  schedule(): BDest | null {
    const n = this.ds.length;
    for (let k = 0; k < n; k++) {
      this.i = (this.i + 1) % n;
      const d = this.ds[this.i];
      if (usable(d)) return d;
    }
    return null;
  }
}

class WRR implements BaselineScheduler {
  i = -1;
  cw = 0;
  mw = 0;
  di = 1;
  constructor(readonly ds: BDest[]) {
    const gcd = (a: number, b: number): number => (b ? gcd(b, a % b) : a);
    let g = 0;
    for (const d of ds) if (d.weight > 0) g = g ? gcd(d.weight, g) : d.weight;
    this.di = g || 1;
    this.mw = Math.max(0, ...ds.map((d) => d.weight));
  }
  schedule(): BDest | null {
    if (this.mw === 0) return null;
    const n = this.ds.length;
    for (let guard = 0; guard < n * (this.mw / this.di + 1) + 1; guard++) {
      this.i = (this.i + 1) % n;
      if (this.i === 0) {
        this.cw -= this.di;
        if (this.cw <= 0) this.cw = this.mw;
      }
      const d = this.ds[this.i];
      if (!d.overloaded && d.weight >= this.cw) return d;
    }
    return null;
  }
}

// argmin scans (lc, wlc, sed, nq) and argmax scans (fo, ovf)
class LC implements BaselineScheduler {
  constructor(readonly ds: BDest[]) {}
  schedule(): BDest | null {
    let best: BDest | null = null,
      bo = 0;
    for (const d of this.ds) {
      if (!usable(d)) continue;
      const o = overhead(d);
      if (!best || o < bo) {
        best = d;
        bo = o;
      }
    }
    return best;
  }
}

class WLC implements BaselineScheduler {
  constructor(readonly ds: BDest[]) {}
  schedule(): BDest | null {
    return wlcScan(this.ds);
  }
}
function wlcScan(ds: BDest[]): BDest | null {
  let best: BDest | null = null,
    bo = 0;
  for (const d of ds) {
    if (!usable(d)) continue;
    const o = overhead(d);
    if (!best || bo * d.weight > o * best.weight) {
      best = d;
      bo = o;
    }
  }
  return best;
}

class SED implements BaselineScheduler {
  constructor(
    readonly ds: BDest[],
    readonly nq: boolean,
  ) {}
  schedule(): BDest | null {
    let best: BDest | null = null,
      bo = 0;
    for (const d of this.ds) {
      if (!usable(d)) continue;
      if (this.nq && d.active === 0) return d;
      const o = d.active + 1;
      if (!best || bo * d.weight > o * best.weight) {
        best = d;
        bo = o;
      }
    }
    return best;
  }
}

class FO implements BaselineScheduler {
  constructor(
    readonly ds: BDest[],
    readonly overflow: boolean,
  ) {}
  schedule(): BDest | null {
    let best: BDest | null = null;
    for (const d of this.ds) {
      if (!usable(d)) continue;
      if (this.overflow && d.active > d.weight) continue;
      if (!best || d.weight > best.weight) best = d;
    }
    return best;
  }
}

// twos: two weighted random draws, each a walk over the list, the less loaded per weight wins
class TWOS implements BaselineScheduler {
  constructor(readonly ds: BDest[]) {}
  private pick(r: number): BDest | null {
    for (const d of this.ds) {
      if (!usable(d)) continue;
      r -= d.weight;
      if (r <= 0) return d;
    }
    return null;
  }
  schedule(): BDest | null {
    let total = 0;
    for (const d of this.ds) if (usable(d)) total += d.weight;
    if (total <= 0) return null;
    const c1 = this.pick(Math.floor(Math.random() * (total + 1)) || 1)!;
    const c2 = this.pick(Math.floor(Math.random() * (total + 1)) || 1)!;
    return c2.weight * overhead(c1) > c1.weight * overhead(c2) ? c2 : c1;
  }
}

// lblc: Map from the destination address to the chosen server; wlc over the service on a miss or when
// the cached server is overloaded (active > weight while some server has active * 2 < weight)
class LBLC implements BaselineScheduler {
  readonly cache = new Map<number, { d: BDest; lastuse: number }>();
  constructor(readonly ds: BDest[]) {}
  protected overloaded(d: BDest): boolean {
    if (d.active <= d.weight) return false;
    for (const x of this.ds) if (x.active * 2 < x.weight) return true;
    return false;
  }
  schedule(_src: number, _sport: number, dst: number, now: number): BDest | null {
    const e = this.cache.get(dst);
    if (e && usable(e.d) && !this.overloaded(e.d)) {
      e.lastuse = now;
      return e.d;
    }
    const d = wlcScan(this.ds);
    if (d) this.cache.set(dst, { d, lastuse: now });
    return d;
  }
}

class LBLCR extends LBLC {
  readonly sets = new Map<number, BDest[]>();
  schedule(_src: number, _sport: number, dst: number, _now: number): BDest | null {
    const set = this.sets.get(dst);
    if (set) {
      const m = wlcScan(set);
      if (m && !this.overloaded(m)) return m;
      const d = wlcScan(this.ds);
      if (d && !set.includes(d)) set.push(d);
      return d;
    }
    const d = wlcScan(this.ds);
    if (d) this.sets.set(dst, [d]);
    return d;
  }
}

// dh: 256 buckets dealt round robin, keyed by the destination address
class DH implements BaselineScheduler {
  readonly table: BDest[] = [];
  constructor(readonly ds: BDest[]) {
    for (let i = 0; i < 256; i++) this.table.push(ds[i % ds.length]);
  }
  schedule(_src: number, _sport: number, dst: number): BDest | null {
    const d = this.table[hash32(dst, 8)];
    return d && usable(d) ? d : null;
  }
}

// sh: 256 buckets, each destination taking `weight` consecutive ones, keyed by the source address
class SH implements BaselineScheduler {
  readonly table: BDest[] = [];
  constructor(readonly ds: BDest[]) {
    let at = 0,
      count = 0;
    for (let i = 0; i < 256; i++) {
      const d = ds[at];
      this.table.push(d);
      if (++count >= d.weight) {
        count = 0;
        at = (at + 1) % ds.length;
      }
    }
  }
  schedule(src: number): BDest | null {
    const d = this.table[hash32(src, 8)];
    return d && usable(d) ? d : null;
  }
}

// mh: a Maglev table (bench/baseline/maglev.ts), keyed by the kernel's hash of the source address
// (hsiphash with the first of ip_vs_mh's two fixed keys; a cheaper hash would be doing less work)
const MH_KEY1 = 2654435761;
class MH implements BaselineScheduler {
  readonly table: Int32Array;
  constructor(
    readonly ds: BDest[],
    m: number,
  ) {
    this.table = maglevTable(ds, m);
  }
  schedule(src: number): BDest | null {
    const i = this.table[hsiphash1u32(src, MH_KEY1) % this.table.length];
    if (i < 0) return null;
    const d = this.ds[i];
    return usable(d) ? d : null;
  }
}

export function makeBaseline(name: string, ds: BDest[], mhTableSize = 4093): BaselineScheduler | null {
  switch (name) {
    case "rr":
      return new RR(ds);
    case "wrr":
      return new WRR(ds);
    case "lc":
      return new LC(ds);
    case "wlc":
      return new WLC(ds);
    case "sed":
      return new SED(ds, false);
    case "nq":
      return new SED(ds, true);
    case "fo":
      return new FO(ds, false);
    case "ovf":
      return new FO(ds, true);
    case "twos":
      return new TWOS(ds);
    case "lblc":
      return new LBLC(ds);
    case "lblcr":
      return new LBLCR(ds);
    case "dh":
      return new DH(ds);
    case "sh":
      return new SH(ds);
    case "mh":
      return new MH(ds, mhTableSize);
  }
  return null;
}
