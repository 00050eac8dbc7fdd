// `wasmvs proxy ...`: run the userspace forwarder, check a configuration, reload or query a running one.
// Runnable alone too: node --import tsx src/cli/proxy.ts run -c proxy.yaml
import { pathToFileURL } from "node:url";
import { readFileSync } from "node:fs";
import { checks, parseOrExit, usageFailed, type CommandSpec, type FlagSpec, type Parsed } from "./args.ts";
import {
  loadConfig,
  parseConfig,
  ConfigError,
  packetModeProblems,
  type ProxyConfig,
  hostPortProblem,
  controlPathProblem,
  MAX_WORKERS,
  isMulticast,
} from "../proxy/config.ts";
import { SYNC_DEFAULTS, type SyncDaemonOptions } from "../proxy/sync.ts";
import type { KubeWatcher } from "../k8s/watch.ts";
import { readProxyConfig, type ProxyConfig as KubeProxyConfig } from "../k8s/index.ts";
import { Proxy } from "../proxy/index.ts";
import { ProxyTarget } from "../proxy/control.ts";
import { DEFAULT_CONTROL } from "../proxy/control.ts";

export const DEFAULT_STOP_DRAIN = 30; // seconds: Kubernetes' default grace period, under systemd's 90 s stop timeout
const LOG_LEVELS = ["debug", "info", "warn", "error"];

export const PROXY_USAGE = `usage: wasmvs proxy [run] -c FILE [--control PATH|none] [--metrics HOST:PORT|none]
                         [--log-level debug|info|warn|error] [--drain-timeout SECONDS]
                         [--mode socket|packet] [--interface IF]... [--local-address ADDR]... [--batch-size N]
                         [--packet-io ring|mmsg|xdp]  packet mode's I/O: PACKET_MMAP rings (default),
                                         recvmmsg/sendmmsg, or AF_XDP sockets with an XDP program
                         [--expire-nodest-conn 0|1] [--expire-quiescent-template 0|1] [--conn-reuse-mode 0-3]
                                         the kernel's sysctls of these names (proxy.settings; defaults
                                         as kube-proxy's IPVS mode sets them: 1, 1, 1)
                         [--sync-daemon master|backup]... --mcast-interface IF [--syncid N] [--sync-maxlen N]
                         [--mcast-group ADDR] [--mcast-port N] [--mcast-ttl N]
                                         packet mode: connection sync in the kernel's protocol, as
                                         ipvsadm --start-daemon (director pairs: docs/proxy.md)
                                         packet mode: raw-socket full-NAT on the interfaces IF, sources
                                         rewritten to ADDR (one per family, dedicated); needs CAP_NET_RAW
                                         and CAP_NET_ADMIN and the native addon (docs/proxy.md)
                         [--workers N|auto]  socket mode's threads pumping bytes, 1..${MAX_WORKERS} (default auto:
                                         the cores the process may use); one core schedules for all.
                                         Packet mode: N I/O threads, 1..64 (default and auto: 1)
       wasmvs proxy [run] --kubeconfig PATH|--in-cluster --node-name N --node-ip IP[,IP]
                          [--kube-proxy-config KPC.yaml] [-c FILE]
                                         serve a cluster's Services as kube-proxy's IPVS mode maps them
                                         (-c then supplies only the proxy's options; its services are ignored)
       wasmvs proxy check -c FILE        validate a configuration (errors point at line:column)
       wasmvs proxy reload [--control PATH]
       wasmvs proxy status [--control PATH]

The configuration (YAML or JSON) is described in docs/proxy.md. SIGHUP reloads. SIGTERM or SIGINT stops
gracefully: no new connections, the established ones may finish for up to --drain-timeout seconds
(default ${DEFAULT_STOP_DRAIN}), then the rest are closed; a second SIGTERM or SIGINT stops at once.
Once running, 'wasmvs -A/-a/-e/-d/-Ln --target proxy' drive it over the control socket
(default ${DEFAULT_CONTROL}, or WASMVS_PROXY_SOCKET).
`;

