// The `nft -f` transaction kube-proxy's nftables proxier (pkg/proxy/nftables/proxier.go) runs on its first
// full sync, written as knftables writes it: table ip/ip6 kube-proxy, base chains, verdict maps service-ips and
// service-nodeports, per-service chains service-/local-/external-/firewall-, endpoint- chains with
// `numgen random mod N vmap`, affinity- sets for ClientIP affinity.
import type { Family } from "./ip.ts";
import type { ProxyConfig } from "./config.ts";
import type { FamilyNode } from "./node.ts";
import { categorizeEndpoints } from "./categorize.ts";
import { externallyAccessible, usesClusterEndpoints, usesLocalEndpoints, type EndpointInfo, type ServicePortInfo } from "./model.ts";
import { sha256base32 } from "./hash.ts";
import { cidrContains, parseCIDR } from "./ip.ts";
import { masqMark } from "./ipvs.ts";

const CHAIN_BASE_MAX = 256 - 16;
function hashAndTruncate(name: string): string {
  let n = sha256base32(name).slice(0, 8) + "-" + name;
  if (n.length > CHAIN_BASE_MAX) n = n.slice(0, CHAIN_BASE_MAX - 3) + "...";
  return n;
}
export const nftServiceBase = (sp: ServicePortInfo) => hashAndTruncate(`${sp.svcKey}/${sp.protocol.toLowerCase()}/${sp.portName}`);
export function nftEndpointBase(sp: ServicePortInfo, ep: EndpointInfo): string {
  return hashAndTruncate(`${sp.svcKey}/${sp.protocol.toLowerCase()}/${sp.portName}__${ep.ip.replaceAll(":", ".")}/${ep.port}`);
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
const layout = (v: KubeProxyVersion) => (v === "1.31" || v === "1.32" ? { base: BASE_CHAINS_1_31, jumps: JUMP_CHAINS_1_31 } : { base: BASE_CHAINS_1_34, jumps: JUMP_CHAINS_1_34 });

export interface NftablesModeOptions { serviceCIDRs?: string[]; kubeProxyVersion?: KubeProxyVersion }
export interface NftablesModeResult { text: string; chains: number; rules: number; elements: number }

export function nftablesModeText(family: Family, cfg: ProxyConfig, node: FamilyNode, ports: Iterable<[ServicePortInfo, EndpointInfo[]]>, opts: NftablesModeOptions = {}): NftablesModeResult {
  const fam = family === "IPv4" ? "ip" : "ip6";
  const T = `${fam} kube-proxy`;
  const ipX = fam, addrT = family === "IPv4" ? "ipv4_addr" : "ipv6_addr";
  const noLocalhost = family === "IPv4" ? "ip daddr != 127.0.0.0/8" : "ip6 daddr != ::1";
  const mark = masqMark(cfg.masqueradeBit);
  const L: string[] = [];
  let chains = 0, rules = 0, elements = 0;
  const created = new Set<string>();
  const ensureChain = (c: string) => { if (created.has(c)) return; created.add(c); chains++; L.push(`add chain ${T} ${c}`, `flush chain ${T} ${c}`); };
  const rule = (chain: string, r: string, comment?: string) => { rules++; L.push(`add rule ${T} ${chain} ${r}${comment ? ` comment "${comment}"` : ""}`); };
  const seen = new Map<string, Set<string>>();
  const elem = (container: string, key: string, value?: string, comment?: string) => {
    let keys = seen.get(container);
    if (!keys) seen.set(container, (keys = new Set()));
    if (keys.has(key)) L.push(`delete element ${T} ${container} { ${key} }`);   // ensureElem: the last value wins
    else { keys.add(key); elements++; }
    L.push(`add element ${T} ${container} { ${key}${comment ? ` comment "${comment}"` : ""}${value ? ` : ${value}` : ""} }`);
  };
  // setupNFTables
  L.push(`add table ${T} { comment "rules for kube-proxy" ; }`);
  const version = opts.kubeProxyVersion ?? DEFAULT_KUBE_PROXY_VERSION;
  const { base: BASE_CHAINS, jumps: JUMP_CHAINS } = layout(version);
  const newLayout = version === "1.34";
  for (const [n] of BASE_CHAINS) L.push(`add chain ${T} ${n}`, `delete chain ${T} ${n}`);
  for (const [n, type, hook, prio] of BASE_CHAINS) { chains++; L.push(`add chain ${T} ${n} { type ${type} hook ${hook} priority ${prio} ; }`, `flush chain ${T} ${n}`); }
  for (const [dst, src, extra] of JUMP_CHAINS) { ensureChain(dst); rule(src, `${extra ? extra + " " : ""}jump ${dst}`); }
  for (const c of ["services", "cluster-ips-check", "masquerading", "mark-for-masquerade"]) ensureChain(c);
  rule("mark-for-masquerade", `mark set mark or ${mark}`);
  rule("masquerading", `mark and ${mark} == 0 return`);
  rule("masquerading", `mark set mark xor ${mark}`);
  rule("masquerading", "masquerade fully-random");
  L.push(`add set ${T} cluster-ips { type ${addrT} ; comment "Active ClusterIPs" ; }`);
  rule("cluster-ips-check", `${ipX} daddr @cluster-ips reject`, "Reject traffic to invalid ports of ClusterIPs");
  const svcCIDRs = (opts.serviceCIDRs ?? []).filter((c) => parseCIDR(c)?.family === family);
  if (svcCIDRs.length) rule("cluster-ips-check", `${ipX} daddr { ${svcCIDRs.join(",")} } drop`, "Drop traffic to unallocated ClusterIPs");
  L.push(`add set ${T} nodeport-ips { type ${addrT} ; comment "IPs that accept NodePort traffic" ; }`);
  if (node.nodePortMatchAll) L.push(`delete set ${T} nodeport-ips`);
  else { L.push(`flush set ${T} nodeport-ips`); for (const ip of node.nodePortIPs) elem("nodeport-ips", ip); }
  L.push(`add map ${T} no-endpoint-services { type ${addrT} . inet_proto . inet_service : verdict ; comment "vmap to drop or reject packets to services with no endpoints" ; }`);
  L.push(`add map ${T} no-endpoint-nodeports { type inet_proto . inet_service : verdict ; comment "vmap to drop or reject packets to service nodeports with no endpoints" ; }`);
  chains++;
  L.push(`add chain ${T} reject-chain { comment "helper for @no-endpoint-services / @no-endpoint-nodeports" ; }`, `flush chain ${T} reject-chain`);
  rule("reject-chain", "reject");
  rule("service-endpoints-check", `${ipX} daddr . meta l4proto . th dport vmap @no-endpoint-services`);
  if (node.nodePortMatchAll) rule("nodeport-endpoints-check", `${noLocalhost} meta l4proto . th dport vmap @no-endpoint-nodeports`);
  else rule("nodeport-endpoints-check", `${ipX} daddr @nodeport-ips meta l4proto . th dport vmap @no-endpoint-nodeports`);
  L.push(`add map ${T} firewall-ips { type ${addrT} . inet_proto . inet_service : verdict ; comment "destinations that are subject to LoadBalancerSourceRanges" ; }`);
  ensureChain("firewall-check");
  rule("firewall-check", `${ipX} daddr . meta l4proto . th dport vmap @firewall-ips`);
  L.push(`add map ${T} service-ips { type ${addrT} . inet_proto . inet_service : verdict ; comment "ClusterIP, ExternalIP and LoadBalancer IP traffic" ; }`);
  L.push(`add map ${T} service-nodeports { type inet_proto . inet_service : verdict ; comment "NodePort traffic" ; }`);
  rule("services", `${ipX} daddr . meta l4proto . th dport vmap @service-ips`);
  if (node.nodePortMatchAll) rule("services", `fib daddr type local ${noLocalhost} meta l4proto . th dport vmap @service-nodeports`);
  else rule("services", `${ipX} daddr @nodeport-ips meta l4proto . th dport vmap @service-nodeports`);
  for (const c of ["cluster-ips", "service-ips", "firewall-ips", "no-endpoint-services", "no-endpoint-nodeports", "service-nodeports"])
    L.push(`flush ${c === "cluster-ips" ? "set" : "map"} ${T} ${c}`);

  const detect = node.detect;
  const clusterIPsSeen = new Set<string>();
  for (const [sp, eps] of ports) {
    const proto = sp.protocol.toLowerCase();
    const spn = sp.nameString;
    const base = nftServiceBase(sp);
    const cat = categorizeEndpoints(eps, sp, { nodeName: node.nodeName, zone: node.zone });
    const clusterEPs = cat.cluster ?? [], localEPs = cat.local ?? [];
    const epChain = (e: EndpointInfo) => "endpoint-" + nftEndpointBase(sp, e);
    const affSet = (e: EndpointInfo) => "affinity-" + nftEndpointBase(sp, e);
    for (const e of cat.allReachable) ensureChain(epChain(e));
    const clusterPolicyChain = "service-" + base, localPolicyChain = "local-" + base;
    const usesCluster = clusterEPs.length > 0 && usesClusterEndpoints(sp);
    if (usesCluster) ensureChain(clusterPolicyChain);
    const usesLocal = localEPs.length > 0 && usesLocalEndpoints(sp);
    if (usesLocal) ensureChain(localPolicyChain);
    let internalChain = clusterPolicyChain, hasInternal = cat.hasAny;
    if (sp.internalPolicyLocal) { internalChain = localPolicyChain; if (localEPs.length === 0) hasInternal = false; }
    let externalPolicyChain = clusterPolicyChain, hasExternal = cat.hasAny;
    if (sp.externalPolicyLocal) { externalPolicyChain = localPolicyChain; if (localEPs.length === 0) hasExternal = false; }
    const ext = "external-" + base;
    const usesExt = cat.hasAny && externallyAccessible(sp);
    if (usesExt) ensureChain(ext);
    let intVerdict = "", extVerdict = "";
    if (!cat.hasAny) intVerdict = extVerdict = "goto reject-chain";
    else { if (!hasInternal) intVerdict = "drop"; if (!hasExternal) extVerdict = "drop"; }
    if (!clusterIPsSeen.has(sp.clusterIP)) { clusterIPsSeen.add(sp.clusterIP); elem("cluster-ips", sp.clusterIP); }   // a set: added once
    if (hasInternal) elem("service-ips", `${sp.clusterIP} . ${proto} . ${sp.port}`, `goto ${internalChain}`);
    else elem("no-endpoint-services", `${sp.clusterIP} . ${proto} . ${sp.port}`, intVerdict, spn);
    for (const ip of sp.externalIPs) {
      if (cat.hasAny) elem("service-ips", `${ip} . ${proto} . ${sp.port}`, `goto ${ext}`);
      if (!hasExternal) elem("no-endpoint-services", `${ip} . ${proto} . ${sp.port}`, extVerdict, spn);
    }
    const usesFW = sp.loadBalancerVIPs.length > 0 && sp.loadBalancerSourceRanges.length > 0;
    const fw = "firewall-" + base;
    if (usesFW) ensureChain(fw);
    for (const ip of sp.loadBalancerVIPs) {
      if (cat.hasAny) elem("service-ips", `${ip} . ${proto} . ${sp.port}`, `goto ${ext}`);
      if (usesFW) elem("firewall-ips", `${ip} . ${proto} . ${sp.port}`, `goto ${fw}`);
    }
    if (!hasExternal) for (const ip of sp.loadBalancerVIPs) elem("no-endpoint-services", `${ip} . ${proto} . ${sp.port}`, extVerdict, spn);
    if (sp.nodePort !== 0) {
      if (cat.hasAny) elem("service-nodeports", `${proto} . ${sp.nodePort}`, `goto ${ext}`);
      if (!hasExternal) elem("no-endpoint-nodeports", `${proto} . ${sp.nodePort}`, extVerdict, spn);
    }
    if (hasInternal) {
      // 1.34 (PR 131492) matches the ClusterIP alone: a packet reaches this chain from service-ips with the
      // port and protocol already matched, and from an external- chain never with the ClusterIP
      const to = newLayout ? `${ipX} daddr ${sp.clusterIP}` : `${ipX} daddr ${sp.clusterIP} ${proto} dport ${sp.port}`;
      if (cfg.masqueradeAll) rule(internalChain, `${to} jump mark-for-masquerade`);
      else if (detect) rule(internalChain, `${to} ${detect.ifNotLocalNFT} jump mark-for-masquerade`);
    }
    if (usesExt) {
      if (!sp.externalPolicyLocal) rule(ext, "jump mark-for-masquerade");
      else {
        if (detect) rule(ext, `${detect.ifLocalNFT} goto ${clusterPolicyChain}`, "short-circuit pod traffic");
        rule(ext, "fib saddr type local jump mark-for-masquerade", "masquerade local traffic");
        rule(ext, `fib saddr type local goto ${clusterPolicyChain}`, "short-circuit local traffic");
      }
      if (hasExternal) rule(ext, `goto ${externalPolicyChain}`);
    }
    if (usesFW) {
      const sources: string[] = [];
      let allowFromNode = false;
      for (const r of sp.loadBalancerSourceRanges) {
        sources.push(r);
        const c = parseCIDR(r);
        if (c && node.primaryIP && cidrContains(c, node.primaryIP)) allowFromNode = true;
      }
      if (allowFromNode) sources.push(...sp.loadBalancerVIPs);
      rule(fw, `${ipX} saddr != { ${sources.join(", ")} } drop`);
    }
    if (sp.clientIPAffinity) for (const e of cat.allReachable)
      L.push(`add set ${T} ${affSet(e)} { type ${addrT} ; flags dynamic,timeout ; timeout ${sp.stickyMaxAgeSeconds}s ; }`);
    const toEndpoints = (chain: string, endpoints: EndpointInfo[]) => {
      if (sp.clientIPAffinity) for (const e of endpoints) rule(chain, `${ipX} saddr @${affSet(e)} goto ${epChain(e)}`);
      rule(chain, `numgen random mod ${endpoints.length} vmap { ${endpoints.map((e, i) => `${i} : goto ${epChain(e)}`).join(" , ")} }`);
    };
    if (usesCluster) toEndpoints(clusterPolicyChain, clusterEPs);
    if (usesLocal) toEndpoints(localPolicyChain, localEPs);
    for (const e of cat.allReachable) {
      const c = epChain(e);
      rule(c, `${ipX} saddr ${e.ip} jump mark-for-masquerade`);
      if (sp.clientIPAffinity) rule(c, `update @${affSet(e)} { ${ipX} saddr }`);
      rule(c, `meta l4proto ${proto} dnat to ${e.str}`);
    }
  }
  return { text: L.join("\n") + "\n", chains, rules, elements };
}
