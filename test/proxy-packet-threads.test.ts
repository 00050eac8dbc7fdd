// Packet mode on N I/O threads (`--workers N --mode packet`, native/packet/io_threads.h) end to end: the same
// namespaces as test/proxy-packet.test.ts (a client, the balancer, two backend namespaces over veth; real TCP
// and UDP clients and servers, real routing), the proxy run with 2 I/O threads and, for the decisions, with
// one. Needs root, ip netns, nft, ethtool and the native addon; anything missing is a counted SKIP.
import { test } from "uvu";
import * as assert from "uvu/assert";
import type { ChildProcess } from "node:child_process";
import { mkdirSync, rmSync, writeFileSync } from "node:fs";
import { ControlClient } from "../src/proxy/control.ts";
import { loadPacketAddon } from "../src/proxy/packet.ts";
import { agent, type Agent } from "./fixtures/proxy/netns.ts";
import { guardedBefore, needs, skip } from "./helpers/skip.ts";
import {
  ip,
  nsx,
  spawnPacketProxy,
  vethNet,
  addrAdd,
  twoBackendNames,
  stopPacketProxy,
  bigDatagrams,
  echoIntact,
  openAll,
} from "./helpers/veth-net.ts";
import { masqServer } from "./helpers/real-server.ts";

const why =
  needs(["ip", "nft", "ethtool"], "apt-get install -y iproute2 nftables ethtool") ||
  (loadPacketAddon().error
    ? `the native packet addon is not built (npm install builds it): ${loadPacketAddon().error}`
    : "");

const { NS, IF } = twoBackendNames("wpt");
const A = {
  client: "10.233.1.2",
  lbc: "10.233.1.1",
  lb1: "10.233.2.1",
  lb2: "10.233.3.1",
  vip: "10.233.100.1",
  snat: "10.233.200.1",
  be: ["10.233.2.11", "10.233.2.12", "10.233.3.13"],
  client6: "fd33:1::2",
  lbc6: "fd33:1::1",
  lb16: "fd33:2::1",
  vip6: "fd33:100::1",
  snat6: "fd33:200::1",
  be6: "fd33:2::11",
  // more client addresses: a fragment's fanout hash has no ports, so only addresses spread fragments
  clients: ["10.233.1.3", "10.233.1.4", "10.233.1.5", "10.233.1.6"],
  clients6: ["fd33:1::3", "fd33:1::4", "fd33:1::5", "fd33:1::6"],
  // and 16 more for the fwmark queues, which NFQUEUE --queue-balance also spreads by addresses alone
  many: Array.from({ length: 16 }, (_, i) => `10.233.1.${100 + i}`),
  fwmVip: "10.233.100.7",
  fwmVip6: "fd33:100::7",
};
const DIR = `/tmp/wpt-test-${process.pid}`;
const CTL = `${DIR}/ctl.sock`;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const net = vethNet(Object.values(NS));

