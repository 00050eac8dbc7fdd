// IPVS generic netlink wire encoding: netlink/genl framing, attributes, and the conversion between the
// model's shapes (src/model/types.ts) and IPVS's attributes, with the byte-order traps of
// ../shared/ipvs-reference.md §3.4: ports and the IPv4 netmask are big-endian, the IPv6 netmask is a
// host-order prefix length, every other integer is host order (little-endian on every machine we run on),
// replies carry 16-byte addresses and the HASHED flag.
import { isIPv4, isIPv6 } from "node:net";
import type {
  VirtualService,
  RealServer,
  IpvsTimeouts,
  Protocol,
  ForwardingMethod,
  TunnelType,
} from "../model/types.ts";
import type { Stats, ServiceStatus, RealServerStatus, TargetInfo } from "../model/target.ts";
import { addrBytes, formatAddr } from "../core/addr.ts";
import * as C from "./constants.ts";
import { type SyncDaemon, groupText, multicastFamily, validateDaemon } from "../model/daemon.ts";
import { type Problem, describe, formatProblems } from "../model/validate.ts";
import { SCHED_FLAG_BITS, SCHED_FLAG_NAMES, schedFlag, schedFlagName } from "../model/schedulers.ts";

// ---------------------------------------------------------------------------------------------------
// Writer: one growing buffer; messages are appended back to back so a batch is one contiguous send.

const scratch6 = new Uint8Array(16);

export class Writer {
  buf: Buffer;
  pos = 0;
  private nests: number[] = [];
  constructor(size = 64 * 1024) {
    this.buf = Buffer.allocUnsafe(size);
  }

  reset(): void {
    this.pos = 0;
    this.nests.length = 0;
  }
  private room(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    const nb = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.pos + n));
    this.buf.copy(nb, 0, 0, this.pos);
    this.buf = nb;
  }
  /** Starts one netlink + genl message; returns its offset for end(). */
  begin(type: number, flags: number, seq: number, cmd: number): number {
    this.room(20);
    const at = this.pos,
      b = this.buf;
    b.writeUInt32LE(0, at);
    b.writeUInt16LE(type, at + 4);
    b.writeUInt16LE(flags, at + 6);
    b.writeUInt32LE(seq >>> 0, at + 8);
    b.writeUInt32LE(0, at + 12);
    b[at + 16] = cmd;
    b[at + 17] = C.IPVS_GENL_VERSION;
    b[at + 18] = 0;
    b[at + 19] = 0;
    this.pos += 20;
    return at;
  }
  end(at: number): void {
    this.buf.writeUInt32LE(this.pos - at, at);
  }

  // (bytes written one by one: under emulation Buffer's write*/fill methods, with their argument checks,
  // cost more than the attribute)
  private hdr(type: number, len: number): number {
    const total = 4 + len,
      padded = (total + 3) & ~3;
    if (this.pos + padded > this.buf.length) this.room(padded);
    const b = this.buf,
      at = this.pos;
    b[at] = total & 0xff;
    b[at + 1] = total >>> 8;
    b[at + 2] = type & 0xff;
    b[at + 3] = type >>> 8;
    for (let i = at + total; i < at + padded; i++) b[i] = 0;
    this.pos = at + padded;
    return at + 4;
  }
  u8(type: number, v: number): void {
    this.buf[this.hdr(type, 1)] = v & 0xff;
  }
  u16(type: number, v: number): void {
    const at = this.hdr(type, 2),
      b = this.buf;
    b[at] = v & 0xff;
    b[at + 1] = (v >>> 8) & 0xff;
  }
  be16(type: number, v: number): void {
    const at = this.hdr(type, 2),
      b = this.buf;
    b[at] = (v >>> 8) & 0xff;
    b[at + 1] = v & 0xff;
  }
  u32(type: number, v: number): void {
    const at = this.hdr(type, 4),
      b = this.buf;
    b[at] = v & 0xff;
    b[at + 1] = (v >>> 8) & 0xff;
    b[at + 2] = (v >>> 16) & 0xff;
    b[at + 3] = (v >>> 24) & 0xff;
  }
  /** A u32 in network order (an IPv4 address). */
  be32(type: number, v: number): void {
    const at = this.hdr(type, 4),
      b = this.buf;
    b[at] = (v >>> 24) & 0xff;
    b[at + 1] = (v >>> 16) & 0xff;
    b[at + 2] = (v >>> 8) & 0xff;
    b[at + 3] = v & 0xff;
  }
  bytes(type: number, v: Uint8Array, n = v.length): void {
    const at = this.hdr(type, n);
    this.buf.set(n === v.length ? v : v.subarray(0, n), at);
  }
  str(type: number, s: string): void {
    const n = s.length;
    let ascii = true;
    for (let i = 0; i < n; i++)
      if (s.charCodeAt(i) > 127) {
        ascii = false;
        break;
      }
    if (!ascii) {
      const len = Buffer.byteLength(s);
      const at = this.hdr(type, len + 1);
      this.buf.write(s, at, "latin1");
      this.buf[at + len] = 0;
      return;
    }
    const at = this.hdr(type, n + 1),
      b = this.buf;
    for (let i = 0; i < n; i++) b[at + i] = s.charCodeAt(i);
    b[at + n] = 0;
  }
  /** An address attribute: 4 bytes for IPv4, 16 for IPv6 (the kernel zero-fills to 16). */
  addr(type: number, a: string, af: number): void {
    if (af === C.AF_INET) {
      const v = parseV4(a);
      if (v < 0) throw new CodecError(`bad IPv4 address '${a}'`);
      this.be32(type, v);
    } else this.bytes(type, addrBytes(a, scratch6), 16);
  }
  /** Raw bytes already laid out as attributes (a cached nest). */
  raw(b: Uint8Array): void {
    this.room(b.length);
    this.buf.set(b, this.pos);
    this.pos += b.length;
  }
  nestBegin(type: number): void {
    this.room(4);
    this.nests.push(this.pos);
    this.buf.writeUInt16LE(type | C.NLA_F_NESTED, this.pos + 2);
    this.pos += 4;
  }
  nestEnd(): void {
    const at = this.nests.pop()!;
    this.buf.writeUInt16LE(this.pos - at, at);
  }
  /** A copy of everything written since `from`. */
  take(from = 0): Buffer {
    return Buffer.from(this.buf.subarray(from, this.pos));
  }
}