const orNone = (check: (v: string) => string | undefined) => (v: string) => (v === "none" ? undefined : check(v));
const controlFlag: FlagSpec = { kind: "value", check: orNone(controlPathProblem) };
const RUN: CommandSpec = {
  name: "wasmvs proxy",
  usage: PROXY_USAGE,
  flags: {
    "--config": { kind: "value", aliases: ["-c"] },
    "--control": controlFlag,
    "--metrics": { kind: "value", check: orNone(hostPortProblem) },
    "--log-level": { kind: "value", check: checks.oneOf(LOG_LEVELS) },
    "--drain-timeout": { kind: "value", check: checks.seconds(86400) },
    "--mode": { kind: "value", check: checks.oneOf(["socket", "packet"]) },
    "--interface": {
      kind: "list",
      check: (v) => (/^[A-Za-z0-9_.:-]{1,15}$/.test(v) ? undefined : "not an interface name"),
    },
    "--local-address": { kind: "list", check: checks.ip },
    "--batch-size": { kind: "value", check: checks.int(1, 4096) },
    "--packet-io": { kind: "value", check: checks.oneOf(["ring", "mmsg", "xdp"]) },
    "--workers": { kind: "value", check: (v) => (v === "auto" ? undefined : checks.int(1, MAX_WORKERS)(v)) },
    // the kernel's sysctls (proxy.settings), as PROXY_SETTINGS bounds them
    "--expire-nodest-conn": { kind: "value", check: checks.int(0, 1) },
    "--expire-quiescent-template": { kind: "value", check: checks.int(0, 1) },
    "--conn-reuse-mode": { kind: "value", check: checks.int(0, 3) },
    "--kubeconfig": { kind: "value" },
    "--in-cluster": { kind: "flag" },
    "--node-name": { kind: "value", check: checks.nonEmpty },
    "--node-ip": { kind: "list", check: checks.ip },
    "--kube-proxy-config": { kind: "value" },
    // connection sync (src/proxy/sync.ts), ipvsadm --start-daemon's options
    "--sync-daemon": { kind: "list", check: checks.oneOf(["master", "backup"]) },
    "--mcast-interface": {
      kind: "value",
      check: (v) => (/^[A-Za-z0-9_.@-]{1,15}$/.test(v) ? undefined : "not an interface name"),
    },
    "--syncid": { kind: "value", check: checks.int(0, 255) },
    "--sync-maxlen": { kind: "value", check: checks.int(1, 65507) },
    "--mcast-group": { kind: "value", check: (v) => (isMulticast(v) ? undefined : "not a multicast address") },
    "--mcast-port": { kind: "value", check: checks.int(1, 65535) },
    "--mcast-ttl": { kind: "value", check: checks.int(1, 255) },
  },
};
const CHECK: CommandSpec = {
  name: "wasmvs proxy check",
  usage: PROXY_USAGE,
  flags: { "--config": RUN.flags["--config"] },
};
const CONTROL: CommandSpec = { name: "wasmvs proxy", usage: PROXY_USAGE, flags: { "--control": controlFlag } };
const SUBCOMMANDS: Record<string, CommandSpec> = { run: RUN, check: CHECK, reload: CONTROL, status: CONTROL };

