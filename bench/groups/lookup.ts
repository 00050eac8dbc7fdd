// Figure 1: connection lookup at 1k, 100k and 1M live connections, two ways: batched (lookupBatch, the
// misses of independent keys overlap: throughput) and one at a time (lookupChain, each key chosen by the
// previous result: latency). Baselines holding the same connections: an open-addressing table on an
// Int32Array with an integer hash (the strongest plain-TypeScript table; the headline ratio), and Maps keyed
// by a string and by a BigInt. Memory: a pointer chase over 256 MiB, one chain (latency, against the
// dependent lookups) and 16 chains in flight (throughput, against the batched lookups), in JS and WASM.
import { Core } from "../../src/core/index.ts";
import {
  writeKeys4,
  lookupBatch,
  lookupChain,
  hasChase,
  chaseInit,
  chase,
  chaseMulti,
  chaseFree,
  type Keys4,
} from "../../src/core/bench-api.ts";
import { StringConnTable, BigIntConnTable, TypedConnTable, newConn } from "../baseline/conn-table.ts";
import { JsChase } from "../lib/memlat.ts";
import { interleaved, type Stat } from "../lib/measure.ts";
import { withBaselines, barChartSvg, type Figure, type Target } from "../lib/report.ts";
import { Progress, fmtNs, fmtStat } from "../lib/progress.ts";
import { ipv4, type Ctx, type GroupResult } from "../lib/context.ts";

const SIZES = [1_000, 100_000, 1_000_000];
const CAPACITY = 1_100_000; // entries; the table's index gets 2^22 buckets (at least two per entry)
const CHASE_BYTES = 256 * 1024 * 1024;
// The chase timed beside the lookups spans what a lookup reads (its entries' 64-byte hot lines and its 2^22
// bucket words, two per entry; not the cold lines: docs/conn-table.md), so both pay the same cache and TLB
// misses per random access.
const TABLE_BYTES = CAPACITY * 64 + (1 << 22) * 8;
const VIP = 0x0a000001,
  VPORT = 80,
  TCP = 6;
const MIN_OPS_PER_CALL = 50_000;
const BASELINE_OPS_PER_CALL = 100_000;
const CHAIN_OPS_PER_CALL = 100_000; // dependent lookups per timed call
const CHAINS = 16; // the chase's chains in flight at once (the WASM chase's most; lookupBatch's group is 64)

// connection i: client 11.x.y.z (i >> 4), port 10000 + (i & 15)
const caddrOf = (i: number) => (0x0b000000 + (i >>> 4)) >>> 0;
const cportOf = (i: number) => 10_000 + (i & 15);

function shuffled(n: number, seed: number): Uint32Array {
  const a = new Uint32Array(n);
  for (let i = 0; i < n; i++) a[i] = i;
  let s = seed >>> 0 || 1;
  for (let i = n - 1; i > 0; i--) {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    const j = s % (i + 1);
    const t = a[i];
    a[i] = a[j];
    a[j] = t;
  }
  return a;
}

const label = (n: number) => (n >= 1e6 ? `${n / 1e6}M` : n >= 1e3 ? `${n / 1e3}k` : `${n}`);

interface SizeStats {
  n: number;
  ours: Stat;
  typed: Stat;
  str: Stat;
  big: Stat;
  chain: Stat;
  typedChain: Stat;
  chase?: Stat;
}
interface Latency {
  js?: Stat;
  wasm?: Stat;
  jsMulti?: Stat;
  wasmMulti?: Stat;
}
interface Tables {
  core: Core;
  str: StringConnTable;
  big: BigIntConnTable;
  typed: TypedConnTable;
  live: number;
  chase: boolean;
}

