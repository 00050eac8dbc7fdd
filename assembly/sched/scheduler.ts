// The one small interface every scheduler implements, as the kernel's struct ip_vs_scheduler does.
// One instance per service holds that service's scheduling state (the kernel's svc->sched_data).
import { Dest } from "../dest/dest";
import { Service } from "../service/service";
import { PacketInfo } from "../packet/info";

export class Scheduler {
  // Called once when the scheduler is bound to a service (which may already have destinations).
  init(svc: Service): void {}
  // Called before the scheduler is unbound from a service.
  done(svc: Service): void {}
  // Called after d was linked at the head of svc.dests.
  addDest(svc: Service, d: Dest): void {}
  // Called after d was unlinked from svc.dests, where it stood at index svc.unlinkedAt (as the kernel,
  // which unlinks first).
  delDest(svc: Service, d: Dest): void {}
  // Called after d's weight, thresholds or flags were edited.
  updDest(svc: Service, d: Dest): void {}
  // Called after d's active/inactive counters or OVERLOAD flag changed (not a kernel hook: lets the
  // least-loaded schedulers keep indexes instead of scanning every destination per connection).
  loadChanged(svc: Service, d: Dest): void {}
  // Whether loadChanged does anything: the connection table calls it, and its expiry pre-pass reads the
  // scheduler's line for it, only where it does (the Service keeps the answer in its hot line, loadHook).
  hasLoadHook(): bool {
    return false;
  }
  // Choose a destination for a new connection, or null for "no destination available".
  // now is the data plane's clock in milliseconds.
  schedule(svc: Service, p: PacketInfo, now: i64): Dest | null {
    return null;
  }
  // Periodic work (lblc/lblcr garbage collection): the core calls tick() once now >= nextTickAt.
  nextTickAt: i64 = i64.MAX_VALUE;
  tick(svc: Service, now: i64): void {}
  // Whether tick() does anything: the clock visits only the services whose scheduler says so.
  hasTimer(): bool {
    return false;
  }
  // Why the last schedule() call failed (0: it did not, or "no destination available").
  failReason(): i32 {
    return 0;
  }
  // Tracing only (assembly/trace.ts): debug views of the scheduler's tables (Q_* codes), -1 if none.
  traceQuery(svc: Service, q: i32, i: i32): i32 {
    return -1;
  }
}

// schedule() failure reasons the host reports (the kernel logs them)
export const SCHED_FAIL_NO_DEST: i32 = 1; // "no destination available"
export const SCHED_FAIL_ALL_OVERLOADED: i32 = 2; // wrr: "all destinations are overloaded"
