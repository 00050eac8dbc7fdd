// Figure 1: connection lookup at 1k, 100k and 1M live connections, beside a Map-based table (string and
// BigInt keys) holding the same connections, and beside this machine's random memory access latency
// (pointer chasing over 256 MiB, in JS and in WASM).
import { Core } from "../../src/core/index.ts";
import { writeKeys4, lookupBatch, hasChase, chaseInit, chase, chaseFree, type Keys4 } from "../../src/core/bench-api.ts";
import { StringConnTable, BigIntConnTable, newConn } from "../baseline/conn-table.ts";
import { JsChase } from "../lib/memlat.ts";
import { measure, measureFew, type Stat } from "../lib/measure.ts";
import { withBaselines, barChartSvg, type Figure, type Target } from "../lib/report.ts";
import { Progress, fmtNs, fmtStat } from "../lib/progress.ts";
import { ipv4, type Ctx, type GroupResult } from "../lib/context.ts";

const SIZES = [1_000, 100_000, 1_000_000];
const CAPACITY = 1_100_000;           // entries; the table's index gets 2^21 buckets
const CHASE_BYTES = 256 * 1024 * 1024;
const VIP = 0x0a000001, VPORT = 80, TCP = 6;
const MIN_OPS_PER_CALL = 50_000;
const BASELINE_OPS_PER_CALL = 100_000;

// connection i: client 11.x.y.z (i >> 4), port 10000 + (i & 15)
const caddrOf = (i: number) => (0x0b000000 + (i >>> 4)) >>> 0;
const cportOf = (i: number) => 10_000 + (i & 15);

function shuffled(n: number, seed: number): Uint32Array {
  const a = new Uint32Array(n);
  for (let i = 0; i < n; i++) a[i] = i;
  let s = seed >>> 0 || 1;
  for (let i = n - 1; i > 0; i--) {
    s ^= s << 13; s >>>= 0; s ^= s >>> 17; s ^= s << 5; s >>>= 0;
    const j = s % (i + 1);
    const t = a[i]; a[i] = a[j]; a[j] = t;
  }
  return a;
}

const label = (n: number) => (n >= 1e6 ? `${n / 1e6}M` : n >= 1e3 ? `${n / 1e3}k` : `${n}`);

