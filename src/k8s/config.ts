// KubeProxyConfiguration (kubeproxy.config.k8s.io/v1alpha1, and the v1alpha2 top-level sync fields):
// read from YAML or JSON, defaulted as kube-proxy's defaults.go does, each problem named by field.
import { parseAllDocuments } from "yaml";
import { parseCIDR, type Family } from "./ip.ts";
import { K8sInputError } from "./errors.ts";
import { SCHEDULERS } from "../model/schedulers.ts";

type DetectLocalMode = "ClusterCIDR" | "NodeCIDR" | "BridgeInterface" | "InterfaceNamePrefix";

export interface ProxyConfig {
  mode: string; // "ipvs", "iptables", "nftables" ("" = the platform default, iptables)
  scheduler: string; // ipvs.scheduler, "" -> "rr"
  syncPeriodMs: number; // the period of full resyncs for the chosen mode
  minSyncPeriodMs: number; // the debounce interval for the chosen mode
  excludeCIDRs: string[]; // ipvs.excludeCIDRs: VSs inside these are never cleaned up
  strictARP: boolean;
  tcpTimeout: number; // seconds; 0 = leave the system value (ipvsadm --set semantics)
  tcpFinTimeout: number;
  udpTimeout: number;
  clusterCIDRs: string[]; // clusterCIDR, comma separated for dual-stack
  masqueradeAll: boolean;
  masqueradeBit: number; // default 14 -> mark 0x4000
  nodePortAddresses: string[]; // [] = every node address; "primary" = the node's primary IPs
  detectLocalMode: DetectLocalMode;
  bridgeInterface: string;
  interfaceNamePrefix: string;
  localhostNodePorts: boolean; // iptables mode only
  conntrackTCPBeLiberal: boolean; // iptables mode: without it KUBE-FORWARD drops INVALID
  hostnameOverride: string;
  kubeconfig: string; // clientConnection.kubeconfig
  /** featureGates.LoadBalancerIPMode (beta and on by default from 1.30, GA and locked on from 1.32): when on, a
   *  load-balancer ingress with ipMode Proxy gets no rules on the node */
  loadBalancerIPMode: boolean;
}

export const DEFAULT_CONFIG: ProxyConfig = {
  mode: "ipvs",
  scheduler: "rr",
  syncPeriodMs: 30_000,
  minSyncPeriodMs: 0,
  excludeCIDRs: [],
  strictARP: false,
  tcpTimeout: 0,
  tcpFinTimeout: 0,
  udpTimeout: 0,
  clusterCIDRs: [],
  masqueradeAll: false,
  masqueradeBit: 14,
  nodePortAddresses: [],
  detectLocalMode: "ClusterCIDR",
  bridgeInterface: "",
  interfaceNamePrefix: "",
  localhostNodePorts: true,
  conntrackTCPBeLiberal: false,
  hostnameOverride: "",
  kubeconfig: "",
  loadBalancerIPMode: true,
};

/** Go's time.ParseDuration for the forms configs use ("30s", "1m0s", "500ms", "1h2m", "0"); milliseconds. */
export function parseDuration(v: unknown): number | null {
  if (typeof v === "number" && Number.isFinite(v) && v >= 0) return v / 1e6; // a raw Go duration is nanoseconds
  if (typeof v !== "string") return null;
  const s = v.trim();
  if (s === "0") return 0;
  const unit: Record<string, number> = { ns: 1e-6, us: 1e-3, µs: 1e-3, ms: 1, s: 1000, m: 60_000, h: 3_600_000 };
  const re = /([0-9]*\.?[0-9]+)(ns|us|µs|ms|s|m|h)/y;
  let ms = 0,
    pos = 0;
  while (pos < s.length) {
    re.lastIndex = pos;
    const m = re.exec(s);
    if (!m) return null;
    ms += Number(m[1]) * unit[m[2]];
    pos = re.lastIndex;
  }
  return pos > 0 ? ms : null;
}

/** The KubeProxyConfiguration document in a YAML or JSON text: the first of that kind, else the first object. */
function configDocument(input: string, source: string, errors: K8sInputError[]): Record<string, unknown> | undefined {
  let obj: Record<string, unknown> | undefined;
  const docs = parseAllDocuments(input);
  const list = Array.isArray(docs) ? docs : [docs];
  for (const d of list) {
    if (d.errors.length) {
      errors.push(new K8sInputError(source, "", `malformed YAML: ${d.errors[0].message.split("\n")[0]}`));
      continue;
    }
    const v = d.toJS();
    if (v && typeof v === "object" && (v as { kind?: string }).kind === "KubeProxyConfiguration") {
      obj = v;
      break;
    }
    if (v && typeof v === "object" && !obj) obj = v;
  }
  return obj;
}

