// The proxy benchmark and soak, runnable alone:
//   node --import tsx bench/proxy.ts [bench] [--seconds 5] [--conns 32]   wasmvs vs HAProxy vs nginx stream
//   node --import tsx bench/proxy.ts soak [--seconds 600] [--rate 200]    churn while backends come and go
// Bench: each proxy pinned to CPU 0 with taskset (one thread / one worker), the load generator and the
// echo/sink backends on CPU 1, all on loopback: (a) 64-byte ping-pong on persistent connections, (b)
// connect / 64 B / close, (c) bulk transfer; p50/p99 latency and the proxy's CPU. Writes report/proxy.json
// and report/proxy.svg. Installs haproxy, nginx and libnginx-mod-stream with apt-get when missing.
import * as net from "node:net";
import { spawn, execFileSync, type ChildProcess } from "node:child_process";
import { mkdirSync, writeFileSync, readFileSync, existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { fileURLToPath, pathToFileURL } from "node:url";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const log = (s: string) => process.stderr.write(s + "\n");

// ---- backends (run in a child process on CPU 1) ------------------------------------------------------
export function runBackends(echoPorts: number[], sinkPort: number): Promise<void> {
  const servers: net.Server[] = [];
  for (const p of echoPorts) servers.push(net.createServer((s) => { s.setNoDelay(true); s.on("data", (d) => s.write(d)); s.on("end", () => s.end()); s.on("error", () => {}); }).listen(p, "127.0.0.1"));
  servers.push(net.createServer((s) => { s.on("data", () => {}); s.on("end", () => s.end()); s.on("error", () => {}); }).listen(sinkPort, "127.0.0.1"));
  return Promise.all(servers.map((s) => new Promise((r) => s.once("listening", r)))).then(() => {});
}

// ---- load -------------------------------------------------------------------------------------------
function pct(xs: number[], p: number): number {
  if (!xs.length) return 0;
  const s = Float64Array.from(xs).sort();
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
}

function connect(port: number, host = "127.0.0.1"): Promise<net.Socket> {
  return new Promise((res, rej) => { const s = net.connect({ port, host, noDelay: true }, () => res(s)); s.once("error", rej); });
}

async function pingPong(port: number, conns: number, ms: number) {
  const msg = Buffer.alloc(64, 97);
  const lat: number[] = [];
  let n = 0, stop = false;
  const socks = await Promise.all(Array.from({ length: conns }, () => connect(port)));
  const end = Date.now() + ms;
  await Promise.all(socks.map((s) => new Promise<void>((res) => {
    let got = 0, t0 = 0;
    const send = () => { if (stop || Date.now() >= end) { stop = true; s.destroy(); return res(); } t0 = performance.now(); s.write(msg); };
    s.on("data", (d) => { got += d.length; if (got >= 64) { got -= 64; n++; if ((n & 7) === 0) lat.push(performance.now() - t0); send(); } });
    s.on("error", () => res());
    send();
  })));
  return { rate: n / (ms / 1000), p50: pct(lat, 50), p99: pct(lat, 99) };
}

async function connectClose(port: number, conns: number, ms: number) {
  const msg = Buffer.alloc(64, 98);
  const lat: number[] = [];
  let n = 0, fail = 0;
  const end = Date.now() + ms;
  await Promise.all(Array.from({ length: conns }, async () => {
    while (Date.now() < end) {
      const t0 = performance.now();
      const ok = await new Promise<boolean>((res) => {
        const s = net.connect({ port, host: "127.0.0.1", noDelay: true }, () => s.write(msg));
        let got = 0;
        s.on("data", (d) => { got += d.length; if (got >= 64) s.end(); });
        s.on("close", () => res(got >= 64));
        s.on("error", () => {});
      });
      if (ok) { n++; lat.push(performance.now() - t0); } else fail++;
    }
  }));
  return { rate: n / (ms / 1000), p50: pct(lat, 50), p99: pct(lat, 99), fail };
}

async function bulk(port: number, conns: number, ms: number) {
  const chunk = Buffer.alloc(256 * 1024, 99);
  let bytes = 0;
  const socks = await Promise.all(Array.from({ length: conns }, () => connect(port)));
  const end = Date.now() + ms;
  await Promise.all(socks.map((s) => new Promise<void>((res) => {
    const pump = () => {
      while (Date.now() < end) { bytes += chunk.length; if (!s.write(chunk)) return; }
      s.destroy(); res();
    };
    s.on("drain", pump);
    s.on("error", () => res());
    pump();
  })));
  return { gbps: (bytes * 8) / (ms / 1000) / 1e9 };
}

function cpuTicks(pid: number): number {
  try { const f = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1].split(" "); return Number(f[11]) + Number(f[12]); } catch { return 0; }
}

