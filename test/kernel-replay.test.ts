// Replays every scenario the real kernel ran (test/fixtures/kernel: Linux 6.1 in ../shared/ipvs-vm,
// recorded by test/kernel/record.cjs) through the WASM data plane, packet by packet, and asserts everything the
// kernel showed after every step: the chosen destination and the new entry's state, each close's state, every
// destination's ActiveConn/InActConn (in the kernel's list order), and the final list order.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { readFileSync } from "node:fs";
import { compareObserved, type Scenario, type Observed } from "./helpers/replay.ts";

// What is committed; the replay fails if it finds less (a truncated or half-merged fixture must not pass)
const COMMITTED = { scenarios: 132, connects: 20294 };

const dir = new URL("./fixtures/kernel/", import.meta.url);
const scenarios: Scenario[] = JSON.parse(readFileSync(new URL("scenarios.json", dir), "utf8"));
const observed: { kernel: string; scenarios: Observed[] } = JSON.parse(readFileSync(new URL("observed.json", dir), "utf8"));
const byName = new Map(observed.scenarios.map((o) => [o.name, o]));

const seen = { scenarios: 0, connects: 0 };

for (const sc of scenarios) {
  const obs = byName.get(sc.name);
  if (!obs) continue;
  test(`kernel ${observed.kernel}: ${sc.name} (${obs.choices.length} connections)`, async () => {
    const mismatches = await compareObserved(sc, obs);
    seen.scenarios++;
    seen.connects += obs.choices.length;
    assert.equal(mismatches.slice(0, 5), [], `${mismatches.length} mismatches`);
  });
}

test("replayed every recorded scenario and connection", () => {
  for (const [k, n] of Object.entries(COMMITTED)) {
    assert.ok(seen[k as keyof typeof seen] >= n, `${k}: ${seen[k as keyof typeof seen]} replayed, ${n} committed`);
  }
});

test.run();
