// Socket mode's N workers (`wasmvs proxy --workers N`). The main thread keeps everything that decides: the
// native relay's listeners accept there, the one WASM core schedules every connection and hears of every
// state change, so lc, wlc, sed, nq, lblc... choose exactly as one IPVS instance would, and -Ln, -Lnc and
// the metrics read one table. Each worker is a thread running its own native relay (relay.cc keeps its state
// per thread): it takes the accepted descriptor, connects to the backend the core chose and pumps the bytes.
// Commands go to a worker (adopt, connect, close) and its events come back (connected, EOF, closed) in one
// message per batch; byte counters live in a SharedArrayBuffer both threads see. A worker that dies takes
// only its own connections (their clients are reset, and each is counted); it is started again.
import { Worker } from "node:worker_threads";
import { fileURLToPath } from "node:url";
import { readFileSync } from "node:fs";
import { availableParallelism } from "node:os";
import type { Logger } from "./log.ts";
import { type RelayOwner, RELAY_CAUSE, RELAY_COUNTERS, RELAY_EVENT, errnoName } from "./relay.ts";

/** Where a TCP connection's bytes are pumped: the main thread's relay, or a worker's. */
export interface ConnPump {
  readonly counters: Float64Array;
  adopt(fd: number, owner: RelayOwner): number;
  connect(slot: number, addr: string, port: number, timeoutMs: number): void;
  close(slot: number): void;
}

const EVENT_WORDS = 8;
const ADDON_PATH = fileURLToPath(new URL("../../native/relay/build/Release/relay.node", import.meta.url));
// A marker in a slot's first counter: the descriptor was handed over and the worker has not taken it yet
// (relay.cc's adopt sets it to 0, in the same native call that takes the descriptor).
const NOT_TAKEN = -1;

// The worker's whole program, plain JavaScript (it runs in the bundled CLI as from the sources, without tsx).
const WORKER_SOURCE = `
const { parentPort, workerData } = require("node:worker_threads");
const addon = require(workerData.addon);
let events = [], released = [], queued = false;
const flush = () => {
  queued = false;
  let n = 0;
  for (const e of events) n += e.length;
  const ev = new Int32Array(n);
  n = 0;
  for (const e of events) { ev.set(e, n); n += e.length; }
  parentPort.postMessage({ ev, released }, [ev.buffer]);
  events = [];
  released = [];
};
const later = () => { if (!queued) { queued = true; setImmediate(flush); } };
addon.init((ev) => { events.push(ev); later(); }, new Float64Array(workerData.counters));
parentPort.postMessage({ ready: true });
// an exception ends this thread: the relay is shut first (its connections reset), then the thread ends
process.on("uncaughtException", (e) => {
  addon.shutdown();
  parentPort.postMessage({ error: String(e && e.message) });
  process.exit(1);
});
let held = false;
parentPort.on("message", (cmds) => {
  // a test's dying worker (HOLD): its relay is shut, it takes nothing more and ends only when released
  if (held) {
    if (cmds.some((c) => c[0] === 11)) throw new Error("worker " + workerData.index + ": asked to fail (a test)");
    return;
  }
  for (const c of cmds) {
    switch (c[0]) {
      case 1:
        try { addon.adopt(c[1], c[2]); }
        catch (e) {
          events.push(Int32Array.of(c[1], ${RELAY_EVENT.CLOSED}, ${RELAY_CAUSE.CLIENT_ERROR}, 0, 0, 0, 0, 0));
        }
        break;
      // the client may be gone already (its CLOSED event is on its way): nothing to connect, not an error
      case 2: try { addon.connect(c[1], c[2], c[3], c[4]); } catch {} break;
      case 3: addon.close(c[1]); released.push(c[1]); break;
      case 4: addon.shutdown(); parentPort.close(); return;
      case 9: throw new Error("worker " + workerData.index + ": asked to fail (a test)");
      case 10: addon.shutdown(); held = true; return;
    }
  }
  later();
});
`;
const OP = { ADOPT: 1, CONNECT: 2, CLOSE: 3, STOP: 4, FAIL: 9, HOLD: 10, RELEASE: 11 } as const;
type Command = (string | number)[];

