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
import { readFileSync, writeFileSync } from "node:fs";
import { isIPv4 } from "node:net";
import type { DesiredState, VirtualService, RealServer, IpvsTimeouts } from "../model/types.ts";
import { serviceKey, realServerKey } from "../model/types.ts";
import type { RealServerStatus } from "../model/target.ts";
import { addrBytes, formatAddr } from "../core/addr.ts";
import { IpvsClient, describeOp, type Op, type ServiceWithDests } from "./client.ts";
import { serviceFlagBits, normalNetmask, serviceAf, tunFlagBits, CodecError } from "./codec.ts";
import * as C from "./constants.ts";

// ---------------------------------------------------------------------------------------------------
// Normal forms and comparisons (shared by the reconciler and the drift check)

function canonAddr(a: string): string {
  if (a.indexOf(":") < 0) return a;      // IPv4 has one spelling (a bad one fails when encoded)
  return formatAddr(C.AF_INET6, addrBytes(a));
}
const keyCache = new WeakMap<object, string>();
/** serviceKey with the address in canonical form ("fd00:0::1" and "fd00::1" are one service). Cached per
 * object: desired states are treated as immutable (a change is a new object). */
export function canonServiceKey(s: VirtualService): string {
  let k = keyCache.get(s);
  if (k === undefined) { k = canonServiceKeyOf(s); keyCache.set(s, k); }
  return k;
}
// uncached: for objects met once (a dump's), which would only grow the WeakMap the collector must walk
function canonServiceKeyOf(s: VirtualService): string {
  if (s.fwmark || (s.addr ?? "").indexOf(":") < 0) return serviceKey(s);
  return serviceKey({ ...s, addr: canonAddr(s.addr ?? "") });
}
export function canonRealServerKey(r: Pick<RealServer, "addr" | "port">): string {
  return r.addr.indexOf(":") < 0 ? `${r.addr}:${r.port}` : realServerKey({ addr: canonAddr(r.addr), port: r.port });
}

interface SvcFields { scheduler: string; flags: number; persistent: number | undefined; netmask: string; pe: string }
const fieldsCache = new WeakMap<object, SvcFields>();
function svcFields(s: VirtualService): SvcFields {
  let f = fieldsCache.get(s);
  if (f === undefined) { f = svcFieldsOf(s); fieldsCache.set(s, f); }
  return f;
}
function svcFieldsOf(s: VirtualService): SvcFields {
  return {
    scheduler: s.scheduler || "wlc",
    flags: serviceFlagBits(s) & ~C.IP_VS_SVC_F_HASHED,
    persistent: s.persistent,
    netmask: normalNetmask(s),
    pe: s.pe ?? "",
  };
}
const flagText = (bits: number, sched: string) => {
  const names: string[] = [];
  if (bits & C.IP_VS_SVC_F_PERSISTENT) names.push("persistent");
  if (bits & C.IP_VS_SVC_F_ONEPACKET) names.push("ops");
  const pre = sched === "sh" || sched === "mh" ? sched + "-" : "";
  if (bits & C.IP_VS_SVC_F_SCHED1) names.push(pre ? pre + "fallback" : "flag-1");
  if (bits & C.IP_VS_SVC_F_SCHED2) names.push(pre ? pre + "port" : "flag-2");
  if (bits & C.IP_VS_SVC_F_SCHED3) names.push("flag-3");
  return names.length ? names.join(",") : "none";
};

/** The service fields that differ, as "field want ← have" texts (empty: equal). */
export function serviceDiff(want: VirtualService, have: VirtualService): string[] {
  const w = svcFields(want), h = svcFieldsOf(have);   // have: often a dump's object, met once
  const d: string[] = [];
  if (w.scheduler !== h.scheduler) d.push(`scheduler ${h.scheduler} → ${w.scheduler}`);
  if (w.flags !== h.flags) d.push(`flags ${flagText(h.flags, h.scheduler)} → ${flagText(w.flags, w.scheduler)}`);
  if ((w.flags & C.IP_VS_SVC_F_PERSISTENT) && w.persistent !== h.persistent) d.push(`persistence timeout ${h.persistent ?? "none"} → ${w.persistent}`);
  if (w.netmask !== h.netmask) d.push(`netmask ${h.netmask} → ${w.netmask}`);
  if (w.pe !== h.pe) d.push(`pe ${h.pe || "none"} → ${w.pe || "none"}`);
  return d;
}

function tunSig(r: Partial<RealServer>): string {
  if (r.fwd !== "tunnel") return "";
  const t = r.tunType ?? "ipip";
  return `${t}:${t === "gue" ? r.tunPort ?? 0 : 0}:${t === "ipip" ? 0 : tunFlagBits(r.tunFlags)}`;
}
// realServerDiff(want, have).length === 0 without building the texts (the common case of a full pass)
function sameRealServer(want: RealServer, have: RealServer): boolean {
  return want.weight === have.weight && want.fwd === have.fwd &&
    (want.upperThreshold ?? 0) === (have.upperThreshold ?? 0) && (want.lowerThreshold ?? 0) === (have.lowerThreshold ?? 0) &&
    (want.fwd !== "tunnel" && have.fwd !== "tunnel" || tunSig(want) === tunSig(have));
}