function setup() {
  net.setup([
    [NS.client, IF.cl, NS.lb, IF.lc],
    [NS.lb, IF.l1, NS.be1, IF.b1],
    [NS.lb, IF.l2, NS.be2, IF.b2],
  ]);
  addrAdd(NS.client, `${A.client}/24`, IF.cl);
  ip(["-n", NS.client, "route", "add", "default", "via", A.lbc]);
  addrAdd(NS.lb, `${A.lbc}/24`, IF.lc);
  addrAdd(NS.lb, `${A.lb1}/24`, IF.l1);
  addrAdd(NS.lb, `${A.lb2}/24`, IF.l2);
  addrAdd(NS.be1, `${A.be[0]}/24`, IF.b1);
  addrAdd(NS.be1, `${A.be[1]}/24`, IF.b1);
  addrAdd(NS.be2, `${A.be[2]}/24`, IF.b2);
  ip(["-n", NS.be1, "route", "add", "default", "via", A.lb1]);
  ip(["-n", NS.be2, "route", "add", "default", "via", A.lb2]);
  addrAdd(NS.client, `${A.client6}/64`, IF.cl);
  for (const a of A.clients) addrAdd(NS.client, `${a}/24`, IF.cl);
  for (const a of A.clients6) addrAdd(NS.client, `${a}/64`, IF.cl);
  for (const a of A.many) addrAdd(NS.client, `${a}/24`, IF.cl);
  addrAdd(NS.lb, `${A.lbc6}/64`, IF.lc);
  addrAdd(NS.lb, `${A.lb16}/64`, IF.l1);
  addrAdd(NS.be1, `${A.be6}/64`, IF.b1);
  ip(["-n", NS.client, "-6", "route", "add", "default", "via", A.lbc6]);
  ip(["-n", NS.be1, "-6", "route", "add", "default", "via", A.lb16]);
  // as in proxy-packet.test.ts: no 64 KiB TSO/GSO frames from the senders' veth
  for (const [ns, dev] of [
    [NS.client, IF.cl],
    [NS.be1, IF.b1],
    [NS.be2, IF.b2],
  ])
    nsx(ns, ["ethtool", "-K", dev, "tso", "off", "gso", "off"]);
}

let client: Agent, be1: Agent, be2: Agent;

// The proxy with `workers` I/O threads (1: the one-thread path), its control client, and everything it printed.
async function startProxy(
  workers: number,
  env: NodeJS.ProcessEnv = {},
  packetIo = "ring",
  moreServices = "",
): Promise<{ p: ChildProcess; ctl: ControlClient; log: () => string }> {
  writeFileSync(
    `${DIR}/p.yaml`,
    `proxy:
  control: ${CTL}
  vipInterface: lo
  tick: 100
  metrics: ${A.lbc}:9464
  workers: ${workers}
  localAddresses: [${A.snat}, "${A.snat6}"]
services:
  - { protocol: tcp, addr: ${A.vip}, port: 80, scheduler: rr, realServers: [
      { addr: ${A.be[0]}, port: 8080 }, { addr: ${A.be[1]}, port: 8080 }, { addr: ${A.be[2]}, port: 8080 } ] }
  - { protocol: tcp, addr: ${A.vip}, port: 81, scheduler: wlc, realServers: [
      { addr: ${A.be[0]}, port: 8080, weight: 1 }, { addr: ${A.be[2]}, port: 8080, weight: 3 } ] }
  - { protocol: udp, addr: ${A.vip}, port: 53, scheduler: rr, realServers: [
      { addr: ${A.be[0]}, port: 5353 }, { addr: ${A.be[2]}, port: 5353 } ] }
  - { protocol: tcp, addr: "${A.vip6}", port: 80, scheduler: rr, realServers: [ { addr: "${A.be6}", port: 8080 } ] }
  - { protocol: udp, addr: "${A.vip6}", port: 53, scheduler: rr, realServers: [ { addr: "${A.be6}", port: 5353 } ] }
${moreServices}`,
  );
  rmSync(CTL, { force: true });
  const p = await spawnPacketProxy(NS.lb, {
    config: `${DIR}/p.yaml`,
    control: CTL,
    args: [
      ...["--interface", `${IF.lc},${IF.l1},${IF.l2}`, "--packet-io", packetIo],
      ...["--log-level", "warn", "--drain-timeout", "1"],
    ],
    env: { ...process.env, ...env },
  });
  let text = "";
  p.stdout?.on("data", (d) => (text += d));
  p.stderr?.on("data", (d) => (text += d));
  return { p, ctl: await ControlClient.connect(CTL), log: () => text };
}

async function stopProxy(run: { p: ChildProcess; ctl: ControlClient }): Promise<number | null> {
  await run.ctl.close();
  return stopPacketProxy(run.p, 5000);
}

