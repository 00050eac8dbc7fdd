// `wasmvs sim`: synthetic traffic through the real data plane, costed under kube-proxy's modes.
import { existsSync, readFileSync } from "node:fs";
import { simulate, type Calibration } from "../sim/index.ts";
import { DEFAULT_CALIBRATION } from "../sim/calibration.ts";
import { checks, parseOrExit, type Check, type CommandSpec } from "./args.ts";

export const SIM_USAGE = `usage: wasmvs sim [--services=10000,30000] [--endpoints=2] [--connections=1000000]
                  [--rate=5000] [--length-ms=200] [--requests=1] [--clients=1024] [--zipf=0]
                  [--calibration=FILE] [--json]

Runs Poisson traffic (rate = new connections per simulated second; requests = data packets per connection,
more = keepalive; 0 = SYN then RST) through the real WASM data plane over a synthetic cluster of each size,
and costs every new connection under kube-proxy's iptables (legacy, nft backend) and nftables modes with
the calibrated models. Calibration: FILE, else report/scaling/calibration.json (written by
'wasmvs bench scaling'), else the built-in one measured on the development machine.
`;

// numbers as the usage shows them: 10000, 10k, 1M
const toNumber = (v: string) => Number(v.replace(/k$/i, "e3").replace(/M$/, "e6"));
const amount: Check = (v) =>
  /^\d+(\.\d+)?[kM]?$/i.test(v) && Number.isFinite(toNumber(v)) ? undefined : "not a number (10000, 10k, 1M)";
const SIM: CommandSpec = {
  name: "wasmvs sim",
  usage: SIM_USAGE,
  flags: {
    "--services": { kind: "list", check: (v) => amount(v) ?? checks.int(1, 1_000_000)(String(toNumber(v))) },
    "--endpoints": { kind: "value", check: amount },
    "--connections": { kind: "value", check: amount },
    "--rate": { kind: "value", check: amount },
    "--length-ms": { kind: "value", check: amount },
    "--requests": { kind: "value", check: amount },
    "--clients": { kind: "value", check: amount },
    "--zipf": { kind: "value", check: amount },
    "--calibration": { kind: "value" },
    "--json": { kind: "flag" },
  },
};

export async function simCommand(argv: string[]): Promise<number> {
  if (argv[0] === "help") argv = ["--help"];
  const a = parseOrExit(argv, SIM, { out: process.stdout, err: process.stderr });
  if (typeof a === "number") return a;
  const opt = (n: string) => a.get(`--${n}`);
  const num = (n: string, d: number) => {
    const v = opt(n);
    return v === undefined ? d : toNumber(v);
  };
  try {
    const calFile =
      opt("calibration") ??
      (existsSync("report/scaling/calibration.json") ? "report/scaling/calibration.json" : undefined);
    const calibration: Calibration = calFile ? JSON.parse(readFileSync(calFile, "utf8")) : DEFAULT_CALIBRATION;
    const services = a.has("--services") ? a.all("--services").map(toNumber) : [10000];
    const traffic = {
      connections: num("connections", 1e6),
      rate: num("rate", 5000),
      meanLengthMs: num("length-ms", 200),
      requests: num("requests", 1),
      clients: Math.max(1, num("clients", 1024)),
      zipf: num("zipf", 0),
    };
    process.stderr.write(`calibration: ${calFile ?? "built-in"} (${calibration.machine})\n`);
    const res = await simulate({
      services,
      endpoints: num("endpoints", 2),
      traffic,
      calibration,
      log: (s) => process.stderr.write(s + "\n"),
    });
    if (a.has("--json")) {
      process.stdout.write(JSON.stringify(res, (_k, v) => (v instanceof Uint32Array ? undefined : v), 2) + "\n");
      return 0;
    }
    for (const p of res) {
      process.stdout.write(
        `\n${p.services.toLocaleString("en")} Services (${p.servicePorts} TCP Service ports): ` +
          `${p.engine.connections.toLocaleString("en")} connections, ${p.engine.packets.toLocaleString("en")} ` +
          `packets ` +
          (`through the data plane in ${(p.engine.wallMs / 1000).toFixed(2)} s (` +
            `${p.engine.simSeconds.toFixed(0)} s simula`) +
          `ted); drops ${JSON.stringify(p.engine.dropped)}\n`,
      );
      process.stdout.write(
        `  wasmvs data plane: ${p.wasm.nsPerNewConn.toFixed(0)} ns per new connection (SYN → schedule → NAT), ` +
          `${p.engine.nsPerPacket.toFixed(0)} ns per packet with the traffic generation (measured, in-process)\n`,
      );
      for (const m of p.modes)
        process.stdout.write(
          `  ${m.mode.padEnd(16)} first packet p50 ${m.firstPacket.p50.toFixed(1)} µs, p99 ` +
            `${m.firstPacket.p99.toFixed(1)} µs; CPU ${m.cpuPerConn.toFixed(1)} µs/new conn = ` +
            `${(m.extraCpuCores * 100).toFixed(1)}% of a co` +
            (`re extra at ${p.rate}/s${m.rulesWalked ? `; ${m.rulesWalked.toFixed(0)} rules walked` : ""}; full ` +
              `sync ≈ ${(m.syncMs / 1000).toFixed(1)} s, +1 Se`) +
            `rvice ≈ ${m.incrementalMs.toFixed(0)} ms (modelled${m.units !== "host" ? ", " + m.units : ""})\n`,
        );
    }
    return 0;
  } catch (e) {
    process.stderr.write(`wasmvs sim: ${(e as Error).message}\n`);
    return 2;
  }
}
