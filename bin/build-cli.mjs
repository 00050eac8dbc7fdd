#!/usr/bin/env node
// Builds the command's JavaScript (dist/cli/), so that `wasmvs` starts without transpiling TypeScript:
// src/cli/main.ts and everything it imports, bundled by esbuild with a chunk per lazily imported module
// (a command loads only what it runs) and source maps. Chunks stay two levels below the project root, as
// the sources are (src/<dir>/x.ts -> dist/cli/x.js), so their `new URL("../../…", import.meta.url)` paths
// (build/core.wasm, native addons, package.json) resolve to the same files. Packages stay external.
// Written to a fresh directory and swapped in, so a process starting meanwhile never reads half a build.
import { build } from "esbuild";
import { rmSync, renameSync, existsSync } from "node:fs";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("..", import.meta.url));
const out = `${root}dist/cli`,
  tmp = `${out}.${process.pid}.tmp`,
  old = `${out}.${process.pid}.old`;
await build({
  // the control socket's batch worker and a reload's configuration reader are threads' entries
  // (src/proxy/threads.ts startWorker loads them by their URL, beside it)
  entryPoints: {
    main: `${root}src/cli/main.ts`,
    "batch-worker": `${root}src/proxy/batch-worker.ts`,
    "config-worker": `${root}src/proxy/config-worker.ts`,
  },
  outdir: tmp,
  bundle: true,
  splitting: true,
  format: "esm",
  platform: "node",
  target: "node20",
  packages: "external",
  sourcemap: true,
  chunkNames: "[name]-[hash]",
  logLevel: "warning",
});
if (existsSync(out)) renameSync(out, old);
renameSync(tmp, out);
rmSync(old, { recursive: true, force: true });
