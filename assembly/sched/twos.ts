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

export class PowerOfTwoChoices extends WeightSumTree {
  schedule(svc: Service, p: PacketInfo, now: i64): Dest | null {
    const total = this.total();
    if (total <= 0) return null;
    const ceil = <u32>(total + 1);
    const r1 = <i64>randomBelow(ceil);
    const r2 = <i64>randomBelow(ceil);
    const c1 = this.find(r1 > 0 ? r1 : 1);
    const c2 = this.find(r2 > 0 ? r2 : 1);
    const w1 = c1.weight, w2 = c2.weight;
    if (w2 * connOverhead(c1) > w1 * connOverhead(c2)) return c2;   // i32 products, wrapping
    return c1;
  }
}
