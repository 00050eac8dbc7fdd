// Indexes over a service's destination list for the least-loaded schedulers (lc, wlc, sed, nq, fo, ovf,
// twos). The kernel scans every destination per new connection; these trees keep the scan's answer up to
// date in O(log n) per change, so schedule() is O(1) (winner trees) or O(log n) (twos' weight sums).
//
// Leaves are list positions. The list (svc.dests) is newest first and a destination only ever enters at the
// head, so a new destination takes the next unused position and higher positions are EARLIER in list order.
// Dest.schedSlot holds a destination's position. When the positions run out, the tree is rebuilt from
// svc.dests with positions 0..n-1 (allocating only when the tree must grow or has become far too big).
import { Dest } from "../dest/dest";
import { Service } from "../service/service";
import { PacketInfo } from "../packet/info";
import { Scheduler } from "./scheduler";
import { traceOn, traceRec, tw, W_SCAN, W_A_ACT, W_A_INACT, W_A_W, W_R_ID, W_R_ACT, W_R_INACT, W_R_W } from "../trace";

const MIN_LEAVES: i32 = 8;

// traceQuery codes of the winner trees (the teaching page draws the tree; src/ui/sched-state.ts reads them)
export const Q_TREE_LEAVES: i32 = 20; // leaves (positions), 0 when not indexed
export const Q_TREE_WIN: i32 = 21; // node i (1 = root, leaves + p = position p): winning position, -1 none
export const Q_TREE_LEAF: i32 = 22; // position i: destination id, -1 empty
export const Q_TREE_IRREGULAR: i32 = 23; // destinations in an int-overflow corner (then the kernel's scan chooses)

// what a keyed index compares of a destination's load: its active count and OVERLOAD flag
@inline function loadKey(d: Dest): i64 {
  return <i64>d.activeConns | (d.overloaded() ? (<i64>1) << 32 : 0);
}

// A scheduler that indexes its service's destinations: the kernel hooks keep the index in step.
export class DestTree extends Scheduler {
  cap: i32 = 0; // leaves (a power of two); node 1 is the root, leaf p is node cap + p
  next: i32 = 0; // the next unused position
  leaf: StaticArray<Dest | null> = new StaticArray<Dest | null>(0);

  // ---- per-kind parts (subclasses) ----
  // allocate node storage for cap leaves
  protected alloc(cap: i32): void {}
  // recompute node cap + p from leaf[p] (which may be null)
  protected evalLeaf(p: i32): void {}
  // recompute internal node from its children 2*node (later in list order) and 2*node+1 (earlier)
  protected pull(node: i32): void {}

  init(svc: Service): void {
    this.build(svc);
  }
  done(svc: Service): void {
    this.clear(svc);
  }
  addDest(svc: Service, d: Dest): void {
    this.insert(svc, d);
  }
  delDest(svc: Service, d: Dest): void {
    this.remove(d);
  }
  updDest(svc: Service, d: Dest): void {
    this.update(d);
  }
  hasLoadHook(): bool {
    return true;
  }
  loadChanged(svc: Service, d: Dest): void {
    if (!this.keyed) {
      this.update(d);
      return;
    }
    // a load change that leaves what the index compares as it was cannot move d (sed, nq: a connection
    // turning inactive or going away from the inactive count)
    const p = this.slotOf(d);
    if (p < 0) return;
    if (unchecked(this.keyLoad[p]) != loadKey(d) || unchecked(this.keyWeight[p]) != d.weight) this.refresh(p);
  }

  // set by schedulers whose index reads only a destination's active count, OVERLOAD flag and weight
  protected keyed: bool = false;
  private keyLoad: StaticArray<i64> = new StaticArray<i64>(0);
  private keyWeight: StaticArray<i32> = new StaticArray<i32>(0);

  // Index every destination of svc (init, scheduler switch, or out of positions).
  build(svc: Service): void {
    const ds = svc.dests;
    const n = ds.length;
    let need = MIN_LEAVES;
    while (need < 2 * n) need <<= 1; // room for at least n more additions before the next rebuild
    if (this.cap < need || this.cap > 4 * need) {
      this.cap = need;
      this.leaf = new StaticArray<Dest | null>(need);
      if (this.keyed) {
        this.keyLoad = new StaticArray<i64>(need);
        this.keyWeight = new StaticArray<i32>(need);
      }
      this.alloc(need);
    } else {
      for (let p = 0, c = this.cap; p < c; p++) unchecked((this.leaf[p] = null));
    }
    for (let i = 0; i < n; i++) {
      const d = unchecked(ds[i]);
      const p = n - 1 - i;
      unchecked((this.leaf[p] = d));
      d.schedSlot = p;
    }
    this.next = n;
    const cap = this.cap;
    for (let p = 0; p < cap; p++) {
      this.evalLeaf(p);
      this.noteKey(p);
    }
    for (let node = cap - 1; node >= 1; node--) this.pull(node);
  }

