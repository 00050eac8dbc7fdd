// Services and EndpointSlices as kube-proxy's change trackers see them (pkg/proxy/service.go, endpoint.go,
// endpointslicecache.go): one ServicePortInfo per (Service, port, IP family), one endpoint list per service port.
// Objects are validated first; an object with any error is refused whole with messages naming the field.
import type { V1Service, V1EndpointSlice } from "@kubernetes/client-node";
import { canonicalIP, parseCIDR, parseIP, hostPort, type Family } from "./ip.ts";
import { K8sInputError } from "./errors.ts";

type K8sProtocol = "TCP" | "UDP" | "SCTP";
const SERVICE_NAME_LABEL = "kubernetes.io/service-name";

export interface ServicePortInfo {
  key: string; // ServicePortName with protocol: "ns/name:port/TCP" (the map key)
  nameString: string; // ServicePortName.String(): "ns/name:port", or "ns/name" for an unnamed port
  svcKey: string; // "ns/name"
  portName: string;
  protocol: K8sProtocol;
  family: Family;
  clusterIP: string;
  port: number;
  nodePort: number;
  externalIPs: string[];
  loadBalancerVIPs: string[];
  loadBalancerSourceRanges: string[];
  clientIPAffinity: boolean;
  stickyMaxAgeSeconds: number;
  externalPolicyLocal: boolean;
  internalPolicyLocal: boolean;
  healthCheckNodePort: number;
}

export const externallyAccessible = (s: ServicePortInfo) =>
  s.nodePort !== 0 || s.loadBalancerVIPs.length > 0 || s.externalIPs.length > 0;
// Cluster endpoints are needed for Cluster internal policy, and for any externally accessible port (even with
// Local external policy, the short-circuit for pod and node traffic goes to the Cluster chain).
export const usesClusterEndpoints = (s: ServicePortInfo) => !s.internalPolicyLocal || externallyAccessible(s);
export const usesLocalEndpoints = (s: ServicePortInfo) =>
  s.internalPolicyLocal || (s.externalPolicyLocal && externallyAccessible(s));

export interface EndpointInfo {
  ip: string;
  port: number;
  str: string; // "ip:port" ("[ip]:port" for IPv6): Endpoint.String()
  ready: boolean;
  serving: boolean;
  terminating: boolean;
  nodeName: string;
  zoneHints: string[] | null;
  nodeHints: string[] | null;
}

export interface ServiceRecord {
  key: string;
  ports: ServicePortInfo[];
} // ports of every family
export interface SliceRecord {
  key: string; // "ns/sliceName"
  svcKey: string; // "ns/serviceName"
  family: Family | null; // null: FQDN slices, ignored by kube-proxy
  ports: { name: string; port: number; protocol: K8sProtocol }[];
  endpoints: EndpointInfo[]; // with port 0: the port comes from ports[]
}

const PROTOCOLS = ["TCP", "UDP", "SCTP"];
const isObj = (v: unknown): v is Record<string, unknown> => !!v && typeof v === "object" && !Array.isArray(v);
const isPort = (v: unknown, min = 1) => typeof v === "number" && Number.isInteger(v) && v >= min && v <= 65535;

function objectName(kind: string, o: unknown): string {
  const md = isObj(o) && isObj(o.metadata) ? o.metadata : {};
  const ns = typeof md.namespace === "string" && md.namespace ? md.namespace : "default";
  const name = typeof md.name === "string" && md.name ? md.name : "<no name>";
  return `${kind} ${ns}/${name}`;
}

type Spec = Record<string, unknown>;
type ErrorSink = (field: string, message: string) => void;
interface ServicePortSpec {
  name: string;
  port: number;
  protocol: K8sProtocol;
  nodePort: number;
}

/** Validate and normalize a Service. Returns null (with errors) when refused; ports of ExternalName and
 *  headless Services are empty, as kube-proxy skips them. */
