// The scaling simulator: the real WASM data plane (engine.ts) plus calibrated kernel-mode cost models
// (model.ts) over synthetic traffic, for clusters past what the machine can measure.
import { scalingCluster, simServices, type ScalingCluster } from "./cluster.ts";
import { runEngine, synCost, type TrafficSpec, type EngineResult, type SimService } from "./engine.ts";
import {
  chooseCurve,
  curveAt,
  curveVariants,
  COST_CURVES,
  type CurveFit,
  type LinFit,
  type PowFit,
  type Calibration,
  type ModeCalibration,
  type Point,
  type Check,
} from "./model.ts";

export { scalingCluster, simServices, iptablesPartial, nftPartial } from "./cluster.ts";
export { runEngine, loadCore, startTraffic } from "./engine.ts";
export * from "./model.ts";
export { Walker, ipv4Number } from "./iptables.ts";

/** The simulator's speed target (issue 6: 10M connections over 10k Services in ≤ 10 s on one core): SYN then
 * RST, as the benchmark's connector does, Poisson at 20k new connections per simulated second. */
export const TARGET_SERVICES = 10_000;
export const TARGET_TRAFFIC: TrafficSpec = {
  connections: 10_000_000,
  rate: 20000,
  meanLengthMs: 50,
  requests: 0,
  clients: 4096,
  zipf: 0,
  seed: 1,
};

/** One measured (mode, N) point as the calibration needs it (bench/scaling converts its results). */
export interface MeasuredPoint {
  mode: string;
  kind: ModeCalibration["kind"];
  services: number;
  rules: number;
  units: "host" | "vm";
  syncMs: number;
  incrementalMs: number;
  first: { walk: number; latP50: number; cpu: number }; // µs; walk = rules walked (rule-walk modes)
  last: { walk: number; latP50: number; cpu: number };
  baseline: { latP50: number; cpu: number };
}

export interface ModeChecks {
  latency: Check[];
  cpu: Check[];
  sync: Check[];
  incremental: Check[];
}

/** Fits every mode's model from the measured points; returns the calibration and the leave-one-N-out checks. */
export function calibrate(
  points: MeasuredPoint[],
  machine: string,
  source: string,
): { calibration: Calibration; checks: Record<string, ModeChecks> } {
  const modes = [...new Set(points.map((p) => p.mode))];
  const out: ModeCalibration[] = [];
  const checks: Record<string, ModeChecks> = {};
  for (const mode of modes) {
    const ps = points.filter((p) => p.mode === mode);
    const kind = ps[0].kind;
    const xOf = (p: MeasuredPoint, which: "first" | "last") => (kind === "rule-walk" ? p[which].walk : p.services);
    const lat: Point[] = [],
      cpu: Point[] = [],
      sync: Point[] = [],
      inc: Point[] = [];
    for (const p of ps) {
      for (const w of ["first", "last"] as const) {
        lat.push({ x: xOf(p, w), y: p[w].latP50, n: p.services });
        cpu.push({ x: xOf(p, w), y: p[w].cpu, n: p.services });
      }
      sync.push({ x: p.rules, y: p.syncMs, n: p.services });
      inc.push({ x: p.rules, y: p.incrementalMs, n: p.services });
    }
    const big = ps.reduce((a, b) => (b.services > a.services ? b : a));
    const syncCurve = chooseCurve(sync),
      incCurve = chooseCurve(inc);
    // a line unless the knee checks clearly better; a line when too few N to check either
    const latCurve = chooseCurve(lat, COST_CURVES, "linear"),
      cpuCurve = chooseCurve(cpu, COST_CURVES, "linear");
    const med = (xs: number[]) => {
      const s = [...xs].sort((a, b) => a - b);
      return s[Math.floor(s.length / 2)];
    };
    out.push({
      mode,
      kind,
      latency: latCurve.fit,
      cpu: cpuCurve.fit,
      sync: syncCurve.fit,
      incremental: incCurve.fit,
      baselineLatency: med(ps.map((p) => p.baseline.latP50)),
      baselineCpu: med(ps.map((p) => p.baseline.cpu)),
      rulesPerService: big.rules / big.services,
      measuredN: ps.map((p) => p.services).sort((a, b) => a - b),
      source,
      units: ps[0].units === "vm" ? "VM (TCG): compare only with other VM figures" : "host",
    });
    checks[mode] = {
      latency: latCurve.checks,
      cpu: cpuCurve.checks,
      sync: syncCurve.checks,
      incremental: incCurve.checks,
    };
  }
  return { calibration: { machine, date: new Date().toISOString(), modes: out }, checks };
}

interface ModePrediction {
  mode: string;
  services: number;
  measured: boolean;
  units: string;
  firstPacket: { p50: number; p99: number; mean: number }; // µs over the traffic's new connections
  cpuPerConn: number; // µs per new connection (mean over the traffic)
  extraCpuCores: number; // (cpuPerConn - baseline) × rate, in cores
  rulesWalked?: number; // mean (rule-walk modes)
  syncMs: number;
  incrementalMs: number;
  rules: number;
  // the span of each figure over the fit's variants (curveRange): null where the curve's error is unknown
  range: { p50: Range; p99: Range; cpuPerConn: Range; syncMs: Range; incrementalMs: Range };
}
export type Range = [number, number] | null;

/** A figure computed through a curve, as the span over the curve and its variants; without variants, the
 * figure ± the curve's mean leave-one-out error; null when neither is known. */
