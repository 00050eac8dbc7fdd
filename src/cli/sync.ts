// `wasmvs sync`: mirror a desired state into kernel IPVS over netlink, once or as a loop, and
// `wasmvs sync --check`: print every difference between the desired state and the kernel, exit 1 on drift.
// Desired state from an ipvsadm save file (-R FILE), a proxy config (--config FILE), or a live cluster
// (--kubeconfig PATH with --node-name/--node-ip, as kube-proxy's IPVS proxier would map it).
import { readFileSync } from "node:fs";
import type { DesiredState } from "../model/types.ts";
import { parseRestore } from "../model/ipvsadm.ts";
import { IpvsClient, NoIpvsError } from "../kernel/client.ts";
import { Reconciler, SyncLoop, checkDrift, formatReport } from "../kernel/reconcile.ts";
import { type DaemonsConfig, parseConfig, unreadable } from "../proxy/config.ts";
import { readSettled } from "./settled-read.ts";
import { daemonDrift, ensureDaemons, stopDaemons, type DaemonPass } from "../kernel/daemons.ts";
import type { KubeWatcher } from "../k8s/watch.ts";
import { readProxyConfig, type ProxyConfig as KubeProxyConfig } from "../k8s/index.ts";
import type { ClusterIndex, Change } from "../k8s/cluster.ts";
import { parseServiceKey, type VirtualService } from "../model/types.ts";
import { ipFamily, parseCIDR } from "../k8s/ip.ts";
import { HostRules, formatHostReport, type HostFamilyState } from "../kernel/host-rules.ts";
import { DEFAULT_STATUS_FILE, checkStatus, serveMetrics, startStatusWriter, type SyncStatus } from "./sync-status.ts";
import { checks, parseOrExit, usageFailed, type CommandSpec, type FlagSpec, type Parsed } from "./args.ts";

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
  --sync-period S        full re-sync (drift repair) at least this often in loop mode (default 30); a file
                         is re-read then, once it has not changed for 0.2 s (write it whole, or rename into place);
                         one still changing after 10 s is not read, and the kernel keeps its table till the next try
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

const secondsFlag: FlagSpec = { kind: "value", check: checks.seconds(2_000_000) }; // a timer over 2^31 ms fires at once
const SYNC: CommandSpec = {
  name: "wasmvs sync",
  usage: SYNC_USAGE,
  flags: {
    "--rules": { kind: "value", aliases: ["-R"] },
    "--config": { kind: "value" },
    "--kubeconfig": { kind: "value" },
    "--in-cluster": { kind: "flag" },
    "--node-name": { kind: "value", check: checks.nonEmpty },
    "--node-ip": { kind: "list", check: checks.ip },
    "--kube-proxy-config": { kind: "value" },
    "--check": { kind: "flag" },
    "--once": { kind: "flag" },
    "--exclude-cidrs": { kind: "list", check: (v) => (parseCIDR(v) ? undefined : "not a CIDR") },
    "--drain-timeout": secondsFlag,
    "--sync-period": secondsFlag,
    "--min-sync-period": secondsFlag,
    "--bind-interface": {
      kind: "value",
      check: (v) => (/^[A-Za-z0-9_.-]{1,15}$/.test(v) ? undefined : "not an interface name"),
    },
    "--no-node-rules": { kind: "flag" },
    "--watch-timeout": {
      kind: "value",
      check: (v) => secondsFlag.check!(v) ?? (Number(v) < 1 ? "not at least 1 second" : undefined),
    },
    "--watch-idle-timeout": secondsFlag,
    "--relist-period": secondsFlag,
    "--status-file": { kind: "value", check: checks.nonEmpty },
    "--metrics-address": { kind: "value", check: checks.hostPort },
  },
};

/** A duration flag in milliseconds (its value was checked by the parser), or the default. */
const millis = (a: Parsed, name: string, def: number): number => {
  const v = a.get(name);
  return v === undefined ? def : Number(v) * 1000;
};