// ---- proxies ----------------------------------------------------------------------------------------
interface Listen { pp: number; cc: number; bulk: number }
interface Backends { echo: number[]; sink: number }
interface Contender { name: string; start(dir: string, l: Listen, be: Backends): Promise<ChildProcess> }

function waitPort(port: number, ms = 15000): Promise<void> {
  const end = Date.now() + ms;
  return new Promise((res, rej) => {
    const tryOnce = () => {
      const s = net.connect(port, "127.0.0.1", () => { s.destroy(); res(); });
      s.on("error", () => { if (Date.now() > end) rej(new Error(`port ${port} never opened`)); else setTimeout(tryOnce, 100); });
    };
    tryOnce();
  });
}

const WASMVS: Contender = {
  name: "wasmvs",
  async start(dir, l, be) {
    const svc = (port: number, backends: number[]) => `  - { protocol: tcp, addr: 127.0.0.1, port: ${port}, scheduler: wlc, realServers: [ ${backends.map((p) => `{ addr: 127.0.0.1, port: ${p} }`).join(", ")} ] }`;
    writeFileSync(`${dir}/wasmvs.yaml`, `proxy: { control: null, vipInterface: null, logLevel: warn, connCapacity: 1048576 }\ntimeouts: { tcp: 900, tcpfin: 1, udp: 300 }\nservices:\n${svc(l.pp, be.echo)}\n${svc(l.cc, be.echo)}\n${svc(l.bulk, [be.sink])}\n`);
    const p = spawn("taskset", ["-c", "0", process.execPath, "--import", "tsx", `${ROOT}/src/proxy/cli.ts`, "run", "-c", `${dir}/wasmvs.yaml`], { stdio: ["ignore", "ignore", "inherit"], cwd: ROOT });
    await waitPort(l.bulk);
    return p;
  },
};

const HAPROXY: Contender = {
  name: "haproxy",
  async start(dir, l, be) {
    const fe = (name: string, port: number, backends: number[]) => `frontend f_${name}\n  bind 127.0.0.1:${port}\n  default_backend b_${name}\nbackend b_${name}\n  balance leastconn\n${backends.map((p, i) => `  server s${i} 127.0.0.1:${p}`).join("\n")}\n`;
    writeFileSync(`${dir}/haproxy.cfg`, `global\n  nbthread 1\n  maxconn 8000\ndefaults\n  mode tcp\n  timeout connect 5s\n  timeout client 60s\n  timeout server 60s\n${fe("pp", l.pp, be.echo)}${fe("cc", l.cc, be.echo)}${fe("bulk", l.bulk, [be.sink])}`);
    const p = spawn("taskset", ["-c", "0", "haproxy", "-f", `${dir}/haproxy.cfg`, "-db"], { stdio: ["ignore", "ignore", "inherit"] });
    await waitPort(l.bulk);
    return p;
  },
};

const NGINX_MOD = "/usr/lib/nginx/modules/ngx_stream_module.so";
const NGINX: Contender = {
  name: "nginx",
  async start(dir, l, be) {
    const up = (name: string, backends: number[]) => `  upstream u_${name} { least_conn; ${backends.map((p) => `server 127.0.0.1:${p};`).join(" ")} }\n`;
    const srv = (name: string, port: number) => `  server { listen 127.0.0.1:${port}; proxy_pass u_${name}; tcp_nodelay on; }\n`;
    writeFileSync(`${dir}/nginx.conf`, `${existsSync(NGINX_MOD) ? `load_module ${NGINX_MOD};\n` : ""}worker_processes 1;\npid ${dir}/nginx.pid;\nerror_log stderr error;\nevents { worker_connections 65536; }\nstream {\n${up("pp", be.echo)}${up("cc", be.echo)}${up("bulk", [be.sink])}${srv("pp", l.pp)}${srv("cc", l.cc)}${srv("bulk", l.bulk)}}\n`);
    const p = spawn("taskset", ["-c", "0", "nginx", "-c", `${dir}/nginx.conf`, "-p", dir, "-g", "daemon off; master_process off;"], { stdio: ["ignore", "ignore", "inherit"] });
    await waitPort(l.bulk);
    return p;
  },
};

