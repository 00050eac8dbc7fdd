// Validation of the desired state before anything changes: every problem at once, each naming the field
// (services[2].realServers[0].weight) and saying what is wrong and what is allowed.
import type { DesiredState, RealServer, VirtualService } from "./types.ts";
import { realServerKey, serviceKey } from "./types.ts";
import { AF_INET6, canonicalAddr, inetAton, isContiguousMask, parseLiteral } from "./inet.ts";
import { SCHEDULERS, SCHED_FLAG_OWNER } from "./schedulers.ts";

export interface Problem {
  path: string;
  message: string;
  /** the kernel refuses this itself (so a CLI may leave it to the target, for ipvsadm's own message) */
  kernel?: boolean;
}

const PERSISTENCE_ENGINES = ["sip"];
// each flag ipvsadm -b takes, and the scheduler it needs (none for flag-N and ops)
const SCHED_FLAGS: Record<string, string | undefined> = { ...SCHED_FLAG_OWNER, ops: undefined };
const FWD = ["masq", "route", "tunnel", "local", "bypass", "fullnat"];
const TUN_TYPES = ["ipip", "gue", "gre"];
const TUN_FLAGS = ["nocsum", "csum", "remcsum"];
const MAX_TIMEOUT = 86400 * 31;

const isInt = (v: unknown): v is number => typeof v === "number" && Number.isInteger(v);

/** Why an address cannot be a real server (the kernel refuses it, "address not unicast"), or undefined.
 * Checked in the kernel (6.1, ../shared/ipvs-vm): 0.0.0.0, ::, 224.0.0.5, ff02::1, 255.255.255.255 and
 * fe80::1 (link-local, not a local address there) are refused as destinations; any service address is taken. */
export function nonUnicast(addr: string, linkLocal = true): string | undefined {
  const a = parseLiteral(addr);
  if (!a) return undefined;
  const b = a.bytes;
  if (a.af === AF_INET6 ? b.every((x) => x === 0) : b[0] === 0 && b[1] === 0 && b[2] === 0 && b[3] === 0)
    return `'${addr}' is the unspecified address`;
  if (a.af === AF_INET6 ? b[0] === 0xff : b[0] >= 224 && b[0] < 240)
    return `'${addr}' is a multicast address (the kernel refuses it: "address not unicast")`;
  if (a.af !== AF_INET6 && b[0] === 255 && b[1] === 255 && b[2] === 255 && b[3] === 255)
    return `'${addr}' is the broadcast address`;
  if (linkLocal && a.af === AF_INET6 && b[0] === 0xfe && (b[1] & 0xc0) === 0x80)
    return `'${addr}' is a link-local address (the kernel refuses it unless it is one of its own)`;
  return undefined;
}

function checkAddr(p: Problem[], path: string, addr: unknown, dest = false): number | undefined {
  if (typeof addr !== "string" || !addr) {
    p.push({ path, message: "missing address" });
    return undefined;
  }
  const a = parseLiteral(addr);
  if (!a) {
    p.push({ path, message: `'${addr.slice(0, 64)}' is not an IPv4 or IPv6 address` });
    return undefined;
  }
  if (!dest) return a.af; // the kernel takes any service address (even multicast or unspecified)
  const why = nonUnicast(addr, false); // a link-local one is the kernel's to judge: it takes its own
  if (why) p.push({ path, message: why, kernel: true });
  return a.af;
}

function checkPort(p: Problem[], path: string, port: unknown): void {
  if (!isInt(port) || port < 0 || port > 65535)
    p.push({ path, message: `port ${JSON.stringify(port)} must be an integer 0..65535` });
}

