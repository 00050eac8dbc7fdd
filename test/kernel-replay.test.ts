// Replays every scenario the real kernel ran (test/fixtures/kernel: Linux 6.1 in ../shared/ipvs-vm,
// recorded by test/kernel/record.cjs) through the WASM data plane, packet by packet, and asserts the
// kernel's exact choice for every connection and its ActiveConn/InActConn counters after every step.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { readFileSync } from "node:fs";
import { replay, type Scenario, type Observed } from "./helpers/replay.ts";

const dir = new URL("./fixtures/kernel/", import.meta.url);
const scenarios: Scenario[] = JSON.parse(readFileSync(new URL("scenarios.json", dir), "utf8"));
const observed: { kernel: string; scenarios: Observed[] } = JSON.parse(readFileSync(new URL("observed.json", dir), "utf8"));
const byName = new Map(observed.scenarios.map((o) => [o.name, o]));

let total = 0;
for (const sc of scenarios) {
  const obs = byName.get(sc.name);
  if (!obs) continue;
  test(`kernel ${observed.kernel}: ${sc.name} (${obs.choices.length} connections)`, async () => {
    const mismatches: string[] = [];
    const final = await replay(sc, (i, got, after) => {
      const want = obs.choices[i];
      if (got !== want.dest) mismatches.push(`#${i} ${want.client}:${want.sport}: kernel ${want.dest}, wasm ${got}`);
      else if (want.after && JSON.stringify(after) !== JSON.stringify(want.after))
        mismatches.push(`#${i} counters: kernel ${JSON.stringify(want.after)}, wasm ${JSON.stringify(after)}`);
    }, (i, after) => {
      const want = obs.closes?.[i];
      if (want && JSON.stringify(after) !== JSON.stringify(want.after))
        mismatches.push(`close #${i} counters: kernel ${JSON.stringify(want.after)}, wasm ${JSON.stringify(after)}`);
    });
    total += obs.choices.length;
    assert.equal(mismatches.slice(0, 5), [], `${mismatches.length} mismatches`);
    if (obs.counters) {
      const want = Object.fromEntries(Object.entries(obs.counters).map(([k, v]) => [k, [v.active, v.inactive]]));
      assert.equal(final, want, "final ActiveConn/InActConn");
    }
  });
}

test("replayed every recorded scenario", () => {
  assert.ok(observed.scenarios.length >= 100, "the recording covers at least 100 scenarios");
  assert.ok(total >= 1000, `at least 1,000 connections compared (${total})`);
});

test.run();
