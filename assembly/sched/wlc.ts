// wlc: weighted least connection (ip_vs_wlc.c), ipvsadm's default. The kernel starts from the first
// destination that is not OVERLOADed and has weight > 0, then lets each later non-OVERLOADed destination d
// replace the current choice c when overhead(c) * w(d) > overhead(d) * w(c) (64-bit, strict: the earlier
// destination wins a tie). A weight-0 destination is not skipped, but with overhead >= 0 it can never
// replace anyone (0 > overhead(d) * w(c) is false), so the scan is the earliest argmin of overhead / weight
// over non-OVERLOADed weight > 0 destinations: the tournament tree's root.
// The one exception: overhead is a C int and wraps negative at 2^23 active connections; a weight-0
// destination with a negative overhead does win. While any destination is in that state the kernel's scan
// itself runs (correct, O(n)); otherwise schedule() is O(1) and every update O(log n).
import { Dest } from "../dest/dest";
import { Service } from "../service/service";
import { PacketInfo } from "../packet/info";
import { traceOn } from "../trace";
import { WinnerTree, connOverhead, weightedScan } from "./tree";

export class WeightedLeastConnection extends WinnerTree {
  eligible(d: Dest): bool {
    return !d.overloaded() && d.weight > 0;
  }
  better(a: Dest, b: Dest): bool {
    return <i64>connOverhead(a) * <i64>b.weight < <i64>connOverhead(b) * <i64>a.weight;
  }
  irregular(d: Dest): bool {
    return !d.overloaded() && d.weight == 0 && connOverhead(d) < 0;
  }

  schedule(svc: Service, p: PacketInfo, now: i64): Dest | null {
    const scanned = this.irregulars > 0;
    const d = scanned ? weightedScan(svc, load) : this.best();
    if (traceOn) this.traceWinner(svc, d, scanned);
    return d;
  }
}

function load(d: Dest): i32 {
  return connOverhead(d);
}
