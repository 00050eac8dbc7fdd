// Scheduler tracing: the records the data plane writes (assembly/trace.ts) never change a choice, the
// traced decisions equal the core's own (Core.schedule and Core.packet on an untraced core), and every
// scheduler family's explanation says what its record says.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { Core, SCHEDULERS, TCP_FLAGS } from "../src/core/index.ts";
import { TraceSession, Tracer, Q, plain, familyOf, type Scenario, type Decision } from "../src/explain/trace.ts";
import { parseTraceArgs, runTrace } from "../src/cli/trace.ts";

const VIP = "10.0.0.1";
const ABC = [
  { addr: "10.1.0.1", port: 80, weight: 4 },
  { addr: "10.1.0.2", port: 80, weight: 3 },
  { addr: "10.1.0.3", port: 80, weight: 2 },
];

function svcFor(sched: string): Scenario["service"] {
  // dh, lblc and lblcr key on the packet's destination address: a fwmark service lets it vary
  return sched === "dh" || sched.startsWith("lblc")
    ? { fwmark: 1, scheduler: sched }
    : { proto: "tcp", addr: VIP, port: 80, scheduler: sched };
}

function all(s: TraceSession): Decision[] {
  return [...s.run()];
}
const text = (d: Decision) => d.lines.map(plain).join("\n") + "\n" + d.sentence;

// ---- (1) tracing never changes a choice -------------------------------------------------------------------
test("tracing on or off: the same 400 choices for every scheduler (Core.schedule with loads)", async () => {
  for (const sched of SCHEDULERS) {
    const runs: number[][] = [];
    for (const on of [false, true]) {
      const core = await Core.load();
      const tracer = new Tracer(core);
      tracer.enable(on);
      core.seedRandom(7);
      const svc = core.addService({
        proto: "tcp",
        addr: VIP,
        port: 80,
        scheduler: sched,
        flags: sched === "sh" ? ["sh-fallback"] : sched === "mh" ? ["mh-fallback"] : [],
      });
      const ids = [5, 3, 2, 1, 0].map((w, i) =>
        core.addDest(svc, { addr: `10.1.0.${i + 1}`, port: 80, weight: w, upperThreshold: i === 1 ? 6 : 0 }),
      );
      const out: number[] = [];
      for (let i = 0; i < 400; i++) {
        const client = `192.168.${i % 7}.${((i * 13) % 250) + 1}`;
        const id = core.schedule(svc, client, 1024 + i, { dst: `10.9.0.${i % 5}`, now: 1000 + i * 10 });
        out.push(id);
        if (on) {
          const recs = tracer.take();
          assert.is(recs.length, 1, `${sched}: one record per decision`);
          assert.is(recs[0].dest, id, `${sched}: the record names the choice`);
          assert.is(recs[0].sched, sched);
        }
        if (id >= 0) {
          const d = core.dest(id);
          core.setLoad(id, d.activeConns + (i % 3 ? 1 : 0), d.inactConns + (i % 3 ? 0 : 1));
        }
        if (i % 50 === 49) core.setLoad(ids[i % 4], 0, 0);
        if (i === 200) core.editDest(svc, { addr: "10.1.0.1", port: 80, weight: 0 });
      }
      runs.push(out);
    }
    assert.equal(runs[1], runs[0], `${sched}: tracing changed a choice`);
  }
});

test("the trace ring keeps the newest records and counts all of them", async () => {
  const core = await Core.load();
  const tracer = new Tracer(core);
  tracer.enable();
  tracer.reset();
  const svc = core.addService({ proto: "tcp", addr: VIP, port: 80, scheduler: "rr" });
  core.addDest(svc, ABC[0]);
  for (let i = 0; i < 300; i++) core.schedule(svc, "192.168.1.1", 1000 + i);
  const recs = tracer.take();
  assert.is(recs.length, core.x.traceCapacity());
  assert.is(recs[recs.length - 1].seq, 299);
  assert.is(tracer.take().length, 0);
  tracer.enable(false);
  core.schedule(svc, "192.168.1.1", 999);
  assert.is(tracer.take().length, 0, "no record while tracing is off");
});

