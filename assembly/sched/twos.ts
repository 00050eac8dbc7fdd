// twos: power of two choices, weighted (ip_vs_twos.c). W = the sum of weights of the destinations that are
// not OVERLOADed and have weight > 0; r1 and r2 are drawn in [0, W] (get_random_u32_below(W + 1)); the
// kernel walks those destinations in list order subtracting weights and takes, for each r, the first where
// r <= 0. That is the first destination whose running weight sum reaches max(r, 1) (r = 0 lands on the first
// one too, which so gets w + 1 of the W + 1 values), found in O(log n) in a tree of weight sums.
// choice2 wins only when w2 * overhead1 > w1 * overhead2, computed as the kernel does in 32-bit int (it
// wraps once weight * overhead passes 2^31, e.g. weight 65535 with 128 active connections).
import { Dest } from "../dest/dest";
import { Service } from "../service/service";
import { PacketInfo } from "../packet/info";
import { WeightSumTree, connOverhead } from "./tree";
import { randomBelow } from "./random";
import {
  traceOn,
  traceRec,
  tw,
  W_TOTAL,
  W_R1,
  W_R2,
  W_C1,
  W_C2,
  W_C1_ACT,
  W_C1_INACT,
  W_C1_W,
  W_C2_ACT,
  W_C2_INACT,
  W_C2_W,
} from "../trace";

export class PowerOfTwoChoices extends WeightSumTree {
  schedule(svc: Service, p: PacketInfo, now: i64): Dest | null {
    const total = this.total();
    if (total <= 0) {
      if (traceOn) traceRec(svc.schedId, svc.id, -1);
      return null;
    }
    const ceil = <u32>(total + 1);
    const r1 = <i64>randomBelow(ceil);
    const r2 = <i64>randomBelow(ceil);
    const c1 = this.find(r1 > 0 ? r1 : 1);
    const c2 = this.find(r2 > 0 ? r2 : 1);
    const w1 = c1.weight,
      w2 = c2.weight;
    const d = w2 * connOverhead(c1) > w1 * connOverhead(c2) ? c2 : c1; // i32 products, wrapping
    if (traceOn) {
      const t = traceRec(svc.schedId, svc.id, d.id);
      tw(t, W_TOTAL, <i32>total);
      tw(t, W_R1, <i32>r1);
      tw(t, W_R2, <i32>r2);
      tw(t, W_C1, c1.id);
      tw(t, W_C2, c2.id);
      tw(t, W_C1_ACT, <i32>c1.activeConns);
      tw(t, W_C1_INACT, <i32>c1.inactConns);
      tw(t, W_C1_W, w1);
      tw(t, W_C2_ACT, <i32>c2.activeConns);
      tw(t, W_C2_INACT, <i32>c2.inactConns);
      tw(t, W_C2_W, w2);
    }
    return d;
  }
}
