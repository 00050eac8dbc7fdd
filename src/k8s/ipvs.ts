// kube-proxy's IPVS proxier (pkg/proxy/ipvs/proxier.go, syncProxyRules): what one service port contributes to
// the IPVS tables, the ipsets and kube-ipvs0, and the iptables-restore text written beside them.
import type { RealServer, VirtualService, Protocol } from "../model/types.ts";
import { cidrContains, parseCIDR, type Family } from "./ip.ts";
import type { ProxyConfig } from "./config.ts";
import type { FamilyNode } from "./node.ts";
import { categorizeEndpoints } from "./categorize.ts";
import { schedFlagName } from "../model/schedulers.ts";
import type { EndpointInfo, ServicePortInfo } from "./model.ts";

type IpsetType = "hash:ip,port,ip" | "hash:ip,port" | "hash:ip,port,net" | "bitmap:port" | "hash:ip";

/** ipsetInfo: every set the IPVS proxier keeps, in its order, with the comment used in iptables rules. */
export const IPSETS: { name: string; type: IpsetType; comment: string }[] = [
  {
    name: "KUBE-LOOP-BACK",
    type: "hash:ip,port,ip",
    comment: "Kubernetes endpoints dst ip:port, source ip for solving hairpin purpose",
  },
  {
    name: "KUBE-CLUSTER-IP",
    type: "hash:ip,port",
    comment: "Kubernetes service cluster ip + port for masquerade purpose",
  },
  {
    name: "KUBE-EXTERNAL-IP",
    type: "hash:ip,port",
    comment: "Kubernetes service external ip + port for masquerade and filter purpose",
  },
  {
    name: "KUBE-EXTERNAL-IP-LOCAL",
    type: "hash:ip,port",
    comment: "Kubernetes service external ip + port with externalTrafficPolicy=local",
  },
  { name: "KUBE-LOAD-BALANCER", type: "hash:ip,port", comment: "Kubernetes service lb portal" },
  {
    name: "KUBE-LOAD-BALANCER-FW",
    type: "hash:ip,port",
    comment: "Kubernetes service load balancer ip + port for load balancer with sourceRange",
  },
  {
    name: "KUBE-LOAD-BALANCER-LOCAL",
    type: "hash:ip,port",
    comment: "Kubernetes service load balancer ip + port with externalTrafficPolicy=local",
  },
  {
    name: "KUBE-LOAD-BALANCER-SOURCE-IP",
    type: "hash:ip,port,ip",
    comment: "Kubernetes service load balancer ip + port + source IP for packet filter purpose",
  },
  {
    name: "KUBE-LOAD-BALANCER-SOURCE-CIDR",
    type: "hash:ip,port,net",
    comment: "Kubernetes service load balancer ip + port + source cidr for packet filter purpose",
  },
  { name: "KUBE-NODE-PORT-TCP", type: "bitmap:port", comment: "Kubernetes nodeport TCP port for masquerade purpose" },
  {
    name: "KUBE-NODE-PORT-LOCAL-TCP",
    type: "bitmap:port",
    comment: "Kubernetes nodeport TCP port with externalTrafficPolicy=local",
  },
  { name: "KUBE-NODE-PORT-UDP", type: "bitmap:port", comment: "Kubernetes nodeport UDP port for masquerade purpose" },
  {
    name: "KUBE-NODE-PORT-LOCAL-UDP",
    type: "bitmap:port",
    comment: "Kubernetes nodeport UDP port with externalTrafficPolicy=local",
  },
  {
    name: "KUBE-NODE-PORT-SCTP-HASH",
    type: "hash:ip,port",
    comment: "Kubernetes nodeport SCTP port for masquerade purpose with type 'hash ip:port'",
  },
  {
    name: "KUBE-NODE-PORT-LOCAL-SCTP-HASH",
    type: "hash:ip,port",
    comment: "Kubernetes nodeport SCTP port with externalTrafficPolicy=local with type 'hash ip:port'",
  },
  { name: "KUBE-HEALTH-CHECK-NODE-PORT", type: "bitmap:port", comment: "Kubernetes health check node port" },
  { name: "KUBE-IPVS-IPS", type: "hash:ip", comment: "Addresses on the ipvs interface" },
];
const IPSET_BY_NAME = new Map(IPSETS.map((s) => [s.name, s]));

