// lblc: locality-based least connection (ip_vs_lblc.c), plus the table, timer and helpers it shares with
// lblcr (LocalityBase).
//
// A 1024-bucket table keyed by hash_32(packet destination address, 10) maps a destination address to the
// real server chosen for it, with the time it was last used. A hit is kept unless that server is gone,
// quiesced, or "overloaded" in the lblc sense: activeconns > weight while some destination of the service
// has activeconns * 2 < weight. Otherwise wlc over the whole service picks again and the entry is replaced.
// A 60 s timer collects entries: every 30th run a full check drops those idle for lblc_expiration; when the
// table holds more than 16384 entries, entries idle for 6 min go, from a rotating bucket, up to a goal.
import { AF_INET6 } from "../common";
import { Dest } from "../dest/dest";
import { Service } from "../service/service";
import { PacketInfo } from "../packet/info";
import { settings } from "../settings";
import { hash32 } from "../hash/hash32";
import { WeightedLeastConnection } from "./wlc";
import { connOverhead, weightedScan } from "./tree";
import {
  traceOn,
  traceRec,
  tw,
  W_HKEY,
  W_LBUCKET,
  W_FOUND,
  W_PREV,
  W_OUTCOME,
  W_HALFIDLE,
  W_PREV_ACT,
  W_PREV_W,
  W_WLC,
  W_ENTRIES,
  W_EXPIRED,
  OUT_NEW,
  OUT_KEPT,
  OUT_UNAVAILABLE,
  OUT_QUIESCED,
  OUT_OVERLOADED,
  OUT_NONE,
  Q_ENTRIES,
  Q_EXPIRED,
} from "../trace";

export const LOCALITY_TAB_BITS: i32 = 10;
export const LOCALITY_TAB_SIZE: i32 = 1 << LOCALITY_TAB_BITS;
export const LOCALITY_TAB_MASK: i32 = LOCALITY_TAB_SIZE - 1;
export const CHECK_EXPIRE_INTERVAL_MS: i64 = 60 * 1000;
export const ENTRY_TIMEOUT_MS: i64 = 6 * 60 * 1000;
export const COUNT_FOR_FULL_EXPIRATION: i32 = 30;

// traceQuery codes of the locality table (the teaching page draws it; src/ui/sched-state.ts reads them).
// Q_LOC_SNAPSHOT lists the entries (bucket order, then chain order) and returns how many; the others read
// entry i of that list. Times are i64 milliseconds on the data plane's clock, read as two halves.
export const Q_LOC_SNAPSHOT: i32 = 30;
export const Q_LOC_AF: i32 = 31;
export const Q_LOC_ADDR: i32 = 32; // i = entry * 4 + word (a0 .. a3; IPv4 in a3)
export const Q_LOC_BUCKET: i32 = 33;
export const Q_LOC_DEST: i32 = 34; // lblc: the destination id, -1 none
export const Q_LOC_LASTUSE_LO: i32 = 35;
export const Q_LOC_LASTUSE_HI: i32 = 36;
export const Q_LOC_SETLEN: i32 = 37; // lblcr: members
export const Q_LOC_MEMBER: i32 = 38; // lblcr: i = entry * 256 + k, member k in the kernel's order (head first)
export const Q_LOC_LASTMOD_LO: i32 = 39; // lblcr: when the set last changed
export const Q_LOC_LASTMOD_HI: i32 = 40;
export const Q_LOC_TIMER: i32 = 41; // i = 0, 1: the timer's next run (low, high half); 2: its run counter;
// 3, 4: the expiration (lblc/lblcr_expiration, ms; low, high half)

// One cached destination address. lblc uses dest; lblcr uses set (members, the list head being the LAST
// element, so an insert at the head is a push) and lastmod.
export class LocalityEntry {
  af: i32 = 0;
  a0: u32 = 0;
  a1: u32 = 0;
  a2: u32 = 0;
  a3: u32 = 0;
  lastuse: i64 = 0;
  next: LocalityEntry | null = null;
  dest: Dest | null = null;
  set: Array<Dest> | null = null;
  lastmod: i64 = 0;
}

