// Drift: every difference between the desired state and the kernel (for `wasmvs sync --check`)
import type { DesiredState, VirtualService, IpvsTimeouts } from "../model/types.ts";
import type { RealServerStatus, ServiceStatus } from "../model/target.ts";
import type { IpvsClient, ServiceWithDests } from "./client.ts";
import { canonServiceKey, canonRealServerKey } from "./keys.ts";
import { serviceDiff, realServerDiff } from "./diff.ts";
import { parseCidrs, inCidrs } from "./cidrs.ts";

export type DriftKind =
  | "missing-service"
  | "extra-service"
  | "service-field"
  | "missing-rs"
  | "extra-rs"
  | "rs-field"
  | "timeouts";
export interface Difference {
  kind: DriftKind;
  service?: string;
  rs?: string;
  fields?: string[];
  message: string;
}

export function drift(
  desired: DesiredState,
  kernel: ServiceWithDests[] | ServiceStatus[],
  opts: { excludeCidrs?: string[]; draining?: Set<string>; timeouts?: IpvsTimeouts } = {},
): Difference[] {
  const cidrs = parseCidrs(opts.excludeCidrs);
  const out: Difference[] = [];
  const have = new Map<string, (typeof kernel)[number]>();
  for (const s of kernel) have.set(canonServiceKey(s), s);
  const want = new Map<string, VirtualService>();
  for (const s of desired.services) want.set(canonServiceKey(s), s);
  for (const [k, s] of want) {
    const h = have.get(k);
    if (!h) {
      out.push({
        kind: "missing-service",
        service: k,
        message: `missing service ${k} (${s.realServers.length} real servers)`,
      });
      continue;
    }
    const sd = serviceDiff(s, h);
    if (sd.length)
      out.push({ kind: "service-field", service: k, fields: sd, message: `service ${k}: ${sd.join(", ")}` });
    const hr = new Map<string, RealServerStatus>();
    for (const r of h.realServers) hr.set(canonRealServerKey(r), r);
    const wr = new Set<string>();
    for (const r of s.realServers) {
      const rk = canonRealServerKey(r);
      wr.add(rk);
      const x = hr.get(rk);
      if (!x) {
        out.push({ kind: "missing-rs", service: k, rs: rk, message: `missing real server ${rk} in ${k}` });
        continue;
      }
      const rd = realServerDiff(r, x);
      if (rd.length)
        out.push({
          kind: "rs-field",
          service: k,
          rs: rk,
          fields: rd,
          message: `real server ${rk} of ${k}: ${rd.join(", ")}`,
        });
    }
    for (const [rk, x] of hr) {
      if (wr.has(rk)) continue;
      const dr = opts.draining?.has(`${k} ${rk}`);
      out.push({
        kind: "extra-rs",
        service: k,
        rs: rk,
        message:
          `${dr ? "draining" : "stale"} real server ${rk} in ${k} (weight ${x.weight}, ${x.activeConns} ` +
          `active, ${x.inactConns} inactive)${!dr && x.weight === 0 ? ": a weight-0 leftover" : ""}`,
      });
    }
  }
  for (const [k, h] of have) {
    if (want.has(k) || (!h.fwmark && inCidrs(h.addr, cidrs))) continue;
    out.push({
      kind: "extra-service",
      service: k,
      message: `extra service ${k} (${h.realServers.length} real servers)`,
    });
  }
  if (desired.timeouts && opts.timeouts) {
    const t = desired.timeouts,
      hv = opts.timeouts;
    const f = (["tcp", "tcpfin", "udp"] as const)
      .filter((x) => t[x] > 0 && t[x] !== hv[x])
      .map((x) => `${x} ${hv[x]} → ${t[x]}`);
    if (f.length) out.push({ kind: "timeouts", fields: f, message: `timeouts: ${f.join(", ")}` });
  }
  return out;
}

/** Reads the kernel and lists every difference from the desired state. */
export async function checkDrift(
  client: IpvsClient,
  desired: DesiredState,
  opts: { excludeCidrs?: string[]; draining?: Set<string> } = {},
): Promise<Difference[]> {
  const [kernel, timeouts] = await Promise.all([
    client.dump(),
    desired.timeouts ? client.getConfig() : Promise.resolve(undefined),
  ]);
  return drift(desired, kernel, { ...opts, timeouts });
}
