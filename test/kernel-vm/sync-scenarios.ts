// Inside the VM (run by test/proxy-sync-vm.test.ts): connection sync between a kernel director and a wasmvs
// director on the director-pair bed (test/helpers/director-pair.ts).
//   kernel-to-wasmvs N: N TCP streams through kernel director A (masq, ipvsadm's master daemon); wasmvs proxy
//     on B in packet mode as the backup: each connection must appear in B's table (wasmvs -Lnc --target
//     proxy) with the real server A chose.
// Prints "@@RESULT {...}".
import { type ChildProcess, spawn } from "node:child_process";
import { writeFileSync } from "node:fs";
import {
  buildPair,
  connectionsIn,
  ipvsadmIn,
  nsRun,
  NS,
  startEchoServers,
  startStreams,
  teardownPair,
  waitFor,
  type DirectorPair,
} from "../helpers/director-pair.ts";
import { result } from "./rules.ts";

const scenario = process.argv[2] ?? "kernel-to-wasmvs";
const N = Number(process.argv[3] ?? 8);
const PORT = 80,
  REAL_PORT = 8080,
  SYNCID = 42;
const steps: string[] = [];
const step = (s: string) => {
  steps.push(s);
  process.stdout.write(`@@STEP ${s}\n`);
};
const procs: ChildProcess[] = [];

/** wasmvs proxy in packet mode on director d, with a sync daemon; resolves once it says it started. */
async function wasmvsProxy(pair: DirectorPair, d: "a" | "b", sync: "master" | "backup"): Promise<string> {
  const sock = `/tmp/wasmvs-sync-${d}.sock`;
  const cfg = `/tmp/wasmvs-sync-${d}.yaml`;
  writeFileSync(
    cfg,
    [
      "proxy:",
      "  mode: packet",
      `  control: ${sock}`,
      "  metrics: null",
      "  vipInterface: null",
      "  suppressKernel: false",
      "  interfaces: [front, back]",
      `  localAddresses: [10.71.0.${d === "a" ? 52 : 53}]`,
      "  syncDaemons:",
      `    - {state: ${sync}, mcastInterface: front, syncid: ${SYNCID}}`,
      "services:",
      `  - {protocol: tcp, addr: ${pair.vip}, port: ${PORT}, scheduler: rr, realServers: [`,
      ...pair.reals.map((r) => `      {addr: ${r}, port: ${REAL_PORT}},`),
      "    ]}",
      "",
    ].join("\n"),
  );
  const p = spawn("ip", ["netns", "exec", NS[d], process.execPath, "bin/wasmvs.js", "proxy", "-c", cfg], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  procs.push(p);
  let log = "";
  p.stdout!.on("data", (b) => (log += b));
  p.stderr!.on("data", (b) => (log += b));
  const ok = await waitFor(() => /"proxy started"/.test(log) || p.exitCode !== null, 180_000, 200);
  if (!ok || p.exitCode !== null) throw new Error(`wasmvs proxy on ${d} did not start:\n${log.slice(-2000)}`);
  if (!/"sync daemon started"/.test(log)) throw new Error(`no sync daemon on ${d}:\n${log.slice(-2000)}`);
  return sock;
}

/** `wasmvs -Lnc --target proxy` against the proxy at sock: [proto, state, client, dest] per entry. */
function wasmvsConnections(d: "a" | "b", sock: string) {
  const out = nsRun(NS[d], [
    "env",
    `WASMVS_PROXY_SOCKET=${sock}`,
    process.execPath,
    "bin/wasmvs.js",
    "-Lnc",
    "--target",
    "proxy",
  ]);
  return {
    text: out,
    rows: out
      .split("\n")
      .slice(2)
      .map((l) => l.trim().split(/\s+/))
      .filter((f) => f.length >= 6)
      .map((f) => ({ proto: f[0], state: f[2], client: f[3], dest: f[5] })),
  };
}

async function kernelToWasmvs() {
  const pair = buildPair({ reals: 2 });
  step("bed built");
  ipvsadmIn("a", ["-A", "-t", `${pair.vip}:${PORT}`, "-s", "rr"]);
  for (const r of pair.reals) ipvsadmIn("a", ["-a", "-t", `${pair.vip}:${PORT}`, "-r", `${r}:${REAL_PORT}`, "-m"]);
  ipvsadmIn("a", ["--start-daemon", "master", "--mcast-interface", "front", "--syncid", String(SYNCID)]);
  const sock = await wasmvsProxy(pair, "b", "backup");
  step("kernel master on A, wasmvs backup on B");
  const echo = await startEchoServers(pair, REAL_PORT);
  const streams = await startStreams(pair, PORT, N, { chunk: 256, everyMs: 100 });
  step(`${N} streams open through A`);
  const onA = () =>
    connectionsIn("a").filter(
      (c) => c.proto === "TCP" && c.state === "ESTABLISHED" && c.dest.endsWith(`:${REAL_PORT}`),
    );
  const onB = () =>
    wasmvsConnections("b", sock).rows.filter(
      (c) => c.proto === "TCP" && c.state === "ESTABLISHED" && c.dest.endsWith(`:${REAL_PORT}`),
    );
  const synced = await waitFor(() => onB().length >= N, 120_000, 1000);
  const a = onA(),
    b = onB();
  step(`B lists ${b.length} synced entries (A ${a.length})`);
  // the same real server for the same client connection
  const same = a.filter((x) => b.some((y) => y.client === x.client && y.dest === x.dest)).length;
  const status = JSON.parse(
    nsRun(NS.b, ["env", `WASMVS_PROXY_SOCKET=${sock}`, process.execPath, "bin/wasmvs.js", "proxy", "status"]),
  );
  streams.stop();
  echo.stop();
  result({
    scenario,
    total: N,
    onA: a.length,
    onB: b.length,
    same,
    synced,
    listingB: wasmvsConnections("b", sock).text,
    listingA: ipvsadmIn("a", ["-Lnc"]),
    sync: status.sync,
    steps,
  });
}

const scenarios: Record<string, () => Promise<void>> = { "kernel-to-wasmvs": kernelToWasmvs };

(scenarios[scenario] ?? (async () => result({ fatal: `unknown scenario ${scenario}` })))()
  .catch((e) => result({ fatal: String((e as Error)?.stack ?? e), steps }))
  .finally(() => {
    for (const p of procs) p.kill("SIGKILL");
    teardownPair();
    process.exit(0);
  });
