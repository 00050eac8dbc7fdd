// Comparisons of one service or real server against another: what differs, as texts for the report.
import type { VirtualService, RealServer } from "../model/types.ts";
import { serviceFlagBits, normalNetmask, tunFlagBits } from "./codec.ts";
import * as C from "./constants.ts";
import { SCHED_FLAG_BITS, schedFlagName } from "../model/schedulers.ts";

interface SvcFields {
  scheduler: string;
  flags: number;
  persistent: number | undefined;
  netmask: string;
  pe: string;
}
const fieldsCache = new WeakMap<object, SvcFields>();
function svcFields(s: VirtualService): SvcFields {
  let f = fieldsCache.get(s);
  if (f === undefined) {
    f = svcFieldsOf(s);
    fieldsCache.set(s, f);
  }
  return f;
}
function svcFieldsOf(s: VirtualService): SvcFields {
  return {
    scheduler: s.scheduler || "wlc",
    flags: serviceFlagBits(s) & ~C.IP_VS_SVC_F_HASHED,
    persistent: s.persistent,
    netmask: normalNetmask(s),
    pe: s.pe ?? "",
  };
}
const flagText = (bits: number, sched: string) => {
  const names: string[] = [];
  if (bits & C.IP_VS_SVC_F_PERSISTENT) names.push("persistent");
  if (bits & C.IP_VS_SVC_F_ONEPACKET) names.push("ops");
  for (let i = 0; i < SCHED_FLAG_BITS.length; i++) if (bits & SCHED_FLAG_BITS[i]) names.push(schedFlagName(sched, i));
  return names.length ? names.join(",") : "none";
};

/** The service fields that differ, as "field want ← have" texts (empty: equal). */
export function serviceDiff(want: VirtualService, have: VirtualService): string[] {
  const w = svcFields(want),
    h = svcFieldsOf(have); // have: often a dump's object, met once
  const d: string[] = [];
  if (w.scheduler !== h.scheduler) d.push(`scheduler ${h.scheduler} → ${w.scheduler}`);
  if (w.flags !== h.flags) d.push(`flags ${flagText(h.flags, h.scheduler)} → ${flagText(w.flags, w.scheduler)}`);
  if (w.flags & C.IP_VS_SVC_F_PERSISTENT && w.persistent !== h.persistent)
    d.push(`persistence timeout ${h.persistent ?? "none"} → ${w.persistent}`);
  if (w.netmask !== h.netmask) d.push(`netmask ${h.netmask} → ${w.netmask}`);
  if (w.pe !== h.pe) d.push(`pe ${h.pe || "none"} → ${w.pe || "none"}`);
  return d;
}

function tunSig(r: Partial<RealServer>): string {
  if (r.fwd !== "tunnel") return "";
  const t = r.tunType ?? "ipip";
  return `${t}:${t === "gue" ? (r.tunPort ?? 0) : 0}:${t === "ipip" ? 0 : tunFlagBits(r.tunFlags)}`;
}
// realServerDiff(want, have).length === 0 without building the texts (the common case of a full pass)
export function sameRealServer(want: RealServer, have: RealServer): boolean {
  return (
    want.weight === have.weight &&
    want.fwd === have.fwd &&
    (want.upperThreshold ?? 0) === (have.upperThreshold ?? 0) &&
    (want.lowerThreshold ?? 0) === (have.lowerThreshold ?? 0) &&
    ((want.fwd !== "tunnel" && have.fwd !== "tunnel") || tunSig(want) === tunSig(have))
  );
}

/** The real server fields that differ (weight, forwarding, thresholds, tunnel). */
export function realServerDiff(want: RealServer, have: RealServer): string[] {
  const d: string[] = [];
  if (want.weight !== have.weight) d.push(`weight ${have.weight} → ${want.weight}`);
  if (want.fwd !== have.fwd) d.push(`forwarding ${have.fwd} → ${want.fwd}`);
  if ((want.upperThreshold ?? 0) !== (have.upperThreshold ?? 0))
    d.push(`upper threshold ${have.upperThreshold ?? 0} → ${want.upperThreshold ?? 0}`);
  if ((want.lowerThreshold ?? 0) !== (have.lowerThreshold ?? 0))
    d.push(`lower threshold ${have.lowerThreshold ?? 0} → ${want.lowerThreshold ?? 0}`);
  const tw = tunSig(want),
    th = tunSig(have);
  if (tw !== th) d.push(`tunnel ${th || "none"} → ${tw || "none"}`);
  return d;
}
