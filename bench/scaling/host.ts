// Host-kernel measurements of kube-proxy's iptables mode (legacy and nft backends) and nftables mode, in a
// namespace topology made for each (mode, N) and deleted after (netns.ts).
//
// For one mode and one cluster: connects with no rules (baseline), the full sync (restore of the whole
// ruleset into the empty node namespace), the rules counted back, timed connects interleaved over the first
// and the last Service in KUBE-SERVICES order and a pod IP with no Service, CPU per connection from the
// connector's own getrusage (the first packet's netfilter work runs in its connect() system call: veth
// delivers in the sender's softirq), the backends' tally of which endpoint got each connection, the
// incremental change (+1 Service as kube-proxy's partial sync writes it), and for iptables modes the
// xtables lock test: the full restore again while a second writer adds rules with `-w 5`.
import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { Topology, nsOk, nsRun, connectFrom, privateLock } from "./netns.ts";
import { iptablesPartial, nftPartial, type ScalingCluster } from "../../src/sim/cluster.ts";
import type { ServiceTarget } from "../../src/sim/iptables.ts";
import type { IpvsDetail } from "./ipvs.ts";

export type HostMode = "iptables-legacy" | "iptables-nft" | "nftables" | "ipvs";
/** The rule-based modes, always measured; "ipvs" (ipvs.ts) joins them when the kernel has IPVS. */
export const HOST_MODES: HostMode[] = ["iptables-legacy", "iptables-nft", "nftables"];
export const ALL_HOST_MODES: HostMode[] = [...HOST_MODES, "ipvs"];

export interface LatStat {
  n: number;
  p50: number;
  p90: number;
  p99: number;
  mean: number;
} // µs
export interface CpuStat {
  conns: number;
  usPerConn: number;
  userUs: number;
  sysUs: number;
  wallUs: number;
}
export interface LockStat {
  writers: number;
  failed: number;
  waitP50Ms: number;
  waitMaxMs: number;
  bigRestoreMs: number;
  waits: number[];
  starved: boolean;
  writersStoppedAtMs: number;
}

export interface HostResult {
  mode: HostMode;
  services: number;
  endpoints: number;
  rules: { expected: number; counted: number; what: string };
  syncMs: number;
  incrementalMs: number;
  incrementalLines: number;
  first: ServiceTarget & { lat: LatStat; cpu: CpuStat };
  last: ServiceTarget & { lat: LatStat; cpu: CpuStat };
  pod: { target: string; lat: LatStat };
  baseline: { lat: LatStat; cpu: CpuStat };
  perRuleNs: number; // (last - first p50) / (position difference)
  backends: Record<string, number>;
  translated: { first: number; last: number }; // connections the backends saw on those Services' endpoints
  lock?: LockStat;
  load: number[];
  ipvs?: IpvsDetail; // IPVS mode only
}

export interface HostOptions {
  connects: number;
  cpuConnects: number;
  lock: boolean;
  log?: (s: string) => void;
}

export function latStat(ns: number[]): LatStat {
  const s = Float64Array.from(ns).sort();
  const q = (p: number) => (s.length ? s[Math.min(s.length - 1, Math.floor(p * s.length))] / 1000 : NaN);
  return {
    n: s.length,
    p50: q(0.5),
    p90: q(0.9),
    p99: q(0.99),
    mean: s.length ? s.reduce((a, b) => a + b, 0) / s.length / 1000 : NaN,
  };
}

function loadavg(): number[] {
  try {
    return readFileSync("/proc/loadavg", "utf8").split(" ").slice(0, 3).map(Number);
  } catch {
    return [];
  }
}

const countRe = (text: string, re: RegExp) => (text.match(re) ?? []).length;

function restoreCmd(mode: HostMode): string[] {
  return mode === "nftables"
    ? ["nft", "-f", "-"]
    : [`iptables-${mode === "iptables-legacy" ? "legacy" : "nft"}-restore`, "-w", "5", "--noflush"];
}

