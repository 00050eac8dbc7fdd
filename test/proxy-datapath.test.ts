// Socket mode's data path under the loads that broke it (issue 15): a churn of short connections past the
// connection table, a UDP burst from many source ports, UDP flows eating the open-files budget, a backend
// that accepts and never answers, and a /metrics scrape of thousands of services. Real sockets on loopback
// addresses of their own (127.0.9x.*) and a real proxy, in process or as a child under prlimit.
import { test } from "uvu";
import * as assert from "uvu/assert";
import * as net from "node:net";
import * as dgram from "node:dgram";
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { Proxy, parseConfig } from "../src/proxy/index.ts";
import { silentLogger } from "../src/proxy/log.ts";
import { metricsText } from "../src/proxy/metrics.ts";
import { ControlClient } from "../src/proxy/control.ts";
import { needs, testOrSkip } from "./helpers/skip.ts";
import { freePort, portOf } from "./helpers/ports.ts";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const bin = fileURLToPath(new URL("../bin/wasmvs.js", import.meta.url));

async function start(yaml: string): Promise<Proxy> {
  return Proxy.start(parseConfig(yaml), { log: silentLogger() });
}

function echoServer(host: string, port: number): Promise<net.Server> {
  const s = net.createServer((c) => {
    c.on("data", (d) => c.write(d));
    c.on("end", () => c.end());
    c.on("error", () => {});
  });
  return new Promise((r) => s.listen(port, host, () => r(s)));
}

function closeServer(s: net.Server | dgram.Socket): Promise<void> {
  return new Promise((r) => (s instanceof net.Server ? s.close(() => r()) : s.close(() => r())));
}

// connect, send a byte, wait for its echo, close: true when echoed
function oneShot(host: string, port: number): Promise<boolean> {
  return new Promise((res) => {
    let got = false;
    const s = net.connect(port, host, () => s.write("x"));
    s.on("data", () => {
      got = true;
      s.end();
    });
    s.on("close", () => res(got));
    s.on("error", () => {});
    s.setTimeout(5000, () => s.destroy());
  });
}

function hold(host: string, port: number): Promise<net.Socket> {
  return new Promise((res, rej) => {
    const s = net.connect(port, host, () => res(s));
    s.once("error", rej);
  });
}

function ping(s: net.Socket): Promise<boolean> {
  return new Promise((res) => {
    const t = setTimeout(() => res(false), 3000);
    s.once("data", () => {
      clearTimeout(t);
      res(true);
    });
    s.write("p");
  });
}

// ---- item 3: the connection table -------------------------------------------------------------------
test(
  "a churn past the connection table is served (was: 404,700 of 404,700 refused once TIME_WAIT filled it); " +
    "established connections are never evicted",
  async () => {
    const be = await echoServer("127.0.91.2", 0);
    const vport = await freePort("127.0.91.1");
    let p!: Proxy;
    try {
      p = await start(`proxy: { control: null, vipInterface: null, tick: 50, connCapacity: 64 }
services:
  - { protocol: tcp, addr: 127.0.91.1, port: ${vport}, scheduler: rr,
      realServers: [ { addr: 127.0.91.2, port: ${portOf(be)} } ] }
`);
      const held = await Promise.all(Array.from({ length: 16 }, () => hold("127.0.91.1", vport)));
      let _ok = 0,
        refused = 0;
      for (let round = 0; round < 40; round++) {
        const r = await Promise.all(Array.from({ length: 10 }, () => oneShot("127.0.91.1", vport)));
        for (const x of r)
          if (x) _ok++;
          else refused++;
      }
      assert.is(
        refused,
        0,
        `refused ${refused} of 400 through a 64-entry table; drops ${JSON.stringify(Object.fromEntries(p.fw.drops))}`,
      );
      const st = p.core.connStats();
      assert.ok(st.evictedFinished > 300, `finished entries evicted: ${st.evictedFinished}`);
      assert.equal(
        await Promise.all(held.map(ping)),
        held.map(() => true),
        "every held connection still echoes",
      );
      // a table of established connections only: the next connection is refused (counted), none is evicted
      const more = await Promise.all(Array.from({ length: 48 }, () => hold("127.0.91.1", vport)));
      await sleep(200);
      const before = p.core.connStats();
      const extra = await oneShot("127.0.91.1", vport);
      assert.is(extra, false, "no room: refused");
      assert.ok(p.core.connStats().refusedFull > before.refusedFull, "counted as refused, table full");
      assert.equal(
        await Promise.all([...held, ...more].map(ping)),
        [...held, ...more].map(() => true),
        "all 64 established still echo",
      );
      const m = await metricsText(p);
      assert.match(m, /wasmvs_proxy_conn_table_evicted_total\{class="finished"\} [1-9]/);
      for (const s of [...held, ...more]) s.destroy();
    } finally {
      await p?.stop();
      await closeServer(be);
    }
  },
);

