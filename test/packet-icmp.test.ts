// ICMP and ICMPv6 errors about known connections, translated by the packet path as IPVS translates them
// (assembly/packet/icmp.ts). Expected bytes are built independently here, checksums from scratch.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { Core } from "../src/core/index.ts";
import { PacketBatch } from "../src/core/packets.ts";
import { build, hex, sum16, type PacketSpec, TCP, UDP, ICMP, ICMP6, SYN, ACK } from "./fixtures/packets/build.ts";

const CLIENT4 = "198.51.100.7",
  VIP4 = "10.0.0.1",
  RS4 = "192.168.1.10",
  SNAT4 = "172.16.0.1",
  ROUTER4 = "192.168.2.1";
const CLIENT6 = "2001:db8:c::7",
  VIP6 = "2001:db8::1",
  RS6 = "fd00::10",
  SNAT6 = "fd00::ffff",
  ROUTER6 = "fd00:2::1";

async function setup(v6: boolean, fwd: "masq" | "fullnat", proto: "tcp" | "udp" = "tcp") {
  const core = await Core.load({ debug: true, connCapacity: 1024 });
  const svc = core.addService({ proto, addr: v6 ? VIP6 : VIP4, port: 80, scheduler: "rr" });
  core.addDest(svc, { addr: v6 ? RS6 : RS4, port: 8080, fwd });
  core.setSnat(SNAT4);
  core.setSnat(SNAT6);
  return { core, batch: new PacketBatch(core, { maxPackets: 8, maxBytes: 8 * 1600 }) };
}

// An ICMP(v6) error (type, code, 4 bytes of rest) from src to dst quoting `quote`, checksum computed here.
function icmpError(
  v6: boolean,
  src: string,
  dst: string,
  type: number,
  code: number,
  rest: number,
  quote: Uint8Array,
  ttl = 64,
): Uint8Array {
  const body = new Uint8Array(8 + quote.length);
  body[0] = type;
  body[1] = code;
  body[4] = rest >>> 24;
  body[5] = (rest >>> 16) & 255;
  body[6] = (rest >>> 8) & 255;
  body[7] = rest & 255;
  body.set(quote, 8);
  const p = build({ src, dst, proto: v6 ? ICMP6 : ICMP, payload: body, ttl });
  const l4 = v6 ? 40 : 20;
  let s = sum16(p, l4, p.length);
  if (v6) s = sum16(p, 8, 40, s + 58 + body.length); // pseudo-header: addresses, length, next header
  while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
  const c = ~s & 0xffff;
  p[l4 + 2] = c >>> 8;
  p[l4 + 3] = c & 255;
  return p;
}