/** The kernel name of a set: IPv6 sets are "KUBE-6-…", cut to ipset's 31 characters. */
export function ipsetName(base: string, family: Family): string {
  if (family === "IPv4" || !base.startsWith("KUBE-")) return base;
  return base.replace("KUBE-", "KUBE-6-").slice(0, 31);
}

export interface LbNoNodeAccess {
  ip: string;
  protocol: string;
  port: number;
}

/** What one ServicePort contributes (everything syncProxyRules does inside its per-service loop). */
export interface Contribution {
  vss: VirtualService[];
  ipset: [string, string][]; // [base set name, entry]
  bind: string[]; // addresses for kube-ipvs0
  lbNoNodeAccess: LbNoNodeAccess[];
  /** an entry or setting kube-proxy logs and skips */
  warnings: string[];
}

interface IpvsParams {
  cfg: ProxyConfig;
  node: FamilyNode;
}

const lower = (p: string) => p.toLowerCase() as Protocol;

function realServers(eps: EndpointInfo[] | null | undefined): RealServer[] {
  return (eps ?? []).map((e) => ({
    addr: e.ip,
    port: e.port,
    weight: 1,
    fwd: "masq" as const,
    upperThreshold: 0,
    lowerThreshold: 0,
  }));
}

export function ipvsContribution(sp: ServicePortInfo, eps: EndpointInfo[] | undefined, p: IpvsParams): Contribution {
  const { cfg, node } = p;
  const protocol = lower(sp.protocol);
  const out: Contribution = { vss: [], ipset: [], bind: [], lbNoNodeAccess: [], warnings: [] };
  const cat = categorizeEndpoints(eps, sp, { nodeName: node.nodeName, zone: node.zone });
  // syncEndpoint's choice: Local policy uses local endpoints, falling back to the cluster ones (#97081)
  const pick = (onlyLocal: boolean) =>
    onlyLocal ? (cat.local && cat.local.length > 0 ? cat.local : cat.cluster) : cat.cluster;
  const vs = (addr: string, port: number, onlyLocal: boolean): VirtualService => {
    const v: VirtualService = {
      protocol,
      addr,
      port,
      scheduler: cfg.scheduler || "rr",
      flags: [],
      realServers: realServers(pick(onlyLocal)),
    };
    if (sp.clientIPAffinity) {
      v.persistent = sp.stickyMaxAgeSeconds;
      v.netmask = node.family === "IPv4" ? "255.255.255.255" : "128";
    }
    // kube-proxy sets FlagSourceHash (0x10, flag-2: mh-port) for mh; mh-fallback is not set
    if (v.scheduler === "mh") v.flags.push(schedFlagName(v.scheduler, 1));
    return v;
  };
  // hairpin: every local endpoint, whatever its readiness
  for (const e of eps ?? [])
    if (e.nodeName !== "" && e.nodeName === node.nodeName)
      out.ipset.push(["KUBE-LOOP-BACK", `${e.ip},${protocol}:${e.port},${e.ip}`]);
  out.ipset.push(["KUBE-CLUSTER-IP", `${sp.clusterIP},${protocol}:${sp.port}`]);
  out.vss.push(vs(sp.clusterIP, sp.port, sp.internalPolicyLocal));
  out.bind.push(sp.clusterIP);
  for (const ip of sp.externalIPs) {
    out.ipset.push([
      sp.externalPolicyLocal ? "KUBE-EXTERNAL-IP-LOCAL" : "KUBE-EXTERNAL-IP",
      `${ip},${protocol}:${sp.port}`,
    ]);
    out.vss.push(vs(ip, sp.port, sp.externalPolicyLocal));
    if (!node.addressSet.has(ip)) out.bind.push(ip); // never bind an address another interface has
  }
  for (const ip of sp.loadBalancerVIPs) {
    const entry = `${ip},${protocol}:${sp.port}`;
    out.ipset.push(["KUBE-LOAD-BALANCER", entry]);
    if (sp.externalPolicyLocal) out.ipset.push(["KUBE-LOAD-BALANCER-LOCAL", entry]);
    if (sp.loadBalancerSourceRanges.length) {
      out.ipset.push(["KUBE-LOAD-BALANCER-FW", entry]);
      let allowFromNode = false;
      for (const r of sp.loadBalancerSourceRanges) {
        out.ipset.push(["KUBE-LOAD-BALANCER-SOURCE-CIDR", `${ip},${protocol}:${sp.port},${r}`]);
        if (node.primaryIP && cidrContains(parseCIDR(r)!, node.primaryIP)) allowFromNode = true;
      }
      if (allowFromNode) out.ipset.push(["KUBE-LOAD-BALANCER-SOURCE-IP", `${ip},${protocol}:${sp.port},${ip}`]);
      else out.lbNoNodeAccess.push({ ip, protocol, port: sp.port });
    }
    out.vss.push(vs(ip, sp.port, sp.externalPolicyLocal));
    if (!node.addressSet.has(ip)) out.bind.push(ip);
  }
  if (sp.nodePort !== 0) {
    if (node.nodePortIPs.length === 0) {
      out.warnings.push(`${sp.nameString}: no node addresses for NodePort ${sp.nodePort}`);
      return out;
    }
    let entries: string[];
    let set: string, localSet: string;
    if (protocol === "sctp") {
      entries = node.nodePortIPs.map((ip) => `${ip},sctp:${sp.nodePort}`);
      set = "KUBE-NODE-PORT-SCTP-HASH";
      localSet = "KUBE-NODE-PORT-LOCAL-SCTP-HASH";
    } else {
      entries = [String(sp.nodePort)];
      set = protocol === "tcp" ? "KUBE-NODE-PORT-TCP" : "KUBE-NODE-PORT-UDP";
      localSet = protocol === "tcp" ? "KUBE-NODE-PORT-LOCAL-TCP" : "KUBE-NODE-PORT-LOCAL-UDP";
    }
    for (const e of entries) out.ipset.push([set, e]);
    if (sp.externalPolicyLocal) for (const e of entries) out.ipset.push([localSet, e]);
    for (const ip of node.nodePortIPs) out.vss.push(vs(ip, sp.nodePort, sp.externalPolicyLocal)); // not bound
  }
  if (sp.healthCheckNodePort !== 0) out.ipset.push(["KUBE-HEALTH-CHECK-NODE-PORT", String(sp.healthCheckNodePort)]);
  return out;
}

