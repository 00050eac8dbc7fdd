// wasmvs proxy: the userspace forwarder. One Proxy owns a Core (the WASM data plane), the tables kept
// equal to the desired state (config file, then ipvsadm changes over the control socket), the socket
// forwarder, the health checkers, the control socket and the metrics endpoint.
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { Core, type ConnInfo } from "../core/index.ts";
import type { DesiredState, RealServer, VirtualService, IpvsTimeouts } from "../model/types.ts";
import { serviceKey, realServerKey } from "../model/types.ts";
import type { ServiceStatus, RealServerStatus, Stats, ConnectionEntry, TargetInfo } from "../model/target.ts";
import { type ProxyConfig, type HealthSpec, healthKey } from "./config.ts";
import { loadConfigOffThread } from "./config-thread.ts";
import { CHUNK } from "./threads.ts";
import { type ApplyResult, Tables, destKey } from "./tables.ts";
import { Slicer } from "./slice.ts";
import { SocketForwarder } from "./socket.ts";
import { usableCores } from "./workers.ts";
import { PacketForwarder } from "./packet.ts";
import type { Forwarder } from "./forwarder.ts";
import { HealthManager } from "./health.ts";
import { VipManager } from "./vip.ts";
import { jsonLogger, type Logger } from "./log.ts";
import { ControlServer } from "./control.ts";
import { startMetricsServer } from "./metrics.ts";
import type { Server } from "node:http";
import { formatProblems } from "../model/validate.ts";
import { connProtoName } from "../model/format.ts";
import { SyncDaemon, type SyncDaemonOptions, sameSyncOptions, syncStartProblems, syncStatus } from "./sync.ts";

export { parseConfig, loadConfig, ConfigError } from "./config.ts";
export { ProxyTarget } from "./control.ts";
export {
  type StateCommand,
  STATE_COMMANDS,
  StepError,
  applyCommands,
  NextState,
  nextState,
  proxyStateProblems,
  proxyStateProblemsInSlices,
} from "./batch.ts";
import { applyCommands, proxyStateProblemsInSlices } from "./batch.ts";

export interface ProxyStartOptions {
  log?: Logger;
  debugCore?: boolean;
  decisionLog?: number; // keep the last N scheduling decisions (tests, `status`)
  syncFromFlags?: boolean; // the sync daemons came from --sync-daemon: a reload keeps them, not the file's
}

export interface DestView {
  key: string;
  status: RealServerStatus;
  configuredWeight: number;
  healthy: boolean;
  draining: boolean;
  flows: number;
  removed?: boolean;
}
export interface ServiceView {
  key: string;
  status: ServiceStatus;
  dests: DestView[];
}

const ZERO_STATS = (): Stats => ({
  conns: 0n,
  inPkts: 0n,
  outPkts: 0n,
  inBytes: 0n,
  outBytes: 0n,
  cps: 0n,
  inPps: 0n,
  outPps: 0n,
  inBps: 0n,
  outBps: 0n,
});
const clone = <T>(x: T): T => JSON.parse(JSON.stringify(x));
// A caller's state copied (its objects stay the caller's) a chunk of services a step: the whole copy at once
// held the loop 120-190 ms at 10k services x 10 (under load), on every cluster sync.
async function cloneInSlices(s: DesiredState): Promise<DesiredState> {
  const slicer = new Slicer();
  const services: VirtualService[] = [];
  for (let i = 0; i < s.services.length; i += CHUNK) {
    for (const x of clone(s.services.slice(i, i + CHUNK))) services.push(x);
    await slicer.pauseNow();
  }
  return s.timeouts ? { services, timeouts: { ...s.timeouts } } : { services };
}

function fileLimits(): { soft: number; hard: number } {
  try {
    const m = readFileSync("/proc/self/limits", "utf8").match(/Max open files\s+(\d+|unlimited)\s+(\d+|unlimited)/);
    const n = (x: string) => (x === "unlimited" ? 1 << 30 : Number(x));
    return m ? { soft: n(m[1]), hard: n(m[2]) } : { soft: 1024, hard: 1024 };
  } catch {
    return { soft: 1024, hard: 1024 };
  }
}