// One fixed sequence of connections: the backend each chose, in order (rr on :80, wlc on :81, all kept open
// so wlc's counts move), and the UDP flows' spread (their first datagrams leave together, so their order at
// the core is the kernel's, not the test's: counted, not listed).
async function sequence(): Promise<{ rr: string[]; wlc: string[]; udp: Record<string, number> }> {
  const rr: any[] = await client.call("openSeq", A.vip, 80, 12, true);
  const wlc: any[] = await client.call("openSeq", A.vip, 81, 12, true);
  for (const c of [...rr, ...wlc]) assert.ok("h" in c, `connect failed: ${JSON.stringify(c)}`);
  const flows: { lport: number; replies: string[] }[] = await client.call("udpFlows", A.vip, 53, 8, 3, 400);
  const udp: Record<string, number> = {};
  for (const f of flows) {
    assert.is(f.replies.length, 3, `UDP flow from port ${f.lport}: every reply`);
    assert.is(new Set(f.replies).size, 1, `UDP flow from port ${f.lport} sticks to one backend`);
    udp[f.replies[0]] = (udp[f.replies[0]] ?? 0) + 1;
  }
  await client.call("closeAll");
  return { rr: rr.map((c) => c.backend), wlc: wlc.map((c) => c.backend), udp };
}

