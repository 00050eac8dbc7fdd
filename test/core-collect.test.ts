// Garbage collection of the WASM heap after deletions: one collection per turn of the event loop, however many
// services and destinations a change deletes (a whole-heap collection per deletion made deleting n cost n²),
// and the memory is reused once it has run.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { Core } from "../src/core/index.ts";

test("1,000 services and 1,000 destinations deleted in one turn: one collection, after it", async () => {
  const core = await Core.load();
  let collections = 0;
  const real = Core.prototype.collect;
  Core.prototype.collect = function (this: Core) {
    collections++;
    real.call(this);
  };
  const ids: number[] = [];
  for (let i = 0; i < 1000; i++) {
    const id = core.addService({ proto: "tcp", addr: `10.0.${i >> 8}.${i & 255}`, port: 80, scheduler: "rr" });
    core.addDest(id, { addr: `10.1.${i >> 8}.${i & 255}`, port: 80, weight: 1 });
    ids.push(id);
  }
  for (let i = 0; i < 1000; i++) core.deleteDest(ids[i], `10.1.${i >> 8}.${i & 255}`, 80);
  for (const id of ids) core.deleteService(id);
  assert.is(collections, 0, "nothing collected while the change runs");
  await Promise.resolve();
  assert.is(collections, 1, "one collection when the turn ends");
  core.flush();
  assert.is(collections, 2, "flush collects at once");
  Core.prototype.collect = real;
});

test.run();
