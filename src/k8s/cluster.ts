// The incremental index: Services and EndpointSlices in, kube-proxy's IPVS tables out. Each change recomputes
// only the service ports it touches (one Service, or the Service one slice belongs to) and reports the virtual
// services, ipset entries and kube-ipvs0 addresses that changed; the whole state is an aggregate kept current.
// A full mapping is the same code applied to every object, so the two can never disagree.
import type { V1EndpointSlice, V1Service } from "@kubernetes/client-node";
import type { DesiredState, VirtualService } from "../model/types.ts";
import { serviceKey } from "../model/types.ts";
import type { Family } from "./ip.ts";
import type { ProxyConfig } from "./config.ts";
import { DEFAULT_CONFIG } from "./config.ts";
import { familyNode, type FamilyNode, type NodeInfo } from "./node.ts";
import {
  endpointsForService,
  readEndpointSlice,
  readService,
  type EndpointInfo,
  type ServicePortInfo,
  type ServiceRecord,
  type SliceRecord,
} from "./model.ts";
import {
  IPSETS,
  ipsetName,
  ipsetRestoreText,
  ipvsContribution,
  ipvsIptablesText,
  ipvsSysctls,
  withJumps,
  IPVS_JUMPS,
  type Contribution,
  type IpsetState,
  type LbNoNodeAccess,
  type JumpRule,
} from "./ipvs.ts";
import { K8sInputError } from "./errors.ts";

export interface Change {
  /** virtual service keys (serviceKey) whose definition or real servers changed */
  added: string[];
  updated: string[];
  removed: string[];
  ipsetAdd: [string, string][]; // [kernel set name, entry]
  ipsetDel: [string, string][];
  bindAdd: string[];
  bindDel: string[];
  errors: K8sInputError[];
}

const emptyChange = (): Change => ({
  added: [],
  updated: [],
  removed: [],
  ipsetAdd: [],
  ipsetDel: [],
  bindAdd: [],
  bindDel: [],
  errors: [],
});

export interface IpvsFamilyState {
  family: Family;
  services: VirtualService[];
  ipsets: IpsetState[];
  bindAddrs: string[]; // kube-ipvs0 (KUBE-IPVS-IPS)
  lbNoNodeAccess: LbNoNodeAccess[];
  ipsetRestore: string; // `ipset restore` input
  iptablesRestore: string; // `iptables-restore --noflush --counters` input, exactly what the proxier writes
  iptablesJumps: JumpRule[]; // ensured separately by the proxier
  iptablesInstall: string; // iptablesRestore with the jumps, for an empty namespace
}

export interface IndexOptions {
  config?: Partial<ProxyConfig>;
  node: NodeInfo;
  families?: Family[];
}

interface FamilyAgg {
  node: FamilyNode;
  vs: Map<string, { owners: Map<string, VirtualService>; sig: string }>;
  ipset: Map<string, Map<string, number>>; // base name -> entry -> refcount
  bind: Map<string, number>;
  lbNo: Map<string, LbNoNodeAccess[]>; // owner -> entries
  contrib: Map<string, Contribution>; // service port key -> contribution
  portsBySvc: Map<string, Set<string>>; // svcKey -> service port keys with a contribution
}

const vsSig = (v: VirtualService) => JSON.stringify(v);

export class ClusterIndex {
  readonly config: ProxyConfig;
  readonly node: NodeInfo;
  readonly families: Family[];
  private services = new Map<string, ServiceRecord>();
  private slices = new Map<string, SliceRecord>();
  private slicesBySvc = new Map<string, Map<string, SliceRecord>>();
  private endpoints = new Map<string, Map<string, EndpointInfo[]>>(); // `${family}|${svcKey}` -> port key -> endpoints
  private agg = new Map<Family, FamilyAgg>();
  /** errors of the last refused version of each object, by "Kind ns/name" */
  readonly refused = new Map<string, K8sInputError[]>();

  constructor(opts: IndexOptions) {
    this.config = { ...DEFAULT_CONFIG, ...(opts.config ?? {}) };
    this.node = opts.node;
    this.families = opts.families ?? ["IPv4", "IPv6"];
    for (const f of this.families)
      this.agg.set(f, {
        node: familyNode(this.node, this.config, f),
        vs: new Map(),
        ipset: new Map(),
        bind: new Map(),
        lbNo: new Map(),
        contrib: new Map(),
        portsBySvc: new Map(),
      });
  }

