// docs/proxy.md's director pair with keepalived, run for real (issue 20): two `wasmvs proxy --mode packet`
// directors in network namespaces, each with both sync daemons, started with the flags the docs give, and
// keepalived in each running the vrrp_instance the docs give (read from docs/proxy.md, so the two cannot
// drift apart; only the interface names and B's priority are put in). Long-lived TCP streams through the
// active director check every byte of their echo; the active director then dies (keepalived and wasmvs
// killed, links down); keepalived on the other takes both addresses, and every stream must go on through it
// with no reset and no byte lost or duplicated, the sync daemon having carried the connections: kept/total.
// Needs root, ip, nft, keepalived and the native packet addon: otherwise a counted SKIP.
import { test } from "uvu";
import * as assert from "uvu/assert";
import type { ChildProcess } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { ControlClient } from "../src/proxy/control.ts";
import { loadPacketAddon } from "../src/proxy/packet.ts";
import { guardedBefore, needs, skip } from "./helpers/skip.ts";
import { ADDR, asker, inNs, keepalivedPair, type Director } from "./helpers/keepalived-pair.ts";

const FILE = import.meta.url;
const why =
  needs(["ip", "nft", "keepalived"], "apt-get install -y iproute2 nftables keepalived") ||
  (loadPacketAddon().error ? `the native packet addon is not built: ${loadPacketAddon().error}` : "");

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const sfx = (process.pid % 46656).toString(36);
const DIR = `/tmp/wka-test-${process.pid}`;
const STREAMS = 8;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const bed = keepalivedPair(`wka${sfx}`);

/** docs/proxy.md's keepalived.conf for a wasmvs pair, for director d (eth0 front, eth1 back). */
function docsKeepalivedConf(d: Director): string {
  const md = readFileSync(`${ROOT}/docs/proxy.md`, "utf8");
  const from = md.indexOf("**A pair with keepalived.**");
  const block = /```\n(vrrp_instance[\s\S]*?)```/.exec(md.slice(from));
  if (from < 0 || !block) throw new Error("docs/proxy.md: no vrrp_instance block after 'A pair with keepalived'");
  let conf = block[1].replace(/\beth0\b/g, "front").replace(/\beth1\b/g, "back");
  if (d === "b") conf = conf.replace(/priority 100\b/, "priority 90");
  return conf;
}
/** docs/proxy.md's `wasmvs proxy` line for a pair (its flags after the config file). */
function docsProxyFlags(): string[] {
  const md = readFileSync(`${ROOT}/docs/proxy.md`, "utf8");
  const m = /wasmvs proxy -c proxy\.yaml (--mode packet[^\n]*\\\n[^\n]*)/.exec(md);
  if (!m) throw new Error("docs/proxy.md: no `wasmvs proxy -c proxy.yaml --mode packet ...` line");
  return m[1]
    .replace(/\\\n/, " ")
    .trim()
    .split(/\s+/)
    .map((w) => w.replace(/^eth0$/, "front").replace(/^eth1$/, "back"));
}

// the same on both directors; keepalived holds the addresses, so wasmvs adds none (docs/proxy.md says why)
const PROXY_YAML = `
proxy:
  vipInterface: null
  logLevel: warn
services:
  - {protocol: tcp, addr: ${ADDR.vip}, port: 80, scheduler: rr, realServers: [{addr: ${ADDR.real}, port: 8080}]}
`;

const procs: Record<Director, ChildProcess[]> = { a: [], b: [] };
const logs: Record<string, () => string> = {};

async function director(d: Director): Promise<void> {
  mkdirSync(`${DIR}/${d}`, { recursive: true });
  writeFileSync(`${DIR}/${d}/proxy.yaml`, PROXY_YAML);
  writeFileSync(`${DIR}/${d}/keepalived.conf`, docsKeepalivedConf(d));
  const ctl = `${DIR}/${d}/ctl.sock`;
  const w = bed.run(bed.NS[d], [
    process.execPath,
    `${ROOT}/bin/wasmvs.js`,
    "proxy",
    "-c",
    `${DIR}/${d}/proxy.yaml`,
    "--control",
    ctl,
    ...docsProxyFlags(),
  ]);
  logs[`wasmvs ${d}`] = w.log;
  procs[d].push(w.proc);
  const end = Date.now() + 30000;
  while (!existsSync(ctl)) {
    if (w.proc.exitCode !== null || Date.now() > end) throw new Error(`wasmvs on ${d} did not start: ${w.log()}`);
    await sleep(50);
  }
  const k = bed.run(bed.NS[d], [
    "keepalived",
    "--dont-fork",
    "--log-console",
    "--log-detail",
    "--vrrp",
    "--use-file",
    `${DIR}/${d}/keepalived.conf`,
    "--pid",
    `${DIR}/${d}/keepalived.pid`,
    "--vrrp_pid",
    `${DIR}/${d}/vrrp.pid`,
  ]);
  logs[`keepalived ${d}`] = k.log;
  procs[d].push(k.proc);
}

