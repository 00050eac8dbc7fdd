// The simulator: its rule walk over a real generated ruleset, its traffic through the real data plane
// (checked decision by decision against Core.packet on a fresh Core), and the model fitting and checks.
import { test } from "uvu";
import * as assert from "uvu/assert";
import {
  scalingCluster,
  simServices,
  iptablesPartial,
  nftPartial,
  runEngine,
  loadCore,
  calibrate,
  linFit,
  leaveOneOut,
  linModel,
  simulate,
  Walker,
  ipv4Number,
  chooseCurve,
  curveAt,
  COST_CURVES,
} from "../src/sim/index.ts";
import { DEFAULT_CALIBRATION } from "../src/sim/calibration.ts";

const c = scalingCluster(50, 2);
const ipStr = (a: number) => `${a >>> 24}.${(a >>> 16) & 255}.${(a >>> 8) & 255}.${a & 255}`;

test("rule walk: Services in KUBE-SERVICES order, the walk ends in DNAT to one of the Service's endpoints", () => {
  assert.ok(c.targets.length >= 50, `${c.targets.length} TCP Service ports`);
  for (let i = 1; i < c.targets.length; i++) assert.ok(c.targets[i].position > c.targets[i - 1].position);
  const w = new Walker(c.ruleset, new Set([ipv4Number("192.168.201.1")]));
  for (const t of [c.targets[0], c.targets[c.targets.length - 1]]) {
    const r = w.walk({ proto: "tcp", src: ipv4Number("192.168.201.2"), dst: ipv4Number(t.vip), dport: t.port });
    assert.ok(r.dnat && t.endpoints.includes(r.dnat), `${t.vip}:${t.port} → ${r.dnat}`);
    assert.is(r.post, 4, "masqueraded: POSTROUTING jump + the three KUBE-POSTROUTING rules");
  }
  const s = simServices(c);
  assert.ok(s.services[s.services.length - 1].walkRules > s.services[0].walkRules);
  assert.ok(s.walkNoService > s.services[s.services.length - 1].walkRules - 10, "a pod IP walks all of KUBE-SERVICES");
});

test("partial syncs: +1 Service touches only the new chains (and KUBE-SERVICES for iptables)", () => {
  const n = scalingCluster(51, 2);
  const ipt = iptablesPartial(c.iptables.install, n.iptables.install);
  assert.ok(ipt.includes(":KUBE-SERVICES - [0:0]") && ipt.includes("COMMIT"));
  assert.not.ok(ipt.includes("KUBE-SVC-7MUI7YAIRAGRM7XB - [0:0]"), "an unchanged Service chain is not rewritten");
  const nf = nftPartial(c.nft.text, n.nft.text);
  assert.ok(nf.includes("svc-50/") && !nf.includes("flush map"));
});

test("the engine agrees with the real data plane: every recorded SYN chose what Core.packet chooses", async () => {
  const { services } = simServices(c);
  const r = await runEngine(services, {
    connections: 3000,
    rate: 2000,
    meanLengthMs: 100,
    requests: 2,
    clients: 64,
    zipf: 0.8,
    seed: 5,
    record: 500,
  });
  assert.is(r.connections, 3000);
  assert.is(r.forwarded, r.packets, "every packet forwarded");
  assert.is(r.decisions.length, 500);
  const { core, ids } = await loadCore(services, 4096);
  for (const d of r.decisions) {
    const s = services[d.svc];
    const res = core.packet("in", "tcp", ipStr(d.caddr), d.cport, ipStr(s.vip), s.port, { flags: 2, now: 0 });
    assert.ok(res.isNew);
    const conn = core.conn(res.conn)!;
    assert.is(`${conn.daddr}:${conn.dport}`, `${ipStr(d.daddr)}:${d.dport}`, `service ${d.svc} (${ids[d.svc]})`);
    assert.ok(s.endpoints.some(([a, p]) => a === d.daddr && p === d.dport));
  }
});

test("model: fits and leave-one-N-out checks", () => {
  const f = linFit([
    { x: 1, y: 3 },
    { x: 2, y: 5 },
    { x: 4, y: 9 },
  ]);
  assert.ok(Math.abs(f.a - 1) < 1e-9 && Math.abs(f.b - 2) < 1e-9);
  const pts = [1000, 2000, 5000].flatMap((n) => [
    { x: n, y: 10 + n / 100, n },
    { x: 2 * n, y: 10 + n / 50, n },
  ]);
  for (const ch of leaveOneOut(pts, linModel)) assert.ok(Math.abs(ch.errPct) < 1e-6);
  const mk = (services: number, mode: string) => ({
    mode,
    kind: "rule-walk" as const,
    services,
    rules: services * 12,
    units: "host" as const,
    syncMs: services / 10,
    incrementalMs: services / 100,
    first: { walk: 100, latP50: 30, cpu: 40 },
    last: { walk: services * 1.5, latP50: 30 + services * 0.005, cpu: 40 + services * 0.005 },
    baseline: { latP50: 20, cpu: 27 },
  });
  const { calibration, checks } = calibrate([mk(1000, "x"), mk(5000, "x")], "test", "test");
  assert.is(calibration.modes[0].measuredN.join(), "1000,5000");
  assert.is(checks.x.latency.length, 4, "two N, two points each: a line is checkable");
  assert.is(checks.x.sync.length, 0, "one N left cannot fix a sync curve: unchecked, not checked against itself");
  const four = calibrate(
    [1000, 2000, 5000, 10000].map((n) => mk(n, "x")),
    "test",
    "test",
  );
  assert.is(four.checks.x.sync.length, 4);
});

