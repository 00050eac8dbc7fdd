// The run's tables, built once and printed twice: on the terminal (bench/lib/report's table) and in
// summary.md (Markdown), so the two cannot disagree on a figure.
import {
  curveText,
  type SimPointResult,
  type Calibration,
  type ModeChecks,
  type CurveFit,
  type Range,
} from "../../src/sim/index.ts";
import type { HostResult } from "./host.ts";
import type { ProxyResult } from "./proxy.ts";
import type { PacketResult } from "./packet.ts";
import type { VmResult } from "./vm.ts";

export interface Table {
  headers: string[];
  rows: string[][];
}

export const fmt = (x: number | undefined, d = 1) => (x === undefined || !Number.isFinite(x) ? "-" : x.toFixed(d));

/** A modelled figure: "≈value (low–high)", the span from the fit's uncertainty; "(unchecked)" when unknown. */
export function modelled(v: number, r: Range, d = 1): string {
  // two significant digits where d decimals would print a small figure as 0
  const g = (x: number) =>
    Number.isFinite(x) && x !== 0 && Math.abs(x) < 10 ** -d * 10 ? x.toPrecision(2) : fmt(x, d);
  return `≈${g(v)} ${r ? `(${g(r[0])}–${g(r[1])})` : "(range unknown: unchecked fit)"}`;
}

export interface RunTables {
  hostResults: HostResult[];
  sim: SimPointResult[];
  proxyResults: ProxyResult[];
  packetResults: PacketResult[];
  vmResults: VmResult[];
  wasmPerN: { services: number; nsPerNewConn: number }[];
}

// The kernel modes measured on this host, one row per (mode, N).
function kernelRows(t: RunTables): string[][] {
  const f1 = fmt;
  const rows: string[][] = [];
  for (const r of t.hostResults) {
    const i = r.ipvs;
    rows.push([
      r.mode,
      r.services.toLocaleString("en"),
      "measured",
      `${r.rules.counted}/${r.rules.expected}`,
      i
        ? `${f1(r.syncMs / 1000, 2)} (vs by ipvsadm -R ${f1(i.syncIpvsadmMs / 1000, 2)}, Reconciler ` +
          `${f1(i.syncReconcilerMs / 1000, 2)})`
        : f1(r.syncMs / 1000, 2),
      i ? `${f1(i.incIpvsadmMs, 0)} -R / ${f1(i.incReconcilerMs, 0)} Reconciler` : f1(r.incrementalMs, 0),
      `${f1(r.first.lat.p50)} / ${f1(r.first.lat.p99)}`,
      `${f1(r.last.lat.p50)} / ${f1(r.last.lat.p99)}`,
      f1(r.pod.lat.p50),
      `${f1(r.first.cpu.usPerConn)} / ${f1(r.last.cpu.usPerConn)}`,
      `${r.translated.first} / ${r.translated.last}`,
      r.lock
        ? `${r.lock.writers} writers, ${r.lock.failed} failed, max ${f1(r.lock.waitMaxMs, 0)} ms` +
          `${r.lock.starved ? ", restore starved" : ""}`
        : "-",
    ]);
  }
  return rows;
}

// wasmvs proxy measured in socket and packet mode.
function userspaceRows(t: RunTables): string[][] {
  const f1 = fmt;
  const rows: string[][] = [];
  for (const p of t.proxyResults)
    rows.push([
      "wasmvs proxy (socket)",
      p.services.toLocaleString("en"),
      "measured",
      `${p.listening} listeners`,
      "-",
      "-",
      `${f1(p.first.firstByte.p50)} / ${f1(p.first.firstByte.p99)} 1st byte`,
      `${f1(p.last.firstByte.p50)} / ${f1(p.last.firstByte.p99)} 1st byte`,
      f1(p.baseline.firstByte.p50),
      `${f1(p.first.proxyCpuUsPerConn)} / ${f1(p.last.proxyCpuUsPerConn)} proxy`,
      `${p.translated.first} / ${p.translated.last}`,
      "-",
    ]);
  for (const k of t.packetResults)
    rows.push([
      "wasmvs proxy (packet)",
      k.services.toLocaleString("en"),
      "measured",
      `${k.takeover.entries}/${k.takeover.expected} takeover`,
      "-",
      "-",
      `${f1(k.first.firstByte.p50)} / ${f1(k.first.firstByte.p99)} 1st byte`,
      `${f1(k.last.firstByte.p50)} / ${f1(k.last.firstByte.p99)} 1st byte`,
      f1(k.baseline.firstByte.p50),
      `${f1(k.first.proxyCpuUsPerConn)} / ${f1(k.last.proxyCpuUsPerConn)} proxy + ` +
        `${f1(k.first.clientCpuUsPerConn)} / ${f1(k.last.clientCpuUsPerConn)} client`,
      `${k.translated.first} / ${k.translated.last}`,
      "-",
    ]);
  return rows;
}