function have(cmd: string): boolean { try { execFileSync("sh", ["-c", `command -v ${cmd}`], { stdio: "ignore" }); return true; } catch { return false; } }

// apt-get installs what is missing (root only): haproxy, nginx, libnginx-mod-stream.
export function ensurePackages(): string[] {
  const missing: string[] = [];
  if (!have("haproxy")) missing.push("haproxy");
  if (!have("nginx")) missing.push("nginx");
  if (!existsSync(NGINX_MOD)) missing.push("libnginx-mod-stream");
  if (missing.length && process.getuid?.() === 0) {
    log(`installing ${missing.join(" ")} (apt-get)`);
    try {
      execFileSync("apt-get", ["update", "-qq"], { stdio: "inherit" });
      execFileSync("apt-get", ["install", "-y", "-qq", ...missing], { stdio: "inherit", env: { ...process.env, DEBIAN_FRONTEND: "noninteractive" } });
    } catch (e) { log(`apt-get failed: ${(e as Error).message}`); }
  }
  return [HAPROXY, NGINX].filter((c) => !have(c.name)).map((c) => c.name);
}

export interface BenchResult {
  proxy: string;
  pingPong: { rate: number; p50: number; p99: number; cpu: number };
  connClose: { rate: number; p50: number; p99: number; cpu: number; fail: number };
  bulk: { gbps: number; cpu: number };
}

export async function benchProxies(opts: { seconds?: number; conns?: number; only?: string[] } = {}) {
  const ms = (opts.seconds ?? 5) * 1000, conns = opts.conns ?? 32;
  const unavailable = ensurePackages();
  const dir = mkdtempSync(`${tmpdir()}/wvp-bench-`);
  const be: Backends = { echo: [21001, 21002, 21003, 21004], sink: 21009 };
  const backend = spawn("taskset", ["-c", "1", process.execPath, "--import", "tsx", fileURLToPath(import.meta.url), "backends", be.echo.join(","), String(be.sink)], { stdio: ["ignore", "ignore", "inherit"], cwd: ROOT });
  try { execFileSync("taskset", ["-p", "-c", "1", String(process.pid)], { stdio: "ignore" }); } catch { /* not pinned */ }
  const results: BenchResult[] = [];
  try {
    await waitPort(be.sink);
    for (const c of [WASMVS, HAPROXY, NGINX]) {
      if (opts.only && !opts.only.includes(c.name)) continue;
      if (unavailable.includes(c.name)) { log(`skipping ${c.name}: not installed`); continue; }
      const l: Listen = { pp: 22001, cc: 22002, bulk: 22003 };
      log(`${c.name}: starting (pinned to CPU 0)`);
      let p: ChildProcess;
      try { p = await c.start(dir, l, be); } catch (e) { log(`  ${c.name} did not start: ${(e as Error).message}`); continue; }
      try {
        await sleep(300);
        const run = async <T extends object>(fn: () => Promise<T>) => {
          const c0 = cpuTicks(p.pid!), t0 = Date.now();
          const r = await fn();
          const cpu = (cpuTicks(p.pid!) - c0) / 100 / ((Date.now() - t0) / 1000);
          return { ...r, cpu: Math.round(cpu * 100) };
        };
        await pingPong(l.pp, conns, 500);   // warm-up
        const pp = await run(() => pingPong(l.pp, conns, ms));
        log(`  ping-pong  ${Math.round(pp.rate)} msg/s  p50 ${pp.p50.toFixed(3)} ms  p99 ${pp.p99.toFixed(3)} ms  cpu ${pp.cpu}%`);
        const cc = await run(() => connectClose(l.cc, conns, ms));
        log(`  conn/close ${Math.round(cc.rate)} conn/s  p50 ${cc.p50.toFixed(3)} ms  p99 ${cc.p99.toFixed(3)} ms  cpu ${cc.cpu}%  failed ${cc.fail}`);
        const bk = await run(() => bulk(l.bulk, 4, ms));
        log(`  bulk       ${bk.gbps.toFixed(2)} Gb/s  cpu ${bk.cpu}%`);
        results.push({ proxy: c.name, pingPong: pp, connClose: cc, bulk: bk });
      } finally {
        p.kill("SIGTERM");
        await new Promise((r) => { p.once("exit", r); setTimeout(r, 3000); });
        if (p.exitCode === null && !p.signalCode) p.kill("SIGKILL");
        await sleep(300);
      }
    }
  } finally {
    backend.kill("SIGTERM");
    rmSync(dir, { recursive: true, force: true });
  }
  const ha = results.find((r) => r.proxy === "haproxy");
  const w = results.find((r) => r.proxy === "wasmvs");
  const ratios = ha && w ? {
    pingPong: w.pingPong.rate / ha.pingPong.rate, connClose: w.connClose.rate / ha.connClose.rate, bulk: w.bulk.gbps / ha.bulk.gbps,
    targets: { pingPong: 1.0, connClose: 0.7 },
  } : null;
  if (ratios) log(`wasmvs / haproxy: ping-pong ${ratios.pingPong.toFixed(2)}x (target 1.0)  conn/close ${ratios.connClose.toFixed(2)}x (target 0.7)  bulk ${ratios.bulk.toFixed(2)}x`);
  const report = { when: new Date().toISOString(), seconds: ms / 1000, conns, node: process.version, pinned: "proxy on CPU 0; load and backends on CPU 1", results, ratiosVsHaproxy: ratios };
  mkdirSync(`${ROOT}/report`, { recursive: true });
  writeFileSync(`${ROOT}/report/proxy.json`, JSON.stringify(report, null, 2) + "\n");
  writeFileSync(`${ROOT}/report/proxy.svg`, svg(results));
  return report;
}