test(
  "full table, in the core: finished entries go first, then other inactive ones, " + "never an established one",
  async () => {
    const { Core, TCP_FLAGS: F } = await import("../src/core/index.ts");
    const c = await Core.load({ debug: true, connCapacity: 64 });
    const svc = c.addService({ proto: "tcp", addr: "10.0.0.1", port: 80, scheduler: "rr" });
    c.addDest(svc, { addr: "10.1.0.1", port: 8080, weight: 1, fwd: "masq" });
    let now = 1000;
    const open = (port: number) => {
      const r = c.packet("in", "tcp", "192.168.1.5", port, "10.0.0.1", 80, { flags: F.SYN, now: now++ });
      if (r.verdict !== "forward") return r;
      c.packet("out", "tcp", "10.1.0.1", 8080, "192.168.1.5", port, { flags: F.SYN | F.ACK, now: now++ });
      c.packet("in", "tcp", "192.168.1.5", port, "10.0.0.1", 80, { flags: F.ACK, now: now++ });
      return r;
    };
    const state = (port: number) => c.conns().find((x) => x.cport === port)?.state;
    for (let p = 1000; p < 1032; p++) open(p); // 32 established
    for (let p = 2000; p < 2016; p++) {
      // 16 in CLOSE_WAIT
      open(p);
      c.packet("in", "tcp", "192.168.1.5", p, "10.0.0.1", 80, { flags: F.FIN | F.ACK, now: now++ });
    }
    for (let p = 3000; p < 3016; p++) {
      // 16 in TIME_WAIT
      open(p);
      c.packet("in", "tcp", "192.168.1.5", p, "10.0.0.1", 80, { flags: F.FIN | F.ACK, now: now++ });
      c.packet("out", "tcp", "10.1.0.1", 8080, "192.168.1.5", p, { flags: F.FIN | F.ACK, now: now++ });
    }
    assert.is(state(2000), "CLOSE_WAIT");
    assert.is(state(3000), "TIME_WAIT");
    assert.is(c.connStats().live, 64);
    for (let p = 4000; p < 4016; p++) assert.is(open(p).verdict, "forward");
    assert.equal([c.connStats().evictedFinished, c.connStats().evictedInactive], [16, 0]);
    assert.is(state(3000), undefined, "TIME_WAIT entries went first");
    assert.is(state(2000), "CLOSE_WAIT", "inactive ones stayed while finished ones remained");
    for (let p = 5000; p < 5016; p++) assert.is(open(p).verdict, "forward");
    assert.equal([c.connStats().evictedFinished, c.connStats().evictedInactive], [16, 16]);
    const r = open(6000);
    assert.is(r.verdict, "drop");
    assert.is(r.reason, "connection table full");
    assert.is(c.connStats().refusedFull, 1);
    for (const p of [1000, 1031, 4000, 5015]) assert.is(state(p), "ESTABLISHED", `established ${p} kept`);
  },
);

