// sh: source hashing (ip_vs_sh.c). A table of 2^shTableBits buckets (256 by default) is filled by walking
// the destination list cyclically, each destination taking max(weight, 1) consecutive buckets, and is
// rebuilt after every add, delete and update. The client address (plus its port with sh-port) picks the
// bucket; sh-fallback probes (2h + k) & mask, k = 0.., when the chosen destination is unusable.
import { IPPROTO_TCP, IPPROTO_UDP, IPPROTO_SCTP, SVC_F_SCHED1, SVC_F_SCHED2 } from "../common";
import { Dest } from "../dest/dest";
import { Service } from "../service/service";
import { PacketInfo } from "../packet/info";
import { settings } from "../settings";
import { hash32 } from "../hash/hash32";
import { Scheduler } from "./scheduler";
import {
  traceOn,
  traceRec,
  tw,
  W_HKEY,
  W_HPORT,
  W_BUCKET,
  W_TSIZE,
  W_BDEST,
  W_PROBES,
  W_FALLBACK,
  W_REJECT,
  W_PATHLEN,
  W_PATH,
  PATH_MAX,
  REJ_NONE,
  REJ_EMPTY,
  REJ_WEIGHT0,
  REJ_OVERLOADED,
  Q_TABLE_SIZE,
  Q_SLOT_DEST,
} from "../trace";

export const SVC_F_SCHED_SH_FALLBACK: u32 = SVC_F_SCHED1;
export const SVC_F_SCHED_SH_PORT: u32 = SVC_F_SCHED2;

// the kernel's is_unavailable(): quiesced (weight <= 0) or over its connection threshold
@inline export function unusable(d: Dest): bool {
  return d.weight <= 0 || d.overloaded();
}

// The host-order port the hash includes: the source port with the service's port flag and a protocol that
// has ports, else 0 (ip_vs_sh_get_port / ip_vs_mh_get_port).
@inline export function hashPort(svc: Service, p: PacketInfo, flag: u32): u32 {
  if ((svc.flags & flag) == 0) return 0;
  const pr = p.proto;
  return pr == IPPROTO_TCP || pr == IPPROTO_UDP || pr == IPPROTO_SCTP ? p.sport & 0xffff : 0;
}

export class SourceHashing extends Scheduler {
  bits: i32 = 8;
  mask: u32 = 255;
  buckets: StaticArray<Dest | null> = new StaticArray<Dest | null>(0);

  init(svc: Service): void {
    this.reassign(svc);
  }
  done(svc: Service): void {
    this.buckets = new StaticArray<Dest | null>(0);
  }
  addDest(svc: Service, d: Dest): void {
    this.reassign(svc);
  }
  delDest(svc: Service, d: Dest): void {
    this.reassign(svc);
  }
  updDest(svc: Service, d: Dest): void {
    this.reassign(svc);
  }

  // ip_vs_sh_reassign: bucket i takes the current destination, which moves on after max(weight, 1) buckets
  reassign(svc: Service): void {
    const bits = settings.shTableBits;
    const size = 1 << bits;
    if (bits != this.bits || this.buckets.length != size) {
      this.bits = bits;
      this.mask = <u32>(size - 1);
      this.buckets = new StaticArray<Dest | null>(size);
    }
    const tbl = this.buckets;
    const ds = svc.dests;
    const n = ds.length;
    if (n == 0) {
      for (let i = 0; i < size; i++) unchecked((tbl[i] = null));
      return;
    }
    let at = 0,
      count = 0;
    for (let i = 0; i < size; i++) {
      const d = unchecked(ds[at]);
      unchecked((tbl[i] = d));
      if (++count >= d.weight) {
        count = 0;
        if (++at == n) at = 0;
      }
    }
  }

  // ip_vs_sh_hashkey: (offset + hash_32(port + addr, bits)) & mask
  @inline private key(fold: u32, port: u32, offset: u32): i32 {
    return <i32>((offset + hash32(port + fold, this.bits)) & this.mask);
  }

  schedule(svc: Service, p: PacketInfo, now: i64): Dest | null {
    const tbl = this.buckets;
    if (tbl.length == 0) {
      if (traceOn) traceRec(svc.schedId, svc.id, -1);
      return null;
    }
    const fold = p.srcFold();
    const port = hashPort(svc, p, SVC_F_SCHED_SH_PORT);
    const ih = this.key(fold, port, 0);
    let d = unchecked(tbl[ih]);
    if (!d) {
      if (traceOn) this.trace(svc, fold, port, ih, 0, null);
      return null;
    }
    if (!unusable(d)) {
      if (traceOn) this.trace(svc, fold, port, ih, 0, d);
      return d;
    }
    if ((svc.flags & SVC_F_SCHED_SH_FALLBACK) == 0) {
      if (traceOn) this.trace(svc, fold, port, ih, 0, null);
      return null;
    }
    // loop around the table starting from the original hash
    const size = <u32>tbl.length;
    let k: u32 = 0;
    for (; k < size; k++) {
      const roffset = (k + <u32>ih) & this.mask;
      d = unchecked(tbl[this.key(fold, port, roffset)]);
      if (!d) {
        k++;
        break;
      }
      if (!unusable(d)) {
        if (traceOn) this.trace(svc, fold, port, ih, k + 1, d);
        return d;
      }
    }
    if (traceOn) this.trace(svc, fold, port, ih, k, null);
    return null;
  }

  // Tracing: the first bucket, and the fallback's probe path (the same keys the loop above computed).
  private trace(svc: Service, fold: u32, port: u32, ih: i32, probes: u32, d: Dest | null): void {
    const r = traceRec(svc.schedId, svc.id, d ? d.id : -1);
    const tbl = this.buckets;
    const first = unchecked(tbl[ih]);
    tw(r, W_HKEY, <i32>fold);
    tw(r, W_HPORT, <i32>port);
    tw(r, W_BUCKET, ih);
    tw(r, W_TSIZE, tbl.length);
    tw(r, W_BDEST, first ? first.id : -1);
    tw(r, W_PROBES, <i32>probes);
    tw(r, W_FALLBACK, (svc.flags & SVC_F_SCHED_SH_FALLBACK) != 0 ? 1 : 0);
    tw(
      r,
      W_REJECT,
      !first ? REJ_EMPTY : first.weight <= 0 ? REJ_WEIGHT0 : first.overloaded() ? REJ_OVERLOADED : REJ_NONE,
    );
    const n = probes < <u32>PATH_MAX ? <i32>probes : PATH_MAX;
    tw(r, W_PATHLEN, n);
    for (let k = 0; k < n; k++) {
      const b = this.key(fold, port, (<u32>k + <u32>ih) & this.mask);
      const x = unchecked(tbl[b]);
      tw(r, W_PATH + 2 * k, b);
      tw(r, W_PATH + 2 * k + 1, x ? x.id : -1);
    }
  }

  traceQuery(svc: Service, q: i32, i: i32): i32 {
    if (q == Q_TABLE_SIZE) return this.tableSize();
    if (q == Q_SLOT_DEST) return this.slotDest(i);
    return -1;
  }

  // debugging / tests: the table's size and the destination id in bucket i (-1 when empty)
  tableSize(): i32 {
    return this.buckets.length;
  }
  slotDest(i: i32): i32 {
    if (i < 0 || i >= this.buckets.length) return -1;
    const d = unchecked(this.buckets[i]);
    return d ? d.id : -1;
  }
}
