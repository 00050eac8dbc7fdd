// The packet path (assembly/packet): raw IPv4/IPv6 packets in, verdicts and rewritten bytes out.
// Expected output bytes are built independently by test/fixtures/packets/build.ts with checksums
// computed from scratch, so a byte-for-byte match also proves the WASM's incremental checksum updates.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { readFileSync } from "node:fs";
import { Core } from "../src/core/index.ts";
import {
  PacketBatch,
  REASON,
  packetCounters,
  resetPacketCounters,
  setTtlMode,
  DESC_SIZE,
} from "../src/core/packets.ts";
import {
  build,
  checksumsValid,
  hex,
  type PacketSpec,
  TCP,
  UDP,
  SCTP,
  ICMP,
  ICMP6,
  FIN,
  SYN,
  RST,
  PSH,
  ACK,
} from "./fixtures/packets/build.ts";

const CLIENT4 = "198.51.100.7",
  VIP4 = "10.0.0.1",
  RS4 = "192.168.1.10",
  SNAT4 = "172.16.0.1";
const CLIENT6 = "2001:db8:c::7",
  VIP6 = "2001:db8::1",
  RS6 = "fd00::10",
  SNAT6 = "fd00::ffff";

type Fwd = "masq" | "fullnat" | "route" | "tunnel" | "local";

async function setup(
  opts: {
    proto?: "tcp" | "udp" | "sctp";
    v6?: boolean;
    fwd?: Fwd;
    debug?: boolean;
    port?: number;
    dport?: number;
  } = {},
) {
  const core = await Core.load({ debug: opts.debug ?? true, connCapacity: 1024 });
  const v6 = opts.v6 ?? false;
  const svc = core.addService({
    proto: opts.proto ?? "tcp",
    addr: v6 ? VIP6 : VIP4,
    port: opts.port ?? 80,
    scheduler: "rr",
  });
  const dest = core.addDest(svc, { addr: v6 ? RS6 : RS4, port: opts.dport ?? 8080, fwd: opts.fwd ?? "masq" });
  core.setSnat(SNAT4);
  core.setSnat(SNAT6);
  const batch = new PacketBatch(core, { maxPackets: 64, maxBytes: 64 * 1600 });
  return {
    core,
    svc,
    dest,
    batch,
    client: v6 ? CLIENT6 : CLIENT4,
    vip: v6 ? VIP6 : VIP4,
    rs: v6 ? RS6 : RS4,
    snat: v6 ? SNAT6 : SNAT4,
  };
}

function expectBytes(got: Uint8Array, want: Uint8Array, what: string): void {
  assert.is(hex(got), hex(want), what);
  const v = checksumsValid(got);
  assert.ok(v.ip && v.l4, `${what}: checksums valid (${JSON.stringify(v)})`);
}

const PROTO_NUM = { tcp: TCP, udp: UDP, sctp: SCTP } as const;

// One flow's in/out exchange for a protocol, family and method, with expected bytes both ways.
for (const proto of ["tcp", "udp"] as const) {
  for (const v6 of [false, true]) {
    for (const fwd of ["masq", "fullnat"] as const) {
      test(`${v6 ? "IPv6" : "IPv4"} ${proto} ${fwd}: request and reply rewritten, checksums valid`, async () => {
        const { core, batch, client, vip, rs, snat } = await setup({ proto, v6, fwd });
        const p = PROTO_NUM[proto];
        const payload = new TextEncoder().encode("hello, odd length!!");
        const inSpec: PacketSpec = {
          src: client,
          dst: vip,
          proto: p,
          sport: 40001,
          dport: 80,
          flags: SYN,
          payload,
          ttl: 64,
        };
        const r = batch.one(build(inSpec), { dir: "in" });
        assert.is(r.verdict, "forward");
        assert.is(r.fwd, fwd);
        assert.ok(r.isNew);
        const c = core.conn(r.conn)!;
        assert.is(c.daddr, rs);
        const lport = c.lport;
        if (fwd === "fullnat") {
          assert.is(c.laddr, snat);
          assert.ok(lport >= 1024);
        } else assert.is(lport, 40001);
        const want = build({
          ...inSpec,
          dst: rs,
          dport: 8080,
          ttl: 63,
          ...(fwd === "fullnat" ? { src: snat, sport: lport } : {}),
        });
        expectBytes(r.out, want, "request");

        // reply from the real server
        const replySpec: PacketSpec = {
          src: rs,
          dst: fwd === "fullnat" ? snat : client,
          proto: p,
          sport: 8080,
          dport: lport,
          flags: SYN | ACK,
          payload,
          ttl: 64,
        };
        const o = batch.one(build(replySpec), { dir: "out" });
        assert.is(o.verdict, "forward", "reply");
        assert.is(o.conn, r.conn);
        assert.not.ok(o.isNew);
        const wantOut = build({ ...replySpec, src: vip, sport: 80, dst: client, dport: 40001, ttl: 63 });
        expectBytes(o.out, wantOut, "reply");
      });
    }
  }
}

