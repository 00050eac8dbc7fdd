// Path MTU discovery through packet mode (issue 19): a client on a 1500-byte link sends full-size TCP
// segments through `wasmvs proxy --mode packet` to a backend (on a 1500-byte link itself) behind a
// 1280-byte link between two routers. The first router answers each too-big segment with ICMP "fragmentation
// needed" / ICMPv6
// "packet too big" addressed to the proxy's full-NAT local address; the proxy must translate it for the
// client's connection (as IPVS does), or the client never learns the path's MTU and the transfer stalls.
// Real namespaces, real kernels on every side, real TCP.
// Then the proxy's own outgoing link narrows to 1280 (as ip_vs_xmit's ensure_mtu_is_adequate): the proxy itself
// must answer a segment that no longer fits after NAT with the error, quoting it as the client sent it; an
// IPv4 datagram without DF is fragmented instead; a flood of too-big packets gets an error each, as from the kernel.
import { test } from "uvu";
import * as assert from "uvu/assert";
import type { ChildProcess } from "node:child_process";
import { mkdirSync, rmSync, writeFileSync } from "node:fs";
import { ControlClient } from "../src/proxy/control.ts";
import { loadPacketAddon } from "../src/proxy/packet.ts";
import { agent, type Agent } from "./fixtures/proxy/netns.ts";
import { guardedBefore, needs, skip } from "./helpers/skip.ts";
import { ip, nsx, spawnPacketProxy, vethNet, addrAdd } from "./helpers/veth-net.ts";

const why =
  needs(["ip", "nft", "ethtool", "python3"], "apt-get install -y iproute2 nftables ethtool python3") ||
  (loadPacketAddon().error
    ? `the native packet addon is not built (npm install builds it): ${loadPacketAddon().error}`
    : "");

const sfx = (process.pid % 46656).toString(36);
const NS = { client: `wpm${sfx}c`, lb: `wpm${sfx}l`, r: `wpm${sfx}r`, r2: `wpm${sfx}s`, be: `wpm${sfx}b` };
const IF = {
  cl: `wpm${sfx}cl`,
  lc: `wpm${sfx}lc`,
  lr: `wpm${sfx}lr`,
  rl: `wpm${sfx}rl`,
  rs: `wpm${sfx}rs`,
  sr: `wpm${sfx}sr`,
  sb: `wpm${sfx}sb`,
  bs: `wpm${sfx}bs`,
};
const A = {
  client: "10.234.1.2",
  lbc: "10.234.1.1",
  lbr: "10.234.2.1",
  rl: "10.234.2.2",
  rs: "10.234.4.1",
  sr: "10.234.4.2",
  sb: "10.234.3.1",
  be: "10.234.3.11",
  vip: "10.234.100.1",
  vipOwn: "10.234.100.2", // the proxy's own link narrowed, mmsg I/O
  vipRing: "10.234.100.3", // the same through the rings
  snat: "10.234.200.1",
  client6: "fd34:1::2",
  lbc6: "fd34:1::1",
  lbr6: "fd34:2::1",
  rl6: "fd34:2::2",
  rs6: "fd34:4::1",
  sr6: "fd34:4::2",
  sb6: "fd34:3::1",
  be6: "fd34:3::11",
  vip6: "fd34:100::1",
  vipOwn6: "fd34:100::2",
  vipRing6: "fd34:100::3",
  snat6: "fd34:200::1",
};
const DIR = `/tmp/wpm-test-${process.pid}`;
const CTL = `${DIR}/ctl.sock`;
const BYTES = 200_000;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const net = vethNet(Object.values(NS));
const teardown = net.teardown;

