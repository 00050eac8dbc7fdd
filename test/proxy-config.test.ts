// The proxy's configuration file: YAML and JSON to DesiredState, errors that point at line:column;
// the tables layer applying a desired state to the core by diff; the control protocol on loopback.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { readFileSync, mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import * as net from "node:net";
import { parseConfig, ConfigError, loadConfig, packetModeProblems } from "../src/proxy/config.ts";
import { Tables } from "../src/proxy/tables.ts";
import { Proxy } from "../src/proxy/index.ts";
import { ProxyTarget } from "../src/proxy/control.ts";
import { silentLogger } from "../src/proxy/log.ts";
import { Core } from "../src/core/index.ts";

const EXAMPLE = new URL("./fixtures/proxy/example.yaml", import.meta.url).pathname;

function errorsOf(text: string): string[] {
  try {
    parseConfig(text, "p.yaml");
  } catch (e) {
    assert.instance(e, ConfigError);
    return (e as Error).message.split("\n");
  }
  assert.unreachable("expected a ConfigError");
  return [];
}

test("the example parses to the desired state with health checks", () => {
  const c = loadConfig(EXAMPLE);
  assert.is(c.state.services.length, 2);
  const [web, dns] = c.state.services;
  assert.equal(
    { ...web, realServers: undefined },
    {
      protocol: "tcp",
      addr: "10.0.0.1",
      port: 80,
      scheduler: "wlc",
      flags: [],
      persistent: 300,
      netmask: "255.255.255.0",
      realServers: undefined,
    },
  );
  assert.equal(web.realServers[1], {
    addr: "10.1.0.2",
    port: 8080,
    weight: 1,
    fwd: "masq",
    upperThreshold: 100,
    lowerThreshold: 50,
  });
  assert.is(c.health.get("tcp 10.0.0.1:80|10.1.0.1:8080")!.type, "http");
  const ex = c.health.get("tcp 10.0.0.1:80|10.1.0.3:8080")!;
  assert.is(ex.type, "exec");
  assert.is(ex.onFail, "remove");
  assert.is(ex.rise, 2, "inherits the service's rise");
  assert.equal(dns.flags, ["mh-port"]);
  assert.is(c.health.get("udp [fd00::53]:53|[fd00:1::1]:53")!.expect, "pong");
  assert.equal(c.state.timeouts, { tcp: 900, tcpfin: 120, udp: 300 });
});

test("JSON is read by the same parser", () => {
  const c = parseConfig(
    JSON.stringify({
      services: [{ protocol: "udp", addr: "10.0.0.2", port: 53, scheduler: "rr", realServers: [{ addr: "10.1.0.1" }] }],
    }),
  );
  assert.is(c.state.services[0].realServers[0].port, 53, "the service's port by default");
});

test("errors point at the line and column", () => {
  const e = errorsOf(`services:
  - protocol: tcp
    addr: 10.0.0.300
    port: 80
    scheduler: fastest
    realServers:
      - { addr: 10.1.0.1, port: 70000, wieght: 2 }
`);
  assert.equal(e, [
    "p.yaml:3:11: services[0].addr: '10.0.0.300' is not an IPv4 or IPv6 address",
    "p.yaml:5:16: services[0].scheduler: 'fastest' is not one of rr, wrr, lc, wlc, lblc, lblcr, dh, sh, sed, " +
      "nq, mh, fo, ovf, twos",
    "p.yaml:7:40: services[0].realServers[0].wieght: unknown key (known: addr, port, weight, upperThreshold, " +
      "lowerThreshold, health, forward)",
    "p.yaml:7:33: services[0].realServers[0].port: must be an integer in 0..65535",
  ]);
});

