// A socket-mode worker that cannot start (its relay addon will not load) is started again with a backoff,
// not in a tight loop that fills the log and burns a core; one that was up restarts at once (proxy-workers
// kills live workers in namespaces). Real worker threads, no root.
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { test } from "uvu";
import * as assert from "uvu/assert";
import type { Logger } from "../src/proxy/log.ts";
import { PumpWorkers } from "../src/proxy/workers.ts";
import { testOrSkip } from "./helpers/skip.ts";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const RELAY = fileURLToPath(new URL("../native/relay/build/Release/relay.node", import.meta.url));

function capture(): { log: Logger; lines: { msg: string; f?: Record<string, unknown> }[] } {
  const lines: { msg: string; f?: Record<string, unknown> }[] = [];
  const put = (msg: string, f?: Record<string, unknown>) => lines.push({ msg, f });
  return { lines, log: { level: "debug", debug: put, info: put, warn: put, error: put, enabled: () => true } };
}

/** n workers of 16 slots each, logging into `lines`; addon: the relay's path (default the built one) */
function workers(n: number, addon?: string) {
  const { log, lines } = capture();
  return {
    w: new PumpWorkers(
      n,
      16,
      () => {},
      log,
      () => {},
      addon,
    ),
    lines,
  };
}

test("a worker whose relay will not load: started again after 100, 200, 400 ms..., and not after stop()", async () => {
  const { w, lines } = workers(1, "/nonexistent/wasmvs-relay.node");
  await sleep(1600);
  const restarts = w.restarts;
  // without the backoff a worker thread starts and fails in tens of ms: dozens of restarts in 1.6 s
  assert.ok(restarts >= 3 && restarts <= 6, `restarts in 1.6 s: ${restarts} (100+200+400+800 ms of backoff)`);
  assert.not.ok(w.pumps[0].hasRoom(), "the dead worker takes no connection meanwhile");
  assert.is(w.pick(), undefined);
  const failed = lines.filter((l) => l.msg === "worker failed to start: starting it again");
  assert.is(failed.length, restarts);
  assert.equal(
    failed.slice(0, 4).map((l) => [l.f?.failedInARow, l.f?.inMs]),
    [
      [1, 100],
      [2, 200],
      [3, 400],
      [4, 800],
    ].slice(0, Math.min(4, failed.length)),
  );
  assert.match(String(failed[0].f?.error), /nonexistent|Cannot find|cannot open/i);
  await w.stop();
  await sleep(1200);
  assert.is(w.restarts, restarts, "no restart after stop()");
});

testOrSkip(
  import.meta.url,
  existsSync(RELAY) ? "" : "the relay addon is not built (npm install builds it: node native/build.mjs)",
  "a worker whose relay loads: up, no restart, takes connections",
  async () => {
    const { w, lines } = workers(2);
    await w.ready();
    assert.ok(
      w.pumps.every((p) => p.wasReady && p.hasRoom()),
      JSON.stringify(lines),
    );
    assert.ok(w.pick());
    assert.is(w.restarts, 0);
    await w.stop();
  },
);

test.run();