/** The real server fields that differ (weight, forwarding, thresholds, tunnel). */
export function realServerDiff(want: RealServer, have: RealServer): string[] {
  const d: string[] = [];
  if (want.weight !== have.weight) d.push(`weight ${have.weight} → ${want.weight}`);
  if (want.fwd !== have.fwd) d.push(`forwarding ${have.fwd} → ${want.fwd}`);
  if ((want.upperThreshold ?? 0) !== (have.upperThreshold ?? 0)) d.push(`upper threshold ${have.upperThreshold ?? 0} → ${want.upperThreshold ?? 0}`);
  if ((want.lowerThreshold ?? 0) !== (have.lowerThreshold ?? 0)) d.push(`lower threshold ${have.lowerThreshold ?? 0} → ${want.lowerThreshold ?? 0}`);
  const tw = tunSig(want), th = tunSig(have);
  if (tw !== th) d.push(`tunnel ${th || "none"} → ${tw || "none"}`);
  return d;
}

// ---------------------------------------------------------------------------------------------------
// Excluded CIDRs

interface Cidr { af: number; bytes: Uint8Array; bits: number }
export function parseCidrs(cidrs: string[] = []): Cidr[] {
  return cidrs.map((c) => {
    const [a, b] = c.split("/");
    const af = isIPv4(a) ? C.AF_INET : C.AF_INET6;
    const bits = b === undefined ? (af === C.AF_INET ? 32 : 128) : Number(b);
    if (!Number.isInteger(bits) || bits < 0 || bits > (af === C.AF_INET ? 32 : 128)) throw new Error(`bad CIDR '${c}'`);
    return { af, bytes: addrBytes(a), bits };
  });
}
export function inCidrs(addr: string | undefined, cidrs: Cidr[]): boolean {
  if (!addr || !cidrs.length) return false;
  const af = isIPv4(addr) ? C.AF_INET : C.AF_INET6;
  const b = addrBytes(addr);
  next: for (const c of cidrs) {
    if (c.af !== af) continue;
    let i = 0;
    for (; i + 8 <= c.bits; i += 8) if (b[i >> 3] !== c.bytes[i >> 3]) continue next;
    if (i < c.bits) { const m = (0xff << (8 - (c.bits - i))) & 0xff; if ((b[i >> 3] & m) !== (c.bytes[i >> 3] & m)) continue next; }
    return true;
  }
  return false;
}

// ---------------------------------------------------------------------------------------------------
// Reports

export type ChangeKind = "add-service" | "edit-service" | "delete-service" | "add-rs" | "edit-rs" | "delete-rs" |
  "drain-rs" | "restore-rs" | "timeouts" | "sysctl";

export interface Change {
  kind: ChangeKind;
  service?: string;          // service key
  rs?: string;               // real server key
  fields?: string[];         // what changed ("weight 3 → 1")
  reason?: string;           // why (deletes after a drain: "drained", "drain bound reached (n conns)")
}
export interface Failure extends Change { error: string; errno?: number }
export interface DrainState { service: string; rs: string; since: number; activeConns: number; inactConns: number; serviceRemoved: boolean }

export interface ReconcileReport {
  changes: Change[];         // applied (accepted by the kernel)
  failures: Failure[];       // refused: the rest was applied; the next run retries these
  draining: DrainState[];    // real servers still draining after this run
  notes: string[];           // things worth knowing (mh without fallback, ...)
  refreshed: boolean;        // the kernel was re-read
  messages: number;          // netlink change messages sent
  ms: number;
}

export function describeChange(c: Change): string {
  const what = c.kind.endsWith("-rs") ? `real server ${c.rs} of ${c.service}` : c.kind.endsWith("-service") ? `service ${c.service}` : c.kind;
  const verb = ({ "add-service": "add", "edit-service": "edit", "delete-service": "delete", "add-rs": "add", "edit-rs": "edit",
    "delete-rs": "delete", "drain-rs": "drain (weight 0)", "restore-rs": "restore", timeouts: "set", sysctl: "set" } as const)[c.kind];
  return `${verb} ${what}${c.fields?.length ? `: ${c.fields.join(", ")}` : ""}${c.reason ? ` (${c.reason})` : ""}`;
}

export function formatReport(r: ReconcileReport): string {
  const out: string[] = [];
  for (const c of r.changes) out.push(describeChange(c));
  for (const f of r.failures) out.push(`FAILED ${describeChange(f)}: ${f.error}`);
  for (const d of r.draining) out.push(`draining real server ${d.rs} of ${d.service}: ${d.activeConns} active, ${d.inactConns} inactive`);
  for (const n of r.notes) out.push(`note: ${n}`);
  out.push(`${r.changes.length} change(s), ${r.failures.length} failure(s), ${r.messages} message(s), ${r.ms.toFixed(1)} ms${r.refreshed ? ", kernel re-read" : ""}`);
  return out.join("\n");
}

// ---------------------------------------------------------------------------------------------------
// The reconciler

