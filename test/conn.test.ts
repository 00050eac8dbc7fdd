// The connection table against Linux 6.1's rules (ip_vs_conn.c, ip_vs_proto_tcp.c, ip_vs_core.c):
// states, counters, timeouts, reply lookups, persistence, one-packet, reuse, capacity.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { Core, TCP_FLAGS as F } from "../src/core/index.ts";

const VIP = "10.0.0.1";
const SYN = F.SYN,
  ACK = F.ACK,
  FIN = F.FIN | F.ACK,
  RST = F.RST,
  SYNACK = F.SYN | F.ACK;

async function setup(
  opts: {
    sched?: string;
    dests?: [string, number][];
    fwd?: "masq" | "route" | "fullnat";
    proto?: "tcp" | "udp";
    cap?: number;
    persistent?: number;
    netmask?: string;
    flags?: string[];
  } = {},
) {
  const c = await Core.load({ debug: true, connCapacity: opts.cap ?? 4096 });
  const svc = c.addService({
    proto: opts.proto ?? "tcp",
    addr: VIP,
    port: 80,
    scheduler: opts.sched ?? "rr",
    persistent: opts.persistent,
    netmask: opts.netmask,
    flags: opts.flags,
  });
  const ids = (
    opts.dests ?? [
      ["10.1.0.1", 1],
      ["10.1.0.2", 1],
    ]
  ).map(([a, w]) => c.addDest(svc, { addr: a, port: 8080, weight: w, fwd: opts.fwd ?? "masq" }));
  return { c, svc, ids };
}

test("TCP three-way handshake, close, and the active/inactive counters", async () => {
  const { c, ids } = await setup({ dests: [["10.1.0.1", 1]] });
  const r = c.packet("in", "tcp", "192.168.1.5", 5000, VIP, 80, { flags: SYN, now: 1000 });
  assert.is(r.verdict, "forward");
  assert.ok(r.isNew);
  let conn = c.conn(r.conn)!;
  assert.is(conn.state, "SYN_RECV");
  assert.is(conn.timeoutMs, 60000);
  assert.is(conn.daddr, "10.1.0.1");
  assert.is(conn.dport, 8080);
  // SYN_RECV counts as active (since Linux 4.7; observed on 6.1 in the VM)
  assert.equal([c.dest(ids[0]).activeConns, c.dest(ids[0]).inactConns], [1, 0]);
  c.packet("out", "tcp", "10.1.0.1", 8080, "192.168.1.5", 5000, { flags: SYNACK, now: 1001 });
  assert.is(c.conn(r.conn)!.state, "SYN_RECV");
  c.packet("in", "tcp", "192.168.1.5", 5000, VIP, 80, { flags: ACK, now: 1002 });
  conn = c.conn(r.conn)!;
  assert.is(conn.state, "ESTABLISHED");
  assert.is(conn.timeoutMs, 900000);
  assert.equal([c.dest(ids[0]).activeConns, c.dest(ids[0]).inactConns], [1, 0]);
  // client closes first: INPUT fin ES -> CLOSE_WAIT; server's FIN: OUTPUT fin CW -> TIME_WAIT
  c.packet("in", "tcp", "192.168.1.5", 5000, VIP, 80, { flags: FIN, now: 1003 });
  assert.is(c.conn(r.conn)!.state, "CLOSE_WAIT");
  assert.equal([c.dest(ids[0]).activeConns, c.dest(ids[0]).inactConns], [0, 1]);
  c.packet("out", "tcp", "10.1.0.1", 8080, "192.168.1.5", 5000, { flags: FIN, now: 1004 });
  conn = c.conn(r.conn)!;
  assert.is(conn.state, "TIME_WAIT");
  assert.is(conn.timeoutMs, 120000);
  assert.is(conn.expires, 1004 + 120000);
  assert.is(c.advance(1004 + 119999), 0);
  assert.is(c.advance(1004 + 120000), 1);
  assert.is(c.conn(r.conn), null);
  assert.equal([c.dest(ids[0]).activeConns, c.dest(ids[0]).inactConns], [0, 0]);
});