test(
  "/metrics under the per-destination cap: every destination's series, each family once, values as the core " +
    "has them",
  async () => {
    const bes = await Promise.all(Array.from({ length: 3 }, (_, i) => echoServer(`127.0.95.${i + 20}`, 0)));
    const [vport, ...rports] = [await freePort("127.0.95.19"), ...bes.map(portOf)];
    let p!: Proxy;
    try {
      p = await start(`proxy: { control: null, vipInterface: null, tick: 1000 }
services:
  - protocol: tcp
    addr: 127.0.95.19
    port: ${vport}
    scheduler: rr
    realServers:
      - { addr: 127.0.95.20, port: ${rports[0]}, weight: 2 }
      - { addr: 127.0.95.21, port: ${rports[1]} }
      - { addr: 127.0.95.22, port: ${rports[2]}, weight: 0 }
`);
      for (let i = 0; i < 4; i++) assert.ok(await oneShot("127.0.95.19", vport));
      const held = await hold("127.0.95.19", vport);
      await sleep(100);
      const text = await metricsText(p);
      const line = (name: string, dest: string) => `${name}{service="tcp 127.0.95.19:${vport}",destination="${dest}"} `;
      const v = (name: string, dest: string) => {
        const at = text.indexOf(line(name, dest));
        return at < 0 ? NaN : Number(text.slice(at + line(name, dest).length, text.indexOf("\n", at)));
      };
      const both = (name: string) => v(name, `127.0.95.20:${rports[0]}`) + v(name, `127.0.95.21:${rports[1]}`);
      assert.is(v("wasmvs_proxy_destination_configured_weight", `127.0.95.20:${rports[0]}`), 2);
      assert.is(v("wasmvs_proxy_destination_weight", `127.0.95.22:${rports[2]}`), 0);
      assert.is(both("wasmvs_proxy_destination_connections_total"), 5);
      const open = both("wasmvs_proxy_destination_open_flows");
      assert.is(open, 1, "the held connection");
      assert.match(text, "wasmvs_proxy_metrics_destinations_omitted 0\n");
      assert.match(text, `wasmvs_proxy_service_connections_total{service="tcp 127.0.95.19:${vport}"} 5\n`);
      held.destroy();
    } finally {
      await p?.stop();
      await Promise.all(bes.map(closeServer));
    }
  },
);

// ---- item 7: the UDP flow table ---------------------------------------------------------------------
function udpEchoServer(host: string, port: number): Promise<dgram.Socket> {
  const s = dgram.createSocket("udp4");
  s.on("message", (m, r) => s.send(m, r.port, r.address));
  return new Promise((res) => s.bind(port, host, () => res(s)));
}

function udpAsk(host: string, port: number, ms = 1500): Promise<boolean> {
  return new Promise((res) => {
    const s = dgram.createSocket("udp4");
    const t = setTimeout(() => {
      s.close();
      res(false);
    }, ms);
    s.on("message", () => {
      clearTimeout(t);
      s.close();
      res(true);
    });
    s.send("q", port, host);
  });
}

test(
  "a full UDP table gives an idle flow's place to a new client (was: 0 of 10 answered after a burst " +
    "from 5,000 ports)",
  async () => {
    const be = await udpEchoServer("127.0.92.2", 0);
    const vport = await freePort("127.0.92.1", "udp");
    let p!: Proxy;
    try {
      p = await start(`proxy: { control: null, vipInterface: null, tick: 50, udpFlows: 32 }
services:
  - { protocol: udp, addr: 127.0.92.1, port: ${vport}, scheduler: rr,
      realServers: [ { addr: 127.0.92.2, port: ${portOf(be)} } ] }
`);
      // a burst from 200 source ports fills the table (the first 32 are answered)
      const burst = await Promise.all(Array.from({ length: 200 }, () => udpAsk("127.0.92.1", vport, 500)));
      assert.ok(burst.filter(Boolean).length >= 32, `burst answered: ${burst.filter(Boolean).length}`);
      await sleep(1200); // the burst's flows are idle now
      const late = await Promise.all(Array.from({ length: 10 }, () => udpAsk("127.0.92.1", vport)));
      assert.is(
        late.filter(Boolean).length,
        10,
        `new clients answered after the burst: ${late.filter(Boolean).length} of 10`,
      );
      assert.ok((p.fw.drops.get("udp_evicted_idle") ?? 0) >= 10, "evictions counted");
      const fw = p.fw as any;
      assert.ok(fw.udpCount <= 32, `flows ${fw.udpCount} within the table's 32`);
    } finally {
      await p?.stop();
      await closeServer(be);
    }
  },
);

