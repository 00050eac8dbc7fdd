// The proxy benchmark and soak, runnable alone:
//   node --import tsx bench/proxy.ts [bench] [--seconds 5] [--conns 32] [--repeats 3] [--only wasmvs,haproxy]
//   node --import tsx bench/proxy.ts soak [--minutes 10] [--rate 1000] [--udp-rate 500] [--reload-every 10]
//     [--scrape-every 1]   churn, a UDP flood, reloads and scrapes while backends come and go
//     [--relay]   the same load through a trivial Node relay in the proxy's place: the machine's own losses
//     [--expire-nodest-conn 0|1]   the proxy's setting (default its own, 1); with 0 the SYNs it drops as the
//     kernel would (a deleted real server's old entry) are counted apart from the failures (failedAsked)
//   node --import tsx bench/proxy.ts workers [--seconds 5] [--repeats 3]   wasmvs --workers 1/2 against HAProxy
//     nbthread 1/2 and nginx worker_processes 1/2: CPU per message/connection/GB, rates, the scheduling core's cost
//   node --import tsx bench/proxy.ts metrics [--services 10000] [--dests 10] [--scrapes 5] [--in-process] [--pin]
//     /metrics scrape cost (--in-process: the backends and the scraper in the proxy's process; --pin: the
//     proxy alone on CPU 1, the rest on CPU 0)
// Bench: wasmvs (native relay), wasmvs-js (its JS pump), HAProxy (nbthread 1, mode tcp) and nginx stream (one
// worker), each pinned to CPU 0 with taskset; the same Node load generator and echo/sink backends on CPU 1;
// loopback. Per round each proxy runs (a) 64-byte ping-pong on persistent connections, (b) connect / 64 B /
// close, (c) bulk transfer; rounds interleave the proxies (order rotated) and the report gives medians and
// min–max. The proxy's CPU comes from /proc/<pid>/task/*/schedstat, so CPU per message / connection / GB is
// exact whatever else the machine runs; rates are not (CPU 1 is shared). Writes report/proxy.json and
// report/proxy.svg. Installs haproxy, nginx and libnginx-mod-stream with apt-get when missing.
import * as net from "node:net";
import { spawn, execFileSync, type ChildProcess } from "node:child_process";
import { mkdirSync, writeFileSync, readFileSync, readdirSync, existsSync, mkdtempSync, rmSync } from "node:fs";
import * as os from "node:os";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import type { DesiredState } from "../src/model/types.ts";
import type { Proxy } from "../src/proxy/index.ts";
import { mainThreadSched } from "./loop-watch.mjs";
import { freePort, freePorts } from "../test/helpers/ports.ts";
import { blame, loopStalls, type Span, timed } from "./lib/stall-blame.ts";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const log = (s: string) => process.stderr.write(s + "\n");

// ---- backends (run in a child process on CPU 1) ------------------------------------------------------
export function runBackends(echoPorts: number[], sinkPort: number): Promise<void> {
  const servers: net.Server[] = [];
  for (const p of echoPorts)
    servers.push(
      net
        .createServer((s) => {
          s.setNoDelay(true);
          s.on("data", (d) => s.write(d));
          s.on("end", () => s.end());
          s.on("error", () => {});
        })
        .listen(p, "127.0.0.1"),
    );
  servers.push(
    net
      .createServer((s) => {
        s.on("data", () => {});
        s.on("end", () => s.end());
        s.on("error", () => {});
      })
      .listen(sinkPort, "127.0.0.1"),
  );
  return Promise.all(servers.map((s) => new Promise((r) => s.once("listening", r)))).then(() => {});
}

// ---- load -------------------------------------------------------------------------------------------
function pct(xs: number[], p: number): number {
  if (!xs.length) return 0;
  const s = Float64Array.from(xs).sort();
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
}

function connect(port: number, host = "127.0.0.1"): Promise<net.Socket> {
  return new Promise((res, rej) => {
    const s = net.connect({ port, host, noDelay: true }, () => res(s));
    s.once("error", rej);
  });
}

async function pingPong(port: number, conns: number, ms: number) {
  const msg = Buffer.alloc(64, 97);
  const lat: number[] = [];
  let n = 0,
    stop = false;
  const socks = await Promise.all(Array.from({ length: conns }, () => connect(port)));
  const end = Date.now() + ms;
  await Promise.all(
    socks.map(
      (s) =>
        new Promise<void>((res) => {
          let got = 0,
            t0 = 0;
          const send = () => {
            if (stop || Date.now() >= end) {
              stop = true;
              s.destroy();
              return res();
            }
            t0 = performance.now();
            s.write(msg);
          };
          s.on("data", (d) => {
            got += d.length;
            if (got >= 64) {
              got -= 64;
              n++;
              if ((n & 7) === 0) lat.push(performance.now() - t0);
              send();
            }
          });
          s.on("error", () => res());
          send();
        }),
    ),
  );
  return { rate: n / (ms / 1000), p50: pct(lat, 50), p99: pct(lat, 99) };
}

async function connectClose(port: number, conns: number, ms: number) {
  const msg = Buffer.alloc(64, 98);
  const lat: number[] = [];
  let n = 0,
    fail = 0;
  const end = Date.now() + ms;
  await Promise.all(
    Array.from({ length: conns }, async () => {
      while (Date.now() < end) {
        const t0 = performance.now();
        const ok = await new Promise<boolean>((res) => {
          const s = net.connect({ port, host: "127.0.0.1", noDelay: true }, () => s.write(msg));
          let got = 0;
          s.on("data", (d) => {
            got += d.length;
            if (got >= 64) s.end();
          });
          s.on("close", () => res(got >= 64));
          s.on("error", () => {});
        });
        if (ok) {
          n++;
          lat.push(performance.now() - t0);
        } else fail++;
      }
    }),
  );
  return { rate: n / (ms / 1000), p50: pct(lat, 50), p99: pct(lat, 99), fail };
}

async function bulk(port: number, conns: number, ms: number) {
  const chunk = Buffer.alloc(256 * 1024, 99);
  let bytes = 0;
  const socks = await Promise.all(Array.from({ length: conns }, () => connect(port)));
  const end = Date.now() + ms;
  await Promise.all(
    socks.map(
      (s) =>
        new Promise<void>((res) => {
          const pump = () => {
            while (Date.now() < end) {
              bytes += chunk.length;
              if (!s.write(chunk)) return;
            }
            s.destroy();
            res();
          };
          s.on("drain", pump);
          s.on("error", () => res());
          pump();
        }),
    ),
  );
  return { gbps: (bytes * 8) / (ms / 1000) / 1e9 };
}

// CPU time of every thread of a process, in ns (schedstat: finer than the 10 ms ticks of /proc/<pid>/stat).
function cpuNs(pid: number): number {
  let ns = 0;
  try {
    for (const t of readdirSync(`/proc/${pid}/task`))
      ns += Number(readFileSync(`/proc/${pid}/task/${t}/schedstat`, "utf8").split(" ")[0]);
  } catch {
    /* gone */
  }
  return ns;
}

// CPU time of a process and all its descendants (nginx's master and its worker processes), in ns.
function treeCpuNs(pid: number): number {
  const kids = new Map<number, number[]>();
  for (const d of readdirSync("/proc")) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = readFileSync(`/proc/${d}/stat`, "utf8");
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      kids.set(ppid, [...(kids.get(ppid) ?? []), Number(d)]);
    } catch {
      /* gone */
    }
  }
  let ns = 0;
  const todo = [pid];
  while (todo.length) {
    const p = todo.pop()!;
    ns += cpuNs(p);
    todo.push(...(kids.get(p) ?? []));
  }
  return ns;
}

// The CPU time of a process's main thread alone (wasmvs: the thread that accepts and schedules), in ns.
function mainThreadNs(pid: number): number {
  try {
    return Number(readFileSync(`/proc/${pid}/task/${pid}/schedstat`, "utf8").split(" ")[0]);
  } catch {
    return 0;
  }
}

// CPU 0's busy time in ticks (USER_HZ), from /proc/stat: with the proxy's own time taken off, what else ran there.
function cpu0Busy(): number {
  const line = readFileSync("/proc/stat", "utf8")
    .split("\n")
    .find((l) => l.startsWith("cpu0 "));
  if (!line) return 0;
  const f = line.trim().split(/\s+/).slice(1).map(Number);
  return f[0] + f[1] + f[2] + f[5] + f[6] + (f[7] ?? 0); // user nice system irq softirq steal
}

// ---- proxies ----------------------------------------------------------------------------------------
interface Listen {
  pp: number;
  cc: number;
  bulk: number;
}
interface Backends {
  echo: number[];
  sink: number;
}
interface Contender {
  name: string;
  threads?: number; // its worker threads (processes for nginx); 1 when absent
  start(dir: string, l: Listen, be: Backends): Promise<ChildProcess>;
}
// one thread on CPU 0 (the load generator and the backends have CPU 1); more threads get both CPUs
const cpusFor = (threads: number) => (threads > 1 ? "0,1" : "0");

