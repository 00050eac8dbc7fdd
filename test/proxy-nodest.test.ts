// Issue 15, the soak's 268 destination_deleted drops: a real proxy in this process, real sockets on loopback.
// A held connection's real server is deleted; its client closes (the proxy feeds the core the client's FIN,
// which the core drops: the real server is gone, expire_nodest_conn=0); the real server comes back (re-added
// from the trash, as the soak's changer and reloads do every few seconds); the backend closes and the flow
// ends. The core's entry was left in FIN_WAIT: a client's TCP sends a dropped FIN again until it gets
// through, the proxy had fed it once. Once the real server was deleted again, the next SYN from that client
// port met the FIN_WAIT entry and was dropped: a new connection refused that no setting asked to refuse.
import { test } from "uvu";
import * as assert from "uvu/assert";
import * as net from "node:net";
import { Proxy, ops, parseConfig } from "../src/proxy/index.ts";
import { silentLogger } from "../src/proxy/log.ts";
import type { DesiredState } from "../src/model/types.ts";
import { freePort, portOf } from "./helpers/ports.ts";

const VIP = "127.0.97.1",
  CLIENT = "127.0.97.9";
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

// A backend that greets, echoes, and closes its side only when told (it keeps a half-open connection)
async function backend(addr: string) {
  const socks: net.Socket[] = [];
  const server = net.createServer({ allowHalfOpen: true }, (s) => {
    socks.push(s);
    s.on("error", () => {});
    s.write(`${addr}\n`);
  });
  await new Promise<void>((r) => server.listen(0, addr, () => r()));
  return { server, port: portOf(server), socks, endAll: () => socks.forEach((s) => s.end()) };
}

// Connects from a fixed source port; resolves with the real server's greeting, or the error.
function open(vport: number, lport: number): Promise<{ s?: net.Socket; dest?: string; error?: string }> {
  return new Promise((res) => {
    const s = net.connect({ host: VIP, port: vport, localAddress: CLIENT, localPort: lport, allowHalfOpen: true });
    const t = setTimeout(() => {
      s.destroy();
      res({ error: "timeout" });
    }, 3000);
    s.once("data", (d) => {
      clearTimeout(t);
      res({ s, dest: d.toString().trim() });
    });
    s.on("error", (e: NodeJS.ErrnoException) => {
      clearTimeout(t);
      res({ error: e.code });
    });
  });
}

for (const nodest of [0, 1]) {
  const name = `a FIN lost while its real server was deleted: the next connection is served (nodest=${nodest})`;
  test(name, async () => {
    const [b1, b2] = [await backend("127.0.97.2"), await backend("127.0.97.3")];
    const vport = await freePort(VIP);
    const rs = (b: { port: number }, addr: string) => ({
      addr,
      port: b.port,
      weight: 1,
      fwd: "masq" as const,
      upperThreshold: 0,
      lowerThreshold: 0,
    });
    const p = await Proxy.start(
      parseConfig(`proxy: { control: null, vipInterface: null, tick: 50, settings: { expire_nodest_conn: ${nodest} } }
services:
  - { protocol: tcp, addr: ${VIP}, port: ${vport}, scheduler: rr,
      realServers: [ { addr: 127.0.97.2, port: ${b1.port} } ] }
`),
      { log: silentLogger() },
    );
    const svc = p.desired.services[0];
    const edit = (fn: (d: DesiredState) => void) =>
      p.change((d) => {
        const n = { ...d };
        fn(n);
        return n;
      });
    try {
      const lport = await freePort(CLIENT);
      const first = await open(vport, lport);
      assert.is(first.dest, "127.0.97.2", JSON.stringify(first));
      let firstError: string | undefined;
      first.s!.on("error", (e: NodeJS.ErrnoException) => (firstError = e.code));
      const closed = new Promise((r) => first.s!.once("close", r));
      await edit((d) => ops.addRealServer(d, svc, rs(b2, "127.0.97.3")));
      await edit((d) => ops.deleteRealServer(d, svc, { addr: "127.0.97.2", port: b1.port }));
      first.s!.end(); // the client's FIN, while its real server is deleted
      await sleep(200);
      await edit((d) => ops.addRealServer(d, svc, rs(b1, "127.0.97.2"))); // back, from the trash
      b1.endAll(); // the backend's FIN: both sides closed, the flow ends
      await Promise.race([closed, sleep(5000)]);
      // the connection drained across the deletion (expire_nodest_conn=1 expires its entry at once): not reset
      assert.is(firstError, undefined, "the held connection ended with FINs");
      assert.ok(first.s!.destroyed, "and it ended");
      await sleep(200);
      await edit((d) => ops.deleteRealServer(d, svc, { addr: "127.0.97.2", port: b1.port }));
      await sleep(1100); // the client's own TIME_WAIT: loopback lets a port in it be used again after a second
      const again = await open(vport, lport);
      assert.is(again.dest, "127.0.97.3", `the next connection from port ${lport}: ${JSON.stringify(again)}`);
      assert.is(p.fw.drops.get("destination_deleted") ?? 0, 0, "no SYN dropped");
      again.s?.destroy();
    } finally {
      await p.stop();
      for (const b of [b1, b2]) {
        for (const s of b.socks) s.destroy();
        b.server.close();
      }
    }
  });
}

