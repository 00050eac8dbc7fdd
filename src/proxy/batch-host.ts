// The main thread's side of the control socket's batch worker (batch-worker.ts): a large batch's lines are
// parsed, checked and staged there, and the batch's next state comes back as a diff against the state it
// began from, which the main thread then applies to the core in slices (Proxy.change). The worker keeps a
// copy of the proxy's state to begin batches from ("bases", by id): sent in chunks when the proxy's state is
// not the one it has, and the next state of a batch it built once the proxy applied it.
import type { Worker } from "node:worker_threads";
import type { DesiredState, IpvsTimeouts, VirtualService } from "../model/types.ts";
import type { ProxyMode } from "./batch.ts";
import { Slicer } from "./slice.ts";
import { CHUNK, type Chunks, startWorker, unpackItems } from "./threads.ts";

export type ToWorker =
  | { t: "base"; id: number; services: string; timeouts?: IpvsTimeouts; last: boolean }
  | { t: "line"; rid: number; sid: number; base: number; newId: number; mode: ProxyMode; line: string }
  | { t: "forget"; id: number }
  | { t: "close"; sid: number }
  | { t: "crash" };

/** A line's answer from the worker: not a batch's line (the main thread handles it), or the batch op's. */
export interface Done {
  rid: number;
  notBatch?: true;
  id?: unknown;
  op?: "applyPart" | "apply";
  ok?: boolean;
  result?: unknown;
  error?: string;
  step?: number;
  /** for an applied batch: per service of the next state, its index in the base, or -1 (the next one of the
   * chunks: JSON lists of services, UTF-8 in `bytes`, chunk k ending at ends[k]) */
  state?: { order: Int32Array; timeoutsSame: boolean; timeouts?: IpvsTimeouts } & Chunks;
  /** the next state's problems (proxyStateProblems), formatted: the proxy refuses it with this message */
  problems?: string;
}
type FromWorker = { t: "done" } & Done;

export interface Staged extends Done {
  /** an applied batch's next state, built from the base and the worker's diff */
  next?: DesiredState;
  /** the id under which the worker keeps that next state (adopt it, or forget it) */
  nextId?: number;
  /** the worker that answered (a later one has none of its states) */
  from?: Worker;
}

export class BatchWorker {
  private worker?: Worker;
  private mirror?: { state: DesiredState; id: number };
  private ids = 0;
  private chain: Promise<unknown> = Promise.resolve();
  private pending = new Map<number, { base?: DesiredState; res: (d: Staged) => void; rej: (e: Error) => void }>();
  /** threads started (a test reads it) */
  started = 0;
  constructor(private readonly onFail: (e: Error) => void = () => {}) {}

  private ensure(): Worker {
    if (this.worker) return this.worker;
    const w = startWorker("batch-worker");
    this.started++;
    w.unref(); // an idle worker does not keep the process alive
    w.on("message", (m: FromWorker) => {
      const p = this.pending.get(m.rid);
      if (!p) return;
      this.pending.delete(m.rid);
      this.assemble(m, p.base).then(p.res, p.rej);
    });
    let failed = false;
    const fail = (e: Error) => {
      if (failed) return;
      failed = true;
      if (this.worker === w) {
        this.worker = undefined;
        this.mirror = undefined;
      }
      const all = [...this.pending.values()];
      this.pending.clear();
      for (const p of all) p.rej(e);
      this.onFail(e);
    };
    w.on("error", (e) => fail(e instanceof Error ? e : new Error(String(e))));
    w.on("exit", (code) => fail(new Error(`it exited (code ${code})`)));
    this.worker = w;
    return w;
  }

