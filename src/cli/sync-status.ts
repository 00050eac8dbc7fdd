// The sync loop's health where an operator and a scraper can see it: a status file (the watch's age and
// counts, rewritten every 2 s) that `wasmvs sync --check` reads, and Prometheus metrics over HTTP. Written
// by hand (a few lines of the text format) so that the command does not load prom-client to start.
import { createServer } from "node:http";
import { mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { dirname } from "node:path";
import type { WatchStatus } from "../k8s/watch.ts";

export const DEFAULT_STATUS_FILE = "/run/wasmvs/sync-status.json";

export interface SyncStatus {
  pid: number;
  updatedAt: number;
  idleTimeoutMs: number;
  passes: number;
  failedPasses: number;
  watch: WatchStatus[];
}

/** Writes the status every 2 s (atomically: a reader never sees half a file); returns the stop function. */
export function startStatusWriter(path: string, snapshot: () => SyncStatus, warn: (m: string) => void): () => void {
  let warned = false;
  const write = () => {
    try {
      mkdirSync(dirname(path), { recursive: true });
      writeFileSync(`${path}.tmp`, JSON.stringify(snapshot()) + "\n");
      renameSync(`${path}.tmp`, path);
    } catch (e) {
      if (!warned) warn(`cannot write the status file ${path} (sync --check reads it): ${(e as Error).message}`);
      warned = true;
    }
  };
  write();
  const t = setInterval(write, 2000);
  t.unref();
  // a stopped loop leaves no status behind: --check then says nothing is running
  return () => {
    clearInterval(t);
    try {
      rmSync(path, { force: true });
    } catch {
      /* gone already */
    }
  };
}

const age = (now: number, t: number) => (t ? `${((now - t) / 1000).toFixed(1)} s ago` : "never");

/**
 * `wasmvs sync --check` for a cluster loop: prints each watch's age and says whether it can be trusted.
 * Exit 1 when the file is missing or stale (the loop is not running), or a watch is closed or has gone
 * longer than its idle deadline without an event or bookmark.
 */
export function checkStatus(path: string, out: NodeJS.WritableStream, err: NodeJS.WritableStream): number {
  let st: SyncStatus;
  try {
    st = JSON.parse(readFileSync(path, "utf8"));
  } catch (e) {
    err.write(
      `wasmvs sync --check: no status from a running cluster loop in ${path}: ${(e as Error).message}\n` +
        "  (a file source checks drift: wasmvs sync --check -R FILE | --config FILE)\n",
    );
    return 1;
  }
  const now = Date.now();
  const problems: string[] = [];
  if (!st || typeof st.updatedAt !== "number" || !Array.isArray(st.watch)) {
    err.write(`wasmvs sync --check: ${path} is not a status file\n`);
    return 1;
  }
  if (now - st.updatedAt > 10_000) {
    problems.push(`the status was last written ${age(now, st.updatedAt)}: is the loop (pid ${st.pid}) running?`);
  }
  out.write(
    `sync loop pid ${st.pid}: ${st.passes} pass(es), ${st.failedPasses} failing in a row; ` +
      `status written ${age(now, st.updatedAt)}\n`,
  );
  for (const w of st.watch) {
    const refused =
      Object.entries(w.refused ?? {})
        .map(([k, v]) => `${v} ${k}`)
        .join(", ") || "none";
    out.write(
      `${w.kind} watch: ${w.watching ? "open" : "closed"}, resourceVersion ${w.resourceVersion || "-"}, ` +
        `last event or bookmark ${age(now, w.lastEventAt)}, last relist ${age(now, w.lastRelistAt)}, ` +
        `${w.relists} relist(s), ${w.idleAborts} idle abort(s), ${w.errors} error(s), refused: ${refused}\n`,
    );
    const since = Math.max(w.lastEventAt, w.lastRelistAt, w.watchStartedAt);
    if (st.idleTimeoutMs > 0 && now - since > st.idleTimeoutMs + 10_000) {
      const silentS = ((now - since) / 1000).toFixed(0);
      problems.push(`the ${w.kind} watch has been silent for ${silentS} s (deadline ${st.idleTimeoutMs / 1000} s)`);
    }
    if (!w.watching && now - since > 30_000) problems.push(`the ${w.kind} watch is closed`);
  }
  for (const p of problems) out.write(`STALE: ${p}\n`);
  out.write(problems.length ? "the watch cannot be trusted\n" : "the watch is live\n");
  return problems.length ? 1 : 0;
}

/** Prometheus text for a status snapshot. */
export function metricsText(st: SyncStatus, now = Date.now()): string {
  const lines: string[] = [];
  const metric = (name: string, type: string, help: string, rows: [string, number][]) => {
    lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
    for (const [labels, v] of rows) lines.push(`${name}${labels} ${Number.isFinite(v) ? v : "NaN"}`);
  };
  const k = (w: WatchStatus, extra = "") => `{kind="${w.kind}"${extra}}`;
  const secs = (t: number) => (t ? (now - t) / 1000 : NaN);
  metric(
    "wasmvs_sync_watch_last_event_age_seconds",
    "gauge",
    "Seconds since the watch's last event or bookmark.",
    st.watch.map((w) => [k(w), secs(w.lastEventAt)]),
  );
  metric(
    "wasmvs_sync_watch_last_relist_age_seconds",
    "gauge",
    "Seconds since the last full list.",
    st.watch.map((w) => [k(w), secs(w.lastRelistAt)]),
  );
  metric(
    "wasmvs_sync_watch_open",
    "gauge",
    "1 while a watch is open.",
    st.watch.map((w) => [k(w), w.watching ? 1 : 0]),
  );
  metric(
    "wasmvs_sync_watch_relists_total",
    "counter",
    "Full lists.",
    st.watch.map((w) => [k(w), w.relists]),
  );
  metric(
    "wasmvs_sync_watch_idle_aborts_total",
    "counter",
    "Watches aborted for silence.",
    st.watch.map((w) => [k(w), w.idleAborts]),
  );
  metric(
    "wasmvs_sync_watch_errors_total",
    "counter",
    "List and watch errors.",
    st.watch.map((w) => [k(w), w.errors]),
  );
  metric(
    "wasmvs_sync_watch_events_refused_total",
    "counter",
    "Events refused before the index saw them.",
    st.watch.flatMap((w) =>
      Object.entries(w.refused).map(
        ([r, n]) => [k(w, `,reason="${r.replace(/[^a-z ]/g, "")}"`), n] as [string, number],
      ),
    ),
  );
  metric("wasmvs_sync_passes_total", "counter", "Reconcile passes run.", [["", st.passes]]);
  metric("wasmvs_sync_failing_passes", "gauge", "Consecutive failed passes.", [["", st.failedPasses]]);
  return lines.join("\n") + "\n";
}

export async function serveMetrics(address: string, snapshot: () => SyncStatus): Promise<() => void> {
  const i = address.lastIndexOf(":");
  const host = address.slice(0, i).replace(/^\[|\]$/g, "") || "0.0.0.0",
    port = Number(address.slice(i + 1));
  const server = createServer((req, res) => {
    if (req.url !== "/metrics") {
      res.writeHead(404).end("see /metrics\n");
      return;
    }
    res.writeHead(200, { "Content-Type": "text/plain; version=0.0.4" }).end(metricsText(snapshot()));
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, resolve);
  });
  server.unref();
  return () => {
    server.close();
  };
}