test("IPv4 UDP without checksum: stays 0 after NAT", async () => {
  const { batch } = await setup({ proto: "udp" });
  const spec: PacketSpec = {
    src: CLIENT4,
    dst: VIP4,
    proto: UDP,
    sport: 5353,
    dport: 80,
    payload: new Uint8Array([1, 2, 3]),
    udpZeroCsum: true,
  };
  const r = batch.one(build(spec), { dir: "in" });
  assert.is(r.verdict, "forward");
  assert.is(hex(r.out), hex(build({ ...spec, dst: RS4, dport: 8080, ttl: 63 })));
});

test("IPv6 UDP with checksum 0: dropped (RFC 8200)", async () => {
  const { batch } = await setup({ proto: "udp", v6: true });
  const r = batch.one(build({ src: CLIENT6, dst: VIP6, proto: UDP, sport: 5353, dport: 80, udpZeroCsum: true }), {
    dir: "in",
  });
  assert.is(r.verdict, "drop");
  assert.is(r.reasonCode, REASON.udp6ZeroCsum);
});

test("UDP checksum that becomes 0 is sent as 0xffff", async () => {
  const { batch } = await setup({ proto: "udp" });
  // pick the last payload word so that the rewritten datagram sums to 0xffff (checksum 0)
  const base: PacketSpec = { src: CLIENT4, dst: VIP4, proto: UDP, sport: 1000, dport: 80, payload: new Uint8Array(2) };
  const c0 = (build({ ...base, dst: RS4, dport: 8080 })[26] << 8) | build({ ...base, dst: RS4, dport: 8080 })[27];
  const spec: PacketSpec = { ...base, payload: new Uint8Array([c0 >> 8, c0 & 0xff]) };
  const want = build({ ...spec, dst: RS4, dport: 8080, ttl: 63 });
  assert.is((want[26] << 8) | want[27], 0xffff, "the rewritten checksum is 0, sent as 0xffff");
  const r = batch.one(build(spec), { dir: "in" });
  assert.is(hex(r.out), hex(want));
  assert.ok(checksumsValid(r.out).l4);
});

for (const v6 of [false, true]) {
  test(`${v6 ? "IPv6" : "IPv4"} SCTP masq: CRC32c recomputed when ports change, state from chunks`, async () => {
    const { core, batch, client, vip, rs } = await setup({ proto: "sctp", v6 });
    const init = {
      src: client,
      dst: vip,
      proto: SCTP,
      sport: 7000,
      dport: 80,
      vtag: 0,
      chunks: [{ type: 1, body: new Uint8Array(16).fill(7) }],
    };
    const r = batch.one(build(init), { dir: "in" });
    assert.is(r.verdict, "forward");
    expectBytes(r.out, build({ ...init, dst: rs, dport: 8080, ttl: 63 }), "INIT");
    assert.is(core.conn(r.conn)!.state, "INIT1");
    const initAck = {
      src: rs,
      dst: client,
      proto: SCTP,
      sport: 8080,
      dport: 7000,
      chunks: [{ type: 2, body: new Uint8Array(20).fill(3) }],
    };
    const o = batch.one(build(initAck), { dir: "out" });
    assert.is(o.verdict, "forward");
    expectBytes(o.out, build({ ...initAck, src: vip, sport: 80, ttl: 63 }), "INIT ACK");
    // COOKIE ECHO then ABORT in one packet counts as ABORT: CLOSED
    const echoAbort = {
      src: client,
      dst: vip,
      proto: SCTP,
      sport: 7000,
      dport: 80,
      chunks: [{ type: 10, body: new Uint8Array(9).fill(1) }, { type: 6 }],
    };
    const a = batch.one(build(echoAbort), { dir: "in" });
    assert.is(a.verdict, "forward");
    expectBytes(a.out, build({ ...echoAbort, dst: rs, dport: 8080, ttl: 63 }), "COOKIE ECHO + ABORT");
    assert.is(core.conn(r.conn)!.state, "CLOSED");
  });
}

