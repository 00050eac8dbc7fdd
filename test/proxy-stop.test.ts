// `wasmvs proxy` as operators run it: a real process on loopback, real clients and a real backend.
// Issue 15 item 6 (SIGTERM reset every established connection: 300/300 ECONNRESET), item 10 (a bad
// metrics port passed `proxy check`), item 11 (non-unicast addresses and loops accepted), item 12
// (--log-level bogus accepted silently).
import { test } from "uvu";
import * as assert from "uvu/assert";
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import * as net from "node:net";
import { proxyMain } from "../src/cli/proxy.ts";

const BIN = new URL("../bin/wasmvs.js", import.meta.url).pathname;
const dir = mkdtempSync(`${tmpdir()}/wvp-stop-`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

let backend: net.Server;
let backendPort = 0;
const backendReady = new Promise<void>((res) => {
  backend = net
    .createServer((s) => {
      s.on("data", (d) => s.write(d));
      s.on("error", () => {});
    })
    .listen(0, "127.0.0.1", () => {
      backendPort = (backend.address() as net.AddressInfo).port;
      res();
    });
});
test.after(() => {
  backend.close();
  rmSync(dir, { recursive: true, force: true });
});

function freePort(): Promise<number> {
  return new Promise((res) => {
    const s = net.createServer().listen(0, "127.0.0.1", () => {
      const p = (s.address() as net.AddressInfo).port;
      s.close(() => res(p));
    });
  });
}

interface Running {
  child: ChildProcess;
  vport: number;
  log: string[];
  exited: Promise<number | null>;
}

async function startProxy(name: string, args: string[] = []): Promise<Running> {
  await backendReady;
  const vport = await freePort();
  const cfg = `${dir}/${name}.yaml`;
  writeFileSync(
    cfg,
    `proxy: { control: ${dir}/${name}.sock, vipInterface: null, tick: 100 }
services:
  - { protocol: tcp, addr: 127.0.0.1, port: ${vport}, scheduler: rr,
      realServers: [ { addr: 127.0.0.1, port: ${backendPort} } ] }
`,
  );
  const child = spawn(process.execPath, [BIN, "proxy", "run", "-c", cfg, ...args], {
    stdio: ["ignore", "ignore", "pipe"],
  });
  const log: string[] = [];
  let buf = "";
  child.stderr!.setEncoding("utf8").on("data", (d: string) => {
    buf += d;
    const ls = buf.split("\n");
    buf = ls.pop()!;
    log.push(...ls);
  });
  const exited = new Promise<number | null>((r) => child.once("exit", (code) => r(code)));
  const end = Date.now() + 60000;
  while (!log.some((l) => l.includes("proxy started"))) {
    if (Date.now() > end || child.exitCode !== null) {
      child.kill("SIGKILL");
      throw new Error(`proxy did not start: ${log.join("\n")}`);
    }
    await sleep(50);
  }
  return { child, vport, log, exited };
}

interface Client {
  sock: net.Socket;
  reset: boolean;
  ended: boolean;
  echo(s: string): Promise<string>;
}
function client(port: number): Promise<Client> {
  return new Promise((res, rej) => {
    const sock = net.connect(port, "127.0.0.1");
    const c: Client = {
      sock,
      reset: false,
      ended: false,
      echo: (s) =>
        new Promise((r, j) => {
          if (sock.destroyed) {
            j(new Error(c.reset ? "reset" : "closed"));
            return;
          }
          sock.once("data", (d) => r(String(d)));
          sock.once("close", () => j(new Error(c.reset ? "reset" : "closed")));
          sock.write(s);
        }),
    };
    sock.on("error", (e: NodeJS.ErrnoException) => {
      if (e.code === "ECONNRESET") c.reset = true;
    });
    sock.on("end", () => {
      c.ended = true;
    });
    sock.once("connect", () => res(c));
    sock.once("error", rej);
  });
}
const refused = (port: number) =>
  new Promise<string>((res) => {
    const s = net.connect(port, "127.0.0.1");
    s.once("connect", () => {
      s.destroy();
      res("connected");
    });
    s.once("error", (e: NodeJS.ErrnoException) => res(e.code ?? "error"));
  });

test("SIGTERM: new connections refused, 100 established ones keep forwarding and finish, none reset", async () => {
  const p = await startProxy("drain", ["--drain-timeout", "30"]);
  const clients = await Promise.all(Array.from({ length: 100 }, () => client(p.vport)));
  for (const c of clients) assert.is(await c.echo("a"), "a");
  const t0 = Date.now();
  p.child.kill("SIGTERM");
  await sleep(1000);
  assert.is(await refused(p.vport), "ECONNREFUSED", "no new connections once stopping");
  const echoes = await Promise.all(clients.map((c, i) => c.echo(`b${i}`)));
  assert.equal(
    echoes,
    clients.map((_, i) => `b${i}`),
    "the established connections still forward",
  );
  assert.is(p.child.exitCode, null, "still draining");
  for (const c of clients) c.sock.end();
  const code = await p.exited;
  assert.is(code, 0);
  assert.ok(
    Date.now() - t0 < 20000,
    `exited ${Date.now() - t0} ms after SIGTERM, well before the bound, once the clients were done`,
  );
  assert.is(clients.filter((c) => c.reset).length, 0, "connections reset");
  const stopped = p.log.find((l) => l.includes('"msg":"stopped"'));
  assert.match(String(stopped), /"drained":100,"closed":0/);
});

test("SIGTERM with --drain-timeout 1: connections still open at the bound are closed, then it exits", async () => {
  const p = await startProxy("bound", ["--drain-timeout", "1"]);
  const clients = await Promise.all(Array.from({ length: 20 }, () => client(p.vport)));
  for (const c of clients) assert.is(await c.echo("a"), "a");
  const t0 = Date.now();
  p.child.kill("SIGTERM");
  assert.is(await p.exited, 0);
  const ms = Date.now() - t0;
  assert.ok(ms >= 900 && ms < 15000, `exited after ${ms} ms`);
  await sleep(200);
  assert.is(clients.filter((c) => c.ended || c.reset || c.sock.destroyed).length, 20, "every connection was closed");
  assert.match(String(p.log.find((l) => l.includes("drain bound reached"))), /"connections":20/);
});

test("a second SIGTERM stops at once", async () => {
  const p = await startProxy("twice", ["--drain-timeout", "600"]);
  const c = await client(p.vport);
  assert.is(await c.echo("a"), "a");
  p.child.kill("SIGTERM");
  await sleep(500);
  assert.is(p.child.exitCode, null, "draining");
  const t0 = Date.now();
  p.child.kill("SIGINT");
  assert.is(await p.exited, 0);
  assert.ok(Date.now() - t0 < 5000, `exited ${Date.now() - t0} ms after the second signal`);
  assert.ok(p.log.some((l) => l.includes("second signal: stopping at once")));
});

// the CLI's own entry point in this process (a spawn per case costs seconds here), its stderr captured
async function run(args: string[]): Promise<{ status: number; stderr: string; stdout: string }> {
  let stderr = "",
    stdout = "";
  const [ew, ow] = [process.stderr.write, process.stdout.write];
  process.stderr.write = ((s: string) => {
    stderr += s;
    return true;
  }) as typeof process.stderr.write;
  process.stdout.write = ((s: string) => {
    stdout += s;
    return true;
  }) as typeof process.stdout.write;
  try {
    // a usage error returns at once; one that started a proxy instead would not return in time
    const status = await Promise.race([proxyMain(args.slice(1)), sleep(20000).then(() => -1)]);
    return { status, stderr, stdout };
  } finally {
    process.stderr.write = ew;
    process.stdout.write = ow;
  }
}

test("usage errors exit 2 with the usage: --log-level, --metrics, --control, --drain-timeout", async () => {
  const cfg = `${dir}/ok.yaml`;
  writeFileSync(cfg, "proxy: { control: null, vipInterface: null }\nservices: []\n");
  for (const [args, msg] of [
    [["--log-level", "bogus"], /--log-level 'bogus' is not one of debug, info, warn, error/],
    [["--log-level", "constructor"], /--log-level 'constructor' is not one of/],
    [["--metrics", "10.99.0.1:99999"], /--metrics: port '99999' is not 1\.\.65535/],
    [["--metrics", "10.99.0.1"], /--metrics: '10\.99\.0\.1' is not HOST:PORT/],
    [["--metrics", "::1:9477"], /--metrics: '::1:9477' is not HOST:PORT/],
    [
      ["--control", "/tmp/" + "x".repeat(200)],
      /--control.*: the path is 205 bytes; a unix socket path has at most 107/,
    ],
    [["--drain-timeout", "abc"], /--drain-timeout 'abc' is not a number of seconds 0\.\.86400/],
    [["--drain-timeout", "-1"], /--drain-timeout '-1' is not a number/],
    [["--drain-timeout", "1e9"], /--drain-timeout '1e9' is not a number/],
  ] as [string[], RegExp][]) {
    const r = await run(["proxy", "run", "-c", cfg, ...args]);
    assert.is(r.status, 2, `${args.join(" ")}: ${r.stderr}`);
    assert.match(r.stderr, msg);
    assert.match(r.stderr, /usage: wasmvs proxy/);
  }
});

test("proxy check names every bad address field: metrics, control, non-unicast addresses, loops, [::]", async () => {
  const cfg = `${dir}/bad.yaml`;
  writeFileSync(
    cfg,
    `proxy: { metrics: "10.99.0.1:99999", control: "${"y".repeat(120)}" }
services:
  - { addr: 255.255.255.255, port: 80, realServers: [ { addr: 10.1.0.1 } ] }
  - { addr: 224.0.0.1, port: 80 }
  - { addr: "::", port: 80, realServers: [ { addr: "ff02::1" }, { addr: "fe80::1" } ] }
  - { addr: 10.0.0.1, port: 80,
      realServers: [ { addr: 0.0.0.0 }, { addr: 224.0.0.5 }, { addr: 10.0.0.1 }, { addr: 10.0.0.2, port: 81 } ] }
  - { addr: 10.0.0.2, port: 81, realServers: [ { addr: 10.0.0.1, port: 80 } ] }
`,
  );
  const r = await run(["proxy", "check", "-c", cfg]);
  assert.is(r.status, 1, r.stdout);
  for (const m of [
    /bad\.yaml:1:\d+: proxy\.metrics: port '99999' is not 1\.\.65535/,
    /proxy\.control: the path is 120 bytes/,
    /services\[0\]\.addr: '255\.255\.255\.255' is the broadcast address: a virtual service needs a unicast address/,
    /services\[1\]\.addr: '224\.0\.0\.1' is a multicast address/,
    /services\[2\]\.addr: '::' is the unspecified address/,
    /services\[2\]\.realServers\[0\]\.addr: 'ff02::1' is a multicast address/,
    /services\[2\]\.realServers\[1\]\.addr: 'fe80::1' is a link-local address/,
    /services\[3\]\.realServers\[0\]\.addr: '0\.0\.0\.0' is the unspecified address/,
    /services\[3\]\.realServers\[1\]\.addr: '224\.0\.0\.5' is a multicast address/,
    /services\[3\]\.realServers\[2\]: real server 10\.0\.0\.1:80 is its own virtual service: connections would loop/,
    new RegExp(
      /services\[4\]\.realServers\[0\]: real server 10\.0\.0\.1:80 is the virtual service tcp 10\.0\.0\.1:80, /.source +
        /whose real servers lead back here/.source,
    ),
  ])
    assert.match(r.stderr, m);
});

test.run();