test("a packet with no SYN/FIN/ACK/RST moves to CLOSE; RST closes; non-SYN without entry is not ours", async () => {
  const { c } = await setup();
  const r = c.packet("in", "tcp", "192.168.1.5", 5001, VIP, 80, { flags: SYN, now: 0 });
  c.packet("in", "tcp", "192.168.1.5", 5001, VIP, 80, { flags: 0, now: 1 });
  assert.is(c.conn(r.conn)!.state, "CLOSE");
  assert.is(c.conn(r.conn)!.timeoutMs, 10000);
  const r2 = c.packet("in", "tcp", "192.168.1.6", 5001, VIP, 80, { flags: SYN, now: 0 });
  c.packet("in", "tcp", "192.168.1.6", 5001, VIP, 80, { flags: ACK, now: 1 });
  c.packet("in", "tcp", "192.168.1.6", 5001, VIP, 80, { flags: RST, now: 2 });
  assert.is(c.conn(r2.conn)!.state, "CLOSE");
  assert.is(c.packet("in", "tcp", "192.168.1.7", 5001, VIP, 80, { flags: ACK, now: 3 }).verdict, "not-ours");
  assert.is(c.packet("in", "tcp", "192.168.1.7", 5001, VIP, 81, { flags: SYN, now: 3 }).verdict, "not-ours");
  assert.is(c.packet("in", "tcp", "192.168.1.7", 5001, VIP, 80, { flags: SYN | RST, now: 3 }).verdict, "not-ours");
});

test("direct routing uses the INPUT_ONLY table (ES + FIN -> FIN_WAIT) and no reply index", async () => {
  const { c } = await setup({ fwd: "route", dests: [["10.1.0.1", 1]] });
  const r = c.packet("in", "tcp", "192.168.1.5", 5000, VIP, 80, { flags: SYN, now: 0 });
  assert.ok(c.conn(r.conn)!.flags & 0x80, "NOOUTPUT set for non-NAT");
  c.packet("in", "tcp", "192.168.1.5", 5000, VIP, 80, { flags: ACK, now: 1 });
  assert.is(c.conn(r.conn)!.state, "ESTABLISHED");
  c.packet("in", "tcp", "192.168.1.5", 5000, VIP, 80, { flags: FIN, now: 2 });
  assert.is(c.conn(r.conn)!.state, "FIN_WAIT");
  assert.is(c.packet("out", "tcp", "10.1.0.1", 8080, "192.168.1.5", 5000, { flags: ACK, now: 3 }).verdict, "not-ours");
});

test("ipvsadm --set changes only the ESTABLISHED, FIN_WAIT and UDP timeouts; 0 keeps a value", async () => {
  const { c } = await setup({ dests: [["10.1.0.1", 1]] });
  assert.equal(c.timeouts(), { tcp: 900, tcpfin: 120, udp: 300 });
  c.setTimeouts(60, 0, 20);
  assert.equal(c.timeouts(), { tcp: 60, tcpfin: 120, udp: 20 });
  const r = c.packet("in", "tcp", "192.168.1.5", 5000, VIP, 80, { flags: SYN, now: 0 });
  c.packet("in", "tcp", "192.168.1.5", 5000, VIP, 80, { flags: ACK, now: 0 });
  assert.is(c.conn(r.conn)!.timeoutMs, 60000);
  c.setTimeouts(900, 120, 300);
});

test("UDP: every packet refreshes 300 s; UDP connections are never active", async () => {
  const { c, ids } = await setup({ proto: "udp", dests: [["10.1.0.1", 1]] });
  const r = c.packet("in", "udp", "192.168.1.5", 5353, VIP, 80, { now: 0 });
  assert.is(c.conn(r.conn)!.state, "UDP");
  assert.is(c.conn(r.conn)!.expires, 300000);
  c.packet("out", "udp", "10.1.0.1", 8080, "192.168.1.5", 5353, { now: 1000 });
  assert.is(c.conn(r.conn)!.expires, 301000);
  c.packet("in", "udp", "192.168.1.5", 5353, VIP, 80, { now: 2000 });
  assert.equal([c.dest(ids[0]).activeConns, c.dest(ids[0]).inactConns], [0, 1]);
  assert.is(c.advance(301999), 0);
  assert.is(c.advance(302000), 1);
});