if (why) {
  skip(import.meta.url, "packet mode on 2 I/O threads in network namespaces (every test of this file)", why);
} else {
  guardedBefore(test, async () => {
    rmSync(DIR, { recursive: true, force: true });
    mkdirSync(DIR, { recursive: true });
    setup();
    [client, be1, be2] = await Promise.all([agent(NS.client), agent(NS.be1), agent(NS.be2)]);
    await be1.call("backend", A.be[0], 8080, "tcp");
    await be1.call("backend", A.be[1], 8080, "tcp");
    await be2.call("backend", A.be[2], 8080, "tcp");
    await be1.call("backend", A.be[0], 5353, "udp");
    await be1.call("backend", A.be6, 8080, "tcp");
    await be1.call("backend", A.be6, 5353, "udp");
    await be2.call("backend", A.be[2], 5353, "udp");
  });
  test.after(async () => {
    await Promise.all([client?.stop(), be1?.stop(), be2?.stop()]);
    net.teardown();
    rmSync(DIR, { recursive: true, force: true });
  });

  const sameAsOne = "2 I/O threads (rings, and recvmmsg/sendmmsg): each connection chooses as on one thread";
  test(sameAsOne, async () => {
    const runs: Awaited<ReturnType<typeof sequence>>[] = [];
    for (const [workers, packetIo] of [
      [1, "ring"],
      [2, "ring"],
      [2, "mmsg"],
    ] as const) {
      const run = await startProxy(workers, {}, packetIo);
      try {
        runs.push(await sequence());
        const io = findIo(await run.ctl.call("status"));
        assert.is(io.io, packetIo);
        if (workers === 1) assert.is(io.threads, undefined, "one worker: the one-thread path");
        else {
          assert.is(io.threads.length, 2);
          for (const t of io.threads) assert.ok(t.rxPackets > 0, `${packetIo}: both threads carried packets`);
        }
      } finally {
        assert.is(await stopProxy(run), 0, "a clean stop joins the threads and exits 0");
      }
    }
    const [one, ...threaded] = runs;
    for (const two of threaded) {
      assert.equal(two.rr, one.rr, "rr: the same backend for each connection in turn");
      assert.equal(two.wlc, one.wlc, "wlc: the same backend for each connection in turn");
      assert.equal(two.udp, one.udp, "UDP rr: the same spread");
    }
    assert.equal(
      one.rr.slice(0, 6),
      [...new Set(one.rr)].concat([...new Set(one.rr)]),
      "rr cycles through the three as the kernel's does",
    );
    const toBe2 = one.wlc.filter((b) => b === `${A.be[2]}:8080`).length;
    assert.is(toBe2, 9, "wlc with weights 1 and 3 over 12 kept connections: 9 to the heavier");
  });

  const manyPorts = "2 I/O threads: many source ports at once, bytes intact and in order, UDP flows, both threads busy";
  test(manyPorts, async () => {
    const run = await startProxy(2);
    try {
      await be1.call("resetCounts");
      await be2.call("resetCounts");
      const conns = await openAll(client, A.vip, 80, 48);
      assert.is(new Set(conns.map((c) => c.lport)).size, 48, "48 source ports");
      const per = new Map<string, number>();
      for (const c of conns) per.set(c.backend, (per.get(c.backend) ?? 0) + 1);
      assert.equal([...per.values()], [16, 16, 16], "rr over 48 concurrent connections: exactly 16 each");
      await echoIntact(client, conns, 256 * 1024);
      // IPv6: its own receive sockets, in fanout groups of their own
      const six = await openAll(client, A.vip6, 80, 16, "IPv6 connect");
      await echoIntact(client, six, 64 * 1024, "IPv6 connection");
      const flows: { lport: number; replies: string[] }[] = await client.call("udpFlows", A.vip, 53, 32, 5, 500);
      for (const f of flows) {
        assert.is(f.replies.length, 5, `UDP flow from ${f.lport}: every reply`);
        assert.is(new Set(f.replies).size, 1, `UDP flow from ${f.lport}: one backend`);
      }
      await client.call("closeAll");
      const io = findIo(await run.ctl.call("status"));
      assert.is(io.threads.length, 2);
      for (const [k, t] of io.threads.entries()) {
        assert.ok(t.rxPackets > 100, `thread ${k} received packets: ${JSON.stringify(t)}`);
        assert.ok(t.txPackets > 100, `thread ${k} sent packets: ${JSON.stringify(t)}`);
        assert.ok(t.running && t.failures === 0, `thread ${k} ran without failing`);
      }
      assert.is(io.rxPackets, io.threads[0].rxPackets + io.threads[1].rxPackets, "the sum is the threads'");
      // the metrics, from the client's side (the balancer's own address: the kernel's, not a service's)
      const metrics: string = await client.call("fetchText", `http://${A.lbc}:9464/metrics`);
      for (const k of [0, 1]) assert.match(metrics, `wasmvs_proxy_packet_thread_received_total{thread="${k}"}`);
    } finally {
      assert.is(await stopProxy(run), 0);
    }
  });

  test("an I/O thread that fails is counted, logged and restarted; the other's flows go on", async () => {
    const run = await startProxy(2, { WASMVS_PACKET_THREAD_FAULT: "1:50" });
    try {
      const held = await openAll(client, A.vip, 80, 16);
      // enough packets on both threads for thread 1 to reach its fault
      await client.call(
        "bulkEcho",
        held.map((c) => c.h),
        16 * 1024,
      );
      let io = findIo(await run.ctl.call("status"));
      for (let i = 0; i < 50 && io.threadFailures === 0; i++) {
        await sleep(100);
        io = findIo(await run.ctl.call("status"));
      }
      assert.is(io.threadFailures, 1, JSON.stringify(io.threads));
      assert.is(io.threadRestarts, 1);
      assert.ok(io.threads[1].running, "restarted");
      assert.match(io.threads[1].lastError, "injected fault");
      assert.match(run.log(), "packet I/O thread failed");
      // new connections are served on both threads, and the held ones still echo (a batch lost in the failure
      // is retransmitted by TCP)
      const more = await openAll(client, A.vip, 80, 24, "connect after the restart");
      await echoIntact(client, [...held, ...more], 64 * 1024);
      await client.call("closeAll");
      io = findIo(await run.ctl.call("status"));
      assert.ok(io.threads[1].rxPackets > io.threads[1].droppedOnFailure, "thread 1 carries packets again");
    } finally {
      assert.is(await stopProxy(run), 0, "a clean stop after a restart");
    }
  });

  stoppedForGood();
  fragmentsAcrossThreads();
  fwmarkOnThreads();
}

