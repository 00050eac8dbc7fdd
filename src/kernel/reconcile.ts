// The reconciler: a desired state in, the minimal set of kernel changes out, applied in batches.
//
// - Converges from any kernel state, also entries it did not make, except services whose VIP is inside
//   excludeCidrs (kube-proxy's --ipvs-exclude-cidrs): those are never touched nor reported as drift.
// - Idempotent: a second run with the same desired state sends nothing.
// - Costs what changed: the reconciler keeps its view of the kernel (read once, then updated by what it
//   applies) and skips services whose desired object is the very object it last applied. A refresh
//   (refresh: true; the sync loop's periodic run) re-reads the kernel and repairs any drift.
// - Graceful termination, fixing what kube-proxy gets wrong (../shared/ipvs-reference.md §4.5, §4.8): a
//   real server that is no longer desired goes to weight 0 and is deleted once its active + inactive
//   connections reach 0, or after drainTimeoutMs. That holds for TCP, SCTP and UDP alike: UDP entries are
//   never "active", so UDP drains by its connection entries (InActConn) instead of being deleted at once,
//   which blackholed DNS (kubernetes#71514). A removed service drains its real servers the same way and is
//   deleted when it has none left. A real server that comes back while draining gets its weight back
//   (kube-proxy deletes and re-adds it, cutting its flows). After a restart, undesired weight-0 real
//   servers found in the kernel are adopted as draining, and desired ones have their weight restored
//   (kubernetes#92019).
// - A refused change leaves the rest applied; it is reported and retried by the next run.
import type { DesiredState, VirtualService, RealServer, IpvsTimeouts } from "../model/types.ts";
import { serviceKey } from "../model/types.ts";
import type { RealServerStatus } from "../model/target.ts";
import { type IpvsClient, describeOp, type Op, type ServiceWithDests } from "./client.ts";
import { serviceFlagBits, CodecError } from "./codec.ts";
import * as C from "./constants.ts";
import { canonServiceKey, canonServiceKeyOf, canonRealServerKey } from "./keys.ts";
import { serviceDiff, realServerDiff, sameRealServer } from "./diff.ts";
import { parseCidrs, inCidrs, type Cidr } from "./cidrs.ts";
import type { Change, Failure, ReconcileReport } from "./report.ts";
import { Drains, type ViewDest, type ViewSvc, type View, type OpMeta, type Push } from "./drain.ts";
import { sysctl, ensureSysctls } from "./sysctls.ts";
import { decodeDests, sameDests, type EncodedTable } from "./table.ts";
import { schedFlagName } from "../model/schedulers.ts";

// the pieces that lived here before (importers keep their paths)
export { canonServiceKey, canonRealServerKey } from "./keys.ts";
export { serviceDiff, realServerDiff } from "./diff.ts";
export { parseCidrs, inCidrs } from "./cidrs.ts";
export * from "./report.ts";
export * from "./drift.ts";
export * from "./sync-loop.ts";

export interface ReconcileOptions {
  excludeCidrs?: string[]; // never touch (nor report) kernel services whose VIP is inside these
  drainTimeoutMs?: number; // bound on a graceful drain; default 15 min (kube-proxy has none)
  drainServices?: boolean; // drain a removed service's real servers before deleting it (default true)
  sysctls?: boolean; // set expire_quiescent_template=1 and expire_nodest_conn=1 (as kube-proxy does)
  now?: () => number;
  /** A re-read checks services on the kernel's encoded replies, building objects only for those that
   * differ (default true; false: an object per real server, as before: for comparison in benchmarks). */
  encodedRead?: boolean;
}

// A view entry that equals its desired object: its real server map is built only when something asks.
class DesiredView implements ViewSvc {
  private map?: Map<string, ViewDest>;
  private readonly list: RealServer[];
  constructor(public svc: VirtualService) {
    this.list = svc.realServers;
  }
  get dests(): Map<string, ViewDest> {
    if (!this.map) {
      this.map = new Map();
      for (const r of this.list) this.map.set(canonRealServerKey(r), r);
    }
    return this.map;
  }
}

function sameService(want: VirtualService, have: VirtualService): boolean {
  try {
    return serviceDiff(want, have).length === 0;
  } catch {
    return false;
  }
}

const NONE: string[] = [];

interface Removal {
  s: VirtualService;
  k: string;
  rk: string;
  have: ViewDest;
}

