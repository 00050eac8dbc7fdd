"use strict";
// In the "srv" namespace: TCP and UDP echo servers on every address given; each answer names the real
// server that gave it, so the client knows where its flow went.
//   node echo-server.cjs TCPPORT UDPPORT ADDR...
const net = require("node:net"),
  dgram = require("node:dgram");
const [tport, uport, ...addrs] = process.argv.slice(2);
let ready = 0;
const up = () => {
  if (++ready === addrs.length * 2) process.stdout.write("ready\n");
};
for (const a of addrs) {
  net
    .createServer((s) => {
      s.on("error", () => {});
      s.on("data", () => s.write(a + "\n"));
    })
    .listen(+tport, a, up);
  const u = dgram.createSocket("udp4");
  u.on("message", (_m, r) => u.send(a, r.port, r.address));
  u.bind(+uport, a, up);
}
