// npm run bench [-- [groups...] [--quick] [--sched=rr,wlc] [--out=DIR]]
//   groups: lookup (connection lookup + memory latency), memlat (latency only), sched, packet, mh, sim, kernel
//   (the kernel programmer in the VM, bench/kernel-sync.ts), workers (socket mode at 1 and 2 workers against
//   HAProxy and nginx, bench/groups/workers.ts), packetio (packet mode's I/O in namespaces,
//   bench/groups/packet-io.ts); default all
// Prints progress on stderr, the figures and the target summary on stdout, and writes DIR/bench.json plus
// SVG plots (DIR defaults to report/).
import { mkdirSync, writeFileSync } from "node:fs";
import { cpus, totalmem } from "node:os";
import { fileURLToPath } from "node:url";
import { join, relative, resolve } from "node:path";
import { SCHEDULERS } from "../src/core/index.ts";
import { FULL, QUICK } from "./lib/measure.ts";
import { figureTable, targetTable, type Figure, type Target } from "./lib/report.ts";
import { elapsed } from "./lib/progress.ts";
import type { Ctx, GroupResult } from "./lib/context.ts";
import { benchLookup } from "./groups/lookup.ts";
import { benchSched } from "./groups/sched.ts";
import { benchMh } from "./groups/mh.ts";
import { benchPacketsHook } from "./groups/packet.ts";
import { benchSim } from "./groups/sim.ts";
import { benchKernelSync } from "./kernel-sync.ts";
import { benchSync } from "./sync.ts";
import { benchProxyWorkers } from "./groups/workers.ts";
import { benchPacketIo } from "./groups/packet-io.ts";
import { existsSync } from "node:fs";

const GROUPS = ["lookup", "memlat", "sched", "packet", "mh", "sim", "kernel", "sync", "workers", "packetio"] as const;
type Group = (typeof GROUPS)[number];
const root = fileURLToPath(new URL("..", import.meta.url));

function usage(): never {
  console.log(`usage: npm run bench -- [${GROUPS.join("|")} ...] [--quick] [--sched=rr,wlc,...] [--out=DIR]
  lookup   connection lookup at 1k/100k/1M live vs Map baselines, plus memory latency (pointer chase)
  memlat   memory latency only
  sched    every scheduler at 10/100/1000 destinations vs TS baselines
  packet   packet batches (bench/packet.ts benchPackets), Mpps beside kernel IPVS
  mh       Maglev table rebuild at M=4093/65521 with 100/1000 destinations
  sim      the simulator: 10M connections over 10k Services through the data plane (target ≤ 6 s, ±10 %), 3 runs
  kernel   the kernel programmer in the VM (../shared/ipvs-vm): full sync, read back, one change by the
           partial pass, the cached full pass and the full pass with the table read back (10+ minutes)
  sync     connection sync per entry: the master's emit, the backup's apply and decode (bench/sync.ts); then
           the kernel's daemons against wasmvs's on the same entries, in the VM (bench/sync-vm.ts, minutes)
  workers  socket mode at 1 and 2 workers against HAProxy nbthread 1/2 and nginx worker_processes 1/2:
           CPU per message, connection and GB, rates (5 s x 3 rounds; root installs haproxy and nginx)
  packetio packet mode's I/O end to end in namespaces (bench/packet-mode.ts: rings, recvmmsg/sendmmsg, AF_XDP)
           beside the kernel's iptables DNAT, Mpps per core against 1 Mpps (root; about 2 minutes)
  --quick  shorter sampling (about 30 s for everything)`);
  process.exit(0);
}

const argv = process.argv.slice(2);
if (argv.includes("-h") || argv.includes("--help")) usage();
const quick = argv.includes("--quick");
const outDir = resolve(root, argv.find((a) => a.startsWith("--out="))?.slice(6) ?? "report");
const schedArg = argv.find((a) => a.startsWith("--sched="))?.slice(8);
const schedNames = schedArg ? schedArg.split(",").filter(Boolean) : [...SCHEDULERS];
for (const s of schedNames)
  if (!(SCHEDULERS as readonly string[]).includes(s)) {
    console.error(`unknown scheduler '${s}' (known: ${SCHEDULERS.join(", ")})`);
    process.exit(2);
  }
