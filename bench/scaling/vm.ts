// kube-proxy's IPVS mode measured inside ../shared/ipvs-vm (Linux 6.1 with IPVS under qemu TCG: several
// times slower than the host, so these figures are comparable only with each other — the same run measures
// iptables mode the same way inside the same VM for that reason).
//
//   host:   measureVm([1000, 5000], 2)  boots the VM once, runs `node --import tsx bench/scaling/vm.ts --inside ...`
//   inside: per N, the host's topology made again inside the VM (netns.ts: client → node → backends over veth),
//           with the connector in Node (connector.mjs: the VM has no C compiler):
//     - full sync by `ipvsadm -R` of the virtual services into a fresh namespace, and by wasmvs's Reconciler
//       (src/kernel, generic netlink) in a child process inside the node namespace; +1 Service both ways
//       (`ipvsadm -R` of the new lines; Reconciler.update([the new virtual services]))
//     - the rest of IPVS mode's sync into the node namespace: kube-ipvs0 with every bound address
//       (`ip -batch`), `ipset restore`, `iptables-legacy-restore --noflush` of the rules IPVS mode writes
//     - virtual services, real servers, ipset entries and iptables rules counted back
//     - connects (first packet: connect() returns) from the client namespace to the first and the last
//       Service and a pod IP with no Service, through IPVS (NAT to the backends' namespace); the backends'
//       tally proves translation
//     - iptables mode (iptables-legacy-restore of the same cluster's rules) in a second topology, the same connects
import { spawn, spawnSync, execFileSync } from "node:child_process";
import { existsSync, mkdirSync, readdirSync, readFileSync, realpathSync, rmSync, writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import type { VirtualService } from "../../src/model/types.ts";
import type { ServiceTarget } from "../../src/sim/iptables.ts";
import type { LatStat, CpuStat } from "./host.ts";
import { connector } from "./netns.ts";
import { scalingCluster } from "../../src/sim/cluster.ts";

const root = fileURLToPath(new URL("../..", import.meta.url));
// Under software emulation the backends' node process can still be working through its accept queue when
// the connects end; 3 s was once not enough and its tally (the proof that NAT happened) came back empty.
const BACKEND_GRACE_MS = 20_000;
export const VM_SCRIPT = `${root}/../shared/ipvs-vm/ipvs-vm.sh`;

export interface VmModeResult {
  first: ServiceTarget & { lat: LatStat; cpu: CpuStat };
  last: ServiceTarget & { lat: LatStat; cpu: CpuStat };
  pod: { target: string; lat: LatStat };
  // connections the backends accepted on the endpoints (a lower bound under TCG: connections reset before the backend
  // accepts are not counted)
  translated: { first: number; last: number };
}
export interface VmResult {
  services: number;
  endpoints: number;
  kernel: string;
  connector: "c" | "node";
  ipvs: VmModeResult & {
    virtualServices: number;
    realServers: number;
    ipvsConns: { first: number; last: number }; // IPVS's Conns counter of the first and last Service after the connects
    counted: { services: number; realServers: number; ipsetEntries: number; iptablesRules: number; boundAddrs: number };
    expected: {
      services: number;
      realServers: number;
      ipsetEntries: number;
      iptablesRules: number;
      boundAddrs: number;
    };
    syncIpvsadmMs: number;
    syncReconcilerMs: number;
    reconcilerMessages: number;
    incIpvsadmMs: number;
    incReconcilerMs: number;
    incServices: number;
    bindMs: number;
    ipsetMs: number;
    iptablesMs: number;
  };
  iptables: VmModeResult & { syncMs: number; rules: { counted: number; expected: number } };
  baseline: { lat: LatStat };
}

/** `ipvsadm -R` input for virtual services. */
export function ipvsadmText(vss: VirtualService[]): string {
  const L: string[] = [];
  for (const s of vss) {
    const sw = s.protocol === "udp" ? "-u" : s.protocol === "sctp" ? "--sctp-service" : "-t";
    const key = `${sw} ${s.addr}:${s.port}`;
    L.push(
      `-A ${key} -s ${s.scheduler}` +
        `${s.persistent !== undefined ? ` -p ${s.persistent}` + `${s.netmask ? ` -M ${s.netmask}` : ""}` : ""}`,
    );
    for (const r of s.realServers) L.push(`-a ${key} -r ${r.addr}:${r.port} -m -w ${r.weight}`);
  }
  return L.join("\n") + "\n";
}

// ---------------------------------------------------------------------------------------------------
// On the host

/** A private VM cache, seeded from the shared one (hard links) so the kernel and initramfs are not rebuilt. */
export function vmEnv(dir = process.env.IPVSVM_SCALING_DIR ?? "/tmp/ipvsvm-scale2"): NodeJS.ProcessEnv {
  if (!existsSync(dir)) {
    mkdirSync(dir, { recursive: true });
    if (existsSync("/tmp/ipvsvm"))
      for (const f of readdirSync("/tmp/ipvsvm")) {
        if (f === ".lock" || f.startsWith("run.") || f === "console.log") continue;
        try {
          execFileSync("cp", ["-al", `/tmp/ipvsvm/${f}`, dir]);
        } catch {
          /* a fresh cache then */
        }
      }
  }
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    IPVSVM_DIR: dir,
    IPVSVM_SHARE: root,
    IPVSVM_MEM: process.env.IPVSVM_MEM ?? "2048",
    IPVSVM_TIMEOUT: process.env.IPVSVM_TIMEOUT ?? "1500",
  };
  delete env.IPVSVM_MODULES; // the default list: IPVS, ipset, iptables (both), veth, dummy
  return env;
}

