// The only owner of WASM memory: loads build/core.wasm and offers a typed API over its exports.
// Configuration calls cross the boundary once each; hot paths (packet batches) cross once per batch.
import { check, WasmvsError } from "./errors.ts";
import { AF_INET, AF_INET6, afOf, addrBytes, formatAddr } from "./addr.ts";
import type { CoreExports } from "./exports.ts";
import * as L from "../../assembly/layout.ts";
import { SCHEDULERS, SCHED_FLAG_NAMES, schedulerInfo } from "../model/schedulers.ts";

export { WasmvsError } from "./errors.ts";
export type { CoreExports } from "./exports.ts";
export {
  SCHEDULERS,
  SCHED_FLAG_NAMES,
  SCHEDULER_LIST,
  KERNEL_SCHEDULERS,
  familyOf,
  type Family,
} from "../model/schedulers.ts";

export const PROTOCOLS: Record<string, number> = { tcp: 6, udp: 17, sctp: 132 };
export const PROTOCOL_NAMES: Record<number, string> = { 0: "fwmark", 6: "tcp", 17: "udp", 132: "sctp" };

export const SVC_F = { persistent: 0x1, hashed: 0x2, onePacket: 0x4, sched1: 0x8, sched2: 0x10, sched3: 0x20 };

export const FWD = { masq: 0, local: 1, tunnel: 2, route: 3, bypass: 4, fullnat: 5 } as const;
export type FwdName = keyof typeof FWD;
export const FWD_NAMES = Object.fromEntries(Object.entries(FWD).map(([k, v]) => [v, k])) as Record<number, FwdName>;

export const DEST_F_AVAILABLE = 1;
export const DEST_F_OVERLOAD = 2;

export const SETTINGS = {
  expire_nodest_conn: 0,
  expire_quiescent_template: 1,
  conn_reuse_mode: 2,
  sloppy_tcp: 3,
  conntrack: 4,
  lblc_expiration_ms: 5,
  lblcr_expiration_ms: 6,
  mh_table_index: 7,
  sh_table_bits: 8,
  udp_timeout_ms: 9,
} as const;
export type SettingName = keyof typeof SETTINGS;

export interface ServiceSpec {
  proto?: "tcp" | "udp" | "sctp";
  addr?: string; // omitted for fwmark services
  port?: number;
  fwmark?: number;
  af?: number; // needed for fwmark services (default IPv4)
  scheduler: string; // a name of SCHEDULERS
  flags?: string[]; // sh-port, sh-fallback, mh-port, mh-fallback, ops, flag-N
  persistent?: number; // seconds; absent or 0 = not persistent
  netmask?: string | number; // IPv4 dotted mask or IPv6 prefix length
}

export interface DestSpec {
  addr: string;
  port: number;
  weight?: number;
  upperThreshold?: number;
  lowerThreshold?: number;
  fwd?: FwdName;
}

export interface DestInfo {
  id: number;
  af: number;
  addr: string;
  port: number;
  weight: number;
  lastWeight: number;
  upperThreshold: number;
  lowerThreshold: number;
  flags: number;
  fwd: FwdName;
  activeConns: number;
  inactConns: number;
  persistConns: number;
  svcId: number;
  conns: bigint;
  inPkts: bigint;
  outPkts: bigint;
  inBytes: bigint;
  outBytes: bigint;
  available: boolean;
  overloaded: boolean;
}

export interface ServiceInfo {
  id: number;
  af: number;
  proto: string;
  addr: string;
  port: number;
  fwmark: number;
  scheduler: string;
  flags: number;
  timeout: number;
  netmask: number;
  conns: bigint;
  inPkts: bigint;
  outPkts: bigint;
  inBytes: bigint;
  outBytes: bigint;
  dests: DestInfo[]; // the kernel's list order (newest first)
}

