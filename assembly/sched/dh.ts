// dh: destination hashing (ip_vs_dh.c). 256 buckets dealt round-robin over the destination list (weights
// play no part), rebuilt after an add or a delete but not after an update. The packet's destination
// address picks the bucket; there is no fallback.
import { Dest } from "../dest/dest";
import { Service } from "../service/service";
import { PacketInfo } from "../packet/info";
import { hash32 } from "../hash/hash32";
import { Scheduler } from "./scheduler";
import {
  traceOn,
  traceRec,
  tw,
  W_HKEY,
  W_BUCKET,
  W_TSIZE,
  W_BDEST,
  W_REJECT,
  REJ_NONE,
  REJ_EMPTY,
  REJ_UNAVAILABLE,
  REJ_WEIGHT0,
  REJ_OVERLOADED,
  Q_TABLE_SIZE,
  Q_SLOT_DEST,
} from "../trace";

const DH_TAB_BITS: i32 = 8;
const DH_TAB_SIZE: i32 = 1 << DH_TAB_BITS;

export class DestinationHashing extends Scheduler {
  buckets: StaticArray<Dest | null> = new StaticArray<Dest | null>(DH_TAB_SIZE);

  init(svc: Service): void {
    this.reassign(svc);
  }
  done(svc: Service): void {
    this.clear();
  }
  addDest(svc: Service, d: Dest): void {
    this.reassign(svc);
  }
  delDest(svc: Service, d: Dest): void {
    this.reassign(svc);
  }

  private clear(): void {
    const tbl = this.buckets;
    for (let i = 0; i < DH_TAB_SIZE; i++) unchecked((tbl[i] = null));
  }

  reassign(svc: Service): void {
    const ds = svc.dests;
    const n = ds.length;
    if (n == 0) {
      this.clear();
      return;
    }
    const tbl = this.buckets;
    for (let i = 0, at = 0; i < DH_TAB_SIZE; i++) {
      unchecked((tbl[i] = unchecked(ds[at])));
      if (++at == n) at = 0;
    }
  }

  schedule(svc: Service, p: PacketInfo, now: i64): Dest | null {
    const b = <i32>hash32(p.dstFold(), DH_TAB_BITS);
    const d = unchecked(this.buckets[b]);
    const ok = !(!d || !d.available() || d.weight <= 0 || d.overloaded());
    if (traceOn) trace(svc, p, b, d, ok);
    return ok ? d : null;
  }

  traceQuery(svc: Service, q: i32, i: i32): i32 {
    if (q == Q_TABLE_SIZE) return DH_TAB_SIZE;
    if (q == Q_SLOT_DEST) return this.slotDest(i);
    return -1;
  }

  tableSize(): i32 {
    return DH_TAB_SIZE;
  }
  slotDest(i: i32): i32 {
    if (i < 0 || i >= DH_TAB_SIZE) return -1;
    const d = unchecked(this.buckets[i]);
    return d ? d.id : -1;
  }
}

// tracing: the bucket the destination address hashed to and what it held
function trace(svc: Service, p: PacketInfo, b: i32, d: Dest | null, ok: bool): void {
  const r = traceRec(svc.schedId, svc.id, ok && d ? d.id : -1);
  tw(r, W_HKEY, <i32>p.dstFold());
  tw(r, W_BUCKET, b);
  tw(r, W_TSIZE, DH_TAB_SIZE);
  tw(r, W_BDEST, d ? d.id : -1);
  tw(
    r,
    W_REJECT,
    !d
      ? REJ_EMPTY
      : !d.available()
        ? REJ_UNAVAILABLE
        : d.weight <= 0
          ? REJ_WEIGHT0
          : d.overloaded()
            ? REJ_OVERLOADED
            : REJ_NONE,
  );
}
