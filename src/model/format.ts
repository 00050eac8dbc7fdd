// ipvsadm 1.31's printing, byte for byte, from the shapes every IpvsTarget reports: `-L`/`-Ln` and its
// variants (--stats, --rate, --exact, --thresholds, --persistent-conn, --tun-info, --nosort), `-L -t svc`,
// `-S`/`-Sn`, `-Lnc`, `-L --timeout`. Checked against the real ipvsadm on Linux 6.1
// (test/fixtures/ipvsadm/, test/ipvsadm-format.test.ts). Pure: no I/O; names come from a NameResolver.
import type { ConnectionEntry, RealServerStatus, ServiceStatus, Stats, TargetInfo } from "./target.ts";
import type { ForwardingMethod, IpvsTimeouts, RealServer, VirtualService } from "./types.ts";
import {
  AF_INET,
  AF_INET6,
  IPPROTO_SCTP,
  IPPROTO_TCP,
  IPPROTO_UDP,
  afOfLiteral,
  inetAton,
  ntoa4,
  ntop6,
  parseLiteral,
  protoNumber,
  word,
} from "./inet.ts";
import { type NameResolver, numericResolver } from "./names.ts";
import { SCHED_FLAG_BITS, schedFlag, schedFlagName, schedulerInfo } from "./schedulers.ts";

export type ListFormat = "default" | "stats" | "rate" | "thresholds" | "persistent-conn" | "tun-info";

interface FormatOptions {
  numeric?: boolean; // -n
  format?: ListFormat; // --stats, --rate, --thresholds, --persistent-conn, --tun-info
  exact?: boolean; // --exact
  nosort?: boolean; // --nosort
  resolver?: NameResolver; // for names without -n (default: none, numbers)
}

// ---- service flags ----------------------------------------------------------------------------------
export const SVC_F_PERSISTENT = 0x1;
export const SVC_F_ONEPACKET = 0x4;
export const SVC_F_SCHED1 = 0x8;
export const SVC_F_SCHED2 = 0x10;
export const SVC_F_SCHED3 = 0x20;

/** The kernel's flag bits for a service's flag names (persistence from `persistent`). */
export function serviceFlagBits(s: Pick<VirtualService, "flags" | "persistent">): number {
  let f = s.persistent !== undefined ? SVC_F_PERSISTENT : 0;
  for (const n of s.flags ?? []) f |= n === "ops" ? SVC_F_ONEPACKET : (schedFlag(n)?.bit ?? 0);
  return f;
}

/** ipvsadm's print_sched_flags: names depend on the scheduler; "" when none is set. */
export function schedFlagsText(sched: string, bits: number): string {
  // a scheduler with names of its own prints only those (sh: no flag-3), as ipvsadm does
  const own = schedulerInfo(sched)?.flags.length ?? 0;
  const names = SCHED_FLAG_BITS.map((_, i) => schedFlagName(sched, i)).slice(0, own || SCHED_FLAG_BITS.length);
  return names.filter((_, i) => bits & SCHED_FLAG_BITS[i]).join(",");
}

// ---- printf helpers ---------------------------------------------------------------------------------
const left = (s: string, w: number) => (s.length >= w ? s : s + " ".repeat(w - s.length));
const right = (s: string, w: number) => (s.length >= w ? s : " ".repeat(w - s.length) + s);
const u32 = (n: number) => String(n >>> 0);
const i32 = (n: number) => String(n | 0);

/** print_largenum: 9 columns, K/M/G/T above 1e8 (truncating), or the exact value with --exact. */
export function largenum(v: bigint, exact = false): string {
  if (exact) {
    const s = v.toString();
    return right(s, s.length <= 8 ? 9 : s.length + 1);
  }
  if (v < 100000000n) return right(v.toString(), 9);
  if (v < 1000000000n) return right((v / 1000n).toString(), 8) + "K";
  if (v < 100000000000n) return right((v / 1000000n).toString(), 8) + "M";
  if (v < 100000000000000n) return right((v / 1000000000n).toString(), 8) + "G";
  return right((v / 1000000000000n).toString(), 8) + "T";
}