export async function benchLookup(ctx: Ctx, only: { lookup: boolean; memlat: boolean }): Promise<GroupResult> {
  const figures: Figure[] = [];
  const targets: Target[] = [];
  const svgs: Record<string, string> = {};
  const p = new Progress("lookup", (only.lookup ? SIZES.length * 4 : 0) + (only.memlat ? 2 : 0));
  const few = ctx.quick ? 3 : 7;
  const lookupStats: { n: number; ours: Stat; str: Stat; big: Stat }[] = [];

  // memory latency first, while the JS heap is small and quiet (no concurrent GC of the big Maps)
  let jsLat: Stat | null = null, wasmLat: Stat | null = null;
  // ---- memory latency ----------------------------------------------------------------------------------
  if (only.memlat) {
    const steps = ctx.quick ? 50_000 : 200_000;
    const samples = ctx.quick ? 5 : 15;
    p.step(`memory latency: JS pointer chase over ${CHASE_BYTES >> 20} MiB (building the cycle)`);
    const js = new JsChase(CHASE_BYTES);
    js.chase(steps);
    jsLat = measureFew("chase js", () => js.chase(steps), steps, samples);
    p.note(`JS chase ${fmtStat(jsLat)} per step`);
    p.step(`memory latency: WASM pointer chase over ${CHASE_BYTES >> 20} MiB`);
    const wcore = await Core.load({ connCapacity: 16 });
    if (!hasChase(wcore)) {
      p.note("build/core.wasm has no benchChase* exports (assembly/index.ts: export * from \"./bench\"): skipped");
    } else if (!chaseInit(wcore, CHASE_BYTES)) {
      p.note("WASM chase: could not allocate the area: skipped");
    } else {
      chase(wcore, steps);
      wasmLat = measureFew("chase wasm", () => chase(wcore, steps), steps, samples);
      p.note(`WASM chase ${fmtStat(wasmLat)} per step`);
      chaseFree(wcore);
    }
    figures.push(withBaselines({
      group: "memlat", name: `${CHASE_BYTES >> 20} MiB random cycle`, params: { bytes: CHASE_BYTES, steps }, unit: "load",
      ours: wasmLat, oursLabel: "WASM pointer chase", baselines: [{ name: "JS Uint32Array chase", stat: jsLat }],
      note: "dependent loads, 64-byte lines, random single cycle",
    }));
  }

  if (only.lookup) {
    const core = await Core.load({ connCapacity: CAPACITY });
    const svc = core.addService({ proto: "tcp", addr: ipv4(VIP), port: VPORT, scheduler: "rr" });
    for (let d = 0; d < 10; d++) core.addDest(svc, { addr: `10.1.0.${d + 1}`, port: 8080 });
    const str = new StringConnTable(), big = new BigIntConnTable();
    let live = 0;
    for (const n of SIZES) {
      p.step(`${label(n)}: creating ${label(n - live)} connections (Core.packet SYN) and the same in the Map tables`);
      const t0 = performance.now();
      for (let i = live; i < n; i++) {
        const caddr = caddrOf(i), cport = cportOf(i);
        const r = core.packet("in", "tcp", ipv4(caddr), cport, ipv4(VIP), VPORT, { flags: 2 });
        if (r.verdict !== "forward" || !r.isNew) throw new Error(`connection ${i} not created: ${r.verdict} ${r.reason ?? ""}`);
        const c = newConn(TCP, caddr, cport, VIP, VPORT, i % 10);
        str.add(c); big.add(c);
      }
      live = n;
      const stats = core.connStats();
      if (stats.live !== n) throw new Error(`expected ${n} live connections, the table has ${stats.live}`);
      p.note(`created in ${((performance.now() - t0) / 1000).toFixed(1)} s; table ${stats.live}/${stats.capacity}`);

      // every live connection once per pass, in random order
      const order = shuffled(n, 0x9e3779b9 ^ n);
      const keys: Keys4 = { proto: TCP, caddr: new Uint32Array(n), cport: new Uint32Array(n), vaddr: new Uint32Array(n), vport: new Uint32Array(n) };
      for (let k = 0; k < n; k++) {
        const i = order[k];
        keys.caddr[k] = caddrOf(i); keys.cport[k] = cportOf(i); keys.vaddr[k] = VIP; keys.vport[k] = VPORT;
      }
      writeKeys4(core, keys, n, SIZES[SIZES.length - 1]);
      // WASM: lookupBatch walks the whole key area (every live connection, random order) per call, repeated
      // for small tables. The Map baselines take a rolling window of the same key order per call, so their
      // calls stay short while the keys they touch over the run still cover the whole table.
      const reps = Math.max(1, Math.ceil(MIN_OPS_PER_CALL / n));
      const ops = n * reps;
      const bops = Math.min(ops, BASELINE_OPS_PER_CALL);
      let found = 0;
      const wasmRun = () => { let f = 0; for (let r = 0; r < reps; r++) f += lookupBatch(core, n); found = f; return f; };
      const window = (lookup: (proto: number, ca: number, cp: number, va: number, vp: number) => unknown) => {
        let off = 0;
        return () => {
          let f = 0, k = off;
          const { caddr, cport, vaddr, vport } = keys;
          for (let j = 0; j < bops; j++) {
            if (lookup(TCP, caddr[k], cport[k], vaddr[k], vport[k])) f++;
            if (++k === n) k = 0;
          }
          off = k; found = f;
          return f;
        };
      };
      const strRun = window((a, b, c, d, e) => str.lookup(a, b, c, d, e));
      const bigRun = window((a, b, c, d, e) => big.lookup(a, b, c, d, e));
      const big1M = n >= 1_000_000;
      const time = (name: string, run: () => number, perCall: number) => {
        const st = big1M && perCall >= 1_000_000 ? measureFew(name, run, perCall, few) : measure(name, run, perCall, ctx.budget);
        if (found !== perCall) throw new Error(`${name}: found ${found} of ${perCall} keys at ${label(n)} live`);
        return st;
      };
      p.step(`${label(n)}: timing WASM lookupBatch (${ops} lookups per call)`);
      const ours = time(`lookup ${n}`, wasmRun, ops);
      p.note(`WASM ${fmtStat(ours)} per lookup`);
      p.step(`${label(n)}: timing string-keyed Map (${bops} lookups per call)`);
      const s = time(`string ${n}`, strRun, bops);
      p.note(`string Map ${fmtStat(s)}`);
      p.step(`${label(n)}: timing BigInt-keyed Map (${bops} lookups per call)`);
      const b = time(`bigint ${n}`, bigRun, bops);
      p.note(`BigInt Map ${fmtStat(b)}`);
      lookupStats.push({ n, ours, str: s, big: b });
      figures.push(withBaselines({
        group: "lookup", name: `${label(n)} live`, params: { live: n, capacity: CAPACITY, opsPerCall: ops, baselineOpsPerCall: bops }, unit: "lookup",
        ours, oursLabel: "WASM lookupBatch", baselines: [{ name: "string Map", stat: s }, { name: "BigInt Map", stat: b }],
      }));
    }
  }

  // ---- targets -----------------------------------------------------------------------------------------
  for (const l of lookupStats) {
    const best = l.str.median <= l.big.median ? { name: "string Map", s: l.str } : { name: "BigInt Map", s: l.big };
    const r = best.s.median / l.ours.median;
    targets.push({
      id: `lookup-${l.n}`, target: `lookup at ${label(l.n)} live ≥ 4× faster than the baseline`,
      measured: `${fmtNs(l.ours.median)} vs ${best.name} ${fmtNs(best.s.median)}: ${r.toFixed(1)}×`,
      status: r >= 4 ? "PASS" : "MISS",
    });
  }
  const at1M = lookupStats.find((l) => l.n === 1_000_000);
  const lats = [jsLat, wasmLat].filter((x): x is Stat => !!x);
  if (at1M && lats.length) {
    const lat = Math.min(...lats.map((x) => x.median));
    const r = at1M.ours.median / lat;
    targets.push({
      id: "lookup-vs-latency", target: "lookup at 1M live within 2× of random memory access latency",
      measured: `${fmtNs(at1M.ours.median)} vs latency ${fmtNs(lat)} (JS ${jsLat ? fmtNs(jsLat.median) : "-"}, WASM ${wasmLat ? fmtNs(wasmLat.median) : "-"}): ${r.toFixed(2)}×`,
      status: r <= 2 ? "PASS" : "MISS", note: "latency: the lower of the two chases",
    });
  }

  if (lookupStats.length) {
    const refs = [];
    if (jsLat) refs.push({ label: "memory latency, JS chase", ns: jsLat.median, color: "#d62728" });
    if (wasmLat) refs.push({ label: "memory latency, WASM chase", ns: wasmLat.median, color: "#9467bd" });
    svgs["lookup.svg"] = barChartSvg({
      title: "Connection lookup, ns per lookup (random-order hits)",
      subtitle: "WASM lookupBatch vs Map tables with string / BigInt composite keys, same connections, same run",
      yLabel: "ns per lookup", categories: lookupStats.map((l) => `${label(l.n)} live`),
      series: [
        { name: "wasmvs (WASM)", color: "#1f77b4", values: lookupStats.map((l) => l.ours) },
        { name: "string-keyed Map", color: "#bbbbbb", values: lookupStats.map((l) => l.str) },
        { name: "BigInt-keyed Map", color: "#888888", values: lookupStats.map((l) => l.big) },
      ],
      refs,
    });
  }
  return { figures, targets, svgs };
}
