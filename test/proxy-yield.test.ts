// Long work on the proxy's loop (a scrape, a restore's apply, a reload) runs in slices that end early when a
// connection waits: the native relay says whether its epoll set has readiness not yet taken, and a slice
// asks every 0.1 ms. Checked against the real relay and real kernel sockets: a client's connect completes in
// the kernel (the proxy has not accepted it), and a slice with a budget of 10 s ends within milliseconds.
import { test } from "uvu";
import * as assert from "uvu/assert";
import * as net from "node:net";
import { Proxy, parseConfig } from "../src/proxy/index.ts";
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

test.run();
