// What an operator of a wasmvs director pair meets (issue 20), on a real proxy: `wasmvs proxy` in packet mode
// in a namespace of its own with a backup sync daemon, fed over a veth by another namespace with the
// datagrams a Linux 6.1 master sent (test/fixtures/sync/) and with bad ones. Checked:
//   /metrics has the sync families, each equal to what `wasmvs proxy status` shows, the bad datagrams
//     counted by reason;
//   `wasmvs -L --daemon --target proxy` prints ipvsadm's lines for the proxy's daemons (the kernel's clamp
//     of maxlen, its defaults), over the control socket, whose request takes no arguments;
//   `wasmvs proxy reload` re-reads proxy.syncDaemons: a changed daemon restarted with its new options (the
//     new backup takes its new group and syncid, the old socket is gone), a removed one stopped; a section
//     that cannot start or does not parse is refused before anything changes (services included).
// Needs root, ip netns and the native packet addon: otherwise a counted SKIP.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { existsSync, mkdirSync, rmSync, writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { ControlClient } from "../src/proxy/control.ts";
import { loadPacketAddon } from "../src/proxy/packet.ts";
import { SYNC_DROPS, SYNC_SKIPS, SYNC_COUNTS } from "../src/core/sync.ts";
import { guardedBefore, needs, skip } from "./helpers/skip.ts";
import { ip, nsx, vethNet } from "./helpers/veth-net.ts";
import { captureV1Datagrams } from "./helpers/sync-capture.ts";
import { formatDaemons, type SyncDaemon as ModelDaemon } from "../src/model/daemon.ts";
import { onExit } from "./helpers/on-exit.ts";

const FILE = import.meta.url;
const why =
  needs(["ip"], "apt-get install -y iproute2") ||
  (loadPacketAddon().error ? `the native packet addon is not built: ${loadPacketAddon().error}` : "");

const sfx = (process.pid % 46656).toString(36);
const NS = { d: `wso${sfx}d`, s: `wso${sfx}s` };
const IF = { d: `wso${sfx}d`, s: `wso${sfx}s` };
const A = { d: "10.233.1.1", s: "10.233.1.2", local: "10.233.1.250" };
const DIR = `/tmp/wso-test-${process.pid}`;
const CTL = `${DIR}/ctl.sock`;
const CFG = `${DIR}/p.yaml`;
const ROOT = fileURLToPath(new URL("..", import.meta.url));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const kernelMsgs = captureV1Datagrams();
const withSyncid = (m: Buffer, id: number) => {
  const c = Buffer.from(m);
  c[1] = id;
  return c;
};

function config(sync: string, extraService = ""): string {
  return `proxy:
  mode: packet
  control: ${CTL}
  metrics: 127.0.0.1:9477
  vipInterface: null
  suppressKernel: false
  logLevel: warn
  interfaces: [${IF.d}]
  localAddresses: [${A.local}]
  syncDaemons:
${sync}
services:
  - {protocol: tcp, addr: 10.0.0.1, port: 80, scheduler: rr,
     realServers: [{addr: 10.8.0.2, port: 8080}, {addr: 10.8.0.3, port: 8080}]}
${extraService}`;
}

/** Sends datagrams from the sender's namespace to group:port over the veth. */
function sendFrom(msgs: Buffer[], group = "224.0.0.81", port = 8848): void {
  const code = [
    'const d = require("node:dgram"), s = d.createSocket("udp4");',
    'const m = JSON.parse(require("node:fs").readFileSync(0, "utf8"));',
    `s.bind(0, "${A.s}", () => { s.setMulticastInterface("${A.s}"); let n = 0;`,
    `  for (const h of m) s.send(Buffer.from(h, "hex"), ${port}, "${group}", () => {`,
    "    if (++n === m.length) s.close();",
    "  });",
    "});",
  ].join("\n");
  nsx(NS.s, [process.execPath, "-e", code], JSON.stringify(msgs.map((m) => m.toString("hex"))));
}

let proxy: ChildProcess | undefined;
let log = "";
const net = vethNet(Object.values(NS));