test("syntax errors, duplicates, families and health specs", () => {
  assert.match(errorsOf("services: [\n  {addr: 1.2.3.4\n")[0], /^p\.yaml:\d+:\d+: /);
  const d = errorsOf(`services:
  - { addr: 10.0.0.1, port: 80 }
  - { addr: 10.0.0.1, port: 80 }
`);
  assert.match(d[0], /^p\.yaml:3:5: services\[1\]: duplicate service tcp 10\.0\.0\.1:80 \(also services\[0\]\)/);
  assert.match(
    errorsOf(`services:\n  - { addr: 10.0.0.1, port: 80, realServers: [ { addr: "fd00::1" } ] }\n`)[0],
    /p\.yaml:2:56: .*same address family/,
  );
  assert.match(
    errorsOf(`services:\n  - { addr: 10.0.0.1, port: 80, health: { type: exec } }\n`)[0],
    /exec checks need a command/,
  );
  assert.match(
    errorsOf(`services:\n  - { addr: 10.0.0.1, port: 80, health: { type: http, digest: xyz } }\n`)[0],
    /2:63: .*MD5 digest/,
  );
  assert.match(errorsOf(`proxy: { mode: socks }\n`)[0], /1:16: proxy\.mode: 'socks' is not one of socket, packet/);
});

test("packet-mode keys: validated with line:column, a local address may not be a VIP", () => {
  const ok = parseConfig(
    "proxy:\n  mode: packet\n  interfaces: [eth1]\n  localAddresses: [192.0.2.250]\n  batchSize: 32\n",
    "p.yaml",
  );
  assert.equal(ok.options.packet, {
    interfaces: ["eth1"],
    localAddresses: ["192.0.2.250"],
    forward: "fullnat",
    batchSize: 32,
    slotSize: 2048,
    suppressKernel: true,
    io: "ring",
    fwmarkQueue: 22355,
  });
  for (const bad of ["-1", "65536", "1.5", "x", "__proto__", "[1]", "{}", "1e9"])
    assert.match(
      errorsOf(`proxy: { mode: packet, fwmarkQueue: ${bad} }\n`)[0],
      /^p\.yaml:1:\d+: proxy\.fwmarkQueue: must be an integer in 0\.\.65535/,
      bad,
    );
  assert.is(parseConfig("proxy: { fwmarkQueue: 7 }\n", "p.yaml").options.packet.fwmarkQueue, 7);
  const errs = errorsOf(`proxy:
  mode: packet
  interfaces: [eth1, "no such name!"]
  localAddresses: [10.0.0.1, nope]
  batchSize: 0
  suppressKernel: yes please
services:
  - { protocol: tcp, addr: 10.0.0.1, port: 80 }
`);
  assert.equal(errs, [
    "p.yaml:3:22: proxy.interfaces[1]: not an interface name",
    "p.yaml:4:30: proxy.localAddresses[1]: 'nope' is not an IPv4 or IPv6 address",
    "p.yaml:5:14: proxy.batchSize: must be an integer in 1..4096",
    "p.yaml:6:19: proxy.suppressKernel: must be true or false",
    "p.yaml:2:3: proxy: full-NAT local address 10.0.0.1 is also a virtual service address; it must be dedicated",
  ]);
});