/** The file source's state, and with --config its `daemons:` section (a file is read once it stands still). */
async function fileSource(a: Parsed): Promise<{ state: DesiredState; daemons?: DaemonsConfig }> {
  const rules = a.get("--rules");
  if (rules !== undefined) {
    const text = rules === "-" ? readFileSync(0, "utf8") : await readSettled(rules);
    const r = parseRestore(text);
    if (r.problems.length) {
      throw new Error(
        `${rules}: refused before changing anything:\n` +
          r.problems.map((p) => `  line ${p.line}: ${p.message}  (${p.text.trim()})`).join("\n"),
      );
    }
    return { state: r.state };
  }
  const path = a.get("--config")!;
  let text: string;
  try {
    text = await readSettled(path);
  } catch (e) {
    throw unreadable(path, e);
  }
  const c = parseConfig(text, path); // throws ConfigError with line:col on bad input
  return { state: c.state, daemons: c.daemons };
}

export async function runSync(argv: string[], out = process.stdout, err = process.stderr): Promise<number> {
  // whatever fails (EPERM without CAP_NET_ADMIN, a kernel that stops answering) ends in one line, exit 1
  try {
    return await syncCommand(argv, out, err);
  } catch (e) {
    err.write(`wasmvs sync: ${(e as Error)?.message ?? String(e)}\n`);
    return 1;
  }
}

/** What the line asks for, once parsed and its sources read: nothing here has touched the kernel. */
interface SyncPlan {
  a: Parsed;
  fromFile: boolean;
  fromCluster: boolean;
  desired?: DesiredState;
  daemons?: DaemonsConfig; // --config's `daemons:` section: the sync daemons kept running
  kpc: Partial<KubeProxyConfig>;
}

async function syncCommand(argv: string[], out: NodeJS.WritableStream, err: NodeJS.WritableStream): Promise<number> {
  const io = { out, err };
  const a = parseOrExit(argv, SYNC, io);
  if (typeof a === "number") return a;
  const fromFile = a.has("--rules") || a.has("--config");
  const fromCluster = a.has("--kubeconfig") || a.has("--in-cluster");
  if (a.has("--check") && !fromFile) {
    if (fromCluster) return usageFailed(SYNC, "--check compares a file source (-R or --config) with the kernel", io);
    return checkStatus(a.get("--status-file") ?? DEFAULT_STATUS_FILE, out, err);
  }
  if (fromFile === fromCluster || (a.has("--rules") && a.has("--config")))
    return usageFailed(SYNC, "name exactly one source", io);
  if (fromCluster && (!a.get("--node-name") || !a.all("--node-ip").length)) {
    return usageFailed(SYNC, "a cluster source needs --node-name and --node-ip", io);
  }
  const plan: SyncPlan = { a, fromFile, fromCluster, kpc: {} };
  try {
    if (fromFile) {
      const src = await fileSource(a);
      plan.desired = src.state;
      plan.daemons = src.daemons;
    }
    const kpcPath = a.get("--kube-proxy-config");
    if (kpcPath) {
      const r = readProxyConfig(readFileSync(kpcPath, "utf8"), kpcPath);
      if (r.errors.length) throw new Error(r.errors.map((e) => e.message).join("\n"));
      plan.kpc = r.config;
    }
  } catch (e) {
    err.write(`wasmvs sync: ${(e as Error).message}\n`);
    return 2;
  }

  let client: IpvsClient;
  try {
    client = await IpvsClient.open();
  } catch (e) {
    err.write(`wasmvs sync: ${(e as Error).message}\n`);
    return e instanceof NoIpvsError ? 3 : 1;
  }
  try {
    if (a.has("--check")) return await driftCheck(client, plan, out);
    return await reconcile(client, plan, out, err);
  } finally {
    client.close();
  }
}

