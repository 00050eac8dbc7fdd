// A seeded fuzz run of the packet path through the debug build (every packet byte access asserted to
// be inside its packet): 1,000,000 random and mutated packets, no trap, valid verdicts and reasons, no
// byte outside a packet changed, valid checksums stay valid. bench/fuzz.ts runs the same for longer.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { runFuzz } from "../bench/fuzz.ts";

test("fuzz: 1,000,000 packets through the debug build", async () => {
  const s = await runFuzz({ count: 1_000_000, seed: 20240601, debug: true });
  assert.is(s.packets, 1_000_000);
  assert.is(s.verdicts[0] + s.verdicts[1] + s.verdicts[2], 1_000_000);
  // the mix reaches every outcome and the main parse reasons
  assert.ok(s.verdicts[1] > 10_000, `forwarded ${s.verdicts[1]}`);
  for (const reason of [16, 17, 18, 19, 20, 21, 22, 23, 24, 26, 27])
    assert.ok((s.reasons[reason] ?? 0) > 0, `reason ${reason} seen`);
  assert.ok(s.checksumChecked > 10_000);
});

test("fuzz: the release build survives the same (different seed)", async () => {
  const s = await runFuzz({ count: 200_000, seed: 7, debug: false });
  assert.is(s.packets, 200_000);
});

test.run();
