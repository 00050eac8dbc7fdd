// Kubernetes input for wasmvs: Services and EndpointSlices mapped exactly as kube-proxy's IPVS proxier maps
// them, plus the iptables and nftables rule sets kube-proxy's other modes would write from the same objects.
import type { DesiredState } from "../model/types.ts";
import type { Family } from "./ip.ts";
import { readObjects } from "./read.ts";
import { ClusterIndex, type IndexOptions, type IpvsFamilyState } from "./cluster.ts";
import { iptablesModeText, type IptablesModeResult, type IptablesModeOptions } from "./iptables-mode.ts";
import { nftablesModeText, type NftablesModeResult, type KubeProxyVersion } from "./nftables-mode.ts";
import type { K8sInputError } from "./errors.ts";

export { ClusterIndex, type IpvsFamilyState } from "./cluster.ts";
export { readObjects } from "./read.ts";
export { readProxyConfig, parseDuration, type ProxyConfig } from "./config.ts";
export { IPTABLES_JUMPS } from "./iptables-mode.ts";
export { KUBE_PROXY_VERSIONS, DEFAULT_KUBE_PROXY_VERSION, type KubeProxyVersion } from "./nftables-mode.ts";
export { withJumps } from "./ipvs.ts";
export { generateCluster } from "./synth.ts";

export interface MappedCluster {
  index: ClusterIndex;
  desired: DesiredState;
  ipvs: Partial<Record<Family, IpvsFamilyState>>;
  sysctls: Record<string, number>;
  excludeCIDRs: string[];
  errors: K8sInputError[];
}

/** Map kubectl output (JSON or YAML text, or parsed objects) to what kube-proxy's IPVS proxier would install. */
export function mapCluster(input: string | Record<string, unknown>[], opts: IndexOptions): MappedCluster {
  const { objects, errors } =
    typeof input === "string" ? readObjects(input) : { objects: input, errors: [] as K8sInputError[] };
  const index = new ClusterIndex(opts);
  for (const o of objects) errors.push(...index.apply(o).errors);
  const ipvs: MappedCluster["ipvs"] = {};
  for (const f of index.families) ipvs[f] = index.ipvsState(f);
  return {
    index,
    desired: index.desiredState(),
    ipvs,
    sysctls: index.sysctls(),
    excludeCIDRs: index.config.excludeCIDRs,
    errors,
  };
}

/** The iptables-restore text kube-proxy's iptables mode writes for these objects (one family). */
export function iptablesFor(
  index: ClusterIndex,
  family: Family = "IPv4",
  opts: IptablesModeOptions = {},
): IptablesModeResult {
  return iptablesModeText(family, index.config, index.familyNode(family), index.servicePorts(family), opts);
}

/** The nft -f text kube-proxy's nftables mode writes for these objects (one family). */
export function nftablesFor(
  index: ClusterIndex,
  family: Family = "IPv4",
  serviceCIDRs?: string[],
  kubeProxyVersion?: KubeProxyVersion,
): NftablesModeResult {
  return nftablesModeText(family, index.config, index.familyNode(family), index.servicePorts(family), {
    serviceCIDRs,
    kubeProxyVersion,
  });
}
