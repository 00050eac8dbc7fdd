// Results: the figure rows, the targets, the text table, the JSON file and hand-written SVG bar charts.
import type { Stat, RatioStat } from "./measure.ts";
import { fmtNs, fmtStat, fmtRatio } from "./progress.ts";

export interface Figure {
  group: string; // lookup | memlat | sched | packet | mh
  name: string; // short case name, e.g. "1M live"
  params: Record<string, number | string>;
  unit: string; // what one operation is: "lookup", "decision", "rebuild", "step", "packet"
  ours: Stat | null; // ns per operation
  oursLabel: string;
  baselines: { name: string; stat: Stat }[];
  ratio?: RatioStat; // speedup over the fastest baseline (baseline ns / our ns)
  ratioVs?: string; // which baseline
  note?: string;
}

export type Status = "PASS" | "MISS" | "REF" | "SKIP";
export interface Target {
  id: string;
  target: string;
  measured: string;
  status: Status;
  note?: string;
}

export function withBaselines(f: Omit<Figure, "ratio" | "ratioVs">): Figure {
  const out: Figure = { ...f };
  if (f.ours && f.baselines.length) {
    const best = f.baselines.reduce((a, b) => (b.stat.median < a.stat.median ? b : a));
    out.ratioVs = best.name;
    out.ratio = {
      median: best.stat.median / f.ours.median,
      lo: best.stat.p25 / f.ours.p75,
      hi: best.stat.p75 / f.ours.p25,
    };
  }
  return out;
}

function pad(s: string, w: number, right = false): string {
  const len = [...s].length;
  return right ? " ".repeat(Math.max(0, w - len)) + s : s + " ".repeat(Math.max(0, w - len));
}

export function table(headers: string[], rows: string[][], rightCols: number[] = []): string {
  const w = headers.map((h, i) => Math.max([...h].length, ...rows.map((r) => [...(r[i] ?? "")].length)));
  const line = (r: string[]) => r.map((c, i) => pad(c ?? "", w[i], rightCols.includes(i))).join("  ");
  return [line(headers), w.map((x) => "─".repeat(x)).join("  "), ...rows.map(line)].join("\n");
}

export function figureTable(figs: Figure[]): string {
  const rows = figs.map((f) => [
    f.group,
    f.name,
    f.unit,
    fmtStat(f.ours ?? undefined),
    f.baselines.map((b) => `${b.name} ${fmtStat(b.stat)}`).join("; ") || "-",
    f.ratio ? fmtRatio(f.ratio) : "-",
    f.note ?? "",
  ]);
  return table(
    ["group", "case", "per", "ours: median (p25–p75)", "baseline: median (p25–p75)", "speedup (range)", "note"],
    rows,
  );
}

export function targetTable(ts: Target[]): string {
  return table(
    ["status", "target", "measured", "note"],
    ts.map((t) => [t.status, t.target, t.measured, t.note ?? ""]),
  );
}

// ---- SVG -------------------------------------------------------------------------------------------------
export interface Series {
  name: string;
  color: string;
  values: (Stat | null | undefined)[];
}
export interface RefLine {
  label: string;
  ns: number;
  color: string;
}

const tick = (ns: number) => (ns >= 1e6 ? `${ns / 1e6} ms` : ns >= 1e3 ? `${ns / 1e3} µs` : `${ns} ns`);
const esc = (s: string) => s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");

/** Where barChartSvg draws: the plot's top left corner and size, and the y of a value (ns, log scale). */
interface PlotArea {
  left: number;
  top: number;
  plotW: number;
  plotH: number;
  y: (ns: number) => number;
}

// One bar at x: up to the median, a p25–p75 whisker with its caps, and `title` as the tooltip.
function medianBar(out: string[], a: PlotArea, x: number, barW: number, color: string, title: string, v: Stat): void {
  const { top, plotH, y } = a;
  const yb = y(v.median);
  out.push(
    `<rect x="${x}" y="${yb.toFixed(1)}" width="${barW - 1}" height="${(top + plotH - yb).toFixed(1)}" ` +
      `fill="${color}"><title>${esc(title)}</title></rect>`,
  );
  const cx = x + (barW - 1) / 2;
  out.push(`<line x1="${cx}" x2="${cx}" y1="${y(v.p75).toFixed(1)}" y2="${y(v.p25).toFixed(1)}" stroke="black"/>`);
  out.push(
    `<line x1="${cx - 3}" x2="${cx + 3}" y1="${y(v.p75).toFixed(1)}" y2="${y(v.p75).toFixed(1)}" stroke="black"/>`,
  );
  out.push(
    `<line x1="${cx - 3}" x2="${cx + 3}" y1="${y(v.p25).toFixed(1)}" y2="${y(v.p25).toFixed(1)}" stroke="black"/>`,
  );
}

