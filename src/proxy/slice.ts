// Long work on the main thread in stretches of at most a few milliseconds, yielding to the event loop
// between them: forwarding (the native relay's epoll set, the listeners, the timers) runs in the same loop,
// so a stretch is how long a packet or a connect may wait behind a restore, a reload or a health change.
// 1 ms, not 4: a 100k-line restore on a quiet machine (bench/restore.ts --rounds 3 --sizes 100000) then
// holds the loop p99 7 ms of CPU instead of 11 (max 12-15 instead of 20), for about 5 % more restore time
import type { Writable } from "node:stream";

const SLICE_MS = 1;
// A stretch asks the forwarders whether work is waiting for the loop (a connection to accept, a connect
// completed) once it has run this long, then again each time as long, and yields at once if so: a new
// connection then waits for about this much of the work per turn of the loop, not a whole stretch.
const PROBE_MS = 0.1;

// One per forwarder that can tell (the native relay: one poll(2) on its epoll set)
const probes = new Set<() => boolean>();

/** Registers a forwarder's "is work waiting for the loop?"; returns the call that removes it. */
export function addPendingProbe(probe: () => boolean): () => void {
  probes.add(probe);
  return () => {
    probes.delete(probe);
  };
}

function workPending(): boolean {
  for (const p of probes) if (p()) return true;
  return false;
}

/** Resolves when a stream takes more writes, or is gone (the rest of a reply then has no reader). */
export function drained(w: Writable): Promise<void> {
  if (w.destroyed) return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      w.off("drain", done);
      w.off("close", done);
      resolve();
    };
    w.on("drain", done);
    w.on("close", done);
  });
}

const yieldToLoop = () => new Promise<void>((r) => setImmediate(r));

export class Slicer {
  private start = performance.now();
  private probeAt: number;
  private calls = 0;
  /** probeMs: how long a stretch runs before it asks whether work is waiting (Infinity: never asks) */
  constructor(
    readonly budgetMs = SLICE_MS,
    readonly probeMs = PROBE_MS,
  ) {
    this.probeAt = this.start + probeMs;
  }

  /** True when this stretch has used its budget, or work waits for the loop (the clock is read every 16th
   * call: it costs ~50 ns; the forwarders are asked every probeMs of work). */
  due(): boolean {
    return (++this.calls & 15) === 0 && this.dueNow();
  }

  /** due() for a caller whose steps are large enough to read the clock after each (a run of records). */
  dueNow(): boolean {
    const now = performance.now();
    if (now - this.start >= this.budgetMs) return true;
    if (now < this.probeAt || probes.size === 0) return false;
    this.probeAt = now + this.probeMs;
    return workPending();
  }

  /** Yields to the event loop and starts a new stretch. */
  async next(): Promise<void> {
    await yieldToLoop();
    this.start = performance.now();
    this.probeAt = this.start + this.probeMs;
  }

  /** Yields when due: `await slicer.pause()` inside a loop. */
  pause(): Promise<void> | void {
    if (this.due()) return this.next();
  }

  /** pause() after a large step: the clock is read every call. */
  pauseNow(): Promise<void> | void {
    if (this.dueNow()) return this.next();
  }
}

/**
 * JSON.stringify(list, replacer) in stretches of the loop, for a listing too large for one: each element
 * whole, except its array under `key` (a service's real servers), written 16 items a step. The text parses
 * to the same value (within an element, `key` comes last). Returned in pieces of about 64 kB, so that no
 * step joins or encodes megabytes at once.
 */
export async function stringifyInSlices(
  list: readonly object[],
  key: string,
  replacer: (k: string, v: unknown) => unknown,
  slicer = new Slicer(),
): Promise<string[]> {
  const pieces: string[] = [];
  let parts: string[] = ["["],
    size = 1;
  const put = (t: string) => {
    parts.push(t);
    size += t.length;
    if (size < 65536) return;
    pieces.push(parts.join(""));
    parts = [];
    size = 0;
  };
  for (const [i, el] of list.entries()) {
    if (i) put(",");
    const { [key]: inner, ...rest } = el as Record<string, unknown>;
    if (!Array.isArray(inner)) {
      put(JSON.stringify(el, replacer));
      await slicer.pause();
      continue;
    }
    const head = JSON.stringify(rest, replacer);
    put(`${head === "{}" ? "{" : `${head.slice(0, -1)},`}${JSON.stringify(key)}:[`);
    for (let k = 0; k < inner.length; k += 16) {
      put((k ? "," : "") + JSON.stringify(inner.slice(k, k + 16), replacer).slice(1, -1));
      await slicer.pause();
    }
    put("]}");
  }
  put("]");
  if (parts.length) pieces.push(parts.join(""));
  return pieces;
}