// ---- (2) the traced session decides what the core decides ---------------------------------------------------
test("every scheduler: a traced session's decisions equal Core.packet on an untraced core", async () => {
  for (const sched of SCHEDULERS) {
    const scenario: Scenario = {
      service: { ...svcFor(sched), flags: sched === "sh" ? ["sh-fallback"] : sched === "mh" ? ["mh-fallback"] : [] },
      dests: ABC,
      seed: 3,
      traffic: { count: 40, clients: 9, targets: 5 },
      events: [
        { before: 15, op: "edit", dest: { addr: "10.1.0.2", port: 80, weight: 0 } },
        { before: 25, op: "add", dest: { addr: "10.1.0.4", port: 80, weight: 5 } },
        { before: 32, op: "del", dest: { addr: "10.1.0.1", port: 80 } },
      ],
    };
    const s = await TraceSession.create(scenario);
    const got = all(s);
    // the same packets, by hand, on a core with tracing off
    const core = await Core.load({ connCapacity: 1 << 16 });
    core.seedRandom(3);
    const sv = core.addService(scenario.service);
    for (const d of ABC) core.addDest(sv, d);
    core.advance(1000);
    const want: string[] = [];
    for (const d of got) {
      for (const e of d.events) {
        if (e.startsWith("edit")) core.editDest(sv, { addr: "10.1.0.2", port: 80, weight: 0 });
        if (e.startsWith("add")) core.addDest(sv, { addr: "10.1.0.4", port: 80, weight: 5 });
        if (e.startsWith("delete")) core.deleteDest(sv, "10.1.0.1", 80);
      }
      core.advance(1000 + d.at);
      const r = core.packet("in", "tcp", d.client, d.sport, d.dst, 80, {
        flags: TCP_FLAGS.SYN,
        now: 1000 + d.at,
        mark: scenario.service.fwmark ?? 0,
      });
      want.push(r.verdict === "forward" ? core.conn(r.conn)!.daddr : "-");
    }
    const name = (x: Decision) => (x.destId < 0 ? "-" : s.core.dest(x.destId).addr);
    assert.equal(got.map(name), want, sched);
    assert.ok(
      got.every((x) => x.how === "scheduled" || x.how === "refused"),
      `${sched}: every connection was scheduled`,
    );
    assert.ok(
      got.every((x) => x.record && x.record.dest === x.destId),
      `${sched}: each record names the connection's destination`,
    );
  }
});

test("stateless schedulers: each traced choice equals Core.schedule on a core given the same loads", async () => {
  for (const sched of ["lc", "wlc", "sed", "nq", "fo", "ovf", "sh", "mh", "dh"]) {
    const s = await TraceSession.create({
      service: svcFor(sched),
      dests: [...ABC, { addr: "10.1.0.4", port: 80, weight: 1, upperThreshold: 3 }],
      traffic: { count: 30, clients: 11, hold: 350, closeEvery: 4, targets: 3 },
    });
    const core = await Core.load();
    const sv = core.addService(svcFor(sched));
    const ids = [...ABC, { addr: "10.1.0.4", port: 80, weight: 1, upperThreshold: 3 }].map((d) => core.addDest(sv, d));
    for (const d of s.run()) {
      const before = [...d.before.dests].reverse(); // insertion order
      before.forEach((x, i) => core.setLoad(ids[i], x.activeConns, x.inactConns));
      const id = core.schedule(sv, d.client, d.sport, { dst: d.dst });
      const want = id < 0 ? "-" : core.dest(id).addr;
      const got = d.destId < 0 ? "-" : s.core.dest(d.destId).addr;
      assert.is(got, want, `${sched} #${d.n}`);
    }
  }
});

