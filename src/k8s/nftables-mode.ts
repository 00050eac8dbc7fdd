// The `nft -f` transaction kube-proxy's nftables proxier (pkg/proxy/nftables/proxier.go) runs on its first
// full sync, written as knftables writes it: table ip/ip6 kube-proxy, base chains, verdict maps service-ips and
// service-nodeports, per-service chains service-/local-/external-/firewall-, endpoint- chains with
// `numgen random mod N vmap`, affinity- sets for ClientIP affinity.
import type { Family } from "./ip.ts";
import type { ProxyConfig } from "./config.ts";
import type { FamilyNode } from "./node.ts";
import { categorizeEndpoints, policyChains } from "./categorize.ts";
import type { EndpointInfo, ServicePortInfo } from "./model.ts";
import { sha256base32 } from "./hash.ts";
import { cidrContains, parseCIDR } from "./ip.ts";
import { masqMark } from "./ipvs.ts";

const CHAIN_BASE_MAX = 256 - 16;
function hashAndTruncate(name: string): string {
  let n = sha256base32(name).slice(0, 8) + "-" + name;
  if (n.length > CHAIN_BASE_MAX) n = n.slice(0, CHAIN_BASE_MAX - 3) + "...";
  return n;
}
const nftServiceBase = (sp: ServicePortInfo) =>
  hashAndTruncate(`${sp.svcKey}/${sp.protocol.toLowerCase()}/${sp.portName}`);
function nftEndpointBase(sp: ServicePortInfo, ep: EndpointInfo): string {
  return hashAndTruncate(
    `${sp.svcKey}/${sp.protocol.toLowerCase()}/${sp.portName}__${ep.ip.replaceAll(":", ".")}/${ep.port}`,
  );
}

// kube-proxy names these "dstnat-10", "dstnat+10", "dstnat", "srcnat"; nft before 1.0.7 accepts the named
// priorities only on some hooks, so they are written as the numbers they stand for (dstnat -100, srcnat 100).
type BaseChain = [name: string, type: string, hook: string, priority: string];
type JumpChain = [to: string, from: string, match: string];
// 1.31, 1.32 (and 1.33 before the backport): every filter chain before DNAT, the ClusterIP check after it
const BASE_CHAINS_1_31: BaseChain[] = [
  ["filter-prerouting", "filter", "prerouting", "-110"],
  ["filter-input", "filter", "input", "-110"],
  ["filter-forward", "filter", "forward", "-110"],
  ["filter-output", "filter", "output", "-110"],
  ["filter-output-post-dnat", "filter", "output", "-90"],
  ["nat-prerouting", "nat", "prerouting", "-100"],
  ["nat-output", "nat", "output", "-100"],
  ["nat-postrouting", "nat", "postrouting", "100"],
];
const JUMP_CHAINS_1_31: JumpChain[] = [
  ["nodeport-endpoints-check", "filter-input", "ct state new"],
  ["service-endpoints-check", "filter-input", "ct state new"],
  ["service-endpoints-check", "filter-forward", "ct state new"],
  ["service-endpoints-check", "filter-output", "ct state new"],
  ["firewall-check", "filter-prerouting", "ct state new"],
  ["firewall-check", "filter-output", "ct state new"],
  ["services", "nat-output", ""],
  ["services", "nat-prerouting", ""],
  ["masquerading", "nat-postrouting", ""],
  ["cluster-ips-check", "filter-forward", "ct state new"],
  ["cluster-ips-check", "filter-output-post-dnat", "ct state new"],
];
// 1.34 (kubernetes PR 132456, backported to 1.33 by PR 133969): only the firewall check stays before DNAT
// (pre-dnat chains at -110); input, forward and output run at priority 0, after DNAT, and output takes the
// ClusterIP check. So the node's own connection (a hostNetwork pod's) to an ExternalIP or LoadBalancer IP of
// a Local Service, sent to the cluster's endpoints by nat-output's DNAT, no longer meets that address's
// "no local endpoints" drop in filter-output first (test/k8s-nft-versions.test.ts shows it on the kernel).
const BASE_CHAINS_1_34: BaseChain[] = [
  ["filter-prerouting-pre-dnat", "filter", "prerouting", "-110"],
  ["filter-output-pre-dnat", "filter", "output", "-110"],
  ["filter-input", "filter", "input", "0"],
  ["filter-forward", "filter", "forward", "0"],
  ["filter-output", "filter", "output", "0"],
  ["nat-prerouting", "nat", "prerouting", "-100"],
  ["nat-output", "nat", "output", "-100"],
  ["nat-postrouting", "nat", "postrouting", "100"],
];
const JUMP_CHAINS_1_34: JumpChain[] = [
  ["nodeport-endpoints-check", "filter-input", "ct state new"],
  ["service-endpoints-check", "filter-input", "ct state new"],
  ["service-endpoints-check", "filter-forward", "ct state new"],
  ["service-endpoints-check", "filter-output", "ct state new"],
  ["firewall-check", "filter-prerouting-pre-dnat", "ct state new"],
  ["firewall-check", "filter-output-pre-dnat", "ct state new"],
  ["services", "nat-output", ""],
  ["services", "nat-prerouting", ""],
  ["masquerading", "nat-postrouting", ""],
  ["cluster-ips-check", "filter-forward", "ct state new"],
  ["cluster-ips-check", "filter-output", "ct state new"],
];

