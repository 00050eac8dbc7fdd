// The optional native helper for reading a whole table back (native/netlink-dump): a run of GET_DEST
// dump requests answered in one loop on a worker thread. Built by `npm install` with node-gyp; when it
// is missing (no compiler, a failed build) the client reads through the netlink package as before.
import { createRequire } from "node:module";
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";

export interface NativeDump {
  dumpRun(requests: Buffer, starts: Uint32Array, timeoutMs: number): Promise<{ replies: Buffer; index: Int32Array }>;
}

let loaded: NativeDump | null | undefined;

export function nativeDump(): NativeDump | null {
  if (loaded !== undefined) return loaded;
  loaded = null;
  if (process.env.WASMVS_NO_NATIVE_DUMP) return loaded;
  const path = fileURLToPath(new URL("../../native/netlink-dump/build/Release/netlink_dump.node", import.meta.url));
  if (!existsSync(path)) return loaded;
  try {
    loaded = createRequire(import.meta.url)(path) as NativeDump;
  } catch {
    loaded = null;
  }
  return loaded;
}