export function vmSkipReason(): string {
  if (!existsSync(VM_SCRIPT)) return `${VM_SCRIPT} is missing`;
  if (process.getuid?.() !== 0) return "not root (the VM script installs qemu with apt-get on first use)";
  return "";
}

/** The project's node_modules inside the VM at its real path, read-only over a second 9p device: in a git
 * worktree node_modules is a symlink out of the shared directory, and tsx would not be found there. */
export function modulesMount(): { qemu: string; mount: string } {
  const modules = realpathSync(`${root}/node_modules`);
  return {
    qemu:
      `-fsdev local,id=wvsm,path=${modules},security_model=none,readonly=on -device ` +
      `virtio-9p-pci,fsdev=wvsm,mount_tag=wvsmods`,
    mount:
      `mkdir -p ${modules} && mount -t 9p -o trans=virtio,version=9p2000.L,msize=512000,cache=loose,ro ` +
      `wvsmods ${modules} && `,
  };
}

/** What the VM needs for one N, generated on the host (the generator under TCG takes ~17 s per 1k Services). */
export interface VmInput {
  services: number;
  endpoints: number;
  vss: VirtualService[];
  added: VirtualService[];
  expectedAfterInc: number;
  bindAddrs: string[];
  ipsetRestore: string;
  ipsetEntries: number;
  ipvsIptables: string;
  sysctls: Record<string, number>;
  iptablesInstall: string;
  iptablesExpected: number;
  first: ServiceTarget;
  last: ServiceTarget;
}

export function vmInput(n: number, endpoints: number): VmInput {
  const c = scalingCluster(n, endpoints, 1, { nft: false }),
    next = scalingCluster(n + 1, endpoints, 1, { nft: false });
  const st = c.mapped.index.ipvsState("IPv4"),
    stNext = next.mapped.index.ipvsState("IPv4");
  const key = (s: VirtualService) => `${s.protocol} ${s.addr}:${s.port}`;
  const have = new Set(st.services.map(key));
  return {
    services: n,
    endpoints,
    vss: st.services,
    added: stNext.services.filter((s) => !have.has(key(s))),
    expectedAfterInc: stNext.services.length,
    bindAddrs: st.bindAddrs,
    ipsetRestore: st.ipsetRestore,
    ipsetEntries: st.ipsets.reduce((k, s) => k + s.entries.length, 0),
    ipvsIptables: st.iptablesInstall,
    sysctls: c.mapped.index.sysctls(),
    iptablesInstall: c.iptables.install,
    iptablesExpected: c.iptables.natRules + c.iptables.filterRules + c.iptables.jumps,
    first: c.targets[0],
    last: c.targets[c.targets.length - 1],
  };
}

