// dh: destination hashing (ip_vs_dh.c). 256 buckets dealt round-robin over the destination list (weights
// play no part), rebuilt after an add or a delete but not after an update. The packet's destination
// address picks the bucket; there is no fallback.
import { Dest } from "../dest/dest";
import { Service } from "../service/service";
import { PacketInfo } from "../packet/info";
import { hash32 } from "../hash/hash32";
import { Scheduler } from "./scheduler";

const DH_TAB_BITS: i32 = 8;
const DH_TAB_SIZE: i32 = 1 << DH_TAB_BITS;

export class DestinationHashing extends Scheduler {
  buckets: StaticArray<Dest | null> = new StaticArray<Dest | null>(DH_TAB_SIZE);

  init(svc: Service): void { this.reassign(svc); }
  done(svc: Service): void { this.clear(); }
  addDest(svc: Service, d: Dest): void { this.reassign(svc); }
  delDest(svc: Service, d: Dest): void { this.reassign(svc); }

  private clear(): void {
    const tbl = this.buckets;
    for (let i = 0; i < DH_TAB_SIZE; i++) unchecked(tbl[i] = null);
  }

  reassign(svc: Service): void {
    const ds = svc.dests;
    const n = ds.length;
    if (n == 0) { this.clear(); return; }
    const tbl = this.buckets;
    for (let i = 0, at = 0; i < DH_TAB_SIZE; i++) {
      unchecked(tbl[i] = unchecked(ds[at]));
      if (++at == n) at = 0;
    }
  }

  schedule(svc: Service, p: PacketInfo, now: i64): Dest | null {
    const d = unchecked(this.buckets[<i32>hash32(p.dstFold(), DH_TAB_BITS)]);
    if (!d || !d.available() || d.weight <= 0 || d.overloaded()) return null;
    return d;
  }

  tableSize(): i32 { return DH_TAB_SIZE; }
  slotDest(i: i32): i32 {
    if (i < 0 || i >= DH_TAB_SIZE) return -1;
    const d = unchecked(this.buckets[i]);
    return d ? d.id : -1;
  }
}
