// The sync loop's failure path (the kernel side lives in the VM tests): a pass that cannot run is retried
// as a full sync after an exponential, jittered, capped delay, said in the log, and a clean pass resets it.
// The reconciler here fails on purpose: what is tested is the loop's scheduling. Then the status a
// running cluster loop leaves for `wasmvs sync --check` and its metrics text, read by the real command.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { fileURLToPath } from "node:url";
import { SyncLoop, type Reconciler, type ReconcileReport, type RetryInfo } from "../src/kernel/reconcile.ts";
import { IpvsError } from "../src/kernel/client.ts";
import { metricsText, type SyncStatus } from "../src/cli/sync-status.ts";

const report = (failures = 0): ReconcileReport =>
  ({
    changes: [],
    failures: Array.from({ length: failures }, () => ({ kind: "add-service", service: "x", error: "refused" })),
    notes: [],
    refreshed: true,
    messages: 0,
    ms: 1,
  }) as unknown as ReconcileReport;

test("failed passes back off exponentially with jitter up to the cap, as full syncs; a clean pass resets", async () => {
  const calls: { at: number; refresh: boolean }[] = [];
  let fail = 6;
  const rec = {
    drainingCount: 0,
    async sync(_d: unknown, o: { refresh?: boolean }) {
      calls.push({ at: Date.now(), refresh: !!o.refresh });
      if (fail-- > 0) throw new IpvsError("list services", 2, "the kernel's IPVS generic netlink family is gone");
      return report();
    },
    async update() {
      calls.push({ at: Date.now(), refresh: false });
      return report();
    },
  } as unknown as Reconciler;
  const retries: RetryInfo[] = [];
  const loop = new SyncLoop(rec, () => ({ services: [] }), {
    syncPeriodMs: 60_000,
    retryBaseMs: 40,
    retryMaxMs: 320,
    onError: (_e, r) => {
      if (r) retries.push(r);
    },
  });
  loop.start();
  const t0 = Date.now();
  while (calls.length < 7 && Date.now() - t0 < 5000) await new Promise((r) => setTimeout(r, 10));
  assert.is(calls.length, 7, `${calls.length} passes`);
  const gaps = calls.slice(1).map((c, i) => c.at - calls[i].at);
  // attempt n waits in [d/2, d], d = 40·2^(n-1) ≤ 320: 20-40, 40-80, 80-160, 160-320, 160-320, 160-320
  // (the announced delays are checked exactly; the clock only from below: a loaded machine runs timers late)
  assert.equal(
    retries.map((r) => r.attempt),
    [1, 2, 3, 4, 5, 6],
  );
  retries.forEach((r, i) => {
    const d = Math.min(320, 40 * 2 ** i);
    assert.ok(
      r.maxMs === 320 && r.delayMs >= d / 2 && r.delayMs <= d,
      `attempt ${r.attempt}: ${r.delayMs} ms, want ${d / 2}-${d}`,
    );
    assert.ok(
      gaps[i] >= r.delayMs - 2,
      `attempt ${r.attempt} ran ${gaps[i]} ms after the failure, before its ${r.delayMs} ms`,
    );
  });
  assert.ok(
    calls.every((c) => c.refresh),
    "every retry is a full sync (the kernel is re-read)",
  );
  assert.is(loop.failedPasses, 0, "the clean pass reset the backoff");
  // a trigger now runs at once again
  const n = calls.length;
  loop.trigger();
  await new Promise((r) => setTimeout(r, 50));
  assert.is(calls.length, n + 1);
  await loop.stop();
});

test("a pass that reports refused changes is retried as a full sync after the backoff too", async () => {
  const calls: boolean[] = [];
  let failures = 2;
  const rec = {
    drainingCount: 0,
    async sync(_d: unknown, o: { refresh?: boolean }) {
      calls.push(!!o.refresh);
      return report(failures-- > 0 ? 1 : 0);
    },
    async update() {
      calls.push(false);
      return report();
    },
  } as unknown as Reconciler;
  const loop = new SyncLoop(rec, () => ({ services: [] }), { syncPeriodMs: 60_000, retryBaseMs: 20, retryMaxMs: 40 });
  loop.start();
  await new Promise((r) => setTimeout(r, 300));
  assert.equal(calls, [true, true, true]);
  await loop.stop();
});

