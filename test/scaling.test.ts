// The scaling benchmark end to end at 50 Services: every host mode's rules really installed (counted back),
// connections really translated (the backends saw them on the Services' endpoints), the xtables lock test
// run, the simulator run, and the report written. Needs root, iptables (both backends) and nft.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { hostSkipReason } from "../bench/scaling/netns.ts";

const skip = hostSkipReason();
const out = mkdtempSync(join(tmpdir(), "wasmvs-scaling-test-"));

test(`bench/scaling.ts at 50 Services${skip ? ` (host part SKIPPED: ${skip})` : ""}: rules, connects, lock, simulator, report`, () => {
  try {
    const r = spawnSync(process.execPath, ["--import", "tsx", "bench/scaling.ts", "--services=50", "--sim-services=200", "--sim-connections=20000", `--out=${out}`],
      { encoding: "utf8", timeout: 110_000, maxBuffer: 1 << 26 });
    assert.is(r.status, 0, r.stderr.slice(-3000));
    for (const f of ["scaling.json", "calibration.json", "summary.md", "latency.svg", "cpu.svg", "sync.svg", "incremental.svg"]) assert.ok(existsSync(join(out, f)), `${f} written`);
    const j = JSON.parse(readFileSync(join(out, "scaling.json"), "utf8"));
    const md = readFileSync(join(out, "summary.md"), "utf8");
    assert.ok(md.includes("node --import tsx bench/scaling.ts"), "commands printed under the figures");
    assert.ok(j.sim.length === 2 && j.sim.every((p: any) => p.engine.forwarded === p.engine.packets && p.engine.connections === 20000));
    if (skip) { assert.is(j.host.length, 0); return; }
    assert.is(j.host.length, 3);
    for (const h of j.host) {
      assert.is(h.rules.counted, h.rules.expected, `${h.mode}: ${h.rules.what}`);
      assert.ok(h.translated.first >= 400 && h.translated.last >= 400, `${h.mode}: backends saw ${h.translated.first}/${h.translated.last} connections on the Services' endpoints`);
      assert.ok(h.first.lat.p50 > 0 && h.last.lat.p99 >= h.last.lat.p50 && h.first.cpu.usPerConn > 0);
      assert.ok(h.syncMs > 0 && h.incrementalMs > 0);
      if (h.mode !== "nftables") assert.ok(h.lock && h.lock.bigRestoreMs > 0, `${h.mode}: lock test ran`);
    }
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
});

test.run();
