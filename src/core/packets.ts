// The packet path from the host: a batch of raw IPv4/IPv6 packets (starting at the IP header) written
// into the WASM batch area, run with one call, results and rewritten bytes read back. The layout of the
// area is in assembly/packet/exports.ts; parse and rewrite decisions are in assembly/packet/path.ts.
import { type Core, CONN_DROP_REASONS, FWD_NAMES, VERDICTS, type FwdName } from "./index.ts";

export const DESC_SIZE = 32;

// Drop reasons by number: 1..6 from the connection logic, 16.. from the packet path.
export const PACKET_DROP_REASONS: Record<number, string> = {
  ...CONN_DROP_REASONS,
  16: "truncated",
  17: "bad IP version",
  18: "bad IPv4 header length",
  19: "IP length beyond packet",
  20: "bad IPv4 header checksum",
  21: "fragment",
  22: "unsupported IPv6 extension header",
  23: "bad TCP data offset",
  24: "bad UDP length",
  25: "IPv6 UDP zero checksum",
  26: "TTL exceeded",
  27: "bad descriptor",
};
// Short names for counters and logs.
const PACKET_DROP_KEYS: Record<number, string> = {
  1: "no_dest",
  2: "table_full",
  3: "dest_gone",
  4: "reuse_conntrack",
  5: "port_mismatch",
  6: "no_local_port",
  16: "truncated",
  17: "bad_version",
  18: "bad_ihl",
  19: "bad_total_length",
  20: "bad_ip_csum",
  21: "fragment",
  22: "bad_ext_hdr",
  23: "bad_tcp_doff",
  24: "bad_udp_length",
  25: "udp6_zero_csum",
  26: "ttl_exceeded",
  27: "bad_descriptor",
};
export const REASON = {
  noDest: 1,
  tableFull: 2,
  destGone: 3,
  reuseConntrack: 4,
  portMismatch: 5,
  noLocalPort: 6,
  truncated: 16,
  badVersion: 17,
  badIhl: 18,
  badTotalLength: 19,
  badIpCsum: 20,
  fragment: 21,
  badExtHdr: 22,
  badTcpDoff: 23,
  badUdpLength: 24,
  udp6ZeroCsum: 25,
  ttlExceeded: 26,
  badDescriptor: 27,
} as const;
const FWD_NONE = 255;
const RESULT_F = { new: 1, rewritten: 2 };

type Direction = "in" | "out" | 0 | 1;

interface PacketOutcome {
  verdict: (typeof VERDICTS)[number] | `?${number}`; // ?N: a code this host does not know
  verdictCode: number; // 0 not ours, 1 forward, 2 drop
  reasonCode: number; // 0 unless dropped
  reason?: string;
  fwd?: FwdName; // the connection's forwarding method
  conn: number; // connection index, -1 none
  dest: number; // destination id, -1 none
  isNew: boolean;
  rewritten: boolean;
  l4Offset: number;
  proto: number;
  ipVersion: number;
}

export class PacketBatch {
  readonly core: Core;
  readonly maxPackets: number;
  readonly maxBytes: number;
  readonly desc: number; // descriptor area pointer
  readonly data: number; // data area pointer
  count = 0; // packets queued
  used = 0; // data bytes used
  private align: number;

  // align: each packet starts at a multiple of this (default 8)
  constructor(core: Core, opts: { maxPackets?: number; maxBytes?: number; align?: number } = {}) {
    this.core = core;
    this.maxPackets = opts.maxPackets ?? 256;
    this.maxBytes = opts.maxBytes ?? this.maxPackets * 2048;
    this.align = opts.align ?? 8;
    if (core.x.DESC_SIZE.value !== DESC_SIZE) {
      throw new Error(`this core.wasm has ${core.x.DESC_SIZE.value}-byte packet descriptors, the host ${DESC_SIZE}`);
    }
    const d = core.x.batchInit(this.maxPackets, this.maxBytes) >>> 0;
    if (d === 0) throw new Error(`batch area of ${this.maxPackets} packets / ${this.maxBytes} bytes refused`);
    this.desc = d;
    this.data = core.x.batchDataPtr() >>> 0;
  }

  clear(): void {
    this.count = 0;
    this.used = 0;
  }

  // Queues a packet; returns its index, or -1 when the batch is full.
  add(bytes: Uint8Array, opts: { dir?: Direction; mark?: number } = {}): number {
    const at = Math.ceil(this.used / this.align) * this.align;
    if (this.count >= this.maxPackets || at + bytes.length > this.maxBytes) return -1;
    const u8 = this.core.u8; // fresh views: memory may have grown
    u8.set(bytes, this.data + at);
    const i = this.count++;
    this.setDescriptor(i, at, bytes.length, opts.dir ?? 0, opts.mark ?? 0);
    this.used = at + bytes.length;
    return i;
  }

