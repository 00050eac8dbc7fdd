// Long work on the main thread in stretches of at most a few milliseconds, yielding to the event loop
// between them: forwarding (the native relay's epoll set, the listeners, the timers) runs in the same loop,
// so a stretch is how long a packet or a connect may wait behind a restore, a reload or a health change.
// 1 ms, not 4: a 100k-line restore on a quiet machine (bench/restore.ts --rounds 3 --sizes 100000) then
// holds the loop p99 7 ms of CPU instead of 11 (max 12-15 instead of 20), for about 5 % more restore time
import type { Writable } from "node:stream";

const SLICE_MS = 1;

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
  private calls = 0;
  constructor(readonly budgetMs = SLICE_MS) {}

  /** True when this stretch has used its budget (the clock is read every 16th call: it costs ~50 ns). */
  due(): boolean {
    return (++this.calls & 15) === 0 && performance.now() - this.start >= this.budgetMs;
  }

  /** Yields to the event loop and starts a new stretch. */
  async next(): Promise<void> {
    await yieldToLoop();
    this.start = performance.now();
  }

  /** Yields when due: `await slicer.pause()` inside a loop. */
  pause(): Promise<void> | void {
    if (this.due()) return this.next();
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