test("SCTP: COOKIE ECHO alone moves to COOKIE_REPLIED-side states, not CLOSED", async () => {
  const { core, batch } = await setup({ proto: "sctp" });
  const base = { src: CLIENT4, dst: VIP4, proto: SCTP, sport: 7001, dport: 80 };
  const r = batch.one(build({ ...base, chunks: [{ type: 1, body: new Uint8Array(16) }] }), { dir: "in" });
  batch.one(
    build({
      src: RS4,
      dst: CLIENT4,
      proto: SCTP,
      sport: 8080,
      dport: 7001,
      chunks: [{ type: 2, body: new Uint8Array(16) }],
    }),
    { dir: "out" },
  );
  batch.one(
    build({
      ...base,
      chunks: [
        { type: 10, body: new Uint8Array(8) },
        { type: 0, body: new Uint8Array(4) },
      ],
    }),
    { dir: "in" },
  );
  assert.is.not(core.conn(r.conn)!.state, "CLOSED");
  batch.one(build({ src: RS4, dst: CLIENT4, proto: SCTP, sport: 8080, dport: 7001, chunks: [{ type: 11 }] }), {
    dir: "out",
  });
  assert.is(core.conn(r.conn)!.state, "ESTABLISHED");
});

test("SCTP with unchanged ports: CRC left alone (even a wrong one), addresses rewritten", async () => {
  const { batch } = await setup({ proto: "sctp", dport: 80 });
  const spec = {
    src: CLIENT4,
    dst: VIP4,
    proto: SCTP,
    sport: 7002,
    dport: 80,
    chunks: [{ type: 1, body: new Uint8Array(16) }],
  };
  const pk = build(spec);
  pk[20 + 8] ^= 0x55; // corrupt the CRC
  const r = batch.one(pk, { dir: "in" });
  const want = build({ ...spec, dst: RS4, ttl: 63 });
  want[20 + 8] ^= 0x55;
  assert.is(hex(r.out), hex(want));
});

test("TCP state through the packet path: SYN, SYN-ACK, ACK, FIN, RST", async () => {
  const { core, batch } = await setup();
  const inb = (flags: number, sport = 41000) =>
    batch.one(build({ src: CLIENT4, dst: VIP4, proto: TCP, sport, dport: 80, flags }), { dir: "in" });
  const out = (flags: number, dport = 41000) =>
    batch.one(build({ src: RS4, dst: CLIENT4, proto: TCP, sport: 8080, dport, flags }), { dir: "out" });
  // no connection yet: a bare ACK is not ours
  assert.is(inb(ACK).verdict, "not-ours");
  assert.is(inb(RST).verdict, "not-ours");
  assert.is(out(SYN | ACK).verdict, "not-ours");
  const r = inb(SYN);
  assert.is(r.verdict, "forward");
  assert.ok(r.isNew);
  const st = () => core.conn(r.conn)!;
  assert.is(st().state, "SYN_RECV");
  assert.ok(st().active);
  assert.is(out(SYN | ACK).verdict, "forward");
  assert.is(st().state, "SYN_RECV");
  const a = inb(ACK);
  assert.not.ok(a.isNew);
  assert.is(a.conn, r.conn);
  assert.is(st().state, "ESTABLISHED");
  assert.is(core.dest(a.dest).activeConns, 1);
  inb(ACK | PSH);
  out(ACK | PSH);
  assert.is(st().state, "ESTABLISHED");
  inb(FIN | ACK);
  assert.is(st().state, "CLOSE_WAIT");
  assert.not.ok(st().active);
  out(FIN | ACK);
  assert.is(st().state, "TIME_WAIT"); // OUTPUT fin: CLOSE_WAIT -> TIME_WAIT (ip_vs_proto_tcp.c)
  inb(ACK);
  assert.is(st().state, "TIME_WAIT");
  // a second flow reset by the server
  const r2 = inb(SYN, 41001);
  out(SYN | ACK, 41001);
  inb(ACK, 41001);
  assert.is(core.conn(r2.conn)!.state, "ESTABLISHED");
  out(RST, 41001);
  assert.is(core.conn(r2.conn)!.state, "CLOSE");
  assert.is(core.conn(r2.conn)!.inPkts, 2);
});

test("IPv4 options honoured through IHL", async () => {
  const { batch } = await setup();
  const opts = new Uint8Array([0x07, 0x07, 0x04, 0, 0, 0, 0, 0x01]); // record route (7 bytes) + NOP
  const spec: PacketSpec = { src: CLIENT4, dst: VIP4, proto: TCP, sport: 4242, dport: 80, flags: SYN, ipOptions: opts };
  const r = batch.one(build(spec), { dir: "in" });
  assert.is(r.verdict, "forward");
  assert.is(r.l4Offset, 28);
  expectBytes(r.out, build({ ...spec, dst: RS4, dport: 8080, ttl: 63 }), "options");
});

