// A restore's state edit on the proxy's side, alone: nextState() for a 100k-line restore (10k services, nine
// real servers each) onto an empty table, then two single changes on the 10k-service result (what control
// requests cost). Main-thread CPU and the GC's pauses (perf_hooks, wall ms) per round.
//   node --import tsx bench/state-editor.ts [--rounds 5]
// For a before/after, run it on both commits (a checkout of each, or `git stash`), interleaved.
import { PerformanceObserver } from "node:perf_hooks";
import { type IpvsadmCommand, parseRestore } from "../src/model/ipvsadm.ts";
import { type StateCommand, nextState } from "../src/proxy/index.ts";

const i = process.argv.indexOf("--rounds");
const rounds = i > 0 ? Number(process.argv[i + 1]) : 5;
let gcMs = 0;
new PerformanceObserver((l) => {
  for (const e of l.getEntries()) gcMs += e.duration;
}).observe({ entryTypes: ["gc"] });
const lines: string[] = [];
for (let k = 0; lines.length < 100000; k++) {
  const vip = `127.1.${(k >> 8) & 255}.${k & 255}:${20000 + (k >> 16)}`;
  lines.push(`-A -t ${vip} -s rr`);
  for (let j = 1; j <= 9 && lines.length < 100000; j++) lines.push(`-a -t ${vip} -r 127.0.0.${j}:9999 -m -w 1`);
}
const cmds = parseRestore(`${lines.join("\n")}\n`).commands.map((c) => c.command as IpvsadmCommand as StateCommand);
const cpu = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
};
const cpuMs: number[] = [],
  gc: number[] = [];
for (let r = 0; r < rounds; r++) {
  const c0 = cpu(),
    g0 = gcMs;
  const full = await nextState({ services: [] }, cmds);
  const s5 = full.services[5];
  const one = await nextState(full, [
    { kind: "add-server", service: s5, server: { ...s5.realServers[0], addr: "127.0.0.99" } },
  ]);
  await nextState(one, [{ kind: "delete-service", service: full.services[7] }]);
  cpuMs.push(Math.round(cpu() - c0));
  gc.push(Math.round(gcMs - g0));
}
const med = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1];
console.log(
  `restore edit (100k lines) + 2 changes on 10k services, ${rounds} rounds: CPU median ${med(cpuMs)} ms ` +
    `(${Math.min(...cpuMs)}-${Math.max(...cpuMs)}), GC pauses median ${med(gc)} ms (${Math.min(...gc)}-` +
    `${Math.max(...gc)}); rounds ${JSON.stringify(cpuMs)}`,
);
process.exit(0);