const bin = fileURLToPath(new URL("../bin/wasmvs.js", import.meta.url));
function status(o: Partial<SyncStatus> & { ageS?: number; silentS?: number; watching?: boolean } = {}): SyncStatus {
  const now = Date.now();
  const w = (kind: "Service" | "EndpointSlice") => ({
    kind,
    resourceVersion: "42",
    watching: o.watching ?? true,
    lastEventAt: now - (o.silentS ?? 1) * 1000,
    lastRelistAt: now - 600_000,
    watchStartedAt: now - 600_000,
    relists: 1,
    watches: 3,
    idleAborts: 0,
    errors: 0,
    refused: { "bad object": 2 },
    objects: 5,
  });
  return {
    pid: 1234,
    updatedAt: now - (o.ageS ?? 1) * 1000,
    idleTimeoutMs: 120_000,
    passes: 9,
    failedPasses: 0,
    watch: [w("Service"), w("EndpointSlice")],
  };
}

test("sync --check reads a running cluster loop's status: live, silent, stale, missing, garbage", () => {
  const dir = mkdtempSync(`${tmpdir()}/wasmvs-status-`);
  const f = `${dir}/s.json`;
  const check = () => spawnSync(process.execPath, [bin, "sync", "--check", "--status-file", f], { encoding: "utf8" });
  try {
    writeFileSync(f, JSON.stringify(status()));
    let r = check();
    assert.is(r.status, 0, r.stdout + r.stderr);
    assert.match(
      r.stdout,
      new RegExp(
        /EndpointSlice watch: open, resourceVersion 42, last event or bookmark \d+\.\d s ago, /.source +
          /last relist 60\d\.\d s ago, 1 relist\(s\)/.source,
      ),
    );
    assert.match(r.stdout, /refused: 2 bad object/);
    assert.match(r.stdout, /the watch is live/);
    writeFileSync(f, JSON.stringify(status({ silentS: 200 })));
    r = check();
    assert.is(r.status, 1);
    assert.match(r.stdout, /STALE: the Service watch has been silent for 20\d s \(deadline 120 s\)/);
    writeFileSync(f, JSON.stringify(status({ ageS: 60 })));
    r = check();
    assert.is(r.status, 1);
    assert.match(r.stdout, /STALE: the status was last written 6\d\.\d s ago: is the loop \(pid 1234\) running\?/);
    for (const junk of ["", "{", "null", "[]", '{"updatedAt":"x"}', '{"__proto__":{"updatedAt":1},"watch":[]}']) {
      writeFileSync(f, junk);
      r = check();
      assert.is(r.status, 1, `${junk}: ${r.stdout}${r.stderr}`);
      assert.is(r.stderr.trim().split("\n").length <= 2, true, r.stderr);
    }
    rmSync(f);
    assert.is(check().status, 1);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("metrics: the watch's age, relists and refusals in Prometheus' text format", () => {
  const t = metricsText(status({ silentS: 3 }));
  assert.match(t, /^# HELP wasmvs_sync_watch_last_event_age_seconds /m);
  assert.match(t, /^wasmvs_sync_watch_last_event_age_seconds\{kind="EndpointSlice"\} 3(\.\d+)?$/m);
  assert.match(t, /^wasmvs_sync_watch_last_relist_age_seconds\{kind="Service"\} 600(\.\d+)?$/m);
  assert.match(t, /^wasmvs_sync_watch_events_refused_total\{kind="Service",reason="bad object"\} 2$/m);
  assert.match(t, /^wasmvs_sync_passes_total 9$/m);
  for (const l of t.trim().split("\n"))
    assert.match(l, /^(# (HELP|TYPE) \w+ .+|\w+(\{[^}]*\})? (-?\d+(\.\d+)?(e[-+]\d+)?|NaN))$/, l);
});

test.run();