export async function proxyMain(argv: string[]): Promise<number> {
  const io = { out: process.stdout, err: process.stderr };
  const sub = argv[0] && !argv[0].startsWith("-") ? argv[0] : "run";
  if (sub === "help") {
    process.stdout.write(PROXY_USAGE);
    return 0;
  }
  if (!Object.hasOwn(SUBCOMMANDS, sub)) return usageFailed(RUN, `unknown subcommand '${sub.slice(0, 64)}'`, io);
  const spec = SUBCOMMANDS[sub];
  const a = parseOrExit(sub === argv[0] ? argv.slice(1) : argv, { ...spec, name: `wasmvs proxy ${sub}` }, io);
  if (typeof a === "number") return a;
  const usage = (m: string) => usageFailed(RUN, m, io);
  const control = a.get("--control") ?? process.env.WASMVS_PROXY_SOCKET;
  const file = a.get("--config");
  const kubeconfig = a.has("--in-cluster") ? "" : a.get("--kubeconfig"); // "": default loading
  if (sub === "check" && !file) return usage("check needs -c FILE");
  const sync = syncFromFlags(a);
  if (sync.why) return usage(sync.why);
  if (sub === "run") {
    if (!file && kubeconfig === undefined) return usage("-c FILE (or --kubeconfig) is required");
    if (kubeconfig !== undefined && (!a.get("--node-name") || !a.all("--node-ip").length)) {
      return usage("--kubeconfig needs --node-name and --node-ip");
    }
  }
  try {
    switch (sub) {
      case "check":
      case "run": {
        const cfg = file ? loadConfig(file) : parseConfig("services: []\n", "<kubeconfig>");
        if (kubeconfig !== undefined) cfg.state = { services: [] }; // the cluster supplies the services
        if (sub === "check") {
          const servers = cfg.state.services.reduce((n, s) => n + s.realServers.length, 0);
          process.stdout.write(
            `${file}: ok, ${cfg.state.services.length} services, ${servers} real servers, ` +
              `${cfg.health.size} health checks\n`,
          );
          return 0;
        }
        const controlWhy = control && control !== "none" ? controlPathProblem(control) : undefined;
        if (controlWhy) return usage(`WASMVS_PROXY_SOCKET '${control!.slice(0, 64)}': ${controlWhy}`);
        if (control) cfg.options.control = control === "none" ? null : control;
        applyRunFlags(cfg, a, sync.daemons);
        const drainArg = a.get("--drain-timeout");
        const drainS = drainArg === undefined ? DEFAULT_STOP_DRAIN : Number(drainArg);
        if (cfg.options.mode === "packet") {
          const problems = packetModeProblems(cfg.options, cfg.state.services);
          if (problems.length) {
            process.stderr.write(problems.map((m) => `wasmvs proxy: ${m}\n`).join(""));
            return 2;
          }
        }
        const kpcPath = a.get("--kube-proxy-config");
        const kpc = kpcPath ? readProxyConfig(readFileSync(kpcPath, "utf8"), kpcPath) : undefined;
        if (kpc?.errors.length) throw new Error(kpc.errors.map((e) => e.message).join("\n"));
        const p = await Proxy.start(cfg, {
          decisionLog: Number(process.env.WASMVS_PROXY_DECISIONS ?? 0),
          syncFromFlags: !!sync.daemons,
        });
        const node = { nodeName: a.get("--node-name") ?? "", addresses: a.all("--node-ip") };
        const watcher =
          kubeconfig !== undefined ? await watchCluster(p, cfg, kubeconfig, node, kpc?.config) : undefined;
        await serveUntilStopped(p, watcher, drainS);
        // everything is closed: exit now. Left to Node's own teardown, a server that handled many sockets
        // can spin in Environment::CleanupHandles (seen in tests and benchmarks).
        return process.exit(0);
      }
      default: {
        const t = await ProxyTarget.open(control ?? DEFAULT_CONTROL);
        try {
          const r = sub === "reload" ? await t.reload() : await t.status();
          process.stdout.write(JSON.stringify(r, null, 2) + "\n");
        } finally {
          await t.close();
        }
        return 0;
      }
    }
  } catch (e) {
    process.stderr.write(e instanceof ConfigError ? `${e.message}\n` : `wasmvs proxy: ${(e as Error).message}\n`);
    return 1;
  }
}

// The run's command-line flags over the file's options (a flag wins over its key in the file).
function applyRunFlags(cfg: ProxyConfig, a: Parsed, daemons: ProxyConfig["options"]["syncDaemons"] | undefined) {
  const metrics = a.get("--metrics");
  if (metrics) cfg.options.metrics = metrics === "none" ? null : metrics;
  const lvl = a.get("--log-level");
  if (lvl) cfg.options.logLevel = lvl as ProxyConfig["options"]["logLevel"];
  const mode = a.get("--mode");
  if (mode) cfg.options.mode = mode as ProxyConfig["options"]["mode"];
  const ifs = a.all("--interface"),
    locals = a.all("--local-address");
  if (ifs.length) cfg.options.packet.interfaces = ifs;
  if (locals.length) cfg.options.packet.localAddresses = locals;
  const batch = a.get("--batch-size");
  if (batch !== undefined) cfg.options.packet.batchSize = Number(batch);
  const packetIo = a.get("--packet-io");
  if (packetIo) cfg.options.packet.io = packetIo as "ring" | "mmsg" | "xdp";
  const workers = a.get("--workers");
  if (workers !== undefined) cfg.options.workers = workers === "auto" ? 0 : Number(workers);
  if (daemons) cfg.options.syncDaemons = daemons;
  for (const name of ["expire_nodest_conn", "expire_quiescent_template", "conn_reuse_mode"]) {
    const v = a.get(`--${name.replaceAll("_", "-")}`);
    if (v !== undefined) cfg.options.settings[name] = Number(v);
  }
}

