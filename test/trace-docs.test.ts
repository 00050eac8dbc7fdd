// docs/schedulers.md: every ```text block that starts with `$ wasmvs trace ...` must be exactly that
// command's output today. WASMVS_UPDATE_DOCS=1 rewrites the blocks instead of comparing.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { readFileSync, writeFileSync } from "node:fs";
import { runTrace } from "../src/cli/trace.ts";

const DOC = new URL("../docs/schedulers.md", import.meta.url);
const BLOCK = /```text\n\$ wasmvs trace ([^\n]*)\n([\s\S]*?)```/g;

async function output(args: string): Promise<string> {
  let s = "";
  const out = {
    write: (x: string) => {
      s += x;
      return true;
    },
    isTTY: false,
  };
  const code = await runTrace(args.split(/\s+/).filter(Boolean), out, out);
  if (code !== 0) throw new Error(`wasmvs trace ${args} exited ${code}: ${s}`);
  return s;
}

test("docs/schedulers.md: every example is what `wasmvs trace` prints now", async () => {
  const text = readFileSync(DOC, "utf8");
  const blocks = [...text.matchAll(BLOCK)];
  assert.ok(blocks.length >= 15, `expected an example per scheduler and persistence, found ${blocks.length}`);
  const scheds = new Set(blocks.map((b) => b[1].match(/-s (\w+)/)?.[1]));
  for (const s of ["rr", "wrr", "lc", "wlc", "lblc", "lblcr", "dh", "sh", "sed", "nq", "mh", "fo", "ovf", "twos"])
    assert.ok(scheds.has(s), `no example for ${s}`);
  if (process.env.WASMVS_UPDATE_DOCS === "1") {
    let out = "",
      last = 0;
    for (const b of blocks) {
      out += text.slice(last, b.index!) + "```text\n$ wasmvs trace " + b[1] + "\n" + (await output(b[1])) + "```";
      last = b.index! + b[0].length;
    }
    writeFileSync(DOC, out + text.slice(last));
    return;
  }
  for (const b of blocks) {
    const now = await output(b[1]);
    assert.fixture(b[2], now, `docs example 'wasmvs trace ${b[1]}' drifted (WASMVS_UPDATE_DOCS=1 to regenerate)`);
    for (const line of now.split("\n")) assert.ok([...line].length <= 80, `wider than 80 columns: ${line}`);
  }
});

test.run();