test("IPv6 extension headers: hop-by-hop, routing (segments left 0), destination options walked", async () => {
  const { batch } = await setup({ v6: true, proto: "udp" });
  const ext = [{ type: 0 }, { type: 43, segmentsLeft: 0 }, { type: 60, body: new Uint8Array(14) }];
  const spec: PacketSpec = {
    src: CLIENT6,
    dst: VIP6,
    proto: UDP,
    sport: 4243,
    dport: 80,
    payload: new Uint8Array(5).fill(9),
    ext,
  };
  const r = batch.one(build(spec), { dir: "in" });
  assert.is(r.verdict, "forward");
  assert.is(r.l4Offset, 40 + 8 + 8 + 16);
  expectBytes(r.out, build({ ...spec, dst: RS6, dport: 8080, ttl: 63 }), "ext headers");
});

test("IPv6 extension headers that are dropped or not ours", async () => {
  const { batch } = await setup({ v6: true });
  const base: PacketSpec = { src: CLIENT6, dst: VIP6, proto: TCP, sport: 4244, dport: 80, flags: SYN };
  const cases: [PacketSpec["ext"], string, number][] = [
    // a later fragment whose first was not seen
    [[{ type: 44, body: new Uint8Array([0, 0x08, 0, 0, 0, 1]) }], "drop", REASON.fragment],
    [[{ type: 43, segmentsLeft: 1 }], "drop", REASON.badExtHdr],
    [[{ type: 60 }, { type: 0 }], "drop", REASON.badExtHdr], // hop-by-hop not first
    [[{ type: 51 }], "drop", REASON.badExtHdr], // AH
    [Array.from({ length: 9 }, () => ({ type: 60 })), "drop", REASON.badExtHdr], // too many
    [Array.from({ length: 8 }, () => ({ type: 60 })), "forward", 0],
  ];
  for (const [ext, verdict, reason] of cases) {
    const r = batch.one(build({ ...base, ext }), { dir: "in" });
    assert.is(r.verdict, verdict, JSON.stringify(ext));
    assert.is(r.reasonCode, reason, JSON.stringify(ext));
  }
  // next header "no next header" and ICMPv6: not ours
  assert.is(batch.one(build({ src: CLIENT6, dst: VIP6, proto: 59 }), { dir: "in" }).verdict, "not-ours");
  assert.is(
    batch.one(build({ src: CLIENT6, dst: VIP6, proto: ICMP6, payload: new Uint8Array(8) }), { dir: "in" }).verdict,
    "not-ours",
  );
});

for (const fwd of ["route", "tunnel"] as const) {
  test(`${fwd}: no address rewrite, TTL decremented, method reported`, async () => {
    const { batch, core } = await setup({ fwd, dport: 80 });
    const spec: PacketSpec = { src: CLIENT4, dst: VIP4, proto: TCP, sport: 5000, dport: 80, flags: SYN };
    const r = batch.one(build(spec), { dir: "in" });
    assert.is(r.verdict, "forward");
    assert.is(r.fwd, fwd);
    expectBytes(r.out, build({ ...spec, ttl: 63 }), fwd);
    assert.ok(core.conn(r.conn)!.flags & 0x80, "NOOUTPUT");
    // replies are never seen for DR/TUN: not in the reply index
    const o = batch.one(build({ src: RS4, dst: CLIENT4, proto: TCP, sport: 80, dport: 5000, flags: SYN | ACK }), {
      dir: "out",
    });
    assert.is(o.verdict, "not-ours");
  });
}

test("IPv6 route: hop limit decremented only", async () => {
  const { batch } = await setup({ fwd: "route", v6: true });
  const spec: PacketSpec = { src: CLIENT6, dst: VIP6, proto: TCP, sport: 5000, dport: 80, flags: SYN, ttl: 2 };
  const r = batch.one(build(spec), { dir: "in" });
  assert.is(r.fwd, "route");
  expectBytes(r.out, build({ ...spec, ttl: 1 }), "hop limit");
});

test("local: packet untouched (no TTL change)", async () => {
  const { batch } = await setup({ fwd: "local", dport: 80 });
  const pk = build({ src: CLIENT4, dst: VIP4, proto: TCP, sport: 5001, dport: 80, flags: SYN });
  const r = batch.one(pk, { dir: "in" });
  assert.is(r.verdict, "forward");
  assert.is(r.fwd, "local");
  assert.not.ok(r.rewritten);
  assert.is(hex(r.out), hex(pk));
});