/** Readers for each field type: a wrong value is reported through err and the default kept. */
function fieldReaders(err: (field: string, msg: string) => void) {
  const str = (v: unknown, field: string, dflt: string): string => {
    if (v === undefined || v === null) return dflt;
    if (typeof v !== "string") {
      err(field, `expected a string, got ${JSON.stringify(v)}`);
      return dflt;
    }
    return v;
  };
  const bool = (v: unknown, field: string, dflt: boolean): boolean => {
    if (v === undefined || v === null) return dflt;
    if (typeof v !== "boolean") {
      err(field, `expected true or false, got ${JSON.stringify(v)}`);
      return dflt;
    }
    return v;
  };
  const dur = (v: unknown, field: string, dflt: number): number => {
    if (v === undefined || v === null) return dflt;
    const ms = parseDuration(v);
    if (ms === null) {
      err(field, `invalid duration ${JSON.stringify(v)} (expected e.g. "30s", "1m0s", "500ms")`);
      return dflt;
    }
    return ms;
  };
  const secs = (v: unknown, field: string) => Math.floor(dur(v, field, 0) / 1000);
  const cidrList = (v: unknown, field: string): string[] => {
    if (v === undefined || v === null) return [];
    const arr =
      typeof v === "string"
        ? v
            .split(",")
            .map((x) => x.trim())
            .filter(Boolean)
        : Array.isArray(v)
          ? v
          : null;
    if (!arr) {
      err(field, `expected a list of CIDRs, got ${JSON.stringify(v)}`);
      return [];
    }
    const out: string[] = [];
    arr.forEach((c, i) => {
      if (typeof c === "string" && c === "primary" && field === "nodePortAddresses") {
        out.push(c);
        return;
      }
      const p = typeof c === "string" ? parseCIDR(c) : null;
      if (!p) err(`${field}[${i}]`, `invalid CIDR ${JSON.stringify(c)}`);
      else out.push(p.text);
    });
    return out;
  };
  return { str, bool, dur, secs, cidrList };
}

