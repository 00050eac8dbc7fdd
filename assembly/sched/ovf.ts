// ovf: weighted overflow (ip_vs_ovf.c). The highest weight (strict >, earliest wins a tie) among
// destinations that are not OVERLOADed, have a weight other than 0 and have activeconns <= weight. The
// kernel skips only activeconns > weight, so a destination takes weight + 1 active connections before new
// ones overflow to the next. Inactive connections do not count (so UDP never overflows).
import { Dest } from "../dest/dest";
import { WinnerTree } from "./tree";

export class WeightedOverflow extends WinnerTree {
  eligible(d: Dest): bool {
    const w = d.weight;
    return !d.overloaded() && w != 0 && <i32>d.activeConns <= w; // the kernel compares ints
  }
  better(a: Dest, b: Dest): bool {
    return a.weight > b.weight;
  }
}
