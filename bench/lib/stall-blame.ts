// Why was a connect slow? A soak times each connect in its load generator; a slow one may be the proxy's
// fault or the generator's own loop (a GC pause there delays the clock's reading as much as a stalled proxy).
// Each process records the spans in which its event loop did not turn (epoch ms), the soak records its own
// events (reloads, scrapes, backend changes), and every slow connect is blamed on whatever overlapped it.

/** A span of wall time: start (epoch ms) and length (ms). */
export type Span = [start: number, ms: number];

/** Records the spans over `thresholdMs` in which this process's event loop did not run a 5 ms timer. */
export function loopStalls(thresholdMs = 20) {
  const spans: Span[] = [];
  let last = performance.now();
  const timer = setInterval(() => {
    const now = performance.now();
    if (now - last > thresholdMs) spans.push([Math.round(performance.timeOrigin + last), Math.round(now - last)]);
    last = now;
  }, 5);
  timer.unref();
  return { spans, stop: () => clearInterval(timer) };
}

/** Times an async event into `spans` (epoch start, length). */
export async function timed<T>(spans: Span[], fn: () => Promise<T>): Promise<T> {
  const t = performance.now();
  try {
    return await fn();
  } finally {
    spans.push([Math.round(performance.timeOrigin + t), Math.round(performance.now() - t)]);
  }
}

const overlaps = (a: Span, b: Span) => a[0] < b[0] + b[1] && b[0] < a[0] + a[1];

/**
 * Each slow connect counted once, against the first source (in the order given) whose spans overlap it;
 * "none" when nothing recorded overlapped (the backends' process, the kernel or the machine).
 */
export function blame(slow: Span[], sources: Record<string, Span[]>): Record<string, number> {
  const out: Record<string, number> = Object.fromEntries([...Object.keys(sources), "none"].map((k) => [k, 0]));
  for (const s of slow) {
    const hit = Object.entries(sources).find(([, spans]) => spans.some((x) => overlaps(s, x)));
    out[hit ? hit[0] : "none"]++;
  }
  return out;
}
