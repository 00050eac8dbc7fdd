"use strict";
// Generates test/fixtures/kernel/scenarios.json (the scenarios replayed against the real kernel by
// driver.cjs and, from the same file, against the WASM implementation).
//   node test/kernel/make-scenarios.cjs [OUT]
// Deterministic: no randomness except a fixed-seed LCG.
const fs = require("node:fs");
const path = require("node:path");

const out = process.argv[2] || path.join(__dirname, "../fixtures/kernel/scenarios.json");
const ALL = ["rr", "wrr", "lc", "wlc", "sed", "nq", "fo", "ovf", "dh", "sh", "mh", "lblc", "lblcr"];
const LC_FAMILY = ["lc", "wlc", "sed", "nq", "ovf", "lblc", "lblcr"];
const A = "10.1.0.1",
  B = "10.1.0.2",
  C = "10.1.0.3",
  D = "10.1.0.4",
  E = "10.1.0.5";

let seed = 12345;
const rnd = (n) => {
  seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
  return (seed >>> 8) % n;
};

const scenarios = [];
function service(scheduler, o = {}) {
  return {
    proto: o.proto || "tcp",
    vip: o.vip || "10.0.0.1",
    port: o.port || 80,
    scheduler,
    flags: o.flags || [],
    persistent: o.persistent ?? null,
    netmask: o.netmask ?? null,
  };
}
// Step builders. A scenario builder tracks (client, sport) pairs so none repeats within a scenario.
class S {
  constructor(name, svc) {
    this.sc = { name, service: svc, steps: [] };
    this.used = new Set();
    this.port = 40000;
  }
  add(dest, weight, u = 0, l = 0, port = 80) {
    this.sc.steps.push({ op: "add", dest, port, weight, u, l });
    return this;
  }
  edit(dest, weight, u = 0, l = 0, port = 80) {
    this.sc.steps.push({ op: "edit", dest, port, weight, u, l });
    return this;
  }
  del(dest, port = 80) {
    this.sc.steps.push({ op: "del", dest, port });
    return this;
  }
  connect(client, sport, answer = false) {
    const k = `${client} ${sport}`;
    if (this.used.has(k)) throw new Error(`${this.sc.name}: (client, sport) reused: ${k}`);
    this.used.add(k);
    this.sc.steps.push({ op: "connect", client, sport, answer });
    return this;
  }
  close(client, sport) {
    this.sc.steps.push({ op: "close", client, sport });
    return this;
  }
  wait(ms) {
    this.sc.steps.push({ op: "wait", ms });
    return this;
  }
  // n connects from one client with consecutive source ports
  seq(n, client = "10.2.0.1", answer = false) {
    for (let i = 0; i < n; i++) this.connect(client, this.port++, answer);
    return this;
  }
  // one connect from each of the clients, all with the given source port
  each(clients, sport, answer = false) {
    for (const c of clients) this.connect(c, sport, answer);
    return this;
  }
  done() {
    scenarios.push(this.sc);
    return this.sc;
  }
}
const abc = (s, wa = 4, wb = 3, wc = 2) => s.add(A, wa).add(B, wb).add(C, wc);
const small = (n, base = 1) => Array.from({ length: n }, (_, i) => `10.2.0.${base + i}`);
// n distinct pseudo-random client addresses spread over 10.2.0.0/16
function spread(n) {
  const set = new Set();
  while (set.size < n) set.add(`10.2.${rnd(256)}.${1 + rnd(254)}`);
  return [...set];
}
const spread6 = (n) => Array.from({ length: n }, (_, i) => `fd00:2::${(0x100 + i * 37 + rnd(30)).toString(16)}`);

