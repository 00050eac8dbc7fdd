// sed: shortest expected delay (ip_vs_sed.c). wlc's scan with the load activeconns + 1 (inactive
// connections do not count): the earliest argmin of (active + 1) / weight over non-OVERLOADed weight > 0
// destinations, kept as a tournament tree's root. As in wlc, a weight-0 destination can only win when the
// C int load wraps negative (activeconns >= 2^31); the kernel's scan runs while any is in that state.
import { Dest } from "../dest/dest";
import { Service } from "../service/service";
import { PacketInfo } from "../packet/info";
import { traceOn } from "../trace";
import { WinnerTree, expectedDelay, weightedScan } from "./tree";

export class ShortestExpectedDelay extends WinnerTree {
  constructor() {
    super();
    this.keyed = true;
  } // reads active counts only: inactive changes skip the index
  eligible(d: Dest): bool {
    return !d.overloaded() && d.weight > 0;
  }
  better(a: Dest, b: Dest): bool {
    return <i64>expectedDelay(a) * <i64>b.weight < <i64>expectedDelay(b) * <i64>a.weight;
  }
  irregular(d: Dest): bool {
    return !d.overloaded() && d.weight == 0 && expectedDelay(d) < 0;
  }

  schedule(svc: Service, p: PacketInfo, now: i64): Dest | null {
    const scanned = this.irregulars > 0;
    const d = scanned ? weightedScan(svc, load) : this.best();
    if (traceOn) this.traceWinner(svc, d, scanned);
    return d;
  }
}

function load(d: Dest): i32 {
  return expectedDelay(d);
}
