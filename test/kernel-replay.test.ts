// Replays every scenario the real kernel ran (test/fixtures/kernel: Linux 6.1 in ../shared/ipvs-vm,
// recorded by test/kernel/record.cjs) through the WASM data plane, packet by packet, and asserts everything the
// kernel showed after every step: the chosen destination and the new entry's state, each close's state, every
// destination's ActiveConn/InActConn (in the kernel's list order), and the final list order. The seeded random
// corpus (random-observed.json) also asserts weights after every configuration step, whether the kernel refused
// it, and at the end each destination's Conns and PersistConn and the whole connection table.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { readFileSync } from "node:fs";
import { compareObserved, compareTraced, type Scenario, type Observed, type Traced } from "./helpers/replay.ts";

// What is committed; the replay fails if it finds less (a truncated or half-merged fixture must not pass)
const COMMITTED = { scenarios: 132, connects: 20294, randomScenarios: 537, randomConnects: 21316 };

const dir = new URL("./fixtures/kernel/", import.meta.url);
const scenarios: Scenario[] = JSON.parse(readFileSync(new URL("scenarios.json", dir), "utf8"));
const observed: { kernel: string; scenarios: Observed[] } = JSON.parse(
  readFileSync(new URL("observed.json", dir), "utf8"),
);
const byName = new Map(observed.scenarios.map((o) => [o.name, o]));
const randomDoc: { kernel: string; connectCount: number; scenarios: Traced[] } = JSON.parse(
  readFileSync(new URL("random-observed.json", dir), "utf8"),
);

const seen = { scenarios: 0, connects: 0, randomScenarios: 0, randomConnects: 0 };

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

// Seeded random scenarios (test/kernel/random-scenarios.cjs): the seed regenerates the steps; the transcript is
// one line per step, compared whole
const randomName = `${randomDoc.scenarios.length} seeded random scenarios, ${randomDoc.connectCount} connections`;
test(`kernel ${randomDoc.kernel}: ${randomName}`, async () => {
  const mismatches: string[] = [];
  for (const t of randomDoc.scenarios) {
    const { sc, diff } = await compareTraced(t);
    if (diff) mismatches.push(diff);
    seen.randomScenarios++;
    seen.randomConnects += sc.steps.filter((s) => s.op === "connect").length;
  }
  assert.equal(mismatches.slice(0, 3), [], `${mismatches.length} of ${randomDoc.scenarios.length} scenarios differ`);
});

test("replayed every recorded scenario and connection", () => {
  for (const [k, n] of Object.entries(COMMITTED)) {
    assert.ok(seen[k as keyof typeof seen] >= n, `${k}: ${seen[k as keyof typeof seen]} replayed, ${n} committed`);
  }
});

test.run();