test("sync curves: the model that misses least when each N is left out, coefficients never negative", () => {
  const ns = [1000, 2000, 5000, 10000];
  const pts = (f: (r: number) => number) => ns.map((n) => ({ x: n * 12.7, y: f(n * 12.7), n }));
  const quad = chooseCurve(pts((r) => 50 + 0.001 * r + 2e-8 * r * r));
  assert.is(quad.fit.model, "quadratic");
  assert.ok(
    quad.checks.length === 4 && quad.checks.every((c) => Math.abs(c.errPct) < 1e-6),
    JSON.stringify(quad.checks),
  );
  assert.ok(Math.abs(curveAt(quad.fit, 381000) - (50 + 381 + 2e-8 * 381000 ** 2)) < 1e-3, "30k Services");
  const lin = chooseCurve(pts((r) => 20 + 0.01 * r));
  assert.is(lin.fit.model, "linear");
  // the power law is picked for power-law data, and a fit is never below zero where it extrapolates
  const pow = chooseCurve(pts((r) => 3e-6 * r ** 1.7));
  assert.is(pow.fit.model, "power");
  const falling = chooseCurve(pts((r) => 100 - r / 2000));
  assert.ok(falling.fit.model === "power" || falling.fit.coef.every((c) => c >= 0));
  assert.ok(curveAt(falling.fit, 1_270_000) >= 0);
  // the kept model's error is reported beside the others'
  assert.is(quad.fit.candidates.length, 3);
  assert.ok(quad.fit.candidates.find((c) => c.model === "linear")!.looMeanAbsErrPct! > 1);
  // two N: nothing checkable; a power law through both
  const two = chooseCurve(pts((r) => 50 + 0.001 * r).slice(0, 2));
  assert.is(two.checks.length, 0);
  assert.is(two.fit.looMeanAbsErrPct, null);
  // calibrations written before curves (a power law {a, k}) still read
  assert.ok(Math.abs(curveAt({ a: 2, k: 2, points: 3 }, 3) - 18) < 1e-9);
});

test("first-packet cost curves: a knee where the walk leaves the caches, then a line; else one line", () => {
  // two points per N (the first and the last Service's walk), cheap per rule up to 3,000 rules, dear past it
  const cost = (w: number) => 10 + 0.002 * w + 0.025 * Math.max(0, w - 3000);
  const ns = [1000, 2000, 5000, 10000];
  const pts = ns.flatMap((n) => [
    { x: n / 10, y: cost(n / 10), n },
    { x: n * 1.6, y: cost(n * 1.6), n },
  ]);
  const bent = chooseCurve(pts, COST_CURVES, "linear");
  assert.is(bent.fit.model, "hinge");
  assert.is(bent.fit.coef[3], 3200, "the knee sits at a measured walk");
  // past the measured range it goes on as a line with the steep slope, not a parabola
  const at = (w: number) => curveAt(bent.fit, w);
  assert.ok(
    Math.abs((at(160000) - at(80000)) / 80000 - 0.027) < 0.002,
    `slope past the knee ${(at(160000) - at(80000)) / 80000}`,
  );
  assert.ok(bent.fit.coef.every((c) => c >= 0));
  const flat = chooseCurve(
    ns.flatMap((n) => [
      { x: n, y: 11 + (n % 3000) / 1e4, n },
      { x: n, y: 11.2, n },
    ]),
    COST_CURVES,
    "linear",
  );
  assert.is(flat.fit.model, "linear", "no bend: the simpler curve");
  assert.ok(flat.fit.coef[1] >= 0 && Math.abs(curveAt(flat.fit, 100000) - 11.2) < 1, "flat stays flat, never falls");
  // calibrations written before (a line {a, b}) still read
  assert.ok(Math.abs(curveAt({ a: 2, b: 3, points: 4 }, 10) - 32) < 1e-9);
});

test("simulate: modelled modes over a small cluster; iptables costs grow with N, nftables stays flat", async () => {
  const res = await simulate({
    services: [50, 400],
    endpoints: 2,
    calibration: DEFAULT_CALIBRATION,
    traffic: { connections: 5000, rate: 1000, meanLengthMs: 50, requests: 1, clients: 16, zipf: 0 },
    synConns: 5000,
  });
  assert.is(res.length, 2);
  const at = (i: number, m: string) => res[i].modes.find((x) => x.mode === m)!;
  assert.ok(at(1, "iptables-legacy").firstPacket.p50 > at(0, "iptables-legacy").firstPacket.p50);
  assert.ok(Math.abs(at(1, "nftables").firstPacket.p50 - at(0, "nftables").firstPacket.p50) < 1);
  assert.ok(res[0].wasm.nsPerNewConn > 0 && res[0].engine.forwarded === res[0].engine.packets);
});

test.run();
