// wasmvs userspace (socket mode) measured in the same host topology as the kernel modes:
//
//   client ns ──veth── node ns: `wasmvs proxy run -c FILE` listening on every VIP:port
//                               ──veth── backend ns
//
// The node namespace makes the whole Service CIDR local (`ip route add local 10.96.0.0/12 dev lo`) and the
// proxy adds no addresses (vipInterface: null), so N Services cost N listening sockets and no N address
// changes. The configuration is IPVS mode's virtual services of the same synthetic cluster (src/k8s's
// ipvsState). The backends send one byte on accept (BACKEND_BANNER), and the connector waits for it
// (CONNECTOR_READ): with a userspace proxy, connect() returns as soon as the node's kernel completes the
// handshake with the proxy's listening socket, before the proxy has even accepted, so the figure that
// covers the proxy's work is the time to the backend's first byte. Both are recorded, and the same
// first-byte time straight to a pod IP (no proxy) is the baseline. CPU per connection is the proxy
// process's own user+sys time (from /proc/PID/stat) over a burst, divided by the connections.
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { Topology, nsOk, nsRun, connectFrom, benchTimeFactor } from "./netns.ts";
import { latStat, type LatStat } from "./host.ts";
import { SERVICE_CIDR, SCALING_NODE, type ScalingCluster } from "../../src/sim/cluster.ts";
import type { ServiceTarget } from "../../src/sim/iptables.ts";

const root = fileURLToPath(new URL("../..", import.meta.url));

export interface ProxyResult {
  mode: "wasmvs-proxy";
  services: number;
  endpoints: number;
  virtualServices: number;
  listening: number;
  startMs: number;
  /** what bin/wasmvs.js ran: the built dist/cli, or the TypeScript sources through tsx */
  launcher: Launcher;
  first: ServiceTarget & {
    connect: LatStat;
    firstByte: LatStat;
    proxyCpuUsPerConn: number;
    clientCpuUsPerConn: number;
  };
  last: ServiceTarget & { connect: LatStat; firstByte: LatStat; proxyCpuUsPerConn: number; clientCpuUsPerConn: number };
  baseline: { target: string; connect: LatStat; firstByte: LatStat };
  backends: Record<string, number>;
  translated: { first: number; last: number };
  proxyRssMiB: number;
}

export interface ProxyOptions {
  connects: number;
  cpuConnects: number;
  log?: (s: string) => void;
}

/** The proxy's configuration for the cluster: IPVS mode's virtual services (TCP and UDP), as JSON. */
export function proxyConfig(c: ScalingCluster): { text: string; services: number; extraLocal: string[] } {
  const vss = c.mapped.index.ipvsState("IPv4").services.filter((s) => s.protocol === "tcp" || s.protocol === "udp");
  const services = vss.map((s) => ({
    protocol: s.protocol,
    addr: s.addr,
    port: s.port,
    scheduler: s.scheduler,
    realServers: s.realServers.map((r) => ({ addr: r.addr, port: r.port, weight: r.weight })),
  }));
  // external and load-balancer IPs (outside the Service CIDR) are made local one by one; node addresses already are
  const inCidr = (ip: string) => {
    const [a, b] = ip.split(".").map(Number);
    return a === 10 && b >= 96 && b < 112;
  };
  const extraLocal = [
    ...new Set(services.map((s) => s.addr ?? "").filter((a) => a && !inCidr(a) && !SCALING_NODE.addresses.includes(a))),
  ];
  return {
    text: JSON.stringify({ proxy: { control: null, metrics: null, vipInterface: null, tick: 1000 }, services }),
    services: services.length,
    extraLocal,
  };
}

export function cpuTicks(pid: number): number {
  const f = readFileSync(`/proc/${pid}/stat`, "utf8");
  const rest = f.slice(f.lastIndexOf(")") + 2).split(" ");
  return Number(rest[11]) + Number(rest[12]); // utime + stime (fields 14, 15)
}
export const rssMiB = (pid: number) => {
  try {
    return Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1] ?? 0) / 1024;
  } catch {
    return 0;
  }
};
export const TICK_US = 1e6 / 100; // USER_HZ

/** TCP sockets listening in a namespace, from /proc/net/tcp{,6} (state 0A): `ss` is not everywhere (the kernel
 *  VM has none, and a missing ss once counted 0 listeners there). */
export function tcpListeners(ns: string): number {
  // without IPv6 there is no tcp6 (cat then fails on it but prints tcp)
  const text = nsRun(ns, ["cat", "/proc/net/tcp", "/proc/net/tcp6"]).stdout;
  return text.split("\n").filter((l) => l.trim().split(/\s+/)[3] === "0A").length;
}