function setup() {
  net.setup([
    [NS.client, IF.cl, NS.lb, IF.lc],
    [NS.lb, IF.lr, NS.r, IF.rl],
    [NS.r, IF.rs, NS.r2, IF.sr],
    [NS.r2, IF.sb, NS.be, IF.bs],
  ]);
  // the narrow link, both its ends (a veth drops what is over its receiver's MTU without a word)
  ip(["-n", NS.r, "link", "set", IF.rs, "mtu", "1280"]);
  ip(["-n", NS.r2, "link", "set", IF.sr, "mtu", "1280"]);
  const both = (ns: string, a4: string, a6: string, dev: string) => {
    addrAdd(ns, `${a4}/24`, dev);
    addrAdd(ns, `${a6}/64`, dev);
  };
  both(NS.client, A.client, A.client6, IF.cl);
  both(NS.lb, A.lbc, A.lbc6, IF.lc);
  both(NS.lb, A.lbr, A.lbr6, IF.lr);
  both(NS.r, A.rl, A.rl6, IF.rl);
  both(NS.r, A.rs, A.rs6, IF.rs);
  both(NS.r2, A.sr, A.sr6, IF.sr);
  both(NS.r2, A.sb, A.sb6, IF.sb);
  both(NS.be, A.be, A.be6, IF.bs);
  const route = (ns: string, dst: string, via: string) =>
    ip(["-n", ns, ...(via.includes(":") ? ["-6"] : []), "route", "add", dst, "via", via]);
  route(NS.client, "default", A.lbc);
  route(NS.client, "default", A.lbc6);
  route(NS.lb, "10.234.3.0/24", A.rl);
  route(NS.lb, "fd34:3::/64", A.rl6);
  route(NS.r, "10.234.3.0/24", A.sr);
  route(NS.r, "fd34:3::/64", A.sr6);
  route(NS.r, "default", A.lbr);
  route(NS.r, "default", A.lbr6);
  route(NS.r2, "default", A.rs);
  route(NS.r2, "default", A.rs6);
  route(NS.be, "default", A.sb);
  route(NS.be, "default", A.sb6);
  for (const ns of [NS.r, NS.r2]) {
    nsx(ns, ["sysctl", "-q", "-w", "net.ipv4.ip_forward=1"]);
    nsx(ns, ["sysctl", "-q", "-w", "net.ipv6.conf.all.forwarding=1"]);
  }
  // segments as a NIC's peer sends them, not 64 KiB TSO/GSO aggregates (as in proxy-packet.test.ts)
  for (const [ns, dev] of [
    [NS.client, IF.cl],
    [NS.be, IF.bs],
  ]) {
    nsx(ns, ["ethtool", "-K", dev, "tso", "off", "gso", "off"]);
  }
}

let proxy: ChildProcess | undefined;
let be: Agent, ctl: ControlClient;

async function startProxy(io: "mmsg" | "ring" = "mmsg"): Promise<void> {
  const svc = (proto: string, vip: string, port: number, be: string, bePort: number) =>
    `  - { protocol: ${proto}, addr: "${vip}", port: ${port}, scheduler: rr, ` +
    `realServers: [ { addr: "${be}", port: ${bePort} } ] }\n`;
  let services = "";
  for (const [vip, vip6] of [
    [A.vip, A.vip6],
    [A.vipOwn, A.vipOwn6],
    [A.vipRing, A.vipRing6],
  ]) {
    services += svc("tcp", vip, 80, A.be, 8080) + svc("tcp", vip6, 80, A.be6, 8080);
    services += svc("udp", vip, 53, A.be, 5353) + svc("udp", vip6, 53, A.be6, 5353);
  }
  writeFileSync(
    `${DIR}/p.yaml`,
    `proxy:
  control: ${CTL}
  vipInterface: lo
  tick: 100
  localAddresses: [${A.snat}, "${A.snat6}"]
services:
${services}`,
  );
  proxy = await spawnPacketProxy(NS.lb, {
    config: `${DIR}/p.yaml`,
    control: CTL,
    args: [
      "--interface",
      `${IF.lc},${IF.lr}`,
      "--log-level",
      "warn",
      "--drain-timeout",
      "1",
      // proxy-packet.test.ts runs the default ring I/O; this file keeps the fallback's whole path tested
      "--packet-io",
      io,
    ],
  });
  ctl = await ControlClient.connect(CTL);
}

async function stopProxy(): Promise<void> {
  await ctl?.close();
  if (proxy && proxy.exitCode === null) {
    const gone = new Promise((r) => proxy!.once("exit", r));
    proxy.kill("SIGTERM");
    await Promise.race([gone, sleep(5000)]);
    if (proxy.exitCode === null) proxy.kill("SIGKILL");
  }
  rmSync(CTL, { force: true });
}

// Sends BYTES through the VIP in full-size segments and reads the echo; prints the bytes echoed back.
function transfer(vip: string): string {
  return nsx(NS.client, ["python3", "-c", transferPy(vip)]).trim();
}
function transferPy(vip: string): string {
  const py = `import socket, sys
fam = socket.AF_INET6 if ":" in "${vip}" else socket.AF_INET
s = socket.socket(fam, socket.SOCK_STREAM)
s.settimeout(8)
try:
    s.connect(("${vip}", 80))
    f = s.makefile("rb")
    f.readline()
    s.sendall(b"x" * ${BYTES})
    s.shutdown(socket.SHUT_WR)
    n = 0
    while True:
        b = f.read1(65536)
        if not b: break
        n += len(b)
    print(n)
except OSError as e:
    print("failed:", e)
`;
  return py;
}