export const TCP_STATES = [
  "NONE",
  "ESTABLISHED",
  "SYN_SENT",
  "SYN_RECV",
  "FIN_WAIT",
  "TIME_WAIT",
  "CLOSE",
  "CLOSE_WAIT",
  "LAST_ACK",
  "LISTEN",
  "SYNACK",
];
export const SCTP_STATES = [
  "NONE",
  "INIT1",
  "INIT",
  "C-SENT",
  "C-REPLIED",
  "C-WAIT",
  "COOKIE",
  "C-ECHOED",
  "ESTABLISHED",
  "S-SENT",
  "S-RECEIVED",
  "S-ACK-SENT",
  "REJECTED",
  "CLOSED",
];
export const TEMPLATE_STATES = ["NONE", "ASSURED"]; // a template is ASSURED once a connection of it is answered
export const CONN_F = {
  fwdMask: 0x7,
  hashed: 0x40,
  noOutput: 0x80,
  inactive: 0x100,
  template: L.CONN_F_TEMPLATE,
  onePacket: 0x2000,
};
export const TCP_FLAGS = { FIN: 1, SYN: 2, RST: 4, PSH: 8, ACK: 16 };
export const VERDICTS = ["not-ours", "forward", "drop"] as const;
export const CONN_DROP_REASONS: Record<number, string> = {
  1: "no destination available",
  2: "connection table full",
  3: "destination deleted",
  4: "reused tuple with confirmed conntrack",
  5: "port mismatch on non-persistent service",
  6: "no free full-NAT local port",
};

export interface PacketResult {
  verdict: (typeof VERDICTS)[number];
  conn: number;
  reason?: string;
  isNew: boolean;
}

export interface ConnInfo {
  index: number;
  af: number;
  proto: string; // tcp, udp, sctp, fwmark (a fwmark template's 0), or ip_N (a synced template's other protocol)
  protoNumber: number;
  caddr: string;
  vaddr: string;
  daddr: string;
  laddr: string;
  cport: number;
  vport: number;
  dport: number;
  lport: number;
  state: string;
  flags: number;
  template: boolean;
  active: boolean;
  destId: number;
  controlledBy: number;
  children: number;
  timeoutMs: number;
  expires: number;
  inPkts: number;
}

const compiled = new Map<boolean, WebAssembly.Module>();

// Node only; the browser (src/ui) fetches the same core.wasm and calls Core.fromBytes.
export function wasmPath(debug = false): string {
  return decodeURIComponent(
    new URL(`../../build/${debug ? "core.debug.wasm" : "core.wasm"}`, import.meta.url).pathname,
  );
}

// The message of an AssemblyScript abort: its strings are UTF-16 with their byte length in the 4 bytes
// before them (the runtime's object header); 0 is no string.
export function readWasmString(memory: WebAssembly.Memory, ptr: number): string | null {
  ptr >>>= 0;
  const buf = memory.buffer;
  if (ptr === 0 || ptr < 4 || ptr > buf.byteLength) return null;
  const bytes = new DataView(buf).getUint32(ptr - 4, true);
  if (bytes % 2 !== 0 || ptr + bytes > buf.byteLength) return null;
  return String.fromCharCode(...new Uint16Array(buf.slice(ptr, ptr + bytes)));
}

// A failed assertion or a trap the module raised itself (abort): where in assembly/ and what it said.
export class WasmAbort extends Error {
  constructor(
    readonly wasmMessage: string | null,
    readonly file: string | null,
    readonly line: number,
    readonly column: number,
  ) {
    super(`wasm abort: ${wasmMessage ?? "(no message)"} at ${file ?? "?"}:${line}:${column}`);
    this.name = "WasmAbort";
  }
}

// The scratch area's offsets (assembly/layout.ts), for a caller that reads records in place through
// Core.scratch and Core.dv because making objects would cost too much (the proxy's metrics scrape).
export * as LAYOUT from "../../assembly/layout.ts";

export class Core {
  readonly x: CoreExports;
  /** the scratch area's address in WASM memory (records at the LAYOUT offsets from here) */
  readonly scratch: number;

  private constructor(exports: CoreExports) {
    this.x = exports;
    this.scratch = exports.scratchPtr() >>> 0;
  }

  // Loads build/core.wasm (run `npm run build` first); WASMVS_DEBUG=1 picks the checked debug build.
  static async load(opts: { debug?: boolean; connCapacity?: number } = {}): Promise<Core> {
    const debug = opts.debug ?? (typeof process !== "undefined" && process.env.WASMVS_DEBUG === "1");
    let mod = compiled.get(debug);
    if (!mod) {
      let bytes: Uint8Array<ArrayBuffer>;
      try {
        const { readFileSync } = await import("node:fs");
        bytes = new Uint8Array(readFileSync(wasmPath(debug)));
      } catch {
        throw new Error(`${wasmPath(debug)} is missing: run 'npm run build${debug ? ":debug" : ""}' first`);
      }
      mod = await WebAssembly.compile(bytes);
      compiled.set(debug, mod);
    }
    return Core.fromModule(mod, opts.connCapacity);
  }

