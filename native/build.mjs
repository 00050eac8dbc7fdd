// `npm install` builds every native helper under native/ (each folder with a binding.gyp) with node-gyp,
// against Node's own headers. None is required: a helper that fails to build is named with what goes
// without it, and the install goes on (the pure TypeScript paths stay).
import { spawnSync } from "node:child_process";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
for (const name of readdirSync(here).sort()) {
  const dir = join(here, name);
  if (!existsSync(join(dir, "binding.gyp"))) continue;
  const what = existsSync(join(dir, "WHAT")) ? readFileSync(join(dir, "WHAT"), "utf8").trim() : name;
  process.stdout.write(`wasmvs: building native/${name} (${what}) ... `);
  const r = spawnSync("node-gyp", ["rebuild", "--silent"], { cwd: dir, encoding: "utf8", shell: false });
  if (r.status === 0) { process.stdout.write("ok\n"); continue; }
  process.stdout.write("FAILED\n");
  process.stderr.write(`wasmvs: native/${name} did not build (${r.error ? r.error.message : `node-gyp exit ${r.status}`}); ` +
    `wasmvs works without it: ${what} is unavailable\n${(r.stderr || "").split("\n").slice(-8).join("\n")}\n`);
}