/** The kube-proxy versions whose nftables rules this writes; the last is the default. 1.33 is its patch
 * releases with the backport of PR 132456 (for 1.33 releases before it, use 1.32); 1.34 also drops the port
 * from the service chains' masquerade rule (PR 131492, not backported). */
export const KUBE_PROXY_VERSIONS = ["1.31", "1.32", "1.33", "1.34"] as const;
export type KubeProxyVersion = (typeof KUBE_PROXY_VERSIONS)[number];
export const DEFAULT_KUBE_PROXY_VERSION: KubeProxyVersion = "1.34";
const layout = (v: KubeProxyVersion) =>
  v === "1.31" || v === "1.32"
    ? { base: BASE_CHAINS_1_31, jumps: JUMP_CHAINS_1_31 }
    : { base: BASE_CHAINS_1_34, jumps: JUMP_CHAINS_1_34 };

interface NftablesModeOptions {
  serviceCIDRs?: string[];
  kubeProxyVersion?: KubeProxyVersion;
}
export interface NftablesModeResult {
  text: string;
  chains: number;
  rules: number;
  elements: number;
}

/**
 * The transaction being written, as knftables writes one: every chain added and flushed once, every element
 * of a set or map added once (a repeated key deletes the earlier element first: the last value wins).
 */
class Transaction {
  readonly lines: string[] = [];
  chains = 0;
  rules = 0;
  elements = 0;
  private created = new Set<string>();
  private seen = new Map<string, Set<string>>();
  constructor(readonly table: string) {}
  push(...lines: string[]): void {
    this.lines.push(...lines);
  }
  ensureChain(c: string): void {
    if (this.created.has(c)) return;
    this.created.add(c);
    this.chains++;
    this.lines.push(`add chain ${this.table} ${c}`, `flush chain ${this.table} ${c}`);
  }
  rule(chain: string, r: string, comment?: string): void {
    this.rules++;
    this.lines.push(`add rule ${this.table} ${chain} ${r}${comment ? ` comment "${comment}"` : ""}`);
  }
  elem(container: string, key: string, value?: string, comment?: string): void {
    let keys = this.seen.get(container);
    if (!keys) this.seen.set(container, (keys = new Set()));
    if (keys.has(key)) this.lines.push(`delete element ${this.table} ${container} { ${key} }`);
    else {
      keys.add(key);
      this.elements++;
    }
    const annotated = `${key}${comment ? ` comment "${comment}"` : ""}${value ? ` : ${value}` : ""}`;
    this.lines.push(`add element ${this.table} ${container} { ${annotated} }`);
  }
}

/** What every rule of one family's table is written with. */
interface Writer {
  tx: Transaction;
  family: Family;
  cfg: ProxyConfig;
  node: FamilyNode;
  /** "ip" or "ip6", as in `ip daddr` */
  ipX: string;
  /** the set element type, ipv4_addr or ipv6_addr */
  addrT: string;
  version: KubeProxyVersion;
}

export function nftablesModeText(
  family: Family,
  cfg: ProxyConfig,
  node: FamilyNode,
  ports: Iterable<[ServicePortInfo, EndpointInfo[]]>,
  opts: NftablesModeOptions = {},
): NftablesModeResult {
  const fam = family === "IPv4" ? "ip" : "ip6";
  const w: Writer = {
    tx: new Transaction(`${fam} kube-proxy`),
    family,
    cfg,
    node,
    ipX: fam,
    addrT: family === "IPv4" ? "ipv4_addr" : "ipv6_addr",
    version: opts.kubeProxyVersion ?? DEFAULT_KUBE_PROXY_VERSION,
  };
  setupTable(w, opts.serviceCIDRs ?? []);
  const clusterIPsSeen = new Set<string>();
  for (const [sp, eps] of ports) servicePortRules(w, sp, eps, clusterIPsSeen);
  const { tx } = w;
  return { text: tx.lines.join("\n") + "\n", chains: tx.chains, rules: tx.rules, elements: tx.elements };
}

