// The host's side of the sync codec (assembly/sync/codec.ts): datagrams in and out of WASM memory, the
// decoded entries and the counters by name. The codec itself runs in the core; this only copies bytes.
import * as L from "../../assembly/layout.ts";
import { formatAddr } from "./addr.ts";
import type { Core } from "./index.ts";

// Counter numbers of assembly/sync/codec.ts (SR_* and SS_*), by the name the metrics and -L show
export const SYNC_DROPS = {
  short: 1,
  bad_size: 2,
  foreign_syncid: 3,
  oversized: 4,
  truncated: 5,
  entry_version: 6,
  bad_entry: 7,
  v0_unreadable: 8,
} as const;
export const SYNC_SKIPS = {
  mandatory_option: 9,
  protocol: 10,
  state: 11,
  pe_data: 12,
  no_dest: 13,
  table_full: 14,
  stale: 15,
  queue_full: 16,
} as const;
export const SYNC_COUNTS = {
  messages: 17,
  entries: 18,
  created: 19,
  updated: 20,
  v0_messages: 21,
  sent_entries: 22,
  sent_messages: 23,
} as const;
export type SyncCounter = keyof typeof SYNC_DROPS | keyof typeof SYNC_SKIPS | keyof typeof SYNC_COUNTS;
const ALL: Record<string, number> = { ...SYNC_DROPS, ...SYNC_SKIPS, ...SYNC_COUNTS };
const REASON_NAMES = Object.fromEntries(Object.entries(ALL).map(([k, v]) => [v, k])) as Record<number, string>;

/** The largest datagram the codec takes (the receive buffer's size). */
const SYNC_RX_MAX = 65536;

export interface SyncEntry {
  af: number;
  protocol: number;
  state: number;
  flags: number;
  caddr: string;
  cport: number;
  vaddr: string;
  vport: number;
  daddr: string;
  dport: number;
  fwmark: number;
  timeout: number; // seconds; 0 from a version 0 message
  seqData: boolean;
  peData: boolean;
  peName: boolean;
  local?: { addr: string; port: number }; // full-NAT's local side (our skippable option)
  skipped?: string; // why a backup would not use it
}

interface SyncResult {
  /** entries read (whatever became of each), or 0 with `dropped` when the message was refused whole */
  entries: number;
  dropped?: string;
}

function put(core: Core, msg: Uint8Array): number {
  const len = msg.length;
  if (len > SYNC_RX_MAX) return SYNC_RX_MAX + 1; // refused as oversized without a copy
  core.u8.set(msg, core.x.syncRxBuffer() >>> 0);
  return len;
}

/**
 * One datagram into the connection table, as a backup with `syncid` (0: any) and receive limit `maxlen`
 * (0: none) takes it. now: the data plane's clock (ms).
 */
export function syncReceive(core: Core, msg: Uint8Array, syncid: number, maxlen: number, now: number): SyncResult {
  const r = core.x.syncReceive(put(core, msg), syncid, maxlen, 0, now);
  return r < 0 ? { entries: 0, dropped: REASON_NAMES[-r] } : { entries: r };
}

