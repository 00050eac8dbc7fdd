// `wasmvs sync`: mirror a desired state into kernel IPVS over netlink, once or as a loop, and
// `wasmvs sync --check`: print every difference between the desired state and the kernel, exit 1 on drift.
// Desired state from an ipvsadm save file (-R FILE), a proxy config (--config FILE), or a live cluster
// (--kubeconfig PATH with --node-name/--node-ip, as kube-proxy's IPVS proxier would map it).
import { readFileSync } from "node:fs";
import type { DesiredState } from "../model/types.ts";
import { parseRestore } from "../model/ipvsadm.ts";
import { IpvsClient, NoIpvsError } from "../kernel/client.ts";
import { Reconciler, SyncLoop, checkDrift, formatReport } from "../kernel/reconcile.ts";
import { loadConfig } from "../proxy/config.ts";
import type { KubeWatcher } from "../k8s/watch.ts";
import { readProxyConfig, type ProxyConfig as KubeProxyConfig } from "../k8s/index.ts";
import type { ClusterIndex, Change } from "../k8s/cluster.ts";
import { parseServiceKey, type VirtualService } from "../model/types.ts";
import { ipFamily } from "../k8s/ip.ts";
import { HostRules, formatHostReport, type HostFamilyState } from "../kernel/host-rules.ts";
import { DEFAULT_STATUS_FILE, checkStatus, serveMetrics, startStatusWriter, type SyncStatus } from "./sync-status.ts";

export const SYNC_USAGE = `usage: wasmvs sync SOURCE [--check] [--once] [options]

SOURCE (one of):
  -R FILE | --rules FILE           ipvsadm save/restore text (what ipvsadm -Sn prints); - for stdin
  --config FILE                    a wasmvs proxy configuration (YAML/JSON)
  --kubeconfig PATH | --in-cluster   with --node-name N --node-ip IP[,IP] [--kube-proxy-config KPC.yaml]
                                   a live cluster, mapped as kube-proxy's IPVS proxier does: the virtual
                                   services, and beside them its ipsets, iptables KUBE-* chains and the
                                   service addresses on the dummy interface kube-ipvs0

  --check                print every difference between SOURCE and the kernel; exit 1 on drift, 0 if none
  --once                 reconcile once and exit (default for files; a cluster is always followed)
  --exclude-cidrs A,B    never touch kernel services whose VIP is inside these (--ipvs-exclude-cidrs)
  --drain-timeout S      bound on a removed real server's graceful drain (default 900)
  --sync-period S        full re-sync (drift repair) at least this often in loop mode (default 30)
  --min-sync-period S    triggered syncs at most twice per this period (default 0)
  --bind-interface IF    keep every service address on dummy interface IF (created if missing), so the node
                         accepts their packets (cluster default: kube-ipvs0; files: not bound unless given)
  --no-node-rules        cluster source: program the IPVS tables only (no ipsets, iptables or addresses)

Cluster watch (a watch that goes quiet is noticed, not trusted):
  --watch-timeout S      the API server ends each watch after S to 2S seconds, then it resumes (default 300)
  --watch-idle-timeout S no event and no bookmark for S seconds: abort the watch and relist (default 120)
  --relist-period S      relist everything at least this often (default 1800; 0 = never)
  --status-file PATH     the loop writes its watch's age and counts here every 2 s
                         (default /run/wasmvs/sync-status.json for a cluster source)
  --metrics-address A:P  serve Prometheus metrics on http://A:P/metrics (the watch's age, relists, refusals)

  wasmvs sync --check [--status-file PATH]   without a file source: the running cluster loop's watch
                         (from its status file): exit 1 if it is stale, silent or not running
`;

interface Args { [k: string]: string | boolean | undefined }

function parseArgs(argv: string[]): Args {
  const a: Args = {};
  for (let i = 0; i < argv.length; i++) {
    const w = argv[i];
    const [k, inline] = w.startsWith("--") && w.includes("=") ? [w.slice(0, w.indexOf("=")), w.slice(w.indexOf("=") + 1)] : [w, undefined];
    if (k === "--check" || k === "--once" || k === "--in-cluster" || k === "--no-node-rules" || k === "-h" || k === "--help") { a[k] = true; continue; }
    if (!k.startsWith("-")) throw new Error(`unexpected argument '${w}'`);
    const v = inline ?? argv[++i];
    if (v === undefined) throw new Error(`${k} needs a value`);
    a[k] = v;
  }
  return a;
}

