// Watch a live cluster: for Services and EndpointSlices, a paginated list, then a watch from the list's
// resourceVersion, each event validated and applied to the incremental index at once; syncs are emitted as
// kube-proxy's BoundedFrequencyRunner would run them: not before both kinds are listed, at most a burst of 2
// then one per minSyncPeriod, and a periodic full sync every syncPeriod.
//
// A watch can go quiet without ending (a dead connection no one resets, a stuck apiserver): then the index,
// and the kernel behind it, would keep old endpoints forever. So, as client-go's reflector does, each watch
// asks the server to end it after timeoutSeconds (5-10 min, random, so nodes do not re-watch together) and
// asks for bookmarks; beside that a client-side idle deadline aborts a watch that sent neither an event nor
// a bookmark for idleTimeoutMs and relists, and a periodic relist bounds what any missed event can cost.
// (@kubernetes/client-node 1.4's Watch does not bound a watch: its 30 s AbortSignal.timeout is overwritten
// by the caller's controller before the request. Its ListWatch also reads fields of an event before anyone
// checks them, in an async handler: one malformed event was an unhandled rejection that ended the process.)
// Every event is checked before the index sees it; what is refused is logged and counted, and the last good
// state stays. Errors back off exponentially with jitter, up to a cap.
import * as http from "node:http";
import * as https from "node:https";
import { CoreV1Api, DiscoveryV1Api, KubeConfig } from "@kubernetes/client-node";
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
  kubeconfig?: string | KubeConfig; // path, a KubeConfig, or default loading (KUBECONFIG, ~/.kube/config, in-cluster)
  pageSize?: number; // list chunk size (limit/continue); default 500
  minSyncPeriodMs?: number; // default: the configuration's
  syncPeriodMs?: number;
  /** the server ends each watch after a random time in [this, 2×this] (timeoutSeconds); default 300 s */
  watchTimeoutMs?: number;
  /** no event and no bookmark for this long: abort the watch and relist; default 120 s (bookmarks come ~1/min) */
  idleTimeoutMs?: number;
  /** relist everything at least this often (+0-10 % jitter); default 30 min; 0 = never */
  relistPeriodMs?: number;
  /** first retry delay after an error (doubling, jittered); default 800 ms, as client-go's */
  retryBaseMs?: number;
  /** the cap of that backoff; default 30 s */
  retryMaxMs?: number;
  onSync: (u: SyncUpdate) => void;
  onError?: (err: unknown, what: string) => void;
  /** a line worth logging that is not an error (a relist, a retry delay) */
  onNotice?: (msg: string) => void;
}

type Kind = "Service" | "EndpointSlice";
type ListPage = { items: unknown[]; metadata?: { resourceVersion?: string; _continue?: string } };
type Lister = (p: { limit?: number; _continue?: string }) => Promise<ListPage>;

/** What each kind's watch has seen: for metrics and `sync --check`. Times are Date.now() values (0 = never). */
export interface WatchStatus {
  kind: Kind;
  resourceVersion: string;
  watching: boolean;
  lastEventAt: number; // the last event or bookmark (any well-formed watch line)
  lastRelistAt: number;
  watchStartedAt: number;
  relists: number;
  watches: number;
  idleAborts: number;
  errors: number;
  refused: Record<string, number>; // events refused before the index saw them, by reason
  objects: number;
}

/** A stream's "data" handler that calls onLine per line. The line so far is kept as the chunks it came in,
 * and each chunk is searched once: searching the whole line again per chunk held the loop 5.7-8.3 s for one
 * 15 MB watch event at a load of 7-10 (test/k8s-watch). onLine returns false to stop; a line past 16 MiB is
 * dropped (its first 100 characters to onOversize) and what follows it up to the next newline read as a line. */
function lineReader(onLine: (line: string) => boolean, onOversize: (start: string) => void): (chunk: string) => void {
  let parts: string[] = [],
    size = 0;
  return (chunk) => {
    let from = 0,
      nl: number;
    while ((nl = chunk.indexOf("\n", from)) >= 0) {
      parts.push(chunk.slice(from, nl));
      const line = parts.length === 1 ? parts[0] : parts.join("");
      parts = [];
      size = 0;
      from = nl + 1;
      if (!onLine(line)) return;
    }
    if (from < chunk.length) {
      parts.push(chunk.slice(from));
      size += chunk.length - from;
    }
    if (size > 16 << 20) {
      onOversize(parts[0].slice(0, 100));
      parts = [];
      size = 0;
    }
  };
}