function waitPort(port: number, ms = 15000): Promise<void> {
  const end = Date.now() + ms;
  return new Promise((res, rej) => {
    const tryOnce = () => {
      const s = net.connect(port, "127.0.0.1", () => {
        s.destroy();
        res();
      });
      s.on("error", () => {
        if (Date.now() > end) rej(new Error(`port ${port} never opened`));
        else setTimeout(tryOnce, 100);
      });
    };
    tryOnce();
  });
}

const wasmvs = (name: string, pump: "native" | "js", workers = 1): Contender => ({
  name,
  threads: workers,
  async start(dir, l, be) {
    const svc = (port: number, backends: number[]) =>
      `  - { protocol: tcp, addr: 127.0.0.1, port: ${port}, scheduler: wlc, realServers: [ ` +
      `${backends.map((p) => `{ addr: 127.0.0.1, port: ${p} }`).join(", ")} ] }`;
    writeFileSync(
      `${dir}/wasmvs.yaml`,
      `proxy: { control: null, vipInterface: null, logLevel: warn, connCapacity: 1048576, pump: ${pump}, ` +
        `workers: ${workers} }\ntimeouts: { tcp: 900, tcpfin: 1, udp: 300 }\nservices:\n` +
        `${svc(l.pp, be.echo)}\n${svc(l.cc, be.echo)}\n` +
        `${svc(l.bulk, [be.sink])}\n`,
    );
    const p = spawn(
      "taskset",
      [
        "-c",
        cpusFor(workers),
        process.execPath,
        "--import",
        "tsx",
        `${ROOT}/src/cli/proxy.ts`,
        "run",
        "-c",
        `${dir}/wasmvs.yaml`,
      ],
      { stdio: ["ignore", "ignore", "inherit"], cwd: ROOT },
    );
    await waitPort(l.bulk);
    return p;
  },
});
const WASMVS = wasmvs("wasmvs", "native");
const WASMVS_JS = wasmvs("wasmvs-js", "js"); // the same proxy with its JS pump: what the native relay buys

const haproxy = (name: string, nbthread: number): Contender => ({
  name,
  threads: nbthread,
  async start(dir, l, be) {
    const fe = (name: string, port: number, backends: number[]) =>
      `frontend f_${name}\n  bind 127.0.0.1:${port}\n  default_backend b_${name}\nbackend b_${name}\n  balance ` +
      `leastconn\n${backends.map((p, i) => `  server s${i} 127.0.0.1:${p}`).join("\n")}\n`;
    writeFileSync(
      `${dir}/haproxy.cfg`,
      `global\n  nbthread ${nbthread}\n  maxconn 8000\ndefaults\n  mode tcp\n  timeout connect 5s\n  timeout client ` +
        (`60s\n  timeout server 60s\n${fe("pp", l.pp, be.echo)}${fe("cc", l.cc, be.echo)}` +
          `${fe("bulk", l.bulk, [be.sink])}`),
    );
    const p = spawn("taskset", ["-c", cpusFor(nbthread), "haproxy", "-f", `${dir}/haproxy.cfg`, "-db"], {
      stdio: ["ignore", "ignore", "inherit"],
    });
    await waitPort(l.bulk);
    return p;
  },
});
const HAPROXY = haproxy("haproxy", 1);

const NGINX_MOD = "/usr/lib/nginx/modules/ngx_stream_module.so";
// nginx's workers are processes: with more than one, the master stays (it forks them) and the CPU counted
// is the whole process tree's
const nginx = (name: string, workers: number): Contender => ({
  name,
  threads: workers,
  async start(dir, l, be) {
    const up = (name: string, backends: number[]) =>
      `  upstream u_${name} { least_conn; ${backends.map((p) => `server 127.0.0.1:${p};`).join(" ")} }\n`;
    const srv = (name: string, port: number) =>
      `  server { listen 127.0.0.1:${port}; proxy_pass u_${name}; tcp_nodelay on; }\n`;
    writeFileSync(
      `${dir}/nginx.conf`,
      `${existsSync(NGINX_MOD) ? `load_module ${NGINX_MOD};\n` : ""}worker_processes ${workers};\n` +
        `pid ${dir}/nginx.pid;` +
        (`\nerror_log stderr error;\nevents { worker_connections 65536; }\nstream {\n${up("pp", be.echo)}` +
          `${up("cc", be.echo)}${up("bulk", [be.sink])}${srv("pp", l.pp)}${srv("cc", l.cc)}` +
          `${srv("bulk", l.bulk)}}\n`),
    );
    const p = spawn(
      "taskset",
      [
        "-c",
        cpusFor(workers),
        "nginx",
        "-c",
        `${dir}/nginx.conf`,
        "-p",
        dir,
        "-g",
        `daemon off; master_process ${workers > 1 ? "on" : "off"};`,
      ],
      { stdio: ["ignore", "ignore", "inherit"] },
    );
    await waitPort(l.bulk);
    return p;
  },
});
const NGINX = nginx("nginx", 1);

function have(cmd: string): boolean {
  try {
    execFileSync("sh", ["-c", `command -v ${cmd}`], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}

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
      execFileSync("apt-get", ["install", "-y", "-qq", ...missing], {
        stdio: "inherit",
        env: { ...process.env, DEBIAN_FRONTEND: "noninteractive" },
      });
    } catch (e) {
      log(`apt-get failed: ${(e as Error).message}`);
    }
  }
  return ["haproxy", "nginx"].filter((c) => !have(c));
}

export interface Sample {
  rate: number;
  p50: number;
  p99: number;
  cpu: number;
  cpuPerUnit: number;
  fail?: number;
}
export interface RoundResult {
  proxy: string;
  round: number;
  // wasmvs: the main thread's CPU per unit (µs per message, µs per connection, ms per GB), the rest is the
  // workers' (and V8's helper threads')
  mainCpuPerUnit?: { pingPong: number; connClose: number; bulk: number };
  pingPong: Sample; // rate: messages/s; cpuPerUnit: proxy CPU µs per message
  connClose: Sample; // rate: connections/s; cpuPerUnit: proxy CPU µs per connection
  bulk: Sample; // rate: Gb/s; cpuPerUnit: proxy CPU ms per GB
  otherCpu0: number; // % of CPU 0 used by anything but the proxy during the round (other work on the machine)
}
interface Spread {
  median: number;
  min: number;
  max: number;
}
export interface Summary {
  proxy: string;
  rounds: number;
  pingPong: Record<keyof Sample, Spread>;
  connClose: Record<keyof Sample, Spread>;
  bulk: Record<keyof Sample, Spread>;
  otherCpu0: Spread;
}

const median = (xs: number[]): Spread => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
  return { median: m, min: s[0], max: s[s.length - 1] };
};

function summarize(rounds: RoundResult[]): Summary[] {
  const names = [...new Set(rounds.map((r) => r.proxy))];
  return names.map((proxy) => {
    const mine = rounds.filter((r) => r.proxy === proxy);
    const of = (k: "pingPong" | "connClose" | "bulk") =>
      Object.fromEntries(
        (["rate", "p50", "p99", "cpu", "cpuPerUnit", "fail"] as const).map((f) => [
          f,
          median(mine.map((r) => r[k][f] ?? 0)),
        ]),
      ) as Record<keyof Sample, Spread>;
    return {
      proxy,
      rounds: mine.length,
      pingPong: of("pingPong"),
      connClose: of("connClose"),
      bulk: of("bulk"),
      otherCpu0: median(mine.map((r) => r.otherCpu0)),
    };
  });
}

// Ratios to HAProxy per round (the two ran minutes apart at most), then their median and spread.
// "perCore" compares proxy CPU per unit (HAProxy's µs / wasmvs's µs): work done per core-second.
function ratios(rounds: RoundResult[], name: string) {
  const byRound = new Map<number, { w?: RoundResult; h?: RoundResult }>();
  for (const r of rounds) {
    const e = byRound.get(r.round) ?? {};
    if (r.proxy === name) e.w = r;
    else if (r.proxy === "haproxy") e.h = r;
    byRound.set(r.round, e);
  }
  const pairs = [...byRound.values()].filter((e) => e.w && e.h) as { w: RoundResult; h: RoundResult }[];
  if (!pairs.length) return null;
  const m = (f: (p: { w: RoundResult; h: RoundResult }) => number) => median(pairs.map(f));
  return {
    proxy: name,
    pingPong: {
      measured: m((p) => p.w.pingPong.rate / p.h.pingPong.rate),
      perCore: m((p) => p.h.pingPong.cpuPerUnit / p.w.pingPong.cpuPerUnit),
      target: 1.0,
    },
    connClose: {
      measured: m((p) => p.w.connClose.rate / p.h.connClose.rate),
      perCore: m((p) => p.h.connClose.cpuPerUnit / p.w.connClose.cpuPerUnit),
      target: 0.7,
    },
    bulk: {
      measured: m((p) => p.w.bulk.rate / p.h.bulk.rate),
      perCore: m((p) => p.h.bulk.cpuPerUnit / p.w.bulk.cpuPerUnit),
    },
  };
}

