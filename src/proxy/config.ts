// The proxy's configuration file (YAML or JSON: JSON is read by the same YAML parser), validated with
// errors that point at the line and column, producing the DesiredState every back end consumes plus the
// proxy's own settings and health checks.
import { readFileSync } from "node:fs";
import { isIP } from "node:net";
import { parseDocument, LineCounter, isMap, isSeq, isScalar, type Node as YNode, type Document } from "yaml";
import type { DesiredState, RealServer, VirtualService, IpvsTimeouts } from "../model/types.ts";
import { serviceKey, realServerKey } from "../model/types.ts";
import { SCHEDULERS, SCHED_FLAG_NAMES } from "../core/index.ts";
import { loopProblems, nonUnicast } from "../model/validate.ts";
import { SYNC_DEFAULTS, type SyncDaemonOptions } from "./sync.ts";
import { type SyncDaemon, SYNC_MAXLEN_MAX, ifnameProblem, multicastFamily } from "../model/daemon.ts";

export type HealthType = "tcp" | "http" | "udp" | "exec";

export interface HealthSpec {
  type: HealthType;
  interval: number; // seconds between checks
  timeout: number; // seconds per check
  rise: number; // consecutive successes to come back up
  fall: number; // consecutive failures to go down
  onFail: "quiesce" | "remove";
  port?: number; // check this port instead of the real server's
  path?: string; // http
  status?: number; // http, default 200
  digest?: string; // http: md5 hex of the body (keepalived's digest)
  host?: string; // http Host header
  send?: string; // udp payload
  expect?: string; // udp: the reply must start with this
  command?: string[]; // exec: argv; {addr} and {port} are replaced
}

export interface ProxyOptions {
  mode: "socket" | "packet";
  control: string | null; // unix control socket path
  metrics: string | null; // host:port for /metrics
  vipInterface: string | null; // dummy interface for the VIPs ("lo" loopback, null: do not add addresses)
  connCapacity: number; // the core's connection table size
  udpFlows: number; // bounded UDP flow table
  maxConns: number; // TCP connections in flight (0: from RLIMIT_NOFILE)
  drainTimeout: number; // seconds a removed destination's connections are kept
  connectTimeout: number; // seconds for a backend connect
  idleTimeout: number; // seconds a TCP connection may move no byte before it is closed (socket mode)
  tick: number; // ms between timer runs (core.advance, idle checks)
  logLevel: "debug" | "info" | "warn" | "error";
  pump: "native" | "js"; // socket mode's byte pump: the native relay (JS pump if not built) or JS only
  // socket mode's pump threads (src/proxy/workers.ts); 0: the cores the process may use. Packet mode: its I/O
  // threads (native/packet/io_threads.h), 0 or 1 the one-thread path
  workers: number;
  settings: Record<string, number>; // Core.set sysctls (expire_nodest_conn, conn_reuse_mode, ...)
  packet: PacketModeOptions;
  syncDaemons: SyncDaemonOptions[]; // connection sync (src/proxy/sync.ts): master and/or backup, packet mode
}

// Packet mode (src/proxy/packet.ts): where it receives, what it rewrites sources to, how it batches.
export interface PacketModeOptions {
  interfaces: string[]; // receive on these (AF_PACKET); the kernel routes what is sent
  localAddresses: string[]; // full-NAT source addresses, one per family in use; dedicated to wasmvs
  // what ipvsadm's -m (and a real server with no `forward`) means: full-NAT (the source becomes a local
  // address) or masq (the kernel's NAT: the client's address kept, replies routed back through wasmvs)
  forward: PacketForward;
  batchSize: number; // packets per recvmmsg / WASM batch / sendmmsg
  slotSize: number; // bytes per packet slot: larger packets are dropped (MTU + headroom)
  suppressKernel: boolean; // install the nftables table that keeps the kernel off taken-over flows
  io: "ring" | "mmsg" | "xdp"; // PACKET_MMAP rings (falls back to mmsg, logged), recvmmsg/sendmmsg, or AF_XDP
  fwmarkQueue: number; // the netfilter queue the fwmark services' marked packets come through (src/proxy/fwmark.ts)
}

export type PacketForward = "fullnat" | "masq";

export interface ProxyConfig {
  state: DesiredState;
  health: Map<string, HealthSpec>; // `${serviceKey}|${realServerKey}` -> spec
  options: ProxyOptions;
  file?: string;
  daemons?: DaemonsConfig; // the `daemons:` section, for `wasmvs sync` (kernel IPVS's sync daemons)
}

/** A director pair's sync daemons, as `wasmvs sync` keeps them running in the kernel. */
export interface DaemonsConfig {
  daemons: SyncDaemon[]; // master and/or backup
  stopOnExit: boolean; // stop them when `wasmvs sync` stops (default: they keep running)
}