// ---- names ------------------------------------------------------------------------------------------
function protoOf(s: Pick<VirtualService, "protocol" | "fwmark">): number {
  return s.fwmark ? 0 : protoNumber(s.protocol ?? "tcp");
}

function serviceAf(s: Pick<VirtualService, "addr" | "fwmark" | "family">): number {
  if (s.fwmark) return s.family === "inet6" ? AF_INET6 : AF_INET;
  return afOfLiteral(s.addr);
}

function ntop(af: number, addr: string): string {
  const p = parseLiteral(addr);
  if (!p) return addr;
  return af === AF_INET6 || p.af === AF_INET6 ? ntop6(p.bytes) : ntoa4(word(p.bytes, 0));
}

/** addrport_to_anyname */
export function addrPortName(
  af: number,
  addr: string,
  port: number,
  proto: number,
  numeric: boolean,
  resolver: NameResolver = numericResolver,
): string {
  const v6 = af !== AF_INET;
  let a: string, p: string;
  if (numeric) {
    a = ntop(af, addr);
    p = String(port);
  } else {
    a = resolver.addrToHost(af, ntop(af, addr)) ?? ntop(af, addr);
    p = resolver.portToService(port, proto) ?? String(port);
  }
  return (v6 ? `[${a}]` : a) + ":" + p;
}

const PROTO_NAME: Record<number, string> = { [IPPROTO_TCP]: "TCP", [IPPROTO_UDP]: "UDP", [IPPROTO_SCTP]: "SCTP" };

// The kernel's name for a connection's protocol in /proc/net/ip_vs_conn, which `ipvsadm -Lnc` prints
// (ip_vs_proto_name): a fwmark template's 0 is "IP"; a synced template may carry any protocol (the backup
// checks the protocol of connections only), shown as IP_<number>. Recorded in Linux 6.1 with protocols 0, 1,
// 4, 47, 58 and 99 (test/fixtures/kernel/sync-template-proto.txt): 4 and 47 are IP_4 and IP_47 there.
const CONN_PROTO_NAME: Record<number, string> = { 0: "IP", 1: "ICMP", 6: "TCP", 17: "UDP", 58: "ICMPv6", 132: "SCTP" };
export const connProtoName = (proto: number): string => CONN_PROTO_NAME[proto] ?? `IP_${proto}`;
const PROTO_OPT: Record<number, string> = {
  [IPPROTO_TCP]: "-t",
  [IPPROTO_UDP]: "-u",
  [IPPROTO_SCTP]: "--sctp-service",
};

/** The service's name as print_service_entry builds it (rule mode: "-t 1.2.3.4:80"; listing: "TCP  1.2.3.4:80"). */
export function serviceName(s: ServiceLike, rule: boolean, numeric: boolean, resolver?: NameResolver): string {
  const af = serviceAf(s);
  if (s.fwmark) {
    const m = i32(s.fwmark); // ipvsadm 1.31 as built by Debian prints the mark signed: 4294967295 -> -1
    if (rule) return af === AF_INET6 ? `-f ${m} -6` : `-f ${m}`;
    return af === AF_INET6 ? `FWM  ${m} IPv6` : `FWM  ${m}`;
  }
  const proto = protoOf(s);
  const vname = addrPortName(af, s.addr ?? "0.0.0.0", s.port ?? 0, proto, numeric, resolver);
  if (rule) return `${PROTO_OPT[proto] ?? "--xxx-service"} ${vname}`;
  const label = `${left(PROTO_NAME[proto] ?? "?", 4)} ${vname}`;
  return af !== AF_INET6 ? label.slice(0, 33) : label;
}

// FullNat: upstream ipvsadm has no such method (it would print "(null)"); wasmvs's packet-mode proxy forwards
// every destination full-NAT, labelled as the full-NAT LVS forks label it, and saved as -m, the switch that
// adds a destination to the proxy.
const FWD_NAME: Partial<Record<ForwardingMethod, string>> = {
  masq: "Masq",
  local: "Local",
  tunnel: "Tunnel",
  route: "Route",
  fullnat: "FullNat",
};
const FWD_SWITCH: Partial<Record<ForwardingMethod, string>> = {
  masq: "-m",
  tunnel: "-i",
  local: "-g",
  route: "-g",
  fullnat: "-m",
};

