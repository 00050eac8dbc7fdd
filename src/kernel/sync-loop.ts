// The sync loop: KubeProxyConfiguration's syncPeriod / minSyncPeriod (kube-proxy's BoundedFrequencyRunner)
import type { DesiredState, VirtualService } from "../model/types.ts";
import type { Reconciler } from "./reconcile.ts";
import type { ReconcileReport } from "./report.ts";
import { canonServiceKey } from "./keys.ts";

export interface SyncLoopOptions {
  syncPeriodMs?: number; // a full sync (kernel re-read, drift repaired) at least this often; default 30 s
  minSyncPeriodMs?: number; // triggered syncs at most `burst` per this period; default 0 (at once)
  burst?: number; // default 2 (kube-proxy's)
  drainCheckMs?: number; // while something drains, check it this often; default 1 s
  /** Runs before each table pass (the node's addresses and ipset entries, added before their services). */
  beforePass?: (kind: "full" | "triggered") => Promise<void> | void;
  retryBaseMs?: number; // a failed pass is retried as a full sync after this, doubling; default 1 s
  retryMaxMs?: number; // ... up to this (the cap); default 30 s
  onReport?: (r: ReconcileReport, kind: "full" | "triggered" | "drain") => void;
  /** A pass that could not run (the kernel could not be read or written); `retry` says when it runs again. */
  onError?: (e: Error, retry?: RetryInfo) => void;
}

/** When a failed pass runs again: attempt n waits a random time in [b·2^(n-1)/2, b·2^(n-1)], at most the cap. */
export interface RetryInfo {
  attempt: number;
  delayMs: number;
  maxMs: number;
}

export class SyncLoop {
  private timer?: NodeJS.Timeout;
  private drainTimer?: NodeJS.Timeout;
  private running?: Promise<void>;
  private pending: "none" | "triggered" | "full" = "none";
  private tokens: number;
  private lastRefill = 0;
  private lastFull = 0;
  private stopped = true;
  private failedRuns = 0; // consecutive passes that threw or reported failures
  /** Consecutive passes that failed (0 after a clean one). */
  get failedPasses(): number {
    return this.failedRuns;
  }
  private retryAt = 0; // no pass before this (the backoff)
  runs = 0;
  readonly syncPeriodMs: number;
  readonly minSyncPeriodMs: number;
  readonly burst: number;

  constructor(
    readonly reconciler: Reconciler,
    private desired: () => DesiredState | Promise<DesiredState>,
    private o: SyncLoopOptions = {},
  ) {
    this.syncPeriodMs = o.syncPeriodMs ?? 30_000;
    this.minSyncPeriodMs = o.minSyncPeriodMs ?? 0;
    this.burst = Math.max(1, o.burst ?? 2);
    this.tokens = this.burst;
  }