// (declared here, registered above only when the prerequisites are there)
function fragmentsAcrossThreads(): void {
  // PACKET_FANOUT_HASH hashes a fragment (the first as well as the later ones) by addresses and protocol
  // alone, so flows from one client address share a thread: five client addresses per family spread them
  const name = "2 I/O threads: fragmented UDP datagrams of many flows (IPv4, IPv6) arrive whole and come back whole";
  test(name, async () => {
    for (const packetIo of ["ring", "mmsg"]) {
      const run = await startProxy(2, {}, packetIo);
      try {
        const st0: any = await run.ctl.call("status");
        const io0 = findIo(st0);
        let datagrams = 0;
        for (const [fam, srcs, vip] of [
          ["IPv4", [A.client, ...A.clients], A.vip],
          ["IPv6", [A.client6, ...A.clients6], A.vip6],
        ] as const) {
          const got = bigDatagrams(NS.client, [...srcs], vip, 8, 4);
          const what = `${packetIo}, ${fam}: ${JSON.stringify(got)}`;
          assert.is(got.ok, got.sent, `every datagram reached a backend whole and its echo came back whole: ${what}`);
          assert.equal(got.bad, [], `no echo cut short or mixed: ${what}`);
          assert.is(got.unsticky, 0, `each flow kept its backend: ${what}`);
          datagrams += got.sent;
        }
        const st1: any = await run.ctl.call("status");
        const io1 = findIo(st1);
        // 4,000 bytes over 1500-byte links: 3 fragments each way (IPv4 pieces of 1480 bytes, IPv6 of 1448), of
        // which 2 later ones to the backend and 2 back, each forwarded by its first fragment's connection
        assert.is(st1.fragments - st0.fragments, 4 * datagrams, `${packetIo}: later fragments by their first's flow`);
        assert.is(st1.verdicts.forward - st0.verdicts.forward, 6 * datagrams, `${packetIo}: every fragment forwarded`);
        assert.is((st1.drops.fragment ?? 0) - (st0.drops.fragment ?? 0), 0, `${packetIo}: no fragment dropped`);
        for (const k of [0, 1]) {
          const rx = io1.threads[k].rxPackets - io0.threads[k].rxPackets;
          assert.ok(rx >= 6 * 8, `${packetIo}: thread ${k} carried fragmented datagrams: ${rx} packets`);
        }
      } finally {
        assert.is(await stopProxy(run), 0);
      }
    }
  });
}

// (declared here, registered above only when the prerequisites are there)
function stoppedForGood(): void {
  test("a thread that keeps failing is stopped for good; the fanout moves its flows to the other", async () => {
    // with a fwmark service, so each thread has a netfilter queue (22355 + k) that stopping closes
    const fwm = `  - { fwmark: 7, scheduler: rr, realServers: [ { addr: "${A.be[0]}", port: 8080 } ] }\n`;
    const run = await startProxy(2, { WASMVS_PACKET_THREAD_FAULT: "1:20:5" }, "ring", fwm);
    try {
      let io = findIo(await run.ctl.call("status"));
      for (let i = 0; i < 20 && io.threadFailures < 5; i++) {
        const conns: any[] = await client.call("openPar", A.vip, 80, 16);
        await client.call(
          "bulkEcho",
          conns.filter((c) => "h" in c).map((c) => c.h),
          8 * 1024,
          3000,
        );
        await client.call("closeAll");
        io = findIo(await run.ctl.call("status"));
      }
      assert.is(io.threadFailures, 5, JSON.stringify(io.threads));
      assert.is(io.threadRestarts, 4, "restarted 4 times, then stopped");
      assert.is(io.threads[1].running, false);
      assert.ok(io.threads[0].running);
      assert.match(run.log(), "not restarted: it failed 5 times in a minute");
      // its queue is closed (--queue-bypass gives its share of marked flows to the kernel); the other's stays
      const queues = nsx(NS.lb, ["cat", "/proc/net/netfilter/nfnetlink_queue"]);
      assert.match(queues, /^\s*22355\s/m, "thread 0's queue is bound");
      assert.not.match(queues, /^\s*22356\s/m, `thread 1's queue is closed: ${queues}`);
      assert.equal(
        io.threads.map((t: any) => t.queueNum),
        [22355, -1],
      );
      const rx0 = io.threads[0].rxPackets;
      const conns = await openAll(client, A.vip, 80, 24, "connect with one thread left");
      await echoIntact(client, conns, 64 * 1024);
      await client.call("closeAll");
      const after = findIo(await run.ctl.call("status"));
      assert.ok(after.threads[0].rxPackets > rx0, "the remaining thread carries the new flows");
    } finally {
      assert.is(await stopProxy(run), 0, "a clean stop with a thread stopped for good");
    }
  });
}