// The weighted least-connection choice over the whole service (__ip_vs_lblc_schedule), as the kernel's
// scan; LocalityBase.wlc() gets the same answer from wlc's tournament tree in O(1) and scans only in the
// tree's int-overflow corner cases.
function overheadOf(d: Dest): i32 {
  return connOverhead(d);
}
export function wlcScan(svc: Service): Dest | null {
  return weightedScan(svc, overheadOf);
}

@inline function halfIdle(d: Dest): bool {
  return <i64>d.activeConns * 2 < <i64>d.weight;
}

// lblc and lblcr extend wlc: its tree (kept by the same hooks) answers the fallback choice.
export class LocalityBase extends WeightedLeastConnection {
  buckets: StaticArray<LocalityEntry | null> = new StaticArray<LocalityEntry | null>(LOCALITY_TAB_SIZE);
  entries: i32 = 0;
  maxSize: i32 = LOCALITY_TAB_SIZE * 16;
  rover: i32 = 0;
  counter: i32 = 1;
  expired: i32 = 0; // entries the timer has collected (tracing reports it)
  // The periodic timer: the core calls tick(svc, now) whenever now >= nextTickAt (the Scheduler field).
  // init() has no clock, so it sets nextTickAt = 0 and the first tick() or schedule() arms the timer 60 s
  // ahead.
  armed: bool = false;
  private free: LocalityEntry | null = null; // recycled entries
  // How many destinations of the service have activeconns * 2 < weight, and which (by dest id).
  halfIdleCount: i32 = 0;
  private counted: Uint8Array = new Uint8Array(64);

  // sysctl lblc_expiration / lblcr_expiration
  expiration(): i64 {
    return settings.lblcExpirationMs;
  }

  // ---- the "some destination has activeconns * 2 < weight" count -------------------------------------
  private mark(d: Dest, on: bool): void {
    const id = d.id;
    if (id < 0) return;
    if (id >= this.counted.length) {
      let cap = this.counted.length;
      while (cap <= id) cap <<= 1;
      const c = new Uint8Array(cap);
      c.set(this.counted);
      this.counted = c;
    }
    const was = unchecked(this.counted[id]) != 0;
    if (was != on) {
      unchecked((this.counted[id] = on ? 1 : 0));
      this.halfIdleCount += on ? 1 : -1;
    }
  }

  hasTimer(): bool {
    return true;
  }

  init(svc: Service): void {
    super.init(svc);
    this.nextTickAt = 0;
    const ds = svc.dests;
    for (let i = 0, n = ds.length; i < n; i++) {
      const d = unchecked(ds[i]);
      this.mark(d, halfIdle(d));
    }
  }

  done(svc: Service): void {
    super.done(svc);
    const b = this.buckets;
    for (let i = 0; i < LOCALITY_TAB_SIZE; i++) {
      let en = unchecked(b[i]);
      while (en) {
        const nx = en.next;
        this.recycle(en);
        en = nx;
      }
      unchecked((b[i] = null));
    }
    this.entries = 0;
  }

