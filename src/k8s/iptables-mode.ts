// The iptables-restore input kube-proxy's iptables proxier (pkg/proxy/iptables/proxier.go) writes on a full
// sync, from the same service ports and endpoints: KUBE-SERVICES -> KUBE-SVC-/KUBE-SVL-/KUBE-EXT-/KUBE-FW-
// -> KUBE-SEP-, statistic probabilities, recent-module affinity, masquerade marks, filter-table REJECT/DROP
// for services without (local) endpoints.
import { cidrContains, parseCIDR, type Family } from "./ip.ts";
import type { ProxyConfig } from "./config.ts";
import type { FamilyNode } from "./node.ts";
import { categorizeEndpoints, policyChains } from "./categorize.ts";
import type { EndpointInfo, ServicePortInfo } from "./model.ts";
import { sha256base32 } from "./hash.ts";
import { masqMark, type JumpRule } from "./ipvs.ts";

const LARGE_CLUSTER_ENDPOINTS = 1000;

const portProtoHash = (spn: string, proto: string) => sha256base32(spn + proto).slice(0, 16);
export const svcChain = (spn: string, proto: string) => "KUBE-SVC-" + portProtoHash(spn, proto);
const svlChain = (spn: string, proto: string) => "KUBE-SVL-" + portProtoHash(spn, proto);
export const extChain = (spn: string, proto: string) => "KUBE-EXT-" + portProtoHash(spn, proto);
const fwChain = (spn: string, proto: string) => "KUBE-FW-" + portProtoHash(spn, proto);
export const sepChain = (spn: string, proto: string, ep: string) =>
  "KUBE-SEP-" + sha256base32(spn + proto + ep).slice(0, 16);

