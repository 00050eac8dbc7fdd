// A test that cannot run is never a pass. skip() registers it with uvu's test.skip (so uvu's own "Skipped"
// total counts it), prints one line `SKIP <file>: <test>: <reason>` at once, and a closing count when the
// run ends. Under CI=true any skip fails the run: CI installs every prerequisite, so a skip there means an
// install step is broken. Checks belong at a module's top level (awaited there if need be), never in a
// `before` hook: uvu 0.5 swallows what a hook throws and then runs nothing, silently.
import { spawnSync } from "node:child_process";
import { basename } from "node:path";
import { fileURLToPath } from "node:url";
import { test } from "uvu";
import { onExit } from "./on-exit.ts";

const skipped: string[] = [];

export function skip(file: string, name: string, reason: string): void {
  const line = `SKIP ${basename(file.startsWith("file:") ? fileURLToPath(file) : file)}: ${name}: ${reason}`;
  skipped.push(line);
  console.log(line);
  test.skip(name, () => {});
}

/** The commands among `cmds` that are not on PATH. */
export function missingCommands(cmds: string[]): string[] {
  return cmds.filter((c) => spawnSync("sh", ["-c", `command -v ${c}`], { stdio: "ignore" }).status !== 0);
}

export const isRoot = (): boolean => process.getuid?.() === 0;

/** Why a test that needs root and these commands cannot run here ("" when it can). */
export function needs(cmds: string[], install: string, opts: { root?: boolean } = { root: true }): string {
  if (opts.root !== false && !isRoot())
    return "not root (network namespaces and raw sockets need CAP_NET_ADMIN/CAP_SYS_ADMIN): run as root";
  const missing = missingCommands(cmds);
  return missing.length ? `missing ${missing.join(", ")} (as root: ${install})` : "";
}

onExit(() => {
  if (!skipped.length) return;
  const ci = process.env.CI === "true";
  console.log(
    `\n${skipped.length} test(s) SKIPPED` +
      `${ci ? " under CI=true: this fails the run (CI installs every " + "prerequisite)" : ""}:`,
  );
  for (const l of skipped) console.log(`  ${l}`);
  if (ci) process.exitCode = 1;
});

type Suite = typeof test;
/**
 * A `before` hook whose failure fails every test of the suite (uvu 0.5 would swallow it and run nothing):
 * the error is kept and re-thrown from a before.each, which uvu reports per test.
 */
export function guardedBefore(suite: Suite, fn: () => Promise<void> | void): void {
  let failed: unknown;
  suite.before(async () => {
    try {
      await fn();
    } catch (e) {
      failed = e;
      console.error("set-up failed:", e);
    }
  });
  suite.before.each(() => {
    if (failed) throw new Error(`the suite's set-up failed: ${(failed as Error)?.stack ?? String(failed)}`);
  });
}

/** test(name, fn) where `why` is empty; otherwise a counted SKIP naming the reason. */
export function testOrSkip(file: string, why: string, name: string, fn: () => Promise<void> | void): void {
  if (why) skip(file, name, why);
  else test(name, fn);
}
