// Packet mode's throughput and where its time goes: `wasmvs proxy --mode packet` in a balancer namespace,
// pinned to one core, a UDP flood (bench/packet-mode/flood.c, sendmmsg on a raw socket, many flows) from
// a client namespace pinned to the other, a backend namespace that counts and drops what arrives in
// nftables (prerouting), so no application cost is measured on that side.
//
//   sudo node --import tsx bench/packet-mode.ts [--seconds=3] [--reps=3] [--batches=1,8,64] [--flows=1024] [--cpus=P,F]
//
// Figures per batch size (median of the repetitions): packets/s delivered to the backend namespace; the
// proxy's CPU time per packet and how busy its core was (below 100%: it was not the bottleneck, or it was
// starved by other work on that core); and where the time of each wake-up goes, per packet: recvmmsg,
// the WASM batch, sendmmsg (which includes the veth peer's receive up to the backend's drop: veth
// delivers in the sender's context) and JS/N-API glue (the rest). The stages are wall-clock times, so on
// a shared machine they include preemption; their shares are what to read. Batch size 1 is the baseline:
// the ratio says what batching buys. --cpus pins the proxy and the flood (default 0,1). Writes
// report/packet-mode.json and .svg.
import { execFileSync, spawn, spawnSync, type ChildProcess } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { cpus } from "node:os";
import { fileURLToPath } from "node:url";
import { ControlClient } from "../src/proxy/control.ts";
import { loadPacketAddon } from "../src/proxy/packet.ts";

const root = fileURLToPath(new URL("..", import.meta.url));
const arg = (k: string, d: string) => process.argv.find((a) => a.startsWith(`--${k}=`))?.slice(k.length + 3) ?? d;
const SECONDS = Number(arg("seconds", "3"));
const REPS = Number(arg("reps", "3"));
const BATCHES = arg("batches", "1,8,64").split(",").map(Number);
const FLOWS = Number(arg("flows", "1024"));
const PAYLOAD = Number(arg("payload", "64"));
const [PROXY_CPU, FLOOD_CPU] = arg("cpus", "0,1").split(",");

const sfx = (process.pid % 46656).toString(36);
const NS = { client: `wpb${sfx}c`, lb: `wpb${sfx}l`, be: `wpb${sfx}b` };
const IF = { cl: `wpb${sfx}cl`, lc: `wpb${sfx}lc`, lb: `wpb${sfx}lb`, bl: `wpb${sfx}bl` };
const A = { client: "10.233.1.2", lbc: "10.233.1.1", lbb: "10.233.2.1", be: ["10.233.2.11", "10.233.2.12"], vip: "10.233.100.1", snat: "10.233.200.1" };
const DIR = `/tmp/wpb-${process.pid}`;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const log = (m: string) => process.stderr.write(`[packet-mode] ${m}\n`);

function ip(args: string[]) { execFileSync("ip", args, { stdio: ["ignore", "ignore", "pipe"] }); }
function nsx(ns: string, args: string[], input?: string): string {
  return execFileSync("ip", ["netns", "exec", ns, ...args], { input, encoding: "utf8", stdio: ["pipe", "pipe", "pipe"] });
}
function teardown() { for (const ns of Object.values(NS)) { try { ip(["netns", "del", ns]); } catch { /* absent */ } } }

function setup() {
  teardown();
  for (const ns of Object.values(NS)) { ip(["netns", "add", ns]); ip(["-n", ns, "link", "set", "lo", "up"]); }
  ip(["link", "add", IF.cl, "netns", NS.client, "type", "veth", "peer", "name", IF.lc, "netns", NS.lb]);
  ip(["link", "add", IF.lb, "netns", NS.lb, "type", "veth", "peer", "name", IF.bl, "netns", NS.be]);
  for (const [ns, dev] of [[NS.client, IF.cl], [NS.lb, IF.lc], [NS.lb, IF.lb], [NS.be, IF.bl]]) ip(["-n", ns, "link", "set", dev, "up"]);
  ip(["-n", NS.client, "addr", "add", `${A.client}/24`, "dev", IF.cl]);
  ip(["-n", NS.client, "route", "add", "default", "via", A.lbc]);
  ip(["-n", NS.lb, "addr", "add", `${A.lbc}/24`, "dev", IF.lc]);
  ip(["-n", NS.lb, "addr", "add", `${A.lbb}/24`, "dev", IF.lb]);
  for (const a of A.be) ip(["-n", NS.be, "addr", "add", `${a}/24`, "dev", IF.bl]);
  ip(["-n", NS.be, "route", "add", "default", "via", A.lbb]);
  nsx(NS.be, ["nft", "-f", "-"], `table inet sink {
  counter got {}
  chain pre {
    type filter hook prerouting priority -300; policy accept;
    udp dport 9000 counter name got drop
  }
}
`);
}

function sinkCount(): number {
  const j = JSON.parse(nsx(NS.be, ["nft", "-j", "list", "counters", "table", "inet", "sink"]));
  return j.nftables.find((x: any) => x.counter)?.counter.packets ?? 0;
}