  /** Starts with a full sync now. */
  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    this.request("full");
  }

  /**
   * A change arrived: sync from the cached view as soon as minSyncPeriod allows. Told which services
   * changed (their new form) and which were removed, the sync is partial (Reconciler.update: costs what
   * changed); without it, or when any trigger since the last run came without it, the whole desired
   * state is compared.
   */
  trigger(partial?: { changed: VirtualService[]; removed: VirtualService[] }): void {
    if (!partial) this.partial = null;
    else if (this.partial !== null && this.pending !== "full") {
      const p = this.partial ?? (this.partial = { changed: new Map(), removed: new Map() });
      for (const s of partial.changed) {
        const k = canonServiceKey(s);
        p.changed.set(k, s);
        p.removed.delete(k);
      }
      for (const s of partial.removed) {
        const k = canonServiceKey(s);
        p.removed.set(k, s);
        p.changed.delete(k);
      }
    }
    this.request("triggered");
  }
  // undefined: nothing accumulated yet; null: some trigger did not say (compare everything)
  private partial: { changed: Map<string, VirtualService>; removed: Map<string, VirtualService> } | null | undefined;

  /** Forces a full sync (kernel re-read) as soon as allowed. */
  full(): void {
    this.request("full");
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    clearTimeout(this.drainTimer);
    this.timer = this.drainTimer = undefined;
    await this.running;
  }

  /** Resolves when no sync is running or pending. */
  async idle(): Promise<void> {
    while (this.running || this.pending !== "none") await (this.running ?? new Promise((r) => setTimeout(r, 5)));
  }

  private refill(now: number): void {
    if (this.minSyncPeriodMs <= 0) {
      this.tokens = this.burst;
      return;
    }
    const add = (now - this.lastRefill) / this.minSyncPeriodMs;
    if (add > 0) {
      this.tokens = Math.min(this.burst, this.tokens + add);
      this.lastRefill = now;
    }
  }

  private request(kind: "full" | "triggered"): void {
    if (this.stopped) return;
    if (kind === "full" || this.pending === "none")
      this.pending = kind === "full" ? "full" : this.pending === "full" ? "full" : "triggered";
    this.schedule();
  }

  private schedule(): void {
    if (this.stopped || this.running) return;
    clearTimeout(this.timer);
    const now = Date.now();
    this.refill(now);
    if (this.pending !== "none" && now < this.retryAt) {
      this.timer = setTimeout(() => this.schedule(), this.retryAt - now);
      return;
    }
    if (this.pending !== "none") {
      if (this.tokens >= 1) {
        this.tokens -= 1;
        this.lastRefill = this.lastRefill || now;
        void this.runOnce();
        return;
      }
      const wait = Math.ceil((1 - this.tokens) * this.minSyncPeriodMs);
      this.timer = setTimeout(() => this.schedule(), wait);
      return;
    }
    // nothing pending: the periodic full sync
    const due = this.lastFull + this.syncPeriodMs - now;
    this.timer = setTimeout(
      () => {
        this.pending = "full";
        this.schedule();
      },
      Math.max(0, due),
    );
  }

  private runOnce(): void {
    const kind = this.pending;
    const partial = kind === "triggered" ? this.partial : undefined;
    this.pending = "none";
    this.partial = undefined;
    this.running = (async () => {
      try {
        await this.o.beforePass?.(kind === "full" ? "full" : "triggered");
        const r = partial
          ? await this.reconciler.update([...partial.changed.values()], [...partial.removed.values()])
          : await this.reconciler.sync(await this.desired(), { refresh: kind === "full" });
        this.runs++;
        if (kind === "full") this.lastFull = Date.now();
        // refused changes: the view may be wrong (a module reload emptied the table): re-read, backing off
        if (r.failures.length) this.backoff();
        else this.failedRuns = 0;
        this.o.onReport?.(r, kind === "full" ? "full" : "triggered");
      } catch (e) {
        this.o.onError?.(e as Error, this.backoff());
      } finally {
        this.running = undefined;
        this.armDrain();
        this.schedule();
      }
    })();
  }

  /** The next pass is a full sync (kernel re-read), after an exponential, jittered, capped delay. */
  private backoff(): RetryInfo {
    const base = this.o.retryBaseMs ?? 1000,
      maxMs = this.o.retryMaxMs ?? 30_000;
    this.failedRuns++;
    const ceiling = Math.min(maxMs, base * 2 ** Math.min(this.failedRuns - 1, 30));
    const delayMs = Math.round(ceiling / 2 + (Math.random() * ceiling) / 2);
    this.retryAt = Date.now() + delayMs;
    this.pending = "full";
    this.partial = undefined;
    return { attempt: this.failedRuns, delayMs, maxMs };
  }

  private armDrain(): void {
    if (this.stopped || this.drainTimer || this.reconciler.drainingCount === 0) return;
    this.drainTimer = setTimeout(async () => {
      this.drainTimer = undefined;
      if (this.stopped) return;
      if (this.running) {
        this.armDrain();
        return;
      }
      let done!: () => void;
      this.running = new Promise<void>((r) => (done = r));
      try {
        const r = await this.reconciler.drain();
        if (r.changes.length || r.failures.length) this.o.onReport?.(r, "drain");
      } catch (e) {
        this.o.onError?.(e as Error);
      } finally {
        this.running = undefined;
        done();
        this.armDrain();
        this.schedule();
      }
    }, this.o.drainCheckMs ?? 1000);
  }
}