async function start(): Promise<void> {
  net.setup([[NS.d, IF.d, NS.s, IF.s]]);
  ip(["-n", NS.d, "addr", "add", `${A.d}/24`, "dev", IF.d]);
  ip(["-n", NS.s, "addr", "add", `${A.s}/24`, "dev", IF.s]);
  rmSync(DIR, { recursive: true, force: true });
  mkdirSync(DIR, { recursive: true });
  writeFileSync(CFG, config(`    - {state: backup, mcastInterface: ${IF.d}, syncid: 7}`));
  proxy = spawn("ip", ["netns", "exec", NS.d, process.execPath, `${ROOT}/bin/wasmvs.js`, "proxy", "-c", CFG], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  proxy.stdout!.on("data", (d) => (log += d));
  proxy.stderr!.on("data", (d) => (log += d));
  const end = Date.now() + 30000;
  while (!existsSync(CTL)) {
    if (proxy.exitCode !== null) throw new Error(`the proxy exited (${proxy.exitCode}): ${log}`);
    if (Date.now() > end) throw new Error(`the proxy did not open its control socket: ${log}`);
    await sleep(50);
  }
}
function stop(): void {
  proxy?.kill("SIGKILL");
  net.teardown();
  rmSync(DIR, { recursive: true, force: true });
}
onExit(stop);

async function call<T = unknown>(op: string, ...args: unknown[]): Promise<T> {
  const c = await ControlClient.connect(CTL);
  try {
    return await c.call<T>(op, ...args);
  } finally {
    c.close();
  }
}
const counters = async () => (await call<{ sync: { counters: Record<string, number> } }>("status")).sync.counters;
async function until(ok: () => Promise<boolean>, what: string, ms = 10000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await ok())) {
    if (Date.now() > end) throw new Error(`timed out: ${what}\n${log.slice(-2000)}`);
    await sleep(50);
  }
}
/** The command itself: `wasmvs ARGS` with the proxy's control socket. */
function wasmvs(args: string[]): { code: number; out: string; err: string } {
  const r = spawnSync(process.execPath, [`${ROOT}/bin/wasmvs.js`, ...args], {
    encoding: "utf8",
    env: { ...process.env, WASMVS_PROXY_SOCKET: CTL },
    timeout: 60000,
  });
  return { code: r.status ?? 125, out: r.stdout, err: r.stderr };
}
const scrape = () =>
  nsx(NS.d, [
    process.execPath,
    "-e",
    'fetch("http://127.0.0.1:9477/metrics").then((r) => r.text()).then((t) => process.stdout.write(t))',
  ]);
const value = (text: string, series: string) => {
  const line = text.split("\n").find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
};