/** Socket mode holds a socket per virtual service before the first connection (10k Services are about 20k
 * of them), past many systems' default RLIMIT_NOFILE. Node lifts the soft limit to the hard one at start;
 * this lifts the hard one too where the process may (CAP_SYS_RESOURCE), up to fs.nr_open, to cover the
 * listeners and the connections (two sockets each). Throws when the listeners still do not fit, saying
 * what to do. Returns the limit. */
export function ensureFileLimit(listeners: number, log: Logger, connections = 16384): number {
  const before = fileLimits();
  const want = listeners + 2 * connections + 256;
  if (before.soft < want) {
    let nrOpen = before.hard;
    try {
      nrOpen = Number(readFileSync("/proc/sys/fs/nr_open", "utf8").trim()) || before.hard;
    } catch {
      /* not Linux: keep hard */
    }
    const target = Math.min(want, Math.max(nrOpen, before.hard));
    // prlimit (util-linux) sets our own limit; raising the hard one needs CAP_SYS_RESOURCE, so fall back to soft = hard
    for (const [soft, hard] of [
      [target, Math.max(target, before.hard)],
      [Math.min(target, before.hard), before.hard],
    ]) {
      if (soft <= fileLimits().soft) break;
      try {
        execFileSync("prlimit", ["--pid", String(process.pid), `--nofile=${soft}:${hard}`], { stdio: "ignore" });
        break;
      } catch {
        /* try the next */
      }
    }
  }
  const now = fileLimits();
  if (now.soft !== before.soft)
    log.info("raised the open-files limit for the listeners", {
      listeners,
      from: before.soft,
      to: now.soft,
      hard: now.hard,
    });
  if (now.soft < listeners + 64) {
    throw new Error(
      `${listeners} virtual services need a socket each in socket mode, and the open-files limit is ${now.soft} ` +
        `(hard ${now.hard}) and cou` +
        `ld not be raised: ` +
        (`raise it (ulimit -n, or LimitNOFILE= in a systemd unit; lifting the hard limit needs ` +
          `CAP_SYS_RESOURCE), or use --mode packet, which needs no socket per service`),
    );
  }
  return now.soft;
}

// One entry of -Lnc, as /proc/net/ip_vs_conn lists it.
export function connectionEntry(c: ConnInfo, now: number): ConnectionEntry {
  return {
    protocol: connProtoName(c.protoNumber),
    expiresMs: Math.max(0, c.expires - now),
    state: c.state,
    client: { addr: c.caddr, port: c.cport },
    virtual: { addr: c.vaddr, port: c.vport },
    dest: { addr: c.daddr, port: c.dport },
    ...(c.template ? { template: true } : {}),
  };
}

export class Proxy {
  readonly tables: Tables;
  readonly fw: Forwarder;
  readonly health: HealthManager;
  readonly vips: VipManager;
  desired: DesiredState;
  healthSpecs: Map<string, HealthSpec>;
  control?: ControlServer;
  metricsServer?: Server;
  private timer?: NodeJS.Timeout;
  private queue: Promise<unknown> = Promise.resolve();
  private stopping = false;
  private zeroBase = new Map<
    string,
    { conns: bigint; inPkts: number; outPkts: number; inBytes: number; outBytes: number }
  >();
  private rates = new Map<string, { at: number; prev: Stats; rate: Stats }>();
  readonly started = Date.now();
  readonly syncDaemons: SyncDaemon[] = [];
  private syncFromFlags = false;

  private constructor(
    readonly core: Core,
    public cfg: ProxyConfig,
    readonly log: Logger,
    decisionLog: number,
  ) {
    const o = cfg.options;
    // packet mode: -m is proxy.forward's (full-NAT or masq), a real server may say full-NAT itself
    this.tables = new Tables(core, o.mode === "packet" ? o.packet.forward : "masq", o.mode === "packet");
    if (o.mode === "packet") {
      // proxy.workers 0 (auto) keeps packet mode on one thread: its threads are asked for, not assumed
      const threads = Math.max(1, o.workers);
      this.fw = PacketForwarder.open(core, this.tables, { ...o.packet, decisionLog, threads }, log);
    } else {
      const listeners = cfg.state.services.length;
      const limit = ensureFileLimit(listeners, log, o.maxConns || 16384);
      const workers = o.workers || usableCores();
      // a worker thread holds about 6 descriptors of its own (its loop's, its relay's epoll and spare)
      const threadFds = workers > 1 ? 8 * workers : 0;
      const maxConns = o.maxConns || Math.max(16, Math.floor((limit - listeners - 64 - threadFds) / 2));
      this.fw = new SocketForwarder(
        core,
        this.tables,
        {
          udpFlows: o.udpFlows,
          maxConns,
          drainTimeoutMs: o.drainTimeout * 1000,
          connectTimeoutMs: o.connectTimeout * 1000,
          decisionLog,
          pump: o.pump,
          idleTimeoutMs: o.idleTimeout * 1000,
          workers,
        },
        log,
      );
    }
    this.vips = new VipManager(o.vipInterface, log);
    this.health = new HealthManager(log, (key, up) => this.onHealth(key, up));
    this.desired = clone(cfg.state);
    this.healthSpecs = cfg.health;
  }

