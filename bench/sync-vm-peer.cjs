"use strict";
// The plain-Node parts of bench/sync-vm.ts inside the VM, each in its own network namespace (no tsx: they
// start in a second under qemu, not ten):
//   node sync-vm-peer.cjs server PORT ADDR            echo one read back, then close (the real server)
//   node sync-vm-peer.cjs client VIP PORT N CONC      N connections (CONC at a time): connect, 1 byte, read
//                                                     the echo, close; prints {"ok":N,"failed":N}
//   node sync-vm-peer.cjs send FILE GROUP PORT IFADDR [PASSES [dgram|native]]
//                                                     sends the datagrams of FILE (4-byte big-endian length,
//                                                     then the bytes, repeated) to GROUP:PORT out of the
//                                                     interface holding IFADDR, paced: once to warm up, then
//                                                     PASSES times (default 0), then PASSES idle passes (the
//                                                     same timer turns, nothing sent); prints the CPU each
//                                                     took: {"cpuUs":[N...],"idleUs":[N...],"messages":N};
//                                                     native: the packet addon's sendmmsg, 16 per call
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

// The packet addon (native/packet), as src/proxy/packet.ts loads it: the AF_XDP build, else the one without
function addon() {
  const dir = `${__dirname}/../native/packet/build/Release`;
  try {
    return require(`${dir}/wasmvs_packet.node`);
  } catch {
    return require(`${dir}/wasmvs_packet_plain.node`);
  }
}

function send(file, group, port, ifaddr, passes = "0", io = "dgram") {
  const buf = readFileSync(file);
  const msgs = [];
  for (let at = 0; at + 4 <= buf.length; ) {
    const len = buf.readUInt32BE(at);
    msgs.push(buf.subarray(at + 4, at + 4 + len));
    at += 4 + len;
  }
  const cpuUs = [],
    idleUs = [];
  // native: the datagrams in one memory behind their {offset, length} list, sent 16 at a time with one
  // sendmmsg each (src/proxy/sync.ts's master sends whatever its 20 ms turn finds, from the core's slots)
  let nat, memory;
  if (io === "native") {
    const a = addon();
    const h = a.syncOpen({ master: 1, v6: 0, group, port: +port, ifaddr, ifname: "", ttl: 1 });
    memory = new ArrayBuffer(8 * msgs.length + msgs.reduce((n, m) => n + m.length, 0));
    const dv = new DataView(memory),
      u8 = new Uint8Array(memory);
    let at = 8 * msgs.length;
    msgs.forEach((m, k) => {
      dv.setUint32(8 * k, at, true);
      dv.setUint32(8 * k + 4, m.length, true);
      u8.set(m, at);
      at += m.length;
    });
    nat = { a, h };
  }
  const s = nat ? undefined : dgram.createSocket("udp4");
  // one pass: bursts of 16, then a turn of the timer (the receivers' socket buffers must not overflow).
  // idle: the same bursts and timer turns with nothing sent (what the pass's figure holds besides the sends)
  const pass = (done, idle) => {
    let k = 0,
      sent = 0;
    const burst = () => {
      if (nat) {
        const n = Math.min(16, msgs.length - k);
        if (!idle) {
          let off = 0;
          while (off < n) off += nat.a.syncSend(nat.h, memory, 8 * (k + off), n - off);
        }
        k += n;
        if (k === msgs.length) setTimeout(done, 300);
      } else
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
    if (nat) nat.a.syncClose(nat.h);
    else s.close();
  };
  const go = () => pass(() => timed(+passes, false, cpuUs, () => timed(+passes, true, idleUs, end)), false);
  if (nat) return go();
  s.bind(0, ifaddr, () => {
    s.setMulticastInterface(ifaddr);
    s.setMulticastTTL(1);
    s.setMulticastLoopback(false);
    go();
  });
}

if (role === "server") server(...args);
else if (role === "client") client(...args);
else if (role === "send") send(...args);
else {
  process.stderr.write(
    "usage: sync-vm-peer.cjs server PORT ADDR | client VIP PORT N CONC | send FILE GROUP PORT IF [PASSES [IO]]\n",
  );
  process.exit(2);
}
