'use strict';
// Runs INSIDE the ipvs-vm, in the "srv" network namespace (started by driver.cjs):
//   ip netns exec srv node server.cjs PORT...
// A dual-stack TCP listener and a UDP socket on every destination port. TCP connections are accepted and
// closed when the client closes (the kernel completes the handshake; "answer": false connections never get
// here because driver.cjs drops their SYNs with an ipset rule in this namespace). UDP datagrams are swallowed
// (never answered), so UDP connections only ever see the client's datagram.
const net = require('net');
const dgram = require('dgram');

const ports = process.argv.slice(2).map(Number).filter((p) => p > 0);
let pending = ports.length * 2;
const ready = () => { if (--pending === 0) process.stdout.write('server ready\n'); };
for (const port of ports) {
  const srv = net.createServer((s) => {
    s.on('data', () => {});
    s.on('error', () => {});
    s.on('end', () => s.end());
  });
  srv.on('error', (e) => { process.stderr.write(`server tcp ${port}: ${e.message}\n`); process.exit(1); });
  srv.listen({ port, host: '::', ipv6Only: false, backlog: 4096 }, ready);
  const u = dgram.createSocket({ type: 'udp6', ipv6Only: false });
  u.on('message', () => {});
  u.on('error', (e) => { process.stderr.write(`server udp ${port}: ${e.message}\n`); process.exit(1); });
  u.bind(port, '::', ready);
}
if (!ports.length) process.stdout.write('server ready\n');