/** Parse a KubeProxyConfiguration document (YAML or JSON text, or an already parsed object). */
export function readProxyConfig(
  input: string | Record<string, unknown>,
  source = "KubeProxyConfiguration",
): { config: ProxyConfig; errors: K8sInputError[] } {
  const errors: K8sInputError[] = [];
  const obj = typeof input === "string" ? configDocument(input, source, errors) : input;
  const cfg: ProxyConfig = { ...DEFAULT_CONFIG, excludeCIDRs: [], clusterCIDRs: [], nodePortAddresses: [] };
  if (!obj) {
    errors.push(new K8sInputError(source, "", "no KubeProxyConfiguration document"));
    return { config: cfg, errors };
  }
  const err = (field: string, msg: string) => errors.push(new K8sInputError(source, field, msg));
  if (obj.kind !== undefined && obj.kind !== "KubeProxyConfiguration")
    err("kind", `expected KubeProxyConfiguration, got '${String(obj.kind)}'`);
  const sub = (k: string) => (obj[k] && typeof obj[k] === "object" ? (obj[k] as Record<string, unknown>) : {});
  const ipvs = sub("ipvs"),
    ipt = sub("iptables"),
    nft = sub("nftables"),
    ct = sub("conntrack"),
    dl = sub("detectLocal"),
    cc = sub("clientConnection");
  const { str, bool, dur, secs, cidrList } = fieldReaders(err);

  cfg.mode = str(obj.mode, "mode", "");
  if (!["", "ipvs", "iptables", "nftables", "kernelspace"].includes(cfg.mode))
    err("mode", `unknown proxy mode '${cfg.mode}' (ipvs, iptables, nftables)`);
  cfg.scheduler = str(ipvs.scheduler, "ipvs.scheduler", "") || "rr";
  if (!SCHEDULERS.includes(cfg.scheduler)) {
    err("ipvs.scheduler", `unknown IPVS scheduler '${cfg.scheduler}' (${SCHEDULERS.join(", ")})`);
  }
  // the mode's own sync periods; v1alpha2's top-level syncPeriod/minSyncPeriod win when present
  const modeSec = cfg.mode === "iptables" || cfg.mode === "" ? ipt : cfg.mode === "nftables" ? nft : ipvs;
  const modeName =
    cfg.mode === "iptables" || cfg.mode === "" ? "iptables" : cfg.mode === "nftables" ? "nftables" : "ipvs";
  const defMin = modeName === "ipvs" ? 0 : 1000;
  cfg.syncPeriodMs = dur(
    obj.syncPeriod ?? modeSec.syncPeriod,
    obj.syncPeriod !== undefined ? "syncPeriod" : `${modeName}.syncPeriod`,
    30_000,
  );
  cfg.minSyncPeriodMs = dur(
    obj.minSyncPeriod ?? modeSec.minSyncPeriod,
    obj.minSyncPeriod !== undefined ? "minSyncPeriod" : `${modeName}.minSyncPeriod`,
    defMin,
  );
  if (cfg.syncPeriodMs <= 0)
    err(obj.syncPeriod !== undefined ? "syncPeriod" : `${modeName}.syncPeriod`, "must be greater than 0");
  if (cfg.minSyncPeriodMs > cfg.syncPeriodMs && cfg.syncPeriodMs > 0)
    err(`${modeName}.minSyncPeriod`, `must be <= syncPeriod (${cfg.minSyncPeriodMs} ms > ${cfg.syncPeriodMs} ms)`);
  cfg.excludeCIDRs = cidrList(ipvs.excludeCIDRs, "ipvs.excludeCIDRs");
  cfg.strictARP = bool(ipvs.strictARP, "ipvs.strictARP", false);
  cfg.tcpTimeout = secs(ipvs.tcpTimeout, "ipvs.tcpTimeout");
  cfg.tcpFinTimeout = secs(ipvs.tcpFinTimeout, "ipvs.tcpFinTimeout");
  cfg.udpTimeout = secs(ipvs.udpTimeout, "ipvs.udpTimeout");
  cfg.clusterCIDRs = cidrList(obj.clusterCIDR, "clusterCIDR");
  cfg.masqueradeAll = bool(
    obj.masqueradeAll ?? (modeName === "nftables" ? nft.masqueradeAll : ipt.masqueradeAll),
    "masqueradeAll",
    false,
  );
  const bit = obj.masqueradeBit ?? (modeName === "nftables" ? nft.masqueradeBit : ipt.masqueradeBit);
  if (bit !== undefined && bit !== null) {
    if (typeof bit !== "number" || !Number.isInteger(bit) || bit < 0 || bit > 31)
      err("iptables.masqueradeBit", `must be an integer in [0, 31], got ${JSON.stringify(bit)}`);
    else cfg.masqueradeBit = bit;
  }
  cfg.nodePortAddresses = cidrList(obj.nodePortAddresses, "nodePortAddresses");
  const dlm = str(obj.detectLocalMode, "detectLocalMode", "") || "ClusterCIDR";
  if (!["ClusterCIDR", "NodeCIDR", "BridgeInterface", "InterfaceNamePrefix"].includes(dlm))
    err("detectLocalMode", `unknown mode '${dlm}'`);
  else cfg.detectLocalMode = dlm as DetectLocalMode;
  cfg.bridgeInterface = str(dl.bridgeInterface, "detectLocal.bridgeInterface", "");
  cfg.interfaceNamePrefix = str(dl.interfaceNamePrefix, "detectLocal.interfaceNamePrefix", "");
  cfg.localhostNodePorts = bool(ipt.localhostNodePorts, "iptables.localhostNodePorts", true);
  cfg.conntrackTCPBeLiberal = bool(ct.tcpBeLiberal, "conntrack.tcpBeLiberal", false);
  cfg.hostnameOverride = str(obj.hostnameOverride, "hostnameOverride", "");
  cfg.kubeconfig = str(cc.kubeconfig, "clientConnection.kubeconfig", "");
  // featureGates: only the gates that change what the node gets are read; a gate's value must be a boolean
  if (obj.featureGates !== undefined && obj.featureGates !== null) {
    const fg = obj.featureGates;
    if (typeof fg !== "object" || Array.isArray(fg)) err("featureGates", `expected a map of gate names to true/false`);
    else
      for (const [k, v] of Object.entries(fg as Record<string, unknown>)) {
        if (typeof v !== "boolean") err(`featureGates.${k}`, `expected true or false, got ${JSON.stringify(v)}`);
        else if (k === "LoadBalancerIPMode") cfg.loadBalancerIPMode = v;
      }
  }
  return { config: cfg, errors };
}

/** The clusterCIDR of one family, if configured. */
export function clusterCIDRFor(cfg: ProxyConfig, family: Family): string | undefined {
  return cfg.clusterCIDRs.find((c) => parseCIDR(c)?.family === family);
}