/** Problems with one real server of service `s` (path prefix e.g. "services[0].realServers[1]"). */
export function validateRealServer(
  r: RealServer,
  s: Pick<VirtualService, "addr" | "fwmark" | "family" | "port">,
  path = "realServer",
): Problem[] {
  const p: Problem[] = [];
  const af = checkAddr(p, `${path}.addr`, r.addr, true);
  checkPort(p, `${path}.port`, r.port);
  if (!isInt(r.weight) || r.weight < 0 || r.weight > 65535)
    p.push({
      path: `${path}.weight`,
      message: `weight ${JSON.stringify(r.weight)} must be an integer 0..65535 (0 quiesces)`,
    });
  for (const k of ["upperThreshold", "lowerThreshold"] as const) {
    const v = r[k];
    if (!isInt(v) || v < 0 || v > 2147483647)
      p.push({
        path: `${path}.${k}`,
        message: `${k} ${JSON.stringify(v)} must be an integer 0..2147483647 (0 = none)`,
      });
  }
  if (isInt(r.upperThreshold) && isInt(r.lowerThreshold) && r.lowerThreshold > r.upperThreshold)
    p.push({
      path: `${path}.lowerThreshold`,
      message:
        `lower threshold ${r.lowerThreshold} is above the upper threshold ${r.upperThreshold} (-y must ` +
        `be <= -x; the kernel refuses it)`,
      kernel: true,
    });
  if (!FWD.includes(r.fwd))
    p.push({
      path: `${path}.fwd`,
      message: `unknown forwarding method '${r.fwd}' (one of masq, route, tunnel, local)`,
    });
  else if (r.fwd === "bypass" || r.fwd === "fullnat")
    p.push({
      path: `${path}.fwd`,
      message: `forwarding method '${r.fwd}' cannot be set on a real server (masq, route, tunnel or local)`,
    });
  const svcAf = s.fwmark ? (s.family === "inet6" ? AF_INET6 : 2) : s.addr ? parseLiteral(s.addr)?.af : undefined;
  if (af !== undefined && svcAf !== undefined && af !== svcAf && r.fwd !== "tunnel")
    p.push({
      path: `${path}.addr`,
      message: `'${r.addr}' is not of the service's address family; only tunnel (-i) real servers may differ`,
    });
  if (r.fwd === "tunnel") {
    const t = r.tunType ?? "ipip";
    if (!TUN_TYPES.includes(t))
      p.push({ path: `${path}.tunType`, message: `unknown tunnel type '${t}' (one of ipip, gue, gre)` });
    if (t === "gue" && !(isInt(r.tunPort) && r.tunPort >= 1 && r.tunPort <= 65535))
      p.push({ path: `${path}.tunPort`, message: "a gue tunnel needs tunPort 1..65535 (--tun-port)" });
    if (t !== "gue" && r.tunPort !== undefined)
      p.push({ path: `${path}.tunPort`, message: `tunPort applies only to gue tunnels, not ${t}` });
    const fl = r.tunFlags ?? [];
    for (const f of fl)
      if (!TUN_FLAGS.includes(f.replace(/^--tun-/, "")))
        p.push({ path: `${path}.tunFlags`, message: `unknown tunnel flag '${f}' (nocsum, csum, remcsum)` });
    if (fl.length > 1) p.push({ path: `${path}.tunFlags`, message: "at most one of nocsum, csum, remcsum" });
    if (t === "ipip" && fl.length) p.push({ path: `${path}.tunFlags`, message: "ipip tunnels take no checksum flags" });
    if (t === "gre" && fl.some((f) => f.endsWith("remcsum")))
      p.push({ path: `${path}.tunFlags`, message: "gre tunnels do not support remcsum" });
  } else if (r.tunType !== undefined || r.tunPort !== undefined || r.tunFlags?.length)
    p.push({ path: `${path}.tunType`, message: `tunnel options need the tunnel forwarding method (-i), not ${r.fwd}` });
  if (!s.fwmark && (r.fwd === "route" || r.fwd === "tunnel") && isInt(r.port) && isInt(s.port) && r.port !== s.port)
    p.push({
      path: `${path}.port`,
      message: `a ${r.fwd} real server keeps the service's port ${s.port} (ipvsadm forces it); ${r.port} given`,
    });
  return p;
}

