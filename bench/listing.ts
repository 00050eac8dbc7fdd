// What `wasmvs -Ln --target proxy` costs the proxy's main thread at scale: one proxy (socket mode, loopback
// VIPs, real servers never contacted) with S services of D real servers each, listed R times over its
// control socket as the CLI lists it. While a listing runs, nothing else on the main thread does (no new
// connection is scheduled), so this is the freeze an operator's -Ln causes.
//   node --import tsx bench/listing.ts [--services=1] [--dests=20000] [--rounds=5]
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseConfig } from "../src/proxy/config.ts";
import { ProxyTarget } from "../src/proxy/control.ts";
import { Proxy } from "../src/proxy/index.ts";
import { silentLogger } from "../src/proxy/log.ts";
import { freePort } from "../test/helpers/ports.ts";

const USAGE =
  "usage: node --import tsx bench/listing.ts [--services=N (1-1000)] [--dests=N (1-100000)] [--rounds=N (1-100)]";
function usageError(why: string): never {
  process.stderr.write(`bench/listing.ts: ${why}\n${USAGE}\n`);
  process.exit(2);
}
const LIMITS = { services: [1, 1000, 1], dests: [1, 100_000, 20_000], rounds: [1, 100, 5] } as const;
const opt = { services: 1, dests: 20_000, rounds: 5 };
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

const dir = mkdtempSync(join(tmpdir(), "wasmvs-listing-"));
const control = join(dir, "ctl.sock");
const vport = await freePort(); // the VIPs are loopback addresses: a port nothing else holds
const addr = (k: number) => `10.${(k >> 16) & 255}.${(k >> 8) & 255}.${k & 255}`;
const services = Array.from({ length: opt.services }, (_, s) => {
  const rs = Array.from({ length: opt.dests }, (_, k) => `      - { addr: ${addr(s * opt.dests + k)}, port: 8080 }`);
  return `  - addr: 127.1.${Math.floor(s / 250)}.${(s % 250) + 1}\n    port: ${vport}\n    scheduler: rr\n    realServers:\n${rs.join("\n")}`;
});
const p = await Proxy.start(
  parseConfig(`proxy: { control: ${control}, vipInterface: null, tick: 100 }\nservices:\n${services.join("\n")}\n`),
  { log: silentLogger() },
);
try {
  const t = await ProxyTarget.open(control, 600_000);
  const ms: number[] = [];
  for (let r = 0; r < opt.rounds; r++) {
    const t0 = performance.now();
    const list = await t.services();
    ms.push(performance.now() - t0);
    const n = list.reduce((x, s) => x + s.realServers.length, 0);
    if (n !== opt.services * opt.dests) throw new Error(`listed ${n} real servers, not ${opt.services * opt.dests}`);
    process.stderr.write(`round ${r + 1}/${opt.rounds}: ${ms[r].toFixed(1)} ms\n`);
  }
  t.client.close();
  const sorted = [...ms].sort((a, b) => a - b);
  process.stdout.write(
    `${JSON.stringify({ ...opt, ms: ms.map((x) => +x.toFixed(1)), medianMs: +sorted[sorted.length >> 1].toFixed(1) })}\n`,
  );
} finally {
  await p.stop();
  rmSync(dir, { recursive: true, force: true });
}
process.exit(0);