// ---------------------------------------------------------------------------------------------------
// Reading: a netlink datagram holds one or more messages; each message's attributes are walked in place.

export interface RawMessage {
  type: number;
  flags: number;
  seq: number;
  pid: number;
  buf: Buffer; // the datagram
  off: number; // start of this message
  len: number; // nlmsg_len
}

export function* messages(buf: Buffer): Generator<RawMessage> {
  let off = 0;
  while (off + C.NLMSG_HDRLEN <= buf.length) {
    const len = buf.readUInt32LE(off);
    if (len < C.NLMSG_HDRLEN || off + len > buf.length) return;
    yield {
      type: buf.readUInt16LE(off + 4),
      flags: buf.readUInt16LE(off + 6),
      seq: buf.readUInt32LE(off + 8),
      pid: buf.readUInt32LE(off + 12),
      buf,
      off,
      len,
    };
    off += (len + 3) & ~3;
  }
}

/** NLMSG_ERROR's error code (0 = ACK, otherwise a positive errno). */
export function errorCode(m: RawMessage): number {
  if (m.len < C.NLMSG_HDRLEN + 4) throw new CodecError(`NLMSG_ERROR of ${m.len} bytes: too short for its error code`);
  return -m.buf.readInt32LE(m.off + C.NLMSG_HDRLEN);
}
/** Calls fn(type, start, len) for each attribute in [start, end). Types are masked (NESTED stripped). */
function eachAttr(buf: Buffer, start: number, end: number, fn: (type: number, at: number, len: number) => void): void {
  let p = start;
  while (p + 4 <= end) {
    const len = buf.readUInt16LE(p);
    if (len < 4 || p + len > end) return;
    fn(buf.readUInt16LE(p + 2) & C.NLA_TYPE_MASK, p + 4, len - 4);
    p += (len + 3) & ~3;
  }
}
/** 0 when an attribute of `len` bytes holds `want`; otherwise throws a CodecError naming it. */
function width(len: number, want: number, name: string): 0 {
  if (len < want) throw new CodecError(`malformed reply: ${name} has ${len} byte(s), needs ${want}`, C.ERRNO.EPROTO);
  return 0;
}
function attrsOf(m: RawMessage, fn: (type: number, at: number, len: number) => void): void {
  eachAttr(m.buf, m.off + C.NLMSG_HDRLEN + C.GENL_HDRLEN, m.off + m.len, fn);
}
function cstr(buf: Buffer, at: number, len: number): string {
  let e = at;
  while (e < at + len && buf[e] !== 0) e++;
  return buf.toString("latin1", at, e);
}

// ---------------------------------------------------------------------------------------------------
// Model ⇄ wire values

const PROTO_NUM: Record<Protocol, number> = { tcp: C.IPPROTO_TCP, udp: C.IPPROTO_UDP, sctp: C.IPPROTO_SCTP };
const PROTO_NAME: Record<number, Protocol> = { 6: "tcp", 17: "udp", 132: "sctp" };
const FWD_NUM: Record<string, number> = { masq: 0, local: 1, tunnel: 2, route: 3, bypass: 4 };
const FWD_NAME: ForwardingMethod[] = ["masq", "local", "tunnel", "route", "bypass"];
const TUN_NUM: Record<TunnelType, number> = { ipip: 0, gue: 1, gre: 2 };
const TUN_NAME: TunnelType[] = ["ipip", "gue", "gre"];

export class CodecError extends Error {
  constructor(
    msg: string,
    readonly errno: number = C.ERRNO.EINVAL,
  ) {
    super(msg);
    this.name = "CodecError";
  }
}

export function serviceAf(s: Pick<VirtualService, "fwmark" | "family" | "addr">): number {
  if (s.fwmark) return s.family === "inet6" ? C.AF_INET6 : C.AF_INET;
  return addrAf(s.addr ?? "");
}
export function addrAf(a: string): number {
  if (a.indexOf(":") < 0) {
    if (parseV4(a) >= 0) return C.AF_INET;
  } else if (isIPv6(a)) return C.AF_INET6;
  throw new CodecError(`bad address '${a}'`);
}

/** A dotted quad as a u32 (first octet in the high byte), or -1. Faster than a regex and split(). */
export function parseV4(a: string): number {
  let v = 0,
    part = 0,
    digits = 0,
    dots = 0;
  for (let i = 0; i < a.length; i++) {
    const c = a.charCodeAt(i);
    if (c >= 48 && c <= 57) {
      if (digits && part === 0) return -1; // no leading zeros
      part = part * 10 + (c - 48);
      if (++digits > 3 || part > 255) return -1;
    } else if (c === 46 && digits) {
      v = v * 256 + part;
      part = 0;
      digits = 0;
      if (++dots > 3) return -1;
    } else return -1;
  }
  if (dots !== 3 || !digits) return -1;
  return v * 256 + part;
}

/** The service flag bits a VirtualService asks for (PERSISTENT, ONEPACKET, SCHED1..3). */
export function serviceFlagBits(s: Pick<VirtualService, "flags" | "persistent">): number {
  let f = s.persistent !== undefined ? C.IP_VS_SVC_F_PERSISTENT : 0;
  for (const raw of s.flags ?? []) {
    const n = raw.replace(/^-+/, "");
    if (n === "ops" || n === "onepacket" || n === "o") f |= C.IP_VS_SVC_F_ONEPACKET;
    else if (n === "persistent") f |= C.IP_VS_SVC_F_PERSISTENT;
    else {
      const flag = schedFlag(n);
      if (!flag)
        throw new CodecError(`unknown service flag '${raw}' (${Object.keys(SCHED_FLAG_NAMES).join(", ")}, ops)`);
      f |= flag.bit;
    }
  }
  return f;
}

