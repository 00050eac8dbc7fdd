// The iptables-restore input kube-proxy's iptables proxier (pkg/proxy/iptables/proxier.go) writes on a full
// sync, from the same service ports and endpoints: KUBE-SERVICES -> KUBE-SVC-/KUBE-SVL-/KUBE-EXT-/KUBE-FW-
// -> KUBE-SEP-, statistic probabilities, recent-module affinity, masquerade marks, filter-table REJECT/DROP
// for services without (local) endpoints.
import type { Family } from "./ip.ts";
import type { ProxyConfig } from "./config.ts";
import type { FamilyNode } from "./node.ts";
import { categorizeEndpoints } from "./categorize.ts";
import { externallyAccessible, usesClusterEndpoints, usesLocalEndpoints, type EndpointInfo, type ServicePortInfo } from "./model.ts";
import { sha256base32 } from "./hash.ts";
import { masqMark, type JumpRule } from "./ipvs.ts";

export const LARGE_CLUSTER_ENDPOINTS = 1000;

const portProtoHash = (spn: string, proto: string) => sha256base32(spn + proto).slice(0, 16);
export const svcChain = (spn: string, proto: string) => "KUBE-SVC-" + portProtoHash(spn, proto);
export const svlChain = (spn: string, proto: string) => "KUBE-SVL-" + portProtoHash(spn, proto);
export const extChain = (spn: string, proto: string) => "KUBE-EXT-" + portProtoHash(spn, proto);
export const fwChain = (spn: string, proto: string) => "KUBE-FW-" + portProtoHash(spn, proto);
export const sepChain = (spn: string, proto: string, ep: string) => "KUBE-SEP-" + sha256base32(spn + proto + ep).slice(0, 16);

/** iptablesJumpChains + iptablesKubeletJumpChains + the POSTROUTING jump, ensured outside the restore. */
export const IPTABLES_JUMPS: JumpRule[] = [
  { table: "filter", chain: "INPUT", args: ["-m", "conntrack", "--ctstate", "NEW", "-m", "comment", "--comment", "\"kubernetes externally-visible service portals\"", "-j", "KUBE-EXTERNAL-SERVICES"] },
  { table: "filter", chain: "FORWARD", args: ["-m", "conntrack", "--ctstate", "NEW", "-m", "comment", "--comment", "\"kubernetes externally-visible service portals\"", "-j", "KUBE-EXTERNAL-SERVICES"] },
  { table: "filter", chain: "INPUT", args: ["-m", "comment", "--comment", "\"kubernetes health check service ports\"", "-j", "KUBE-NODEPORTS"] },
  { table: "filter", chain: "FORWARD", args: ["-m", "conntrack", "--ctstate", "NEW", "-m", "comment", "--comment", "\"kubernetes service portals\"", "-j", "KUBE-SERVICES"] },
  { table: "filter", chain: "OUTPUT", args: ["-m", "conntrack", "--ctstate", "NEW", "-m", "comment", "--comment", "\"kubernetes service portals\"", "-j", "KUBE-SERVICES"] },
  { table: "filter", chain: "FORWARD", args: ["-m", "comment", "--comment", "\"kubernetes forwarding rules\"", "-j", "KUBE-FORWARD"] },
  { table: "filter", chain: "INPUT", args: ["-m", "conntrack", "--ctstate", "NEW", "-m", "comment", "--comment", "\"kube-proxy firewall rules\"", "-j", "KUBE-PROXY-FIREWALL"] },
  { table: "filter", chain: "OUTPUT", args: ["-m", "conntrack", "--ctstate", "NEW", "-m", "comment", "--comment", "\"kube-proxy firewall rules\"", "-j", "KUBE-PROXY-FIREWALL"] },
  { table: "filter", chain: "FORWARD", args: ["-m", "conntrack", "--ctstate", "NEW", "-m", "comment", "--comment", "\"kube-proxy firewall rules\"", "-j", "KUBE-PROXY-FIREWALL"] },
  { table: "nat", chain: "OUTPUT", args: ["-m", "comment", "--comment", "\"kubernetes service portals\"", "-j", "KUBE-SERVICES"] },
  { table: "nat", chain: "PREROUTING", args: ["-m", "comment", "--comment", "\"kubernetes service portals\"", "-j", "KUBE-SERVICES"] },
  { table: "nat", chain: "POSTROUTING", args: ["-m", "comment", "--comment", "\"kubernetes postrouting rules\"", "-j", "KUBE-POSTROUTING"] },
];