  // d was just linked at the head of svc.dests
  insert(svc: Service, d: Dest): void {
    if (this.next >= this.cap) {
      this.build(svc);
      return;
    }
    const p = this.next++;
    unchecked((this.leaf[p] = d));
    d.schedSlot = p;
    this.refresh(p);
  }

  remove(d: Dest): void {
    const p = this.slotOf(d);
    if (p < 0) return;
    unchecked((this.leaf[p] = null));
    d.schedSlot = -1;
    this.refresh(p);
  }

  // d's weight, flags or counters changed
  update(d: Dest): void {
    const p = this.slotOf(d);
    if (p >= 0) this.refresh(p);
  }

  // forget every destination (the scheduler is unbound)
  clear(svc: Service): void {
    const ds = svc.dests;
    for (let i = 0, n = ds.length; i < n; i++) {
      const d = unchecked(ds[i]);
      if (this.slotOf(d) >= 0) d.schedSlot = -1;
    }
    this.cap = 0;
    this.next = 0;
    this.leaf = new StaticArray<Dest | null>(0);
    this.alloc(0);
  }

  // d's position in this tree, or -1 (not indexed here: deleted, or another service's)
  @inline slotOf(d: Dest): i32 {
    const p = d.schedSlot;
    return p >= 0 && p < this.cap && unchecked(this.leaf[p]) === d ? p : -1;
  }

  @inline private noteKey(p: i32): void {
    if (!this.keyed) return;
    const d = unchecked(this.leaf[p]);
    unchecked((this.keyLoad[p] = d ? loadKey(d) : -1));
    unchecked((this.keyWeight[p] = d ? d.weight : 0));
  }

  protected refresh(p: i32): void {
    this.evalLeaf(p);
    this.noteKey(p);
    for (let node = (this.cap + p) >> 1; node >= 1; node >>= 1) this.pull(node);
  }
}

// A tournament tree: every node keeps the position of the best eligible leaf below it. A node keeps its
// left (later in list order) child's winner only when it is strictly better than the right one's, so on a
// tie the destination earlier in list order wins, as in the kernel's scans with strict comparisons. When
// better() is a total preorder on eligible destinations (every scheduler here makes sure of it), the root
// holds exactly what the kernel's first-to-last scan returns.
//
// Optionally a scheduler marks some destinations "irregular": states where the kernel's scan is not an
// argmin (int overflow corners); the tree counts them so the scheduler can fall back to the kernel's scan.
export class WinnerTree extends DestTree {
  win: StaticArray<i32> = new StaticArray<i32>(0); // node -> winning position, -1 for none
  irr: StaticArray<u8> = new StaticArray<u8>(0); // position -> counted as irregular
  irregulars: i32 = 0;

  // may d be chosen at all
  eligible(d: Dest): bool {
    return false;
  }
  // is a strictly better than b (both eligible)
  better(a: Dest, b: Dest): bool {
    return false;
  }
  // does d put the scan outside the argmin model
  irregular(d: Dest): bool {
    return false;
  }

  protected alloc(cap: i32): void {
    this.win = new StaticArray<i32>(cap << 1);
    this.irr = new StaticArray<u8>(cap);
    this.irregulars = 0;
  }

  build(svc: Service): void {
    this.irregulars = 0;
    for (let p = 0, c = this.cap; p < c; p++) unchecked((this.irr[p] = 0));
    super.build(svc);
  }

  protected evalLeaf(p: i32): void {
    const d = unchecked(this.leaf[p]);
    let w = -1;
    let irr: u8 = 0;
    if (d) {
      if (this.eligible(d)) w = p;
      if (this.irregular(d)) irr = 1;
    }
    unchecked((this.win[this.cap + p] = w));
    const was = unchecked(this.irr[p]);
    if (was != irr) {
      unchecked((this.irr[p] = irr));
      this.irregulars += irr ? 1 : -1;
    }
  }

  protected pull(node: i32): void {
    const l = unchecked(this.win[node << 1]);
    const r = unchecked(this.win[(node << 1) + 1]);
    let w = r;
    if (r < 0) w = l;
    else if (
      l >= 0 &&
      this.better(changetype<Dest>(unchecked(this.leaf[l])), changetype<Dest>(unchecked(this.leaf[r])))
    )
      w = l;
    unchecked((this.win[node] = w));
  }

  schedule(svc: Service, p: PacketInfo, now: i64): Dest | null {
    const d = this.best();
    if (traceOn) this.traceWinner(svc, d, false);
    return d;
  }

  // Tracing: the winner's figures and the runner-up's (the best eligible destination other than the
  // winner), both as they stood when the choice was made. scanned: the kernel's scan chose (no runner-up).
  traceWinner(svc: Service, d: Dest | null, scanned: bool): void {
    const r = traceRec(svc.schedId, svc.id, d ? d.id : -1);
    tw(r, W_SCAN, scanned ? 1 : 0);
    if (d) {
      tw(r, W_A_ACT, <i32>d.activeConns);
      tw(r, W_A_INACT, <i32>d.inactConns);
      tw(r, W_A_W, d.weight);
    }
    const ru: Dest | null = scanned ? null : this.runnerUp();
    if (ru) {
      tw(r, W_R_ID, ru.id);
      tw(r, W_R_ACT, <i32>ru.activeConns);
      tw(r, W_R_INACT, <i32>ru.inactConns);
      tw(r, W_R_W, ru.weight);
    } else tw(r, W_R_ID, -1);
  }