// ---- (3) explanations, one family at a time --------------------------------------------------------------
test("rr: the cursor walk skips weight 0 and overloaded destinations", async () => {
  const s = await TraceSession.create({
    service: svcFor("rr"),
    dests: [ABC[0], { ...ABC[1], weight: 0 }, ABC[2]],
    traffic: { count: 4 },
  });
  const ds = all(s);
  assert.equal(
    ds.map((d) => d.dest),
    ["C", "A", "C", "A"],
  );
  assert.match(plain(ds[1].lines[0]), /cursor C {2}walk: B✗ weight 0 A✓/);
  assert.match(ds[1].sentence, /moves on from C, the last one chosen.*: A \(skipping B \(weight 0\)\)/);
  assert.match(ds[0].sentence, /starts at the head of the list/);
});

test("wrr: the kernel's sequence, with cw, cursor and the passes shown", async () => {
  const s = await TraceSession.create({ service: svcFor("wrr"), dests: ABC, traffic: { count: 9 } });
  const ds = all(s);
  assert.equal(ds.map((d) => d.dest).join(" "), "C B A A B A C B A");
  const fourth = ds[3];
  assert.is(fourth.record!.f.W_CW1, 4);
  assert.match(plain(fourth.lines[1]), /walk: \[cw=4\] C✗2<4 B✗3<4 A✓/);
  // cw went 1 → 4: it wrapped back up to the maximum, it was not "lowered" (issue 18)
  assert.match(fourth.sentence, /went down past 1 and restarted at the maximum, 4/);
  assert.not.match(fourth.sentence, /lowered/);
  const fifth = ds[4];
  assert.is(`${fifth.record!.f.W_CW0}→${fifth.record!.f.W_CW1}`, "4→3");
  assert.match(fifth.sentence, /1 new pass lowered the current weight from 4 to 3/);
});

test("lc/wlc/sed/nq/fo/ovf: winner and runner-up figures come from the record and explain the comparison", async () => {
  const s = await TraceSession.create({ service: svcFor("wlc"), dests: ABC, traffic: { count: 3 } });
  const ds = all(s);
  const third = ds[2];
  const f = third.record!.f;
  assert.is(third.dest, "A");
  assert.is(s.name(f.W_R_ID), "B");
  assert.equal([f.W_A_ACT, f.W_A_INACT, f.W_A_W, f.W_R_ACT, f.W_R_W], [0, 0, 4, 1, 3]);
  assert.match(text(third), /A 0\/4 = 0 {2}< {2}B 256\/3 = 85\.3/);
  assert.match(text(third), /as the kernel compares: 0×3 = 0 < 256×4 = 1024/);
  assert.match(ds[0].sentence, /ties with B .* comes first in list order/);
  // the runner-up is the best other eligible destination, as a scan would find it
  for (const sched of ["lc", "wlc", "sed", "nq", "fo", "ovf"]) {
    const t = await TraceSession.create({
      service: svcFor(sched),
      dests: [...ABC, { addr: "10.1.0.4", port: 80, weight: 6 }, { addr: "10.1.0.5", port: 80, weight: 1 }],
      traffic: { count: 25, clients: 5, hold: 230 },
    });
    for (const d of t.run()) {
      const r = d.record!;
      assert.is(familyOf(sched), "least");
      const eligible = d.before.dests.filter(
        (x) => x.id !== d.destId && !x.overloaded && x.weight > 0 && (sched !== "ovf" || x.activeConns <= x.weight),
      );
      if (!eligible.length) {
        assert.is(r.f.W_R_ID, -1);
        continue;
      }
      const key = (x: { activeConns: number; inactConns: number; weight: number }) =>
        sched === "lc"
          ? x.activeConns * 256 + x.inactConns
          : sched === "wlc"
            ? (x.activeConns * 256 + x.inactConns) / x.weight
            : sched === "sed"
              ? (x.activeConns + 1) / x.weight
              : sched === "nq"
                ? x.activeConns === 0
                  ? -1
                  : (x.activeConns + 1) / x.weight
                : -x.weight;
      const best = Math.min(...eligible.map(key));
      const ru = d.before.dests.find((x) => x.id === r.f.W_R_ID)!;
      assert.is(key(ru), best, `${sched} #${d.n}: runner-up is a best other`);
      assert.is(eligible.find((x) => key(x) === best)!.id, ru.id, `${sched} #${d.n}: the earliest of the best others`);
    }
  }
  const o = await TraceSession.create({
    service: svcFor("ovf"),
    dests: [
      { addr: "10.1.0.1", port: 80, weight: 1 },
      { addr: "10.1.0.2", port: 80, weight: 2 },
    ],
    traffic: { count: 4 },
  });
  const od = all(o);
  assert.equal(od.map((d) => d.dest).join(""), "BBBA");
  assert.match(text(od[3]), /B {2}w2 {2}act 3 .* ✗ active 3 > weight 2/);
});