class HttpStatusError extends Error {
  constructor(
    readonly statusCode: number,
    msg: string,
  ) {
    super(msg);
    this.name = "HttpStatusError";
  }
}

// (a list's items are the client's model classes, a watch's are parsed JSON: both are objects here)
const isPlainObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === "object" && v !== null && !Array.isArray(v);

/**
 * The envelope every object must have before the index sees it: a plain object whose metadata names it
 * (name and namespace non-empty strings) and carries a resourceVersion string; kind, when present, the one
 * watched. Returns why not, or "" when it is fine. The index then checks every field it maps.
 */
export function envelopeProblem(obj: unknown, kind: Kind): string {
  if (!isPlainObject(obj)) {
    return `the object is ${obj === null ? "null" : Array.isArray(obj) ? "an array" : typeof obj}, not an object`;
  }
  if (obj.kind !== undefined && obj.kind !== kind)
    return `kind ${JSON.stringify(obj.kind)?.slice(0, 40)} on the ${kind} watch`;
  const md = obj.metadata;
  if (!isPlainObject(md)) return "metadata missing or not an object";
  if (typeof md.name !== "string" || !md.name || md.name.length > 253) return "metadata.name missing or not a name";
  if (typeof md.namespace !== "string" || !md.namespace || md.namespace.length > 63) {
    return "metadata.namespace missing or not a name";
  }
  if (md.resourceVersion !== undefined && typeof md.resourceVersion !== "string") {
    return "metadata.resourceVersion not a string";
  }
  return "";
}

/** One kind's list and watch loop (client-go's reflector, reduced to what the index needs). */
class Reflector {
  readonly status: WatchStatus;
  private known = new Map<string, string>(); // "ns/name" -> resourceVersion, of what the index was given
  private stopped = false;
  private req?: http.ClientRequest;
  private idleTimer?: NodeJS.Timeout;
  private sleepTimer?: NodeJS.Timeout;
  private wake?: () => void;
  private relistDue = 0;
  private failures = 0;
  private loop?: Promise<void>;

  constructor(
    private kind: Kind,
    private path: string,
    private list: Lister,
    private w: KubeWatcher,
    private o: WatchOptions,
  ) {
    this.status = {
      kind,
      resourceVersion: "",
      watching: false,
      lastEventAt: 0,
      lastRelistAt: 0,
      watchStartedAt: 0,
      relists: 0,
      watches: 0,
      idleAborts: 0,
      errors: 0,
      refused: {},
      objects: 0,
    };
  }