export function readService(
  svc: V1Service | Record<string, unknown>,
  opts: { loadBalancerIPMode?: boolean } = {},
): {
  record: ServiceRecord | null;
  errors: K8sInputError[];
} {
  const o = svc as Record<string, unknown>;
  const who = objectName("Service", o);
  const errors: K8sInputError[] = [];
  const err: ErrorSink = (f, m) => errors.push(new K8sInputError(who, f, m));
  const md = isObj(o.metadata) ? o.metadata : null;
  if (!md || typeof md.name !== "string" || !md.name) err("metadata.name", "missing");
  if (md && md.namespace !== undefined && typeof md.namespace !== "string")
    err("metadata.namespace", "must be a string");
  const spec = isObj(o.spec) ? o.spec : null;
  if (!spec) {
    err("spec", "missing");
    return { record: null, errors };
  }
  const ns = (md?.namespace as string) || "default",
    name = (md?.name as string) ?? "";
  const type = spec.type ?? "ClusterIP";
  if (!["ClusterIP", "NodePort", "LoadBalancer", "ExternalName"].includes(type as string))
    err("spec.type", `unknown type ${JSON.stringify(type)}`);
  // each reader reports its own fields' errors, in the order a reader of the object meets them
  const clusterIPs = readClusterIPs(spec, err);
  const ports = readServicePorts(spec, err);
  const externalIPs = readExternalIPs(spec, err);
  const ranges = readSourceRanges(spec, err);
  const { affinity, sticky } = readAffinity(spec, err);
  const { etp, itp, hcnp } = readPolicies(spec, err);
  const lbVIPs = readLoadBalancerVIPs(o, err, opts.loadBalancerIPMode ?? true);
  if (errors.length) return { record: null, errors };

  const key = `${ns}/${name}`;
  const record: ServiceRecord = { key, ports: [] };
  if (type === "ExternalName") return { record, errors };
  const isExtAccessible =
    type === "LoadBalancer" || type === "NodePort" || (type === "ClusterIP" && externalIPs.length > 0);
  const externalPolicyLocal = isExtAccessible && etp === "Local";
  const hc = type === "LoadBalancer" && externalPolicyLocal ? hcnp : 0;
  for (const family of ["IPv4", "IPv6"] as Family[]) {
    const cip = clusterIPs.find((ip) => ip !== "None" && ip !== "" && parseIP(ip)!.family === family);
    if (!cip) continue; // headless, or not this family
    if (clusterIPs[0] === "None" || clusterIPs[0] === "") continue;
    const fam = (ip: string) => parseIP(ip)!.family === family;
    for (const p of ports) {
      const nameString = p.name ? `${key}:${p.name}` : key;
      record.ports.push({
        key: `${key}:${p.name}/${p.protocol}`,
        nameString,
        svcKey: key,
        portName: p.name,
        protocol: p.protocol,
        family,
        clusterIP: cip,
        port: p.port,
        nodePort: p.nodePort,
        externalIPs: externalIPs.filter(fam),
        loadBalancerVIPs: lbVIPs.filter(fam),
        loadBalancerSourceRanges: ranges.filter((r) => parseCIDR(r)!.family === family),
        clientIPAffinity: affinity === "ClientIP",
        stickyMaxAgeSeconds: affinity === "ClientIP" ? sticky : 0,
        externalPolicyLocal,
        internalPolicyLocal: itp === "Local",
        healthCheckNodePort: hc,
      });
    }
  }
  return { record, errors };
}

/** spec.clusterIPs (or spec.clusterIP), canonical; "None" and "" kept as they are (headless). */
function readClusterIPs(spec: Spec, err: ErrorSink): string[] {
  const clusterIPs: string[] = [];
  const listed = Array.isArray(spec.clusterIPs) && spec.clusterIPs.length > 0;
  const rawIPs = listed ? (spec.clusterIPs as unknown[]) : spec.clusterIP !== undefined ? [spec.clusterIP] : [];
  rawIPs.forEach((ip, i) => {
    const field = listed ? `spec.clusterIPs[${i}]` : "spec.clusterIP";
    if (ip === "None" || ip === "") {
      clusterIPs.push(ip);
      return;
    }
    const c = typeof ip === "string" ? canonicalIP(ip) : null;
    if (!c) err(field, `invalid IP address ${JSON.stringify(ip)}`);
    else clusterIPs.push(c);
  });
  return clusterIPs;
}

