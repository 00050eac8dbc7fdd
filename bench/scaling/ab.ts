// Two core.wasm builds compared on the simulator's target traffic, paired: both run in one process, each
// with its own table, on alternating slices of simulated time, so a drift of the machine's speed between
// minutes (±20 % here) falls on both alike. Prints each build's median ns per connection and the median
// of B/A over the slices.
//   node --import tsx bench/scaling/ab.ts A.wasm B.wasm [--slices=16] [--ticks=25000]
// (build B with `npx asc assembly/index.ts --target release -o /tmp/b.wasm`; A can be a saved build/core.wasm)
import { readFileSync } from "node:fs";
import { scalingCluster, simServices, startTraffic, TARGET_TRAFFIC, TARGET_SERVICES } from "../../src/sim/index.ts";

const args = process.argv.slice(2);
const opt = (k: string) => args.find((a) => a.startsWith(`--${k}=`))?.split("=")[1];
const [a, b] = args.filter((x) => !x.startsWith("--"));
if (!a || !b) { console.error("usage: node --import tsx bench/scaling/ab.ts A.wasm B.wasm [--slices=16] [--ticks=25000]"); process.exit(2); }
const slices = Number(opt("slices") ?? 16), ticks = Number(opt("ticks") ?? 25_000), warmTicks = 80_000;

const { services } = simServices(scalingCluster(TARGET_SERVICES, 2, 1, { nft: false }));
// the target's traffic, without end: each build runs only as many slices as the other
const traffic = { ...TARGET_TRAFFIC, connections: 1e12 };
const gens = [(await startTraffic(services, traffic, new Uint8Array(readFileSync(a)))).gen, (await startTraffic(services, traffic, new Uint8Array(readFileSync(b)))).gen];
// warm up to the steady state: the table full of 60 s SYN_RECV entries
for (const [i, g] of gens.entries()) {
  process.stderr.write(`warming ${i ? "B" : "A"} up (${warmTicks / 1000} s simulated)\n`);
  for (let t = 0; t < warmTicks; t += 1000) g.run(1000);
}
const ns: number[][] = [[], []];
for (let i = 0; i < slices; i++) {
  for (const j of i % 2 ? [1, 0] : [0, 1]) {
    const g = gens[j], m0 = g.made, t0 = performance.now();
    for (let t = 0; t < ticks; t += 1000) g.run(1000);
    ns[j].push(((performance.now() - t0) * 1e6) / (g.made - m0));
  }
  process.stderr.write(`slice ${i + 1}/${slices}: A ${ns[0][i].toFixed(0)} ns/conn, B ${ns[1][i].toFixed(0)} ns/conn\n`);
}
const median = (x: number[]) => { const s = [...x].sort((p, q) => p - q); return s.length % 2 ? s[s.length >> 1] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2; };
const ratio = ns[0].map((x, i) => ns[1][i] / x);
console.log(`A ${a}: median ${median(ns[0]).toFixed(0)} ns per connection`);
console.log(`B ${b}: median ${median(ns[1]).toFixed(0)} ns per connection`);
console.log(`B/A over ${slices} paired slices: median ${median(ratio).toFixed(3)} (range ${Math.min(...ratio).toFixed(3)} to ${Math.max(...ratio).toFixed(3)})`);