test("idle UDP flows expire by the UDP timeout", async () => {
  const be = await udpEchoServer("127.0.92.4", 0);
  const vport = await freePort("127.0.92.3", "udp");
  let p!: Proxy;
  try {
    p = await start(`proxy: { control: null, vipInterface: null, tick: 50, udpFlows: 32 }
timeouts: { udp: 1 }
services:
  - { protocol: udp, addr: 127.0.92.3, port: ${vport}, scheduler: rr,
      realServers: [ { addr: 127.0.92.4, port: ${portOf(be)} } ] }
`);
    const r = await Promise.all(Array.from({ length: 20 }, () => udpAsk("127.0.92.3", vport)));
    assert.is(r.filter(Boolean).length, 20);
    const fw = p.fw as any;
    assert.is(fw.udpCount, 20);
    const end = Date.now() + 4000;
    while (fw.udpCount > 0 && Date.now() < end) await sleep(50);
    assert.is(fw.udpCount, 0, "every flow gone after the 1 s UDP timeout");
  } finally {
    await p?.stop();
    await closeServer(be);
  }
});

// ---- item 8: the open-files budget ------------------------------------------------------------------
const whyLimit = needs(["prlimit"], "apt-get install -y util-linux", { root: false });
testOrSkip(
  import.meta.url,
  whyLimit,
  "UDP flows count in the open-files budget: TCP is refused as max_conns, " +
    "never EMFILE (was: EMFILE at ~7.9k connections with 4,096 UDP flows)",
  async () => {
    const dir = mkdtempSync(join(tmpdir(), "wasmvs-fd-"));
    const tcpBe = await echoServer("127.0.93.2", 0);
    const udpBe = await udpEchoServer("127.0.93.2", 0);
    const [tport, uport] = [await freePort("127.0.93.1"), await freePort("127.0.93.1", "udp")];
    const ctlPath = join(dir, "ctl.sock");
    writeFileSync(
      join(dir, "p.yaml"),
      `proxy: { control: ${ctlPath}, vipInterface: null, tick: 100, udpFlows: 150 }
services:
  - { protocol: tcp, addr: 127.0.93.1, port: ${tport}, scheduler: rr,
      realServers: [ { addr: 127.0.93.2, port: ${portOf(tcpBe)} } ] }
  - { protocol: udp, addr: 127.0.93.1, port: ${uport}, scheduler: rr,
      realServers: [ { addr: 127.0.93.2, port: ${portOf(udpBe)} } ] }
`,
    );
    // 700 files: maxConns alone (317) would have let TCP take more than the 150 UDP flows leave
    const proxy = spawn(
      "prlimit",
      ["--nofile=700:700", process.execPath, bin, "proxy", "run", "-c", join(dir, "p.yaml"), "--log-level", "error"],
      { stdio: ["ignore", "pipe", "pipe"] },
    );
    let log = "";
    proxy.stdout.on("data", (d) => (log += d));
    proxy.stderr.on("data", (d) => (log += d));
    const socks: net.Socket[] = [];
    const udps: dgram.Socket[] = [];
    let ctl: ControlClient | undefined;
    try {
      const end = Date.now() + 20000;
      while (!existsSync(ctlPath) && Date.now() < end && proxy.exitCode === null) await sleep(50);
      assert.ok(existsSync(ctlPath), `the proxy started\n${log}`);
      ctl = await ControlClient.connect(ctlPath);
      // 150 UDP flows, kept open
      for (let i = 0; i < 150; i++) {
        const s = dgram.createSocket("udp4");
        udps.push(s);
        const got = new Promise<boolean>((res) => {
          const t = setTimeout(() => res(false), 2000);
          s.once("message", () => {
            clearTimeout(t);
            res(true);
          });
        });
        s.send("u", uport, "127.0.93.1");
        assert.ok(await got, `UDP flow ${i} answered`);
      }
      // TCP until refused
      let opened = 0,
        refused = 0;
      for (let i = 0; i < 400 && refused < 5; i++) {
        try {
          const s = await hold("127.0.93.1", tport);
          socks.push(s);
          if (await ping(s)) opened++;
          else refused++;
        } catch {
          refused++;
        }
      }
      const st: any = await ctl.call("status");
      const emfile = Object.entries(st.drops).filter(([k]) => /emfile|enfile|relay_refused|connect_e/.test(k));
      assert.equal(emfile, [], `no descriptor failures: ${JSON.stringify(st.drops)}`);
      assert.ok(
        (st.drops.max_conns ?? 0) > 0,
        `refused in order as max_conns: ${JSON.stringify(st.drops)}; opened ${opened}`,
      );
      assert.ok(opened > 50, `TCP connections opened beside the UDP flows: ${opened}`);
    } finally {
      for (const s of socks) s.destroy();
      for (const s of udps) s.close();
      await ctl?.close();
      proxy.kill("SIGTERM");
      await new Promise((r) => {
        if (proxy.exitCode !== null) r(null);
        else proxy.once("exit", r);
        setTimeout(r, 8000);
      });
      if (proxy.exitCode === null) proxy.kill("SIGKILL");
      await closeServer(tcpBe);
      await closeServer(udpBe);
      rmSync(dir, { recursive: true, force: true });
    }
  },
);