const fmt = (v: number, d = 0) => v.toLocaleString("en-US", { minimumFractionDigits: d, maximumFractionDigits: d });
const spread = (s: Spread, d = 0) => `${fmt(s.median, d)} (${fmt(s.min, d)}–${fmt(s.max, d)})`;

// The README's table: medians, min–max in brackets.
export function table(sum: Summary[]): string {
  const rows = sum.map(
    (s) =>
      `| ${s.proxy} | ${spread(s.pingPong.rate)} | ${fmt(s.pingPong.p50.median, 2)} / ` +
      `${fmt(s.pingPong.p99.median, 2)} | ${spread(s.pingPong.cpuPerUnit, 1)} | ` +
      (`${spread(s.connClose.rate)} | ${fmt(s.connClose.p50.median, 2)} / ${fmt(s.connClose.p99.median, 2)} | ` +
        `${spread(s.connClose.cpuPerUnit, 0)} | `) +
      `${spread(s.bulk.rate, 2)} | ${spread(s.bulk.cpuPerUnit, 0)} | ${fmt(s.otherCpu0.median)}% |`,
  );
  return [
    "| proxy | (a) ping-pong msg/s | p50 / p99 ms | CPU µs/msg | (b) conn/s | p50 / p99 ms | CPU µs/conn | (c) " +
      "bulk Gb/s | CPU ms/GB | other load on CPU 0 |",
    "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ...rows,
  ].join("\n");
}

// One round of one contender: started, (a) ping-pong, (b) connect/close, (c) bulk, stopped. CPU is the
// process tree's (schedstat); undefined when it did not start.
async function measureContender(
  c: Contender,
  round: number,
  dir: string,
  be: Backends,
  ms: number,
  conns: number,
): Promise<RoundResult | undefined> {
  // ports from the kernel (fixed ones collided with concurrent runs)
  const [pp0, cc0, bulk0] = await freePorts(3);
  const l: Listen = { pp: pp0, cc: cc0, bulk: bulk0 };
  let p: ChildProcess;
  try {
    p = await c.start(dir, l, be);
  } catch (e) {
    log(`  ${c.name} did not start: ${(e as Error).message}`);
    return undefined;
  }
  try {
    await sleep(300);
    let other = 0,
      otherN = 0;
    const main = { pingPong: 0, connClose: 0, bulk: 0 };
    const run = async <T extends { rate: number }>(
      what: keyof typeof main,
      units: (r: T) => number,
      fn: () => Promise<T>,
    ) => {
      const c0 = treeCpuNs(p.pid!),
        m0 = mainThreadNs(p.pid!),
        s0 = cpu0Busy(),
        t0 = performance.now();
      const r = await fn();
      const cpuSec = (treeCpuNs(p.pid!) - c0) / 1e9,
        mainSec = (mainThreadNs(p.pid!) - m0) / 1e9,
        wall = (performance.now() - t0) / 1000,
        s1 = cpu0Busy();
      other += Math.max(0, (s1 - s0) / 100 - cpuSec) / wall;
      otherN++;
      main[what] = (mainSec * 1e6) / Math.max(1, units(r));
      return { ...r, cpu: Math.round((cpuSec / wall) * 100), cpuPerUnit: (cpuSec * 1e6) / Math.max(1, units(r)) };
    };
    await pingPong(l.pp, conns, 500); // warm-up (JIT, connection setup)
    const pp = await run(
      "pingPong",
      (r) => r.rate * (ms / 1000),
      () => pingPong(l.pp, conns, ms),
    );
    const cc = await run(
      "connClose",
      (r) => r.rate * (ms / 1000),
      () => connectClose(l.cc, conns, ms),
    );
    // bulk: units are GB, so µs per GB / 1000 = ms per GB
    const bkRaw = await run(
      "bulk",
      (r) => (r.rate * (ms / 1000)) / 8,
      () => bulk(l.bulk, 4, ms).then((b) => ({ rate: b.gbps, p50: 0, p99: 0 })),
    );
    const bk = { ...bkRaw, cpuPerUnit: bkRaw.cpuPerUnit / 1000 };
    const r: RoundResult = {
      proxy: c.name,
      round,
      pingPong: pp,
      connClose: cc,
      bulk: bk,
      otherCpu0: Math.round((other / otherN) * 100),
      ...(c.name.startsWith("wasmvs") ? { mainCpuPerUnit: { ...main, bulk: main.bulk / 1000 } } : {}),
    };
    log(
      `round ${round} ${c.name.padEnd(9)} ping-pong ${fmt(pp.rate)} msg/s p50 ${pp.p50.toFixed(3)} p99 ` +
        `${pp.p99.toFixed(3)} ms, ${pp.cpuPerUnit.toFixed(2)} µs/msg (${pp.cpu}%)` +
        ` | conn/close ${fmt(cc.rate)}/s ${cc.cpuPerUnit.toFixed(1)} µs/conn (${cc.cpu}%) fail ${cc.fail}` +
        (` | bulk ${bk.rate.toFixed(2)} Gb/s ${bk.cpuPerUnit.toFixed(0)} ms/GB (${bk.cpu}%) | other load ` +
          `on CPU 0 ${r.otherCpu0}%`),
    );
    return r;
  } finally {
    p.kill("SIGTERM");
    await new Promise((res) => {
      p.once("exit", res);
      setTimeout(res, 3000);
    });
    if (p.exitCode === null && !p.signalCode) p.kill("SIGKILL");
    await sleep(300);
  }
}

// Rounds of every contender, interleaved (the order rotated each round), with the backends on CPU 1.
async function runRounds(
  pick: (available: (c: Contender) => boolean) => Contender[],
  repeats: number,
  ms: number,
  conns: number,
): Promise<RoundResult[]> {
  const unavailable = ensurePackages();
  const dir = mkdtempSync(`${tmpdir()}/wvp-bench-`);
  // ports from the kernel (fixed ones collided with concurrent runs): four echo backends, the sink, and below
  // each contender's three listeners
  const [sink, ...echo] = await freePorts(5);
  const be: Backends = { echo, sink };
  const backend = spawn(
    "taskset",
    [
      "-c",
      "1",
      process.execPath,
      "--import",
      "tsx",
      fileURLToPath(import.meta.url),
      "backends",
      be.echo.join(","),
      String(be.sink),
    ],
    { stdio: ["ignore", "ignore", "inherit"], cwd: ROOT },
  );
  try {
    execFileSync("taskset", ["-p", "-c", "1", String(process.pid)], { stdio: "ignore" });
  } catch {
    /* not pinned */
  }
  // a contender whose program is not installed is left out (named below)
  const contenders = pick((c) => !unavailable.some((u) => c.name.startsWith(u)));
  for (const u of unavailable) log(`skipping ${u}: not installed`);
  const rounds: RoundResult[] = [];
  log(
    `${repeats} interleaved rounds of ${contenders.map((c) => c.name).join(", ")}; ${ms / 1000} s per figure, ` +
      `${conns} connections`,
  );
  log(
    "proxy CPU per message/connection/GB (from /proc/<pid>/task/*/schedstat) is the figure to trust: the load " +
      "generator and the backends share CPU 1 with whatever else runs on this machine, so the rates are " +
      "bounded by them",
  );
  try {
    await waitPort(be.sink);
    for (let round = 1; round <= repeats; round++) {
      // rotate the order each round so no proxy always runs first (cold caches) or last
      const order = contenders.map((_, i) => contenders[(i + round - 1) % contenders.length]);
      for (const c of order) {
        const r = await measureContender(c, round, dir, be, ms, conns);
        if (r) rounds.push(r);
      }
    }
  } finally {
    backend.kill("SIGTERM");
    rmSync(dir, { recursive: true, force: true });
  }
  return rounds;
}

export async function benchProxies(opts: { seconds?: number; conns?: number; repeats?: number; only?: string[] } = {}) {
  const ms = (opts.seconds ?? 5) * 1000,
    conns = opts.conns ?? 32,
    repeats = opts.repeats ?? 3;
  const rounds = await runRounds(
    (names) =>
      [WASMVS, WASMVS_JS, HAPROXY, NGINX].filter((c) => (!opts.only || opts.only.includes(c.name)) && names(c)),
    repeats,
    ms,
    conns,
  );
  const summary = summarize(rounds);
  const vsHaproxy = ["wasmvs", "wasmvs-js"].map((n) => ratios(rounds, n)).filter((x) => x !== null);
  log("\nmedians over rounds (min–max):\n" + table(summary));
  for (const r of vsHaproxy) {
    log(
      `${r!.proxy} / haproxy: ping-pong per core ${r!.pingPong.perCore.median.toFixed(2)}x (` +
        `${r!.pingPong.perCore.min.toFixed(2)}–${r!.pingPong.perCore.max.toFixed(2)}; target ` +
        `1.0), measured rate ${r!.pingPong.measured.median.toFixed(2)}x` +
        (` | conn/close per core ${r!.connClose.perCore.median.toFixed(2)}x (` +
          `${r!.connClose.perCore.min.toFixed(2)}–${r!.connClose.perCore.max.toFixed(2)}; target ` +
          `0.7), measured rate ${r!.connClose.measured.median.toFixed(2)}x`) +
        ` | bulk per core ${r!.bulk.perCore.median.toFixed(2)}x, measured ${r!.bulk.measured.median.toFixed(2)}x`,
    );
  }
  const report = {
    when: new Date().toISOString(),
    seconds: ms / 1000,
    conns,
    repeats,
    node: process.version,
    pinned: "proxy on CPU 0; load generator and backends on CPU 1",
    trust:
      "per-core ratios (proxy CPU per unit from /proc/<pid>/task/*/schedstat) are the figures to trust; rates " +
      "are bounded by the shared CPU 1",
    summary,
    vsHaproxy,
    rounds,
  };
  mkdirSync(`${ROOT}/report`, { recursive: true });
  writeFileSync(`${ROOT}/report/proxy.json`, JSON.stringify(report, null, 2) + "\n");
  writeFileSync(`${ROOT}/report/proxy.svg`, svg(summary));
  return report;
}