  addDest(svc: Service, d: Dest): void {
    super.addDest(svc, d);
    this.mark(d, halfIdle(d));
    this.rebind(d);
  }
  delDest(svc: Service, d: Dest): void {
    super.delDest(svc, d);
    this.mark(d, false);
  }
  updDest(svc: Service, d: Dest): void {
    super.updDest(svc, d);
    this.mark(d, halfIdle(d));
  }
  // A load change only notes the position: the wlc index is read only when the locality table misses
  // (wlc() brings it up to date first), so a hit, the common case, costs O(1) as in the kernel instead of
  // the index's O(log n) upkeep. A destination changing many times between misses is refreshed once.
  private pending: Array<i32> = new Array<i32>();
  private pendingAt: Uint8Array = new Uint8Array(0); // position -> noted in pending
  hasLoadHook(): bool {
    return true;
  }
  loadChanged(svc: Service, d: Dest): void {
    const p = this.slotOf(d);
    if (p >= 0) {
      if (this.pendingAt.length < this.cap) this.pendingAt = new Uint8Array(this.cap);
      if (unchecked(this.pendingAt[p]) == 0) {
        unchecked((this.pendingAt[p] = 1));
        this.pending.push(p);
      }
    }
    if (d.available()) this.mark(d, halfIdle(d));
  }
  private catchUpIndex(): void {
    const ps = this.pending;
    const n = ps.length;
    if (n == 0) return;
    for (let i = 0; i < n; i++) {
      const p = unchecked(ps[i]);
      if (p < this.pendingAt.length) unchecked((this.pendingAt[p] = 0));
      if (p < this.cap) this.refresh(p);
    }
    ps.length = 0;
  }
  // a rebuild evaluates every position: nothing is left pending
  build(svc: Service): void {
    this.pending.length = 0;
    this.pendingAt.fill(0);
    super.build(svc);
  }

  // the weighted least-connection choice over the whole service (the index brought up to date first)
  @inline wlc(svc: Service): Dest | null {
    this.catchUpIndex();
    return this.irregulars > 0 ? wlcScan(svc) : this.best();
  }

  // The kernel's entries hold references, which keep a deleted destination in the trash, and re-adding
  // that address brings the same object back. If the service made a new object instead, point the entries
  // that still refer to an old, deleted one at the new one.
  private rebind(d: Dest): void {
    if (this.entries == 0) return;
    const b = this.buckets;
    for (let i = 0; i < LOCALITY_TAB_SIZE; i++) {
      let en = unchecked(b[i]);
      while (en) {
        const x = en.dest;
        if (x && x !== d && !x.available() && x.sameAddr(d.af, d.a0, d.a1, d.a2, d.a3, d.port)) en.dest = d;
        const set = en.set;
        if (set) {
          for (let k = 0, n = set.length; k < n; k++) {
            const m = unchecked(set[k]);
            if (m !== d && !m.available() && m.sameAddr(d.af, d.a0, d.a1, d.a2, d.a3, d.port)) unchecked((set[k] = d));
          }
        }
        en = en.next;
      }
    }
  }

  // is_overloaded(): more active connections than weight while some destination is under half its weight
  @inline lblcOverloaded(d: Dest): bool {
    return <i64>d.activeConns > <i64>d.weight && this.halfIdleCount > 0;
  }

  // ---- the table ------------------------------------------------------------------------------------
  @inline bucketOf(p: PacketInfo): i32 {
    return <i32>hash32(p.dstFold(), LOCALITY_TAB_BITS);
  }

  findEntry(p: PacketInfo): LocalityEntry | null {
    let en = unchecked(this.buckets[this.bucketOf(p)]);
    const af = p.af;
    while (en) {
      if (en.a3 == p.d3 && en.af == af && (af != AF_INET6 || (en.a0 == p.d0 && en.a1 == p.d1 && en.a2 == p.d2)))
        return en;
      en = en.next;
    }
    return null;
  }

  // a new entry for p's destination address at the head of its bucket
  addEntry(p: PacketInfo, now: i64): LocalityEntry {
    let en = this.free;
    if (en) this.free = en.next;
    else en = new LocalityEntry();
    en.af = p.af;
    en.a0 = p.d0;
    en.a1 = p.d1;
    en.a2 = p.d2;
    en.a3 = p.d3;
    en.lastuse = now;
    const h = this.bucketOf(p);
    en.next = unchecked(this.buckets[h]);
    unchecked((this.buckets[h] = en));
    this.entries++;
    return en;
  }

  private recycle(en: LocalityEntry): void {
    en.dest = null;
    const set = en.set;
    if (set) set.length = 0;
    en.next = this.free;
    this.free = en;
  }