/** setupNFTables: the table, its base chains and their jumps, and the sets, maps and chains every sync shares. */
function setupTable(w: Writer, serviceCIDRs: string[]): void {
  const { tx, ipX, addrT, node } = w;
  const T = tx.table;
  const noLocalhost = w.family === "IPv4" ? "ip daddr != 127.0.0.0/8" : "ip6 daddr != ::1";
  const mark = masqMark(w.cfg.masqueradeBit);
  tx.push(`add table ${T} { comment "rules for kube-proxy" ; }`);
  const { base: BASE_CHAINS, jumps: JUMP_CHAINS } = layout(w.version);
  for (const [n] of BASE_CHAINS) tx.push(`add chain ${T} ${n}`, `delete chain ${T} ${n}`);
  for (const [n, type, hook, prio] of BASE_CHAINS) {
    tx.chains++;
    tx.push(`add chain ${T} ${n} { type ${type} hook ${hook} priority ${prio} ; }`, `flush chain ${T} ${n}`);
  }
  for (const [dst, src, extra] of JUMP_CHAINS) {
    tx.ensureChain(dst);
    tx.rule(src, `${extra ? extra + " " : ""}jump ${dst}`);
  }
  for (const c of ["services", "cluster-ips-check", "masquerading", "mark-for-masquerade"]) tx.ensureChain(c);
  tx.rule("mark-for-masquerade", `mark set mark or ${mark}`);
  tx.rule("masquerading", `mark and ${mark} == 0 return`);
  tx.rule("masquerading", `mark set mark xor ${mark}`);
  tx.rule("masquerading", "masquerade fully-random");
  tx.push(`add set ${T} cluster-ips { type ${addrT} ; comment "Active ClusterIPs" ; }`);
  tx.rule("cluster-ips-check", `${ipX} daddr @cluster-ips reject`, "Reject traffic to invalid ports of ClusterIPs");
  const svcCIDRs = serviceCIDRs.filter((c) => parseCIDR(c)?.family === w.family);
  if (svcCIDRs.length) {
    const unallocated = `${ipX} daddr { ${svcCIDRs.join(",")} } drop`;
    tx.rule("cluster-ips-check", unallocated, "Drop traffic to unallocated ClusterIPs");
  }
  tx.push(`add set ${T} nodeport-ips { type ${addrT} ; comment "IPs that accept NodePort traffic" ; }`);
  if (node.nodePortMatchAll) tx.push(`delete set ${T} nodeport-ips`);
  else {
    tx.push(`flush set ${T} nodeport-ips`);
    for (const ip of node.nodePortIPs) tx.elem("nodeport-ips", ip);
  }
  const map = (name: string, type: string, comment: string) =>
    tx.push(`add map ${T} ${name} { type ${type} : verdict ; comment "${comment}" ; }`);
  const addrPort = `${addrT} . inet_proto . inet_service`;
  map("no-endpoint-services", addrPort, "vmap to drop or reject packets to services with no endpoints");
  map(
    "no-endpoint-nodeports",
    "inet_proto . inet_service",
    "vmap to drop or reject packets to service nodeports with no endpoints",
  );
  tx.chains++;
  tx.push(
    `add chain ${T} reject-chain { comment "helper for @no-endpoint-services / @no-endpoint-nodeports" ; }`,
    `flush chain ${T} reject-chain`,
  );
  tx.rule("reject-chain", "reject");
  tx.rule("service-endpoints-check", `${ipX} daddr . meta l4proto . th dport vmap @no-endpoint-services`);
  const nodePortDst = node.nodePortMatchAll ? noLocalhost : `${ipX} daddr @nodeport-ips`;
  tx.rule("nodeport-endpoints-check", `${nodePortDst} meta l4proto . th dport vmap @no-endpoint-nodeports`);
  map("firewall-ips", addrPort, "destinations that are subject to LoadBalancerSourceRanges");
  tx.ensureChain("firewall-check");
  tx.rule("firewall-check", `${ipX} daddr . meta l4proto . th dport vmap @firewall-ips`);
  map("service-ips", addrPort, "ClusterIP, ExternalIP and LoadBalancer IP traffic");
  map("service-nodeports", "inet_proto . inet_service", "NodePort traffic");
  tx.rule("services", `${ipX} daddr . meta l4proto . th dport vmap @service-ips`);
  const localDst = node.nodePortMatchAll ? `fib daddr type local ${noLocalhost}` : `${ipX} daddr @nodeport-ips`;
  tx.rule("services", `${localDst} meta l4proto . th dport vmap @service-nodeports`);
  const shared = [
    "cluster-ips",
    "service-ips",
    "firewall-ips",
    "no-endpoint-services",
    "no-endpoint-nodeports",
    "service-nodeports",
  ];
  for (const c of shared) {
    tx.push(`flush ${c === "cluster-ips" ? "set" : "map"} ${T} ${c}`);
  }
}

