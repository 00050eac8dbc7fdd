// The Markdown summary of a scaling run: measured figures beside the published ones, the model's
// extrapolation with its checked error, and under every figure the one command that regenerates it.
import type { HostResult } from "./host.ts";
import type { SimPointResult, ModeChecks, Calibration, Check } from "../../src/sim/index.ts";

export interface SummaryInput {
  hostResults: HostResult[]; sim: SimPointResult[]; checks: Record<string, ModeChecks>; calibration: Calibration;
  wasmPerN: { services: number; nsPerNewConn: number }[]; services: number[]; endpoints: number; full: boolean; hostSkip: string;
  cmdFor: (extra: string) => string; svgs: string[];
}

const f = (x: number | undefined, d = 1) => (x === undefined || !Number.isFinite(x) ? "-" : x.toFixed(d));

export function summaryMarkdown(s: SummaryInput): string {
  const L: string[] = [];
  const cmd = (extra: string) => L.push("", "```", s.cmdFor(extra), "```", "");
  const get = (mode: string, n: number) => s.hostResults.find((r) => r.mode === mode && r.services === n);
  const simAt = (mode: string, n: number) => s.sim.find((p) => p.services === n)?.modes.find((m) => m.mode === mode);
  L.push("# Scaling: kube-proxy modes past 1,000 Services", "");
  L.push(`Run ${new Date().toISOString()}; ${s.services.join(", ")} Services × ${s.endpoints} endpoints measured${s.hostSkip ? ` — **host part skipped: ${s.hostSkip}**; modelled figures use the built-in calibration (${s.calibration.machine})` : " on this machine's kernel"}. ` +
    "Host-kernel figures are comparable with each other only; VM figures (none in this run) only with other VM figures.", "");
  L.push(`Plots: ${s.svgs.map((n) => `[${n}](${n})`).join(", ")}; every figure is in scaling.json.`, "");

  L.push("## Measured on this kernel", "");
  if (!s.hostResults.length) L.push("(not measured in this run)");
  else {
    L.push("| mode | Services | rules installed (counted back) | full sync | +1 Service | connect p50/p99 first Service | last Service | pod IP, no Service | CPU µs/conn first → last (no rules) |", "|---|---|---|---|---|---|---|---|---|");
    for (const r of s.hostResults) L.push(`| ${r.mode} | ${r.services} | ${r.rules.counted} / ${r.rules.expected} | ${f(r.syncMs / 1000, 2)} s | ${f(r.incrementalMs, 0)} ms | ${f(r.first.lat.p50)} / ${f(r.first.lat.p99)} µs (rule ${r.first.position}) | ${f(r.last.lat.p50)} / ${f(r.last.lat.p99)} µs (rule ${r.last.position}) | ${f(r.pod.lat.p50)} µs | ${f(r.first.cpu.usPerConn)} → ${f(r.last.cpu.usPerConn)} (${f(r.baseline.cpu.usPerConn)}) |`);
    cmd(`--services=${s.services.join(",")} --endpoints=${s.endpoints} --no-sim`);
    const locks = s.hostResults.filter((r) => r.lock);
    if (locks.length) {
      L.push("### The xtables lock", "", "A full restore of the same ruleset again while a second writer adds one rule at a time with `-w 5` (private lock file via XTABLES_LOCKFILE):", "");
      L.push("| mode | Services | full restore | writers | failed (waited > 5 s) | wait p50 | wait max | note |", "|---|---|---|---|---|---|---|---|");
      for (const r of locks) L.push(`| ${r.mode} | ${r.services} | ${f(r.lock!.bigRestoreMs / 1000, 2)} s | ${r.lock!.writers} | ${r.lock!.failed} | ${f(r.lock!.waitP50Ms, 0)} ms | ${f(r.lock!.waitMaxMs, 0)} ms | ${r.lock!.starved ? `restore still running when the writers stopped at ${f(r.lock!.writersStoppedAtMs / 1000, 1)} s: each small nft-backend commit changes the generation and iptables-nft-restore starts over` : ""} |`);
      cmd(`--services=${[...new Set(locks.map((r) => r.services))].join(",")} --modes=iptables-legacy,iptables-nft --no-sim`);
    }
  }

  L.push("## Beside the published figures", "");
  L.push("| published | their figure | ours | how ours was obtained |", "|---|---|---|---|");
  const m10 = (mode: string) => get(mode, 10000) ?? undefined;
  const sim10 = (mode: string) => simAt(mode, 10000);
  const tig = (mode: string) => { const m = sim10(mode); return m ? `${f(m.extraCpuCores * 100)}% of a core at ${s.sim[0]?.rate ?? "?"} new conn/s; ${f(m.rulesWalked, 0)} rules walked per new connection (mean)` : "-"; };
  L.push(`| Tigera: 10k Services, iptables ≈35% of a core extra vs IPVS ≈8%; ≈20,000 rules per new connection | 35% / 8%, 20,000 rules | iptables-legacy: ${tig("iptables-legacy")}; iptables-nft: ${tig("iptables-nft")}; nftables: ${sim10("nftables") ? f(sim10("nftables")!.extraCpuCores * 100) + "% of a core" : "-"}; IPVS: not measured in this run | simulator over the 10k cluster's real ruleset, uniform Service mix, CPU model calibrated by the measured connects (extra = over no rules at all) |`);
  for (const [n, pub] of [[5000, 0.047], [10000, 0.062], [30000, 0.272]] as const) {
    const h = get("iptables-legacy", n), m = simAt("iptables-legacy", n), hn = get("iptables-nft", n), mn = simAt("iptables-nft", n);
    L.push(`| Kubernetes nftables post: iptables first packet p50 at ${n / 1000}k | ${pub} ms | legacy: ${h ? `${f(h.first.lat.p50 / 1000, 3)}–${f(h.last.lat.p50 / 1000, 3)} ms first–last Service (measured)` : m ? `${f(m.firstPacket.p50 / 1000, 3)} ms mix p50 (modelled)` : "-"}; nft backend: ${hn ? `${f(hn.first.lat.p50 / 1000, 3)}–${f(hn.last.lat.p50 / 1000, 3)} ms (measured)` : mn ? `${f(mn.firstPacket.p50 / 1000, 3)} ms (modelled)` : "-"} | whole TCP connect (SYN out, SYN-ACK back) through veth, so it includes about ${f(s.hostResults[0]?.baseline.lat.p50 ?? NaN, 0)} µs with no rules at all |`);
  }
  const h5 = get("iptables-legacy", 5000), hn5 = get("iptables-nft", 5000);
  L.push(`| Huawei 2017: +1 rule at 5k Services | 11 min | legacy ${h5 ? f(h5.incrementalMs, 0) + " ms" : "-"}, nft backend ${hn5 ? f(hn5.incrementalMs, 0) + " ms" : "-"} (+1 Service, partial restore) | kube-proxy then ran many iptables commands under the lock; today's partial restore is one call |`);
  const n10 = get("nftables", 10000), nm10 = simAt("nftables", 10000);
  L.push(`| nftables partial-sync PR: +1 Service at 10k | 141 ms | ${n10 ? f(n10.incrementalMs, 0) + " ms (measured)" : nm10 ? f(nm10.incrementalMs, 0) + " ms (modelled)" : "-"} | nft -f of the new Service's chains and map elements only; theirs is kube-proxy's whole sync loop |`);
  cmd(s.full ? "--full" : "");

  L.push("## wasmvs", "");
  L.push("The WASM data plane's cost per new connection: batches of SYNs to random Services through `PacketBatch` (parse → lookup miss → schedule → connection entry → NAT rewrite), timed around the WASM call. " +
    "This is **not** a socket connect: src/proxy's socket mode was not measured here; this is the decision and rewrite only, with no kernel I/O.", "");
  L.push("| Services | ns per new connection |", "|---|---|");
  for (const w of s.wasmPerN) L.push(`| ${w.services} | ${f(w.nsPerNewConn, 0)} |`);
  for (const p of s.sim) if (!s.wasmPerN.some((w) => w.services === p.services)) L.push(`| ${p.services} | ${f(p.wasm.nsPerNewConn, 0)} |`);
  cmd(s.full ? "--full" : "");

  L.push("## Modelled past the machine", "");
  L.push("Each point below runs the traffic through the real data plane (Core/PacketBatch) and costs every new connection by the calibrated models: iptables = a + b × rules walked (the walk counted over the real generated ruleset), nftables = a + b × N (verdict maps), sync = a × rules^k.", "");
  L.push("| Services | mode | measured? | first-packet p50 / p99 (µs, Service mix) | CPU µs/new conn | rules walked | full sync | +1 Service | data plane: connections, wall s, drops |", "|---|---|---|---|---|---|---|---|---|");
  for (const p of s.sim) for (const m of p.modes) L.push(`| ${p.services} | ${m.mode} | ${m.measured ? "measured N (model shown)" : "modelled"} | ${f(m.firstPacket.p50)} / ${f(m.firstPacket.p99)} | ${f(m.cpuPerConn)} | ${f(m.rulesWalked, 0)} | ${f(m.syncMs / 1000, 2)} s | ${f(m.incrementalMs, 0)} ms | ${p.engine.connections}, ${f(p.engine.wallMs / 1000, 2)}, ${JSON.stringify(p.engine.dropped)} |`);
  cmd(s.full ? "--full" : "");
  L.push("### How far the model missed (leave one N out)", "");
  const rows = Object.entries(s.checks).flatMap(([mode, c]) => (Object.entries(c) as [string, Check[]][]).flatMap(([what, list]) => list.map((x) => `| ${mode} | ${what} | ${x.n} | ${f(x.x, 0)} | ${f(x.measured, 2)} | ${f(x.predicted, 2)} | ${f(x.errPct, 0)}% |`)));
  if (rows.length) { L.push("| mode | figure | N left out | x (rules walked, N or rules) | measured | predicted | error |", "|---|---|---|---|---|---|---|", ...rows); }
  else L.push("No checks: fewer than two N measured in this run (run with --full).");
  cmd(s.full ? "--full" : "");
  L.push("## Calibration", "", "```json", JSON.stringify(s.calibration, null, 1), "```", "");
  return L.join("\n") + "\n";
}
