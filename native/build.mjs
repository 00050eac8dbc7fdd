// `npm install` builds every native helper under native/ (each folder with a binding.gyp) with node-gyp,
// offline, against the running Node's own headers. None is required: a helper that fails to build is
// named with what goes without it, and the install goes on (the pure TypeScript paths stay). A folder
// with its own build.mjs (native/packet: it records why it failed for `wasmvs proxy --mode packet`)
// builds itself.
import { spawnSync } from "node:child_process";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { nodeGyp, rebuildArgs } from "./gyp.mjs";

const here = dirname(fileURLToPath(import.meta.url));

for (const name of readdirSync(here).sort()) {
  const dir = join(here, name);
  if (!existsSync(join(dir, "binding.gyp"))) continue;
  if (existsSync(join(dir, "build.mjs"))) {
    spawnSync(process.execPath, [join(dir, "build.mjs")], { stdio: "inherit" });
    continue;
  }
  const what = existsSync(join(dir, "WHAT")) ? readFileSync(join(dir, "WHAT"), "utf8").trim() : name;
  const [cmd, ...pre] = nodeGyp();
  const r = spawnSync(cmd, [...pre, ...rebuildArgs()], { cwd: dir, encoding: "utf8" });
  if (r.status === 0) {
    console.log(`wasmvs: native/${name} built`);
    continue;
  }
  const why =
    (r.error?.message ?? `${r.stderr}\n${r.stdout}`)
      .trim()
      .split("\n")
      .filter((l) => /error|Error|not found/.test(l))
      .slice(-6)
      .join("\n") || `node-gyp exited with ${r.status}`;
  console.log(`wasmvs: native/${name} NOT built (wasmvs works without it: ${what}):\n${why}`);
}