const named = argv.filter((a) => !a.startsWith("-"));
for (const g of named)
  if (!(GROUPS as readonly string[]).includes(g)) {
    console.error(`unknown group '${g}' (known: ${GROUPS.join(", ")})`);
    process.exit(2);
  }
const want = new Set<Group>(named.length ? (named as Group[]) : GROUPS);
if (want.has("lookup")) want.add("memlat");

const ctx: Ctx = { quick, budget: quick ? QUICK : FULL };
const started = new Date();
process.stderr.write(
  `wasmvs bench: ${[...want].join(", ")}${quick ? " (quick)" : ""}; node ${process.version}; ` +
    `${cpus()[0]?.model ?? "?"} ×${cpus().length}\n`,
);

const figures: Figure[] = [];
const targets: Target[] = [];
const svgs: Record<string, string> = {};
const take = (r: GroupResult) => {
  figures.push(...r.figures);
  targets.push(...r.targets);
  Object.assign(svgs, r.svgs);
};

if (want.has("lookup") || want.has("memlat"))
  take(await benchLookup(ctx, { lookup: want.has("lookup"), memlat: want.has("memlat") }));
if (want.has("sched")) take(await benchSched(ctx, schedNames));
if (want.has("packet")) take(await benchPacketsHook(ctx));
if (want.has("mh")) take(await benchMh(ctx));
if (want.has("sim")) take(await benchSim(ctx));
if (want.has("sync")) take(await benchSync(ctx));
if (want.has("workers")) take(await benchProxyWorkers(ctx));
if (want.has("packetio")) take(await benchPacketIo(ctx));
if (want.has("kernel")) {
  const vm = fileURLToPath(new URL("../../shared/ipvs-vm/ipvs-vm.sh", import.meta.url));
  if (!existsSync(vm)) {
    targets.push({
      id: "kernel",
      target: "kernel programmer in the VM",
      measured: "-",
      status: "SKIP",
      note: `${vm} is missing`,
    });
  } else {
    const what = quick ? " (--quick: 1k only)" : "";
    process.stderr.write(`[${elapsed()}] kernel: bench/kernel-sync.ts in the VM${what}\n`);
    take(await benchKernelSync({ quick }));
  }
}

const durationS = (Date.now() - started.getTime()) / 1000;
process.stderr.write(`[${elapsed()}] done\n\n`);

console.log("FIGURES (ns per operation; speedup = fastest baseline's median / ours, range from the p25–p75 of both)");
console.log(figureTable(figures));
console.log("");
console.log("SUMMARY");
console.log(targetTable(targets));
const count = (s: string) => targets.filter((t) => t.status === s).length;
console.log(
  `\n${count("PASS")} PASS, ${count("MISS")} MISS, ${count("REF")} reference, ${count("SKIP")} skipped; ` +
    `${durationS.toFixed(0)} s${quick ? " (--quick: short sampling, noisier)" : ""}`,
);

mkdirSync(outDir, { recursive: true });
const json = {
  meta: {
    date: started.toISOString(),
    durationS,
    quick,
    groups: [...want],
    schedulers: schedNames,
    node: process.version,
    cpu: cpus()[0]?.model,
    cores: cpus().length,
    memGiB: Math.round(totalmem() / 2 ** 30),
    units: "ns per operation; stats over timed calls: median, p25, p75, MAD",
  },
  figures,
  targets,
};
writeFileSync(join(outDir, "bench.json"), JSON.stringify(json, null, 2) + "\n");
for (const [name, text] of Object.entries(svgs)) writeFileSync(join(outDir, name), text + "\n");
const written = [join(outDir, "bench.json"), ...Object.keys(svgs).map((n) => join(outDir, n))];
console.log(`wrote ${written.map((f) => relative(process.cwd(), f)).join(", ")}`);