test("reply lookup finds the connection from the real server's side only", async () => {
  const { c } = await setup({ dests: [["10.1.0.1", 1]] });
  const r = c.packet("in", "tcp", "192.168.1.5", 5000, VIP, 80, { flags: SYN, now: 0 });
  assert.is(c.packet("out", "tcp", "10.1.0.1", 8080, "192.168.1.5", 5000, { flags: SYNACK, now: 1 }).conn, r.conn);
  assert.is(
    c.packet("out", "tcp", "10.1.0.1", 8081, "192.168.1.5", 5000, { flags: SYNACK, now: 1 }).verdict,
    "not-ours",
  );
  assert.is(
    c.packet("out", "tcp", "10.1.0.1", 8080, "192.168.1.5", 5001, { flags: SYNACK, now: 1 }).verdict,
    "not-ours",
  );
  assert.is(c.packet("out", "udp", "10.1.0.1", 8080, "192.168.1.5", 5000, { now: 1 }).verdict, "not-ours");
});

// Both indexes are keyed by the client side alone (as the kernel's one table is): one client address and
// port to many virtual services is one bucket chain, which every lookup must still tell apart exactly.
const oneChainManyServices =
  "one client address:port to many services: one bucket chain, each lookup exact, through expiry and reuse";
test(oneChainManyServices, async () => {
  for (const fwd of ["masq", "fullnat"] as const) {
    const c = await Core.load({ debug: true, connCapacity: 4096 });
    const n = 300;
    const vip = (k: number) => `10.0.${k >> 7}.${(k & 127) + 1}`,
      rs = (k: number) => `10.1.${k >> 7}.${(k & 127) + 1}`;
    for (let k = 0; k < n; k++) {
      const svc = c.addService({ proto: "tcp", addr: vip(k), port: 80 + (k % 3), scheduler: "rr" });
      c.addDest(svc, { addr: rs(k), port: 8000 + k, fwd });
    }
    const conns: number[] = [];
    for (let k = 0; k < n; k++) {
      const r = c.packet("in", "tcp", "192.168.1.5", 5000, vip(k), 80 + (k % 3), { flags: SYN, now: 1000 });
      assert.ok(r.isNew && r.verdict === "forward", `${fwd} SYN ${k}`);
      conns.push(r.conn);
    }
    assert.is(new Set(conns).size, n);
    for (let k = n - 1; k >= 0; k -= 7) {
      const e = c.conn(conns[k])!;
      assert.is(`${e.daddr}:${e.dport}`, `${rs(k)}:${8000 + k}`);
      // the same client packet again finds its own entry, and the backend's reply finds it too
      assert.is(
        c.packet("in", "tcp", "192.168.1.5", 5000, vip(k), 80 + (k % 3), { flags: ACK, now: 1001 }).conn,
        conns[k],
      );
      const to = fwd === "masq" ? (["192.168.1.5", 5000] as const) : ([e.laddr, e.lport] as const);
      assert.is(
        c.packet("out", "tcp", e.daddr, e.dport, to[0], to[1], { flags: SYNACK, now: 1001 }).conn,
        conns[k],
        `${fwd} reply ${k}`,
      );
      // a reply from the right server to the wrong port is not ours
      assert.is(
        c.packet("out", "tcp", e.daddr, e.dport + 1, to[0], to[1], { flags: SYNACK, now: 1001 }).verdict,
        "not-ours",
      );
    }
    // all expire (SYN_RECV or ESTABLISHED after an ACK: 15 min), the chain empties, and the key is reused
    c.advance(1000 + 16 * 60_000);
    assert.is(c.connStats().live, 0, `${fwd}: nothing left`);
    const again = c.packet("in", "tcp", "192.168.1.5", 5000, vip(8), 80 + (8 % 3), {
      flags: SYN,
      now: 1000 + 16 * 60_000 + 1,
    });
    assert.ok(again.isNew && c.conn(again.conn)!.daddr === rs(8));
  }
});

test("a full table refuses new connections, counts them, and leaves established ones alone", async () => {
  const { c } = await setup({ cap: 16 });
  const made = [];
  for (let i = 0; i < 16; i++) {
    const r = c.packet("in", "tcp", "192.168.1.5", 6000 + i, VIP, 80, { flags: SYN, now: 0 });
    c.packet("in", "tcp", "192.168.1.5", 6000 + i, VIP, 80, { flags: ACK, now: 0 });
    made.push(r.conn);
  }
  const r = c.packet("in", "tcp", "192.168.1.6", 7000, VIP, 80, { flags: SYN, now: 1 });
  assert.is(r.verdict, "drop");
  assert.is(r.reason, "connection table full");
  assert.is(c.connStats().refusedFull, 1);
  for (const i of made) assert.is(c.conn(i)!.state, "ESTABLISHED");
  assert.is(c.packet("in", "tcp", "192.168.1.5", 6003, VIP, 80, { flags: ACK, now: 2 }).conn, made[3]);
});

