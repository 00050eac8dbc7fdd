// Inside the VM (run by test/proxy-sync-vm.test.ts): connection sync between a kernel director and a wasmvs
// director on the director-pair bed (test/helpers/director-pair.ts).
//   kernel-to-wasmvs N: N TCP streams through kernel director A (masq, ipvsadm's master daemon); wasmvs proxy
//     on B in packet mode as the backup: each connection must appear in B's table (wasmvs -Lnc --target
//     proxy) with the real server A chose.
//   wasmvs-to-kernel N: the other way: wasmvs proxy master on A (masq, and a full-NAT service beside it), the
//     kernel's backup daemon on B (ipvsadm -Lnc), then A dies and the kernel carries the masq streams on.
//   failover-kernel-wasmvs N, failover-wasmvs-wasmvs N: N streams through A, A dies, B takes the VIP and the
//     gateway; every connection must go on with no reset and no lost or duplicated byte.
// Prints "@@RESULT {...}".
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import {
  buildPair,
  connectionsIn,
  ipvsadmIn,
  nsRun,
  nsTry,
  failOver,
  NS,
  startEchoServers,
  startStreams,
  teardownPair,
  waitFor,
  type DirectorPair,
  type StreamConn,
} from "../helpers/director-pair.ts";
import { result } from "./rules.ts";
import { ProxyTarget } from "../../src/proxy/control.ts";
import { formatConnections } from "../../src/model/format.ts";

// one scenario, or several in one boot: "a,b,c"
const wanted = (process.argv[2] ?? "kernel-to-wasmvs").split(",");
let scenario = wanted[0];
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

/** wasmvs proxy in packet mode on director d, with a sync daemon; resolves once it says it started.
 * masq: proxy.forward: masq (port PORT masquerades as the kernel's -m); fullNatPort: one more service on that
 * port whose real servers say forward: fullnat (through `local`). */