// What one pass has decided so far: the changes to send (ops, with their meaning in meta) and the rest.
class PassWork {
  readonly changes: Change[] = [];
  readonly failures: Failure[] = [];
  readonly notes: string[] = [];
  readonly ops: Op[] = [];
  readonly meta: OpMeta[] = [];
  readonly want = new Map<string, VirtualService>(); // desired services by key
  readonly processed: string[] = []; // desired services compared in this pass
  readonly removals: Removal[] = []; // real servers in the kernel nobody wants
  constructor(
    readonly refreshed: boolean,
    readonly now: number,
  ) {}
  readonly push: Push = (op, change, svcKey, apply) => {
    this.ops.push(op);
    this.meta.push({ change, svcKey, apply });
  };
}

export class Reconciler {
  private view: View = new Map<string, ViewSvc>();
  private viewLoaded = false;
  private applied = new Map<string, VirtualService>(); // key -> desired object fully applied
  private drains: Drains;
  private timeoutsSet?: IpvsTimeouts;
  private cidrs: Cidr[];
  private now: () => number;
  readonly drainTimeoutMs: number;

  constructor(
    readonly client: IpvsClient,
    readonly opts: ReconcileOptions = {},
  ) {
    this.cidrs = parseCidrs(opts.excludeCidrs);
    this.now = opts.now ?? Date.now;
    this.drainTimeoutMs = opts.drainTimeoutMs ?? 15 * 60_000;
    this.drains = new Drains(client, this.view, this.drainTimeoutMs, this.now);
  }

  excluded(s: VirtualService): boolean {
    return !s.fwmark && inCidrs(s.addr, this.cidrs);
  }
  drainingKeys(): Set<string> {
    return new Set(this.drains.draining.keys());
  }

  /** Re-reads the whole kernel table into the view. */
  async refresh(): Promise<ServiceWithDests[]> {
    const dump = await this.client.dump();
    this.view.clear();
    this.applied.clear();
    for (const s of dump) {
      const dests = new Map<string, ViewDest>();
      for (const d of s.realServers) dests.set(canonRealServerKey(d), d);
      this.view.set(canonServiceKeyOf(s), { svc: s, dests });
    }
    // draining entries whose real server disappeared are done
    const draining = this.drains.draining;
    for (const [k, d] of draining) if (!this.view.get(d.svcKey)?.dests.has(d.rsKey)) draining.delete(k);
    this.viewLoaded = true;
    return dump;
  }

  /**
   * The re-read of a full pass. Services the kernel holds exactly as desired (the common case) are checked
   * on the encoded replies, enter the view as their desired object and count as applied, so the pass
   * skips them; the others become objects and are compared field by field as refresh() would have them.
   */
  private async reread(desired: DesiredState): Promise<void> {
    const t = this.opts.encodedRead === false ? null : await this.client.dumpEncoded();
    if (!t) {
      await this.refresh();
      return;
    }
    const want = new Map<string, VirtualService>();
    for (const s of desired.services) {
      let k: string;
      try {
        k = canonServiceKey(s);
      } catch {
        continue;
      } // the pass reports it
      if (!want.has(k)) want.set(k, s);
    }
    // services with drain work go the object path (the drain state machine keeps its own records)
    const { draining } = this.drains;
    const drainingSvcs = new Set<string>();
    for (const d of draining.values()) drainingSvcs.add(d.svcKey);
    this.view.clear();
    this.applied.clear();
    for (let i = 0; i < t.services.length; i++) this.viewService(t, i, want, drainingSvcs);
    for (const [k, d] of draining) if (!this.view.get(d.svcKey)?.dests.has(d.rsKey)) draining.delete(k);
    this.viewLoaded = true;
  }
  private viewService(t: EncodedTable, i: number, want: Map<string, VirtualService>, drainingSvcs: Set<string>): void {
    const ks = t.services[i];
    const k = canonServiceKeyOf(ks);
    const s = want.get(k);
    if (s && !this.drains.removedSvcs.has(k) && !drainingSvcs.has(k) && sameService(s, ks) && sameDests(t, i, s)) {
      this.view.set(k, new DesiredView(s));
      this.applied.set(k, s);
      return;
    }
    const list = decodeDests(t, i);
    (ks as ServiceWithDests).realServers = list;
    const dests = new Map<string, ViewDest>();
    for (const d of list) dests.set(canonRealServerKey(d), d);
    this.view.set(k, { svc: ks, dests });
  }