export async function benchLookup(ctx: Ctx, only: { lookup: boolean; memlat: boolean }): Promise<GroupResult> {
  const figures: Figure[] = [];
  const targets: Target[] = [];
  const svgs: Record<string, string> = {};
  const p = new Progress("lookup", (only.lookup ? SIZES.length * 2 : 0) + (only.memlat ? 2 : 0));
  const rounds = ctx.quick ? 5 : 15;
  const lookupStats: SizeStats[] = [];
  // memory latency first, while the JS heap is small and quiet (no concurrent GC of the big Maps)
  const lat = only.memlat ? await memoryLatency(ctx, p, rounds, figures) : {};
  if (only.lookup) {
    const t = await lookupTables();
    for (const n of SIZES) {
      fillTo(t, n, p);
      const st = timeSize(t, n, rounds, p);
      lookupStats.push(st);
      figures.push(...sizeFigures(st));
    }
    if (t.chase) chaseFree(t.core);
  }
  targets.push(...lookupTargets(lookupStats, lat));
  if (lookupStats.length) svgs["lookup.svg"] = lookupSvg(lookupStats, lat);
  return { figures, targets, svgs };
}

// A pointer chase over 256 MiB: one chain (latency per load) and CHAINS chains in flight (time per load,
// batched), in JS and in WASM.
async function memoryLatency(ctx: Ctx, p: Progress, rounds: number, figures: Figure[]): Promise<Latency> {
  const lat: Latency = {};
  const steps = ctx.quick ? 50_000 : 200_000;
  const per = Math.ceil(steps / CHAINS);
  p.step(`memory: JS pointer chase over ${CHASE_BYTES >> 20} MiB (building the cycle), 1 and ${CHAINS} chains`);
  const js = new JsChase(CHASE_BYTES);
  [lat.js, lat.jsMulti] = interleaved(
    [
      { name: "chase js", fn: () => js.chase(steps), ops: steps },
      { name: "chase js multi", fn: () => js.chaseMulti(CHAINS, per), ops: per * CHAINS },
    ],
    rounds,
  );
  p.note(`JS chase ${fmtStat(lat.js)} per step; ${CHAINS} chains ${fmtStat(lat.jsMulti)} per load`);
  p.step(`memory: WASM pointer chase over ${CHASE_BYTES >> 20} MiB, 1 and ${CHAINS} chains`);
  const wcore = await Core.load({ connCapacity: 16 });
  if (!hasChase(wcore)) {
    p.note('build/core.wasm has no benchChase* exports (assembly/index.ts: export * from "./bench"): skipped');
  } else if (!chaseInit(wcore, CHASE_BYTES)) {
    p.note("WASM chase: could not allocate the area: skipped");
  } else {
    [lat.wasm, lat.wasmMulti] = interleaved(
      [
        { name: "chase wasm", fn: () => chase(wcore, steps), ops: steps },
        { name: "chase wasm multi", fn: () => chaseMulti(wcore, CHAINS, per), ops: per * CHAINS },
      ],
      rounds,
    );
    p.note(`WASM chase ${fmtStat(lat.wasm)} per step; ${CHAINS} chains ${fmtStat(lat.wasmMulti)} per load`);
    chaseFree(wcore);
  }
  figures.push(
    withBaselines({
      group: "memlat",
      name: `${CHASE_BYTES >> 20} MiB random cycle, 1 chain (latency)`,
      params: { bytes: CHASE_BYTES, steps, chains: 1 },
      unit: "load",
      ours: lat.wasm ?? null,
      oursLabel: "WASM pointer chase",
      baselines: [{ name: "JS Uint32Array chase", stat: lat.js }],
      note: "dependent loads, 64-byte lines, random single cycle",
    }),
  );
  figures.push(
    withBaselines({
      group: "memlat",
      name: `${CHASE_BYTES >> 20} MiB random cycle, ${CHAINS} chains (throughput)`,
      params: { bytes: CHASE_BYTES, steps: per * CHAINS, chains: CHAINS },
      unit: "load",
      ours: lat.wasmMulti ?? null,
      oursLabel: "WASM pointer chase",
      baselines: [{ name: "JS Uint32Array chase", stat: lat.jsMulti }],
      note: `${CHAINS} independent chains advanced in turn: their misses overlap`,
    }),
  );
  return lat;
}

// The WASM table and the baselines, empty; the WASM core also holds a chase area as large as the table,
// timed beside the lookups in the same rounds (the 1.2× target compares the two).
async function lookupTables(): Promise<Tables> {
  const core = await Core.load({ connCapacity: CAPACITY });
  const svc = core.addService({ proto: "tcp", addr: ipv4(VIP), port: VPORT, scheduler: "rr" });
  for (let d = 0; d < 10; d++) core.addDest(svc, { addr: `10.1.0.${d + 1}`, port: 8080 });
  const chase = hasChase(core) && chaseInit(core, TABLE_BYTES);
  return {
    core,
    str: new StringConnTable(),
    big: new BigIntConnTable(),
    typed: new TypedConnTable(CAPACITY),
    live: 0,
    chase,
  };
}