  familyNode(f: Family): FamilyNode {
    return this.agg.get(f)!.node;
  }

  // ---- changes -------------------------------------------------------------------------------------------

  /** Add or replace a Service. An invalid Service is refused whole: the previous version stays. */
  applyService(obj: V1Service | Record<string, unknown>): Change {
    const { record, errors } = readService(obj, { loadBalancerIPMode: this.config.loadBalancerIPMode });
    if (!record) return this.refuse(errors);
    this.refused.delete(`Service ${record.key}`);
    this.services.set(record.key, record);
    return this.recompute(record.key, false);
  }

  deleteService(namespace: string, name: string): Change {
    const key = `${namespace}/${name}`;
    if (!this.services.delete(key)) return emptyChange();
    return this.recompute(key, false);
  }

  applyEndpointSlice(obj: V1EndpointSlice | Record<string, unknown>): Change {
    const { record, errors } = readEndpointSlice(obj);
    if (!record) return this.refuse(errors);
    this.refused.delete(`EndpointSlice ${record.key}`);
    const prev = this.slices.get(record.key);
    const ch = emptyChange();
    if (prev && prev.svcKey !== record.svcKey) {
      // the slice moved to another Service
      this.slicesBySvc.get(prev.svcKey)?.delete(record.key);
      merge(ch, this.recompute(prev.svcKey, true));
    }
    this.slices.set(record.key, record);
    let m = this.slicesBySvc.get(record.svcKey);
    if (!m) this.slicesBySvc.set(record.svcKey, (m = new Map()));
    m.set(record.key, record);
    merge(ch, this.recompute(record.svcKey, true));
    return ch;
  }

  deleteEndpointSlice(namespace: string, name: string): Change {
    const key = `${namespace}/${name}`;
    const prev = this.slices.get(key);
    if (!prev) return emptyChange();
    this.slices.delete(key);
    const m = this.slicesBySvc.get(prev.svcKey);
    m?.delete(key);
    if (m && m.size === 0) this.slicesBySvc.delete(prev.svcKey);
    return this.recompute(prev.svcKey, true);
  }

  /** Apply any object by kind (Service, EndpointSlice); other kinds are reported and skipped. */
  apply(obj: Record<string, unknown>): Change {
    if (obj.kind === "Service") return this.applyService(obj);
    if (obj.kind === "EndpointSlice") return this.applyEndpointSlice(obj);
    const md = (obj.metadata ?? {}) as { namespace?: string; name?: string };
    return this.refuse([
      new K8sInputError(
        `${String(obj.kind ?? "<no kind>")} ${md.namespace ?? "default"}/${md.name ?? "<no name>"}`,
        "kind",
        `unsupported kind ${JSON.stringify(obj.kind)} (expected Service or EndpointSlice)`,
      ),
    ]);
  }

  private refuse(errors: K8sInputError[]): Change {
    if (errors.length) this.refused.set(errors[0].object, errors);
    const ch = emptyChange();
    ch.errors = errors;
    return ch;
  }

  /** Recompute every service port of one Service (both families) and fold the difference into the aggregate. */
  private recompute(svcKey: string, endpointsChanged: boolean): Change {
    const ch = emptyChange();
    const rec = this.services.get(svcKey);
    for (const [family, agg] of this.agg) {
      const epKey = `${family}|${svcKey}`;
      if (endpointsChanged || !this.endpoints.has(epKey)) {
        const sl = this.slicesBySvc.get(svcKey);
        if (sl?.size) this.endpoints.set(epKey, endpointsForService(svcKey, family, sl.values()));
        else this.endpoints.delete(epKey);
      }
      const eps = this.endpoints.get(epKey);
      const newPorts = new Map<string, ServicePortInfo>();
      for (const sp of rec?.ports ?? []) if (sp.family === family) newPorts.set(sp.key, sp);
      // ports that disappeared
      const had = agg.portsBySvc.get(svcKey);
      for (const pk of had ?? []) {
        if (newPorts.has(pk)) continue;
        this.fold(agg, pk, agg.contrib.get(pk)!, null, ch);
        agg.contrib.delete(pk);
      }
      if (newPorts.size) agg.portsBySvc.set(svcKey, new Set(newPorts.keys()));
      else agg.portsBySvc.delete(svcKey);
      for (const [pk, sp] of newPorts) {
        const c = ipvsContribution(sp, eps?.get(pk), { cfg: this.config, node: agg.node });
        this.fold(agg, pk, agg.contrib.get(pk) ?? null, c, ch);
        agg.contrib.set(pk, c);
      }
    }
    return ch;
  }