// TCP connections and UDP flows from each client address in `srcs` to vip (tcpPer connections of a
// 16 KiB echo each to :80, udpPer flows of 5 datagrams each to :53, one after another), and what came of them:
// echoes intact, the backend of each connection, answers per datagram.
function markedClients(srcs: string[], vip: string, tcpPer: number, udpPer: number) {
  const py = `import socket, json, time
srcs, vip, tcpPer, udpPer = ${JSON.stringify(srcs)}, "${vip}", ${tcpPer}, ${udpPer}
fam = socket.AF_INET6 if ":" in vip else socket.AF_INET
tcp, udp = [], []
for a in srcs:
    for k in range(tcpPer):
        r = {"src": a}
        try:
            s = socket.socket(fam, socket.SOCK_STREAM)
            s.settimeout(3)
            s.bind((a, 0))
            s.connect((vip, 80))
            f = s.makefile("rb")
            r["backend"] = f.readline().decode().split()[1]
            data = b"".join(b"%s %d %06d\\n" % (a.encode(), k, i) for i in range(16384 // 24))
            s.sendall(data)
            got = f.read(len(data))
            r["ok"] = got == data
            s.close()
        except OSError as e: r["error"] = str(e)
        tcp.append(r)
    for k in range(udpPer):
        s = socket.socket(fam, socket.SOCK_DGRAM)
        s.settimeout(1)
        s.bind((a, 0))
        s.connect((vip, 53))
        answers, backends = 0, set()
        for i in range(5):
            s.send(b"q%d" % i)
            try:
                d = s.recv(2048)
                if d.endswith(b" q%d" % i): answers += 1; backends.add(d.split()[1].decode())
            except socket.timeout: pass
        s.settimeout(0.2)
        try:
            while True: s.recv(2048); answers += 1000
        except socket.timeout: pass
        udp.append({"src": a, "answers": answers, "backends": sorted(backends)})
print(json.dumps({"tcp": tcp, "udp": udp}))
`;
  return JSON.parse(nsx(NS.client, ["python3", "-c", py])) as {
    tcp: { src: string; backend?: string; ok?: boolean; error?: string }[];
    udp: { src: string; answers: number; backends: string[] }[];
  };
}

