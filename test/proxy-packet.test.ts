// Packet mode end to end: `wasmvs proxy --mode packet` run in a balancer namespace (ip netns exec), a
// client namespace and two backend namespaces over veth, real TCP and UDP clients and servers, real
// kernel routing on every side. Needs root, ip netns, nft, ethtool and the native addon (npm install
// builds it); anything missing is a counted SKIP naming it (test/helpers/skip.ts), which fails under CI=true.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { spawnSync, type ChildProcess } from "node:child_process";
import { mkdirSync, rmSync, writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { ControlClient } from "../src/proxy/control.ts";
import { loadPacketAddon, queueKernelDrops } from "../src/proxy/packet.ts";
import { agent, type Agent } from "./fixtures/proxy/netns.ts";
import { guardedBefore, needs, skip } from "./helpers/skip.ts";
import { ip, nsx, spawnPacketProxy, vethNet, addrAdd, twoBackendNames, stopPacketProxy } from "./helpers/veth-net.ts";

// every prerequisite is checked here, at the top level: a missing one is a counted SKIP, never a hook error
const why =
  needs(["ip", "nft", "ethtool", "python3"], "apt-get install -y iproute2 nftables ethtool python3") ||
  (loadPacketAddon().error
    ? `the native packet addon is not built (npm install builds it): ${loadPacketAddon().error}`
    : "");

const { NS, IF } = twoBackendNames("wpk");
const A = {
  client: "10.232.1.2",
  lbc: "10.232.1.1",
  lb1: "10.232.2.1",
  lb2: "10.232.3.1",
  vip: "10.232.100.1",
  vipAll: "10.232.100.2", // port-0 services (every port), real server port 0
  vipAllTo9000: "10.232.100.3", // a port-0 service whose real server says port 9000
  snat: "10.232.200.1",
  be: ["10.232.2.11", "10.232.2.12", "10.232.3.13"],
  client6: "fd32:1::2",
  lbc6: "fd32:1::1",
  lb16: "fd32:2::1",
  vip6: "fd32:100::1",
  snat6: "fd32:200::1",
  be6: "fd32:2::11",
};
const DIR = `/tmp/wpk-test-${process.pid}`;
const CTL = `${DIR}/ctl.sock`;
const ROOT = fileURLToPath(new URL("..", import.meta.url));

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const net = vethNet(Object.values(NS));
const teardown = net.teardown;

function setup() {
  net.setup([
    [NS.client, IF.cl, NS.lb, IF.lc],
    [NS.lb, IF.l1, NS.be1, IF.b1],
    [NS.lb, IF.l2, NS.be2, IF.b2],
  ]);
  addrAdd(NS.client, `${A.client}/24`, IF.cl);
  addrAdd(NS.client, `${A.client6}/64`, IF.cl);
  ip(["-n", NS.client, "route", "add", "default", "via", A.lbc]);
  ip(["-n", NS.client, "-6", "route", "add", "default", "via", A.lbc6]);
  addrAdd(NS.lb, `${A.lbc}/24`, IF.lc);
  addrAdd(NS.lb, `${A.lbc6}/64`, IF.lc);
  addrAdd(NS.lb, `${A.lb1}/24`, IF.l1);
  addrAdd(NS.lb, `${A.lb16}/64`, IF.l1);
  addrAdd(NS.lb, `${A.lb2}/24`, IF.l2);
  addrAdd(NS.be1, `${A.be[0]}/24`, IF.b1);
  addrAdd(NS.be1, `${A.be[1]}/24`, IF.b1);
  addrAdd(NS.be1, `${A.be6}/64`, IF.b1);
  addrAdd(NS.be2, `${A.be[2]}/24`, IF.b2);
  ip(["-n", NS.be1, "route", "add", "default", "via", A.lb1]);
  ip(["-n", NS.be1, "-6", "route", "add", "default", "via", A.lb16]);
  ip(["-n", NS.be2, "route", "add", "default", "via", A.lb2]);
  // a director forwards (the real servers' other traffic goes through it): masq replies must still not be
  // forwarded by its kernel beside wasmvs's copy (the takeover table's forward chain drops them)
  nsx(NS.lb, ["sysctl", "-q", "-w", "net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1"]);
  // The senders' veth would hand 64 KiB TCP segments (TSO/GSO) to AF_PACKET as one frame; a NIC's peer
  // never does, so they are turned off as the README tells operators to (GRO/LRO on real NICs).
  for (const [ns, dev] of [
    [NS.client, IF.cl],
    [NS.be1, IF.b1],
    [NS.be2, IF.b2],
  ])
    nsx(ns, ["ethtool", "-K", dev, "tso", "off", "gso", "off"]);
  // Counts what the balancer's own kernel would answer: TCP resets and ICMP unreachables it sends.
  nsx(
    NS.lb,
    ["nft", "-f", "-"],
    `table inet wpktest {
  chain out { type filter hook output priority 0; policy accept;
    tcp flags & rst == rst counter name rst
    icmp type destination-unreachable counter name unreach4
    icmpv6 type destination-unreachable counter name unreach6
  }
  chain routed { type filter hook forward priority 0; policy accept;
    counter name routed
  }
  counter routed {}
  counter rst {}
  counter unreach4 {}
  counter unreach6 {}
}
`,
  );
}

function kernelAnswers(): { rst: number; unreach4: number; unreach6: number; routed: number } {
  const j = JSON.parse(nsx(NS.lb, ["nft", "-j", "list", "counters", "table", "inet", "wpktest"]));
  const out: Record<string, number> = {};
  for (const x of j.nftables) if (x.counter) out[x.counter.name] = x.counter.packets;
  return out as any;
}

function takeoverDrops(chain?: string): number {
  const r = spawnSync("ip", ["netns", "exec", NS.lb, "nft", "-j", "list", "table", "inet", "wasmvs_packet"], {
    encoding: "utf8",
  });
  if (r.status !== 0) return -1;
  let n = 0;
  for (const x of JSON.parse(r.stdout).nftables)
    if (!chain || x.rule?.chain === chain) for (const e of x.rule?.expr ?? []) if (e.counter) n += e.counter.packets;
  return n;
}

let proxy: ChildProcess | undefined;
let client: Agent, be1: Agent, be2: Agent, ctl: ControlClient;

async function startProxy(): Promise<void> {
  writeFileSync(
    `${DIR}/p.yaml`,
    `proxy:
  control: ${CTL}
  vipInterface: lo
  tick: 100
  localAddresses: [${A.snat}, "${A.snat6}"]
  forward: masq
services:
  - { protocol: tcp, addr: ${A.vip}, port: 80, scheduler: rr, realServers: [
      { addr: ${A.be[0]}, port: 8080, forward: fullnat }, { addr: ${A.be[1]}, port: 8080, forward: fullnat },
      { addr: ${A.be[2]}, port: 8080, forward: fullnat } ] }
  - { protocol: tcp, addr: ${A.vip}, port: 81, scheduler: rr, realServers: [
      { addr: ${A.be[0]}, port: 8080, forward: fullnat } ] }
  - { protocol: udp, addr: ${A.vip}, port: 53, scheduler: rr, realServers: [
      { addr: ${A.be[0]}, port: 5353, forward: fullnat }, { addr: ${A.be[2]}, port: 5353, forward: fullnat } ] }
  - { protocol: tcp, addr: "${A.vip6}", port: 80, scheduler: rr, realServers: [
      { addr: "${A.be6}", port: 8080, forward: fullnat } ] }
  - { protocol: tcp, addr: ${A.vip}, port: 82, scheduler: rr, realServers: [
      { addr: ${A.be[0]}, port: 8082 }, { addr: ${A.be[2]}, port: 8082 } ] }
  - { protocol: udp, addr: ${A.vip}, port: 54, scheduler: rr, realServers: [
      { addr: ${A.be[0]}, port: 5454 }, { addr: ${A.be[2]}, port: 5454 } ] }
  - { protocol: tcp, addr: "${A.vip6}", port: 82, scheduler: rr, realServers: [ { addr: "${A.be6}", port: 8082 } ] }
  - { protocol: udp, addr: "${A.vip6}", port: 54, scheduler: rr, realServers: [ { addr: "${A.be6}", port: 5454 } ] }
`,
  );
  proxy = await spawnPacketProxy(NS.lb, {
    config: `${DIR}/p.yaml`,
    control: CTL,
    args: [
      "--interface",
      `${IF.lc},${IF.l1}`,
      "--interface",
      IF.l2,
      "--log-level",
      "warn",
      // the tests stop it with flows still open (half-open SYNs among them): a short drain, not the default 30 s
      "--drain-timeout",
      "1",
    ],
    env: { ...process.env, WASMVS_PROXY_DECISIONS: "1000" },
  });
  ctl = await ControlClient.connect(CTL);
}

async function stopProxy(): Promise<number | null> {
  return proxy ? stopPacketProxy(proxy, 5000) : null;
}

// A TCP segment to VIP:80 whose data offset says 2 words (less than the 5-word minimum), sent from the
// client namespace through a raw socket (the kernel completes the IPv4 header, nothing else).
function sendBadTcp(): void {
  const py = `import socket, struct
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
src, dst = socket.inet_aton("${A.client}"), socket.inet_aton("${A.vip}")
ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 40, 0, 0, 64, 6, 0, src, dst)
tcp = struct.pack("!HHIIBBHHH", 40999, 80, 1, 0, 2 << 4, 0x02, 65535, 0, 0)
s.sendto(ip + tcp, ("${A.vip}", 0))
`;
  nsx(NS.client, ["python3", "-c", py]);
}

// Frames under Ethernet's 60-byte minimum arrive padded from a NIC; veth never pads, so the padded frame is
// injected from the client namespace with an AF_PACKET socket: a bare SYN (40 bytes of IP) and 6 bytes
// of padding to VIP:81 (a service of its own, so port 80's counts stay the other tests'), or the same frame
// claiming a longer IP total length than it carries. Prints the flags of the answer from VIP:81 to the
// SYN's port ("none" after 3 s).
function sendPaddedSyn(sport: number, totLen = 40): string {
  // the client's kernel has no socket for the SYN-ACK and would reset it through the proxy: kept quiet
  nsx(
    NS.client,
    ["nft", "-f", "-"],
    `table inet wpkpad {
  chain out${sport} {
    type filter hook output priority 0; policy accept;
    tcp sport ${sport} tcp flags & rst == rst drop
  }
}
`,
  );
  const mac = (ns: string, dev: string) => JSON.parse(nsx(ns, ["ip", "-j", "link", "show", dev]))[0].address as string;
  const py = `import socket, struct, time
def csum(b):
    if len(b) % 2: b += b"\\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while s >> 16: s = (s & 0xffff) + (s >> 16)
    return ~s & 0xffff
src, dst = socket.inet_aton("${A.client}"), socket.inet_aton("${A.vip}")
tcp = struct.pack("!HHIIBBHHH", ${sport}, 81, 1000, 0, 5 << 4, 0x02, 64240, 0, 0)
tcp = tcp[:16] + struct.pack("!H", csum(src + dst + struct.pack("!BBH", 0, 6, len(tcp)) + tcp)) + tcp[18:]
ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, ${totLen}, 1, 0, 64, 6, 0, src, dst)
ip = ip[:10] + struct.pack("!H", csum(ip)) + ip[12:]
lb_mac = bytes.fromhex("${mac(NS.lb, IF.lc).replace(/:/g, "")}")
client_mac = bytes.fromhex("${mac(NS.client, IF.cl).replace(/:/g, "")}")
eth = lb_mac + client_mac + b"\\x08\\x00"
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0800))
s.bind(("${IF.cl}", 0x0800))
s.settimeout(0.2)
s.send(eth + ip + tcp + b"\\xaa" * 6)
end = time.time() + 3
while time.time() < end:
    try: f = s.recv(2048)
    except socket.timeout: continue
    p = f[14:]
    if len(p) < 40 or p[9] != 6 or p[12:16] != dst: continue
    ihl = (p[0] & 15) * 4
    sp, dp = struct.unpack("!HH", p[ihl:ihl + 4])
    if sp == 81 and dp == ${sport}:
        print(hex(p[ihl + 13])); break
else: print("none")
`;
  return nsx(NS.client, ["python3", "-c", py]).trim();
}

// n connections to vip:82 (a masq service), each echoing both ways
async function masqConnections(vip: string, n: number): Promise<any[]> {
  const conns: any[] = await client.call("openSeq", vip, 82, n, true);
  for (const c of conns) assert.ok("h" in c, `connect through masq failed: ${JSON.stringify(c)}`);
  assert.equal(
    await client.call(
      "pingAll",
      conns.map((c) => c.h),
    ),
    conns.map(() => true),
  );
  return conns;
}

function inCsumErrors(ns: string): number {
  const snmp = nsx(ns, ["cat", "/proc/net/snmp"])
    .split("\n")
    .filter((l) => l.startsWith("Tcp:"));
  const [names, values] = snmp.map((l) => l.trim().split(/\s+/));
  return Number(values[names.indexOf("InCsumErrors")]);
}

if (why) {
  skip(import.meta.url, "packet mode end to end in network namespaces (every test of this file)", why);
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
    await be2.call("backend", A.be[2], 5353, "udp");
    await be1.call("backend", A.be6, 8080, "tcp");
    // the masq services' own ports: their peers must be the client alone
    for (const [b, a] of [
      [be1, A.be[0]],
      [be2, A.be[2]],
      [be1, A.be6],
    ] as const) {
      await b.call("backend", a, 8082, "tcp");
      await b.call("backend", a, 5454, "udp");
    }
    await startProxy();
  });
  test.after(async () => {
    await ctl?.close();
    await stopProxy().catch(() => {});
    await Promise.all([client?.stop(), be1?.stop(), be2?.stop()]);
    teardown();
    rmSync(DIR, { recursive: true, force: true });
  });

  const tcpAsDecided =
    "TCP: rr across three backends in two namespaces as the core decided, full-NAT source, data both ways";
  test(tcpAsDecided, async () => {
    await ctl.call("clearDecisions");
    const conns: any[] = await client.call("openSeq", A.vip, 80, 9, true);
    for (const c of conns) assert.ok("h" in c, `connect through the packet path failed: ${JSON.stringify(c)}`);
    const pings: boolean[] = await client.call(
      "pingAll",
      conns.map((c) => c.h),
    );
    assert.equal(
      pings,
      conns.map(() => true),
      "every connection echoes data both ways",
    );
    const decisions: any[] = await ctl.call("decisions");
    const tcp = decisions.filter((d) => d.proto === "tcp" && d.vaddr === A.vip);
    assert.is(tcp.length, 9);
    const chosen = new Map(tcp.map((d) => [d.cport, `${d.daddr}:${d.dport}`]));
    for (const c of conns)
      assert.is(
        c.backend,
        chosen.get(c.lport),
        `client port ${c.lport}: the backend that answered is the core's choice`,
      );
    const order = tcp.map((d) => d.daddr);
    for (let i = 3; i < 9; i++) assert.is(order[i], order[i - 3], "rr cycles through the three");
    assert.is(new Set(order.slice(0, 3)).size, 3);
    const seen = { ...(await be1.call("counts")), ...(await be2.call("counts")) };
    for (const a of A.be) {
      const b = seen[`tcp ${a}:8080`];
      assert.is(b.accepted, 3, `${a} accepted its share`);
      assert.equal(b.peers, [A.snat], `${a} sees only the full-NAT source`);
    }
    await client.call("closeAll");
  });

  test("UDP: each flow sticks to the backend the core chose; replies come back from the VIP", async () => {
    const flows: { lport: number; replies: string[] }[] = await client.call("udpFlows", A.vip, 53, 6, 3, 400);
    const per = new Map<string, number>();
    for (const f of flows) {
      assert.is(f.replies.length, 3, `flow from port ${f.lport} got every reply`);
      assert.is(new Set(f.replies).size, 1, "a flow stays on one backend");
      per.set(f.replies[0], (per.get(f.replies[0]) ?? 0) + 1);
    }
    assert.equal([...per.values()], [3, 3], "rr spreads six flows over two backends");
    const seen = { ...(await be1.call("counts")), ...(await be2.call("counts")) };
    for (const a of [A.be[0], A.be[2]]) assert.equal(seen[`udp ${a}:5353`].peers, [A.snat]);
  });

  test("IPv6: TCP through the IPv6 VIP with the IPv6 full-NAT source", async () => {
    const conns: any[] = await client.call("openSeq", A.vip6, 80, 2, true);
    for (const c of conns) assert.ok("h" in c, JSON.stringify(c));
    assert.equal(
      await client.call(
        "pingAll",
        conns.map((c) => c.h),
      ),
      [true, true],
    );
    const seen = await be1.call("counts");
    assert.equal(seen[`tcp [${A.be6}]:8080`].peers, [A.snat6]);
    await client.call("closeAll");
  });

  test(
    "IPv6 TCP behind a destination options header, checksum left to offload (veth), connects and echoes (was: " +
      "the checksum was completed at the wrong offset and the backend dropped every segment)",
    async () => {
      // UDP computes its own checksum when there are extension headers; TCP leaves it to offload
      const py = `import socket
s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
# a destination options header of 8 bytes: PadN over its 6 option bytes
s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_DSTOPTS, bytes([0, 0, 1, 4, 0, 0, 0, 0]))
s.settimeout(3)
try:
    s.connect(("${A.vip6}", 80))
    f = s.makefile("rb")
    first = f.readline().decode().strip()
    s.sendall(b"dstopts\\n")
    print(first, f.readline().decode().strip())
except OSError as e: print("failed", e)
`;
      const st0: any = await ctl.call("status");
      const got = nsx(NS.client, ["python3", "-c", py]).trim();
      assert.match(got, /^ID \S+ dstopts$/, `connected through the proxy and echoed: ${got}`);
      const st1: any = await ctl.call("status");
      assert.ok(st1.io.rxCsumCompleted > st0.io.rxCsumCompleted, "the offloaded checksum was completed here");
    },
  );

  test(
    "fragmented UDP: a 4,000-byte datagram over a 1500-byte link arrives whole and its fragmented answer " +
      "comes back whole (was: every fragment dropped)",
    async () => {
      const py = `import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(3)
msg = b"0123456789abcdef" * 250   # ASCII: the backend echoes it inside a text line
s.sendto(msg, ("${A.vip}", 53))
try:
    r = s.recvfrom(65536)[0]
    print(len(r), r.endswith(msg), r[:3].decode())
except socket.timeout: print("none")
`;
      const st0: any = await ctl.call("status");
      const got = nsx(NS.client, ["python3", "-c", py]).trim();
      assert.match(got, /^\d+ True ID$/, `the backend got the whole datagram and its echo came back whole: ${got}`);
      const st1: any = await ctl.call("status");
      const later = st1.fragments - st0.fragments;
      assert.ok(later >= 4, `later fragments forwarded by their first one's flow: ${later}`);
      assert.is((st1.drops.fragment ?? 0) - (st0.drops.fragment ?? 0), 0, "no fragment dropped");
    },
  );

  test("a malformed packet is dropped and counted, not forwarded", async () => {
    const before: any = await ctl.call("status");
    sendBadTcp();
    let after: any = before;
    for (let i = 0; i < 40 && (after.drops.bad_tcp_doff ?? 0) === (before.drops.bad_tcp_doff ?? 0); i++) {
      await sleep(25);
      after = await ctl.call("status");
    }
    assert.is((after.drops.bad_tcp_doff ?? 0) - (before.drops.bad_tcp_doff ?? 0), 1);
    assert.is(after.verdicts.forward, before.verdicts.forward, "nothing forwarded for it");
  });

  test(
    "a padded frame under 60 bytes is forwarded without its padding (was: the backend counted InCsumErrors " +
      "and never answered)",
    async () => {
      const before = inCsumErrors(NS.be1) + inCsumErrors(NS.be2);
      const st0: any = await ctl.call("status");
      const answer = sendPaddedSyn(41000);
      assert.is(answer, "0x12", "the backend answered the padded SYN with a SYN-ACK through the proxy");
      assert.is(inCsumErrors(NS.be1) + inCsumErrors(NS.be2) - before, 0, "no bad checksum at the backends");
      const st1: any = await ctl.call("status");
      assert.ok(st1.io.rxTrimmed > st0.io.rxTrimmed, "the padding was cut off and counted");
    },
  );

  test("a frame shorter than its IP total length is dropped and counted, not forwarded", async () => {
    const before: any = await ctl.call("status");
    assert.is(sendPaddedSyn(41001, 100), "none", "no backend saw it");
    const after: any = await ctl.call("status");
    assert.is((after.drops.bad_total_length ?? 0) - (before.drops.bad_total_length ?? 0), 1);
  });

  test(
    "masq (proxy.forward: masq): TCP and UDP over IPv4 and IPv6 reach the real servers from the client's own " +
      "address, the replies come back through wasmvs from the VIP, and the kernel forwards none of its copies",
    async () => {
      const routed0 = kernelAnswers().routed,
        drops0 = takeoverDrops("forward");
      for (const [vip, n, backends, caddr] of [
        [A.vip, 4, [A.be[0], A.be[2]], A.client],
        [A.vip6, 2, [A.be6], A.client6],
      ] as const) {
        const conns: any[] = await masqConnections(vip, n);
        const want = backends.map((b) => (b.includes(":") ? `[${b}]:8082` : `${b}:8082`));
        assert.equal([...new Set(conns.map((c) => c.backend))].sort(), [...want].sort(), "rr over the masq servers");
        const seen = { ...(await be1.call("counts")), ...(await be2.call("counts")) };
        for (const w of want) assert.equal(seen[`tcp ${w}`].peers, [caddr], `${w} sees the client itself`);
        // UDP on a connected socket: a reply counts only when it comes from VIP:54
        const py = `import socket
s = socket.socket(socket.AF_INET${vip.includes(":") ? "6" : ""}, socket.SOCK_DGRAM)
s.settimeout(2)
s.connect(("${vip}", 54))
got = []
for i in range(3):
    s.send(b"q%d" % i)
    try: got.append(s.recv(2048).decode().split(" ")[1])
    except socket.timeout: got.append("none")
print(" ".join(got))
`;
        const replies = nsx(NS.client, ["python3", "-c", py]).trim().split(" ");
        assert.is(replies.length, 3);
        assert.ok(
          replies.every((r) => r === replies[0] && r !== "none"),
          `a UDP flow sticks, from the VIP: ${replies}`,
        );
        const u = { ...(await be1.call("counts")), ...(await be2.call("counts")) }[`udp ${replies[0]}`];
        assert.equal(u.peers, [caddr], "the UDP real server sees the client itself");
      }
      await client.call("closeAll");
      const ln: any[] = await ctl.call("services");
      for (const s of ln.filter((x) => x.port === 82 || x.port === 54))
        assert.equal(
          s.realServers.map((r: any) => r.fwd),
          s.realServers.map(() => "masq"),
        );
      assert.is(kernelAnswers().routed - routed0, 0, "the balancer's kernel forwarded none of the replies");
      assert.ok(takeoverDrops("forward") > drops0, "its copies were dropped by the takeover table's forward chain");
    },
  );

  test(
    "the kernel answered nothing it was not meant to: no resets, no unreachables; the takeover rules took " +
      "the packets",
    async () => {
      assert.equal(kernelAnswers(), { rst: 0, unreach4: 0, unreach6: 0, routed: 0 });
      assert.ok(takeoverDrops() > 0, "the kernel's copies of the taken-over packets were dropped before its stack");
      const st: any = await ctl.call("status");
      assert.ok(st.io.rxCsumCompleted > 0, "veth senders leave checksums to offload; the addon completed them");
      assert.is(st.io.io, "ring", `ring I/O is the default and was set up here (${st.io.ringFallback})`);
      const io = JSON.stringify(st.io);
      assert.ok(st.io.rxRingBlocks > 0 && st.io.txRingPackets > 0, `packets went through both rings: ${io}`);
      assert.is(st.io.txPackets, st.verdicts.forward, `every packet the core forwarded was sent: ${io}`);
      assert.is(st.io.txOtherErrors + st.io.txUnreachable + st.io.txTooBig + st.io.txNoBuffer, 0);
      const ln: any[] = await ctl.call("services");
      const web = ln.find((s) => s.addr === A.vip && s.port === 80);
      assert.equal(
        web.realServers.map((r: any) => Number(r.stats.conns)),
        [3, 3, 3],
      );
      assert.ok(web.realServers.every((r: any) => r.fwd === "fullnat"));
    },
  );

  test(
    "port-0 services (all ports), added over the control socket: every port of the VIP reaches the same port " +
      "on the real server, whatever port the real server says, as the kernel's IPVS does (checked in the VM); " +
      "the takeover table keeps the balancer's kernel quiet on all of them (was: refused)",
    async () => {
      for (const port of [7001, 7002]) await be1.call("backend", A.be[0], port, "tcp");
      for (const port of [7001, 9000]) await be2.call("backend", A.be[2], port, "tcp");
      await be1.call("backend", A.be[0], 7053, "udp");
      const rst0 = kernelAnswers();
      const add = (protocol: string, addr: string, rs: string, rsPort: number) =>
        ctl.call("addService", {
          protocol,
          addr,
          port: 0,
          scheduler: "rr",
          persistent: 60,
          realServers: [{ addr: rs, port: rsPort, weight: 1, fwd: "masq", upperThreshold: 0, lowerThreshold: 0 }],
        });
      await add("tcp", A.vipAll, A.be[0], 0);
      await add("udp", A.vipAll, A.be[0], 0);
      await add("tcp", A.vipAllTo9000, A.be[2], 9000);
      const table = nsx(NS.lb, ["nft", "list", "table", "inet", "wasmvs_packet"]);
      assert.match(table, `${A.vipAll} . tcp`, `the takeover table takes every port: ${table}`);
      for (const [vip, port, want] of [
        [A.vipAll, 7001, `${A.be[0]}:7001`],
        [A.vipAll, 7002, `${A.be[0]}:7002`],
        [A.vipAllTo9000, 7001, `${A.be[2]}:7001`],
        [A.vipAllTo9000, 9000, `${A.be[2]}:9000`],
      ] as const) {
        const [c]: any[] = await client.call("openSeq", vip, port, 1, true);
        assert.ok("h" in c, `${vip}:${port}: connect failed: ${JSON.stringify(c)}`);
        assert.is(c.backend, want, `${vip}:${port} reached ${want}`);
        assert.equal(await client.call("pingAll", [c.h]), [true], "data both ways");
      }
      await client.call("closeAll");
      const [u]: any[] = await client.call("udpFlows", A.vipAll, 7053, 1, 2);
      assert.equal(u.replies, [`${A.be[0]}:7053`, `${A.be[0]}:7053`], "UDP to any port too");
      const conns: any[] = await ctl.call("connections");
      // as the kernel's -Lnc showed: the template is <client:0, VIP:0, real server:0>
      const tmpl = conns.filter((c) => c.template && c.virtual.addr === A.vipAll);
      assert.ok(tmpl.length >= 1, `a persistence template: ${JSON.stringify(conns.slice(0, 4))}`);
      for (const t of tmpl) assert.equal([t.client.port, t.virtual.port, t.dest.port], [0, 0, 0]);
      const rst1 = kernelAnswers();
      assert.is(rst1.rst - rst0.rst, 0, "the balancer's kernel sent no reset");
      assert.is(rst1.unreach4 - rst0.unreach4, 0, "nor a port unreachable");
    },
  );

  // fwmark services: an address no address:port service has, routed to the balancer by the client's default
  // route, marked by the operator's iptables rules; the three tests below run in order on one proxy
  const fwmVip = "10.232.100.7";
  const mangle = (...a: string[]) => nsx(NS.lb, ["iptables", "-w", "5", "-t", "mangle", ...a]);
  const fwm = {
    fwmark: 7,
    scheduler: "rr",
    realServers: [
      { addr: A.be[0], port: 8080, weight: 1, fwd: "masq", upperThreshold: 0, lowerThreshold: 0 },
      { addr: A.be[2], port: 8080, weight: 1, fwd: "masq", upperThreshold: 0, lowerThreshold: 0 },
    ],
  };
  let fwmRouted0 = 0;

  test(
    "fwmark services: packets an iptables MARK rule marked come through the netfilter queue with their mark; " +
      "two ports of one address reach the mark's real servers (masq, replies back through wasmvs), the " +
      "kernel's copies are dropped",
    async () => {
      // the operator's rule, as for the kernel's IPVS
      mangle(
        "-A",
        "PREROUTING",
        "-d",
        fwmVip,
        "-p",
        "tcp",
        "-m",
        "multiport",
        "--dports",
        "80,81",
        "-j",
        "MARK",
        "--set-mark",
        "7",
      );
      fwmRouted0 = kernelAnswers().routed;
      await ctl.call("addService", fwm);
      assert.match(mangle("-S", "PREROUTING"), /-A PREROUTING -j WASMVS-FWMARK\n?$/, "the jump comes after the MARK");
      const conns: any[] = [
        ...(await client.call<any[]>("openSeq", fwmVip, 80, 4, true)),
        ...(await client.call<any[]>("openSeq", fwmVip, 81, 2, true)),
      ];
      for (const c of conns) assert.ok("h" in c, `connect through the fwmark service failed: ${JSON.stringify(c)}`);
      assert.equal(
        await client.call(
          "pingAll",
          conns.map((c) => c.h),
        ),
        conns.map(() => true),
      );
      const per: Record<string, number> = {};
      for (const c of conns) per[c.backend] = (per[c.backend] ?? 0) + 1;
      assert.equal(
        per,
        { [`${A.be[0]}:8080`]: 3, [`${A.be[2]}:8080`]: 3 },
        "rr over the mark's real servers, both ports",
      );
      const seen = { ...(await be1.call<any>("counts")), ...(await be2.call<any>("counts")) };
      for (const b of [A.be[0], A.be[2]]) assert.ok(seen[`tcp ${b}:8080`].peers.includes(A.client), "masq: the client");
      const st: any = await ctl.call("status");
      assert.is(st.io.queueNum, 22355, "the default queue");
      assert.ok(st.io.rxQueuePackets >= 6 * 3, `every packet of the clients came marked: ${st.io.rxQueuePackets}`);
      assert.is(st.io.rxQueueOversize + st.io.rxQueueOverruns + st.io.rxQueueErrors, 0);
      assert.is(st.drops.queue_full ?? 0, 0, "the kernel's queue never overflowed");
      const ln: any[] = await ctl.call("services");
      const svc = ln.find((x) => x.fwmark === 7);
      assert.equal(
        svc.realServers.map((r: any) => Number(r.stats.conns)),
        [3, 3],
      );
    },
  );

  test(
    "fwmark services over UDP: 20 datagrams on one flow, each seen once by the real server and answered " +
      "once, though each comes twice (the tap's copy, then the queue's)",
    async () => {
      // UDP, 20 datagrams on one flow: each packet comes twice (the tap's copy, then the queue's); the real server
      // must see each once, and the client one answer each, from the address it sent to
      mangle("-A", "PREROUTING", "-d", fwmVip, "-p", "udp", "--dport", "53", "-j", "MARK", "--set-mark", "9");
      await ctl.call("addService", { ...fwm, fwmark: 9, realServers: [{ ...fwm.realServers[0], port: 5353 }] });
      const udp0 = (await be1.call<any>("counts"))[`udp ${A.be[0]}:5353`].udpPackets;
      const py = `import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(1)
s.connect(("${fwmVip}", 53))
got = 0
for i in range(20):
    s.send(b"q%d" % i)
    try:
        if s.recv(2048).startswith(b"ID "): got += 1
    except socket.timeout: pass
s.settimeout(0.5)
try:
    while True: s.recv(2048); got += 1000
except socket.timeout: pass
print(got)
`;
      assert.is(nsx(NS.client, ["python3", "-c", py]).trim(), "20", "20 answers, none twice");
      assert.is((await be1.call<any>("counts"))[`udp ${A.be[0]}:5353`].udpPackets - udp0, 20, "each datagram once");
      await ctl.call("deleteService", { fwmark: 9 });
    },
  );

  test(
    "fwmark services over IPv6 (ip6tables, family: inet6), the balancer's kernel routed nothing, and the " +
      "queue rules go with the last fwmark service",
    async () => {
      // IPv6: a mark of its own, its service `family: inet6`, through ip6tables and the same queue
      const vip6 = "fd32:100::7";
      nsx(NS.lb, [
        "ip6tables",
        "-w",
        "5",
        "-t",
        "mangle",
        "-A",
        "PREROUTING",
        "-d",
        vip6,
        "-p",
        "tcp",
        "-j",
        "MARK",
        "--set-mark",
        "8",
      ]);
      await ctl.call("addService", {
        ...fwm,
        fwmark: 8,
        family: "inet6",
        realServers: [{ ...fwm.realServers[0], addr: A.be6 }],
      });
      const c6: any[] = await client.call("openSeq", vip6, 443, 2, true);
      assert.equal(
        c6.map((c) => c.backend),
        [`[${A.be6}]:8080`, `[${A.be6}]:8080`],
        `IPv6 through the mark: ${JSON.stringify(c6)}`,
      );
      assert.equal(
        await client.call(
          "pingAll",
          c6.map((c) => c.h),
        ),
        [true, true],
      );
      await client.call("closeAll");
      await sleep(200);
      assert.is(kernelAnswers().routed - fwmRouted0, 0, "the balancer's kernel routed none of the packets or replies");
      await ctl.call("deleteService", { fwmark: 8, family: "inet6" });
      assert.not.match(nsx(NS.lb, ["ip6tables", "-t", "mangle", "-S", "PREROUTING"]), "WASMVS-FWMARK");
      await ctl.call("deleteService", { fwmark: 7 });
      assert.not.match(mangle("-S", "PREROUTING"), "WASMVS-FWMARK", "the jump goes with the last fwmark service");
      assert.is(spawnSync("ip", ["netns", "exec", NS.lb, "iptables", "-t", "mangle", "-S", "WASMVS-FWMARK"]).status, 1);
      mangle("-F", "PREROUTING");
      nsx(NS.lb, ["ip6tables", "-t", "mangle", "-F", "PREROUTING"]);
    },
  );

  test("the fwmark queue: bad numbers are refused, and a number another reader holds is refused naming why", () => {
    const addon = loadPacketAddon().addon!;
    const open = () => addon.open({ interfaces: ["lo"], local: [], maxPackets: 4, slot: 2048, io: "mmsg" });
    const a = open(),
      b = open();
    try {
      for (const bad of [-1, 65536, 1.5, Number.NaN, "7", undefined, {}])
        assert.throws(() => addon.openQueue(a, bad as number), /an integer 0\.\.65535/, String(bad));
      addon.openQueue(a, 22356);
      addon.openQueue(a, 22356); // the same number again changes nothing
      assert.throws(() => addon.openQueue(a, 22357), /already bound: 22356/);
      assert.throws(() => addon.openQueue(b, 22356), /binding netfilter queue 22356: .*another program has bound/);
      assert.is(addon.stats(a).queueNum, 22356);
      // the kernel's own counts are read from its table, this queue's line only
      const proc = "  1  4242  0 2 65531 5 6 99 1\n22355  24172     0 2 65531 664310     7   222346  1\n";
      assert.equal(
        queueKernelDrops(22355, () => proc),
        { full: 664310, unsent: 7 },
      );
      assert.is(
        queueKernelDrops(9, () => proc),
        undefined,
      );
      // with I/O threads, summed over their queues (22354 is not listed: the one line counts)
      assert.equal(
        queueKernelDrops(22354, () => proc, 2),
        { full: 664310, unsent: 7 },
      );
      assert.equal(
        queueKernelDrops(1, () => proc, 22355),
        { full: 664315, unsent: 13 },
      );
      assert.is(
        queueKernelDrops(1, () => "garbage\n\n"),
        undefined,
      );
      assert.is(addon.stats(b).queueNum, -1);
    } finally {
      addon.close(a);
      addon.close(b);
    }
  });

  test(
    "masq with suppressKernel: false while the kernel forwards: the proxy refuses to start, naming the sysctl " +
      "and both ways out",
    async () => {
      writeFileSync(
        `${DIR}/fwd.yaml`,
        `proxy: { forward: masq, suppressKernel: false, control: null, metrics: null, vipInterface: null }
services:
  - { protocol: tcp, addr: 10.232.100.9, port: 83, realServers: [ { addr: ${A.be[0]}, port: 8082 } ] }
`,
      );
      const r = spawnSync(
        "ip",
        ["netns", "exec", NS.lb, process.execPath, `${ROOT}/bin/wasmvs.js`, "proxy", "-c", `${DIR}/fwd.yaml`].concat([
          "--mode",
          "packet",
          "--interface",
          IF.l2,
          "--log-level",
          "error",
        ]),
        { encoding: "utf8", timeout: 60_000 },
      );
      assert.not.equal(r.status, 0, `it must not run: ${r.stdout}${r.stderr}`);
      const out = r.stdout + r.stderr;
      assert.match(out, "net.ipv4.ip_forward is 1 and proxy.suppressKernel is false");
      assert.match(out, "Set net.ipv4.ip_forward=0");
      assert.match(out, "keep proxy.suppressKernel");
    },
  );

  test("stopping removes the takeover table and the addresses it added", async () => {
    await ctl.close();
    assert.is(await stopProxy(), 0);
    assert.is(takeoverDrops(), -1, "table gone");
    const lo = nsx(NS.lb, ["ip", "addr", "show", "dev", "lo"]);
    assert.not.match(lo, A.vip);
    assert.not.match(lo, A.snat);
  });

  test(
    "a fwmark service from the config file; a SIGKILLed proxy's chain is replaced at the next start (one jump, " +
      "served again), and a clean stop removes it",
    async () => {
      const vip = "10.232.100.8",
        ctl2 = `${DIR}/ctl-fwm.sock`;
      const mangle = (...a: string[]) => nsx(NS.lb, ["iptables", "-w", "5", "-t", "mangle", ...a]);
      const jumps = () =>
        mangle("-S", "PREROUTING")
          .split("\n")
          .filter((l) => l.includes("-j WASMVS-FWMARK")).length;
      mangle("-A", "PREROUTING", "-d", vip, "-p", "tcp", "-j", "MARK", "--set-mark", "11");
      writeFileSync(
        `${DIR}/fwm.yaml`,
        `proxy: { control: ${ctl2}, vipInterface: null, localAddresses: [${A.snat}] }
services:
  - { fwmark: 11, scheduler: rr, realServers: [ { addr: ${A.be[0]}, port: 8080 } ] }
`,
      );
      const start = async () => {
        rmSync(ctl2, { force: true }); // a killed proxy's socket file would look like a started one
        const p = await spawnPacketProxy(NS.lb, {
          config: `${DIR}/fwm.yaml`,
          control: ctl2,
          args: ["--interface", `${IF.lc},${IF.l1}`, "--interface", IF.l2, "--log-level", "warn"],
        });
        for (let i = 0; i < 100 && jumps() === 0; i++) await sleep(50);
        return p;
      };
      const served = async () => {
        const c: any[] = await client.call("openSeq", vip, 80, 2, true);
        assert.equal(
          c.map((x) => x.backend),
          [`${A.be[0]}:8080`, `${A.be[0]}:8080`],
          JSON.stringify(c),
        );
        await client.call("closeAll");
      };
      let p = await start();
      assert.is(jumps(), 1);
      await served();
      const gone = new Promise((r) => p.once("exit", r));
      p.kill("SIGKILL");
      await gone;
      assert.is(jumps(), 1, "the killed proxy's jump is still there");
      p = await start();
      assert.is(jumps(), 1, "replaced, not doubled");
      await served();
      const exited = new Promise<number | null>((r) => p.once("exit", (code) => r(code)));
      p.kill("SIGTERM");
      assert.is(await exited, 0);
      assert.is(jumps(), 0, "a clean stop removes the jump");
      assert.is(spawnSync("ip", ["netns", "exec", NS.lb, "iptables", "-t", "mangle", "-S", "WASMVS-FWMARK"]).status, 1);
      mangle("-F", "PREROUTING");
    },
  );
}

test("--mode packet says what it is missing", () => {
  const dir = `/tmp/wpk-cli-${process.pid}`;
  mkdirSync(dir, { recursive: true });
  writeFileSync(
    `${dir}/p.yaml`,
    `services:\n  - { protocol: tcp, addr: 10.9.9.9, port: 80, realServers: [ { addr: 10.9.8.1 } ] }\n`,
  );
  const r = spawnSync(
    process.execPath,
    [`${ROOT}/bin/wasmvs.js`, "proxy", "-c", `${dir}/p.yaml`, "--mode", "packet", "--control", "none"],
    { encoding: "utf8" },
  );
  rmSync(dir, { recursive: true, force: true });
  assert.is(r.status, 2);
  assert.match(r.stderr, "packet mode needs interfaces to receive on");
  assert.match(r.stderr, "needs an IPv4 full-NAT local address");
});

test.run();
