// Measured host figures → the simulator's calibration: shared by the benchmark (bench/scaling.ts) and the
// refit of a saved report (bench/scaling/refit.ts).
import {
  scalingCluster,
  simServices,
  curveText,
  type MeasuredPoint,
  type Calibration,
  type ModeChecks,
  type Check,
} from "../../src/sim/index.ts";
import { table } from "../lib/report.ts";
import type { HostResult } from "./host.ts";
import type { VmResult } from "./vm.ts";

export type Walks = Map<number, ReturnType<typeof simServices>>;

/** The rules a new connection walks past the Service's own position, per measured N (the Walker over the
 * cluster's real iptables ruleset). */
export function walksFor(services: number[], endpoints: number): Walks {
  const walks: Walks = new Map();
  for (const n of services) walks.set(n, simServices(scalingCluster(n, endpoints, 1, { nft: false })));
  return walks;
}

export function toPoints(rs: HostResult[], walks: Walks): MeasuredPoint[] {
  return rs.map((r) => {
    const walk = (pos: number) => pos + (walks.get(r.services)?.walkRest ?? 0);
    return {
      mode: r.mode,
      kind: r.mode === "nftables" ? "verdict-map" : r.mode === "ipvs" ? "hash" : "rule-walk",
      services: r.services,
      rules: r.rules.expected,
      units: "host",
      syncMs: r.syncMs,
      incrementalMs: r.incrementalMs,
      first: { walk: walk(r.first.position), latP50: r.first.lat.p50, cpu: r.first.cpu.usPerConn },
      last: { walk: walk(r.last.position), latP50: r.last.lat.p50, cpu: r.last.cpu.usPerConn },
      baseline: { latP50: r.baseline.lat.p50, cpu: r.baseline.cpu.usPerConn },
    };
  });
}

/** IPVS mode's points from the kernel VM (VM units: for a host without IPVS). */
export function vmIpvsPoints(vs: VmResult[]): MeasuredPoint[] {
  return vs.map((v) => {
    const i = v.ipvs,
      c = i.counted;
    return {
      mode: "ipvs",
      kind: "hash",
      services: v.services,
      units: "vm",
      rules: c.services + c.realServers + c.ipsetEntries + c.iptablesRules + c.boundAddrs,
      syncMs: i.syncIpvsadmMs + i.bindMs + i.ipsetMs + i.iptablesMs,
      incrementalMs: i.incIpvsadmMs,
      first: { walk: 0, latP50: i.first.lat.p50, cpu: i.first.cpu.usPerConn },
      last: { walk: 0, latP50: i.last.lat.p50, cpu: i.last.cpu.usPerConn },
      baseline: { latP50: v.baseline.lat.p50, cpu: NaN },
    };
  });
}

/** The model's curves and how far each missed when its N was left out, as two terminal tables. */
export function modelTables(calibration: Calibration, checks: Record<string, ModeChecks>): string {
  const out: string[] = [];
  const checkRows: string[][] = [];
  for (const [mode, c] of Object.entries(checks))
    for (const [what, list] of Object.entries(c) as [keyof ModeChecks, Check[]][]) {
      if (!list.length) continue;
      const worst = list.reduce((a, b) => (Math.abs(b.errPct) > Math.abs(a.errPct) ? b : a));
      const mean = list.reduce((s, x) => s + Math.abs(x.errPct), 0) / list.length;
      const m = calibration.modes.find((x) => x.mode === mode);
      const fit = m && (what === "latency" || what === "cpu") ? m[what] : undefined;
      const curve = fit
        ? `${"model" in fit ? fit.model : "linear"}: ${curveText(fit, m!.kind === "rule-walk" ? "W" : "N")} µs`
        : "(below)";
      checkRows.push([
        mode,
        what,
        curve,
        String(list.length),
        `${mean.toFixed(0)}%`,
        `${worst.errPct.toFixed(0)}% at N=${worst.n}`,
      ]);
    }
  if (checkRows.length) {
    out.push("\nMODEL CHECK (leave one N out: fit on the other N, predict this one; W = rules walked)");
    out.push(table(["mode", "figure", "curve", "points", "mean |error|", "worst"], checkRows));
  }
  // the sync-time model: which curve, and its error at every point it could be checked on
  const syncRows: string[][] = [];
  for (const m of calibration.modes)
    for (const what of ["sync", "incremental"] as const) {
      const fit = m[what],
        pts = checks[m.mode]?.[what] ?? [];
      const model = "model" in fit ? fit.model : "power (built-in)";
      syncRows.push([
        m.mode,
        what === "sync" ? "full sync" : "+1 Service",
        `${model}: ${curveText(fit)} ms`,
        m.measuredN.join(", "),
        pts.length
          ? pts.map((p) => `${p.n / 1000}k ${p.errPct >= 0 ? "+" : ""}${p.errPct.toFixed(0)}%`).join(", ")
          : "unchecked (too few N)",
      ]);
    }
  out.push(
    "\nSYNC-TIME MODEL (measured at the N listed; modelled elsewhere; error per left-out N: predicted from the " +
      "other N vs measured)",
  );
  out.push(table(["mode", "figure", "curve (R = rules)", "measured at N", "error when left out"], syncRows));
  return out.join("\n");
}
