// Packet mode with AF_XDP (`--packet-io xdp`) end to end: `wasmvs proxy --mode packet` in a balancer namespace,
// a client namespace and a backend namespace over veth, real TCP and UDP clients and servers over IPv4 and
// IPv6, the XDP program checked on the interface with `ip link` while it runs and gone after. Needs root,
// ip netns, ethtool, python3 and the addon built with AF_XDP (libxdp-dev, libbpf-dev); anything missing is a
// counted SKIP naming it (test/helpers/skip.ts), which fails under CI=true.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdirSync, rmSync, writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { ControlClient } from "../src/proxy/control.ts";
import { loadPacketAddon } from "../src/proxy/packet.ts";
import { agent, type Agent } from "./fixtures/proxy/netns.ts";
import { guardedBefore, needs, skip } from "./helpers/skip.ts";
import { nsx, vethNet, addrAdd, stopPacketProxy, bigDatagrams, echoIntact, openAll } from "./helpers/veth-net.ts";

const { addon, error } = loadPacketAddon();
const why =
  needs(["ip", "nft", "ethtool", "python3"], "apt-get install -y iproute2 nftables ethtool python3") ||
  (error ? `the native packet addon is not built (npm install builds it): ${error}` : "") ||
  (addon?.xdp
    ? ""
    : "the packet addon was built without AF_XDP: apt-get install -y libxdp-dev libbpf-dev, then " +
      "node native/packet/build.mjs");

const sfx = (process.pid % 46656).toString(36);
const NS = { client: `wpx${sfx}c`, lb: `wpx${sfx}l`, be: `wpx${sfx}b` };
const IF = { cl: `wpx${sfx}cl`, lc: `wpx${sfx}lc`, lb: `wpx${sfx}lb`, bl: `wpx${sfx}bl` };
const A = {
  client: "10.234.1.2",
  lbc: "10.234.1.1",
  lbb: "10.234.2.1",
  vip: "10.234.100.1",
  snat: "10.234.200.1",
  be: ["10.234.2.11", "10.234.2.12"],
  client6: "fd34:1::2",
  lbc6: "fd34:1::1",
  lbb6: "fd34:2::1",
  vip6: "fd34:100::1",
  snat6: "fd34:200::1",
  be6: "fd34:2::11",
};
const DIR = `/tmp/wpx-test-${process.pid}`;
const CTL = `${DIR}/ctl.sock`;
const ROOT = fileURLToPath(new URL("..", import.meta.url));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const net = vethNet(Object.values(NS));

function setup() {
  // two queues each way on every link: AF_XDP has a socket per receive queue, and with I/O threads each queue
  // is one thread's (the senders' veth spread flows over them by hash)
  net.setup([
    [NS.client, IF.cl, NS.lb, IF.lc, 2],
    [NS.lb, IF.lb, NS.be, IF.bl, 2],
  ]);
  addrAdd(NS.client, `${A.client}/24`, IF.cl);
  addrAdd(NS.client, `${A.client6}/64`, IF.cl);
  nsx(NS.client, ["ip", "route", "add", "default", "via", A.lbc]);
  nsx(NS.client, ["ip", "-6", "route", "add", "default", "via", A.lbc6]);
  addrAdd(NS.lb, `${A.lbc}/24`, IF.lc);
  addrAdd(NS.lb, `${A.lbc6}/64`, IF.lc);
  addrAdd(NS.lb, `${A.lbb}/24`, IF.lb);
  addrAdd(NS.lb, `${A.lbb6}/64`, IF.lb);
  for (const a of A.be) addrAdd(NS.be, `${a}/24`, IF.bl);
  addrAdd(NS.be, `${A.be6}/64`, IF.bl);
  nsx(NS.be, ["ip", "route", "add", "default", "via", A.lbb]);
  nsx(NS.be, ["ip", "-6", "route", "add", "default", "via", A.lbb6]);
  // As in proxy-packet.test.ts, no 64 KiB segments from the senders' veth (their checksums stay left to offload)
  for (const [ns, dev] of [
    [NS.client, IF.cl],
    [NS.be, IF.bl],
  ])
    nsx(ns, ["ethtool", "-K", dev, "tso", "off", "gso", "off"]);
}

let proxy: ChildProcess | undefined;
let proxyLog = "";
let client: Agent, be: Agent, ctl: ControlClient;

