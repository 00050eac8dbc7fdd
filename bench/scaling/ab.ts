// Two core.wasm builds compared on the simulator's target traffic, paired: both run in one process, each
// with its own table, on alternating slices of simulated time, so a drift of the machine's speed between
// minutes (±20 % here) falls on both alike. Prints each build's median ns (CPU time) per connection and
// the median of B/A over the slices.
//   node --import tsx bench/scaling/ab.ts A.wasm B.wasm [--slices=16] [--ticks=25000]
// With --what=lookup the two builds' connection lookups instead (one at a time and batched, at 1M live by
// default, --live=N), timed in CPU time in interleaved rounds beside the pointer chase, for --pairs fresh
// pairs of instances; --what=packet their packet paths (--flows=1000,100000; --family=6 for IPv6 flows).
// (build B with `npx asc assembly/index.ts --target release -o /tmp/b.wasm`; A can be a saved build/core.wasm)
import { existsSync, readFileSync } from "node:fs";
import { lookupAb } from "../groups/lookup.ts";
import { fmtStat } from "../lib/progress.ts";
import { packetAb } from "../packet.ts";
import { scalingCluster, simServices, startTraffic, TARGET_TRAFFIC, TARGET_SERVICES } from "../../src/sim/index.ts";

const USAGE =
  "usage: node --import tsx bench/scaling/ab.ts A.wasm B.wasm [--slices=16] [--ticks=25000]\n" +
  "       ... A.wasm B.wasm --what=lookup [--live=1000000] [--rounds=15] [--pairs=3]\n" +
  "       ... A.wasm B.wasm --what=packet [--flows=1000,100000] [--family=4|6] [--rounds=11] [--pairs=3]";
function usageError(why: string): never {
  console.error(`ab.ts: ${why}\n${USAGE}`);
  process.exit(2);
}
const args = process.argv.slice(2);
// every option this takes, and the largest value each may have
const LIMITS: Record<string, number> = {
  slices: 1000,
  ticks: 10_000_000,
  live: 1_000_000,
  flows: 1_000_000,
  rounds: 1000,
  pairs: 100,
};
const given = new Map<string, string>();
for (const x of args.filter((y) => y.startsWith("--"))) {
  const m = /^--([a-z]+)=(.*)$/.exec(x);
  if (!m || !(Object.hasOwn(LIMITS, m[1]) || m[1] === "what" || m[1] === "family")) {
    usageError(`unknown option ${JSON.stringify(x.slice(0, 40))}`);
  }
  given.set(m[1], m[2]);
}
const opt = (k: string) => given.get(k);
// a comma-separated list of whole numbers from 1 to the option's limit
function counts(k: string, dflt: string): number[] {
  const raw = opt(k) ?? dflt;
  return raw.split(",").map((v) => {
    const n = Number(v);
    if (!/^\d+$/.test(v) || n < 1 || n > LIMITS[k]) {
      usageError(`--${k}: ${JSON.stringify(v.slice(0, 20))} is not a whole number from 1 to ${LIMITS[k]}`);
    }
    return n;
  });
}
const what = opt("what") ?? "sim";
if (!["sim", "lookup", "packet"].includes(what)) {
  usageError(`--what: ${JSON.stringify(what.slice(0, 20))} is not sim, lookup or packet`);
}
const family = opt("family") ?? "4";
if (family !== "4" && family !== "6") usageError(`--family: ${JSON.stringify(family.slice(0, 20))} is not 4 or 6`);
if (opt("family") && what !== "packet") usageError("--family goes with --what=packet");
const [a, b] = args.filter((x) => !x.startsWith("--"));
if (!a || !b) usageError("two builds to compare, A and B");
for (const f of [a, b]) if (!existsSync(f)) usageError(`${JSON.stringify(f.slice(0, 80))}: no such file`);
const rounds = counts("rounds", what === "lookup" ? "15" : "11")[0];
if (what === "lookup") {
  // Each pair is a fresh A and a fresh B: two instances of one build differ by up to ±20 % here (where their
  // memory landed), so one pair's B/A is not yet a figure; the median over pairs is.
  const pairs = counts("pairs", "3")[0];
  const bytes = [new Uint8Array(readFileSync(a)), new Uint8Array(readFileSync(b))];
  const med = (x: number[]) => [...x].sort((p, q) => p - q)[x.length >> 1];
  for (const n of counts("live", "1000000")) {
    const r: Record<string, number[]> = { chain: [], batch: [], chaseA: [], chaseB: [], speedA: [], speedB: [] };
    for (let i = 0; i < pairs; i++) {
      const { stats: s } = await lookupAb(bytes[0], bytes[1], n, rounds, (l) => process.stderr.write(`${l}\n`));
      const q = (x: string, y: string) => s[x].median / s[y].median;
      r.chain.push(q("B one at a time", "A one at a time"));
      r.batch.push(q("B batched", "A batched"));
      r.chaseA.push(q("A one at a time", "chase, 1 chain"));
      r.chaseB.push(q("B one at a time", "chase, 1 chain"));
      r.speedA.push(q("A one at a time", "A batched"));
      r.speedB.push(q("B one at a time", "B batched"));
      console.log(
        `${n} live, pair ${i + 1}: one at a time A ${fmtStat(s["A one at a time"])}, ` +
          `B ${fmtStat(s["B one at a time"])}, chase ${fmtStat(s["chase, 1 chain"])}; ` +
          `batched A ${fmtStat(s["A batched"])}, B ${fmtStat(s["B batched"])}`,
      );
    }
    const f = (x: number[]) => `${med(x).toFixed(2)} (${Math.min(...x).toFixed(2)}–${Math.max(...x).toFixed(2)})`;
    console.log(
      `${n} live, median over ${pairs} pairs (range): B/A one at a time ${f(r.chain)}, batched ` +
        `${f(r.batch)}; one at a time / chase: A ${f(r.chaseA)}, B ${f(r.chaseB)}; batched speed-up: A ` +
        `${f(r.speedA)}, B ${f(r.speedB)}`,
    );
  }
  process.exit(0);
}
if (what === "packet") {
  const flows = counts("flows", "1000,100000");
  // fresh pairs of instances, as for lookups
  for (let i = 0; i < counts("pairs", "3")[0]; i++) {
    await packetAb(
      new Uint8Array(readFileSync(a)),
      new Uint8Array(readFileSync(b)),
      flows,
      rounds,
      (l) => console.log(`pair ${i + 1}${family === "6" ? " (IPv6)" : ""}: ${l}`),
      { v6: family === "6" },
    );
  }
  process.exit(0);
}
const slices = counts("slices", "16")[0],
  ticks = counts("ticks", "25000")[0],
  warmTicks = 80_000;

