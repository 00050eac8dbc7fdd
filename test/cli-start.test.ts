// bin/wasmvs.js runs the built JavaScript only while it is newer than every source file, so a test or a
// user never runs a stale build: a copy of the bin in a scratch project, with a "built" and a "source"
// main that say which one ran, started as real processes.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { spawnSync } from "node:child_process";
import { cpSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, utimesSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { fileURLToPath } from "node:url";

const repo = fileURLToPath(new URL("..", import.meta.url));

function scratch(): string {
  const d = mkdtempSync(`${tmpdir()}/wasmvs-start-`);
  mkdirSync(`${d}/bin`);
  mkdirSync(`${d}/dist/cli`, { recursive: true });
  mkdirSync(`${d}/src/cli`, { recursive: true });
  cpSync(`${repo}bin/wasmvs.js`, `${d}/bin/wasmvs.js`);
  symlinkSync(`${repo}node_modules`, `${d}/node_modules`);
  writeFileSync(`${d}/package.json`, `{"type":"module"}`);
  writeFileSync(
    `${d}/dist/cli/main.js`,
    `export async function main(a) { console.log("built " + a.join(" ")); return 0; }`,
  );
  writeFileSync(
    `${d}/src/cli/main.ts`,
    `export async function main(a: string[]): Promise<number> { console.log("source " + a.join(" ")); return 4; }`,
  );
  return d;
}
const run = (d: string, env: Record<string, string> = {}) =>
  spawnSync(process.execPath, [`${d}/bin/wasmvs.js`, "x", "y"], { encoding: "utf8", env: { ...process.env, ...env } });
const age = (f: string, s: number) => {
  const t = new Date(Date.now() - s * 1000);
  utimesSync(f, t, t);
};

test("the build runs when it is newer than every source; a newer source (or none built) runs the source", () => {
  const d = scratch();
  try {
    for (const f of ["src/cli/main.ts", "src/cli", "src"]) age(`${d}/${f}`, 60);
    let r = run(d);
    assert.is(r.stdout, "built x y\n", r.stderr);
    assert.is(r.status, 0);
    age(`${d}/src/cli/main.ts`, 0); // edited after the build
    age(`${d}/dist/cli/main.js`, 30);
    r = run(d);
    assert.is(r.stdout, "source x y\n", r.stderr);
    assert.is(r.status, 4, "the source's exit code");
    writeFileSync(`${d}/src/cli/extra.ts`, "export {};\n"); // a new file anywhere under src/ counts too
    age(`${d}/src/cli/main.ts`, 60);
    age(`${d}/dist/cli/main.js`, 30);
    assert.is(run(d).stdout, "source x y\n");
    age(`${d}/src/cli/extra.ts`, 60);
    assert.is(run(d).stdout, "source x y\n", "the directory changed too (a file added or removed)");
    age(`${d}/src/cli`, 60);
    assert.is(run(d).stdout, "built x y\n");
    assert.is(run(d, { WASMVS_FROM_SOURCE: "1" }).stdout, "source x y\n");
    rmSync(`${d}/dist`, { recursive: true });
    assert.is(run(d).stdout, "source x y\n", "no build at all");
  } finally {
    rmSync(d, { recursive: true, force: true });
  }
});

test("the real command answers from the current sources' build (npm run build:cli) with help and version", () => {
  const b = spawnSync(process.execPath, [`${repo}bin/build-cli.mjs`], { encoding: "utf8" });
  assert.is(b.status, 0, b.stderr);
  const r = spawnSync(process.execPath, [`${repo}bin/wasmvs.js`, "help"], { encoding: "utf8" });
  assert.is(r.status, 0, r.stderr);
  assert.match(r.stdout, /^usage: wasmvs <command>/);
  const v = spawnSync(process.execPath, [`${repo}bin/wasmvs.js`, "--version"], { encoding: "utf8" });
  assert.match(v.stdout, /^wasmvs \d+\.\d+\.\d+\n$/);
});

test.run();