// UDP datagrams of `size` bytes from the client to VIP:53. pmtu: Linux's IP_MTU_DISCOVER value (0 DONT: no
// DF; 3 PROBE: DF set whatever the path MTU). With echo, sends one and waits for its echo (up to 4 tries:
// the backend's own first reply may be lost to the narrow link) and prints the echo's length; without,
// sends `count` as fast as it can and prints how many went out.
function udp(vip: string, size: number, pmtu: number, opts: { echo: boolean; count?: number }): string {
  const v6 = vip.includes(":");
  const py = `import socket
fam = socket.AF_INET6 if ${v6 ? "True" : "False"} else socket.AF_INET
s = socket.socket(fam, socket.SOCK_DGRAM)
if not ${v6 ? "True" : "False"}:
    s.setsockopt(socket.IPPROTO_IP, 10, ${pmtu})
s.settimeout(1.5)
msg = b"u" * ${size}
if ${opts.echo ? "True" : "False"}:
    got = "no echo"
    for i in range(4):
        s.sendto(msg, ("${vip}", 53))
        try:
            got = str(len(s.recv(65536)))
            break
        except socket.timeout:
            pass
    print(got)
else:
    n = 0
    for i in range(${opts.count ?? 1}):
        try:
            s.sendto(msg, ("${vip}", 53))
            n += 1
        except OSError:
            pass
    print(n)
`;
  return nsx(NS.client, ["python3", "-c", py]).trim();
}

