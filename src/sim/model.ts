// Cost models calibrated by measurements, and how far they miss on the points they can check.
//
// - iptables (both backends): a linear rule walk. First-packet latency and CPU per new connection =
//   a + b × (rules walked), fitted by least squares over every measured (N, first/last Service) point;
//   rules walked come from the Walker over the real ruleset (position in KUBE-SERVICES + the rest).
// - nftables: verdict maps: a + b × N (b should come out near 0: a hash lookup whatever N).
// - IPVS: a hash lookup: a + b × N, from the VM's figures (VM units).
// - sync time: a power law t = a × R^k in the rule count R (log-log least squares), per mode; R(N) past the
//   measured range scales linearly with N (rules per Service of the largest measured cluster).
// Checking: leave-one-N-out — fit on the other N, predict this N's points, report the relative error.

export interface Point { x: number; y: number; n: number }
export interface LinFit { a: number; b: number; points: number }
export interface PowFit { a: number; k: number; points: number }
export interface Check { n: number; x: number; measured: number; predicted: number; errPct: number }

export function linFit(ps: { x: number; y: number }[]): LinFit {
  const m = ps.length;
  if (m === 0) return { a: NaN, b: NaN, points: 0 };
  const mx = ps.reduce((s, p) => s + p.x, 0) / m, my = ps.reduce((s, p) => s + p.y, 0) / m;
  const sxx = ps.reduce((s, p) => s + (p.x - mx) ** 2, 0), sxy = ps.reduce((s, p) => s + (p.x - mx) * (p.y - my), 0);
  const b = sxx > 0 ? sxy / sxx : 0;
  return { a: my - b * mx, b, points: m };
}

export function powFit(ps: { x: number; y: number }[]): PowFit {
  const l = linFit(ps.filter((p) => p.x > 0 && p.y > 0).map((p) => ({ x: Math.log(p.x), y: Math.log(p.y) })));
  return { a: Math.exp(l.a), k: l.b, points: l.points };
}
export const linAt = (f: LinFit, x: number) => f.a + f.b * x;
export const powAt = (f: PowFit, x: number) => f.a * Math.pow(x, f.k);

/** Leave-one-N-out: for each N with points, fit on the others and predict its points. */
export function leaveOneOut(ps: Point[], fit: (ps: Point[]) => (x: number) => number): Check[] {
  const ns = [...new Set(ps.map((p) => p.n))];
  if (ns.length < 2) return [];
  const out: Check[] = [];
  for (const n of ns) {
    const f = fit(ps.filter((p) => p.n !== n));
    for (const p of ps.filter((q) => q.n === n)) {
      const pred = f(p.x);
      out.push({ n, x: p.x, measured: p.y, predicted: pred, errPct: (100 * (pred - p.y)) / p.y });
    }
  }
  return out;
}

export const linModel = (ps: Point[]) => { const f = linFit(ps); return (x: number) => linAt(f, x); };
export const powModel = (ps: Point[]) => { const f = powFit(ps); return (x: number) => powAt(f, x); };

/** The calibration the simulator uses, per kernel mode. Latencies and CPU in µs. */
export interface ModeCalibration {
  mode: string;
  kind: "rule-walk" | "verdict-map" | "hash";
  latency: LinFit;        // µs, against rules walked (rule-walk) or N (verdict-map, hash)
  cpu: LinFit;            // µs per new connection, same x
  baselineLatency: number; baselineCpu: number;   // no rules at all (µs)
  sync: PowFit;           // ms against rules (R)
  incremental: PowFit;    // ms against rules (R)
  rulesPerService: number; // R(N) / N of the largest measured cluster
  measuredN: number[];
  source: string;         // where the numbers come from
  units?: string;         // "host" or "VM (TCG): compare only with other VM figures"
}

export interface Calibration { machine: string; date: string; modes: ModeCalibration[] }
