// What kube-proxy reads from the node rather than the API: its name, zone, local addresses and primary IPs,
// and the derived per-family views (nodeAddressSet, the NodePort addresses, the local-traffic detector).
import { cidrContains, isLinkLocalUnicast, isLoopback, parseCIDR, parseIP, formatIP, type Family } from "./ip.ts";
import { clusterCIDRFor, type ProxyConfig } from "./config.ts";

export interface NodeInfo {
  nodeName: string;
  /** every local address on the node's interfaces other than kube-ipvs0 (loopback may be included) */
  addresses: string[];
  /** the node's primary IPs (kube-proxy's --node-ip / the Node's InternalIP); default: first address per family */
  primaryIPs?: string[];
  /** topology.kubernetes.io/zone of this node, for PreferSameZone hints */
  zone?: string;
  /** spec.podCIDRs, for detectLocalMode NodeCIDR */
  podCIDRs?: string[];
  /** kernel release ("5.4.0"); decides conn_reuse_mode */
  kernelVersion?: string;
}

export interface FamilyNode {
  family: Family;
  nodeName: string;
  zone?: string;
  primaryIP: string | undefined;
  /** nodeAddressSet: local addresses of this family except loopback and IPv6 link-local */
  addressSet: Set<string>;
  /** the addresses NodePort VSs are created on (IPVS) */
  nodePortIPs: string[];
  nodePortMatchAll: boolean;
  /** nodePortAddresses filtered to this family, as CIDR texts (iptables/nftables use them) */
  nodePortCIDRs: string[];
  /** local traffic detector: the iptables and nft fragments for "is / is not from a local pod"; null when not
   * implemented */
  detect: { ifLocal: string[]; ifNotLocal: string[]; ifLocalNFT: string; ifNotLocalNFT: string } | null;
}

export function familyNode(node: NodeInfo, cfg: ProxyConfig, family: Family): FamilyNode {
  const mine = node.addresses
    .map((a) => parseIP(a))
    .filter((p): p is NonNullable<typeof p> => !!p && p.family === family);
  const addressSet = new Set(
    mine.filter((p) => !isLoopback(p) && !(family === "IPv6" && isLinkLocalUnicast(p))).map(formatIP),
  );
  const primary =
    (node.primaryIPs ?? []).map((a) => parseIP(a)).find((p) => p?.family === family) ??
    mine.find((p) => !isLoopback(p) && !isLinkLocalUnicast(p));
  const primaryIP = primary ? formatIP(primary) : undefined;
  // NewNodePortAddresses: CIDRs of this family; "primary" = the primary IP; none of this family = match all
  const cidrs: string[] = [];
  let matchAll = false;
  for (const s of cfg.nodePortAddresses) {
    if (s === "primary") {
      if (primaryIP) cidrs.push(family === "IPv4" ? `${primaryIP}/32` : `${primaryIP}/128`);
      continue;
    }
    const c = parseCIDR(s);
    if (!c || c.family !== family) continue;
    cidrs.push(c.text);
    if (c.prefix === 0) matchAll = true;
  }
  if (cidrs.length === 0) matchAll = true;
  let nodePortIPs: string[];
  if (matchAll) nodePortIPs = [...addressSet];
  else {
    const parsed = cidrs.map((c) => parseCIDR(c)!);
    nodePortIPs = [
      ...new Set(
        mine
          .filter((p) => parsed.some((c) => cidrContains(c, p)))
          .filter((p) => !isLoopback(p))
          .map(formatIP),
      ),
    ];
  }
  nodePortIPs.sort();
  const ipX = family === "IPv4" ? "ip" : "ip6";
  let detect: FamilyNode["detect"] = null;
  const byCIDR = (cidr: string | undefined) =>
    cidr
      ? {
          ifLocal: ["-s", cidr],
          ifNotLocal: ["!", "-s", cidr],
          ifLocalNFT: `${ipX} saddr ${cidr}`,
          ifNotLocalNFT: `${ipX} saddr != ${cidr}`,
        }
      : null;
  if (cfg.detectLocalMode === "ClusterCIDR") detect = byCIDR(clusterCIDRFor(cfg, family));
  else if (cfg.detectLocalMode === "NodeCIDR")
    detect = byCIDR((node.podCIDRs ?? []).map((c) => parseCIDR(c)).find((c) => c?.family === family)?.text);
  else if (cfg.detectLocalMode === "BridgeInterface" && cfg.bridgeInterface)
    detect = {
      ifLocal: ["-i", cfg.bridgeInterface],
      ifNotLocal: ["!", "-i", cfg.bridgeInterface],
      ifLocalNFT: `iif ${cfg.bridgeInterface}`,
      ifNotLocalNFT: `iif != ${cfg.bridgeInterface}`,
    };
  else if (cfg.detectLocalMode === "InterfaceNamePrefix" && cfg.interfaceNamePrefix)
    detect = {
      ifLocal: ["-i", `${cfg.interfaceNamePrefix}+`],
      ifNotLocal: ["!", "-i", `${cfg.interfaceNamePrefix}+`],
      ifLocalNFT: `iifname ${cfg.interfaceNamePrefix}*`,
      ifNotLocalNFT: `iifname != ${cfg.interfaceNamePrefix}*`,
    };
  return {
    family,
    nodeName: node.nodeName,
    zone: node.zone,
    primaryIP,
    addressSet,
    nodePortIPs,
    nodePortMatchAll: matchAll,
    nodePortCIDRs: cidrs,
    detect,
  };
}