// conn_reuse_mode and expire_quiescent_template through the proxy, as the kernel does them (docs/conn-reuse.md)
async function twoServers(settings: string, persistent = "") {
  const bs = [await backend("127.0.97.12"), await backend("127.0.97.13")];
  const vport = await freePort(VIP);
  const p = await Proxy.start(
    parseConfig(`proxy: { control: null, vipInterface: null, tick: 50, settings: { ${settings} } }
services:
  - { protocol: tcp, addr: ${VIP}, port: ${vport}, scheduler: rr,${persistent}
      realServers: [ { addr: 127.0.97.12, port: ${bs[0].port} }, { addr: 127.0.97.13, port: ${bs[1].port} } ] }
`),
    { log: silentLogger() },
  );
  const stop = async () => {
    await p.stop();
    for (const b of bs) {
      for (const s of b.socks) s.destroy();
      b.server.close();
    }
  };
  return { bs, vport, p, stop };
}

for (const reuse of [0, 1]) {
  const goes = reuse ? "to the next real server" : "to the same one";
  test(`conn_reuse_mode=${reuse}: a SYN from the port of a TIME_WAIT entry goes ${goes}`, async () => {
    const { bs, vport, stop } = await twoServers(`conn_reuse_mode: ${reuse}`);
    try {
      const lport = await freePort(CLIENT);
      const first = await open(vport, lport);
      assert.ok(first.dest, JSON.stringify(first));
      const closed = new Promise((r) => first.s!.once("close", r));
      first.s!.end();
      await sleep(100);
      for (const b of bs) b.endAll();
      await Promise.race([closed, sleep(5000)]);
      await sleep(1100); // the client's TIME_WAIT on loopback
      const again = await open(vport, lport);
      assert.ok(again.dest, JSON.stringify(again));
      if (reuse) assert.is.not(again.dest, first.dest, "rescheduled: rr moved on");
      else assert.is(again.dest, first.dest, "the old entry's real server");
      again.s?.destroy();
    } finally {
      await stop();
    }
  });
}

for (const quiescent of [0, 1]) {
  const does = quiescent ? "leaves" : "stays with";
  test(`expire_quiescent_template=${quiescent}: a persistent client ${does} a quiesced real server`, async () => {
    const { vport, p, stop } = await twoServers(`expire_quiescent_template: ${quiescent}`, " persistent: 60,");
    try {
      const first = await open(vport, await freePort(CLIENT));
      assert.ok(first.dest, JSON.stringify(first));
      const svc = p.desired.services[0];
      const rs = svc.realServers.find((r) => r.addr === first.dest)!;
      await p.change((d) => {
        const n = { ...d };
        ops.editRealServer(n, svc, { ...rs, weight: 0 });
        return n;
      });
      const next = await open(vport, await freePort(CLIENT));
      assert.ok(next.dest, JSON.stringify(next));
      if (quiescent) assert.is.not(next.dest, first.dest, "the template of a quiesced server is not used");
      else assert.is(next.dest, first.dest, "the template holds");
      first.s?.destroy();
      next.s?.destroy();
    } finally {
      await stop();
    }
  });
}

// The kernel's knobs (proxy.settings, and --expire-nodest-conn etc. on the command line: test/cli-walk.test.ts)
test("proxy.settings: kube-proxy's values by default; each knob takes the kernel's values, others refused", () => {
  const settings = (yaml: string) => parseConfig(`${yaml}services: []\n`).options.settings;
  assert.equal(settings(""), { expire_nodest_conn: 1, expire_quiescent_template: 1, conn_reuse_mode: 1 });
  assert.equal(settings("proxy: { settings: { expire_nodest_conn: 0, conn_reuse_mode: 3 } }\n"), {
    expire_nodest_conn: 0,
    expire_quiescent_template: 1,
    conn_reuse_mode: 3,
  });
  for (const [k, v] of [
    ["expire_nodest_conn", "2"],
    ["expire_nodest_conn", "-1"],
    ["expire_quiescent_template", '"1"'],
    ["conn_reuse_mode", "4"],
    ["conn_reuse_mode", "1.5"],
    ["conn_reuse_mode", "[]"],
    ["conn_reuse_mode", "1e20"],
    ["conn_reuse_mode", "null"],
    ["sloppy_tcp", "2"],
  ])
    assert.throws(
      () => settings(`proxy: { settings: { ${k}: ${v} } }\n`),
      new RegExp(`proxy\\.settings\\.${k}: must be an integer in`),
      `${k}: ${v}`,
    );
  for (const k of ["__proto__", "constructor", "toString", "conntrack"])
    assert.throws(() => settings(`proxy: { settings: { ${k}: 1 } }\n`), /unknown key/, k);
  assert.throws(() => settings("proxy: { settings: 1 }\n"), /proxy\.settings: must be a mapping/);
});

test.run();