  /**
   * One reconcile pass. refresh: re-read the kernel first (always on the first pass). Never rejects for
   * a refused change (see the report); rejects only when the kernel cannot be read at all.
   */
  async sync(desired: DesiredState, o: { refresh?: boolean } = {}): Promise<ReconcileReport> {
    return this.pass(desired, !!o.refresh);
  }

  /**
   * A partial pass, like kube-proxy's partial syncs: only these services are compared and converged
   * (changed: their new desired form; removed: services no longer desired, drained then deleted). Costs
   * what changed, not what exists. Other services and drift elsewhere are left to the next sync().
   */
  async update(changed: VirtualService[], removed: VirtualService[] = []): Promise<ReconcileReport> {
    return this.pass({ services: changed }, false, removed);
  }

  private async pass(desired: DesiredState, refresh: boolean, partial?: VirtualService[]): Promise<ReconcileReport> {
    const t0 = performance.now();
    const refreshed = refresh || !this.viewLoaded;
    if (refreshed) await this.reread(desired);
    const w = new PassWork(refreshed, this.now());
    if (this.opts.sysctls) ensureSysctls(w.changes, w.failures);
    // 1. desired services
    for (const s of desired.services) this.compareDesired(w, s);
    // 2. kernel services nobody wants (except excluded ones): drain their real servers, then delete
    this.collectUndesired(w, partial);
    // 2b. real servers to remove: drained or deleted
    if (w.removals.length) await this.startRemovals(w);
    // 3. timeouts
    if (desired.timeouts) await this.syncTimeouts(w, desired.timeouts);
    // 4. apply everything decided so far
    const messages = await this.applyWork(w);
    // 5. drains: delete what has drained (or hit the bound), then services left empty
    const drainMsgs = await this.drainPass(w.changes, w.failures);
    // 6. notes (a partial pass: on the services it touched)
    this.addNotes(w, partial);
    return {
      changes: w.changes,
      failures: w.failures,
      notes: w.notes,
      refreshed,
      messages: messages + drainMsgs,
      ms: performance.now() - t0,
      draining: this.drains.states(),
    };
  }

  /** Step 1 for one desired service: new, or compared with the view (unless unchanged since applied). */
  private compareDesired(w: PassWork, s: VirtualService): void {
    let k: string;
    try {
      k = canonServiceKey(s);
    } catch (e) {
      w.failures.push({ kind: "add-service", service: serviceKey(s), error: (e as Error).message });
      return;
    }
    if (w.want.has(k)) {
      w.failures.push({
        kind: "add-service",
        service: k,
        error: "duplicate service in the desired state (the first one is used)",
      });
      return;
    }
    w.want.set(k, s);
    if (this.applied.get(k) === s) return; // unchanged since it was applied, or found so by reread()
    w.processed.push(k);
    this.drains.removedSvcs.delete(k);
    const cur = this.view.get(k);
    if (!cur) this.addService(w, s, k);
    else this.compareService(w, s, k, cur);
  }

  private addService(w: PassWork, s: VirtualService, k: string): void {
    const v: ViewSvc = { svc: s, dests: new Map() };
    w.push({ op: "addService", service: s }, { kind: "add-service", service: k }, k, () => this.view.set(k, v));
    const seen = new Set<string>();
    for (const r of s.realServers) {
      const rk = canonRealServerKey(r);
      if (seen.has(rk)) {
        w.failures.push({ kind: "add-rs", service: k, rs: rk, error: "duplicate real server in the desired state" });
        continue;
      }
      seen.add(rk);
      w.push({ op: "addDest", service: s, dest: r }, { kind: "add-rs", service: k, rs: rk }, k, () =>
        v.dests.set(rk, r),
      );
    }
  }

