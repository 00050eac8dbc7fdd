// `wasmvs sync`'s loop re-reads its rules or config file on every full pass. A writer that truncates and then
// writes (writeFileSync, most editors) left a moment in which the file was empty, and a pass that read it then
// deleted every virtual server and unbound its address until the next pass (the VM's order test saw it under
// emulation). readSettled reads a file only once it has stood still. Real files in a temporary directory.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { mkdtempSync, readFileSync, rmSync, utimesSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { readSettled } from "../src/cli/settled-read.ts";

const RULES = Array.from({ length: 200 }, (_, i) => `-A -t 10.98.0.${i % 250}:${80 + i} -s rr\n`).join("");

function withFile(fn: (path: string) => Promise<void>): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), "wasmvs-settled-"));
  return fn(join(dir, "rules.txt")).finally(() => rmSync(dir, { recursive: true, force: true }));
}

test("a file that stands still is read at once", () =>
  withFile(async (path) => {
    writeFileSync(path, RULES);
    const old = new Date(Date.now() - 60_000);
    utimesSync(path, old, old);
    const t0 = performance.now();
    assert.is(await readSettled(path), RULES);
    assert.ok(performance.now() - t0 < 100, `${(performance.now() - t0).toFixed(0)} ms`);
  }));

test("a file caught between its truncation and its write is read whole, never empty", () =>
  withFile(async (path) => {
    writeFileSync(path, RULES);
    writeFileSync(path, ""); // the writer's truncation...
    const late = setTimeout(() => writeFileSync(path, RULES), 100); // ...and its write, 100 ms later
    assert.is(readFileSync(path, "utf8"), "", "a plain read at this moment sees an empty table");
    try {
      assert.is(await readSettled(path), RULES);
    } finally {
      clearTimeout(late);
    }
  }));

test("a file rewritten every 30 ms for 0.5 s is read whole, as its last version", () =>
  withFile(async (path) => {
    let n = 0,
      last = performance.now(),
      gap = 0; // the writer's longest pause: a loaded machine may delay its timer past the settle time
    writeFileSync(path, `${RULES}# 0\n`);
    const writer = setInterval(() => {
      if (++n > 16) return;
      writeFileSync(path, `${RULES}# ${n}\n`);
      gap = Math.max(gap, performance.now() - last);
      last = performance.now();
    }, 30);
    try {
      const text = await readSettled(path);
      assert.match(text, new RegExp(`^${RULES.replace(/\./g, "\\.")}# \\d+\n$`), "a whole version");
      if (gap < 150) assert.is(text, `${RULES}# 16\n`);
    } finally {
      clearInterval(writer);
    }
  }));

test("a file that never stands still is refused, naming it, not read half-written", () =>
  withFile(async (path) => {
    let n = 0;
    writeFileSync(path, RULES);
    // a writer that never pauses for the settle time (here 20 ms, so 50 looks take about a second): each
    // version is the table cut short, as a slow writer's file is between two of its writes
    const writer = setInterval(() => writeFileSync(path, RULES.slice(0, (++n * 997) % RULES.length)), 5);
    try {
      await readSettled(path, 20);
      assert.unreachable("read a file that was still being written");
    } catch (e) {
      assert.match(String(e), /rules\.txt: still changing after 1\.0 s, not read/);
    } finally {
      clearInterval(writer);
    }
  }));

test("a missing file is an error naming it", () =>
  withFile(async (path) => {
    try {
      await readSettled(path);
      assert.unreachable("read a missing file");
    } catch (e) {
      assert.match(String(e), /ENOENT.*rules\.txt/);
    }
  }));

test.run();
