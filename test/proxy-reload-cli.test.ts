// The real command's reload of a large file: `wasmvs proxy run` (the built CLI, as npm test builds it) reads a
// file of 8 KiB or more in its configuration worker (dist/cli/config-worker.js beside the bundle's chunks),
// and `wasmvs proxy reload` gets the same answers as from the main thread: the service count, or the file's
// line and column for a bad line, with nothing changed.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { freePort } from "./helpers/ports.ts";

const bin = fileURLToPath(new URL("../bin/wasmvs.js", import.meta.url));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

test("wasmvs proxy reload of a 600-service file: read by the worker; a bad line refused by position", async () => {
  const dir = mkdtempSync(join(tmpdir(), "wvs-reload-cli-")),
    file = join(dir, "p.yaml"),
    ctl = join(dir, "ctl.sock");
  const vport = await freePort();
  const lines = [`proxy: { control: ${ctl}, vipInterface: null }`, "services:"];
  for (let k = 0; k < 600; k++)
    lines.push(
      `  - { protocol: tcp, addr: 127.0.${4 + (k >> 8)}.${k & 255}, port: ${vport}, scheduler: rr, ` +
        "realServers: [ { addr: 127.0.0.2, port: 80 }, { addr: 127.0.0.3, port: 80 } ] }",
    );
  const write = () => writeFileSync(file, lines.join("\n") + "\n");
  write();
  let proxy: ChildProcess | undefined;
  try {
    proxy = spawn(process.execPath, [bin, "proxy", "run", "-c", file, "--log-level", "error"], { stdio: "inherit" });
    for (let i = 0; i < 300 && !existsSync(ctl); i++) await sleep(100);
    assert.ok(existsSync(ctl), "the proxy's control socket came up");
    const reload = () => spawnSync(process.execPath, [bin, "proxy", "reload", "--control", ctl], { encoding: "utf8" });
    const ok = reload();
    assert.is(ok.status, 0, ok.stderr);
    assert.is(JSON.parse(ok.stdout).services, 600);
    lines[lines.length - 1] = lines[lines.length - 1].replace("scheduler: rr", "scheduler: nope");
    write();
    const bad = reload();
    assert.is.not(bad.status, 0, "a bad file's reload failed");
    assert.match(bad.stderr, new RegExp(`${file}:${lines.length}:\\d+: services\\[599\\]\\.scheduler: 'nope'`));
    lines.length -= 1;
    write();
    const fewer = reload();
    assert.is(fewer.status, 0, fewer.stderr);
    assert.is(JSON.parse(fewer.stdout).services, 599, "the refused reload changed nothing; this one applies");
  } finally {
    if (proxy && proxy.exitCode === null) {
      const gone = new Promise((r) => proxy!.once("exit", r));
      proxy.kill("SIGINT");
      proxy.kill("SIGINT"); // twice: at once, with nothing to drain
      await gone;
    }
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
