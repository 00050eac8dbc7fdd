// nq: never queue (ip_vs_nq.c). Among non-OVERLOADed destinations with a weight other than 0: the first in
// list order with no active connection, whatever its weight; otherwise sed's earliest argmin of
// (active + 1) / weight. One tournament tree holds both: an idle destination beats every busy one and ties
// with every idle one (so the earliest idle wins); busy ones compare as in sed. Every candidate has
// weight > 0, so the cross-multiplied comparison is an exact ratio order even when the int load wraps.
import { Dest } from "../dest/dest";
import { WinnerTree, expectedDelay } from "./tree";

export class NeverQueue extends WinnerTree {
  constructor() {
    super();
    this.keyed = true;
  } // reads active counts only: inactive changes skip the index
  eligible(d: Dest): bool {
    return !d.overloaded() && d.weight != 0;
  }
  better(a: Dest, b: Dest): bool {
    const aIdle = a.activeConns == 0,
      bIdle = b.activeConns == 0;
    if (aIdle || bIdle) return aIdle && !bIdle;
    return <i64>expectedDelay(a) * <i64>b.weight < <i64>expectedDelay(b) * <i64>a.weight;
  }
}