  private fold(
    agg: FamilyAgg,
    owner: string,
    before: Contribution | null,
    after: Contribution | null,
    ch: Change,
  ): void {
    const fam = agg.node.family;
    // virtual services
    const touched = new Set<string>();
    for (const v of before?.vss ?? []) {
      const k = serviceKey(v);
      const e = agg.vs.get(k);
      if (e) {
        e.owners.delete(owner);
        touched.add(k);
      }
    }
    for (const v of after?.vss ?? []) {
      const k = serviceKey(v);
      let e = agg.vs.get(k);
      if (!e) agg.vs.set(k, (e = { owners: new Map(), sig: "" }));
      e.owners.set(owner, v);
      touched.add(k);
    }
    for (const k of touched) {
      const e = agg.vs.get(k)!;
      const first = e.owners.values().next();
      if (first.done) {
        agg.vs.delete(k);
        if (e.sig) ch.removed.push(k);
        continue;
      }
      const sig = vsSig(first.value);
      if (!e.sig) ch.added.push(k);
      else if (sig !== e.sig) ch.updated.push(k);
      e.sig = sig;
    }
    // ipsets
    for (const [s, entry] of before?.ipset ?? []) {
      const m = agg.ipset.get(s)!;
      const n = (m.get(entry) ?? 1) - 1;
      if (n <= 0) {
        m.delete(entry);
        ch.ipsetDel.push([ipsetName(s, fam), entry]);
      } else m.set(entry, n);
    }
    for (const [s, entry] of after?.ipset ?? []) {
      let m = agg.ipset.get(s);
      if (!m) agg.ipset.set(s, (m = new Map()));
      const n = m.get(entry) ?? 0;
      m.set(entry, n + 1);
      if (n === 0) ch.ipsetAdd.push([ipsetName(s, fam), entry]);
    }
    // an entry deleted then re-added in one change is no change
    if (ch.ipsetDel.length && ch.ipsetAdd.length) cancelPairs(ch.ipsetDel, ch.ipsetAdd);
    for (const a of before?.bind ?? []) {
      const n = (agg.bind.get(a) ?? 1) - 1;
      if (n <= 0) {
        agg.bind.delete(a);
        ch.bindDel.push(a);
      } else agg.bind.set(a, n);
    }
    for (const a of after?.bind ?? []) {
      const n = agg.bind.get(a) ?? 0;
      agg.bind.set(a, n + 1);
      if (n === 0) ch.bindAdd.push(a);
    }
    if (ch.bindDel.length && ch.bindAdd.length) cancelPairs(ch.bindDel, ch.bindAdd);
    if (after?.lbNoNodeAccess.length) agg.lbNo.set(owner, after.lbNoNodeAccess);
    else agg.lbNo.delete(owner);
  }

  // ---- reads ---------------------------------------------------------------------------------------------

