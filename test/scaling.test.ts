// The scaling benchmark end to end at 50 Services: every host mode's rules really installed (counted back),
// connections really translated (the backends saw them on the Services' endpoints), the xtables lock test
// run, wasmvs packet mode's connects (its takeover rules counted back, the backends reached only from its
// full-NAT address), the simulator run, and the report written. Needs root, iptables (both backends), nft,
// ethtool and the packet-mode addon.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { benchTimeFactor, hostSkipReason } from "../bench/scaling/netns.ts";
import { measureProxy } from "../bench/scaling/proxy.ts";
import { measureVm, vmSkipReason } from "../bench/scaling/vm.ts";
import { scalingCluster } from "../src/sim/cluster.ts";
import { benchInVm, vmHostLimitS, vmHostSkipReason } from "../bench/scaling/vmhost.ts";
import { skip as skipTest, testOrSkip } from "./helpers/skip.ts";

const skip = hostSkipReason();
// the simulator and the report are checked either way; the host modes only where they can run
if (skip)
  skipTest(
    import.meta.url,
    "bench/scaling.ts at 50 Services: the host part (iptables, nftables, packet mode measured in namespaces)",
    skip,
  );

test(
  `bench/scaling.ts at 50 Services: ` +
    (skip
      ? "simulator and report (host part skipped, above)"
      : "rules, connects, lock, packet mode, simulator, report"),
  () => {
    // made here, not at import: a run that stops before this test must not leave it behind
    const out = mkdtempSync(join(tmpdir(), "wasmvs-scaling-test-"));
    try {
      const r = spawnSync(
        process.execPath,
        [
          "--import",
          "tsx",
          "bench/scaling.ts",
          "--services=50",
          "--sim-services=200",
          "--sim-connections=20000",
          "--no-proxy",
          `--out=${out}`,
        ],
        { encoding: "utf8", timeout: 110_000, maxBuffer: 1 << 26 },
      );
      assert.is(r.status, 0, r.stderr.slice(-3000));
      for (const f of [
        "scaling.json",
        "calibration.json",
        "summary.md",
        "latency.svg",
        "cpu.svg",
        "sync.svg",
        "incremental.svg",
      ])
        assert.ok(existsSync(join(out, f)), `${f} written`);
      const j = JSON.parse(readFileSync(join(out, "scaling.json"), "utf8"));
      const md = readFileSync(join(out, "summary.md"), "utf8");
      reportAgrees(r.stdout, r.stderr, md, j);
      assert.equal(
        readdirSync(tmpdir()).filter((f) => f === `wasmvs-xtables-${r.pid}.lock`),
        [],
        "the private xtables lock file is removed at exit",
      );
      assert.ok(
        j.meta.command.startsWith("node --import tsx bench/scaling.ts ") &&
          ["--services=50", "--no-proxy", `--out=${out}`].every((a) => j.meta.command.split(" ").includes(a)),
        j.meta.command,
      );
      assert.ok(
        j.sim.length === 2 &&
          j.sim.every((p: any) => p.engine.forwarded === p.engine.packets && p.engine.connections === 20000),
      );
      if (skip) {
        assert.is(j.host.length, 0);
        return;
      }
      assert.is(j.host.length, 3);
      for (const h of j.host) {
        assert.is(h.rules.counted, h.rules.expected, `${h.mode}: ${h.rules.what}`);
        assert.ok(
          h.translated.first >= 400 && h.translated.last >= 400,
          `${h.mode}: backends saw ${h.translated.first}/${h.translated.last} connections on the Services' endpoints`,
        );
        assert.ok(h.first.lat.p50 > 0 && h.last.lat.p99 >= h.last.lat.p50 && h.first.cpu.usPerConn > 0);
        assert.ok(h.syncMs > 0 && h.incrementalMs > 0);
        if (h.mode !== "nftables") assert.ok(h.lock && h.lock.bigRestoreMs > 0, `${h.mode}: lock test ran`);
      }
      // packet mode: 300 timed connects per target and 1000 for CPU (+30 warm-up) went through the WASM packet path
      assert.is(j.meta.packetSkipped, null, "packet mode measured");
      assert.is(j.packet.length, 1);
      const k = j.packet[0];
      assert.is(
        k.takeover.entries,
        k.takeover.expected,
        "one takeover entry per virtual service + the local address, counted back from nft",
      );
      assert.is(k.takeover.rules, 2, "in two rules (the IPv4 services' set, the local address), not one per service");
      assert.ok(k.takeover.dropped > 0, "the takeover rules dropped the kernel's copies");
      assert.is(k.first.connect.n, 300);
      assert.is(k.last.firstByte.n, 300);
      assert.ok(
        k.translated.first >= 1300 && k.translated.last >= 1300,
        `packet mode: backends saw ${k.translated.first}/${k.translated.last} connections on the Services' endpoints`,
      );
      assert.ok(
        k.fullNat.fromLocal > 0 && k.fullNat.fromOther === 0,
        `backends reached from the full-NAT address ${k.fullNat.fromLocal}, elsewhere ${k.fullNat.fromOther}`,
      );
      assert.ok(
        k.core.forwarded > 4 * 2600 && k.core.txErrors === 0,
        `core forwarded ${k.core.forwarded}, send errors ${k.core.txErrors}`,
      );
      assert.ok(
        k.first.connect.p50 > 0 && k.last.firstByte.p99 >= k.last.firstByte.p50 && k.last.proxyCpuUsPerConn > 0,
      );
      assert.ok(
        md.includes("packet mode (measured on this kernel)") && /\| 50 \| \d+ \/ \d+, 2 \(\d+\) \|/.test(md),
        "summary.md has the packet-mode row",
      );
      for (const f of ["latency.svg", "cpu.svg"])
        assert.ok(readFileSync(join(out, f), "utf8").includes("wasmvs packet mode"), `${f} plots packet mode`);
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
  },
);

/** The terminal and summary.md agree: every row of the terminal's tables is in summary.md as is; the data
 * plane's cost per new connection has one figure per N everywhere; no placeholder reached the summary; every
 * modelled figure carries a range; every command under the summary's figures is the run's own command (the
 * terminal prints it too); the progress bar counted up one step at a time to its total. */
function reportAgrees(stdout: string, stderr: string, md: string, j: any): void {
  const cells = (line: string) =>
    line
      .split(/ {2,}/)
      .map((c) => c.trim())
      .filter(Boolean);
  const mdRows = md
    .split("\n")
    .filter((l) => l.startsWith("| "))
    .map((l) =>
      l
        .slice(2, -2)
        .split(" | ")
        .map((c) => c.replace(/\\\|/g, "|")),
    );
  // the rows of the terminal's tables: from a header line ("mode  ...") to the next empty line
  const termRows: string[][] = [];
  let inTable = false;
  for (const l of stdout.split("\n")) {
    if (/^mode {2,}/.test(l)) {
      inTable = true;
      continue;
    }
    if (!l.trim()) {
      inTable = false;
      continue;
    }
    if (inTable && cells(l).length < 4) inTable = false; // the notes under a table
    if (inTable && !l.startsWith("─")) termRows.push(cells(l));
  }
  assert.ok(termRows.length > 0, "the terminal printed the tables");
  for (const t of termRows)
    assert.ok(
      mdRows.some((m) => m.join("¦") === t.join("¦")),
      `summary.md has the terminal's row ${t.join(" | ")}`,
    );
  for (const w of j.wasmvs) {
    const ns = `${w.nsPerNewConn.toFixed(0)} ns (SYN→NAT)`;
    assert.ok(stdout.includes(ns) && md.includes(ns), `one WASM figure at ${w.services}: ${ns}`);
    for (const p of j.sim) if (p.services === w.services) assert.is(p.wasm.nsPerNewConn, w.nsPerNewConn);
  }
  assert.not.match(md, /about - µs|undefined|NaN/, "no placeholder in summary.md");
  // the published figures' table: a modelled figure of ours carries its range there too
  const published = md.slice(md.indexOf("## Beside the published figures"), md.indexOf("## wasmvs\n"));
  const ours = published
    .split("\n")
    .filter((l) => l.startsWith("| ") && !l.startsWith("| published"))
    .map((l) => l.split(" | ")[2]);
  for (const part of ours.flatMap((c) => c.split(";")).filter((x) => /modelled\)|% of a core/.test(x)))
    assert.match(part, /≈\S+ \((\S+–\S+|range unknown: unchecked fit)\)/, `modelled, with its range: ${part}`);
  const commands = [...md.matchAll(/\n```\n(.*)\n```\n/g)].map((m) => m[1]);
  assert.ok(commands.length >= 5, `${commands.length} commands under the summary's figures`);
  for (const c of commands) assert.is(c, j.meta.command, "the command that produced the figures above it");
  assert.ok(stdout.includes(`Produced by: ${j.meta.command}\n`), "the terminal names the run's command");
  const modelledRows = mdRows.filter((r) => r[2] === "MODELLED (range: fit's uncertainty)");
  for (const r of modelledRows)
    for (const c of [r[4], r[5], r[6], r[7], r[9]])
      assert.match(c, /≈\S+ \((\S+–\S+|range unknown: unchecked fit)\)/, `a modelled figure with its range: ${c}`);
  const steps = [...stderr.matchAll(/\] (\d+)\/(\d+) /g)].map((m) => [Number(m[1]), Number(m[2])]);
  assert.ok(steps.length > 0 && steps.every(([, t]) => t === steps[0][1]), "one total throughout");
  for (let i = 1; i < steps.length; i++)
    assert.ok(
      steps[i][0] - steps[i - 1][0] <= 1 && steps[i][0] >= steps[i - 1][0],
      `the bar moves a step at a time: ${steps[i - 1][0]} → ${steps[i][0]}`,
    );
  assert.is(steps[steps.length - 1][0], steps[0][1], "the bar ends full");
}

