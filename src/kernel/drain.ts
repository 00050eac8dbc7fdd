// The graceful drain's state machine: a real server no longer desired goes to weight 0 and is deleted once
// its active + inactive connections reach 0 (UDP drains by its entries too), or after the drain bound; a
// removed service is deleted once nothing of it drains. Counters are always the kernel's current ones.
import type { VirtualService, RealServer } from "../model/types.ts";
import type { RealServerStatus } from "../model/target.ts";
import type { IpvsClient, Op } from "./client.ts";
import type { Change, Failure, DrainState } from "./report.ts";
import { canonRealServerKey } from "./keys.ts";
import * as C from "./constants.ts";

// a real server as last seen: the kernel's status after a read, or the desired object after we applied it
// (never mutated: desired objects belong to the caller)
export interface ViewDest extends RealServer {
  activeConns?: number;
  inactConns?: number;
}
export interface ViewSvc {
  svc: VirtualService;
  dests: Map<string, ViewDest>;
}
export type View = Map<string, ViewSvc>;
const conns = (d: ViewDest) => (d.activeConns ?? 0) + (d.inactConns ?? 0);

interface Drain {
  svc: VirtualService;
  svcKey: string;
  rs: ViewDest;
  rsKey: string;
  since: number;
}

/** One change to send, with what it means for the report and for the view once the kernel accepts it. */
export interface OpMeta {
  change: Change;
  svcKey: string;
  apply: () => void;
}
export type Push = (op: Op, change: Change, svcKey: string, apply: () => void) => void;
/** Sends ops and records each result (Reconciler.run); returns the messages sent. */
type Run = (ops: Op[], meta: OpMeta[], changes: Change[], failures: Failure[]) => Promise<number>;

export class Drains {
  readonly draining = new Map<string, Drain>(); // "svcKey rsKey"
  readonly removedSvcs = new Map<string, VirtualService>(); // services draining toward deletion

  constructor(
    private client: IpvsClient,
    private view: View,
    readonly timeoutMs: number,
    private now: () => number,
  ) {}

  get count(): number {
    return this.draining.size + this.removedSvcs.size;
  }

  states(): DrainState[] {
    return [...this.draining.values()].map((d) => ({
      service: d.svcKey,
      rs: d.rsKey,
      since: d.since,
      activeConns: d.rs.activeConns ?? 0,
      inactConns: d.rs.inactConns ?? 0,
      serviceRemoved: this.removedSvcs.has(d.svcKey),
    }));
  }

  /** The service is gone: nothing of it drains any more. */
  forgetService(k: string): void {
    this.removedSvcs.delete(k);
    for (const [dk, d] of this.draining) if (d.svcKey === k) this.draining.delete(dk);
  }

  start(s: VirtualService, k: string, have: ViewDest, rk: string, now: number, push: Push): void {
    const dk = `${k} ${rk}`;
    if (this.draining.has(dk)) return;
    if (conns(have) === 0) {
      push(
        { op: "deleteDest", service: s, dest: have },
        { kind: "delete-rs", service: k, rs: rk, reason: "no connections" },
        k,
        () => this.view.get(k)?.dests.delete(rk),
      );
      return;
    }
    if (have.weight !== 0) {
      const z: ViewDest = { ...have, weight: 0 };
      const d: Drain = { svc: s, svcKey: k, rs: z, rsKey: rk, since: now };
      push(
        { op: "editDest", service: s, dest: z },
        {
          kind: "drain-rs",
          service: k,
          rs: rk,
          fields: [`weight ${have.weight} → 0`],
          reason: `${have.activeConns ?? 0} active, ${have.inactConns ?? 0} inactive`,
        },
        k,
        () => {
          this.view.get(k)?.dests.set(rk, z);
          this.draining.set(dk, d);
        },
      );
      // already at weight 0 (ours before a restart, or someone's): adopt it
    } else this.draining.set(dk, { svc: s, svcKey: k, rs: { ...have }, rsKey: rk, since: now });
  }

  /** Deletes what has drained (or hit the bound), then services left empty (dropService drops one). */
  async pass(changes: Change[], failures: Failure[], run: Run, dropService: (k: string) => void): Promise<number> {
    if (!this.draining.size && !this.removedSvcs.size) return 0;
    const now = this.now();
    const fresh = await this.freshCounters(failures);
    const ops: Op[] = [];
    const meta: OpMeta[] = [];
    for (const [dk, d] of this.draining) {
      const f = fresh.get(d.svcKey);
      if (!f) continue;
      const r = f.get(d.rsKey);
      if (!r) {
        this.draining.delete(dk);
        this.view.get(d.svcKey)?.dests.delete(d.rsKey);
        continue;
      }
      d.rs.activeConns = r.activeConns;
      d.rs.inactConns = r.inactConns;
      const conns = r.activeConns + r.inactConns;
      const expired = now - d.since >= this.timeoutMs;
      if (conns === 0 || expired) {
        ops.push({ op: "deleteDest", service: d.svc, dest: r });
        meta.push({
          change: {
            kind: "delete-rs",
            service: d.svcKey,
            rs: d.rsKey,
            reason:
              conns === 0
                ? `drained after ${((now - d.since) / 1000).toFixed(1)} s`
                : `drain bound of ${this.timeoutMs / 1000} s reached with ${r.activeConns} active, ` +
                  `${r.inactConns} inactive`,
          },
          svcKey: d.svcKey,
          apply: () => {
            this.draining.delete(dk);
            this.view.get(d.svcKey)?.dests.delete(d.rsKey);
          },
        });
      } else if (r.weight !== 0) {
        // someone (or something) gave it weight again: put it back to 0
        ops.push({ op: "editDest", service: d.svc, dest: { ...r, weight: 0 } });
        meta.push({
          change: { kind: "drain-rs", service: d.svcKey, rs: d.rsKey, fields: [`weight ${r.weight} → 0`] },
          svcKey: d.svcKey,
          apply: () => {
            d.rs.weight = 0;
          },
        });
      }
    }
    let n = await run(ops, meta, changes, failures);
    // removed services with nothing left draining
    const ops2: Op[] = [];
    const meta2: OpMeta[] = [];
    for (const [k, s] of this.removedSvcs) {
      if ([...this.draining.values()].some((d) => d.svcKey === k)) continue;
      const v = this.view.get(k);
      if (v?.dests.size) continue;
      ops2.push({ op: "deleteService", service: s });
      meta2.push({
        change: { kind: "delete-service", service: k, reason: "its real servers drained" },
        svcKey: k,
        apply: () => dropService(k),
      });
    }
    n += await run(ops2, meta2, changes, failures);
    return n;
  }

  // fresh counters for the services that have draining real servers (only those)
  private async freshCounters(failures: Failure[]): Promise<Map<string, Map<string, RealServerStatus>>> {
    const bySvc = new Map<string, VirtualService>();
    for (const d of this.draining.values()) bySvc.set(d.svcKey, d.svc);
    const fresh = new Map<string, Map<string, RealServerStatus>>();
    await Promise.all(
      [...bySvc].map(async ([k, s]) => {
        try {
          const list = await this.client.dests(s);
          fresh.set(k, new Map(list.map((r) => [canonRealServerKey(r), r])));
        } catch (e) {
          if ((e as { errno?: number }).errno === C.ERRNO.ESRCH) fresh.set(k, new Map());
          else
            failures.push({
              kind: "delete-rs",
              service: k,
              error: `cannot read its real servers: ${(e as Error).message}`,
            });
        }
      }),
    );
    return fresh;
  }
}