// ---------------------------------------------------------------------------------------------------------
// The text kube-proxy writes: ipsets (as `ipset restore` input) and iptables (as `iptables-restore --noflush`).

export interface IpsetState {
  name: string;
  base: string;
  type: IpsetType;
  family: "inet" | "inet6";
  comment: string;
  entries: string[];
}

export function ipsetCreateLine(s: Pick<IpsetState, "name" | "type" | "family">): string {
  if (s.type === "bitmap:port") return `create ${s.name} bitmap:port range 0-65535 -exist`;
  return `create ${s.name} ${s.type} family ${s.family} hashsize 1024 maxelem 65536 -exist`;
}

/** `ipset restore` input that creates every set (as ensureIPSet does) and adds every entry with -exist. */
export function ipsetRestoreText(sets: IpsetState[]): string {
  const lines: string[] = [];
  for (const s of sets) lines.push(ipsetCreateLine(s));
  for (const s of sets) for (const e of s.entries) lines.push(`add ${s.name} ${e} -exist`);
  return lines.join("\n") + "\n";
}

export interface JumpRule {
  table: "nat" | "filter";
  chain: string;
  args: string[];
}

/** iptablesJumpChain: the rules createAndLinkKubeChain ensures (prepends) in the built-in chains. */
export const IPVS_JUMPS: JumpRule[] = [
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
  {
    table: "filter",
    chain: "FORWARD",
    args: ["-m", "comment", "--comment", '"kubernetes forwarding rules"', "-j", "KUBE-FORWARD"],
  },
  {
    table: "filter",
    chain: "INPUT",
    args: ["-m", "comment", "--comment", '"kubernetes health check rules"', "-j", "KUBE-NODE-PORT"],
  },
  {
    table: "filter",
    chain: "INPUT",
    args: ["-m", "comment", "--comment", '"kube-proxy firewall rules"', "-j", "KUBE-PROXY-FIREWALL"],
  },
  {
    table: "filter",
    chain: "FORWARD",
    args: ["-m", "comment", "--comment", '"kube-proxy firewall rules"', "-j", "KUBE-PROXY-FIREWALL"],
  },
  {
    table: "filter",
    chain: "INPUT",
    args: ["-m", "comment", "--comment", '"kubernetes ipvs access filter"', "-j", "KUBE-IPVS-FILTER"],
  },
  {
    table: "filter",
    chain: "OUTPUT",
    args: ["-m", "comment", "--comment", '"kubernetes ipvs access filter"', "-j", "KUBE-IPVS-OUT-FILTER"],
  },
];