test("WASMVS_BENCH_TIME_FACTOR (the VM's slower waits): 1 unless set, a bad value refused by name", () => {
  const saved = process.env.WASMVS_BENCH_TIME_FACTOR;
  try {
    delete process.env.WASMVS_BENCH_TIME_FACTOR;
    assert.is(benchTimeFactor(), 1);
    process.env.WASMVS_BENCH_TIME_FACTOR = "6";
    assert.is(benchTimeFactor(), 6);
    for (const bad of ["abc", "0", "0.5", "-3", "1e9", "Infinity", "NaN", "__proto__", "constructor", "6 s"]) {
      process.env.WASMVS_BENCH_TIME_FACTOR = bad;
      assert.throws(() => benchTimeFactor(), /WASMVS_BENCH_TIME_FACTOR=.* is not a number from 1 to 100/, bad);
    }
  } finally {
    if (saved === undefined) delete process.env.WASMVS_BENCH_TIME_FACTOR;
    else process.env.WASMVS_BENCH_TIME_FACTOR = saved;
  }
});

test("bench/scaling.ts refuses bad arguments with exit 2 and the usage, before anything runs or is written", () => {
  const bad = [
    "--nonsense",
    "--services=abc",
    "--services=0",
    "--services=1e9",
    "--services=",
    "--services",
    "--endpoints=__proto__",
    "--endpoints=-1",
    "--modes=constructor",
    "--modes=iptables-legacy,toString",
    "--toString",
    "--__proto__",
    "--full=1",
    "--sim-connections=99999999999",
    "extra",
    "--out",
    "-x",
    "--kube-proxy-version=1.30",
    "--connects=0",
  ];
  for (const a of bad) {
    const dir = join(tmpdir(), `wasmvs-scaling-bad-${process.pid}`);
    rmSync(dir, { recursive: true, force: true });
    const r = spawnSync(
      process.execPath,
      [
        "--import",
        "tsx",
        "bench/scaling.ts",
        "--no-host",
        "--sim-services=100",
        "--sim-connections=1000",
        a,
        `--out=${dir}`,
      ],
      { encoding: "utf8", timeout: 30_000 },
    );
    assert.is(r.status, 2, `${a}: exit ${r.status}, ${r.stderr.slice(0, 300)}`);
    assert.match(
      r.stderr,
      /^wasmvs bench scaling: .+\nusage: wasmvs bench scaling/,
      `${a}: the reason, then the usage`,
    );
    assert.is(r.stdout, "", `${a}: nothing ran`);
    assert.not.ok(existsSync(dir), `${a}: nothing written`);
  }
  // and through the command users type
  const w = spawnSync(process.execPath, ["bin/wasmvs.js", "bench", "scaling", "--nonsense"], {
    encoding: "utf8",
    timeout: 30_000,
  });
  assert.is(w.status, 2, w.stderr.slice(0, 300));
  assert.is(w.stdout, "");
});