// The core's sysctls a configuration may set (proxy.settings), each with the values it takes: the kernel's
// meanings (expire_nodest_conn, expire_quiescent_template, sloppy_tcp: 0 or 1; conn_reuse_mode: bits 1 and 2).
export const PROXY_SETTINGS: Record<string, [min: number, max: number]> = {
  expire_nodest_conn: [0, 1],
  expire_quiescent_template: [0, 1],
  conn_reuse_mode: [0, 3],
  sloppy_tcp: [0, 1],
  lblc_expiration_ms: [0, 2 ** 31],
  lblcr_expiration_ms: [0, 2 ** 31],
  mh_table_index: [0, 2 ** 31],
  sh_table_bits: [0, 2 ** 31],
};

// What kube-proxy's IPVS mode sets on a node, and so what its users expect of the proxy that stands in for it:
// a deleted real server's connections expire at once and a new SYN from their port is scheduled afresh
// (expire_nodest_conn=1), a quiesced real server's persistence templates stop sending clients to it
// (expire_quiescent_template=1), and a SYN on a finished entry (TIME_WAIT, CLOSE) is scheduled afresh
// (conn_reuse_mode=1: kube-proxy leaves the kernel's 1 on 5.9 and later; it sets 0 on older kernels only
// against their one-second stall with conntrack, which the proxy does not have).
export const PROXY_SETTING_DEFAULTS: Record<string, number> = {
  expire_nodest_conn: 1,
  expire_quiescent_template: 1,
  conn_reuse_mode: 1,
};

export const DEFAULT_OPTIONS: ProxyOptions = {
  mode: "socket",
  control: "/run/wasmvs/proxy.sock",
  metrics: null,
  vipInterface: "wasmvs0",
  connCapacity: 65536,
  udpFlows: 4096,
  maxConns: 0,
  drainTimeout: 300,
  connectTimeout: 3,
  tick: 1000,
  idleTimeout: 900,
  logLevel: "info",
  pump: "native",
  workers: 0,
  settings: { ...PROXY_SETTING_DEFAULTS },
  packet: {
    interfaces: [],
    localAddresses: [],
    forward: "fullnat",
    batchSize: 64,
    slotSize: 2048,
    suppressKernel: true,
    io: "ring",
    fwmarkQueue: 22355, // 0x5753, "WS": away from 0, which IDS tools bind by default
  },
  syncDaemons: [],
};

export const MAX_WORKERS = 1024;
// packet mode's I/O threads (native/packet/io_threads.h); proxy.workers 0 (auto) is one thread there
export const MAX_PACKET_THREADS = 64;

export const healthKey = (s: VirtualService, r: Pick<RealServer, "addr" | "port">) =>
  `${serviceKey(s)}|${realServerKey(r)}`;

export interface ConfigIssue {
  path: string;
  line: number;
  col: number;
  message: string;
}

export class ConfigError extends Error {
  constructor(
    readonly issues: ConfigIssue[],
    readonly file = "<config>",
  ) {
    super(issues.map((i) => `${file}:${i.line}:${i.col}: ${i.path ? i.path + ": " : ""}${i.message}`).join("\n"));
    this.name = "ConfigError";
  }
}

class Walker {
  issues: ConfigIssue[] = [];
  constructor(
    readonly lc: LineCounter,
    readonly doc: Document,
  ) {}
  pos(node: YNode | null | undefined): { line: number; col: number } {
    const off = (node as { range?: number[] } | null | undefined)?.range?.[0];
    if (typeof off !== "number") return { line: 1, col: 1 };
    const p = this.lc.linePos(off);
    return { line: p.line, col: p.col };
  }
  err(node: YNode | null | undefined, path: string, message: string): void {
    this.issues.push({ path, ...this.pos(node), message });
  }
  // the map's entries as [key, value node, key node]
  entries(node: YNode, path: string, known: string[]): Map<string, YNode> {
    const out = new Map<string, YNode>();
    if (!isMap(node)) {
      this.err(node, path, "must be a mapping");
      return out;
    }
    for (const pair of node.items) {
      const k = isScalar(pair.key) ? String(pair.key.value) : "";
      if (!known.includes(k))
        this.err(pair.key as YNode, path ? `${path}.${k}` : k, `unknown key (known: ${known.join(", ")})`);
      else out.set(k, (pair.value ?? null) as YNode);
    }
    return out;
  }
  num(node: YNode | undefined, path: string, min: number, max: number, dflt: number, integer = true): number {
    if (node === undefined) return dflt;
    const v = isScalar(node) ? node.value : undefined;
    if (typeof v !== "number" || !Number.isFinite(v) || (integer && !Number.isInteger(v)) || v < min || v > max) {
      this.err(node, path, `must be ${integer ? "an integer" : "a number"} in ${min}..${max}`);
      return dflt;
    }
    return v;
  }
  str(node: YNode | undefined, path: string, dflt?: string, choices?: string[]): string | undefined {
    if (node === undefined) return dflt;
    const v = isScalar(node) ? node.value : undefined;
    if (typeof v !== "string" && typeof v !== "number") {
      this.err(node, path, "must be a string");
      return dflt;
    }
    const s = String(v);
    if (choices && !choices.includes(s)) {
      this.err(node, path, `'${s}' is not one of ${choices.join(", ")}`);
      return dflt;
    }
    return s;
  }
  nullableStr(node: YNode | undefined, path: string, dflt: string | null): string | null {
    if (node === undefined) return dflt;
    if (isScalar(node) && (node.value === null || node.value === false)) return null;
    return this.str(node, path, dflt ?? undefined) ?? null;
  }
  addr(node: YNode | undefined, path: string): string {
    const s = this.str(node, path);
    if (s === undefined) {
      this.err(node, path, "an IPv4 or IPv6 address is required");
      return "0.0.0.0";
    }
    if (!isIP(s)) {
      this.err(node, path, `'${s}' is not an IPv4 or IPv6 address`);
      return "0.0.0.0";
    }
    return s;
  }
  list(node: YNode | undefined, path: string): YNode[] {
    if (node === undefined) return [];
    if (!isSeq(node)) {
      this.err(node, path, "must be a list");
      return [];
    }
    return node.items as YNode[];
  }
}

