"use strict";
// In the "cli" namespace: holds TCP and UDP flows to a virtual service and pings them on command.
// stdin, one JSON command a line; stdout, one JSON answer a line:
//   {"op":"open","proto":"tcp"|"udp","n":N}  -> {"ids":[...]}
//   {"op":"ping"}                            -> {"res":{id: dest or "FAIL:reason"}}
//   {"op":"close","ids":[...]}               -> {"ok":true}   (TCP: reset; UDP: stop using)
const net = require("node:net"),
  dgram = require("node:dgram"),
  readline = require("node:readline");
const [vip, tport, uport] = process.argv.slice(2);
const flows = new Map();
let next = 0,
  lport = 43000;
const out = (o) => process.stdout.write(JSON.stringify(o) + "\n");
function openTcp() {
  return new Promise((res) => {
    const id = `t${next++}`;
    const s = net.connect({ host: vip, port: +tport, localPort: lport++ });
    const f = { id, proto: "tcp", s, alive: true, waiting: null, buf: "" };
    s.setNoDelay(true);
    s.on("data", (d) => {
      f.buf += d;
      let i;
      while ((i = f.buf.indexOf("\n")) >= 0) {
        const l = f.buf.slice(0, i);
        f.buf = f.buf.slice(i + 1);
        if (f.waiting) {
          const w = f.waiting;
          f.waiting = null;
          w(l);
        }
      }
    });
    s.on("error", (e) => {
      f.err = e.code || e.message;
      f.alive = false;
      if (f.waiting) {
        const w = f.waiting;
        f.waiting = null;
        w("FAIL:" + f.err);
      }
    });
    s.on("close", () => {
      f.alive = false;
      if (f.waiting) {
        const w = f.waiting;
        f.waiting = null;
        w("FAIL:closed");
      }
    });
    flows.set(id, f);
    const t = setTimeout(() => {
      f.err = "connect timeout";
      f.alive = false;
      s.destroy();
      res(id);
    }, 3000);
    s.on("connect", () => {
      clearTimeout(t);
      res(id);
    });
    s.on("error", () => {
      clearTimeout(t);
      res(id);
    });
  });
}
function openUdp() {
  return new Promise((res) => {
    const id = `u${next++}`;
    const s = dgram.createSocket("udp4");
    const f = { id, proto: "udp", s, alive: true, waiting: null };
    s.on("message", (m) => {
      if (f.waiting) {
        const w = f.waiting;
        f.waiting = null;
        w(String(m));
      }
    });
    s.bind(lport++, () => {
      flows.set(id, f);
      res(id);
    });
  });
}
function ping(f) {
  return new Promise((res) => {
    if (!f.alive) return res("FAIL:" + (f.err || "closed"));
    const t = setTimeout(() => {
      f.waiting = null;
      res("FAIL:timeout");
    }, 1500);
    f.waiting = (x) => {
      clearTimeout(t);
      res(x);
    };
    if (f.proto === "tcp") f.s.write("ping\n");
    else f.s.send("ping", +uport, vip);
  });
}
readline.createInterface({ input: process.stdin }).on("line", async (l) => {
  const c = JSON.parse(l);
  if (c.op === "open") {
    const ids = [];
    for (let i = 0; i < c.n; i++) ids.push(await (c.proto === "tcp" ? openTcp() : openUdp()));
    out({ ids });
  } else if (c.op === "ping") {
    const res = {};
    await Promise.all(
      [...flows.values()]
        .filter((f) => !f.closed)
        .map(async (f) => {
          res[f.id] = await ping(f);
        }),
    );
    out({ res });
  } else if (c.op === "close") {
    for (const id of c.ids) {
      const f = flows.get(id);
      f.closed = true;
      if (f.proto === "tcp") f.s.resetAndDestroy();
      else f.s.close();
    }
    out({ ok: true });
  }
});
out({ ready: true });