function fwmarkOnThreads(): void {
  const name =
    "2 I/O threads, fwmark services: each thread reads a netfilter queue of its own (--queue-balance), both " +
    "carry marked packets, TCP and UDP (IPv4, IPv6) served intact, rr exact over one table";
  test(name, async () => {
    const rs = (addr: string, port: number) => `{ addr: "${addr}", port: ${port} }`;
    // one fwmark service from the file (the start path), two more at run time (the control socket's)
    const run = await startProxy(
      2,
      {},
      "ring",
      `  - { fwmark: 7, scheduler: rr, realServers: [ ${rs(A.be[0], 8080)}, ${rs(A.be[2], 8080)} ] }\n`,
    );
    // the operator marks with nftables, before mangle (-150), where wasmvs's WASMVS-FWMARK jump is
    nsx(
      NS.lb,
      ["nft", "-f", "-"],
      `table inet wpt_mark {
  chain pre {
    type filter hook prerouting priority -160;
    ip daddr ${A.fwmVip} tcp dport 80 meta mark set 7
    ip daddr ${A.fwmVip} udp dport 53 meta mark set 9
    ip6 daddr ${A.fwmVip6} udp dport 53 meta mark set 8
  }
}
`,
    );
    try {
      const dest = (addr: string, port: number) => masqServer(addr, port);
      await run.ctl.call("addService", {
        fwmark: 9,
        scheduler: "rr",
        realServers: [dest(A.be[0], 5353), dest(A.be[2], 5353)],
      });
      await run.ctl.call("addService", {
        fwmark: 8,
        family: "inet6",
        scheduler: "rr",
        realServers: [dest(A.be6, 5353)],
      });
      for (const cmd of ["iptables", "ip6tables"])
        assert.match(
          nsx(NS.lb, [cmd, "-w", "5", "-t", "mangle", "-S", "WASMVS-FWMARK"]),
          "--queue-balance 22355:22356",
          `${cmd}: the marked packets balanced over the two threads' queues`,
        );
      const udpAt = async () =>
        ({ ...(await be1.call<any>("counts")), ...(await be2.call<any>("counts")) }) as Record<string, any>;
      const before = await udpAt();
      const v4 = markedClients(A.many, A.fwmVip, 2, 2);
      for (const c of v4.tcp) assert.ok(c.ok, `TCP through fwmark 7 from ${c.src}: ${JSON.stringify(c)}`);
      const per: Record<string, number> = {};
      for (const c of v4.tcp) per[c.backend!] = (per[c.backend!] ?? 0) + 1;
      assert.equal(
        per,
        { [`${A.be[0]}:8080`]: 16, [`${A.be[2]}:8080`]: 16 },
        "rr over 32 connections one after another: 16 each, one table",
      );
      const v6 = markedClients([A.client6, ...A.clients6], A.fwmVip6, 0, 4);
      for (const f of [...v4.udp, ...v6.udp]) {
        assert.is(f.answers, 5, `UDP from ${f.src}: 5 answers, none twice: ${JSON.stringify(f)}`);
        assert.is(f.backends.length, 1, `UDP from ${f.src}: one backend`);
      }
      const after = await udpAt();
      const udpSeen = (k: string) => after[k].udpPackets - (before[k]?.udpPackets ?? 0);
      assert.is(
        udpSeen(`udp ${A.be[0]}:5353`) + udpSeen(`udp ${A.be[2]}:5353`) + udpSeen(`udp [${A.be6}]:5353`),
        (v4.udp.length + v6.udp.length) * 5,
        "each datagram seen once by a real server, though each came twice (tap and queue)",
      );
      const st: any = await run.ctl.call("status");
      const io = findIo(st);
      assert.is(io.queueNum, 22355, "the first queue");
      assert.equal(
        io.threads.map((t: any) => t.queueNum),
        [22355, 22356],
        "thread k reads queue 22355 + k",
      );
      for (const [k, t] of io.threads.entries())
        assert.ok(t.rxQueuePackets > 20, `thread ${k} read marked packets from its queue: ${t.rxQueuePackets}`);
      assert.is(io.rxQueuePackets, io.threads[0].rxQueuePackets + io.threads[1].rxQueuePackets, "the sum");
      assert.is(io.rxQueueOversize + io.rxQueueOverruns + io.rxQueueErrors, 0);
      assert.is(st.drops?.queue_full ?? 0, 0, "neither kernel queue overflowed");
    } finally {
      nsx(NS.lb, ["nft", "delete", "table", "inet", "wpt_mark"]);
      assert.is(await stopProxy(run), 0);
    }
    assert.not.match(nsx(NS.lb, ["iptables", "-w", "5", "-t", "mangle", "-S", "PREROUTING"]), "WASMVS-FWMARK");
  });
}

// The packet I/O stats in a status reply, wherever the status puts them.
function findIo(st: any): any {
  const seen = new Set<unknown>();
  const walk = (o: any): any => {
    if (!o || typeof o !== "object" || seen.has(o)) return undefined;
    seen.add(o);
    if ("rxPackets" in o && "txPackets" in o && "io" in o) return o;
    for (const v of Object.values(o)) {
      const r = walk(v);
      if (r) return r;
    }
    return undefined;
  };
  return walk(st);
}

test.run();