// Creates connections up to n live (Core.packet SYN), the same in the baseline tables, and writes every
// live connection's key once, in random order, into the key area.
function fillTo(t: Tables, n: number, p: Progress): void {
  const { core, str, big, typed } = t;
  p.step(`${label(n)}: creating ${label(n - t.live)} connections (Core.packet SYN), the same in the baseline tables`);
  const t0 = performance.now();
  for (let i = t.live; i < n; i++) {
    const caddr = caddrOf(i),
      cport = cportOf(i);
    const r = core.packet("in", "tcp", ipv4(caddr), cport, ipv4(VIP), VPORT, { flags: 2 });
    if (r.verdict !== "forward" || !r.isNew) {
      throw new Error(`connection ${i} not created: ${r.verdict} ${r.reason ?? ""}`);
    }
    const c = newConn(TCP, caddr, cport, VIP, VPORT, i % 10);
    str.add(c);
    big.add(c);
    typed.add(c);
  }
  t.live = n;
  const stats = core.connStats();
  if (stats.live !== n) throw new Error(`expected ${n} live connections, the table has ${stats.live}`);
  p.note(`created in ${((performance.now() - t0) / 1000).toFixed(1)} s; table ${stats.live}/${stats.capacity}`);
  writeKeys4(core, keysOf(n), n, SIZES[SIZES.length - 1]);
}

function keysOf(n: number): Keys4 {
  const order = shuffled(n, 0x9e3779b9 ^ n);
  const keys: Keys4 = {
    proto: TCP,
    caddr: new Uint32Array(n),
    cport: new Uint32Array(n),
    vaddr: new Uint32Array(n).fill(VIP),
    vport: new Uint32Array(n).fill(VPORT),
  };
  for (let k = 0; k < n; k++) {
    keys.caddr[k] = caddrOf(order[k]);
    keys.cport[k] = cportOf(order[k]);
  }
  return keys;
}

// A timed call that checks it found every key it looked up.
const counted = (name: string, want: number, n: number, run: () => number) => () => {
  const f = run();
  if (f !== want) throw new Error(`${name}: found ${f} of ${want} keys at ${label(n)} live`);
  return f;
};