test("persistence: one template per client net, children keep it alive, timeout restarts per child", async () => {
  const { c, ids } = await setup({
    persistent: 300,
    dests: [
      ["10.1.0.1", 1],
      ["10.1.0.2", 1],
      ["10.1.0.3", 1],
    ],
  });
  const first = c.packet("in", "tcp", "192.168.1.5", 5000, VIP, 80, { flags: SYN, now: 0 });
  const d0 = c.conn(first.conn)!.daddr;
  for (let i = 1; i < 10; i++) {
    const r = c.packet("in", "tcp", "192.168.1.5", 5000 + i, VIP, 80, { flags: SYN, now: i * 1000 });
    assert.is(c.conn(r.conn)!.daddr, d0, "same client, same destination");
  }
  const tpl = c.conns().filter((x) => x.template);
  assert.is(tpl.length, 1);
  assert.is(tpl[0].cport, 0);
  assert.is(tpl[0].vport, 80);
  assert.is(tpl[0].children, 10);
  assert.is(tpl[0].expires, 9000 + 300000);
  const dest = c.service(0).dests.find((d) => d.addr === d0)!;
  assert.is(dest.persistConns, 1);
  assert.is(dest.activeConns, 10);
  // another client goes elsewhere (rr moves on)
  const other = c.packet("in", "tcp", "192.168.1.6", 5000, VIP, 80, { flags: SYN, now: 10000 });
  assert.is.not(c.conn(other.conn)!.daddr, d0);
  // children expire at 60 s (SYN_RECV); the template outlives them and is then postponed 60 s while
  // children exist
  c.advance(70000);
  assert.is(c.conns().filter((x) => !x.template).length, 0);
  assert.is(c.conns().filter((x) => x.template).length, 2);
  c.advance(309000);
  assert.is(c.conns().filter((x) => x.template).length, 1, "the first client's template expired at 309 s");
  assert.ok(ids.length === 3);
});

test("persistence netmask groups clients; a template with children is put off by 60 s", async () => {
  const { c } = await setup({
    persistent: 10,
    netmask: "255.255.255.0",
    dests: [
      ["10.1.0.1", 1],
      ["10.1.0.2", 1],
    ],
  });
  const a = c.packet("in", "tcp", "192.168.1.5", 5000, VIP, 80, { flags: SYN, now: 0 });
  c.packet("in", "tcp", "192.168.1.5", 5000, VIP, 80, { flags: ACK, now: 0 });
  const b = c.packet("in", "tcp", "192.168.1.200", 5000, VIP, 80, { flags: SYN, now: 0 });
  const other = c.packet("in", "tcp", "192.168.2.5", 5000, VIP, 80, { flags: SYN, now: 0 });
  assert.is(c.conn(b.conn)!.daddr, c.conn(a.conn)!.daddr);
  assert.is.not(c.conn(other.conn)!.daddr, c.conn(a.conn)!.daddr);
  const tpl = c.conns().find((x) => x.template && x.caddr === "192.168.1.0")!;
  assert.ok(tpl, "template keyed on the masked client address");
  // at 10 s the template has an ESTABLISHED child: expiry is postponed by 60 s
  c.advance(10000);
  const t2 = c.conn(tpl.index)!;
  assert.ok(t2?.template);
  assert.is(t2.expires, 70000);
});

test("expire_quiescent_template: weight 0 keeps persistent clients by default, reschedules with 1", async () => {
  for (const quiescent of [0, 1]) {
    const { c, svc } = await setup({
      persistent: 300,
      dests: [
        ["10.1.0.1", 1],
        ["10.1.0.2", 1],
      ],
    });
    c.set("expire_quiescent_template", quiescent);
    const r = c.packet("in", "tcp", "192.168.1.5", 5000, VIP, 80, { flags: SYN, now: 0 });
    const d0 = c.conn(r.conn)!.daddr;
    c.editDest(svc, { addr: d0, port: 8080, weight: 0 });
    const r2 = c.packet("in", "tcp", "192.168.1.5", 5001, VIP, 80, { flags: SYN, now: 1 });
    if (quiescent) assert.is.not(c.conn(r2.conn)!.daddr, d0);
    else assert.is(c.conn(r2.conn)!.daddr, d0);
  }
});

