// Socket mode's two byte pumps, the native relay and the JS one, held to the same behaviour on loopback:
// bytes intact both ways, backpressure both ways (a reader that stops makes the writer stop, the proxy
// does not soak it up), half-close, a backend reset reaching the client as a reset, per-destination byte
// counters exact, idle timeouts closing only idle connections.
import { test } from "uvu";
import * as assert from "uvu/assert";
import * as net from "node:net";
import { createHash } from "node:crypto";
import { Proxy, parseConfig } from "../src/proxy/index.ts";
import { silentLogger } from "../src/proxy/log.ts";
import { freePort, portOf } from "./helpers/ports.ts";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
// chosen per run: concurrent runs of this file (other worktrees) met on fixed ports
let VPORT = 0,
  BPORT = 0;
const MB = 1 << 20;

type Mode = "echo" | "paused-sink" | "source" | "reset";
interface Backend {
  server: net.Server;
  socks: net.Socket[];
  received: Buffer[];
  receivedBytes: number;
  mode: Mode;
  sent: number;
}

// Waits until done() or until nothing moved for stallMs: a loaded machine (or small socket buffers) makes a
// transfer slow, not wrong, and a fixed deadline counted a slow transfer as lost bytes (48,045,029 of
// 50,331,648 once; 17,879,808 with 4 copies of this file, 64 kB socket buffers and a CPU hog).
async function untilDoneOrStalled(done: () => boolean, progress: () => number, stallMs = 5000): Promise<void> {
  let last = progress(),
    movedAt = Date.now();
  while (!done() && Date.now() - movedAt < stallMs) {
    await sleep(50);
    const now = progress();
    if (now !== last) [last, movedAt] = [now, Date.now()];
  }
}

async function backend(): Promise<Backend> {
  const b: Backend = {
    server: null as unknown as net.Server,
    socks: [],
    received: [],
    receivedBytes: 0,
    mode: "echo",
    sent: 0,
  };
  b.server = net.createServer({ allowHalfOpen: true }, (s) => {
    b.socks.push(s);
    s.on("error", () => {});
    if (b.mode === "echo") {
      s.on("data", (d) => s.write(d));
      s.on("end", () => s.end());
    } else if (b.mode === "paused-sink") {
      s.pause();
      s.on("data", (d) => {
        b.received.push(d);
        b.receivedBytes += d.length;
      });
      s.on("end", () => s.end());
    } else if (b.mode === "source") {
      // writes 32 MB as fast as the socket takes them
      const chunk = Buffer.alloc(MB, 7);
      const pump = () => {
        while (b.sent < 32 * MB) {
          b.sent += chunk.length;
          if (!s.write(chunk)) return;
        }
        s.end();
      };
      s.on("drain", pump);
      pump();
    } else if (b.mode === "reset") s.once("data", () => s.resetAndDestroy());
  });
  await new Promise<void>((r) => b.server.listen(0, "127.0.0.1", r));
  BPORT = portOf(b.server);
  return b;
}

async function start(pump: "native" | "js"): Promise<Proxy> {
  VPORT = await freePort();
  const p = await Proxy.start(
    parseConfig(`proxy: { control: null, vipInterface: null, tick: 100, pump: ${pump} }
timeouts: { tcp: 1, tcpfin: 1, udp: 1 }
services:
  - { protocol: tcp, addr: 127.0.0.1, port: ${VPORT}, scheduler: rr,
      realServers: [ { addr: 127.0.0.1, port: ${BPORT} } ] }
`),
    { log: silentLogger() },
  );
  assert.is(
    (p.status() as Record<string, unknown>).pump,
    pump,
    "the pump asked for (the native relay must be built: npm install)",
  );
  return p;
}

function connect(): Promise<net.Socket> {
  return new Promise((res, rej) => {
    const s = net.connect({ port: VPORT, host: "127.0.0.1", allowHalfOpen: true }, () => res(s));
    s.once("error", rej);
  });
}

