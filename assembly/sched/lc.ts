// lc: least connection (ip_vs_lc.c). Among destinations that are not OVERLOADed and have a weight other
// than 0, the smallest overhead (activeconns << 8) + inactconns, compared as the kernel's unsigned int with a
// strict <, so the earliest in list order wins a tie. The weight's value is otherwise ignored.
import { Dest } from "../dest/dest";
import { WinnerTree, connOverhead } from "./tree";

export class LeastConnection extends WinnerTree {
  eligible(d: Dest): bool {
    return !d.overloaded() && d.weight != 0;
  }
  better(a: Dest, b: Dest): bool {
    return <u32>connOverhead(a) < <u32>connOverhead(b);
  }
}