export async function measureVm(
  services: number[],
  endpoints: number,
  o: { connects: number; cpuConnects: number; log?: (s: string) => void },
): Promise<VmResult[]> {
  const log = o.log ?? (() => {});
  // the inputs go through the shared project directory (read-only in the VM), removed afterwards
  const dataDir = `${root}/bench/scaling/.vm-input-${process.pid}`;
  mkdirSync(dataDir, { recursive: true });
  const cleanup = () => rmSync(dataDir, { recursive: true, force: true });
  process.once("exit", cleanup); // also on SIGINT/SIGTERM (the topology's handlers exit)
  try {
    for (const n of services)
      writeFileSync(
        `${dataDir}/${n}.json`,
        JSON.stringify(vmInput(n, endpoints), (_k, v) => (v instanceof Uint32Array ? undefined : v)),
      );
    return await runVm(services, endpoints, dataDir, o, log);
  } finally {
    cleanup();
    process.removeListener("exit", cleanup);
  }
}

async function runVm(
  services: number[],
  endpoints: number,
  dataDir: string,
  o: { connects: number; cpuConnects: number },
  log: (s: string) => void,
): Promise<VmResult[]> {
  // the compiled connector travels in the command (base64, ~23 KB): the VM has no C compiler, and the Node
  // connector's event loop costs milliseconds per connect under TCG, which would drown the figures
  const conn = connector();
  const ship =
    conn.kind === "c"
      ? `mkdir -p /tmp/wasmvs-scaling && echo ${readFileSync(conn.cmd[0]).toString("base64")} | base64 -d > ` +
        `${conn.cmd[0]} && chmod +x ${conn.cmd[0]} && `
      : "";
  const cmd =
    `${modulesMount().mount}${ship}node --import tsx bench/scaling/vm.ts --inside --data=${dataDir} ` +
    `--services=${services.join(",")} --endpoints=${endpoints} --connects=${o.connects} --cpu-connects=` +
    `${o.cpuConnects}`;
  const { code, stdout } = await new Promise<{ code: number; stdout: string }>((resolve) => {
    const env = vmEnv();
    env.IPVSVM_QEMU_EXTRA = `${env.IPVSVM_QEMU_EXTRA ?? ""} ${modulesMount().qemu}`.trim();
    const p = spawn(VM_SCRIPT, [cmd], { env, stdio: ["ignore", "pipe", "pipe"] });
    let out = "",
      buf = "";
    p.stdout.setEncoding("utf8");
    p.stderr.setEncoding("utf8");
    p.stdout.on("data", (d: string) => {
      out += d;
      buf += d;
      let i: number;
      while ((i = buf.indexOf("\n")) >= 0) {
        const l = buf.slice(0, i);
        buf = buf.slice(i + 1);
        if (l.startsWith("@@LOG ")) log(`VM: ${l.slice(6)}`);
      }
    });
    let err = "";
    p.stderr.on("data", (d: string) => {
      err += d;
    });
    p.on("exit", (c) => resolve({ code: c ?? 125, stdout: out + (c ? `\n${err.slice(-2000)}` : "") }));
  });
  const line = stdout.split("\n").find((l) => l.startsWith("@@RESULT "));
  if (code !== 0 || !line) throw new Error(`the IPVS VM run failed (exit ${code}): ${stdout.slice(-3000)}`);
  return JSON.parse(line.slice(9)) as VmResult[];
}