/** One worker thread and the main thread's view of its slots. */
class WorkerPump implements ConnPump {
  readonly counters: Float64Array;
  readonly worker: Worker;
  private owners: (RelayOwner | undefined)[] = [];
  private fds: number[] = [];
  private free: number[] = [];
  private next = 0;
  private out: Command[] = [];
  private flushQueued = false;
  live = 0; // connections this worker holds (what the least-loaded choice compares)
  dead = false;
  exited: Promise<void>;
  ready: Promise<void>; // its relay is up (or it died trying): its descriptors are open
  private onReady = () => {};

  wasReady = false; // its relay came up: a death before that is a failure to start (restarted with a backoff)

  constructor(
    readonly index: number,
    readonly capacity: number,
    onExit: (p: WorkerPump, error: Error | undefined) => void,
    addon = ADDON_PATH,
  ) {
    this.counters = new Float64Array(new SharedArrayBuffer(capacity * RELAY_COUNTERS * 8));
    this.worker = new Worker(WORKER_SOURCE, {
      eval: true,
      execArgv: [],
      workerData: { addon, counters: this.counters.buffer, index },
      name: `wasmvs-pump-${index}`,
    });
    let error: Error | undefined;
    this.ready = new Promise((resolve) => {
      this.onReady = resolve;
    });
    this.worker.on("message", (m: { ev: Int32Array; released: number[]; ready?: true; error?: string }) => {
      if (m.ready) {
        this.wasReady = true;
        this.onReady();
      } else if (m.error !== undefined) error = new Error(m.error);
      else this.onMessage(m);
    });
    this.worker.on("error", (e) => {
      error = e;
    });
    this.exited = new Promise((resolve) =>
      this.worker.on("exit", () => {
        this.dead = true;
        this.onReady();
        onExit(this, error);
        resolve();
      }),
    );
  }

  /** Room for one more connection (the counters array is sized once; a slot waiting for its release
   * from the worker is not free yet). */
  hasRoom(): boolean {
    return !this.dead && (this.free.length > 0 || this.next < this.capacity);
  }

  adopt(fd: number, owner: RelayOwner): number {
    if (!this.hasRoom()) throw new Error(`worker ${this.index} has no free slot`);
    const slot = this.free.length ? this.free.pop()! : this.next++;
    const o = slot * RELAY_COUNTERS;
    this.counters.fill(0, o, o + RELAY_COUNTERS);
    this.counters[o] = NOT_TAKEN;
    this.owners[slot] = owner;
    this.fds[slot] = fd;
    this.live++;
    this.send([OP.ADOPT, slot, fd]);
    return slot;
  }

  connect(slot: number, addr: string, port: number, timeoutMs: number): void {
    this.send([OP.CONNECT, slot, addr, port, Math.max(1, Math.round(timeoutMs))]);
  }

  // The slot is reused only once the worker says it let it go (its events for it end there).
  close(slot: number): void {
    if (this.owners[slot] === undefined) return;
    this.owners[slot] = undefined;
    this.live--;
    this.send([OP.CLOSE, slot]);
  }

  /** Makes the worker throw (tests: a worker that dies). With hold, it shuts its relay now (its connections
   * reset, as a dying worker's) but ends only at release(): a death the main thread has not learned of yet. */
  fail(hold = false): void {
    this.send([hold ? OP.HOLD : OP.FAIL]);
  }

  release(): void {
    this.send([OP.RELEASE]);
  }

  /** Ends the worker: its relay shut from its own JS (connections reset), then the thread ends; terminate()
   * only if it does not end within a second. */
  async stop(): Promise<void> {
    this.send([OP.STOP]);
    const timer = setTimeout(() => void this.worker.terminate(), 1000);
    await this.exited;
    clearTimeout(timer);
  }