const destStats = (p: Proxy) => p.services()[0].dests[0].status.stats;

for (const pump of ["native", "js"] as const) {
  const backpressure =
    `${pump} pump: client to backend stops when the backend stops reading; ` + "bytes intact; counters exact";
  test(backpressure, async () => {
    const b = await backend();
    b.mode = "paused-sink";
    const p = await start(pump);
    try {
      const c = await connect();
      const data = Buffer.alloc(48 * MB);
      for (let i = 0; i < data.length; i += 4096) data.writeUInt32LE(i, i);
      c.write(data);
      c.end();
      await sleep(700);
      // the kernel's buffers on the way hold a few MB; without backpressure the proxy would take it all
      assert.ok(c.writableLength > 24 * MB, `client still holds ${(c.writableLength / MB).toFixed(1)} MB`);
      for (const s of b.socks) s.resume();
      await untilDoneOrStalled(
        () => b.receivedBytes >= data.length,
        () => b.receivedBytes,
      );
      const got = Buffer.concat(b.received);
      assert.is(got.length, data.length);
      assert.is(createHash("sha256").update(got).digest("hex"), createHash("sha256").update(data).digest("hex"));
      await sleep(50);
      const st = destStats(p);
      assert.is(st.inBytes, BigInt(data.length));
      assert.ok(st.inPkts > 0n && st.inPkts <= BigInt(data.length / 1024), `reads: ${st.inPkts}`);
      c.destroy();
    } finally {
      await p.stop();
      await new Promise((r) => b.server.close(r));
    }
  });

  test(`${pump} pump: backend to client stops when the client stops reading; half-close passes the FIN`, async () => {
    const b = await backend();
    b.mode = "source";
    const p = await start(pump);
    try {
      const c = await connect();
      c.pause();
      await sleep(700);
      assert.ok(b.sent < 24 * MB, `the backend could write only ${(b.sent / MB).toFixed(1)} of 32 MB`);
      let got = 0,
        ended = false;
      c.on("data", (d) => (got += d.length));
      c.on("end", () => (ended = true));
      c.resume();
      await untilDoneOrStalled(
        () => ended,
        () => got,
      );
      assert.ok(ended, "the backend's FIN reached the client");
      assert.is(got, 32 * MB);
      assert.is(destStats(p).outBytes, BigInt(32 * MB));
      c.destroy();
    } finally {
      await p.stop();
      await new Promise((r) => b.server.close(r));
    }
  });

  test(
    `${pump} pump: a backend reset reaches the client as a reset; an idle connection times out, a busy one ` +
      `does not`,
    async () => {
      const b = await backend();
      const p = await start(pump);
      try {
        b.mode = "reset";
        const r = await connect();
        const err = new Promise<string>((res) => {
          r.on("error", (e: NodeJS.ErrnoException) => res(e.code ?? "?"));
          r.on("close", () => res("closed without error"));
        });
        r.write("x");
        assert.is(await err, "ECONNRESET");
        b.mode = "echo";
        const idle = await connect(),
          busy = await connect();
        let idleClosed = 0,
          busyEchoes = 0;
        const t0 = Date.now();
        idle.on("error", () => {});
        idle.on("close", () => (idleClosed = Date.now() - t0));
        busy.on("data", () => busyEchoes++);
        busy.on("error", () => {});
        for (let i = 0; i < 12; i++) {
          busy.write("ping");
          await sleep(200);
        } // 2.4 s against a 1 s timeout
        assert.ok(idleClosed > 0 && idleClosed < 2500, `idle connection closed after ${idleClosed} ms`);
        assert.ok(!busy.destroyed && busyEchoes >= 10, `busy connection alive with ${busyEchoes} echoes`);
        busy.destroy();
        await sleep(100);
        assert.is((p.status() as Record<string, unknown>).tcp, 0);
      } finally {
        await p.stop();
        await new Promise((r) => b.server.close(r));
      }
    },
  );
}

test.run();
