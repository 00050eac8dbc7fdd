// Long work on the proxy's loop (a scrape, a restore's apply, a reload) runs in slices that end early when a
// connection waits: the native relay says whether its epoll set has readiness not yet taken, and a slice
// asks every 0.1 ms. Checked against the real relay and real kernel sockets: a client's connect completes in
// the kernel (the proxy has not accepted it), and a slice with a budget of 10 s ends within milliseconds.
import { test } from "uvu";
import * as assert from "uvu/assert";
import * as net from "node:net";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { Proxy, loadConfig, parseConfig } from "../src/proxy/index.ts";
import { silentLogger } from "../src/proxy/log.ts";
import { Slicer } from "../src/proxy/slice.ts";
import { freePort } from "./helpers/ports.ts";

// Calls due() for up to ms of busy work; the time it first said yes, or -1.
function spin(slicer: Slicer, ms: number): number {
  const t0 = performance.now();
  while (performance.now() - t0 < ms) if (slicer.due()) return performance.now() - t0;
  return -1;
}

test("a slice ends as soon as a connection waits for the proxy, and not before", async () => {
  const [vport, bport] = [await freePort(), await freePort()];
  const backend = net.createServer((s) => s.end("x"));
  await new Promise<void>((r) => backend.listen(bport, "127.0.0.1", r));
  const p = await Proxy.start(
    parseConfig(`proxy: { control: null, vipInterface: null, pump: native }
services:
  - { protocol: tcp, addr: 127.0.0.1, port: ${vport}, scheduler: rr,
      realServers: [ { addr: 127.0.0.1, port: ${bport} } ] }
`),
    { log: silentLogger() },
  );
  const clients: net.Socket[] = [];
  try {
    assert.is((p.status() as Record<string, unknown>).pump, "native", "the native relay (npm install builds it)");
    await new Promise((r) => setTimeout(r, 50)); // the listener's first turns are over
    // nothing waits: a 10 s budget is not cut short
    assert.is(spin(new Slicer(10_000), 30), -1, "a slice ended with no connection waiting");
    // Without the relay's answer (probes off), a connection waiting changes nothing either
    const c = net.connect(vport, "127.0.0.1");
    c.on("error", () => {});
    clients.push(c);
    await new Promise((r) => process.nextTick(r)); // net issues connect(2) on the next tick; loopback completes it
    assert.is(spin(new Slicer(10_000, Infinity), 30), -1, "a slice that never asks ended early");
    const at = spin(new Slicer(10_000), 1000);
    assert.ok(at >= 0, "a slice went on for 1 s while a connection waited");
    assert.ok(at < 100, `a slice ended ${at.toFixed(1)} ms after it could (it asks every 0.1 ms)`);
    // and the proxy then serves it
    const got = await new Promise<string>((res, rej) => {
      c.once("data", (d) => res(d.toString()));
      c.once("error", rej);
    });
    assert.is(got, "x");
  } finally {
    for (const c of clients) c.destroy();
    await p.stop();
    await new Promise((r) => backend.close(r));
  }
});

// A reload reads its file in a worker thread: the YAML parser takes about 2 µs a byte, and on the main thread
// a large file stopped every connection for as long (a 10k-service file: 8.5 s). Here 2,000 services of 10
// real servers (0.9 MB, about 2 s of parsing): a client connecting every 20 ms through the proxy to a
// backends in this process (so a held loop stops both) must be served in the reload's first half, which the
// parse fills. Then a bad line in it, then the file gone: each reload is refused, naming the file (and the
// line), and nothing changes.
test("a reload parses its file off the main thread: connections are served while it reads", async () => {
  const [vport, bport] = [await freePort(), await freePort()];
  const backends = Array.from({ length: 10 }, () => net.createServer((s) => s.end("x")));
  await Promise.all(backends.map((b, i) => new Promise<void>((r) => b.listen(bport, `127.0.0.${i + 1}`, r))));
  const dir = mkdtempSync(`${tmpdir()}/wvs-reload-`),
    file = `${dir}/p.yaml`;
  const rs = backends.map((_, i) => `{ addr: 127.0.0.${i + 1}, port: ${bport} }`).join(", ");
  const lines = ["proxy: { control: null, vipInterface: null }", "services:"];
  for (let k = 0; k < 2000; k++)
    lines.push(`  - { protocol: tcp, addr: 127.0.${4 + (k >> 8)}.${k & 255}, port: ${vport}, realServers: [ ${rs} ] }`);
  lines.push(`  - { protocol: tcp, addr: 127.0.0.1, port: ${vport}, realServers: [ ${rs} ] }`);
  writeFileSync(file, lines.join("\n") + "\n");
  const p = await Proxy.start(loadConfig(file), { log: silentLogger() });
  try {
    let stop = false;
    const served: number[] = [];
    const client = (async () => {
      while (!stop) {
        const ok = await new Promise<boolean>((res) => {
          const c = net.connect(vport, "127.0.0.1");
          c.once("data", () => {
            c.destroy();
            res(true);
          });
          c.once("error", () => res(false));
        });
        if (ok) served.push(performance.now());
        await new Promise((r) => setTimeout(r, 20));
      }
    })();
    await new Promise((r) => setTimeout(r, 200));
    const t0 = performance.now();
    const r = await p.reload();
    const t1 = performance.now();
    stop = true;
    await client;
    assert.is(r.services, 2001);
    const early = served.filter((t) => t > t0 && t < t0 + (t1 - t0) / 2).length;
    assert.ok(
      early >= 3,
      `${early} connections served in the first half of a ${(t1 - t0).toFixed(0)} ms reload (a held loop serves none)`,
    );
    // an error in a large file comes back from the worker as loadConfig gives it: file, line, column, path
    lines.push(`  - { protocol: tcp, addr: 127.0.3.1, port: ${vport}, scheduler: nope, realServers: [ ${rs} ] }`);
    writeFileSync(file, lines.join("\n") + "\n");
    try {
      await p.reload();
      assert.unreachable("a reload of a bad file went through");
    } catch (e) {
      assert.match(
        (e as Error).message,
        new RegExp(`^${file}:${lines.length}:\\d+: services\\[2001\\]\\.scheduler: 'nope'`),
      );
    }
    rmSync(file);
    try {
      await p.reload();
      assert.unreachable("a reload of a missing file went through");
    } catch (e) {
      assert.match((e as Error).message, `${file}:1:1: cannot read`);
    }
    assert.is(p.desired.services.length, 2001, "a refused reload changes nothing");
  } finally {
    await p.stop();
    await Promise.all(backends.map((b) => new Promise((r) => b.close(r))));
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