test("TTL: <= 1 dropped both ways (after the connection on the way in); TTL mode off leaves it", async () => {
  const { core, batch } = await setup();
  const r = batch.one(build({ src: CLIENT4, dst: VIP4, proto: TCP, sport: 6000, dport: 80, flags: SYN, ttl: 1 }), {
    dir: "in",
  });
  assert.is(r.verdict, "drop");
  assert.is(r.reasonCode, REASON.ttlExceeded);
  assert.ok(r.conn >= 0, "the connection exists, as in the kernel (xmit fails after ip_vs_in)");
  assert.is(r.fwd, "masq");
  const o = batch.one(
    build({ src: RS4, dst: CLIENT4, proto: TCP, sport: 8080, dport: 6000, flags: SYN | ACK, ttl: 1 }),
    { dir: "out" },
  );
  assert.is(o.verdict, "drop");
  assert.is(o.reasonCode, REASON.ttlExceeded);
  assert.is(core.conn(r.conn)!.state, "SYN_RECV", "reply dropped before IPVS saw it");
  setTtlMode(core, false);
  const spec: PacketSpec = { src: CLIENT4, dst: VIP4, proto: TCP, sport: 6001, dport: 80, flags: SYN, ttl: 1 };
  const r2 = batch.one(build(spec), { dir: "in" });
  assert.is(r2.verdict, "forward");
  expectBytes(r2.out, build({ ...spec, dst: RS4, dport: 8080, ttl: 1 }), "ttl untouched");
  setTtlMode(core, true);
});

test("link padding after the IP length is ignored and left untouched", async () => {
  const { batch } = await setup();
  const trailer = new Uint8Array([0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff]);
  const spec: PacketSpec = { src: CLIENT4, dst: VIP4, proto: TCP, sport: 6100, dport: 80, flags: SYN, trailer };
  const r = batch.one(build(spec), { dir: "in" });
  assert.is(hex(r.out), hex(build({ ...spec, dst: RS4, dport: 8080, ttl: 63 })));
});

test("one-packet UDP service: each datagram scheduled and rewritten, no entry left", async () => {
  const core = await Core.load({ debug: true, connCapacity: 1024 });
  const svc = core.addService({ proto: "udp", addr: VIP4, port: 53, scheduler: "rr", flags: ["ops"] });
  core.addDest(svc, { addr: RS4, port: 5353, fwd: "masq" });
  core.addDest(svc, { addr: "192.168.1.11", port: 5353, fwd: "masq" });
  const batch = new PacketBatch(core);
  const spec: PacketSpec = {
    src: CLIENT4,
    dst: VIP4,
    proto: UDP,
    sport: 3333,
    dport: 53,
    payload: new Uint8Array(12).fill(5),
  };
  const a = batch.one(build(spec), { dir: "in" });
  const b = batch.one(build(spec), { dir: "in" });
  assert.is(a.verdict, "forward");
  assert.is(b.verdict, "forward");
  const outs = [hex(a.out), hex(b.out)].sort();
  const want = [
    hex(build({ ...spec, dst: RS4, dport: 5353, ttl: 63 })),
    hex(build({ ...spec, dst: "192.168.1.11", dport: 5353, ttl: 63 })),
  ].sort();
  assert.equal(outs, want, "round robin over the two destinations, per datagram");
  assert.is(core.connStats().live, 0);
});

test("fwmark from the descriptor selects a fwmark service", async () => {
  const core = await Core.load({ debug: true, connCapacity: 1024 });
  const svc = core.addService({ fwmark: 7, scheduler: "rr" });
  core.addDest(svc, { addr: RS4, port: 0, fwd: "masq" });
  const batch = new PacketBatch(core);
  const spec: PacketSpec = { src: CLIENT4, dst: "10.9.9.9", proto: TCP, sport: 6200, dport: 443, flags: SYN };
  assert.is(batch.one(build(spec), { dir: "in" }).verdict, "not-ours");
  const r = batch.one(build(spec), { dir: "in", mark: 7 });
  assert.is(r.verdict, "forward");
  expectBytes(r.out, build({ ...spec, dst: RS4, ttl: 63 }), "fwmark");
});

test("not ours: ICMP, no service, other port", async () => {
  const { batch } = await setup();
  assert.is(
    batch.one(build({ src: CLIENT4, dst: VIP4, proto: ICMP, payload: new Uint8Array(8) }), { dir: "in" }).verdict,
    "not-ours",
  );
  assert.is(
    batch.one(build({ src: CLIENT4, dst: "10.0.0.2", proto: TCP, sport: 1, dport: 80, flags: SYN }), { dir: "in" })
      .verdict,
    "not-ours",
  );
  assert.is(
    batch.one(build({ src: CLIENT4, dst: VIP4, proto: TCP, sport: 1, dport: 81, flags: SYN }), { dir: "in" }).verdict,
    "not-ours",
  );
  assert.is(
    batch.one(build({ src: CLIENT4, dst: VIP4, proto: UDP, sport: 1, dport: 80 }), { dir: "in" }).verdict,
    "not-ours",
  );
});