/** The kernel's tun_flags value from the model's names (nocsum 0, csum 1, remcsum 2). */
function tunFlagsValue(flags: string[] | undefined): number {
  let v = 0;
  for (const f of flags ?? []) {
    const n = f.replace(/^--tun-/, "");
    if (n === "csum") v |= 1;
    else if (n === "remcsum") v |= 2;
  }
  return v;
}
const TUN_FLAG_SHORT = ["-c", "+c", "r+c"];
const TUN_FLAG_OPT = ["--tun-nocsum", "--tun-csum", "--tun-remcsum"];

function tunInfo(r: RealServer): string | undefined {
  if (r.fwd !== "tunnel") return undefined;
  const t = r.tunType ?? "ipip";
  const f = tunFlagsValue(r.tunFlags);
  if (t === "ipip") return "ipip";
  if (t === "gue") return `gue:${r.tunPort ?? 0}:${TUN_FLAG_SHORT[f] ?? "(null)"}`;
  if (t === "gre") return `gre:${TUN_FLAG_SHORT[f] ?? "(null)"}`;
  return undefined;
}

// ---- sorting: glibc's qsort (a top-down merge sort) with ipvsadm's wrapping int comparators ----------
type ServiceLike = Omit<VirtualService, "realServers">;

/** glibc 2.36 msort: the exact sequence of comparisons, so non-transitive comparators order alike. */
export function glibcMergeSort<T>(a: T[], cmp: (x: T, y: T) => number): T[] {
  const b = a.slice();
  const tmp: T[] = new Array(b.length);
  const rec = (lo: number, n: number) => {
    if (n <= 1) return;
    const n1 = n >>> 1,
      n2 = n - n1;
    rec(lo, n1);
    rec(lo + n1, n2);
    let i = lo,
      j = lo + n1,
      k = 0,
      r1 = n1,
      r2 = n2;
    while (r1 > 0 && r2 > 0) {
      if (cmp(b[i], b[j]) <= 0) {
        tmp[k++] = b[i++];
        r1--;
      } else {
        tmp[k++] = b[j++];
        r2--;
      }
    }
    while (r1 > 0) {
      tmp[k++] = b[i++];
      r1--;
    }
    for (let x = 0; x < n - r2; x++) b[lo + x] = tmp[x];
  };
  rec(0, b.length);
  return b;
}

interface AddrKey {
  af: number;
  bytes: Uint8Array;
}
function addrKey(af: number, addr: string | undefined): AddrKey {
  const p = addr ? parseLiteral(addr) : undefined;
  return { af, bytes: p?.bytes ?? new Uint8Array(16) };
}

function cmpAddr(a: AddrKey, b: AddrKey): number {
  let r = 0;
  if (a.af === AF_INET6) {
    for (let i = 0; r === 0 && i < 4; i++) r = (word(a.bytes, i) - word(b.bytes, i)) | 0;
  } else r = (word(a.bytes, 0) - word(b.bytes, 0)) | 0;
  return r;
}

/** ipvs_cmp_services: fwmark, af, protocol, address, port, each as a wrapping int subtraction. */
function cmpServices(s1: ServiceLike, s2: ServiceLike): number {
  let r = ((s1.fwmark ?? 0) - (s2.fwmark ?? 0)) | 0;
  if (r) return r;
  const af1 = serviceAf(s1),
    af2 = serviceAf(s2);
  r = af1 - af2;
  if (r) return r;
  r = protoOf(s1) - protoOf(s2);
  if (r) return r;
  r = cmpAddr(addrKey(af1, s1.fwmark ? undefined : s1.addr), addrKey(af2, s2.fwmark ? undefined : s2.addr));
  if (r) return r;
  return (s1.fwmark ? 0 : (s1.port ?? 0)) - (s2.fwmark ? 0 : (s2.port ?? 0));
}