export type Launcher = "dist/cli" | "sources";

/** What `bin/wasmvs.js` runs, by its own rule: the built dist/cli when dist/cli/main.js is newer than every file
 *  under src/, else the TypeScript sources through tsx, which start far slower (under the VM's qemu TCG a socket
 *  proxy took over two minutes to answer from sources). */
export function cliLauncher(): Launcher {
  if (process.env.WASMVS_FROM_SOURCE === "1") return "sources";
  let built: number;
  try {
    built = statSync(join(root, "dist/cli/main.js")).mtimeMs;
  } catch {
    return "sources";
  }
  for (const f of readdirSync(join(root, "src"), { recursive: true }) as string[])
    if (statSync(join(root, "src", f)).mtimeMs > built) return "sources";
  return "dist/cli";
}

export type Timed = ServiceTarget & {
  connect: LatStat;
  firstByte: LatStat;
  proxyCpuUsPerConn: number;
  clientCpuUsPerConn: number;
};

/** Starts `wasmvs proxy run -c FILE` in the node namespace; started = the last Service answers through it. */
export async function startProxy(
  topo: Topology,
  config: string,
  logLevel: string,
  last: ServiceTarget,
  what: string,
): Promise<{ p: ChildProcess; startMs: number; launcher: Launcher }> {
  const launcher = cliLauncher();
  const t0 = performance.now();
  const p = spawn(
    "ip",
    [
      "netns",
      "exec",
      topo.node,
      process.execPath,
      join(root, "bin/wasmvs.js"),
      "proxy",
      "run",
      "-c",
      config,
      "--log-level",
      logLevel,
    ],
    { stdio: ["ignore", "ignore", "pipe"], cwd: root },
  );
  let err = "";
  p.stderr!.setEncoding("utf8");
  try {
    await new Promise<void>((resolve, reject) => {
      // once settled the poll stops: a poll after a failure would connect from a namespace already deleted
      let settled = false;
      const ok = () => {
        if (!settled) {
          settled = true;
          resolve();
        }
      };
      const fail = (e: Error) => {
        if (!settled) {
          settled = true;
          reject(e);
        }
      };
      p.stderr!.on("data", (d: string) => {
        err += d;
        if (err.length > 1 << 20) err = err.slice(-1 << 16);
      });
      p.on("exit", (code) => fail(new Error(`${what} exited (${code}): ${err.slice(-1500)}`)));
      const poll = () => {
        if (settled || p.exitCode !== null) return;
        try {
          const r = connectFrom(topo.client, 1, [`${last.vip}:${last.port}`], { readFirstByte: true });
          if (!r.fails) ok();
          else setTimeout(poll, 100);
        } catch (e) {
          fail(e as Error);
        }
      };
      setTimeout(poll, 300);
      const limitS = 120 * benchTimeFactor();
      setTimeout(
        () => fail(new Error(`${what} did not answer in ${limitS} s: ${err.slice(-1500)}`)),
        limitS * 1000,
      ).unref();
    });
  } catch (e) {
    if (p.exitCode === null) p.kill("SIGKILL");
    throw e;
  }
  return { p, startMs: performance.now() - t0, launcher };
}

/** SIGTERM, then SIGKILL if it has not exited within 5 s. */
export async function stopProxy(p: ChildProcess): Promise<void> {
  p.kill("SIGTERM");
  await new Promise<void>((r) => {
    if (p.exitCode !== null) r();
    else {
      p.once("exit", () => r());
      setTimeout(() => {
        p.kill("SIGKILL");
        r();
      }, 5000).unref();
    }
  });
}

/**
 * The connects both wasmvs modes are measured by: a pod IP straight (the baseline), then the first and the
 * last Service, connect() and first byte, and the proxy's and the client's CPU per connection.
 */