/** spec.ports: each with a name unique per protocol, a port, a protocol and a node port (0 when none). */
function readServicePorts(spec: Spec, err: ErrorSink): ServicePortSpec[] {
  const ports = spec.ports === undefined ? [] : spec.ports;
  if (!Array.isArray(ports)) err("spec.ports", "must be a list");
  const seenNames = new Set<string>();
  const okPorts: ServicePortSpec[] = [];
  (Array.isArray(ports) ? ports : []).forEach((p, i) => {
    const f = `spec.ports[${i}]`;
    if (!isObj(p)) {
      err(f, "must be an object");
      return;
    }
    const pname = p.name === undefined || p.name === null ? "" : p.name;
    if (typeof pname !== "string") {
      err(`${f}.name`, "must be a string");
      return;
    }
    if (!isPort(p.port)) {
      err(`${f}.port`, `must be an integer in 1..65535, got ${JSON.stringify(p.port)}`);
      return;
    }
    const proto = p.protocol === undefined ? "TCP" : p.protocol;
    if (!PROTOCOLS.includes(proto as string)) {
      err(`${f}.protocol`, `must be TCP, UDP or SCTP, got ${JSON.stringify(proto)}`);
      return;
    }
    const np = p.nodePort === undefined || p.nodePort === null ? 0 : p.nodePort;
    if (!isPort(np, 0)) {
      err(`${f}.nodePort`, `must be an integer in 0..65535, got ${JSON.stringify(p.nodePort)}`);
      return;
    }
    const k = `${pname}/${proto}`;
    if (seenNames.has(k)) {
      err(`${f}.name`, `duplicate port name '${pname}' for ${proto}`);
      return;
    }
    seenNames.add(k);
    okPorts.push({ name: pname, port: p.port as number, protocol: proto as K8sProtocol, nodePort: np as number });
  });
  return okPorts;
}

function readExternalIPs(spec: Spec, err: ErrorSink): string[] {
  const externalIPs: string[] = [];
  if (spec.externalIPs === undefined || spec.externalIPs === null) return externalIPs;
  if (!Array.isArray(spec.externalIPs)) err("spec.externalIPs", "must be a list");
  else
    spec.externalIPs.forEach((ip, i) => {
      const c = typeof ip === "string" ? canonicalIP(ip.trim()) : null;
      if (!c) err(`spec.externalIPs[${i}]`, `invalid IP address ${JSON.stringify(ip)}`);
      else externalIPs.push(c);
    });
  return externalIPs;
}

function readSourceRanges(spec: Spec, err: ErrorSink): string[] {
  const ranges: string[] = [];
  if (spec.loadBalancerSourceRanges === undefined || spec.loadBalancerSourceRanges === null) return ranges;
  if (!Array.isArray(spec.loadBalancerSourceRanges)) err("spec.loadBalancerSourceRanges", "must be a list");
  else
    spec.loadBalancerSourceRanges.forEach((r, i) => {
      const c = typeof r === "string" ? parseCIDR(r.trim()) : null;
      if (!c) err(`spec.loadBalancerSourceRanges[${i}]`, `invalid CIDR ${JSON.stringify(r)}`);
      else ranges.push(c.text);
    });
  return ranges;
}

/** spec.sessionAffinity and its timeout (the API default: 3 hours). */
function readAffinity(spec: Spec, err: ErrorSink): { affinity: unknown; sticky: number } {
  const affinity = spec.sessionAffinity ?? "None";
  if (affinity !== "None" && affinity !== "ClientIP") {
    err("spec.sessionAffinity", `must be None or ClientIP, got ${JSON.stringify(affinity)}`);
  }
  let sticky = 10800;
  const config = spec.sessionAffinityConfig;
  const timeout = isObj(config) && isObj(config.clientIP) ? config.clientIP.timeoutSeconds : undefined;
  if (affinity === "ClientIP" && timeout !== undefined && timeout !== null) {
    if (typeof timeout !== "number" || !Number.isInteger(timeout) || timeout < 1 || timeout > 86400) {
      const field = "spec.sessionAffinityConfig.clientIP.timeoutSeconds";
      err(field, `must be an integer in 1..86400, got ${JSON.stringify(timeout)}`);
    } else sticky = timeout;
  }
  return { affinity, sticky };
}

