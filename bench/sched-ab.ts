// Paired A/B of two core builds on scheduling: both in one process, timed in interleaved rounds, B/A per
// scheduler and size (the way to see a scheduler change through the noise of a shared machine).
//   node --import tsx bench/sched-ab.ts A.wasm B.wasm rr,mh [rounds]
import { readFileSync } from "node:fs";
import { Core } from "../src/core/index.ts";
import { scheduleBatch } from "../src/core/bench-api.ts";
import { interleaved } from "./lib/measure.ts";
const [a, b, names, roundsArg] = process.argv.slice(2);
const rounds = Number(roundsArg ?? 15);
const mods = await Promise.all([a, b].map((f) => WebAssembly.compile(readFileSync(f))));
const LL = ["lc", "wlc", "sed", "nq", "fo", "ovf", "twos", "lblc", "lblcr"];
for (const name of names.split(","))
  for (const n of [10, 100, 1000]) {
    const tasks = await Promise.all(
      mods.map(async (m, j) => {
        const core = await Core.fromModule(m, 16);
        const svc = core.addService({ proto: "tcp", addr: `10.0.${j}.1`, port: 80, scheduler: name });
        for (let i = 0; i < n; i++) {
          core.addDest(svc, { addr: `10.1.${i >> 8}.${i & 255}`, port: 8080, weight: (i % 4) + 1 });
        }
        let src = 0x0c000000;
        const ops = 20000,
          bind = LL.includes(name);
        const fn = () => {
          const r = scheduleBatch(core, svc, ops, src, bind);
          src += ops;
          return r;
        };
        return { name: `${name} ${j}`, fn, ops };
      }),
    );
    const [sa, sb] = interleaved(tasks, rounds);
    const f = (x: { median: number; p25: number; p75: number }) =>
      `${x.median.toFixed(1)} ns (${x.p25.toFixed(1)}–${x.p75.toFixed(1)})`;
    console.log(`${name} ×${n}: A ${f(sa)}, B ${f(sb)}: B/A ${(sb.median / sa.median).toFixed(3)}`);
  }
