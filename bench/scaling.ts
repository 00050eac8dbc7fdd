// wasmvs bench scaling: kube-proxy's iptables (legacy and nft backends) and nftables modes measured on this
// machine's kernel at 1k..10k Services, the wasmvs data plane's cost per new connection, and the simulator
// (src/sim) calibrated by those measurements, extrapolating to 30k, 50k and 100k Services.
//   node --import tsx bench/scaling.ts [--full] [--services=1000,5000] [--endpoints=2] [--modes=...]
// [--sim-services=...] [--sim-connections=N] [--no-host] [--no-proxy] [--no-packet] [--vm] [--vm-services=...]
// [--no-sim]
//        [--target] [--out=DIR]
// IPVS mode runs inside ../shared/ipvs-vm (qemu TCG) with --full or --vm only: it does not fit the quick
// run's 3 minutes (a 5k VM run alone takes several minutes).
// Progress on stderr, the table on stdout; DIR (report/scaling) gets scaling.json, calibration.json, SVG
// plots and summary.md.
import { mkdirSync, writeFileSync, readFileSync, existsSync } from "node:fs";
import { cpus, totalmem, release } from "node:os";
import { join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { hostSkipReason, connector, Topology } from "./scaling/netns.ts";
import { measureHost, HOST_MODES, ALL_HOST_MODES, type HostMode, type HostResult } from "./scaling/host.ts";
import { ipvsSkipReason } from "./scaling/ipvs.ts";
import { lineChartSvg, type PlotSeries } from "./scaling/plot.ts";
import { measureProxy, type ProxyResult } from "./scaling/proxy.ts";
import { measurePacket, packetSkipReason, type PacketResult } from "./scaling/packet.ts";
import { measureVm, vmSkipReason, type VmResult } from "./scaling/vm.ts";
import { simRun, spreadOf, SIM_TARGET_S, SIM_SPREAD, type SimRun } from "./groups/sim.ts";
import {
  scalingCluster,
  simServices,
  calibrate,
  simulate,
  TARGET_TRAFFIC,
  TARGET_SERVICES,
  type Calibration,
  type SimPointResult,
  type ModeChecks,
} from "../src/sim/index.ts";
import { DEFAULT_CALIBRATION } from "../src/sim/calibration.ts";
import { KUBE_PROXY_VERSIONS, DEFAULT_KUBE_PROXY_VERSION, type KubeProxyVersion } from "../src/k8s/index.ts";
import { table } from "./lib/report.ts";
import { toPoints, vmIpvsPoints, walksFor, type Walks } from "./scaling/calibrate.ts";
import { mainTable, curveTable } from "./scaling/rows.ts";
import { BENCH_SCALING, equalsForm } from "../src/cli/bench.ts";
import { parseArgs, type Parsed } from "../src/cli/args.ts";

const root = fileURLToPath(new URL("..", import.meta.url));
const USAGE = BENCH_SCALING.usage;
const usageError = (why: string): never => {
  process.stderr.write(`wasmvs bench scaling: ${why}\n${USAGE}`);
  process.exit(2);
};
// the line is parsed by wasmvs's one grammar (src/cli/args.ts) with the command's own spec: anything else is
// refused before anything runs; then read as --name=VALUE words
let parsed: Parsed;
try {
  parsed = parseArgs(process.argv.slice(2), BENCH_SCALING);
} catch (e) {
  usageError((e as Error).message);
}
if (parsed!.help) {
  process.stdout.write(USAGE);
  process.exit(0);
}
const argv = equalsForm(parsed!, BENCH_SCALING);
const flag = (n: string) => argv.includes(`--${n}`);
const opt = (n: string) =>
  [...argv]
    .reverse()
    .find((a) => a.startsWith(`--${n}=`))
    ?.slice(n.length + 3);
/** A positive whole number no larger than max, or a usage error naming the flag. */
const count = (name: string, s: string, max: number): number => {
  const x = Number(s.replace(/k$/i, "000"));
  if (!/^\d+k?$/i.test(s) || !Number.isSafeInteger(x) || x < 1 || x > max)
    usageError(
      `--${name}: ${JSON.stringify(s.slice(0, 40))} is not a whole number from 1 to ${max.toLocaleString("en")}`,
    );
  return x;
};
const nums = (name: string, d: number[], max: number) => {
  const s = opt(name);
  return s === undefined ? d : [...new Set(s.split(",").map((x) => count(name, x, max)))].sort((a, b) => a - b);
};
const full = flag("full");
const services = nums("services", full ? [1000, 2000, 5000, 10000] : [1000, 5000], 100_000);
const endpoints = count("endpoints", opt("endpoints") ?? "2", 64);
const modesOpt = opt("modes")?.split(",");
for (const m of modesOpt ?? [])
  if (!(ALL_HOST_MODES as string[]).includes(m))
    usageError(`--modes: unknown mode ${JSON.stringify(m.slice(0, 40))} (known: ${ALL_HOST_MODES.join(", ")})`);
const simN = nums("sim-services", full ? [10000, 30000, 50000, 100000] : [10000, 30000], 1_000_000);
const simConns = count("sim-connections", opt("sim-connections") ?? String(full ? 2_000_000 : 300_000), 100_000_000);
const targetRuns = count("target-runs", opt("target-runs") ?? "3", 100);
const targetConns = count(
  "target-connections",
  opt("target-connections") ?? String(TARGET_TRAFFIC.connections),
  100_000_000,
);
const outDir = resolve(root, opt("out") ?? "report/scaling");
const kubeProxyVersion = (opt("kube-proxy-version") ?? DEFAULT_KUBE_PROXY_VERSION) as KubeProxyVersion;
if (!(KUBE_PROXY_VERSIONS as readonly string[]).includes(kubeProxyVersion))
  usageError(
    `--kube-proxy-version: ${JSON.stringify(kubeProxyVersion.slice(0, 20))} is not one of ` +
      `${KUBE_PROXY_VERSIONS.join(", ")}`,
  );
const connects = count("connects", opt("connects") ?? String(full ? 1000 : 400), 1_000_000);
const cpuConnects = count("cpu-connects", opt("cpu-connects") ?? String(full ? 4000 : 2000), 1_000_000);
// the wasmvs modes and the VM part have smaller defaults of their own; --connects/--cpu-connects, when given,
// set them too (a smoke run, or the VM playing the host, needs all of them small)
const connectsOr = (dflt: number) => (opt("connects") === undefined ? dflt : connects);
const cpuConnectsOr = (dflt: number) => (opt("cpu-connects") === undefined ? dflt : cpuConnects);
const hostSkip = flag("no-host") ? "--no-host given" : hostSkipReason();
// IPVS on this kernel: the generic netlink family (ip_vs loaded if need be) and ipvsadm/ipset
const ipvsWanted = !flag("no-ipvs") && (modesOpt ? modesOpt.includes("ipvs") : true);
const ipvsSkip = !ipvsWanted
  ? flag("no-ipvs")
    ? "--no-ipvs given"
    : "not in --modes"
  : hostSkip
    ? hostSkip
    : await ipvsSkipReason();
const modes: HostMode[] = [
  ...((modesOpt ?? HOST_MODES) as HostMode[]).filter((m) => m !== "ipvs"),
  ...(ipvsWanted && !ipvsSkip ? ["ipvs" as const] : []),
];
const runSim = !flag("no-sim");
const runProxy = !flag("no-proxy");
const packetSkip = flag("no-packet") ? "--no-packet given" : hostSkip ? "" : packetSkipReason();
const runPacket = !hostSkip && !packetSkip;
// the VM stands in for IPVS only where this kernel has none
const vmAsked = full || flag("vm") || opt("vm-services") !== undefined;
const vmWanted = vmAsked && ipvsWanted && !!ipvsSkip;
const vmServices = nums("vm-services", full ? [1000, 5000, 10000] : [1000, 5000], 100_000);
const vmSkip = !vmWanted ? "" : vmSkipReason();
const self = `node --import tsx bench/scaling.ts`;
const cmdFor = (extra: string) => `${self} ${extra}`.trim();

// ---- progress --------------------------------------------------------------------------------------
const t0 = performance.now();
const el = () => {
  const s = (performance.now() - t0) / 1000;
  return `${Math.floor(s / 60)}:${(s % 60).toFixed(0).padStart(2, "0")}`;
};
let stepsDone = 0,
  stepsTotal = 0;
const bar = () => {
  const w = 24,
    f = Math.round((w * stepsDone) / Math.max(1, stepsTotal));
  return `[${"#".repeat(f)}${".".repeat(w - f)}] ${stepsDone}/${stepsTotal}`;
};
const progress = (s: string) => process.stderr.write(`${bar()} ${el()} ${s}\n`);

// ---- the target benchmark alone ---------------------------------------------------------------------
if (flag("target")) {
  await target();
  process.exit(0);
}

async function target(): Promise<{ cpuS: number; spread: number; conns: number; services: number; pass: boolean }> {
  const c = scalingCluster(TARGET_SERVICES, endpoints, 1, { nft: false });
  const { services: svcs } = simServices(c);
  const conns = targetConns;
  process.stderr.write(
    `target: ${conns.toLocaleString("en")} connections (SYN then RST, Poisson at 20k/s simulated) ` +
      `over ${svcs.length.toLocaleString("en")} Service ports of 10k Services, real data plane, one core, ` +
      `${targetRuns} runs\n`,
  );
  const runs: SimRun[] = [];
  for (let i = 0; i < targetRuns; i++) {
    const r = await simRun(svcs, conns);
    runs.push(r);
    process.stderr.write(
      `run ${i + 1}: ${r.cpuS.toFixed(2)} s CPU, ${r.wallS.toFixed(2)} s wall, ` +
        `${r.forwarded.toLocaleString("en")} of ${r.packets.toLocaleString("en")} packets forwarded\n`,
    );
  }
  const cpu = spreadOf(runs.map((r) => r.cpuS)),
    wall = spreadOf(runs.map((r) => r.wallS));
  const limit = (SIM_TARGET_S * conns) / TARGET_TRAFFIC.connections;
  const lost = runs.reduce((s, r) => s + r.packets - r.forwarded, 0);
  const pass = cpu.median <= limit && (targetRuns < 3 || cpu.spread <= SIM_SPREAD) && lost === 0;
  console.log(
    `${pass ? "PASS" : "MISS"} simulator: ${runs[0].connections.toLocaleString("en")} connections over ` +
      `10k Services in ${cpu.median.toFixed(2)} s CPU, median of ${targetRuns} (runs ` +
      `${runs.map((r) => r.cpuS.toFixed(2)).join(", ")}: ±${(cpu.spread * 100).toFixed(1)} %; target ≤ ` +
      (`${limit.toFixed(1)} s, ±${SIM_SPREAD * 100} %), wall ${wall.median.toFixed(2)} s (±` +
        `${(wall.spread * 100).toFixed(1)} %), `) +
      `${((cpu.median * 1e9) / runs[0].packets).toFixed(0)} ns per packet end to end; ${lost} packets not forwarded`,
  );
  console.log(`  regenerate: ${cmdFor("--target")}`);
  return { cpuS: cpu.median, spread: cpu.spread, conns: runs[0].connections, services: 10000, pass };
}

// ---- plan --------------------------------------------------------------------------------------------
const estS = hostSkip
  ? 0
  : services.reduce(
      (s, n) =>
        s +
        (n <= 1000 ? 8 : n <= 2000 ? 20 : n <= 5000 ? 60 : 260) +
        (runProxy ? (n <= 1000 ? 15 : n <= 5000 ? 25 : 45) : 0) +
        (runPacket ? (n <= 1000 ? 10 : n <= 5000 ? 20 : 40) : 0),
      0,
    );
const simPoints = runSim ? [...new Set([...services, ...simN])].sort((a, b) => a - b) : [];
const vmEstS =
  vmWanted && !vmSkip ? 40 + vmServices.reduce((s, n) => s + (n <= 1000 ? 70 : n <= 5000 ? 100 : 160), 0) : 0;
const ipvsLine = hostSkip
  ? `IPVS mode not measured either (host part skipped).`
  : modes.includes("ipvs")
    ? `IPVS on this kernel: kube-proxy's IPVS mode measured beside the others in the same namespaces and the same run.`
    : vmWanted
      ? vmSkip
        ? `No IPVS on this host (${ipvsSkip}); IPVS mode in the kernel VM SKIPPED: ${vmSkip}.`
        : `No IPVS on this host (${ipvsSkip}): IPVS mode measured inside the kernel VM (Linux 6.1, qemu ` +
          `TCG, about ${Math.max(1, Math.round(vmEstS / 60))} min) ` +
          (`at ${vmServices.map((n) => n.toLocaleString("en")).join(", ")} Services, every figure labelled [VM]: ` +
            `comparable only with other VM figures.`)
      : ipvsWanted
        ? `No IPVS on this host (${ipvsSkip}): IPVS mode not measured; --vm or --full measure it inside the ` +
          `kernel VM (qemu TCG, minutes).`
        : `IPVS mode not measured (${ipvsSkip}).`;
console.log(`wasmvs bench scaling — what happens past 1,000 Services?`);
console.log(
  hostSkip
    ? `Host measurements SKIPPED (${hostSkip}); the simulator runs on the built-in calibration measured on the ` +
        `development machine (${DEFAULT_CALIBRATION.machine}).`
    : `Measures on this kernel, in network namespaces made for the run ` +
        `(client → node with kube-proxy's rules → backends, over veth):\n` +
        `  kube-proxy ${modes.join(", ")} at ${services.map((n) => n.toLocaleString("en")).join(", ")} Services × ` +
        `${endpoints} endpoints:\n` +
        `  full sync, +1 Service, TCP connect latency to the first and the last Service and a pod IP, ` +
        `CPU per new connection, the xtables lock.` +
        (runProxy
          ? `\n  wasmvs userspace: \`wasmvs proxy\` socket mode in the node namespace with the same Services; ` +
            `connects through it (connect() and the backend's first byte), CPU per connection.`
          : "") +
        (runPacket
          ? `\n  wasmvs userspace: \`wasmvs proxy\` packet mode (AF_PACKET, the WASM packet path, full-NAT, ` +
            `its nftables takeover table) in the node namespace, the same connects and CPU.`
          : packetSkip
            ? `\n  wasmvs packet mode SKIPPED: ${packetSkip}`
            : ""),
);
console.log(ipvsLine);
console.log(
  `Then the wasmvs data plane's cost per new connection, and the simulator (real WASM data plane + ` +
    `calibrated rule-walk,\nverdict-map and hash models) at ` +
    `${simPoints.map((n) => n.toLocaleString("en")).join(", ")} Services, ` +
    `${simConns.toLocaleString("en")} connections each.\n` +
    `Expected time: about ${Math.ceil((estS + vmEstS + simPoints.length * 6 + 10) / 10) * 10} s on 2 cores.\n`,
);

const hostResults: HostResult[] = [];
const proxyResults: ProxyResult[] = [];
const packetResults: PacketResult[] = [];
const proxyFailures: { services: number; error: string }[] = [];
const packetFailures: { services: number; error: string }[] = [];
const hostFailures: { mode: string; services: number; error: string }[] = [];
let vmResults: VmResult[] = [];
let vmError: string | null = null;
// one step per measured (mode, N), per wasmvs proxy run, the VM, and per simulator point (the data plane's
// SYN cost is measured there); the bar ends at stepsTotal/stepsTotal
stepsTotal =
  (hostSkip ? 0 : services.length * (modes.length + (runProxy ? 1 : 0) + (runPacket ? 1 : 0))) +
  (vmWanted && !vmSkip ? 1 : 0) +
  simPoints.length;
if (!hostSkip) {
  if (connector().kind === "node")
    progress("no C compiler: connects timed by the Node connector (adds event-loop overhead to every figure)");
  for (const n of services) {
    progress(`${n.toLocaleString("en")} Services: generating the cluster and the rules`);
    const c = scalingCluster(n, endpoints, 1, { kubeProxyVersion }),
      next = scalingCluster(n + 1, endpoints, 1, { kubeProxyVersion });
    for (const m of modes) {
      try {
        const r = await measureHost(m, c, next, {
          connects,
          cpuConnects,
          lock: m !== "ipvs" && (m === "iptables-legacy" || n <= 1000 || (full && n <= 5000)),
          log: (s) => progress(s),
        });
        hostResults.push(r);
        stepsDone++;
        progress(
          `${m} ${n}: sync ${(r.syncMs / 1000).toFixed(2)} s, first ${r.first.lat.p50.toFixed(0)} µs, last ` +
            `${r.last.lat.p50.toFixed(0)} µs, rules ${r.rules.counted}/${r.rules.expected}`,
        );
      } catch (e) {
        hostFailures.push({ mode: m, services: n, error: (e as Error).message });
        stepsDone++;
        progress(`${m} ${n}: FAILED: ${(e as Error).message.slice(0, 500)}`);
      }
    }
    if (runProxy) {
      try {
        const counts = { connects: connectsOr(full ? 1000 : 300), cpuConnects: cpuConnectsOr(full ? 4000 : 1000) };
        const p = await measureProxy(c, { ...counts, log: (s) => progress(s) });
        proxyResults.push(p);
        progress(
          `wasmvs-proxy ${n}: first byte ${p.first.firstByte.p50.toFixed(0)} / ` +
            `${p.last.firstByte.p50.toFixed(0)} µs (connect() ${p.first.connect.p50.toFixed(0)} µs), proxy CPU ` +
            `${p.last.proxyCpuUsPerConn.toFixed(0)} µs/conn`,
        );
      } catch (e) {
        proxyFailures.push({ services: n, error: (e as Error).message });
        progress(`wasmvs-proxy ${n}: FAILED: ${(e as Error).message.slice(0, 500)}`);
      }
      stepsDone++;
    }
    if (runPacket) {
      try {
        const counts = { connects: connectsOr(full ? 1000 : 300), cpuConnects: cpuConnectsOr(full ? 4000 : 1000) };
        const k = await measurePacket(c, { ...counts, log: (s) => progress(s) });
        packetResults.push(k);
        progress(
          `wasmvs-packet ${n}: first byte ${k.first.firstByte.p50.toFixed(0)} / ` +
            `${k.last.firstByte.p50.toFixed(0)} µs (connect() ${k.first.connect.p50.toFixed(0)} / ` +
            `${k.last.connect.p50.toFixed(0)} µs), proxy CPU ${k.last.proxyCpuUsPerConn.toFixed(0)} µs/conn,` +
            ` client CPU ${k.first.clientCpuUsPerConn.toFixed(0)} / ${k.last.clientCpuUsPerConn.toFixed(0)} µs/conn,` +
            ` takeover entries ${k.takeover.entries}/${k.takeover.expected} in ${k.takeover.rules} rules`,
        );
      } catch (e) {
        packetFailures.push({ services: n, error: (e as Error).message });
        progress(`wasmvs-packet ${n}: FAILED: ${(e as Error).message.slice(0, 500)}`);
      }
      stepsDone++;
    }
  }
  Topology.cleanupAll();
}
if (vmWanted && !vmSkip) {
  progress(`IPVS mode in the kernel VM: ${vmServices.join(", ")} Services (booting the VM)`);
  try {
    const counts = { connects: connectsOr(full ? 500 : 300), cpuConnects: cpuConnectsOr(full ? 1000 : 500) };
    vmResults = await measureVm(vmServices, endpoints, { ...counts, log: (s) => progress(s) });
  } catch (e) {
    vmError = (e as Error).message;
    progress(`IPVS VM part FAILED: ${vmError.slice(0, 800)}`);
  }
  stepsDone++;
}

// ---- calibration -------------------------------------------------------------------------------------
let calibration: Calibration = DEFAULT_CALIBRATION;
let checks: Record<string, ModeChecks> = {};
let walks: Walks = new Map();
// IPVS mode's model from this host's figures; from the VM's (in VM units, labelled) only when there are none
const vmPoints = hostResults.some((r) => r.mode === "ipvs") ? [] : vmIpvsPoints(vmResults);
if (hostResults.length || vmPoints.length) {
  walks = walksFor([...new Set(hostResults.map((r) => r.services))], endpoints);
  const cal = calibrate(
    [...toPoints(hostResults, walks), ...vmPoints],
    `${cpus()[0]?.model ?? "?"} ×${cpus().length}`,
    `measured by this run (${cmdFor(argv.join(" "))})`,
  );
  calibration = cal.calibration;
  checks = cal.checks;
  if (new Set(hostResults.map((r) => r.services)).size === 1) {
    // one N cannot fix a line: the modes the built-in calibration has take its curves (and say so)
    calibration = {
      ...calibration,
      modes: calibration.modes.map((m) => {
        const d = DEFAULT_CALIBRATION.modes.find((x) => x.mode === m.mode);
        return d ? { ...d, source: `built-in (${d.source}): this run measured one N only` } : m;
      }),
    };
  }
}

// ---- wasmvs data plane and the simulator ---------------------------------------------------------------
// the data plane's cost per new connection is measured once per N, by the simulator's run at that N: the
// terminal, the table, summary.md and scaling.json all show that one figure
let sim: SimPointResult[] = [];
if (runSim) {
  const measured = new Set([
    ...hostResults.map((r) => `${r.mode}:${r.services}`),
    ...vmPoints.map((p) => `${p.mode}:${p.services}`),
  ]);
  sim = await simulate({
    services: simPoints,
    endpoints,
    calibration,
    measured,
    traffic: { connections: simConns, rate: 5000, meanLengthMs: 200, requests: 1, clients: 1024, zipf: 0 },
    log: (s) => progress(s),
    onPoint: (p) => {
      stepsDone++;
      progress(
        `sim ${p.services} Services done: wasmvs data plane ${p.wasm.nsPerNewConn.toFixed(0)} ns per new ` +
          `connection (SYN→NAT)`,
      );
    },
  });
}
const wasmPerN = sim.map((p) => ({ services: p.services, nsPerNewConn: p.wasm.nsPerNewConn }));
progress(`done`);

// ---- output -------------------------------------------------------------------------------------------
mkdirSync(outDir, { recursive: true });
const runTables = { hostResults, sim, proxyResults, packetResults, vmResults, wasmPerN };
const main = mainTable(runTables),
  curves = curveTable(calibration, checks);
console.log(table(main.headers, main.rows));
console.log(
  "MODELLED rows: each figure ≈ the model's value (low–high: its span over the fit refitted with each measured " +
    "N left out and the other candidate curves).",
);
if (vmResults.length)
  console.log(
    "[VM] rows: measured inside the qemu TCG kernel VM; compare them only with each other (never with host rows).",
  );
if (proxyResults.length)
  console.log(
    "wasmvs proxy rows: time to the backend's first byte through the proxy (connect() alone returns on the node " +
      "kernel's handshake); CPU = the proxy process's.",
  );
if (packetResults.length)
  console.log(
    "wasmvs packet rows: connect() already covers the path (no listener on the node; the SYN-ACK comes from the " +
      "backend through wasmvs); CPU = the proxy process's + the connector's (veth runs the node's takeover rules " +
      "in the sender's context).",
  );
if (vmError) console.log(`IPVS VM part failed: ${vmError.slice(0, 300)}`);

console.log(
  `\nTHE MODEL'S CURVES (measured at the N listed, modelled elsewhere; error: fit on the other N, predict this one)`,
);
console.log(table(curves.headers, curves.rows));
console.log(`\nProduced by: ${cmdFor(argv.join(" "))}`);

// plots
const COLORS: Record<string, string> = {
  "iptables-legacy": "#d62728",
  "iptables-nft": "#ff7f0e",
  nftables: "#2ca02c",
  ipvs: "#1f77b4",
  wasmvs: "#9467bd",
};
const seriesFor = (
  get: (m: SimPointResult["modes"][number]) => number,
  hostGet?: (r: HostResult) => number,
): PlotSeries[] => {
  const names = [
    ...new Set([...hostResults.map((r) => r.mode as string), ...sim.flatMap((p) => p.modes.map((m) => m.mode))]),
  ];
  return names.map((name) => {
    const pts: PlotSeries["points"] = [];
    for (const r of hostResults.filter((r) => r.mode === name))
      if (hostGet) pts.push({ x: r.services, y: hostGet(r), measured: true });
    for (const p of sim)
      for (const m of p.modes)
        if (m.mode === name && !(hostGet && m.measured))
          pts.push({ x: p.services, y: get(m), measured: m.measured && !hostGet });
    return { name, color: COLORS[name] ?? "#333", points: pts };
  });
};
const svgs: Record<string, string> = {};
svgs["latency.svg"] = lineChartSvg({
  title: "First-packet cost: TCP connect latency (p50) vs Services",
  subtitle: "measured: connects to the LAST Service in the chain; modelled: p50 over a uniform Service mix",
  xLabel: "Services",
  yLabel: "connect latency p50 (µs)",
  series: [
    ...seriesFor(
      (m) => m.firstPacket.p50,
      (r) => r.last.lat.p50,
    ),
    {
      name: "wasmvs (SYN→NAT, WASM only)",
      color: COLORS.wasmvs,
      points: sim.map((p) => ({ x: p.services, y: p.wasm.nsPerNewConn / 1000, measured: true })),
    },
    ...(proxyResults.length
      ? [
          {
            name: "wasmvs proxy: 1st byte",
            color: "#8c564b",
            points: proxyResults.map((p) => ({ x: p.services, y: p.last.firstByte.p50, measured: true })),
          },
        ]
      : []),
    ...(packetResults.length
      ? [
          {
            name: "wasmvs packet mode: 1st byte",
            color: "#bcbd22",
            points: packetResults.map((k) => ({ x: k.services, y: k.last.firstByte.p50, measured: true })),
          },
        ]
      : []),
    ...(vmResults.length
      ? [
          {
            name: "ipvs [VM-only]",
            color: COLORS.ipvs,
            points: vmResults.map((v) => ({ x: v.services, y: v.ipvs.last.lat.p50, measured: true })),
          },
          {
            name: "iptables-legacy [VM-only]",
            color: "#e377c2",
            points: vmResults.map((v) => ({ x: v.services, y: v.iptables.last.lat.p50, measured: true })),
          },
        ]
      : []),
  ],
  refs: [
    { x: 5000, y: 47, label: "k8s nftables post: iptables p50 5k 47 µs" },
    { x: 10000, y: 62, label: "10k 62 µs" },
    { x: 30000, y: 272, label: "30k 272 µs" },
  ],
});
svgs["cpu.svg"] = lineChartSvg({
  title: "CPU per new connection vs Services",
  subtitle:
    "measured: connector's CPU (its system calls carry the first packet's netfilter work); modelled past the range",
  xLabel: "Services",
  yLabel: "CPU per new connection (µs)",
  series: [
    ...seriesFor(
      (m) => m.cpuPerConn,
      (r) => r.last.cpu.usPerConn,
    ),
    {
      name: "wasmvs (SYN→NAT, WASM only)",
      color: COLORS.wasmvs,
      points: sim.map((p) => ({ x: p.services, y: p.wasm.nsPerNewConn / 1000, measured: true })),
    },
    ...(proxyResults.length
      ? [
          {
            name: "wasmvs proxy (proxy CPU)",
            color: "#8c564b",
            points: proxyResults.map((p) => ({ x: p.services, y: p.last.proxyCpuUsPerConn, measured: true })),
          },
        ]
      : []),
    ...(packetResults.length
      ? [
          {
            name: "wasmvs packet mode (proxy + connector CPU)",
            color: "#bcbd22",
            points: packetResults.map((k) => ({
              x: k.services,
              y: k.last.proxyCpuUsPerConn + k.last.clientCpuUsPerConn,
              measured: true,
            })),
          },
        ]
      : []),
    ...(vmResults.length
      ? [
          {
            name: "ipvs [VM-only]",
            color: COLORS.ipvs,
            points: vmResults.map((v) => ({ x: v.services, y: v.ipvs.last.cpu.usPerConn, measured: true })),
          },
          {
            name: "iptables-legacy [VM-only]",
            color: "#e377c2",
            points: vmResults.map((v) => ({ x: v.services, y: v.iptables.last.cpu.usPerConn, measured: true })),
          },
        ]
      : []),
  ],
});
svgs["sync.svg"] = lineChartSvg({
  title: "Full sync time vs Services",
  subtitle: "restore of kube-proxy's whole ruleset into an empty namespace",
  xLabel: "Services",
  yLabel: "full sync (ms)",
  series: [
    ...seriesFor(
      (m) => m.syncMs,
      (r) => r.syncMs,
    ),
    ...(vmResults.length
      ? [
          {
            name: "ipvs ipvsadm -R [VM-only]",
            color: COLORS.ipvs,
            points: vmResults.map((v) => ({ x: v.services, y: v.ipvs.syncIpvsadmMs, measured: true })),
          },
          {
            name: "ipvs wasmvs Reconciler [VM-only]",
            color: "#17becf",
            points: vmResults.map((v) => ({ x: v.services, y: v.ipvs.syncReconcilerMs, measured: true })),
          },
          {
            name: "iptables-legacy [VM-only]",
            color: "#e377c2",
            points: vmResults.map((v) => ({ x: v.services, y: v.iptables.syncMs, measured: true })),
          },
        ]
      : []),
  ],
});
svgs["incremental.svg"] = lineChartSvg({
  title: "+1 Service (kube-proxy's partial sync) vs Services",
  xLabel: "Services",
  yLabel: "time (ms)",
  series: [
    ...seriesFor(
      (m) => m.incrementalMs,
      (r) => r.incrementalMs,
    ),
    ...(vmResults.length
      ? [
          {
            name: "ipvs ipvsadm -R [VM-only]",
            color: COLORS.ipvs,
            points: vmResults.map((v) => ({ x: v.services, y: v.ipvs.incIpvsadmMs, measured: true })),
          },
          {
            name: "ipvs wasmvs Reconciler [VM-only]",
            color: "#17becf",
            points: vmResults.map((v) => ({ x: v.services, y: v.ipvs.incReconcilerMs, measured: true })),
          },
        ]
      : []),
  ],
  refs: [
    { x: 10000, y: 141, label: "nftables PR: +1 Service at 10k 141 ms" },
    { x: 5000, y: 660000, label: "Huawei 2017: +1 rule at 5k 11 min" },
  ],
});

const json = {
  meta: {
    date: new Date().toISOString(),
    durationS: (performance.now() - t0) / 1000,
    full,
    services,
    endpoints,
    modes,
    simServices: simN,
    simConnections: simConns,
    node: process.version,
    kernel: release(),
    kubeProxyVersion,
    cpu: cpus()[0]?.model,
    cores: cpus().length,
    memGiB: Math.round(totalmem() / 2 ** 30),
    hostSkipped: hostSkip || null,
    connector: hostSkip ? null : connector().kind,
    command: cmdFor(argv.join(" ")),
    packetSkipped: packetSkip || null,
    ipvs: { measuredOnHost: modes.includes("ipvs"), skipped: ipvsSkip || null },
    hostFailures,
    vm: vmWanted
      ? {
          services: vmServices,
          skipped: vmSkip || null,
          error: vmError,
          note: "VM figures: Linux 6.1 under qemu TCG; comparable only with other VM figures",
        }
      : { skipped: "not requested (--vm or --full)" },
  },
  host: hostResults.map((r) => ({ ...r, lock: r.lock && { ...r.lock } })),
  wasmvs: wasmPerN,
  proxy: proxyResults,
  proxyFailures,
  packet: packetResults,
  packetFailures,
  vm: vmResults,
  calibration,
  checks,
  sim,
};
writeFileSync(
  join(outDir, "scaling.json"),
  JSON.stringify(json, (_k, v) => (v instanceof Uint32Array ? undefined : v), 2) + "\n",
);
writeFileSync(join(outDir, "calibration.json"), JSON.stringify(calibration, null, 2) + "\n");
for (const [n, s] of Object.entries(svgs)) writeFileSync(join(outDir, n), s + "\n");
const { summaryMarkdown } = await import("./scaling/summary.ts");
writeFileSync(
  join(outDir, "summary.md"),
  summaryMarkdown({
    hostResults,
    hostFailures,
    ipvsSkip,
    proxyResults,
    proxyFailures,
    packetResults,
    packetFailures,
    packetSkip,
    vmResults,
    vmError,
    vmServices: vmWanted ? vmServices : [],
    sim,
    checks,
    calibration,
    wasmPerN,
    services,
    endpoints,
    full,
    hostSkip,
    command: cmdFor(argv.join(" ")),
    svgs: Object.keys(svgs),
  }),
);
const written = [
  join(outDir, "scaling.json"),
  join(outDir, "calibration.json"),
  join(outDir, "summary.md"),
  ...Object.keys(svgs).map((n) => join(outDir, n)),
];
console.log(`\nwrote ${written.map((f) => relative(process.cwd(), f)).join(", ")}  (${el()})`);
void existsSync;
void readFileSync;
if (hostFailures.length) process.exitCode = 1;