// ---- item 13: a hanging backend ---------------------------------------------------------------------
test(
  "a backend that accepts and never reads no longer holds its client forever: the service's idleTimeout " + "closes it",
  async () => {
    const stuck: net.Socket[] = [];
    const be = net.createServer({ pauseOnConnect: true }, (c) => {
      stuck.push(c);
      c.on("error", () => {});
    });
    await new Promise<void>((r) => be.listen(0, "127.0.94.2", () => r()));
    const vport = await freePort("127.0.94.1");
    let p!: Proxy;
    try {
      p = await start(`proxy: { control: null, vipInterface: null, tick: 50 }
services:
  - { protocol: tcp, addr: 127.0.94.1, port: ${vport}, scheduler: rr, idleTimeout: 0.5,
      realServers: [ { addr: 127.0.94.2, port: ${portOf(be)} } ] }
`);
      const t0 = Date.now();
      const closed = await new Promise<number>((res) => {
        const s = net.connect(vport, "127.0.94.1", () => s.write("GET / HTTP/1.0\r\n\r\n"));
        s.on("error", () => {});
        s.on("close", () => res(Date.now() - t0));
        setTimeout(() => {
          s.destroy();
          res(-1);
        }, 8000);
      });
      assert.ok(closed > 0, "the client was closed by the proxy (it waited 8 s otherwise)");
      assert.ok(closed >= 400, `not before the idle timeout: ${closed} ms`);
      assert.is(p.fw.drops.get("idle_timeout"), 1);
    } finally {
      await p?.stop();
      for (const s of stuck) s.destroy();
      await closeServer(be);
    }
  },
);

test("a service's connectTimeout reaches its listener", async () => {
  const q = net.createServer(() => {});
  await new Promise<void>((r) => q.listen({ port: 0, host: "127.0.94.4" }, () => r()));
  const vport = await freePort("127.0.94.3");
  let p!: Proxy;
  try {
    p = await start(`proxy: { control: null, vipInterface: null, tick: 50 }
services:
  - { protocol: tcp, addr: 127.0.94.3, port: ${vport}, scheduler: rr, connectTimeout: 0.3,
      realServers: [ { addr: 127.0.94.4, port: ${portOf(q)} } ] }
`);
    const svc = p.desired.services[0];
    assert.is(svc.connectTimeout, 0.3);
    const l = [...(p.fw as any).listeners.values()][0];
    assert.is(l.connectMs, 300, "the service's connect timeout reached its listener");
  } finally {
    await p?.stop();
    await closeServer(q);
  }
});

