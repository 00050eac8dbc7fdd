#!/usr/bin/env node
// The wasmvs command. Runs the built JavaScript (dist/cli/, made by bin/build-cli.mjs at install and before
// tests) when it is newer than every file under src/; otherwise, so that a stale build never runs, it
// registers tsx and runs the TypeScript sources (slower to start: they are transpiled first).
import { readdirSync, statSync } from "node:fs";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("..", import.meta.url));
function builtIsCurrent() {
  let built;
  try {
    built = statSync(`${root}dist/cli/main.js`).mtimeMs;
  } catch {
    return false;
  }
  // about 100 files: a stat each costs a millisecond or two, far less than transpiling
  for (const f of readdirSync(`${root}src`, { recursive: true })) {
    if (statSync(`${root}src/${f}`).mtimeMs > built) return false;
  }
  return true;
}

// a closed pipe (wasmvs ... | head) ends the output quietly, as other CLIs do
process.stdout.on("error", (e) => {
  if (e.code === "EPIPE") process.exit(0);
  throw e;
});
let main;
if (process.env.WASMVS_FROM_SOURCE !== "1" && builtIsCurrent()) {
  process.setSourceMapsEnabled(true);
  ({ main } = await import("../dist/cli/main.js"));
} else {
  const { register } = await import("tsx/esm/api");
  register();
  ({ main } = await import("../src/cli/main.ts"));
}
try {
  process.exitCode = await main(process.argv.slice(2));
} catch (e) {
  // a command that failed unexpectedly (the kernel refused, a file went away): one line, exit 1; the
  // stack only when asked for
  process.stderr.write(`wasmvs: ${process.env.WASMVS_DEBUG ? (e?.stack ?? e) : (e?.message ?? e)}\n`);
  process.exitCode = 1;
}