  // connCapacity: the connection table's fixed size (default 65,536 entries of 132 bytes, 68 of them resident
  // until an entry writes its cold line: docs/conn-table.md)
  static async fromBytes(bytes: BufferSource, connCapacity = 65536): Promise<Core> {
    return Core.fromModule(await WebAssembly.compile(bytes), connCapacity);
  }

  // Each Core is its own instance (its own tables); the compiled module is shared.
  static async fromModule(mod: WebAssembly.Module, connCapacity = 65536): Promise<Core> {
    let memory: WebAssembly.Memory | undefined;
    const inst = await WebAssembly.instantiate(mod, {
      env: {
        abort(msg: number, file: number, line: number, col: number) {
          const str = (p: number) => (memory ? readWasmString(memory, p) : null);
          throw new WasmAbort(str(msg), str(file), line >>> 0, col >>> 0);
        },
      },
    });
    const x = inst.exports as unknown as CoreExports;
    memory = x.memory;
    const core = new Core(x);
    core.x.connInit(connCapacity);
    return core;
  }

  // views are re-made per call: memory.grow detaches old ones
  // views kept until the memory grows (a grown memory has a new buffer): hot callers read them per packet
  private u8View?: Uint8Array;
  private dvView?: DataView;
  get u8(): Uint8Array {
    const b = this.x.memory.buffer;
    if (this.u8View?.buffer !== b) this.u8View = new Uint8Array(b);
    return this.u8View;
  }
  get dv(): DataView {
    const b = this.x.memory.buffer;
    if (this.dvView?.buffer !== b) this.dvView = new DataView(b);
    return this.dvView;
  }

  putAddr(addr: string, off = 0): number {
    const af = afOf(addr);
    this.u8.set(addrBytes(addr), this.scratch + off);
    return af;
  }

  private getAddr(af: number, off = 0): string {
    return formatAddr(af, this.u8.slice(this.scratch + off, this.scratch + off + 16));
  }

  // ---- services --------------------------------------------------------------------------------
  static schedulerId(name: string): number {
    const s = schedulerInfo(name);
    if (!s) throw new WasmvsError(-5, `scheduler '${name}' (known: ${SCHEDULERS.join(", ")})`);
    return s.id;
  }

  static serviceFlags(spec: ServiceSpec): number {
    let flags = 0;
    for (const f of spec.flags ?? []) {
      if (f === "ops" || f === "one-packet") flags |= SVC_F.onePacket;
      else if (Object.hasOwn(SCHED_FLAG_NAMES, f)) flags |= SCHED_FLAG_NAMES[f];
      else
        throw new WasmvsError(
          -11,
          `service flag '${f}' (known: ${["ops", ...Object.keys(SCHED_FLAG_NAMES)].join(", ")})`,
        );
    }
    if (spec.persistent) flags |= SVC_F.persistent;
    return flags;
  }

  static netmaskValue(af: number, netmask: string | number | undefined): number {
    if (netmask === undefined) return af === AF_INET6 ? 128 : 0xffffffff;
    if (af === AF_INET6) return Number(netmask);
    if (typeof netmask === "number") return netmask >>> 0;
    const b = netmask.split(".").map(Number);
    if (b.length !== 4 || b.some((x) => !(x >= 0 && x <= 255))) throw new WasmvsError(-10, `netmask '${netmask}'`);
    return ((b[0] << 24) | (b[1] << 16) | (b[2] << 8) | b[3]) >>> 0;
  }

  private describe(spec: ServiceSpec): string {
    return spec.fwmark ? `service fwmark ${spec.fwmark}` : `service ${spec.proto ?? "tcp"} ${spec.addr}:${spec.port}`;
  }