test("one-packet scheduling: each UDP datagram is scheduled alone and leaves no entry", async () => {
  const { c, svc, ids } = await setup({ proto: "udp", flags: ["ops"] });
  const seen = [];
  for (let i = 0; i < 4; i++) {
    const r = c.packet("in", "udp", "192.168.1.5", 5353, VIP, 80, { now: i });
    assert.is(r.verdict, "forward");
    seen.push(c.conn(r.conn) ? "live" : "freed");
  }
  assert.equal(seen, ["freed", "freed", "freed", "freed"]);
  assert.is(c.connStats().live, 0);
  assert.is(c.service(svc).conns, 4n);
  assert.is(c.dest(ids[0]).conns + c.dest(ids[1]).conns, 4n);
  assert.is(c.dest(ids[0]).conns, 2n, "rr alternates per packet");
});

test("conn_reuse_mode: a SYN on a TIME_WAIT entry is rescheduled; with conntrack it is dropped", async () => {
  for (const conntrack of [0, 1]) {
    const { c } = await setup();
    c.set("conntrack", conntrack);
    const r = c.packet("in", "tcp", "192.168.1.5", 5000, VIP, 80, { flags: SYN, now: 0 });
    const d0 = c.conn(r.conn)!.daddr;
    c.packet("in", "tcp", "192.168.1.5", 5000, VIP, 80, { flags: ACK, now: 1 });
    c.packet("in", "tcp", "192.168.1.5", 5000, VIP, 80, { flags: FIN, now: 2 });
    c.packet("out", "tcp", "10.1.0.1", 8080, "192.168.1.5", 5000, { flags: FIN, now: 3 });
    c.packet("out", "tcp", "10.1.0.2", 8080, "192.168.1.5", 5000, { flags: FIN, now: 3 });
    assert.is(c.conn(r.conn)!.state, "TIME_WAIT");
    const again = c.packet("in", "tcp", "192.168.1.5", 5000, VIP, 80, { flags: SYN, now: 4 });
    if (conntrack) {
      assert.is(again.verdict, "drop");
      assert.is(again.reason, "reused tuple with confirmed conntrack");
      assert.is(c.connStats().live, 0, "the old entry was expired");
    } else {
      assert.ok(again.isNew, "rescheduled as a new connection");
      assert.is.not(c.conn(again.conn)!.daddr, d0, "rr moved on");
    }
  }
});

test("a deleted destination: its packets are dropped (expire_nodest_conn=0) or rescheduled (=1)", async () => {
  for (const nodest of [0, 1]) {
    const { c, svc } = await setup();
    c.set("expire_nodest_conn", nodest);
    const r = c.packet("in", "tcp", "192.168.1.5", 5000, VIP, 80, { flags: SYN, now: 0 });
    c.packet("in", "tcp", "192.168.1.5", 5000, VIP, 80, { flags: ACK, now: 0 });
    const d0 = c.conn(r.conn)!;
    c.deleteDest(svc, d0.daddr, 8080);
    // still referenced: the destination lives on (the kernel's trash), unavailable
    assert.is(c.dest(d0.destId).available, false);
    const p = c.packet("in", "tcp", "192.168.1.5", 5000, VIP, 80, { flags: ACK, now: 1 });
    if (nodest) {
      assert.is(c.conn(r.conn) === null || c.conn(r.conn)!.destId !== d0.destId, true);
    } else {
      assert.is(p.verdict, "drop");
      assert.is(p.reason, "destination deleted");
      // re-adding the same destination resurrects it with its connection
      c.addDest(svc, { addr: d0.daddr, port: 8080, weight: 1 });
      assert.is(c.dest(d0.destId).available, true);
      assert.is(c.dest(d0.destId).activeConns, 1);
      assert.is(c.packet("in", "tcp", "192.168.1.5", 5000, VIP, 80, { flags: ACK, now: 2 }).verdict, "forward");
    }
  }
});

