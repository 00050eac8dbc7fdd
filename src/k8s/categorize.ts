// CategorizeEndpoints (pkg/proxy/topology.go): which endpoints Cluster and Local traffic policy use.
// Ready endpoints by default; when none are ready, serving+terminating ones (independently for Cluster and
// Local); topology hints (PreferSameNode / PreferSameZone) narrow the Cluster set when every ready endpoint
// carries a hint and one matches this node or zone.
import {
  externallyAccessible,
  usesClusterEndpoints,
  usesLocalEndpoints,
  type EndpointInfo,
  type ServicePortInfo,
} from "./model.ts";

interface NodeTopology {
  nodeName: string;
  zone?: string;
  preferSameNode?: boolean;
}

interface Categorized {
  cluster: EndpointInfo[] | null; // null: the service never uses Cluster policy
  local: EndpointInfo[] | null; // null: the service never uses Local policy (or has no local usable endpoints)
  allReachable: EndpointInfo[];
  hasAny: boolean; // any usable endpoint anywhere in the cluster
}

function topologyMode(eps: EndpointInfo[], node: NodeTopology): "" | "PreferSameNode" | "PreferSameZone" {
  let hasReady = false,
    forNode = false,
    allNode = true,
    forZone = false,
    allZone = true;
  for (const e of eps) {
    if (!e.ready) continue;
    hasReady = true;
    if (!e.nodeHints) allNode = false;
    else if (e.nodeHints.includes(node.nodeName)) forNode = true;
    if (!e.zoneHints) allZone = false;
    else if (node.zone !== undefined && e.zoneHints.includes(node.zone)) forZone = true;
  }
  if (!hasReady) return "";
  if ((node.preferSameNode ?? true) && allNode && forNode) return "PreferSameNode";
  if (allZone && forZone) return "PreferSameZone";
  return "";
}

export function categorizeEndpoints(
  eps: EndpointInfo[] | undefined,
  svc: ServicePortInfo,
  node: NodeTopology,
): Categorized {
  const out: Categorized = { cluster: null, local: null, allReachable: [], hasAny: false };
  if (!eps || eps.length === 0) return out;
  const isLocal = (e: EndpointInfo) => e.nodeName !== "" && e.nodeName === node.nodeName;
  let mode: ReturnType<typeof topologyMode> = "";
  if (usesClusterEndpoints(svc)) {
    mode = topologyMode(eps, node);
    const avail = (e: EndpointInfo) =>
      mode === "" ||
      (mode === "PreferSameNode" ? !!e.nodeHints?.includes(node.nodeName) : !!e.zoneHints?.includes(node.zone ?? ""));
    out.cluster = eps.filter((e) => e.ready && avail(e));
    if (out.cluster.length === 0) out.cluster = eps.filter((e) => e.serving && e.terminating);
    if (out.cluster.length > 0) out.hasAny = true;
  }
  if (!usesLocalEndpoints(svc)) {
    out.allReachable = out.cluster ?? [];
    return out;
  }
  let localReady = false,
    localST = false;
  for (const e of eps) {
    if (e.ready) {
      out.hasAny = true;
      if (isLocal(e)) localReady = true;
    } else if (e.serving && e.terminating) {
      out.hasAny = true;
      if (isLocal(e)) localST = true;
    }
  }
  let useST = false;
  if (localReady) out.local = eps.filter((e) => isLocal(e) && e.ready);
  else if (localST) {
    useST = true;
    out.local = eps.filter((e) => isLocal(e) && e.serving && e.terminating);
  }
  if (!usesClusterEndpoints(svc)) {
    out.allReachable = out.local ?? [];
    return out;
  }
  if (mode === "" && !useST) {
    out.allReachable = out.cluster ?? [];
    return out;
  }
  const m = new Map<string, EndpointInfo>();
  for (const e of out.cluster ?? []) m.set(e.str, e);
  for (const e of out.local ?? []) m.set(e.str, e);
  out.allReachable = [...m.values()].sort((a, b) => (a.str < b.str ? -1 : a.str > b.str ? 1 : 0));
  return out;
}

/** Which policy chains a service port uses and where internal and external traffic go (both rule modes). */
interface PolicyChains {
  usesCluster: boolean;
  usesLocal: boolean;
  internalChain: string;
  hasInternal: boolean; // false: internal traffic has nowhere to go (Local policy, no local endpoints)
  externalPolicyChain: string;
  hasExternal: boolean;
  usesExt: boolean;
}

// kube-proxy's iptables and nftables proxiers choose alike; only the chains' names differ
export function policyChains(
  sp: ServicePortInfo,
  cat: Categorized,
  clusterPolicyChain: string,
  localPolicyChain: string,
): PolicyChains {
  const localEPs = cat.local ?? [];
  const noLocal = localEPs.length === 0;
  return {
    usesCluster: (cat.cluster ?? []).length > 0 && usesClusterEndpoints(sp),
    usesLocal: localEPs.length > 0 && usesLocalEndpoints(sp),
    internalChain: sp.internalPolicyLocal ? localPolicyChain : clusterPolicyChain,
    hasInternal: cat.hasAny && !(sp.internalPolicyLocal && noLocal),
    externalPolicyChain: sp.externalPolicyLocal ? localPolicyChain : clusterPolicyChain,
    hasExternal: cat.hasAny && !(sp.externalPolicyLocal && noLocal),
    usesExt: cat.hasAny && externallyAccessible(sp),
  };
}
