// npm run bench's "workers" group: socket mode at 1 and 2 workers against HAProxy nbthread 1/2 and nginx
// worker_processes 1/2 on loopback (bench/proxy.ts benchWorkers, which installs haproxy and nginx as root).
// The table goes to stdout; the second worker's cost over the first's, per family, becomes the targets: CPU
// per unit summed over every thread, the figure 2 cores can show (rates there show who got the CPU).
import { benchWorkers, table, type WorkerScaling } from "../proxy.ts";
import type { Target } from "../lib/report.ts";
import type { Ctx, GroupResult } from "../lib/context.ts";

const ratio = (s: { median: number; min: number; max: number }) =>
  `${s.median.toFixed(2)} (${s.min.toFixed(2)}–${s.max.toFixed(2)})`;

export async function benchProxyWorkers(ctx: Ctx): Promise<GroupResult> {
  const seconds = ctx.quick ? 1 : 5,
    repeats = ctx.quick ? 1 : 3;
  const r = await benchWorkers({ seconds, repeats });
  console.log(
    `PROXY WORKERS (bench/proxy.ts workers --seconds ${seconds} --repeats ${repeats}; load average ` +
      `${r.load.start.toFixed(1)} to ${r.load.end.toFixed(1)}; medians, min–max)`,
  );
  console.log(table(r.summary));
  console.log("");
  const targets: Target[] = r.scaling.map((x: WorkerScaling) => ({
    id: `workers-${x.family}`,
    target: `${x.family}: 2 workers' CPU per msg / conn / GB over 1 worker's (reference)`,
    measured: `${ratio(x.cpuPerUnit.pingPong)} / ${ratio(x.cpuPerUnit.connClose)} / ${ratio(x.cpuPerUnit.bulk)}`,
    status: "REF",
  }));
  const w = r.scaling.find((x) => x.family === "wasmvs");
  const h = r.scaling.find((x) => x.family === "haproxy");
  if (w && h)
    targets.push({
      id: "workers-per-message",
      target: "wasmvs's second worker adds no more CPU per message than HAProxy's second thread (within 25%)",
      measured: `${w.cpuPerUnit.pingPong.median.toFixed(2)} vs ${h.cpuPerUnit.pingPong.median.toFixed(2)}`,
      status: w.cpuPerUnit.pingPong.median <= h.cpuPerUnit.pingPong.median * 1.25 ? "PASS" : "MISS",
    });
  else
    targets.push({
      id: "workers",
      target: "1 and 2 workers against HAProxy and nginx",
      measured: "-",
      status: "SKIP",
      note: "a contender did not run (haproxy/nginx missing: root installs them)",
    });
  return { figures: [], targets, svgs: {}, extra: { workers: { scaling: r.scaling, main: r.wasmvsMainThread } } };
}
