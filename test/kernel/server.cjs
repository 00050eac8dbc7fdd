'use strict';
// Runs INSIDE the ipvs-vm, in the "srv" network namespace (started by driver.cjs):
//   ip netns exec srv node server.cjs [--udp-addrs A,B,...] PORT...
// A dual-stack TCP listener on every destination port, and a UDP socket on every port of every destination
// address. TCP connections are accepted and closed when the client closes (the kernel completes the handshake;
// "answer": false connections never get here because driver.cjs drops their SYNs with an ipset rule in this
// namespace). UDP datagrams are never answered, so UDP connections only ever see the client's datagram; each
// one is reported on stdout ("udp DEST PORT CLIENT SPORT"), which is how the driver learns where a one-packet
// datagram went (IPVS never enters those in its table).
const net = require('net');
const dgram = require('dgram');

const argv = process.argv.slice(2);
const ai = argv.indexOf('--udp-addrs');
const udpAddrs = ai >= 0 ? argv.splice(ai, 2)[1].split(',').filter(Boolean) : ['::'];
const ports = argv.map(Number).filter((p) => p > 0);
let pending = ports.length * (1 + udpAddrs.length);
const ready = () => { if (--pending === 0) process.stdout.write('server ready\n'); };
for (const port of ports) {
  const srv = net.createServer((s) => {
    s.on('data', () => {});
    s.on('error', () => {});
    s.on('end', () => s.end());
  });
  srv.on('error', (e) => { process.stderr.write(`server tcp ${port}: ${e.message}\n`); process.exit(1); });
  srv.listen({ port, host: '::', ipv6Only: false, backlog: 4096 }, ready);
  for (const addr of udpAddrs) {
    const u = dgram.createSocket(addr.includes(':') ? { type: 'udp6', ipv6Only: addr !== '::' } : 'udp4');
    u.on('message', (_m, r) => process.stdout.write(`udp ${addr} ${port} ${r.address} ${r.port}\n`));
    u.on('error', (e) => { process.stderr.write(`server udp ${addr} ${port}: ${e.message}\n`); process.exit(1); });
    u.bind(port, addr, ready);
  }
}
if (!ports.length) process.stdout.write('server ready\n');