  private send(c: Command) {
    if (this.dead) return;
    this.out.push(c);
    if (this.flushQueued) return;
    this.flushQueued = true;
    // one message per batch: the relay's accepts arrive together, one dispatch per loop turn
    queueMicrotask(() => {
      this.flushQueued = false;
      const batch = this.out;
      this.out = [];
      if (!this.dead) this.worker.postMessage(batch);
    });
  }

  private onMessage(m: { ev: Int32Array; released: number[] }) {
    const ev = m.ev;
    for (let i = 0; i + EVENT_WORDS <= ev.length; i += EVENT_WORDS) {
      const slot = ev[i];
      const owner = this.owners[slot];
      if (!owner) continue;
      switch (ev[i + 1]) {
        case RELAY_EVENT.CONNECTED:
          owner.onConnected();
          break;
        case RELAY_EVENT.CONNECT_FAILED:
          owner.onConnectFailed(errnoName(ev[i + 3]), ev[i + 3]);
          break;
        case RELAY_EVENT.CLIENT_EOF:
          owner.onEof("client");
          break;
        case RELAY_EVENT.BACKEND_EOF:
          owner.onEof("backend");
          break;
        case RELAY_EVENT.CLOSED:
          owner.onClosed(ev[i + 2], ev[i + 3]);
          if (this.owners[slot] === owner) {
            this.owners[slot] = undefined;
            this.live--;
            this.free.push(slot);
          }
          break;
      }
    }
    for (const slot of m.released) this.free.push(slot);
  }

  /** After the worker died: the descriptors it never took are reset here (those it held, its relay reset as
   * it ended), and every connection it held is closed for its owner. Returns how many were lost. */
  abandon(resetFd: (fd: number) => void): number {
    let lost = 0;
    for (let slot = 0; slot < this.owners.length; slot++) {
      const owner = this.owners[slot];
      if (!owner) continue;
      if (this.counters[slot * RELAY_COUNTERS] === NOT_TAKEN) resetFd(this.fds[slot]);
      this.owners[slot] = undefined;
      lost++;
      owner.onClosed(RELAY_CAUSE.PUMP_LOST, 0);
    }
    this.live = 0;
    return lost;
  }
}

// A worker that dies before its relay is up (the addon will not load, the thread cannot start) would die
// again at once: it is started again after 100 ms, doubling to 10 s while it keeps failing. One that dies
// after it was up is started again at once (its connections' clients are waiting to reconnect).
const RESTART_FIRST_MS = 100,
  RESTART_MAX_MS = 10_000;

/** N workers: picks the least loaded for each new connection and restarts one that dies. */
export class PumpWorkers {
  readonly pumps: WorkerPump[] = [];
  restarts = 0;
  lost = 0;
  private stopping = false;
  private rr = 0;
  private failedStarts: number[]; // per worker: deaths in a row before its relay was up
  private pending = new Set<NodeJS.Timeout>(); // restarts waiting out their backoff

  constructor(
    readonly count: number,
    readonly capacity: number,
    private readonly resetFd: (fd: number) => void,
    private readonly log: Logger,
    private readonly onLost: (n: number) => void,
    private readonly addon = ADDON_PATH,
  ) {
    this.failedStarts = new Array(count).fill(0);
    for (let i = 0; i < count; i++) this.pumps.push(this.spawn(i));
  }

  private spawn(i: number): WorkerPump {
    return new WorkerPump(i, this.capacity, (p, error) => this.onExit(p, error), this.addon);
  }

