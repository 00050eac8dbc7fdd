"use strict";
// Runs INSIDE the ipvs-vm, in the "srv" network namespace (started by driver.cjs):
//   ip netns exec srv node server.cjs [--udp-addrs A,B,...] PORT...
// A dual-stack TCP listener on every destination port, and a UDP socket on every port of every destination
// address. TCP connections are accepted and closed when the client closes (the kernel completes the handshake;
// "answer": false connections never get here because driver.cjs drops their SYNs with an ipset rule in this
// namespace). UDP datagrams are never answered, so UDP connections only ever see the client's datagram; each
// one is reported on stdout ("udp DEST PORT CLIENT SPORT"), which is how the driver learns where a one-packet
// datagram went (IPVS never enters those in its table).
const net = require("node:net");
const dgram = require("node:dgram");

const argv = process.argv.slice(2);
const ai = argv.indexOf("--udp-addrs");
const udpAddrs = ai >= 0 ? argv.splice(ai, 2)[1].split(",").filter(Boolean) : ["::"];
const ports = argv.map(Number).filter((p) => p > 0);
let pending = ports.length * (1 + udpAddrs.length);
const ready = () => {
  if (--pending === 0) process.stdout.write("server ready\n");
};
// Lifecycle scenarios (driver.cjs, "events": true) steer one accepted connection through stdin, one command a
// line: "fin|rst|hold CLIENT SPORT" (close our side with a FIN, reset it, or stay open after the client's FIN).
const accepted = new Map(); // "client sport" -> socket
const held = new Set();
require("node:readline")
  .createInterface({ input: process.stdin })
  .on("line", (line) => {
    const [cmd, client, sport] = line.trim().split(/\s+/);
    const key = `${client} ${sport}`;
    if (cmd === "hold") {
      held.add(key);
      return;
    }
    const s = accepted.get(key);
    if (!s) {
      process.stderr.write(`server: no connection ${key} for ${cmd}\n`);
      return;
    }
    if (cmd === "fin") s.end();
    else if (cmd === "rst") s.resetAndDestroy();
  });
for (const port of ports) {
  // allowHalfOpen: our side closes when the client's FIN arrives (below), unless a lifecycle scenario holds it
  const srv = net.createServer({ allowHalfOpen: true }, (s) => {
    const key = `${(s.remoteAddress || "").replace(/^::ffff:/, "")} ${s.remotePort}`;
    accepted.set(key, s);
    s.on("data", () => {});
    s.on("error", () => {});
    s.on("end", () => {
      if (!held.has(key)) s.end();
    });
    s.on("close", () => {
      if (accepted.get(key) === s) accepted.delete(key);
      held.delete(key);
    });
  });
  srv.on("error", (e) => {
    process.stderr.write(`server tcp ${port}: ${e.message}\n`);
    process.exit(1);
  });
  srv.listen({ port, host: "::", ipv6Only: false, backlog: 4096 }, ready);
  for (const addr of udpAddrs) {
    const u = dgram.createSocket(addr.includes(":") ? { type: "udp6", ipv6Only: addr !== "::" } : "udp4");
    u.on("message", (_m, r) => process.stdout.write(`udp ${addr} ${port} ${r.address} ${r.port}\n`));
    u.on("error", (e) => {
      process.stderr.write(`server udp ${addr} ${port}: ${e.message}\n`);
      process.exit(1);
    });
    u.bind(port, addr, ready);
  }
}
if (!ports.length) process.stdout.write("server ready\n");
