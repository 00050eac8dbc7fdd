// One synthetic cluster of N Services × E endpoints, as every part of the scaling work sees it: the objects
// from src/k8s/synth, kube-proxy's three modes' rules from src/k8s (iptables-restore text with the jump
// rules kube-proxy ensures, the nft transaction, IPVS mode's virtual services + ipsets + iptables), and the
// Services' order in KUBE-SERVICES.
import {
  mapCluster,
  iptablesFor,
  nftablesFor,
  generateCluster,
  IPTABLES_JUMPS,
  withJumps,
  type MappedCluster,
  type KubeProxyVersion,
} from "../k8s/index.ts";
import { parseRuleset, serviceTargets, type Ruleset, type ServiceTarget } from "./iptables.ts";

export const SCALING_NODE = { nodeName: "node-0", addresses: ["192.168.201.1", "192.168.202.1"] };
const SCALING_CONFIG = { clusterCIDRs: ["10.128.0.0/9"] };
export const SERVICE_CIDR = "10.96.0.0/12";

export interface ScalingCluster {
  services: number;
  endpoints: number;
  seed: number;
  mapped: MappedCluster;
  iptables: { text: string; install: string; natRules: number; filterRules: number; jumps: number };
  nft: { text: string; rules: number; elements: number; chains: number };
  ruleset: Ruleset;
  targets: ServiceTarget[]; // TCP ClusterIP service ports with endpoints, in KUBE-SERVICES order
  genMs: number;
}

export function scalingCluster(
  services: number,
  endpoints: number,
  seed = 1,
  want: { nft?: boolean; kubeProxyVersion?: KubeProxyVersion } = {},
): ScalingCluster {
  const t0 = performance.now();
  const objs = generateCluster({ services, endpoints, seed, notReady: 0, terminating: 0 }).items;
  const mapped = mapCluster(objs, { node: SCALING_NODE, config: SCALING_CONFIG });
  const ipt = iptablesFor(mapped.index, "IPv4");
  const install = withJumps(ipt.text, IPTABLES_JUMPS);
  const nf =
    want.nft === false
      ? { text: "", rules: 0, elements: 0, chains: 0 }
      : nftablesFor(mapped.index, "IPv4", [SERVICE_CIDR], want.kubeProxyVersion);
  const ruleset = parseRuleset(install);
  const inServiceCIDR = (ip: string) => {
    const [a, b] = ip.split(".").map(Number);
    return a === 10 && b >= 96 && b < 112;
  };
  const targets = serviceTargets(ruleset).filter(
    (t) => t.proto === "tcp" && t.endpoints.length > 0 && inServiceCIDR(t.vip),
  );
  return {
    services,
    endpoints,
    seed,
    mapped,
    iptables: {
      text: ipt.text,
      install,
      natRules: ipt.natRules,
      filterRules: ipt.filterRules,
      jumps: IPTABLES_JUMPS.length,
    },
    nft: { text: nf.text, rules: nf.rules, elements: nf.elements, chains: nf.chains },
    ruleset,
    targets,
    genMs: performance.now() - t0,
  };
}

/** kube-proxy's partial iptables sync for "+1 Service" (MinimizeIPTablesRestore, 1.28+): the chains that
 * are new in `after`, plus KUBE-SERVICES rewritten whole (declaring a chain flushes it under --noflush). */
export function iptablesPartial(before: string, after: string): string {
  const chainsOf = (text: string) => {
    const m = new Map<string, Map<string, string[]>>();
    let table = "";
    for (const l of text.split("\n")) {
      if (l.startsWith("*")) {
        table = l;
        m.set(table, new Map());
        continue;
      }
      if (l.startsWith(":")) {
        m.get(table)!.set(l.slice(1).split(" ")[0], []);
        continue;
      }
      if (l.startsWith("-A ")) {
        const c = l.split(" ")[1];
        (m.get(table)!.get(c) ?? m.get(table)!.set(c, []).get(c)!).push(l);
      }
    }
    return m;
  };
  const a = chainsOf(before),
    b = chainsOf(after);
  const out: string[] = [];
  for (const [table, chains] of b) {
    const old = a.get(table) ?? new Map();
    const changed = [...chains.keys()].filter(
      (c) => !old.has(c) || (c === "KUBE-SERVICES" && JSON.stringify(old.get(c)) !== JSON.stringify(chains.get(c))),
    );
    if (!changed.length) continue;
    out.push(table, ...changed.map((c) => `:${c} - [0:0]`));
    for (const c of changed) out.push(...chains.get(c)!);
    out.push("COMMIT");
  }
  return out.join("\n") + "\n";
}

/** kube-proxy nftables' partial sync for a change: the transaction lines of `after` that `before` lacks
 * (new chains, their rules, the new map elements). */
export function nftPartial(before: string, after: string): string {
  const old = new Set(before.split("\n"));
  const lines = after.split("\n").filter((l) => l && !old.has(l));
  const table = after.split("\n").find((l) => l.startsWith("add table"));
  return [table, ...lines].filter(Boolean).join("\n") + "\n";
}

import { Walker, ipv4Number } from "./iptables.ts";
import type { SimService } from "./engine.ts";

/** The cluster's TCP ClusterIP Service ports as the engine takes them, each with the number of iptables
 * rules a new connection to it walks (nat PREROUTING + filter FORWARD + nat POSTROUTING). The walker runs
 * in full for the first Service; for the others the walk differs only in the KUBE-SERVICES position. */
export function simServices(
  c: ScalingCluster,
  clientIP = "192.168.201.2",
): { services: SimService[]; walkRest: number; walkNoService: number } {
  const w = new Walker(c.ruleset, new Set(SCALING_NODE.addresses.map(ipv4Number)), rng1());
  const src = ipv4Number(clientIP);
  const t0 = c.targets[0];
  const first = w.walk({ proto: "tcp", src, dst: ipv4Number(t0.vip), dport: t0.port });
  const walkRest = first.total - t0.position;
  const none = w.walk({ proto: "tcp", src, dst: ipv4Number("10.255.255.254"), dport: 80 });
  const services = c.targets.map((t) => ({
    vip: ipv4Number(t.vip),
    port: t.port,
    walkRules: t.position + walkRest,
    endpoints: t.endpoints.map((e) => [ipv4Number(e.split(":")[0]), Number(e.split(":")[1])] as [number, number]),
  }));
  return { services, walkRest, walkNoService: none.total };
}
function rng1() {
  let a = 12345;
  return () => {
    a = (a * 1103515245 + 12345) >>> 0;
    return a / 4294967296;
  };
}