// Bars are medians, whiskers min–max over the rounds.
function svg(sum: Summary[]): string {
  const panels: { title: string; get: (s: Summary) => Spread }[] = [
    { title: "(a) 64 B ping-pong, msg/s", get: (s) => s.pingPong.rate },
    { title: "(a) proxy CPU µs per message", get: (s) => s.pingPong.cpuPerUnit },
    { title: "(b) connect/64 B/close, conn/s", get: (s) => s.connClose.rate },
    { title: "(b) proxy CPU µs per connection", get: (s) => s.connClose.cpuPerUnit },
    { title: "(c) bulk, Gb/s", get: (s) => s.bulk.rate },
    { title: "(a) p99 latency, ms", get: (s) => s.pingPong.p99 },
  ];
  const cols = 3,
    W = 330,
    H = 210,
    colors: Record<string, string> = {
      wasmvs: "#3b7dd8",
      "wasmvs-js": "#9bbbe8",
      haproxy: "#d8703b",
      nginx: "#3bd87a",
    };
  const rowsN = Math.ceil(panels.length / cols);
  let out =
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W * cols}" height="${rowsN * H + 40}" font-family=` +
    `"sans-serif" font-size="11">\n<rect width="100%" height="100%" fill="white"/>\n`;
  panels.forEach((p, i) => {
    const x0 = (i % cols) * W + 20,
      top = Math.floor(i / cols) * H,
      base = top + H - 30;
    const max = Math.max(1e-9, ...sum.map((s) => p.get(s).max));
    out += `<text x="${x0}" y="${top + 16}" font-weight="bold">${p.title}</text>\n`;
    sum.forEach((s, j) => {
      const v = p.get(s),
        sc = (x: number) => (x / max) * (H - 70);
      const x = x0 + j * 75,
        h = sc(v.median);
      out += `<rect x="${x}" y="${base - h}" width="50" height="${h}" fill="${colors[s.proxy] ?? "#888"}"/>`;
      out += `<line x1="${x + 25}" x2="${x + 25}" y1="${base - sc(v.max)}" y2="${base - sc(v.min)}" stroke="black"/>`;
      out +=
        `<text x="${x}" y="${base - sc(v.max) - 4}">` +
        `${v.median >= 100 ? fmt(v.median) : v.median.toFixed(2)}</text><text x="${x}" y="${base + 14}">` +
        `${s.proxy}</text>\n`;
    });
  });
  return (
    out +
    (`<text x="20" y="${rowsN * H + 20}">median of ${sum[0]?.rounds ?? 0} interleaved rounds, whiskers min–max; ` +
      `proxy pinned to CPU 0 (one thread / one worker), load and backends on CPU 1, loopback.</text>\n`) +
    (`<text x="20" y="${rowsN * H + 34}">CPU per unit is the figure to trust on this shared 2-core machine; the ` +
      `rates are bounded by the load generator on CPU 1.</text>\n</svg>\n`)
  );
}

// ---- soak -------------------------------------------------------------------------------------------
// An in-process proxy on loopback under everything at once: a churn of short connections at `rate` conn/s
// and a UDP flood from fresh source ports (both from a child process, so the proxy's event loop cannot
// also slow the clock that times it), a reload every `reloadEvery` s (alternating weights), a /metrics
// scrape every `scrapeEvery` s, and backends added, drained (weight 0) and removed, with connections held
// across each drain. Every connect is timed to the echo of its first byte. Done when nothing was refused
// that the configuration did not ask for, no held connection was lost and no connect took over 50 ms.
const SOAK_LOAD = (o: { vips: string[]; vport: number; uport: number; rate: number; udpRate: number }) => `
const net = require("node:net"), dgram = require("node:dgram");
const vips = ${JSON.stringify(o.vips)};
const st = { connections: 0, failed: 0, errors: {}, lat: [], udpSent: 0, udpAnswered: 0 };
let stop = false, k = 0;
process.stdin.on("end", () => { stop = true; }); process.stdin.resume();
// slow connects and this generator's own loop stalls, as epoch spans: a stall here delays the clock's reading
const slowAt = [], stalls = [];
let tick = performance.now();
setInterval(() => {
  const n = performance.now();
  if (n - tick > 20) stalls.push([Math.round(performance.timeOrigin + tick), Math.round(n - tick)]);
  tick = n;
}, 5).unref();
const one = () => new Promise((res) => {
  const t = performance.now(); let got = false;
  const s = net.connect(${o.vport}, vips[k++ % vips.length], () => s.write("x"));
  s.on("data", () => {
    if (!got) {
      got = true;
      const ms = performance.now() - t;
      st.lat.push(ms);
      if (ms > 50 && slowAt.length < 100000) slowAt.push([Math.round(performance.timeOrigin + t), Math.round(ms)]);
    }
    s.end();
  });
  s.on("error", (e) => { st.errors[e.code] = (st.errors[e.code] || 0) + 1; });
  s.on("close", () => { if (got) st.connections++; else st.failed++; res(); });
  s.setTimeout(5000, () => s.destroy());
});
const udpOne = () => {
  const s = dgram.createSocket("udp4"); st.udpSent++;
  const t = setTimeout(() => s.close(), 1000);
  s.on("message", () => { st.udpAnswered++; clearTimeout(t); s.close(); });
  s.on("error", () => {});
  s.send("u", ${o.uport}, vips[0]);
};
const inflight = new Set();
(async () => {
  const t0 = performance.now(); let sent = 0, usent = 0;
  while (!stop) {
    const due = Math.floor(((performance.now() - t0) / 1000) * ${o.rate});
    while (sent < due) { sent++; const p = one(); inflight.add(p); p.then(() => inflight.delete(p)); }
    const udue = Math.floor(((performance.now() - t0) / 1000) * ${o.udpRate});
    while (usent < udue) { usent++; udpOne(); }
    await new Promise((r) => setTimeout(r, 5));
  }
  await Promise.all(inflight);
  await new Promise((r) => setTimeout(r, 1100));
  const lat = Float64Array.from(st.lat).sort();
  const q = (p) => lat.length ? +lat[Math.min(lat.length - 1, Math.floor(p * lat.length))].toFixed(1) : 0;
  process.stdout.write(JSON.stringify({ ...st, lat: undefined, p50: q(0.5), p99: q(0.99), p999: q(0.999), max: q(1),
    slow: lat.filter((x) => x > 50).length, slowAt, stalls: stalls.slice(0, 100000) }));
})();
`;

export interface SoakOptions {
  // "relay": the proxy replaced by a trivial Node relay (net.connect + pipe, a socket per UDP flow, no
  // scheduling, changes, reloads or scrapes): what the machine alone loses under the same load
  proxy?: "wasmvs" | "relay";
  seconds?: number;
  rate?: number;
  udpRate?: number;
  reloadEvery?: number;
  scrapeEvery?: number;
  // the proxy's expire_nodest_conn (default: the proxy's, 1). With 0, a new SYN from the port of an entry
  // whose real server was deleted is dropped, as the kernel drops it: counted apart, as asked for
  expireNodestConn?: number;
  log?: (s: string) => void;
}

type SoakStats = ReturnType<typeof soakStats>;
const soakStats = (seconds: number, rate: number, udpRate: number) => ({
  seconds,
  rate,
  udpRate,
  connections: 0,
  failed: 0,
  // of the failed, refused because the configuration asks for it (expire_nodest_conn=0: destination_deleted)
  failedAsked: 0,
  held: 0,
  heldLost: 0,
  changes: 0,
  reloads: 0,
  reloadErrors: 0,
  scrapes: 0,
  scrapeErrors: 0,
  scrapeMaxMs: 0,
  errors: [] as string[],
  p50: 0,
  p99: 0,
  p999: 0,
  max: 0,
  slow: 0,
  // each connect over 50 ms against what overlapped it: the generator's or the proxy's loop stalls, events
  slowBlame: {} as Record<string, number | string>,
  udpSent: 0,
  udpAnswered: 0,
  drops: {} as Record<string, number>,
  conn: {} as Record<string, number>,
  loadAvg: [] as number[],
  // CPU ms of each process over the run: the proxy's (with the soak's own drivers), the load generator's, the backends'
  cpu: { wallMs: 0, proxyMs: 0, loadMs: 0, backendsMs: 0 },
});