export interface ReconcileOptions {
  excludeCidrs?: string[];     // never touch (nor report) kernel services whose VIP is inside these
  drainTimeoutMs?: number;     // bound on a graceful drain; default 15 min (kube-proxy has none)
  drainServices?: boolean;     // drain a removed service's real servers before deleting it (default true)
  sysctls?: boolean;           // set expire_quiescent_template=1 and expire_nodest_conn=1 (as kube-proxy does)
  now?: () => number;
}

// a real server as last seen: the kernel's status after a read, or the desired object after we applied it
// (never mutated: desired objects belong to the caller)
interface ViewDest extends RealServer { activeConns?: number; inactConns?: number }
const conns = (d: ViewDest) => (d.activeConns ?? 0) + (d.inactConns ?? 0);
interface ViewSvc { svc: VirtualService; dests: Map<string, ViewDest> }
interface Drain { svc: VirtualService; svcKey: string; rs: ViewDest; rsKey: string; since: number }

const SYSCTL_DIR = "/proc/sys/net/ipv4/vs";
const NONE: string[] = [];

export class Reconciler {
  private view = new Map<string, ViewSvc>();
  private viewLoaded = false;
  private applied = new Map<string, VirtualService>();       // key -> desired object fully applied
  private draining = new Map<string, Drain>();               // "svcKey rsKey"
  private removedSvcs = new Map<string, VirtualService>();   // services draining toward deletion
  private timeoutsSet?: IpvsTimeouts;
  private cidrs: Cidr[];
  private now: () => number;
  readonly drainTimeoutMs: number;

  constructor(readonly client: IpvsClient, readonly opts: ReconcileOptions = {}) {
    this.cidrs = parseCidrs(opts.excludeCidrs);
    this.now = opts.now ?? Date.now;
    this.drainTimeoutMs = opts.drainTimeoutMs ?? 15 * 60_000;
  }

  excluded(s: VirtualService): boolean { return !s.fwmark && inCidrs(s.addr, this.cidrs); }
  drainingKeys(): Set<string> { return new Set(this.draining.keys()); }

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
    for (const [k, d] of this.draining) if (!this.view.get(d.svcKey)?.dests.has(d.rsKey)) this.draining.delete(k);
    this.viewLoaded = true;
    return dump;
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
    if (refreshed) await this.refresh();
    const now = this.now();
    const changes: Change[] = [], failures: Failure[] = [], notes: string[] = [];
    const ops: Op[] = [];
    const meta: { change: Change; svcKey: string; apply: () => void }[] = [];
    const push = (op: Op, change: Change, svcKey: string, apply: () => void) => { ops.push(op); meta.push({ change, svcKey, apply }); };

    if (this.opts.sysctls) this.ensureSysctls(changes, failures);

    // 1. desired services
    const want = new Map<string, VirtualService>();
    const processed: string[] = [];
    const removals: { s: VirtualService; k: string; rk: string; have: ViewDest }[] = [];
    for (const s of desired.services) {
      let k: string;
      try { k = canonServiceKey(s); }
      catch (e) { failures.push({ kind: "add-service", service: serviceKey(s), error: (e as Error).message }); continue; }
      if (want.has(k)) { failures.push({ kind: "add-service", service: k, error: "duplicate service in the desired state (the first one is used)" }); continue; }
      want.set(k, s);
      if (!refreshed && this.applied.get(k) === s) continue;     // unchanged since it was applied
      processed.push(k);
      this.removedSvcs.delete(k);
      const cur = this.view.get(k);
      if (!cur) {
        const v: ViewSvc = { svc: s, dests: new Map() };
        push({ op: "addService", service: s }, { kind: "add-service", service: k }, k, () => this.view.set(k, v));
        const seen = new Set<string>();
        for (const r of s.realServers) {
          const rk = canonRealServerKey(r);
          if (seen.has(rk)) { failures.push({ kind: "add-rs", service: k, rs: rk, error: "duplicate real server in the desired state" }); continue; }
          seen.add(rk);
          push({ op: "addDest", service: s, dest: r }, { kind: "add-rs", service: k, rs: rk }, k, () => v.dests.set(rk, r));
        }
        continue;
      }
      let diff: string[];
      try { diff = serviceDiff(s, cur.svc); }
      catch (e) { failures.push({ kind: "edit-service", service: k, error: (e as Error).message }); continue; }
      if (diff.length) push({ op: "editService", service: s }, { kind: "edit-service", service: k, fields: diff }, k, () => { cur.svc = s; });
      else cur.svc = s;
      const seen = new Set<string>();
      let matched = 0;
      for (const r of s.realServers) {
        const rk = canonRealServerKey(r);
        if (seen.has(rk)) { failures.push({ kind: "add-rs", service: k, rs: rk, error: "duplicate real server in the desired state" }); continue; }
        seen.add(rk);
        const have = cur.dests.get(rk);
        if (have) matched++;
        // the drain key only when something drains (a full pass would build one per real server)
        const dk = this.draining.size ? `${k} ${rk}` : "";
        if (!have) {
          if (dk) this.draining.delete(dk);
          push({ op: "addDest", service: s, dest: r }, { kind: "add-rs", service: k, rs: rk }, k, () => cur.dests.set(rk, r));
          continue;
        }
        let rd: string[];
        try { rd = sameRealServer(r, have) ? NONE : realServerDiff(r, have); }
        catch (e) { failures.push({ kind: "edit-rs", service: k, rs: rk, error: (e as Error).message }); continue; }
        const wasDraining = dk ? this.draining.delete(dk) : false;
        if (rd.length) push({ op: "editDest", service: s, dest: r }, { kind: wasDraining ? "restore-rs" : "edit-rs", service: k, rs: rk, fields: rd }, k,
          () => cur.dests.set(rk, { ...r, activeConns: have.activeConns, inactConns: have.inactConns }));
        else if (wasDraining) cur.dests.set(rk, r);
      }
      if (matched !== cur.dests.size) {   // some real server in the kernel is not desired
        for (const [rk, have] of cur.dests) {
          if (!seen.has(rk) && !this.draining.has(`${k} ${rk}`)) removals.push({ s, k, rk, have });
        }
      }
    }