/** ipvs_cmp_dests: address (the first dest's family decides how many words), then port. */
function cmpDests(d1: Pick<RealServer, "addr" | "port">, d2: Pick<RealServer, "addr" | "port">): number {
  const r = cmpAddr(addrKey(afOfLiteral(d1.addr), d1.addr), addrKey(afOfLiteral(d2.addr), d2.addr));
  if (r) return r;
  return d1.port - d2.port;
}

export function sortServices<T extends ServiceLike>(services: T[]): T[] {
  return glibcMergeSort(services, cmpServices);
}
function sortDests<T extends Pick<RealServer, "addr" | "port">>(dests: T[]): T[] {
  return glibcMergeSort(dests, cmpDests);
}

// ---- listing ----------------------------------------------------------------------------------------
function formatTitle(fmt: ListFormat): string {
  switch (fmt) {
    case "stats":
      return (
        `${left("Prot LocalAddress:Port", 33)} ${right("Conns", 8)} ${right("InPkts", 8)} ` +
        `${right("OutPkts", 8)} ${right("InBytes", 8)} ${right("OutBytes", 8)}\n  -> Re` +
        `moteAddress:Port\n`
      );
    case "rate":
      return (
        `${left("Prot LocalAddress:Port", 33)} ${right("CPS", 8)} ${right("InPPS", 8)} ${right("OutPPS", 8)} ` +
        `${right("InBPS", 8)} ${right("OutBPS", 8)}\n  -> Re` +
        `moteAddress:Port\n`
      );
    case "thresholds":
      return (
        `${left("Prot LocalAddress:Port", 33)} ${left("Uthreshold", 10)} ${left("Lthreshold", 10)} ` +
        `${left("ActiveConn", 10)} ${left("InActConn", 10)}\n  -> Re` +
        `moteAddress:Port\n`
      );
    case "persistent-conn":
      return (
        `${left("Prot LocalAddress:Port", 33)} ${left("Weight", 9)} ${left("PersistConn", 11)} ` +
        `${left("ActiveConn", 10)} ${left("InActConn", 10)}\n  -> Re` +
        `moteAddress:Port\n`
      );
    case "tun-info":
      return (
        "Prot LocalAddress:Port Scheduler Flags\n  -> RemoteAddress:Port           Forward TunnelInfo    " +
        "Weight ActiveConn InActConn\n"
      );
    default:
      return (
        "Prot LocalAddress:Port Scheduler Flags\n  -> RemoteAddress:Port           Forward Weight " +
        "ActiveConn InActConn\n"
      );
  }
}

const ZERO: Stats = {
  conns: 0n,
  inPkts: 0n,
  outPkts: 0n,
  inBytes: 0n,
  outBytes: 0n,
  cps: 0n,
  inPps: 0n,
  outPps: 0n,
  inBps: 0n,
  outBps: 0n,
};

function statsCols(st: Stats, exact: boolean): string {
  return (
    largenum(st.conns, exact) +
    largenum(st.inPkts, exact) +
    largenum(st.outPkts, exact) +
    largenum(st.inBytes, exact) +
    largenum(st.outBytes, exact)
  );
}
function rateCols(st: Stats, exact: boolean): string {
  return (
    largenum(st.cps, exact) +
    largenum(st.inPps, exact) +
    largenum(st.outPps, exact) +
    largenum(st.inBps, exact) +
    largenum(st.outBps, exact)
  );
}

function maskText(s: ServiceLike, af: number): string | undefined {
  if (af === AF_INET) {
    if (s.netmask === undefined) return undefined;
    const v = inetAton(s.netmask); // the model keeps IPv4 masks dotted; a bare number reads as inet_aton does
    if (v === undefined || v === 0xffffffff) return undefined;
    return ntoa4(v);
  }
  if (s.netmask === undefined) return undefined;
  const n = Number(s.netmask);
  return n === 128 ? undefined : String(n);
}