  addService(spec: ServiceSpec): number {
    const what = this.describe(spec);
    const sched = Core.schedulerId(spec.scheduler);
    const flags = Core.serviceFlags(spec);
    let af = spec.af ?? AF_INET,
      proto = 0;
    if (!spec.fwmark) {
      if (!spec.addr) throw new WasmvsError(-8, `${what}: an address or a fwmark is required`);
      af = this.putAddr(spec.addr);
      proto = PROTOCOLS[spec.proto ?? "tcp"];
      if (proto === undefined) throw new WasmvsError(-9, `${what}`);
    }
    const netmask = Core.netmaskValue(af, spec.netmask);
    return check(
      this.x.svcAdd(af, proto, spec.port ?? 0, spec.fwmark ?? 0, sched, flags, spec.persistent ?? 0, netmask),
      `add ${what}`,
    );
  }

  editService(id: number, spec: ServiceSpec): void {
    const af = this.serviceInfoRaw(id).af;
    check(
      this.x.svcEdit(
        id,
        Core.schedulerId(spec.scheduler),
        Core.serviceFlags(spec),
        spec.persistent ?? 0,
        Core.netmaskValue(af, spec.netmask),
      ),
      `edit ${this.describe(spec)}`,
    );
  }

  deleteService(id: number): void {
    check(this.x.svcDel(id), `delete service ${id}`);
    this.collectSoon();
  }
  flush(): void {
    this.x.svcFlush();
    this.collect();
  }

  // The module uses AssemblyScript's minimal runtime: no shadow stack on the hot path (about 3x faster
  // scheduling), and garbage is collected only when the host asks, between calls. Configuration changes
  // that drop objects call this; the packet path allocates nothing.
  collect(): void {
    this.collectPending = false;
    this.x.__collect();
  }

  // Deletions collect once when the current turn of the event loop ends, however many a change makes: each
  // collection marks the whole heap, so collecting after every one made deleting n services cost n².
  private collectPending = false;
  private collectSoon(): void {
    if (this.collectPending) return;
    this.collectPending = true;
    queueMicrotask(() => {
      if (this.collectPending) this.collect();
    });
  }

  findService(proto: string, addr: string, port: number): number {
    const af = this.putAddr(addr);
    return this.x.svcFind(af, PROTOCOLS[proto], port, 0);
  }
  findFwmark(fwmark: number, af = AF_INET): number {
    return this.x.svcFind(af, 0, 0, fwmark);
  }

  private serviceInfoRaw(id: number) {
    const n = check(this.x.svcInfo(id), `service ${id}`);
    const dv = this.dv,
      p = this.scratch;
    const af = dv.getInt32(p + L.SVC_AF, true);
    return {
      n,
      af,
      addr: this.getAddr(af, L.SVC_ADDR),
      proto: dv.getInt32(p + L.SVC_PROTO, true),
      port: dv.getUint32(p + L.SVC_PORT, true),
      fwmark: dv.getUint32(p + L.SVC_FWMARK, true),
      sched: dv.getInt32(p + L.SVC_SCHED, true),
      flags: dv.getUint32(p + L.SVC_FLAGS, true),
      timeout: dv.getUint32(p + L.SVC_TIMEOUT, true),
      netmask: dv.getUint32(p + L.SVC_NETMASK, true),
      conns: dv.getBigUint64(p + L.SVC_CONNS, true),
      inPkts: dv.getBigUint64(p + L.SVC_INPKTS, true),
      outPkts: dv.getBigUint64(p + L.SVC_OUTPKTS, true),
      inBytes: dv.getBigUint64(p + L.SVC_INBYTES, true),
      outBytes: dv.getBigUint64(p + L.SVC_OUTBYTES, true),
    };
  }

  service(id: number): ServiceInfo {
    const r = this.serviceInfoRaw(id);
    const dests: DestInfo[] = [];
    for (let i = 0; i < r.n; i++) dests.push(this.dest(check(this.x.svcDestAt(id, i), `service ${id} dest ${i}`)));
    return {
      id,
      af: r.af,
      proto: PROTOCOL_NAMES[r.proto],
      addr: r.fwmark ? "" : r.addr,
      port: r.port,
      fwmark: r.fwmark,
      scheduler: SCHEDULERS[r.sched] ?? `#${r.sched}`,
      flags: r.flags,
      timeout: r.timeout,
      netmask: r.netmask,
      conns: r.conns,
      inPkts: r.inPkts,
      outPkts: r.outPkts,
      inBytes: r.inBytes,
      outBytes: r.outBytes,
      dests,
    };
  }

