"use strict";
// The peers of test/kernel-vm/sync-capture.sh, one role per process, inside the kernel VM's namespaces:
//   node sync-peers.cjs server ADDR:PORT...   TCP listeners (and UDP on the ports given as udp:ADDR:PORT)
//   node sync-peers.cjs listen GROUP PORT IFADDR FILE   joins the sync group, one JSON line a datagram
//   node sync-peers.cjs client PLAN.json      makes the connections the plan lists, then holds them
// A TCP server obeys its client's first line: "hold" answers and keeps the connection, "close" answers and
// ends its side (the director sees the server's FIN first: CLOSE_WAIT).
const net = require("node:net"),
  dgram = require("node:dgram"),
  fs = require("node:fs");
const [role, ...args] = process.argv.slice(2);

function split(hp) {
  const i = hp.lastIndexOf(":");
  return [hp.slice(0, i).replace(/^\[|\]$/g, ""), +hp.slice(i + 1)];
}

if (role === "server") {
  let ready = 0;
  const up = () => {
    if (++ready === args.length) process.stdout.write("ready\n");
  };
  for (const a of args) {
    if (a.startsWith("udp:")) {
      const [host, port] = split(a.slice(4));
      const u = dgram.createSocket(host.includes(":") ? "udp6" : "udp4");
      u.on("message", (m, r) => u.send(m, r.port, r.address));
      u.bind(port, host, up);
      continue;
    }
    const [host, port] = split(a);
    net
      .createServer((s) => {
        s.on("error", () => {});
        let first = true;
        s.on("data", (d) => {
          s.write(d);
          if (first && d.toString().startsWith("close")) setTimeout(() => s.end(), 100);
          first = false;
        });
        s.on("end", () => {});
      })
      .listen(port, host, up);
  }
} else if (role === "listen") {
  const [group, port, ifaddr, file] = args;
  const out = fs.openSync(file, "a");
  const u = dgram.createSocket({ type: "udp4", reuseAddr: true });
  u.on("message", (m) => fs.writeSync(out, JSON.stringify({ t: Date.now(), hex: m.toString("hex") }) + "\n"));
  u.bind(+port, () => {
    u.addMembership(group, ifaddr);
    process.stdout.write("ready\n");
  });
} else if (role === "client") {
  // plan: [{vip, port, proto: "tcp"|"udp", lport, how: "hold"|"half"|"srvclose"|"both"|"reset", src?}]
  const plan = JSON.parse(fs.readFileSync(args[0], "utf8"));
  const held = [];
  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
  const run = async () => {
    for (const c of plan) {
      if (c.proto === "udp") {
        const u = dgram.createSocket(c.vip.includes(":") ? "udp6" : "udp4");
        await new Promise((r) => u.bind(c.lport, r));
        for (let k = 0; k < 4; k++) {
          u.send("ping", c.port, c.vip);
          await sleep(50);
        }
        held.push(u);
        continue;
      }
      const s = net.connect({
        host: c.vip,
        port: c.port,
        localPort: c.lport,
        localAddress: c.src,
        allowHalfOpen: true,
      });
      s.on("error", (e) => process.stderr.write(`client ${c.vip}:${c.port} from ${c.lport}: ${e.message}\n`));
      await new Promise((r) => {
        s.once("connect", r);
        s.once("error", r);
        setTimeout(r, 3000);
      });
      s.setNoDelay(true);
      // three packets in (SYN, ACK, data) is the kernel's sync_threshold: the entry is sent then
      s.write(c.how === "srvclose" || c.how === "both" ? "close\n" : "hold\n");
      await sleep(150);
      s.write("more\n");
      await sleep(150);
      if (c.how === "half" || c.how === "both") s.end();
      if (c.how === "reset") s.resetAndDestroy();
      held.push(s);
    }
    await sleep(500);
    process.stdout.write("done\n");
  };
  run().catch((e) => {
    process.stderr.write(`client: ${e.stack}\n`);
    process.exit(1);
  });
  setInterval(() => {}, 1000);
} else {
  process.stderr.write(`unknown role ${role}\n`);
  process.exit(2);
}
