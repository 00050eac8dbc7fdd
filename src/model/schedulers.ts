// The host's view of the scheduler list. assembly/sched/list.ts is the one place a scheduler is written;
// everything here is derived from it, so the CLI, the k8s config, the trace and the core agree by
// construction.
import { SCHEDULER_KINDS, type SchedulerKind } from "../../assembly/sched/list.ts";

export type Family = "rr" | "wrr" | "least" | "twos" | "hash" | "locality";
interface SchedulerInfo {
  readonly name: string;
  readonly id: number;
  readonly family: Family;
  readonly flags: readonly string[];
  readonly kernel: boolean;
}

export const SCHEDULER_LIST: readonly SchedulerInfo[] = SCHEDULER_KINDS.map((k: SchedulerKind) => ({
  name: k.name,
  id: k.id,
  family: k.family as Family,
  flags: [...k.flags],
  kernel: k.kernel,
}));
export const SCHEDULERS: readonly string[] = SCHEDULER_LIST.map((s) => s.name);
// Linux's own (wasmvs adds twos): what a kernel target can be asked for
export const KERNEL_SCHEDULERS: readonly string[] = SCHEDULER_LIST.filter((s) => s.kernel).map((s) => s.name);

const byName = new Map(SCHEDULER_LIST.map((s) => [s.name, s]));
export function schedulerInfo(name: string): SchedulerInfo | undefined {
  return byName.get(name);
}

// ipvsadm -b's scheduler flag names: the generic flag-N, and each scheduler's own names for them
// (sh-fallback and mh-fallback share bit flag-1, as in the kernel)
export const SCHED_FLAG_BITS = [0x8, 0x10, 0x20] as const;
export const SCHED_FLAG_NAMES: Record<string, number> = Object.fromEntries([
  ...SCHED_FLAG_BITS.map((bit, i) => [`flag-${i + 1}`, bit] as const),
  ...SCHEDULER_LIST.flatMap((s) => s.flags.map((f, i) => [f, SCHED_FLAG_BITS[i]] as const)),
]);
// the scheduler a named flag belongs to (undefined for flag-N, which any scheduler takes)
export const SCHED_FLAG_OWNER: Record<string, string | undefined> = Object.fromEntries([
  ...SCHED_FLAG_BITS.map((_, i) => [`flag-${i + 1}`, undefined] as const),
  ...SCHEDULER_LIST.flatMap((s) => s.flags.map((f) => [f, s.name] as const)),
]);

// name -> its bit and owning scheduler; a Map, so "constructor" or "toString" is no flag
const flagByName = new Map(
  Object.entries(SCHED_FLAG_NAMES).map(([name, bit]) => [name, { bit, owner: SCHED_FLAG_OWNER[name] }] as const),
);
/** A -b flag name's bit and the scheduler it needs (no owner: flag-N, which any scheduler takes). */
export function schedFlag(name: string): { readonly bit: number; readonly owner?: string } | undefined {
  return flagByName.get(name);
}

/** The name of flag bit i (0: flag-1) under a scheduler: its own name where the list gives one, else flag-N. */
export function schedFlagName(sched: string, i: number): string {
  return byName.get(sched)?.flags[i] ?? `flag-${i + 1}`;
}

export function familyOf(sched: string): Family {
  return byName.get(sched)?.family ?? "least";
}