    // 2. kernel services nobody wants (except excluded ones): drain their real servers, then delete
    //    (a partial pass looks only at the services it was told were removed)
    const others: Iterable<[string, ViewSvc]> = partial
      ? partial.map((x) => [canonServiceKey(x), this.view.get(canonServiceKey(x))] as [string, ViewSvc | undefined]).filter((e): e is [string, ViewSvc] => !!e[1])
      : this.view;
    for (const [k, cur] of others) {
      if (want.has(k) || this.excluded(cur.svc)) continue;
      if (this.opts.drainServices === false || cur.dests.size === 0) {
        push({ op: "deleteService", service: cur.svc }, { kind: "delete-service", service: k }, k, () => this.dropService(k));
        continue;
      }
      this.removedSvcs.set(k, cur.svc);
      for (const [rk, have] of cur.dests) if (!this.draining.has(`${k} ${rk}`)) removals.push({ s: cur.svc, k, rk, have });
    }

    // 2b. real servers to remove: drain or delete on the kernel's current counters, never on cached ones
    //     (the view's counters are as old as its last read); one GET_DEST per affected service
    if (removals.length) {
      const fresh = new Map<string, Map<string, RealServerStatus> | null>();
      if (!refreshed) {
        const svcs = new Map<string, VirtualService>();
        for (const x of removals) svcs.set(x.k, x.s);
        await Promise.all([...svcs].map(async ([k, sv]) => {
          try { fresh.set(k, new Map((await this.client.dests(sv)).map((r) => [canonRealServerKey(r), r]))); }
          catch { fresh.set(k, null); }   // unknown: drain (the safe side); the drain pass reads it again
        }));
      }
      for (const x of removals) {
        let have: ViewDest | undefined = x.have;
        if (!refreshed) {
          const f = fresh.get(x.k);
          if (f === null) have = { ...x.have, activeConns: 1 };
          else if (f) have = f.get(x.rk);
          if (!have) { this.view.get(x.k)?.dests.delete(x.rk); continue; }   // already gone from the kernel
        }
        this.startDrain(x.s, x.k, have, x.rk, now, push);
      }
    }

    // 3. timeouts
    if (desired.timeouts && (refreshed || !this.timeoutsSet || !sameTimeouts(this.timeoutsSet, desired.timeouts))) {
      try {
        const have = await this.client.getConfig();
        const t = desired.timeouts;
        const diff = (["tcp", "tcpfin", "udp"] as const).filter((f) => t[f] > 0 && t[f] !== have[f]).map((f) => `${f} ${have[f]} → ${t[f]}`);
        if (diff.length) { await this.client.setConfig(t); changes.push({ kind: "timeouts", fields: diff }); }
        this.timeoutsSet = { ...t };
      } catch (e) { failures.push({ kind: "timeouts", error: (e as Error).message, errno: (e as { errno?: number }).errno }); }
    }

    // 4. apply everything decided so far in batches; desired services with every change accepted are
    //    "applied" (skipped by the next pass while their object stays the same), the others are retried
    const failed = new Set<string>();
    for (const f of failures) if (f.service) failed.add(f.service);
    const messages = await this.run(ops, meta, changes, failures, failed);
    for (const k of processed) {
      if (failed.has(k)) this.applied.delete(k);
      else if (this.view.has(k)) this.applied.set(k, want.get(k)!);
    }

    // 5. drains: delete what has drained (or hit the bound), then services left empty
    const drainMsgs = await this.drainPass(changes, failures);

