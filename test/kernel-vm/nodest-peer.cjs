"use strict";
// In a namespace of test/kernel-vm/nodest.ts's bed, driven by JSON lines on stdin (answers on stdout).
//   node nodest-peer.cjs backend PORT   every connection is told the real server's address first; then a byte
//                                       from the client says what to do: "f" send a FIN, "r" reset
//   node nodest-peer.cjs client VIP PORT LOCAL_ADDR   ops: open (from a given source port), send, end, abandon
const net = require("node:net");
const readline = require("node:readline");
const [role, ...args] = process.argv.slice(2);
const say = (o) => process.stdout.write(`${JSON.stringify(o)}\n`);

if (role === "backend") {
  net
    .createServer({ allowHalfOpen: true }, (s) => {
      s.on("error", () => {});
      s.write(`${s.localAddress}\n`);
      s.on("data", (d) => {
        const op = d.toString()[0];
        if (op === "f") s.end();
        else if (op === "r") s.resetAndDestroy();
      });
    })
    .listen(+args[0], "0.0.0.0", () => say({ ready: true }));
} else {
  const [vip, vport, local] = args;
  const socks = new Map(); // source port -> socket
  const ops = {
    // connects from `port`; answers with the real server's address (from its greeting) and the time it took,
    // or ok:false after `ms` (the socket is then destroyed while SYN_SENT: no RST, no retransmission)
    open: ({ port, ms }) =>
      new Promise((res) => {
        const t0 = performance.now();
        const s = net.connect({ host: vip, port: +vport, localAddress: local, localPort: port, allowHalfOpen: true });
        socks.set(port, s);
        let got = "",
          done = false;
        const timer = setTimeout(() => {
          done = true;
          s.destroy();
          socks.delete(port);
          res({ ok: false, ms: Math.round(performance.now() - t0) });
        }, ms);
        s.on("error", (e) => {
          if (done) return;
          done = true;
          clearTimeout(timer);
          socks.delete(port);
          res({ ok: false, error: e.code, ms: Math.round(performance.now() - t0) });
        });
        s.on("data", (d) => {
          got += d;
          const i = got.indexOf("\n");
          if (i < 0 || done) return;
          done = true;
          clearTimeout(timer);
          res({ ok: true, dest: got.slice(0, i), ms: Math.round(performance.now() - t0) });
        });
      }),
    send: ({ port, byte }) => {
      socks.get(port)?.write(byte);
      return { ok: !!socks.get(port) };
    },
    end: ({ port }) => {
      socks.get(port)?.end();
      return { ok: !!socks.get(port) };
    },
    // a reset the namespace's firewall drops: the socket is gone here, IPVS never hears of it
    abandon: ({ port }) => {
      const s = socks.get(port);
      socks.delete(port);
      if (s && !s.destroyed) s.resetAndDestroy();
      return { ok: true };
    },
  };
  readline.createInterface({ input: process.stdin }).on("line", async (l) => {
    const m = JSON.parse(l);
    say({ id: m.id, ...(await ops[m.op](m)) });
  });
  say({ ready: true });
}