test("connection drop reasons reach the descriptor (no destination)", async () => {
  const core = await Core.load({ debug: true, connCapacity: 1024 });
  core.addService({ proto: "tcp", addr: VIP4, port: 80, scheduler: "rr" });
  const batch = new PacketBatch(core);
  const r = batch.one(build({ src: CLIENT4, dst: VIP4, proto: TCP, sport: 1, dport: 80, flags: SYN }), { dir: "in" });
  assert.is(r.verdict, "drop");
  assert.is(r.reasonCode, REASON.noDest);
  assert.is(r.reason, "no destination available");
});

// A well-formed SYN to the VIP from the client, IPv4 and IPv6: each malformed case breaks one thing in it.
const good = () => build({ src: CLIENT4, dst: VIP4, proto: TCP, sport: 7100, dport: 80, flags: SYN });
const good6 = () => build({ src: CLIENT6, dst: VIP6, proto: TCP, sport: 7100, dport: 80, flags: SYN });
// The IPv4 header checksum made right again after an edit, so only the edited field is wrong.
function fixIp(b: Uint8Array): Uint8Array {
  b[10] = b[11] = 0;
  let s = 0;
  for (let i = 0; i < (b[0] & 15) * 4; i += 2) s += (b[i] << 8) | b[i + 1];
  while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
  b[10] = (~s >> 8) & 0xff;
  b[11] = ~s & 0xff;
  return b;
}

type MalformedCase = [what: string, packet: Uint8Array, reason: number];

// Malformed in the IP header: lengths, version, IHL, checksum.
function ipMalformed(): MalformedCase[] {
  return [
    ["empty", new Uint8Array(0), REASON.truncated],
    ["IPv4 header cut", good().slice(0, 19), REASON.truncated],
    ["IPv6 header cut", good6().slice(0, 39), REASON.truncated],
    [
      "version 5",
      (() => {
        const b = good();
        b[0] = 0x55;
        return b;
      })(),
      REASON.badVersion,
    ],
    ["version 0", new Uint8Array(40), REASON.badVersion],
    [
      "IHL 4",
      fixIp(
        (() => {
          const b = good();
          b[0] = 0x44;
          return b;
        })(),
      ),
      REASON.badIhl,
    ],
    [
      "IHL 15 beyond packet",
      (() => {
        const b = good().slice(0, 40);
        b[0] = 0x4f;
        return b;
      })(),
      REASON.badIhl,
    ],
    [
      "total length > packet",
      fixIp(
        (() => {
          const b = good();
          b[2] = 0;
          b[3] = 41;
          return b;
        })(),
      ),
      REASON.badTotalLength,
    ],
    [
      "total length < IHL",
      fixIp(
        (() => {
          const b = good();
          b[2] = 0;
          b[3] = 19;
          return b;
        })(),
      ),
      REASON.badTotalLength,
    ],
    [
      "IPv6 payload length > packet",
      (() => {
        const b = good6();
        b[5] += 1;
        return b;
      })(),
      REASON.badTotalLength,
    ],
    [
      "IPv4 header checksum",
      (() => {
        const b = good();
        b[11] ^= 1;
        return b;
      })(),
      REASON.badIpCsum,
    ],
  ];
}

// Fragments, which the path does not reassemble, and IPv6 extension headers it cannot walk.
function fragmentMalformed(): MalformedCase[] {
  return [
    [
      "IPv4 SCTP first fragment",
      build({ src: CLIENT4, dst: VIP4, proto: SCTP, sport: 1, dport: 80, fragField: 0x2000 }),
      REASON.fragment,
    ],
    [
      "IPv4 offset",
      build({ src: CLIENT4, dst: VIP4, proto: TCP, sport: 1, dport: 80, flags: SYN, fragField: 0x0010 }),
      REASON.fragment,
    ],
    [
      "IPv6 later fragment",
      build({
        src: CLIENT6,
        dst: VIP6,
        proto: TCP,
        sport: 1,
        dport: 80,
        flags: SYN,
        ext: [{ type: 44, body: new Uint8Array([0, 0x08, 0, 0, 0, 1]) }],
      }),
      REASON.fragment,
    ],
    [
      "IPv6 AH",
      build({ src: CLIENT6, dst: VIP6, proto: TCP, sport: 1, dport: 80, flags: SYN, ext: [{ type: 51 }] }),
      REASON.badExtHdr,
    ],
    [
      "IPv6 ext header length beyond payload",
      (() => {
        const b = build({ src: CLIENT6, dst: VIP6, proto: TCP, sport: 1, dport: 80, flags: SYN, ext: [{ type: 60 }] });
        b[41] = 200;
        return b;
      })(),
      REASON.truncated,
    ],
    [
      "IPv6 ext header cut",
      (() => {
        const b = good6().slice(0, 44);
        b[6] = 60;
        b[4] = 0;
        b[5] = 4;
        return b;
      })(),
      REASON.truncated,
    ],
  ];
}