/** Problems with one virtual service and its real servers. */
export function validateService(s: VirtualService, path = "service"): Problem[] {
  const p: Problem[] = [];
  let af: number | undefined;
  if (s.fwmark !== undefined) {
    if (!isInt(s.fwmark) || s.fwmark < 1 || s.fwmark > 0xffffffff)
      p.push({
        path: `${path}.fwmark`,
        message: `fwmark ${JSON.stringify(s.fwmark)} must be an integer 1..4294967295`,
      });
    if (s.family !== undefined && s.family !== "inet" && s.family !== "inet6")
      p.push({ path: `${path}.family`, message: `family '${s.family}' must be inet or inet6` });
    if (s.addr !== undefined || s.protocol !== undefined || s.port !== undefined)
      p.push({ path, message: "a fwmark service has no protocol, address or port" });
    af = s.family === "inet6" ? AF_INET6 : 2;
  } else {
    if (s.protocol === undefined || !["tcp", "udp", "sctp"].includes(s.protocol))
      p.push({
        path: `${path}.protocol`,
        message: `protocol ${JSON.stringify(s.protocol)} must be tcp, udp or sctp (or give a fwmark)`,
      });
    af = checkAddr(p, `${path}.addr`, s.addr);
    checkPort(p, `${path}.port`, s.port);
    if (s.port === 0 && s.persistent === undefined)
      p.push({
        path: `${path}.port`,
        message: "port 0 (all ports) needs persistence (-p); ipvsadm: Zero port specified for non-persistent service",
      });
  }
  if (!SCHEDULERS.includes(s.scheduler))
    p.push({
      path: `${path}.scheduler`,
      message: `unknown scheduler '${s.scheduler}' (one of ${SCHEDULERS.join(", ")})`,
      kernel: true,
    });
  const seen = new Set<string>();
  for (const f of s.flags ?? []) {
    if (!Object.hasOwn(SCHED_FLAGS, f)) {
      p.push({ path: `${path}.flags`, message: `unknown flag '${f}' (${Object.keys(SCHED_FLAGS).join(", ")})` });
      continue;
    }
    const need = SCHED_FLAGS[f];
    if (need && need !== s.scheduler)
      p.push({ path: `${path}.flags`, message: `flag '${f}' needs the ${need} scheduler, not ${s.scheduler}` });
    if (seen.has(f)) p.push({ path: `${path}.flags`, message: `flag '${f}' given twice` });
    seen.add(f);
  }
  if ((s.flags ?? []).includes("ops") && !s.fwmark && s.protocol !== "udp")
    p.push({ path: `${path}.flags`, message: "ops (one-packet scheduling, -o) is only for UDP or fwmark services" });
  if (s.persistent !== undefined && (!isInt(s.persistent) || s.persistent < 1 || s.persistent > MAX_TIMEOUT))
    p.push({
      path: `${path}.persistent`,
      message: `persistence timeout ${JSON.stringify(s.persistent)} must be 1..${MAX_TIMEOUT} seconds`,
    });
  if (s.netmask !== undefined) {
    if (af === AF_INET6) {
      const n = Number(s.netmask);
      if (!/^\d+$/.test(s.netmask) || n < 1 || n > 128)
        p.push({ path: `${path}.netmask`, message: `IPv6 netmask '${s.netmask}' must be a prefix length 1..128` });
    } else {
      const v = /^\d+\.\d+\.\d+\.\d+$/.test(s.netmask) ? inetAton(s.netmask) : undefined;
      if (v === undefined)
        p.push({
          path: `${path}.netmask`,
          message:
            `IPv4 netmask '${s.netmask}' must be dotted, e.g. 255.255.255.0 (ipvsadm would read '` +
            `${s.netmask}' as ` +
            `${inetAton(s.netmask) !== undefined ? "the address " + s.netmask : "nothing"})`,
        });
      else if (!isContiguousMask(v))
        p.push({ path: `${path}.netmask`, message: `IPv4 netmask '${s.netmask}' is not contiguous (ones then zeros)` });
    }
  }
  if (s.pe !== undefined && !PERSISTENCE_ENGINES.includes(s.pe))
    p.push({ path: `${path}.pe`, message: `unknown persistence engine '${s.pe}' (sip)`, kernel: true });
  const rs = new Set<string>();
  (s.realServers ?? []).forEach((r, i) => {
    const rp = `${path}.realServers[${i}]`;
    p.push(...validateRealServer(r, s, rp));
    if (typeof r.addr === "string") {
      const k = realServerKey({ addr: parseLiteral(r.addr) ? canonical(r.addr) : r.addr, port: r.port });
      if (rs.has(k)) p.push({ path: rp, message: `duplicate real server ${k} in ${serviceKey(s)}` });
      rs.add(k);
    }
  });
  return p;
}

function canonical(addr: string): string {
  const a = parseLiteral(addr)!;
  return a.af === AF_INET6 ? addr.toLowerCase().replace(/(^|:)0+(?=[0-9a-f])/g, "$1") : addr;
}

/** Every problem in a desired state (empty: valid). */
export function validateDesiredState(d: DesiredState): Problem[] {
  const p: Problem[] = [];
  const keys = new Map<string, number>();
  (d.services ?? []).forEach((s, i) => {
    const path = `services[${i}]`;
    p.push(...validateService(s, path));
    const k = serviceKey({ ...s, addr: s.addr && parseLiteral(s.addr) ? canonical(s.addr) : s.addr });
    const prev = keys.get(k);
    if (prev !== undefined) p.push({ path, message: `duplicate service ${k} (also services[${prev}])` });
    else keys.set(k, i);
  });
  if (d.timeouts) {
    for (const k of ["tcp", "tcpfin", "udp"] as const) {
      const v = d.timeouts[k];
      if (!isInt(v) || v < 0 || v > MAX_TIMEOUT)
        p.push({
          path: `timeouts.${k}`,
          message: `timeout ${JSON.stringify(v)} must be 0..${MAX_TIMEOUT} seconds (0 keeps the current value)`,
        });
    }
  }
  return p;
}