// ---------------------------------------------------------------------------------------------------
// Inside the VM

const vlog = (s: string) => process.stdout.write(`@@LOG ${s}\n`);

type NetnsTools = typeof import("./netns.ts");
type HostTools = typeof import("./host.ts");
type ConnectRun = ReturnType<NetnsTools["connectFrom"]>;

/** One N's run inside the VM: its input, the targets and the tools every step uses. */
interface VmRun {
  n: number;
  d: VmInput;
  connects: number;
  cpuConnects: number;
  podTarget: string;
  /** the backends' ports */
  ports: number[];
  net: NetnsTools;
  latStat: HostTools["latStat"];
}

async function inside(argv: string[]): Promise<void> {
  const opt = (n: string) => argv.find((a) => a.startsWith(`--${n}=`))?.slice(n.length + 3);
  const services = (opt("services") ?? "20").split(",").map(Number);
  const endpoints = Number(opt("endpoints") ?? 2),
    connects = Number(opt("connects") ?? 200);
  const cpuConnects = Number(opt("cpu-connects") ?? 200);
  const net = await import("./netns.ts");
  const { latStat } = await import("./host.ts");
  const kernel = execFileSync("uname", ["-r"], { encoding: "utf8" }).trim();
  const kind = connector().kind;
  const which =
    kind === "c" ? "connector.c (compiled on the host)" : "connector.mjs (Node: adds its event loop to every figure)";
  vlog(`connector: ${which}`);
  const results: VmResult[] = [];
  for (const n of services) {
    const t0 = performance.now();
    const d = JSON.parse(readFileSync(`${opt("data")}/${n}.json`, "utf8")) as VmInput;
    vlog(
      `${n}: ${d.vss.length} virtual services, ${d.bindAddrs.length} bound addresses, ` +
        `+1 Service = ${d.added.length} virtual services`,
    );
    const run: VmRun = {
      n,
      d,
      connects,
      cpuConnects,
      net,
      latStat,
      podTarget: `10.255.255.254:${d.first.endpoints[0].split(":")[1]}`,
      ports: [...d.first.endpoints, ...d.last.endpoints].map((e) => Number(e.split(":")[1])),
    };
    const restore = ipvsadmRestore(run);
    const { ipvs, baseline } = await ipvsModeInVm(run, restore);
    const iptables = await iptablesModeInVm(run);
    results.push({ services: n, endpoints, kernel, connector: connector().kind, ipvs, iptables, baseline });
    const p50s = (r: VmModeResult) => `${r.first.lat.p50.toFixed(0)}/${r.last.lat.p50.toFixed(0)} µs`;
    const took = ((performance.now() - t0) / 1000).toFixed(0);
    vlog(`${n}: done in ${took} s: IPVS first/last p50 ${p50s(ipvs)}, iptables ${p50s(iptables)}`);
  }
  process.stdout.write(`@@RESULT ${JSON.stringify(results, (_k, v) => (v instanceof Uint32Array ? undefined : v))}\n`);
}

/** The timed connects to the first and last Service and the pod IP, then a burst to each Service for CPU. */
function vmConnects(
  run: VmRun,
  topo: InstanceType<NetnsTools["Topology"]>,
): { run: ConnectRun; cf: ConnectRun; cl: ConnectRun } {
  const { connectFrom } = run.net;
  const { first, last } = run.d;
  const tg = [`${first.vip}:${first.port}`, `${last.vip}:${last.port}`, run.podTarget];
  connectFrom(topo.client, 15, tg);
  const all = connectFrom(topo.client, run.connects * 3, tg);
  if (all.fails) {
    const errnos = [...new Set(all.errors)].join(",");
    throw new Error(`${all.fails} of ${run.connects * 3} connects failed (errno ${errnos})`);
  }
  const cf = connectFrom(topo.client, run.cpuConnects, [tg[0]]);
  const cl = connectFrom(topo.client, run.cpuConnects, [tg[1]]);
  return { run: all, cf, cl };
}