async function syncCounters(d: Director): Promise<Record<string, number>> {
  const c = await ControlClient.connect(`${DIR}/${d}/ctl.sock`);
  try {
    return (await c.call<{ sync: { counters: Record<string, number> } }>("status")).sync.counters;
  } finally {
    c.close();
  }
}
/** What to look at when a stream did not survive: B's drops and sync counters, both ends' TCP state. */
async function diagnosis(): Promise<string> {
  const c = await ControlClient.connect(`${DIR}/b/ctl.sock`);
  let status: unknown;
  try {
    status = await c.call("status");
  } finally {
    c.close();
  }
  const ss = (ns: string) => inNs(ns, ["ss", "-tni"]);
  const s = status as { drops?: unknown; sync?: unknown };
  return (
    `B: drops ${JSON.stringify(s.drops)} sync ${JSON.stringify(s.sync)}\n` +
    `client:\n${ss(bed.NS.c)}\nreal:\n${ss(bed.NS.r)}`
  );
}

async function until(ok: () => boolean | Promise<boolean>, what: string, ms: number): Promise<void> {
  const end = Date.now() + ms;
  while (!(await ok())) {
    if (Date.now() > end) {
      const tail = Object.entries(logs).map(([k, l]) => `--- ${k}:\n${l().slice(-1500)}`);
      throw new Error(`timed out: ${what}\n${tail.join("\n")}`);
    }
    await sleep(100);
  }
}

interface Conn {
  id: number;
  local: string;
  sent: number;
  recv: number;
  err?: string;
}

if (why) skip(FILE, "keepalived moves the VIP; connections go on through the backup", why);
else {
  guardedBefore(test, async () => {
    rmSync(DIR, { recursive: true, force: true });
    bed.build();
    await director("a");
    await director("b");
  });
  test.after(() => {
    // keepalived's VRRP children (their parents' deaths would also stop them)
    for (const d of ["a", "b"])
      try {
        process.kill(Number(readFileSync(`${DIR}/${d}/vrrp.pid`, "utf8").trim()), "SIGKILL");
      } catch {
        /* gone, or never started */
      }
    bed.teardown();
    rmSync(DIR, { recursive: true, force: true });
  });

  test("keepalived moves the VIP; every connection goes on through the backup (docs/proxy.md's pair)", async () => {
    // both start BACKUP with nopreempt: the higher priority (A) takes the addresses after the election
    await until(() => bed.holdsVip("a"), "A holding the VIP", 20000);
    assert.not.ok(bed.holdsVip("b"), "both directors hold the VIP");
    const echo = bed.run(bed.NS.r, [process.execPath, `${ROOT}/test/kernel-vm/stream-echo.cjs`, "8080", ADDR.real]);
    const askEcho = asker(echo.proc);
    await askEcho(""); // ready
    const client = bed.run(bed.NS.c, [
      process.execPath,
      `${ROOT}/test/kernel-vm/stream-client.cjs`,
      ADDR.vip,
      "80",
      String(STREAMS),
      "256",
    ]);
    const ask = asker(client.proc);
    client.proc.stdin!.write("every 50\n");
    const opened = await ask("");
    assert.equal(opened.open, STREAMS, `streams open through A: ${JSON.stringify(opened)}`);
    // B's backup daemon has every connection before A dies
    await until(async () => (await syncCounters("b")).created >= STREAMS, `B's backup created ${STREAMS}`, 15000);
    const before = (await ask("status")).conns as Conn[];
    // A dies: wasmvs, keepalived and its VRRP child (pid file); B must notice the silence (3 adverts)
    const vrrpChild = Number(readFileSync(`${DIR}/a/vrrp.pid`, "utf8").trim());
    bed.kill("a", [...procs.a.map((p) => p.pid ?? 0).filter((x) => x > 0), vrrpChild]);
    await until(() => bed.holdsVip("b"), "B taking the VIP", 20000);
    // the streams must move on well past where they stood
    const mark = new Map(before.map((c) => [c.id, c.recv]));
    await until(
      async () => ((await ask("status")).conns as Conn[]).every((c) => c.err || c.recv > (mark.get(c.id) ?? 0) + 4096),
      "every stream moving again through B",
      30000,
    );
    // the echo of what was in flight at the failover may wait for a retransmission backed off through the
    // outage (seconds): finish returns as soon as every echo is back
    const conns = (await ask("finish 60000", 90000)).conns as Conn[];
    const kept = conns.filter((c) => !c.err && c.recv === c.sent && c.recv > (mark.get(c.id) ?? 0));
    const count = (await askEcho("count")) as { accepted: number };
    console.log(`  ${kept.length} of ${STREAMS} connections kept across the keepalived failover`);
    const why = kept.length === STREAMS ? "" : await diagnosis();
    assert.equal(
      conns.filter((c) => c.err).map((c) => `${c.id}: ${c.err}`),
      [],
      `streams that failed\n${why}`,
    );
    assert.is(kept.length, STREAMS, `${JSON.stringify(conns)}\n${why}`);
    assert.is(count.accepted, STREAMS, "the real server saw a connection opened again");
  });
}

test.run();