// Malformed in the transport header: TCP data offset, UDP length, SCTP chunks, IPv6 UDP without a checksum.
function transportMalformed(): MalformedCase[] {
  return [
    [
      "TCP header cut",
      fixIp(
        (() => {
          const b = good().slice(0, 39);
          b[2] = 0;
          b[3] = 39;
          return b;
        })(),
      ),
      REASON.truncated,
    ],
    [
      "TCP data offset 4",
      (() => {
        const b = good();
        b[32] = 0x40;
        return b;
      })(),
      REASON.badTcpDoff,
    ],
    [
      "TCP data offset beyond segment",
      (() => {
        const b = good();
        b[32] = 0xf0;
        return b;
      })(),
      REASON.badTcpDoff,
    ],
    [
      "UDP header cut",
      fixIp(
        (() => {
          const b = build({ src: CLIENT4, dst: VIP4, proto: UDP, sport: 1, dport: 80 }).slice(0, 27);
          b[3] = 27;
          return b;
        })(),
      ),
      REASON.truncated,
    ],
    [
      "UDP length 7",
      (() => {
        const b = build({ src: CLIENT4, dst: VIP4, proto: UDP, sport: 1, dport: 80 });
        b[25] = 7;
        return b;
      })(),
      REASON.badUdpLength,
    ],
    [
      "UDP length beyond",
      (() => {
        const b = build({ src: CLIENT4, dst: VIP4, proto: UDP, sport: 1, dport: 80 });
        b[25] = 9;
        return b;
      })(),
      REASON.badUdpLength,
    ],
    [
      "SCTP without a chunk",
      build({ src: CLIENT4, dst: VIP4, proto: SCTP, sport: 1, dport: 80, chunks: [] }),
      REASON.truncated,
    ],
    [
      "IPv6 UDP zero checksum",
      build({ src: CLIENT6, dst: VIP6, proto: UDP, sport: 1, dport: 80, udpZeroCsum: true }),
      REASON.udp6ZeroCsum,
    ],
  ];
}

// Every malformed class, each with its reason, and the counters.
test("malformed packets: a reason for each class, counters by reason", async () => {
  const { core, batch } = await setup();
  resetPacketCounters(core);
  const cases = [...ipMalformed(), ...fragmentMalformed(), ...transportMalformed()];
  const counts: Record<number, number> = {};
  for (const [what, pk, reason] of cases) {
    const r = batch.one(pk, { dir: "in" });
    assert.is(r.verdict, "drop", what);
    assert.is(r.reasonCode, reason, `${what}: ${r.reason}`);
    assert.is(r.conn, -1, what);
    counts[reason] = (counts[reason] ?? 0) + 1;
  }
  // bad descriptors: beyond the data area, bad direction
  batch.clear();
  batch.add(good());
  batch.setDescriptor(0, batch.maxBytes - 10, 20, 0);
  batch.run(0, 1);
  assert.is(batch.result(0).reasonCode, REASON.badDescriptor);
  batch.setDescriptor(0, 0xffffffff, 2, 0);
  batch.run(0, 1);
  assert.is(batch.result(0).reasonCode, REASON.badDescriptor);
  batch.setDescriptor(0, 0, 40, 2 as 0);
  batch.run(0, 1);
  assert.is(batch.result(0).reasonCode, REASON.badDescriptor);
  counts[REASON.badDescriptor] = 3;
  for (const [reason, n] of Object.entries(counts))
    assert.is(core.x.packetDropCount(Number(reason)), n, `counter ${reason}`);
  const c = packetCounters(core);
  assert.is(c.verdicts.drop, cases.length + 3);
  assert.is(c.drops.bad_descriptor, 3);
  resetPacketCounters(core);
  assert.is(core.x.packetDropCount(REASON.truncated), 0);
  assert.is(core.x.packetVerdictCount(2), 0);
});

test("a batch of mixed packets, results per descriptor; packets never grow", async () => {
  const { core, batch } = await setup();
  const pks = [
    build({ src: CLIENT4, dst: VIP4, proto: TCP, sport: 8000, dport: 80, flags: SYN }),
    build({ src: CLIENT4, dst: VIP4, proto: ICMP, payload: new Uint8Array(8) }),
    new Uint8Array(3),
    build({ src: CLIENT4, dst: VIP4, proto: TCP, sport: 8000, dport: 80, flags: ACK }),
  ];
  batch.clear();
  pks.forEach((p) => batch.add(p, { dir: "in" }));
  assert.is(batch.run(1000), 4);
  const rs = batch.results();
  assert.equal(
    rs.map((r) => r.verdict),
    ["forward", "not-ours", "drop", "forward"],
  );
  assert.is(rs[0].conn, rs[3].conn);
  assert.is(core.conn(rs[0].conn)!.state, "ESTABLISHED");
  for (let i = 0; i < 4; i++) assert.is(batch.bytes(i).length, pks[i].length);
  // n beyond the area is clamped
  assert.is(core.x.processBatch(1 << 30, 1000), batch.maxPackets);
  assert.is(DESC_SIZE, 32);
});