const HEALTH_KEYS = [
  "type",
  "interval",
  "timeout",
  "rise",
  "fall",
  "onFail",
  "port",
  "path",
  "status",
  "digest",
  "host",
  "send",
  "expect",
  "command",
];

function parseHealth(w: Walker, node: YNode, path: string, base?: HealthSpec): HealthSpec | undefined {
  if (isScalar(node) && (node.value === null || node.value === false)) return undefined;
  const e = w.entries(node, path, HEALTH_KEYS);
  const type = w.str(e.get("type"), `${path}.type`, base?.type, ["tcp", "http", "udp", "exec"]) as
    | HealthType
    | undefined;
  if (!type) {
    w.err(node, path, "type is required (tcp, http, udp or exec)");
    return undefined;
  }
  const h: HealthSpec = {
    type,
    interval: w.num(e.get("interval"), `${path}.interval`, 0.05, 3600, base?.interval ?? 2, false),
    timeout: w.num(e.get("timeout"), `${path}.timeout`, 0.01, 600, base?.timeout ?? 1, false),
    rise: w.num(e.get("rise"), `${path}.rise`, 1, 100, base?.rise ?? 1),
    fall: w.num(e.get("fall"), `${path}.fall`, 1, 100, base?.fall ?? 1),
    onFail: w.str(e.get("onFail"), `${path}.onFail`, base?.onFail ?? "quiesce", ["quiesce", "remove"]) as
      | "quiesce"
      | "remove",
  };
  const port = e.has("port") ? w.num(e.get("port"), `${path}.port`, 1, 65535, 0) : base?.port;
  if (port) h.port = port;
  for (const k of ["path", "digest", "host", "send", "expect"] as const) {
    const v = w.str(e.get(k), `${path}.${k}`, base?.[k]);
    if (v !== undefined) h[k] = v;
  }
  if (e.has("status") || base?.status)
    h.status = w.num(e.get("status"), `${path}.status`, 100, 599, base?.status ?? 200);
  if (h.digest !== undefined && !/^[0-9a-f]{32}$/i.test(h.digest))
    w.err(e.get("digest"), `${path}.digest`, "must be an MD5 digest (32 hex digits)");
  const cmd = e.get("command");
  if (cmd !== undefined) {
    if (isScalar(cmd) && typeof cmd.value === "string") h.command = ["/bin/sh", "-c", cmd.value];
    else h.command = w.list(cmd, `${path}.command`).map((n, i) => w.str(n, `${path}.command[${i}]`) ?? "");
  } else if (base?.command) h.command = base.command;
  if (h.type === "exec" && !h.command?.length) w.err(node, path, "exec checks need a command");
  if (h.type === "udp" && h.send === undefined) h.send = "";
  if (h.type === "http" && h.path === undefined) h.path = "/";
  return h;
}

const TOP_KEYS = ["proxy", "timeouts", "services", "daemons"];
const PROXY_KEYS = [
  "mode",
  "control",
  "metrics",
  "vipInterface",
  "connCapacity",
  "udpFlows",
  "maxConns",
  "drainTimeout",
  "connectTimeout",
  "tick",
  "logLevel",
  "pump",
  "settings",
  "interfaces",
  "localAddresses",
  "batchSize",
  "slotSize",
  "suppressKernel",
  "idleTimeout",
  "packetIo",
  "workers",
  "syncDaemons",
  "forward",
  "fwmarkQueue",
];
const SERVICE_KEYS = [
  "protocol",
  "addr",
  "port",
  "fwmark",
  "family",
  "scheduler",
  "flags",
  "persistent",
  "netmask",
  "health",
  "realServers",
  "connectTimeout",
  "idleTimeout",
];
const RS_KEYS = ["addr", "port", "weight", "upperThreshold", "lowerThreshold", "health", "forward"];
const FORWARDS: PacketForward[] = ["fullnat", "masq"];

