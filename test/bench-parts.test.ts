// The benchmark's own parts (bench/, src/core/bench-api.ts, assembly/bench.ts): the baselines compute what
// they claim (the kernel's hsiphash, a table that finds every connection and nothing else), and the
// latency and throughput probes find what they walk and refuse bad arguments without reading astray.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { Core } from "../src/core/index.ts";
import {
  writeKeys4,
  lookupBatch,
  lookupChain,
  chaseInit,
  chase,
  chaseMulti,
  chaseFree,
} from "../src/core/bench-api.ts";
import { hsiphashKeyed, hsiphash1u32 } from "../bench/baseline/maglev.ts";
import { TypedConnTable, newConn } from "../bench/baseline/conn-table.ts";

// n TCP keys to 10.0.0.1:80, their client addresses and ports left for the test to fill
function tcpKeysTo10001(n: number) {
  return {
    proto: 6,
    caddr: new Uint32Array(n),
    cport: new Uint32Array(n),
    vaddr: new Uint32Array(n).fill(0x0a000001),
    vport: new Uint32Array(n).fill(80),
  };
}

test("the mh baseline's hsiphash gives the kernel's test vector and mh's keyed form", () => {
  // lib/siphash_kunit.c, 64-bit table: key bytes 00..0f, the 4 bytes 00 01 02 03 -> 0x88d38328
  assert.is(hsiphashKeyed(0x03020100, 0x07060504, 0x03020100, 0x0f0e0d0c, 0x0b0a0908), 0x88d38328);
  const key = 2654435761;
  for (const v of [0, 1, 0xffffffff, 0x0c000001]) assert.is(hsiphash1u32(v, key), hsiphashKeyed(v, 0, key, 0, key));
});

test("the typed-array table finds every connection it holds and nothing else", () => {
  const t = new TypedConnTable(20_000);
  for (let i = 0; i < 20_000; i++) t.add(newConn(6, 0x0b000000 + (i >>> 4), 10_000 + (i & 15), 0x0a000001, 80, i % 10));
  for (let i = 0; i < 20_000; i++) assert.is(t.find(6, 0x0b000000 + (i >>> 4), 10_000 + (i & 15), 0x0a000001, 80), i);
  assert.is(t.find(17, 0x0b000000, 10_000, 0x0a000001, 80), -1); // other protocol
  assert.is(t.find(6, 0x0b000000, 10_000, 0x0a000001, 81), -1); // other port
  assert.is(t.find(6, 0xfb000000, 10_000, 0x0a000001, 80), -1); // an address with the top bit set
  assert.throws(() => {
    for (let i = 0; i < 30_000; i++) t.add(newConn(6, 0x0c000000 + i, 1, 1, 1, 0));
  }, /full/);
  assert.throws(() => new TypedConnTable(1 << 23), /23-bit/);
});

test("lookupChain finds every live key one at a time; bad arguments read nothing astray", async () => {
  const core = await Core.load({ connCapacity: 4096 });
  const svc = core.addService({ proto: "tcp", addr: "10.0.0.1", port: 80, scheduler: "rr" });
  core.addDest(svc, { addr: "10.1.0.1", port: 8080 });
  const n = 1000;
  const keys = tcpKeysTo10001(n);
  for (let i = 0; i < n; i++) {
    keys.caddr[i] = 0x0b000000 + i;
    keys.cport[i] = 10_000 + i;
    const r = core.packet("in", "tcp", `11.0.${i >> 8}.${i & 255}`, 10_000 + i, "10.0.0.1", 80, { flags: 2 });
    assert.is(r.verdict, "forward");
  }
  writeKeys4(core, keys, n);
  assert.is(lookupBatch(core, n), n);
  assert.is(lookupChain(core, n, 0, 2500), 2500); // wraps at n
  assert.is(lookupChain(core, n, 999, 1), 1);
  assert.is(lookupChain(core, n, -5, 10), 10); // a negative start begins at key 0
  assert.is(lookupChain(core, n, 2 ** 31 - 1, 10), 10);
  assert.is(lookupChain(core, 0, 0, 10), 0);
  assert.is(lookupChain(core, -1, 0, 10), 0);
  assert.is(lookupChain(core, n, 0, -3), 0);
  assert.is(lookupChain(core, 10 * n, 0, n), n); // n clamped to the key area
});

test("lookupBatch's pre-pass (from 32k live) finds what one lookup does: each key's entry, a miss a miss", async () => {
  const core = await Core.load({ connCapacity: 65536 });
  const svc = core.addService({ proto: "tcp", addr: "10.0.0.1", port: 80, scheduler: "rr" });
  core.addDest(svc, { addr: "10.1.0.1", port: 8080 });
  const live = 40_000;
  // connection i: client 11.0.x.y (i >> 4), port 10000 + (i & 15); made in order on a fresh table, so entry i
  for (let i = 0; i < live; i++) {
    const a = i >>> 4;
    const r = core.packet("in", "tcp", `11.0.${a >> 8}.${a & 255}`, 10_000 + (i & 15), "10.0.0.1", 80, { flags: 2 });
    assert.is(r.verdict, "forward");
  }
  // keys in a scrambled order, every seventh one absent (a port no connection has), n not a multiple of a group
  const n = live + 1234;
  const keys = tcpKeysTo10001(n);
  const want = new Int32Array(n);
  let present = 0;
  for (let k = 0; k < n; k++) {
    const i = (k * 7919) % live;
    keys.caddr[k] = 0x0b000000 + (i >>> 4);
    keys.cport[k] = 10_000 + (i & 15);
    if (k % 7 === 3) keys.cport[k] += 16;
    want[k] = k % 7 === 3 ? -1 : i;
    if (want[k] >= 0) present++;
  }
  writeKeys4(core, keys, n);
  for (const m of [n, n - 5, 100]) {
    const expect = want.subarray(0, m).filter((x) => x >= 0).length;
    assert.is(lookupBatch(core, m), expect);
    const got = new Int32Array(core.x.memory.buffer, core.x.keyResultsPtr() >>> 0, m);
    for (let k = 0; k < m; k++) {
      if (want[k] >= 0) assert.is(got[k], want[k], `key ${k}`);
      else assert.ok(got[k] < 0, `key ${k}`);
    }
  }
  assert.is(lookupBatch(core, n), present);
});

test("the chase walks one cycle with 1 and with 16 chains; bad counts do nothing", async () => {
  const core = await Core.load({ connCapacity: 16 });
  assert.is(chaseMulti(core, 16, 10), 0); // no area yet
  assert.ok(chaseInit(core, 64 * 1024));
  const lines = 1024;
  assert.ok(chase(core, lines) < lines);
  const at = chase(core, lines); // a single cycle: lines steps come back
  assert.is(chase(core, lines), at);
  assert.ok(chaseMulti(core, 16, 100) >= 0);
  assert.is(chaseMulti(core, 0, 100), 0);
  assert.is(chaseMulti(core, -1, 100), 0);
  assert.ok(chaseMulti(core, 1000, 10) >= 0); // clamped to 16 chains
  chaseFree(core);
  assert.is(chaseMulti(core, 16, 10), 0);
});

test.run();