// IPVS and iptables-legacy measured inside the kernel VM.
function vmRows(t: RunTables): string[][] {
  const f1 = fmt;
  const rows: string[][] = [];
  for (const v of t.vmResults) {
    const i = v.ipvs,
      c = i.counted,
      e = i.expected;
    rows.push([
      "ipvs [VM]",
      v.services.toLocaleString("en"),
      "measured in VM",
      `${c.services + c.realServers + c.ipsetEntries + c.iptablesRules + c.boundAddrs}/` +
        `${e.services + e.realServers + e.ipsetEntries + e.iptablesRules + e.boundAddrs}`,
      `${f1((i.syncIpvsadmMs + i.bindMs + i.ipsetMs + i.iptablesMs) / 1000, 2)} (vs by ipvsadm -R ` +
        `${f1(i.syncIpvsadmMs / 1000, 2)}, Reconciler ${f1(i.syncReconcilerMs / 1000, 2)})`,
      `${f1(i.incIpvsadmMs, 0)} -R / ${f1(i.incReconcilerMs, 0)} Reconciler`,
      `${f1(i.first.lat.p50)} / ${f1(i.first.lat.p99)}`,
      `${f1(i.last.lat.p50)} / ${f1(i.last.lat.p99)}`,
      f1(i.pod.lat.p50),
      `${f1(i.first.cpu.usPerConn)} / ${f1(i.last.cpu.usPerConn)}`,
      `${i.translated.first} / ${i.translated.last}`,
      "-",
    ]);
    const r = v.iptables;
    rows.push([
      "iptables-legacy [VM]",
      v.services.toLocaleString("en"),
      "measured in VM",
      `${r.rules.counted}/${r.rules.expected}`,
      f1(r.syncMs / 1000, 2),
      "-",
      `${f1(r.first.lat.p50)} / ${f1(r.first.lat.p99)}`,
      `${f1(r.last.lat.p50)} / ${f1(r.last.lat.p99)}`,
      f1(r.pod.lat.p50),
      `${f1(r.first.cpu.usPerConn)} / ${f1(r.last.cpu.usPerConn)}`,
      `${r.translated.first} / ${r.translated.last}`,
      "-",
    ]);
  }
  return rows;
}

// The WASM data plane's own cost per new connection, measured in-process.
function wasmRows(t: RunTables): string[][] {
  const rows: string[][] = [];
  for (const w of t.wasmPerN)
    rows.push([
      "wasmvs (WASM)",
      w.services.toLocaleString("en"),
      "measured in-process",
      "-",
      "-",
      "-",
      `${fmt(w.nsPerNewConn, 0)} ns (SYN→NAT)`,
      "-",
      "-",
      `${fmt(w.nsPerNewConn / 1000, 2)}`,
      "-",
      "-",
    ]);
  return rows;
}

