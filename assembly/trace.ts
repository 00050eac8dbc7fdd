// Scheduler decision tracing: when the flag is on, every schedule() call writes one fixed-size record of
// why it chose what it chose into a ring of records allocated once at start (nothing per packet).
// When the flag is off a scheduler pays one predictable branch (`if (traceOn)`) at its return.
//
// A record is TRACE_WORDS i32 words. Words 0..5 are common; the rest depend on the scheduler family.
// The word numbers are the contract with src/core/trace.ts, which decodes the records: they live in
// ./trace-layout.ts, a file both compilers read (re-exported here for the schedulers).
import { getService } from "./service/service";
import { TRACE_WORDS, TRACE_CAP } from "./trace-layout";
export * from "./trace-layout";

// The flag the schedulers test; hosts use traceEnable().
export let traceOn: bool = false;

const buf = new StaticArray<i32>(TRACE_WORDS * TRACE_CAP);
let written: i32 = 0;

// ---- host side -----------------------------------------------------------------------------------------
export function traceEnable(on: i32): void {
  traceOn = on != 0;
}
export function traceEnabled(): i32 {
  return traceOn ? 1 : 0;
}
export function traceBuf(): usize {
  return changetype<usize>(buf);
}
export function traceWords(): i32 {
  return TRACE_WORDS;
}
export function traceCapacity(): i32 {
  return TRACE_CAP;
}
// Records written since the last reset; record k (k >= count - capacity) is at slot k % capacity.
export function traceCount(): i32 {
  return written;
}
export function traceReset(): void {
  written = 0;
}

// Debug accessors into a service's scheduler state (table slots, mh permutations, lblc table size),
// answered by Scheduler.traceQuery(); -1 when the scheduler has no such thing.
export function traceQuery(svcId: i32, q: i32, i: i32): i32 {
  const s = getService(svcId);
  if (!s) return -1;
  const sc = s.sched;
  return sc ? sc.traceQuery(s, q, i) : -1;
}

// ---- scheduler side ------------------------------------------------------------------------------------
// Starts a record (zeroed) and returns its address; kind is the scheduler id.
export function traceRec(kind: i32, svcId: i32, destId: i32): usize {
  const p = changetype<usize>(buf) + ((<usize>(written % TRACE_CAP) * <usize>TRACE_WORDS) << 2);
  memory.fill(p, 0, (<usize>TRACE_WORDS) << 2);
  store<i32>(p, kind);
  store<i32>(p, svcId, 4);
  store<i32>(p, destId, 8);
  store<i32>(p, written, 12);
  written++;
  return p;
}
// word w of the record at p
@inline export function tw(p: usize, w: i32, v: i32): void {
  store<i32>(p + ((<usize>w) << 2), v);
}