test("the trash: a deleted destination is revived with its stats if re-added within 120 s of going idle", async () => {
  const { c, svc } = await setup({
    dests: [
      ["10.1.0.1", 1],
      ["10.1.0.2", 1],
    ],
  });
  const r = c.packet("in", "tcp", "192.168.1.5", 5000, VIP, 80, { flags: SYN, now: 0 });
  const d0 = c.conn(r.conn)!;
  c.deleteDest(svc, d0.daddr, 8080);
  c.advance(60000); // the SYN_RECV entry expires: the destination is unreferenced
  assert.is(c.connStats().live, 0);
  const again = c.addDest(svc, { addr: d0.daddr, port: 8080, weight: 5 });
  assert.is(again, d0.destId, "the same destination object");
  assert.is(c.dest(again).conns, 1n, "its stats survived");
  assert.is(c.dest(again).weight, 5);
  // deleted again and left alone: the trash timer (every 60 s) frees it once idle for 120 s
  c.deleteDest(svc, d0.daddr, 8080);
  for (let t = 120000; t <= 420000; t += 10000) c.advance(t);
  const fresh = c.addDest(svc, { addr: d0.daddr, port: 8080, weight: 1 });
  assert.is(c.dest(fresh).conns, 0n, "a new destination after the trash period");
});

test("upper threshold sets OVERLOAD at bind; it clears below 75% when no lower threshold", async () => {
  const c = await Core.load({ debug: true, connCapacity: 64 });
  const svc = c.addService({ proto: "tcp", addr: VIP, port: 80, scheduler: "rr" });
  const a = c.addDest(svc, { addr: "10.1.0.1", port: 80, weight: 1, upperThreshold: 4 });
  const b = c.addDest(svc, { addr: "10.1.0.2", port: 80, weight: 1 });
  const picks: string[] = [];
  for (let i = 0; i < 12; i++)
    picks.push(
      c.conn(c.packet("in", "tcp", "192.168.1.5", 5000 + i, VIP, 80, { flags: SYN, now: 0 }).conn)!.daddr.slice(-1),
    );
  // list order b, a; a takes 4 then is OVERLOADed and skipped
  assert.equal(picks.join(""), "212121212222");
  assert.ok(c.dest(a).overloaded);
  assert.is(c.dest(a).activeConns, 4);
  assert.ok(b >= 0);
  // expire a's connections one by one: 3 of 4 is 75%: still overloaded; 2 clears (2*4 < 4*3)
  const aPorts = c
    .conns()
    .filter((x) => x.destId === a)
    .map((x) => x.cport)
    .sort();
  assert.equal(aPorts, [5001, 5003, 5005, 5007]);
  // ACK then RST moves a connection to CLOSE (10 s), so expiry order is controlled (a RST in SYN_RECV
  // keeps SYN_RECV, as the kernel's table says)
  c.packet("in", "tcp", "192.168.1.5", 5001, VIP, 80, { flags: RST, now: 1 });
  assert.is(c.conns().find((x) => x.cport === 5001)!.state, "SYN_RECV");
  c.packet("in", "tcp", "192.168.1.5", 5001, VIP, 80, { flags: ACK, now: 1 });
  c.packet("in", "tcp", "192.168.1.5", 5001, VIP, 80, { flags: RST, now: 1 });
  c.advance(11001);
  assert.is(c.dest(a).activeConns, 3);
  assert.ok(c.dest(a).overloaded, "3 of 4 is not below 75%");
  c.packet("in", "tcp", "192.168.1.5", 5003, VIP, 80, { flags: ACK, now: 11002 });
  c.packet("in", "tcp", "192.168.1.5", 5003, VIP, 80, { flags: RST, now: 11002 });
  c.advance(21002);
  assert.is(c.dest(a).activeConns, 2);
  assert.not.ok(c.dest(a).overloaded, "2 of 4 is below 75%");
});

test("IPv6 connections and replies", async () => {
  const c = await Core.load({ debug: true, connCapacity: 64 });
  const svc = c.addService({ proto: "tcp", addr: "fd00::1", port: 443, scheduler: "rr" });
  c.addDest(svc, { addr: "fd00:1::2", port: 8443, weight: 1 });
  const r = c.packet("in", "tcp", "fd00:2::9", 40000, "fd00::1", 443, { flags: SYN, now: 0 });
  const conn = c.conn(r.conn)!;
  assert.is(conn.caddr, "fd00:2::9");
  assert.is(conn.daddr, "fd00:1::2");
  assert.is(c.packet("out", "tcp", "fd00:1::2", 8443, "fd00:2::9", 40000, { flags: SYNACK, now: 1 }).conn, r.conn);
  assert.is(c.packet("in", "tcp", "fd00:2::9", 40000, "fd00::2", 443, { flags: SYN, now: 0 }).verdict, "not-ours");
});