function spanOf(curve: CurveFit | PowFit | LinFit, figure: (c: CurveFit | PowFit | LinFit) => number): Range {
  const vs = curveVariants(curve);
  const v = figure(curve);
  if (vs.length) {
    const ys = [v, ...vs.map(figure)].filter(Number.isFinite);
    return [Math.max(0, Math.min(...ys)), Math.max(...ys)];
  }
  const e = "model" in curve ? curve.looMeanAbsErrPct : null;
  return e === null || !Number.isFinite(e) ? null : [Math.max(0, v * (1 - e / 100)), v * (1 + e / 100)];
}

export interface SimPointResult {
  services: number;
  servicePorts: number;
  rate: number;
  engine: Omit<EngineResult, "perService" | "decisions">;
  wasm: { nsPerNewConn: number; nsPerConn: number };
  modes: ModePrediction[];
  walkRest: number;
  walkNoService: number;
}

/** The kernel modes' predictions for one cluster and one traffic run's Service mix. */
function predict(
  cal: Calibration,
  services: SimService[],
  perService: Uint32Array,
  nServices: number,
  rate: number,
  measuredN: Set<string>,
  rules?: Record<string, number>,
): ModePrediction[] {
  const out: ModePrediction[] = [];
  for (const m of cal.modes) {
    const x = (s: SimService) => (m.kind === "rule-walk" ? s.walkRules : nServices);
    const total = services.reduce((n, _s, i) => n + perService[i], 0) || 1;
    // weighted quantiles over new connections: each Service's cost × its connection count
    const quantiles = (lat: CurveFit | PowFit | LinFit) => {
      const items: [number, number][] = services.map((s, i) => [curveAt(lat, x(s)), perService[i]]);
      items.sort((a, b) => a[0] - b[0]);
      const q = (p: number) => {
        let acc = 0;
        for (const [v, c] of items) {
          acc += c;
          if (acc >= p * total) return v;
        }
        return items[items.length - 1]?.[0] ?? NaN;
      };
      return {
        p50: q(0.5),
        p99: q(0.99),
        mean: services.reduce((t, s, i) => t + perService[i] * curveAt(lat, x(s)), 0) / total,
      };
    };
    const cpuMean = (cpu: CurveFit | PowFit | LinFit) =>
      services.reduce((t, s, i) => t + perService[i] * curveAt(cpu, x(s)), 0) / total;
    const walkSum = services.reduce((t, s, i) => t + perService[i] * s.walkRules, 0);
    const firstPacket = quantiles(m.latency),
      cpuPerConn = cpuMean(m.cpu);
    const R = rules?.[m.mode] ?? m.rulesPerService * nServices;
    out.push({
      mode: m.mode,
      services: nServices,
      measured: measuredN.has(`${m.mode}:${nServices}`),
      units: m.units ?? "host",
      firstPacket,
      cpuPerConn,
      extraCpuCores: ((cpuPerConn - m.baselineCpu) * rate) / 1e6,
      rulesWalked: m.kind === "rule-walk" ? walkSum / total : undefined,
      syncMs: curveAt(m.sync, R),
      incrementalMs: curveAt(m.incremental, R),
      rules: R,
      range: {
        p50: spanOf(m.latency, (c) => quantiles(c).p50),
        p99: spanOf(m.latency, (c) => quantiles(c).p99),
        cpuPerConn: spanOf(m.cpu, cpuMean),
        syncMs: spanOf(m.sync, (c) => curveAt(c, R)),
        incrementalMs: spanOf(m.incremental, (c) => curveAt(c, R)),
      },
    });
  }
  return out;
}

interface SimOptions {
  services: number[];
  endpoints: number;
  traffic: Omit<TrafficSpec, "seed"> & { seed?: number };
  calibration: Calibration;
  measured?: Set<string>;
  synConns?: number;
  log?: (s: string) => void;
  clusters?: Map<number, ScalingCluster>;
  onPoint?: (p: SimPointResult) => void; // after each N (the caller's progress)
}

/** Runs the traffic through the real data plane at each N and costs it under every calibrated mode. */
export async function simulate(o: SimOptions): Promise<SimPointResult[]> {
  const out: SimPointResult[] = [];
  for (const n of o.services) {
    o.log?.(`sim ${n} Services: building the cluster and its rules`);
    const c = o.clusters?.get(n) ?? scalingCluster(n, o.endpoints, 1, { nft: false });
    const { services, walkRest, walkNoService } = simServices(c);
    o.log?.(`sim ${n} Services: ${o.traffic.connections.toLocaleString("en")} connections through the data plane`);
    const { perService, decisions, ...engine } = await runEngine(services, { seed: 1, ...o.traffic });
    void decisions;
    const syn = await synCost(services, o.synConns ?? 200_000);
    const rules: Record<string, number> = {};
    for (const m of o.calibration.modes)
      if (m.kind === "rule-walk") rules[m.mode] = c.iptables.natRules + c.iptables.filterRules + c.iptables.jumps;
    out.push({
      services: n,
      servicePorts: services.length,
      rate: o.traffic.rate,
      engine,
      wasm: { nsPerNewConn: syn.nsPerSyn, nsPerConn: engine.nsPerConn },
      modes: predict(o.calibration, services, perService, n, o.traffic.rate, o.measured ?? new Set(), rules),
      walkRest,
      walkNoService,
    });
    o.onPoint?.(out[out.length - 1]);
  }
  return out;
}
