// A synthetic cluster, emitted as the JSON `kubectl get services,endpointslices -A -o json` prints: N Services
// with a realistic mix (1-4 ports, mostly TCP, some UDP/SCTP, NodePort and LoadBalancer types, ClientIP
// affinity, Local traffic policies, externalIPs) and endpoints per Service drawn from a distribution, spread
// over nodes, cut into EndpointSlices of at most 100 endpoints as the EndpointSlice controller does. Seeded.
import { ntoa4 as v4 } from "../model/inet.ts";

interface SynthOptions {
  services: number;
  seed?: number;
  /** endpoints per Service: a fixed number, or "realistic" (most 1-5, a long tail to 200); default realistic */
  endpoints?: number | "realistic";
  nodes?: number; // default 100
  localNode?: string; // default "node-0"
  namespaces?: number; // default max(1, services/50)
  dualStackFraction?: number; // default 0
  /** fraction of endpoints not ready / terminating; defaults 0.02 / 0.01 */
  notReady?: number;
  terminating?: number;
}

function rng(seed: number) {
  let a = seed >>> 0;
  return () => {
    // mulberry32
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const v6 = (prefix: string, n: number) => `${prefix}${(n >>> 16).toString(16)}:${(n & 0xffff).toString(16)}`;

// The random draws, in the one order a seed fixes: every helper below takes them from here.
interface Draws {
  r: () => number;
  pick: <T>(xs: [number, T][]) => T;
  nodePort: () => number;
}
type TargetPort = { name: string; port: number; protocol: string };
type SynthEndpoint = { ip: string; ip6: string; node: string; ready: boolean; serving: boolean; terminating: boolean };

function draws(seed: number): Draws {
  const r = rng(seed);
  const pick = <T>(xs: [number, T][]): T => {
    let x = r();
    for (const [w, v] of xs) {
      if ((x -= w) < 0) return v;
    }
    return xs[xs.length - 1][1];
  };
  const usedNodePorts = new Set<number>();
  const nodePort = () => {
    let p: number;
    do p = 30000 + Math.floor(r() * 2768);
    while (usedNodePorts.has(p) && usedNodePorts.size < 2768);
    usedNodePorts.add(p);
    return p;
  };
  return { r, pick, nodePort };
}

/** A Service's ports (mostly TCP on the usual numbers) and the target ports its slices carry. */
function servicePorts(d: Draws, nports: number, type: string) {
  const { r, pick } = d;
  const ports: Record<string, unknown>[] = [];
  const targetPorts: TargetPort[] = [];
  for (let p = 0; p < nports; p++) {
    const protocol = pick<string>([
      [0.92, "TCP"],
      [0.07, "UDP"],
      [0.01, "SCTP"],
    ]);
    const port =
      pick<number>([
        [0.35, 80],
        [0.2, 443],
        [0.15, 8080],
        [0.1, 9090],
        [0.2, 1024 + Math.floor(r() * 30000)],
      ]) + p;
    const pname = nports === 1 && r() < 0.3 ? "" : `p${p}-${protocol.toLowerCase()}`;
    const tp = 8000 + p + (port % 1000);
    const sp: Record<string, unknown> = { name: pname || undefined, port, protocol, targetPort: tp };
    if (type !== "ClusterIP" && protocol !== "SCTP") sp.nodePort = d.nodePort();
    ports.push(sp);
    targetPorts.push({ name: pname, port: tp, protocol });
  }
  return { ports, targetPorts };
}

/** The Service's spec around its ports: addresses, affinity, traffic policies, external IPs, LB ranges. */
function serviceSpec(d: Draws, i: number, name: string, type: string, dual: boolean, ports: unknown[]) {
  const { r, pick } = d;
  const cip = v4((10 << 24) | ((96 << 16) + 10 + i)); // 10.96.0.0/12, sequential
  const cip6 = v6("fd00:96::", 10 + i);
  const spec: Record<string, unknown> = {
    type,
    clusterIP: cip,
    clusterIPs: dual ? [cip, cip6] : [cip],
    ipFamilies: dual ? ["IPv4", "IPv6"] : ["IPv4"],
    ipFamilyPolicy: dual ? "RequireDualStack" : "SingleStack",
    ports,
    selector: { app: name },
    sessionAffinity: r() < 0.05 ? "ClientIP" : "None",
    internalTrafficPolicy: r() < 0.02 ? "Local" : "Cluster",
  };
  if (spec.sessionAffinity === "ClientIP")
    spec.sessionAffinityConfig = {
      clientIP: {
        timeoutSeconds: pick<number>([
          [0.7, 10800],
          [0.3, 600],
        ]),
      },
    };
  if (type !== "ClusterIP") spec.externalTrafficPolicy = r() < 0.3 ? "Local" : "Cluster";
  if (type === "LoadBalancer" && spec.externalTrafficPolicy === "Local") spec.healthCheckNodePort = d.nodePort();
  if (type === "ClusterIP" && r() < 0.01)
    spec.externalIPs = [v4((198 << 24) | (51 << 16) | (100 << 8) | ((i % 250) + 1))];
  if (type === "LoadBalancer" && r() < 0.2) spec.loadBalancerSourceRanges = ["203.0.113.0/24"];
  return spec;
}

/** How many endpoints a Service gets: the fixed number asked for, or mostly 1-10 with a tail to 200. */
function endpointCount(d: Draws, o: SynthOptions): number {
  if (typeof o.endpoints === "number") return o.endpoints;
  const { r } = d;
  const u = r();
  return u < 0.05
    ? 0
    : u < 0.55
      ? 1 + Math.floor(r() * 3)
      : u < 0.9
        ? 3 + Math.floor(r() * 8)
        : u < 0.99
          ? 10 + Math.floor(r() * 40)
          : 50 + Math.floor(r() * 150);
}

/** The Service's EndpointSlices: 100 endpoints each, per family (one empty slice when it has none). */
function serviceSlices(
  i: number,
  name: string,
  ns: string,
  uid: string,
  families: string[],
  eps: SynthEndpoint[],
  targetPorts: TargetPort[],
  nextRv: () => number,
): Record<string, unknown>[] {
  const slices: Record<string, unknown>[] = [];
  for (const fam of families) {
    for (let s = 0; s * 100 < Math.max(eps.length, 1); s++) {
      const chunk = eps.slice(s * 100, s * 100 + 100);
      const sliceName = `${name}-${fam === "IPv4" ? "" : "v6-"}${(i * 7919 + s).toString(36).padStart(5, "x")}`;
      slices.push({
        apiVersion: "discovery.k8s.io/v1",
        kind: "EndpointSlice",
        addressType: fam,
        metadata: {
          name: sliceName,
          namespace: ns,
          resourceVersion: String(nextRv()),
          generateName: `${name}-`,
          labels: {
            "kubernetes.io/service-name": name,
            "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io",
          },
          ownerReferences: [
            { apiVersion: "v1", kind: "Service", name, uid, controller: true, blockOwnerDeletion: true },
          ],
        },
        endpoints: chunk.map((e) => ({
          addresses: [fam === "IPv4" ? e.ip : e.ip6],
          conditions: { ready: e.ready, serving: e.serving, terminating: e.terminating },
          nodeName: e.node,
          targetRef: { kind: "Pod", namespace: ns, name: `${name}-${e.ip.replaceAll(".", "-")}` },
        })),
        ports: targetPorts.map((t) => ({ name: t.name, port: t.port, protocol: t.protocol })),
      });
      if (chunk.length === 0) break;
    }
  }
  return slices;
}

export function generateCluster(o: SynthOptions): {
  apiVersion: "v1";
  kind: "List";
  metadata: { resourceVersion: string };
  items: Record<string, unknown>[];
} {
  const d = draws(o.seed ?? 1);
  const { r, pick } = d;
  const nodes = o.nodes ?? 100;
  const nsCount = o.namespaces ?? Math.max(1, Math.floor(o.services / 50));
  const services: Record<string, unknown>[] = [];
  const slices: Record<string, unknown>[] = [];
  let podSeq = 0; // pod IPs from 10.128.0.0/9, unique
  let rv = 1000;
  for (let i = 0; i < o.services; i++) {
    const ns = `ns-${i % nsCount}`;
    const name = `svc-${i}`;
    const type = pick<string>([
      [0.8, "ClusterIP"],
      [0.14, "NodePort"],
      [0.06, "LoadBalancer"],
    ]);
    const nports = pick<number>([
      [0.7, 1],
      [0.2, 2],
      [0.07, 3],
      [0.03, 4],
    ]);
    const dual = r() < (o.dualStackFraction ?? 0);
    const { ports, targetPorts } = servicePorts(d, nports, type);
    const spec = serviceSpec(d, i, name, type, dual, ports);
    const status: Record<string, unknown> =
      type === "LoadBalancer"
        ? { loadBalancer: { ingress: [{ ip: v4((172 << 24) | ((20 << 16) + i)), ipMode: "VIP" }] } }
        : { loadBalancer: {} };
    const uid = `00000000-0000-4000-8000-${i.toString(16).padStart(12, "0")}`;
    services.push({
      apiVersion: "v1",
      kind: "Service",
      metadata: { name, namespace: ns, uid, resourceVersion: String(rv++), labels: { app: name } },
      spec,
      status,
    });
    const count = endpointCount(d, o);
    const eps: SynthEndpoint[] = [];
    for (let e = 0; e < count; e++) {
      const n = Math.floor(r() * nodes);
      const k = ++podSeq;
      const terminating = r() < (o.terminating ?? 0.01);
      const notReady = terminating || r() < (o.notReady ?? 0.02);
      eps.push({
        ip: v4(((10 << 24) | (128 << 16)) + k),
        ip6: v6("fd00:128::", k),
        node: n === 0 ? (o.localNode ?? "node-0") : `node-${n}`,
        ready: !notReady,
        serving: !notReady || (terminating && r() < 0.5),
        terminating,
      });
    }
    const families = dual ? ["IPv4", "IPv6"] : ["IPv4"];
    slices.push(...serviceSlices(i, name, ns, uid, families, eps, targetPorts, () => rv++));
  }
  return { apiVersion: "v1", kind: "List", metadata: { resourceVersion: "" }, items: [...services, ...slices] };
}