test("SCTP: INIT, INIT-ACK, COOKIE-ECHO, COOKIE-ACK reach ESTABLISHED (active); ABORT closes", async () => {
  const c = await Core.load({ debug: true, connCapacity: 64 });
  const svc = c.addService({ proto: "sctp", addr: VIP, port: 3868, scheduler: "rr" });
  const d = c.addDest(svc, { addr: "10.1.0.1", port: 3868, weight: 1 });
  assert.is(
    c.packet("in", "sctp", "192.168.1.5", 3868, VIP, 3868, { flags: 0, now: 0 }).verdict,
    "not-ours",
    "only INIT creates",
  );
  const r = c.packet("in", "sctp", "192.168.1.5", 3868, VIP, 3868, { flags: 1, now: 0 });
  assert.is(c.conn(r.conn)!.state, "INIT1");
  c.packet("out", "sctp", "10.1.0.1", 3868, "192.168.1.5", 3868, { flags: 2, now: 1 });
  assert.is(c.conn(r.conn)!.state, "C-SENT");
  c.packet("in", "sctp", "192.168.1.5", 3868, VIP, 3868, { flags: 10, now: 2 });
  assert.is(c.conn(r.conn)!.state, "C-REPLIED");
  c.packet("out", "sctp", "10.1.0.1", 3868, "192.168.1.5", 3868, { flags: 11, now: 3 });
  assert.is(c.conn(r.conn)!.state, "ESTABLISHED");
  assert.is(c.dest(d).activeConns, 1);
  c.packet("in", "sctp", "192.168.1.5", 3868, VIP, 3868, { flags: 6, now: 4 });
  assert.is(c.conn(r.conn)!.state, "CLOSED");
  assert.is(c.dest(d).activeConns, 0);
});

test("timer wheel: thousands of entries over many slots and rounds expire exactly when due, at any step", async () => {
  // An independent model: each UDP flow is due at its last packet's time + the UDP timeout then in force
  // (20 s, 300 s, or 2 h: longer than one turn of the wheel). After every advance(now) the table must
  // hold exactly the flows not yet due, and advance must say how many it freed.
  const { c } = await setup({ proto: "udp", cap: 65536 });
  let seed = 12345;
  const rnd = () => {
    seed = (seed * 1103515245 + 12345) >>> 0;
    return seed / 4294967296;
  };
  const due = new Map<number, number>(); // flow number -> expiry (ms)
  let now = 0,
    nextFlow = 0,
    udp = 300,
    expired = 0;
  for (let step = 0; step < 3000; step++) {
    const r = rnd();
    now +=
      r < 0.02
        ? 1_100_000 + Math.floor(rnd() * 500_000)
        : r < 0.3
          ? Math.floor(rnd() * 20_000)
          : Math.floor(rnd() * 64);
    let freed = 0;
    for (const [f, at] of due)
      if (at <= now) {
        due.delete(f);
        freed++;
      }
    assert.is(c.advance(now), freed, `step ${step}: freed at ${now} ms`);
    expired += freed;
    assert.is(c.connStats().live, due.size, `step ${step}: live at ${now} ms`);
    if (rnd() < 0.05) {
      udp = [20, 300, 7200][Math.floor(rnd() * 3)];
      c.setTimeouts(0, 0, udp);
    }
    for (let k = Math.floor(rnd() * (rnd() < 0.1 ? 300 : 12)); k > 0; k--) {
      const old = due.size && rnd() < 0.4 ? [...due.keys()][Math.floor(rnd() * due.size)] : undefined;
      const f = old ?? nextFlow++;
      const res = c.packet("in", "udp", `192.168.${(f >> 8) & 255}.${f & 255}`, 1024 + (f >> 16), VIP, 80, { now });
      assert.is(res.isNew, old === undefined);
      due.set(f, now + udp * 1000);
    }
  }
  assert.ok(expired > 5000 && nextFlow > 5000, `${expired} expired of ${nextFlow} flows`);
});

