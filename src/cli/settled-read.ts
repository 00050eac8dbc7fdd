// A rules or config file that a loop re-reads may be mid-write when it looks: writeFileSync and most editors
// truncate and then write, and a read between the two sees an empty or partial file that parses as a
// smaller table (the sync loop then deleted virtual servers and unbound their addresses for one pass; the
// VM's order test caught it under emulation). So a file is read only once it has not changed for SETTLE_MS,
// and read again if it changed while being read. A writer that renames a finished file into place never
// waits.
import { readFileSync, statSync } from "node:fs";

const SETTLE_MS = 200;
// A file still changing after this many looks (10 s at the default) is not read: reading it as it was then
// could apply a partial table, the outage this guards against. The caller keeps what it has and tries again.
const ATTEMPTS = 50;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * The file's text once it has stood still for SETTLE_MS (its size and mtime the same before and after);
 * rejects, naming the file, if it is still changing after ATTEMPTS looks.
 */
export async function readSettled(path: string, settleMs = SETTLE_MS): Promise<string> {
  for (let i = 0; i < ATTEMPTS; i++) {
    const before = statSync(path);
    const age = Date.now() - before.mtimeMs;
    if (age < settleMs) {
      await sleep(Math.max(1, settleMs - age));
      continue;
    }
    const text = readFileSync(path, "utf8");
    const after = statSync(path);
    const same = after.mtimeMs === before.mtimeMs && after.size === before.size && after.ino === before.ino;
    if (same && Buffer.byteLength(text) === after.size) return text;
  }
  throw new Error(
    `${path}: still changing after ${((ATTEMPTS * settleMs) / 1000).toFixed(1)} s, not read (a partial file ` +
      "would be a partial table); write it elsewhere and rename it into place",
  );
}