// The proxy: section (absent: the defaults).
function parseOptions(w: Walker, pn: YNode | undefined): ProxyOptions {
  const options: ProxyOptions = {
    ...DEFAULT_OPTIONS,
    settings: { ...PROXY_SETTING_DEFAULTS },
    packet: { ...DEFAULT_OPTIONS.packet },
    syncDaemons: [],
  };
  if (pn === undefined) return options;
  const p = w.entries(pn, "proxy", PROXY_KEYS);
  options.syncDaemons = parseSyncDaemons(w, p.get("syncDaemons"));
  options.mode = w.str(p.get("mode"), "proxy.mode", "socket", ["socket", "packet"]) as "socket" | "packet";
  options.control = w.nullableStr(p.get("control"), "proxy.control", DEFAULT_OPTIONS.control);
  const controlWhy = options.control ? controlPathProblem(options.control) : undefined;
  if (controlWhy) w.err(p.get("control"), "proxy.control", controlWhy);
  options.metrics = w.nullableStr(p.get("metrics"), "proxy.metrics", null);
  const metricsWhy = options.metrics ? hostPortProblem(options.metrics) : undefined;
  if (metricsWhy) w.err(p.get("metrics"), "proxy.metrics", metricsWhy);
  options.vipInterface = w.nullableStr(p.get("vipInterface"), "proxy.vipInterface", DEFAULT_OPTIONS.vipInterface);
  if (options.vipInterface && !/^[A-Za-z0-9_.-]{1,15}$/.test(options.vipInterface))
    w.err(p.get("vipInterface"), "proxy.vipInterface", "not an interface name");
  options.connCapacity = w.num(p.get("connCapacity"), "proxy.connCapacity", 64, 1 << 24, DEFAULT_OPTIONS.connCapacity);
  options.udpFlows = w.num(p.get("udpFlows"), "proxy.udpFlows", 1, 1 << 20, DEFAULT_OPTIONS.udpFlows);
  options.maxConns = w.num(p.get("maxConns"), "proxy.maxConns", 0, 1 << 22, 0);
  options.drainTimeout = w.num(
    p.get("drainTimeout"),
    "proxy.drainTimeout",
    0,
    86400 * 7,
    DEFAULT_OPTIONS.drainTimeout,
    false,
  );
  options.connectTimeout = w.num(
    p.get("connectTimeout"),
    "proxy.connectTimeout",
    0.01,
    600,
    DEFAULT_OPTIONS.connectTimeout,
    false,
  );
  options.idleTimeout = w.num(
    p.get("idleTimeout"),
    "proxy.idleTimeout",
    1,
    86400 * 7,
    DEFAULT_OPTIONS.idleTimeout,
    false,
  );
  options.tick = w.num(p.get("tick"), "proxy.tick", 10, 60000, DEFAULT_OPTIONS.tick);
  options.logLevel = w.str(p.get("logLevel"), "proxy.logLevel", "info", [
    "debug",
    "info",
    "warn",
    "error",
  ]) as ProxyOptions["logLevel"];
  const ifs = w.list(p.get("interfaces"), "proxy.interfaces");
  options.packet.interfaces = ifs.map((n, i) => {
    const v = w.str(n, `proxy.interfaces[${i}]`) ?? "";
    if (v && !/^[A-Za-z0-9_.@-]{1,15}$/.test(v)) w.err(n, `proxy.interfaces[${i}]`, "not an interface name");
    return v;
  });
  options.packet.localAddresses = w
    .list(p.get("localAddresses"), "proxy.localAddresses")
    .map((n, i) => w.addr(n, `proxy.localAddresses[${i}]`));
  options.packet.forward = w.str(p.get("forward"), "proxy.forward", "fullnat", FORWARDS) as PacketForward;
  options.packet.batchSize = w.num(p.get("batchSize"), "proxy.batchSize", 1, 4096, DEFAULT_OPTIONS.packet.batchSize);
  options.packet.slotSize = w.num(p.get("slotSize"), "proxy.slotSize", 128, 65536, DEFAULT_OPTIONS.packet.slotSize);
  const sk = p.get("suppressKernel");
  if (sk !== undefined) {
    if (!isScalar(sk) || typeof sk.value !== "boolean") w.err(sk, "proxy.suppressKernel", "must be true or false");
    else options.packet.suppressKernel = sk.value;
  }
  options.packet.io = w.str(p.get("packetIo"), "proxy.packetIo", "ring", [
    "ring",
    "mmsg",
    "xdp",
  ]) as PacketModeOptions["io"];
  options.packet.fwmarkQueue = w.num(
    p.get("fwmarkQueue"),
    "proxy.fwmarkQueue",
    0,
    65535,
    DEFAULT_OPTIONS.packet.fwmarkQueue,
  );
  options.pump = w.str(p.get("pump"), "proxy.pump", "native", ["native", "js"]) as ProxyOptions["pump"];
  const wn = p.get("workers");
  if (!(isScalar(wn) && wn.value === "auto"))
    options.workers = w.num(wn, "proxy.workers", 1, MAX_WORKERS, DEFAULT_OPTIONS.workers);
  const sn = p.get("settings");
  if (sn !== undefined)
    for (const [k, v] of w.entries(sn, "proxy.settings", Object.keys(PROXY_SETTINGS))) {
      const [min, max] = PROXY_SETTINGS[k];
      options.settings[k] = w.num(v, `proxy.settings.${k}`, min, max, options.settings[k] ?? 0);
    }

  return options;
}

