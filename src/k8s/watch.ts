// Watch a live cluster: @kubernetes/client-node's ListWatch for Services and EndpointSlices (paginated list,
// then a watch from the list's resourceVersion with bookmarks; on 410 Gone it relists and reconciles), each
// event applied to the incremental index at once, and syncs emitted as kube-proxy's BoundedFrequencyRunner
// would run them: not before both kinds are listed, at most a burst of 2 then one per minSyncPeriod, and a
// periodic full sync every syncPeriod.
import { CoreV1Api, DiscoveryV1Api, KubeConfig, ListWatch, Watch } from "@kubernetes/client-node";
import type { KubernetesObject } from "@kubernetes/client-node";
import type { DesiredState } from "../model/types.ts";
import { ClusterIndex, type Change, type IndexOptions } from "./cluster.ts";

export interface SyncUpdate {
  reason: "initial" | "change" | "periodic";
  desired: DesiredState;
  /** every change applied since the previous sync, merged (empty for a periodic sync) */
  changes: Change[];
  index: ClusterIndex;
}

export interface WatchOptions extends IndexOptions {
  kubeconfig?: string | KubeConfig;     // path, a KubeConfig, or default loading (KUBECONFIG, ~/.kube/config, in-cluster)
  pageSize?: number;                    // list chunk size (limit/continue); default 500
  minSyncPeriodMs?: number;             // default: the configuration's
  syncPeriodMs?: number;
  onSync: (u: SyncUpdate) => void;
  onError?: (err: unknown, what: string) => void;
}

type Lister<T> = (p: { limit?: number; _continue?: string }) => Promise<{ items: T[]; metadata?: { resourceVersion?: string; _continue?: string } }>;

/** Bookmarks: ListWatch does not ask for them, so the watch request is given allowWatchBookmarks=true. */
class BookmarkWatch extends Watch {
  override watch(path: string, queryParams: Record<string, string | number | boolean | undefined>, callback: (phase: string, apiObj: any, watchObj?: any) => void, done: (err: any) => void) {
    return super.watch(path, { ...queryParams, allowWatchBookmarks: true }, callback, done);
  }
}

export class KubeWatcher {
  readonly index: ClusterIndex;
  private kc: KubeConfig;
  private informers: ListWatch<KubernetesObject>[] = [];
  private listed = { services: false, slices: false };
  private pending: Change[] = [];
  private timer: NodeJS.Timeout | NodeJS.Immediate | null = null;
  private periodic: NodeJS.Timeout | null = null;
  private tokens = 2;                   // BoundedFrequencyRunner burst
  private lastRefill = Date.now();
  private stopped = false;
  private initialDone = false;
  private firstSync!: Promise<void>;
  private resolveFirst!: () => void;
  readonly minSyncPeriodMs: number;
  readonly syncPeriodMs: number;
  syncs = 0;

  constructor(private opts: WatchOptions) {
    this.index = new ClusterIndex(opts);
    this.minSyncPeriodMs = opts.minSyncPeriodMs ?? this.index.config.minSyncPeriodMs;
    this.syncPeriodMs = opts.syncPeriodMs ?? this.index.config.syncPeriodMs;
    if (opts.kubeconfig instanceof KubeConfig) this.kc = opts.kubeconfig;
    else {
      this.kc = new KubeConfig();
      if (typeof opts.kubeconfig === "string") this.kc.loadFromFile(opts.kubeconfig); else this.kc.loadFromDefault();
    }
    this.firstSync = new Promise((r) => (this.resolveFirst = r));
  }

