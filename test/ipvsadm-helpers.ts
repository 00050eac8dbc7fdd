// Rebuilds a recorded kernel state (test/fixtures/ipvsadm/*.json, made by test/ipvsadm-record.cjs) as the
// shapes an IpvsTarget reports: ServiceStatus[] in the kernel's order, ConnectionEntry[], timeouts, info.
// Sources: /proc/net/ip_vs (kernel order, forwarding, weights, active/inactive counts), `ipvsadm -Ln --nosort`
// (the same order, with the fwmark family), `-Sn` (scheduler flags, persistence, pe, tunnels), the exact
// forms of --stats/--rate (counters), --thresholds and --persistent-conn, /proc/net/ip_vs_conn (connections).
import { readFileSync, readdirSync } from "node:fs";
import type { ConnectionEntry, RealServerStatus, ServiceStatus, Stats, TargetInfo } from "../src/model/target.ts";
import type { IpvsTimeouts, VirtualService } from "../src/model/types.ts";
import { serviceKey, realServerKey } from "../src/model/types.ts";
import { parseProcIpVs, parseProcIpVsConn } from "../src/model/procfs.ts";
import { parseRestore } from "../src/model/ipvsadm.ts";
import { addrPortName, serviceName } from "../src/model/format.ts";
import { afOfLiteral } from "../src/model/inet.ts";

export const FIXDIR = new URL("./fixtures/ipvsadm/", import.meta.url);

export interface Fixture {
  name: string;
  setup: string[];
  setupFailed?: string[];
  out: Record<string, any>;
}
export function fixtureNames(): string[] {
  return readdirSync(FIXDIR)
    .filter((f) => f.endsWith(".json") && !["errors.json", "etc.json"].includes(f))
    .map((f) => f.slice(0, -5))
    .sort();
}
export function loadFixture(name: string): Fixture {
  return JSON.parse(readFileSync(new URL(`${name}.json`, FIXDIR), "utf8"));
}
export function loadJson(name: string): any {
  return JSON.parse(readFileSync(new URL(name, FIXDIR), "utf8"));
}

type Rows = Map<string, { row: bigint[]; dests: Map<string, bigint[]> }>;
/** A sorted listing with numbers after the label (--stats/--rate --exact, --thresholds, --persistent-conn). */
function numericRows(text: string): Rows {
  const rows: Rows = new Map();
  let cur: { row: bigint[]; dests: Map<string, bigint[]> } | undefined;
  for (const line of text.split("\n").slice(3)) {
    if (!line) continue;
    const m = /^(.*?)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)(?:\s+(\d+))?\s*$/.exec(line);
    const nums = m
      ? m
          .slice(2)
          .filter((x) => x !== undefined)
          .map((x) => BigInt(x))
      : [];
    if (line.startsWith("  -> ")) {
      if (m) cur!.dests.set(m[1].slice(5).trim(), nums);
    } else {
      // a service line: numbers after the label (--stats/--rate), or "label scheduler ..." (--thresholds etc.)
      const label = m ? m[1].trim() : /^(FWM {2}\S+(?: IPv6)?|\S+ {1,2}\S+)/.exec(line)![1];
      cur = { row: nums, dests: new Map() };
      rows.set(label, cur);
    }
  }
  return rows;
}
const stats = (s?: bigint[], r?: bigint[]): Stats => ({
  conns: s?.[0] ?? 0n,
  inPkts: s?.[1] ?? 0n,
  outPkts: s?.[2] ?? 0n,
  inBytes: s?.[3] ?? 0n,
  outBytes: s?.[4] ?? 0n,
  cps: r?.[0] ?? 0n,
  inPps: r?.[1] ?? 0n,
  outPps: r?.[2] ?? 0n,
  inBps: r?.[3] ?? 0n,
  outBps: r?.[4] ?? 0n,
});

export interface KernelState {
  info: TargetInfo;
  services: ServiceStatus[];
  conns: ConnectionEntry[];
  timeouts: IpvsTimeouts;
  mismatches: string[];
}

