// The sync daemons' sockets in the packet addon (native/packet/sync_io.h, issue 20): a backup reading every
// waiting datagram with one recvmmsg into the core, a master sending the core's finished messages with one
// sendmmsg. Checked on a veth between two namespaces against the daemons on Node's dgram socket, which
// they replace: a backup of each kind side by side takes the same datagrams (a Linux 6.1 master's, from
// test/fixtures/sync/, among short, empty, garbage, wrongly sized and oversized ones, a fragmented one among
// them) and ends with the same counters and the same table; a master of each kind sends the same bytes
// the core holds, to the group and port, with the kernel's multicast options; over IPv4 and IPv6 (a link-local
// group, joined by the interface's index). Before any of that, the addon
// refuses bad options and offsets outside the WASM memory, with a message.
// Needs the native packet addon, and for the sockets root and ip netns: otherwise a counted SKIP.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { type ChildProcess, spawn } from "node:child_process";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { loadPacketAddon } from "../src/proxy/packet.ts";
import { guardedBefore, needs, skip, testOrSkip } from "./helpers/skip.ts";
import type { SyncIoAddon } from "../src/proxy/sync.ts";
import { ip, nsx, vethNet } from "./helpers/veth-net.ts";
import { captureV1Datagrams } from "./helpers/sync-capture.ts";

const FILE = import.meta.url;
const addon = loadPacketAddon();
const why =
  needs(["ip"], "apt-get install -y iproute2") ||
  (addon.error ? `the native packet addon is not built: ${addon.error}` : "") ||
  (addon.addon && !("syncOpen" in addon.addon) ? "the packet addon predates its sync sockets: rebuild it" : "");

const sfx = (process.pid % 46656).toString(36);
const NS = { d: `wsi${sfx}d`, s: `wsi${sfx}s` };
const IF = { d: `wsi${sfx}d`, s: `wsi${sfx}s` };
const A = { d: "10.234.1.1", s: "10.234.1.2" };
const PEER = fileURLToPath(new URL("./helpers/sync-io-peer.ts", import.meta.url));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const kernelMsgs = captureV1Datagrams();

const GROUP6 = "ff02::1:81";
/** Sends datagrams from the sender's namespace to the group over the veth, in order. */
function sendFrom(msgs: Buffer[], group = "224.0.0.81"): void {
  const v6 = group.includes(":");
  const code = [
    `const d = require("node:dgram"), s = d.createSocket("${v6 ? "udp6" : "udp4"}");`,
    'const m = JSON.parse(require("node:fs").readFileSync(0, "utf8"));',
    v6
      ? `s.bind(0, () => { s.setMulticastInterface("::%${IF.s}"); let n = 0;`
      : `s.bind(0, "${A.s}", () => { s.setMulticastInterface("${A.s}"); let n = 0;`,
    `  for (const h of m) s.send(Buffer.from(h, "hex"), 8848, "${group}", () => {`,
    "    if (++n === m.length) s.close();",
    "  });",
    "});",
  ].join("\n");
  nsx(NS.s, [process.execPath, "-e", code], JSON.stringify(msgs.map((m) => m.toString("hex"))));
}

/** A process in a namespace whose stdout is read line by line. */
function lines(ns: string, argv: string[]): { p: ChildProcess; next: (ms?: number) => Promise<string> } {
  const p = spawn("ip", ["netns", "exec", ns, ...argv], { stdio: ["pipe", "pipe", "pipe"] });
  const got: string[] = [],
    waiting: ((l: string) => void)[] = [];
  let err = "";
  p.stderr!.on("data", (d) => (err += d));
  createInterface({ input: p.stdout! }).on("line", (l) => (waiting.shift() ?? ((x) => got.push(x)))(l));
  const next = (ms = 30_000) =>
    got.length
      ? Promise.resolve(got.shift()!)
      : new Promise<string>((resolve, reject) => {
          const t = setTimeout(() => reject(new Error(`no line from ${argv.join(" ")} in ${ms} ms: ${err}`)), ms);
          waiting.push((l) => {
            clearTimeout(t);
            resolve(l);
          });
        });
  return { p, next };
}

// the addon's own checks, before any datagram: what JavaScript hands it is checked against the WASM memory
const noAddon =
  (addon.error ? `the native packet addon is not built: ${addon.error}` : "") ||
  (addon.addon && !("syncOpen" in addon.addon) ? "the packet addon predates its sync sockets: rebuild it" : "");
const openMaster = (o: Partial<Parameters<SyncIoAddon["syncOpen"]>[0]>) =>
  (addon.addon as unknown as SyncIoAddon).syncOpen({
    master: 1,
    v6: 0,
    group: "224.0.0.81",
    port: 8848,
    ifaddr: "127.0.0.1",
    ifname: "",
    ttl: 1,
    ...o,
  });
