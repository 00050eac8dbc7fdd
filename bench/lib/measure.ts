// Timing through tinybench: one task per figure, samples retained, reduced to per-operation nanoseconds
// (median, p25, p75, MAD). Each task call runs a batch of `ops` operations so timer overhead stays small.
import { Bench } from "tinybench";

export interface Stat {
  median: number;
  p25: number;
  p75: number;
  mad: number; // ns per operation
  samples: number;
  opsPerSample: number;
}

export interface RatioStat {
  median: number;
  lo: number;
  hi: number;
}

export interface Budget {
  timeMs: number; // sampling time per task
  warmupMs: number;
  minSamples: number;
}

export const FULL: Budget = { timeMs: 350, warmupMs: 80, minSamples: 12 };
export const QUICK: Budget = { timeMs: 50, warmupMs: 15, minSamples: 5 };

export function quantile(sorted: ArrayLike<number>, q: number): number {
  const n = sorted.length;
  if (n === 0) return NaN;
  const pos = (n - 1) * q;
  const lo = Math.floor(pos),
    hi = Math.ceil(pos);
  return sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo);
}

export function statOf(msSamples: ArrayLike<number>, ops: number): Stat {
  const ns = Array.from(msSamples, (ms) => (ms * 1e6) / ops).sort((a, b) => a - b);
  const median = quantile(ns, 0.5);
  const dev = ns.map((x) => Math.abs(x - median)).sort((a, b) => a - b);
  return {
    median,
    p25: quantile(ns, 0.25),
    p75: quantile(ns, 0.75),
    mad: quantile(dev, 0.5),
    samples: ns.length,
    opsPerSample: ops,
  };
}

export let sink = 0; // results land here so no call is optimized away

// Times fn (which performs `ops` operations per call). budget.minSamples is also the minimum number of calls.
export function measure(name: string, fn: () => number, ops: number, budget: Budget): Stat {
  const bench = new Bench({
    name,
    time: budget.timeMs,
    iterations: budget.minSamples,
    warmup: budget.warmupMs > 0,
    warmupTime: budget.warmupMs,
    warmupIterations: budget.warmupMs > 0 ? 2 : 0,
    retainSamples: true,
    throws: true,
  });
  bench.add(name, () => {
    sink ^= fn() | 0;
  });
  const [task] = bench.runSync();
  const r = task.result;
  if (r.state !== "completed" || !r.latency.samples) throw new Error(`${name}: benchmark ${r.state}`);
  return statOf(r.latency.samples, ops);
}

// For slow calls (hundreds of ms): exactly `samples` timed calls after one warm-up call.
export function measureFew(name: string, fn: () => number, ops: number, samples: number): Stat {
  return measure(name, fn, ops, { timeMs: 0, warmupMs: 0, minSamples: samples });
}

// How many operations per call make one call last about targetMs (at least minOps).
export function calibrate(
  run: (ops: number) => unknown,
  probeOps: number,
  targetMs: number,
  minOps: number,
  maxOps: number,
): number {
  run(probeOps);
  const t0 = performance.now();
  run(probeOps);
  const ms = Math.max(performance.now() - t0, 1e-3);
  return Math.max(minOps, Math.min(maxOps, Math.round((probeOps * targetMs) / ms)));
}

// Several tasks timed in alternation, one call each per round, so load from other tenants of a shared
// machine lands on all of them alike: the ratios of the returned stats are the figures to trust. Timed in
// the process's CPU time (user + system): on a machine with more runnable work than cores, wall time
// counts the slices other tenants ran in, more for a long call than for a short one. Each task
// is first warmed alone for warmMs (at least one call), long enough for V8 to have tiered its code up
// (WASM starts in Liftoff, JS in the interpreter; a short call counted early would time those). Each
// task's fn performs `ops` operations per call.
export interface Task {
  name: string;
  fn: () => number;
  ops: number;
}
export function interleaved(tasks: Task[], rounds: number, warmMs = 60): Stat[] {
  for (const t of tasks) {
    const t0 = performance.now();
    do sink ^= t.fn() | 0;
    while (performance.now() - t0 < warmMs);
  }
  const ms: number[][] = tasks.map(() => []);
  for (let r = 0; r < rounds; r++) {
    for (const [i, t] of tasks.entries()) {
      const c0 = process.cpuUsage();
      sink ^= t.fn() | 0;
      const c = process.cpuUsage(c0);
      ms[i].push((c.user + c.system) / 1000);
    }
  }
  return tasks.map((t, i) => statOf(ms[i], t.ops));
}