// The timeouts: section (ipvsadm --set; 0 keeps the current value).
function parseTimeouts(w: Walker, tn: YNode | undefined): IpvsTimeouts | undefined {
  if (tn === undefined) return undefined;
  const t = w.entries(tn, "timeouts", ["tcp", "tcpfin", "udp"]);
  return {
    tcp: w.num(t.get("tcp"), "timeouts.tcp", 0, 2 ** 31 / 1000, 0),
    tcpfin: w.num(t.get("tcpfin"), "timeouts.tcpfin", 0, 2 ** 31 / 1000, 0),
    udp: w.num(t.get("udp"), "timeouts.udp", 0, 2 ** 31 / 1000, 0),
  };
}

// What the services parse shares: the configuration's health specs, the services seen (duplicates) and
// each real server's node (where a loop between services is reported).
interface ServicesContext {
  health: Map<string, HealthSpec>;
  seen: Map<string, string>;
  rsNodes: Map<string, YNode>;
  forward: PacketForward; // proxy.forward: what -m means
}

// The service's identity: protocol, address and port, or a fwmark (packet mode; `family: inet6` for IPv6).
function parseServiceIdentity(w: Walker, sn: YNode, s: Map<string, YNode>, path: string): VirtualService {
  if (s.has("fwmark")) {
    const fwmark = w.num(s.get("fwmark"), `${path}.fwmark`, 1, 2 ** 32 - 1, 1);
    for (const k of ["protocol", "addr", "port"])
      if (s.has(k)) w.err(s.get(k), `${path}.${k}`, "a fwmark service has none: it takes the packets with its mark");
    const family = w.str(s.get("family"), `${path}.family`, "inet", ["inet", "inet6"]) as "inet" | "inet6";
    return { fwmark, ...(family === "inet6" ? { family } : {}), scheduler: "wlc", flags: [], realServers: [] };
  }
  if (s.has("family")) w.err(s.get("family"), `${path}.family`, "only a fwmark service has one (an address says it)");
  const protocol = w.str(s.get("protocol"), `${path}.protocol`, "tcp", ["tcp", "udp"]) as "tcp" | "udp";
  const issues = w.issues.length;
  const addr = w.addr(s.get("addr"), `${path}.addr`);
  const vipWhy = w.issues.length === issues ? nonUnicast(addr) : undefined; // not the placeholder of a bad one
  if (vipWhy) w.err(s.get("addr"), `${path}.addr`, `${vipWhy}: a virtual service needs a unicast address`);
  if (!s.has("port")) w.err(sn, path, "port is required");
  // port 0: every port of the address (packet mode; socket mode refuses it when it starts)
  const port = w.num(s.get("port"), `${path}.port`, 0, 65535, 1);
  return { protocol, addr, port, scheduler: "wlc", flags: [], realServers: [] };
}

function parseService(w: Walker, sn: YNode, i: number, ctx: ServicesContext): VirtualService {
  const path = `services[${i}]`;
  const s = w.entries(sn, path, SERVICE_KEYS);
  const svc = parseServiceIdentity(w, sn, s, path);
  const v6 = svc.fwmark ? svc.family === "inet6" : svc.addr!.includes(":");
  svc.scheduler = w.str(s.get("scheduler"), `${path}.scheduler`, "wlc", [...SCHEDULERS]) ?? "wlc";
  svc.flags = w
    .list(s.get("flags"), `${path}.flags`)
    .map((n, j) => w.str(n, `${path}.flags[${j}]`, "", ["ops", ...Object.keys(SCHED_FLAG_NAMES)]) ?? "")
    .filter(Boolean);
  if (s.has("persistent")) svc.persistent = w.num(s.get("persistent"), `${path}.persistent`, 1, 2 ** 31 / 1000, 300);
  if (svc.port === 0 && !s.has("persistent"))
    w.err(s.get("port"), `${path}.port`, "port 0 (all ports) needs persistence (persistent: SECONDS), as in IPVS");
  if (s.has("netmask")) {
    const nm = w.str(s.get("netmask"), `${path}.netmask`);
    if (nm !== undefined) {
      const ok = v6 ? /^\d+$/.test(nm) && Number(nm) >= 1 && Number(nm) <= 128 : /^\d+\.\d+\.\d+\.\d+$/.test(nm);
      if (!ok)
        w.err(
          s.get("netmask"),
          `${path}.netmask`,
          v6 ? "an IPv6 netmask is a prefix length 1..128" : "an IPv4 netmask is dotted (255.255.255.0)",
        );
      svc.netmask = nm;
    }
  }
  if (s.has("connectTimeout"))
    svc.connectTimeout = w.num(s.get("connectTimeout"), `${path}.connectTimeout`, 0.01, 600, 3, false);
  if (s.has("idleTimeout"))
    svc.idleTimeout = w.num(s.get("idleTimeout"), `${path}.idleTimeout`, 0.1, 86400 * 7, 900, false);
  const key = serviceKey(svc);
  if (ctx.seen.has(key)) w.err(sn, path, `duplicate service ${key} (also ${ctx.seen.get(key)})`);
  ctx.seen.set(key, path);
  const svcHealth = s.has("health") ? parseHealth(w, s.get("health")!, `${path}.health`) : undefined;
  const rsSeen = new Set<string>();
  w.list(s.get("realServers"), `${path}.realServers`).forEach((rn, j) =>
    svc.realServers.push(parseRealServer(w, rn, `${path}.realServers[${j}]`, svc, svcHealth, rsSeen, ctx)),
  );
  return svc;
}