  // The next state from the worker's diff: the new services parsed a chunk at a time, in slices of the loop
  // (the chunks come in one message: a port's queued messages are all taken in one turn, which for a 100k
  // restore's 160 messages of 64 services held the loop 77-214 ms, one-off script).
  private async assemble(m: Done, base: DesiredState | undefined): Promise<Staged> {
    if (!m.state || !base) return m;
    const { order, timeoutsSame, timeouts } = m.state;
    const fresh = await unpackItems<VirtualService>(m.state, new Slicer());
    const services: VirtualService[] = new Array(order.length);
    for (let i = 0, j = 0; i < order.length; i++) services[i] = order[i] >= 0 ? base.services[order[i]] : fresh[j++];
    const t = timeoutsSame ? base.timeouts : timeouts;
    return { ...m, next: t ? { services, timeouts: t } : { services } };
  }

  // The proxy's state to the worker, in chunks of services, in slices of the loop.
  private async ship(w: Worker, state: DesiredState): Promise<void> {
    const id = ++this.ids;
    const slicer = new Slicer();
    const { services, timeouts } = state;
    for (let i = 0; ; i += CHUNK) {
      const last = i + CHUNK >= services.length;
      const m: ToWorker = { t: "base", id, services: JSON.stringify(services.slice(i, i + CHUNK)), timeouts, last };
      w.postMessage(m);
      if (last) break;
      await slicer.pause();
    }
    if (this.mirror) w.postMessage({ t: "forget", id: this.mirror.id } satisfies ToWorker);
    this.mirror = { state, id };
  }

  /**
   * One control line of session `sid` to the worker: a batch's part or end is staged there, on the batch the
   * session has there (begun from `base`), or (`begin`: the session has none) on a new one beginning from
   * `base`. An "apply" comes back with the next state built (`next`); a line that is no batch's comes back
   * `notBatch`.
   * Rejects if the worker fails (nothing of the batch is then anywhere).
   */
  send(sid: number, line: string, mode: ProxyMode, base: DesiredState, begin: boolean): Promise<Staged> {
    const rid = ++this.ids;
    const newId = ++this.ids;
    let from: Worker | undefined;
    return new Promise<Staged>((res, rej) => {
      const entry = {
        base,
        res: (d: Staged) => res({ ...d, nextId: newId, from }),
        rej,
      };
      this.chain = this.chain
        .then(async () => {
          const w = this.ensure();
          from = w;
          this.pending.set(rid, entry);
          if (begin && this.mirror?.state !== base) await this.ship(w, base);
          if (this.worker !== w) return; // it failed meanwhile: already rejected
          const m: ToWorker = { t: "line", rid, sid, base: begin ? this.mirror!.id : -1, newId, mode, line };
          w.postMessage(m);
        })
        .catch((e) => {
          this.pending.delete(rid);
          rej(e as Error);
        });
    });
  }

  // After the lines and states sent before (a close must not overtake its session's last line).
  private inOrder(fn: (w: Worker) => void): void {
    this.chain = this.chain.then(() => {
      if (this.worker) fn(this.worker);
    });
  }

  /** A batch's next state (from send) is now the proxy's: the worker begins the next batches from it. */
  adopt(staged: Staged): void {
    this.inOrder((w) => {
      if (staged.from !== w || !staged.next || staged.nextId === undefined) return;
      if (this.mirror) w.postMessage({ t: "forget", id: this.mirror.id } satisfies ToWorker);
      this.mirror = { state: staged.next, id: staged.nextId };
    });
  }

  /** A next state the proxy did not take. */
  forget(staged: Staged): void {
    this.inOrder((w) => {
      if (staged.from === w && staged.nextId !== undefined)
        w.postMessage({ t: "forget", id: staged.nextId } satisfies ToWorker);
    });
  }

  /** A control connection closed: its batch in the worker, if any, is dropped. */
  close(sid: number): void {
    this.inOrder((w) => w.postMessage({ t: "close", sid } satisfies ToWorker));
  }

  /** For tests: the worker dies (an uncaught error) when this message comes, whatever it is doing. */
  crash(): void {
    this.worker?.postMessage({ t: "crash" } satisfies ToWorker);
  }

  async terminate(): Promise<void> {
    const w = this.worker;
    this.worker = undefined;
    this.mirror = undefined;
    if (w) await w.terminate();
  }
}