function cpuMs(pid: number): number {
  const f = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1].split(" ");
  return ((Number(f[11]) + Number(f[12])) * 1000) / 100;   // utime + stime, USER_HZ 100
}

async function startProxy(batch: number): Promise<{ p: ChildProcess; ctl: ControlClient }> {
  const ctlPath = `${DIR}/ctl-${batch}.sock`;
  writeFileSync(`${DIR}/p.yaml`, `proxy:
  control: ${ctlPath}
  vipInterface: lo
  connCapacity: 65536
  logLevel: warn
services:
  - { protocol: udp, addr: ${A.vip}, port: 53, scheduler: rr, realServers: [ { addr: ${A.be[0]}, port: 9000 }, { addr: ${A.be[1]}, port: 9000 } ] }
`);
  const p = spawn("taskset", ["-c", PROXY_CPU, "ip", "netns", "exec", NS.lb, process.execPath, `${root}/bin/wasmvs.js`, "proxy", "-c", `${DIR}/p.yaml`,
    "--mode", "packet", "--interface", `${IF.lc},${IF.lb}`, "--local-address", A.snat, "--batch-size", String(batch)], { stdio: ["ignore", "inherit", "inherit"] });
  const end = Date.now() + 15000;
  while (!existsSync(ctlPath)) {
    if (p.exitCode !== null || Date.now() > end) throw new Error(`proxy did not start (exit ${p.exitCode})`);
    await sleep(50);
  }
  return { p, ctl: await ControlClient.connect(ctlPath) };
}

async function stopProxy(p: ChildProcess) {
  const gone = new Promise((r) => p.once("exit", r));
  p.kill("SIGTERM");
  await Promise.race([gone, sleep(5000)]);
  if (p.exitCode === null) p.kill("SIGKILL");
}

interface Run {
  batch: number; offeredPps: number; deliveredPps: number; rxDropPct: number; avgBatch: number;
  cpuNsPerPkt: number; busyPct: number;
  nsPerPkt: { recv: number; wasm: number; send: number; glue: number; total: number };   // wall time in the wake-ups
}

async function runOnce(batch: number, flood: string, pid: number, ctl: ControlClient): Promise<Run> {
  const s0: any = await ctl.call("status"), c0 = cpuMs(pid), k0 = sinkCount();
  const r = spawnSync("taskset", ["-c", FLOOD_CPU, "ip", "netns", "exec", NS.client, flood, A.client, A.vip, "53", String(FLOWS), String(SECONDS), String(PAYLOAD)], { encoding: "utf8" });
  if (r.status !== 0) throw new Error(`flood failed: ${r.stderr}`);
  await sleep(200);   // the proxy drains what is queued
  const s1: any = await ctl.call("status"), c1 = cpuMs(pid), k1 = sinkCount();
  const sent = Number(r.stdout.trim());
  const d = (f: (s: any) => number) => f(s1) - f(s0);
  const pkts = d((s) => s.timing.packets);
  const recv = d((s) => s.io.recvNs), send = d((s) => s.io.sendNs), wasm = d((s) => s.timing.wasmNs), cb = d((s) => s.timing.callbackNs);
  const cpuNs = (c1 - c0) * 1e6;
  const per = (x: number) => (pkts ? x / pkts : 0);
  return {
    batch, offeredPps: sent / SECONDS, deliveredPps: (k1 - k0) / SECONDS, rxDropPct: sent ? (100 * d((s) => s.io.rxKernelDrops)) / sent : 0,
    avgBatch: pkts / Math.max(1, d((s) => s.timing.batches)),
    cpuNsPerPkt: per(cpuNs), busyPct: (100 * cpuNs) / (SECONDS * 1e9 + 2e8),
    nsPerPkt: { recv: per(recv), wasm: per(wasm), send: per(send), glue: per(cb - recv - wasm - send), total: per(cb) },
  };
}

const median = (xs: number[]) => { const s = [...xs].sort((a, b) => a - b); return s[Math.floor(s.length / 2)]; };

function svg(rows: Run[]): string {
  const stages = ["recv", "wasm", "send", "glue"] as const;
  const colors = { recv: "#4e79a7", wasm: "#f28e2b", send: "#59a14f", glue: "#e15759" };
  const max = Math.max(...rows.map((r) => r.nsPerPkt.total), 1);
  const W = 640, barH = 34, top = 40, left = 110, scale = (W - left - 30) / max;
  let y = top, out = `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${top + rows.length * (barH + 14) + 50}" font-family="sans-serif" font-size="12">
<text x="10" y="20" font-size="14">wasmvs packet mode: time per packet in each stage of a wake-up (ns), UDP flood</text>\n`;
  for (const r of rows) {
    let x = left;
    out += `<text x="10" y="${y + barH / 2 + 4}">batch ${r.batch}</text>\n`;
    for (const s of stages) {
      const w = Math.max(0, r.nsPerPkt[s] * scale);
      out += `<rect x="${x.toFixed(1)}" y="${y}" width="${w.toFixed(1)}" height="${barH}" fill="${colors[s]}"><title>${s} ${r.nsPerPkt[s].toFixed(0)} ns</title></rect>\n`;
      x += w;
    }
    out += `<text x="${(x + 4).toFixed(1)}" y="${y + barH / 2 + 4}">${r.nsPerPkt.total.toFixed(0)} ns, ${(r.deliveredPps / 1000).toFixed(0)} kpps</text>\n`;
    y += barH + 14;
  }
  let lx = left;
  for (const s of stages) { out += `<rect x="${lx}" y="${y + 8}" width="12" height="12" fill="${colors[s]}"/><text x="${lx + 16}" y="${y + 18}">${s}</text>\n`; lx += 90; }
  return out + "</svg>\n";
}