/** One service entry (print_service_entry) in any listing format, or in rule (-S) form. */
function formatServiceEntry(
  svc: ServiceStatus | (ServiceLike & { realServers: RealServer[]; stats?: Stats }),
  opts: FormatOptions & { rule?: boolean } = {},
): string {
  const numeric = !!opts.numeric,
    rule = !!opts.rule,
    exact = !!opts.exact;
  const fmt: ListFormat = opts.format ?? "default";
  const resolver = opts.resolver;
  const af = serviceAf(svc);
  const proto = protoOf(svc);
  const name = serviceName(svc, rule, numeric, resolver);
  const bits = serviceFlagBits(svc);
  const sflags = schedFlagsText(svc.scheduler, bits);
  const st = (svc as ServiceStatus).stats ?? ZERO;
  let out = "";
  if (rule) {
    out += `-A ${name} -s ${svc.scheduler}`;
    if (bits & SVC_F_PERSISTENT) {
      out += ` -p ${u32(svc.persistent ?? 0)}`;
      const m = maskText(svc, af);
      if (m !== undefined) out += ` -M ${m}`;
    }
    if (svc.pe) out += ` --pe ${svc.pe}`;
    if (bits & SVC_F_ONEPACKET) out += " -o";
    if (bits & (SVC_F_SCHED1 | SVC_F_SCHED2 | SVC_F_SCHED3)) out += ` -b ${sflags}`;
  } else if (fmt === "stats") {
    out += left(name, 33) + statsCols(st, exact);
  } else if (fmt === "rate") {
    out += left(name, 33) + rateCols(st, exact);
  } else {
    out += `${name} ${svc.scheduler}`;
    if (bits & (SVC_F_SCHED1 | SVC_F_SCHED2 | SVC_F_SCHED3)) out += ` (${sflags})`;
    if (bits & SVC_F_PERSISTENT) {
      out += ` persistent ${u32(svc.persistent ?? 0)}`;
      const m = maskText(svc, af);
      if (m !== undefined) out += ` mask ${m}`;
      if (svc.pe) out += ` pe ${svc.pe}`;
    }
    if (bits & SVC_F_ONEPACKET) out += " ops";
  }
  out += "\n";

  const dests = opts.nosort ? svc.realServers : sortDests(svc.realServers);
  for (const d of dests as (RealServer & Partial<RealServerStatus>)[]) {
    const daf = afOfLiteral(d.addr);
    let dname = addrPortName(daf, d.addr, d.port, proto, numeric, resolver);
    if (!rule && daf !== AF_INET6) dname = dname.slice(0, 28);
    const w = i32(d.weight);
    const act = u32(d.activeConns ?? 0),
      inact = u32(d.inactConns ?? 0);
    const fwdName = FWD_NAME[d.fwd] ?? "(null)";
    const fwdSwitch = FWD_SWITCH[d.fwd] ?? "(null)";
    if (rule) {
      if (d.fwd === "tunnel") {
        const t = d.tunType ?? "ipip";
        const f = tunFlagsValue(d.tunFlags);
        if (t === "gre")
          out += `-a ${name} -r ${dname} ${fwdSwitch} -w ${w} --tun-type gre ${TUN_FLAG_OPT[f] ?? "(null)"}\n`;
        else if (t === "gue")
          out +=
            `-a ${name} -r ${dname} ${fwdSwitch} -w ${w} --tun-type gue --tun-port ${d.tunPort ?? 0} ` +
            `${TUN_FLAG_OPT[f] ?? "(null)"}\n`;
        else if (t === "ipip") out += `-a ${name} -r ${dname} ${fwdSwitch} -w ${w} --tun-type ipip\n`;
        else out += `-a ${name} -r ${dname} ${fwdSwitch} -w ${w}\n`;
      } else out += `-a ${name} -r ${dname} ${fwdSwitch} -w ${w}\n`;
    } else if (fmt === "stats") {
      out += `  -> ${left(dname, 28)}${statsCols(d.stats ?? ZERO, exact)}\n`;
    } else if (fmt === "rate") {
      const s = d.stats ?? ZERO;
      out +=
        `  -> ${left(dname, 28)} ${right(s.cps.toString(), 8)} ${right(s.inPps.toString(), 8)} ` +
        `${right(s.outPps.toString(), 8)}` +
        `${largenum(s.inBps, exact)}${largenum(s.outBps, exact)}\n`;
    } else if (fmt === "thresholds") {
      out +=
        `  -> ${left(dname, 28)} ${left(u32(d.upperThreshold), 10)} ${left(u32(d.lowerThreshold), 10)} ` +
        `${left(act, 10)} ${left(inact, 10)}\n`;
    } else if (fmt === "persistent-conn") {
      out +=
        `  -> ${left(dname, 28)} ${left(u32(d.weight), 9)} ${left(u32(d.persistConns ?? 0), 11)} ` +
        `${left(act, 10)} ${left(inact, 10)}\n`;
    } else if (fmt === "tun-info") {
      out +=
        `  -> ${left(dname, 28)} ${left(fwdName, 7)} ${left(tunInfo(d) ?? "n/a", 13)} ${left(w, 6)} ` +
        `${left(act, 10)} ${left(inact, 10)}\n`;
    } else {
      out += `  -> ${left(dname, 28)} ${left(fwdName, 7)} ${left(w, 6)} ${left(act, 10)} ${left(inact, 10)}\n`;
    }
  }
  return out;
}