export function formatProblems(ps: Problem[]): string {
  return ps.map((x) => `${x.path}: ${x.message}`).join("\n");
}

// ---- request shapes (the proxy's control socket takes JSON from anyone allowed to connect) ----------
type FieldType = "string" | "int" | "strings" | "list";
const SERVICE_FIELDS: Record<string, FieldType> = Object.assign(Object.create(null), {
  protocol: "string",
  addr: "string",
  port: "int",
  fwmark: "int",
  family: "string",
  scheduler: "string",
  flags: "strings",
  persistent: "int",
  netmask: "string",
  pe: "string",
  realServers: "list",
});
const SERVER_FIELDS: Record<string, FieldType> = Object.assign(Object.create(null), {
  addr: "string",
  port: "int",
  weight: "int",
  fwd: "string",
  upperThreshold: "int",
  lowerThreshold: "int",
  tunType: "string",
  tunPort: "int",
  tunFlags: "strings",
});
const TIMEOUT_FIELDS: Record<string, FieldType> = Object.assign(Object.create(null), {
  tcp: "int",
  tcpfin: "int",
  udp: "int",
});
const MAX_STRING = 256;

const isRecord = (v: unknown): v is Record<string, unknown> =>
  typeof v === "object" && v !== null && !Array.isArray(v) && Object.getPrototypeOf(v) === Object.prototype;

/** Problems with a value's shape: a plain object with only the known fields, each of its type. */
function shapeProblems(v: unknown, path: string, fields: Record<string, FieldType>, required: string[]): Problem[] {
  if (!isRecord(v)) return [{ path, message: `must be an object, not ${describe(v)}` }];
  const p: Problem[] = [];
  for (const k in v) {
    if (!Object.hasOwn(v, k)) continue;
    const t = fields[k];
    const x = v[k];
    if (
      t === "string"
        ? typeof x === "string" && x.length <= MAX_STRING
        : t === "int" && isInt(x) && Math.abs(x) <= 2 ** 53
    )
      continue; // the usual case, without making the field's path (a restore checks 100k commands)
    const fp = `${path}.${k.slice(0, 32)}`;
    if (t === undefined) p.push({ path: fp, message: `unknown field (known: ${Object.keys(fields).join(", ")})` });
    else if (t === "string" && !(typeof x === "string" && x.length <= MAX_STRING))
      p.push({ path: fp, message: `must be a string of at most ${MAX_STRING} characters, not ${describe(x)}` });
    else if (t === "int" && !(isInt(x) && Math.abs(x) <= 2 ** 53))
      p.push({ path: fp, message: `must be an integer, not ${describe(x)}` });
    else if (
      t === "strings" &&
      !(Array.isArray(x) && x.length <= 16 && x.every((y) => typeof y === "string" && y.length <= MAX_STRING))
    )
      p.push({ path: fp, message: `must be a list of at most 16 strings, not ${describe(x)}` });
    else if (t === "list" && !Array.isArray(x)) p.push({ path: fp, message: `must be a list, not ${describe(x)}` });
  }
  for (const k of required) if (v[k] === undefined) p.push({ path: `${path}.${k}`, message: "missing" });
  return p;
}

export function describe(v: unknown): string {
  if (v === null) return "null";
  if (Array.isArray(v)) return "a list";
  if (typeof v === "string") return `the string ${JSON.stringify(v.length > 32 ? v.slice(0, 32) + "..." : v)}`;
  if (typeof v === "object") return "an object";
  return `${typeof v} ${String(v).slice(0, 32)}`;
}

/** A service's identity only (what delete and zero need): its shape, protocol, address and port or fwmark. */
export function serviceIdentityProblems(v: unknown, path = "service"): Problem[] {
  const p = shapeProblems(v, path, SERVICE_FIELDS, []);
  if (p.length) return p;
  const s = v as unknown as VirtualService;
  if (s.fwmark !== undefined) {
    if (!isInt(s.fwmark) || s.fwmark < 1 || s.fwmark > 0xffffffff)
      p.push({ path: `${path}.fwmark`, message: `fwmark ${s.fwmark} must be 1..4294967295` });
    return p;
  }
  if (s.protocol === undefined || !["tcp", "udp", "sctp"].includes(s.protocol))
    p.push({ path: `${path}.protocol`, message: `protocol ${describe(s.protocol)} must be tcp, udp or sctp` });
  checkAddr(p, `${path}.addr`, s.addr);
  checkPort(p, `${path}.port`, s.port);
  return p;
}