// One real server of svc; rsSeen: the service's real servers so far (duplicates).
function parseRealServer(
  w: Walker,
  rn: YNode,
  rp: string,
  svc: VirtualService,
  svcHealth: HealthSpec | undefined,
  rsSeen: Set<string>,
  ctx: ServicesContext,
): RealServer {
  // a fwmark service's real server may keep the packet's port (0, as IPVS allows)
  const v6 = svc.fwmark ? svc.family === "inet6" : svc.addr!.includes(":"),
    port = svc.port ?? 0;
  const r = w.entries(rn, rp, RS_KEYS);
  const rIssues = w.issues.length;
  const raddr = w.addr(r.get("addr"), `${rp}.addr`);
  const rsWhy = w.issues.length === rIssues ? nonUnicast(raddr) : undefined;
  if (rsWhy) w.err(r.get("addr"), `${rp}.addr`, rsWhy);
  ctx.rsNodes.set(rp, rn);
  if (raddr.includes(":") !== v6)
    w.err(
      r.get("addr"),
      `${rp}.addr`,
      "must be the same address family as the service (socket mode proxies within a family)",
    );
  const rs: RealServer = {
    addr: raddr,
    port: w.num(r.get("port"), `${rp}.port`, 0, 65535, port),
    weight: w.num(r.get("weight"), `${rp}.weight`, 0, 65535, 1),
    fwd: parseForward(w, r.get("forward"), `${rp}.forward`, ctx.forward),
    upperThreshold: w.num(r.get("upperThreshold"), `${rp}.upperThreshold`, 0, 2 ** 31, 0),
    lowerThreshold: w.num(r.get("lowerThreshold"), `${rp}.lowerThreshold`, 0, 2 ** 31, 0),
  };
  if (rs.lowerThreshold > rs.upperThreshold && rs.upperThreshold)
    w.err(rn, rp, "lowerThreshold is higher than upperThreshold");
  const rk = realServerKey(rs);
  if (rsSeen.has(rk)) w.err(rn, rp, `duplicate real server ${rk}`);
  rsSeen.add(rk);
  const h = r.has("health") ? parseHealth(w, r.get("health")!, `${rp}.health`, svcHealth) : svcHealth;
  if (h) ctx.health.set(healthKey(svc, rs), h);
  return rs;
}

// A real server's `forward`: "masq" is ipvsadm's -m, which proxy.forward turns into full-NAT or masq;
// "fullnat" is full-NAT whatever -m means. A masq real server on a proxy whose -m is full-NAT would need a
// third meaning of -m: refused, naming the way to say it.
function parseForward(w: Walker, node: YNode | undefined, path: string, proxyForward: PacketForward) {
  const f = w.str(node, path, "masq", FORWARDS) as PacketForward;
  if (f === "masq" && node !== undefined && proxyForward !== "masq")
    w.err(
      node,
      path,
      "masq on a full-NAT proxy: set proxy.forward: masq (then -m and real servers without forward are masq) " +
        "and forward: fullnat on the real servers that stay full-NAT",
    );
  return f;
}

export function parseConfig(text: string, file = "<config>"): ProxyConfig {
  const lc = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lc, prettyErrors: false, uniqueKeys: true });
  const w = new Walker(lc, doc);
  for (const e of doc.errors) {
    const p = e.linePos?.[0] ?? { line: 1, col: 1 };
    w.issues.push({ path: "", line: p.line, col: p.col, message: e.message.split("\n")[0] });
  }
  if (w.issues.length) throw new ConfigError(w.issues, file);
  const root = (doc.contents ?? null) as YNode;
  if (!root || (isScalar(root) && root.value === null))
    return { state: { services: [] }, health: new Map(), options: { ...DEFAULT_OPTIONS }, file };
  const top = w.entries(root, "", TOP_KEYS);
  const pn = top.get("proxy");
  const options = parseOptions(w, pn);
  const timeouts = parseTimeouts(w, top.get("timeouts"));
  const ctx: ServicesContext = {
    health: new Map(),
    seen: new Map(),
    rsNodes: new Map(),
    forward: options.packet.forward,
  };
  const services = w.list(top.get("services"), "services").map((sn, i) => parseService(w, sn, i, ctx));
  const { health, rsNodes } = ctx;
  for (const l of loopProblems(services)) w.err(rsNodes.get(l.path), l.path, l.message);
  if (options.mode === "packet") checkPacketMode(w, options, services, pn);
  const daemons = parseDaemons(w, top.get("daemons"));
  if (w.issues.length) throw new ConfigError(w.issues, file);
  return {
    state: { services, ...(timeouts ? { timeouts } : {}) },
    health,
    options,
    file,
    ...(daemons ? { daemons } : {}),
  };
}