  /** Resolves after the first successful list; the loop goes on in the background. */
  start(firstList: () => void): void {
    this.loop = this.run(firstList);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.idleTimer);
    clearTimeout(this.sleepTimer);
    this.wake?.();
    this.req?.destroy();
    await this.loop;
  }

  private async run(firstList: () => void): Promise<void> {
    let listedOnce = false;
    while (!this.stopped) {
      try {
        if (!this.status.resourceVersion || (this.relistDue && Date.now() >= this.relistDue)) {
          await this.relist();
          if (!listedOnce) {
            listedOnce = true;
            firstList();
          }
        }
        if (this.stopped) break;
        const t0 = Date.now(),
          before = this.status.lastEventAt;
        await this.watchOnce();
        // a watch the server ends at once, again and again, must not become a busy loop
        const quick = Date.now() - t0 < 1000 && this.status.lastEventAt === before && this.status.resourceVersion;
        if (quick) await this.retryLater(null);
        else this.failures = 0;
      } catch (e) {
        if (this.stopped) break;
        if ((e as HttpStatusError).statusCode === 410 || (e as { code?: number }).code === 410) {
          this.status.resourceVersion = ""; // too old: relist at once
          this.o.onNotice?.(`${this.kind} watch: resourceVersion too old (410 Gone): relisting`);
          continue;
        }
        this.status.errors++;
        await this.retryLater(e);
      }
    }
    this.status.watching = false;
  }

  /** Exponential backoff with jitter: attempt n waits a random time in [d/2, d], d = base·2^(n-1) ≤ cap. */
  private async retryLater(e: unknown): Promise<void> {
    const base = this.o.retryBaseMs ?? 800,
      cap = this.o.retryMaxMs ?? 30_000;
    this.failures++;
    const d = Math.min(cap, base * 2 ** Math.min(this.failures - 1, 30));
    const wait = Math.round(d / 2 + (Math.random() * d) / 2);
    const why = e === null ? "the watch ended at once" : String((e as Error)?.message ?? e);
    this.o.onError?.(
      new Error(
        `${why}; retrying in ${(wait / 1000).toFixed(1)} s (attempt ${this.failures}, ` +
          `backing off exponentially, at most ${(cap / 1000).toFixed(0)} s)`,
      ),
      `${this.kind} ${this.path}`,
    );
    await new Promise<void>((r) => {
      this.wake = r;
      this.sleepTimer = setTimeout(r, wait);
    });
    this.wake = undefined;
  }

  private async relist(): Promise<void> {
    const limit = this.o.pageSize ?? 500;
    const items: unknown[] = [];
    let cont: string | undefined,
      rv = "";
    // a list the server never answers is given up after the idle deadline (default 120 s), then retried
    const pageMs = (this.o.idleTimeoutMs ?? 120_000) || 120_000;
    do {
      let timer: NodeJS.Timeout | undefined;
      const page = await Promise.race([
        this.list({ limit, _continue: cont }),
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new Error(`list ${this.path}: no answer within ${pageMs / 1000} s`)), pageMs);
        }),
      ]).finally(() => clearTimeout(timer));
      if (!page || !Array.isArray(page.items)) throw new Error(`list ${this.path}: the reply has no items`);
      for (const it of page.items) items.push(it);
      rv = page.metadata?.resourceVersion ?? rv;
      cont = page.metadata?._continue || undefined;
    } while (cont && !this.stopped);
    if (this.stopped) return;
    const seen = new Set<string>();
    for (const it of items) {
      const why = envelopeProblem(it, this.kind);
      if (why) {
        this.refuse("bad object", why, it);
        continue;
      }
      const md = (it as { metadata: { namespace: string; name: string; resourceVersion?: string } }).metadata;
      const key = `${md.namespace}/${md.name}`;
      seen.add(key);
      if (md.resourceVersion && this.known.get(key) === md.resourceVersion) continue; // unchanged
      this.apply(it as Record<string, unknown>, key, md.resourceVersion ?? "");
    }
    // what the list no longer has was deleted while we were not watching
    for (const key of [...this.known.keys()]) if (!seen.has(key)) this.remove(key);
    this.status.resourceVersion = rv;
    this.status.lastRelistAt = Date.now();
    this.status.relists++;
    const period = this.o.relistPeriodMs ?? 30 * 60_000;
    this.relistDue = period > 0 ? Date.now() + period * (1 + Math.random() * 0.1) : 0;
  }

  private apply(obj: Record<string, unknown>, key: string, rv: string): void {
    let ch: Change;
    try {
      ch = this.kind === "Service" ? this.w.index.applyService(obj) : this.w.index.applyEndpointSlice(obj);
    } catch (e) {
      // the index checks every field; an exception is a gap in those checks: the object is refused
      this.refuse("index", (e as Error)?.message ?? String(e), obj);
      return;
    }
    this.known.set(key, rv);
    this.status.objects = this.known.size;
    this.w.changed(ch);
  }

  private remove(key: string): void {
    const [ns, name] = key.split("/", 2);
    this.known.delete(key);
    this.status.objects = this.known.size;
    const index = this.w.index;
    this.w.changed(this.kind === "Service" ? index.deleteService(ns, name) : index.deleteEndpointSlice(ns, name));
  }

  private refuse(reason: string, why: string, obj: unknown): void {
    this.status.refused[reason] = (this.status.refused[reason] ?? 0) + 1;
    let text: string;
    try {
      text = typeof obj === "string" ? obj : (JSON.stringify(obj) ?? String(obj));
    } catch {
      text = "(not printable)";
    }
    const total = Object.values(this.status.refused).reduce((a, b) => a + b, 0);
    this.o.onError?.(
      new Error(
        `refused (${why}), ${total} refused so far; the last good state stays: ` +
          `${text.length > 160 ? text.slice(0, 160) + "…" : text}`,
      ),
      `${this.kind} watch`,
    );
  }

  /** One watch from the current resourceVersion, until the server ends it, the idle deadline, or an error. */
  private async watchOnce(): Promise<void> {
    const cluster = this.w.kc.getCurrentCluster();
    if (!cluster) throw new Error("the kubeconfig has no current cluster");
    const url = new URL(cluster.server.replace(/\/+$/, "") + this.path);
    const timeoutS = Math.round(((this.o.watchTimeoutMs ?? 300_000) / 1000) * (1 + Math.random()));
    url.searchParams.set("watch", "true");
    url.searchParams.set("resourceVersion", this.status.resourceVersion);
    url.searchParams.set("allowWatchBookmarks", "true");
    url.searchParams.set("timeoutSeconds", String(Math.max(1, timeoutS)));
    const opts: https.RequestOptions = {};
    await this.w.kc.applyToHTTPSOptions(opts);
    if (this.stopped) return;
    const idleMs = this.o.idleTimeoutMs ?? 120_000;
    await new Promise<void>((resolve, reject) => {
      let settled = false;
      const done = (e?: unknown) => {
        if (settled) return;
        settled = true;
        clearTimeout(this.idleTimer);
        this.status.watching = false;
        this.req?.destroy();
        this.req = undefined;
        if (e) reject(e);
        else resolve();
      };
      const idle = () => {
        clearTimeout(this.idleTimer);
        if (idleMs <= 0) return;
        this.idleTimer = setTimeout(() => {
          this.status.idleAborts++;
          this.status.resourceVersion = ""; // relist: events may have been lost in the silence
          this.o.onNotice?.(
            `${this.kind} watch: no event and no bookmark for ${(idleMs / 1000).toFixed(0)} s: ` + "aborted, relisting",
          );
          done();
        }, idleMs);
        this.idleTimer.unref?.();
      };
      const mod = url.protocol === "https:" ? https : http;
      const headers = { ...opts.headers, Accept: "application/json" };
      const req = mod.request(url, { ...opts, method: "GET", headers }, (res) => {
        if (res.statusCode !== 200) {
          let body = "";
          res.setEncoding("utf8");
          res.on("data", (d) => {
            if (body.length < 4096) body += d;
          });
          res.on("end", () => {
            let msg = body.slice(0, 200);
            try {
              msg = String(JSON.parse(body).message ?? msg);
            } catch {
              /* not JSON: the text */
            }
            done(new HttpStatusError(res.statusCode ?? 0, `watch ${this.path}: HTTP ${res.statusCode} ${msg}`.trim()));
          });
          res.on("error", done);
          return;
        }
        this.status.watching = true;
        this.status.watches++;
        this.status.watchStartedAt = Date.now();
        idle();
        res.setEncoding("utf8");
        res.on(
          "data",
          lineReader(
            (line) => {
              if (line.trim()) this.line(line, idle, done);
              return !settled;
            },
            // one event is one line; a line that never ends is not an event (bounded memory)
            (start) => this.refuse("oversized", "a watch line over 16 MiB", start),
          ),
        );
        res.on("end", () => done());
        res.on("error", (e) => done(e));
        res.on("close", () => done());
      });
      this.req = req;
      req.on("error", (e) => done(e));
      req.end();
      idle(); // a server that never answers counts as silent too
    });
  }

  private line(line: string, idle: () => void, done: (e?: unknown) => void): void {
    let ev: unknown;
    try {
      ev = JSON.parse(line);
    } catch {
      this.refuse("unparsable", "not JSON", line);
      return;
    }
    if (!isPlainObject(ev)) {
      this.refuse("bad event", "not an object", line);
      return;
    }
    const type = ev.type,
      obj = ev.object;
    if (type === "ERROR") {
      idle();
      const status = isPlainObject(obj) ? obj : {};
      if (status.code === 410) {
        this.status.resourceVersion = "";
        done(new HttpStatusError(410, "resourceVersion too old"));
        return;
      }
      const msg = String(status.message ?? JSON.stringify(status)).slice(0, 200);
      done(new Error(`watch ${this.path}: the server sent an ERROR: ${msg}`));
      return;
    }
    if (type !== "ADDED" && type !== "MODIFIED" && type !== "DELETED" && type !== "BOOKMARK") {
      this.refuse("bad event", `unknown event type ${JSON.stringify(type)?.slice(0, 40)}`, line);
      return;
    }
    if (type === "BOOKMARK") {
      const md = isPlainObject(obj) && isPlainObject(obj.metadata) ? obj.metadata : undefined;
      if (!md || typeof md.resourceVersion !== "string" || !md.resourceVersion) {
        this.refuse("bad event", "a bookmark without resourceVersion", line);
        return;
      }
      idle();
      this.status.lastEventAt = Date.now();
      this.status.resourceVersion = md.resourceVersion;
      return;
    }
    const why = envelopeProblem(obj, this.kind);
    if (why) {
      this.refuse("bad object", why, line);
      return;
    }
    idle();
    this.status.lastEventAt = Date.now();
    const md = (obj as { metadata: { namespace: string; name: string; resourceVersion?: string } }).metadata;
    const key = `${md.namespace}/${md.name}`;
    if (type === "DELETED") {
      if (this.known.has(key)) this.remove(key);
    } else this.apply(obj as Record<string, unknown>, key, md.resourceVersion ?? "");
    if (md.resourceVersion) this.status.resourceVersion = md.resourceVersion;
  }
}

