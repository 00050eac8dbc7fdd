// The read-only views of a scheduler's insides (src/ui/sched-state.ts over the traceQuery codes of
// assembly/sched/tree.ts, lblc.ts, mh.ts), on the real WASM core: the winner tree's root is every decision's
// choice and its nodes are the tournament's, the locality view is the table the trace records describe, mh's
// population claim by claim ends in exactly the table the core schedules with; bad indices and schedulers
// without such state answer "none" (-1) and never trap. `wasmvs trace --insides` prints the same.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { TraceSession, Q, type Scenario } from "../src/core/trace.ts";
import { QS, readTree, readLocality, readMhFill, winnerPath, type TreeView } from "../src/ui/sched-state.ts";
import { runTrace } from "../src/cli/trace.ts";

const dests = (ws: number[]) => ws.map((weight, i) => ({ addr: `10.1.0.${i + 1}`, port: 80, weight }));

test("the tree's root is each decision's choice; every inner node holds the better of its children", async () => {
  for (const sched of ["lc", "wlc", "sed", "nq", "fo", "ovf"]) {
    const s = await TraceSession.create({
      service: { proto: "tcp", addr: "10.0.0.1", port: 80, scheduler: sched },
      dests: dests([5, 1, 3, 2, 8]).map((d, i) => ({ ...d, upperThreshold: i === 4 ? 6 : 0 })),
      traffic: { count: 60, clients: 9, hold: 700, interval: 40 },
    } as Scenario);
    let t: TreeView | null = null;
    s.beforeSchedule = () => {
      t = readTree(s);
    };
    let n = 0;
    for (const d of s.run()) {
      const tree = t as TreeView | null;
      assert.ok(tree, `${sched} #${d.n}: a tree was read`);
      const root = tree!.win[1] >= 0 ? tree!.leaf[tree!.win[1]] : -1;
      assert.is(root, d.destId, `${sched} #${d.n}: the root holds the choice`);
      // a node's winner is one of its children's
      for (let node = 1; node < tree!.leaves; node++) {
        const w = tree!.win[node];
        assert.ok(w < 0 || w === tree!.win[2 * node] || w === tree!.win[2 * node + 1], `${sched} node ${node}`);
      }
      const path = winnerPath(tree!);
      assert.ok(
        root < 0 ? path.length === 0 : path.every((node) => tree!.win[node] === tree!.win[1]),
        `${sched} #${d.n}: the path carries the winner from its leaf to the root`,
      );
      n++;
    }
    assert.is(n, 60);
  }
});

test("the locality view is the table the decisions built: lblc one server per address, lblcr a set", async () => {
  for (const sched of ["lblc", "lblcr"]) {
    const s = await TraceSession.create({
      service: { fwmark: 1, scheduler: sched },
      dests: dests([1, 1, 2]),
      traffic: { count: 40, clients: 3, targets: 5, hold: 0, interval: 50 },
    } as Scenario);
    const last = new Map<string, number[]>();
    for (const d of s.run()) {
      if (d.destId < 0) continue;
      last.set(d.dst, sched === "lblcr" ? d.record!.set : [d.destId]);
      const v = readLocality(s)!;
      assert.is(v.entries.length, last.size, `${sched} #${d.n}: one entry per destination address`);
      for (const e of v.entries) {
        assert.equal(sched === "lblcr" ? e.set : [e.dest], last.get(e.addr), `${sched} #${d.n} ${e.addr}`);
      }
      const mine = v.entries.find((e) => e.addr === d.dst)!;
      assert.is(mine.lastuse, s.now, `${sched} #${d.n}: the entry used now was touched now`);
    }
    const v = readLocality(s)!;
    assert.is(v.expiration, 86_400_000, `${sched}_expiration: a day`);
    assert.ok(v.nextCheck > s.now - 60_000 && v.counter >= 1, "the timer's next run and count");
  }
  // IPv6 destination addresses come back whole
  const s6 = await TraceSession.create({
    service: { fwmark: 2, scheduler: "lblc", af: 10 } as any,
    dests: [{ addr: "2001:db8::1", port: 80, weight: 1 }],
    connections: [{ client: "2001:db8:1::5", dst: "2001:db8:9::a:1" }],
  } as Scenario);
  [...s6.run()];
  assert.equal(
    readLocality(s6)!.entries.map((e) => e.addr),
    ["2001:db8:9::a:1"],
  );
});