/** ipvsadm's names for the bits (the scheduler's own, else flag-N), plus "ops". */
export function serviceFlagNames(bits: number, sched: string): string[] {
  const out: string[] = [];
  for (let i = 0; i < SCHED_FLAG_BITS.length; i++) if (bits & SCHED_FLAG_BITS[i]) out.push(schedFlagName(sched, i));
  if (bits & C.IP_VS_SVC_F_ONEPACKET) out.push("ops");
  return out;
}

/** The NETMASK attribute's u32 as it goes on the wire (read back with readUInt32LE). */
function netmaskWire(af: number, netmask: string | undefined): number {
  if (af === C.AF_INET6) {
    const p = netmask === undefined || netmask === "" ? 128 : Number(netmask.replace(/^\//, ""));
    if (!Number.isInteger(p) || p < 1 || p > 128)
      throw new CodecError(`bad IPv6 netmask '${netmask}': a prefix length 1..128`);
    return p;
  }
  let mask: number;
  if (netmask === undefined || netmask === "") mask = 0xffffffff;
  else if (/^\/?\d{1,2}$/.test(netmask)) {
    const p = Number(netmask.replace("/", ""));
    if (p > 32) throw new CodecError(`bad IPv4 netmask '${netmask}'`);
    mask = p === 0 ? 0 : (0xffffffff << (32 - p)) >>> 0;
  } else if (isIPv4(netmask)) {
    mask = netmask.split(".").reduce((a, x) => ((a << 8) | Number(x)) >>> 0, 0);
    const inv = ~mask >>> 0;
    if ((inv & (inv + 1)) !== 0) throw new CodecError(`bad IPv4 netmask '${netmask}': not contiguous`);
  } else throw new CodecError(`bad IPv4 netmask '${netmask}': a dotted mask like 255.255.255.0`);
  // network-order bytes in a u32 slot: byte-swap so that writeUInt32LE puts the first octet first
  return (((mask & 0xff) << 24) | (((mask >>> 8) & 0xff) << 16) | (((mask >>> 16) & 0xff) << 8) | (mask >>> 24)) >>> 0;
}

function netmaskText(af: number, wire: number): string {
  if (af === C.AF_INET6) return String(wire);
  return `${wire & 0xff}.${(wire >>> 8) & 0xff}.${(wire >>> 16) & 0xff}.${wire >>> 24}`;
}
/** The canonical netmask text of a desired service (for comparisons). */
export function normalNetmask(s: Pick<VirtualService, "fwmark" | "family" | "addr" | "netmask">): string {
  const af = serviceAf(s);
  return netmaskText(af, netmaskWire(af, s.netmask));
}

export function tunFlagBits(flags: string[] | undefined): number {
  let f = 0;
  for (const raw of flags ?? []) {
    const n = raw.replace(/^-+/, "").replace(/^tun-/, "");
    if (n === "nocsum") f |= C.IP_VS_TUNNEL_ENCAP_FLAG_NOCSUM;
    else if (n === "csum") f |= C.IP_VS_TUNNEL_ENCAP_FLAG_CSUM;
    else if (n === "remcsum") f |= C.IP_VS_TUNNEL_ENCAP_FLAG_REMCSUM;
    else throw new CodecError(`unknown tunnel flag '${raw}' (nocsum, csum, remcsum)`);
  }
  return f;
}
function tunFlagNames(bits: number): string[] {
  if (bits & C.IP_VS_TUNNEL_ENCAP_FLAG_CSUM) return ["csum"];
  if (bits & C.IP_VS_TUNNEL_ENCAP_FLAG_REMCSUM) return ["remcsum"];
  return ["nocsum"];
}

export function fwdNum(m: ForwardingMethod): number {
  const n = FWD_NUM[m];
  if (n === undefined)
    throw new CodecError(
      `forwarding method '${m}' is not supported by kernel IPVS (masq, route, tunnel, local)`,
      C.ERRNO.EOPNOTSUPP,
    );
  return n;
}

// ---------------------------------------------------------------------------------------------------
// Encoders. Each appends attributes to an open message.

const scratch = new Uint8Array(16);

const identityCache = new WeakMap<object, Buffer>();
const idWriter = new Writer(256);

/** IPVS_CMD_ATTR_SERVICE; full = with scheduler, flags, timeout, netmask (NEW/SET_SERVICE). The
 * identity-only form (dest commands, deletes, dumps) is cached per service object. */
export function putService(w: Writer, s: VirtualService, full: boolean): void {
  if (!full) {
    let b = identityCache.get(s);
    if (!b) {
      idWriter.reset();
      encodeService(idWriter, s, false);
      b = idWriter.take();
      identityCache.set(s, b);
    }
    w.raw(b);
    return;
  }
  encodeService(w, s, true);
}

/** A whole request naming one service by its identity (GET_DEST dump, GET_SERVICE, ZERO): the cached
 * identity nest behind a netlink + genl header; the sequence number (offset 8) is left 0. */
export function serviceRequest(family: number, flags: number, cmd: number, s: VirtualService): Buffer {
  // (not cached here: these are mostly the kernel's own service objects from a dump, read once; a
  // WeakMap entry per service measured dearer than encoding the few attributes again)
  let id: Uint8Array | undefined = identityCache.get(s);
  if (!id) {
    idWriter.reset();
    encodeService(idWriter, s, false);
    id = idWriter.buf.subarray(0, idWriter.pos);
  }
  const n = 20 + id.length;
  const b = Buffer.allocUnsafe(n);
  b.writeUInt32LE(n, 0);
  b.writeUInt16LE(family, 4);
  b.writeUInt16LE(flags, 6);
  b.writeUInt32LE(0, 8);
  b.writeUInt32LE(0, 12);
  b[16] = cmd;
  b[17] = C.IPVS_GENL_VERSION;
  b[18] = 0;
  b[19] = 0;
  b.set(id, 20);
  return b;
}

function encodeService(w: Writer, s: VirtualService, full: boolean): void {
  const af = serviceAf(s);
  w.nestBegin(C.IPVS_CMD_ATTR_SERVICE);
  w.u16(C.IPVS_SVC_ATTR_AF, af);
  if (s.fwmark) {
    if (!(s.fwmark > 0 && s.fwmark <= 0xffffffff)) throw new CodecError(`bad firewall mark ${s.fwmark}`);
    w.u32(C.IPVS_SVC_ATTR_FWMARK, s.fwmark);
  } else {
    const p = PROTO_NUM[s.protocol ?? "tcp"];
    if (p === undefined) throw new CodecError(`bad protocol '${s.protocol}' (tcp, udp, sctp)`);
    const port = s.port ?? 0;
    if (!(port >= 0 && port <= 65535)) throw new CodecError(`bad port ${port}`);
    w.u16(C.IPVS_SVC_ATTR_PROTOCOL, p);
    w.addr(C.IPVS_SVC_ATTR_ADDR, s.addr!, af);
    w.be16(C.IPVS_SVC_ATTR_PORT, port);
  }
  if (full) {
    const sched = s.scheduler || "wlc";
    if (sched.length >= C.IP_VS_SCHEDNAME_MAXLEN) throw new CodecError(`scheduler name '${sched}' is too long`);
    w.str(C.IPVS_SVC_ATTR_SCHED_NAME, sched);
    if (s.pe) w.str(C.IPVS_SVC_ATTR_PE_NAME, s.pe);
    const flags = serviceFlagBits(s);
    const at = w.pos;
    w.bytes(C.IPVS_SVC_ATTR_FLAGS, scratch, 8);
    w.buf.writeUInt32LE(flags, at + 4);
    w.buf.writeUInt32LE(0xffffffff, at + 8);
    const t = s.persistent ?? 0;
    if (!(t >= 0 && t <= 0xffffffff)) throw new CodecError(`bad persistence timeout ${t}`);
    w.u32(C.IPVS_SVC_ATTR_TIMEOUT, t);
    w.u32(C.IPVS_SVC_ATTR_NETMASK, netmaskWire(af, s.netmask));
  }
  w.nestEnd();
}

/** IPVS_CMD_ATTR_DEST; full = with forwarding, weight, thresholds (and tunnel) for NEW/SET_DEST. */
export function putDest(w: Writer, r: Pick<RealServer, "addr" | "port"> & Partial<RealServer>, full: boolean): void {
  // IPv4 parsed once (addrAf and addr() would each parse it)
  const v4 = r.addr.indexOf(":") < 0 ? parseV4(r.addr) : -1;
  const af = v4 >= 0 ? C.AF_INET : addrAf(r.addr);
  w.nestBegin(C.IPVS_CMD_ATTR_DEST);
  w.u16(C.IPVS_DEST_ATTR_ADDR_FAMILY, af);
  if (v4 >= 0) w.be32(C.IPVS_DEST_ATTR_ADDR, v4);
  else w.addr(C.IPVS_DEST_ATTR_ADDR, r.addr, af);
  if (!(r.port >= 0 && r.port <= 65535)) throw new CodecError(`bad real server port ${r.port}`);
  w.be16(C.IPVS_DEST_ATTR_PORT, r.port);
  if (full) {
    const fwd = fwdNum(r.fwd ?? "route");
    w.u32(C.IPVS_DEST_ATTR_FWD_METHOD, fwd);
    const weight = r.weight ?? 1;
    if (!(weight >= 0 && weight <= 0x7fffffff)) throw new CodecError(`bad weight ${weight}`, C.ERRNO.ERANGE);
    w.u32(C.IPVS_DEST_ATTR_WEIGHT, weight);
    if (fwd === C.IP_VS_CONN_F_TUNNEL) {
      const tt = TUN_NUM[r.tunType ?? "ipip"];
      if (tt === undefined) throw new CodecError(`bad tunnel type '${r.tunType}' (ipip, gue, gre)`);
      w.u8(C.IPVS_DEST_ATTR_TUN_TYPE, tt);
      w.be16(C.IPVS_DEST_ATTR_TUN_PORT, r.tunPort ?? 0);
      w.u16(C.IPVS_DEST_ATTR_TUN_FLAGS, tunFlagBits(r.tunFlags));
    }
    w.u32(C.IPVS_DEST_ATTR_U_THRESH, r.upperThreshold ?? 0);
    w.u32(C.IPVS_DEST_ATTR_L_THRESH, r.lowerThreshold ?? 0);
  }
  w.nestEnd();
}

export function putTimeouts(w: Writer, t: Partial<IpvsTimeouts>): void {
  if (t.tcp !== undefined) w.u32(C.IPVS_CMD_ATTR_TIMEOUT_TCP, t.tcp);
  if (t.tcpfin !== undefined) w.u32(C.IPVS_CMD_ATTR_TIMEOUT_TCP_FIN, t.tcpfin);
  if (t.udp !== undefined) w.u32(C.IPVS_CMD_ATTR_TIMEOUT_UDP, t.udp);
}

// ---------------------------------------------------------------------------------------------------
// Decoders

function zeroStats(): Stats {
  return {
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
}
const STAT_KEYS: (keyof Stats)[] = [
  "conns",
  "inPkts",
  "outPkts",
  "inBytes",
  "outBytes",
  "cps",
  "inPps",
  "outPps",
  "inBps",
  "outBps",
];

/** STATS (u32 counters, u64 bytes) or STATS64 (all u64); unknown types (PAD) are skipped. */
function parseStats(buf: Buffer, at: number, len: number): Stats {
  const out = zeroStats();
  eachAttr(buf, at, at + len, (t, a, l) => {
    const k = STAT_KEYS[t - 1];
    if (!k) return;
    out[k] = l >= 8 ? buf.readBigUInt64LE(a) : l >= 4 ? BigInt(buf.readUInt32LE(a)) : 0n;
  });
  return out;
}

/** Counters parsed on first read: a dump of 100k real servers does not pay for a million BigInts
 * nobody looks at. Behaves as a plain Stats (own-looking fields via getters, toJSON). */
class LazyStats implements Stats {
  #buf: Buffer | null;
  #at: number;
  #len: number;
  #s?: Stats;
  /** Refers to the datagram until first read (the package reads each datagram into a buffer of its
   * exact size, so a dump retains about what the kernel sent: ~300 bytes per real server). */
  constructor(buf: Buffer | null, at = 0, len = 0) {
    this.#buf = buf;
    this.#at = at;
    this.#len = len;
  }
  private get s(): Stats {
    if (!this.#s) {
      this.#s = this.#buf ? parseStats(this.#buf, this.#at, this.#len) : zeroStats();
      this.#buf = null;
    }
    return this.#s;
  }
  get conns() {
    return this.s.conns;
  }
  get inPkts() {
    return this.s.inPkts;
  }
  get outPkts() {
    return this.s.outPkts;
  }
  get inBytes() {
    return this.s.inBytes;
  }
  get outBytes() {
    return this.s.outBytes;
  }
  get cps() {
    return this.s.cps;
  }
  get inPps() {
    return this.s.inPps;
  }
  get outPps() {
    return this.s.outPps;
  }
  get inBps() {
    return this.s.inBps;
  }
  get outBps() {
    return this.s.outBps;
  }
  toJSON(): Record<string, string> {
    const o: Record<string, string> = {};
    for (const k of STAT_KEYS) o[k] = String(this.s[k]);
    return o;
  }
}

// Reply attributes are checked for width before they are read: the outer length only bounds an attribute
// within its message, and a short payload would otherwise read its neighbours' bytes (a zero-length ADDR
// read as "7.0.6.0") or past the datagram (a bare RangeError). The kernel sends each at its exact width.
const SVC_ATTR_NAMES = [
  "",
  "AF",
  "PROTOCOL",
  "ADDR",
  "PORT",
  "FWMARK",
  "SCHED_NAME",
  "FLAGS",
  "TIMEOUT",
  "NETMASK",
  "STATS",
  "PE_NAME",
  "STATS64",
].map((n) => `IPVS_SVC_ATTR_${n}`);
const SVC_ATTR_WIDTH = [0, 2, 2, 0, 2, 4, 0, 8, 4, 4, 0, 0, 0];
const DEST_ATTR_NAMES = [
  "",
  "ADDR",
  "PORT",
  "FWD_METHOD",
  "WEIGHT",
  "U_THRESH",
  "L_THRESH",
  "ACTIVE_CONNS",
  "INACT_CONNS",
  "PERSIST_CONNS",
  "STATS",
  "ADDR_FAMILY",
  "STATS64",
  "TUN_TYPE",
  "TUN_PORT",
  "TUN_FLAGS",
].map((n) => `IPVS_DEST_ATTR_${n}`);
const DEST_ATTR_WIDTH = [0, 0, 2, 4, 4, 4, 4, 4, 4, 4, 0, 2, 0, 1, 2, 2];

function shortAttr(name: string, len: number, want: number): CodecError {
  return new CodecError(`malformed reply: ${name} has ${len} byte(s), needs ${want}`, C.ERRNO.EPROTO);
}
function missingAttr(name: string, what: string): CodecError {
  return new CodecError(`malformed reply: ${what} without ${name}`, C.ERRNO.EPROTO);
}

function readAddr(buf: Buffer, at: number, len: number, af: number, name: string): string {
  if (at < 0) throw missingAttr(name, "an address attribute list");
  if (af === C.AF_INET) {
    if (len < 4) throw shortAttr(name, len, 4);
    return `${buf[at]}.${buf[at + 1]}.${buf[at + 2]}.${buf[at + 3]}`;
  }
  if (af !== C.AF_INET6) {
    throw new CodecError(`malformed reply: ${name} of unknown address family ${af}`, C.ERRNO.EPROTO);
  }
  if (len < 16) throw shortAttr(name, len, 16);
  return formatAddr(af, buf.subarray(at, at + 16));
}

/** A service as the kernel reports it (a NEW_SERVICE message from a dump or a get). */
export interface KernelService extends ServiceStatus {
  rawFlags: number; // flags as sent, HASHED included
  timeoutSec: number; // TIMEOUT even when not persistent
  netmaskWire: number;
}

/** The payload [start, end) of the first top-level attribute of this type in a genl message, or -1. */
function topAttr(m: RawMessage, type: number): [number, number] {
  const buf = m.buf,
    end = m.off + m.len;
  let p = m.off + C.NLMSG_HDRLEN + C.GENL_HDRLEN;
  while (p + 4 <= end) {
    const len = buf.readUInt16LE(p);
    if (len < 4 || p + len > end) break;
    if ((buf.readUInt16LE(p + 2) & C.NLA_TYPE_MASK) === type) return [p + 4, len - 4];
    p += (len + 3) & ~3;
  }
  return [-1, 0];
}

export function parseService(m: RawMessage): KernelService | undefined {
  const [at, len] = topAttr(m, C.IPVS_CMD_ATTR_SERVICE);
  return at < 0 ? undefined : parseServiceNest(m.buf, at, len);
}

/** What parseServiceNest's walk found: values, and where the address and stats attributes are. */
interface ServiceAttrs {
  af: number;
  proto: number;
  fwmark: number;
  port: number;
  sched: string;
  pe: string;
  flags: number;
  timeout: number;
  netmask: number;
  addrAt: number;
  addrLen: number;
  statsAt: number;
  statsLen: number;
  stats64: boolean;
  seenPort: boolean;
}

function parseServiceNest(buf: Buffer, start: number, n: number): KernelService {
  const a: ServiceAttrs = {
    af: 0,
    proto: 0,
    fwmark: 0,
    port: 0,
    sched: "",
    pe: "",
    flags: 0,
    timeout: 0,
    netmask: 0,
    addrAt: -1,
    addrLen: 0,
    statsAt: -1,
    statsLen: 0,
    stats64: false,
    seenPort: false,
  };
  const end = start + n;
  let p = start;
  while (p + 4 <= end) {
    const alen = buf.readUInt16LE(p);
    if (alen < 4 || p + alen > end) break;
    const t = buf.readUInt16LE(p + 2) & C.NLA_TYPE_MASK,
      at = p + 4,
      len = alen - 4;
    if (len < (SVC_ATTR_WIDTH[t] ?? 0)) throw shortAttr(SVC_ATTR_NAMES[t], len, SVC_ATTR_WIDTH[t]);
    switch (t) {
      case C.IPVS_SVC_ATTR_AF:
        a.af = buf.readUInt16LE(at);
        break;
      case C.IPVS_SVC_ATTR_PROTOCOL:
        a.proto = buf.readUInt16LE(at);
        break;
      case C.IPVS_SVC_ATTR_ADDR:
        a.addrAt = at;
        a.addrLen = len;
        break;
      case C.IPVS_SVC_ATTR_PORT:
        a.port = buf.readUInt16BE(at);
        a.seenPort = true;
        break;
      case C.IPVS_SVC_ATTR_FWMARK:
        a.fwmark = buf.readUInt32LE(at);
        break;
      case C.IPVS_SVC_ATTR_SCHED_NAME:
        a.sched = cstr(buf, at, len);
        break;
      case C.IPVS_SVC_ATTR_PE_NAME:
        a.pe = cstr(buf, at, len);
        break;
      case C.IPVS_SVC_ATTR_FLAGS:
        a.flags = (buf.readUInt32LE(at) & buf.readUInt32LE(at + 4)) >>> 0;
        break;
      case C.IPVS_SVC_ATTR_TIMEOUT:
        a.timeout = buf.readUInt32LE(at);
        break;
      case C.IPVS_SVC_ATTR_NETMASK:
        a.netmask = buf.readUInt32LE(at);
        break;
      case C.IPVS_SVC_ATTR_STATS:
        if (!a.stats64) {
          a.statsAt = at;
          a.statsLen = len;
        }
        break;
      case C.IPVS_SVC_ATTR_STATS64:
        a.stats64 = true;
        a.statsAt = at;
        a.statsLen = len;
        break;
    }
    p += (alen + 3) & ~3;
  }
  return serviceOf(buf, a);
}

/** The service the attributes describe, once the ones it needs are checked present. */
function serviceOf(buf: Buffer, a: ServiceAttrs): KernelService {
  if (a.af !== C.AF_INET && a.af !== C.AF_INET6) {
    if (!a.af) throw missingAttr("IPVS_SVC_ATTR_AF", "a service");
    throw new CodecError(`malformed reply: service of unknown address family ${a.af}`, C.ERRNO.EPROTO);
  }
  if (!a.fwmark) {
    if (!a.proto) throw missingAttr("IPVS_SVC_ATTR_PROTOCOL", "a service without a firewall mark");
    if (!a.seenPort) throw missingAttr("IPVS_SVC_ATTR_PORT", "a service without a firewall mark");
  }
  const s: KernelService = {
    scheduler: a.sched,
    flags: serviceFlagNames(a.flags, a.sched),
    realServers: [],
    stats: new LazyStats(a.statsAt < 0 ? null : buf, a.statsAt, a.statsLen),
    rawFlags: a.flags,
    timeoutSec: a.timeout,
    netmaskWire: a.netmask,
  };
  if (a.fwmark) {
    s.fwmark = a.fwmark;
    s.family = a.af === C.AF_INET6 ? "inet6" : "inet";
  } else {
    s.protocol = PROTO_NAME[a.proto] ?? (`proto-${a.proto}` as Protocol);
    s.addr = readAddr(buf, a.addrAt, a.addrLen, a.af, "IPVS_SVC_ATTR_ADDR");
    s.port = a.port;
  }
  if (a.flags & C.IP_VS_SVC_F_PERSISTENT) s.persistent = a.timeout;
  const full = a.af === C.AF_INET6 ? 128 : 0xffffffff;
  if (a.netmask !== full) s.netmask = netmaskText(a.af, a.netmask);
  if (a.pe) s.pe = a.pe;
  return s;
}

export function parseDest(m: RawMessage, svcAf: number): RealServerStatus | undefined {
  const [at, len] = topAttr(m, C.IPVS_CMD_ATTR_DEST);
  return at < 0 ? undefined : parseDestNest(m.buf, at, len, svcAf);
}

/** What parseDestNest's walk found: values, and where the address and stats attributes are. */
interface DestAttrs {
  af: number;
  addrAt: number;
  addrLen: number;
  port: number;
  fwd: number;
  weight: number;
  uth: number;
  lth: number;
  act: number;
  inact: number;
  pers: number;
  tunType: number;
  tunPort: number;
  tunFlags: number;
  statsAt: number;
  statsLen: number;
  stats64: boolean;
  seenPort: boolean;
}

// parseServiceNest and parseDestNest walk their attributes inline rather than through attrsOf(): they are
// the dump's per-message hot path, kept free of a callback per attribute (closures are dear under TCG: README).
function parseDestNest(buf: Buffer, start: number, n: number, svcAf: number): RealServerStatus {
  const a: DestAttrs = {
    af: 0,
    addrAt: -1,
    addrLen: 0,
    port: 0,
    fwd: 0,
    weight: 0,
    uth: 0,
    lth: 0,
    act: 0,
    inact: 0,
    pers: 0,
    tunType: -1,
    tunPort: 0,
    tunFlags: 0,
    statsAt: -1,
    statsLen: 0,
    stats64: false,
    seenPort: false,
  };
  const end = start + n;
  let p = start;
  while (p + 4 <= end) {
    const alen = buf.readUInt16LE(p);
    if (alen < 4 || p + alen > end) break;
    const t = buf.readUInt16LE(p + 2) & C.NLA_TYPE_MASK,
      at = p + 4,
      len = alen - 4;
    if (len < (DEST_ATTR_WIDTH[t] ?? 0)) throw shortAttr(DEST_ATTR_NAMES[t], len, DEST_ATTR_WIDTH[t]);
    switch (t) {
      case C.IPVS_DEST_ATTR_ADDR:
        a.addrAt = at;
        a.addrLen = len;
        break;
      case C.IPVS_DEST_ATTR_PORT:
        a.port = buf.readUInt16BE(at);
        a.seenPort = true;
        break;
      case C.IPVS_DEST_ATTR_FWD_METHOD:
        a.fwd = buf.readUInt32LE(at) & C.IP_VS_CONN_F_FWD_MASK;
        break;
      case C.IPVS_DEST_ATTR_WEIGHT:
        a.weight = buf.readInt32LE(at);
        break;
      case C.IPVS_DEST_ATTR_U_THRESH:
        a.uth = buf.readUInt32LE(at);
        break;
      case C.IPVS_DEST_ATTR_L_THRESH:
        a.lth = buf.readUInt32LE(at);
        break;
      case C.IPVS_DEST_ATTR_ACTIVE_CONNS:
        a.act = buf.readUInt32LE(at);
        break;
      case C.IPVS_DEST_ATTR_INACT_CONNS:
        a.inact = buf.readUInt32LE(at);
        break;
      case C.IPVS_DEST_ATTR_PERSIST_CONNS:
        a.pers = buf.readUInt32LE(at);
        break;
      case C.IPVS_DEST_ATTR_ADDR_FAMILY:
        a.af = buf.readUInt16LE(at);
        break;
      case C.IPVS_DEST_ATTR_STATS:
        if (!a.stats64) {
          a.statsAt = at;
          a.statsLen = len;
        }
        break;
      case C.IPVS_DEST_ATTR_STATS64:
        a.stats64 = true;
        a.statsAt = at;
        a.statsLen = len;
        break;
      case C.IPVS_DEST_ATTR_TUN_TYPE:
        a.tunType = buf[at];
        break;
      case C.IPVS_DEST_ATTR_TUN_PORT:
        a.tunPort = buf.readUInt16BE(at);
        break;
      case C.IPVS_DEST_ATTR_TUN_FLAGS:
        a.tunFlags = buf.readUInt16LE(at);
        break;
    }
    p += (alen + 3) & ~3;
  }
  return destOf(buf, a, svcAf);
}

/** The real server the attributes describe, its family the service's when the kernel sends none. */
function destOf(buf: Buffer, a: DestAttrs, svcAf: number): RealServerStatus {
  if (a.addrAt < 0) throw missingAttr("IPVS_DEST_ATTR_ADDR", "a real server");
  if (!a.seenPort) throw missingAttr("IPVS_DEST_ATTR_PORT", "a real server");
  // (kernels before 4.x send no ADDR_FAMILY: the service's)
  if (!a.af) {
    const v4 = a.addrLen < 16 || buf.subarray(a.addrAt + 4, a.addrAt + 16).every((x) => x === 0);
    a.af = svcAf || (v4 ? C.AF_INET : C.AF_INET6);
  }
  const r: RealServerStatus = {
    addr: readAddr(buf, a.addrAt, a.addrLen, a.af, "IPVS_DEST_ATTR_ADDR"),
    port: a.port,
    weight: a.weight,
    fwd: FWD_NAME[a.fwd] ?? "route",
    upperThreshold: a.uth,
    lowerThreshold: a.lth,
    activeConns: a.act,
    inactConns: a.inact,
    persistConns: a.pers,
    stats: new LazyStats(a.statsAt < 0 ? null : buf, a.statsAt, a.statsLen),
  };
  if (a.fwd === C.IP_VS_CONN_F_TUNNEL && a.tunType >= 0) {
    r.tunType = TUN_NAME[a.tunType] ?? "ipip";
    if (r.tunType === "gue") r.tunPort = a.tunPort;
    if (r.tunType !== "ipip") r.tunFlags = tunFlagNames(a.tunFlags);
  }
  return r;
}

export function parseInfo(m: RawMessage): TargetInfo {
  let v = 0,
    size = 0;
  attrsOf(m, (t, at, len) => {
    if (t === C.IPVS_INFO_ATTR_VERSION) v = m.buf.readUInt32LE(at + width(len, 4, "IPVS_INFO_ATTR_VERSION"));
    else if (t === C.IPVS_INFO_ATTR_CONN_TAB_SIZE) {
      size = m.buf.readUInt32LE(at + width(len, 4, "IPVS_INFO_ATTR_CONN_TAB_SIZE"));
    }
  });
  return { version: `${(v >> 16) & 0xff}.${(v >> 8) & 0xff}.${v & 0xff}`, connTableSize: size };
}

export function parseConfig(m: RawMessage): IpvsTimeouts {
  const t: IpvsTimeouts = { tcp: 0, tcpfin: 0, udp: 0 };
  attrsOf(m, (ty, at, len) => {
    const u32 = (name: string) => m.buf.readUInt32LE(at + width(len, 4, name));
    if (ty === C.IPVS_CMD_ATTR_TIMEOUT_TCP) t.tcp = u32("IPVS_CMD_ATTR_TIMEOUT_TCP");
    else if (ty === C.IPVS_CMD_ATTR_TIMEOUT_TCP_FIN) t.tcpfin = u32("IPVS_CMD_ATTR_TIMEOUT_TCP_FIN");
    else if (ty === C.IPVS_CMD_ATTR_TIMEOUT_UDP) t.udp = u32("IPVS_CMD_ATTR_TIMEOUT_UDP");
  });
  return t;
}

export function parseFamilyId(m: RawMessage): number {
  let id = 0;
  attrsOf(m, (t, at, len) => {
    if (t === C.CTRL_ATTR_FAMILY_ID) id = m.buf.readUInt16LE(at + width(len, 2, "CTRL_ATTR_FAMILY_ID"));
  });
  return id;
}

// ---------------------------------------------------------------------------------------------------
// The connection sync daemon (NEW_DAEMON, DEL_DAEMON, GET_DAEMON)

/** IPVS_CMD_ATTR_DAEMON for NEW_DAEMON (every field; the kernel's defaults where one is absent) or, with
 * only the state, for DEL_DAEMON. The values are checked first (validateDaemon): a bad one is a CodecError
 * naming its field, and nothing is sent. */
export function putDaemon(w: Writer, d: SyncDaemon | Pick<SyncDaemon, "state">): void {
  const full = "mcastIfn" in d;
  const ps: Problem[] = full
    ? validateDaemon(d, "daemon")
    : d.state === "master" || d.state === "backup"
      ? []
      : [{ path: "daemon.state", message: `must be "master" or "backup", not ${describe(d.state)}` }];
  if (ps.length) throw new CodecError(formatProblems(ps).replace(/\n/g, "; "));
  w.nestBegin(C.IPVS_CMD_ATTR_DAEMON);
  w.u32(C.IPVS_DAEMON_ATTR_STATE, d.state === "master" ? C.IP_VS_STATE_MASTER : C.IP_VS_STATE_BACKUP);
  if (full) {
    const f = d as SyncDaemon;
    w.str(C.IPVS_DAEMON_ATTR_MCAST_IFN, f.mcastIfn);
    w.u32(C.IPVS_DAEMON_ATTR_SYNC_ID, f.syncid);
    if (f.syncMaxlen !== undefined) w.u16(C.IPVS_DAEMON_ATTR_SYNC_MAXLEN, f.syncMaxlen);
    if (f.mcastGroup !== undefined) {
      if (multicastFamily(f.mcastGroup) === "inet") w.be32(C.IPVS_DAEMON_ATTR_MCAST_GROUP, parseV4(f.mcastGroup));
      else w.bytes(C.IPVS_DAEMON_ATTR_MCAST_GROUP6, addrBytes(f.mcastGroup, scratch6), 16);
    }
    if (f.mcastPort !== undefined) w.u16(C.IPVS_DAEMON_ATTR_MCAST_PORT, f.mcastPort);
    if (f.mcastTtl !== undefined) w.u8(C.IPVS_DAEMON_ATTR_MCAST_TTL, f.mcastTtl);
  }
  w.nestEnd();
}

/** One daemon from a GET_DAEMON dump message; undefined when the message has no daemon nest. */
export function parseDaemon(m: RawMessage): SyncDaemon | undefined {
  const [at, len] = topAttr(m, C.IPVS_CMD_ATTR_DAEMON);
  if (at < 0) return undefined;
  const buf = m.buf;
  let state = 0;
  const d: Partial<SyncDaemon> = {};
  eachAttr(buf, at, at + len, (t, a, n) => {
    switch (t) {
      case C.IPVS_DAEMON_ATTR_STATE:
        state = buf.readUInt32LE(a + width(n, 4, "IPVS_DAEMON_ATTR_STATE"));
        break;
      case C.IPVS_DAEMON_ATTR_MCAST_IFN:
        d.mcastIfn = cstr(buf, a, n);
        break;
      case C.IPVS_DAEMON_ATTR_SYNC_ID:
        d.syncid = buf.readUInt32LE(a + width(n, 4, "IPVS_DAEMON_ATTR_SYNC_ID"));
        break;
      case C.IPVS_DAEMON_ATTR_SYNC_MAXLEN:
        d.syncMaxlen = buf.readUInt16LE(a + width(n, 2, "IPVS_DAEMON_ATTR_SYNC_MAXLEN"));
        break;
      case C.IPVS_DAEMON_ATTR_MCAST_GROUP:
        d.mcastGroup = groupText(buf.subarray(a + width(n, 4, "IPVS_DAEMON_ATTR_MCAST_GROUP"), a + 4));
        break;
      case C.IPVS_DAEMON_ATTR_MCAST_GROUP6:
        d.mcastGroup = groupText(buf.subarray(a + width(n, 16, "IPVS_DAEMON_ATTR_MCAST_GROUP6"), a + 16));
        break;
      case C.IPVS_DAEMON_ATTR_MCAST_PORT:
        d.mcastPort = buf.readUInt16LE(a + width(n, 2, "IPVS_DAEMON_ATTR_MCAST_PORT"));
        break;
      case C.IPVS_DAEMON_ATTR_MCAST_TTL:
        d.mcastTtl = buf[a + width(n, 1, "IPVS_DAEMON_ATTR_MCAST_TTL")];
        break;
    }
  });
  if (state !== C.IP_VS_STATE_MASTER && state !== C.IP_VS_STATE_BACKUP)
    throw new CodecError(`malformed reply: a sync daemon of state ${state} (1 master, 2 backup)`, C.ERRNO.EPROTO);
  if (d.mcastIfn === undefined || d.syncid === undefined)
    throw missingAttr(d.mcastIfn === undefined ? "IPVS_DAEMON_ATTR_MCAST_IFN" : "IPVS_DAEMON_ATTR_SYNC_ID", "a daemon");
  return { state: state === C.IP_VS_STATE_MASTER ? "master" : "backup", ...d } as SyncDaemon;
}