/** Everything one service port adds: its chains, its map elements, and the rules of its chains. */
function servicePortRules(w: Writer, sp: ServicePortInfo, eps: EndpointInfo[], clusterIPsSeen: Set<string>): void {
  const { tx, node } = w;
  const base = nftServiceBase(sp);
  const cat = categorizeEndpoints(eps, sp, { nodeName: node.nodeName, zone: node.zone });
  const epChain = (e: EndpointInfo) => "endpoint-" + nftEndpointBase(sp, e);
  for (const e of cat.allReachable) tx.ensureChain(epChain(e));
  const clusterPolicyChain = "service-" + base,
    localPolicyChain = "local-" + base;
  const policy = policyChains(sp, cat, clusterPolicyChain, localPolicyChain);
  const { usesCluster, usesLocal, internalChain, hasInternal, externalPolicyChain, hasExternal, usesExt } = policy;
  if (usesCluster) tx.ensureChain(clusterPolicyChain);
  if (usesLocal) tx.ensureChain(localPolicyChain);
  const ext = "external-" + base;
  if (usesExt) tx.ensureChain(ext);
  const fw = "firewall-" + base;
  const usesFW = sp.loadBalancerVIPs.length > 0 && sp.loadBalancerSourceRanges.length > 0;
  const p: NftPortPlan = {
    sp,
    cat,
    clusterPolicyChain,
    localPolicyChain,
    usesCluster,
    usesLocal,
    internalChain,
    hasInternal,
    externalPolicyChain,
    hasExternal,
    ext,
    usesExt,
    fw,
    usesFW,
    epChain,
  };
  mapElements(w, p, clusterIPsSeen);
  masqueradeAndExternalRules(w, p);
  firewallRule(w, p);
  endpointRules(w, p);
}

/** What one service port's rules depend on: its chains, its endpoints, and where each kind of traffic goes. */
interface NftPortPlan {
  sp: ServicePortInfo;
  cat: ReturnType<typeof categorizeEndpoints>;
  clusterPolicyChain: string;
  localPolicyChain: string;
  usesCluster: boolean;
  usesLocal: boolean;
  internalChain: string;
  hasInternal: boolean;
  externalPolicyChain: string;
  hasExternal: boolean;
  ext: string;
  usesExt: boolean;
  fw: string;
  usesFW: boolean;
  epChain: (e: EndpointInfo) => string;
}

/** The port's elements in cluster-ips, service-ips, firewall-ips, service-nodeports and the no-endpoint maps. */
function mapElements(w: Writer, p: NftPortPlan, clusterIPsSeen: Set<string>): void {
  const { tx } = w;
  const { sp, cat, ext, fw, usesFW, hasInternal, hasExternal } = p;
  const proto = sp.protocol.toLowerCase();
  const spn = sp.nameString;
  let intVerdict = "",
    extVerdict = "";
  if (!cat.hasAny) intVerdict = extVerdict = "goto reject-chain";
  else {
    if (!hasInternal) intVerdict = "drop";
    if (!hasExternal) extVerdict = "drop";
  }
  // a set: each ClusterIP added once
  if (!clusterIPsSeen.has(sp.clusterIP)) {
    clusterIPsSeen.add(sp.clusterIP);
    tx.elem("cluster-ips", sp.clusterIP);
  }
  const key = (ip: string) => `${ip} . ${proto} . ${sp.port}`;
  if (hasInternal) tx.elem("service-ips", key(sp.clusterIP), `goto ${p.internalChain}`);
  else tx.elem("no-endpoint-services", key(sp.clusterIP), intVerdict, spn);
  for (const ip of sp.externalIPs) {
    if (cat.hasAny) tx.elem("service-ips", key(ip), `goto ${ext}`);
    if (!hasExternal) tx.elem("no-endpoint-services", key(ip), extVerdict, spn);
  }
  if (usesFW) tx.ensureChain(fw);
  for (const ip of sp.loadBalancerVIPs) {
    if (cat.hasAny) tx.elem("service-ips", key(ip), `goto ${ext}`);
    if (usesFW) tx.elem("firewall-ips", key(ip), `goto ${fw}`);
  }
  if (!hasExternal) for (const ip of sp.loadBalancerVIPs) tx.elem("no-endpoint-services", key(ip), extVerdict, spn);
  if (sp.nodePort !== 0) {
    if (cat.hasAny) tx.elem("service-nodeports", `${proto} . ${sp.nodePort}`, `goto ${ext}`);
    if (!hasExternal) tx.elem("no-endpoint-nodeports", `${proto} . ${sp.nodePort}`, extVerdict, spn);
  }
}

