// Cost models calibrated by measurements, and how far they miss on the points they can check.
//
// - iptables (both backends): a linear rule walk. First-packet latency and CPU per new connection against
//   the rules walked (position in KUBE-SERVICES + the rest, from the Walker over the real ruleset), over
//   every measured (N, first/last Service) point: a + b·x, or two such lines joined at a knee (the walk's
//   cost per rule rises once the ruleset outgrows the caches), coefficients ≥ 0 (a cost cannot fall as the
//   walk grows, nor go below zero), whichever misses less when each N is left out.
// - nftables: verdict maps: the same curves against N (b comes out near 0: a hash lookup whatever N).
// - IPVS: a hash lookup: a + b × N, from the VM's figures (VM units).
// - sync time and +1 Service, against the rule count R: per mode and figure the curve among
//   a + b·R, a + b·R + c·R² (coefficients ≥ 0) and a·R^k that misses least when each measured N is left
//   out in turn. R(N) past the measured range scales linearly with N (rules per Service of the largest
//   measured cluster).
// Checking: leave-one-N-out — fit on the other N, predict this N's points, report the relative error. A
// point is only checked when the other N determine the curve (as many distinct x as coefficients); with
// fewer, the fit is reported as unchecked rather than checked against itself.

export interface Point {
  x: number;
  y: number;
  n: number;
}
export interface LinFit {
  a: number;
  b: number;
  points: number;
}
export interface PowFit {
  a: number;
  k: number;
  points: number;
}
export interface Check {
  n: number;
  x: number;
  measured: number;
  predicted: number;
  errPct: number;
}

export function linFit(ps: { x: number; y: number }[]): LinFit {
  const m = ps.length;
  if (m === 0) return { a: NaN, b: NaN, points: 0 };
  const mx = ps.reduce((s, p) => s + p.x, 0) / m,
    my = ps.reduce((s, p) => s + p.y, 0) / m;
  const sxx = ps.reduce((s, p) => s + (p.x - mx) ** 2, 0),
    sxy = ps.reduce((s, p) => s + (p.x - mx) * (p.y - my), 0);
  const b = sxx > 0 ? sxy / sxx : 0;
  return { a: my - b * mx, b, points: m };
}

function powFit(ps: { x: number; y: number }[]): PowFit {
  const l = linFit(ps.filter((p) => p.x > 0 && p.y > 0).map((p) => ({ x: Math.log(p.x), y: Math.log(p.y) })));
  return { a: Math.exp(l.a), k: l.b, points: l.points };
}
const linAt = (f: LinFit, x: number) => f.a + f.b * x;
const powAt = (f: PowFit, x: number) => f.a * x ** f.k;

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

export const linModel = (ps: Point[]) => {
  const f = linFit(ps);
  return (x: number) => linAt(f, x);
};

// ---- time against rules: the curve that checks best -------------------------------------------------
type CurveModel = "linear" | "quadratic" | "power" | "hinge";
const CURVE_PARAMS: Record<CurveModel, number> = { linear: 2, quadratic: 3, power: 2, hinge: 3 };
/** The curves first-packet latency and CPU may take: a line, or two lines joined at a knee (coef
 * [a, b, c, knee]: a + b·x, plus c·(x − knee) past the knee). A rule walk costs little per rule while the
 * ruleset sits in the caches and a miss per rule once it does not, after which it is a line again with the
 * steeper slope; a quadratic or a power law would carry the bend on for ever when extrapolated. */
export const COST_CURVES: CurveModel[] = ["linear", "hinge"];
export interface CurveFit {
  model: CurveModel;
  coef: number[]; // linear [a, b]; quadratic [a, b, c]; power [a, k]; hinge [a, b, c, knee]
  points: number;
  looMeanAbsErrPct: number | null; // of this model, leaving each N out; null = not checkable
  candidates: { model: CurveModel; looMeanAbsErrPct: number | null }[];
  // the fit's uncertainty: this model refitted with each N left out (where the rest determine it) and the
  // other candidate curves fitted on every point; a modelled figure is shown as the span of them all
  variants?: { why: string; model: CurveModel; coef: number[] }[];
}

// relative errors count, as the checks do: 1 s off at 1k Services matters more than at 10k
const relWeight = (q: { y: number }) => (q.y > 0 ? 1 / (q.y * q.y) : 1);

// Least squares of the relative error with every coefficient ≥ 0 over the basis x^0..x^(p-1) (p ≤ 3).
function nnlsPoly(ps: { x: number; y: number }[], p: number): number[] {
  return (
    nnlsBasis(
      ps,
      [...Array(p).keys()].map((j) => (x: number) => x ** j),
    ) ?? Array(p).fill(0)
  );
}
function solve(A: number[][], v: number[]): number[] | null {
  const n = v.length,
    M = A.map((r, i) => [...r, v[i]]);
  for (let c = 0; c < n; c++) {
    let piv = c;
    for (let r = c + 1; r < n; r++) if (Math.abs(M[r][c]) > Math.abs(M[piv][c])) piv = r;
    if (Math.abs(M[piv][c]) < 1e-12) return null;
    [M[c], M[piv]] = [M[piv], M[c]];
    for (let r = 0; r < n; r++)
      if (r !== c) {
        const f = M[r][c] / M[c][c];
        for (let k = c; k <= n; k++) M[r][k] -= f * M[c][k];
      }
  }
  return M.map((r, i) => r[n] / M[i][i]);
}
const polyAt = (c: number[], x: number) => c.reduce((s, k, j) => s + k * x ** j, 0);

