// fo: weighted failover (ip_vs_fo.c). The highest weight among destinations that are not OVERLOADed; the
// running maximum starts at 0 and moves on a strict >, so weight 0 never qualifies and the earliest in
// list order wins a tie. Connection counts play no part.
import { Dest } from "../dest/dest";
import { WinnerTree } from "./tree";

export class WeightedFailover extends WinnerTree {
  eligible(d: Dest): bool {
    return !d.overloaded() && d.weight > 0;
  }
  better(a: Dest, b: Dest): bool {
    return a.weight > b.weight;
  }
}