// ---- 1. every scheduler: basic, changes, overload ----
for (const s of ALL) {
  // A=4, B=3, C=2 added in that order (list order C, B, A), 18 connects from one client, nobody answers
  abc(new S(`${s}-basic`, service(s)))
    .seq(18)
    .done();

  // weight change, weight 0, delete, new dest, re-add of a deleted dest, weight back; phases reuse the same
  // 9 clients with a new source port each phase (so hashing schedulers show re-mapping)
  const ch = abc(new S(`${s}-changes`, service(s)));
  const cl = small(9);
  let ph = 0;
  const phase = () => ch.each(cl, 41000 + ph++);
  phase();
  ch.edit(B, 1);
  phase();
  ch.edit(A, 0);
  phase();
  ch.del(C);
  phase();
  ch.add(D, 2);
  phase();
  ch.add(C, 5);
  phase();
  ch.edit(A, 4);
  phase();
  ch.del(B);
  phase();
  ch.done();

  // thresholds: A u=3, B u=2 l=1, C unlimited; then raise / clear thresholds
  const ov = new S(`${s}-overload`, service(s));
  ov.add(A, 4, 3, 0).add(B, 3, 2, 1).add(C, 2, 0, 0);
  ph = 0;
  const ovp = (n) => ov.each(small(n), 42000 + ph++);
  ovp(15);
  ov.edit(A, 4, 0, 0);
  ovp(6);
  ov.edit(B, 3, 5, 0);
  ovp(6);
  ov.edit(C, 2, 1, 0);
  ovp(6);
  ov.edit(A, 4, 2, 0);
  ov.edit(B, 3, 2, 0);
  ovp(6);
  ov.done();
}

// ---- 2. least-connection family: answered (ESTABLISHED) connections and closes ----
for (const s of LC_FAMILY) {
  const sc = abc(new S(`${s}-answered`, service(s)));
  const open = [];
  let port = 43000;
  const go = (n, pattern) => {
    for (let i = 0; i < n; i++) {
      const ans = pattern[i % pattern.length] === "T";
      const p = port++;
      sc.connect("10.2.0.1", p, ans);
      if (ans) open.push(p);
    }
  };
  const closeN = (n) => {
    for (let i = 0; i < n && open.length; i++) sc.close("10.2.0.1", open.shift());
  };
  go(12, "TTF");
  closeN(3);
  go(12, "TFT");
  sc.edit(A, 1);
  go(9, "TTT");
  closeN(5);
  sc.edit(C, 6);
  go(9, "FTT");
  closeN(2);
  go(6, "TF");
  sc.done();
}

// ---- 3. bigger least-connection runs ----
{
  // wlc: 5 destinations, 140 connects, mixed answered, closes, weight changes, delete / re-add
  const sc = new S("wlc-big", service("wlc"));
  sc.add(A, 4).add(B, 3).add(C, 2).add(D, 1).add(E, 5);
  const open = [];
  let port = 44000;
  const go = (n) => {
    for (let i = 0; i < n; i++) {
      const ans = rnd(3) !== 0;
      const p = port++;
      sc.connect("10.2.0.2", p, ans);
      if (ans) open.push(p);
    }
  };
  const closeSome = (n) => {
    for (let i = 0; i < n && open.length; i++) sc.close("10.2.0.2", open.splice(rnd(open.length), 1)[0]);
  };
  go(30);
  closeSome(8);
  sc.edit(E, 1);
  go(25);
  closeSome(6);
  sc.del(B);
  go(20);
  sc.add(B, 6);
  go(25);
  closeSome(10);
  sc.edit(D, 0);
  go(20);
  sc.edit(D, 3);
  go(20);
  sc.done();
}
for (const s of ["lblc", "lblcr"]) {
  // all on one VIP: one lblc entry; answered connections push the chosen dest past "overloaded"
  const sc = new S(`${s}-big`, service(s));
  sc.add(A, 4).add(B, 3).add(C, 2).add(D, 1).add(E, 5);
  const open = [];
  let port = 45000;
  const go = (n, pAns = 4) => {
    for (let i = 0; i < n; i++) {
      const ans = rnd(5) < pAns;
      const p = port++;
      sc.connect("10.2.0.3", p, ans);
      if (ans) open.push(p);
    }
  };
  const closeSome = (n) => {
    for (let i = 0; i < n && open.length; i++) sc.close("10.2.0.3", open.splice(rnd(open.length), 1)[0]);
  };
  go(40);
  closeSome(15);
  go(30);
  sc.edit(E, 0);
  go(20);
  closeSome(20);
  sc.edit(E, 5);
  sc.del(A);
  go(30);
  sc.add(A, 8);
  go(30);
  closeSome(25);
  go(20);
  sc.done();
}

