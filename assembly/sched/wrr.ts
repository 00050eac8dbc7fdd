// wrr: weighted round robin (ip_vs_wrr.c), the interleaved gcd-stepped walk. Every configuration change
// restarts at the list head and re-derives the current weight cw (ip_vs_wrr_dest_changed): a cw of 0 or
// above the new maximum becomes that maximum, so cw never stays 0 and a weight-0 destination is never chosen.
// A=4 B=3 C=2 added in that order gives C B A A B A ... because adding A alone makes di = 4, mw = cw = 1.
import { Dest } from "../dest/dest";
import { Service } from "../service/service";
import { PacketInfo } from "../packet/info";
import { Scheduler, SCHED_FAIL_NO_DEST, SCHED_FAIL_ALL_OVERLOADED } from "./scheduler";
import { traceOn, traceRec, tw, W_CUR0, W_CUR1, W_N, W_CW0, W_CW1, W_MW, W_DI, W_RESTART, W_FAIL } from "../trace";

function gcd(a: i32, b: i32): i32 {
  while (b != 0) {
    const t = a % b;
    a = b;
    b = t;
  }
  return a;
}

export class WeightedRoundRobin extends Scheduler {
  cl: i32 = -1; // cursor index; -1 is the list head
  cw: i32 = 0; // current weight
  mw: i32 = 0; // max weight - (di - 1)
  di: i32 = 1; // gcd of positive weights (1 if none)
  reason: i32 = 0;

  private derive(svc: Service): void {
    let g = 0,
      max = 0;
    const ds = svc.dests;
    for (let i = 0, n = ds.length; i < n; i++) {
      const w = unchecked(ds[i]).weight;
      if (w > 0) g = g > 0 ? gcd(w, g) : w;
      if (w > max) max = w;
    }
    this.di = g > 0 ? g : 1;
    this.mw = max - (this.di - 1);
  }

  init(svc: Service): void {
    this.cl = -1;
    this.derive(svc);
    this.cw = this.mw;
  }

  private changed(svc: Service): void {
    this.cl = -1;
    this.derive(svc);
    if (this.cw > this.mw || this.cw == 0) this.cw = this.mw;
    else if (this.di > 1) this.cw = (this.cw / this.di) * this.di + 1;
  }

  addDest(svc: Service, d: Dest): void {
    this.changed(svc);
  }
  delDest(svc: Service, d: Dest): void {
    this.changed(svc);
  }
  updDest(svc: Service, d: Dest): void {
    this.changed(svc);
  }

  failReason(): i32 {
    return this.reason;
  }

  schedule(svc: Service, p: PacketInfo, now: i64): Dest | null {
    const cw0 = this.cw;
    if (this.mw == 0) {
      this.reason = SCHED_FAIL_NO_DEST;
      if (traceOn) this.trace(svc, -1, cw0, false, null);
      return null;
    }
    const ds = svc.dests;
    const n = ds.length;
    const last = this.cl;
    let stop = -2; // no stop point until the last pass is known
    let lastPass = false,
      restarted = false;
    let i = last;
    while (true) {
      for (i = i + 1; i < n; i++) {
        const d = unchecked(ds[i]);
        if (!d.overloaded() && d.weight >= this.cw) {
          this.cl = i;
          this.reason = 0;
          if (traceOn) this.trace(svc, last, cw0, restarted, d);
          return d;
        }
        if (i == stop) {
          this.reason = SCHED_FAIL_ALL_OVERLOADED;
          if (traceOn) this.trace(svc, last, cw0, restarted, null);
          return null;
        }
      }
      i = -1;
      this.cw -= this.di;
      if (this.cw <= 0) {
        this.cw = this.mw;
        // stop when the pass for weight >= 1 already covered every destination; the kernel leaves its
        // cursor at the list head here (the walk ran off the end), not where it started
        if (lastPass || last == -1) {
          this.cl = -1;
          this.reason = SCHED_FAIL_ALL_OVERLOADED;
          if (traceOn) this.trace(svc, last, cw0, true, null);
          return null;
        }
        restarted = true;
      }
      lastPass = this.cw <= this.di;
      if (lastPass && restarted && last != -1) stop = last;
    }
    return null;
  }

  // tracing: cursor and current weight before and after; the passes follow from cw0, cw, di, mw, restarted
  private trace(svc: Service, last: i32, cw0: i32, restarted: bool, d: Dest | null): void {
    const r = traceRec(svc.schedId, svc.id, d ? d.id : -1);
    tw(r, W_CUR0, last);
    tw(r, W_CUR1, this.cl);
    tw(r, W_N, svc.dests.length);
    tw(r, W_CW0, cw0);
    tw(r, W_CW1, this.cw);
    tw(r, W_MW, this.mw);
    tw(r, W_DI, this.di);
    tw(r, W_RESTART, restarted ? 1 : 0);
    tw(r, W_FAIL, this.reason);
  }
}
