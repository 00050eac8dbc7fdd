// lblcr: locality-based least connection with replication (ip_vs_lblcr.c). As lblc (same table, timer and
// "overloaded" rule), but each destination address maps to a set of servers: the least loaded member is
// used while it is not overloaded, otherwise wlc over the service picks one and it joins the set. A set of
// more than one member that has not changed for lblcr_expiration loses its most loaded member.
import { Dest } from "../dest/dest";
import { Service } from "../service/service";
import { PacketInfo } from "../packet/info";
import { settings } from "../settings";
import { LocalityBase, LocalityEntry } from "./lblc";
import { connOverhead } from "./tree";
import {
  traceOn,
  tw,
  W_ERASED,
  W_SETLEN,
  W_SET,
  SET_MAX,
  OUT_NEW,
  OUT_KEPT,
  OUT_OVERLOADED,
  OUT_NO_MEMBER,
  OUT_NONE,
} from "../trace";

// Members are stored with the list head LAST: walking the set in the kernel's order runs from the end.

// ip_vs_dest_set_min: the first member that is not OVERLOADed, has weight > 0 and is AVAILABLE, replaced
// by any later non-OVERLOADed, AVAILABLE member with strictly less overhead per weight.
export function setMin(set: Array<Dest>): Dest | null {
  let i = set.length - 1;
  let least: Dest | null = null;
  for (; i >= 0; i--) {
    const d = unchecked(set[i]);
    if (d.overloaded()) continue;
    if (d.weight > 0 && d.available()) {
      least = d;
      break;
    }
  }
  if (!least) return null;
  let best = least;
  let loh = <i64>connOverhead(best);
  for (i--; i >= 0; i--) {
    const d = unchecked(set[i]);
    if (d.overloaded()) continue;
    const doh = <i64>connOverhead(d);
    if (loh * <i64>d.weight > doh * <i64>best.weight && d.available()) {
      best = d;
      loh = doh;
    }
  }
  return best;
}

// ip_vs_dest_set_max: the first member with weight > 0, replaced by any later member with weight > 0 and
// strictly more overhead per weight (OVERLOAD and AVAILABLE play no part).
export function setMax(set: Array<Dest>): Dest | null {
  let i = set.length - 1;
  let most: Dest | null = null;
  for (; i >= 0; i--) {
    const d = unchecked(set[i]);
    if (d.weight > 0) {
      most = d;
      break;
    }
  }
  if (!most) return null;
  let best = most;
  let moh = <i64>connOverhead(best);
  for (i--; i >= 0; i--) {
    const d = unchecked(set[i]);
    const doh = <i64>connOverhead(d);
    if (moh * <i64>d.weight < doh * <i64>best.weight && d.weight > 0) {
      best = d;
      moh = doh;
    }
  }
  return best;
}

export class LocalityLeastConnectionReplicated extends LocalityBase {
  expiration(): i64 {
    return settings.lblcrExpirationMs;
  }

  // ip_vs_dest_set_insert with check: at the head unless already a member
  private setInsert(en: LocalityEntry, d: Dest, now: i64): void {
    const set = changetype<Array<Dest>>(en.set);
    for (let i = 0, n = set.length; i < n; i++) if (unchecked(set[i]) === d) return;
    set.push(d);
    en.lastmod = now;
  }

  private setErase(en: LocalityEntry, d: Dest, now: i64): void {
    const set = changetype<Array<Dest>>(en.set);
    for (let i = set.length - 1; i >= 0; i--) {
      if (unchecked(set[i]) === d) {
        set.splice(i, 1);
        en.lastmod = now;
        return;
      }
    }
  }

  schedule(svc: Service, p: PacketInfo, now: i64): Dest | null {
    this.catchUp(svc, now);
    const en = this.findEntry(p);
    if (en) {
      en.lastuse = now;
      const set = changetype<Array<Dest>>(en.set);
      let d = setMin(set);
      // more than one member and unchanged for the expiration time: drop the most loaded one
      let m: Dest | null = null;
      if (set.length > 1 && now > en.lastmod + this.expiration()) {
        m = setMax(set);
        if (m) this.setErase(en, m, now);
      }
      if (d && !this.lblcOverloaded(d)) {
        if (traceOn) this.traceSet(svc, p, en, d, d, OUT_KEPT, null, m);
        return d;
      }
      const min = d;
      d = this.wlc(svc);
      if (!d) {
        if (traceOn) this.traceSet(svc, p, en, min, null, OUT_NONE, null, m);
        return null;
      }
      this.setInsert(en, d, now);
      if (traceOn) this.traceSet(svc, p, en, min, d, min ? OUT_OVERLOADED : OUT_NO_MEMBER, d, m);
      return d;
    }
    const d = this.wlc(svc);
    if (!d) {
      if (traceOn) this.traceSet(svc, p, null, null, null, OUT_NONE, null, null);
      return null;
    }
    const ne = this.addEntry(p, now);
    let set = ne.set;
    if (!set) {
      set = new Array<Dest>();
      ne.set = set;
    }
    set.push(d);
    ne.lastmod = now;
    if (traceOn) this.traceSet(svc, p, null, null, d, OUT_NEW, d, null, ne);
    return d;
  }

  // Tracing: the locality record plus the set after the decision (kernel order, head first) and the
  // member dropped from an old set. min: the set's least loaded usable member before the decision.
  private traceSet(
    svc: Service,
    p: PacketInfo,
    en: LocalityEntry | null,
    min: Dest | null,
    d: Dest | null,
    outcome: i32,
    wlcChoice: Dest | null,
    erased: Dest | null,
    created: LocalityEntry | null = null,
  ): void {
    const r = this.traceEntry(svc, p, en, min, d, outcome, wlcChoice);
    tw(r, W_ERASED, erased ? erased.id : -1);
    const e = en ? en : created;
    if (!e) return;
    const set = changetype<Array<Dest>>(e.set);
    const n = set.length;
    tw(r, W_SETLEN, n);
    for (let k = 0; k < n && k < SET_MAX; k++) tw(r, W_SET + k, unchecked(set[n - 1 - k]).id);
  }
}