// Slow connects blamed in order: the generator's own stall first (the clock was late, not the proxy), then the
// proxy's loop stalls by what ran during them, then the proxy's events without a stall, then nothing seen.
function blameSlow(slowAt: Span[], genStalls: Span[], proxyStalls: Span[], marks: SoakRun["marks"]) {
  const during = (ev: Span[]) => proxyStalls.filter((x) => ev.some((e) => x[0] < e[0] + e[1] && e[0] < x[0] + x[1]));
  const counts = blame(slowAt, {
    generatorStall: genStalls,
    proxyStallInReload: during(marks.reload),
    proxyStallInScrape: during(marks.scrape),
    proxyStallInChange: during(marks.change),
    proxyStallOther: proxyStalls,
    reload: marks.reload,
    scrape: marks.scrape,
    change: marks.change,
  });
  const worst = (xs: Span[]) => xs.reduce((m, x) => Math.max(m, x[1]), 0);
  return {
    ...counts,
    stalls:
      `generator ${genStalls.length} (max ${worst(genStalls)} ms), ` +
      `proxy ${proxyStalls.length} (max ${worst(proxyStalls)} ms)`,
  };
}

// A child's CPU so far (user + system, ms), from /proc/<pid>/stat (clock ticks of 10 ms); 0 when gone.
function procCpuMs(pid: number | undefined): number {
  try {
    const f = readFileSync(`/proc/${pid}/stat`, "utf8");
    const x = f.slice(f.lastIndexOf(")") + 2).split(" ");
    return (Number(x[11]) + Number(x[12])) * 10; // fields 14 and 15 (utime, stime); x starts at field 3
  } catch {
    return 0;
  }
}
interface SoakRun {
  p: Proxy | null; // null: the trivial relay
  end: number;
  stats: SoakStats;
  say: (s: string) => void;
  marks: { reload: Span[]; scrape: Span[]; change: Span[] }; // when each ran (epoch spans), to blame slow connects
}

// The echo backends in a process of their own (the proxy's loop is what the soak measures), and the UDP one
// (on a port the kernel picks).
async function soakBackends(ports: number[], sinkPort: number) {
  const backends = spawn(
    process.execPath,
    ["--import", "tsx", fileURLToPath(import.meta.url), "backends", ports.join(","), String(sinkPort)],
    { stdio: ["ignore", "ignore", "inherit"], cwd: ROOT },
  );
  await Promise.all(ports.map((port) => waitPort(port)));
  const dgram = await import("node:dgram");
  const udpBe = dgram.createSocket("udp4");
  udpBe.on("message", (m, r) => udpBe.send(m, r.port, r.address));
  await new Promise<void>((r) => udpBe.bind(0, "127.0.0.1", () => r()));
  return { backends, udpBe, udpPort: udpBe.address().port };
}

// Backends added, drained (weight 0) and removed on the first VIP, with connections held across each drain:
// held connections are established before the drain, written to after the removal, then closed by us.
async function soakChanger({ p, end, stats, say, marks }: SoakRun, vport: number, ports: number[]) {
  const { ops } = await import("../src/proxy/index.ts");
  const svc = {
    protocol: "tcp" as const,
    addr: "127.0.0.1",
    port: vport,
    scheduler: "wlc",
    flags: [],
    realServers: [],
  };
  type Held = { s: net.Socket; echoed: number; lost: boolean; mine: boolean };
  const held: Held[] = [];
  const hold = (n: number) => {
    for (let i = 0; i < n; i++) {
      const h: Held = { s: net.connect(vport, "127.0.0.1"), echoed: 0, lost: false, mine: false };
      h.s.on("data", (d) => (h.echoed += d.length));
      h.s.on("error", () => {
        h.lost = true;
      });
      h.s.on("close", () => {
        if (!h.mine) h.lost = true;
      });
      held.push(h);
      stats.held++;
    }
  };
  const rsOf = (port: number, weight: number) => ({
    addr: "127.0.0.1",
    port,
    weight,
    fwd: "masq" as const,
    upperThreshold: 0,
    lowerThreshold: 0,
  });
  // ops replace a state's services (never edit them in place): a shallow copy is the next state
  const edited = async (fn: (d: DesiredState) => void) =>
    timed(marks.change, async () =>
      p?.change((d) => {
        const n = { ...d };
        fn(n);
        return n;
      }),
    );
  let k = 3;
  while (Date.now() < end - 1500) {
    hold(12);
    await sleep(500);
    for (const h of held) h.s.write("a");
    const add = ports[3 + (k % 3)],
      drain = ports[3 + ((k + 1) % 3)];
    await edited((d) => {
      try {
        ops.addRealServer(d, svc, rsOf(add, 1));
      } catch {
        ops.editRealServer(d, svc, rsOf(add, 1));
      }
    });
    await edited((d) => {
      try {
        ops.editRealServer(d, svc, rsOf(drain, 0));
      } catch {
        /* not there */
      }
    });
    await sleep(500);
    await edited((d) => {
      try {
        ops.deleteRealServer(d, svc, { addr: "127.0.0.1", port: drain });
      } catch {
        /* not there */
      }
    });
    stats.changes += 3;
    for (const h of held) if (!h.s.destroyed) h.s.write("b");
    // both bytes echoed (a loaded machine may take a while: up to 5 s), or the connection is lost
    const until = Date.now() + 5000;
    while (Date.now() < until && held.some((h) => !h.lost && h.echoed < 2)) await sleep(50);
    for (const h of held.splice(0)) {
      if (h.lost || h.echoed < 2) stats.heldLost++;
      h.mine = true;
      h.s.destroy();
    }
    k++;
    if (k % 10 === 0)
      say(
        `soak: ${Math.max(0, Math.round((end - Date.now()) / 1000))} s left, held ${stats.held} (` +
          `${stats.heldLost} lost), ` +
          `${stats.reloads} reloads, ${stats.scrapes} scrapes, ` +
          `drops ${JSON.stringify(Object.fromEntries(p?.fw.drops ?? []))}`,
      );
  }
}

// A reload re-reads the file: the first backend's weight alternates 1, 2 (the changer's edits to the
// first VIP are replaced by the file's, as a reload does).
async function soakReloader(
  { p, end, stats, marks }: SoakRun,
  file: string,
  config: (w: number) => string,
  reloadEvery: number,
) {
  let w = 1;
  while (Date.now() < end - reloadEvery * 1000) {
    await sleep(reloadEvery * 1000);
    w = w === 1 ? 2 : 1;
    writeFileSync(file, config(w));
    try {
      await timed(marks.reload, async () => p?.reload());
      stats.reloads++;
    } catch (e) {
      stats.reloadErrors++;
      stats.errors.push(`reload: ${(e as Error).message}`);
    }
  }
}

async function soakScraper({ end, stats, marks }: SoakRun, mport: number, scrapeEvery: number) {
  while (Date.now() < end - 1000) {
    await sleep(scrapeEvery * 1000);
    const t = performance.now();
    const ok = await timed(
      marks.scrape,
      () =>
        new Promise<boolean>((res) => {
          const c = net.connect(mport, "127.0.0.1", () => c.write("GET /metrics HTTP/1.0\r\n\r\n"));
          let text = "";
          c.on("data", (d) => (text += d));
          c.on("end", () => res(text.startsWith("HTTP/1.1 200") && text.includes("wasmvs_proxy_conn_table_capacity")));
          c.on("error", () => res(false));
        }),
    );
    stats.scrapeMaxMs = Math.max(stats.scrapeMaxMs, performance.now() - t);
    if (ok) stats.scrapes++;
    else stats.scrapeErrors++;
  }
}

// The trivial relay: TCP piped to the backends in turn, a UDP socket per client flow (idle 1 s: closed).
async function trivialRelay(vips: string[], vport: number, backends: number[], uport: number, udpBackend: number) {
  const dgram = await import("node:dgram");
  let k = 0;
  const servers = vips.map((v) =>
    net
      .createServer({ allowHalfOpen: true, noDelay: true }, (c) => {
        const b = net.connect({ port: backends[k++ % backends.length], host: "127.0.0.1", allowHalfOpen: true });
        b.setNoDelay(true);
        c.pipe(b).pipe(c);
        c.on("error", () => b.destroy());
        b.on("error", () => c.destroy());
      })
      .listen(vport, v),
  );
  const udp = dgram.createSocket("udp4");
  const flows = new Map<string, { s: import("node:dgram").Socket; t: NodeJS.Timeout }>();
  udp.on("message", (m, r) => {
    const key = `${r.address}:${r.port}`;
    let f = flows.get(key);
    if (!f) {
      const s = dgram.createSocket("udp4");
      s.on("message", (x) => udp.send(x, r.port, r.address));
      s.on("error", () => {});
      flows.set(key, (f = { s, t: setTimeout(() => {}, 0) }));
    }
    const flow = f;
    clearTimeout(flow.t);
    flow.t = setTimeout(() => {
      flows.delete(key);
      flow.s.close();
    }, 1000);
    flow.s.send(m, udpBackend, "127.0.0.1");
  });
  await Promise.all([
    ...servers.map((sv) => new Promise((r) => sv.once("listening", r))),
    new Promise<void>((r) => udp.bind(uport, "127.0.0.1", () => r())),
  ]);
  return async () => {
    for (const sv of servers) sv.close();
    udp.close();
    for (const f of flows.values()) {
      clearTimeout(f.t);
      f.s.close();
    }
  };
}

