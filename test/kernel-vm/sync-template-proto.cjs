"use strict";
// In the kernel VM, run by sync-template-proto.sh: one sync message (version 1) with six fwmark templates
// whose protocols are 47, 99, 0, 1, 4 and 58, sent to the backup daemon's group over the dummy link sync0 (multicast
// looped back to this host's own backup socket).
const dgram = require("node:dgram");
function template(proto, last) {
  const e = Buffer.alloc(36);
  e[1] = proto;
  e.writeUInt16BE(36, 2); // version 0 of the entry, its size
  e.writeUInt32BE(0x1000, 4); // IP_VS_CONN_F_TEMPLATE, masq
  e.writeUInt16BE(8084, 14); // state 0, client and virtual port 0, destination port 8084
  e.writeUInt32BE(1, 16); // the firewall mark
  e.writeUInt32BE(300, 20); // timeout, s
  Buffer.from([10, 9, 7, last]).copy(e, 24);
  Buffer.from([0, 0, 0, 1]).copy(e, 28); // a fwmark template's address is its mark
  Buffer.from([10, 8, 0, 2]).copy(e, 32);
  return e;
}
const es = [template(47, 1), template(99, 2), template(0, 3), template(1, 4), template(4, 5), template(58, 6)];
const m = Buffer.alloc(8 + 36 * es.length);
m.writeUInt16BE(m.length, 2);
m[4] = es.length;
m[5] = 1; // message version 1
es.forEach((e, i) => e.copy(m, 8 + 36 * i));
const s = dgram.createSocket("udp4");
s.bind(0, "10.77.0.1", () => {
  s.setMulticastInterface("10.77.0.1");
  s.setMulticastLoopback(true);
  s.setMulticastTTL(1);
  s.send(m, 8848, "224.0.0.81", (err) => {
    if (err) throw err;
    s.close();
  });
});