// Serves until SIGTERM or SIGINT: the cluster watch stopped, then a drain bounded by drainS seconds (a second
// signal cuts it short); SIGHUP reloads the file meanwhile.
function serveUntilStopped(p: Proxy, watcher: { stop(): unknown } | undefined, drainS: number): Promise<void> {
  return new Promise<void>((resolve) => {
    process.on("SIGHUP", () => {
      p.reload().catch((e) => p.log.error("reload failed", { error: (e as Error).message }));
    });
    let signals = 0;
    let now: () => void = () => {};
    const atOnce = new Promise<void>((r) => {
      now = r;
    });
    const stop = (sig: string) => {
      if (++signals > 1) {
        p.log.warn("second signal: stopping at once", { signal: sig });
        now();
        return;
      }
      Promise.resolve(watcher?.stop())
        .then(() => p.shutdown(drainS * 1000, atOnce))
        .then((r) => p.log.info("stopped", { signal: sig, drained: r.drained, closed: r.cut, ms: r.ms }))
        .catch((e) => p.log.error("stopping failed", { error: (e as Error).message }))
        .finally(resolve);
    };
    process.on("SIGTERM", () => stop("SIGTERM"));
    process.on("SIGINT", () => stop("SIGINT"));
  });
}

// Follows a cluster: every sync's mapping (kube-proxy's IPVS proxier's, from src/k8s) replaces the
// proxy's services in place, so established flows and scheduler state carry over, as a reload does.
async function watchCluster(
  p: Proxy,
  cfg: ProxyConfig,
  kubeconfig: string,
  node: { nodeName: string; addresses: string[] },
  kpc: Partial<KubeProxyConfig> | undefined,
): Promise<KubeWatcher> {
  // loaded only for a cluster: @kubernetes/client-node is hundreds of modules, which the ESM loader opens at
  // once (a proxy under a low open-files limit died of EMFILE loading them), and a proxy from a file needs none
  const { KubeWatcher } = await import("../k8s/watch.ts");
  const watcher = new KubeWatcher({
    kubeconfig: kubeconfig || undefined,
    node,
    config: kpc, // none: KUBECONFIG, ~/.kube/config or in-cluster
    onSync: (u) => {
      p.reload({ ...cfg, state: u.desired, health: new Map() })
        .then((r) => p.log.info("cluster sync", { reason: u.reason, services: r.services }))
        .catch((e) => p.log.error("cluster sync refused", { error: (e as Error).message }));
    },
    onError: (e, what) => p.log.error("cluster watch", { what, error: (e as Error).message ?? String(e) }),
  });
  await watcher.start();
  return watcher;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  proxyMain(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
    },
    (e) => {
      process.stderr.write(`wasmvs proxy: ${(e as Error)?.message ?? e}\n`);
      process.exitCode = 1;
    },
  );
}

// --sync-daemon and its options as the daemons to run (they replace the configuration's), or why not
function syncFromFlags(a: { get(f: string): string | undefined; all(f: string): string[] }): {
  daemons?: SyncDaemonOptions[];
  why?: string;
} {
  const states = a.all("--sync-daemon");
  const opts = ["--mcast-interface", "--syncid", "--sync-maxlen", "--mcast-group", "--mcast-port", "--mcast-ttl"];
  if (!states.length) {
    const stray = opts.find((f) => a.get(f) !== undefined);
    return stray ? { why: `${stray} needs --sync-daemon master|backup` } : {};
  }
  if (new Set(states).size !== states.length) return { why: "--sync-daemon: one master and one backup at most" };
  const ifn = a.get("--mcast-interface");
  if (!ifn) return { why: "--sync-daemon needs --mcast-interface IF" };
  const num = (f: string, d: number) => (a.get(f) === undefined ? d : Number(a.get(f)));
  const daemons = states.map((state) => ({
    state: state as "master" | "backup",
    mcastInterface: ifn,
    syncid: num("--syncid", SYNC_DEFAULTS.syncid),
    maxlen: num("--sync-maxlen", SYNC_DEFAULTS.maxlen),
    group: a.get("--mcast-group") ?? SYNC_DEFAULTS.group,
    port: num("--mcast-port", SYNC_DEFAULTS.port),
    ttl: num("--mcast-ttl", SYNC_DEFAULTS.ttl),
  }));
  return { daemons };
}