export async function soak(opts: SoakOptions = {}) {
  const { Proxy } = await import("../src/proxy/index.ts");
  const { silentLogger } = await import("../src/proxy/log.ts");
  const say = opts.log ?? log;
  const seconds = opts.seconds ?? 600,
    rate = opts.rate ?? 1000,
    udpRate = opts.udpRate ?? Math.round(rate / 2);
  const reloadEvery = opts.reloadEvery ?? 10,
    scrapeEvery = opts.scrapeEvery ?? 1;
  // ports the kernel picks (fixed ones collided between concurrent runs); the backends' six and their sink
  const ports: number[] = [];
  for (let i = 0; i < 7; i++) ports.push(await freePort());
  const sinkPort = ports.pop()!;
  const { backends, udpBe, udpPort } = await soakBackends(ports, sinkPort);
  // several VIPs spread the client's 4-tuples (TIME_WAIT on both sides at 1,000 conn/s)
  const vips = ["127.0.0.1", "127.0.77.1", "127.0.77.2", "127.0.77.3"],
    vport = await freePort(),
    uport = await freePort("127.0.0.1", "udp"),
    mport = await freePort();
  const dir = mkdtempSync(join(tmpdir(), "wasmvs-soak-"));
  const file = join(dir, "proxy.yaml");
  const nodest =
    opts.expireNodestConn === undefined ? "" : `, settings: { expire_nodest_conn: ${opts.expireNodestConn} }`;
  const config = (w: number) => `proxy: { control: null, vipInterface: null, tick: 100, drainTimeout: 30,
  metrics: "127.0.0.1:${mport}"${nodest} }
services:
${vips
  .map(
    (v) =>
      `  - { protocol: tcp, addr: ${v}, port: ${vport}, scheduler: wlc, realServers: [ ${ports
        .slice(0, 3)
        .map((p, i) => `{ addr: 127.0.0.1, port: ${p}, weight: ${i === 0 ? w : 1} }`)
        .join(", ")} ] }`,
  )
  .join("\n")}
  - { protocol: udp, addr: 127.0.0.1, port: ${uport}, scheduler: rr,
      realServers: [ { addr: 127.0.0.1, port: ${udpPort} } ] }
`;
  writeFileSync(file, config(1));
  const { loadConfig } = await import("../src/proxy/config.ts");
  const relay = opts.proxy === "relay";
  const p = relay ? null : await Proxy.start(loadConfig(file), { log: silentLogger() });
  const stopRelay = relay ? await trivialRelay(vips, vport, ports.slice(0, 3), uport, udpPort) : undefined;
  const stats = soakStats(seconds, rate, udpRate);
  const end = Date.now() + seconds * 1000;
  const child = spawn(process.execPath, ["-e", SOAK_LOAD({ vips, vport, uport, rate, udpRate })], {
    stdio: ["pipe", "pipe", "inherit"],
  });
  let childOut = "";
  child.stdout!.on("data", (d) => (childOut += d));
  const childDone = new Promise((r) => child.once("close", r)); // close: its stdout has been read too
  const run: SoakRun = { p, end, stats, say, marks: { reload: [], scrape: [], change: [] } };
  const proxyStalls = loopStalls(20);
  const loops = relay
    ? [soakChanger(run, vport, ports)] // held connections only: the relay has nothing to change or scrape
    : [
        soakChanger(run, vport, ports),
        soakReloader(run, file, config, reloadEvery),
        soakScraper(run, mport, scrapeEvery),
      ];
  const loads = setInterval(() => stats.loadAvg.push(+os.loadavg()[0].toFixed(1)), 10000);
  const cpu0 = process.cpuUsage(),
    wall0 = performance.now(),
    be0 = procCpuMs(backends.pid);
  await sleep(Math.max(0, end - Date.now()));
  const cpu1 = process.cpuUsage(cpu0);
  stats.cpu = {
    wallMs: Math.round(performance.now() - wall0),
    proxyMs: Math.round((cpu1.user + cpu1.system) / 1000),
    loadMs: procCpuMs(child.pid),
    backendsMs: procCpuMs(backends.pid) - be0,
  };
  child.stdin!.end();
  await Promise.all([...loops, childDone]);
  clearInterval(loads);
  const c = JSON.parse(childOut || "{}");
  Object.assign(stats, {
    connections: c.connections,
    failed: c.failed,
    p50: c.p50,
    p99: c.p99,
    p999: c.p999,
    max: c.max,
    slow: c.slow,
    udpSent: c.udpSent,
    udpAnswered: c.udpAnswered,
  });
  for (const [e, n] of Object.entries(c.errors ?? {})) stats.errors.push(`${e}: ${n}`);
  proxyStalls.stop();
  stats.slowBlame = blameSlow(c.slowAt ?? [], c.stalls ?? [], proxyStalls.spans, run.marks);
  if (p) {
    stats.drops = Object.fromEntries(p.fw.drops);
    if (opts.expireNodestConn === 0) stats.failedAsked = stats.drops.destination_deleted ?? 0;
    const cs = p.core.connStats();
    stats.conn = {
      capacity: cs.capacity,
      evictedFinished: cs.evictedFinished,
      evictedInactive: cs.evictedInactive,
      refusedFull: cs.refusedFull,
    };
    await p.stop();
  }
  await stopRelay?.();
  backends.kill("SIGTERM");
  udpBe.close();
  rmSync(dir, { recursive: true, force: true });
  return stats;
}