if (why) {
  skip(import.meta.url, "path MTU discovery through packet mode (every test of this file)", why);
} else {
  guardedBefore(test, async () => {
    rmSync(DIR, { recursive: true, force: true });
    mkdirSync(DIR, { recursive: true });
    setup();
    be = await agent(NS.be);
    await be.call("backend", A.be, 8080, "tcp");
    await be.call("backend", A.be6, 8080, "tcp");
    await be.call("backend", A.be, 5353, "udp");
    await be.call("backend", A.be6, 5353, "udp");
    await startProxy();
  });
  test.after(async () => {
    await stopProxy();
    await be?.stop();
    teardown();
    rmSync(DIR, { recursive: true, force: true });
  });

  const families = [
    ["IPv4 (ICMP fragmentation needed)", A.vip],
    ["IPv6 (ICMPv6 packet too big)", A.vip6],
  ] as const;
  for (const [family, vip] of families) {
    test(
      `${family}: a 200 kB TCP transfer with 1500-byte segments completes through a 1280-byte link ` +
        "(was: the router's error reached only the proxy's local address and the transfer stalled)",
      async () => {
        const st0: any = await ctl.call("status");
        const got = transfer(vip);
        assert.is(got, String(BYTES), `every byte echoed back: ${got}`);
        const route = nsx(NS.client, ["ip", ...(vip.includes(":") ? ["-6"] : []), "route", "get", vip]);
        assert.match(route, /mtu 1280/, `the client learnt the path's MTU: ${route}`);
        const st1: any = await ctl.call("status");
        assert.is(st1.verdicts.drop - st0.verdicts.drop, 0, `nothing dropped: ${JSON.stringify(st1.drops)}`);
        assert.is(st1.io.io, "mmsg");
        assert.is(st1.io.txPackets, st1.verdicts.forward, "every packet the core forwarded was sent");
      },
    );
  }

  const delta = (a: any, b: any, k: string) => (b.io[k] ?? 0) - (a.io[k] ?? 0);
  // Every packet the core forwarded is sent whole, sent in fragments, or dropped as too big, and counted.
  const accounted = (a: any, b: any) =>
    delta(a, b, "txPackets") + delta(a, b, "txTooBig") + delta(a, b, "txOtherErrors") + delta(a, b, "txNoBuffer");

  test("the proxy's own outgoing link narrows to 1280 (both its ends)", () => {
    ip(["-n", NS.lb, "link", "set", IF.lr, "mtu", "1280"]);
    ip(["-n", NS.r, "link", "set", IF.rl, "mtu", "1280"]);
  });
  // Each echo teaches the backend a 1280 path to the proxy's local address (the narrow links are on its
  // way back too), and it would then advertise an MSS that fits, so no segment would be too big: before a
  // transfer it forgets, and advertises its own link's MSS again.
  const backendForgets = () => {
    ip(["-n", NS.be, "route", "flush", "cache"]);
    ip(["-n", NS.be, "-6", "route", "flush", "cache"]);
  };

  for (const io of ["mmsg", "ring"] as const) {
    const [vip4, vip6] = io === "mmsg" ? [A.vipOwn, A.vipOwn6] : [A.vipRing, A.vipRing6];
    if (io === "ring")
      test("the proxy starts again with ring I/O", async () => {
        await stopProxy();
        await startProxy("ring");
        const st: any = await ctl.call("status");
        assert.is(st.io.io, "ring", `ring I/O in use: ${st.io.ringFallback}`);
      });
    for (const [family, vip] of [
      ["IPv4 (ICMP fragmentation needed)", vip4],
      ["IPv6 (ICMPv6 packet too big)", vip6],
    ] as const) {
      test(
        `${io}: ${family}: 1500-byte segments over the proxy's own 1280-byte link: the proxy sends the error ` +
          "itself, quoting the segment as the client sent it, and the 200 kB transfer completes " +
          "(was: counted as tx_too_big and dropped, the transfer stalled)",
        async () => {
          backendForgets();
          const st0: any = await ctl.call("status");
          const got = transfer(vip);
          assert.is(got, String(BYTES), `every byte echoed back: ${got}`);
          const route = nsx(NS.client, ["ip", ...(vip.includes(":") ? ["-6"] : []), "route", "get", vip]);
          assert.match(route, /mtu 1280/, `the client learnt the path's MTU: ${route}`);
          const st1: any = await ctl.call("status");
          assert.ok(delta(st0, st1, "txIcmpTooBig") >= 1, `errors sent: ${JSON.stringify(st1.io)}`);
          assert.is(delta(st0, st1, "txIcmpUnquoted"), 0, "every error could quote its packet");
          assert.is(st1.io.io, io);
          assert.is(
            accounted(st0, st1),
            st1.verdicts.forward - st0.verdicts.forward,
            `every forwarded packet sent or counted: ${JSON.stringify(st1.io)}`,
          );
        },
      );
    }
  }

  test(
    "IPv4 without DF: a 1400-byte UDP datagram over the proxy's 1280-byte link is fragmented (as the kernel " +
      "fragments what IPVS sends) and reaches the backend whole",
    async () => {
      // the client learnt the VIP's path MTU above and would fragment the datagram itself: it forgets
      ip(["-n", NS.client, "route", "flush", "cache"]);
      const st0: any = await ctl.call("status");
      const got = udp(A.vipRing, 1400, 0, { echo: true });
      // the echo is "ID <backend> " followed by the datagram: longer than 1400 by the backend's prefix
      assert.ok(Number(got) > 1400, `the whole datagram echoed: ${got}`);
      const st1: any = await ctl.call("status");
      assert.ok(delta(st0, st1, "txFragmented") >= 1, `fragmented: ${JSON.stringify(st1.io)}`);
      assert.ok(delta(st0, st1, "txFragments") >= 2 * delta(st0, st1, "txFragmented"));
      assert.is(delta(st0, st1, "txTooBig"), 0, "nothing dropped as too big");
    },
  );

  test(
    "a flood of 300 too-big datagrams with DF: an error for every one, as the kernel (which never limits " +
      '"fragmentation needed": net/ipv4/icmp.c); every packet accounted for (was: 50 errors, the rest limited)',
    async () => {
      const st0: any = await ctl.call("status");
      const sent = Number(udp(A.vipRing, 1400, 3, { echo: false, count: 300 }));
      assert.is(sent, 300, "the client sent them all");
      let st1: any = st0;
      for (let i = 0; i < 50 && st1.verdicts.forward - st0.verdicts.forward < 300; i++) {
        await sleep(100);
        st1 = await ctl.call("status");
      }
      const tooBig = delta(st0, st1, "txTooBig");
      const made = delta(st0, st1, "txIcmpTooBig"),
        limited = delta(st0, st1, "txIcmpLimited");
      assert.is(tooBig, 300, `every datagram dropped as too big: ${JSON.stringify(st1.io)}`);
      assert.is(made, 300, `each got its error (${made} made, ${limited} limited)`);
      assert.is(limited, 0, "none limited");
    },
  );
}

test.run();