/** ipsetWithIptablesChain, in its order (the -LOCAL node-port sets come before the plain ones). */
const IPSET_RULES: { set: string; table: "nat" | "filter"; from: string; to: string; match: string; proto: string }[] =
  [
    {
      set: "KUBE-LOOP-BACK",
      table: "nat",
      from: "KUBE-POSTROUTING",
      to: "MASQUERADE",
      match: "dst,dst,src",
      proto: "",
    },
    {
      set: "KUBE-LOAD-BALANCER",
      table: "nat",
      from: "KUBE-SERVICES",
      to: "KUBE-LOAD-BALANCER",
      match: "dst,dst",
      proto: "",
    },
    {
      set: "KUBE-LOAD-BALANCER-LOCAL",
      table: "nat",
      from: "KUBE-LOAD-BALANCER",
      to: "RETURN",
      match: "dst,dst",
      proto: "",
    },
    { set: "KUBE-NODE-PORT-LOCAL-TCP", table: "nat", from: "KUBE-NODE-PORT", to: "RETURN", match: "dst", proto: "tcp" },
    {
      set: "KUBE-NODE-PORT-TCP",
      table: "nat",
      from: "KUBE-NODE-PORT",
      to: "KUBE-MARK-MASQ",
      match: "dst",
      proto: "tcp",
    },
    { set: "KUBE-NODE-PORT-LOCAL-UDP", table: "nat", from: "KUBE-NODE-PORT", to: "RETURN", match: "dst", proto: "udp" },
    {
      set: "KUBE-NODE-PORT-UDP",
      table: "nat",
      from: "KUBE-NODE-PORT",
      to: "KUBE-MARK-MASQ",
      match: "dst",
      proto: "udp",
    },
    {
      set: "KUBE-NODE-PORT-LOCAL-SCTP-HASH",
      table: "nat",
      from: "KUBE-NODE-PORT",
      to: "RETURN",
      match: "dst,dst",
      proto: "sctp",
    },
    {
      set: "KUBE-NODE-PORT-SCTP-HASH",
      table: "nat",
      from: "KUBE-NODE-PORT",
      to: "KUBE-MARK-MASQ",
      match: "dst,dst",
      proto: "sctp",
    },
    {
      set: "KUBE-LOAD-BALANCER-FW",
      table: "filter",
      from: "KUBE-PROXY-FIREWALL",
      to: "KUBE-SOURCE-RANGES-FIREWALL",
      match: "dst,dst",
      proto: "",
    },
    {
      set: "KUBE-LOAD-BALANCER-SOURCE-CIDR",
      table: "filter",
      from: "KUBE-SOURCE-RANGES-FIREWALL",
      to: "RETURN",
      match: "dst,dst,src",
      proto: "",
    },
    {
      set: "KUBE-LOAD-BALANCER-SOURCE-IP",
      table: "filter",
      from: "KUBE-SOURCE-RANGES-FIREWALL",
      to: "RETURN",
      match: "dst,dst,src",
      proto: "",
    },
  ];

/** Go's fmt "%#08x": 0x4000 -> "0x00004000" */
export function masqMark(bit: number): string {
  return "0x" + ((1 << bit) >>> 0).toString(16).padStart(8, "0");
}

