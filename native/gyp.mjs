// How to run node-gyp offline against the running Node's own headers (shared by the native build scripts).
import { existsSync } from "node:fs";
import { dirname, join } from "node:path";

const prefix = dirname(dirname(process.execPath)); // /usr for /usr/bin/node
export const nodedir = existsSync(join(prefix, "include", "node", "node_api.h")) ? prefix : undefined;

/** The command (and leading arguments) that runs node-gyp: npm's own in lifecycle scripts, else npm's bundled one. */
export function nodeGyp() {
  if (process.env.npm_config_node_gyp) return [process.execPath, process.env.npm_config_node_gyp];
  const bundled = join(prefix, "lib", "node_modules", "npm", "node_modules", "node-gyp", "bin", "node-gyp.js");
  if (existsSync(bundled)) return [process.execPath, bundled];
  return ["node-gyp"];
}

/** node-gyp rebuild's arguments, with --nodedir when Node's headers sit under its install prefix. */
export const rebuildArgs = () => ["rebuild", ...(nodedir ? [`--nodedir=${nodedir}`] : [])];