function svg(results: BenchResult[]): string {
  const panels = [
    { title: "(a) 64 B ping-pong, msg/s", get: (r: BenchResult) => r.pingPong.rate },
    { title: "(b) connect/64 B/close, conn/s", get: (r: BenchResult) => r.connClose.rate },
    { title: "(c) bulk, Gb/s", get: (r: BenchResult) => r.bulk.gbps },
    { title: "(a) p99 latency, ms", get: (r: BenchResult) => r.pingPong.p99 },
  ];
  const W = 260, H = 200, colors: Record<string, string> = { wasmvs: "#3b7dd8", haproxy: "#d8703b", nginx: "#3bd87a" };
  let out = `<svg xmlns="http://www.w3.org/2000/svg" width="${W * panels.length}" height="${H + 40}" font-family="sans-serif" font-size="11">\n`;
  panels.forEach((p, i) => {
    const x0 = i * W + 20, max = Math.max(1e-9, ...results.map(p.get));
    out += `<text x="${x0}" y="16" font-weight="bold">${p.title}</text>\n`;
    results.forEach((r, j) => {
      const v = p.get(r), h = (v / max) * (H - 60), x = x0 + j * 70, y = H - h;
      out += `<rect x="${x}" y="${y}" width="50" height="${h}" fill="${colors[r.proxy] ?? "#888"}"/>`;
      out += `<text x="${x}" y="${y - 4}">${v >= 100 ? Math.round(v) : v.toFixed(2)}</text><text x="${x}" y="${H + 14}">${r.proxy}</text>\n`;
    });
  });
  return out + `<text x="20" y="${H + 34}">proxy pinned to one core (taskset -c 0); loopback; one thread / one worker</text>\n</svg>\n`;
}