// The simulator's modelled figures for the modes not measured at that N.
function modelledRows(t: RunTables): string[][] {
  const rows: string[][] = [];
  for (const p of t.sim)
    for (const m of p.modes)
      if (!m.measured) {
        const units = m.units.startsWith("VM") ? " [VM units]" : "";
        rows.push([
          `${m.mode}${units}`,
          p.services.toLocaleString("en"),
          "MODELLED (range: fit's uncertainty)",
          // iptables modes: the generated ruleset's own count; the others: the measured rules per Service × N
          m.rulesWalked !== undefined ? `${Math.round(m.rules)} generated` : `≈${Math.round(m.rules)} (per Svc × N)`,
          modelled(m.syncMs / 1000, m.range.syncMs && [m.range.syncMs[0] / 1000, m.range.syncMs[1] / 1000], 2),
          modelled(m.incrementalMs, m.range.incrementalMs, 0),
          `mix p50 ${modelled(m.firstPacket.p50, m.range.p50)}`,
          `mix p99 ${modelled(m.firstPacket.p99, m.range.p99)}`,
          "-",
          modelled(m.cpuPerConn, m.range.cpuPerConn),
          "-",
          "-",
        ]);
      }
  return rows;
}

/** One row per measured (mode, N) and per modelled (mode, N); "how" says which. */
export function mainTable(t: RunTables): Table {
  const rows = [...kernelRows(t), ...userspaceRows(t), ...vmRows(t), ...wasmRows(t), ...modelledRows(t)];
  return {
    headers: [
      "mode",
      "Services",
      "how",
      "rules (counted/expected)",
      "full sync s",
      "+1 Svc ms",
      "first Svc µs p50/p99",
      "last Svc µs p50/p99",
      "pod IP µs p50",
      "CPU µs/conn first/last",
      "backends saw first/last",
      "xtables lock",
    ],
    rows,
  };
}

const FIGURES = {
  latency: "connect latency p50",
  cpu: "CPU per new connection",
  sync: "full sync",
  incremental: "+1 Service",
} as const;

/** Every mode's four curves, where they were measured, and how far each missed with its N left out. */
export function curveTable(calibration: Calibration, checks: Record<string, ModeChecks>): Table {
  const rows: string[][] = [];
  for (const m of calibration.modes)
    for (const what of ["latency", "cpu", "sync", "incremental"] as const) {
      const fit = m[what];
      const c: CurveFit | null = "model" in fit ? fit : null;
      const cost = what === "latency" || what === "cpu";
      const pts = checks[m.mode]?.[what] ?? [];
      const curve =
        `${c ? c.model : cost ? "linear" : "power"}: ` +
        `${curveText(fit, cost ? (m.kind === "rule-walk" ? "W" : "N") : "R")} ${cost ? "µs" : "ms"}`;
      const err = pts.length
        ? `${fmt(pts.reduce((s, x) => s + Math.abs(x.errPct), 0) / pts.length, 0)}% (` +
          `${pts.map((p) => `${p.n / 1000}k ${p.errPct >= 0 ? "+" : ""}` + `${p.errPct.toFixed(0)}%`).join(", ")})`
        : c && c.looMeanAbsErrPct !== null
          ? `${fmt(c.looMeanAbsErrPct, 0)}% (in the run the calibration came from)`
          : "unchecked: too few N (run --full)";
      const others = c
        ? c.candidates
            .filter((x) => x.model !== c.model)
            .map((x) => `${x.model} ${x.looMeanAbsErrPct === null ? "unchecked" : fmt(x.looMeanAbsErrPct, 0) + "%"}`)
            .join(", ") || "-"
        : "-";
      rows.push([
        m.mode,
        FIGURES[what],
        m.measuredN.join(", "),
        m.units?.startsWith("VM") ? "VM" : "host",
        curve,
        err,
        others,
        m.source.startsWith("measured by this run") ? "this run" : "built-in",
      ]);
    }
  return {
    headers: [
      "mode",
      "figure",
      "measured at N",
      "units",
      "curve (W = rules walked, R = rules)",
      "mean |error| left out (per N)",
      "other curves' error",
      "calibration",
    ],
    rows,
  };
}

export function markdownTable(t: Table): string[] {
  const esc = (s: string) => s.replace(/\|/g, "\\|");
  return [
    `| ${t.headers.map(esc).join(" | ")} |`,
    `|${t.headers.map(() => "---").join("|")}|`,
    ...t.rows.map((r) => `| ${r.map(esc).join(" | ")} |`),
  ];
}