  /** Every virtual service of one family, sorted by key. */
  virtualServices(f: Family): VirtualService[] {
    const agg = this.agg.get(f);
    if (!agg) return [];
    return [...agg.vs.entries()]
      .sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0))
      .map(([, e]) => e.owners.values().next().value as VirtualService);
  }

  virtualService(key: string): VirtualService | undefined {
    for (const agg of this.agg.values()) {
      const e = agg.vs.get(key);
      if (e) return e.owners.values().next().value;
    }
    return undefined;
  }

  /** The Service ports that define a virtual service ("ns/name:port"); more than one means a conflict. */
  owners(key: string): string[] {
    for (const agg of this.agg.values()) {
      const e = agg.vs.get(key);
      if (e) return [...e.owners.keys()];
    }
    return [];
  }

  /** DesiredState for both families (IPv4 first), with the IPVS timeouts when any is configured. */
  desiredState(): DesiredState {
    const services = this.families.flatMap((f) => this.virtualServices(f));
    const c = this.config;
    const ds: DesiredState = { services };
    if (c.tcpTimeout > 0 || c.tcpFinTimeout > 0 || c.udpTimeout > 0)
      ds.timeouts = { tcp: c.tcpTimeout, tcpfin: c.tcpFinTimeout, udp: c.udpTimeout };
    return ds;
  }

  ipsets(f: Family): IpsetState[] {
    const agg = this.agg.get(f)!;
    return IPSETS.map((s) => {
      const entries = s.name === "KUBE-IPVS-IPS" ? [...agg.bind.keys()] : [...(agg.ipset.get(s.name)?.keys() ?? [])];
      return {
        name: ipsetName(s.name, f),
        base: s.name,
        type: s.type,
        family: f === "IPv4" ? ("inet" as const) : ("inet6" as const),
        comment: s.comment,
        entries: entries.sort(),
      };
    });
  }

  ipvsState(f: Family, opts: { randomFully?: boolean } = {}): IpvsFamilyState {
    const agg = this.agg.get(f)!;
    const ipsets = this.ipsets(f);
    const nonEmpty = (base: string) =>
      base === "KUBE-IPVS-IPS" ? agg.bind.size > 0 : (agg.ipset.get(base)?.size ?? 0) > 0;
    const lbNo = [...agg.lbNo.keys()].sort().flatMap((k) => agg.lbNo.get(k)!);
    const iptablesRestore = ipvsIptablesText(f, this.config, agg.node, nonEmpty, lbNo, opts);
    return {
      family: f,
      services: this.virtualServices(f),
      ipsets,
      bindAddrs: [...agg.bind.keys()].sort(),
      lbNoNodeAccess: lbNo,
      ipsetRestore: ipsetRestoreText(ipsets),
      iptablesRestore,
      iptablesJumps: IPVS_JUMPS,
      iptablesInstall: withJumps(iptablesRestore, IPVS_JUMPS),
    };
  }

  sysctls(): Record<string, number> {
    return ipvsSysctls(this.config, this.node.kernelVersion);
  }

  /** Service ports of one family with their endpoints, in key order (for the iptables and nftables writers). */
  *servicePorts(f: Family): Generator<[ServicePortInfo, EndpointInfo[]]> {
    const keys = [...this.services.keys()].sort();
    for (const k of keys) {
      const eps = this.endpoints.get(`${f}|${k}`);
      for (const sp of this.services.get(k)!.ports) if (sp.family === f) yield [sp, eps?.get(sp.key) ?? []];
    }
  }

  get serviceCount(): number {
    return this.services.size;
  }
  get sliceCount(): number {
    return this.slices.size;
  }
}

function merge(into: Change, from: Change): void {
  into.added.push(...from.added);
  into.updated.push(...from.updated);
  into.removed.push(...from.removed);
  into.ipsetAdd.push(...from.ipsetAdd);
  into.ipsetDel.push(...from.ipsetDel);
  into.bindAdd.push(...from.bindAdd);
  into.bindDel.push(...from.bindDel);
  into.errors.push(...from.errors);
  // a VS removed by one step and added by the next is an update
  for (const k of [...into.added]) {
    const i = into.removed.indexOf(k);
    if (i >= 0) {
      into.removed.splice(i, 1);
      into.added.splice(into.added.indexOf(k), 1);
      into.updated.push(k);
    }
  }
}

function cancelPairs<T>(del: T[], add: T[]): void {
  const key = (x: T) => JSON.stringify(x);
  const addKeys = new Map<string, number>();
  add.forEach((a, i) => addKeys.set(key(a), i));
  const drop = new Set<number>();
  for (let i = del.length - 1; i >= 0; i--) {
    const j = addKeys.get(key(del[i]));
    if (j !== undefined && !drop.has(j)) {
      drop.add(j);
      del.splice(i, 1);
    }
  }
  const kept = add.filter((_, i) => !drop.has(i));
  add.length = 0;
  add.push(...kept);
}