/** `ipvsadm -L[n] [--stats|--rate|...]` (list_all): version line, title, every service sorted. */
export function formatList(info: TargetInfo, services: ServiceStatus[], opts: FormatOptions = {}): string {
  let out = `IP Virtual Server version ${info.version} (size=${info.connTableSize})\n`;
  out += formatTitle(opts.format ?? "default");
  const list = opts.nosort ? services : sortServices(services);
  for (const s of list) out += formatServiceEntry(s, opts);
  return out;
}

/** `ipvsadm -L[n] -t addr:port` (list_service): no version line. */
export function formatListService(service: ServiceStatus, opts: FormatOptions = {}): string {
  return formatTitle(opts.format ?? "default") + formatServiceEntry(service, opts);
}

/** `ipvsadm -S[n]`: the rules that rebuild the table (thresholds are not saved, as in ipvsadm). */
export function formatSave(
  services: (ServiceLike & { realServers: RealServer[] })[],
  opts: Pick<FormatOptions, "numeric" | "resolver" | "nosort"> = {},
): string {
  const list = opts.nosort ? services : sortServices(services);
  let out = "";
  for (const s of list) out += formatServiceEntry(s as ServiceStatus, { ...opts, rule: true });
  return out;
}

/** `ipvsadm -L --timeout` */
export function formatTimeouts(t: IpvsTimeouts): string {
  return `Timeout (tcp tcpfin udp): ${i32(t.tcp)} ${i32(t.tcpfin)} ${i32(t.udp)}\n`;
}

const CONN_PROTO: Record<string, number> = { TCP: IPPROTO_TCP, UDP: IPPROTO_UDP, SCTP: IPPROTO_SCTP };

/** `ipvsadm -Lc[n]` from connection entries in the target's order (the kernel's: hash table order). */
export function formatConnections(
  conns: ConnectionEntry[],
  opts: Pick<FormatOptions, "numeric" | "resolver"> = {},
): string {
  let out = "IPVS connection entries\n";
  out += `pro expire ${left("state", 11)} ${left("source", 18)} ${left("virtual", 18)} destination\n`;
  for (const c of conns) {
    const proto = CONN_PROTO[c.protocol] ?? 0;
    const caf = afOfLiteral(c.client.addr);
    const daf = afOfLiteral(c.dest.addr);
    const cname = addrPortName(caf, c.client.addr, c.client.port, proto, !!opts.numeric, opts.resolver);
    const vname = addrPortName(caf, c.virtual.addr, c.virtual.port, proto, !!opts.numeric, opts.resolver);
    const dname = addrPortName(daf, c.dest.addr, c.dest.port, proto, !!opts.numeric, opts.resolver);
    const secs = Math.max(0, Math.floor(c.expiresMs / 1000));
    const exp = `${String(Math.floor(secs / 60)).padStart(2, "0")}:${String(secs % 60).padStart(2, "0")}`;
    out +=
      `${left(c.protocol, 3)} ${left(exp, 6)} ${left(c.state, 11)} ${left(cname, 18)} ${left(vname, 18)} ` +
      `${dname}\n`;
  }
  return out;
}
