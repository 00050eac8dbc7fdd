// kube-proxy's IPVS mode measured on the running kernel, in the same namespace topology and the same run as
// the iptables and nftables modes (host.ts), when the kernel has IPVS (almost every distribution's does).
//
// For one cluster: connects with no rules (baseline); the full sync written by the standard tools into the
// node namespace: the virtual services by wasmvs's Reconciler (generic netlink, a child process in that
// namespace), kube-ipvs0 with every bound address by `ip -batch`, `ipset restore`, `iptables-legacy-restore
// --noflush` of the rules IPVS mode writes; the same virtual services by `ipvsadm -R` into a fresh namespace
// (timed beside it); +1 Service both ways; everything counted back; timed connects to the first and the last Service
// and a pod IP, CPU per
// connection, IPVS's own Conns counter and the backends' tally (NAT happened: the backends see only the
// endpoints' addresses).
import { execFileSync, spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { writeFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { VirtualService } from "../../src/model/types.ts";
import type { ScalingCluster } from "../../src/sim/cluster.ts";
import type { ServiceTarget } from "../../src/sim/iptables.ts";
import { Topology, nsOk, nsRun, connectFrom, privateLock, have } from "./netns.ts";
import { latStat, type HostOptions, type HostResult, type CpuStat } from "./host.ts";
import { ipvsadmText } from "./vm.ts";

const vmScript = fileURLToPath(new URL("./vm.ts", import.meta.url));

export interface IpvsCounts {
  services: number;
  realServers: number;
  ipsetEntries: number;
  iptablesRules: number;
  boundAddrs: number;
}
export interface IpvsDetail {
  counted: IpvsCounts;
  expected: IpvsCounts;
  syncIpvsadmMs: number;
  syncReconcilerMs: number;
  reconcilerMessages: number;
  incIpvsadmMs: number;
  incReconcilerMs: number;
  incServices: number;
  bindMs: number;
  ipsetMs: number;
  iptablesMs: number;
  ipvsConns: { first: number; last: number }; // IPVS's Conns counter of the first and last Service
}

/** Why kube-proxy's IPVS mode cannot be measured on this kernel, or "" when it can: the "IPVS" generic
 * netlink family (the client loads ip_vs when it is missing) and the tools IPVS mode's sync uses. */
export async function ipvsSkipReason(): Promise<string> {
  if (process.getuid?.() !== 0) return "not root";
  const missing = ["ipvsadm", "ipset", "iptables-legacy-restore", "ip"].filter((c) => !have(c));
  if (missing.length) return `missing ${missing.join(", ")}`;
  const { IpvsClient } = await import("../../src/kernel/client.ts");
  try {
    const c = await IpvsClient.open({ timeoutMs: 5000 });
    c.close();
  } catch (e) {
    const m = (e as Error).message.split("\n")[0];
    return /no IPVS/.test(m)
      ? m.split("): ")[0] + (m.includes("): ") ? ")" : "")
      : `the IPVS generic netlink family: ${m}`;
  }
  return "";
}

const cpuOf = (r: { userUs: number; sysUs: number; wallUs: number }, conns: number): CpuStat => ({
  conns,
  usPerConn: (r.userUs + r.sysUs) / conns,
  userUs: r.userUs,
  sysUs: r.sysUs,
  wallUs: r.wallUs,
});

export async function measureIpvs(c: ScalingCluster, next: ScalingCluster, o: HostOptions): Promise<HostResult> {
  const log = o.log ?? (() => {});
  const env = privateLock();
  const n = c.services;
  const st = c.mapped.index.ipvsState("IPv4"),
    stNext = next.mapped.index.ipvsState("IPv4");
  const key = (s: VirtualService) => `${s.protocol} ${s.addr}:${s.port}`;
  const had = new Set(st.services.map(key));
  const added = stNext.services.filter((s) => !had.has(key(s)));
  const first = c.targets[0],
    last = c.targets[c.targets.length - 1];
  const podTarget = `10.255.255.254:${first.endpoints[0].split(":")[1]}`;
  const topo = new Topology("V").create();
  const fresh = `${topo.node.slice(0, -2)}-r`;
  const file = join(tmpdir(), `wasmvs-ipvs-desired-${process.pid}-${n}.json`);
  try {
    const ports = [...first.endpoints, ...last.endpoints].map((e) => Number(e.split(":")[1]));
    await topo.startBackends(ports);
    connectFrom(topo.client, 20, [podTarget]);
    const base = connectFrom(topo.client, o.connects, [podTarget]);
    const baseCpu = connectFrom(topo.client, o.cpuConnects, [podTarget]);
    if (base.fails)
      throw new Error(`${base.fails} baseline connects to ${podTarget} failed (errno ${base.errors.slice(0, 3)})`);

    // ipvsadm -R: full sync and +1 Service into a fresh namespace of its own
    log(`ipvs ${n}: full sync by ipvsadm -R`);
    execFileSync("ip", ["netns", "add", fresh]);
    nsOk(fresh, ["ip", "link", "set", "lo", "up"]);
    const rR = nsRun(fresh, ["ipvsadm", "-R"], ipvsadmText(st.services));
    if (rR.status !== 0)
      throw new Error(`ipvsadm -R refused the full sync (exit ${rR.status}): ${rR.stderr.slice(0, 800)}`);
    const rInc = nsRun(fresh, ["ipvsadm", "-R"], ipvsadmText(added));
    if (rInc.status !== 0) throw new Error(`ipvsadm -R refused +1 Service: ${rInc.stderr.slice(0, 800)}`);
    spawnSync("ip", ["netns", "del", fresh]);

    // wasmvs's Reconciler in the node namespace (it works on the namespace its process runs in), full sync
    // and +1 Service; that table then carries the connects, beside the rest of IPVS mode's state
    log(`ipvs ${n}: full sync by wasmvs's Reconciler, kube-ipvs0, ipset restore, iptables-legacy-restore`);
    nsOk(topo.node, [
      "sysctl",
      "-qw",
      ...Object.entries(c.mapped.index.sysctls()).map(([k, v]) => `${k.replace(/\//g, ".")}=${v}`),
    ]);
    writeFileSync(file, JSON.stringify({ services: st.services, added }));
    const ch = nsRun(topo.node, [process.execPath, "--import", "tsx", vmScript, "--reconcile", file]);
    const chLine = ch.stdout.split("\n").find((l) => l.startsWith("@@CHILD "));
    if (ch.status !== 0 || !chLine)
      throw new Error(`the Reconciler's child failed (exit ${ch.status}): ${ch.stderr.slice(-1500)}`);
    const rc = JSON.parse(chLine.slice(8)) as {
      fullMs: number;
      messages: number;
      incMs: number;
      services: number;
      realServers: number;
    };
    nsOk(topo.node, ["ip", "link", "add", "kube-ipvs0", "type", "dummy"]);
    const bind = nsRun(
      topo.node,
      ["ip", "-batch", "-"],
      st.bindAddrs.map((a) => `addr add ${a}/32 dev kube-ipvs0`).join("\n") + "\n",
    );
    if (bind.status !== 0) throw new Error(`binding the addresses to kube-ipvs0 failed: ${bind.stderr.slice(0, 800)}`);
    const ips = nsRun(topo.node, ["ipset", "restore"], st.ipsetRestore);
    if (ips.status !== 0) throw new Error(`ipset restore failed: ${ips.stderr.slice(0, 800)}`);
    const ipt = nsRun(topo.node, ["iptables-legacy-restore", "-w", "5", "--noflush"], st.iptablesInstall, env);
    if (ipt.status !== 0)
      throw new Error(`iptables-legacy-restore (IPVS mode's rules) failed: ${ipt.stderr.slice(0, 800)}`);
    const count = (cmd: string) => Number(nsOk(topo.node, ["sh", "-c", cmd], undefined, env).stdout.trim());
    const counted: IpvsCounts = {
      services: count("ipvsadm -Ln | grep -cE '^(TCP|UDP|SCTP)'"),
      realServers: count("ipvsadm -Ln | grep -c -- '->.*Masq'"),
      ipsetEntries: count("ipset save | grep -c '^add'"),
      iptablesRules: count("iptables-legacy-save | grep -c '^-A'"),
      boundAddrs: count("ip -4 -o addr show dev kube-ipvs0 | wc -l"),
    };
    const all = [...st.services, ...added];
    const expected: IpvsCounts = {
      services: all.length,
      realServers: all.reduce((k, s) => k + s.realServers.length, 0),
      ipsetEntries: st.ipsets.reduce((k, s) => k + s.entries.length, 0),
      iptablesRules: (st.iptablesInstall.match(/^-[AI] /gm) ?? []).length,
      boundAddrs: st.bindAddrs.length,
    };
    if (rc.services !== all.length)
      throw new Error(`the Reconciler left ${rc.services} virtual services, expected ${all.length}`);

    log(`ipvs ${n}: ${o.connects} connects × 3 targets`);
    const tg = [`${first.vip}:${first.port}`, `${last.vip}:${last.port}`, podTarget];
    connectFrom(topo.client, 30, tg);
    const run = connectFrom(topo.client, o.connects * 3, tg);
    if (run.fails)
      throw new Error(
        `${run.fails} of ${o.connects * 3} connects through IPVS failed (errno ${[...new Set(run.errors)].join(",")})`,
      );
    const cpuFirst = connectFrom(topo.client, o.cpuConnects, [tg[0]]);
    const cpuLast = connectFrom(topo.client, o.cpuConnects, [tg[1]]);
    // the kernel folds its per-CPU counters into Conns in the estimator's pass, every 2 s
    await new Promise((r) => setTimeout(r, 2500));
    const conns = (t: ServiceTarget) =>
      Number(
        nsOk(topo.node, ["ipvsadm", "-Ln", "--stats", "-t", `${t.vip}:${t.port}`])
          .stdout.split("\n")
          .find((l) => l.startsWith("TCP"))
          ?.trim()
          .split(/\s+/)[2] ?? 0,
      );
    const ipvsConns = { first: conns(first), last: conns(last) };
    const backends = await topo.stopBackends(
      process.env.WASMVS_BACKEND_GRACE_MS ? Number(process.env.WASMVS_BACKEND_GRACE_MS) : 3000,
    );
    const seen = (t: ServiceTarget) => t.endpoints.reduce((k, e) => k + (backends[e] ?? 0), 0);
    const fl = latStat(run.lat[0]),
      ll = latStat(run.lat[1]);
    const sum = (x: IpvsCounts) => x.services + x.realServers + x.ipsetEntries + x.iptablesRules + x.boundAddrs;
    const extraMs = bind.ms + ips.ms + ipt.ms;
    const ipvs: IpvsDetail = {
      counted,
      expected,
      syncIpvsadmMs: rR.ms,
      syncReconcilerMs: rc.fullMs,
      reconcilerMessages: rc.messages,
      incIpvsadmMs: rInc.ms,
      incReconcilerMs: rc.incMs,
      incServices: added.length,
      bindMs: bind.ms,
      ipsetMs: ips.ms,
      iptablesMs: ipt.ms,
      ipvsConns,
    };
    return {
      mode: "ipvs",
      services: n,
      endpoints: c.endpoints,
      rules: {
        expected: sum(expected),
        counted: sum(counted),
        what:
          "virtual services + real servers (after +1 Service) + ipset entries + iptables rules + kube-ipvs0 " +
          "addresses",
      },
      // the whole state IPVS mode writes, by the standard tools; the Reconciler's figure is in ipvs
      syncMs: rR.ms + extraMs,
      incrementalMs: rInc.ms,
      incrementalLines: ipvsadmText(added).split("\n").length - 1,
      first: { ...first, lat: fl, cpu: cpuOf(cpuFirst, o.cpuConnects) },
      last: { ...last, lat: ll, cpu: cpuOf(cpuLast, o.cpuConnects) },
      pod: { target: podTarget, lat: latStat(run.lat[2]) },
      baseline: { lat: latStat(base.lat[0]), cpu: cpuOf(baseCpu, o.cpuConnects) },
      perRuleNs: NaN,
      backends,
      translated: { first: seen(first), last: seen(last) },
      load: [],
      ipvs,
    };
  } finally {
    log(`ipvs ${n}: deleting namespaces`);
    spawnSync("ip", ["netns", "del", fresh], { stdio: "ignore" });
    rmSync(file, { force: true });
    topo.destroy();
  }
}