// The hinge: for each knee at a measured x strictly inside the range, non-negative least squares (relative
// error) over 1, x and max(0, x − knee); the knee that fits best.
function nnlsHinge(ps: { x: number; y: number }[]): number[] {
  const xs = [...new Set(ps.map((q) => q.x))].sort((a, b) => a - b);
  let best = nnlsPoly(ps, 2).concat([0, xs[xs.length - 1] ?? 0]),
    bestErr = hingeErr(ps, best);
  for (const knee of xs.slice(1, -1)) {
    const c = nnlsBasis(ps, [(_x: number) => 1, (x: number) => x, (x: number) => Math.max(0, x - knee)]);
    if (!c) continue;
    const coef = [c[0], c[1], c[2], knee],
      err = hingeErr(ps, coef);
    if (err < bestErr) {
      best = coef;
      bestErr = err;
    }
  }
  return best;
}
const hingeAt = (c: number[], x: number) => c[0] + c[1] * x + c[2] * Math.max(0, x - c[3]);
const hingeErr = (ps: { x: number; y: number }[], c: number[]) =>
  ps.reduce((s, q) => s + relWeight(q) * (hingeAt(c, q.x) - q.y) ** 2, 0);

// Non-negative least squares of the relative error over a few basis functions: the best of the fits on
// each subset of the basis whose coefficients all come out ≥ 0 (7 subsets for 3 functions). Each column
// is scaled to [0, 1] first so R² (10^12 at 100k Services) does not swamp the normal equations.
function nnlsBasis(ps: { x: number; y: number }[], fns: ((x: number) => number)[]): number[] | null {
  const w = relWeight;
  const scale = fns.map((f) => Math.max(...ps.map((q) => Math.abs(f(q.x))), 1e-300));
  const col = (j: number, x: number) => fns[j](x) / scale[j];
  let best: number[] | null = null,
    bestErr = Infinity;
  for (let mask = 1; mask < 1 << fns.length; mask++) {
    const idx = [...fns.keys()].filter((j) => mask & (1 << j));
    const A = idx.map((j) => idx.map((k) => ps.reduce((s, q) => s + w(q) * col(j, q.x) * col(k, q.x), 0)));
    const v = idx.map((j) => ps.reduce((s, q) => s + w(q) * q.y * col(j, q.x), 0));
    const sol = solve(A, v);
    if (!sol || sol.some((c) => !(c >= 0))) continue;
    const coef = fns.map(() => 0);
    idx.forEach((j, t) => (coef[j] = sol[t] / scale[j]));
    const err = ps.reduce((s, q) => s + w(q) * (coef.reduce((t, c, j) => t + c * fns[j](q.x), 0) - q.y) ** 2, 0);
    if (err < bestErr) {
      best = coef;
      bestErr = err;
    }
  }
  return best;
}

function fitCoef(ps: { x: number; y: number }[], model: CurveModel): number[] {
  if (model === "power") {
    const f = powFit(ps);
    return [f.a, f.k];
  }
  if (model === "hinge") return nnlsHinge(ps);
  return nnlsPoly(ps, CURVE_PARAMS[model]);
}
const coefAt = (model: CurveModel, c: number[], x: number) =>
  model === "power" ? c[0] * x ** c[1] : model === "hinge" ? hingeAt(c, x) : polyAt(c, x);

/** A curve's value at x; also reads calibrations written before curves were chosen (a power law {a, k}
 * for sync, a line {a, b} for latency and CPU). */
export function curveAt(f: CurveFit | PowFit | LinFit, x: number): number {
  if ("model" in f) return coefAt(f.model, f.coef, x);
  if ("b" in f) return linAt(f, x);
  return powAt(f, x);
}

/** Leave-one-N-out for one model, only where the other N determine it: as many distinct x among them as
 * the model has coefficients (a sync time has one point per N; a first-packet cost two, the first and the
 * last Service, so two N already check a line). */
function curveChecks(ps: Point[], model: CurveModel): Check[] {
  const ns = new Set(ps.map((p) => p.n));
  for (const n of ns) if (new Set(ps.filter((p) => p.n !== n).map((p) => p.x)).size < CURVE_PARAMS[model]) return [];
  return leaveOneOut(ps, (rest) => {
    const c = fitCoef(rest, model);
    return (x: number) => coefAt(model, c, x);
  });
}