for (const v6 of [false, true]) {
  for (const fwd of ["fullnat", "masq"] as const) {
    const fam = v6 ? "IPv6" : "IPv4";
    const what = v6 ? "packet too big" : "fragmentation needed";
    test(
      `${fam} ${fwd}: "${what}" from the real server's side reaches the client ` +
        "from the VIP, quoting the client's own packet",
      async () => {
        const { core, batch } = await setup(v6, fwd);
        const client = v6 ? CLIENT6 : CLIENT4,
          vip = v6 ? VIP6 : VIP4,
          rs = v6 ? RS6 : RS4,
          snat = v6 ? SNAT6 : SNAT4;
        const payload = new Uint8Array(1400).fill(7);
        const req: PacketSpec = { src: client, dst: vip, proto: TCP, sport: 40001, dport: 80, flags: SYN, ttl: 64 };
        const r = batch.one(build(req), { dir: "in" });
        assert.is(r.verdict, "forward");
        const c = core.conn(r.conn)!;
        const local = fwd === "fullnat" ? { src: snat, sport: c.lport } : {};
        // a full-size data segment as the balancer sent it on, and the router's error about it
        const sent = build({ ...req, flags: ACK, payload, dst: rs, dport: 8080, ttl: 63, ...local });
        const quoteLen = v6 ? 1232 - 48 : 28 + 100; // what a router quotes (IPv6: as much as fits 1280)
        const router = v6 ? ROUTER6 : ROUTER4,
          type = v6 ? 2 : 3,
          code = v6 ? 0 : 4;
        const err = icmpError(v6, router, fwd === "fullnat" ? snat : client, type, code, 1280, sent.slice(0, quoteLen));
        const o = batch.one(err, { dir: "out" });
        assert.is(o.verdict, "forward", `${o.verdict} ${o.reason ?? ""}`);
        assert.is(o.conn, r.conn);
        assert.ok(o.rewritten);
        // what the client must see: from the VIP, quoting its own segment to the VIP as it sent it
        const own = build({ ...req, flags: ACK, payload, ttl: 63 });
        const tcpSum = v6 ? 40 + 16 : 20 + 16;
        own.set(sent.subarray(tcpSum, tcpSum + 2), tcpSum); // the quoted TCP checksum is left as it was
        const want = icmpError(v6, vip, client, type, code, 1280, own.slice(0, quoteLen), 63);
        assert.is(hex(o.out), hex(want));
        if (fwd === "masq") {
          // addressed to the client, not to a local address, the packet-mode addon files it "to a service"
          // (was: not ours, so the client never learnt the path MTU)
          const i = batch.one(err, { dir: "in" });
          assert.is(i.verdict, "forward", `${i.verdict} ${i.reason ?? ""}`);
          assert.is(hex(i.out), hex(want));
        }
      },
    );

    test(
      `${fam} ${fwd}: an unreachable from the client's side about a reply reaches the real server, ` +
        "quoting its own packet",
      async () => {
        const { core, batch } = await setup(v6, fwd, "udp");
        const client = v6 ? CLIENT6 : CLIENT4,
          vip = v6 ? VIP6 : VIP4,
          rs = v6 ? RS6 : RS4,
          snat = v6 ? SNAT6 : SNAT4;
        const ten = new Uint8Array(10);
        const req: PacketSpec = { src: client, dst: vip, proto: UDP, sport: 5000, dport: 80, payload: ten, ttl: 64 };
        const r = batch.one(build(req), { dir: "in" });
        const c = core.conn(r.conn)!;
        // the reply the client's host refused: VIP:80 -> client:5000; it answers port unreachable to the VIP
        const reply = build({ src: vip, dst: client, proto: UDP, sport: 80, dport: 5000, payload: ten, ttl: 63 });
        const unreach = icmpError(v6, client, vip, v6 ? 1 : 3, v6 ? 4 : 3, 0, reply);
        const o = batch.one(unreach, { dir: "in" });
        assert.is(o.verdict, "forward", `${o.verdict} ${o.reason ?? ""}`);
        assert.is(o.conn, r.conn);
        const local = fwd === "fullnat" ? { dst: snat, dport: c.lport } : {};
        const theirs = build({
          src: rs,
          dst: client,
          proto: UDP,
          sport: 8080,
          dport: 5000,
          payload: ten,
          ttl: 63,
          ...local,
        });
        theirs.set(reply.subarray(v6 ? 46 : 26, v6 ? 48 : 28), v6 ? 46 : 26); // quoted UDP checksum left as it was
        const want = icmpError(v6, fwd === "fullnat" ? snat : client, rs, v6 ? 1 : 3, v6 ? 4 : 3, 0, theirs, 63);
        assert.is(hex(o.out), hex(want));
      },
    );
  }
}

test(
  "errors about no known connection, informational messages, quoted non-first fragments: not ours, " +
    "bytes untouched",
  async () => {
    const { batch } = await setup(false, "fullnat");
    const stray = build({ src: SNAT4, dst: RS4, proto: TCP, sport: 1234, dport: 8080, flags: ACK });
    for (const [what, p] of [
      ["no connection", icmpError(false, ROUTER4, SNAT4, 3, 4, 1280, stray)],
      ["echo request", icmpError(false, ROUTER4, SNAT4, 8, 0, 0, stray)],
      [
        "quoted non-first fragment",
        icmpError(
          false,
          ROUTER4,
          SNAT4,
          3,
          4,
          1280,
          build({ src: SNAT4, dst: RS4, proto: TCP, sport: 1, dport: 2, fragField: 0x0010 }),
        ),
      ],
      ["quote cut short", icmpError(false, ROUTER4, SNAT4, 3, 4, 1280, stray.slice(0, 22))],
      ["ICMPv6 echo", icmpError(true, ROUTER6, SNAT6, 128, 0, 0, new Uint8Array(40))],
    ] as const) {
      const o = batch.one(p, { dir: "out" });
      assert.is(o.verdict, "not-ours", what);
      assert.is(hex(o.out), hex(p), `${what}: untouched`);
    }
    const short = build({ src: ROUTER4, dst: SNAT4, proto: ICMP, payload: new Uint8Array(4) });
    const t = batch.one(short, { dir: "out" });
    assert.is(t.verdict, "drop");
    assert.is(t.reason, "truncated");
  },
);

test.run();