  // Drops the entries of bucket j for which now >= lastuse + idle; returns how many.
  private expireBucket(j: i32, now: i64, idle: i64): i32 {
    let removed = 0;
    let prev: LocalityEntry | null = null;
    let en = unchecked(this.buckets[j]);
    while (en) {
      const nx = en.next;
      if (now >= en.lastuse + idle) {
        if (prev) prev.next = nx;
        else unchecked((this.buckets[j] = nx));
        this.recycle(en);
        this.entries--;
        this.expired++;
        removed++;
      } else prev = en;
      en = nx;
    }
    return removed;
  }

  // ---- the periodic timer (ip_vs_lblc_check_expire), run for each 60 s period that has passed ------
  tick(svc: Service, now: i64): void {
    if (!this.armed) {
      this.armed = true;
      this.nextTickAt = now + CHECK_EXPIRE_INTERVAL_MS;
      return;
    }
    while (now >= this.nextTickAt) {
      const t = this.nextTickAt;
      if (this.entries <= this.maxSize && this.counter % COUNT_FOR_FULL_EXPIRATION != 0) {
        // runs that only count: skip them together (the table cannot change in between)
        const runs = (now - t) / CHECK_EXPIRE_INTERVAL_MS + 1;
        let k = <i64>(COUNT_FOR_FULL_EXPIRATION - (this.counter % COUNT_FOR_FULL_EXPIRATION));
        if (k > runs) k = runs;
        this.counter += <i32>k;
        this.nextTickAt = t + k * CHECK_EXPIRE_INTERVAL_MS;
        continue;
      }
      this.checkExpire(t);
      this.nextTickAt = t + CHECK_EXPIRE_INTERVAL_MS;
    }
  }

  checkExpire(now: i64): void {
    if (this.counter % COUNT_FOR_FULL_EXPIRATION == 0) {
      // full check: every bucket, entries idle for the expiration time
      const exp = this.expiration();
      let j = this.rover;
      for (let i = 0; i < LOCALITY_TAB_SIZE; i++) {
        j = (j + 1) & LOCALITY_TAB_MASK;
        this.expireBucket(j, now, exp);
      }
      this.rover = j;
      this.counter = 1;
      return;
    }
    if (this.entries <= this.maxSize) {
      this.counter++;
      return;
    }
    let goal = ((this.entries - this.maxSize) * 4) / 3;
    if (goal > this.maxSize / 2) goal = this.maxSize / 2;
    let j = this.rover;
    for (let i = 0; i < LOCALITY_TAB_SIZE; i++) {
      j = (j + 1) & LOCALITY_TAB_MASK;
      goal -= this.expireBucket(j, now, ENTRY_TIMEOUT_MS);
      if (goal <= 0) break;
    }
    this.rover = j;
  }

  // ---- tracing ---------------------------------------------------------------------------------------
  // Starts a locality record: the entry (if any) and the destination it held before this decision.
  traceEntry(
    svc: Service,
    p: PacketInfo,
    en: LocalityEntry | null,
    prev: Dest | null,
    d: Dest | null,
    outcome: i32,
    wlcChoice: Dest | null,
  ): usize {
    const r = traceRec(svc.schedId, svc.id, d ? d.id : -1);
    tw(r, W_HKEY, <i32>p.dstFold());
    tw(r, W_LBUCKET, this.bucketOf(p));
    tw(r, W_FOUND, en ? 1 : 0);
    tw(r, W_PREV, prev ? prev.id : -1);
    tw(r, W_OUTCOME, outcome);
    tw(r, W_HALFIDLE, this.halfIdleCount);
    if (prev) {
      tw(r, W_PREV_ACT, <i32>prev.activeConns);
      tw(r, W_PREV_W, prev.weight);
    }
    tw(r, W_WLC, wlcChoice ? wlcChoice.id : -1);
    tw(r, W_ENTRIES, this.entries);
    tw(r, W_EXPIRED, this.expired);
    return r;
  }