// Batched: WASM lookupBatch and the typed table walk the whole key list (every live connection, random
// order) per call, repeated for small tables: the same keys, the same batch. The Maps take a rolling
// window of the same key order per call, so their calls stay short while the keys they touch over the run
// still cover the whole table. One at a time: each key index depends on the previous result
// (k + 1 + (r >>> 31), r >= 0 on a hit), from a rolling start so the run covers the table. All of them,
// and the WASM pointer chase, in the same interleaved rounds.
function timeSize(t: Tables, n: number, rounds: number, p: Progress): SizeStats {
  const { core, str, big, typed } = t;
  const keys = keysOf(n);
  const reps = Math.max(1, Math.ceil(MIN_OPS_PER_CALL / n));
  const ops = n * reps;
  const bops = Math.min(ops, BASELINE_OPS_PER_CALL);
  const { caddr, cport, vaddr, vport } = keys;
  const wasmRun = counted("WASM lookupBatch", ops, n, () => {
    let f = 0;
    for (let r = 0; r < reps; r++) f += lookupBatch(core, n);
    return f;
  });
  const typedRun = counted("typed table", ops, n, () => {
    let f = 0;
    for (let r = 0; r < reps; r++) {
      for (let k = 0; k < n; k++) if (typed.find(TCP, caddr[k], cport[k], vaddr[k], vport[k]) >= 0) f++;
    }
    return f;
  });
  type Lookup = (proto: number, ca: number, cp: number, va: number, vp: number) => unknown;
  const window = (name: string, lookup: Lookup) => {
    let off = 0;
    return counted(name, bops, n, () => {
      let f = 0,
        k = off;
      for (let j = 0; j < bops; j++) {
        if (lookup(TCP, caddr[k], cport[k], vaddr[k], vport[k])) f++;
        if (++k === n) k = 0;
      }
      off = k;
      return f;
    });
  };
  const strRun = window("string Map", (a, b, c, d, e) => str.lookup(a, b, c, d, e));
  const bigRun = window("BigInt Map", (a, b, c, d, e) => big.lookup(a, b, c, d, e));
  const cops = Math.min(n, CHAIN_OPS_PER_CALL);
  let cstart = 0,
    tstart = 0;
  const chainRun = counted("WASM lookupChain", cops, n, () => {
    const f = lookupChain(core, n, cstart, cops);
    cstart = (cstart + cops) % n;
    return f;
  });
  const typedChainRun = counted("typed table, dependent", cops, n, () => {
    let f = 0,
      k = tstart;
    for (let j = 0; j < cops; j++) {
      const r = typed.find(TCP, caddr[k], cport[k], vaddr[k], vport[k]);
      if (r >= 0) f++;
      k += 1 + (r >>> 31);
      if (k >= n) k -= n;
    }
    tstart = k;
    return f;
  });
  p.step(
    `${label(n)}: batched (WASM ${ops}, typed ${ops}, Maps ${bops} per call) and one at a time (${cops}), ` +
      `${rounds} interleaved rounds${t.chase ? ", beside the WASM pointer chase" : ""}`,
  );
  const tasks = [
    { name: "wasm batch", fn: wasmRun, ops },
    { name: "typed batch", fn: typedRun, ops },
    { name: "string Map", fn: strRun, ops: bops },
    { name: "BigInt Map", fn: bigRun, ops: bops },
    { name: "wasm chain", fn: chainRun, ops: cops },
    { name: "typed chain", fn: typedChainRun, ops: cops },
  ];
  if (t.chase) tasks.push({ name: "chase wasm", fn: () => chase(core, CHAIN_OPS_PER_CALL), ops: CHAIN_OPS_PER_CALL });
  const [ours, tb, s, b, chain, typedChain, chaseStat] = interleaved(tasks, rounds);
  p.note(
    `batched: WASM ${fmtStat(ours)}, typed table ${fmtStat(tb)}, string Map ${fmtStat(s)}, ` +
      `BigInt Map ${fmtStat(b)}`,
  );
  p.note(
    `one at a time: WASM ${fmtStat(chain)}, typed table ${fmtStat(typedChain)}` +
      (chaseStat ? `; WASM pointer chase ${fmtStat(chaseStat)}` : ""),
  );
  return { n, ours, typed: tb, str: s, big: b, chain, typedChain, chase: chaseStat };
}

function sizeFigures(l: SizeStats): Figure[] {
  const reps = Math.max(1, Math.ceil(MIN_OPS_PER_CALL / l.n));
  return [
    withBaselines({
      group: "lookup",
      name: `${label(l.n)} live, batched`,
      params: {
        live: l.n,
        capacity: CAPACITY,
        opsPerCall: l.n * reps,
        baselineOpsPerCall: Math.min(l.n * reps, BASELINE_OPS_PER_CALL),
      },
      unit: "lookup",
      ours: l.ours,
      oursLabel: "WASM lookupBatch",
      baselines: [
        { name: "typed-array table", stat: l.typed },
        { name: "string Map", stat: l.str },
        { name: "BigInt Map", stat: l.big },
      ],
    }),
    withBaselines({
      group: "lookup",
      name: `${label(l.n)} live, one at a time`,
      params: { live: l.n, capacity: CAPACITY, opsPerCall: Math.min(l.n, CHAIN_OPS_PER_CALL) },
      unit: "lookup",
      ours: l.chain,
      oursLabel: "WASM lookupChain",
      baselines: [
        { name: "typed-array table", stat: l.typedChain },
        ...(l.chase ? [{ name: "WASM pointer chase (same rounds)", stat: l.chase }] : []),
      ],
      note: "each key chosen by the previous lookup's result: latency",
    }),
  ];
}

