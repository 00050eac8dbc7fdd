// Figure 4: Maglev table rebuilds. A service with N destinations at M = 4093 (mh_table_index 12) and
// M = 65521 (16); each timed call edits one destination's weight, which rebuilds the whole table. Beside a
// straightforward TypeScript build of the same table (bench/baseline/maglev.ts) and the Maglev paper's
// 1.8 ms for M = 65537.
import { Core } from "../../src/core/index.ts";
import { maglevTable, type MaglevDest } from "../baseline/maglev.ts";
import { measure, type Stat } from "../lib/measure.ts";
import { withBaselines, barChartSvg, type Figure, type Target } from "../lib/report.ts";
import { Progress, fmtNs, fmtStat } from "../lib/progress.ts";
import { ipv4, type Ctx, type GroupResult } from "../lib/context.ts";

const TABLES = [
  { index: 12, m: 4093 },
  { index: 16, m: 65521 },
];
const DESTS = [100, 1000];
export const MAGLEV_PAPER_NS = 1.8e6; // Eisenbud et al., NSDI '16: 1.8 ms to build a 65537-entry table

const weightOf = (i: number) => (i % 4) + 1;
const destAddr = (i: number) => (0x0a020000 + i) >>> 0; // 10.2.x.y

export async function benchMh(ctx: Ctx): Promise<GroupResult> {
  const figures: Figure[] = [];
  const targets: Target[] = [];
  const p = new Progress("mh", TABLES.length * DESTS.length);
  const rows: { label: string; m: number; n: number; ours: Stat; base: Stat }[] = [];

  for (const t of TABLES) {
    // the table size is a global setting read at every rebuild: one instance per size
    const core = await Core.load({ connCapacity: 16 });
    core.set("mh_table_index", t.index);
    for (const [k, n] of DESTS.entries()) {
      p.step(`M=${t.m} with ${n} destinations: an edit of one weight per call (each rebuilds)`);
      const svc = core.addService({
        proto: "tcp",
        addr: ipv4((0x0a000001 + (k << 8)) >>> 0),
        port: 80,
        scheduler: "mh",
      });
      for (let i = 0; i < n; i++) core.addDest(svc, { addr: ipv4(destAddr(i)), port: 8080, weight: weightOf(i) });
      if (core.schedule(svc, "12.0.0.1", 1234) < 0) throw new Error(`mh M=${t.m} n=${n}: no destination after setup`);
      const edited = ipv4(destAddr(0));
      let w = 1;
      const ours = measure(
        `mh ${t.m} ${n}`,
        () => {
          w = w === 1 ? 2 : 1;
          return core.editDest(svc, { addr: edited, port: 8080, weight: w });
        },
        1,
        ctx.budget,
      );
      p.note(`ours ${fmtStat(ours)} per rebuild`);
      const ds: MaglevDest[] = [];
      for (let i = 0; i < n; i++) ds.push({ addr: destAddr(i), port: 8080, weight: weightOf(i) });
      let bw = 1;
      const base = measure(
        `mh ${t.m} ${n} baseline`,
        () => {
          bw = bw === 1 ? 2 : 1;
          ds[0].weight = bw;
          return maglevTable(ds, t.m)[0];
        },
        1,
        ctx.budget,
      );
      p.note(`baseline ${fmtStat(base)} per build`);
      rows.push({ label: `M=${t.m} N=${n}`, m: t.m, n, ours, base });
      figures.push(
        withBaselines({
          group: "mh",
          name: `M=${t.m} N=${n}`,
          params: { m: t.m, dests: n, tableIndex: t.index },
          unit: "rebuild",
          ours,
          oursLabel: "WASM editDest → rebuild",
          baselines: [{ name: "TS Maglev build", stat: base }],
          note:
            t.m === 65521
              ? `paper: ${fmtNs(MAGLEV_PAPER_NS)} at M=65537 (${(MAGLEV_PAPER_NS / ours.median).toFixed(1)}× ours)`
              : undefined,
        }),
      );
    }
  }
  for (const r of rows.filter((x) => x.m === 65521)) {
    targets.push({
      id: `mh-${r.m}-${r.n}`,
      target: `mh rebuild M=${r.m}, ${r.n} dests, beside Maglev paper 1.8 ms (M=65537)`,
      measured:
        `${fmtNs(r.ours.median)} (${(MAGLEV_PAPER_NS / r.ours.median).toFixed(1)}× faster than the ` +
        `paper's figure; TS build ${fmtNs(r.base.median)})`,
      status: "REF",
      note: "reference only: other hardware, other hash",
    });
  }
  const svg = barChartSvg({
    title: "Maglev (mh) table rebuild, per weight edit",
    subtitle: "wasmvs editDest (rebuilds the table) vs a TS Maglev build of the same table; dashed: Maglev paper",
    yLabel: "time per rebuild",
    categories: rows.map((r) => r.label),
    series: [
      { name: "wasmvs (WASM)", color: "#1f77b4", values: rows.map((r) => r.ours) },
      { name: "TS Maglev build", color: "#aaaaaa", values: rows.map((r) => r.base) },
    ],
    refs: [{ label: "Maglev paper, M=65537", ns: MAGLEV_PAPER_NS, color: "#d62728" }],
  });
  return { figures, targets, svgs: { "mh.svg": svg } };
}