async function startProxy(workers = 1, env: NodeJS.ProcessEnv = {}): Promise<void> {
  writeFileSync(
    `${DIR}/p.yaml`,
    `proxy:
  control: ${CTL}
  vipInterface: lo
  tick: 100
  workers: ${workers}
  packetIo: xdp
  localAddresses: [${A.snat}, "${A.snat6}"]
services:
${[
  ["tcp", A.vip, 80, A.be, 8080],
  ["udp", A.vip, 53, A.be, 5353],
  ["tcp", A.vip6, 80, [A.be6], 8080],
  ["udp", A.vip6, 53, [A.be6], 5353],
]
  .map(
    ([proto, vip, port, rs, rsPort]) =>
      `  - { protocol: ${proto}, addr: "${vip}", port: ${port}, scheduler: rr, realServers: [ ` +
      `${(rs as string[]).map((a) => `{ addr: "${a}", port: ${rsPort} }`).join(", ")} ] }\n`,
  )
  .join("")}`,
  );
  proxy = spawn(
    "ip",
    [
      ...["netns", "exec", NS.lb, process.execPath, `${ROOT}/bin/wasmvs.js`, "proxy", "-c", `${DIR}/p.yaml`],
      ...["--mode", "packet", "--interface", `${IF.lc},${IF.lb}`, "--log-level", "warn", "--drain-timeout", "1"],
    ],
    { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, ...env } },
  );
  proxy.stdout!.on("data", (d) => (proxyLog += d));
  proxy.stderr!.on("data", (d) => (proxyLog += d));
  const end = Date.now() + 45000; // a loaded machine (VM tests beside it) can take this long to start a proxy
  while (!existsSync(CTL)) {
    if (proxy.exitCode !== null) throw new Error(`the packet-mode proxy exited (${proxy.exitCode}): ${proxyLog}`);
    if (Date.now() > end) throw new Error(`the packet-mode proxy did not open its control socket: ${proxyLog}`);
    await sleep(50);
  }
  ctl = await ControlClient.connect(CTL);
}

async function stopProxy(): Promise<number | null> {
  return proxy ? stopPacketProxy(proxy, 8000) : null;
}

// `ip -d link show DEV` in the balancer: the XDP program's line when one is attached
const xdpOn = (dev: string) =>
  /\bxdp(drv|generic)?\b|prog\/xdp/.test(nsx(NS.lb, ["ip", "-d", "link", "show", "dev", dev]));

// Python from the client namespace, through a raw socket: a TCP header whose data offset says 2 words (under
// the 5-word minimum), or an IPv4 header claiming more bytes than the frame holds (an AF_PACKET frame)
function sendBad(kind: "doff" | "short"): void {
  const mac = (ns: string, dev: string) =>
    (JSON.parse(nsx(ns, ["ip", "-j", "link", "show", dev]))[0].address as string).replace(/:/g, "");
  const py = `import socket, struct
src, dst = socket.inet_aton("${A.client}"), socket.inet_aton("${A.vip}")
tcp = struct.pack("!HHIIBBHHH", 40999, 80, 1, 0, (2 if "${kind}" == "doff" else 5) << 4, 0x02, 65535, 0, 0)
ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 40 if "${kind}" == "doff" else 200, 0, 0, 64, 6, 0, src, dst)
if "${kind}" == "doff":
    s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
    s.sendto(ip + tcp, ("${A.vip}", 0))
else:
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0800))
    s.bind(("${IF.cl}", 0x0800))
    s.send(bytes.fromhex("${mac(NS.lb, IF.lc)}${mac(NS.client, IF.cl)}0800") + ip + tcp)
`;
  nsx(NS.client, ["python3", "-c", py]);
}

// An ICMP/ICMPv6 echo request from the client namespace (raw socket): "reply" when the answer came in 2 s
function echo(to: string): string {
  const v6 = to.includes(":");
  const py = `import socket, struct, time
v6 = ${v6 ? "True" : "False"}
s = socket.socket(socket.AF_INET6 if v6 else socket.AF_INET, socket.SOCK_RAW, 58 if v6 else 1)
s.settimeout(0.2)
def csum(b):
    x = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while x >> 16: x = (x & 0xffff) + (x >> 16)
    return ~x & 0xffff
req = struct.pack("!BBHHH", 128 if v6 else 8, 0, 0, 4242, 1) + b"wasmvs-xdp-echo!"
if not v6: req = req[:2] + struct.pack("!H", csum(req)) + req[4:]   # the kernel sums ICMPv6 itself
s.sendto(req, ("${to}", 0))
end = time.time() + 2
while time.time() < end:
    try: b = s.recv(2048)
    except socket.timeout: continue
    if not v6: b = b[(b[0] & 15) * 4:]
    if b[0] == (129 if v6 else 0) and b[4:6] == struct.pack("!H", 4242):
        print("reply"); break
else: print("none")
`;
  return nsx(NS.client, ["python3", "-c", py]).trim();
}

