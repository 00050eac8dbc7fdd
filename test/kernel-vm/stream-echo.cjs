"use strict";
// In the real-server namespace of the director-pair bed: a TCP echo server on PORT at every ADDR, for
// long-lived streams. stdin commands, one a line; stdout, one JSON answer a line:
//   (at start)  -> {"ready":true}
//   count       -> {"accepted":N,"open":N,"errors":{code:N}}  (a new connection after a failover shows here)
//   node stream-echo.cjs PORT ADDR...
const net = require("node:net"),
  readline = require("node:readline");
const [port, ...addrs] = process.argv.slice(2);
let accepted = 0,
  open = 0,
  listening = 0;
const errors = {};
const out = (o) => process.stdout.write(JSON.stringify(o) + "\n");
for (const a of addrs) {
  net
    .createServer((s) => {
      accepted++;
      open++;
      s.setNoDelay(true);
      s.on("error", (e) => (errors[e.code || e.message] = (errors[e.code || e.message] || 0) + 1));
      s.on("close", () => open--);
      s.pipe(s);
    })
    .listen(+port, a, () => {
      if (++listening === addrs.length) out({ ready: true });
    });
}
readline.createInterface({ input: process.stdin }).on("line", (l) => {
  if (l.trim() === "count") out({ accepted, open, errors });
});