function lookupTargets(lookupStats: SizeStats[], lat: Latency): Target[] {
  const targets: Target[] = [];
  for (const l of lookupStats) {
    const r = l.typed.median / l.ours.median;
    const maps = Math.min(l.str.median, l.big.median) / l.ours.median;
    targets.push({
      id: `lookup-${l.n}`,
      target: `lookup at ${label(l.n)} live, batched: ≥ 4× the typed-array table`,
      measured:
        `${fmtNs(l.ours.median)} vs ${fmtNs(l.typed.median)}: ${r.toFixed(2)}× ` +
        `(the faster Map: ${maps.toFixed(1)}×)`,
      status: r >= 4 ? "PASS" : "MISS",
      note: "same keys, same batch; open addressing on an Int32Array, integer hash",
    });
    const rc = l.typedChain.median / l.chain.median;
    targets.push({
      id: `lookup-chain-${l.n}`,
      target: `lookup at ${label(l.n)} live, one at a time: at least as fast as the typed-array table`,
      measured: `${fmtNs(l.chain.median)} vs ${fmtNs(l.typedChain.median)}: ${rc.toFixed(2)}×`,
      status: rc >= 1 ? "PASS" : "MISS",
    });
  }
  const at1M = lookupStats.find((l) => l.n === 1_000_000);
  if (at1M?.chase) {
    // issue 21: the ratio of two figures timed in the same rounds, with its range from the quartiles
    const c = at1M.chain,
      m = at1M.chase;
    const r = c.median / m.median;
    targets.push({
      id: "lookup-vs-latency",
      target:
        "one lookup at a time at 1M live within 1.2× of one random memory access (WASM pointer chase, " +
        `${Math.round(TABLE_BYTES / 2 ** 20)} MiB as the table)`,
      measured:
        `${fmtStat(c)} vs ${fmtStat(m)}: ${r.toFixed(2)}× (${(c.p25 / m.p75).toFixed(2)}–` +
        `${(c.p75 / m.p25).toFixed(2)})`,
      status: r <= 1.2 ? "PASS" : "MISS",
      note: "latency against latency, interleaved in the same rounds, CPU time",
    });
  }
  if (at1M) {
    const c = at1M.chain,
      b = at1M.ours;
    const r = c.median / b.median;
    targets.push({
      id: "lookup-batch-speedup",
      target: "batched lookups at 1M live at least 3× faster than one at a time",
      measured:
        `${fmtStat(b)} vs ${fmtStat(c)}: ${r.toFixed(2)}× (${(c.p25 / b.p75).toFixed(2)}–` +
        `${(c.p75 / b.p25).toFixed(2)})`,
      status: r >= 3 ? "PASS" : "MISS",
      note: "interleaved in the same rounds, CPU time",
    });
  }
  const multiLat = lower(lat.jsMulti, lat.wasmMulti);
  if (at1M && multiLat) {
    const r = at1M.ours.median / multiLat.median;
    targets.push({
      id: "lookup-vs-throughput",
      target: `batched lookup at 1M live within 2× of a batched memory access (${CHAINS}-chain chase)`,
      measured:
        `${fmtNs(at1M.ours.median)} vs ${fmtNs(multiLat.median)} per load ` +
        `(JS ${lat.jsMulti ? fmtNs(lat.jsMulti.median) : "-"}, ` +
        `WASM ${lat.wasmMulti ? fmtNs(lat.wasmMulti.median) : "-"}): ` +
        `${r.toFixed(2)}×`,
      status: r <= 2 ? "PASS" : "MISS",
      note: "throughput against throughput: the lower of the two chases",
    });
  }
  return targets;
}

const lower = (a?: Stat, b?: Stat) =>
  [a, b]
    .filter((x): x is Stat => !!x)
    .reduce<Stat | undefined>((m, x) => (!m || x.median < m.median ? x : m), undefined);