  private compareService(w: PassWork, s: VirtualService, k: string, cur: ViewSvc): void {
    const { failures, push } = w;
    const draining = this.drains.draining;
    let diff: string[];
    try {
      diff = serviceDiff(s, cur.svc);
    } catch (e) {
      failures.push({ kind: "edit-service", service: k, error: (e as Error).message });
      return;
    }
    if (diff.length)
      push({ op: "editService", service: s }, { kind: "edit-service", service: k, fields: diff }, k, () => {
        cur.svc = s;
      });
    else cur.svc = s;
    const seen = new Set<string>();
    let matched = 0;
    for (const r of s.realServers) {
      const rk = canonRealServerKey(r);
      if (seen.has(rk)) {
        failures.push({ kind: "add-rs", service: k, rs: rk, error: "duplicate real server in the desired state" });
        continue;
      }
      seen.add(rk);
      const have = cur.dests.get(rk);
      if (have) matched++;
      // the drain key only when something drains (a full pass would build one per real server)
      const dk = draining.size ? `${k} ${rk}` : "";
      if (!have) {
        if (dk) draining.delete(dk);
        push({ op: "addDest", service: s, dest: r }, { kind: "add-rs", service: k, rs: rk }, k, () =>
          cur.dests.set(rk, r),
        );
        continue;
      }
      let rd: string[];
      try {
        rd = sameRealServer(r, have) ? NONE : realServerDiff(r, have);
      } catch (e) {
        failures.push({ kind: "edit-rs", service: k, rs: rk, error: (e as Error).message });
        continue;
      }
      const wasDraining = dk ? draining.delete(dk) : false;
      if (rd.length)
        push(
          { op: "editDest", service: s, dest: r },
          { kind: wasDraining ? "restore-rs" : "edit-rs", service: k, rs: rk, fields: rd },
          k,
          () => cur.dests.set(rk, { ...r, activeConns: have.activeConns, inactConns: have.inactConns }),
        );
      else if (wasDraining) cur.dests.set(rk, r);
    }
    if (matched !== cur.dests.size) {
      // some real server in the kernel is not desired
      for (const [rk, have] of cur.dests) {
        if (!seen.has(rk) && !draining.has(`${k} ${rk}`)) w.removals.push({ s, k, rk, have });
      }
    }
  }

  // Step 2: a partial pass looks only at the services it was told were removed.
  private collectUndesired(w: PassWork, partial?: VirtualService[]): void {
    const others: Iterable<[string, ViewSvc]> = partial
      ? partial
          .map((x) => [canonServiceKey(x), this.view.get(canonServiceKey(x))] as [string, ViewSvc | undefined])
          .filter((e): e is [string, ViewSvc] => !!e[1])
      : this.view;
    for (const [k, cur] of others) {
      if (w.want.has(k) || this.excluded(cur.svc)) continue;
      if (this.opts.drainServices === false || cur.dests.size === 0) {
        w.push({ op: "deleteService", service: cur.svc }, { kind: "delete-service", service: k }, k, () =>
          this.dropService(k),
        );
        continue;
      }
      this.drains.removedSvcs.set(k, cur.svc);
      for (const [rk, have] of cur.dests)
        if (!this.drains.draining.has(`${k} ${rk}`)) w.removals.push({ s: cur.svc, k, rk, have });
    }
  }

  // Step 2b: drain or delete on the kernel's current counters, never on cached ones (the view's counters
  // are as old as its last read); one GET_DEST per affected service.
  private async startRemovals(w: PassWork): Promise<void> {
    const fresh = new Map<string, Map<string, RealServerStatus> | null>();
    if (!w.refreshed) {
      const svcs = new Map<string, VirtualService>();
      for (const x of w.removals) svcs.set(x.k, x.s);
      await Promise.all(
        [...svcs].map(async ([k, sv]) => {
          try {
            fresh.set(k, new Map((await this.client.dests(sv)).map((r) => [canonRealServerKey(r), r])));
          } catch {
            fresh.set(k, null);
          } // unknown: drain (the safe side); the drain pass reads it again
        }),
      );
    }
    for (const x of w.removals) {
      let have: ViewDest | undefined = x.have;
      if (!w.refreshed) {
        const f = fresh.get(x.k);
        if (f === null) have = { ...x.have, activeConns: 1 };
        else if (f) have = f.get(x.rk);
        if (!have) {
          this.view.get(x.k)?.dests.delete(x.rk);
          continue;
        } // already gone from the kernel
      }
      this.drains.start(x.s, x.k, have, x.rk, w.now, w.push);
    }
  }

  private async syncTimeouts(w: PassWork, t: IpvsTimeouts): Promise<void> {
    if (!(w.refreshed || !this.timeoutsSet || !sameTimeouts(this.timeoutsSet, t))) return;
    try {
      const have = await this.client.getConfig();
      const diff = (["tcp", "tcpfin", "udp"] as const)
        .filter((f) => t[f] > 0 && t[f] !== have[f])
        .map((f) => `${f} ${have[f]} → ${t[f]}`);
      if (diff.length) {
        await this.client.setConfig(t);
        w.changes.push({ kind: "timeouts", fields: diff });
      }
      this.timeoutsSet = { ...t };
    } catch (e) {
      w.failures.push({ kind: "timeouts", error: (e as Error).message, errno: (e as { errno?: number }).errno });
    }
  }