/** Fits every candidate curve, checks each by leaving one N out, keeps the one that missed least (the
 * simpler unless the other misses clearly less; `fallback` when nothing can be checked). Returns the fit and the kept
 * model's checks. */
export function chooseCurve(
  ps: Point[],
  models: CurveModel[] = ["linear", "power", "quadratic"],
  fallback: CurveModel = "power",
): { fit: CurveFit; checks: Check[] } {
  const tried = models.map((model) => {
    const checks = curveChecks(ps, model);
    const err = checks.length ? checks.reduce((s, c) => s + Math.abs(c.errPct), 0) / checks.length : null;
    return { model, checks, err };
  });
  const checkable = tried.filter((t) => t.err !== null && Number.isFinite(t.err));
  // a curve with more coefficients must miss clearly less (by a tenth) to replace a simpler one: on a near
  // tie the extra coefficient is fitting noise, and it is the extrapolation that pays for it
  const more = (a: CurveModel, b: CurveModel) => CURVE_PARAMS[b] > CURVE_PARAMS[a];
  const pick = checkable.length
    ? checkable.reduce((a, b) => (b.err! < (more(a.model, b.model) ? 0.9 : 1) * a.err! ? b : a))
    : { model: fallback, checks: curveChecks(ps, fallback), err: null };
  const variants: NonNullable<CurveFit["variants"]> = [];
  const ns = [...new Set(ps.map((p) => p.n))];
  if (pick.checks.length)
    for (const n of ns)
      variants.push({
        why: `${pick.model} without N=${n}`,
        model: pick.model,
        coef: fitCoef(
          ps.filter((p) => p.n !== n),
          pick.model,
        ),
      });
  const distinctX = new Set(ps.map((p) => p.x)).size;
  for (const m of models)
    if (m !== pick.model && distinctX >= CURVE_PARAMS[m]) variants.push({ why: m, model: m, coef: fitCoef(ps, m) });
  return {
    fit: {
      model: pick.model,
      coef: fitCoef(ps, pick.model),
      points: ps.length,
      looMeanAbsErrPct: pick.err,
      candidates: tried.map((t) => ({ model: t.model, looMeanAbsErrPct: t.err })),
      variants,
    },
    checks: pick.checks,
  };
}

/** The same curve with its coefficients taken from one variant (to carry a variant through a prediction). */
export function curveVariants(f: CurveFit | PowFit | LinFit): (CurveFit | PowFit | LinFit)[] {
  if (!("model" in f) || !f.variants?.length) return [];
  return f.variants.map((w) => ({ ...f, model: w.model, coef: w.coef, variants: undefined }));
}

/** A curve as text: "12 + 0.003·R + 1.2e-8·R²", "3.1e-6·R^1.71". */
export function curveText(f: CurveFit | PowFit | LinFit, v = "R"): string {
  const g = (x: number) => (Math.abs(x) >= 0.01 && Math.abs(x) < 1e4 ? x.toPrecision(3) : x.toExponential(2));
  if ("b" in f) return `${g(f.a)} + ${g(f.b)}·${v}`;
  if (!("model" in f)) return `${g(f.a)}·${v}^${f.k.toFixed(2)}`;
  if (f.model === "power") return `${g(f.coef[0])}·${v}^${f.coef[1].toFixed(2)}`;
  if (f.model === "hinge") {
    const terms = [
      f.coef[0] ? g(f.coef[0]) : "",
      f.coef[1] ? `${g(f.coef[1])}·${v}` : "",
      f.coef[2] ? `${g(f.coef[2])}·(${v} − ${Math.round(f.coef[3])}) past ${v} = ${Math.round(f.coef[3])}` : "",
    ];
    return terms.filter(Boolean).join(" + ") || "0";
  }
  const terms = f.coef
    .map((c, j) => (c === 0 ? "" : j === 0 ? g(c) : `${g(c)}·${v}${j === 2 ? "²" : ""}`))
    .filter(Boolean);
  return terms.join(" + ") || "0";
}

/** The calibration the simulator uses, per kernel mode. Latencies and CPU in µs. */
export interface ModeCalibration {
  mode: string;
  kind: "rule-walk" | "verdict-map" | "hash";
  // µs, against rules walked (rule-walk) or N (verdict-map, hash); LinFit in older calibrations
  latency: CurveFit | LinFit;
  cpu: CurveFit | LinFit; // µs per new connection, same x
  baselineLatency: number;
  baselineCpu: number; // no rules at all (µs)
  sync: CurveFit | PowFit; // ms against rules (R); PowFit in calibrations written before curves were chosen
  incremental: CurveFit | PowFit; // ms against rules (R)
  rulesPerService: number; // R(N) / N of the largest measured cluster
  measuredN: number[];
  source: string; // where the numbers come from
  units?: string; // "host" or "VM (TCG): compare only with other VM figures"
}

export interface Calibration {
  machine: string;
  date: string;
  modes: ModeCalibration[];
}