function lookupSvg(lookupStats: SizeStats[], lat: Latency): string {
  const oneLat = lower(lat.js, lat.wasm),
    multiLat = lower(lat.jsMulti, lat.wasmMulti);
  const refs = [];
  if (oneLat) refs.push({ label: "memory latency, 1 chain", ns: oneLat.median, color: "#d62728" });
  if (multiLat)
    refs.push({ label: `memory access, ${CHAINS} chains in flight`, ns: multiLat.median, color: "#9467bd" });
  return barChartSvg({
    title: "Connection lookup, ns per lookup (random-order hits)",
    subtitle: "batched and one at a time; WASM vs a typed-array open-addressing table and Maps, same connections",
    yLabel: "ns per lookup",
    categories: lookupStats.map((l) => `${label(l.n)} live`),
    series: [
      { name: "wasmvs batched", color: "#1f77b4", values: lookupStats.map((l) => l.ours) },
      { name: "typed-array table batched", color: "#ff7f0e", values: lookupStats.map((l) => l.typed) },
      { name: "wasmvs one at a time", color: "#6baed6", values: lookupStats.map((l) => l.chain) },
      { name: "typed-array table one at a time", color: "#fdae6b", values: lookupStats.map((l) => l.typedChain) },
      { name: "string-keyed Map", color: "#bbbbbb", values: lookupStats.map((l) => l.str) },
      { name: "BigInt-keyed Map", color: "#888888", values: lookupStats.map((l) => l.big) },
    ],
    refs,
  });
}

// ---- A/B of two builds (bench/scaling/ab.ts --what=lookup) ------------------------------------------------

// A table of n live connections (the benchmark's keys), its keys written in random order for lookupBatch
// and lookupChain.
async function tableOf(bytes: Uint8Array<ArrayBuffer>, n: number): Promise<Core> {
  const core = await Core.fromBytes(bytes, CAPACITY);
  const svc = core.addService({ proto: "tcp", addr: ipv4(VIP), port: VPORT, scheduler: "rr" });
  for (let d = 0; d < 10; d++) core.addDest(svc, { addr: `10.1.0.${d + 1}`, port: 8080 });
  for (let i = 0; i < n; i++) {
    const r = core.packet("in", "tcp", ipv4(caddrOf(i)), cportOf(i), ipv4(VIP), VPORT, { flags: 2 });
    if (r.verdict !== "forward" || !r.isNew) throw new Error(`connection ${i} not created: ${r.verdict}`);
  }
  writeKeys4(core, keysOf(n), n);
  return core;
}

export interface LookupAb {
  n: number;
  stats: Record<string, Stat>;
}

// Builds A and B, each with its own table of n connections, and times their one-at-a-time and batched
// lookups beside the WASM pointer chase (1 and 16 chains) in interleaved rounds, in CPU time.
export async function lookupAb(
  a: Uint8Array<ArrayBuffer>,
  b: Uint8Array<ArrayBuffer>,
  n: number,
  rounds: number,
  log: (s: string) => void,
): Promise<LookupAb> {
  const cores = [await tableOf(a, n), await tableOf(b, n)];
  if (!hasChase(cores[0]) || !chaseInit(cores[0], TABLE_BYTES)) throw new Error("build A has no pointer chase");
  const cops = Math.min(n, CHAIN_OPS_PER_CALL),
    reps = Math.max(1, Math.ceil(MIN_OPS_PER_CALL / n));
  const chaseSteps = 100_000,
    per = Math.ceil(chaseSteps / CHAINS);
  const starts = [0, 0];
  const tasks = cores.flatMap((core, j) => {
    const ab = j ? "B" : "A";
    return [
      {
        name: `${ab} one at a time`,
        ops: cops,
        fn: () => {
          const f = lookupChain(core, n, starts[j], cops);
          starts[j] = (starts[j] + cops) % n;
          if (f !== cops) throw new Error(`${ab}: found ${f} of ${cops}`);
          return f;
        },
      },
      {
        name: `${ab} batched`,
        ops: n * reps,
        fn: () => {
          let f = 0;
          for (let r = 0; r < reps; r++) f += lookupBatch(core, n);
          if (f !== n * reps) throw new Error(`${ab}: found ${f} of ${n * reps}`);
          return f;
        },
      },
    ];
  });
  tasks.push({ name: "chase, 1 chain", ops: chaseSteps, fn: () => chase(cores[0], chaseSteps) });
  tasks.push({ name: `chase, ${CHAINS} chains`, ops: per * CHAINS, fn: () => chaseMulti(cores[0], CHAINS, per) });
  const st = interleaved(tasks, rounds);
  const stats: Record<string, Stat> = {};
  tasks.forEach((t, i) => {
    stats[t.name] = st[i];
    log(`${label(n)} ${t.name.padEnd(18)} ${fmtStat(st[i])}`);
  });
  chaseFree(cores[0]);
  return { n, stats };
}