test("twos: r1, r2 and the two candidates, as drawn in WASM", async () => {
  const s = await TraceSession.create({ service: svcFor("twos"), dests: ABC, seed: 5, traffic: { count: 12 } });
  for (const d of s.run()) {
    const f = d.record!.f;
    assert.ok(f.W_R1 >= 0 && f.W_R1 <= f.W_TOTAL && f.W_R2 >= 0 && f.W_R2 <= f.W_TOTAL);
    assert.is(f.W_TOTAL, 9);
    assert.ok(d.destId === f.W_C1 || d.destId === f.W_C2);
    const draws = `r1=${f.W_R1} → ${s.name(f.W_C1)} +r2=${f.W_R2} → ${s.name(f.W_C2)}`;
    assert.match(plain(d.lines[1]), new RegExp(draws));
    // the draw's ranges: r = 0..2 is C (r = 0 counts as 1), 3..5 B, 6..9 A
    const expect = (r: number) => (r <= 2 ? "C" : r <= 5 ? "B" : "A");
    assert.is(s.name(f.W_C1), expect(f.W_R1));
    assert.is(s.name(f.W_C2), expect(f.W_R2));
  }
});

test("sh: bucket, and the fallback's probe path when the bucket's destination is quiesced", async () => {
  const s = await TraceSession.create({
    service: { ...svcFor("sh"), flags: ["sh-fallback"] },
    dests: ABC,
    traffic: { count: 24, clients: 24 },
    events: [{ before: 13, op: "edit", dest: { addr: "10.1.0.1", port: 80, weight: 0 } }],
  });
  const ds: Decision[] = [];
  for (const d of s.run()) {
    const f = d.record!.f;
    assert.is(f.W_TSIZE, 256);
    assert.is(s.tracer.query(s.svc, Q.slotDest, f.W_BUCKET), f.W_BDEST, "the bucket holds what the record says");
    ds.push(d);
  }
  const probed = ds.filter((d) => d.record!.f.W_PROBES > 0);
  assert.ok(probed.length > 0, "some client hashed onto the quiesced A");
  for (const d of probed) {
    assert.is(s.name(d.record!.f.W_BDEST), "A");
    const last = d.record!.path[d.record!.path.length - 1];
    assert.is(last.dest, d.destId);
    assert.match(d.sentence, /but A there has weight 0; with the fallback flag it re-hashes/);
  }
});

test("mh: slot, the member whose permutation filled it, and its preference rank", async () => {
  const s = await TraceSession.create({ service: svcFor("mh"), dests: ABC, traffic: { count: 10, clients: 10 } });
  for (const d of s.run()) {
    const f = d.record!.f;
    assert.is(f.W_TSIZE, 4093);
    assert.is(s.tracer.query(s.svc, Q.slotDest, f.W_BUCKET), d.destId);
    const m = f.W_MEMBER;
    assert.is(s.tracer.query(s.svc, Q.mhMember, m), d.destId);
    const off = s.tracer.query(s.svc, Q.mhOffset, m),
      skip = s.tracer.query(s.svc, Q.mhSkip, m);
    const j = Number(plain(d.lines[1]).match(/its (\d+)\w\w preference/)![1]) - 1;
    assert.is((off + j * skip) % 4093, f.W_BUCKET, "the rank is where the slot is in the owner's permutation");
    assert.match(d.sentence, new RegExp(`Slot ${f.W_BUCKET} is ${d.dest}'s`));
  }
});

