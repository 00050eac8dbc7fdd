// A /metrics scrape's own cost, the one-pass counters area against the old read (a call per service and per
// destination, test/helpers/metrics-by-records.ts), in one process, interleaved, on the real WASM core and
// tables: S services x D destinations, a socket-mode forwarder's counters on one destination in a hundred.
// Per scrape (snapshot and text): main-thread CPU, GC pauses (perf_hooks) and bytes; medians (min-max).
//   node --import tsx bench/metrics-pass.ts [--services 10000,1000] [--dests 10] [--rounds 7]
// 10,000 x 10 is over the per-destination cap (MAX_DEST_SERIES: services' series only), 1,000 x 10 under it.
import { PerformanceObserver } from "node:perf_hooks";
import * as os from "node:os";
import { Core } from "../src/core/index.ts";
import type { DesiredState, RealServer, VirtualService } from "../src/model/types.ts";
import { serviceKey } from "../src/model/types.ts";
import type { Proxy } from "../src/proxy/index.ts";
import { metricsText, snapshot } from "../src/proxy/metrics.ts";
import type { DestStats } from "../src/proxy/forwarder.ts";
import { Tables, destKey } from "../src/proxy/tables.ts";
import { snapshotByRecords } from "../test/helpers/metrics-by-records.ts";

const arg = (name: string, dflt: string) => {
  const i = process.argv.indexOf(name);
  return i > 0 ? process.argv[i + 1] : dflt;
};
const sizes = arg("--services", "10000,1000").split(",").map(Number);
const D = Number(arg("--dests", "10"));
const rounds = Number(arg("--rounds", "7"));

let gcMs = 0;
new PerformanceObserver((l) => {
  for (const e of l.getEntries()) gcMs += e.duration;
}).observe({ entryTypes: ["gc"] });
const cpu = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
};
const med = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1];
const fmt = (xs: number[]) => `${med(xs).toFixed(1)} (${Math.min(...xs).toFixed(1)}-${Math.max(...xs).toFixed(1)})`;

async function proxyOf(S: number): Promise<Proxy> {
  const core = await Core.load({ connCapacity: 4096 });
  const tables = new Tables(core, "masq");
  const rs = (k: number, j: number): RealServer => ({
    addr: `10.${100 + j}.${(k >> 8) & 255}.${k & 255}`,
    port: 8080,
    weight: 1 + (j % 3),
    fwd: "masq",
    upperThreshold: 0,
    lowerThreshold: 0,
  });
  const services: VirtualService[] = Array.from({ length: S }, (_, k) => ({
    protocol: k % 2 ? "udp" : "tcp",
    addr: `10.0.${(k >> 8) & 255}.${k & 255}`,
    port: 80,
    scheduler: "rr",
    flags: [],
    realServers: Array.from({ length: D }, (_, j) => rs(k, j)),
  }));
  const desired: DesiredState = { services };
  tables.apply(desired);
  const stats = new Map<string, DestStats>();
  const flows = new Map<string, number>();
  for (let k = 0; k < S; k += 10) {
    const key = destKey(serviceKey(services[k]), services[k].realServers[k % D]);
    stats.set(key, { inPkts: k, outPkts: k + 1, inBytes: 100 * k, outBytes: 200 * k });
    flows.set(key, 1);
  }
  const fw = { mode: "socket", stats, drops: new Map(), flowsByDest: () => flows };
  return { core, tables, fw, desired, health: { down: () => undefined } } as unknown as Proxy;
}

for (const S of sizes) {
  const p = await proxyOf(S);
  const row: Record<string, { cpu: number[]; gc: number[]; bytes: number }> = {
    "one pass": { cpu: [], gc: [], bytes: 0 },
    "a call per record": { cpu: [], gc: [], bytes: 0 },
  };
  const paths: [string, (q: Proxy) => Promise<unknown>][] = [
    ["one pass", snapshot as (q: Proxy) => Promise<never>],
    ["a call per record", snapshotByRecords as (q: Proxy) => Promise<never>],
  ];
  for (let r = 0; r < rounds + 1; r++) {
    for (const [name, take] of r % 2 ? paths : [...paths].reverse()) {
      const c0 = cpu(),
        g0 = gcMs;
      const text = await metricsText(p, take as never);
      if (r === 0) continue; // the first round warms the code and the label caches
      row[name].cpu.push(cpu() - c0);
      row[name].gc.push(gcMs - g0);
      row[name].bytes = text.length;
    }
  }
  const a = row["one pass"],
    b = row["a call per record"];
  console.log(
    `${S} services x ${D} (${S * D > 10000 ? "over" : "under"} the per-destination cap), ${rounds} rounds, ` +
      `load ${os
        .loadavg()
        .map((x) => x.toFixed(1))
        .join(" ")}:`,
  );
  for (const [name, x] of Object.entries(row))
    console.log(`  ${name}: CPU ${fmt(x.cpu)} ms, GC ${fmt(x.gc)} ms, ${x.bytes} bytes a scrape`);
  const ratios = a.cpu.map((c, i) => c / b.cpu[i]);
  console.log(`  one pass / a call per record, CPU per round: median ${med(ratios).toFixed(2)}x (${fmt(ratios)})`);
}
process.exit(0);