  // ids of all live services, in id order
  serviceIds(): number[] {
    const ids: number[] = [];
    for (let i = 0, n = this.x.svcCapacity(); i < n; i++) if (this.x.svcInfo(i) >= 0) ids.push(i);
    return ids;
  }

  // ---- destinations --------------------------------------------------------------------------------
  private destArgs(svcId: number, d: DestSpec): [number, number, number, number, number, number, number] {
    const af = this.putAddr(d.addr);
    const fwd = FWD[d.fwd ?? "masq"];
    if (fwd === undefined) throw new WasmvsError(-12, `destination ${d.addr}:${d.port} forwarding '${d.fwd}'`);
    return [svcId, af, d.port, d.weight ?? 1, d.upperThreshold ?? 0, d.lowerThreshold ?? 0, fwd];
  }

  addDest(svcId: number, d: DestSpec): number {
    return check(this.x.destAdd(...this.destArgs(svcId, d)), `add destination ${d.addr}:${d.port} to service ${svcId}`);
  }

  editDest(svcId: number, d: DestSpec): number {
    return check(
      this.x.destEdit(...this.destArgs(svcId, d)),
      `edit destination ${d.addr}:${d.port} of service ${svcId}`,
    );
  }

  deleteDest(svcId: number, addr: string, port: number): void {
    const af = this.putAddr(addr);
    check(this.x.destDel(svcId, af, port), `delete destination ${addr}:${port} of service ${svcId}`);
    this.collectSoon();
  }

  dest(id: number): DestInfo {
    check(this.x.destInfo(id), `destination ${id}`);
    const dv = this.dv,
      p = this.scratch;
    const af = dv.getInt32(p + L.DEST_AF, true);
    const flags = dv.getUint32(p + L.DEST_FLAGS, true);
    return {
      id,
      af,
      addr: this.getAddr(af, L.DEST_ADDR),
      port: dv.getUint32(p + L.DEST_PORT, true),
      weight: dv.getInt32(p + L.DEST_WEIGHT, true),
      lastWeight: dv.getInt32(p + L.DEST_LAST_WEIGHT, true),
      upperThreshold: dv.getUint32(p + L.DEST_UTHRESHOLD, true),
      lowerThreshold: dv.getUint32(p + L.DEST_LTHRESHOLD, true),
      flags,
      fwd: FWD_NAMES[dv.getUint32(p + L.DEST_FWD, true)],
      activeConns: dv.getUint32(p + L.DEST_ACTIVE, true),
      inactConns: dv.getUint32(p + L.DEST_INACTIVE, true),
      persistConns: dv.getUint32(p + L.DEST_PERSIST, true),
      svcId: dv.getInt32(p + L.DEST_SVC, true),
      conns: dv.getBigUint64(p + L.DEST_CONNS, true),
      inPkts: dv.getBigUint64(p + L.DEST_INPKTS, true),
      outPkts: dv.getBigUint64(p + L.DEST_OUTPKTS, true),
      inBytes: dv.getBigUint64(p + L.DEST_INBYTES, true),
      outBytes: dv.getBigUint64(p + L.DEST_OUTBYTES, true),
      available: (flags & DEST_F_AVAILABLE) !== 0,
      overloaded: (flags & DEST_F_OVERLOAD) !== 0,
    };
  }

  // Sets a destination's counters as if it had that many connections (applies OVERLOAD rules).
  setLoad(destId: number, active: number, inactive: number): void {
    check(this.x.destSetLoad(destId, active, inactive), `set load of destination ${destId}`);
  }

  // ---- scheduling without creating a connection ---------------------------------------------------
  // Returns the chosen destination id, or -1 for "no destination available".
  schedule(
    svcId: number,
    src: string,
    sport: number,
    opts: { dst?: string; dport?: number; proto?: string; now?: number } = {},
  ): number {
    const af = this.putAddr(src, L.ARG_ADDR);
    if (opts.dst) this.putAddr(opts.dst, L.ARG_DST);
    else this.u8.fill(0, this.scratch + L.ARG_DST, this.scratch + L.ARG_DST + 16);
    const r = this.x.schedule(svcId, af, PROTOCOLS[opts.proto ?? "tcp"], sport, opts.dport ?? 0, opts.now ?? 0);
    return r === -100 ? -1 : check(r, `schedule on service ${svcId}`);
  }