export function kernelState(fx: Fixture): KernelState {
  const out = fx.out;
  const proc = parseProcIpVs(out.proc_ip_vs);
  const desired = parseRestore(out.Sn).state;
  const byKey = new Map(desired.services.map((s) => [serviceKey(s), s]));
  const st = numericRows(out.Ln_stats_exact),
    rt = numericRows(out.Ln_rate_exact);
  const th = numericRows(out.Ln_thresholds),
    pc = numericRows(out.Ln_persistent_conn);
  // service labels in kernel order, from -Ln --nosort
  const nosortLabels = (out.Ln_nosort as string)
    .split("\n")
    .slice(3)
    .filter((l) => l && !l.startsWith("  ->"))
    .map((l) => l);
  const mismatches: string[] = [];
  if (nosortLabels.length !== proc.services.length)
    mismatches.push(`service count: /proc ${proc.services.length}, -Ln --nosort ${nosortLabels.length}`);
  const services: ServiceStatus[] = proc.services.map((p, i) => {
    const fam = p.fwmark && / IPv6 /.test(nosortLabels[i] + " ") ? "inet6" : "inet";
    const id: Pick<VirtualService, "protocol" | "addr" | "port" | "fwmark" | "family"> = p.fwmark
      ? { fwmark: p.fwmark, family: fam }
      : { protocol: p.protocol, addr: p.addr, port: p.port };
    const cfg = byKey.get(serviceKey(id));
    if (!cfg) mismatches.push(`${serviceKey(id)}: not in -Sn (taken from /proc)`);
    const base: Omit<VirtualService, "realServers"> = cfg
      ? { ...cfg }
      : { ...id, scheduler: p.scheduler, flags: p.ops ? ["ops"] : [] };
    delete (base as any).realServers;
    if (base.scheduler !== p.scheduler)
      mismatches.push(`${serviceKey(id)}: scheduler -Sn ${base.scheduler} /proc ${p.scheduler}`);
    if ((base.persistent !== undefined) !== (p.persistentJiffies !== undefined))
      mismatches.push(`${serviceKey(id)}: persistence differs`);
    if (base.flags.includes("ops") !== p.ops) mismatches.push(`${serviceKey(id)}: ops differs`);
    const label = serviceName(base, false, true);
    if (!nosortLabels[i]?.startsWith(label + " "))
      mismatches.push(`${serviceKey(id)}: -Ln --nosort line ${i} is ${JSON.stringify(nosortLabels[i])}`);
    const realServers: RealServerStatus[] = p.dests.map((d) => {
      const dc = cfg?.realServers.find((r) => realServerKey(r) === realServerKey(d));
      if (cfg && !dc) mismatches.push(`${serviceKey(id)} ${realServerKey(d)}: not in -Sn`);
      if (
        dc &&
        (dc.weight !== d.weight || (dc.fwd === "local" ? "route" : dc.fwd) !== (d.fwd === "local" ? "route" : d.fwd))
      )
        mismatches.push(`${serviceKey(id)} ${realServerKey(d)}: -Sn ${dc.fwd}/${dc.weight} /proc ${d.fwd}/${d.weight}`);
      const dl = addrPortName(afOfLiteral(d.addr), d.addr, d.port, 0, true);
      const t = th.get(label)?.dests.get(dl),
        pcs = pc.get(label)?.dests.get(dl);
      return {
        addr: d.addr,
        port: d.port,
        weight: d.weight,
        fwd: d.fwd,
        upperThreshold: Number(t?.[0] ?? 0n),
        lowerThreshold: Number(t?.[1] ?? 0n),
        ...(dc?.tunType ? { tunType: dc.tunType } : {}),
        ...(dc?.tunPort ? { tunPort: dc.tunPort } : {}),
        ...(dc?.tunFlags ? { tunFlags: dc.tunFlags } : {}),
        activeConns: d.activeConns,
        inactConns: d.inactConns,
        persistConns: Number(pcs?.[1] ?? 0n),
        stats: stats(st.get(label)?.dests.get(dl), rt.get(label)?.dests.get(dl)),
      };
    });
    return { ...base, realServers, stats: stats(st.get(label)?.row, rt.get(label)?.row) };
  });
  const tm = /(\d+) (\d+) (\d+)/.exec(out.L_timeout)!;
  return {
    info: { version: proc.version, connTableSize: proc.size },
    services,
    conns: parseProcIpVsConn(out.proc_ip_vs_conn),
    timeouts: { tcp: Number(tm[1]), tcpfin: Number(tm[2]), udp: Number(tm[3]) },
    mismatches,
  };
}