interface IptablesTextOptions {
  randomFully?: boolean;
}

/** writeIptablesRules + the chain lines of createAndLinkKubeChain: nat then filter, as one restore input. */
export function ipvsIptablesText(
  family: Family,
  cfg: ProxyConfig,
  node: FamilyNode,
  nonEmpty: (base: string) => boolean,
  lbNoNodeAccess: LbNoNodeAccess[],
  opts: IptablesTextOptions = {},
): string {
  const N = (base: string) => ipsetName(base, family);
  const cm = (base: string) => `"${IPSET_BY_NAME.get(base)!.comment}"`;
  const mark = masqMark(cfg.masqueradeBit);
  const nat: string[] = [
    "*nat",
    ...["KUBE-SERVICES", "KUBE-POSTROUTING", "KUBE-NODE-PORT", "KUBE-LOAD-BALANCER", "KUBE-MARK-MASQ"].map(
      (c) => `:${c} - [0:0]`,
    ),
  ];
  const filter: string[] = [
    "*filter",
    ...[
      "KUBE-FORWARD",
      "KUBE-NODE-PORT",
      "KUBE-PROXY-FIREWALL",
      "KUBE-SOURCE-RANGES-FIREWALL",
      "KUBE-IPVS-FILTER",
      "KUBE-IPVS-OUT-FILTER",
    ].map((c) => `:${c} - [0:0]`),
  ];
  nat.push(`-A KUBE-SERVICES -s ${family === "IPv4" ? "127.0.0.0/8" : "::1/128"} -j RETURN`);
  for (const r of IPSET_RULES) {
    if (!nonEmpty(r.set)) continue;
    const line =
      `-A ${r.from}${r.proto ? ` -p ${r.proto}` : ""} -m comment --comment ${cm(r.set)} -m set --ma` +
      `tch-set ${N(r.set)} ${r.match} -j ${r.to}`;
    (r.table === "nat" ? nat : filter).push(line);
  }
  if (nonEmpty("KUBE-CLUSTER-IP")) {
    const base =
      `-A KUBE-SERVICES -m comment --comment ${cm("KUBE-CLUSTER-IP")} -m set --match-set ` + `${N("KUBE-CLUSTER-IP")}`;
    if (cfg.masqueradeAll) nat.push(`${base} dst,dst -j KUBE-MARK-MASQ`);
    else if (node.detect) nat.push(`${base} dst,dst ${node.detect.ifNotLocal.join(" ")} -j KUBE-MARK-MASQ`);
    else nat.push(`${base} src,dst -j KUBE-MARK-MASQ`);
  }
  const extRules = (base: string) => {
    nat.push(`${base} -m physdev ! --physdev-is-in -m addrtype ! --src-type LOCAL -j ACCEPT`);
    nat.push(`${base} -m addrtype --dst-type LOCAL -j ACCEPT`);
  };
  if (nonEmpty("KUBE-EXTERNAL-IP")) {
    const base =
      `-A KUBE-SERVICES -m comment --comment ${cm("KUBE-EXTERNAL-IP")} -m set --match-set ` +
      `${N("KUBE-EXTERNAL-IP")} dst,dst`;
    nat.push(`${base} -j KUBE-MARK-MASQ`);
    extRules(base);
  }
  if (nonEmpty("KUBE-EXTERNAL-IP-LOCAL"))
    extRules(
      `-A KUBE-SERVICES -m comment --comment ${cm("KUBE-EXTERNAL-IP-LOCAL")} -m set --match-set ` +
        `${N("KUBE-EXTERNAL-IP-LOCAL")} dst,dst`,
    );
  nat.push("-A KUBE-SERVICES -m addrtype --dst-type LOCAL -j KUBE-NODE-PORT");
  nat.push("-A KUBE-LOAD-BALANCER -j KUBE-MARK-MASQ");
  filter.push("-A KUBE-SOURCE-RANGES-FIREWALL -j DROP");
  for (const e of lbNoNodeAccess)
    filter.push(
      `-A KUBE-IPVS-OUT-FILTER -s ${e.ip} -m ipvs --vaddr ${e.ip} --vproto ${e.protocol} --vport ${e.port} -j DROP`,
    );
  for (const s of ["KUBE-CLUSTER-IP", "KUBE-LOAD-BALANCER"])
    if (nonEmpty(s)) nat.push(`-A KUBE-SERVICES -m set --match-set ${N(s)} dst,dst -j ACCEPT`);
  filter.push(
    `-A KUBE-FORWARD -m comment --comment "kubernetes forwarding rules" -m mark --mark ${mark}/${mark} -j ACCEPT`,
  );
  filter.push(
    `-A KUBE-FORWARD -m comment --comment "kubernetes forwarding conntrack rule" -m conntrack --ctstate ` +
      `RELATED,ESTABLISHED -j ACCEPT`,
  );
  filter.push(
    `-A KUBE-NODE-PORT -m comment --comment ${cm("KUBE-HEALTH-CHECK-NODE-PORT")} -m set --match-set ` +
      `${N("KUBE-HEALTH-CHECK-NODE-PORT")} dst -j ACCEPT`,
  );
  for (const [s, m] of [
    ["KUBE-LOAD-BALANCER", "dst,dst"],
    ["KUBE-CLUSTER-IP", "dst,dst"],
    ["KUBE-EXTERNAL-IP", "dst,dst"],
    ["KUBE-EXTERNAL-IP-LOCAL", "dst,dst"],
    ["KUBE-HEALTH-CHECK-NODE-PORT", "dst"],
  ])
    filter.push(`-A KUBE-IPVS-FILTER -m set --match-set ${N(s)} ${m} -j RETURN`);
  filter.push(`-A KUBE-IPVS-FILTER -m conntrack --ctstate NEW -m set --match-set ${N("KUBE-IPVS-IPS")} dst -j REJECT`);
  nat.push(`-A KUBE-POSTROUTING -m mark ! --mark ${mark}/${mark} -j RETURN`);
  nat.push(`-A KUBE-POSTROUTING -j MARK --xor-mark ${mark}`);
  nat.push(
    `-A KUBE-POSTROUTING -m comment --comment "kubernetes service traffic requiring SNAT" -j MASQUERADE` +
      `${opts.randomFully === false ? "" : " --random-fully"}`,
  );
  nat.push(`-A KUBE-MARK-MASQ -j MARK --or-mark ${mark}`);
  filter.push("COMMIT");
  nat.push("COMMIT");
  return nat.join("\n") + "\n" + filter.join("\n") + "\n";
}

