// A short soak (the 10-minute one is `node --import tsx bench/proxy.ts soak`): steady churn through the
// proxy on loopback while backends are added, drained and removed; no connection fails, and none that
// was established before a drain is lost.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { soak } from "../bench/proxy.ts";

test("soak (5 s): churn with backends added, drained and removed", async () => {
  const s = await soak({ seconds: 5, rate: 200, log: () => {} });
  // the rate reached is the benchmark's figure, not this test's: on a loaded machine fewer are opened, but
  // enough must be for the churn to mean something, and none may fail or be lost
  assert.ok(s.connections >= 100, `connections: ${s.connections}`);
  assert.is(s.failed, 0, JSON.stringify(s.errors));
  assert.ok(s.held >= 10, `held: ${s.held}`);
  assert.is(s.heldLost, 0, "connections established before a drain survive it");
});

test.run();
