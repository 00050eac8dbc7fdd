// The scaling benchmark end to end at 50 Services: every host mode's rules really installed (counted back),
// connections really translated (the backends saw them on the Services' endpoints), the xtables lock test
// run, wasmvs packet mode's connects (its takeover rules counted back, the backends reached only from its
// full-NAT address), the simulator run, and the report written. Needs root, iptables (both backends), nft,
// ethtool and the packet-mode addon.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { hostSkipReason } from "../bench/scaling/netns.ts";
import { measureProxy } from "../bench/scaling/proxy.ts";
import { measureVm, vmSkipReason } from "../bench/scaling/vm.ts";
import { scalingCluster } from "../src/sim/cluster.ts";
import { skip as skipTest, testOrSkip } from "./helpers/skip.ts";

const skip = hostSkipReason();
// the simulator and the report are checked either way; the host modes only where they can run
if (skip) skipTest(import.meta.url, "bench/scaling.ts at 50 Services: the host part (iptables, nftables, packet mode measured in namespaces)", skip);
const out = mkdtempSync(join(tmpdir(), "wasmvs-scaling-test-"));

test(`bench/scaling.ts at 50 Services: ${skip ? "simulator and report (host part skipped, above)" : "rules, connects, lock, packet mode, simulator, report"}`, () => {
  try {
    const r = spawnSync(process.execPath, ["--import", "tsx", "bench/scaling.ts", "--services=50", "--sim-services=200", "--sim-connections=20000", "--no-proxy", `--out=${out}`],
      { encoding: "utf8", timeout: 110_000, maxBuffer: 1 << 26 });
    assert.is(r.status, 0, r.stderr.slice(-3000));
    for (const f of ["scaling.json", "calibration.json", "summary.md", "latency.svg", "cpu.svg", "sync.svg", "incremental.svg"]) assert.ok(existsSync(join(out, f)), `${f} written`);
    const j = JSON.parse(readFileSync(join(out, "scaling.json"), "utf8"));
    const md = readFileSync(join(out, "summary.md"), "utf8");
    assert.ok(md.includes("node --import tsx bench/scaling.ts"), "commands printed under the figures");
    assert.ok(j.sim.length === 2 && j.sim.every((p: any) => p.engine.forwarded === p.engine.packets && p.engine.connections === 20000));
    if (skip) { assert.is(j.host.length, 0); return; }
    assert.is(j.host.length, 3);
    for (const h of j.host) {
      assert.is(h.rules.counted, h.rules.expected, `${h.mode}: ${h.rules.what}`);
      assert.ok(h.translated.first >= 400 && h.translated.last >= 400, `${h.mode}: backends saw ${h.translated.first}/${h.translated.last} connections on the Services' endpoints`);
      assert.ok(h.first.lat.p50 > 0 && h.last.lat.p99 >= h.last.lat.p50 && h.first.cpu.usPerConn > 0);
      assert.ok(h.syncMs > 0 && h.incrementalMs > 0);
      if (h.mode !== "nftables") assert.ok(h.lock && h.lock.bigRestoreMs > 0, `${h.mode}: lock test ran`);
    }
    // packet mode: 300 timed connects per target and 1000 for CPU (+30 warm-up) went through the WASM packet path
    assert.is(j.meta.packetSkipped, null, "packet mode measured");
    assert.is(j.packet.length, 1);
    const k = j.packet[0];
    assert.is(k.takeover.entries, k.takeover.expected, "one takeover entry per virtual service + the local address, counted back from nft");
    assert.is(k.takeover.rules, 2, "in two rules (the IPv4 services' set, the local address), not one per service");
    assert.ok(k.takeover.dropped > 0, "the takeover rules dropped the kernel's copies");
    assert.is(k.first.connect.n, 300); assert.is(k.last.firstByte.n, 300);
    assert.ok(k.translated.first >= 1300 && k.translated.last >= 1300, `packet mode: backends saw ${k.translated.first}/${k.translated.last} connections on the Services' endpoints`);
    assert.ok(k.fullNat.fromLocal > 0 && k.fullNat.fromOther === 0, `backends reached from the full-NAT address ${k.fullNat.fromLocal}, elsewhere ${k.fullNat.fromOther}`);
    assert.ok(k.core.forwarded > 4 * 2600 && k.core.txErrors === 0, `core forwarded ${k.core.forwarded}, send errors ${k.core.txErrors}`);
    assert.ok(k.first.connect.p50 > 0 && k.last.firstByte.p99 >= k.last.firstByte.p50 && k.last.proxyCpuUsPerConn > 0);
    assert.ok(md.includes("packet mode (measured on this kernel)") && /\| 50 \| \d+ \/ \d+, 2 \(\d+\) \|/.test(md), "summary.md has the packet-mode row");
    for (const f of ["latency.svg", "cpu.svg"]) assert.ok(readFileSync(join(out, f), "utf8").includes("wasmvs packet mode"), `${f} plots packet mode`);
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
});

testOrSkip(import.meta.url, skip, "wasmvs proxy socket mode at 20 Services: every listener up, connections really proxied to the Services' endpoints", async () => {
  const c = scalingCluster(20, 2);
  const p = await measureProxy(c, { connects: 100, cpuConnects: 200 });
  assert.ok(p.listening >= p.virtualServices - 5 && p.virtualServices > 20, `${p.listening} listeners for ${p.virtualServices} virtual services`);
  // first byte = the backend's banner came back through the proxy: 100 timed + 15 warm-up + 200 CPU per target, at least
  assert.is(p.first.firstByte.n, 100); assert.is(p.last.firstByte.n, 100);
  assert.ok(p.translated.first >= 300 && p.translated.last >= 300, `backends saw ${p.translated.first}/${p.translated.last} connections on the Services' endpoints`);
  assert.ok(p.first.firstByte.p50 > 0 && p.last.firstByte.p99 >= p.last.firstByte.p50 && p.last.proxyCpuUsPerConn > 0);
});

// the VM brings its own iptables, ipset and ipvsadm: only the VM itself is needed here
testOrSkip(import.meta.url, vmSkipReason(), "IPVS mode in the kernel VM at 20 Services: virtual services, ipsets and iptables installed, connections NATed by IPVS and by iptables", async () => {
  const [v] = await measureVm([20], 2, { connects: 60, cpuConnects: 100 });
  const i = v.ipvs;
  assert.match(v.kernel, /^6\.1\./);
  assert.is(i.counted.services, i.expected.services, "virtual services (full sync + 1 Service) counted back");
  assert.is(i.counted.realServers, i.expected.realServers, "real servers counted back");
  assert.is(i.counted.ipsetEntries, i.expected.ipsetEntries, "ipset entries");
  assert.is(i.counted.iptablesRules, i.expected.iptablesRules, "IPVS mode's iptables rules");
  assert.is(i.counted.boundAddrs, i.expected.boundAddrs, "kube-ipvs0 addresses");
  assert.ok(i.syncIpvsadmMs > 0 && i.syncReconcilerMs > 0 && i.incReconcilerMs > 0 && i.reconcilerMessages > 0);
  // the backends only see the endpoint addresses behind NAT: IPVS (and then iptables DNAT) really translated
  // IPVS's Conns counter: at least the 60 timed connects per Service (a reused client port may meet its old
  // entry and not count as new); the backends' tally is a lower bound under TCG (a connection the connector
  // resets before the slow backend accepts it is not counted)
  assert.ok(i.ipvsConns.first >= 60 && i.ipvsConns.last >= 60, `IPVS scheduled ${i.ipvsConns.first}/${i.ipvsConns.last} connections`);
  assert.ok(i.translated.first > 0 && i.translated.last > 0, `IPVS: backends saw ${i.translated.first}/${i.translated.last}`);
  assert.is(v.iptables.rules.counted, v.iptables.rules.expected);
  assert.ok(v.iptables.translated.first > 0 && v.iptables.translated.last > 0, `iptables: backends saw ${v.iptables.translated.first}/${v.iptables.translated.last}`);
  assert.ok(i.first.lat.n === 60 && v.iptables.last.lat.p50 > 0);
});

test.run();
