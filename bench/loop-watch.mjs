// Preloaded into a process under test (NODE_OPTIONS="--import ./bench/loop-watch.mjs"), it watches that
// process's event loop with a 1 ms timer and keeps, between two ticks, the wall time and the process's CPU
// time. On a loaded machine the wall gap includes the time the process waited for a core; the CPU gap is the
// work the process itself did without a turn of its loop. SIGUSR2 writes the figures since the last signal
// to $WASMVS_LOOP_WATCH (JSON) and starts afresh.
import { writeFileSync } from "node:fs";

const out = process.env.WASMVS_LOOP_WATCH;
if (out) {
  let wall = [], cpu = [];
  let lastWall = performance.now(), lastCpu = process.cpuUsage();
  setInterval(() => {
    const w = performance.now(), c = process.cpuUsage();
    wall.push(w - lastWall);
    cpu.push((c.user - lastCpu.user + c.system - lastCpu.system) / 1000);
    lastWall = w; lastCpu = c;
  }, 1).unref();
  const q = (xs, p) => { const s = Float64Array.from(xs).sort(); return s.length ? +s[Math.min(s.length - 1, Math.floor(p * s.length))].toFixed(2) : 0; };
  process.on("SIGUSR2", () => {
    writeFileSync(out, JSON.stringify({ ticks: wall.length, wall: { p50: q(wall, 0.5), p99: q(wall, 0.99), max: q(wall, 1) },
      cpu: { p50: q(cpu, 0.5), p99: q(cpu, 0.99), max: q(cpu, 1) } }));
    wall = []; cpu = [];
  });
}