export interface IptablesModeOptions {
  /** iptables has --random-fully (kube-proxy asks; default yes) */
  randomFully?: boolean;
  /**
   * kube-proxy created its nfacct counters (the kernel has nfnetlink_acct): it then counts INVALID drops and
   * localhost NodePort connections with `-m nfacct`. Off by default: iptables-restore refuses a rule naming a
   * counter nobody created.
   */
  nfacct?: boolean;
}

const NFACCT_INVALID = "ct_state_invalid_dropped_pkts", NFACCT_LOCALHOST_NODEPORT = "localhost_nps_accepted_pkts";

export interface IptablesModeResult { text: string; natRules: number; filterRules: number; natChains: number; endpointChains: number }

export function iptablesModeText(family: Family, cfg: ProxyConfig, node: FamilyNode, ports: Iterable<[ServicePortInfo, EndpointInfo[]]>, opts: IptablesModeOptions = {}): IptablesModeResult {
  const list = [...ports];
  const mark = masqMark(cfg.masqueradeBit);
  const filterChains = ["KUBE-SERVICES", "KUBE-EXTERNAL-SERVICES", "KUBE-FORWARD", "KUBE-NODEPORTS", "KUBE-PROXY-FIREWALL"].map((c) => `:${c} - [0:0]`);
  const natChains = ["KUBE-SERVICES", "KUBE-NODEPORTS", "KUBE-POSTROUTING", "KUBE-MARK-MASQ"].map((c) => `:${c} - [0:0]`);
  const filterRules: string[] = [];
  const natRules: string[] = [];
  natRules.push(`-A KUBE-POSTROUTING -m mark ! --mark ${mark}/${mark} -j RETURN`);
  natRules.push(`-A KUBE-POSTROUTING -j MARK --xor-mark ${mark}`);
  natRules.push(`-A KUBE-POSTROUTING -m comment --comment "kubernetes service traffic requiring SNAT" -j MASQUERADE${opts.randomFully === false ? "" : " --random-fully"}`);
  natRules.push(`-A KUBE-MARK-MASQ -j MARK --or-mark ${mark}`);
  const isIPv6 = family === "IPv6";
  if (!isIPv6 && cfg.localhostNodePorts) {
    filterChains.push(":KUBE-FIREWALL - [0:0]");
    filterRules.push(`-A KUBE-FIREWALL -m comment --comment "block incoming localnet connections" -d 127.0.0.0/8 ! -s 127.0.0.0/8 -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -j DROP`);
  }
  const totalEndpoints = list.reduce((n, [, eps]) => n + eps.length, 0);
  const large = totalEndpoints > LARGE_CLUSTER_ENDPOINTS;
  const comment = (c: string) => (large ? "" : ` -m comment --comment ${c}`);
  const prob = (n: number) => (1 / n).toFixed(10);
  let endpointChains = 0;
  const detect = node.detect;
  for (const [sp, eps] of list) {
    const proto = sp.protocol.toLowerCase();
    const spn = sp.nameString;
    const cat = categorizeEndpoints(eps, sp, { nodeName: node.nodeName, zone: node.zone });
    const clusterEPs = cat.cluster ?? [], localEPs = cat.local ?? [];
    const clusterPolicyChain = svcChain(spn, proto), localPolicyChain = svlChain(spn, proto);
    const usesCluster = clusterEPs.length > 0 && usesClusterEndpoints(sp);
    const usesLocal = localEPs.length > 0 && usesLocalEndpoints(sp);
    let internalChain = clusterPolicyChain, hasInternal = cat.hasAny;
    if (sp.internalPolicyLocal) { internalChain = localPolicyChain; if (localEPs.length === 0) hasInternal = false; }
    let externalPolicyChain = clusterPolicyChain, hasExternal = cat.hasAny;
    if (sp.externalPolicyLocal) { externalPolicyChain = localPolicyChain; if (localEPs.length === 0) hasExternal = false; }
    const ext = extChain(spn, proto);
    const usesExt = cat.hasAny && externallyAccessible(sp);
    const fw = fwChain(spn, proto);
    const usesFW = cat.hasAny && sp.loadBalancerVIPs.length > 0 && sp.loadBalancerSourceRanges.length > 0;
    const lbChain = usesFW ? fw : ext;
    let intTarget = "", intComment = "", extTarget = "", extComment = "";
    if (!cat.hasAny) {
      intTarget = extTarget = "REJECT";
      intComment = extComment = `"${spn} has no endpoints"`;
    } else {
      if (!hasInternal) { intTarget = "DROP"; intComment = `"${spn} has no local endpoints"`; }
      if (!hasExternal) { extTarget = "DROP"; extComment = `"${spn} has no local endpoints"`; }
    }
    const dst = (ip: string, port: number) => `-m ${proto} -p ${proto} -d ${ip} --dport ${port}`;
    if (hasInternal) natRules.push(`-A KUBE-SERVICES -m comment --comment "${spn} cluster IP" ${dst(sp.clusterIP, sp.port)} -j ${internalChain}`);
    else filterRules.push(`-A KUBE-SERVICES -m comment --comment ${intComment} ${dst(sp.clusterIP, sp.port)} -j ${intTarget}`);
    for (const ip of sp.externalIPs) {
      if (cat.hasAny) natRules.push(`-A KUBE-SERVICES -m comment --comment "${spn} external IP" ${dst(ip, sp.port)} -j ${ext}`);
      if (!hasExternal) filterRules.push(`-A KUBE-EXTERNAL-SERVICES -m comment --comment ${extComment} ${dst(ip, sp.port)} -j ${extTarget}`);
    }
    for (const ip of sp.loadBalancerVIPs) {
      if (cat.hasAny) natRules.push(`-A KUBE-SERVICES -m comment --comment "${spn} loadbalancer IP" ${dst(ip, sp.port)} -j ${lbChain}`);
      if (usesFW) filterRules.push(`-A KUBE-PROXY-FIREWALL -m comment --comment "${spn} traffic not accepted by ${fw}" ${dst(ip, sp.port)} -j DROP`);
    }
    if (!hasExternal) for (const ip of sp.loadBalancerVIPs) filterRules.push(`-A KUBE-EXTERNAL-SERVICES -m comment --comment ${extComment} ${dst(ip, sp.port)} -j ${extTarget}`);
    if (sp.nodePort !== 0) {
      const nodePort = `-A KUBE-NODEPORTS -m comment --comment ${spn} -m ${proto} -p ${proto}`;
      // connections to 127.0.0.0/8 are counted first (then the same jump as any other)
      if (cat.hasAny && cfg.localhostNodePorts && !isIPv6 && opts.nfacct) {
        const counted = `-m nfacct --nfacct-name ${NFACCT_LOCALHOST_NODEPORT}`;
        natRules.push(`${nodePort} -d 127.0.0.0/8 --dport ${sp.nodePort} ${counted} -j ${ext}`);
      }
      if (cat.hasAny) natRules.push(`${nodePort} --dport ${sp.nodePort} -j ${ext}`);
      if (!hasExternal) filterRules.push(`-A KUBE-EXTERNAL-SERVICES -m comment --comment ${extComment} -m addrtype --dst-type LOCAL -m ${proto} -p ${proto} --dport ${sp.nodePort} -j ${extTarget}`);
    }
    if (sp.healthCheckNodePort !== 0) filterRules.push(`-A KUBE-NODEPORTS -m comment --comment "${spn} health check node port" -m tcp -p tcp --dport ${sp.healthCheckNodePort} -j ACCEPT`);
    if (hasInternal) {
      const args = `-m comment --comment "${spn} cluster IP" ${dst(sp.clusterIP, sp.port)}`;
      if (cfg.masqueradeAll) natRules.push(`-A ${internalChain} ${args} -j KUBE-MARK-MASQ`);
      else if (detect) natRules.push(`-A ${internalChain} ${args} ${detect.ifNotLocal.join(" ")} -j KUBE-MARK-MASQ`);
    }
    if (usesExt) {
      natChains.push(`:${ext} - [0:0]`);
      if (!sp.externalPolicyLocal) natRules.push(`-A ${ext} -m comment --comment "masquerade traffic for ${spn} external destinations" -j KUBE-MARK-MASQ`);
      else {
        if (detect) natRules.push(`-A ${ext} -m comment --comment "pod traffic for ${spn} external destinations" ${detect.ifLocal.join(" ")} -j ${clusterPolicyChain}`);
        natRules.push(`-A ${ext} -m comment --comment "masquerade LOCAL traffic for ${spn} external destinations" -m addrtype --src-type LOCAL -j KUBE-MARK-MASQ`);
        natRules.push(`-A ${ext} -m comment --comment "route LOCAL traffic for ${spn} external destinations" -m addrtype --src-type LOCAL -j ${clusterPolicyChain}`);
      }
      if (hasExternal) natRules.push(`-A ${ext} -j ${externalPolicyChain}`);
    }
    if (usesFW) {
      natChains.push(`:${fw} - [0:0]`);
      let allowFromNode = false;
      for (const r of sp.loadBalancerSourceRanges) {
        natRules.push(`-A ${fw} -m comment --comment "${spn} loadbalancer IP" -s ${r} -j ${ext}`);
        if (node.primaryIP && cidrHas(r, node.primaryIP)) allowFromNode = true;
      }
      if (allowFromNode) for (const ip of sp.loadBalancerVIPs) natRules.push(`-A ${fw} -m comment --comment "${spn} loadbalancer IP" -s ${ip} -j ${ext}`);
      natRules.push(`-A ${fw} -m comment --comment "other traffic to ${spn} will be dropped by KUBE-PROXY-FIREWALL"`);
    }
    const toEndpoints = (chain: string, endpoints: EndpointInfo[]) => {
      if (sp.clientIPAffinity) for (const e of endpoints) {
        const sep = sepChain(spn, proto, e.str);
        natRules.push(`-A ${chain}${comment(`"${spn} -> ${e.str}"`)} -m recent --name ${sep} --rcheck --seconds ${sp.stickyMaxAgeSeconds} --reap -j ${sep}`);
      }
      endpoints.forEach((e, i) => {
        const sep = sepChain(spn, proto, e.str);
        const stat = i < endpoints.length - 1 ? ` -m statistic --mode random --probability ${prob(endpoints.length - i)}` : "";
        natRules.push(`-A ${chain}${comment(`"${spn} -> ${e.str}"`)}${stat} -j ${sep}`);
      });
    };
    if (usesCluster) { natChains.push(`:${clusterPolicyChain} - [0:0]`); toEndpoints(clusterPolicyChain, clusterEPs); }
    if (usesLocal) { natChains.push(`:${localPolicyChain} - [0:0]`); toEndpoints(localPolicyChain, localEPs); }
    for (const e of cat.allReachable) {
      const sep = sepChain(spn, proto, e.str);
      natChains.push(`:${sep} - [0:0]`);
      endpointChains++;
      const head = `-A ${sep}${comment(spn)}`;
      natRules.push(`${head} -s ${e.ip} -j KUBE-MARK-MASQ`);
      natRules.push(`${head}${sp.clientIPAffinity ? ` -m recent --name ${sep} --set` : ""} -m ${proto} -p ${proto} -j DNAT --to-destination ${e.str}`);
    }
  }
  const tail = `-A KUBE-SERVICES -m comment --comment "kubernetes service nodeports; NOTE: this must be the last rule in this chain"`;
  if (node.nodePortMatchAll) {
    let d = "-m addrtype --dst-type LOCAL";
    if (isIPv6) d += " ! -d ::1/128"; else if (!cfg.localhostNodePorts) d += " ! -d 127.0.0.0/8";
    natRules.push(`${tail} ${d} -j KUBE-NODEPORTS`);
  } else {
    for (const ip of node.nodePortIPs) natRules.push(`${tail} -d ${ip} -j KUBE-NODEPORTS`);
  }
  if (!cfg.conntrackTCPBeLiberal) {
    const count = opts.nfacct ? ` -m nfacct --nfacct-name ${NFACCT_INVALID}` : "";
    filterRules.push(`-A KUBE-FORWARD -m conntrack --ctstate INVALID${count} -j DROP`);
  }
  filterRules.push(`-A KUBE-FORWARD -m comment --comment "kubernetes forwarding rules" -m mark --mark ${mark}/${mark} -j ACCEPT`);
  filterRules.push(`-A KUBE-FORWARD -m comment --comment "kubernetes forwarding conntrack rule" -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT`);
  const text = ["*filter", ...filterChains, ...filterRules, "COMMIT", "*nat", ...natChains, ...natRules, "COMMIT"].join("\n") + "\n";
  return { text, natRules: natRules.length, filterRules: filterRules.length, natChains: natChains.length, endpointChains };
}

import { cidrContains, parseCIDR } from "./ip.ts";
function cidrHas(cidr: string, ip: string): boolean { const c = parseCIDR(cidr); return !!c && cidrContains(c, ip); }