// Packet mode needs interfaces to receive on and a full-NAT local address for each family it serves.
// (Run from the command line, --interface and --local-address may supply them; cli.ts checks again.)
export function packetModeProblems(o: ProxyOptions, services: VirtualService[]): string[] {
  const out: string[] = [];
  if (o.workers > MAX_PACKET_THREADS)
    out.push(`proxy.workers (--workers): packet mode runs 1..${MAX_PACKET_THREADS} I/O threads, not ${o.workers}`);
  // fwmark services: one netfilter queue per I/O thread, proxy.fwmarkQueue and the next workers - 1
  if (o.workers > 1 && services.some((s) => s.fwmark) && o.packet.fwmarkQueue + o.workers - 1 > 65535)
    out.push(
      `proxy.fwmarkQueue ${o.packet.fwmarkQueue} with proxy.workers (--workers) ${o.workers}: the fwmark services ` +
        `need one netfilter queue per I/O thread, ${o.packet.fwmarkQueue}..${o.packet.fwmarkQueue + o.workers - 1}, ` +
        `past 65535; choose a proxy.fwmarkQueue of at most ${65536 - o.workers}`,
    );
  if (!o.packet.interfaces.length)
    out.push("packet mode needs interfaces to receive on (proxy.interfaces or --interface)");
  for (const v6 of [false, true]) {
    const fam = v6 ? "IPv6" : "IPv4";
    const ofFamily = services.filter((s) => (s.addr ?? "").includes(":") === v6);
    if (!ofFamily.length || o.packet.localAddresses.some((a) => a.includes(":") === v6)) continue;
    // full-NAT needs a local address of the family; masq does not
    if (o.packet.forward === "fullnat")
      out.push(
        `packet mode needs an ${fam} full-NAT local address (proxy.localAddresses or --local-address) for its ` +
          `${fam} services, or proxy.forward: masq (the kernel's NAT: the real servers route back through wasmvs)`,
      );
    else
      services.forEach((s, i) =>
        s.realServers.forEach((r, j) => {
          if (r.fwd === "fullnat" && ofFamily.includes(s))
            out.push(
              `services[${i}].realServers[${j}].forward: fullnat needs an ${fam} local address ` +
                "(proxy.localAddresses or --local-address)",
            );
        }),
      );
  }
  for (const a of o.packet.localAddresses)
    if (services.some((s) => s.addr === a))
      out.push(`full-NAT local address ${a} is also a virtual service address; it must be dedicated`);
  return out;
}

// proxy.syncDaemons: [{state: master|backup, mcastInterface, syncid?, maxlen?, mcastGroup?, mcastPort?, mcastTtl?}],
// ipvsadm --start-daemon's options; one master and one backup at most, as the kernel runs them
const SYNC_KEYS = ["state", "mcastInterface", "syncid", "maxlen", "mcastGroup", "mcastPort", "mcastTtl"];
function parseSyncDaemons(w: Walker, node: YNode | undefined): SyncDaemonOptions[] {
  const out: SyncDaemonOptions[] = [];
  w.list(node, "proxy.syncDaemons").forEach((n, i) => {
    const at = `proxy.syncDaemons[${i}]`;
    const e = w.entries(n, at, SYNC_KEYS);
    const state = w.str(e.get("state"), `${at}.state`, undefined, ["master", "backup"]) as "master" | "backup";
    if (!e.has("state")) w.err(n, `${at}.state`, "required: master or backup");
    const ifn = w.str(e.get("mcastInterface"), `${at}.mcastInterface`) ?? "";
    if (!/^[A-Za-z0-9_.@-]{1,15}$/.test(ifn))
      w.err(e.get("mcastInterface") ?? n, `${at}.mcastInterface`, "not an interface name");
    const group = e.get("mcastGroup") ? w.addr(e.get("mcastGroup"), `${at}.mcastGroup`) : SYNC_DEFAULTS.group;
    if (group && !isMulticast(group)) w.err(e.get("mcastGroup"), `${at}.mcastGroup`, "not a multicast address");
    if (out.some((d) => d.state === state)) w.err(n, at, `a second ${state} daemon (one of each at most)`);
    out.push({
      state,
      mcastInterface: ifn,
      syncid: w.num(e.get("syncid"), `${at}.syncid`, 0, 255, SYNC_DEFAULTS.syncid),
      maxlen: w.num(e.get("maxlen"), `${at}.maxlen`, 0, 65507, SYNC_DEFAULTS.maxlen),
      group,
      port: w.num(e.get("mcastPort"), `${at}.mcastPort`, 1, 65535, SYNC_DEFAULTS.port),
      ttl: w.num(e.get("mcastTtl"), `${at}.mcastTtl`, 1, 255, SYNC_DEFAULTS.ttl),
    });
  });
  return out;
}

/** Whether an address is multicast (224.0.0.0/4 or ff00::/8): the kernel daemon's check, shared. */
export const isMulticast = (a: string): boolean => multicastFamily(a) !== undefined;