test("forward: bad values, and a masq real server on a full-NAT proxy, refused naming the field", async () => {
  const svc = (rs: string) => `services:\n  - { addr: 10.0.0.1, port: 80, realServers: [ ${rs} ] }\n`;
  for (const bad of ["bogus", "__proto__", "constructor", "toString", "5", "[masq]", "{}", "MASQ", '""'])
    assert.match(
      errorsOf(`proxy: { forward: ${bad} }\n`)[0],
      /^p\.yaml:1:\d+: proxy\.forward: .*(not one of fullnat, masq|must be a string)/,
      bad,
    );
  assert.match(
    errorsOf(svc("{ addr: 10.1.0.1, forward: __proto__ }"))[0],
    /^p\.yaml:2:\d+: services\[0\]\.realServers\[0\]\.forward: '__proto__' is not one of fullnat, masq/,
  );
  // -m is full-NAT on this proxy (the default): a masq real server would need a third meaning of -m
  assert.match(
    errorsOf(svc("{ addr: 10.1.0.1 }, { addr: 10.1.0.2, forward: masq }"))[0],
    /^p\.yaml:2:\d+: services\[0\]\.realServers\[1\]\.forward: masq on a full-NAT proxy: set proxy\.forward: masq/,
  );
  // what is stored: "masq" is -m (the proxy's NAT), "fullnat" full-NAT whatever -m means
  const mixed = parseConfig(
    "proxy: { mode: packet, forward: masq, interfaces: [eth1] }\n" +
      svc("{ addr: 10.1.0.1 }, { addr: 10.1.0.2, forward: fullnat }"),
  );
  assert.is(mixed.options.packet.forward, "masq");
  assert.equal(
    mixed.state.services[0].realServers.map((r) => r.fwd),
    ["masq", "fullnat"],
  );
  assert.equal(packetModeProblems(mixed.options, mixed.state.services), [
    "services[0].realServers[1].forward: fullnat needs an IPv4 local address (proxy.localAddresses or --local-address)",
  ]);
  const allMasq = parseConfig(
    `proxy: { mode: packet, forward: masq, interfaces: [eth1] }\n${svc("{ addr: 10.1.0.1 }")}`,
  );
  assert.equal(packetModeProblems(allMasq.options, allMasq.state.services), [], "masq needs no local address");
  const fullNat = parseConfig(`proxy: { mode: packet, interfaces: [eth1] }\n${svc("{ addr: 10.1.0.1 }")}`);
  assert.match(packetModeProblems(fullNat.options, fullNat.state.services)[0], "or proxy.forward: masq");
  // the core gets each real server's method; a reload that changes it edits the destination in place
  const core = await Core.load({ connCapacity: 256 });
  const tables = new Tables(core, "masq", true);
  tables.apply(mixed.state);
  const id = tables.services.get("tcp 10.0.0.1:80")!.id;
  assert.equal(
    core
      .service(id)
      .dests.map((d) => `${d.addr} ${d.fwd}`)
      .sort(),
    ["10.1.0.1 masq", "10.1.0.2 fullnat"],
  );
  tables.apply(allMasq.state);
  assert.equal(
    core.service(id).dests.map((d) => `${d.addr} ${d.fwd}`),
    ["10.1.0.1 masq"],
  );
  // socket mode cannot keep the client's address
  const e = await Proxy.start(
    parseConfig(`proxy: { forward: masq, control: null, vipInterface: null }\n${svc("{ addr: 10.1.0.1 }")}`),
    { log: silentLogger() },
  ).catch((x: Error) => x);
  assert.instance(e, Error);
  assert.match((e as Error).message, "proxy.forward: masq needs packet mode");
});

test("packet mode's I/O threads: proxy.workers 2..64 taken (with AF_XDP, fwmark services), more refused", () => {
  const svc = "services:\n  - { protocol: udp, addr: 10.1.0.1, port: 53, realServers: [ { addr: 10.2.0.1 } ] }\n";
  const head = "proxy: { mode: packet, interfaces: [eth1], localAddresses: [10.9.0.1], ";
  assert.is(parseConfig(`${head}workers: 64 }\n${svc}`).options.workers, 64);
  assert.match(errorsOf(`${head}workers: 65 }\n${svc}`).join("\n"), "packet mode runs 1..64 I/O threads, not 65");
  assert.is(parseConfig(`${head}workers: 2, packetIo: xdp }\n${svc}`).options.packet.io, "xdp");
  assert.is(parseConfig(`${head}workers: 1, packetIo: xdp }\n${svc}`).options.packet.io, "xdp");
  const marked = "services:\n  - { fwmark: 7, realServers: [ { addr: 10.2.0.1 } ] }\n";
  // one netfilter queue per thread: proxy.fwmarkQueue .. + workers - 1 must stay within 0..65535
  assert.is(parseConfig(`${head}workers: 2 }\n${marked}`).state.services.length, 1);
  assert.is(parseConfig(`${head}workers: 2, fwmarkQueue: 65534 }\n${marked}`).options.packet.fwmarkQueue, 65534);
  const past = errorsOf(`${head}workers: 2, fwmarkQueue: 65535 }\n${marked}`).join("\n");
  assert.match(past, /^p\.yaml:1:\d+: proxy: proxy\.fwmarkQueue 65535 with proxy\.workers \(--workers\) 2: /m);
  assert.match(
    past,
    "one netfilter queue per I/O thread, 65535..65536, past 65535; choose a proxy.fwmarkQueue of at most 65534",
  );
  assert.is(parseConfig(`${head}workers: 1 }\n${marked}`).state.services.length, 1);
});