export async function timeConnects(
  topo: Topology,
  pid: number,
  o: { connects: number; cpuConnects: number },
  first: ServiceTarget,
  last: ServiceTarget,
  podTarget: string,
  mode: string,
  services: number,
  log: (s: string) => void,
  opts: { settleMs?: number; connectsMustSucceed?: boolean; through: string },
) {
  connectFrom(topo.client, 20, [podTarget], { readFirstByte: true });
  const baseC = connectFrom(topo.client, o.connects, [podTarget]);
  const baseB = connectFrom(topo.client, o.connects, [podTarget], { readFirstByte: true });
  log(`${mode} ${services}: ${o.connects} connects × 2 targets, connect() and first byte`);
  const tg = [`${first.vip}:${first.port}`, `${last.vip}:${last.port}`];
  connectFrom(topo.client, 30, tg, { readFirstByte: true });
  const runC = connectFrom(topo.client, o.connects * 2, tg);
  if (opts.connectsMustSucceed && runC.fails)
    throw new Error(
      `${runC.fails} of ${o.connects * 2} connects through ${opts.through} failed (errno ` +
        `${[...new Set(runC.errors)].join(",")})`,
    );
  if (opts.settleMs) await new Promise((r) => setTimeout(r, opts.settleMs));
  const runB = connectFrom(topo.client, o.connects * 2, tg, { readFirstByte: true });
  if (runB.fails)
    throw new Error(
      `${runB.fails} of ${o.connects * 2} connects through ${opts.through} got no first byte (errno ` +
        `${[...new Set(runB.errors)].join(",")})`,
    );
  const cpu = (t: string) => {
    const c0 = cpuTicks(pid);
    const r = connectFrom(topo.client, o.cpuConnects, [t], { readFirstByte: true });
    const c1 = cpuTicks(pid);
    return { proxy: ((c1 - c0) * TICK_US) / o.cpuConnects, client: (r.userUs + r.sysUs) / o.cpuConnects };
  };
  const cpuFirst = cpu(tg[0]),
    cpuLast = cpu(tg[1]);
  const timed = (t: ServiceTarget, i: number, c: { proxy: number; client: number }): Timed => ({
    ...t,
    connect: latStat(runC.lat[i]),
    firstByte: latStat(runB.lat[i]),
    proxyCpuUsPerConn: c.proxy,
    clientCpuUsPerConn: c.client,
  });
  return {
    first: timed(first, 0, cpuFirst),
    last: timed(last, 1, cpuLast),
    baseline: { target: podTarget, connect: latStat(baseC.lat[0]), firstByte: latStat(baseB.lat[0]) },
    rss: rssMiB(pid),
  };
}

export async function measureProxy(c: ScalingCluster, o: ProxyOptions): Promise<ProxyResult> {
  const log = o.log ?? (() => {});
  const first = c.targets[0],
    last = c.targets[c.targets.length - 1];
  const podTarget = `10.255.255.254:${first.endpoints[0].split(":")[1]}`;
  const topo = new Topology("P").create();
  const dir = mkdtempSync(join(tmpdir(), "wasmvs-scaling-proxy-"));
  let proxy: ChildProcess | null = null;
  try {
    nsOk(topo.node, ["ip", "route", "add", "local", SERVICE_CIDR, "dev", "lo"]);
    const ports = [...first.endpoints, ...last.endpoints].map((e) => Number(e.split(":")[1]));
    await topo.startBackends(ports, { banner: true });
    const cfg = proxyConfig(c);
    if (cfg.extraLocal.length)
      nsOk(
        topo.node,
        ["ip", "-batch", "-"],
        cfg.extraLocal.map((a) => `route add local ${a}/32 dev lo`).join("\n") + "\n",
      );
    writeFileSync(join(dir, "proxy.json"), cfg.text);
    log(`wasmvs-proxy ${c.services}: starting the proxy (${cfg.services} virtual services)`);
    const { p, startMs, launcher } = await startProxy(topo, join(dir, "proxy.json"), "warn", last, "the proxy");
    proxy = p;
    const pid = p.pid!;
    const listening = tcpListeners(topo.node);
    const t = await timeConnects(topo, pid, o, first, last, podTarget, "wasmvs-proxy", c.services, log, {
      settleMs: 200,
      through: "the proxy",
    });
    log(`wasmvs-proxy ${c.services}: stopping`);
    await stopProxy(p);
    proxy = null;
    const backends = await topo.stopBackends();
    const seen = (t: ServiceTarget) => t.endpoints.reduce((n, e) => n + (backends[e] ?? 0), 0);
    return {
      mode: "wasmvs-proxy",
      services: c.services,
      endpoints: c.endpoints,
      virtualServices: cfg.services,
      listening,
      startMs,
      launcher,
      first: t.first,
      last: t.last,
      baseline: t.baseline,
      backends,
      translated: { first: seen(first), last: seen(last) },
      proxyRssMiB: t.rss,
    };
  } finally {
    if (proxy && proxy.exitCode === null) {
      try {
        proxy.kill("SIGKILL");
      } catch {
        /* gone */
      }
    }
    topo.destroy();
    rmSync(dir, { recursive: true, force: true });
  }
}