function checkPacketMode(w: Walker, o: ProxyOptions, services: VirtualService[], node: YNode | undefined): void {
  // only what a file must say itself: interfaces/addresses may still come from the command line
  for (const m of packetModeProblems(o, services)) if (!/needs/.test(m)) w.err(node, "proxy", m);
}

/** Why a listen address (proxy.metrics, --metrics) is not HOST:PORT with a port 1..65535, or undefined. */
export function hostPortProblem(v: string): string | undefined {
  const m = /^(?:\[([^\]]*)\]|([^:\s[\]]*)):([^:]*)$/.exec(v);
  if (!m) return `'${v.slice(0, 64)}' is not HOST:PORT (an IPv6 host in brackets: [::1]:9477)`;
  const host = m[1] ?? m[2];
  if (
    m[1] !== undefined
      ? isIP(host) !== 6
      : !(
          isIP(host) === 4 ||
          /^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*$/.test(host)
        )
  )
    return `'${host.slice(0, 64)}' is not an IPv4 address, a bracketed IPv6 address or a host name`;
  if (!/^\d{1,5}$/.test(m[3]) || Number(m[3]) < 1 || Number(m[3]) > 65535)
    return `port '${m[3].slice(0, 16)}' is not 1..65535`;
  return undefined;
}

/** Why a control socket path (proxy.control, --control) cannot be bound, or undefined. */
export function controlPathProblem(v: string): string | undefined {
  if (!v) return "the path is empty (none turns the control socket off)";
  if (v.includes("\0")) return "the path contains a NUL character";
  if (Buffer.byteLength(v) > 107)
    return `the path is ${Buffer.byteLength(v)} bytes; a unix socket path has at most 107`;
  return undefined;
}

export function loadConfig(file: string): ProxyConfig {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (e) {
    throw unreadable(file, e);
  }
  return parseConfig(text, file);
}

/** The error for a configuration file that cannot be read, at its line 1. */
export function unreadable(file: string, e: unknown): ConfigError {
  return new ConfigError([{ path: "", line: 1, col: 1, message: `cannot read: ${(e as Error).message}` }], file);
}

// daemons:
//   master: { mcastInterface: eth1, syncid: 10 }      # ipvsadm --start-daemon master's options, by name
//   backup: { mcastInterface: eth1, syncid: 10, mcastGroup: 239.1.1.1, mcastPort: 8848, mcastTtl: 1, syncMaxlen: 1472 }
//   stopOnExit: false
const DAEMON_KEYS = ["mcastInterface", "syncid", "syncMaxlen", "mcastGroup", "mcastPort", "mcastTtl"];
function parseDaemons(w: Walker, node: YNode | undefined): DaemonsConfig | undefined {
  if (node === undefined) return undefined;
  const top = w.entries(node, "daemons", ["master", "backup", "stopOnExit"]);
  const out: DaemonsConfig = { daemons: [], stopOnExit: false };
  const stop = top.get("stopOnExit");
  if (stop !== undefined) {
    const v = isScalar(stop) ? stop.value : undefined;
    if (typeof v === "boolean") out.stopOnExit = v;
    else w.err(stop, "daemons.stopOnExit", "must be true or false");
  }
  for (const state of ["master", "backup"] as const) {
    const dn = top.get(state);
    if (dn === undefined) continue;
    const path = `daemons.${state}`;
    const f = w.entries(dn, path, DAEMON_KEYS);
    if (!isMap(dn)) continue;
    const ifnNode = f.get("mcastInterface");
    const mcastIfn = w.str(ifnNode, `${path}.mcastInterface`) ?? "";
    const ifnWhy =
      ifnNode === undefined ? "is required (the interface the sync messages use)" : ifnameProblem(mcastIfn);
    if (ifnWhy && (ifnNode === undefined || isScalar(ifnNode))) w.err(ifnNode ?? dn, `${path}.mcastInterface`, ifnWhy);
    const d: SyncDaemon = { state, mcastIfn, syncid: w.num(f.get("syncid"), `${path}.syncid`, 0, 255, 0) };
    if (f.has("syncMaxlen")) d.syncMaxlen = w.num(f.get("syncMaxlen"), `${path}.syncMaxlen`, 1, SYNC_MAXLEN_MAX, 1);
    if (f.has("mcastPort")) d.mcastPort = w.num(f.get("mcastPort"), `${path}.mcastPort`, 1, 65535, 1);
    if (f.has("mcastTtl")) d.mcastTtl = w.num(f.get("mcastTtl"), `${path}.mcastTtl`, 1, 255, 1);
    if (f.has("mcastGroup")) {
      const g = w.str(f.get("mcastGroup"), `${path}.mcastGroup`);
      if (g !== undefined && !multicastFamily(g))
        w.err(
          f.get("mcastGroup"),
          `${path}.mcastGroup`,
          `'${g.slice(0, 64)}' is not a multicast group (224.0.0.0/4, ff00::/8)`,
        );
      else if (g !== undefined) d.mcastGroup = g;
    }
    out.daemons.push(d);
  }
  return out;
}