const seconds = (v: string | boolean | undefined, name: string, def: number): number => {
  if (v === undefined) return def;
  const n = Number(v);
  // (a timer longer than 2^31 ms fires at once: bounded here)
  if (!(n >= 0 && n <= 2_000_000)) throw new Error(`${name} must be a number of seconds (0 to 2000000), not '${v}'`);
  if (n === 0 && name === "--watch-timeout") throw new Error("--watch-timeout must be at least 1 second");
  return n * 1000;
};

function fileState(a: Args): DesiredState {
  const rules = (a["-R"] ?? a["--rules"]) as string | undefined;
  if (rules !== undefined) {
    const text = readFileSync(rules === "-" ? 0 : rules, "utf8");
    const r = parseRestore(text);
    if (r.problems.length) {
      throw new Error(`${rules}: refused before changing anything:\n` + r.problems.map((p) => `  line ${p.line}: ${p.message}  (${p.text.trim()})`).join("\n"));
    }
    return r.state;
  }
  return loadConfig(a["--config"] as string).state;   // throws ConfigError with line:col on bad input
}

export async function runSync(argv: string[], out = process.stdout, err = process.stderr): Promise<number> {
  // whatever fails (EPERM without CAP_NET_ADMIN, a kernel that stops answering) ends in one line, exit 1
  try { return await syncCommand(argv, out, err); } catch (e) {
    err.write(`wasmvs sync: ${(e as Error)?.message ?? String(e)}\n`);
    return 1;
  }
}