  // entries listed by the last Q_LOC_SNAPSHOT query (read-only views for the teaching page)
  private snap: Array<LocalityEntry> = new Array<LocalityEntry>();
  private snapBucket: Array<i32> = new Array<i32>();

  traceQuery(svc: Service, q: i32, i: i32): i32 {
    if (q == Q_ENTRIES) return this.entries;
    if (q == Q_EXPIRED) return this.expired;
    if (q == Q_LOC_SNAPSHOT) {
      this.snap.length = 0;
      this.snapBucket.length = 0;
      for (let b = 0; b < LOCALITY_TAB_SIZE; b++) {
        let en = unchecked(this.buckets[b]);
        while (en) {
          this.snap.push(en);
          this.snapBucket.push(b);
          en = en.next;
        }
      }
      return this.snap.length;
    }
    if (q == Q_LOC_TIMER) {
      if (i == 2) return this.counter;
      const x: i64 = i < 2 ? this.nextTickAt : this.expiration();
      return i == 0 || i == 3 ? <i32>x : <i32>(x >> 32);
    }
    const k = q == Q_LOC_ADDR ? i >> 2 : q == Q_LOC_MEMBER ? i >> 8 : i;
    if (k < 0 || k >= this.snap.length) return -1;
    const en = unchecked(this.snap[k]);
    if (q == Q_LOC_AF) return en.af;
    if (q == Q_LOC_ADDR) {
      const w = i & 3;
      return <i32>(w == 0 ? en.a0 : w == 1 ? en.a1 : w == 2 ? en.a2 : en.a3);
    }
    if (q == Q_LOC_BUCKET) return unchecked(this.snapBucket[k]);
    if (q == Q_LOC_DEST) {
      const d = en.dest;
      return d ? d.id : -1;
    }
    if (q == Q_LOC_LASTUSE_LO) return <i32>en.lastuse;
    if (q == Q_LOC_LASTUSE_HI) return <i32>(en.lastuse >> 32);
    if (q == Q_LOC_LASTMOD_LO) return <i32>en.lastmod;
    if (q == Q_LOC_LASTMOD_HI) return <i32>(en.lastmod >> 32);
    const set = en.set;
    if (q == Q_LOC_SETLEN) return set ? set.length : 0;
    if (q == Q_LOC_MEMBER) {
      const m = i & 255;
      return set && m < set.length ? unchecked(set[set.length - 1 - m]).id : -1;
    }
    return -1;
  }

  // why an lblc entry's destination was not kept (OUT_*), or OUT_KEPT
  traceWhy(d: Dest | null): i32 {
    if (!d || !d.available()) return OUT_UNAVAILABLE;
    if (d.weight <= 0) return OUT_QUIESCED;
    if (this.lblcOverloaded(d)) return OUT_OVERLOADED;
    return OUT_KEPT;
  }

  // runs the timer first when it is due (the core may also call tick() itself)
  @inline catchUp(svc: Service, now: i64): void {
    if (!this.armed || now >= this.nextTickAt) this.tick(svc, now);
  }
}

export class LocalityLeastConnection extends LocalityBase {
  schedule(svc: Service, p: PacketInfo, now: i64): Dest | null {
    this.catchUp(svc, now);
    const en = this.findEntry(p);
    if (en) {
      en.lastuse = now;
      const d = en.dest;
      if (d && d.available() && d.weight > 0 && !this.lblcOverloaded(d)) {
        if (traceOn) this.traceEntry(svc, p, en, d, d, OUT_KEPT, null);
        return d;
      }
    }
    const d = this.wlc(svc);
    if (traceOn)
      this.traceEntry(svc, p, en, en ? en.dest : null, d, !d ? OUT_NONE : en ? this.traceWhy(en.dest) : OUT_NEW, d);
    if (!d) return null;
    if (en) {
      // ip_vs_lblc_new: an entry for another destination is replaced by a fresh one
      if (en.dest !== d) {
        en.dest = d;
        en.lastuse = now;
      }
    } else {
      this.addEntry(p, now).dest = d;
    }
    return d;
  }
}
