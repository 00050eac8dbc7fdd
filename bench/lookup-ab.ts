// Paired A/B of two core builds on connection lookup: both in one process, the same connections in each,
// timed in interleaved rounds, B/A per table size (lookupBatch: throughput; lookupChain: one at a time).
//   node --import tsx bench/lookup-ab.ts A.wasm B.wasm [rounds]
import { readFileSync } from "node:fs";
import { Core, TCP_FLAGS } from "../src/core/index.ts";
import { writeKeys4, lookupBatch, lookupChain, type Keys4 } from "../src/core/bench-api.ts";
import { interleaved } from "./lib/measure.ts";
import { ntoa4 } from "../src/model/inet.ts";
const [a, b, roundsArg] = process.argv.slice(2);
const rounds = Number(roundsArg ?? 15);
const mods = await Promise.all([a, b].map((f) => WebAssembly.compile(readFileSync(f))));
const VIP = 0x0a000001;
for (const n of [1000, 100_000]) {
  const keys: Keys4 = {
    proto: 6,
    caddr: new Uint32Array(n),
    cport: new Uint32Array(n),
    vaddr: new Uint32Array(n),
    vport: new Uint32Array(n),
  };
  for (let i = 0; i < n; i++) {
    keys.caddr[i] = (0x64400000 + (i >>> 10)) >>> 0;
    keys.cport[i] = 1024 + (i & 1023);
    keys.vaddr[i] = VIP;
    keys.vport[i] = 80;
  }
  const cores = await Promise.all(
    mods.map(async (m) => {
      const core = await Core.fromModule(m, 1 << 18);
      const svc = core.addService({ proto: "tcp", addr: ntoa4(VIP), port: 80, scheduler: "rr" });
      for (let d = 0; d < 8; d++) core.addDest(svc, { addr: `10.1.0.${d + 1}`, port: 80 });
      for (let i = 0; i < n; i++) {
        core.packet("in", "tcp", ntoa4(keys.caddr[i]), keys.cport[i], ntoa4(VIP), 80, { flags: TCP_FLAGS.SYN, now: 1 });
      }
      writeKeys4(core, keys, n);
      return core;
    }),
  );
  const steps = 200_000;
  const tasks = cores.flatMap((core, j) => [
    { name: `batch ${j}`, fn: () => lookupBatch(core, n), ops: n },
    { name: `chain ${j}`, fn: () => lookupChain(core, n, 0, steps), ops: steps },
  ]);
  const [ba, ca, bb, cb] = interleaved(tasks, rounds);
  const f = (x: { median: number; p25: number; p75: number }) =>
    `${x.median.toFixed(1)} ns (${x.p25.toFixed(1)}–${x.p75.toFixed(1)})`;
  console.log(`${n} live, batched: A ${f(ba)}, B ${f(bb)}: B/A ${(bb.median / ba.median).toFixed(3)}`);
  console.log(`${n} live, one at a time: A ${f(ca)}, B ${f(cb)}: B/A ${(cb.median / ca.median).toFixed(3)}`);
}