    // 6. notes (a partial pass: on the services it touched)
    const noted: Iterable<[string, ViewSvc]> = partial
      ? [...want.keys(), ...partial.map(canonServiceKey)].map((k) => [k, this.view.get(k)] as [string, ViewSvc | undefined]).filter((e): e is [string, ViewSvc] => !!e[1])
      : this.view;
    for (const [k, v] of noted) {
      if (v.svc.scheduler !== "mh" || (serviceFlagBits(v.svc) & C.IP_VS_SVC_F_SCHED1)) continue;
      const zero = [...v.dests.values()].filter((d) => d.weight === 0).length;
      if (zero) notes.push(`${k}: mh keeps the table slots of its ${zero} weight-0 real server(s) and mh-fallback is off, so clients hashed to them get no destination until they are deleted (add -b mh-fallback)`);
    }
    if (!this.opts.sysctls && this.draining.size && [...this.draining.values()].some((d) => d.svc.persistent !== undefined) && sysctl("expire_quiescent_template") === "0")
      notes.push("persistent services are draining with expire_quiescent_template=0: templates keep sending clients to weight-0 real servers (set sysctls: true)");

    return {
      changes, failures, notes, refreshed, messages: messages + drainMsgs, ms: performance.now() - t0,
      draining: [...this.draining.values()].map((d) => ({ service: d.svcKey, rs: d.rsKey, since: d.since,
        activeConns: d.rs.activeConns ?? 0, inactConns: d.rs.inactConns ?? 0, serviceRemoved: this.removedSvcs.has(d.svcKey) })),
    };
  }

  /** Only the drain work (the sync loop calls this between syncs while something drains). */
  async drain(): Promise<ReconcileReport> {
    const t0 = performance.now();
    const changes: Change[] = [], failures: Failure[] = [];
    const messages = await this.drainPass(changes, failures);
    return {
      changes, failures, notes: [], refreshed: false, messages, ms: performance.now() - t0,
      draining: [...this.draining.values()].map((d) => ({ service: d.svcKey, rs: d.rsKey, since: d.since,
        activeConns: d.rs.activeConns ?? 0, inactConns: d.rs.inactConns ?? 0, serviceRemoved: this.removedSvcs.has(d.svcKey) })),
    };
  }

  get drainingCount(): number { return this.draining.size + this.removedSvcs.size; }

  private startDrain(s: VirtualService, k: string, have: ViewDest, rk: string, now: number,
    push: (op: Op, change: Change, svcKey: string, apply: () => void) => void): void {
    const dk = `${k} ${rk}`;
    if (this.draining.has(dk)) return;
    if (conns(have) === 0) {
      push({ op: "deleteDest", service: s, dest: have }, { kind: "delete-rs", service: k, rs: rk, reason: "no connections" }, k,
        () => this.view.get(k)?.dests.delete(rk));
      return;
    }
    if (have.weight !== 0) {
      const z: ViewDest = { ...have, weight: 0 };
      const d: Drain = { svc: s, svcKey: k, rs: z, rsKey: rk, since: now };
      push({ op: "editDest", service: s, dest: z }, { kind: "drain-rs", service: k, rs: rk, fields: [`weight ${have.weight} → 0`],
        reason: `${have.activeConns ?? 0} active, ${have.inactConns ?? 0} inactive` }, k,
        () => { this.view.get(k)?.dests.set(rk, z); this.draining.set(dk, d); });
    } else this.draining.set(dk, { svc: s, svcKey: k, rs: { ...have }, rsKey: rk, since: now });   // already at weight 0 (ours before a restart, or someone's): adopt it
  }

  private async drainPass(changes: Change[], failures: Failure[]): Promise<number> {
    if (!this.draining.size && !this.removedSvcs.size) return 0;
    const now = this.now();
    // fresh counters for the services that have draining real servers (only those)
    const bySvc = new Map<string, VirtualService>();
    for (const d of this.draining.values()) bySvc.set(d.svcKey, d.svc);
    const fresh = new Map<string, Map<string, RealServerStatus>>();
    await Promise.all([...bySvc].map(async ([k, s]) => {
      try {
        const list = await this.client.dests(s);
        fresh.set(k, new Map(list.map((r) => [canonRealServerKey(r), r])));
      } catch (e) {
        if ((e as { errno?: number }).errno === C.ERRNO.ESRCH) fresh.set(k, new Map());
        else failures.push({ kind: "delete-rs", service: k, error: `cannot read its real servers: ${(e as Error).message}` });
      }
    }));
    const ops: Op[] = [];
    const meta: { change: Change; svcKey: string; apply: () => void }[] = [];
    for (const [dk, d] of this.draining) {
      const f = fresh.get(d.svcKey);
      if (!f) continue;
      const r = f.get(d.rsKey);
      if (!r) { this.draining.delete(dk); this.view.get(d.svcKey)?.dests.delete(d.rsKey); continue; }
      d.rs.activeConns = r.activeConns; d.rs.inactConns = r.inactConns;
      const conns = r.activeConns + r.inactConns;
      const expired = now - d.since >= this.drainTimeoutMs;
      if (conns === 0 || expired) {
        ops.push({ op: "deleteDest", service: d.svc, dest: r });
        meta.push({ change: { kind: "delete-rs", service: d.svcKey, rs: d.rsKey,
          reason: conns === 0 ? `drained after ${((now - d.since) / 1000).toFixed(1)} s` : `drain bound of ${this.drainTimeoutMs / 1000} s reached with ${r.activeConns} active, ${r.inactConns} inactive` },
          svcKey: d.svcKey, apply: () => { this.draining.delete(dk); this.view.get(d.svcKey)?.dests.delete(d.rsKey); } });
      } else if (r.weight !== 0) {
        // someone (or something) gave it weight again: put it back to 0
        ops.push({ op: "editDest", service: d.svc, dest: { ...r, weight: 0 } });
        meta.push({ change: { kind: "drain-rs", service: d.svcKey, rs: d.rsKey, fields: [`weight ${r.weight} → 0`] }, svcKey: d.svcKey, apply: () => { d.rs.weight = 0; } });
      }
    }
    let n = await this.run(ops, meta, changes, failures);
    // removed services with nothing left draining
    const ops2: Op[] = [];
    const meta2: typeof meta = [];
    for (const [k, s] of this.removedSvcs) {
      if ([...this.draining.values()].some((d) => d.svcKey === k)) continue;
      const v = this.view.get(k);
      if (v && v.dests.size) continue;
      ops2.push({ op: "deleteService", service: s });
      meta2.push({ change: { kind: "delete-service", service: k, reason: "its real servers drained" }, svcKey: k, apply: () => this.dropService(k) });
    }
    n += await this.run(ops2, meta2, changes, failures);
    return n;
  }

  private dropService(k: string): void {
    this.view.delete(k);
    this.applied.delete(k);
    this.removedSvcs.delete(k);
    for (const [dk, d] of this.draining) if (d.svcKey === k) this.draining.delete(dk);
  }

  private async run(ops: Op[], meta: { change: Change; svcKey: string; apply: () => void }[], changes: Change[], failures: Failure[],
    failed?: Set<string>): Promise<number> {
    if (!ops.length) return 0;
    let results;
    try { results = await this.client.apply(ops); }
    catch (e) {
      // the socket failed mid-way: the kernel's state is unknown, so re-read it next time
      this.viewLoaded = false;
      for (const m of meta) { failures.push({ ...m.change, error: (e as Error).message, errno: (e as { errno?: number }).errno }); failed?.add(m.svcKey); }
      return ops.length;
    }
    for (let i = 0; i < results.length; i++) {
      const r = results[i], m = meta[i];
      if (r.error) { failures.push({ ...m.change, error: `${r.error.meaning} (${r.error.code})`, errno: r.error.errno }); failed?.add(m.svcKey); }
      else { m.apply(); changes.push(m.change); }
    }
    return ops.length;
  }

  /** kube-proxy's two sysctls: no persistence template pins a client to a weight-0 real server, and
   * packets of connections to deleted real servers expire their entry instead of being dropped. */
  private ensureSysctls(changes: Change[], failures: Failure[]): void {
    for (const name of ["expire_quiescent_template", "expire_nodest_conn"]) {
      const v = sysctl(name);
      if (v === undefined || v === "1") continue;
      try { writeFileSync(`${SYSCTL_DIR}/${name}`, "1"); changes.push({ kind: "sysctl", fields: [`net.ipv4.vs.${name} ${v} → 1`] }); }
      catch (e) { failures.push({ kind: "sysctl", fields: [`net.ipv4.vs.${name} → 1`], error: (e as Error).message }); }
    }
  }
}

