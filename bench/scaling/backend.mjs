// Backends: one process listening on 0.0.0.0 on every port given; the namespace routes the whole pod
// range to lo (`ip route add local 10.128.0.0/9 dev lo`), so any endpoint address:port is answered here.
// Prints "ready" once listening; counts accepted connections by local address:port (the endpoint the
// node's DNAT chose) and prints them as JSON when stdin closes, then exits. BACKEND_BANNER=1: each accepted
// connection is sent one byte at once (the connector's CONNECTOR_READ mode times its arrival).
// BACKEND_PEERS=1: also counts the connections' source addresses, as "from ADDR" (a full-NAT balancer's
// connections must all come from its local address).
const banner = Number(process.env.BACKEND_BANNER ?? 0) > 0;
const peers = Number(process.env.BACKEND_PEERS ?? 0) > 0;
import net from "node:net";
const ports = process.argv.slice(2).map(Number);
const seen = new Map();
let up = 0;
for (const port of ports) {
  const srv = net.createServer({ noDelay: true }, (s) => {
    const k = `${s.localAddress}:${s.localPort}`;
    seen.set(k, (seen.get(k) ?? 0) + 1);
    const from = `from ${s.remoteAddress ?? "unknown"}`; // unknown: reset before this callback ran
    if (peers) seen.set(from, (seen.get(from) ?? 0) + 1);
    s.on("error", () => {});
    if (banner) s.write("x");
    s.on("end", () => s.destroy());
  });
  srv.listen({ host: "0.0.0.0", port, backlog: 4096 }, () => {
    if (++up === ports.length) process.stdout.write("ready\n");
  });
}
process.stdin.resume();
process.stdin.on("end", () => {
  process.stdout.write(JSON.stringify(Object.fromEntries(seen)) + "\n", () => process.exit(0));
});