/** The external and internal traffic policies, and the health-check node port. */
function readPolicies(spec: Spec, err: ErrorSink): { etp: unknown; itp: unknown; hcnp: number } {
  const etp = spec.externalTrafficPolicy ?? "Cluster";
  if (etp !== "Cluster" && etp !== "Local")
    err("spec.externalTrafficPolicy", `must be Cluster or Local, got ${JSON.stringify(etp)}`);
  const itp = spec.internalTrafficPolicy ?? "Cluster";
  if (itp !== "Cluster" && itp !== "Local")
    err("spec.internalTrafficPolicy", `must be Cluster or Local, got ${JSON.stringify(itp)}`);
  const hcnp = spec.healthCheckNodePort ?? 0;
  if (!isPort(hcnp, 0)) err("spec.healthCheckNodePort", `must be an integer in 0..65535, got ${JSON.stringify(hcnp)}`);
  return { etp, itp, hcnp: hcnp as number };
}

/** status.loadBalancer.ingress[].ip, skipping hostname-only ingress and, with the LoadBalancerIPMode gate on,
 *  ipMode Proxy (the LB proxies). */
function readLoadBalancerVIPs(o: Record<string, unknown>, err: ErrorSink, ipModeGate: boolean): string[] {
  const lbVIPs: string[] = [];
  const status = isObj(o.status) ? o.status : {};
  const ingress = isObj(status.loadBalancer) ? status.loadBalancer.ingress : undefined;
  if (Array.isArray(ingress))
    ingress.forEach((ing, i) => {
      if (!isObj(ing) || ing.ip === undefined || ing.ip === "") return; // hostname-only ingress: nothing to do
      const c = typeof ing.ip === "string" ? canonicalIP(ing.ip) : null;
      if (!c) {
        err(`status.loadBalancer.ingress[${i}].ip`, `invalid IP address ${JSON.stringify(ing.ip)}`);
        return;
      }
      if (ipModeGate && ing.ipMode !== undefined && ing.ipMode !== null && ing.ipMode !== "VIP") return;
      lbVIPs.push(c);
    });
  return lbVIPs;
}

/** A slice's ports: each one kube-proxy would use (no port number: skipped), the others reported. */
function readSlicePorts(list: unknown, err: (f: string, m: string) => void): SliceRecord["ports"] {
  const ports: SliceRecord["ports"] = [];
  if (list === undefined || list === null) return ports;
  if (!Array.isArray(list)) {
    err("ports", "must be a list");
    return ports;
  }
  list.forEach((p, i) => {
    if (!isObj(p)) {
      err(`ports[${i}]`, "must be an object");
      return;
    }
    if (p.port === undefined || p.port === null) return; // no port: kube-proxy skips it
    if (!isPort(p.port)) {
      err(`ports[${i}].port`, `must be an integer in 1..65535, got ${JSON.stringify(p.port)}`);
      return;
    }
    const proto = p.protocol ?? "TCP";
    if (!PROTOCOLS.includes(proto as string)) {
      err(`ports[${i}].protocol`, `must be TCP, UDP or SCTP, got ${JSON.stringify(proto)}`);
      return;
    }
    if (p.name !== undefined && p.name !== null && typeof p.name !== "string") {
      err(`ports[${i}].name`, "must be a string");
      return;
    }
    ports.push({ name: (p.name as string) ?? "", port: p.port as number, protocol: proto as K8sProtocol });
  });
  return ports;
}