function sysctl(name: string): string | undefined {
  try { return readFileSync(`${SYSCTL_DIR}/${name}`, "utf8").trim(); } catch { return undefined; }
}
function sameTimeouts(a: IpvsTimeouts, b: IpvsTimeouts): boolean { return a.tcp === b.tcp && a.tcpfin === b.tcpfin && a.udp === b.udp; }

/** One-shot reconcile (reads the kernel, converges it, returns the report). */
export async function reconcile(client: IpvsClient, desired: DesiredState, opts: ReconcileOptions = {}): Promise<ReconcileReport> {
  return new Reconciler(client, opts).sync(desired, { refresh: true });
}

// ---------------------------------------------------------------------------------------------------
// Drift: every difference between the desired state and the kernel (for `wasmvs sync --check`)

export type DriftKind = "missing-service" | "extra-service" | "service-field" | "missing-rs" | "extra-rs" | "rs-field" | "timeouts";
export interface Difference { kind: DriftKind; service?: string; rs?: string; fields?: string[]; message: string }

export function drift(desired: DesiredState, kernel: ServiceWithDests[] | import("../model/target.ts").ServiceStatus[],
  opts: { excludeCidrs?: string[]; draining?: Set<string>; timeouts?: IpvsTimeouts } = {}): Difference[] {
  const cidrs = parseCidrs(opts.excludeCidrs);
  const out: Difference[] = [];
  const have = new Map<string, (typeof kernel)[number]>();
  for (const s of kernel) have.set(canonServiceKey(s), s);
  const want = new Map<string, VirtualService>();
  for (const s of desired.services) want.set(canonServiceKey(s), s);
  for (const [k, s] of want) {
    const h = have.get(k);
    if (!h) { out.push({ kind: "missing-service", service: k, message: `missing service ${k} (${s.realServers.length} real servers)` }); continue; }
    const sd = serviceDiff(s, h);
    if (sd.length) out.push({ kind: "service-field", service: k, fields: sd, message: `service ${k}: ${sd.join(", ")}` });
    const hr = new Map<string, RealServerStatus>();
    for (const r of h.realServers) hr.set(canonRealServerKey(r), r);
    const wr = new Set<string>();
    for (const r of s.realServers) {
      const rk = canonRealServerKey(r);
      wr.add(rk);
      const x = hr.get(rk);
      if (!x) { out.push({ kind: "missing-rs", service: k, rs: rk, message: `missing real server ${rk} in ${k}` }); continue; }
      const rd = realServerDiff(r, x);
      if (rd.length) out.push({ kind: "rs-field", service: k, rs: rk, fields: rd, message: `real server ${rk} of ${k}: ${rd.join(", ")}` });
    }
    for (const [rk, x] of hr) {
      if (wr.has(rk)) continue;
      const dr = opts.draining?.has(`${k} ${rk}`);
      out.push({ kind: "extra-rs", service: k, rs: rk,
        message: `${dr ? "draining" : "stale"} real server ${rk} in ${k} (weight ${x.weight}, ${x.activeConns} active, ${x.inactConns} inactive)${!dr && x.weight === 0 ? ": a weight-0 leftover" : ""}` });
    }
  }
  for (const [k, h] of have) {
    if (want.has(k) || (!h.fwmark && inCidrs(h.addr, cidrs))) continue;
    out.push({ kind: "extra-service", service: k, message: `extra service ${k} (${h.realServers.length} real servers)` });
  }
  if (desired.timeouts && opts.timeouts) {
    const t = desired.timeouts, hv = opts.timeouts;
    const f = (["tcp", "tcpfin", "udp"] as const).filter((x) => t[x] > 0 && t[x] !== hv[x]).map((x) => `${x} ${hv[x]} → ${t[x]}`);
    if (f.length) out.push({ kind: "timeouts", fields: f, message: `timeouts: ${f.join(", ")}` });
  }
  return out;
}

