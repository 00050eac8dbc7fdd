// Read-only views of a scheduler's insides, as the data plane holds them (traceQuery codes answered by
// assembly/sched/tree.ts, lblc.ts and mh.ts): the least-loaded schedulers' winner tree, lblc/lblcr's
// locality table and mh's table population, claim by claim. The page and `wasmvs trace --insides` draw
// these; nothing here recomputes a scheduler's choice.
import type { TraceSession } from "../core/trace.ts";
import { ntoa4, ntop6 } from "../model/inet.ts";

// the codes, as assembly/sched/*.ts export them (test/ui-state.test.ts checks that they answer)
export const QS = {
  treeLeaves: 20,
  treeWin: 21,
  treeLeaf: 22,
  treeIrregular: 23,
  locSnapshot: 30,
  locAf: 31,
  locAddr: 32,
  locBucket: 33,
  locDest: 34,
  locLastuseLo: 35,
  locLastuseHi: 36,
  locSetLen: 37,
  locMember: 38,
  locLastmodLo: 39,
  locLastmodHi: 40,
  locTimer: 41,
  mhFill: 50,
  mhFillSlot: 51,
  mhFillMember: 52,
  mhFillPassed: 53,
  mhMembers: 2,
  mhMember: 3,
  mhOffset: 4,
  mhSkip: 5,
  mhTurns: 6,
} as const;

type Query = (q: number, i?: number) => number;
const queryOf =
  (s: TraceSession): Query =>
  (q, i = 0) =>
    s.tracer.query(s.svc, q, i);
const i64 = (lo: number, hi: number) => hi * 4294967296 + (lo >>> 0);

// A tournament tree over list positions: node 1 is the root, node leaves + p is position p's leaf; each
// node holds the position of the best eligible destination below it (-1: none).
export interface TreeView {
  leaves: number;
  win: number[]; // by node (index 0 unused)
  leaf: number[]; // destination id by position, -1 empty
  irregular: number; // > 0: an int-overflow corner, the kernel's scan chose instead
}
export function readTree(s: TraceSession): TreeView | null {
  const q = queryOf(s);
  const leaves = q(QS.treeLeaves);
  if (leaves <= 0) return null;
  const win = [-1];
  for (let node = 1; node < 2 * leaves; node++) win.push(q(QS.treeWin, node));
  const leaf: number[] = [];
  for (let p = 0; p < leaves; p++) leaf.push(q(QS.treeLeaf, p));
  return { leaves, win, leaf, irregular: q(QS.treeIrregular) };
}
// the nodes from the root down to the winner's leaf (empty when nothing is eligible)
export function winnerPath(t: TreeView): number[] {
  const w = t.win[1];
  if (w < 0) return [];
  const path: number[] = [];
  for (let node = t.leaves + w; node >= 1; node >>= 1) path.unshift(node);
  return path;
}

interface LocalityEntryView {
  addr: string;
  bucket: number;
  dest: number;
  lastuse: number;
  set: number[];
  lastmod: number;
}
export interface LocalityView {
  entries: LocalityEntryView[];
  nextCheck: number;
  counter: number;
  expiration: number;
}
function addrText(af: number, w: number[]): string {
  if (af !== 10) return ntoa4(w[3] >>> 0);
  const b = new Uint8Array(16);
  w.forEach((x, k) => new DataView(b.buffer).setUint32(4 * k, x >>> 0));
  return ntop6(b);
}
export function readLocality(s: TraceSession): LocalityView | null {
  const q = queryOf(s);
  const n = q(QS.locSnapshot);
  if (n < 0) return null;
  const entries: LocalityEntryView[] = [];
  for (let k = 0; k < n; k++) {
    const words = [0, 1, 2, 3].map((w) => q(QS.locAddr, k * 4 + w));
    const set: number[] = [];
    for (let m = 0, len = q(QS.locSetLen, k); m < len && m < 256; m++) set.push(q(QS.locMember, k * 256 + m));
    entries.push({
      addr: addrText(q(QS.locAf, k), words),
      bucket: q(QS.locBucket, k),
      dest: q(QS.locDest, k),
      lastuse: i64(q(QS.locLastuseLo, k), q(QS.locLastuseHi, k)),
      set,
      lastmod: i64(q(QS.locLastmodLo, k), q(QS.locLastmodHi, k)),
    });
  }
  return {
    entries,
    nextCheck: i64(q(QS.locTimer, 0), q(QS.locTimer, 1)),
    counter: q(QS.locTimer, 2),
    expiration: i64(q(QS.locTimer, 3), q(QS.locTimer, 4)),
  };
}

// mh's population: each destination's permutation and every claim in the order the kernel makes them
interface MhMember {
  id: number;
  offset: number;
  skip: number;
  turns: number;
}
interface MhClaim {
  slot: number;
  member: number;
  passed: number;
}
export interface MhFillView {
  size: number;
  members: MhMember[];
  claims: MhClaim[];
}
export function readMhFill(s: TraceSession): MhFillView | null {
  const q = queryOf(s);
  const n = q(QS.mhFill);
  if (n < 0) return null;
  const members: MhMember[] = [];
  for (let m = 0, k = q(QS.mhMembers); m < k; m++) {
    members.push({ id: q(QS.mhMember, m), offset: q(QS.mhOffset, m), skip: q(QS.mhSkip, m), turns: q(QS.mhTurns, m) });
  }
  const claims: MhClaim[] = [];
  for (let k = 0; k < n; k++) {
    claims.push({ slot: q(QS.mhFillSlot, k), member: q(QS.mhFillMember, k), passed: q(QS.mhFillPassed, k) });
  }
  return { size: n, members, claims };
}