const excludedCidrs = (p: SyncPlan) =>
  p.a.has("--exclude-cidrs") ? p.a.all("--exclude-cidrs") : (p.kpc.excludeCIDRs ?? []);

/** --check with a file source: every difference, exit 1 on drift. */
async function driftCheck(client: IpvsClient, plan: SyncPlan, out: NodeJS.WritableStream): Promise<number> {
  const diffs: { message: string }[] = await checkDrift(client, plan.desired!, { excludeCidrs: excludedCidrs(plan) });
  if (plan.daemons) for (const m of await daemonDrift(client, plan.daemons.daemons)) diffs.push({ message: m });
  for (const d of diffs) out.write(`${d.message}\n`);
  out.write(
    diffs.length
      ? `drift: ${diffs.length} difference(s) between the desired state and the kernel\n`
      : "in sync: the kernel matches the desired state\n",
  );
  return diffs.length ? 1 : 0;
}

/**
 * Beside the tables: the service addresses on a dummy interface (files: only when asked), and for a cluster
 * kube-proxy's ipsets and iptables chains; applied after each table pass, one at a time.
 */
function hostRulesFor(plan: SyncPlan, out: NodeJS.WritableStream) {
  const bindIface = plan.a.get("--bind-interface");
  const host =
    plan.fromCluster && !plan.a.has("--no-node-rules")
      ? new HostRules({ bindInterface: bindIface ?? "kube-ipvs0" })
      : plan.fromFile && bindIface
        ? new HostRules({ bindInterface: bindIface })
        : undefined;
  let chain: Promise<unknown> = Promise.resolve();
  const state = { failed: false };
  const apply = (fam: HostFamilyState[], full: boolean, sysctls?: Record<string, number>, addOnly = false) => {
    if (!host) return chain;
    chain = chain.then(async () => {
      const r = await host.apply(fam, { full, sysctls, addOnly });
      state.failed = r.failures.length > 0;
      const line = formatHostReport(r);
      if (line) out.write(line + "\n");
    });
    return chain;
  };
  return { apply, state, done: () => chain, close: () => host?.close() };
}

