// Does a niced worker thread leave the main thread's connects alone? One process serves a TCP listener on
// loopback (accept, answer one byte) while bulk CPU work (JSON parse and stringify, allocation-heavy like a
// restore's parts) runs in one of four places: nowhere (idle), on the main thread in 1 ms slices with a turn
// of the loop between them (as src/proxy/slice.ts does), in a worker thread at the process's priority, or in
// a worker thread that lowers its own priority (setpriority on its thread id: Linux applies it per thread).
// A client in another process opens a connection every 5 ms and times connect() to the first byte. Modes
// are interleaved, round after round.
//   node --import tsx bench/nice-worker.ts [--rounds 4] [--seconds 4] [--modes idle,main,worker,nice19]
import { spawn } from "node:child_process";
import { readFileSync, readlinkSync } from "node:fs";
import * as net from "node:net";
import * as os from "node:os";
import { Worker } from "node:worker_threads";

const arg = (name: string, dflt: string) => {
  const i = process.argv.indexOf(name);
  return i > 0 ? process.argv[i + 1] : dflt;
};
const rounds = Number(arg("--rounds", "4"));
const seconds = Number(arg("--seconds", "4"));
const modes = arg("--modes", "idle,main,worker,nice19").split(",");

// the bulk work: one unit is a parse and a stringify of a 250-command part (about 75 kB), as a restore's
const part = JSON.stringify(
  Array.from({ length: 250 }, (_, i) => ({
    kind: "add-server",
    service: { proto: "tcp", addr: `127.1.${i >> 8}.${i & 255}`, port: 20000 },
    server: { addr: `127.0.0.${i % 9}`, port: 8080, weight: 1, fwd: "masq" },
  })),
);
const unit = (s: string) => JSON.stringify(JSON.parse(s)).length;

const WORKER = `
const { parentPort, workerData } = require("node:worker_threads");
const fs = require("node:fs"), os = require("node:os");
if (workerData.nice) {
  const tid = Number(fs.readlinkSync("/proc/thread-self").split("/").pop());
  os.setPriority(tid, workerData.nice);
}
let on = true, n = 0;
parentPort.on("message", () => { on = false; });
const step = () => {
  const t = performance.now();
  while (performance.now() - t < 1) { n += JSON.stringify(JSON.parse(workerData.part)).length; }
  if (on) setImmediate(step); else parentPort.postMessage(n);
};
step();`;

const CLIENT = `
const net = require("node:net");
const port = Number(process.argv[1]), ms = Number(process.argv[2]);
const out = [];
const end = performance.now() + ms;
const tick = () => {
  if (performance.now() > end) { setTimeout(() => { process.stdout.write(JSON.stringify(out)); }, 100); return; }
  const t = performance.now();
  const c = net.connect(port, "127.0.0.1");
  c.once("data", () => { out.push(performance.now() - t); c.destroy(); });
  c.on("error", () => out.push(1e9));
  setTimeout(tick, 5);
};
tick();`;

function client(port: number, ms: number): Promise<number[]> {
  return new Promise((res) => {
    const c = spawn(process.execPath, ["-e", CLIENT, String(port), String(ms)], {
      stdio: ["ignore", "pipe", "inherit"],
    });
    let s = "";
    c.stdout.setEncoding("utf8").on("data", (d: string) => (s += d));
    c.on("exit", () => res(JSON.parse(s)));
  });
}

// the main thread's CPU and its wait for a core (ready to run, not running), ms
const schedstat = () => {
  const tid = readlinkSync("/proc/thread-self").split("/").pop();
  const [run, wait] = readFileSync(`/proc/self/task/${tid}/schedstat`, "utf8").trim().split(" ").map(Number);
  return { run: run / 1e6, wait: wait / 1e6 };
};

async function run(mode: string, port: number) {
  let stop: () => Promise<number> = async () => 0;
  if (mode === "main") {
    let on = true,
      n = 0;
    const step = () => {
      const t = performance.now();
      while (performance.now() - t < 1) n += unit(part);
      if (on) setImmediate(step);
    };
    step();
    stop = async () => {
      on = false;
      return n;
    };
  } else if (mode === "worker" || mode.startsWith("nice")) {
    const nice = mode === "worker" ? 0 : Number(mode.slice(4));
    const w = new Worker(WORKER, { eval: true, workerData: { part, nice } });
    await new Promise((r) => setTimeout(r, 50));
    stop = () =>
      new Promise((r) => {
        w.once("message", (n) => {
          void w.terminate();
          r(n);
        });
        w.postMessage("stop");
      });
  }
  const s0 = schedstat();
  const c0 = process.cpuUsage();
  const lat = await client(port, seconds * 1000);
  const s1 = schedstat();
  const c1 = process.cpuUsage(c0);
  const units = await stop();
  lat.sort((a, b) => a - b);
  const q = (p: number) => lat[Math.min(lat.length - 1, Math.floor(lat.length * p))].toFixed(2);
  return (
    `${mode.padEnd(7)} connect p50 ${q(0.5)} p99 ${q(0.99)} max ${lat.at(-1)!.toFixed(1)} ms (${lat.length}); ` +
    `bulk units ${units}; process CPU ${((c1.user + c1.system) / 1000).toFixed(0)} ms; main thread CPU ` +
    `${(s1.run - s0.run).toFixed(0)} ms, waited for a core ${(s1.wait - s0.wait).toFixed(0)} ms; load ` +
    os
      .loadavg()
      .map((x) => x.toFixed(2))
      .join(" ")
  );
}

const srv = net.createServer((s) => {
  s.on("error", () => {});
  s.end("x");
});
await new Promise<void>((r) => srv.listen(0, "127.0.0.1", r));
const port = (srv.address() as net.AddressInfo).port;
for (let r = 0; r < rounds; r++)
  for (const m of r % 2 ? [...modes].reverse() : modes) console.log(`round ${r + 1} ${await run(m, port)}`);
srv.close();