async function syncCommand(argv: string[], out: NodeJS.WritableStream, err: NodeJS.WritableStream): Promise<number> {
  let a: Args;
  try { a = parseArgs(argv); } catch (e) { err.write(`wasmvs sync: ${(e as Error).message}\n${SYNC_USAGE}`); return 2; }
  if (a["-h"] || a["--help"]) { out.write(SYNC_USAGE); return 0; }
  const fromFile = a["-R"] !== undefined || a["--rules"] !== undefined || a["--config"] !== undefined;
  const fromCluster = a["--kubeconfig"] !== undefined || a["--in-cluster"] === true;
  if (a["--check"] && !fromFile) return checkStatus(String(a["--status-file"] ?? DEFAULT_STATUS_FILE), out, err);
  if (fromFile === fromCluster) { err.write(`wasmvs sync: name exactly one source\n${SYNC_USAGE}`); return 2; }

  let kpc: Partial<KubeProxyConfig> = {};
  let desired: DesiredState | undefined;
  try {
    const durations = ["--watch-timeout", "--watch-idle-timeout", "--relist-period", "--sync-period", "--min-sync-period",
      "--drain-timeout"];
    for (const f of durations) seconds(a[f], f, 0);
    if (a["--metrics-address"] !== undefined && !/^[^\s]*:\d{1,5}$/.test(String(a["--metrics-address"]))) {
      throw new Error(`--metrics-address must be HOST:PORT, not '${a["--metrics-address"]}'`);
    }
    if (fromFile) desired = fileState(a);
    if (a["--kube-proxy-config"]) {
      const p = a["--kube-proxy-config"] as string;
      const r = readProxyConfig(readFileSync(p, "utf8"), p);
      if (r.errors.length) throw new Error(r.errors.map((e) => e.message).join("\n"));
      kpc = r.config;
    }
  } catch (e) { err.write(`wasmvs sync: ${(e as Error).message}\n`); return 2; }

  const excludeCidrs = a["--exclude-cidrs"] ? String(a["--exclude-cidrs"]).split(",").filter(Boolean) : kpc.excludeCIDRs ?? [];
  let client: IpvsClient;
  try { client = await IpvsClient.open(); } catch (e) {
    err.write(`wasmvs sync: ${e instanceof NoIpvsError ? e.message : (e as Error).message}\n`);
    return e instanceof NoIpvsError ? 3 : 1;
  }
  try {
    if (a["--check"]) {
      if (!desired) { err.write("wasmvs sync --check: needs a file source (-R or --config)\n"); return 2; }
      const diffs = await checkDrift(client, desired, { excludeCidrs });
      for (const d of diffs) out.write(`${d.message}\n`);
      out.write(diffs.length ? `drift: ${diffs.length} difference(s) between the desired state and the kernel\n` : "in sync: the kernel matches the desired state\n");
      return diffs.length ? 1 : 0;
    }
    const reconciler = new Reconciler(client, {
      excludeCidrs, drainTimeoutMs: seconds(a["--drain-timeout"], "--drain-timeout", 900_000), sysctls: fromCluster,
    });
    // beside the tables: the service addresses on a dummy interface (files: only when asked), and for a
    // cluster kube-proxy's ipsets and iptables chains; applied after each table pass, one at a time
    const bindIface = a["--bind-interface"] as string | undefined;
    const host = fromCluster && !a["--no-node-rules"] ? new HostRules({ bindInterface: bindIface ?? "kube-ipvs0" })
      : fromFile && bindIface ? new HostRules({ bindInterface: bindIface }) : undefined;
    let hostChain: Promise<unknown> = Promise.resolve();
    let hostFailed = false;
    const applyHost = (fam: HostFamilyState[], full: boolean, sysctls?: Record<string, number>, addOnly = false) => {
      if (!host) return hostChain;
      hostChain = hostChain.then(async () => {
        const r = await host.apply(fam, { full, sysctls, addOnly });
        hostFailed = r.failures.length > 0;
        const line = formatHostReport(r);
        if (line) out.write(line + "\n");
      });
      return hostChain;
    };
    if (fromFile && a["--once"]) {
      await applyHost(fileHostState(desired!), false, undefined, true);     // addresses before their services
      const report = await reconciler.sync(desired!, { refresh: true });
      out.write(formatReport(report) + "\n");
      await applyHost(fileHostState(desired!), true);
      host?.close();
      return report.failures.length || hostFailed ? 1 : 0;
    }
    // loop mode: a file is re-read on every full sync (and its addresses bound from that same read); a
    // cluster's whole state is built from its index only when a full sync asks for it
    let lastFile = desired;
    let latestIndex: ClusterIndex | undefined;
    const nodeFamilies = new Set(String(a["--node-ip"] ?? "").split(",").filter(Boolean).map((ip) => ipFamily(ip)));
    const wholeState = () => fromFile ? lastFile! : latestIndex?.desiredState() ?? { services: [] };
    const loop = new SyncLoop(reconciler, wholeState, {
      // each pass in kube-proxy's dependency order: the addresses and ipset entries a new virtual server
      // needs before the table pass, what went away only after it (onReport)
      beforePass: async (kind) => {
        if (fromFile) {
          if (kind === "full") lastFile = fileState(a);
          await applyHost(fileHostState(lastFile!), false, undefined, true);
        } else if (latestIndex) {
          await applyHost(clusterHostState(latestIndex, nodeFamilies), false, latestIndex.sysctls(), true);
        }
      },
      syncPeriodMs: seconds(a["--sync-period"], "--sync-period", kpc.syncPeriodMs ?? 30_000),
      minSyncPeriodMs: seconds(a["--min-sync-period"], "--min-sync-period", kpc.minSyncPeriodMs ?? 0),
      onReport: (r, kind) => {
        if (r.changes.length || r.failures.length) out.write(`[${kind}] ${formatReport(r)}\n`);
        if (kind === "drain") return;
        if (fromFile) void applyHost(fileHostState(lastFile!), kind === "full");
        else if (latestIndex) void applyHost(clusterHostState(latestIndex, nodeFamilies), kind === "full", latestIndex.sysctls());
      },
      onError: (e, retry) => err.write(`wasmvs sync: ${e.message}` + (retry
        ? `; retrying as a full sync in ${(retry.delayMs / 1000).toFixed(1)} s (attempt ${retry.attempt}; ` +
          `backing off exponentially, at most ${(retry.maxMs / 1000).toFixed(0)} s)`
        : "") + "\n"),
    });
    // a long-lived loop: a rejection nobody handled (a library's, or ours) is logged; the loop keeps the
    // last good state in the kernel and goes on
    process.on("unhandledRejection", (e) => err.write(`wasmvs sync: unhandled: ${(e as Error)?.stack ?? String(e)}\n`));
    let watcher: KubeWatcher | undefined;
    let stopStatus = () => {}, stopMetrics = () => {};
    if (fromCluster) {
      const node = { nodeName: String(a["--node-name"] ?? ""), addresses: String(a["--node-ip"] ?? "").split(",").filter(Boolean) };
      if (!node.nodeName || !node.addresses.length) { err.write("wasmvs sync: a cluster source needs --node-name and --node-ip\n"); return 2; }
      const { KubeWatcher } = await import("../k8s/watch.ts");   // client-node only for a cluster source
      watcher = new KubeWatcher({
        kubeconfig: a["--kubeconfig"] as string | undefined, node, config: kpc,   // none: in-cluster / default loading
        watchTimeoutMs: seconds(a["--watch-timeout"], "--watch-timeout", 300_000),
        idleTimeoutMs: seconds(a["--watch-idle-timeout"], "--watch-idle-timeout", 120_000),
        relistPeriodMs: seconds(a["--relist-period"], "--relist-period", 1_800_000),
        onNotice: (m) => out.write(`[watch] ${m}\n`),
        onSync: (u) => {
          latestIndex = u.index;
          if (u.reason === "initial") { loop.start(); return; }
          // a change is synced partially (what changed); a periodic sync compares the whole state
          if (u.reason === "periodic") { loop.trigger(); return; }
          loop.trigger(partialOf(u.index, u.changes));
        },
        onError: (e, what) => err.write(`wasmvs sync: ${what}: ${(e as Error).message ?? e}\n`),
      });
      const w = watcher;
      const statusFile = String(a["--status-file"] ?? DEFAULT_STATUS_FILE);
      const snapshot = (): SyncStatus => ({ pid: process.pid, updatedAt: Date.now(), idleTimeoutMs: w.idleTimeoutMs,
        passes: loop.runs, failedPasses: loop.failedPasses, watch: w.status() });
      stopStatus = startStatusWriter(statusFile, snapshot, (m) => err.write(`wasmvs sync: ${m}\n`));
      if (a["--metrics-address"]) stopMetrics = await serveMetrics(String(a["--metrics-address"]), snapshot);
      await watcher.start();
    } else loop.start();
    await new Promise<void>((resolve) => {
      const stop = () => resolve();
      process.once("SIGINT", stop);
      process.once("SIGTERM", stop);
    });
    await watcher?.stop();
    stopStatus(); stopMetrics();
    await loop.stop();
    await hostChain;
    host?.close();
    client.close();
    process.exit(0);   // a long-lived process: exit at once rather than through Node's teardown
  } finally {
    client.close();
  }
}