/** A whole service from outside (shape first, then every rule validateService applies). */
export function serviceRequestProblems(v: unknown, path = "service"): Problem[] {
  const p = shapeProblems(v, path, SERVICE_FIELDS, ["scheduler"]);
  const s = v as VirtualService;
  if (!p.length && s.realServers)
    s.realServers.forEach((r, i) =>
      p.push(...shapeProblems(r, `${path}.realServers[${i}]`, SERVER_FIELDS, ["addr", "port", "weight", "fwd"])),
    );
  if (p.length) return p;
  return validateService({ ...s, flags: s.flags ?? [], realServers: s.realServers ?? [] }, path);
}

/** A real server from outside, for service `s` (whose identity is already checked). */
export function serverRequestProblems(
  v: unknown,
  s: VirtualService,
  path = "realServer",
  identityOnly = false,
): Problem[] {
  const p = shapeProblems(v, path, SERVER_FIELDS, identityOnly ? ["addr", "port"] : ["addr", "port", "weight", "fwd"]);
  if (p.length) return p;
  const r = v as unknown as RealServer;
  if (identityOnly) {
    checkAddr(p, `${path}.addr`, r.addr);
    checkPort(p, `${path}.port`, r.port);
    return p;
  }
  return validateRealServer(
    { ...r, upperThreshold: r.upperThreshold ?? 0, lowerThreshold: r.lowerThreshold ?? 0 },
    s,
    path,
  );
}

export function timeoutsRequestProblems(v: unknown, path = "timeouts"): Problem[] {
  const p = shapeProblems(v, path, TIMEOUT_FIELDS, ["tcp", "tcpfin", "udp"]);
  if (p.length) return p;
  for (const k of ["tcp", "tcpfin", "udp"] as const) {
    const x = (v as Record<string, number>)[k];
    if (x < 0 || x > MAX_TIMEOUT)
      p.push({
        path: `${path}.${k}`,
        message: `timeout ${x} must be 0..${MAX_TIMEOUT} seconds (0 keeps the current value)`,
      });
  }
  return p;
}

/** Real servers that would send connections back into the proxy: a real server equal to its own virtual
 * service (protocol, address, port), or a chain of services whose real servers lead back to the first. */
export function loopProblems(services: VirtualService[], path = (i: number) => `services[${i}]`): Problem[] {
  const key = (proto: string | undefined, addr: string, port: number) =>
    `${proto ?? "tcp"} ${canonicalAddr(addr)} ${port}`;
  const index = new Map<string, number>();
  services.forEach((s, i) => {
    if (s.addr && s.port) index.set(key(s.protocol, s.addr, s.port), i);
  });
  const next = (i: number): { j: number; r: number }[] => {
    const s = services[i];
    const out: { j: number; r: number }[] = [];
    (s.realServers ?? []).forEach((r, ri) => {
      const j = typeof r.addr === "string" ? index.get(key(s.protocol, r.addr, r.port || s.port!)) : undefined;
      if (j !== undefined) out.push({ j, r: ri });
    });
    return out;
  };
  const p: Problem[] = [];
  const state = new Map<number, 1 | 2>(); // 1: on the current path, 2: done
  for (const root of index.values()) {
    if (state.has(root)) continue;
    // depth first without recursion (a chain may be as long as the table)
    const stack: { i: number; edges: { j: number; r: number }[]; at: number }[] = [
      { i: root, edges: next(root), at: 0 },
    ];
    state.set(root, 1);
    while (stack.length) {
      const top = stack[stack.length - 1];
      if (top.at >= top.edges.length) {
        state.set(top.i, 2);
        stack.pop();
        continue;
      }
      const { j, r } = top.edges[top.at++];
      const rs = services[top.i].realServers[r];
      const here = `${path(top.i)}.realServers[${r}]`;
      if (state.get(j) === 1) {
        p.push({
          path: here,
          message:
            j === top.i
              ? `real server ${rs.addr}:${rs.port || services[j].port} is its own virtual service: connections ` +
                `would loop through the proxy`
              : `real server ${rs.addr}:${rs.port || services[j].port} is the virtual service ` +
                `${serviceKey(services[j])}, whose real servers lead back here: connections would loop through ` +
                `the proxy`,
        });
      } else if (!state.has(j)) {
        state.set(j, 1);
        stack.push({ i: j, edges: next(j), at: 0 });
      }
    }
  }
  return p;
}
