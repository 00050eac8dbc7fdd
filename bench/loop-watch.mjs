// Preloaded into a process under test (NODE_OPTIONS="--import ./bench/loop-watch.mjs"), it watches that
// process's event loop with a 1 ms timer and keeps, between two ticks, the wall time and the main thread's
// CPU time (from /proc/self/task/<pid>/schedstat, in ns: the GC's helper threads are not in it). On a loaded
// machine the wall gap includes the time the process waited for a core; the CPU gap is the work the loop's
// thread did without a turn, and the wait is the time it was ready to run but waited for a core (schedstat's
// second field: a thread that never sleeps is not woken ahead of others when a packet comes). SIGUSR2 writes
// the figures since the last signal to $WASMVS_LOOP_WATCH (JSON) and starts afresh. With them, the GC's
// pauses (perf_hooks' gc entries): count, total and longest, by kind.
import { openSync, readSync, writeFileSync } from "node:fs";
import { PerformanceObserver, constants } from "node:perf_hooks";

let fd = -1;
const buf = Buffer.alloc(128);
/** The main thread's CPU time so far in ms (schedstat), or the process's (all threads) where there is none. */
export function mainThreadCpuMs() {
  return mainThreadSched()[0];
}

/** The main thread's [CPU time, time ready to run but waiting for a core] so far in ms (schedstat; where there
 * is none, the process's CPU time and a wait of 0). */
export function mainThreadSched() {
  try {
    if (fd < 0) fd = openSync(`/proc/self/task/${process.pid}/schedstat`, "r");
    const n = readSync(fd, buf, 0, buf.length, 0);
    const f = buf.toString("latin1", 0, n).split(" ");
    return [Number(f[0]) / 1e6, Number(f[1]) / 1e6];
  } catch {
    const c = process.cpuUsage();
    return [(c.user + c.system) / 1000, 0];
  }
}

const out = process.env.WASMVS_LOOP_WATCH;
if (out) {
  let wall = [],
    cpu = [],
    wait = [];
  let lastWall = performance.now(),
    [lastCpu, lastWait] = mainThreadSched();
  setInterval(() => {
    const w = performance.now(),
      [c, r] = mainThreadSched();
    wall.push(w - lastWall);
    cpu.push(c - lastCpu);
    wait.push(r - lastWait);
    lastWall = w;
    lastCpu = c;
    lastWait = r;
  }, 1).unref();
  const GC_KINDS = {
    [constants.NODE_PERFORMANCE_GC_MINOR]: "minor",
    [constants.NODE_PERFORMANCE_GC_MAJOR]: "major",
    [constants.NODE_PERFORMANCE_GC_INCREMENTAL]: "incremental",
    [constants.NODE_PERFORMANCE_GC_WEAKCB]: "weakcb",
  };
  let gc = {};
  new PerformanceObserver((list) => {
    for (const e of list.getEntries()) {
      const k = GC_KINDS[e.detail?.kind] ?? "other";
      const g = (gc[k] ??= { n: 0, ms: 0, max: 0 });
      g.n++;
      g.ms += e.duration;
      g.max = Math.max(g.max, e.duration);
    }
  }).observe({ entryTypes: ["gc"] });
  const sum = (xs) => xs.reduce((a, x) => a + x, 0);
  const q = (xs, p) => {
    const s = Float64Array.from(xs).sort();
    return s.length ? +s[Math.min(s.length - 1, Math.floor(p * s.length))].toFixed(2) : 0;
  };
  process.on("SIGUSR2", () => {
    writeFileSync(
      out,
      JSON.stringify({
        ticks: wall.length,
        wall: { p50: q(wall, 0.5), p99: q(wall, 0.99), max: q(wall, 1) },
        cpu: { p50: q(cpu, 0.5), p99: q(cpu, 0.99), max: q(cpu, 1), total: +sum(cpu).toFixed(1) },
        wait: { p50: q(wait, 0.5), p99: q(wait, 0.99), max: q(wait, 1), total: +sum(wait).toFixed(1) },
        gc: Object.fromEntries(
          Object.entries(gc).map(([k, g]) => [k, { n: g.n, ms: +g.ms.toFixed(1), max: +g.max.toFixed(1) }]),
        ),
      }),
    );
    wall = [];
    cpu = [];
    wait = [];
    gc = {};
  });
}