// Under the plot, three to a row: a swatch per series, a dashed line per reference.
function legend(out: string[], a: PlotArea, series: Series[], refs: RefLine[]): void {
  const items = [
    ...series.map((s) => ({ name: s.name, color: s.color, dash: false })),
    ...refs.map((r) => ({ name: `${r.label} (${fmtNs(r.ns)})`, color: r.color, dash: true })),
  ];
  items.forEach((it, i) => {
    const lx = a.left + (i % 3) * Math.floor(a.plotW / 3),
      ly = a.top + a.plotH + 36 + Math.floor(i / 3) * 18;
    if (it.dash)
      out.push(
        `<line x1="${lx}" x2="${lx + 18}" y1="${ly}" y2="${ly}" stroke="${it.color}" stroke-dasharray="6 4" ` +
          `stroke-width="1.5"/>`,
      );
    else out.push(`<rect x="${lx}" y="${ly - 6}" width="18" height="12" fill="${it.color}"/>`);
    out.push(`<text x="${lx + 24}" y="${ly}" dominant-baseline="middle">${esc(it.name)}</text>`);
  });
}

// Grouped bars on a log scale: one group per category, one bar per series (median), whiskers p25–p75.
export function barChartSvg(opts: {
  title: string;
  subtitle?: string;
  yLabel: string;
  categories: string[];
  series: Series[];
  refs?: RefLine[];
}): string {
  const { categories, series } = opts;
  const refs = opts.refs ?? [];
  const all: number[] = [];
  for (const s of series) for (const v of s.values) if (v) all.push(v.p25, v.p75, v.median);
  for (const r of refs) all.push(r.ns);
  const pos = all.filter((x) => x > 0 && Number.isFinite(x));
  const lo = 10 ** Math.floor(Math.log10(Math.min(...pos, 1)));
  const hi = 10 ** Math.ceil(Math.log10(Math.max(...pos, 10)));
  const barW = Math.max(6, Math.min(22, Math.floor(900 / (categories.length * (series.length + 1)))));
  const groupW = barW * series.length + barW;
  const left = 70,
    top = 56,
    plotH = 320;
  const plotW = Math.max(640, groupW * categories.length);
  const legendH = 18 * Math.ceil((series.length + refs.length) / 3) + 10;
  const W = left + plotW + 20,
    H = top + plotH + 60 + legendH;
  const y = (ns: number) =>
    top + plotH - ((Math.log10(Math.max(ns, lo)) - Math.log10(lo)) / (Math.log10(hi) - Math.log10(lo))) * plotH;
  const area: PlotArea = { left, top, plotW, plotH, y };
  const out: string[] = [];
  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="san` +
      `s-serif" font-size="11">`,
  );
  out.push(`<rect width="${W}" height="${H}" fill="white"/>`);
  out.push(`<text x="${left}" y="20" font-size="15" font-weight="bold">${esc(opts.title)}</text>`);
  if (opts.subtitle) out.push(`<text x="${left}" y="38" fill="#555">${esc(opts.subtitle)}</text>`);
  // decade grid
  for (let d = lo; d <= hi * 1.0001; d *= 10) {
    const yy = y(d).toFixed(1);
    out.push(`<line x1="${left}" x2="${left + plotW}" y1="${yy}" y2="${yy}" stroke="#ddd"/>`);
    out.push(`<text x="${left - 6}" y="${yy}" text-anchor="end" dominant-baseline="middle">${esc(tick(d))}</text>`);
    for (const m of [2, 5])
      if (d * m < hi) {
        const ym = y(d * m).toFixed(1);
        out.push(`<line x1="${left}" x2="${left + plotW}" y1="${ym}" y2="${ym}" stroke="#f1f1f1"/>`);
      }
  }
  out.push(
    `<text transform="translate(16 ${top + plotH / 2}) rotate(-90)" text-anchor="middle">${esc(opts.yLabel)}</text>`,
  );
  categories.forEach((cat, ci) => {
    const gx = left + ci * groupW + barW / 2;
    series.forEach((s, si) => {
      const v = s.values[ci];
      const x = gx + si * barW;
      if (!v) {
        out.push(
          `<text x="${x + barW / 2}" y="${top + plotH - 4}" text-anchor="middle" fill="#999" font-size="9">×</text>`,
        );
        return;
      }
      medianBar(out, area, x, barW, s.color, `${s.name} ${cat}: ${fmtStat(v)}`, v);
    });
    const lx = gx + (series.length * barW) / 2;
    out.push(`<text x="${lx}" y="${top + plotH + 14}" text-anchor="middle">${esc(cat)}</text>`);
  });
  for (const r of refs) {
    const yy = y(r.ns).toFixed(1);
    out.push(
      `<line x1="${left}" x2="${left + plotW}" y1="${yy}" y2="${yy}" stroke="${r.color}" stroke-dasharray="6 4" ` +
        `stroke-width="1.5"/>`,
    );
  }
  out.push(`<line x1="${left}" x2="${left}" y1="${top}" y2="${top + plotH}" stroke="black"/>`);
  out.push(`<line x1="${left}" x2="${left + plotW}" y1="${top + plotH}" y2="${top + plotH}" stroke="black"/>`);
  legend(out, area, series, refs);
  out.push(
    `<text x="${left}" y="${H - 6}" fill="#777" font-size="10">bars: median; whiskers: p25–p75; log scale</text>`,
  );
  out.push(`</svg>`);
  return out.join("\n");
}