  static async start(cfg: ProxyConfig, opts: ProxyStartOptions = {}): Promise<Proxy> {
    const log = opts.log ?? jsonLogger(cfg.options.logLevel);
    if (cfg.options.syncDaemons.length && cfg.options.mode !== "packet")
      throw new Error(
        "the connection sync daemons need packet mode (--mode packet): a socket proxy's flows cannot move",
      );
    if (cfg.options.packet.forward === "masq" && cfg.options.mode !== "packet")
      throw new Error(
        "proxy.forward: masq needs packet mode (--mode packet): socket mode connects to the real servers " +
          "from its own address",
      );
    const core = await Core.load({ debug: opts.debugCore, connCapacity: cfg.options.connCapacity });
    for (const [k, v] of Object.entries(cfg.options.settings)) core.set(k as Parameters<typeof core.set>[0], v);
    const p = new Proxy(core, cfg, log, opts.decisionLog ?? 0); // packet mode: throws when it cannot open its sockets
    p.syncFromFlags = !!opts.syncFromFlags;
    try {
      await p.applyNow();
      await p.startSync();
      if (cfg.options.control) p.control = await ControlServer.listen(p, cfg.options.control);
      if (cfg.options.metrics) p.metricsServer = await startMetricsServer(p, cfg.options.metrics);
    } catch (e) {
      await p.stop();
      throw e;
    }
    p.timer = setInterval(() => p.tick(), cfg.options.tick);
    log.info("proxy started", {
      mode: p.fw.mode,
      services: p.desired.services.length,
      control: cfg.options.control,
      metrics: cfg.options.metrics,
      ...(p.fw instanceof SocketForwarder
        ? { pump: p.fw.relay ? "native" : "js", maxConns: p.fw.opts.maxConns, workers: p.fw.workers?.count ?? 1 }
        : { interfaces: cfg.options.packet.interfaces, localAddresses: cfg.options.packet.localAddresses }),
    });
    return p;
  }

  // The connection sync daemons (src/proxy/sync.ts), once the tables are in place: a backup's entries bind
  // to the destinations they name.
  private async startSync(): Promise<void> {
    const want = this.cfg.options.syncDaemons;
    if (!want.length) return;
    for (const o of want) this.syncDaemons.push(await SyncDaemon.start(this.core, o, () => this.fw.now(), this.log));
  }