  /** Start both informers; resolves after the first sync (both kinds listed). */
  async start(): Promise<void> {
    const core = this.kc.makeApiClient(CoreV1Api), disc = this.kc.makeApiClient(DiscoveryV1Api);
    const limit = this.opts.pageSize ?? 500;
    const pages = <T>(what: "services" | "slices", list: Lister<T>) => async () => {
      const items: T[] = [];
      let cont: string | undefined, rv = "";
      do {
        const page = await list({ limit, _continue: cont });
        items.push(...page.items);
        rv = page.metadata?.resourceVersion ?? rv;
        cont = page.metadata?._continue || undefined;
      } while (cont);
      // ListWatch applies the items right after this resolves; mark the kind listed once it has
      setImmediate(() => this.listedKind(what));
      return { items, metadata: { resourceVersion: rv } } as never;
    };
    const watch = new BookmarkWatch(this.kc);
    const mk = (path: string, what: "services" | "slices", list: Lister<KubernetesObject>) => {
      const lw = new ListWatch<KubernetesObject>(path, watch, pages(what, list), false);
      const add = (o: KubernetesObject) => this.changed(what === "services" ? this.index.applyService(o as never) : this.index.applyEndpointSlice(o as never));
      const del = (o: KubernetesObject) => {
        const ns = o.metadata?.namespace ?? "default", name = o.metadata?.name ?? "";
        this.changed(what === "services" ? this.index.deleteService(ns, name) : this.index.deleteEndpointSlice(ns, name));
      };
      lw.on("add", add); lw.on("update", add); lw.on("delete", del);
      lw.on("error", (err: unknown) => {
        // the client ends every watch after 30 s (an AbortError/TimeoutError): re-watch from the last
        // resourceVersion, quietly; anything else is reported, then retried after a second
        const name = (err as { name?: string })?.name;
        if (name !== "AbortError" && name !== "TimeoutError") this.opts.onError?.(err, path);
        if (!this.stopped) setTimeout(() => { if (!this.stopped) void lw.start(); }, 1000).unref();
      });
      this.informers.push(lw);
      return lw;
    };
    const svc = mk("/api/v1/services", "services", (p) => core.listServiceForAllNamespaces(p) as never);
    const eps = mk("/apis/discovery.k8s.io/v1/endpointslices", "slices", (p) => disc.listEndpointSliceForAllNamespaces(p) as never);
    await Promise.all([svc.start(), eps.start()]);
    this.periodic = setInterval(() => this.request("periodic"), this.syncPeriodMs);
    this.periodic.unref();
    return this.firstSync;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) { clearTimeout(this.timer as NodeJS.Timeout); clearImmediate(this.timer as NodeJS.Immediate); }
    if (this.periodic) clearInterval(this.periodic);
    await Promise.all(this.informers.map((i) => i.stop()));
  }

  private listedKind(what: "services" | "slices") {
    this.listed[what] = true;
    if (!this.initialDone && this.listed.services && this.listed.slices) {
      this.initialDone = true;
      this.emit("initial");                                 // OnServiceSynced/OnEndpointSlicesSynced: sync unconditionally
      this.resolveFirst();
    }
  }

  private changed(ch: Change) {
    if (ch.errors.length) for (const e of ch.errors) this.opts.onError?.(e, "input");
    if (!ch.added.length && !ch.updated.length && !ch.removed.length && !ch.ipsetAdd.length && !ch.ipsetDel.length && !ch.bindAdd.length && !ch.bindDel.length) return;
    this.pending.push(ch);
    if (this.initialDone) this.request("change");
  }

  /** BoundedFrequencyRunner.Run: run now if a token is free, else when the next one is. */
  private request(reason: "change" | "periodic") {
    if (this.stopped || !this.initialDone || this.timer) return;
    const now = Date.now();
    if (this.minSyncPeriodMs > 0) {
      this.tokens = Math.min(2, this.tokens + (now - this.lastRefill) / this.minSyncPeriodMs);
      this.lastRefill = now;
    } else this.tokens = 2;
    const wait = this.tokens >= 1 ? 0 : (1 - this.tokens) * this.minSyncPeriodMs;
    const fire = () => {
      this.timer = null;
      if (this.minSyncPeriodMs > 0) { this.tokens = Math.min(2, this.tokens + (Date.now() - this.lastRefill) / this.minSyncPeriodMs) - 1; this.lastRefill = Date.now(); }
      this.emit(this.pending.length ? "change" : reason);
    };
    this.timer = wait === 0 ? setImmediate(fire) : setTimeout(fire, wait);
  }

  private emit(reason: SyncUpdate["reason"]) {
    const changes = this.pending;
    this.pending = [];
    this.syncs++;
    // the whole desired state is built only if the receiver reads it (a partial sync needs the changes only)
    const index = this.index;
    let desired: DesiredState | undefined;
    this.opts.onSync({ reason, get desired() { return (desired ??= index.desiredState()); }, changes, index });
  }
}