/** A file source's addresses for the dummy interface (no ipsets or iptables: those are kube-proxy's). */
function fileHostState(d: DesiredState): HostFamilyState[] {
  const addrs = [...new Set(d.services.filter((s) => !s.fwmark && s.addr).map((s) => s.addr!))];
  return [{ family: "IPv4", ipsets: [], iptablesRestore: "", iptablesJumps: [], bindAddrs: addrs }];
}

/** kube-proxy's IPVS-mode node state for each family the node has an address in. */
function clusterHostState(index: ClusterIndex, families: Set<string | null>): HostFamilyState[] {
  return index.families.filter((f) => families.has(f)).map((f) => {
    const st = index.ipvsState(f);
    return { family: f, ipsets: st.ipsets, iptablesRestore: st.iptablesRestore, iptablesJumps: st.iptablesJumps, bindAddrs: st.bindAddrs };
  });
}

/** The services a batch of cluster changes touched: their new form, or their identity when removed. */
function partialOf(index: ClusterIndex, changes: Change[]): { changed: VirtualService[]; removed: VirtualService[] } {
  const touched = new Set<string>();
  for (const c of changes) for (const k of [...c.added, ...c.updated, ...c.removed]) touched.add(k);
  const changed: VirtualService[] = [], removed: VirtualService[] = [];
  for (const k of touched) {
    const now = index.virtualService(k);
    if (now) { changed.push(now); continue; }
    const id = parseServiceKey(k);
    if (id) removed.push({ ...id, scheduler: "rr", flags: [], realServers: [] });
  }
  return { changed, removed };
}