async function wasmvsProxy(
  pair: DirectorPair,
  d: "a" | "b",
  sync: "master" | "backup",
  local = `10.71.0.${d === "a" ? 52 : 53}`,
  o: { masq?: boolean; fullNatPort?: number } = {},
): Promise<string> {
  kernelOff(pair, d, local, o.fullNatPort ? [PORT, o.fullNatPort] : [PORT]);
  const sock = `/tmp/wasmvs-sync-${d}.sock`;
  const cfg = `/tmp/wasmvs-sync-${d}.yaml`;
  const service = (port: number, fwd: string) => [
    `  - {protocol: tcp, addr: ${pair.vip}, port: ${port}, scheduler: rr, realServers: [`,
    ...pair.reals.map((r) => `      {addr: ${r}, port: ${REAL_PORT}${fwd}},`),
    "    ]}",
  ];
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
      `  localAddresses: [${local}]`,
      ...(o.masq ? ["  forward: masq"] : []),
      "  syncDaemons:",
      `    - {state: ${sync}, mcastInterface: front, syncid: ${SYNCID}}`,
      "services:",
      ...service(PORT, ""),
      ...(o.fullNatPort ? service(o.fullNatPort, ", forward: fullnat") : []),
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

// What proxy.suppressKernel's nftables table does (the VM has iptables, not nft), plus the kernel's copy of
// a masqueraded reply (to the client itself): raw-table drops after AF_PACKET has seen the packets, and no
// kernel forwarding on a wasmvs director (packet mode sends by itself)
function kernelOff(pair: DirectorPair, d: "a" | "b", local: string, ports = [PORT]): void {
  const ipt = nsTry(NS[d], ["iptables-legacy", "-V"]).code === 0 ? "iptables-legacy" : "iptables";
  const rules = [
    ...ports.map((p) => ["-i", "front", "-d", pair.vip, "-p", "tcp", "--dport", String(p)]),
    ["-i", "back", "-d", local, "-p", "tcp"],
    ["-i", "back", "-d", "10.70.0.0/24", "-p", "tcp"],
  ];
  for (const r of rules) nsRun(NS[d], [ipt, "-t", "raw", "-A", "PREROUTING", ...r, "-j", "DROP"]);
  nsRun(NS[d], ["sysctl", "-q", "-w", "net.ipv4.ip_forward=0"]);
}

/** The proxy's table over its control socket (what `wasmvs -Lnc --target proxy` prints), polled cheaply. */
async function wasmvsConnections(_d: "a" | "b", sock: string) {
  const t = await ProxyTarget.open(sock);
  try {
    const text = formatConnections(await t.connections(), { numeric: true });
    return {
      text,
      rows: text
        .split("\n")
        .slice(2)
        .map((l) => l.trim().split(/\s+/))
        .filter((f) => f.length >= 6)
        .map((f) => ({ proto: f[0], state: f[2], client: f[3], virtual: f[4], dest: f[5] })),
    };
  } finally {
    await t.close();
  }
}

/** The command itself, once: `wasmvs -Lnc --target proxy` in director d's namespace (a slow start under qemu). */
function wasmvsListing(d: "a" | "b", sock: string): string {
  const r = spawnSync(
    "ip",
    [
      "netns",
      "exec",
      NS[d],
      "env",
      `WASMVS_PROXY_SOCKET=${sock}`,
      process.execPath,
      "bin/wasmvs.js",
      "-Lnc",
      "--target",
      "proxy",
    ],
    { encoding: "utf8", timeout: 900_000 },
  );
  if (r.status !== 0) throw new Error(`wasmvs -Lnc --target proxy on ${d}: exit ${r.status ?? r.signal}: ${r.stderr}`);
  return r.stdout;
}

/** `wasmvs proxy status` as JSON, over the control socket. */
async function proxyStatus(sock: string) {
  const t = await ProxyTarget.open(sock);
  try {
    return (await t.status()) as { sync?: { counters: Record<string, number> }; drops?: unknown };
  } finally {
    await t.close();
  }
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
  const onB = async () =>
    (await wasmvsConnections("b", sock)).rows.filter(
      (c) => c.proto === "TCP" && c.state === "ESTABLISHED" && c.dest.endsWith(`:${REAL_PORT}`),
    );
  const synced = await waitFor(async () => (await onB()).length >= N, 120_000, 1000);
  const a = onA(),
    b = await onB();
  step(`B lists ${b.length} synced entries (A ${a.length})`);
  // the same real server for the same client connection
  const same = a.filter((x) => b.some((y) => y.client === x.client && y.dest === x.dest)).length;
  const status = await proxyStatus(sock);
  streams.stop();
  echo.stop();
  result({
    scenario,
    total: N,
    onA: a.length,
    onB: b.length,
    same,
    synced,
    listingB: wasmvsListing("b", sock), // the command itself
    listingA: ipvsadmIn("a", ["-Lnc"]),
    sync: status.sync,
    steps,
  });
}

const established = <T extends { proto: string; state: string; dest: string }>(rows: T[]): T[] =>
  rows.filter((c) => c.proto === "TCP" && c.state === "ESTABLISHED" && c.dest.endsWith(`:${REAL_PORT}`));

// wasmvs master (packet mode) -> kernel backup, then a failover to the kernel. Port PORT masquerades
// (proxy.forward: masq): its N streams must show in the kernel backup's ipvsadm -Lnc as the master has them
// and go on through the kernel once A dies. Port FULLNAT_PORT is full-NAT (the gateway its local address):
// its F entries carry the local side in an option the kernel must skip and still keep; its streams are
// closed before the failover (a full-NAT connection cannot move to a kernel director). control: port PORT
// full-NAT too, as before packet mode had masq (run by hand: its streams are lost at the failover).
const FULLNAT_PORT = 81,
  F = 2;
async function wasmvsToKernel(control = false) {
  const pair = buildPair({ reals: 2 });
  step("bed built");
  const sock = await wasmvsProxy(pair, "a", "master", pair.gateway, { masq: !control, fullNatPort: FULLNAT_PORT });
  for (const port of [PORT, FULLNAT_PORT]) {
    ipvsadmIn("b", ["-A", "-t", `${pair.vip}:${port}`, "-s", "rr"]);
    for (const r of pair.reals) ipvsadmIn("b", ["-a", "-t", `${pair.vip}:${port}`, "-r", `${r}:${REAL_PORT}`, "-m"]);
  }
  ipvsadmIn("b", ["--start-daemon", "backup", "--mcast-interface", "front", "--syncid", String(SYNCID)]);
  step(`wasmvs master on A (${control ? "full-NAT" : "masq"} on ${PORT}), kernel backup on B`);
  const echo = await startEchoServers(pair, REAL_PORT);
  const streams = await startStreams(pair, PORT, N, { chunk: 256, everyMs: 100 });
  const fullNat = await startStreams(pair, FULLNAT_PORT, F, { chunk: 256, everyMs: 100 });
  step(`${N} + ${F} streams open through A`);
  const synced = await waitFor(() => established(connectionsIn("b")).length >= N + F, 120_000, 1000);
  const a = established((await wasmvsConnections("a", sock)).rows),
    b = established(connectionsIn("b"));
  step(`B (kernel) lists ${b.length} synced entries (A ${a.length})`);
  // every column of -Lnc but the expiry: what a kernel master's entry for the same connection shows
  const same = a.filter((x) =>
    b.some((y) => y.client === x.client && y.virtual === x.virtual && y.dest === x.dest && y.state === x.state),
  ).length;
  const fullNatOnB = b.filter((y) => y.virtual.endsWith(`:${FULLNAT_PORT}`)).length;
  const status = await proxyStatus(sock);
  const st = await streams.status();
  const listingA = (await wasmvsConnections("a", sock)).text,
    listingB = ipvsadmIn("b", ["-Lnc"]);
  fullNat.stop();
  failOver(pair);
  // past what was written when the failover was done, so bytes that can only have gone through B
  const atFailover = await streams.status();
  step("failed over to B (kernel)");
  const moved = await waitFor(
    async () =>
      (await streams.status()).every(
        (c) => c.err || c.recv > (atFailover.find((x) => x.id === c.id)?.sent ?? 0) + 2048,
      ),
    120_000,
    1000,
  );
  step(`streams ${moved ? "moved past the failover" : "did NOT all move past the failover"}`);
  const final: StreamConn[] = await streams.finish(60_000);
  const served = await echo.ask("count");
  echo.stop();
  result({
    scenario,
    total: N,
    fullNatTotal: F,
    onA: a.length,
    onB: b.length,
    same,
    fullNatOnB,
    synced,
    streamsOk: st.filter((c) => !c.err && c.recv > 0).length,
    listingA,
    listingB,
    sync: status.sync,
    kept: final.filter((c) => !c.err && c.recv === c.sent && c.sent > 0).length,
    moved,
    conns: final,
    served,
    steps,
  });
}

// Failover under load: N streams through A, A dies, B takes the VIP and the gateway; each connection must
// go on with no reset and no lost or duplicated byte. from/to: what runs on A and on B.
async function failover(from: "kernel" | "wasmvs", to: "kernel" | "wasmvs") {
  const pair = buildPair({ reals: 2 });
  step("bed built");
  const socks: Partial<Record<"a" | "b", string>> = {};
  for (const [d, kind, role] of [
    ["a", from, "master"],
    ["b", to, "backup"],
  ] as const) {
    if (kind === "wasmvs") socks[d] = await wasmvsProxy(pair, d, role, pair.gateway);
    else {
      ipvsadmIn(d, ["-A", "-t", `${pair.vip}:${PORT}`, "-s", "rr"]);
      for (const r of pair.reals) ipvsadmIn(d, ["-a", "-t", `${pair.vip}:${PORT}`, "-r", `${r}:${REAL_PORT}`, "-m"]);
      ipvsadmIn(d, ["--start-daemon", role, "--mcast-interface", "front", "--syncid", String(SYNCID)]);
    }
  }
  step(`${from} master on A, ${to} backup on B`);
  const echo = await startEchoServers(pair, REAL_PORT);
  const streams = await startStreams(pair, PORT, N, { chunk: 256, everyMs: 100 });
  step(`${N} streams open through A`);
  const listB = async () => (socks.b ? (await wasmvsConnections("b", socks.b)).rows : connectionsIn("b"));
  const synced = await waitFor(async () => established(await listB()).length >= N, 120_000, 1000);
  const onB = established(await listB()).length;
  step(`B holds ${onB} synced entries`);
  failOver(pair);
  // past what was written when the failover was done, so bytes that can only have gone through B
  const atFailover = await streams.status();
  step("failed over to B");
  const moved = await waitFor(
    async () => {
      const now = await streams.status();
      return now.every((c) => c.err || c.recv > (atFailover.find((x) => x.id === c.id)?.sent ?? 0) + 2048);
    },
    120_000,
    1000,
  );
  step(`streams ${moved ? "moved past the failover" : "did NOT all move past the failover"}`);
  const final: StreamConn[] = await streams.finish(60_000);
  const served = await echo.ask("count");
  echo.stop();
  const kept = final.filter((c) => !c.err && c.recv === c.sent && c.sent > 0).length;
  const statusB = socks.b ? await proxyStatus(socks.b) : undefined;
  result({
    scenario,
    total: N,
    kept,
    synced: onB,
    syncedInTime: synced,
    moved,
    conns: final,
    served,
    sync: statusB?.sync,
    drops: statusB?.drops,
    steps,
  });
}

const scenarios: Record<string, () => Promise<void>> = {
  "kernel-to-wasmvs": kernelToWasmvs,
  "wasmvs-to-kernel": () => wasmvsToKernel(),
  "wasmvs-to-kernel-fullnat": () => wasmvsToKernel(true),
  "failover-kernel-wasmvs": () => failover("kernel", "wasmvs"),
  "failover-wasmvs-wasmvs": () => failover("wasmvs", "wasmvs"),
};

async function main() {
  for (const name of wanted) {
    scenario = name;
    steps.length = 0;
    const run = scenarios[name];
    try {
      if (!run) throw new Error(`unknown scenario ${name}`);
      await run();
    } catch (e) {
      result({ scenario, fatal: String((e as Error)?.stack ?? e), steps });
    }
    for (const p of procs.splice(0)) p.kill("SIGKILL");
    teardownPair();
  }
}

void main().finally(() => process.exit(0));