async function dropsAfter(reason: string, send: () => void): Promise<{ dropped: number; forwarded: number }> {
  const before: any = await ctl.call("status");
  send();
  let after: any = before;
  for (let i = 0; i < 40 && (after.drops[reason] ?? 0) === (before.drops[reason] ?? 0); i++) {
    await sleep(25);
    after = await ctl.call("status");
  }
  return {
    dropped: (after.drops[reason] ?? 0) - (before.drops[reason] ?? 0),
    forwarded: after.verdicts.forward - before.verdicts.forward,
  };
}

if (why) {
  skip(import.meta.url, "packet mode over AF_XDP in network namespaces (every test of this file)", why);
} else {
  guardedBefore(test, async () => {
    rmSync(DIR, { recursive: true, force: true });
    mkdirSync(DIR, { recursive: true });
    setup();
    [client, be] = await Promise.all([agent(NS.client), agent(NS.be)]);
    for (const a of A.be) {
      await be.call("backend", a, 8080, "tcp");
      await be.call("backend", a, 5353, "udp");
    }
    await be.call("backend", A.be6, 8080, "tcp");
    await be.call("backend", A.be6, 5353, "udp");
    await startProxy();
  });
  test.after(async () => {
    await ctl?.close();
    await stopProxy().catch(() => {});
    await Promise.all([client?.stop(), be?.stop()]);
    net.teardown();
    rmSync(DIR, { recursive: true, force: true });
  });

  test("AF_XDP is in use, its program on both interfaces (ip link shows it)", async () => {
    const st: any = await ctl.call("status");
    assert.is(st.io.io, "xdp", `AF_XDP was set up: ${st.io.xdpFallback}`);
    assert.match(st.io.xdpMode, /^(native|generic), (copy|zero-copy)$/);
    for (const dev of [IF.lc, IF.lb]) assert.ok(xdpOn(dev), `an XDP program on ${dev}`);
  });

  test("TCP over IPv4 through AF_XDP: rr over two backends, full-NAT source, data both ways", async () => {
    const conns: any[] = await client.call("openSeq", A.vip, 80, 4, true);
    for (const c of conns) assert.ok("h" in c, `connect through AF_XDP failed: ${JSON.stringify(c)}`);
    assert.equal(
      await client.call(
        "pingAll",
        conns.map((c) => c.h),
      ),
      [true, true, true, true],
      "every connection echoes data both ways",
    );
    assert.equal(new Set(conns.map((c) => c.backend)).size, 2, "rr used both backends");
    const seen = await be.call("counts");
    for (const a of A.be) assert.equal(seen[`tcp ${a}:8080`].peers, [A.snat], `${a} sees only the full-NAT source`);
    await client.call("closeAll");
  });

  test("UDP over IPv4 and IPv6 through AF_XDP: every reply back, each flow on one backend", async () => {
    for (const vip of [A.vip, A.vip6]) {
      const flows: { lport: number; replies: string[] }[] = await client.call("udpFlows", vip, 53, 4, 3, 400);
      for (const f of flows) {
        assert.is(f.replies.length, 3, `${vip}: flow from port ${f.lport} got every reply: ${JSON.stringify(f)}`);
        assert.is(new Set(f.replies).size, 1, "a flow stays on one backend");
      }
    }
    const seen = await be.call("counts");
    assert.equal(seen[`udp [${A.be6}]:5353`].peers, [A.snat6]);
  });

  test("TCP over IPv6 through AF_XDP with the IPv6 full-NAT source", async () => {
    const conns: any[] = await client.call("openSeq", A.vip6, 80, 2, true);
    for (const c of conns) assert.ok("h" in c, JSON.stringify(c));
    assert.equal(
      await client.call(
        "pingAll",
        conns.map((c) => c.h),
      ),
      [true, true],
    );
    assert.equal((await be.call("counts"))[`tcp [${A.be6}]:8080`].peers, [A.snat6]);
    await client.call("closeAll");
  });

  test("the program leaves the rest to the kernel: an ICMP echo to the VIPs and the balancer is answered", () => {
    for (const to of [A.vip, A.lbc, A.vip6, A.lbc6]) assert.is(echo(to), "reply", `${to} answers an echo request`);
  });

  test("bad frames through AF_XDP are dropped and counted, not forwarded", async () => {
    const doff = await dropsAfter("bad_tcp_doff", () => sendBad("doff"));
    assert.equal(doff, { dropped: 1, forwarded: 0 }, "a TCP header under 20 bytes");
    const short = await dropsAfter("bad_total_length", () => sendBad("short"));
    assert.equal(short, { dropped: 1, forwarded: 0 }, "an IPv4 total length past the frame's end");
  });

  test("every packet went through the AF_XDP rings, none lost in the kernel or on send", async () => {
    const st: any = await ctl.call("status");
    const io = JSON.stringify(st.io);
    // veth senders leave checksums to offload, and AF_XDP does not say so (was: every segment reached the
    // backends with its checksum unfinished and was dropped there)
    assert.ok(st.io.rxCsumCompleted > 0, `unfinished checksums recognised and completed: ${io}`);
    assert.ok(st.io.rxXdpFrames > 0 && st.io.txXdpPackets > 0, `both directions used AF_XDP: ${io}`);
    assert.is(st.io.txPackets, st.verdicts.forward, `every packet the core forwarded was sent: ${io}`);
    assert.is(st.io.rxKernelDrops, 0, `no frame dropped by the kernel on its way to the sockets: ${io}`);
    assert.is(st.io.txOtherErrors + st.io.txUnreachable + st.io.txTooBig + st.io.txNoBuffer, 0, io);
  });

  test("a clean stop removes the XDP program from both interfaces", async () => {
    await ctl.close();
    assert.is(await stopProxy(), 0);
    for (const dev of [IF.lc, IF.lb]) assert.not.ok(xdpOn(dev), `no XDP program left on ${dev}`);
  });

  test("a killed proxy (SIGKILL) leaves no XDP program either: a BPF link goes with its process", async () => {
    rmSync(CTL, { force: true });
    await startProxy();
    assert.ok(xdpOn(IF.lc), "attached again");
    await ctl.close();
    const p = proxy!;
    const gone = new Promise((r) => p.once("exit", r));
    p.kill("SIGKILL");
    await gone;
    let on = true;
    for (let i = 0; i < 40 && on; i++) {
      on = xdpOn(IF.lc) || xdpOn(IF.lb);
      if (on) await sleep(50);
    }
    assert.not.ok(on, "both interfaces are free of it");
  });

  test("AF_XDP on 2 I/O threads: each takes one of each interface's two queues; TCP, UDP, IPv6 intact", async () => {
    rmSync(CTL, { force: true });
    await startProxy(2);
    try {
      let st: any = await ctl.call("status");
      assert.is(st.io.io, "xdp", `AF_XDP was set up on the threads: ${st.io.xdpFallback}`);
      assert.is(st.io.threads.length, 2);
      for (const dev of [IF.lc, IF.lb]) assert.ok(xdpOn(dev), `one XDP program on ${dev}`);
      await be.call("resetCounts");
      const conns = await openAll(client, A.vip, 80, 24, "connect through AF_XDP on threads");
      const per: Record<string, number> = {};
      for (const c of conns) per[c.backend] = (per[c.backend] ?? 0) + 1;
      assert.equal(Object.values(per), [12, 12], "rr over 24 concurrent connections: 12 each (one table)");
      await echoIntact(client, conns, 64 * 1024);
      const six = await openAll(client, A.vip6, 80, 8, "IPv6 connect");
      await echoIntact(client, six, 16 * 1024, "IPv6 connection");
      await client.call("closeAll");
      for (const vip of [A.vip, A.vip6]) {
        const flows: { lport: number; replies: string[] }[] = await client.call("udpFlows", vip, 53, 16, 3, 400);
        for (const f of flows) {
          assert.is(f.replies.length, 3, `${vip}: flow from port ${f.lport} got every reply: ${JSON.stringify(f)}`);
          assert.is(new Set(f.replies).size, 1, "a flow stays on one backend");
        }
      }
      // fragmented datagrams: a sending socket's fragments leave on one of the veth's queues (its hash), so a
      // datagram's fragments reach one thread, first one first; 32 flows spread over both
      const f0: any = await ctl.call("status");
      for (const vip of [A.vip, A.vip6]) {
        const got = bigDatagrams(NS.client, [vip.includes(":") ? A.client6 : A.client], vip, 16, 2);
        assert.is(got.ok, got.sent, `${vip}: every 4,000-byte datagram and its echo whole: ${JSON.stringify(got)}`);
        assert.equal(got.bad, []);
      }
      const f1: any = await ctl.call("status");
      assert.is(f1.fragments - f0.fragments, 4 * 64, "2 later fragments each way, by their first's flow");
      assert.is((f1.drops.fragment ?? 0) - (f0.drops.fragment ?? 0), 0, "no fragment dropped");
      st = await ctl.call("status");
      const io = JSON.stringify(st.io);
      for (const [k, t] of st.io.threads.entries()) {
        assert.ok(t.rxPackets > 50 && t.txPackets > 50, `thread ${k} received and sent through its queues: ${io}`);
        assert.ok(t.running && t.failures === 0, `thread ${k} ran without failing`);
        assert.is(t.xdpSockets, 2, `thread ${k} reads one queue of each interface`);
      }
      assert.equal(
        st.io.xdpQueues.map((q: { queues: number }) => q.queues),
        [2, 2],
      );
      assert.not.match(proxyLog, /fewer receive queues/, "2 queues for 2 threads: no warning");
      assert.ok(st.io.rxXdpFrames > 0 && st.io.txXdpPackets > 0, `both directions used AF_XDP: ${io}`);
      assert.is(st.io.txPackets, st.verdicts.forward, `every packet the core forwarded was sent: ${io}`);
      assert.is(st.io.txOtherErrors + st.io.txUnreachable + st.io.txTooBig + st.io.txNoBuffer, 0, io);
    } finally {
      await ctl.close();
      assert.is(await stopProxy(), 0, "a clean stop joins the threads");
    }
    for (const dev of [IF.lc, IF.lb]) assert.not.ok(xdpOn(dev), `no XDP program left on ${dev}`);
  });

  test("AF_XDP on 3 I/O threads over 2-queue interfaces: a warning names both and the idle thread", async () => {
    rmSync(CTL, { force: true });
    proxyLog = "";
    try {
      await startProxy(3); // inside: a proxy that starts and cannot be reached is still stopped (it holds XDP)
      const warned = proxyLog
        .split("\n")
        .filter((l) => l.includes("fewer receive queues than I/O threads"))
        .map((l) => JSON.parse(l));
      assert.equal(
        warned.map((w) => [w.level, w.interface, w.queues, w.threads, w.idleThreads]).sort(),
        [
          ["warn", IF.lb, 2, 3, [2]],
          ["warn", IF.lc, 2, 3, [2]],
        ].sort(),
        `one warning per interface at start: ${proxyLog}`,
      );
      const st: any = await ctl.call("status");
      assert.is(st.io.io, "xdp");
      assert.equal(
        st.io.threads.map((t: { xdpSockets: number }) => t.xdpSockets),
        [2, 2, 0],
        "thread 2 has no queue on either interface",
      );
      const conns = await openAll(client, A.vip, 80, 8, "connect with an idle thread");
      await echoIntact(client, conns, 16 * 1024);
      await client.call("closeAll");
      const after: any = await ctl.call("status");
      assert.is(after.io.threads[2].rxPackets, 0, "the idle thread received nothing");
    } finally {
      await ctl.close();
      assert.is(await stopProxy(), 0, "a clean stop with an idle thread");
    }
  });

  test("AF_XDP on 2 I/O threads: a thread that fails is restarted and reads its queues again", async () => {
    rmSync(CTL, { force: true });
    await startProxy(2, { WASMVS_PACKET_THREAD_FAULT: "1:50" }); // thread 1 throws after 50 packets (a test hook)
    try {
      const held = await openAll(client, A.vip, 80, 16);
      await client.call(
        "bulkEcho",
        held.map((c) => c.h),
        16 * 1024,
      );
      let st: any = await ctl.call("status");
      for (let i = 0; i < 50 && st.io.threadFailures === 0; i++) {
        await sleep(100);
        st = await ctl.call("status");
      }
      assert.is(st.io.threadFailures, 1, JSON.stringify(st.io.threads));
      assert.is(st.io.threadRestarts, 1);
      const rx1 = st.io.threads[1].rxPackets;
      const more = await openAll(client, A.vip, 80, 16, "connect after the restart");
      await echoIntact(client, [...held, ...more], 64 * 1024, "connection across the restart");
      await client.call("closeAll");
      st = await ctl.call("status");
      assert.ok(st.io.threads[1].running, "restarted");
      assert.ok(
        st.io.threads[1].rxPackets > rx1 + 50,
        `thread 1 reads its AF_XDP queues again: ${st.io.threads[1].rxPackets}`,
      );
    } finally {
      await ctl.close();
      assert.is(await stopProxy(), 0, "a clean stop after a restart");
    }
  });
}

test.run();