export class KubeWatcher {
  readonly index: ClusterIndex;
  readonly kc: KubeConfig;
  private reflectors: Reflector[] = [];
  private listed = { Service: false, EndpointSlice: false };
  private pending: Change[] = [];
  private timer: NodeJS.Timeout | NodeJS.Immediate | null = null;
  private periodic: NodeJS.Timeout | null = null;
  private tokens = 2; // BoundedFrequencyRunner burst
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
      if (typeof opts.kubeconfig === "string") this.kc.loadFromFile(opts.kubeconfig);
      else this.kc.loadFromDefault();
    }
    this.firstSync = new Promise((r) => (this.resolveFirst = r));
  }

  /** The client-side idle deadline (0 = none). */
  get idleTimeoutMs(): number {
    return this.opts.idleTimeoutMs ?? 120_000;
  }

  /** Each kind's watch: its age and counts. */
  status(): WatchStatus[] {
    return this.reflectors.map((r) => ({ ...r.status, refused: { ...r.status.refused } }));
  }

  /** Start both kinds' list and watch; resolves after the first sync (both kinds listed). */
  async start(): Promise<void> {
    const core = this.kc.makeApiClient(CoreV1Api),
      disc = this.kc.makeApiClient(DiscoveryV1Api);
    const mk = (kind: Kind, path: string, list: Lister) => {
      const r = new Reflector(kind, path, list, this, this.opts);
      this.reflectors.push(r);
      r.start(() => this.listedKind(kind));
    };
    mk("Service", "/api/v1/services", (p) => core.listServiceForAllNamespaces(p) as never);
    mk(
      "EndpointSlice",
      "/apis/discovery.k8s.io/v1/endpointslices",
      (p) => disc.listEndpointSliceForAllNamespaces(p) as never,
    );
    this.periodic = setInterval(() => this.request("periodic"), this.syncPeriodMs);
    this.periodic.unref();
    return this.firstSync;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) {
      clearTimeout(this.timer as NodeJS.Timeout);
      clearImmediate(this.timer as NodeJS.Immediate);
    }
    if (this.periodic) clearInterval(this.periodic);
    await Promise.all(this.reflectors.map((r) => r.stop()));
  }

  private listedKind(kind: Kind) {
    this.listed[kind] = true;
    if (!this.initialDone && this.listed.Service && this.listed.EndpointSlice) {
      this.initialDone = true;
      this.emit("initial"); // OnServiceSynced/OnEndpointSlicesSynced: sync unconditionally
      this.resolveFirst();
    }
  }

  /** @internal the reflectors' changes */
  changed(ch: Change) {
    if (ch.errors.length) for (const e of ch.errors) this.opts.onError?.(e, "input");
    if (
      !ch.added.length &&
      !ch.updated.length &&
      !ch.removed.length &&
      !ch.ipsetAdd.length &&
      !ch.ipsetDel.length &&
      !ch.bindAdd.length &&
      !ch.bindDel.length
    )
      return;
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
      if (this.minSyncPeriodMs > 0) {
        this.tokens = Math.min(2, this.tokens + (Date.now() - this.lastRefill) / this.minSyncPeriodMs) - 1;
        this.lastRefill = Date.now();
      }
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
    try {
      this.opts.onSync({
        reason,
        get desired() {
          return (desired ??= index.desiredState());
        },
        changes,
        index,
      });
    } catch (e) {
      this.opts.onError?.(e, "sync"); // the receiver's failure: reported, the watch goes on
    }
  }
}