/** Reads the kernel and lists every difference from the desired state. */
export async function checkDrift(client: IpvsClient, desired: DesiredState,
  opts: { excludeCidrs?: string[]; draining?: Set<string> } = {}): Promise<Difference[]> {
  const [kernel, timeouts] = await Promise.all([client.dump(), desired.timeouts ? client.getConfig() : Promise.resolve(undefined)]);
  return drift(desired, kernel, { ...opts, timeouts });
}

// ---------------------------------------------------------------------------------------------------
// The sync loop: KubeProxyConfiguration's syncPeriod / minSyncPeriod (kube-proxy's BoundedFrequencyRunner)

export interface SyncLoopOptions {
  syncPeriodMs?: number;       // a full sync (kernel re-read, drift repaired) at least this often; default 30 s
  minSyncPeriodMs?: number;    // triggered syncs at most `burst` per this period; default 0 (at once)
  burst?: number;              // default 2 (kube-proxy's)
  drainCheckMs?: number;       // while something drains, check it this often; default 1 s
  /** Runs before each table pass (the node's addresses and ipset entries, added before their services). */
  beforePass?: (kind: "full" | "triggered") => Promise<void> | void;
  retryBaseMs?: number;        // a failed pass is retried as a full sync after this, doubling; default 1 s
  retryMaxMs?: number;         // ... up to this (the cap); default 30 s
  onReport?: (r: ReconcileReport, kind: "full" | "triggered" | "drain") => void;
  /** A pass that could not run (the kernel could not be read or written); `retry` says when it runs again. */
  onError?: (e: Error, retry?: RetryInfo) => void;
}

/** When a failed pass runs again: attempt n waits a random time in [b·2^(n-1)/2, b·2^(n-1)], at most the cap. */
export interface RetryInfo { attempt: number; delayMs: number; maxMs: number }

export class SyncLoop {
  private timer?: NodeJS.Timeout;
  private drainTimer?: NodeJS.Timeout;
  private running?: Promise<void>;
  private pending: "none" | "triggered" | "full" = "none";
  private tokens: number;
  private lastRefill = 0;
  private lastFull = 0;
  private stopped = true;
  private failedRuns = 0;             // consecutive passes that threw or reported failures
  /** Consecutive passes that failed (0 after a clean one). */
  get failedPasses(): number { return this.failedRuns; }
  private retryAt = 0;                // no pass before this (the backoff)
  runs = 0;
  readonly syncPeriodMs: number;
  readonly minSyncPeriodMs: number;
  readonly burst: number;

  constructor(readonly reconciler: Reconciler, private desired: () => DesiredState | Promise<DesiredState>, private o: SyncLoopOptions = {}) {
    this.syncPeriodMs = o.syncPeriodMs ?? 30_000;
    this.minSyncPeriodMs = o.minSyncPeriodMs ?? 0;
    this.burst = Math.max(1, o.burst ?? 2);
    this.tokens = this.burst;
  }