// A reply in the same batch as its SYN must be matched: the batch's pre-pass reads bucket lines ahead of
// the packets that create entries in them.
test("a reply in the same batch as its SYN is matched, release and debug", async () => {
  for (const debug of [true, false]) {
    const core = await Core.load({ debug, connCapacity: 4096 });
    const svc = core.addService({ proto: "tcp", addr: VIP4, port: 80, scheduler: "rr" });
    core.addDest(svc, { addr: RS4, port: 8080, fwd: "masq" });
    const syns = 1100;
    const batch = new PacketBatch(core, { maxPackets: syns + 4, maxBytes: (syns + 4) * 64 });
    batch.clear();
    const reply = (k: number) =>
      build({ src: RS4, dst: CLIENT4, proto: TCP, sport: 8080, dport: 20000 + k, flags: SYN | ACK });
    for (let k = 0; k < syns; k++) {
      batch.add(build({ src: CLIENT4, dst: VIP4, proto: TCP, sport: 20000 + k, dport: 80, flags: SYN }), { dir: "in" });
      if (k === 0) batch.add(reply(0), { dir: "out" });
    }
    for (const k of [1, 1050, syns - 1]) batch.add(reply(k), { dir: "out" });
    assert.is(batch.run(1000), syns + 4);
    const rs = batch.results();
    const at = (k: number) => rs[k === 0 ? 0 : k + 1].conn;
    assert.is(rs[1].verdict, "forward", `reply right after its SYN (debug=${debug})`);
    assert.is(rs[1].conn, at(0));
    assert.equal(
      rs.slice(syns + 1).map((r) => r.verdict),
      ["forward", "forward", "forward"],
      `replies at the end (debug=${debug})`,
    );
    assert.equal(
      rs.slice(syns + 1).map((r) => r.conn),
      [at(1), at(1050), at(syns - 1)],
    );
    // and after the batch, through the one-packet path too
    assert.is(batch.one(reply(7), { dir: "out", now: 1001 }).verdict, "forward");
  }
});

test("release build gives the same bytes as the debug build", async () => {
  const outs: string[] = [];
  for (const debug of [true, false]) {
    const { batch } = await setup({ debug, fwd: "fullnat", v6: true });
    const r = batch.one(
      build({
        src: CLIENT6,
        dst: VIP6,
        proto: TCP,
        sport: 9000,
        dport: 80,
        flags: SYN,
        payload: new Uint8Array(33).fill(1),
      }),
      { dir: "in" },
    );
    outs.push(hex(r.out));
  }
  assert.is(outs[0], outs[1]);
});

// Recorded fixtures (Katran style: bytes in, bytes out), replayed in order on a fresh core each.
test("JSON fixtures in test/fixtures/packets/", async () => {
  const fx = JSON.parse(readFileSync(new URL("./fixtures/packets/fixtures.json", import.meta.url), "utf8")) as {
    name: string;
    services: {
      proto: "tcp" | "udp" | "sctp";
      addr: string;
      port: number;
      dests: { addr: string; port: number; fwd: Fwd }[];
    }[];
    snat?: string[];
    packets: { dir: "in" | "out"; in: string; out: string; verdict: string; reason?: number; fwd?: string }[];
  }[];
  assert.ok(fx.length > 0);
  for (const f of fx) {
    const core = await Core.load({ debug: true, connCapacity: 1024 });
    for (const s of f.services) {
      const id = core.addService({ proto: s.proto, addr: s.addr, port: s.port, scheduler: "rr" });
      for (const d of s.dests) core.addDest(id, d);
    }
    for (const a of f.snat ?? []) core.setSnat(a);
    const batch = new PacketBatch(core);
    for (const [i, p] of f.packets.entries()) {
      const r = batch.one(new Uint8Array(Buffer.from(p.in, "hex")), { dir: p.dir });
      const what = `${f.name} #${i}`;
      assert.is(r.verdict, p.verdict, what);
      if (p.reason !== undefined) assert.is(r.reasonCode, p.reason, what);
      if (p.fwd !== undefined) assert.is(r.fwd, p.fwd, what);
      assert.is(hex(r.out), p.out, what);
    }
  }
});

test.run();
