// `wasmvs proxy ...`: run the userspace forwarder, check a configuration, reload or query a running one.
// Runnable alone too: node --import tsx src/proxy/cli.ts run -c proxy.yaml
import { pathToFileURL } from "node:url";
import { readFileSync } from "node:fs";
import { isIP } from "node:net";
import { loadConfig, parseConfig, ConfigError, packetModeProblems, type ProxyConfig, hostPortProblem, controlPathProblem } from "./config.ts";
import type { KubeWatcher } from "../k8s/watch.ts";
import { readProxyConfig } from "../k8s/index.ts";
import { Proxy } from "./index.ts";
import { ProxyTarget } from "./control.ts";
import { DEFAULT_CONTROL } from "./control.ts";

export const DEFAULT_STOP_DRAIN = 30;   // seconds: Kubernetes' default grace period, under systemd's 90 s stop timeout
const LOG_LEVELS = ["debug", "info", "warn", "error"];

export const PROXY_USAGE = `usage: wasmvs proxy [run] -c FILE [--control PATH|none] [--metrics HOST:PORT|none]
                         [--log-level debug|info|warn|error] [--drain-timeout SECONDS]
                         [--mode socket|packet] [--interface IF]... [--local-address ADDR]... [--batch-size N]
                         [--packet-io ring|mmsg]  packet mode's I/O: PACKET_MMAP rings (default) or recvmmsg/sendmmsg
                                         packet mode: raw-socket full-NAT on the interfaces IF, sources
                                         rewritten to ADDR (one per family, dedicated); needs CAP_NET_RAW
                                         and CAP_NET_ADMIN and the native addon (docs/proxy.md)
       wasmvs proxy [run] --kubeconfig PATH|--in-cluster --node-name N --node-ip IP[,IP] [--kube-proxy-config KPC.yaml] [-c FILE]
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

// every value of a repeatable option; commas also separate values
function opts(argv: string[], name: string): string[] {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === name && argv[i + 1] !== undefined) out.push(argv[++i]);
    else if (argv[i].startsWith(name + "=")) out.push(argv[i].slice(name.length + 1));
  }
  return out.flatMap((v) => v.split(",")).filter(Boolean);
}

function opt(argv: string[], ...names: string[]): string | undefined {
  for (let i = 0; i < argv.length; i++) {
    for (const n of names) {
      if (argv[i] === n) return argv[i + 1];
      if (argv[i].startsWith(n + "=")) return argv[i].slice(n.length + 1);
    }
  }
  return undefined;
}

export async function proxyMain(argv: string[]): Promise<number> {
  let sub = argv[0] && !argv[0].startsWith("-") ? argv[0] : "run";
  const rest = sub === argv[0] ? argv.slice(1) : argv;
  if (sub === "help" || rest.includes("-h") || rest.includes("--help")) { process.stdout.write(PROXY_USAGE); return 0; }
  const control = opt(rest, "--control") ?? process.env.WASMVS_PROXY_SOCKET;
  try {
    switch (sub) {
      case "check": case "run": {
        const file = opt(rest, "-c", "--config");
        const kubeconfig = rest.includes("--in-cluster") ? "" : opt(rest, "--kubeconfig");   // "": default loading
        if (!file && !(kubeconfig !== undefined && sub === "run")) { process.stderr.write(`wasmvs proxy: -c FILE (or --kubeconfig) is required\n${PROXY_USAGE}`); return 2; }
        const cfg = file ? loadConfig(file) : parseConfig("services: []\n", "<kubeconfig>");
        if (kubeconfig !== undefined) cfg.state = { services: [] };   // the cluster supplies the services
        if (sub === "check") {
          process.stdout.write(`${file}: ok, ${cfg.state.services.length} services, ${cfg.state.services.reduce((n, s) => n + s.realServers.length, 0)} real servers, ${cfg.health.size} health checks\n`);
          return 0;
        }
        const usage = (m: string) => { process.stderr.write(`wasmvs proxy: ${m}\n${PROXY_USAGE}`); return 2; };
        const controlWhy = control && control !== "none" ? controlPathProblem(control) : undefined;
        if (controlWhy) return usage(`--control '${control!.slice(0, 64)}': ${controlWhy}`);
        if (control) cfg.options.control = control === "none" ? null : control;
        const metrics = opt(rest, "--metrics");
        const metricsWhy = metrics !== undefined && metrics !== "none" ? hostPortProblem(metrics) : undefined;
        if (metricsWhy) return usage(`--metrics: ${metricsWhy}`);
        if (metrics) cfg.options.metrics = metrics === "none" ? null : metrics;
        const lvl = opt(rest, "--log-level");
        if (lvl !== undefined && !LOG_LEVELS.includes(lvl)) return usage(`--log-level '${lvl.slice(0, 64)}' is not one of ${LOG_LEVELS.join(", ")}`);
        if (lvl) cfg.options.logLevel = lvl as ProxyConfig["options"]["logLevel"];
        const drainArg = opt(rest, "--drain-timeout");
        const drainS = drainArg === undefined ? DEFAULT_STOP_DRAIN : /^\d+(\.\d+)?$/.test(drainArg) ? Number(drainArg) : NaN;
        if (!(drainS >= 0 && drainS <= 86400)) return usage(`--drain-timeout '${String(drainArg).slice(0, 64)}' is not a number of seconds 0..86400`);
        const mode = opt(rest, "--mode");
        if (mode !== undefined && mode !== "socket" && mode !== "packet") { process.stderr.write(`wasmvs proxy: --mode '${mode}' is not socket or packet\n`); return 2; }
        if (mode) cfg.options.mode = mode;
        const ifs = opts(rest, "--interface"), locals = opts(rest, "--local-address");
        if (ifs.length) cfg.options.packet.interfaces = ifs;
        if (locals.length) {
          const bad = locals.filter((a) => !isIP(a));
          if (bad.length) { process.stderr.write(`wasmvs proxy: --local-address '${bad[0]}' is not an IPv4 or IPv6 address\n`); return 2; }
          cfg.options.packet.localAddresses = locals;
        }
        const batch = opt(rest, "--batch-size");
        if (batch !== undefined) {
          const n = Number(batch);
          if (!Number.isInteger(n) || n < 1 || n > 4096) { process.stderr.write(`wasmvs proxy: --batch-size '${batch}' is not an integer in 1..4096\n`); return 2; }
          cfg.options.packet.batchSize = n;
        }
        const packetIo = opt(rest, "--packet-io");
        if (packetIo !== undefined && packetIo !== "ring" && packetIo !== "mmsg") {
          return usage(`--packet-io '${packetIo.slice(0, 64)}' is not ring or mmsg`);
        }
        if (packetIo) cfg.options.packet.io = packetIo;
        if (cfg.options.mode === "packet") {
          const problems = packetModeProblems(cfg.options, cfg.state.services);
          if (problems.length) { process.stderr.write(problems.map((m) => `wasmvs proxy: ${m}\n`).join("")); return 2; }
        }
        const p = await Proxy.start(cfg, { decisionLog: Number(process.env.WASMVS_PROXY_DECISIONS ?? 0) });
        const watcher = kubeconfig !== undefined ? await watchCluster(p, cfg, kubeconfig, rest) : undefined;
        await new Promise<void>((resolve) => {
          process.on("SIGHUP", () => { p.reload().catch((e) => p.log.error("reload failed", { error: (e as Error).message })); });
          let signals = 0;
          let now: () => void = () => {};
          const atOnce = new Promise<void>((r) => { now = r; });
          const stop = (sig: string) => {
            if (++signals > 1) { p.log.warn("second signal: stopping at once", { signal: sig }); now(); return; }
            Promise.resolve(watcher?.stop())
              .then(() => p.shutdown(drainS * 1000, atOnce))
              .then((r) => p.log.info("stopped", { signal: sig, drained: r.drained, closed: r.cut, ms: r.ms }))
              .catch((e) => p.log.error("stopping failed", { error: (e as Error).message }))
              .finally(resolve);
          };
          process.on("SIGTERM", () => stop("SIGTERM"));
          process.on("SIGINT", () => stop("SIGINT"));
        });
        // everything is closed: exit now. Left to Node's own teardown, a server that handled many sockets
        // can spin in Environment::CleanupHandles (seen in tests and benchmarks).
        process.exit(0);
      }
      case "reload": case "status": {
        const t = await ProxyTarget.open(control ?? DEFAULT_CONTROL);
        try {
          const r = sub === "reload" ? await t.reload() : await t.status();
          process.stdout.write(JSON.stringify(r, null, 2) + "\n");
        } finally { await t.close(); }
        return 0;
      }
      default:
        process.stderr.write(`wasmvs proxy: unknown subcommand '${sub}'\n${PROXY_USAGE}`);
        return 2;
    }
  } catch (e) {
    process.stderr.write(e instanceof ConfigError ? `${e.message}\n` : `wasmvs proxy: ${(e as Error).message}\n`);
    return 1;
  }
}

// Follows a cluster: every sync's mapping (kube-proxy's IPVS proxier's, from src/k8s) replaces the
// proxy's services in place, so established flows and scheduler state carry over, as a reload does.
async function watchCluster(p: Proxy, cfg: ProxyConfig, kubeconfig: string, argv: string[]): Promise<KubeWatcher> {
  const node = { nodeName: opt(argv, "--node-name") ?? "", addresses: (opt(argv, "--node-ip") ?? "").split(",").filter(Boolean) };
  if (!node.nodeName || !node.addresses.length) throw new Error("--kubeconfig needs --node-name and --node-ip");
  const kpcPath = opt(argv, "--kube-proxy-config");
  const kpc = kpcPath ? readProxyConfig(readFileSync(kpcPath, "utf8"), kpcPath) : undefined;
  if (kpc?.errors.length) throw new Error(kpc.errors.map((e) => e.message).join("\n"));
  // loaded only for a cluster: @kubernetes/client-node is hundreds of modules, which the ESM loader opens at
  // once (a proxy under a low open-files limit died of EMFILE loading them), and a proxy from a file needs none
  const { KubeWatcher } = await import("../k8s/watch.ts");
  const watcher = new KubeWatcher({
    kubeconfig: kubeconfig || undefined, node, config: kpc?.config,   // none: KUBECONFIG, ~/.kube/config or in-cluster
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
  proxyMain(process.argv.slice(2)).then((code) => { process.exitCode = code; });
}