test("mh's population claim by claim ends in the table the core schedules with, for every table size", async () => {
  for (const [index, ws] of [
    [8, [4, 3, 2]],
    [9, [1, 2, 3, 5, 8, 1, 4, 7, 2, 6]],
    [12, [1000, 300, 7]],
    [8, [0, 2]],
  ] as [number, number[]][]) {
    const s = await TraceSession.create({
      service: { proto: "tcp", addr: "10.0.0.1", port: 80, scheduler: "mh" },
      dests: dests(ws),
      settings: { mh_table_index: index },
    } as Scenario);
    const v = readMhFill(s)!;
    const M = s.tracer.query(s.svc, Q.tableSize);
    assert.is(v.size, M);
    assert.is(new Set(v.claims.map((c) => c.slot)).size, M, "every slot claimed once");
    for (const c of v.claims) {
      assert.is(v.members[c.member].id, s.tracer.query(s.svc, Q.slotDest, c.slot), `slot ${c.slot}`);
    }
    // rounds: members take their turns in list order, a member with weight 0 none
    const perRound = v.members.reduce((a, m) => a + m.turns, 0);
    const first = v.claims.slice(0, perRound).map((c) => c.member);
    assert.equal(
      first,
      v.members.flatMap((m, i) => Array(m.turns).fill(i)),
      "the first round, in list order",
    );
  }
  // no destination: an empty table has no claims
  const empty = await TraceSession.create({
    service: { proto: "tcp", addr: "10.0.0.1", port: 80, scheduler: "mh" },
    dests: [],
  });
  assert.equal(readMhFill(empty)!.claims, []);
});

test("bad indices and schedulers without such state answer -1, and never trap", async () => {
  const codes = Object.values(QS);
  const bad = [-1, -2147483648, 2147483647, 1 << 20, 0x7fffff00];
  for (const sched of ["rr", "wlc", "lblc", "lblcr", "mh", "sh", "twos"]) {
    const s = await TraceSession.create({
      service: sched.startsWith("lblc")
        ? { fwmark: 1, scheduler: sched }
        : { proto: "tcp", addr: "10.0.0.1", port: 80, scheduler: sched },
      dests: dests([2, 1]),
      traffic: { count: 5, targets: 2 },
    } as Scenario);
    [...s.run()];
    for (const q of codes)
      for (const i of bad) {
        const got = s.tracer.query(s.svc, q, i);
        if (
          q === QS.treeLeaves ||
          q === QS.treeIrregular ||
          q === QS.locSnapshot ||
          q === QS.mhFill ||
          q === QS.mhMembers
        )
          continue; // these take no index
        if (q === QS.locTimer) continue;
        assert.is(got, -1, `${sched}: query ${q} with index ${i}`);
      }
    const mine =
      sched === "wlc"
        ? readTree(s)
        : sched.startsWith("lblc")
          ? readLocality(s)
          : sched === "mh"
            ? readMhFill(s)
            : null;
    if (["wlc", "lblc", "lblcr", "mh"].includes(sched)) assert.ok(mine, `${sched} has its view`);
    if (sched === "rr") assert.equal([readTree(s), readLocality(s), readMhFill(s)], [null, null, null]);
    // a service that does not exist
    assert.is(s.tracer.query(99999, QS.treeLeaves, 0), -1);
  }
});

async function trace(args: string): Promise<{ code: number; text: string }> {
  let text = "";
  const out = {
    write: (x: string) => {
      text += x;
      return true;
    },
    isTTY: false,
  };
  const code = await runTrace(args.split(/\s+/).filter(Boolean), out, out);
  return { code, text };
}

test("wasmvs trace --insides: the tree with the winner's path, the locality table, mh's first claims", async () => {
  const w = await trace("-s wlc -n 2 --insides");
  assert.is(w.code, 0);
  assert.match(w.text, /tree \(root first, leaves in list order, the path in brackets\):\n {4}\[C\]\n {4}– \[C\]\n/);
  assert.match(w.text, / {4}· · · · · \[C\] B A\n/);
  const l = await trace("--fwmark-service 1 -s lblcr --targets 2 -n 3 --insides");
  assert.match(l.text, /table:\n {4}10\.9\.0\.2 → \{B\} \(bucket 264, idle 0\.0 s\)\n {4}10\.9\.0\.1 → \{C\}/);
  const m = await trace("-s mh -n 1 --insides --set mh_table_index=8 -q");
  assert.match(m.text, /C: offset \d+, skip \d+, 2 per round\n/);
  assert.match(m.text, /claims 1-9 of 251: C→\d+/);
  // rr has no such state: nothing extra
  const r = await trace("-s rr -n 2 --insides");
  assert.not.match(r.text, /tree|table:/);
});

test.run();