  // Step 4: sends the changes in batches; desired services with every change accepted are "applied"
  // (skipped by the next pass while their object stays the same), the others are retried.
  private async applyWork(w: PassWork): Promise<number> {
    const failed = new Set<string>();
    for (const f of w.failures) if (f.service) failed.add(f.service);
    const messages = await this.run(w.ops, w.meta, w.changes, w.failures, failed);
    for (const k of w.processed) {
      if (failed.has(k)) this.applied.delete(k);
      else if (this.view.has(k)) this.applied.set(k, w.want.get(k)!);
    }
    return messages;
  }

  private addNotes(w: PassWork, partial?: VirtualService[]): void {
    const noted: Iterable<[string, ViewSvc]> = partial
      ? [...w.want.keys(), ...partial.map(canonServiceKey)]
          .map((k) => [k, this.view.get(k)] as [string, ViewSvc | undefined])
          .filter((e): e is [string, ViewSvc] => !!e[1])
      : this.view;
    for (const [k, v] of noted) {
      if (v.svc.scheduler !== "mh" || serviceFlagBits(v.svc) & C.IP_VS_SVC_F_SCHED1) continue;
      const zero = [...v.dests.values()].filter((d) => d.weight === 0).length;
      const fallback = schedFlagName(v.svc.scheduler, 0);
      if (zero)
        w.notes.push(
          `${k}: mh keeps the table slots of its ${zero} weight-0 real server(s) and ${fallback} is off, so ` +
            `clients hashed to them get no destination until they are deleted (add -b ${fallback})`,
        );
    }
    const draining = this.drains.draining;
    if (
      !this.opts.sysctls &&
      draining.size &&
      [...draining.values()].some((d) => d.svc.persistent !== undefined) &&
      sysctl("expire_quiescent_template") === "0"
    )
      w.notes.push(
        "persistent services are draining with expire_quiescent_template=0: templates keep sending clients to " +
          "weight-0 real servers (set sysctls: true)",
      );
  }

  /** Only the drain work (the sync loop calls this between syncs while something drains). */
  async drain(): Promise<ReconcileReport> {
    const t0 = performance.now();
    const changes: Change[] = [],
      failures: Failure[] = [];
    const messages = await this.drainPass(changes, failures);
    return {
      changes,
      failures,
      notes: [],
      refreshed: false,
      messages,
      ms: performance.now() - t0,
      draining: this.drains.states(),
    };
  }

  get drainingCount(): number {
    return this.drains.count;
  }

  private drainPass(changes: Change[], failures: Failure[]): Promise<number> {
    return this.drains.pass(
      changes,
      failures,
      (ops, meta, ch, fl) => this.run(ops, meta, ch, fl),
      (k) => this.dropService(k),
    );
  }

  private dropService(k: string): void {
    this.view.delete(k);
    this.applied.delete(k);
    this.drains.forgetService(k);
  }

  private async run(
    ops: Op[],
    meta: OpMeta[],
    changes: Change[],
    failures: Failure[],
    failed?: Set<string>,
  ): Promise<number> {
    if (!ops.length) return 0;
    let results: Awaited<ReturnType<typeof this.client.apply>>;
    try {
      results = await this.client.apply(ops);
    } catch (e) {
      // the socket failed mid-way: the kernel's state is unknown, so re-read it next time
      this.viewLoaded = false;
      for (const m of meta) {
        failures.push({ ...m.change, error: (e as Error).message, errno: (e as { errno?: number }).errno });
        failed?.add(m.svcKey);
      }
      return ops.length;
    }
    for (let i = 0; i < results.length; i++) {
      const r = results[i],
        m = meta[i];
      if (r.error) {
        failures.push({ ...m.change, error: `${r.error.meaning} (${r.error.code})`, errno: r.error.errno });
        failed?.add(m.svcKey);
      } else {
        m.apply();
        changes.push(m.change);
      }
    }
    return ops.length;
  }
}

function sameTimeouts(a: IpvsTimeouts, b: IpvsTimeouts): boolean {
  return a.tcp === b.tcp && a.tcpfin === b.tcpfin && a.udp === b.udp;
}

/** One-shot reconcile (reads the kernel, converges it, returns the report). */
export async function reconcile(
  client: IpvsClient,
  desired: DesiredState,
  opts: ReconcileOptions = {},
): Promise<ReconcileReport> {
  return new Reconciler(client, opts).sync(desired, { refresh: true });
}

export { CodecError, describeOp };
