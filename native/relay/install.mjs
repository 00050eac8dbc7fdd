// Builds the native relay with the node-gyp that npm bundles, against the headers installed beside this
// Node (so it builds offline). A failed build is not a failed install: socket mode then uses its JS pump.
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const prefix = resolve(process.execPath, "../..");
const args = ["rebuild"];
if (existsSync(`${prefix}/include/node/node_api.h`)) args.push(`--nodedir=${prefix}`);
const gyp = process.env.npm_config_node_gyp;
const r = gyp ? spawnSync(process.execPath, [gyp, ...args], { cwd: here, stdio: ["ignore", "ignore", "pipe"] })
  : spawnSync("node-gyp", args, { cwd: here, stdio: ["ignore", "ignore", "pipe"] });
if (r.status !== 0) {
  const why = r.error ? r.error.message : (r.stderr?.toString().trim().split("\n").slice(-3).join(" | ") ?? `exit ${r.status}`);
  console.error(`wasmvs: native relay not built (${why}); socket mode will use its JS pump`);
}