  // Low level: a descriptor by hand (the fuzzer points them anywhere).
  setDescriptor(i: number, offset: number, length: number, dir: Direction, mark = 0): void {
    const dv = this.core.dv,
      p = this.desc + i * DESC_SIZE;
    dv.setUint32(p, offset >>> 0, true);
    dv.setUint32(p + 4, length >>> 0, true);
    dv.setUint32(p + 8, dir === "out" || dir === 1 ? 1 : dir === "in" || dir === 0 ? 0 : (dir as number) >>> 0, true);
    dv.setUint32(p + 12, mark >>> 0, true);
  }

  // Runs the queued packets (or n descriptors). Returns the number processed.
  run(nowMs = 0, n = this.count): number {
    return this.core.x.processBatch(n, nowMs);
  }

  // Zero-copy I/O: `fill` writes packets and descriptors straight into the area (the WASM memory, with
  // the descriptor and data pointers; packet i at data + offset) and returns how many; the batch runs
  // once; `drain` reads verdicts and rewritten bytes in place. The memory is passed fresh to each (it
  // may have grown). Returns the number of packets; `time.wasmNs` accumulates the batch's own run time.
  cycle(
    fill: (memory: ArrayBuffer, desc: number, data: number) => number,
    drain: (memory: ArrayBuffer, desc: number, data: number, n: number) => void,
    nowMs: number,
    time?: { wasmNs: number },
  ): number {
    const n = Math.min(fill(this.core.x.memory.buffer, this.desc, this.data), this.maxPackets);
    if (n <= 0) return 0;
    const t0 = time ? performance.now() : 0;
    this.core.x.processBatch(n, nowMs);
    if (time) time.wasmNs += (performance.now() - t0) * 1e6;
    this.count = n;
    drain(this.core.x.memory.buffer, this.desc, this.data, n);
    return n;
  }

  verdictCode(i: number): number {
    return this.core.u8[this.desc + i * DESC_SIZE + 16];
  }

  result(i: number): PacketOutcome {
    const dv = this.core.dv,
      p = this.desc + i * DESC_SIZE;
    const v = dv.getUint8(p + 16),
      r = dv.getUint8(p + 17),
      fwd = dv.getUint8(p + 18),
      f = dv.getUint8(p + 19);
    return {
      verdict: VERDICTS[v] ?? `?${v}`,
      verdictCode: v,
      reasonCode: r,
      reason: v === 2 ? (PACKET_DROP_REASONS[r] ?? `reason ${r}`) : undefined,
      fwd: fwd === FWD_NONE ? undefined : FWD_NAMES[fwd],
      conn: dv.getInt32(p + 20, true),
      dest: dv.getInt32(p + 24, true),
      isNew: (f & RESULT_F.new) !== 0,
      rewritten: (f & RESULT_F.rewritten) !== 0,
      l4Offset: dv.getUint16(p + 28, true),
      proto: dv.getUint8(p + 30),
      ipVersion: dv.getUint8(p + 31),
    };
  }

  results(): PacketOutcome[] {
    const out: PacketOutcome[] = [];
    for (let i = 0; i < this.count; i++) out.push(this.result(i));
    return out;
  }

  // A copy of packet i's bytes as they are now (rewritten in place by run()).
  bytes(i: number): Uint8Array {
    const dv = this.core.dv,
      p = this.desc + i * DESC_SIZE;
    const off = dv.getUint32(p, true),
      len = dv.getUint32(p + 4, true);
    return this.core.u8.slice(this.data + off, this.data + off + len);
  }

  // One packet through a fresh batch run (tests, traces): its outcome and its bytes afterwards.
  one(
    bytes: Uint8Array,
    opts: { dir?: Direction; mark?: number; now?: number } = {},
  ): PacketOutcome & { out: Uint8Array } {
    this.clear();
    this.add(bytes, opts);
    this.run(opts.now ?? 0);
    return { ...this.result(0), out: this.bytes(0) };
  }
}

// Global packet-path counters (since the last reset).
export function packetCounters(core: Core): { verdicts: Record<string, number>; drops: Record<string, number> } {
  const verdicts: Record<string, number> = {};
  VERDICTS.forEach((name, v) => (verdicts[name] = core.x.packetVerdictCount(v)));
  const drops: Record<string, number> = {};
  for (const [code, key] of Object.entries(PACKET_DROP_KEYS)) {
    const n = core.x.packetDropCount(Number(code));
    if (n) drops[key] = n;
  }
  return { verdicts, drops };
}
export function resetPacketCounters(core: Core): void {
  core.x.packetResetCounters();
}
// 1: the kernel's TTL handling (default: decrement on forward, drop at <= 1), 0: leave TTL alone.
export function setTtlMode(core: Core, on: boolean): void {
  core.x.packetSetTtlMode(on ? 1 : 0);
}