if (why) skip(FILE, "sync daemons: metrics, -L --daemon, reload", why);
else {
  guardedBefore(test, start);
  test.after(stop);

  test("/metrics: the sync families say what `proxy status` says, bad datagrams by reason", async () => {
    // packet mode's addon carries the daemons' sockets: the backup reads with recvmmsg, not Node's dgram
    const st = await call<{ sync: { daemons: { io: string }[] } }>("status");
    assert.equal(
      st.sync.daemons.map((d) => d.io),
      ["native"],
    );
    const bad = [
      Buffer.from([0, 7, 0]), // short
      withSyncid(kernelMsgs[0], 9), // another pair's
      Buffer.concat([kernelMsgs[0], Buffer.from([0])]), // its size field is not its length
      Buffer.alloc(2000, 7), // longer than the backup's limit (MTU 1500 - 28)
    ];
    sendFrom([...kernelMsgs, ...bad]);
    const total = kernelMsgs.length + bad.length;
    await until(async () => (await counters()).messages >= total, `${total} datagrams counted`);
    const c = await counters();
    assert.equal(c.messages, total);
    assert.equal([c.short, c.foreign_syncid, c.bad_size, c.oversized], [1, 1, 1, 1]);
    assert.ok(c.entries > 0 && c.created > 0, JSON.stringify(c));
    const text = scrape();
    assert.match(text, /# TYPE wasmvs_proxy_sync_received_messages_total counter/);
    assert.match(
      text,
      new RegExp(`wasmvs_proxy_sync_daemon\\{state="backup",mcast_interface="${IF.d}",syncid="7",group="224.0.0.81"`),
    );
    const names: Record<string, string> = {
      messages: "received_messages",
      v0_messages: "received_v0_messages",
      entries: "received_entries",
      created: "entries_created",
      updated: "entries_updated",
      sent_messages: "sent_messages",
      sent_entries: "sent_entries",
    };
    for (const k of Object.keys(SYNC_COUNTS)) assert.equal(value(text, `wasmvs_proxy_sync_${names[k]}_total`), c[k], k);
    for (const k of Object.keys(SYNC_DROPS))
      assert.equal(value(text, `wasmvs_proxy_sync_dropped_messages_total{reason="${k}"}`), c[k], k);
    for (const k of Object.keys(SYNC_SKIPS))
      assert.equal(value(text, `wasmvs_proxy_sync_skipped_entries_total{reason="${k}"}`), c[k], k);
  });

  test("-L --daemon --target proxy prints ipvsadm's line; the request takes no arguments", async () => {
    const r = wasmvs(["-L", "--daemon", "--target", "proxy"]);
    assert.equal(r.err, "");
    assert.equal(
      r.out,
      `backup sync daemon (mcast=${IF.d}, syncid=7, maxlen=1472, group=224.0.0.81, port=8848, ttl=1)\n`,
    );
    assert.equal(r.code, 0);
    for (const args of [[1], [{}], ["__proto__"]]) {
      const e = await call("daemons", ...args).then(
        () => "",
        (x: Error) => x.message,
      );
      assert.match(e, /daemons: args: takes 0 arguments, not 1/);
    }
  });

  test("reload: changed daemons restarted with their new options, removed ones stopped", async () => {
    writeFileSync(
      CFG,
      config(
        `    - {state: master, mcastInterface: ${IF.d}, syncid: 9, maxlen: 1200, mcastTtl: 2}
    - {state: backup, mcastInterface: ${IF.d}, syncid: 8, mcastGroup: 239.1.2.3, mcastPort: 9000}`,
      ),
    );
    const r = wasmvs(["proxy", "reload", "--control", CTL]);
    assert.equal(r.code, 0, r.err);
    assert.equal(
      wasmvs(["-L", "--daemon", "--target", "proxy"]).out,
      `master sync daemon (mcast=${IF.d}, syncid=9, maxlen=1200, group=224.0.0.81, port=8848, ttl=2)\n` +
        `backup sync daemon (mcast=${IF.d}, syncid=8, maxlen=1472, group=239.1.2.3, port=9000, ttl=1)\n`,
    );
    // the new backup listens where it was told, for its syncid; the old group and port reach nothing
    const before = await counters();
    sendFrom([withSyncid(kernelMsgs[0], 7)]);
    sendFrom([withSyncid(kernelMsgs[0], 8), withSyncid(kernelMsgs[0], 7)], "239.1.2.3", 9000);
    await until(async () => (await counters()).messages >= before.messages + 2, "two datagrams on the new group");
    await sleep(300);
    const after = await counters();
    assert.equal(after.messages - before.messages, 2);
    assert.equal(after.foreign_syncid - before.foreign_syncid, 1);
    // removed from the file: stopped
    writeFileSync(CFG, config(`    - {state: master, mcastInterface: ${IF.d}, syncid: 9, maxlen: 1200, mcastTtl: 2}`));
    assert.equal(wasmvs(["proxy", "reload", "--control", CTL]).code, 0);
    assert.equal(
      wasmvs(["-L", "--daemon", "--target", "proxy"]).out,
      `master sync daemon (mcast=${IF.d}, syncid=9, maxlen=1200, group=224.0.0.81, port=8848, ttl=2)\n`,
    );
  });

  test("reload: a sync section that cannot start or does not parse changes nothing", async () => {
    const listed = wasmvs(["-L", "--daemon", "--target", "proxy"]).out;
    const services = (await call<unknown[]>("services")).length;
    const second = "  - {protocol: tcp, addr: 10.0.0.2, port: 80, scheduler: rr, realServers: []}\n";
    const cases: [string, RegExp][] = [
      [
        `    - {state: master, mcastInterface: nosuch${sfx}}`,
        new RegExp(`reload refused, nothing changed: proxy.syncDaemons master: no interface 'nosuch${sfx}' here`),
      ],
      [`    - {state: backup, mcastInterface: ${IF.d}, syncid: 300}`, /p\.yaml:\d+:\d+: .*syncid: must be an integer/],
      [`    - {state: backup, mcastInterface: ${IF.d}, __proto__: {syncid: 3}}`, /unknown key/],
      [`    - {state: toString, mcastInterface: ${IF.d}}`, /'toString' is not one of master, backup/],
      [`    - {state: backup, mcastInterface: ${IF.d}, mcastGroup: 10.0.0.1}`, /not a multicast address/],
    ];
    // the command itself for the first, the control socket's requests (what the command sends) for the rest
    const listing = async () => formatDaemons(await call<ModelDaemon[]>("daemons"));
    for (const [k, [sync, want]] of cases.entries()) {
      writeFileSync(CFG, config(sync, second));
      if (k === 0) {
        const r = wasmvs(["proxy", "reload", "--control", CTL]);
        assert.is.not(r.code, 0, sync);
        assert.match(r.err, want, sync);
      } else
        assert.match(
          await call("reload").then(
            () => "applied",
            (e: Error) => e.message,
          ),
          want,
          sync,
        );
      assert.equal(await listing(), listed, sync);
      assert.equal((await call<unknown[]>("services")).length, services, sync);
    }
    // and a good one afterwards still applies
    writeFileSync(CFG, config("    []", second));
    assert.equal(wasmvs(["proxy", "reload", "--control", CTL]).code, 0);
    assert.equal(wasmvs(["-L", "--daemon", "--target", "proxy"]).out, "");
    assert.equal((await call<unknown[]>("services")).length, services + 1);
    assert.not.match(scrape(), /wasmvs_proxy_sync_/);
  });
}

test.run();
