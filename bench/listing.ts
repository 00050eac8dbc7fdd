// What `wasmvs -Ln --stats --target proxy` costs the proxy's main thread at scale: one proxy (socket mode,
// loopback VIPs, real servers never contacted) with S services of D real servers each, in this process,
// listed R times by the CLI in a process of its own. While the proxy answers, nothing else on its main
// thread runs (no new connection is scheduled): the longest event-loop stall is that freeze. Prints the
// command's wall time, the proxy's longest stall and its CPU, medians and each round. --conns=N: N
// connection entries put in the table (SYNs to the first service, no socket behind them) and `-Lnc` listed
// instead.
//   node --import tsx bench/listing.ts [--services=1] [--dests=20000] [--rounds=5] [--conns=N]
import { execFile } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { monitorEventLoopDelay } from "node:perf_hooks";
import { fileURLToPath } from "node:url";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseConfig } from "../src/proxy/config.ts";
import { Proxy } from "../src/proxy/index.ts";
import { silentLogger } from "../src/proxy/log.ts";
import { freePort } from "../test/helpers/ports.ts";

const USAGE =
  "usage: node --import tsx bench/listing.ts [--services=N (1-1000)] [--dests=N (1-100000)] [--rounds=N (1-100)] " +
  "[--conns=N (1-1000000): -Lnc of N entries]";
function usageError(why: string): never {
  process.stderr.write(`bench/listing.ts: ${why}\n${USAGE}\n`);
  process.exit(2);
}
const LIMITS = {
  services: [1, 1000, 1],
  dests: [1, 100_000, 20_000],
  rounds: [1, 100, 5],
  conns: [1, 1_000_000, 0],
} as const;
const opt = { services: 1, dests: 20_000, rounds: 5, conns: 0 };
for (const a of process.argv.slice(2)) {
  if (a === "--help" || a === "-h") {
    process.stdout.write(`${USAGE}\n`);
    process.exit(0);
  }
  const m = /^--([a-z]+)=(.*)$/.exec(a);
  if (!m || !Object.hasOwn(LIMITS, m[1])) usageError(`unknown option ${JSON.stringify(a.slice(0, 40))}`);
  const k = m[1] as keyof typeof LIMITS;
  const [lo, hi] = LIMITS[k];
  const v = Number(m[2]);
  if (!/^\d+$/.test(m[2]) || v < lo || v > hi)
    usageError(`--${k}: ${JSON.stringify(m[2].slice(0, 20))} is not ${lo}-${hi}`);
  opt[k] = v;
}
if (opt.services * opt.dests > 200_000) usageError("--services × --dests is over 200,000");

function run(cmd: string, args: string[], env: NodeJS.ProcessEnv): Promise<string> {
  return new Promise((resolve, reject) =>
    execFile(cmd, args, { env, maxBuffer: 1 << 30 }, (e, out, err) =>
      e ? reject(new Error(`${args.join(" ")}: ${err || e.message}`)) : resolve(out),
    ),
  );
}

const dir = mkdtempSync(join(tmpdir(), "wasmvs-listing-"));
const control = join(dir, "ctl.sock");
const vport = await freePort(); // the VIPs are loopback addresses: a port nothing else holds
const addr = (k: number) => `10.${(k >> 16) & 255}.${(k >> 8) & 255}.${k & 255}`;
const services = Array.from({ length: opt.services }, (_, s) => {
  const rs = Array.from({ length: opt.dests }, (_, k) => `      - { addr: ${addr(s * opt.dests + k)}, port: 8080 }`);
  const vip = `127.1.${Math.floor(s / 250)}.${(s % 250) + 1}`;
  return `  - addr: ${vip}\n    port: ${vport}\n    scheduler: rr\n    realServers:\n${rs.join("\n")}`;
});
const capacity = Math.max(65536, 2 ** Math.ceil(Math.log2(opt.conns * 1.25 || 1))); // room for --conns
const p = await Proxy.start(
  parseConfig(
    `proxy: { control: ${control}, vipInterface: null, tick: 100, connCapacity: ${capacity} }\n` +
      `services:\n${services.join("\n")}\n`,
  ),
  { log: silentLogger() },
);
for (let k = 0; k < opt.conns; k++)
  p.core.packet(
    "in",
    "tcp",
    `10.${100 + (k >> 16)}.${(k >> 8) & 255}.${k & 255}`,
    1024 + (k % 60000),
    "127.1.0.1",
    vport,
    {
      flags: 0x02,
    },
  );
if (p.core.connStats().live < opt.conns)
  usageError(`the table took ${p.core.connStats().live} of ${opt.conns} entries`);
try {
  // the operator's command, in a process of its own, as an operator runs it; the proxy's side is its
  // longest event-loop stall meanwhile (what a new connection waits) and its main thread's CPU
  const cli = fileURLToPath(new URL("../bin/wasmvs.js", import.meta.url));
  const env = { ...process.env, WASMVS_PROXY_SOCKET: control };
  const rounds: { wallMs: number; stallMs: number; cpuMs: number; lines: number }[] = [];
  const loop = monitorEventLoopDelay({ resolution: 1 });
  loop.enable();
  for (let r = 0; r < opt.rounds; r++) {
    loop.reset();
    const c0 = process.cpuUsage();
    const t0 = performance.now();
    const args = opt.conns ? ["-Lnc"] : ["-Ln", "--stats"];
    const out = await run(process.execPath, [cli, ...args, "--target", "proxy"], env);
    const wallMs = performance.now() - t0;
    const c = process.cpuUsage(c0);
    // real servers, not the header; or entries
    const want = opt.conns || opt.services * opt.dests;
    const lines = out.split("\n").filter((l) => (opt.conns ? /^TCP /.test(l) : /^ {2}-> [\d[]/.test(l))).length;
    if (lines !== want) throw new Error(`listed ${lines} ${opt.conns ? "entries" : "real servers"}, not ${want}`);
    rounds.push({ wallMs, stallMs: loop.max / 1e6, cpuMs: (c.user + c.system) / 1e3, lines });
    const x = rounds[r];
    process.stderr.write(
      `round ${r + 1}/${opt.rounds}: the command ${x.wallMs.toFixed(0)} ms; the proxy's longest stall ` +
        `${x.stallMs.toFixed(1)} ms, its CPU ${x.cpuMs.toFixed(0)} ms\n`,
    );
  }
  const median = (k: "wallMs" | "stallMs" | "cpuMs") =>
    +[...rounds.map((x) => x[k])].sort((a, b) => a - b)[rounds.length >> 1].toFixed(1);
  const medians = { wallMs: median("wallMs"), stallMs: median("stallMs"), cpuMs: median("cpuMs") };
  process.stdout.write(`${JSON.stringify({ ...opt, ...medians, rounds })}\n`);
} finally {
  await p.stop();
  rmSync(dir, { recursive: true, force: true });
}
process.exit(0);