/** Latencies, CPU per connection, and the backends' tally on each Service's endpoints. */
function vmModeResult(run: VmRun, m: ReturnType<typeof vmConnects>, backends: Record<string, number>): VmModeResult {
  const { first, last } = run.d;
  const { latStat, cpuConnects, podTarget } = run;
  const cpuOf = (r: { userUs: number; sysUs: number; wallUs: number }, n: number): CpuStat => ({
    conns: n,
    usPerConn: (r.userUs + r.sysUs) / n,
    userUs: r.userUs,
    sysUs: r.sysUs,
    wallUs: r.wallUs,
  });
  const seen = (t: ServiceTarget) => t.endpoints.reduce((k, e) => k + (backends[e] ?? 0), 0);
  return {
    first: { ...first, lat: latStat(m.run.lat[0]), cpu: cpuOf(m.cf, cpuConnects) },
    last: { ...last, lat: latStat(m.run.lat[1]), cpu: cpuOf(m.cl, cpuConnects) },
    pod: { target: podTarget, lat: latStat(m.run.lat[2]) },
    translated: { first: seen(first), last: seen(last) },
  };
}

/** Full sync and +1 Service by `ipvsadm -R` into a namespace of their own. */
function ipvsadmRestore(run: VmRun): { fullMs: number; incMs: number } {
  const { nsOk, nsRun } = run.net;
  const save = ipvsadmText(run.d.vss),
    addedText = ipvsadmText(run.d.added);
  const rns = `wvsR${run.n}`;
  execFileSync("ip", ["netns", "add", rns]);
  nsOk(rns, ["ip", "link", "set", "lo", "up"]);
  const rR = nsRun(rns, ["ipvsadm", "-R"], save);
  if (rR.status !== 0) throw new Error(`ipvsadm -R failed: ${rR.stderr.slice(0, 800)}`);
  const rInc = nsRun(rns, ["ipvsadm", "-R"], addedText);
  if (rInc.status !== 0) throw new Error(`ipvsadm -R (+1 Service) failed: ${rInc.stderr.slice(0, 800)}`);
  spawnSync("ip", ["netns", "del", rns]);
  vlog(`${run.n}: ipvsadm -R ${(rR.ms / 1000).toFixed(2)} s, +1 Service ${rInc.ms.toFixed(0)} ms`);
  return { fullMs: rR.ms, incMs: rInc.ms };
}