// ---- 4. sh and mh: many clients, ports, fallback, weights ----
for (const h of ["sh", "mh"]) {
  const PORT = `${h}-port`,
    FB = `${h}-fallback`;
  const c200 = spread(200);
  abc(new S(`${h}-clients200`, service(h)))
    .each(c200, 40000)
    .done();
  // 50 clients x 4 source ports, with and without the port flag
  const c50 = spread(50);
  const withPorts = (sc) => {
    for (const c of c50) for (let k = 0; k < 4; k++) sc.connect(c, 40000 + rnd(20000));
    return sc;
  };
  seed = 777;
  withPorts(abc(new S(`${h}-port-200`, service(h, { flags: [PORT] })))).done();
  seed = 777;
  withPorts(abc(new S(`${h}-noport-200`, service(h)))).done();
  // B quiesced (weight 0), with and without fallback
  const c150 = spread(150);
  abc(new S(`${h}-weight0-nofallback`, service(h)))
    .edit(B, 0)
    .each(c150, 40000)
    .done();
  abc(new S(`${h}-weight0-fallback`, service(h, { flags: [FB] })))
    .edit(B, 0)
    .each(c150, 40000)
    .done();
  // port + fallback, B weight 0 (B added with weight 0 from the start)
  const c25 = spread(25);
  const pf = new S(`${h}-port-fallback-weight0`, service(h, { flags: [PORT, FB] }));
  pf.add(A, 4).add(B, 0).add(C, 2);
  for (const c of c25) for (let k = 0; k < 4; k++) pf.connect(c, 40000 + rnd(20000));
  pf.done();
  // re-mapping: same 64 clients after delete, re-add, weight change, new destination
  const c64 = spread(64);
  const rm = abc(new S(`${h}-remap`, service(h)));
  let p = 46000;
  rm.each(c64, p++);
  rm.del(B);
  rm.each(c64, p++);
  rm.add(B, 3);
  rm.each(c64, p++);
  rm.edit(C, 5);
  rm.each(c64, p++);
  rm.add(D, 1);
  rm.each(c64, p++);
  rm.edit(A, 0);
  rm.each(c64, p++);
  rm.done();
  // overload with fallback: C has u=1
  const ovc = spread(60);
  const of = new S(`${h}-overload-fallback`, service(h, { flags: [FB] }));
  of.add(A, 4, 4, 0).add(B, 3, 2, 0).add(C, 2, 1, 0).each(ovc, 40000).done();
}
{
  // sh with weights summing to more than 256 buckets
  const c = spread(120);
  new S("sh-heavy-weights", service("sh")).add(A, 200).add(B, 100).add(C, 50).each(c, 40000).done();
  // mh with 10 destinations of different weights, then one deleted and one quiesced
  const W = [1, 2, 3, 5, 8, 1, 4, 7, 2, 6];
  const c300 = spread(300);
  const m = new S("mh-10dests", service("mh"));
  W.forEach((w, i) => m.add(`10.1.0.${i + 1}`, w));
  m.each(c300, 40000).done();
  const c100 = spread(100);
  const m2 = new S("mh-10dests-changes", service("mh", { flags: ["mh-fallback"] }));
  W.forEach((w, i) => m2.add(`10.1.0.${i + 1}`, w));
  m2.each(c100, 40000);
  m2.del("10.1.0.5");
  m2.each(c100, 40001);
  m2.edit("10.1.0.8", 0);
  m2.each(c100, 40002);
  m2.edit("10.1.0.8", 7);
  m2.add("10.1.0.5", 8);
  m2.each(c100, 40003);
  m2.done();
  // mh with large weights (rshift > 0: max weight / gcd >= 64)
  const c80 = spread(80);
  new S("mh-large-weights", service("mh")).add(A, 1000).add(B, 300).add(C, 7).each(c80, 40000).done();
}

