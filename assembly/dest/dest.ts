// A real server (destination) of one virtual service, with the fields IPVS keeps (struct ip_vs_dest).
import { DEST_F_AVAILABLE, DEST_F_OVERLOAD } from "../common";

export class Dest {
  // What a packet, a new connection and an expiry read come first, together (round 7, docs/conn-table.md):
  // [0, DEST_HOT_END) is two cache lines at most; the pre-passes (assembly/prefetch.ts) touch those alone.
  conns: u64 = 0;
  inPkts: u64 = 0;
  inBytes: u64 = 0;
  flags: u32 = 0;
  svcId: i32 = -1;
  id: i32 = -1; // index in the global destination registry; connections refer to it
  weight: i32 = 0;
  refs: i32 = 0; // connections and templates bound to it; a deleted dest lives in the trash while > 0
  activeConns: u32 = 0;
  inactConns: u32 = 0;
  persistConns: u32 = 0;
  uThreshold: u32 = 0;
  lThreshold: u32 = 0;
  fwd: u32 = 0;
  port: u32 = 0; // host order
  a0: u32 = 0;
  a1: u32 = 0;
  a2: u32 = 0;
  a3: u32 = 0;
  // replies, then what only the control plane and some schedulers read
  outPkts: u64 = 0;
  outBytes: u64 = 0;
  af: i32 = 2;
  lastWeight: i32 = 0; // last non-zero weight (mh builds its table from it)
  tunType: u32 = 0;
  tunPort: u32 = 0;
  tunFlags: u32 = 0;
  seq: u32 = 0; // insertion sequence in its service: larger = nearer the list head
  schedSlot: i32 = -1; // for schedulers that index destinations (segment trees)
  idleSince: i64 = -1; // in the trash: when it was first seen unreferenced

  @inline available(): bool {
    return (this.flags & DEST_F_AVAILABLE) != 0;
  }
  @inline overloaded(): bool {
    return (this.flags & DEST_F_OVERLOAD) != 0;
  }
  // ip_vs_dest_update_overload, as the kernel in the VM behaves (Debian's 6.1 carries the thresholds fix): at
  // or above the upper threshold OVERLOADed; below the lower one (0 = the upper less a quarter, rounded as
  // the kernel rounds) not; in between it keeps what it had. Run at bind, at unbind while OVERLOADed, and when
  // an edit or a re-add changes either threshold.
  updateOverload(): void {
    const u = this.uThreshold;
    if (u != 0) {
      const conns = this.activeConns + this.inactConns;
      if (conns >= u) {
        this.flags |= DEST_F_OVERLOAD;
        return;
      }
      const l = this.lThreshold != 0 ? this.lThreshold : u - (u >> 2);
      if (conns >= l) return;
    }
    this.flags &= ~DEST_F_OVERLOAD;
  }

  @inline addrFold(): u32 {
    return this.a0 ^ this.a1 ^ this.a2 ^ this.a3;
  }
  // (activeconns << 8) + inactconns: ip_vs_dest_conn_overhead(), used by lc, wlc, lblc, lblcr, twos.
  @inline overhead(): i64 {
    return ((<i64>this.activeConns) << 8) + <i64>this.inactConns;
  }

  sameAddr(af: i32, a0: u32, a1: u32, a2: u32, a3: u32, port: u32): bool {
    return this.af == af && this.a3 == a3 && this.a2 == a2 && this.a1 == a1 && this.a0 == a0 && this.port == port;
  }
}

// Registry of all destinations by id (live and in the trash), so connections in linear memory can refer
// to them by number.
export const destById = new Array<Dest | null>();
const freeIds = new Array<i32>();

export function registerDest(d: Dest): void {
  if (freeIds.length > 0) {
    d.id = freeIds.pop();
    destById[d.id] = d;
  } else {
    d.id = destById.length;
    destById.push(d);
  }
}

export function releaseDest(d: Dest): void {
  destById[d.id] = null;
  freeIds.push(d.id);
  d.id = -1;
}

@inline export function destOf(id: i32): Dest {
  return changetype<Dest>(unchecked(destById[id]));
}