async function reconcile(
  client: IpvsClient,
  plan: SyncPlan,
  out: NodeJS.WritableStream,
  err: NodeJS.WritableStream,
): Promise<number> {
  const { a, fromFile } = plan;
  const reconciler = new Reconciler(client, {
    excludeCidrs: excludedCidrs(plan),
    drainTimeoutMs: millis(a, "--drain-timeout", 900_000),
    sysctls: plan.fromCluster,
  });
  const host = hostRulesFor(plan, out);
  if (fromFile && a.has("--once")) {
    const desired = plan.desired!;
    await host.apply(fileHostState(desired), false, undefined, true); // addresses before their services
    const report = await reconciler.sync(desired, { refresh: true });
    out.write(formatReport(report) + "\n");
    await host.apply(fileHostState(desired), true);
    host.close();
    const daemons = plan.daemons ? logDaemons(await ensureDaemons(client, plan.daemons.daemons, true), out, err) : 0;
    return report.failures.length || host.state.failed || daemons ? 1 : 0;
  }
  // loop mode: a file is re-read on every full sync (and its addresses bound from that same read); a
  // cluster's whole state is built from its index only when a full sync asks for it
  let lastFile = plan.desired;
  const daemons = daemonKeeper(client, plan.daemons, out, err);
  let latestIndex: ClusterIndex | undefined;
  const nodeFamilies = new Set(a.all("--node-ip").map((ip) => ipFamily(ip)));
  const wholeState = () => (fromFile ? lastFile! : (latestIndex?.desiredState() ?? { services: [] }));
  const loop = new SyncLoop(reconciler, wholeState, {
    // each pass in kube-proxy's dependency order: the addresses and ipset entries a new virtual server
    // needs before the table pass, what went away only after it (onReport)
    beforePass: async (kind) => {
      if (fromFile) {
        if (kind === "full") ({ state: lastFile, daemons: daemons.config } = await fileSource(a));
        await host.apply(fileHostState(lastFile!), false, undefined, true);
        if (kind === "full") await daemons.pass();
      } else if (latestIndex) {
        await host.apply(clusterHostState(latestIndex, nodeFamilies), false, latestIndex.sysctls(), true);
      }
    },
    syncPeriodMs: millis(a, "--sync-period", plan.kpc.syncPeriodMs ?? 30_000),
    minSyncPeriodMs: millis(a, "--min-sync-period", plan.kpc.minSyncPeriodMs ?? 0),
    onReport: (r, kind) => {
      if (r.changes.length || r.failures.length) out.write(`[${kind}] ${formatReport(r)}\n`);
      if (kind === "drain") return;
      if (fromFile) void host.apply(fileHostState(lastFile!), kind === "full");
      else if (latestIndex)
        void host.apply(clusterHostState(latestIndex, nodeFamilies), kind === "full", latestIndex.sysctls());
    },
    onError: (e, retry) =>
      err.write(
        `wasmvs sync: ${e.message}` +
          (retry
            ? `; retrying as a full sync in ${(retry.delayMs / 1000).toFixed(1)} s (attempt ${retry.attempt}; ` +
              `backing off exponentially, at most ${(retry.maxMs / 1000).toFixed(0)} s)`
            : "") +
          "\n",
      ),
  });
  // a long-lived loop: a rejection nobody handled (a library's, or ours) is logged; the loop keeps the
  // last good state in the kernel and goes on
  process.on("unhandledRejection", (e) => err.write(`wasmvs sync: unhandled: ${(e as Error)?.stack ?? String(e)}\n`));
  let cluster: Awaited<ReturnType<typeof followCluster>> | undefined;
  if (plan.fromCluster) {
    const keep = (index: Parameters<Parameters<typeof followCluster>[2]>[0]) => {
      latestIndex = index;
    };
    cluster = await followCluster(plan, loop, keep, out, err);
  } else loop.start();
  await new Promise<void>((resolve) => {
    const stop = () => resolve();
    process.once("SIGINT", stop);
    process.once("SIGTERM", stop);
  });
  await cluster?.stop();
  await loop.stop();
  await host.done();
  host.close();
  // the daemons stay running (the kernel goes on syncing without us) unless the configuration says not
  await daemons.exit();
  client.close();
  process.exit(0); // a long-lived process: exit at once rather than through Node's teardown
}

/** A cluster source: the watch feeds the loop; its health goes to the status file and metrics. */
async function followCluster(
  plan: SyncPlan,
  loop: SyncLoop,
  setIndex: (i: ClusterIndex) => void,
  out: NodeJS.WritableStream,
  err: NodeJS.WritableStream,
): Promise<{ stop(): Promise<void> }> {
  const { a } = plan;
  const node = { nodeName: a.get("--node-name")!, addresses: a.all("--node-ip") };
  const { KubeWatcher } = await import("../k8s/watch.ts"); // client-node only for a cluster source
  const watcher: KubeWatcher = new KubeWatcher({
    kubeconfig: a.get("--kubeconfig"),
    node,
    config: plan.kpc, // none: in-cluster / default loading
    watchTimeoutMs: millis(a, "--watch-timeout", 300_000),
    idleTimeoutMs: millis(a, "--watch-idle-timeout", 120_000),
    relistPeriodMs: millis(a, "--relist-period", 1_800_000),
    onNotice: (m) => out.write(`[watch] ${m}\n`),
    onSync: (u) => {
      setIndex(u.index);
      if (u.reason === "initial") {
        loop.start();
        return;
      }
      // a change is synced partially (what changed); a periodic sync compares the whole state
      if (u.reason === "periodic") {
        loop.trigger();
        return;
      }
      loop.trigger(partialOf(u.index, u.changes));
    },
    onError: (e, what) => err.write(`wasmvs sync: ${what}: ${(e as Error).message ?? e}\n`),
  });
  const statusFile = a.get("--status-file") ?? DEFAULT_STATUS_FILE;
  const snapshot = (): SyncStatus => ({
    pid: process.pid,
    updatedAt: Date.now(),
    idleTimeoutMs: watcher.idleTimeoutMs,
    passes: loop.runs,
    failedPasses: loop.failedPasses,
    watch: watcher.status(),
  });
  const stopStatus = startStatusWriter(statusFile, snapshot, (m) => err.write(`wasmvs sync: ${m}\n`));
  const metricsAddress = a.get("--metrics-address");
  const stopMetrics = metricsAddress ? await serveMetrics(metricsAddress, snapshot) : () => {};
  await watcher.start();
  return {
    stop: async () => {
      await watcher.stop();
      stopStatus();
      stopMetrics();
    },
  };
}