  schedFailReason(): "no destination available" | "all destinations are overloaded" | null {
    const r = this.x.schedFailReason();
    return r === 0 ? null : r === 2 ? "all destinations are overloaded" : "no destination available";
  }

  // ---- connections ---------------------------------------------------------------------------------
  // One packet by its numbers (no bytes): dir "in" client->service, "out" real server->client.
  // flags: TCP flags (FIN 1, SYN 2, RST 4, ACK 16) or the SCTP chunk type.
  packet(
    dir: "in" | "out",
    proto: string,
    src: string,
    sport: number,
    dst: string,
    dport: number,
    opts: { flags?: number; len?: number; mark?: number; now?: number } = {},
  ): PacketResult {
    const af = this.putAddr(src, L.ARG_ADDR);
    this.putAddr(dst, L.ARG_DST);
    const v = this.x.packet(
      dir === "in" ? 0 : 1,
      af,
      PROTOCOLS[proto],
      sport,
      dport,
      opts.flags ?? 0,
      opts.len ?? 60,
      opts.mark ?? 0,
      opts.now ?? 0,
    );
    return {
      verdict: VERDICTS[v],
      conn: this.x.lastConn(),
      reason: v === 2 ? CONN_DROP_REASONS[this.x.lastDropReason()] : undefined,
      isNew: !!this.x.lastWasNew(),
    };
  }

  // packet() for a caller that keeps its addresses encoded (addrBytes: 16 bytes, network order) and wants
  // no object back: the verdict's code (VERDICTS), the entry in lastResult(). The socket proxy feeds every
  // connection's SYN, handshake, FIN and close through here.
  packetBytes(
    dir: "in" | "out",
    proto: number,
    af: number,
    src: Uint8Array,
    sport: number,
    dst: Uint8Array,
    dport: number,
    flags: number,
    len: number,
    now: number,
  ): number {
    const u8 = this.u8;
    u8.set(src, this.scratch + L.ARG_ADDR);
    u8.set(dst, this.scratch + L.ARG_DST);
    return this.x.packet(dir === "in" ? 0 : 1, af, proto, sport, dport, flags, len, 0, now);
  }

  /** A reply from the real server on connection entry `i`, which the caller holds (socket mode): the reply's
   * tuple alone can name another entry. Not ours (0) unless `i` is live with this protocol (6, 17) and client
   * and virtual ports. flags: TCP flags. Returns the verdict code, as packetBytes(). */
  replyTo(i: number, proto: number, cport: number, vport: number, flags: number, len: number, now: number): number {
    return this.x.packetReplyTo(i, proto, cport, vport, flags, len, now);
  }

  // packet()'s result for the verdict code packetBytes() returned.
  lastResult(v: number): PacketResult {
    return {
      verdict: VERDICTS[v],
      conn: this.x.lastConn(),
      reason: v === 2 ? CONN_DROP_REASONS[this.x.lastDropReason()] : undefined,
      isNew: !!this.x.lastWasNew(),
    };
  }

  // Moves the clock to now (ms): expires due connections and runs scheduler timers.
  advance(now: number): number {
    return this.x.advance(now);
  }

  /** Frees connection i now if its destination was deleted (see connExpireOrphan in assembly/index.ts). */
  expireOrphan(i: number, now: number): boolean {
    return i >= 0 && !!this.x.connExpireOrphan(i, now);
  }