test(
  "bench/scaling.ts without the host part: the summary says nothing was measured, and agrees with the " + "terminal",
  () => {
    const dir = mkdtempSync(join(tmpdir(), "wasmvs-scaling-nohost-"));
    try {
      const r = spawnSync(
        process.execPath,
        [
          "--import",
          "tsx",
          "bench/scaling.ts",
          "--no-host",
          "--services=100",
          "--sim-services=200,400",
          "--sim-connections=5000",
          `--out=${dir}`,
        ],
        { encoding: "utf8", timeout: 60_000 },
      );
      assert.is(r.status, 0, r.stderr.slice(-2000));
      const md = readFileSync(join(dir, "summary.md"), "utf8"),
        j = JSON.parse(readFileSync(join(dir, "scaling.json"), "utf8"));
      assert.match(md, /\*\*Nothing was measured on this host \(host part skipped: --no-host given\)\*\*/);
      assert.not.match(md, /Services × \d+ endpoints measured/, "no claim of a measurement");
      assert.match(r.stdout, /Host measurements SKIPPED \(--no-host given\)/);
      // the built-in calibration's errors: the same words on both sides, never "unchecked" on one and a figure on the
      // other
      for (const line of r.stdout.split("\n").filter((l) => l.includes("full sync") && /^(iptables|nftables)/.test(l)))
        assert.ok(!line.includes("unchecked"), line);
      reportAgrees(r.stdout, r.stderr, md, j);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  },
);

// --connects/--cpu-connects are how a smoke run (or the VM playing the host) keeps a run short; the wasmvs
// modes once ignored them and made 3,800 connects through the proxy whatever was asked
testOrSkip(
  import.meta.url,
  skip,
  "bench/scaling.ts --connects=20 --cpu-connects=50: the wasmvs socket and packet modes " +
    "make as many connects as asked",
  () => {
    const out = mkdtempSync(join(tmpdir(), "wasmvs-scaling-connects-"));
    try {
      const r = spawnSync(
        process.execPath,
        [
          "--import",
          "tsx",
          "bench/scaling.ts",
          "--services=20",
          "--modes=iptables-legacy",
          "--connects=20",
          "--cpu-connects=50",
          "--sim-services=40",
          "--sim-connections=5000",
          `--out=${out}`,
        ],
        { encoding: "utf8", timeout: 170_000, maxBuffer: 1 << 26 },
      );
      assert.is(r.status, 0, r.stderr.slice(-3000));
      const j = JSON.parse(readFileSync(join(out, "scaling.json"), "utf8"));
      assert.equal(j.proxyFailures, [], "socket mode ran");
      assert.is(j.proxy.length, 1);
      assert.is(j.proxy[0].first.firstByte.n, 20, "socket mode: 20 timed connects per target");
      assert.is(j.host[0].first.lat.n, 20, "and the kernel mode too");
      if (j.meta.packetSkipped === null) {
        assert.is(j.packet.length, 1);
        assert.is(j.packet[0].first.connect.n, 20, "packet mode: 20 timed connects per target");
      }
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
  },
);

testOrSkip(
  import.meta.url,
  skip,
  "wasmvs proxy socket mode at 20 Services: every listener up, connections really proxied to the Services' endpoints",
  async () => {
    const c = scalingCluster(20, 2);
    const p = await measureProxy(c, { connects: 100, cpuConnects: 200 });
    assert.ok(
      p.listening >= p.virtualServices - 5 && p.virtualServices > 20,
      `${p.listening} listeners for ${p.virtualServices} virtual services`,
    );
    // first byte = the backend's banner came back through the proxy: 100 timed + 15 warm-up + 200 CPU per target, at
    // least
    assert.is(p.first.firstByte.n, 100);
    assert.is(p.last.firstByte.n, 100);
    assert.ok(
      p.translated.first >= 300 && p.translated.last >= 300,
      `backends saw ${p.translated.first}/${p.translated.last} connections on the Services' endpoints`,
    );
    assert.ok(
      p.first.firstByte.p50 > 0 && p.last.firstByte.p99 >= p.last.firstByte.p50 && p.last.proxyCpuUsPerConn > 0,
    );
  },
);

// The VM playing "a host with IPVS" (the development machines' kernel has none): the whole benchmark, every
// kube-proxy mode, IPVS mode included, and wasmvs proxy in socket and packet mode, in one run on one kernel and
// one report. The proxy modes start `wasmvs proxy` from the built dist/cli (benchInVm builds it first): from the
// TypeScript sources under qemu TCG the socket proxy took ~126 s to answer, past its 120 s limit.
const VM_HOST_WORK = {
  services: [20],
  kernelModes: 4,
  proxyModes: 2,
  connects: 40,
  cpuConnects: 100,
  simPoints: 1,
  simConnections: 5000,
};
testOrSkip(
  import.meta.url,
  vmHostSkipReason(),
  "bench/scaling.ts on a kernel with IPVS (the VM as host): every kube-proxy mode, IPVS among them, and wasmvs " +
    "socket and packet mode in one run and one report",
  async () => {
    const w = VM_HOST_WORK;
    const r = await benchInVm(
      [
        `--services=${w.services.join(",")}`,
        "--sim-services=40",
        `--sim-connections=${w.simConnections}`,
        `--connects=${w.connects}`,
        `--cpu-connects=${w.cpuConnects}`,
      ],
      { timeoutS: vmHostLimitS(w) },
    );
    assert.is(r.code, 0, r.stdout.slice(-4000));
    const j = r.json,
      md = r.summary;
    assert.ok(j, "scaling.json came back");
    assert.match(j.meta.kernel, /^6\.1\./, "the VM's kernel measured, not the host's");
    assert.equal(j.meta.ipvs, { measuredOnHost: true, skipped: null });
    assert.equal(j.meta.hostFailures, []);
    assert.equal(
      j.host.map((h: any) => h.mode),
      ["iptables-legacy", "iptables-nft", "nftables", "ipvs"],
      "every mode, IPVS among the host modes",
    );
    for (const h of j.host) {
      assert.is(h.rules.counted, h.rules.expected, `${h.mode}: ${h.rules.what}`);
      assert.ok(
        h.translated.first > 0 && h.translated.last > 0,
        `${h.mode}: backends saw ${h.translated.first}/${h.translated.last} on the Services' endpoints`,
      );
      assert.is(h.first.lat.n, 40);
    }
    const i = j.host.find((h: any) => h.mode === "ipvs").ipvs;
    assert.equal(
      i.counted,
      i.expected,
      "virtual services, real servers, ipset entries, iptables rules, kube-ipvs0 addresses counted back",
    );
    assert.ok(
      i.ipvsConns.first >= 40 && i.ipvsConns.last >= 40,
      `IPVS scheduled ${i.ipvsConns.first}/${i.ipvsConns.last} connections`,
    );
    assert.ok(i.syncIpvsadmMs > 0 && i.syncReconcilerMs > 0 && i.incIpvsadmMs > 0 && i.incReconcilerMs > 0);
    // wasmvs socket mode: started from dist/cli, every TCP virtual service listening, connections proxied to
    // the Services' endpoints (the backends' tally: under TCG a lower bound, a reset connect is not counted)
    assert.equal(j.proxyFailures, [], "socket mode ran");
    assert.equal(j.packetFailures, [], "packet mode ran");
    assert.is(j.proxy.length, 1);
    const p = j.proxy[0];
    assert.is(p.launcher, "dist/cli", "the socket proxy ran from the built CLI");
    assert.ok(p.listening >= p.virtualServices - 5, `${p.listening} listeners for ${p.virtualServices} VSs`);
    assert.is(p.first.firstByte.n, 40);
    assert.is(p.last.firstByte.n, 40);
    assert.ok(p.translated.first >= 40 && p.translated.last >= 40, `socket: ${JSON.stringify(p.translated)}`);
    // wasmvs packet mode: its takeover entries counted back, the backends reached only from its full-NAT address
    assert.is(j.meta.packetSkipped, null, "packet mode measured in the VM");
    assert.is(j.packet.length, 1);
    const k = j.packet[0];
    assert.is(k.launcher, "dist/cli", "the packet-mode proxy ran from the built CLI");
    assert.is(k.takeover.entries, k.takeover.expected);
    assert.is(k.first.connect.n, 40);
    assert.ok(k.translated.first >= 40 && k.translated.last >= 40, `packet: ${JSON.stringify(k.translated)}`);
    assert.ok(
      k.fullNat.fromLocal > 0 && k.fullNat.fromOther === 0,
      `backends reached from the full-NAT address ${k.fullNat.fromLocal}, elsewhere ${k.fullNat.fromOther}`,
    );
    assert.is(k.core.txErrors, 0);
    assert.match(md, /IPVS mode among them, in the same namespaces and the same run/);
    assert.match(
      md,
      /## kube-proxy IPVS mode on this kernel\n[^#]*\n\| 20 \| (\d+) \/ (\d+) \(\1 \/ \2\) \|/,
      "the IPVS table has the 20-Service row",
    );
    // side by side: one measured 20-Service row per mode in the run's table, as on the terminal
    const runTable = md.slice(md.indexOf("## The run's table"), md.indexOf("Produced by:"));
    for (const mode of [
      "iptables-legacy",
      "iptables-nft",
      "nftables",
      "ipvs",
      "wasmvs proxy (socket)",
      "wasmvs proxy (packet)",
    ])
      assert.ok(
        runTable.includes(`\n| ${mode} | 20 | measured |`),
        `the run's table has ${mode} measured at 20 Services`,
      );
    assert.match(md, /\| 20 \| \d+ \/ \d+, 2 \(\d+\) \|/, "summary.md has the packet-mode section's row");
    assert.ok(
      j.calibration.modes.some((m: any) => m.mode === "ipvs" && m.units === "host"),
      "the IPVS model calibrated from host figures",
    );
    assert.equal(r.leftovers, [], "no xtables lock file left behind");
    reportAgrees(r.stdout, r.stdout, md, j);
  },
);

// the VM brings its own iptables, ipset and ipvsadm: only the VM itself is needed here
testOrSkip(
  import.meta.url,
  vmSkipReason(),
  "IPVS mode in the kernel VM at 20 Services: virtual services, ipsets and iptables installed, connections " +
    "NATed by IPVS and by iptables",
  async () => {
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
    assert.ok(
      i.ipvsConns.first >= 60 && i.ipvsConns.last >= 60,
      `IPVS scheduled ${i.ipvsConns.first}/${i.ipvsConns.last} connections`,
    );
    assert.ok(
      i.translated.first > 0 && i.translated.last > 0,
      `IPVS: backends saw ${i.translated.first}/${i.translated.last}`,
    );
    assert.is(v.iptables.rules.counted, v.iptables.rules.expected);
    assert.ok(
      v.iptables.translated.first > 0 && v.iptables.translated.last > 0,
      `iptables: backends saw ${v.iptables.translated.first}/${v.iptables.translated.last}`,
    );
    assert.ok(i.first.lat.n === 60 && v.iptables.last.lat.p50 > 0);
  },
);

test.run();