  // The second place of the tournament: the best of the subtree winners that met the winner on its way
  // to the root (ties to the earlier in list order, i.e. the higher position, as the tree itself does).
  runnerUp(): Dest | null {
    if (this.cap == 0) return null;
    const w = unchecked(this.win[1]);
    if (w < 0) return null;
    let best = -1;
    for (let node = this.cap + w; node > 1; node >>= 1) {
      const c = unchecked(this.win[node ^ 1]);
      if (c < 0) continue;
      if (best < 0) {
        best = c;
        continue;
      }
      const dc = changetype<Dest>(unchecked(this.leaf[c])),
        db = changetype<Dest>(unchecked(this.leaf[best]));
      if (this.better(dc, db) || (!this.better(db, dc) && c > best)) best = c;
    }
    return best < 0 ? null : unchecked(this.leaf[best]);
  }

  // Read-only views for the teaching page: the tree's nodes and leaves as they stand.
  traceQuery(svc: Service, q: i32, i: i32): i32 {
    if (q == Q_TREE_LEAVES) return this.cap;
    if (q == Q_TREE_IRREGULAR) return this.irregulars;
    if (q == Q_TREE_WIN) return i >= 1 && i < this.cap << 1 ? unchecked(this.win[i]) : -1;
    if (q == Q_TREE_LEAF) {
      if (i < 0 || i >= this.cap) return -1;
      const d = unchecked(this.leaf[i]);
      return d ? d.id : -1;
    }
    return -1;
  }

  // the scan's answer, or null when no destination is eligible
  best(): Dest | null {
    if (this.cap == 0) return null;
    const w = unchecked(this.win[1]);
    return w < 0 ? null : unchecked(this.leaf[w]);
  }
}

// Sums of positive weights over the destinations that are not OVERLOADed, for twos' weighted draws.
export class WeightSumTree extends DestTree {
  sum: StaticArray<i64> = new StaticArray<i64>(0);

  protected alloc(cap: i32): void {
    this.sum = new StaticArray<i64>(cap << 1);
  }

  protected evalLeaf(p: i32): void {
    const d = unchecked(this.leaf[p]);
    let w: i64 = 0;
    if (d && !d.overloaded() && d.weight > 0) w = <i64>d.weight;
    unchecked((this.sum[this.cap + p] = w));
  }

  protected pull(node: i32): void {
    unchecked((this.sum[node] = unchecked(this.sum[node << 1]) + unchecked(this.sum[(node << 1) + 1])));
  }

  total(): i64 {
    return this.cap == 0 ? 0 : unchecked(this.sum[1]);
  }

  // The first counted destination in list order whose running weight sum reaches r (1 <= r <= total()).
  find(r: i64): Dest {
    let node = 1;
    const cap = this.cap;
    while (node < cap) {
      const right = (node << 1) + 1; // earlier in list order
      const s = unchecked(this.sum[right]);
      if (s >= r) node = right;
      else {
        r -= s;
        node = node << 1;
      }
    }
    return changetype<Dest>(unchecked(this.leaf[node - cap]));
  }
}

// The kernel computes loads in C int, which wraps (the kernel builds with -fno-strict-overflow); these
// return the same 32-bit values so even absurd counters choose as the kernel does.
// ip_vs_dest_conn_overhead(): (activeconns << 8) + inactconns, used by lc (as unsigned), wlc and twos
@inline export function connOverhead(d: Dest): i32 {
  return ((<i32>d.activeConns) << 8) + <i32>d.inactConns;
}
// sed and nq: activeconns + 1 (inactive connections do not count)
@inline export function expectedDelay(d: Dest): i32 {
  return <i32>d.activeConns + 1;
}

// The kernel's two-stage weighted scan (ip_vs_wlc.c, ip_vs_sed.c, lblc's fallback), verbatim in
// behaviour: the first destination in list order that is not OVERLOADed and has weight > 0, replaced by
// any later non-OVERLOADed one with strictly less load per weight (cross-multiplied in 64 bits, the load a
// C int). The trees answer the same in O(1); this runs only in their int-overflow corner cases.
export function weightedScan(svc: Service, load: (d: Dest) => i32): Dest | null {
  const ds = svc.dests;
  const n = ds.length;
  let i = 0;
  while (i < n && (unchecked(ds[i]).overloaded() || unchecked(ds[i]).weight <= 0)) i++;
  if (i == n) return null;
  let least = unchecked(ds[i]);
  let loh = <i64>load(least);
  for (i++; i < n; i++) {
    const d = unchecked(ds[i]);
    if (d.overloaded()) continue;
    const doh = <i64>load(d);
    if (loh * <i64>d.weight > doh * <i64>least.weight) {
      least = d;
      loh = doh;
    }
  }
  return least;
}