// ---- 5. dh: the key is the destination (VIP) address ----
for (let n = 1; n <= 16; n++) {
  const vip = `10.0.0.${((n * 13) % 250) + 1}`;
  abc(new S(`dh-vip-${vip}`, service("dh", { vip })))
    .seq(2)
    .done();
}
for (let n = 0; n < 12; n++) {
  const vip = `10.0.${1 + n}.${((n * 29) % 250) + 3}`;
  new S(`dh-5dests-vip-${vip}`, service("dh", { vip })).add(A, 1).add(B, 1).add(C, 1).add(D, 1).add(E, 1).seq(2).done();
}

// ---- 6. UDP: never active ----
for (const s of ["wlc", "rr", "lc", "sed", "ovf"]) {
  const sc = abc(new S(`udp-${s}`, service(s, { proto: "udp", port: 53 })));
  sc.sc.steps = sc.sc.steps.map((x) => ({ ...x, port: 53 }));
  sc.seq(18);
  sc.edit(A, 0, 0, 0, 53);
  sc.seq(6);
  sc.done();
}

// ---- 7. persistence ----
{
  // -p 300: six clients, each with five source ports, interleaved -> each client sticks
  const p = abc(new S("persist-rr", service("rr", { persistent: 300 })));
  const cl = small(6, 10);
  for (let k = 0; k < 5; k++) p.each(cl, 47000 + k);
  p.done();
  // -p 300 -M 255.255.255.0: clients of the same /24 share a template
  const m = abc(new S("persist-netmask", service("rr", { persistent: 300, netmask: "255.255.255.0" })));
  const nets = [1, 2, 3, 4, 5, 6, 7];
  for (let k = 0; k < 4; k++) for (const n of nets) m.connect(`10.2.${n}.${10 + k * 7 + n}`, 47100 + k);
  m.done();
  // persistence and quiescing / deleting the pinned destination
  const q = abc(new S("persist-wlc-quiesce-delete", service("wlc", { persistent: 300 })));
  const qc = small(6, 20);
  q.each(qc, 47200);
  q.edit(C, 0);
  q.each(qc, 47201);
  q.del(B);
  q.each(qc, 47202);
  q.add(B, 3);
  q.each(qc, 47203);
  q.each(small(4, 40), 47204);
  q.done();
  // persistence with sh (template wins over the hash after a weight change)
  const sp = abc(new S("persist-sh-change", service("sh", { persistent: 300 })));
  const sc = spread(30);
  sp.each(sc, 47300);
  sp.add(D, 5);
  sp.each(sc, 47301);
  sp.done();
}

// ---- 8. IPv6 ----
{
  const A6 = "fd00:1::1",
    B6 = "fd00:1::2",
    C6 = "fd00:1::3";
  const c6 = spread6(120);
  for (const [h, flags] of [
    ["sh", []],
    ["mh", []],
    ["mh", ["mh-port"]],
    ["sh", ["sh-port"]],
  ]) {
    const sc = new S(`${h}-ipv6${flags.length ? "-port" : ""}`, service(h, { vip: "fd00::1", flags }));
    sc.add(A6, 4).add(B6, 3).add(C6, 2);
    if (flags.length) {
      for (const c of c6.slice(0, 40)) for (let k = 0; k < 3; k++) sc.connect(c, 40000 + rnd(20000));
    } else sc.each(c6, 40000);
    sc.done();
  }
  const w6 = new S("wrr-ipv6", service("wrr", { vip: "fd00::1" }));
  w6.add(A6, 4).add(B6, 3).add(C6, 2).seq(18, "fd00:2::1").done();
}