async function main() {
  if (process.getuid?.() !== 0) { console.error("bench/packet-mode.ts needs root (network namespaces, raw sockets)"); process.exit(2); }
  const { error } = loadPacketAddon();
  if (error) { console.error(error); process.exit(2); }
  if (cpus().length < 2) log("fewer than 2 CPUs: the flood and the proxy share one, figures are lower than they would be");
  rmSync(DIR, { recursive: true, force: true });
  mkdirSync(DIR, { recursive: true });
  const flood = `${DIR}/flood`;
  execFileSync("cc", ["-O2", "-o", flood, `${root}/bench/packet-mode/flood.c`]);
  log(`UDP flood, ${FLOWS} flows, ${PAYLOAD}-byte payload, ${SECONDS} s x ${REPS} per batch size (${BATCHES.join(", ")}); about ${Math.ceil(BATCHES.length * (REPS * (SECONDS + 0.5) + 2))} s`);
  setup();
  const results: Run[] = [];
  try {
    for (const b of BATCHES) {
      const { p, ctl } = await startProxy(b);
      try {
        const runs: Run[] = [];
        for (let i = 0; i < REPS; i++) {
          const r = await runOnce(b, flood, p.pid!, ctl);
          log(`batch ${b} run ${i + 1}: ${(r.deliveredPps / 1000).toFixed(0)} kpps delivered of ${(r.offeredPps / 1000).toFixed(0)} kpps offered, ${r.cpuNsPerPkt.toFixed(0)} ns CPU/packet, core ${r.busyPct.toFixed(0)}% busy`);
          runs.push(r);
        }
        const m = (f: (r: Run) => number) => median(runs.map(f));
        results.push({
          batch: b, offeredPps: m((r) => r.offeredPps), deliveredPps: m((r) => r.deliveredPps), rxDropPct: m((r) => r.rxDropPct), avgBatch: m((r) => r.avgBatch),
          cpuNsPerPkt: m((r) => r.cpuNsPerPkt), busyPct: m((r) => r.busyPct),
          nsPerPkt: { recv: m((r) => r.nsPerPkt.recv), wasm: m((r) => r.nsPerPkt.wasm), send: m((r) => r.nsPerPkt.send), glue: m((r) => r.nsPerPkt.glue), total: m((r) => r.nsPerPkt.total) },
        });
      } finally { ctl.close(); await stopProxy(p); }
    }
  } finally { teardown(); rmSync(DIR, { recursive: true, force: true }); }

  const base = results.find((r) => r.batch === 1);
  console.log(`\npacket mode, UDP ${PAYLOAD} B payload, ${FLOWS} flows, proxy on one core (median of ${REPS} x ${SECONDS} s)`);
  // one core's capacity from CPU time per packet: the figure that survives other work on a shared core
  // (delivered packets/s only equals it when the proxy's core was 100% busy on it)
  const cap = (r: Run) => 1e9 / Math.max(1, r.cpuNsPerPkt);
  console.log("| batch | proxy CPU per packet | one core's capacity | vs batch 1 | delivered | offered | rx queue drops | core busy | avg batch | recv | WASM | send | JS/N-API |");
  console.log("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |");
  for (const r of results) {
    const n = r.nsPerPkt, f = (x: number) => `${x.toFixed(0)} ns (${((100 * x) / Math.max(1, n.total)).toFixed(0)}%)`;
    console.log(`| ${r.batch} | ${r.cpuNsPerPkt.toFixed(0)} ns | ${(cap(r) / 1000).toFixed(0)} kpps | ${base ? `${(cap(r) / cap(base)).toFixed(2)}x` : "-"} | ${(r.deliveredPps / 1000).toFixed(0)} kpps | ${(r.offeredPps / 1000).toFixed(0)} kpps | ${r.rxDropPct.toFixed(1)}% | ${r.busyPct.toFixed(0)}% | ${r.avgBatch.toFixed(1)} | ${f(n.recv)} | ${f(n.wasm)} | ${f(n.send)} | ${f(n.glue)} |`);
  }
  const out = `${root}/report`;
  mkdirSync(out, { recursive: true });
  writeFileSync(`${out}/packet-mode.json`, JSON.stringify({ seconds: SECONDS, reps: REPS, flows: FLOWS, payload: PAYLOAD, results }, null, 2) + "\n");
  writeFileSync(`${out}/packet-mode.svg`, svg(results));
  log("wrote report/packet-mode.json and report/packet-mode.svg");
}

main().catch((e) => { console.error(e); teardown(); process.exit(1); });
