// rr: round robin (ip_vs_rr.c). The cursor is the destination chosen last; the walk starts after it
// and the cursor itself is the last candidate. Weight only matters as zero / non-zero.
import { Dest } from "../dest/dest";
import { Service } from "../service/service";
import { PacketInfo } from "../packet/info";
import { Scheduler } from "./scheduler";
import { traceOn, traceRec, tw, W_CUR0, W_CUR1, W_N } from "../trace";

export class RoundRobin extends Scheduler {
  cursor: i32 = -1; // index in svc.dests; -1 is the list head

  init(svc: Service): void {
    this.cursor = -1;
  }

  // a new destination enters at the head, so the cursor's index moves up one
  addDest(svc: Service, d: Dest): void {
    if (this.cursor >= 0) this.cursor++;
  }

  delDest(svc: Service, d: Dest): void {
    const at = svc.unlinkedAt;
    // the cursor on the removed destination falls back to its predecessor
    if (this.cursor >= at) this.cursor--;
  }

  schedule(svc: Service, p: PacketInfo, now: i64): Dest | null {
    const ds = svc.dests;
    const n = ds.length;
    const last = this.cursor;
    // first pass: after the cursor to the end, the second (only when not at the head): up to the cursor
    for (let i = last + 1; i < n; i++) {
      const d = unchecked(ds[i]);
      if (!d.overloaded() && d.weight > 0) {
        this.cursor = i;
        if (traceOn) trace(svc, last, i, d);
        return d;
      }
    }
    if (last >= 0) {
      for (let i = 0; i <= last && i < n; i++) {
        const d = unchecked(ds[i]);
        if (!d.overloaded() && d.weight > 0) {
          this.cursor = i;
          if (traceOn) trace(svc, last, i, d);
          return d;
        }
      }
    }
    if (traceOn) trace(svc, last, last, null);
    return null;
  }
}

// tracing: the cursor before and after (the walk between them is in the list)
function trace(svc: Service, before: i32, after: i32, d: Dest | null): void {
  const r = traceRec(svc.schedId, svc.id, d ? d.id : -1);
  tw(r, W_CUR0, before);
  tw(r, W_CUR1, after);
  tw(r, W_N, svc.dests.length);
}