// ---- soak -------------------------------------------------------------------------------------------
// Churn at a steady connection rate through an in-process proxy on loopback while backends are added,
// drained (weight 0) and removed; connections established on a backend before it is drained are held
// and pinged until after its removal (within the drain bound), and none may fail.
export async function soak(opts: { seconds?: number; rate?: number; log?: (s: string) => void } = {}) {
  const { Proxy, parseConfig, ops } = await import("../src/proxy/index.ts");
  const { silentLogger } = await import("../src/proxy/log.ts");
  const say = opts.log ?? log;
  const seconds = opts.seconds ?? 600, rate = opts.rate ?? 200;
  const ports = [23001, 23002, 23003, 23004, 23005, 23006];
  const servers = ports.map((p) => net.createServer((s) => { s.on("data", (d) => s.write(d)); s.on("end", () => s.end()); s.on("error", () => {}); }).listen(p, "127.0.0.1"));
  await Promise.all(servers.map((s) => new Promise((r) => s.once("listening", r))));
  const vport = 23000;
  const cfg = parseConfig(`proxy: { control: null, vipInterface: null, tick: 100, drainTimeout: 30 }
services:
  - { protocol: tcp, addr: 127.0.0.1, port: ${vport}, scheduler: wlc, realServers: [ ${ports.slice(0, 3).map((p) => `{ addr: 127.0.0.1, port: ${p} }`).join(", ")} ] }
`);
  const p = await Proxy.start(cfg, { log: silentLogger() });
  const svc = { protocol: "tcp" as const, addr: "127.0.0.1", port: vport, scheduler: "wlc", flags: [], realServers: [] };
  const stats = { seconds, rate, connections: 0, failed: 0, held: 0, heldLost: 0, changes: 0, errors: [] as string[] };
  const end = Date.now() + seconds * 1000;
  const one = () => new Promise<void>((res) => {
    let got = false;
    const s = net.connect(vport, "127.0.0.1", () => s.write("x"));
    s.on("data", () => { got = true; s.end(); });
    s.on("close", () => { if (got) stats.connections++; else stats.failed++; res(); });
    s.on("error", (e) => { if (stats.errors.length < 10) stats.errors.push(e.message); });
  });
  // held connections: established before the drain, written to after the removal, then closed by us
  type Held = { s: net.Socket; echoed: number; lost: boolean; mine: boolean };
  const held: Held[] = [];
  const hold = (n: number) => {
    for (let i = 0; i < n; i++) {
      const h: Held = { s: net.connect(vport, "127.0.0.1"), echoed: 0, lost: false, mine: false };
      h.s.on("data", (d) => (h.echoed += d.length));
      h.s.on("error", () => { h.lost = true; });
      h.s.on("close", () => { if (!h.mine) h.lost = true; });
      held.push(h);
      stats.held++;
    }
  };
  const churn = (async () => {
    const inflight = new Set<Promise<void>>();
    while (Date.now() < end) {
      const t0 = Date.now();
      for (let i = 0; i < rate / 10; i++) { const pr = one(); inflight.add(pr); void pr.then(() => inflight.delete(pr)); }
      await sleep(Math.max(0, 100 - (Date.now() - t0)));
    }
    await Promise.all(inflight);
  })();
  const rsOf = (port: number, weight: number) => ({ addr: "127.0.0.1", port, weight, fwd: "masq" as const, upperThreshold: 0, lowerThreshold: 0 });
  const changer = (async () => {
    let k = 3;
    while (Date.now() < end - 1500) {
      hold(12);
      await sleep(500);
      for (const h of held) h.s.write("a");
      const add = ports[k % ports.length], drain = ports[(k + 3) % ports.length];
      await p.change((d) => { try { ops.addRealServer(d, svc, rsOf(add, 1)); } catch { ops.editRealServer(d, svc, rsOf(add, 1)); } });
      await p.change((d) => { try { ops.editRealServer(d, svc, rsOf(drain, 0)); } catch { /* not there */ } });
      await sleep(500);
      await p.change((d) => { try { ops.deleteRealServer(d, svc, { addr: "127.0.0.1", port: drain }); } catch { /* not there */ } });
      stats.changes += 3;
      for (const h of held) if (!h.s.destroyed) h.s.write("b");
      await sleep(400);
      for (const h of held.splice(0)) { if (h.lost || h.echoed < 2) stats.heldLost++; h.mine = true; h.s.destroy(); }
      k++;
      if (k % 10 === 0) say(`soak: ${Math.max(0, Math.round((end - Date.now()) / 1000))} s left, ${stats.connections} connections, ${stats.failed} failed, held ${stats.held} (${stats.heldLost} lost)`);
    }
  })();
  await Promise.all([churn, changer]);
  await p.stop();
  await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
  return stats;
}

// ---- runnable alone -----------------------------------------------------------------------------------
if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const argv = process.argv.slice(2);
  const num = (name: string, d: number) => { const i = argv.indexOf(name); return i >= 0 ? Number(argv[i + 1]) : d; };
  const cmd = argv[0] && !argv[0].startsWith("-") ? argv[0] : "bench";
  if (cmd === "backends") {
    void runBackends(argv[1].split(",").map(Number), Number(argv[2]));
  } else if (cmd === "soak") {
    void soak({ seconds: num("--seconds", 600), rate: num("--rate", 200) }).then((s) => {
      console.log(JSON.stringify(s));
      process.exit(s.failed === 0 && s.heldLost === 0 ? 0 : 1);
    });
  } else {
    void benchProxies({ seconds: num("--seconds", 5), conns: num("--conns", 32) }).then((r) => {
      console.log(JSON.stringify(r.ratiosVsHaproxy));
      process.exit(0);
    });
  }
}