testOrSkip(FILE, noAddon, "sync sockets: bad options and areas outside the WASM memory refused", () => {
  const io = addon.addon as unknown as SyncIoAddon;
  assert.throws(() => openMaster({ group: "nowhere" }), /bad IPv4 group/);
  assert.throws(() => openMaster({ port: 0 }), /bad port/);
  assert.throws(() => openMaster({ ifaddr: "eth0" }), /bad interface address/);
  assert.throws(() => openMaster({ v6: 1, group: "ff02::81", ifname: "no-such-if0" }), /no interface/);
  const h = openMaster({});
  const mem = new ArrayBuffer(64);
  const dv = new DataView(mem);
  assert.throws(() => io.syncSend(h, mem, 60, 1), /outside the WASM memory/, "the list past the end");
  dv.setUint32(0, 40, true);
  dv.setUint32(4, 100, true); // a message running past the end
  assert.throws(() => io.syncSend(h, mem, 0, 1), /outside the WASM memory/);
  assert.throws(() => io.syncRecv(h, mem, 0, 8, 2, 64), /outside the WASM memory/, "slots past the end");
  assert.throws(() => io.syncRecv(h, mem, 0, 8, 65, 1), /outside the WASM memory/, "over 64 a call");
  assert.throws(() => io.syncRecv(h, new Uint8Array(8) as unknown as ArrayBuffer, 0, 0, 1, 1), /ArrayBuffer/);
  assert.is(io.syncRecv(h, mem, 0, 8, 1, 32), 0, "nothing waits");
  assert.throws(() => io.syncStart(h, () => {}, 5000), /holdMs/);
  io.syncClose(h);
  assert.throws(() => io.syncSend(h, mem, 0, 0), /closed/);
});

const net = vethNet(Object.values(NS));
const kids: ChildProcess[] = [];
function stop(): void {
  for (const k of kids) k.kill("SIGKILL");
  net.teardown();
}

if (why) {
  for (const group of ["224.0.0.81", GROUP6])
    skip(FILE, `sync sockets: a backup's batched receive against dgram's, bad datagrams among good (${group})`, why);
  skip(FILE, "sync sockets: a master's sendmmsg sends the core's messages byte for byte (IPv4, IPv6)", why);
} else {
  guardedBefore(test, () => {
    net.setup([[NS.d, IF.d, NS.s, IF.s]]);
    ip(["-n", NS.d, "addr", "add", `${A.d}/24`, "dev", IF.d]);
    ip(["-n", NS.s, "addr", "add", `${A.s}/24`, "dev", IF.s]);
  });
  test.after(stop);

  for (const group of ["224.0.0.81", GROUP6])
    test(`sync sockets: a backup's batched receive against dgram's, bad datagrams among good (${group})`, () =>
      backupsAgree(group));
  async function backupsAgree(group: string): Promise<void> {
    const b = lines(NS.d, [process.execPath, "--import", "tsx", PEER, "backup", IF.d, group]);
    kids.push(b.p);
    assert.is(await b.next(60_000), "ready");
    const garbage = Buffer.from(Array.from({ length: 300 }, (_, k) => (k * 97 + 13) & 255));
    const bad = [
      Buffer.from([0, 7, 0]), // short
      Buffer.alloc(0), // empty
      Buffer.concat([kernelMsgs[0], Buffer.from([0])]), // its size field is not its length
      garbage,
      Buffer.alloc(1600, 1), // over the 1472-byte receive limit, in two fragments on the wire
      Buffer.alloc(60000, 2), // far over it: longer than the native backup's slots
    ];
    const all = [...kernelMsgs.slice(0, 2), ...bad, ...kernelMsgs.slice(2)];
    sendFrom(all, group);
    let got: Record<string, Record<string, number>> = {};
    const end = Date.now() + 20_000;
    do {
      await sleep(100);
      b.p.stdin!.write("stats\n");
      got = JSON.parse(await b.next());
    } while ((got.native.messages < all.length || got.dgram.messages < all.length) && Date.now() < end);
    const { native, dgram } = got;
    assert.is(native.messages, all.length, "every datagram reached the native backup");
    assert.equal(native, dgram, "the same counters and table size as the dgram backup");
    assert.is(native.short, 2);
    assert.is(native.oversized, 2);
    assert.ok(native.bad_size >= 2, "the wrong size field and the garbage");
    assert.ok(native.created > 0 && native.conns > 0);
    b.p.kill("SIGKILL");
  }

  test("sync sockets: a master's sendmmsg sends the core's messages byte for byte (IPv4, IPv6)", async () => {
    for (const [io, group] of [
      ["native", "224.0.0.81"],
      ["dgram", "224.0.0.81"],
      ["native", GROUP6],
    ]) {
      const v6 = group === GROUP6;
      // the receiver: the group joined on the sender's side of the veth, every datagram kept
      const code = [
        `const s = require("node:dgram").createSocket({ type: "udp${v6 ? 6 : 4}", reuseAddr: true }), got = [];`,
        `s.bind(8848, () => { s.addMembership("${group}", "${v6 ? `::%${IF.s}` : A.s}"); console.log("ready"); });`,
        's.on("message", (m, r) => got.push([m.toString("hex"), r.address, r.port]));',
        'process.stdin.on("data", () => { console.log(JSON.stringify(got)); process.exit(0); });',
      ].join("\n");
      const rx = lines(NS.s, [process.execPath, "-e", code]);
      kids.push(rx.p);
      assert.is(await rx.next(), "ready");
      const m = lines(NS.d, [process.execPath, "--import", "tsx", PEER, "master", IF.d, io, group]);
      kids.push(m.p);
      const want = JSON.parse(await m.next(60_000)) as string[];
      const [, sent, errors] = (await m.next()).split(" ").map(Number);
      assert.ok(want.length >= 1, "the core finished a message");
      assert.is(sent, want.length, `${io}: every message sent`);
      assert.is(errors, 0, `${io}: no send error`);
      await sleep(300);
      rx.p.stdin!.write("x\n");
      const got = JSON.parse(await rx.next()) as [string, string, number][];
      assert.equal(
        got.map((g) => g[0]),
        want,
        `${io}: the bytes the core holds`,
      );
      assert.ok(
        got.every((g) => (v6 ? g[1].startsWith("fe80::") : g[1] === A.d)),
        `${io}: from the interface's address`,
      );
    }
  });
}

test.run();