test("tables: a reload diff edits in place (connections and templates survive)", async () => {
  const core = await Core.load({ debug: true, connCapacity: 256 });
  const tables = new Tables(core);
  const c1 = parseConfig(`services:
  - { addr: 10.0.0.1, port: 80, scheduler: wrr, persistent: 60,
      realServers: [ { addr: 10.1.0.1, weight: 2 }, { addr: 10.1.0.2 } ] }
`);
  tables.apply(c1.state);
  const id = tables.services.get("tcp 10.0.0.1:80")!.id;
  const r = core.packet("in", "tcp", "192.168.0.9", 40000, "10.0.0.1", 80, { flags: 2, now: 1 });
  assert.is(r.verdict, "forward");
  const c2 = parseConfig(`services:
  - { addr: 10.0.0.1, port: 80, scheduler: wrr, persistent: 60,
      realServers: [ { addr: 10.1.0.1, weight: 5 }, { addr: 10.1.0.3 } ] }
`);
  const res = tables.apply(c2.state, (k) => (k.endsWith("10.1.0.3:80") ? "quiesce" : undefined));
  assert.is(tables.services.get("tcp 10.0.0.1:80")!.id, id, "same service");
  assert.equal(res.removedDests, ["tcp 10.0.0.1:80|10.1.0.2:80"]);
  const ds = core
    .service(id)
    .dests.map((d) => `${d.addr}:${d.weight}`)
    .sort();
  assert.equal(ds, ["10.1.0.1:5", "10.1.0.3:0"]);
  assert.ok(
    core.conns().some((c) => c.template),
    "the persistence template is still there",
  );
});

test("control socket: mode 0600, JSON lines, ProxyTarget round trip, line-pointing reload errors", async () => {
  const dir = mkdtempSync(`${tmpdir()}/wvp-`);
  const ctl = `${dir}/ctl.sock`;
  const file = `${dir}/p.yaml`;
  const { writeFileSync } = await import("node:fs");
  writeFileSync(
    file,
    `proxy: { control: ${ctl}, vipInterface: null }\nservices:\n  - { addr: 127.0.0.1, port: 0, realServers: [] }\n`,
  );
  assert.match(
    errorsOf(readFileSync(file, "utf8"))[0],
    /3:30: services\[0\]\.port: port 0 \(all ports\) needs persistence/,
  );
  writeFileSync(file, `proxy: { control: ${ctl}, vipInterface: null, tick: 50 }\nservices: []\n`);
  const p = await Proxy.start(loadConfig(file), { log: silentLogger() });
  const srv = net.createServer((s) => s.end("hello")).listen(0, "127.0.0.1");
  try {
    assert.is(statSync(ctl).mode & 0o777, 0o600);
    const t = await ProxyTarget.open(ctl);
    if (!srv.listening) await new Promise((r) => srv.once("listening", r));
    const port = (srv.address() as net.AddressInfo).port;
    const vport = await freePort();
    const s = { protocol: "tcp" as const, addr: "127.0.0.1", port: vport, scheduler: "rr", flags: [], realServers: [] };
    await t.addService(s);
    await t.addRealServer(s, { addr: "127.0.0.1", port, weight: 1, fwd: "masq", upperThreshold: 0, lowerThreshold: 0 });
    const got = await new Promise<string>((res, rej) => {
      let b = "";
      net
        .connect(vport, "127.0.0.1")
        .on("data", (d) => (b += d))
        .on("end", () => res(b))
        .on("error", rej);
    });
    assert.is(got, "hello");
    const [st] = await t.services();
    assert.is(st.stats.conns, 1n, "bigints survive the JSON protocol");
    assert.is(st.realServers[0].stats.outBytes, 5n);
    writeFileSync(file, `services:\n  - { addr: 127.0.0.1, port: 80, scheduler: nope }\n`);
    try {
      await t.reload();
      assert.unreachable();
    } catch (e) {
      assert.match((e as Error).message, /p\.yaml:2:\d+: services\[0\]\.scheduler: 'nope'/);
    }
    assert.is((await t.services()).length, 1, "a bad reload changes nothing");
    await t.close();
  } finally {
    srv.close();
    await p.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});

function freePort(): Promise<number> {
  return new Promise((res) => {
    const s = net.createServer().listen(0, "127.0.0.1", () => {
      const p = (s.address() as net.AddressInfo).port;
      s.close(() => res(p));
    });
  });
}

test.run();
