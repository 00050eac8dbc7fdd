// `wasmvs bench scaling`: the line is parsed and checked here, before the benchmark (bench/scaling.ts, run
// as its own process) starts measuring or writes its report; bench/scaling.ts parses with the same spec.
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { KUBE_PROXY_VERSIONS, DEFAULT_KUBE_PROXY_VERSION } from "../k8s/index.ts";
import { checks, parseOrExit, usageFailed, type Check, type CommandSpec, type Parsed } from "./args.ts";

const USAGE = `usage: wasmvs bench scaling [--full] [--services=1000,5000] [--endpoints=2]
       [--modes=iptables-legacy,iptables-nft,nftables,ipvs] [--no-ipvs]
       [--sim-services=10000,30000] [--sim-connections=N] [--no-host] [--no-proxy] [--no-packet]
       [--vm] [--vm-services=1000,5000] [--no-sim] [--target] [--target-connections=N]
       [--target-runs=3] [--out=DIR]
       [--connects=N] [--cpu-connects=N] [--kube-proxy-version=${KUBE_PROXY_VERSIONS.join("|")}]
  quick (default): 1k and 5k Services measured (kernel modes, IPVS mode when this kernel has IPVS, wasmvs proxy
    socket and packet mode), simulator to 30k
  --full: 1k, 2k, 5k, 10k measured, simulator to 100k (and IPVS mode in the kernel VM when this kernel has none)
  --vm: IPVS mode in the kernel VM when this kernel has no IPVS (qemu TCG, slow; VM figures compare only with
    VM figures) at 1k, 5k
  --connects, --cpu-connects: timed connects per target and connects for the CPU figure (default 400 and 2000,
    --full 1000 and 4000): fewer for a smoke run
  --kube-proxy-version: whose nftables rules to install (default ${DEFAULT_KUBE_PROXY_VERSION}; 1.34 moved the filter
    chains)
  --target: the simulator's benchmark alone: 10M connections over 10k Services, target ≤ 6 s on one core and
    ±10 % across --target-runs runs (3), each timed in CPU time
`;

/** A whole number from 1 to max, "k" for thousands (5k). */
const count =
  (max: number): Check =>
  (v) => {
    const x = Number(v.replace(/k$/i, "000"));
    return /^\d+k?$/i.test(v) && Number.isSafeInteger(x) && x >= 1 && x <= max
      ? undefined
      : `not a whole number from 1 to ${max.toLocaleString("en")}`;
  };
const HOST_MODES = ["iptables-legacy", "iptables-nft", "nftables", "ipvs"];

export const BENCH_SCALING: CommandSpec = {
  name: "wasmvs bench scaling",
  usage: USAGE,
  flags: {
    "--full": { kind: "flag" },
    "--no-host": { kind: "flag" },
    "--no-proxy": { kind: "flag" },
    "--no-packet": { kind: "flag" },
    "--no-ipvs": { kind: "flag" },
    "--vm": { kind: "flag" },
    "--no-sim": { kind: "flag" },
    "--target": { kind: "flag" },
    "--services": { kind: "list", check: count(100_000) },
    "--endpoints": { kind: "value", check: count(64) },
    "--modes": { kind: "list", check: checks.oneOf(HOST_MODES) },
    "--sim-services": { kind: "list", check: count(1_000_000) },
    "--sim-connections": { kind: "value", check: count(100_000_000) },
    "--vm-services": { kind: "list", check: count(100_000) },
    "--target-connections": { kind: "value", check: count(100_000_000) },
    "--target-runs": { kind: "value", check: count(100) },
    "--out": { kind: "value", check: checks.nonEmpty },
    "--connects": { kind: "value", check: count(1_000_000) },
    "--cpu-connects": { kind: "value", check: count(1_000_000) },
    "--kube-proxy-version": { kind: "value", check: checks.oneOf(KUBE_PROXY_VERSIONS) },
  },
};

/** The parsed line as --name=VALUE words (the form bench/scaling.ts reads), each flag once. */
export function equalsForm(p: Parsed, spec: CommandSpec): string[] {
  const words: string[] = [];
  for (const [name, f] of Object.entries(spec.flags)) {
    if (!p.has(name)) continue;
    words.push(f.kind === "flag" ? name : `${name}=${f.kind === "list" ? p.all(name).join(",") : p.get(name)}`);
  }
  return words;
}

export async function benchCommand(argv: string[]): Promise<number> {
  const io = { out: process.stdout, err: process.stderr };
  const top = { name: "wasmvs bench", usage: "usage: wasmvs bench scaling [options] (wasmvs bench scaling --help)\n" };
  if (argv[0] === "-h" || argv[0] === "--help" || argv[0] === "help") {
    io.out.write(top.usage);
    return 0;
  }
  if (argv[0] !== "scaling")
    return usageFailed(top, argv[0] ? `unknown benchmark '${argv[0].slice(0, 64)}'` : "which benchmark?", io);
  const p = parseOrExit(argv.slice(1), BENCH_SCALING, io);
  if (typeof p === "number") return p;
  const script = fileURLToPath(new URL("../../bench/scaling.ts", import.meta.url));
  const args = ["--import", "tsx", script, ...equalsForm(p, BENCH_SCALING)];
  return spawnSync(process.execPath, args, { stdio: "inherit" }).status ?? 1;
}
