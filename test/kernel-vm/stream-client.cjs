"use strict";
// In the client namespace of the director-pair bed: N long-lived TCP connections to VIP:PORT, each
// sending a known byte pattern (byte k of a stream is k mod 251) in CHUNK-byte writes and checking that
// the echo brings back exactly that pattern: a lost byte leaves the echo short, a duplicated or foreign one
// breaks the pattern ("mismatch at k"), a reset is an error. stdin, one command a line; stdout, JSON lines:
//   every MS       set the write interval (before the connections open; default 50)
//   (once open)    -> {"open":N}
//   status         -> {"conns":[{id,local,sent,recv,err?}]}
//   finish MS      stop writing, wait up to MS for every echo, -> {"conns":[...]}
//   node stream-client.cjs VIP PORT N CHUNK
const net = require("node:net"),
  readline = require("node:readline");
const [vip, port, n, chunkArg] = process.argv.slice(2);
const CHUNK = +chunkArg || 512;
let everyMs = 50,
  writing = true,
  started = false;
const conns = [];
const out = (o) => process.stdout.write(JSON.stringify(o) + "\n");
const pattern = (from, len) => {
  const b = Buffer.allocUnsafe(len);
  for (let i = 0; i < len; i++) b[i] = (from + i) % 251;
  return b;
};
const view = () =>
  conns.map((c) => ({ id: c.id, local: c.local, sent: c.sent, recv: c.recv, ...(c.err ? { err: c.err } : {}) }));

function openOne(id) {
  return new Promise((resolve) => {
    const c = { id, local: "", sent: 0, recv: 0, err: undefined, s: null };
    const s = net.connect({ host: vip, port: +port }, () => {
      c.local = `${s.localAddress}:${s.localPort}`;
      resolve();
    });
    c.s = s;
    s.setNoDelay(true);
    s.on("data", (d) => {
      if (c.err) return;
      for (let i = 0; i < d.length; i++)
        if (d[i] !== (c.recv + i) % 251) {
          c.err = `mismatch at ${c.recv + i}`;
          return;
        }
      c.recv += d.length;
    });
    s.on("error", (e) => {
      c.err = c.err || e.code || e.message;
      resolve();
    });
    s.on("close", () => {
      c.err = c.err || "closed";
      resolve();
    });
    conns.push(c);
  });
}

function tick() {
  if (!writing) return;
  for (const c of conns) {
    if (c.err || !c.local) continue;
    // keep what is in flight bounded: a stalled path (a failover) must not pile up megabytes
    if (c.sent - c.recv > 64 * CHUNK) continue;
    c.s.write(pattern(c.sent, CHUNK));
    c.sent += CHUNK;
  }
  setTimeout(tick, everyMs);
}

async function start() {
  started = true;
  for (let i = 0; i < +n; i++) await openOne(i);
  out({ open: conns.filter((c) => c.local && !c.err).length });
  tick();
}

readline.createInterface({ input: process.stdin }).on("line", (l) => {
  const [cmd, arg] = l.trim().split(/\s+/);
  if (cmd === "every") {
    everyMs = Math.max(1, +arg || 50);
    if (!started) void start();
  } else if (cmd === "status") out({ conns: view() });
  else if (cmd === "finish") {
    writing = false;
    const end = Date.now() + (+arg || 30000);
    const wait = () => {
      if (conns.every((c) => c.err || c.recv >= c.sent) || Date.now() > end) {
        out({ conns: view() });
        for (const c of conns) c.s.destroy();
        setTimeout(() => process.exit(0), 100);
      } else setTimeout(wait, 100);
    };
    wait();
  }
});
