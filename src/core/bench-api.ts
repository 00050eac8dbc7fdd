// Benchmark helpers over a Core: the batch entry points (lookupBatch, scheduleBatch) and the pointer-chase
// exports of assembly/bench.ts. Lives in src/core because it writes WASM memory (the key area); bench/ is
// the only caller. One boundary crossing per batch.
import type { Core } from "./index.ts";
import { AF_INET } from "./addr.ts";

const KEY_BYTES = 48;
const keyAreas = new WeakMap<Core, { ptr: number; max: number }>();

// IPv4 lookup keys as numbers (addresses as host-order u32, e.g. 10.0.0.1 = 0x0a000001).
export interface Keys4 {
  proto: number;
  caddr: Uint32Array;
  cport: Uint32Array;
  vaddr: Uint32Array;
  vport: Uint32Array;
}

// Writes keys [0, n) into the Core's key area (allocated once per Core with room for `max` keys; a later
// call must not ask for more). The key layout is assembly/index.ts's: af u8, proto u8, pad u16, cport u32,
// vport u32, pad u32, caddr 16 bytes, vaddr 16 bytes, addresses in network order.
export function writeKeys4(core: Core, keys: Keys4, n: number, max = n): void {
  let area = keyAreas.get(core);
  if (!area) {
    area = { ptr: core.x.keyBatchInit(max) >>> 0, max };
    keyAreas.set(core, area);
  }
  if (n > area.max) throw new Error(`key area holds ${area.max} keys, asked for ${n}`);
  const buf = core.x.memory.buffer as ArrayBuffer;
  const u8 = new Uint8Array(buf, area.ptr, n * KEY_BYTES);
  u8.fill(0);
  const dv = new DataView(buf, area.ptr, n * KEY_BYTES);
  for (let i = 0; i < n; i++) {
    const o = i * KEY_BYTES;
    dv.setUint8(o, AF_INET);
    dv.setUint8(o + 1, keys.proto);
    dv.setUint32(o + 4, keys.cport[i], true);
    dv.setUint32(o + 8, keys.vport[i], true);
    dv.setUint32(o + 16, keys.caddr[i], false); // network order
    dv.setUint32(o + 32, keys.vaddr[i], false);
  }
}

// Looks up the first n keys of the key area; returns how many were found.
export function lookupBatch(core: Core, n: number): number {
  return core.x.lookupBatch(n);
}

// `steps` lookups one at a time from key `start`, each key chosen by the previous result (wrapping at n):
// the latency of one lookup, where lookupBatch measures throughput. Returns how many were found.
export function lookupChain(core: Core, n: number, start: number, steps: number): number {
  return core.x.lookupChain(n, start, steps);
}

// n new-connection decisions on a service (see assembly/index.ts scheduleBatch); returns the id checksum.
export function scheduleBatch(
  core: Core,
  svcId: number,
  n: number,
  srcBase: number,
  bindLoad: boolean,
  nowMs = 0,
): number {
  return core.x.scheduleBatch(svcId, n, srcBase >>> 0, bindLoad ? 1 : 0, nowMs);
}

// ---- pointer chase (assembly/bench.ts) -------------------------------------------------------------------
export function hasChase(core: Core): boolean {
  return typeof core.x.benchChaseInit === "function";
}

// Builds a random single cycle over `bytes` of WASM memory (64-byte lines); false when out of memory.
export function chaseInit(core: Core, bytes: number, seed = 0x1234567n): boolean {
  const lines = Math.floor(bytes / 64);
  return core.x.benchChaseInit(lines, BigInt.asUintN(64, BigInt(seed))) >>> 0 !== 0;
}
export function chase(core: Core, steps: number): number {
  return core.x.benchChase(steps) >>> 0;
}
// `chains` (≤ 16) independent walks of the cycle at once, `steps` links each: the batched baseline.
export function chaseMulti(core: Core, chains: number, steps: number): number {
  return core.x.benchChaseMulti(chains, steps) >>> 0;
}
export function chaseFree(core: Core): void {
  core.x.benchChaseFree();
}