/** IPVS mode in a topology: the Reconciler's sync, kube-ipvs0, ipsets and iptables, counted back, then connects. */
async function ipvsModeInVm(
  run: VmRun,
  restore: { fullMs: number; incMs: number },
): Promise<{ ipvs: VmResult["ipvs"]; baseline: VmResult["baseline"] }> {
  const { Topology, nsOk, nsRun, connectFrom } = run.net;
  const { d, podTarget } = run;
  const { first, last } = d;
  const topo = new Topology("V").create();
  try {
    await topo.startBackends(run.ports);
    connectFrom(topo.client, 15, [podTarget]);
    const baseline = { lat: run.latStat(connectFrom(topo.client, run.connects, [podTarget]).lat[0]) };
    nsOk(topo.node, ["sysctl", "-qw", ...Object.entries(d.sysctls).map(([k, v]) => `${k.replace(/\//g, ".")}=${v}`)]);
    const rc = reconcileInNode(run, topo.node);
    // the rest of IPVS mode's sync: kube-ipvs0, ipsets, iptables
    nsOk(topo.node, ["ip", "link", "add", "kube-ipvs0", "type", "dummy"]);
    const addrs = d.bindAddrs.map((a) => `addr add ${a}/32 dev kube-ipvs0`).join("\n") + "\n";
    const bind = nsRun(topo.node, ["ip", "-batch", "-"], addrs);
    if (bind.status !== 0) throw new Error(`binding addresses failed: ${bind.stderr.slice(0, 800)}`);
    const ips = nsRun(topo.node, ["ipset", "restore"], d.ipsetRestore);
    if (ips.status !== 0) throw new Error(`ipset restore failed: ${ips.stderr.slice(0, 800)}`);
    const ipt = nsRun(topo.node, ["iptables-legacy-restore", "-w", "5", "--noflush"], d.ipvsIptables);
    if (ipt.status !== 0) throw new Error(`iptables-legacy-restore (IPVS mode) failed: ${ipt.stderr.slice(0, 800)}`);
    const { counted, expected } = countIpvsMode(run, topo.node);
    const m = vmConnects(run, topo);
    // IPVS's own count of the connections it scheduled for each virtual service (Conns in --stats); the
    // kernel sums its per-CPU stats in the rate estimator's pass every 2 s, so wait for one
    await new Promise((r) => setTimeout(r, 2500));
    const conns = (t: ServiceTarget) => {
      const stats = nsOk(topo.node, ["ipvsadm", "-Ln", "--stats", "-t", `${t.vip}:${t.port}`]).stdout;
      return Number(
        stats
          .split("\n")
          .find((l) => l.startsWith("TCP"))
          ?.trim()
          .split(/\s+/)[2] ?? 0,
      );
    };
    const ipvsConns = { first: conns(first), last: conns(last) };
    const backends = await topo.stopBackends(BACKEND_GRACE_MS);
    const ipvs = {
      ...vmModeResult(run, m, backends),
      ipvsConns,
      virtualServices: d.vss.length,
      realServers: d.vss.reduce((k, s) => k + s.realServers.length, 0),
      counted,
      expected,
      syncIpvsadmMs: restore.fullMs,
      syncReconcilerMs: rc.fullMs,
      reconcilerMessages: rc.messages,
      incIpvsadmMs: restore.incMs,
      incReconcilerMs: rc.incMs,
      incServices: d.added.length,
      bindMs: bind.ms,
      ipsetMs: ips.ms,
      iptablesMs: ipt.ms,
    };
    return { ipvs, baseline };
  } finally {
    topo.destroy();
  }
}

/** The Reconciler, in a child process inside the node namespace (it works on the namespace it runs in). */
function reconcileInNode(run: VmRun, node: string): { fullMs: number; messages: number; incMs: number } {
  const file = `/tmp/wvs-desired-${run.n}.json`;
  writeFileSync(file, JSON.stringify({ services: run.d.vss, added: run.d.added }));
  const self = fileURLToPath(import.meta.url);
  const ch = run.net.nsRun(node, [process.execPath, "--import", "tsx", self, "--reconcile", file]);
  const chLine = ch.stdout.split("\n").find((l) => l.startsWith("@@CHILD "));
  if (ch.status !== 0 || !chLine) throw new Error(`reconciler child failed (${ch.status}): ${ch.stderr.slice(-1500)}`);
  const rc = JSON.parse(chLine.slice(8)) as { fullMs: number; messages: number; incMs: number };
  vlog(
    `${run.n}: Reconciler ${(rc.fullMs / 1000).toFixed(2)} s (${rc.messages} messages), ` +
      `+1 Service ${rc.incMs.toFixed(1)} ms`,
  );
  return rc;
}

