"use strict";
// The plain-Node parts of bench/sync-vm.ts inside the VM, each in its own network namespace (no tsx: they
// start in a second under qemu, not ten):
//   node sync-vm-peer.cjs server PORT ADDR            echo one read back, then close (the real server)
//   node sync-vm-peer.cjs client VIP PORT N CONC      N connections (CONC at a time): connect, 1 byte, read
//                                                     the echo, close; prints {"ok":N,"failed":N}
//   node sync-vm-peer.cjs send FILE GROUP PORT IFADDR [PASSES]
//                                                     sends the datagrams of FILE (4-byte big-endian length,
//                                                     then the bytes, repeated) to GROUP:PORT out of the
//                                                     interface holding IFADDR, paced: once to warm up, then
//                                                     PASSES times (default 0), then PASSES idle passes (the
//                                                     same timer turns, nothing sent); prints the CPU each
//                                                     took: {"cpuUs":[N...],"idleUs":[N...],"messages":N}
const net = require("node:net");
const dgram = require("node:dgram");
const { readFileSync } = require("node:fs");

const [role, ...args] = process.argv.slice(2);

function server(port, addr) {
  net
    .createServer((s) => {
      s.on("error", () => {});
      s.once("data", (d) => s.end(d));
    })
    .listen(+port, addr, () => process.stdout.write("ready\n"));
}

function client(vip, port, n, conc) {
  let started = 0,
    ok = 0,
    failed = 0,
    running = 0;
  const next = () => {
    while (running < +conc && started < +n) {
      started++;
      running++;
      let good = false;
      const s = net.connect(+port, vip, () => s.write("x"));
      s.setTimeout(20000, () => s.destroy());
      s.on("data", () => {
        good = true;
        s.end();
      });
      s.on("error", () => {});
      s.on("close", () => {
        running--;
        if (good) ok++;
        else failed++;
        if (ok + failed === +n) process.stdout.write(`${JSON.stringify({ ok, failed })}\n`);
        else next();
      });
    }
  };
  next();
}

function send(file, group, port, ifaddr, passes = "0") {
  const buf = readFileSync(file);
  const msgs = [];
  for (let at = 0; at + 4 <= buf.length; ) {
    const len = buf.readUInt32BE(at);
    msgs.push(buf.subarray(at + 4, at + 4 + len));
    at += 4 + len;
  }
  const s = dgram.createSocket("udp4");
  const cpuUs = [],
    idleUs = [];
  // one pass: bursts of 16, then a turn of the timer (the receivers' socket buffers must not overflow).
  // idle: the same bursts and timer turns with nothing sent (what the pass's figure holds besides the sends)
  const pass = (done, idle) => {
    let k = 0,
      sent = 0;
    const burst = () => {
      for (let i = 0; i < 16 && k < msgs.length; i++, k++)
        if (idle) {
          if (++sent === msgs.length) setTimeout(done, 300);
        } else
          s.send(msgs[k], +port, group, () => {
            if (++sent === msgs.length) setTimeout(done, 300);
          });
      if (k < msgs.length) setTimeout(burst, 2);
    };
    if (msgs.length) burst();
    else done();
  };
  const timed = (left, idle, out, then) => {
    if (left === 0) return then();
    const t0 = process.cpuUsage();
    pass(() => {
      const t = process.cpuUsage(t0);
      out.push(t.user + t.system);
      timed(left - 1, idle, out, then);
    }, idle);
  };
  const end = () => {
    process.stdout.write(`${JSON.stringify({ cpuUs, idleUs, messages: msgs.length })}\n`);
    s.close();
  };
  s.bind(0, ifaddr, () => {
    s.setMulticastInterface(ifaddr);
    s.setMulticastTTL(1);
    s.setMulticastLoopback(false);
    pass(() => timed(+passes, false, cpuUs, () => timed(+passes, true, idleUs, end)), false);
  });
}

if (role === "server") server(...args);
else if (role === "client") client(...args);
else if (role === "send") send(...args);
else {
  process.stderr.write(
    "usage: sync-vm-peer.cjs server PORT ADDR | client VIP PORT N CONC | send FILE GROUP PORT IF [PASSES]\n",
  );
  process.exit(2);
}