test("dh: the destination address's bucket; no fallback", async () => {
  const s = await TraceSession.create({
    service: svcFor("dh"),
    dests: ABC,
    traffic: { count: 6, targets: 6 },
    events: [{ before: 4, op: "edit", dest: { addr: "10.1.0.1", port: 80, weight: 0 } }],
  });
  for (const d of s.run()) {
    const f = d.record!.f;
    assert.is(s.tracer.query(s.svc, Q.slotDest, f.W_BUCKET), f.W_BDEST);
    if (d.destId < 0)
      assert.match(d.sentence, /whose destination A has weight 0 and dh has no fallback: the connection is refused/);
    else
      assert.match(
        d.sentence,
        new RegExp(`destination address ${d.dst.replace(/\./g, "\\.")} to bucket ${f.W_BUCKET} of 256`),
      );
  }
});

test("lblc: new entry, kept, then replaced because its server is overloaded", async () => {
  // one destination address; A (weight 1) gets it; with two active connections A is "overloaded" while
  // B and C are under half their weight, so wlc picks again and the entry moves
  const s = await TraceSession.create({
    service: svcFor("lblc"),
    dests: [
      { addr: "10.1.0.1", port: 80, weight: 1 },
      { addr: "10.1.0.2", port: 80, weight: 4 },
      { addr: "10.1.0.3", port: 80, weight: 4 },
    ],
    traffic: { count: 4, targets: 1 },
  });
  const ds = all(s);
  const out = ds.map((d) => d.record!.f.W_OUTCOME);
  assert.is(out[0], 1, "new");
  assert.match(ds[0].sentence, /No entry for this destination address yet/);
  const firstDest = ds[0].dest;
  assert.ok(
    ds.slice(1).some((d) => d.record!.f.W_OUTCOME === 2 && d.dest === firstDest),
    "kept",
  );
  const replaced = ds.find((d) => d.record!.f.W_OUTCOME === 5);
  if (firstDest === "A") {
    assert.ok(replaced, "replaced once A is overloaded");
    assert.match(
      replaced!.sentence,
      /it is overloaded: active 2 > weight 1 while 2 destinations are under half their weight/,
    );
  }
});