  conn(i: number): ConnInfo | null {
    if (this.x.connInfo(i) < 0) return null;
    const dv = this.dv,
      p = this.scratch;
    const af = dv.getInt32(p + L.CONN_AF, true);
    if (!dv.getUint32(p + L.CONN_LIVE, true)) return null;
    const proto = dv.getInt32(p + L.CONN_PROTO, true);
    const flags = dv.getUint32(p + L.CONN_FLAGS, true);
    const state = dv.getInt32(p + L.CONN_STATE, true);
    return {
      index: i,
      af,
      proto: PROTOCOL_NAMES[proto] ?? `ip_${proto}`,
      protoNumber: proto,
      caddr: this.getAddr(af, L.CONN_CADDR),
      vaddr: this.getAddr(af, L.CONN_VADDR),
      daddr: this.getAddr(af, L.CONN_DADDR),
      laddr: this.getAddr(af, L.CONN_LADDR),
      cport: dv.getUint32(p + L.CONN_CPORT, true),
      vport: dv.getUint32(p + L.CONN_VPORT, true),
      dport: dv.getUint32(p + L.CONN_DPORT, true),
      lport: dv.getUint32(p + L.CONN_LPORT, true),
      state:
        flags & CONN_F.template
          ? (TEMPLATE_STATES[state] ?? "?")
          : proto === 6
            ? TCP_STATES[state]
            : proto === 132
              ? SCTP_STATES[state]
              : "UDP",
      flags,
      template: (flags & CONN_F.template) !== 0,
      active: (flags & CONN_F.inactive) === 0,
      destId: dv.getInt32(p + L.CONN_DEST, true),
      controlledBy: dv.getInt32(p + L.CONN_CONTROLLER, true),
      children: dv.getUint32(p + L.CONN_CHILDREN, true),
      timeoutMs: dv.getUint32(p + L.CONN_TIMEOUT, true),
      expires: dv.getFloat64(p + L.CONN_EXPIRES, true),
      inPkts: dv.getUint32(p + L.CONN_INPKTS, true),
    };
  }

  /** Whether connection-table entry i is live, no template, and of this protocol and ports: the socket
   * proxy's check that a flow still owns its entry, without making a ConnInfo per flow per tick. */
  connMatches(i: number, proto: number, cport: number, vport: number): boolean {
    if (i < 0 || this.x.connInfo(i) < 0) return false;
    const dv = this.dv,
      p = this.scratch;
    return (
      dv.getUint32(p + L.CONN_LIVE, true) !== 0 &&
      dv.getInt32(p + L.CONN_PROTO, true) === proto &&
      dv.getUint32(p + L.CONN_VPORT, true) === vport &&
      dv.getUint32(p + L.CONN_CPORT, true) === cport &&
      (dv.getUint32(p + L.CONN_FLAGS, true) & CONN_F.template) === 0
    );
  }

  // Every live entry (connections and templates), in table order.
  conns(): ConnInfo[] {
    return [...this.eachConn()];
  }

  /** The live entries one at a time, in table order (a caller may yield between them: -Lnc of a large table). */
  *eachConn(): Generator<ConnInfo> {
    for (let i = this.x.connNext(0); i >= 0; i = this.x.connNext(i + 1)) {
      const c = this.conn(i);
      if (c) yield c;
    }
  }

  connStats() {
    return {
      capacity: this.x.connCapacity() >>> 0,
      live: this.x.connLive() >>> 0,
      templates: this.x.connTemplates() >>> 0,
      refusedFull: this.x.connRefusedFull(),
      evictedFinished: this.x.connEvicted(1),
      evictedInactive: this.x.connEvicted(0),
    };
  }

  // ipvsadm --set tcp tcpfin udp (seconds; 0 leaves one unchanged) and --timeout
  setTimeouts(tcp: number, tcpfin: number, udp: number): void {
    this.x.setTimeouts(tcp, tcpfin, udp);
  }
  timeouts() {
    return { tcp: this.x.getTimeout(0), tcpfin: this.x.getTimeout(1), udp: this.x.getTimeout(2) };
  }

  // The full-NAT source address for its family.
  setSnat(addr: string): void {
    const af = this.putAddr(addr);
    this.x.setSnatAddr(af);
  }

  // ---- settings ---------------------------------------------------------------------------------------
  set(name: SettingName, value: number): void {
    const id = SETTINGS[name];
    if (id === undefined) throw new WasmvsError(-16, `setting '${name}' (known: ${Object.keys(SETTINGS).join(", ")})`);
    check(this.x.setSetting(id, BigInt(value)), `set ${name}=${value}`);
  }

  seedRandom(seed: number | bigint): void {
    this.x.setRandomSeed(BigInt.asUintN(64, BigInt(seed)));
  }
}

export { AF_INET, AF_INET6 };