// ---- 6. differential runs: 1,000 connections per scheduler (issue 4) ----
// 250 clients spread over 10.2.0.0/16 with random source ports; five destinations; weight 0, an upper
// threshold that overloads, a delete and re-add, answered (established) connections and closes for the
// least-connection family; sh and mh with both their -port and -fallback flags.
for (const s of ALL) {
  const flags = s === "sh" ? ["sh-port", "sh-fallback"] : s === "mh" ? ["mh-port", "mh-fallback"] : [];
  const sc = new S(`${s}-diff1000`, service(s, { flags, vip: "10.0.0.200" }));
  sc.add(A, 4).add(B, 3).add(C, 2).add(D, 1).add(E, 5);
  const clients = spread(250);
  const answers = LC_FAMILY.includes(s);
  const open = [];
  const go = (n) => {
    for (let i = 0; i < n; i++) {
      const c = clients[rnd(clients.length)];
      let p = 20000 + rnd(40000);
      while (sc.used.has(`${c} ${p}`)) p = 20000 + rnd(40000);
      const ans = answers && rnd(3) === 0;
      sc.connect(c, p, ans);
      if (ans) open.push([c, p]);
    }
  };
  const closeSome = (n) => {
    for (let i = 0; i < n && open.length; i++) {
      const [c, p] = open.splice(rnd(open.length), 1)[0];
      sc.close(c, p);
    }
  };
  go(250);
  closeSome(20);
  sc.edit(C, 0);
  go(250);
  closeSome(20);
  sc.edit(A, 4, 40);
  sc.del(B);
  go(250);
  closeSome(20);
  sc.add(B, 6).edit(C, 2).edit(A, 4);
  go(250);
  sc.done();
}

// ---- 10. wrr after a change, and where a failed wrr pass leaves its cursor (issue 14) ----
{
  // weights 1, 5, 8, 2, 3, 0 added in that order: the first connection goes to the weight-3 destination
  const o = new S("wrr-add-order-1-5-8-2-3-0", service("wrr"));
  [1, 5, 8, 2, 3, 0].forEach((w, i) => o.add(`10.1.0.${i + 1}`, w));
  o.seq(24).done();
  // a destination set to weight 0 mid-run is never chosen; then weight back, and all but one quiesced
  const z = abc(new S("wrr-weight0-midrun", service("wrr")));
  z.seq(4).edit(B, 0).seq(12).edit(B, 3).seq(9).edit(A, 0).edit(C, 0).seq(4).edit(A, 8).seq(6).done();
  // every candidate overloaded (UDP, upper thresholds), then the entries expire (UDP timeout 10 s, a 13 s
  // wait) and the overload clears without a configuration change, so the next choices show where the
  // failed pass left the cursor
  const variants = [
    [
      [4, 1],
      [3, 1],
      [2, 1],
    ],
    [
      [4, 2],
      [3, 1],
      [2, 1],
    ],
    [
      [4, 1],
      [3, 2],
      [2, 3],
    ],
    [
      [1, 3],
      [1, 3],
      [1, 1],
    ],
    [
      [5, 1],
      [1, 1],
      [1, 2],
    ],
    [
      [8, 3],
      [5, 2],
      [2, 2],
    ],
  ];
  variants.forEach((v, k) => {
    const sc = new S(`wrr-overloaded-cursor-${k + 1}`, service("wrr", { proto: "udp", port: 53 }));
    sc.sc.service.udpTimeout = 10;
    [A, B, C].forEach((d, j) => sc.add(d, v[j][0], v[j][1], 0, 53));
    const total = v.reduce((n, x) => n + x[1], 0);
    sc.seq(total + 2)
      .wait(13000)
      .seq(total + 2)
      .wait(13000)
      .seq(4)
      .edit(C, v[2][0], 0, 0, 53)
      .seq(4);
    sc.done();
  });
}

fs.mkdirSync(path.dirname(out), { recursive: true });
const fmt = (s) =>
  `{"name": ${JSON.stringify(s.name)}, "service": ${JSON.stringify(s.service)}, "steps": [\n` +
  s.steps.map((x) => `  ${JSON.stringify(x)}`).join(",\n") +
  "\n]}";
fs.writeFileSync(out, "[\n" + scenarios.map(fmt).join(",\n") + "\n]\n");
const nc = scenarios.reduce((n, s) => n + s.steps.filter((x) => x.op === "connect").length, 0);
console.log(`${out}: ${scenarios.length} scenarios, ${nc} connects`);