test("lblcr: the server set grows when its least loaded member is overloaded", async () => {
  const s = await TraceSession.create({
    service: svcFor("lblcr"),
    dests: [
      { addr: "10.1.0.1", port: 80, weight: 1 },
      { addr: "10.1.0.2", port: 80, weight: 1 },
      { addr: "10.1.0.3", port: 80, weight: 8 },
    ],
    traffic: { count: 6, targets: 1 },
  });
  const ds = all(s);
  assert.is(ds[0].record!.f.W_OUTCOME, 1);
  const grown = ds.filter((d) => d.record!.f.W_OUTCOME === 5);
  for (const d of grown) {
    assert.ok(d.record!.set.includes(d.destId), "the new choice joined the set");
    assert.match(d.sentence, /joins the set \(now \{/);
  }
  const sets = ds.map((d) => d.record!.set.length);
  assert.ok(sets.every((n, i) => i === 0 || n >= sets[i - 1]));
});

test("persistence: a template hit is reported from the connection table, not the scheduler", async () => {
  const s = await TraceSession.create({
    service: { ...svcFor("rr"), persistent: 300 },
    dests: ABC,
    traffic: { count: 6, clients: 2 },
  });
  const ds = all(s);
  assert.equal(
    ds.map((d) => d.how),
    ["scheduled", "scheduled", "template", "template", "template", "template"],
  );
  assert.equal(
    ds.map((d) => d.dest),
    ["C", "B", "C", "B", "C", "B"],
  );
  assert.match(ds[2].sentence, /template for client network 192\.168\.1\.10 already points at C/);
  assert.is(ds[2].record, undefined);
});

// ---- (4) the command ----------------------------------------------------------------------------------------
function capture() {
  let s = "";
  return {
    out: {
      write: (x: string) => {
        s += x;
        return true;
      },
    },
    get text() {
      return s;
    },
  };
}

test("wasmvs trace: flags, ipvsadm spec, thresholds, colour and width", async () => {
  const o = parseTraceArgs([
    "-s",
    "wlc",
    "-t",
    "10.0.0.9:443",
    "-r",
    "10.1.0.1:8443:4:10:5",
    "-r",
    "10.1.0.2:8443",
    "-w",
    "2",
    "-x",
    "3",
    "-n",
    "5",
    "--explain",
  ]);
  assert.equal(o.scenario.service, { proto: "tcp", addr: "10.0.0.9", port: 443, scheduler: "wlc" });
  assert.equal(o.scenario.dests, [
    { addr: "10.1.0.1", port: 8443, weight: 4, upperThreshold: 10, lowerThreshold: 5 },
    { addr: "10.1.0.2", port: 8443, weight: 2, upperThreshold: 3, lowerThreshold: 0 },
  ]);
  const spec = parseTraceArgs(
    ["--spec", "rules"],
    () =>
      "-A -t 10.0.0.1:80 -s sh -b sh-port\n-a -t 10.0.0.1:80 -r 10.1.0.1:80 -w 2 # A\n-a -t 10.0.0.1:80 -r " +
      "10.1.0.2:80 -m -w 1\n",
  );
  assert.equal(spec.scenario.service, {
    proto: "tcp",
    addr: "10.0.0.1",
    port: 80,
    scheduler: "sh",
    flags: ["sh-port"],
  });
  assert.is(spec.scenario.dests.length, 2);
  const c = capture();
  assert.is(await runTrace(["-s", "rr", "-n", "3", "--explain", "--no-color"], c.out, c.out), 0);
  assert.match(c.text, /^rr on tcp 10\.0\.0\.1:80; list order \(newest first\): C B A\n/);
  assert.match(c.text, /choices: C B A\n/);
  assert.not.ok(c.text.includes("\x1b["), "no escape sequences");
  for (const l of c.text.split("\n")) assert.ok([...l].length <= 80, `wider than 80: ${l}`);
  const col = capture();
  await runTrace(["-s", "rr", "-n", "2", "--color"], col.out, col.out);
  assert.ok(col.text.includes("\x1b[1;36mrr\x1b[0m"), "rr in bold cyan");
  const bad = capture();
  assert.is(await runTrace(["-s", "nope"], bad.out, bad.out), 2);
  assert.match(bad.text, /unknown scheduler 'nope'/);
  const js = capture();
  await runTrace(["-s", "mh", "-n", "2", "--json"], js.out, js.out);
  const rows = js.text
    .trim()
    .split("\n")
    .map((l) => JSON.parse(l));
  assert.is(rows.length, 2);
  assert.is(rows[0].record.sched, "mh");
});

test("wasmvs trace --conns: connections from a file, with times and holds", async () => {
  const o = parseTraceArgs(
    ["-s", "lc", "--conns", "f"],
    () =>
      "# client[:port] [dst] [at=] [hold=]\n192.168.1.1:5000 at=0 hold=150\n192.168.1.2 at=100\n192.168.1.3 at=200\n",
  );
  assert.is(o.scenario.connections!.length, 3);
  const s = await TraceSession.create(o.scenario);
  const ds = all(s);
  assert.equal(
    ds.map((d) => d.dest),
    ["C", "B", "A"],
  );
  assert.is(ds[0].sport, 5000);
  // C's connection closed at 150 ms: by 200 ms it counts as inactive only (overhead 1 > A's 0)
  const c = ds[2].before.dests.find((x) => s.name(x.id) === "C")!;
  assert.equal([c.activeConns, c.inactConns], [0, 1]);
});

test.run();