// ---- metrics scrape ---------------------------------------------------------------------------------
// An in-process socket-mode proxy on loopback with `services` x `dests` (10 backends on 127.0.1.x), a client
// connecting through it every 10 ms, and `scrapes` windows of /metrics scrapes back to back for a second
// each (so about 100 connects fall while a scrape runs): per scrape its wall time, CPU and bytes, per window
// the longest event-loop stall (largest gap of a 1 ms timer) and every connect's time; each window followed
// by one of the same length with no scrape, the baseline of the same run. Connect times are pooled per kind.
export async function benchMetrics(
  opts: {
    services?: number;
    dests?: number;
    scrapes?: number;
    inProcess?: boolean;
    pin?: boolean;
    log?: (s: string) => void;
  } = {},
) {
  const { Proxy, parseConfig } = await import("../src/proxy/index.ts");
  const { silentLogger } = await import("../src/proxy/log.ts");
  const say = opts.log ?? log;
  const S = opts.services ?? 10000,
    D = opts.dests ?? 10,
    scrapes = opts.scrapes ?? 5,
    inProcess = opts.inProcess ?? false,
    pin = opts.pin ?? false;
  // pin: this process (the proxy, every thread) on CPU 1 and the children (client, backends, scraper) on CPU
  // 0, as on a node where the proxy has a core to itself
  if (pin) execFileSync("taskset", ["-a", "-p", "-c", "1", String(process.pid)], { stdio: "ignore" });
  const side = (args: string[]) =>
    pin
      ? spawn("taskset", ["-c", "0", process.execPath, ...args], { stdio: ["pipe", "pipe", "inherit"] })
      : spawn(process.execPath, args, { stdio: ["pipe", "pipe", "inherit"] });
  // ports the kernel picks, so concurrent runs do not collide
  const bport = await freePort("127.0.1.1"),
    vport = await freePort("127.0.80.1"),
    mport = await freePort();
  // one address per service (127.0.80.1 on), so no listener meets the ephemeral ports of other programs
  const vip = (k: number) => `127.0.${80 + Math.floor(k / 250)}.${(k % 250) + 1}`;
  // The backends answer one byte and close. They and the scraper run in child processes, as real servers
  // and Prometheus run elsewhere: in the proxy's process each connect would also need the backend's turns of
  // the proxy's loop (accept, write), waiting behind a scrape's slices as the proxy's own do, and the
  // scraper's own work would count as the proxy's (--in-process: the first rounds' set-up, kept to compare).
  const backendCode = `const net = require("node:net"); let up = 0;
    for (let i = 1; i <= ${D}; i++)
      net.createServer((s) => { s.on("error", () => {}); s.end("x"); })
        .listen(${bport}, "127.0.1." + i, () => { if (++up === ${D}) process.stdout.write("up\\n"); });
    process.stdin.on("end", () => process.exit(0)); process.stdin.resume();`;
  let backendChild: ChildProcess | undefined;
  let backs: net.Server[] = [];
  if (!inProcess) {
    const child = side(["-e", backendCode]);
    backendChild = child;
    await new Promise<void>((res, rej) => {
      child.stdout!.once("data", () => res());
      child.once("exit", (c) => rej(new Error(`the backends' process exited (${c})`)));
    });
  } else {
    backs = Array.from({ length: D }, (_, i) =>
      net
        .createServer((s) => {
          s.on("error", () => {});
          s.end("x");
        })
        .listen(bport, `127.0.1.${i + 1}`),
    );
    await Promise.all(backs.map((s) => new Promise((r) => s.once("listening", r))));
  }
  const rs = Array.from({ length: D }, (_, i) => `{ addr: 127.0.1.${i + 1}, port: ${bport} }`).join(", ");
  const lines = [
    `proxy: { control: null, vipInterface: null, metrics: "127.0.0.1:${mport}", maxConns: 4096 }`,
    "services:",
  ];
  for (let k = 0; k < S; k++)
    lines.push(`  - { protocol: tcp, addr: ${vip(k)}, port: ${vport}, scheduler: rr, realServers: [ ${rs} ] }`);
  const t0 = performance.now();
  const p = await Proxy.start(parseConfig(lines.join("\n") + "\n"), { log: silentLogger() });
  say(`metrics bench: ${S} services x ${D} destinations up in ${Math.round(performance.now() - t0)} ms`);
  // The client runs in a child process, so a stalled proxy cannot also stall the client's clock: every
  // 10 ms it opens a connection through the proxy and times it to the backend's first byte (the proxy
  // must accept, schedule and connect for that); it stops when its stdin closes and prints the times.
  const clientCode = `const net = require("node:net"); const out = []; let stop = false;
    process.stdin.on("end", () => { stop = true; }); process.stdin.resume();
    (async () => { while (!stop) {
      const t = performance.now(), at = Date.now();
      out.push(await new Promise((res) => { const c = net.connect(${vport}, "${vip(0)}");
        c.once("data", () => { res([at, performance.now() - t]); c.destroy(); });
        c.on("error", () => res([at, 1e9])); }));
      await new Promise((r) => setTimeout(r, 10));
    } process.stdout.write(JSON.stringify(out)); })();`;
  // a window: the 1 ms timer watching the proxy's loop and the client in its process, around work()
  const window = async (work: () => Promise<unknown>) => {
    // the wall gap includes waiting for a core on a loaded machine; the CPU gap is the proxy's own work
    // and the main thread's wait: ready to run, but waiting for a core (a thread that never sleeps is not woken
    // ahead of others when a connection comes)
    let maxGap = 0,
      maxCpuGap = 0,
      maxWaitGap = 0,
      last = performance.now(),
      [lastCpu, lastWait] = mainThreadSched();
    const tick = setInterval(() => {
      const n = performance.now(),
        [c, w] = mainThreadSched();
      maxGap = Math.max(maxGap, n - last);
      maxCpuGap = Math.max(maxCpuGap, c - lastCpu);
      maxWaitGap = Math.max(maxWaitGap, w - lastWait);
      last = n;
      lastCpu = c;
      lastWait = w;
    }, 1);
    const child = side(["-e", clientCode]);
    let outText = "";
    child.stdout!.on("data", (d) => (outText += d));
    const exited = new Promise((r) => child.once("close", r));
    await sleep(300);
    const w0 = performance.now(),
      c0 = process.cpuUsage(),
      from = Date.now(),
      [cpu0, wait0] = mainThreadSched();
    const out = await work();
    const [cpu1, wait1] = mainThreadSched();
    const wall = performance.now() - w0,
      cu = process.cpuUsage(c0),
      cpu = (cu.user + cu.system) / 1000,
      to = Date.now();
    await sleep(100);
    child.stdin!.end();
    await exited;
    clearInterval(tick);
    // the connects that started while work() ran
    const delays = (JSON.parse(outText || "[]") as [number, number][])
      .filter(([at]) => at >= from && at <= to)
      .map(([, d]) => d);
    const main = { cpu: cpu1 - cpu0, wait: wait1 - wait0 };
    const worstConnect = delays.length ? Math.max(...delays) : NaN;
    return { wall, cpu, maxGap, maxCpuGap, maxWaitGap, main, worstConnect, delays, out };
  };
  const scrape = () =>
    new Promise<number>((res, rej) => {
      const c = net.connect(mport, "127.0.0.1", () => c.write("GET /metrics HTTP/1.0\r\n\r\n"));
      let bytes = 0;
      c.on("data", (d) => (bytes += d.length));
      c.on("end", () => res(bytes));
      c.on("error", rej);
    });
  const scrapeHere = async (ms: number) => {
    const until = performance.now() + ms;
    let bytes = 0,
      n = 0;
    while (performance.now() < until) {
      bytes = await scrape();
      n++;
    }
    return { bytes, n };
  };
  // the same loop in a child process, started before the window and told when to begin (so its start-up is
  // not part of the window): scrapes back to back for ms, then prints how many and the last one's size
  const scraperApart = () => {
    const code = `const net = require("node:net");
      const scrape = () => new Promise((res, rej) => {
        const c = net.connect(${mport}, "127.0.0.1", () => c.write("GET /metrics HTTP/1.0\\r\\n\\r\\n"));
        let b = 0; c.on("data", (d) => (b += d.length)); c.on("end", () => res(b)); c.on("error", rej); });
      process.stdin.once("data", async (d) => { const until = performance.now() + Number(d); let bytes = 0, n = 0;
        while (performance.now() < until) { bytes = await scrape(); n++; }
        process.stdout.write(JSON.stringify({ bytes, n })); process.exit(0); });`;
    const child = side(["-e", code]);
    let out = "";
    child.stdout!.on("data", (d) => (out += d));
    const done = new Promise<{ bytes: number; n: number }>((res, rej) =>
      child.once("close", (c) => (c === 0 ? res(JSON.parse(out)) : rej(new Error(`the scraper exited (${c})`)))),
    );
    return (ms: number) => {
      child.stdin!.write(String(ms));
      return done;
    };
  };
  const rows: {
    kind: string;
    wall: number;
    cpu: number;
    maxGap: number;
    maxCpuGap: number;
    maxWaitGap: number;
    waitShare: number;
    worstConnect: number;
    bytes: number;
  }[] = [];
  // of the window's time, the share the main thread was ready to run but waited for a core
  const share = (w: { main: { wait: number }; wall: number }) => w.main.wait / w.wall;
  const delays: Record<string, number[]> = { scrape: [], idle: [] };
  let scrapesRun = 0;
  for (let i = 0; i < scrapes; i++) {
    const apart = inProcess ? undefined : scraperApart();
    const r = await window(() => (apart ? apart(1000) : scrapeHere(1000)));
    const { bytes, n } = r.out as { bytes: number; n: number };
    scrapesRun += n;
    rows.push({
      kind: "scrape",
      wall: r.wall / n,
      cpu: r.cpu / n,
      maxGap: r.maxGap,
      maxCpuGap: r.maxCpuGap,
      maxWaitGap: r.maxWaitGap,
      waitShare: share(r),
      worstConnect: r.worstConnect,
      bytes,
    });
    const b = await window(() => sleep(r.wall));
    rows.push({
      kind: "idle",
      wall: b.wall,
      cpu: (b.cpu * r.wall) / b.wall / n,
      maxGap: b.maxGap,
      maxCpuGap: b.maxCpuGap,
      maxWaitGap: b.maxWaitGap,
      waitShare: share(b),
      worstConnect: b.worstConnect,
      bytes: 0,
    });
    delays.scrape.push(...r.delays);
    delays.idle.push(...b.delays);
    say(`metrics bench: window ${i + 1} of ${scrapes}: ${n} scrapes`);
  }
  const connects = (k: string) => {
    const xs = delays[k];
    return {
      n: xs.length,
      p50: +pct(xs, 50).toFixed(2),
      p99: +pct(xs, 99).toFixed(2),
      max: +Math.max(...xs).toFixed(2),
    };
  };
  await p.stop();
  await Promise.all(backs.map((s) => new Promise((r) => s.close(r))));
  if (backendChild) {
    const gone = new Promise((r) => backendChild.once("exit", r));
    backendChild.stdin!.end();
    await gone;
  }
  type Field = "wall" | "cpu" | "maxGap" | "maxCpuGap" | "maxWaitGap" | "waitShare" | "worstConnect" | "bytes";
  const med = (k: string, f: Field) => {
    const xs = rows
      .filter((r) => r.kind === k)
      .map((r) => r[f])
      .filter((x) => Number.isFinite(x));
    const d = f === "waitShare" ? 3 : 1;
    return { median: +pct(xs, 50).toFixed(d), min: +Math.min(...xs).toFixed(d), max: +Math.max(...xs).toFixed(d) };
  };
  return {
    services: S,
    dests: D,
    scrapes,
    inProcess,
    pin,
    scrapesRun,
    // per scrape: wall and CPU; the idle window's CPU is scaled to one scrape's share of its length
    scrape: {
      wallMs: med("scrape", "wall"),
      cpuMs: med("scrape", "cpu"),
      loopStallMs: med("scrape", "maxGap"),
      loopCpuStallMs: med("scrape", "maxCpuGap"),
      // the main thread waiting for a core: the longest wait between two ticks, and its share of the window
      loopWaitStallMs: med("scrape", "maxWaitGap"),
      waitShare: med("scrape", "waitShare"),
      worstConnectMs: med("scrape", "worstConnect"),
      bytes: med("scrape", "bytes"),
      connectMs: connects("scrape"),
    },
    idle: {
      cpuMs: med("idle", "cpu"),
      loopStallMs: med("idle", "maxGap"),
      loopCpuStallMs: med("idle", "maxCpuGap"),
      loopWaitStallMs: med("idle", "maxWaitGap"),
      waitShare: med("idle", "waitShare"),
      worstConnectMs: med("idle", "worstConnect"),
      connectMs: connects("idle"),
    },
    load: (await import("node:os")).loadavg(),
  };
}