/** The ClusterIP masquerade rule and the external- chain (Local-policy short-circuits). */
function masqueradeAndExternalRules(w: Writer, p: NftPortPlan): void {
  const { tx, ipX } = w;
  const { sp, ext, clusterPolicyChain } = p;
  const detect = w.node.detect;
  if (p.hasInternal) {
    // 1.34 (PR 131492) matches the ClusterIP alone: a packet reaches this chain from service-ips with the
    // port and protocol already matched, and from an external- chain never with the ClusterIP
    const proto = sp.protocol.toLowerCase();
    const to =
      w.version === "1.34" ? `${ipX} daddr ${sp.clusterIP}` : `${ipX} daddr ${sp.clusterIP} ${proto} dport ${sp.port}`;
    if (w.cfg.masqueradeAll) tx.rule(p.internalChain, `${to} jump mark-for-masquerade`);
    else if (detect) tx.rule(p.internalChain, `${to} ${detect.ifNotLocalNFT} jump mark-for-masquerade`);
  }
  if (p.usesExt) {
    if (!sp.externalPolicyLocal) tx.rule(ext, "jump mark-for-masquerade");
    else {
      if (detect) tx.rule(ext, `${detect.ifLocalNFT} goto ${clusterPolicyChain}`, "short-circuit pod traffic");
      tx.rule(ext, "fib saddr type local jump mark-for-masquerade", "masquerade local traffic");
      tx.rule(ext, `fib saddr type local goto ${clusterPolicyChain}`, "short-circuit local traffic");
    }
    if (p.hasExternal) tx.rule(ext, `goto ${p.externalPolicyChain}`);
  }
}

/** The firewall- chain: drop what no loadBalancerSourceRange (or the node itself, when inside one) sent. */
function firewallRule(w: Writer, p: NftPortPlan): void {
  if (!p.usesFW) return;
  const { sp } = p;
  const sources: string[] = [];
  let allowFromNode = false;
  for (const r of sp.loadBalancerSourceRanges) {
    sources.push(r);
    const c = parseCIDR(r);
    if (c && w.node.primaryIP && cidrContains(c, w.node.primaryIP)) allowFromNode = true;
  }
  if (allowFromNode) sources.push(...sp.loadBalancerVIPs);
  w.tx.rule(p.fw, `${w.ipX} saddr != { ${sources.join(", ")} } drop`);
}

/** The affinity- sets, the service-/local- chains' numgen vmaps, and each endpoint- chain's DNAT. */
function endpointRules(w: Writer, p: NftPortPlan): void {
  const { tx, ipX } = w;
  const { sp, cat, epChain } = p;
  const proto = sp.protocol.toLowerCase();
  const affSet = (e: EndpointInfo) => "affinity-" + nftEndpointBase(sp, e);
  if (sp.clientIPAffinity)
    for (const e of cat.allReachable) {
      const spec = `type ${w.addrT} ; flags dynamic,timeout ; timeout ${sp.stickyMaxAgeSeconds}s ;`;
      tx.push(`add set ${tx.table} ${affSet(e)} { ${spec} }`);
    }
  const toEndpoints = (chain: string, endpoints: EndpointInfo[]) => {
    if (sp.clientIPAffinity) for (const e of endpoints) tx.rule(chain, `${ipX} saddr @${affSet(e)} goto ${epChain(e)}`);
    const vmap = endpoints.map((e, i) => `${i} : goto ${epChain(e)}`).join(" , ");
    tx.rule(chain, `numgen random mod ${endpoints.length} vmap { ${vmap} }`);
  };
  if (p.usesCluster) toEndpoints(p.clusterPolicyChain, cat.cluster ?? []);
  if (p.usesLocal) toEndpoints(p.localPolicyChain, cat.local ?? []);
  for (const e of cat.allReachable) {
    const c = epChain(e);
    tx.rule(c, `${ipX} saddr ${e.ip} jump mark-for-masquerade`);
    if (sp.clientIPAffinity) tx.rule(c, `update @${affSet(e)} { ${ipX} saddr }`);
    tx.rule(c, `meta l4proto ${proto} dnat to ${e.str}`);
  }
}