const { services } = simServices(scalingCluster(TARGET_SERVICES, 2, 1, { nft: false }));
// the target's traffic, without end: each build runs only as many slices as the other
const traffic = { ...TARGET_TRAFFIC, connections: 1e12 };
const gens = [
  (await startTraffic(services, traffic, new Uint8Array(readFileSync(a)))).gen,
  (await startTraffic(services, traffic, new Uint8Array(readFileSync(b)))).gen,
];
// warm up to the steady state: the table full of 60 s SYN_RECV entries
for (const [i, g] of gens.entries()) {
  process.stderr.write(`warming ${i ? "B" : "A"} up (${warmTicks / 1000} s simulated)\n`);
  for (let t = 0; t < warmTicks; t += 1000) g.run(1000);
}
const ns: number[][] = [[], []];
for (let i = 0; i < slices; i++) {
  for (const j of i % 2 ? [1, 0] : [0, 1]) {
    // CPU time: on a shared machine wall time counts other tenants' slices
    const g = gens[j],
      m0 = g.made,
      c0 = process.cpuUsage();
    for (let t = 0; t < ticks; t += 1000) g.run(1000);
    const c = process.cpuUsage(c0);
    ns[j].push(((c.user + c.system) * 1e3) / (g.made - m0));
  }
  process.stderr.write(
    `slice ${i + 1}/${slices}: A ${ns[0][i].toFixed(0)} ns/conn, B ${ns[1][i].toFixed(0)} ns/conn\n`,
  );
}
const median = (x: number[]) => {
  const s = [...x].sort((p, q) => p - q);
  return s.length % 2 ? s[s.length >> 1] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const ratio = ns[0].map((x, i) => ns[1][i] / x);
console.log(`A ${a}: median ${median(ns[0]).toFixed(0)} ns per connection`);
console.log(`B ${b}: median ${median(ns[1]).toFixed(0)} ns per connection`);
console.log(
  `B/A over ${slices} paired slices: median ${median(ratio).toFixed(3)} (range ${Math.min(...ratio).toFixed(3)} ` +
    `to ${Math.max(...ratio).toFixed(3)})`,
);
