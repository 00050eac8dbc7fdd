// The kernel's answer to a new SYN from the port of an old entry, replayed through the core: every case of
// test/kernel/nodest-cases.ts (six TCP states of the old entry; its real server alive, quiesced or deleted;
// expire_nodest_conn, conn_reuse_mode and expire_quiescent_template), against what Linux 6.1 did in the
// kernel VM (test/fixtures/kernel/nodest-observed.json, recorded by test/kernel/record-nodest.ts).
import { readFileSync } from "node:fs";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { Core, TCP_FLAGS as F } from "../src/core/index.ts";
import { NODEST_CASES, type NodestCase, type NodestObserved } from "./kernel/nodest-cases.ts";

const VIP = "10.0.0.1",
  D1 = "10.8.0.2",
  D2 = "10.8.0.3",
  CLIENT = "10.9.0.2";
const recorded: { kernel: string; observed: NodestObserved[] } = JSON.parse(
  readFileSync(new URL("./fixtures/kernel/nodest-observed.json", import.meta.url), "utf8"),
);

// The packets IPVS saw of the old connection in the VM, in order: [direction, flags]
const OLD_PACKETS: Record<NodestCase["state"], ["in" | "out", number][]> = {
  SYN_RECV: [["in", F.SYN]],
  ESTABLISHED: [],
  CLOSE_WAIT: [
    ["in", F.FIN | F.ACK],
    ["out", F.ACK],
  ],
  FIN_WAIT: [
    ["in", F.ACK],
    ["out", F.FIN | F.ACK],
    ["in", F.ACK],
  ],
  TIME_WAIT: [
    ["in", F.ACK],
    ["out", F.FIN | F.ACK],
    ["in", F.ACK],
    ["in", F.FIN | F.ACK],
    ["out", F.ACK],
  ],
  CLOSE: [
    ["in", F.ACK],
    ["out", F.RST],
  ],
};
const HANDSHAKE: ["in" | "out", number][] = [
  ["in", F.SYN],
  ["out", F.SYN | F.ACK],
  ["in", F.ACK],
  ["out", F.ACK], // the greeting
];

async function replay(k: NodestCase) {
  const c = await Core.load({ debug: true, connCapacity: 4096 });
  c.set("expire_nodest_conn", k.expireNodestConn);
  c.set("conn_reuse_mode", k.connReuseMode);
  c.set("expire_quiescent_template", k.expireQuiescentTemplate);
  const svc = c.addService({ proto: "tcp", addr: VIP, port: 80, scheduler: "rr", persistent: k.persistent ? 60 : 0 });
  for (const a of [D1, D2]) c.addDest(svc, { addr: a, port: 8080, weight: 1, fwd: "masq" });
  let now = 1;
  let dest: string | undefined;
  const send = (port: number, dir: "in" | "out", flags: number) => {
    const r =
      dir === "in"
        ? c.packet("in", "tcp", CLIENT, port, VIP, 80, { flags, now: now++ })
        : c.packet("out", "tcp", dest!, 8080, CLIENT, port, { flags, now: now++ });
    return r;
  };
  const entries = (port: number) => c.conns().filter((x) => !x.template && x.cport === port);
  const port = 20000;
  const first = send(port, "in", F.SYN);
  dest = c.conn(first.conn)!.daddr;
  const old = k.state === "SYN_RECV" ? [] : [...HANDSHAKE.slice(1), ...OLD_PACKETS[k.state]];
  for (const [dir, flags] of old) send(port, dir, flags);
  const oldState = entries(port)[0]?.state ?? null;
  if (k.dest === "quiesced") c.editDest(svc, { addr: dest, port: 8080, weight: 0, fwd: "masq" });
  else if (k.dest === "deleted") c.deleteDest(svc, dest, 8080);
  const afterChange = entries(port).map((x) => x.state);
  const again = k.persistent ? port + 1 : port;
  const syn = send(again, "in", F.SYN);
  const to = syn.verdict === "forward" ? c.conn(syn.conn)!.daddr : undefined;
  const sentTo = to === undefined ? "none" : to === dest ? "old" : "other";
  return { c, dest, oldState, afterChange, sentTo, again, to, send, entries };
}

const byName = new Map(recorded.observed.map((o) => [o.name, o]));

test("the recording covers every case, on Linux 6.1", () => {
  assert.match(recorded.kernel, /^6\.1\./);
  assert.equal(
    NODEST_CASES.map((k) => k.name).filter((n) => !byName.has(n)),
    [],
  );
});

for (const k of NODEST_CASES) {
  test(`${k.name}: as the kernel`, async () => {
    const o = byName.get(k.name)!;
    assert.ok(o, "recorded");
    const r = await replay(k);
    assert.is(r.oldState, o.oldState, "the old entry's state");
    assert.equal(r.afterChange, o.afterChange, "the old entry after the change");
    // where the kernel sent the new SYN: to whoever answered it; unanswered, by the real servers' packet counters
    // (read 2.5 s later: they lag by up to 2 s, so an answered SYN may not show in them yet)
    assert.is(r.sentTo, o.answered !== "none" ? o.answered : o.sentTo, "where the new SYN went");
    if (o.answered !== "none" || o.sentTo === "none") {
      // the rest of what IPVS saw: the answer and the client's ACK, or the SYN sent again after 1 s
      const dest = r.to;
      if (o.answered !== "none") {
        r.c.packet("out", "tcp", dest!, 8080, CLIENT, r.again, { flags: F.SYN | F.ACK, now: 1000 });
        r.c.packet("in", "tcp", CLIENT, r.again, VIP, 80, { flags: F.ACK, now: 1001 });
      } else r.c.packet("in", "tcp", CLIENT, r.again, VIP, 80, { flags: F.SYN, now: 1000 });
      const after = r
        .entries(r.again)
        .map((x) => `${x.daddr === r.dest ? "old" : "other"} ${x.state}`)
        .sort();
      assert.equal(after, o.afterSyn, "the port's entries after the new SYN");
    }
  });
}

test.run();