  /** Starts with a full sync now. */
  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    this.request("full");
  }

  /**
   * A change arrived: sync from the cached view as soon as minSyncPeriod allows. Told which services
   * changed (their new form) and which were removed, the sync is partial (Reconciler.update: costs what
   * changed); without it, or when any trigger since the last run came without it, the whole desired
   * state is compared.
   */
  trigger(partial?: { changed: VirtualService[]; removed: VirtualService[] }): void {
    if (!partial) this.partial = null;
    else if (this.partial !== null && this.pending !== "full") {
      const p = this.partial ?? (this.partial = { changed: new Map(), removed: new Map() });
      for (const s of partial.changed) { const k = canonServiceKey(s); p.changed.set(k, s); p.removed.delete(k); }
      for (const s of partial.removed) { const k = canonServiceKey(s); p.removed.set(k, s); p.changed.delete(k); }
    }
    this.request("triggered");
  }
  // undefined: nothing accumulated yet; null: some trigger did not say (compare everything)
  private partial: { changed: Map<string, VirtualService>; removed: Map<string, VirtualService> } | null | undefined;

  /** Forces a full sync (kernel re-read) as soon as allowed. */
  full(): void { this.request("full"); }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer); clearTimeout(this.drainTimer);
    this.timer = this.drainTimer = undefined;
    await this.running;
  }

  /** Resolves when no sync is running or pending. */
  async idle(): Promise<void> {
    while (this.running || this.pending !== "none") await (this.running ?? new Promise((r) => setTimeout(r, 5)));
  }

  private refill(now: number): void {
    if (this.minSyncPeriodMs <= 0) { this.tokens = this.burst; return; }
    const add = (now - this.lastRefill) / this.minSyncPeriodMs;
    if (add > 0) { this.tokens = Math.min(this.burst, this.tokens + add); this.lastRefill = now; }
  }

  private request(kind: "full" | "triggered"): void {
    if (this.stopped) return;
    if (kind === "full" || this.pending === "none") this.pending = kind === "full" ? "full" : this.pending === "full" ? "full" : "triggered";
    this.schedule();
  }

  private schedule(): void {
    if (this.stopped || this.running) return;
    clearTimeout(this.timer);
    const now = Date.now();
    this.refill(now);
    if (this.pending !== "none" && now < this.retryAt) {
      this.timer = setTimeout(() => this.schedule(), this.retryAt - now);
      return;
    }
    if (this.pending !== "none") {
      if (this.tokens >= 1) { this.tokens -= 1; this.lastRefill = this.lastRefill || now; void this.runOnce(); return; }
      const wait = Math.ceil((1 - this.tokens) * this.minSyncPeriodMs);
      this.timer = setTimeout(() => this.schedule(), wait);
      return;
    }
    // nothing pending: the periodic full sync
    const due = this.lastFull + this.syncPeriodMs - now;
    this.timer = setTimeout(() => { this.pending = "full"; this.schedule(); }, Math.max(0, due));
  }

  private runOnce(): void {
    const kind = this.pending;
    const partial = kind === "triggered" ? this.partial : undefined;
    this.pending = "none";
    this.partial = undefined;
    this.running = (async () => {
      try {
        await this.o.beforePass?.(kind === "full" ? "full" : "triggered");
        const r = partial
          ? await this.reconciler.update([...partial.changed.values()], [...partial.removed.values()])
          : await this.reconciler.sync(await this.desired(), { refresh: kind === "full" });
        this.runs++;
        if (kind === "full") this.lastFull = Date.now();
        // refused changes: the view may be wrong (a module reload emptied the table): re-read, backing off
        if (r.failures.length) this.backoff(); else this.failedRuns = 0;
        this.o.onReport?.(r, kind === "full" ? "full" : "triggered");
      } catch (e) {
        this.o.onError?.(e as Error, this.backoff());
      } finally {
        this.running = undefined;
        this.armDrain();
        this.schedule();
      }
    })();
  }

  /** The next pass is a full sync (kernel re-read), after an exponential, jittered, capped delay. */
  private backoff(): RetryInfo {
    const base = this.o.retryBaseMs ?? 1000, maxMs = this.o.retryMaxMs ?? 30_000;
    this.failedRuns++;
    const ceiling = Math.min(maxMs, base * 2 ** Math.min(this.failedRuns - 1, 30));
    const delayMs = Math.round(ceiling / 2 + Math.random() * ceiling / 2);
    this.retryAt = Date.now() + delayMs;
    this.pending = "full";
    this.partial = undefined;
    return { attempt: this.failedRuns, delayMs, maxMs };
  }

  private armDrain(): void {
    if (this.stopped || this.drainTimer || this.reconciler.drainingCount === 0) return;
    this.drainTimer = setTimeout(async () => {
      this.drainTimer = undefined;
      if (this.stopped) return;
      if (this.running) { this.armDrain(); return; }
      let done!: () => void;
      this.running = new Promise<void>((r) => (done = r));
      try { const r = await this.reconciler.drain(); if (r.changes.length || r.failures.length) this.o.onReport?.(r, "drain"); }
      catch (e) { this.o.onError?.(e as Error); }
      finally { this.running = undefined; done(); this.armDrain(); this.schedule(); }
    }, this.o.drainCheckMs ?? 1000);
  }
}

export { CodecError, describeOp };
