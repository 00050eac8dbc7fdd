// rr: round robin (ip_vs_rr.c). The cursor is the destination chosen last; the walk starts after it
// and the cursor itself is the last candidate. Weight only matters as zero / non-zero.
import { Dest } from "../dest/dest";
import { Service, MIRROR_LONG } from "../service/service";
import { PacketInfo } from "../packet/info";
import { Scheduler } from "./scheduler";
import { traceOn, traceRec, tw, W_CUR0, W_CUR1, W_N } from "../trace";

// The cursor is the Service's schedWord (its hot line), not a field here, and the connection table calls
// rrSchedule directly (Service.schedInline): a new connection to an rr Service reads no scheduler object
// (round 7, docs/conn-table.md).
export class RoundRobin extends Scheduler {
  init(svc: Service): void {
    svc.schedWord = -1;
  }

  // a new destination enters at the head, so the cursor's index moves up one
  addDest(svc: Service, d: Dest): void {
    if (svc.schedWord >= 0) svc.schedWord++;
  }

  delDest(svc: Service, d: Dest): void {
    const at = svc.unlinkedAt;
    // the cursor on the removed destination falls back to its predecessor
    if (svc.schedWord >= at) svc.schedWord--;
  }

  schedule(svc: Service, p: PacketInfo, now: i64): Dest | null {
    return rrSchedule(svc);
  }
}

export function rrSchedule(svc: Service): Dest | null {
  // a short list is read from the Service's own lines (its mirror, service.ts), a longer one from `dests`
  if (svc.nMirror == MIRROR_LONG) return rrScheduleList(svc);
  const n = <i32>svc.nMirror;
  const last = svc.schedWord;
  // as below, over dest0 and dest1
  for (let i = last + 1; i < n; i++) {
    const d = changetype<Dest>(i == 0 ? svc.dest0 : svc.dest1);
    if (!d.overloaded() && d.weight > 0) {
      svc.schedWord = i;
      if (traceOn) trace(svc, last, i, d);
      return d;
    }
  }
  if (last >= 0) {
    for (let i = 0; i <= last && i < n; i++) {
      const d = changetype<Dest>(i == 0 ? svc.dest0 : svc.dest1);
      if (!d.overloaded() && d.weight > 0) {
        svc.schedWord = i;
        if (traceOn) trace(svc, last, i, d);
        return d;
      }
    }
  }
  if (traceOn) trace(svc, last, last, null);
  return null;
}

function rrScheduleList(svc: Service): Dest | null {
  const ds = svc.dests;
  const n = ds.length;
  const last = svc.schedWord;
  // first pass: after the cursor to the end, the second (only when not at the head): up to the cursor
  for (let i = last + 1; i < n; i++) {
    const d = unchecked(ds[i]);
    if (!d.overloaded() && d.weight > 0) {
      svc.schedWord = i;
      if (traceOn) trace(svc, last, i, d);
      return d;
    }
  }
  if (last >= 0) {
    for (let i = 0; i <= last && i < n; i++) {
      const d = unchecked(ds[i]);
      if (!d.overloaded() && d.weight > 0) {
        svc.schedWord = i;
        if (traceOn) trace(svc, last, i, d);
        return d;
      }
    }
  }
  if (traceOn) trace(svc, last, last, null);
  return null;
}

// tracing: the cursor before and after (the walk between them is in the list)
function trace(svc: Service, before: i32, after: i32, d: Dest | null): void {
  const r = traceRec(svc.schedId, svc.id, d ? d.id : -1);
  tw(r, W_CUR0, before);
  tw(r, W_CUR1, after);
  tw(r, W_N, svc.dests.length);
}