  private onExit(p: WorkerPump, error: Error | undefined) {
    const lost = p.abandon(this.resetFd);
    this.lost += lost;
    if (lost) this.onLost(lost);
    if (this.stopping || this.pumps[p.index] !== p) return;
    this.restarts++;
    const failed = p.wasReady ? 0 : this.failedStarts[p.index] + 1;
    this.failedStarts[p.index] = failed;
    const delayMs = failed ? Math.min(RESTART_FIRST_MS * 2 ** (failed - 1), RESTART_MAX_MS) : 0;
    this.log.error(failed ? "worker failed to start: starting it again" : "worker died: started again", {
      worker: p.index,
      lost,
      error: error?.message,
      ...(failed ? { failedInARow: failed, inMs: delayMs } : {}),
    });
    if (!delayMs) {
      this.pumps[p.index] = this.spawn(p.index);
      return;
    }
    // meanwhile the dead pump stays in its place: it has no room, so new connections go to the others
    const timer = setTimeout(() => {
      this.pending.delete(timer);
      if (!this.stopping) this.pumps[p.index] = this.spawn(p.index);
    }, delayMs);
    this.pending.add(timer);
  }

  /** Every worker's relay is up (Proxy.start waits for it, so a started proxy holds all its descriptors). */
  ready(): Promise<void> {
    return Promise.all(this.pumps.map((p) => p.ready)).then(() => {});
  }

  /** The worker for a new connection: the one holding the fewest (ties in turn), or none with room. */
  pick(): WorkerPump | undefined {
    let best: WorkerPump | undefined;
    const n = this.pumps.length;
    for (let k = 0; k < n; k++) {
      const p = this.pumps[(this.rr + k) % n];
      if (p.hasRoom() && (!best || p.live < best.live)) best = p;
    }
    this.rr = (this.rr + 1) % n;
    return best;
  }

  status(): { workers: number; restarts: number; lost: number; connections: number[] } {
    return {
      workers: this.pumps.length,
      restarts: this.restarts,
      lost: this.lost,
      connections: this.pumps.map((p) => p.live),
    };
  }

  async stop(): Promise<void> {
    this.stopping = true;
    for (const t of this.pending) clearTimeout(t);
    this.pending.clear();
    await Promise.all(this.pumps.map((p) => p.stop()));
  }
}

/** The cores the process may use: the CPUs it may run on (its affinity), capped by a cgroup CPU quota on its
 * cgroup or any ancestor (a container's CPU limit, which affinity does not show): v2's cpu.max, v1's
 * cpu.cfs_quota_us over cpu.cfs_period_us, rounded up. What cannot be read or makes no sense is ignored.
 * root: where /proc and /sys are (tests). */
export function usableCores(root = "/"): number {
  const cpus = availableParallelism();
  let quota = Number.POSITIVE_INFINITY;
  const read = (f: string) => {
    try {
      return readFileSync(`${root}${f}`, "utf8").trim();
    } catch {
      return undefined;
    }
  };
  const cap = (q: string | undefined, p: string | undefined) => {
    if (!q || !p || !/^\d{1,15}$/.test(q) || !/^\d{1,15}$/.test(p)) return; // "max" or -1: no quota
    const cores = Number(q) / Number(p);
    if (cores > 0) quota = Math.min(quota, Math.ceil(cores));
  };
  for (const line of (read("proc/self/cgroup") ?? "").split("\n")) {
    const m = line.match(/^\d+:([^:]*):(\/.*)$/);
    if (!m || m[2].includes("..")) continue;
    const v2 = m[1] === "";
    if (!v2 && !m[1].split(",").includes("cpu")) continue;
    const bases = v2 ? ["sys/fs/cgroup", "sys/fs/cgroup/unified"] : [`sys/fs/cgroup/${m[1]}`, "sys/fs/cgroup/cpu"];
    const parts = m[2].split("/").filter(Boolean);
    for (let n = parts.length; n >= 0; n--)
      for (const base of new Set(bases)) {
        const dir = [base, ...parts.slice(0, n)].join("/");
        if (v2) {
          const [q, p] = (read(`${dir}/cpu.max`) ?? "").split(/\s+/);
          cap(q, p);
        } else cap(read(`${dir}/cpu.cfs_quota_us`), read(`${dir}/cpu.cfs_period_us`));
      }
  }
  return Math.max(1, Math.min(cpus, quota));
}