test(
  "timer wheel: a full table filed in one slot, some moved out of its middle, expires exactly, round " + "after round",
  async () => {
    // A slot keeps its entries in chunks of 15 and an entry leaving takes the slot's last into its place;
    // every chunk must come back to the pool (the debug build asserts the pool never runs dry).
    const { c } = await setup({ proto: "udp", cap: 4096 });
    const addr = (i: number) => `192.168.${i >> 8}.${i & 255}`;
    for (let round = 0; round < 6; round++) {
      const t0 = 1000 + round * 1_000_000,
        moved = Math.ceil(4096 / (round + 2));
      for (let i = 0; i < 4096; i++)
        assert.ok(c.packet("in", "udp", addr(i), 2000 + round, VIP, 80, { now: t0 }).isNew);
      assert.is(c.connStats().refusedFull, 0, `round ${round}: the table took all 4096`);
      // every (round+2)th flow sends again 10 s later: its entry leaves the crowded slot for a later one
      for (let i = 0; i < 4096; i += round + 2)
        assert.not.ok(c.packet("in", "udp", addr(i), 2000 + round, VIP, 80, { now: t0 + 10_000 }).isNew);
      assert.is(c.advance(t0 + 299_999), 0, `round ${round}: nothing due before 300 s`);
      assert.is(c.advance(t0 + 300_000), 4096 - moved, `round ${round}: the flows left in the slot`);
      assert.is(c.connStats().live, moved);
      assert.is(c.advance(t0 + 310_000), moved, `round ${round}: the moved flows`);
      assert.is(c.connStats().live, 0);
    }
  },
);

test("one million connections fit in a table sized for them", async () => {
  const c = await Core.load({ connCapacity: 1 << 20 });
  const svc = c.addService({ proto: "udp", addr: VIP, port: 53, scheduler: "rr" });
  c.addDest(svc, { addr: "10.1.0.1", port: 53, weight: 1 });
  c.addDest(svc, { addr: "10.1.0.2", port: 53, weight: 1 });
  const n = 1_000_000;
  for (let i = 0; i < n; i++) {
    const a = `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`;
    c.packet("in", "udp", a, 1024 + (i % 50000), VIP, 53, { now: 0 });
  }
  const s = c.connStats();
  assert.is(s.live, n);
  assert.is(s.refusedFull, 0);
  const ds = c.service(svc).dests;
  assert.is(ds[0].inactConns + ds[1].inactConns, n);
  assert.is(c.advance(300000), n);
});

const orphanFreesPort =
  "expireOrphan: a flow whose destination was deleted mid-close no longer refuses a reused source port";
test(orphanFreesPort, async () => {
  const { c, svc } = await setup({
    dests: [
      ["10.1.0.1", 1],
      ["10.1.0.2", 1],
    ],
  });
  const open = (port: number, now: number) => {
    const r = c.packet("in", "tcp", "192.168.1.5", port, VIP, 80, { flags: SYN, now });
    c.packet("in", "tcp", "192.168.1.5", port, VIP, 80, { flags: ACK, now: now + 1 });
    return r;
  };
  const r = open(6000, 1000);
  const d = c.conn(r.conn)!.daddr;
  c.deleteDest(svc, d, 8080);
  // the flow drains: the real server's FIN still goes out (the reply path does not look at the
  // destination), the client's FIN is dropped (expire_nodest_conn=0), so the entry stops in FIN_WAIT (2 min)
  assert.is(c.packet("out", "tcp", d, 8080, "192.168.1.5", 6000, { flags: FIN, now: 1010 }).verdict, "forward");
  assert.is(c.packet("in", "tcp", "192.168.1.5", 6000, VIP, 80, { flags: FIN, now: 1011 }).verdict, "drop");
  assert.is(c.conn(r.conn)!.state, "FIN_WAIT");
  // a new connection from the same source port hits that entry and is refused, as in the kernel
  const refused = c.packet("in", "tcp", "192.168.1.5", 6000, VIP, 80, { flags: SYN, now: 1020 });
  assert.equal([refused.verdict, refused.reason], ["drop", "destination deleted"]);
  // an entry whose destination is alive is never freed this way
  const live = open(6001, 1030);
  assert.not.ok(c.expireOrphan(live.conn, 1031));
  assert.ok(c.conn(live.conn));
  // the proxy frees the orphan when its sockets close; the reused port is then scheduled afresh
  assert.ok(c.expireOrphan(r.conn, 1040));
  assert.not.ok(c.expireOrphan(r.conn, 1041), "already free");
  const again = c.packet("in", "tcp", "192.168.1.5", 6000, VIP, 80, { flags: SYN, now: 1050 });
  assert.is(again.verdict, "forward");
  assert.ok(again.isNew);
  assert.is(c.conn(again.conn)!.daddr, d === "10.1.0.1" ? "10.1.0.2" : "10.1.0.1");
});

test.run();