/** The same text with the jump rules from the built-in chains inserted, for loading into an empty
 *  namespace with `iptables-restore --noflush` (kube-proxy ensures those with separate iptables calls). */
export function withJumps(text: string, jumps: JumpRule[]): string {
  const byTable = (t: string) => jumps.filter((j) => j.table === t).map((j) => `-I ${j.chain} ${j.args.join(" ")}`);
  return text.replace(
    /^(\*(nat|filter)\n(?::.*\n)*)/gm,
    (_m, head: string, t: string) =>
      head +
      byTable(t)
        .map((l) => l + "\n")
        .join(""),
  );
}

/** The sysctls NewProxier ensures. */
export function ipvsSysctls(cfg: ProxyConfig, kernelVersion?: string): Record<string, number> {
  const s: Record<string, number> = { "net/ipv4/vs/conntrack": 1 };
  if (kernelVersion) {
    const [maj, min] = kernelVersion.split(".").map((x) => parseInt(x, 10));
    const v = maj * 1000 + (min || 0);
    if (v >= 4001 && v < 5009) s["net/ipv4/vs/conn_reuse_mode"] = 0;
  }
  s["net/ipv4/vs/expire_nodest_conn"] = 1;
  s["net/ipv4/vs/expire_quiescent_template"] = 1;
  s["net/ipv4/ip_forward"] = 1;
  if (cfg.strictARP) {
    s["net/ipv4/conf/all/arp_ignore"] = 1;
    s["net/ipv4/conf/all/arp_announce"] = 2;
  }
  return s;
}
