// Path MTU discovery through packet mode (issue 19): a client on a 1500-byte link sends full-size TCP
// segments through `wasmvs proxy --mode packet` to a backend (on a 1500-byte link itself) behind a
// 1280-byte link between two routers. The first router answers each too-big segment with ICMP "fragmentation
// needed" / ICMPv6
// "packet too big" addressed to the proxy's full-NAT local address; the proxy must translate it for the
// client's connection (as IPVS does), or the client never learns the path's MTU and the transfer stalls.
// Real namespaces, real kernels on every side, real TCP.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdirSync, rmSync, writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { ControlClient } from "../src/proxy/control.ts";
import { loadPacketAddon } from "../src/proxy/packet.ts";
import { agent, type Agent } from "./fixtures/proxy/netns.ts";
import { guardedBefore, needs, skip } from "./helpers/skip.ts";
import { ip, nsx, vethNet } from "./helpers/veth-net.ts";

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
  snat6: "fd34:200::1",
};
const DIR = `/tmp/wpm-test-${process.pid}`;
const CTL = `${DIR}/ctl.sock`;
const ROOT = fileURLToPath(new URL("..", import.meta.url));
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
  const addr = (ns: string, a: string, dev: string) =>
    ip([
      "-n",
      ns,
      ...(a.includes(":") ? ["-6"] : []),
      "addr",
      "add",
      a,
      "dev",
      dev,
      ...(a.includes(":") ? ["nodad"] : []),
    ]);
  const both = (ns: string, a4: string, a6: string, dev: string) => {
    addr(ns, `${a4}/24`, dev);
    addr(ns, `${a6}/64`, dev);
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
let proxyLog = "";
let be: Agent, ctl: ControlClient;

async function startProxy(): Promise<void> {
  writeFileSync(
    `${DIR}/p.yaml`,
    `proxy:
  control: ${CTL}
  vipInterface: lo
  tick: 100
  localAddresses: [${A.snat}, "${A.snat6}"]
services:
  - { protocol: tcp, addr: ${A.vip}, port: 80, scheduler: rr, realServers: [ { addr: ${A.be}, port: 8080 } ] }
  - { protocol: tcp, addr: "${A.vip6}", port: 80, scheduler: rr, realServers: [ { addr: "${A.be6}", port: 8080 } ] }
`,
  );
  proxy = spawn(
    "ip",
    [
      "netns",
      "exec",
      NS.lb,
      process.execPath,
      `${ROOT}/bin/wasmvs.js`,
      "proxy",
      "-c",
      `${DIR}/p.yaml`,
      "--mode",
      "packet",
      "--interface",
      `${IF.lc},${IF.lr}`,
      "--log-level",
      "warn",
      "--drain-timeout",
      "1",
      // proxy-packet.test.ts runs the default ring I/O; this file keeps the fallback's whole path tested
      "--packet-io",
      "mmsg",
    ],
    { stdio: ["ignore", "pipe", "pipe"] },
  );
  proxy.stdout!.on("data", (d) => (proxyLog += d));
  proxy.stderr!.on("data", (d) => (proxyLog += d));
  const end = Date.now() + 15000;
  while (!existsSync(CTL)) {
    if (proxy.exitCode !== null) throw new Error(`the packet-mode proxy exited (${proxy.exitCode}): ${proxyLog}`);
    if (Date.now() > end) throw new Error(`the packet-mode proxy did not open its control socket: ${proxyLog}`);
    await sleep(50);
  }
  ctl = await ControlClient.connect(CTL);
}

// Sends BYTES through the VIP in full-size segments and reads the echo; prints the bytes echoed back.
function transfer(vip: string): string {
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
    await startProxy();
  });
  test.after(async () => {
    await ctl?.close();
    if (proxy && proxy.exitCode === null) {
      const gone = new Promise((r) => proxy!.once("exit", r));
      proxy.kill("SIGTERM");
      await Promise.race([gone, sleep(5000)]);
      if (proxy.exitCode === null) proxy.kill("SIGKILL");
    }
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
}

test.run();