test("bad timeout keys are refused with their path", () => {
  for (const [v, path] of [
    ["-1", "idleTimeout"],
    ['"x"', "idleTimeout"],
    ["1e20", "connectTimeout"],
    ["0", "connectTimeout"],
  ]) {
    const yaml =
      `services:\n  - { protocol: tcp, addr: 10.0.0.1, port: 80, ${path}: ${v}, realServers: [ { ` +
      `addr: 10.0.1.1 } ] }\n`;
    assert.throws(() => parseConfig(yaml), new RegExp(`services\\[0\\]\\.${path}: must be a number`), `${path}: ${v}`);
  }
  assert.throws(() => parseConfig("proxy: { idleTimeout: [] }\n"), /proxy\.idleTimeout: must be a number/);
  assert.throws(
    () => parseConfig(`services:\n  - { protocol: tcp, addr: 10.0.0.1, port: 80, __proto__: 1, realServers: [] }\n`),
    /unknown key/,
  );
});

// ---- item 2: /metrics at thousands of services ------------------------------------------------------
test(
  "a /metrics scrape of 2,001 services x 10 reads each service once and lets connections through while " +
    "it runs (was: 9-10 s frozen, O(S^2), 16.6 MB)",
  async () => {
    const S = 2001;
    const bes = await Promise.all(Array.from({ length: 10 }, (_, i) => echoServer(`127.0.95.${i + 2}`, 0)));
    const rs = bes.map((b, i) => `{ addr: 127.0.95.${i + 2}, port: ${portOf(b)} }`).join(", ");
    const vip = (k: number) => `127.0.${96 + Math.floor(k / 250)}.${(k % 250) + 1}`;
    // one port for every VIP: free on all addresses; the metrics port on its own
    const [vport, mport] = [await freePort("0.0.0.0"), await freePort("127.0.95.1")];
    const lines = [
      `proxy: { control: null, vipInterface: null, tick: 1000, metrics: "127.0.95.1:${mport}" }`,
      "services:",
    ];
    for (let k = 0; k < S; k++)
      lines.push(`  - { protocol: tcp, addr: ${vip(k)}, port: ${vport}, scheduler: rr, realServers: [ ${rs} ] }`);
    const p = await start(lines.join("\n") + "\n");
    try {
      let reads = 0;
      // counts the look-ups of services by core id (the one map every path from a core id to a service takes)
      const byId = p.tables.byId,
        get = byId.get.bind(byId);
      byId.get = (id: number) => {
        reads++;
        return get(id);
      };
      let scrapeDone = false,
        bytes = 0;
      const scrape = new Promise<void>((res, rej) => {
        const c = net.connect(mport, "127.0.95.1", () => c.write("GET /metrics HTTP/1.0\r\n\r\n"));
        c.on("data", (d) => (bytes += d.length));
        c.on("end", () => {
          scrapeDone = true;
          res();
        });
        c.on("error", rej);
      });
      // connections through the proxy while the scrape runs
      await sleep(5);
      let during = 0;
      while (!scrapeDone && during < 50) {
        if (await oneShot(vip(S - 1), vport)) during++;
      }
      await scrape;
      byId.get = get;
      assert.ok(during >= 1, `connections served while the scrape ran: ${during}`);
      assert.ok(reads <= S + 10, `service records read once each: ${reads} reads for ${S} services`);
      const text = await metricsText(p);
      // 20,010 destinations are over the per-destination cap: the services' series stay, the omission is said
      assert.match(text, `wasmvs_proxy_metrics_destinations_omitted ${S * 10}\n`);
      assert.match(
        text,
        new RegExp(
          `wasmvs_proxy_service_connections_total\\{service="tcp ${vip(S - 1).replace(/\./g, "\\.")}:${vport}"\\} ` +
            `${during}\n`,
        ),
      );
      assert.not.match(text, "wasmvs_proxy_destination_weight{");
      const families = text
        .split("\n")
        .filter((l) => l.startsWith("# TYPE"))
        .map((l) => l.split(" ")[2]);
      assert.is(new Set(families).size, families.length, "each family once");
      assert.ok(bytes > 1000, `scrape size ${bytes}`);
    } finally {
      await p?.stop();
      await Promise.all(bes.map(closeServer));
    }
  },
);

test.run();