// ---- 1 and 2 workers ---------------------------------------------------------------------------------
// wasmvs --workers 1/2 against HAProxy nbthread 1/2 and nginx stream worker_processes 1/2, interleaved. What
// 2 cores can show: CPU per message, connection and GB summed over the proxy's threads (a per-worker cost
// that grows with workers is coordination overhead), and wasmvs's main thread's own CPU per connection (the
// one scheduling core's cost, which bounds the node at 1/cost connections per second). What they cannot:
// throughput scaling, since the load generator and the backends run on the same 2 cores as the 2 workers.
const WORKER_SETS: { family: string; one: Contender; two: Contender }[] = [
  { family: "wasmvs", one: wasmvs("wasmvs-w1", "native", 1), two: wasmvs("wasmvs-w2", "native", 2) },
  { family: "haproxy", one: haproxy("haproxy-t1", 1), two: haproxy("haproxy-t2", 2) },
  { family: "nginx", one: nginx("nginx-p1", 1), two: nginx("nginx-p2", 2) },
];

export interface WorkerScaling {
  family: string;
  // per round, 2 workers' figure over 1 worker's (the two ran in the same round): CPU per unit, and rate
  cpuPerUnit: { pingPong: Spread; connClose: Spread; bulk: Spread };
  rate: { pingPong: Spread; connClose: Spread; bulk: Spread };
}

function workerScaling(rounds: RoundResult[]): WorkerScaling[] {
  const out: WorkerScaling[] = [];
  for (const set of WORKER_SETS) {
    const pairs: { a: RoundResult; b: RoundResult }[] = [];
    for (const a of rounds.filter((r) => r.proxy === set.one.name)) {
      const b = rounds.find((r) => r.proxy === set.two.name && r.round === a.round);
      if (b) pairs.push({ a, b });
    }
    if (!pairs.length) continue;
    const of = (k: "pingPong" | "connClose" | "bulk", f: "cpuPerUnit" | "rate") =>
      median(pairs.map(({ a, b }) => b[k][f] / a[k][f]));
    out.push({
      family: set.family,
      cpuPerUnit: {
        pingPong: of("pingPong", "cpuPerUnit"),
        connClose: of("connClose", "cpuPerUnit"),
        bulk: of("bulk", "cpuPerUnit"),
      },
      rate: { pingPong: of("pingPong", "rate"), connClose: of("connClose", "rate"), bulk: of("bulk", "rate") },
    });
  }
  return out;
}

export async function benchWorkers(opts: { seconds?: number; conns?: number; repeats?: number } = {}) {
  const ms = (opts.seconds ?? 5) * 1000,
    conns = opts.conns ?? 32,
    repeats = opts.repeats ?? 3;
  const load0 = os.loadavg()[0];
  const rounds = await runRounds(
    (available) => WORKER_SETS.flatMap((s) => [s.one, s.two]).filter(available),
    repeats,
    ms,
    conns,
  );
  const load1 = os.loadavg()[0];
  const summary = summarize(rounds);
  const scaling = workerScaling(rounds);
  const mainOf = (name: string) => {
    const mine = rounds.filter((r) => r.proxy === name && r.mainCpuPerUnit);
    return mine.length
      ? {
          pingPong: median(mine.map((r) => r.mainCpuPerUnit!.pingPong)),
          connClose: median(mine.map((r) => r.mainCpuPerUnit!.connClose)),
          bulk: median(mine.map((r) => r.mainCpuPerUnit!.bulk)),
        }
      : undefined;
  };
  const mainW2 = mainOf("wasmvs-w2");
  log(
    `\nmedians over rounds (min–max); load average ${load0.toFixed(1)} at the start, ${load1.toFixed(1)} at the end:`,
  );
  log(table(summary));
  log(
    "\n2 workers over 1, per round (median, min–max): CPU per unit (1.00 = a worker costs what one thread " +
      "did) and rate",
  );
  for (const x of scaling)
    log(
      `${x.family.padEnd(8)} CPU/msg ${spread(x.cpuPerUnit.pingPong, 2)}  ` +
        `CPU/conn ${spread(x.cpuPerUnit.connClose, 2)}  ` +
        `CPU/GB ${spread(x.cpuPerUnit.bulk, 2)} | rate msg ${spread(x.rate.pingPong, 2)}  conn ` +
        `${spread(x.rate.connClose, 2)}  GB ${spread(x.rate.bulk, 2)}`,
    );
  if (mainW2)
    log(
      `wasmvs-w2's main thread (accepts and schedules for both workers): ${spread(mainW2.connClose, 1)} µs per ` +
        `connection, ${spread(mainW2.pingPong, 2)} µs per message, ${spread(mainW2.bulk, 0)} ms per GB: one ` +
        `scheduling core bounds the node at about ${fmt(1e6 / mainW2.connClose.median)} connections/s`,
    );
  const report = {
    when: new Date().toISOString(),
    seconds: ms / 1000,
    conns,
    repeats,
    node: process.version,
    load: { start: load0, end: load1 },
    pinned: "1 thread: CPU 0; 2 threads: CPUs 0-1; load generator and backends on CPU 1",
    trust:
      "CPU per unit over all the proxy's threads is the figure to trust; rates cannot show scaling on 2 cores " +
      "(the load generator shares them)",
    summary,
    scaling,
    wasmvsMainThread: { w1: mainOf("wasmvs-w1"), w2: mainW2 },
    rounds,
  };
  mkdirSync(`${ROOT}/report`, { recursive: true });
  writeFileSync(`${ROOT}/report/proxy-workers.json`, JSON.stringify(report, null, 2) + "\n");
  return report;
}

// ---- runnable alone -----------------------------------------------------------------------------------
if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const argv = process.argv.slice(2);
  const num = (name: string, d: number) => {
    const i = argv.indexOf(name);
    return i >= 0 ? Number(argv[i + 1]) : d;
  };
  const cmd = argv[0] && !argv[0].startsWith("-") ? argv[0] : "bench";
  if (cmd === "backends") {
    void runBackends(argv[1].split(",").map(Number), Number(argv[2]));
  } else if (cmd === "metrics") {
    void benchMetrics({
      services: num("--services", 10000),
      dests: num("--dests", 10),
      scrapes: num("--scrapes", 5),
      inProcess: argv.includes("--in-process"),
      pin: argv.includes("--pin"),
    }).then((r) => {
      console.log(JSON.stringify(r));
      process.exit(0);
    });
  } else if (cmd === "workers") {
    void benchWorkers({ seconds: num("--seconds", 5), conns: num("--conns", 32), repeats: num("--repeats", 3) }).then(
      (r) => {
        console.log(JSON.stringify({ scaling: r.scaling, wasmvsMainThread: r.wasmvsMainThread }));
        process.exit(0);
      },
    );
  } else if (cmd === "soak") {
    const seconds = argv.includes("--minutes") ? num("--minutes", 10) * 60 : num("--seconds", 600);
    void soak({
      proxy: argv.includes("--relay") ? "relay" : "wasmvs",
      seconds,
      rate: num("--rate", 1000),
      udpRate: num("--udp-rate", 500),
      reloadEvery: num("--reload-every", 10),
      scrapeEvery: num("--scrape-every", 1),
      expireNodestConn: argv.includes("--expire-nodest-conn") ? num("--expire-nodest-conn", 1) : undefined,
    }).then((s) => {
      console.log(JSON.stringify(s));
      const ok =
        s.failed === s.failedAsked && s.heldLost === 0 && s.slow === 0 && s.reloadErrors === 0 && s.scrapeErrors === 0;
      process.exit(ok ? 0 : 1);
    });
  } else {
    const only = argv.indexOf("--only") >= 0 ? argv[argv.indexOf("--only") + 1].split(",") : undefined;
    void benchProxies({
      seconds: num("--seconds", 5),
      conns: num("--conns", 32),
      repeats: num("--repeats", 3),
      only,
    }).then((r) => {
      console.log(JSON.stringify(r.vsHaproxy));
      process.exit(0);
    });
  }
}
