// Where a 100k-line restore's young-generation garbage comes from, on the proxy's side, step by step in one
// process: the parts' JSON parsed, each command checked (control.ts commandProblems), applied to the next
// state (NextState), the state made and checked (proxyStateProblemsInSlices), the core's tables changed
// (Tables.applyInSlices; no listeners). Per step: wall ms and the scavenges (perf_hooks) with their pauses.
//   node --import tsx bench/restore-steps.ts
import { PerformanceObserver, constants } from "node:perf_hooks";
import { parseRestore } from "../src/model/ipvsadm.ts";
import { commandProblems } from "../src/proxy/control.ts";
import { NextState, type StateCommand, proxyStateProblemsInSlices } from "../src/proxy/index.ts";
import { Tables } from "../src/proxy/tables.ts";
import { Core } from "../src/core/index.ts";

let minor = 0,
  minorMs = 0;
new PerformanceObserver((l) => {
  for (const e of l.getEntries())
    if ((e as unknown as { detail?: { kind?: number } }).detail?.kind === constants.NODE_PERFORMANCE_GC_MINOR) {
      minor++;
      minorMs += e.duration;
    }
}).observe({ entryTypes: ["gc"] });
const lines: string[] = [];
for (let k = 0; lines.length < 100000; k++) {
  const vip = `127.1.${(k >> 8) & 255}.${k & 255}:${20000 + (k >> 16)}`;
  lines.push(`-A -t ${vip} -s rr`);
  for (let j = 1; j <= 9 && lines.length < 100000; j++) lines.push(`-a -t ${vip} -r 127.0.0.${j}:9999 -m -w 1`);
}
const cmds = parseRestore(`${lines.join("\n")}\n`).commands.map((c) => c.command);
// the request lines ProxyTarget.apply sends: parts of 1,000 commands
const parts: string[] = [];
for (let i = 0; i < cmds.length; i += 1000)
  parts.push(JSON.stringify({ id: i, op: "applyPart", args: [cmds.slice(i, i + 1000)] }));
const step = async <T>(name: string, fn: () => T | Promise<T>): Promise<T> => {
  await new Promise((r) => setTimeout(r, 50));
  const m0 = minor,
    ms0 = minorMs,
    t0 = performance.now();
  const r = await fn();
  const ms = performance.now() - t0;
  await new Promise((r) => setTimeout(r, 50)); // the GC entries arrive after the work
  console.log(`${name}: ${ms.toFixed(0)} ms, ${minor - m0} scavenges, ${(minorMs - ms0).toFixed(0)} ms in them`);
  return r;
};
const parsed = await step("JSON.parse of the parts", () => parts.map((p) => JSON.parse(p).args[0] as StateCommand[]));
await step("commandProblems", () => {
  for (const p of parsed) for (const c of p) commandProblems(c, "args[0][0]");
});
const batch = new NextState({ services: [] });
await step("NextState.add", async () => {
  for (const p of parsed) await batch.add(p);
});
parsed.length = 0;
const next = await step("NextState.state", () => batch.state());
await step("proxyStateProblemsInSlices", () => proxyStateProblemsInSlices(next));
const tables = new Tables(await Core.load({ connCapacity: 4096 }));
await step("Tables.applyInSlices", () => tables.applyInSlices(next, () => undefined, undefined, true));
process.exit(0);