/** A file source's addresses for the dummy interface (no ipsets or iptables: those are kube-proxy's). */
function fileHostState(d: DesiredState): HostFamilyState[] {
  const addrs = [...new Set(d.services.filter((s) => !s.fwmark && s.addr).map((s) => s.addr!))];
  return [{ family: "IPv4", ipsets: [], iptablesRestore: "", iptablesJumps: [], bindAddrs: addrs }];
}

/** kube-proxy's IPVS-mode node state for each family the node has an address in. */
function clusterHostState(index: ClusterIndex, families: Set<string | null>): HostFamilyState[] {
  return index.families
    .filter((f) => families.has(f))
    .map((f) => {
      const st = index.ipvsState(f);
      return {
        family: f,
        ipsets: st.ipsets,
        iptablesRestore: st.iptablesRestore,
        iptablesJumps: st.iptablesJumps,
        bindAddrs: st.bindAddrs,
      };
    });
}

/** The services a batch of cluster changes touched: their new form, or their identity when removed. */
function partialOf(index: ClusterIndex, changes: Change[]): { changed: VirtualService[]; removed: VirtualService[] } {
  const touched = new Set<string>();
  for (const c of changes) for (const k of [...c.added, ...c.updated, ...c.removed]) touched.add(k);
  const changed: VirtualService[] = [],
    removed: VirtualService[] = [];
  for (const k of touched) {
    const now = index.virtualService(k);
    if (now) {
      changed.push(now);
      continue;
    }
    const id = parseServiceKey(k);
    if (id) removed.push({ ...id, scheduler: "rr", flags: [], realServers: [] });
  }
  return { changed, removed };
}

/**
 * A config's sync daemons across the loop's passes: compared and repaired on every full pass (one someone
 * stopped is started again, and said); at exit left running (the kernel syncs without wasmvs) unless the
 * configuration says stopOnExit.
 */
function daemonKeeper(
  client: IpvsClient,
  initial: DaemonsConfig | undefined,
  out: NodeJS.WritableStream,
  err: NodeJS.WritableStream,
) {
  let passes = 0;
  return {
    config: initial,
    async pass(): Promise<void> {
      if (!this.config) return;
      await ensureDaemons(client, this.config.daemons, passes++ === 0).then(
        (p) => logDaemons(p, out, err),
        (e) => err.write(`wasmvs sync: [daemons] ${(e as Error).message}\n`),
      );
    },
    async exit(): Promise<void> {
      if (!this.config?.stopOnExit) return;
      const states = this.config.daemons.map((d) => d.state);
      logDaemons(await stopDaemons(client, states), out, err);
    },
  };
}

/** A daemon pass's lines ("[daemons] ..."); returns how many failed. */
function logDaemons(p: DaemonPass, out: NodeJS.WritableStream, err: NodeJS.WritableStream): number {
  for (const c of p.changes) out.write(`[daemons] ${c}\n`);
  for (const f of p.failures) err.write(`wasmvs sync: [daemons] ${f}\n`);
  return p.failures.length;
}