/** One endpoint of a slice (its first address, conditions and hints), or null after reporting why not. */
function readSliceEndpoint(
  e: unknown,
  f: string,
  at: Family,
  err: (f: string, m: string) => void,
): EndpointInfo | null {
  if (!isObj(e)) {
    err(f, "must be an object");
    return null;
  }
  if (!Array.isArray(e.addresses) || e.addresses.length === 0) {
    err(`${f}.addresses`, "must list at least one address");
    return null;
  }
  const first = e.addresses[0];
  const p = typeof first === "string" ? parseIP(first) : null;
  if (!p) {
    err(`${f}.addresses[0]`, `invalid IP address ${JSON.stringify(first)}`);
    return null;
  }
  if (p.family !== at) {
    err(`${f}.addresses[0]`, `${first} is not an ${at} address`);
    return null;
  }
  const c = isObj(e.conditions) ? e.conditions : {};
  for (const k of ["ready", "serving", "terminating"])
    if (c[k] !== undefined && c[k] !== null && typeof c[k] !== "boolean")
      err(`${f}.conditions.${k}`, `must be true or false, got ${JSON.stringify(c[k])}`);
  const ready = c.ready === undefined || c.ready === null || c.ready === true;
  const serving = c.serving === undefined || c.serving === null ? ready : c.serving === true;
  const terminating = c.terminating === true;
  const hints = isObj(e.hints) ? e.hints : null;
  const zoneHints =
    hints && Array.isArray(hints.forZones) && hints.forZones.length
      ? hints.forZones.map((z) => (isObj(z) ? String(z.name) : ""))
      : null;
  const nodeHints =
    hints && Array.isArray(hints.forNodes) && hints.forNodes.length
      ? hints.forNodes.map((z) => (isObj(z) ? String(z.name) : ""))
      : null;
  return {
    ip: canonicalIP(first as string)!,
    port: 0,
    str: "",
    ready,
    serving,
    terminating,
    nodeName: typeof e.nodeName === "string" ? e.nodeName : "",
    zoneHints,
    nodeHints,
  };
}

/** Validate and normalize an EndpointSlice (discovery.k8s.io/v1). */
export function readEndpointSlice(es: V1EndpointSlice | Record<string, unknown>): {
  record: SliceRecord | null;
  errors: K8sInputError[];
} {
  const o = es as Record<string, unknown>;
  const who = objectName("EndpointSlice", o);
  const errors: K8sInputError[] = [];
  const err = (f: string, m: string) => errors.push(new K8sInputError(who, f, m));
  const md = isObj(o.metadata) ? o.metadata : null;
  if (!md || typeof md.name !== "string" || !md.name) err("metadata.name", "missing");
  const labels = md && isObj(md.labels) ? md.labels : {};
  const svcName = labels[SERVICE_NAME_LABEL];
  if (typeof svcName !== "string" || !svcName)
    err(`metadata.labels["${SERVICE_NAME_LABEL}"]`, "missing: the slice names no Service");
  const at = o.addressType;
  if (at !== "IPv4" && at !== "IPv6" && at !== "FQDN")
    err("addressType", `must be IPv4, IPv6 or FQDN, got ${JSON.stringify(at)}`);
  const ports = readSlicePorts(o.ports, err);
  const endpoints: EndpointInfo[] = [];
  const eps = o.endpoints ?? [];
  if (!Array.isArray(eps)) err("endpoints", "must be a list");
  else if (at !== "FQDN")
    eps.forEach((e, i) => {
      const ep = readSliceEndpoint(e, `endpoints[${i}]`, at as Family, err);
      if (ep) endpoints.push(ep);
    });
  if (errors.length) return { record: null, errors };
  const ns = (md!.namespace as string) || "default";
  return {
    record: {
      key: `${ns}/${md!.name}`,
      svcKey: `${ns}/${svcName}`,
      family: at === "FQDN" ? null : (at as Family),
      ports,
      endpoints,
    },
    errors,
  };
}

/** The endpoints of every service port of one Service and family, merged from its slices as
 *  endpointslicecache does: slices in name order, one entry per ip:port (a ready duplicate wins), sorted by
 *  ip:port string. Keyed by ServicePortInfo.key. */
export function endpointsForService(
  svcKey: string,
  family: Family,
  slices: Iterable<SliceRecord>,
): Map<string, EndpointInfo[]> {
  const sorted = [...slices]
    .filter((s) => s.family === family)
    .sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  const byPort = new Map<string, Map<string, EndpointInfo>>();
  for (const s of sorted) {
    for (const p of s.ports) {
      const k = `${svcKey}:${p.name}/${p.protocol}`;
      let m = byPort.get(k);
      if (!m) byPort.set(k, (m = new Map()));
      for (const e of s.endpoints) {
        const str = hostPort(e.ip, p.port);
        const prev = m.get(str);
        if (prev && !e.ready) continue;
        m.set(str, { ...e, port: p.port, str });
      }
    }
  }
  const out = new Map<string, EndpointInfo[]>();
  for (const [k, m] of byPort)
    out.set(
      k,
      [...m.values()].sort((a, b) => (a.str < b.str ? -1 : a.str > b.str ? 1 : 0)),
    );
  return out;
}