/** iptablesJumpChains + iptablesKubeletJumpChains + the POSTROUTING jump, ensured outside the restore. */
export const IPTABLES_JUMPS: JumpRule[] = [
  {
    table: "filter",
    chain: "INPUT",
    args: [
      "-m",
      "conntrack",
      "--ctstate",
      "NEW",
      "-m",
      "comment",
      "--comment",
      '"kubernetes externally-visible service portals"',
      "-j",
      "KUBE-EXTERNAL-SERVICES",
    ],
  },
  {
    table: "filter",
    chain: "FORWARD",
    args: [
      "-m",
      "conntrack",
      "--ctstate",
      "NEW",
      "-m",
      "comment",
      "--comment",
      '"kubernetes externally-visible service portals"',
      "-j",
      "KUBE-EXTERNAL-SERVICES",
    ],
  },
  {
    table: "filter",
    chain: "INPUT",
    args: ["-m", "comment", "--comment", '"kubernetes health check service ports"', "-j", "KUBE-NODEPORTS"],
  },
  {
    table: "filter",
    chain: "FORWARD",
    args: [
      "-m",
      "conntrack",
      "--ctstate",
      "NEW",
      "-m",
      "comment",
      "--comment",
      '"kubernetes service portals"',
      "-j",
      "KUBE-SERVICES",
    ],
  },
  {
    table: "filter",
    chain: "OUTPUT",
    args: [
      "-m",
      "conntrack",
      "--ctstate",
      "NEW",
      "-m",
      "comment",
      "--comment",
      '"kubernetes service portals"',
      "-j",
      "KUBE-SERVICES",
    ],
  },
  {
    table: "filter",
    chain: "FORWARD",
    args: ["-m", "comment", "--comment", '"kubernetes forwarding rules"', "-j", "KUBE-FORWARD"],
  },
  {
    table: "filter",
    chain: "INPUT",
    args: [
      "-m",
      "conntrack",
      "--ctstate",
      "NEW",
      "-m",
      "comment",
      "--comment",
      '"kube-proxy firewall rules"',
      "-j",
      "KUBE-PROXY-FIREWALL",
    ],
  },
  {
    table: "filter",
    chain: "OUTPUT",
    args: [
      "-m",
      "conntrack",
      "--ctstate",
      "NEW",
      "-m",
      "comment",
      "--comment",
      '"kube-proxy firewall rules"',
      "-j",
      "KUBE-PROXY-FIREWALL",
    ],
  },
  {
    table: "filter",
    chain: "FORWARD",
    args: [
      "-m",
      "conntrack",
      "--ctstate",
      "NEW",
      "-m",
      "comment",
      "--comment",
      '"kube-proxy firewall rules"',
      "-j",
      "KUBE-PROXY-FIREWALL",
    ],
  },
  {
    table: "nat",
    chain: "OUTPUT",
    args: ["-m", "comment", "--comment", '"kubernetes service portals"', "-j", "KUBE-SERVICES"],
  },
  {
    table: "nat",
    chain: "PREROUTING",
    args: ["-m", "comment", "--comment", '"kubernetes service portals"', "-j", "KUBE-SERVICES"],
  },
  {
    table: "nat",
    chain: "POSTROUTING",
    args: ["-m", "comment", "--comment", '"kubernetes postrouting rules"', "-j", "KUBE-POSTROUTING"],
  },
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

const NFACCT_INVALID = "ct_state_invalid_dropped_pkts",
  NFACCT_LOCALHOST_NODEPORT = "localhost_nps_accepted_pkts";

export interface IptablesModeResult {
  text: string;
  natRules: number;
  filterRules: number;
  natChains: number;
  endpointChains: number;
}

/** The four lists an iptables-restore text is made of, and how many endpoint chains went in. */
interface RestoreText {
  filterChains: string[];
  filterRules: string[];
  natChains: string[];
  natRules: string[];
}

interface Writer {
  out: RestoreText;
  cfg: ProxyConfig;
  node: FamilyNode;
  opts: IptablesModeOptions;
  isIPv6: boolean;
  /** the comment match, or nothing in large-cluster mode */
  comment: (c: string) => string;
}

/** What one service port's rules depend on: its chains, its endpoints, and where each kind of traffic goes. */
interface PortPlan {
  sp: ServicePortInfo;
  proto: string;
  spn: string;
  cat: ReturnType<typeof categorizeEndpoints>;
  clusterEPs: EndpointInfo[];
  localEPs: EndpointInfo[];
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
  lbChain: string;
  /** REJECT (no endpoints) or DROP (no local endpoints) for traffic that has nowhere to go, with its comment */
  intTarget: string;
  intComment: string;
  extTarget: string;
  extComment: string;
  /** the match on protocol, destination address and port */
  dst: (ip: string, port: number) => string;
}

export function iptablesModeText(
  family: Family,
  cfg: ProxyConfig,
  node: FamilyNode,
  ports: Iterable<[ServicePortInfo, EndpointInfo[]]>,
  opts: IptablesModeOptions = {},
): IptablesModeResult {
  const list = [...ports];
  const mark = masqMark(cfg.masqueradeBit);
  const out: RestoreText = {
    filterChains: [
      "KUBE-SERVICES",
      "KUBE-EXTERNAL-SERVICES",
      "KUBE-FORWARD",
      "KUBE-NODEPORTS",
      "KUBE-PROXY-FIREWALL",
    ].map((c) => `:${c} - [0:0]`),
    filterRules: [],
    natChains: ["KUBE-SERVICES", "KUBE-NODEPORTS", "KUBE-POSTROUTING", "KUBE-MARK-MASQ"].map((c) => `:${c} - [0:0]`),
    natRules: [],
  };
  const totalEndpoints = list.reduce((n, [, eps]) => n + eps.length, 0);
  const large = totalEndpoints > LARGE_CLUSTER_ENDPOINTS;
  const comment = (c: string) => (large ? "" : ` -m comment --comment ${c}`);
  const w: Writer = { out, cfg, node, opts, isIPv6: family === "IPv6", comment };
  masqueradeRules(w, mark);
  let endpointChains = 0;
  for (const [sp, eps] of list) {
    const p = planPort(sp, eps, node);
    dispatchRules(w, p);
    masqueradeAndExternalRules(w, p);
    endpointChains += endpointRules(w, p);
  }
  closingRules(w, mark);
  const { filterChains, filterRules, natChains, natRules } = out;
  const text =
    ["*filter", ...filterChains, ...filterRules, "COMMIT", "*nat", ...natChains, ...natRules, "COMMIT"].join("\n") +
    "\n";
  return {
    text,
    natRules: natRules.length,
    filterRules: filterRules.length,
    natChains: natChains.length,
    endpointChains,
  };
}

/** KUBE-POSTROUTING, KUBE-MARK-MASQ, and KUBE-FIREWALL when localhost NodePorts are allowed. */
function masqueradeRules(w: Writer, mark: string): void {
  const { natRules, filterChains, filterRules } = w.out;
  natRules.push(`-A KUBE-POSTROUTING -m mark ! --mark ${mark}/${mark} -j RETURN`);
  natRules.push(`-A KUBE-POSTROUTING -j MARK --xor-mark ${mark}`);
  const fully = w.opts.randomFully === false ? "" : " --random-fully";
  natRules.push(
    `-A KUBE-POSTROUTING -m comment --comment "kubernetes service traffic requiring SNAT"` + ` -j MASQUERADE${fully}`,
  );
  natRules.push(`-A KUBE-MARK-MASQ -j MARK --or-mark ${mark}`);
  if (!w.isIPv6 && w.cfg.localhostNodePorts) {
    filterChains.push(":KUBE-FIREWALL - [0:0]");
    filterRules.push(
      `-A KUBE-FIREWALL -m comment --comment "block incoming localnet connections" -d 127.0.0.0/8` +
        " ! -s 127.0.0.0/8 -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -j DROP",
    );
  }
}

function planPort(sp: ServicePortInfo, eps: EndpointInfo[], node: FamilyNode): PortPlan {
  const proto = sp.protocol.toLowerCase();
  const spn = sp.nameString;
  const cat = categorizeEndpoints(eps, sp, { nodeName: node.nodeName, zone: node.zone });
  const clusterEPs = cat.cluster ?? [],
    localEPs = cat.local ?? [];
  const clusterPolicyChain = svcChain(spn, proto),
    localPolicyChain = svlChain(spn, proto);
  const policy = policyChains(sp, cat, clusterPolicyChain, localPolicyChain);
  const { usesCluster, usesLocal, internalChain, hasInternal, externalPolicyChain, hasExternal, usesExt } = policy;
  const ext = extChain(spn, proto);
  const fw = fwChain(spn, proto);
  const usesFW = cat.hasAny && sp.loadBalancerVIPs.length > 0 && sp.loadBalancerSourceRanges.length > 0;
  const lbChain = usesFW ? fw : ext;
  let intTarget = "",
    intComment = "",
    extTarget = "",
    extComment = "";
  if (!cat.hasAny) {
    intTarget = extTarget = "REJECT";
    intComment = extComment = `"${spn} has no endpoints"`;
  } else {
    if (!hasInternal) {
      intTarget = "DROP";
      intComment = `"${spn} has no local endpoints"`;
    }
    if (!hasExternal) {
      extTarget = "DROP";
      extComment = `"${spn} has no local endpoints"`;
    }
  }
  const dst = (ip: string, port: number) => `-m ${proto} -p ${proto} -d ${ip} --dport ${port}`;
  return {
    sp,
    proto,
    spn,
    cat,
    clusterEPs,
    localEPs,
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
    lbChain,
    intTarget,
    intComment,
    extTarget,
    extComment,
    dst,
  };
}

/** The port's entries in KUBE-SERVICES, KUBE-EXTERNAL-SERVICES, KUBE-PROXY-FIREWALL and KUBE-NODEPORTS. */
function dispatchRules(w: Writer, p: PortPlan): void {
  const { natRules, filterRules } = w.out;
  const { sp, spn, proto, cat, dst, ext, fw, lbChain, usesFW, hasInternal, hasExternal } = p;
  const { intComment, intTarget, extComment, extTarget } = p;
  const services = (what: string, ip: string) =>
    `-A KUBE-SERVICES -m comment --comment "${spn} ${what}" ${dst(ip, sp.port)}`;
  const noExternal = (match: string) =>
    `-A KUBE-EXTERNAL-SERVICES -m comment --comment ${extComment} ${match} -j ${extTarget}`;
  if (hasInternal) natRules.push(`${services("cluster IP", sp.clusterIP)} -j ${p.internalChain}`);
  else {
    const clusterIP = dst(sp.clusterIP, sp.port);
    filterRules.push(`-A KUBE-SERVICES -m comment --comment ${intComment} ${clusterIP} -j ${intTarget}`);
  }
  for (const ip of sp.externalIPs) {
    if (cat.hasAny) natRules.push(`${services("external IP", ip)} -j ${ext}`);
    if (!hasExternal) filterRules.push(noExternal(dst(ip, sp.port)));
  }
  for (const ip of sp.loadBalancerVIPs) {
    if (cat.hasAny) natRules.push(`${services("loadbalancer IP", ip)} -j ${lbChain}`);
    const notAccepted = `-m comment --comment "${spn} traffic not accepted by ${fw}"`;
    if (usesFW) filterRules.push(`-A KUBE-PROXY-FIREWALL ${notAccepted} ${dst(ip, sp.port)} -j DROP`);
  }
  if (!hasExternal) for (const ip of sp.loadBalancerVIPs) filterRules.push(noExternal(dst(ip, sp.port)));
  if (sp.nodePort !== 0) {
    const nodePort = `-A KUBE-NODEPORTS -m comment --comment ${spn} -m ${proto} -p ${proto}`;
    // connections to 127.0.0.0/8 are counted first (then the same jump as any other)
    if (cat.hasAny && w.cfg.localhostNodePorts && !w.isIPv6 && w.opts.nfacct) {
      const counted = `-m nfacct --nfacct-name ${NFACCT_LOCALHOST_NODEPORT}`;
      natRules.push(`${nodePort} -d 127.0.0.0/8 --dport ${sp.nodePort} ${counted} -j ${ext}`);
    }
    if (cat.hasAny) natRules.push(`${nodePort} --dport ${sp.nodePort} -j ${ext}`);
    const localPort = `-m addrtype --dst-type LOCAL -m ${proto} -p ${proto} --dport ${sp.nodePort}`;
    if (!hasExternal) filterRules.push(noExternal(localPort));
  }
  if (sp.healthCheckNodePort !== 0) {
    const hc = `-m comment --comment "${spn} health check node port"`;
    filterRules.push(`-A KUBE-NODEPORTS ${hc} -m tcp -p tcp --dport ${sp.healthCheckNodePort} -j ACCEPT`);
  }
}

/** The ClusterIP masquerade rule, the KUBE-EXT- chain (Local-policy short-circuits) and the KUBE-FW- chain. */
function masqueradeAndExternalRules(w: Writer, p: PortPlan): void {
  const { natChains, natRules } = w.out;
  const { sp, spn, ext, fw, clusterPolicyChain } = p;
  const detect = w.node.detect;
  if (p.hasInternal) {
    const args = `-m comment --comment "${spn} cluster IP" ${p.dst(sp.clusterIP, sp.port)}`;
    if (w.cfg.masqueradeAll) natRules.push(`-A ${p.internalChain} ${args} -j KUBE-MARK-MASQ`);
    else if (detect) natRules.push(`-A ${p.internalChain} ${args} ${detect.ifNotLocal.join(" ")} -j KUBE-MARK-MASQ`);
  }
  if (p.usesExt) {
    natChains.push(`:${ext} - [0:0]`);
    const about = (what: string) => `-A ${ext} -m comment --comment "${what} for ${spn} external destinations"`;
    if (!sp.externalPolicyLocal) natRules.push(`${about("masquerade traffic")} -j KUBE-MARK-MASQ`);
    else {
      if (detect) natRules.push(`${about("pod traffic")} ${detect.ifLocal.join(" ")} -j ${clusterPolicyChain}`);
      natRules.push(`${about("masquerade LOCAL traffic")} -m addrtype --src-type LOCAL -j KUBE-MARK-MASQ`);
      natRules.push(`${about("route LOCAL traffic")} -m addrtype --src-type LOCAL -j ${clusterPolicyChain}`);
    }
    if (p.hasExternal) natRules.push(`-A ${ext} -j ${p.externalPolicyChain}`);
  }
  if (p.usesFW) {
    natChains.push(`:${fw} - [0:0]`);
    let allowFromNode = false;
    for (const r of sp.loadBalancerSourceRanges) {
      natRules.push(`-A ${fw} -m comment --comment "${spn} loadbalancer IP" -s ${r} -j ${ext}`);
      if (w.node.primaryIP && cidrHas(r, w.node.primaryIP)) allowFromNode = true;
    }
    if (allowFromNode) {
      const lb = `-A ${fw} -m comment --comment "${spn} loadbalancer IP"`;
      for (const ip of sp.loadBalancerVIPs) natRules.push(`${lb} -s ${ip} -j ${ext}`);
    }
    natRules.push(`-A ${fw} -m comment --comment "other traffic to ${spn} will be dropped by KUBE-PROXY-FIREWALL"`);
  }
}

/** The KUBE-SVC-/KUBE-SVL- chains (affinity, then statistic) and a KUBE-SEP- chain per endpoint; returns how many. */
function endpointRules(w: Writer, p: PortPlan): number {
  const { natChains, natRules } = w.out;
  const { sp, spn, proto } = p;
  const { comment } = w;
  const prob = (n: number) => (1 / n).toFixed(10);
  const toEndpoints = (chain: string, endpoints: EndpointInfo[]) => {
    if (sp.clientIPAffinity)
      for (const e of endpoints) {
        const sep = sepChain(spn, proto, e.str);
        const recent = `-m recent --name ${sep} --rcheck --seconds ${sp.stickyMaxAgeSeconds} --reap`;
        natRules.push(`-A ${chain}${comment(`"${spn} -> ${e.str}"`)} ${recent} -j ${sep}`);
      }
    endpoints.forEach((e, i) => {
      const sep = sepChain(spn, proto, e.str);
      const last = i === endpoints.length - 1;
      const stat = last ? "" : ` -m statistic --mode random --probability ${prob(endpoints.length - i)}`;
      natRules.push(`-A ${chain}${comment(`"${spn} -> ${e.str}"`)}${stat} -j ${sep}`);
    });
  };
  if (p.usesCluster) {
    natChains.push(`:${p.clusterPolicyChain} - [0:0]`);
    toEndpoints(p.clusterPolicyChain, p.clusterEPs);
  }
  if (p.usesLocal) {
    natChains.push(`:${p.localPolicyChain} - [0:0]`);
    toEndpoints(p.localPolicyChain, p.localEPs);
  }
  let chains = 0;
  for (const e of p.cat.allReachable) {
    const sep = sepChain(spn, proto, e.str);
    natChains.push(`:${sep} - [0:0]`);
    chains++;
    const head = `-A ${sep}${comment(spn)}`;
    natRules.push(`${head} -s ${e.ip} -j KUBE-MARK-MASQ`);
    const remember = sp.clientIPAffinity ? ` -m recent --name ${sep} --set` : "";
    natRules.push(`${head}${remember} -m ${proto} -p ${proto} -j DNAT --to-destination ${e.str}`);
  }
  return chains;
}

/** KUBE-SERVICES' last rule (to KUBE-NODEPORTS) and KUBE-FORWARD. */
function closingRules(w: Writer, mark: string): void {
  const { natRules, filterRules } = w.out;
  const tail =
    "-A KUBE-SERVICES -m comment --comment" +
    ` "kubernetes service nodeports; NOTE: this must be the last rule in this chain"`;
  if (w.node.nodePortMatchAll) {
    let d = "-m addrtype --dst-type LOCAL";
    if (w.isIPv6) d += " ! -d ::1/128";
    else if (!w.cfg.localhostNodePorts) d += " ! -d 127.0.0.0/8";
    natRules.push(`${tail} ${d} -j KUBE-NODEPORTS`);
  } else {
    for (const ip of w.node.nodePortIPs) natRules.push(`${tail} -d ${ip} -j KUBE-NODEPORTS`);
  }
  if (!w.cfg.conntrackTCPBeLiberal) {
    const count = w.opts.nfacct ? ` -m nfacct --nfacct-name ${NFACCT_INVALID}` : "";
    filterRules.push(`-A KUBE-FORWARD -m conntrack --ctstate INVALID${count} -j DROP`);
  }
  filterRules.push(
    `-A KUBE-FORWARD -m comment --comment "kubernetes forwarding rules" -m mark --mark ${mark}/${mark}` + " -j ACCEPT",
  );
  filterRules.push(
    `-A KUBE-FORWARD -m comment --comment "kubernetes forwarding conntrack rule"` +
      " -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
  );
}

function cidrHas(cidr: string, ip: string): boolean {
  const c = parseCIDR(cidr);
  return !!c && cidrContains(c, ip);
}
