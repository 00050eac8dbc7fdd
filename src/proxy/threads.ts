// What the proxy's helper threads share: starting one from its module (built or source), lowering its own
// priority, and moving lists of services (or any JSON) across in chunks.
import { readlinkSync } from "node:fs";
import { setPriority } from "node:os";
import { Worker } from "node:worker_threads";
import type { Slicer } from "./slice.ts";

/** A bulk worker's nice value: below every thread of the process's, so the main thread is run first. */
const BULK_NICE = 19;
/** Items per chunk either way, as JSON text (V8 parses it about twice as fast as it deserializes a
 * structured clone: 10k services of 9 real servers, 47-107 ms against 84-250, one-off script): the main
 * thread parses one chunk a turn of its loop. */
export const CHUNK = 64;

/** Worker `name` (its module beside this one): the built file (dist/cli/NAME.js, beside the chunk this is
 * in), or the TypeScript source run through tsx (a worker does not inherit the loader a test or `wasmvs`
 * from source registered). */
export function startWorker(name: "batch-worker" | "config-worker", workerData?: unknown): Worker {
  if (!import.meta.url.endsWith(".ts")) return new Worker(new URL(`./${name}.js`, import.meta.url), { workerData });
  const src = JSON.stringify(new URL(`./${name}.ts`, import.meta.url).href);
  const code = `import("tsx/esm/api").then((m) => { m.register(); return import(${src}); });`;
  return new Worker(code, { eval: true, workerData });
}

/** Lowers the calling thread's priority (Linux applies setpriority per thread): bulk work in a worker then
 * leaves the CPU to the main thread, asleep until a connection comes (docs/proxy.md, issue 15 round 5). */
export function niceThisThread(nice = BULK_NICE): void {
  try {
    // "PID/task/TID": the thread's own id, which setpriority(PRIO_PROCESS) takes for that thread alone
    const tid = Number(readlinkSync("/proc/thread-self").split("/").pop());
    if (tid > 0) setPriority(tid, nice);
  } catch {
    /* not Linux: the worker still takes the work off the main thread */
  }
}

/** JSON lists, UTF-8 in one buffer (to be moved, not copied), list k ending at ends[k]. */
export interface Chunks {
  bytes: ArrayBuffer;
  ends: Int32Array;
}

/** items as chunks of CHUNK, each its own JSON text. */
export function packItems(items: unknown[]): Chunks {
  const texts: Buffer[] = [];
  for (let i = 0; i < items.length; i += CHUNK) texts.push(Buffer.from(JSON.stringify(items.slice(i, i + CHUNK))));
  const bytes = new Uint8Array(texts.reduce((n, b) => n + b.length, 0));
  const ends = new Int32Array(texts.length);
  let end = 0;
  texts.forEach((b, k) => {
    bytes.set(b, end);
    ends[k] = end += b.length;
  });
  return { bytes: bytes.buffer, ends };
}

/** The chunks' items in order, one chunk parsed per step of the slicer (0.3-0.7 ms for 64 services). */
export async function unpackItems<T>(c: Chunks, slicer: Slicer): Promise<T[]> {
  const text = Buffer.from(c.bytes);
  const out: T[] = [];
  for (let k = 0, start = 0; k < c.ends.length; start = c.ends[k++]) {
    for (const x of JSON.parse(text.toString("utf8", start, c.ends[k])) as T[]) out.push(x);
    await slicer.next();
  }
  return out;
}