/** Virtual services, real servers, ipset entries, iptables rules and kube-ipvs0 addresses, counted back. */
function countIpvsMode(run: VmRun, node: string): Pick<VmResult["ipvs"], "counted" | "expected"> {
  const { d, n } = run;
  const count = (cmd: string) => Number(run.net.nsOk(node, ["sh", "-c", cmd]).stdout.trim());
  const counted = {
    services: count("ipvsadm -Ln | grep -cE '^(TCP|UDP|SCTP)'"),
    realServers: count("ipvsadm -Ln | grep -c -- '->.*Masq'"),
    ipsetEntries: count("ipset save | grep -c '^add'"),
    iptablesRules: count("iptables-legacy-save | grep -c '^-A'"),
    boundAddrs: count("ip -4 -o addr show dev kube-ipvs0 | wc -l"),
  };
  const expected = {
    services: d.expectedAfterInc,
    realServers: [...d.vss, ...d.added].reduce((k, s) => k + s.realServers.length, 0),
    ipsetEntries: d.ipsetEntries,
    iptablesRules: (d.ipvsIptables.match(/^-[AI] /gm) ?? []).length,
    boundAddrs: d.bindAddrs.length,
  };
  vlog(
    `${n}: IPVS mode installed: ${counted.services}/${d.expectedAfterInc} virtual services (with +1), ` +
      `${counted.ipsetEntries}/${expected.ipsetEntries} ipset entries, ` +
      `${counted.iptablesRules}/${expected.iptablesRules} iptables rules; ${run.connects} connects × 3 targets`,
  );
  return { counted, expected };
}

/** iptables mode, in a second topology of the same VM run: the same cluster's rules, the same connects. */
async function iptablesModeInVm(run: VmRun): Promise<VmResult["iptables"]> {
  const { Topology, nsOk, nsRun } = run.net;
  const topoI = new Topology("I").create();
  try {
    await topoI.startBackends(run.ports);
    const r = nsRun(topoI.node, ["iptables-legacy-restore", "-w", "5", "--noflush"], run.d.iptablesInstall);
    if (r.status !== 0) throw new Error(`iptables-legacy-restore failed: ${r.stderr.slice(0, 800)}`);
    const counted = Number(nsOk(topoI.node, ["sh", "-c", "iptables-legacy-save | grep -c '^-A'"]).stdout.trim());
    vlog(`${run.n}: iptables mode synced in ${(r.ms / 1000).toFixed(2)} s; ${run.connects} connects × 3 targets`);
    const m = vmConnects(run, topoI);
    const backends = await topoI.stopBackends(BACKEND_GRACE_MS);
    return { ...vmModeResult(run, m, backends), syncMs: r.ms, rules: { counted, expected: run.d.iptablesExpected } };
  } finally {
    topoI.destroy();
  }
}

/** In the node namespace: the Reconciler's full sync from an empty table, then +1 Service by update(). */
async function reconcileChild(file: string): Promise<void> {
  const { IpvsClient } = await import("../../src/kernel/client.ts");
  const { Reconciler } = await import("../../src/kernel/reconcile.ts");
  const d = JSON.parse(readFileSync(file, "utf8")) as { services: VirtualService[]; added: VirtualService[] };
  const client = await IpvsClient.open({ timeoutMs: 300_000 });
  // warm-up (V8 compiles the encoder and the reconciler): a few services in, then flushed; the same real
  // servers come back below, out of the kernel's trash
  const w = new Reconciler(client);
  await w.sync({ services: d.services.slice(0, 20) });
  await client.flush();
  const rec = new Reconciler(client);
  let t = performance.now();
  const rep = await rec.sync({ services: d.services });
  const fullMs = performance.now() - t;
  if (rep.failures.length)
    throw new Error(`full sync: ${rep.failures.length} failures, first: ${rep.failures[0].error}`);
  t = performance.now();
  const inc = await rec.update(d.added);
  const incMs = performance.now() - t;
  if (inc.failures.length) throw new Error(`+1 Service: ${inc.failures[0].error}`);
  const dump = await client.dump();
  client.close();
  const realServers = dump.reduce((k, s) => k + s.realServers.length, 0);
  const result = { fullMs, messages: rep.messages, incMs, services: dump.length, realServers };
  process.stdout.write(`@@CHILD ${JSON.stringify(result)}\n`);
}

const argv = process.argv.slice(2);
if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  if (argv.includes("--inside")) await inside(argv);
  else if (argv[0] === "--reconcile") await reconcileChild(argv[1]);
}