/** One datagram decoded, nothing changed: the entries as the wire has them. */
export function syncDecode(core: Core, msg: Uint8Array, syncid = 0): SyncResult & { list: SyncEntry[] } {
  const r = core.x.syncReceive(put(core, msg), syncid, 0, 1, 0);
  if (r < 0) return { entries: 0, dropped: REASON_NAMES[-r], list: [] };
  const base = core.x.syncRecords() >>> 0;
  const list: SyncEntry[] = [];
  const u8 = core.u8,
    dv = core.dv;
  for (let k = 0; k < Math.min(r, 256); k++) {
    const p = base + k * L.SYNC_REC_SIZE;
    const af = u8[p + L.SYNC_REC_AF];
    const addr = (off: number) => formatAddr(af, u8.slice(p + off, p + off + 16));
    const opts = dv.getUint32(p + L.SYNC_REC_OPTS, true);
    const verdict = dv.getInt32(p + L.SYNC_REC_VERDICT, true);
    const e: SyncEntry = {
      af,
      protocol: u8[p + L.SYNC_REC_PROTO],
      state: dv.getUint16(p + L.SYNC_REC_STATE, true),
      flags: dv.getUint32(p + L.SYNC_REC_FLAGS, true),
      caddr: addr(L.SYNC_REC_CADDR),
      cport: dv.getUint16(p + L.SYNC_REC_CPORT, true),
      vaddr: addr(L.SYNC_REC_VADDR),
      vport: dv.getUint16(p + L.SYNC_REC_VPORT, true),
      daddr: addr(L.SYNC_REC_DADDR),
      dport: dv.getUint16(p + L.SYNC_REC_DPORT, true),
      fwmark: dv.getUint32(p + L.SYNC_REC_FWMARK, true),
      timeout: dv.getUint32(p + L.SYNC_REC_TIMEOUT, true),
      seqData: (opts & 1) !== 0,
      peData: (opts & 2) !== 0,
      peName: (opts & 4) !== 0,
    };
    if (opts & 8) e.local = { addr: addr(L.SYNC_REC_LADDR), port: dv.getUint16(p + L.SYNC_REC_LPORT, true) };
    if (verdict > 0) e.skipped = REASON_NAMES[verdict];
    list.push(e);
  }
  return { entries: r, list };
}

/** Every counter by name. */
export function syncStats(core: Core): Record<SyncCounter, number> {
  const out = {} as Record<SyncCounter, number>;
  for (const [k, v] of Object.entries(ALL)) out[k as SyncCounter] = core.x.syncStat(v);
  return out;
}

/**
 * The master's finished messages (copies), taken out of the core. ageMs: a part-filled message older than
 * this is finished first (the kernel's 2 s; 0: now).
 */
export function syncTakeMessages(core: Core, now: number, ageMs: number): Uint8Array[] {
  const n = core.x.syncFlush(now, ageMs);
  const out: Uint8Array[] = [];
  for (let k = 0; k < n; k++) {
    const p = core.x.syncOutPtr(k) >>> 0,
      len = core.x.syncOutLen(k);
    out.push(core.u8.slice(p, p + len));
  }
  core.x.syncOutDone(n);
  return out;
}

/**
 * A backup's area for datagrams read several at once (recvmmsg): `max` slots of `slot` bytes in WASM memory
 * and a u32 length for each (the datagram's own length: one longer than its slot was cut off, and is refused
 * by that length). The reader fills them through `memory`; receive() hands the first n to the table.
 */
export class SyncRxBatch {
  readonly lens: number;
  readonly data: number;
  constructor(
    private core: Core,
    readonly max: number,
    readonly slot: number,
  ) {
    this.lens = core.x.syncRxBatch(max, slot) >>> 0;
    if (!this.lens) throw new Error(`the core refused a sync receive area of ${max} × ${slot} bytes`);
    this.data = core.x.syncRxBatchData() >>> 0;
  }
  get memory(): ArrayBuffer {
    return this.core.x.memory.buffer as ArrayBuffer;
  }
  /** The first n datagrams, each as syncReceive takes one; the entries read over all of them. */
  receive(n: number, syncid: number, maxlen: number, now: number): number {
    return this.core.x.syncReceiveBatch(n, syncid, maxlen, now);
  }
}

/**
 * The master's finished messages in place, for a sender that takes them all at once: their {u32 offset,
 * u32 length} list in `memory` and how many; done(k) lets go of the first k (the rest wait in the core).
 */
export function syncOutPending(core: Core, now: number, ageMs: number) {
  const n = core.x.syncFlush(now, ageMs);
  return {
    n,
    memory: core.x.memory.buffer as ArrayBuffer,
    list: n ? core.x.syncOutList() >>> 0 : 0,
    done: (k: number) => core.x.syncOutDone(k),
  };
}