function countRules(ns: string, mode: HostMode): number {
  if (mode === "nftables")
    return countRe(nsOk(ns, ["nft", "-j", "list", "table", "ip", "kube-proxy"]).stdout, /\{"rule": \{/g);
  const save = `iptables-${mode === "iptables-legacy" ? "legacy" : "nft"}-save`;
  return countRe(nsOk(ns, [save]).stdout, /^-A /gm);
}

function cpuOf(r: { userUs: number; sysUs: number; wallUs: number }, conns: number): CpuStat {
  return { conns, usPerConn: (r.userUs + r.sysUs) / conns, userUs: r.userUs, sysUs: r.sysUs, wallUs: r.wallUs };
}

export async function measureHost(
  mode: HostMode,
  c: ScalingCluster,
  next: ScalingCluster,
  o: HostOptions,
): Promise<HostResult> {
  if (mode === "ipvs") return (await import("./ipvs.ts")).measureIpvs(c, next, o);
  const log = o.log ?? (() => {});
  const env = privateLock();
  const first = c.targets[0],
    last = c.targets[c.targets.length - 1];
  // an address in the pod range that no Service points at (the backend namespace answers the whole range)
  const podTarget = `10.255.255.254:${first.endpoints[0].split(":")[1]}`;
  const topo = new Topology(mode === "iptables-legacy" ? "L" : mode === "iptables-nft" ? "N" : "F").create();
  try {
    const ports = [...first.endpoints, ...last.endpoints].map((e) => Number(e.split(":")[1]));
    await topo.startBackends(ports);
    const load = loadavg();
    // baseline: no rules at all in the node namespace
    nsOk(topo.client, ["true"]);
    connectFrom(topo.client, 20, [podTarget]); // ARP, route caches, warm-up
    const base = connectFrom(topo.client, o.connects, [podTarget]);
    const baseCpu = connectFrom(topo.client, o.cpuConnects, [podTarget]);
    if (base.fails)
      throw new Error(`${base.fails} baseline connects to ${podTarget} failed (errno ${base.errors.slice(0, 3)})`);
    // full sync
    log(`${mode} ${c.services}: full sync`);
    const text = mode === "nftables" ? c.nft.text : c.iptables.install;
    const sync = nsRun(topo.node, restoreCmd(mode), text, env);
    if (sync.status !== 0)
      throw new Error(`${mode} full sync refused (exit ${sync.status}): ${sync.stderr.slice(0, 1000)}`);
    const expected =
      mode === "nftables" ? c.nft.rules : c.iptables.natRules + c.iptables.filterRules + c.iptables.jumps;
    log(`${mode} ${c.services}: synced in ${(sync.ms / 1000).toFixed(2)} s; counting rules`);
    const counted = countRules(topo.node, mode);
    // connects, interleaved so drift hits all targets alike
    log(`${mode} ${c.services}: ${o.connects} connects × 3 targets`);
    const tg = [`${first.vip}:${first.port}`, `${last.vip}:${last.port}`, podTarget];
    connectFrom(topo.client, 30, tg);
    const run = connectFrom(topo.client, o.connects * 3, tg);
    if (run.fails)
      throw new Error(
        `${run.fails} of ${o.connects * 3} connects failed (errno ${[...new Set(run.errors)].join(",")})`,
      );
    const cpuFirst = connectFrom(topo.client, o.cpuConnects, [tg[0]]);
    const cpuLast = connectFrom(topo.client, o.cpuConnects, [tg[1]]);
    log(`${mode} ${c.services}: stopping backends`);
    const backends = await topo.stopBackends();
    const seen = (t: ServiceTarget) => t.endpoints.reduce((n, e) => n + (backends[e] ?? 0), 0);
    // incremental: +1 Service, as kube-proxy's partial sync writes it
    const partial =
      mode === "nftables"
        ? nftPartial(c.nft.text, next.nft.text)
        : iptablesPartial(c.iptables.install, next.iptables.install);
    log(`${mode} ${c.services}: incremental change`);
    const inc = nsRun(topo.node, restoreCmd(mode), partial, env);
    if (inc.status !== 0) throw new Error(`${mode} incremental change refused: ${inc.stderr.slice(0, 800)}`);
    // the xtables lock
    let lock: LockStat | undefined;
    if (o.lock && mode !== "nftables")
      lock = await lockTest(topo, mode, text, env, log, c.services, Math.max(5000, 3 * sync.ms));
    const fl = latStat(run.lat[0]),
      ll = latStat(run.lat[1]);
    return {
      mode,
      services: c.services,
      endpoints: c.endpoints,
      rules: {
        expected,
        counted,
        what:
          mode === "nftables"
            ? "nft rules in table ip kube-proxy"
            : "iptables rules (nat + filter, with the jump rules)",
      },
      syncMs: sync.ms,
      incrementalMs: inc.ms,
      incrementalLines: partial.split("\n").length - 1,
      first: { ...first, lat: fl, cpu: cpuOf(cpuFirst, o.cpuConnects) },
      last: { ...last, lat: ll, cpu: cpuOf(cpuLast, o.cpuConnects) },
      pod: { target: podTarget, lat: latStat(run.lat[2]) },
      baseline: { lat: latStat(base.lat[0]), cpu: cpuOf(baseCpu, o.cpuConnects) },
      perRuleNs: ((ll.p50 - fl.p50) * 1000) / Math.max(1, last.position - first.position),
      backends,
      translated: { first: seen(first), last: seen(last) },
      lock,
      load,
    };
  } finally {
    log(`${mode} ${c.services}: deleting namespaces`);
    topo.destroy();
  }
}

async function lockTest(
  topo: Topology,
  mode: HostMode,
  text: string,
  env: Record<string, string>,
  log: (s: string) => void,
  n: number,
  budgetMs: number,
): Promise<LockStat> {
  const bin = `iptables-${mode === "iptables-legacy" ? "legacy" : "nft"}`;
  nsOk(topo.node, [bin, "-w", "5", "-t", "filter", "-N", "WASMVS-LOCK"], undefined, env);
  log(`${mode} ${n}: xtables lock: full restore while a second writer adds rules with -w 5`);
  const t0 = performance.now();
  const big = spawn("ip", ["netns", "exec", topo.node, ...restoreCmd(mode)], {
    stdio: ["pipe", "ignore", "ignore"],
    env: { ...process.env, ...env },
  });
  let bigDone = false,
    bigMs = 0;
  const done = new Promise<void>((res) =>
    big.on("exit", () => {
      bigDone = true;
      bigMs = performance.now() - t0;
      res();
    }),
  );
  big.stdin!.end(text);
  const waits: number[] = [];
  let failed = 0;
  await new Promise((r) => setTimeout(r, 20));
  // the writers stop after budgetMs: with the nft backend, every small commit changes the ruleset's
  // generation and iptables-nft-restore starts its whole transaction again, so writers can starve it
  while (!bigDone && performance.now() - t0 < budgetMs) {
    const w = await new Promise<{ ms: number; code: number }>((res) => {
      const s = performance.now();
      const p = spawn(
        "ip",
        ["netns", "exec", topo.node, bin, "-w", "5", "-t", "filter", "-A", "WASMVS-LOCK", "-j", "RETURN"],
        { stdio: "ignore", env: { ...process.env, ...env } },
      );
      p.on("exit", (code) => res({ ms: performance.now() - s, code: code ?? -1 }));
    });
    waits.push(w.ms);
    if (w.code !== 0) failed++;
    await new Promise((r) => setTimeout(r, 25));
  }
  const writersStoppedAtMs = performance.now() - t0,
    starved = !bigDone;
  await done;
  const s = [...waits].sort((a, b) => a - b);
  return {
    writers: waits.length,
    failed,
    waitP50Ms: s[Math.floor(s.length / 2)] ?? 0,
    waitMaxMs: s[s.length - 1] ?? 0,
    bigRestoreMs: bigMs,
    waits,
    starved,
    writersStoppedAtMs,
  };
}