  // Serializes changes (control requests, health changes, reloads).
  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const guarded = () => (this.stopping ? Promise.reject(new Error("the proxy is stopping: no changes")) : fn());
    const r = this.queue.then(guarded, guarded);
    this.queue = r.catch(() => {});
    return r;
  }

  private async healthWanted(slicer: Slicer): Promise<Map<string, { spec: HealthSpec; addr: string; port: number }>> {
    const want = new Map<string, { spec: HealthSpec; addr: string; port: number }>();
    if (this.healthSpecs.size === 0) return want; // the usual case: no key to build per real server
    for (const s of this.desired.services) {
      for (const r of s.realServers) {
        const k = healthKey(s, r);
        const spec = this.healthSpecs.get(k);
        if (spec) want.set(k, { spec, addr: r.addr, port: r.port || s.port! });
      }
      await slicer.pause();
    }
    return want;
  }

  // Applies this.desired to the core, the VIPs and the listeners, in slices (see slice.ts).
  private async applyNow(): Promise<void> {
    const slicer = new Slicer();
    this.health.sync(await this.healthWanted(slicer));
    const res = await this.tables.applyInSlices(this.desired, (k) => this.health.down(k), slicer, true);
    await this.markRemoved(res, slicer);
    const local = this.fw.mode === "packet" ? this.cfg.options.packet.localAddresses : [];
    const vips = new Set<string>(local);
    for (const s of this.desired.services) {
      if (s.addr) vips.add(s.addr); // a fwmark service has none: its packets are routed here and marked
      await slicer.pause();
    }
    const missing = await this.vips.ensure([...vips]);
    if (missing.length)
      this.log.warn(
        this.fw.mode === "packet"
          ? "VIPs or full-NAT local addresses not local"
          : "VIPs not local and not added: listening on them fails unless non-local binding is allowed",
        { vips: missing },
      );
    const errors = await this.fw.sync(this.desired.services);
    for (const k of res.removedServices) {
      const addr = k.replace(/^\w+ \[?(.*?)\]?:\d+$/, "$1");
      if (!vips.has(addr)) await this.vips.release(addr);
    }
    if (errors.length) throw new Error(errors.map((e) => `${e.key}: ${e.error}`).join("; "));
  }

  // The forwarder's drain bookkeeping for what the tables removed and added, a few thousand keys at a time.
  private async markRemoved(res: ApplyResult, slicer: Slicer): Promise<void> {
    const step = 4096;
    if (res.removedDests.length + res.addedDests.length <= step)
      return this.fw.markRemoved(res.removedDests, res.addedDests);
    for (let i = 0; i < res.removedDests.length; i += step) {
      this.fw.markRemoved(res.removedDests.slice(i, i + step), []);
      await slicer.next();
    }
    for (let i = 0; i < res.addedDests.length; i += step) {
      this.fw.markRemoved([], res.addedDests.slice(i, i + step));
      await slicer.next();
    }
  }

  private onHealth(_key: string, _up: boolean) {
    void this.serial(async () => {
      const slicer = new Slicer();
      await this.markRemoved(await this.tables.applyInSlices(this.desired, (k) => this.health.down(k), slicer), slicer);
    }).catch((e) => this.log.error("applying health change failed", { error: (e as Error).message }));
  }

  /** A change to the desired state: `build` makes the next state beside the current one (which it must not
   * change; unchanged parts may be shared, as nothing edits a state in place), and the next is checked and
   * applied, or the current one re-applied and the change rejected. */
  change(build: (d: DesiredState) => DesiredState | Promise<DesiredState>, checked = false): Promise<void> {
    return this.serial(async () => {
      const before = this.desired;
      const next = await build(before);
      // `checked`: the caller's build ran proxyStateProblems (the batch worker does, off this thread)
      const problems = checked ? [] : await proxyStateProblemsInSlices(next);
      if (problems.length) throw new Error(formatProblems(problems));
      this.desired = next;
      try {
        await this.applyNow();
      } catch (e) {
        this.desired = before;
        try {
          await this.applyNow();
        } catch {
          /* back to what worked */
        }
        throw e;
      }
    });
  }

  // Re-reads the configuration file: established flows, persistence, scheduler state and health state stay.
  // The sync daemons follow the file's proxy.syncDaemons (unless --sync-daemon set them): each one whose options
  // changed is restarted, a removed one stopped, a new one started; one that cannot start (no such interface,
  // no address) refuses the reload before anything changes.
  reload(cfg?: ProxyConfig): Promise<{ services: number }> {
    return this.serial(async () => {
      // read in a worker thread: a large file's parse on this thread would hold every connection meanwhile
      const next = cfg ?? (this.cfg.file ? await loadConfigOffThread(this.cfg.file) : undefined);
      if (!next) throw new Error("no configuration file to reload");
      // the file's section when the file is read here (a caller's config, as a cluster sync's, keeps them)
      const sync = cfg || this.syncFromFlags ? this.cfg.options.syncDaemons : next.options.syncDaemons;
      const why = this.syncDaemonProblems(sync);
      if (why.length) throw new Error(`reload refused, nothing changed: ${why.join("; ")}`);
      const before = { desired: this.desired, health: this.healthSpecs };
      // a file's state is new objects, ours; a caller's (a cluster sync's) is copied, in slices
      this.desired = cfg ? await cloneInSlices(next.state) : next.state;
      this.healthSpecs = next.health;
      try {
        await this.applyNow();
      } catch (e) {
        this.desired = before.desired;
        this.healthSpecs = before.health;
        await this.applyNow().catch(() => {});
        throw e;
      }
      this.cfg = { ...next, options: { ...this.cfg.options, syncDaemons: sync } };
      await this.resyncDaemons(sync);
      this.log.info("reloaded", { file: next.file, services: this.desired.services.length });
      return { services: this.desired.services.length };
    });
  }

  private syncDaemonProblems(want: SyncDaemonOptions[]): string[] {
    const changed = want.filter((w) => !this.syncDaemons.some((d) => sameSyncOptions(d.opts, w)));
    if (!changed.length) return [];
    if (this.fw.mode !== "packet")
      return ["the connection sync daemons need packet mode (--mode packet): a socket proxy's flows cannot move"];
    return syncStartProblems(changed);
  }

  // Brings the running daemons to `want`: the same options keep running as they are (a master's message
  // being filled, a backup's socket), others are stopped first, then the missing ones started.
  private async resyncDaemons(want: SyncDaemonOptions[]): Promise<void> {
    for (const d of [...this.syncDaemons]) {
      const w = want.find((x) => x.state === d.opts.state);
      if (w && sameSyncOptions(w, d.opts)) continue;
      await d.stop();
      this.syncDaemons.splice(this.syncDaemons.indexOf(d), 1);
      this.log.info("sync daemon stopped", { state: d.opts.state, why: w ? "its options changed" : "not configured" });
    }
    for (const w of want) {
      if (this.syncDaemons.some((d) => d.opts.state === w.state)) continue;
      try {
        this.syncDaemons.push(await SyncDaemon.start(this.core, w, () => this.fw.now(), this.log));
      } catch (e) {
        // past the checks (a socket refused, say): the tables are applied; say that the daemon is not running
        throw new Error(`reloaded, but the ${w.state} sync daemon did not start: ${(e as Error).message}`);
      }
    }
  }

  private tick() {
    try {
      this.fw.tick();
    } catch (e) {
      this.log.error("tick failed", { error: (e as Error).message });
    }
  }

  // ---- views -------------------------------------------------------------------------------------
  private rate(key: string, s: Stats): Stats {
    const now = Date.now();
    let r = this.rates.get(key);
    if (!r) {
      this.rates.set(key, (r = { at: now, prev: { ...s }, rate: ZERO_STATS() }));
      return r.rate;
    }
    if (now - r.at >= 2000) {
      const dt = BigInt(now - r.at);
      const per = (a: bigint, b: bigint) => ((a - b) * 1000n) / dt;
      r.rate = {
        ...ZERO_STATS(),
        cps: per(s.conns, r.prev.conns),
        inPps: per(s.inPkts, r.prev.inPkts),
        outPps: per(s.outPkts, r.prev.outPkts),
        inBps: per(s.inBytes, r.prev.inBytes),
        outBps: per(s.outBytes, r.prev.outBytes),
      };
      r.at = now;
      r.prev = { ...s };
    }
    return r.rate;
  }

  private stats(key: string, conns: bigint): Stats {
    const st = this.fw.stats.get(key) ?? { inPkts: 0, outPkts: 0, inBytes: 0, outBytes: 0 };
    const z = this.zeroBase.get(key) ?? { conns: 0n, inPkts: 0, outPkts: 0, inBytes: 0, outBytes: 0 };
    const s: Stats = {
      ...ZERO_STATS(),
      conns: conns - z.conns,
      inPkts: BigInt(st.inPkts - z.inPkts),
      outPkts: BigInt(st.outPkts - z.outPkts),
      inBytes: BigInt(st.inBytes - z.inBytes),
      outBytes: BigInt(st.outBytes - z.outBytes),
    };
    const r = this.rate(key, s);
    return { ...s, cps: r.cps, inPps: r.inPps, outPps: r.outPps, inBps: r.inBps, outBps: r.outBps };
  }

  services(): ServiceView[] {
    const out: ServiceView[] = [];
    for (const _ of this.serviceViews(out));
    return out;
  }

  /** services() in stretches of the loop (-Ln over the control socket: a service may have 20,000 real servers). */
  async servicesSliced(): Promise<ServiceView[]> {
    const out: ServiceView[] = [];
    const slicer = new Slicer();
    for (const _ of this.serviceViews(out)) await slicer.pause();
    return out;
  }

  // Fills out, one destination a step, so that a caller may yield between steps.
  private *serviceViews(out: ServiceView[]): Generator<void> {
    const flows = this.fw.flowsByDest();
    const specs = new Map(this.desired.services.map((s) => [serviceKey(s), s])); // one pass, not a find per service
    for (const id of this.core.serviceIds()) {
      const a = this.tables.byId.get(id);
      if (!a) continue;
      const info = this.core.service(id);
      const spec = specs.get(a.key) ?? a.spec;
      // by key, not a find per destination: a service may have thousands
      const confs = new Map(spec.realServers.map((r) => [realServerKey(r), r]));
      const dests: DestView[] = [];
      for (const d of info.dests) {
        const rk = realServerKey(d);
        const key = destKey(a.key, d);
        const conf = confs.get(rk);
        const healthy = this.health.down(key) === undefined;
        const f = flows.get(key) ?? 0;
        const stats = this.stats(key, d.conns);
        const agg = { ...stats };
        dests.push({
          key: rk,
          configuredWeight: conf?.weight ?? d.weight,
          healthy,
          flows: f,
          draining: d.weight === 0 && f > 0,
          status: {
            addr: d.addr,
            port: d.port,
            weight: d.weight,
            fwd: d.fwd, // the core's: packet mode's real servers may differ
            upperThreshold: d.upperThreshold,
            lowerThreshold: d.lowerThreshold,
            activeConns: d.activeConns,
            inactConns: d.inactConns,
            persistConns: d.persistConns,
            stats: agg,
          },
        });
        yield;
      }
      // removed destinations that still have flows (draining until the bound)
      const live = new Set(dests.map((d) => d.key));
      for (const r of spec.realServers) {
        const key = destKey(a.key, r);
        if (live.has(realServerKey(r)) || !(flows.get(key) ?? 0)) continue;
        dests.push({
          key: realServerKey(r),
          configuredWeight: r.weight,
          healthy: this.health.down(key) === undefined,
          flows: flows.get(key)!,
          draining: true,
          removed: true,
          status: { ...r, weight: 0, activeConns: 0, inactConns: 0, persistConns: 0, stats: this.stats(key, 0n) },
        });
      }
      const sum = ZERO_STATS();
      for (const d of dests) for (const k of Object.keys(sum) as (keyof Stats)[]) sum[k] += d.status.stats[k];
      const { realServers: _r, ...rest } = spec;
      const z = this.zeroBase.get(a.key);
      sum.conns = info.conns - (z?.conns ?? 0n);
      out.push({
        key: a.key,
        dests,
        status: { ...rest, realServers: dests.filter((d) => !d.removed).map((d) => d.status), stats: sum },
      });
    }
    return out;
  }

  serviceStatus(): ServiceStatus[] {
    return this.services().map((s) => s.status);
  }

  async serviceStatusSliced(): Promise<ServiceStatus[]> {
    return (await this.servicesSliced()).map((s) => s.status);
  }

  connections(): ConnectionEntry[] {
    const now = this.fw.now();
    return this.core.conns().map((c) => connectionEntry(c, now));
  }

  /** connections() in stretches of the loop (-Lnc over the control socket: the table may hold a million). */
  async connectionsSliced(): Promise<ConnectionEntry[]> {
    const now = this.fw.now();
    const out: ConnectionEntry[] = [];
    const slicer = new Slicer();
    for (const c of this.core.eachConn()) {
      out.push(connectionEntry(c, now));
      await slicer.pause();
    }
    return out;
  }

  info(): TargetInfo {
    const pkg = JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8"));
    return { version: `wasmvs ${pkg.version} proxy`, connTableSize: this.core.connStats().capacity };
  }

  timeouts(): IpvsTimeouts {
    return this.core.timeouts();
  }

  zero(svc?: VirtualService): void {
    const want = svc ? serviceKey(svc) : undefined;
    for (const s of this.services()) {
      if (want && s.key !== want) continue;
      const info = this.core.service(this.tables.services.get(s.key)!.id);
      this.zeroBase.set(s.key, { conns: info.conns, inPkts: 0, outPkts: 0, inBytes: 0, outBytes: 0 });
      for (const d of info.dests) {
        const k = destKey(s.key, d);
        const st = this.fw.stats.get(k) ?? { inPkts: 0, outPkts: 0, inBytes: 0, outBytes: 0 };
        this.zeroBase.set(k, { conns: d.conns, ...st });
      }
    }
    this.rates.clear();
  }

  status() {
    return {
      uptimeMs: Date.now() - this.started,
      mode: this.fw.mode,
      ...this.fw.status(),
      health: this.health.states().map((h) => ({ key: h.key, up: h.up, checks: h.checks, detail: h.lastDetail })),
      conn: this.core.connStats(),
      ...(this.syncDaemons.length ? { sync: syncStatus(this.core, this.syncDaemons) } : {}),
    };
  }

  /** Established TCP connections (what a graceful stop waits for; UDP flows have no end to wait for). */
  activeConnections(): number {
    if (this.fw instanceof SocketForwarder) return this.fw.tcp.size;
    let n = 0;
    for (const a of this.tables.services.values()) for (const d of this.core.service(a.id).dests) n += d.activeConns;
    return n;
  }

  /** A graceful stop: take no new connections, let the established ones finish for up to `boundMs` (or until
   * `now` resolves: a second signal), then stop. Changes are refused meanwhile. Returns how many were cut. */
  async shutdown(
    boundMs: number,
    now: Promise<unknown> = new Promise(() => {}),
  ): Promise<{ drained: number; cut: number; ms: number }> {
    const t0 = Date.now();
    this.stopping = true;
    await this.queue; // a change in progress finishes first
    const start = this.activeConnections();
    this.log.info("stopping: no new connections, draining the established ones", {
      connections: start,
      boundSeconds: boundMs / 1000,
    });
    this.health.stop();
    if (this.fw instanceof SocketForwarder) {
      await this.fw.sync([]); // closes the listeners; their flows stay
      // the bound here is the stop's, not proxy.drainTimeout (a removed real server's)
      for (const k of this.tables.services.keys()) this.fw.removedAt.delete(k);
    } else {
      this.tables.apply(this.desired, () => "quiesce"); // packet mode: weight 0 everywhere, established flows go on
    }
    let forced = false;
    void now.then(() => {
      forced = true;
    });
    while (!forced && Date.now() - t0 < boundMs && this.activeConnections() > 0)
      await new Promise((r) => setTimeout(r, 50));
    const cut = this.activeConnections();
    if (cut)
      this.log.warn(
        forced ? "stopping at once: closing the connections left" : "drain bound reached: closing the connections left",
        { connections: cut },
      );
    await this.stop();
    return { drained: Math.max(0, start - cut), cut, ms: Date.now() - t0 };
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    for (const d of this.syncDaemons.splice(0)) await d.stop();
    this.health.stop();
    await this.control?.close();
    await new Promise<void>((r) => (this.metricsServer ? this.metricsServer.close(() => r()) : r()));
    this.metricsServer?.closeAllConnections?.();
    await this.fw.close();
    await this.vips.cleanup();
    this.log.info("proxy stopped");
  }
}

// One change at a time, for callers that edit a desired state directly (the soak benchmark).
export const ops = {
  addService: (d: DesiredState, s: VirtualService) => applyCommands(d, [{ kind: "add-service", service: s }]),
  editService: (d: DesiredState, s: VirtualService) => applyCommands(d, [{ kind: "edit-service", service: s }]),
  deleteService: (d: DesiredState, s: VirtualService) => applyCommands(d, [{ kind: "delete-service", service: s }]),
  addRealServer: (d: DesiredState, s: VirtualService, r: RealServer) =>
    applyCommands(d, [{ kind: "add-server", service: s, server: r }]),
  editRealServer: (d: DesiredState, s: VirtualService, r: RealServer) =>
    applyCommands(d, [{ kind: "edit-server", service: s, server: r }]),
  deleteRealServer: (d: DesiredState, s: VirtualService, r: Pick<RealServer, "addr" | "port">) =>
    applyCommands(d, [
      {
        kind: "delete-server",
        service: s,
        server: { weight: 0, fwd: "masq", upperThreshold: 0, lowerThreshold: 0, ...r },
      },
    ]),
};
