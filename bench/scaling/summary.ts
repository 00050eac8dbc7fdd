// The Markdown summary of a scaling run: measured figures beside the published ones, the model's
// extrapolation with its checked error, and under every figure the one command that regenerates it.
import type { HostResult } from "./host.ts";
import type { ProxyResult } from "./proxy.ts";
import type { PacketResult } from "./packet.ts";
import type { VmResult } from "./vm.ts";
import type { SimPointResult, ModeChecks, Calibration, Check } from "../../src/sim/index.ts";
import { mainTable, curveTable, markdownTable, modelled, fmt as f } from "./rows.ts";

export interface SummaryInput {
  hostResults: HostResult[]; proxyResults?: ProxyResult[]; vmResults?: VmResult[]; vmError?: string | null; vmServices?: number[]; sim: SimPointResult[]; checks: Record<string, ModeChecks>; calibration: Calibration;
  wasmPerN: { services: number; nsPerNewConn: number }[]; services: number[]; endpoints: number; full: boolean; hostSkip: string;
  cmdFor: (extra: string) => string; svgs: string[];
  packetResults?: PacketResult[]; packetSkip?: string;
  proxyFailures?: { services: number; error: string }[];   // socket mode could not run at these N (and why)
  ipvsSkip?: string;                                        // why IPVS mode was not measured on this host ("" = it was)
  hostFailures?: { mode: string; services: number; error: string }[];
}

export function summaryMarkdown(s: SummaryInput): string {
  const L: string[] = [];
  const cmd = (extra: string) => L.push("", "```", s.cmdFor(extra), "```", "");
  const get = (mode: string, n: number) => s.hostResults.find((r) => r.mode === mode && r.services === n);
  const simAt = (mode: string, n: number) => s.sim.find((p) => p.services === n)?.modes.find((m) => m.mode === mode);
  L.push("# Scaling: kube-proxy modes past 1,000 Services", "");
  const measuredNs = [...new Set(s.hostResults.map((r) => r.services))];
  const hostModes = [...new Set(s.hostResults.map((r) => r.mode))];
  L.push(`Run ${new Date().toISOString()}. ` + (s.hostSkip
    ? `**Nothing was measured on this host (host part skipped: ${s.hostSkip})**: every kernel-mode figure below is modelled, from the built-in calibration (${s.calibration.machine}).`
    : `Measured on this machine's kernel: ${hostModes.join(", ")} at ${measuredNs.join(", ")} Services × ${s.endpoints} endpoints` +
      (s.ipvsSkip ? `; IPVS mode not measured on this host (${s.ipvsSkip})` : ", IPVS mode among them, in the same namespaces and the same run") + ".") +
    ` Host-kernel figures are comparable with each other only; VM figures (${s.vmResults?.length ? "the [VM] rows and section" : "none in this run"}) only with other VM figures. ` +
    "Figures marked ≈ are **modelled**, with the span of the fit's uncertainty in brackets; every other figure is measured.", "");
  L.push(`Plots: ${s.svgs.map((n) => `[${n}](${n})`).join(", ")}; every figure is in scaling.json.`, "");
  for (const x of s.hostFailures ?? []) L.push(`**${x.mode} at ${x.services} Services FAILED:** ${x.error.slice(0, 600)}`, "");

  L.push("## The run's table (as printed on the terminal)", "");
  L.push(...markdownTable(mainTable({ hostResults: s.hostResults, sim: s.sim, proxyResults: s.proxyResults ?? [], packetResults: s.packetResults ?? [], vmResults: s.vmResults ?? [], wasmPerN: s.wasmPerN })), "");
  cmd(s.full ? "--full" : "");

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

  const ir = s.hostResults.filter((r) => r.ipvs);
  L.push("## kube-proxy IPVS mode on this kernel", "");
  if (!ir.length) L.push(s.hostSkip ? "(host part skipped)" : `(not measured on this host: ${s.ipvsSkip || "not in --modes"})`, "");
  else {
    L.push("The same topology as the modes above. Full sync (the run's table) = `ipvsadm -R` of every virtual service into a fresh namespace, plus " +
      "every ClusterIP bound to kube-ipvs0 (`ip -batch`), `ipset restore` and `iptables-legacy-restore --noflush` of IPVS mode's rules in the node namespace, " +
      "whose virtual services wasmvs's Reconciler (generic netlink, a child process there) wrote, timed beside `ipvsadm -R`. " +
      "+1 Service: the new virtual services by `ipvsadm -R` and by `Reconciler.update`. Everything counted back after +1 Service. " +
      "IPVS's Conns counter and the backends' tally (they see only the endpoints' addresses) prove the NAT.", "");
    L.push("| Services | virtual services / real servers counted (expected) | ipset entries | iptables rules | kube-ipvs0 addresses | full sync: ipvsadm -R / Reconciler | kube-ipvs0 / ipset / iptables | +1 Service: ipvsadm -R / Reconciler | connect p50/p99 first Service | last Service | pod IP p50 | CPU µs/conn first / last (no rules) | IPVS Conns / backends saw, first / last |",
      "|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    for (const r of ir) {
      const i = r.ipvs!, c = i.counted, e = i.expected;
      L.push(`| ${r.services} | ${c.services} / ${c.realServers} (${e.services} / ${e.realServers}) | ${c.ipsetEntries} / ${e.ipsetEntries} | ${c.iptablesRules} / ${e.iptablesRules} | ${c.boundAddrs} / ${e.boundAddrs} | ` +
        `${f(i.syncIpvsadmMs / 1000, 2)} s / ${f(i.syncReconcilerMs / 1000, 2)} s (${i.reconcilerMessages} messages) | ${f(i.bindMs, 0)} / ${f(i.ipsetMs, 0)} / ${f(i.iptablesMs, 0)} ms | ` +
        `${f(i.incIpvsadmMs, 0)} / ${f(i.incReconcilerMs, 1)} ms (${i.incServices} virtual services) | ${f(r.first.lat.p50)} / ${f(r.first.lat.p99)} µs | ${f(r.last.lat.p50)} / ${f(r.last.lat.p99)} µs | ` +
        `${f(r.pod.lat.p50)} µs | ${f(r.first.cpu.usPerConn)} / ${f(r.last.cpu.usPerConn)} (${f(r.baseline.cpu.usPerConn)}) | ${i.ipvsConns.first} / ${r.translated.first}, ${i.ipvsConns.last} / ${r.translated.last} |`);
    }
    cmd(`--services=${ir.map((r) => r.services).join(",")} --endpoints=${s.endpoints} --modes=ipvs --no-proxy --no-packet --no-sim`);
  }

  const pr = s.proxyResults ?? [];
  L.push("## wasmvs userspace: `wasmvs proxy` socket mode (measured on this kernel)", "");
  if (!pr.length) L.push("(not measured in this run)", "");
  else {
    L.push("The same host topology, with `wasmvs proxy run -c FILE` in the node namespace listening on every virtual service of IPVS mode for the cluster (the Service CIDR made local by a route; no rules). " +
      "`connect()` returns when the node's kernel completes the handshake with the proxy's listening socket, before the proxy accepts, so the figure that covers the proxy is the **time to the backend's first byte** " +
      "(the backends send one byte on accept): client → proxy accept → the WASM core's decision → backend connect → relay. Baseline: the same straight to a pod IP. CPU: the proxy process's own user+sys time over a burst ÷ connections.", "");
    L.push("| Services | virtual services (listeners) | proxy start | first byte p50/p99 first Service | last Service | connect() p50 first / last | baseline first byte p50 (no proxy) | proxy CPU µs/conn first / last | client CPU µs/conn | proxy RSS | translated (backends saw) |", "|---|---|---|---|---|---|---|---|---|---|---|");
    for (const p of pr) L.push(`| ${p.services} | ${p.virtualServices} (${p.listening}) | ${f(p.startMs / 1000, 1)} s | ${f(p.first.firstByte.p50)} / ${f(p.first.firstByte.p99)} µs | ${f(p.last.firstByte.p50)} / ${f(p.last.firstByte.p99)} µs | ${f(p.first.connect.p50)} / ${f(p.last.connect.p50)} µs | ${f(p.baseline.firstByte.p50)} µs | ${f(p.first.proxyCpuUsPerConn)} / ${f(p.last.proxyCpuUsPerConn)} | ${f(p.last.clientCpuUsPerConn)} | ${f(p.proxyRssMiB, 0)} MiB | ${p.translated.first} / ${p.translated.last} |`);
    cmd(`--services=${pr.map((p) => p.services).join(",")} --endpoints=${s.endpoints} --modes=iptables-legacy --no-sim`);
  }
  for (const x of s.proxyFailures ?? []) L.push(`**Not measured at ${x.services} Services:** ${x.error.slice(0, 600)}`, "");

  const kr = s.packetResults ?? [];
  L.push("## wasmvs userspace: `wasmvs proxy` packet mode (measured on this kernel)", "");
  if (!kr.length) L.push(s.packetSkip ? `(skipped: ${s.packetSkip})` : "(not measured in this run)", "");
  else {
    L.push("The same host topology, with `wasmvs proxy run` in packet mode in the node namespace: every frame arriving from the client and the backends (AF_PACKET on both veths) goes through the WASM core's packet path " +
      `(schedule, full-NAT rewrite to source ${kr[0].fullNat.address}, checksums) and out by a raw socket; its nftables table \`inet wasmvs_packet\` drops the kernel's own copies in prerouting. ` +
      "Nothing listens on the node, so **connect() already covers the whole path** (the SYN-ACK comes from the backend through wasmvs); the first byte adds the backend's banner. " +
      "CPU: the proxy process's user+sys ÷ connections, and the connector's, which carries the node's takeover rules (veth runs the receiver's prerouting in the sender's context). " +
      "The takeover table keeps the virtual services and the local address in nftables sets (one rule per family: a hash lookup per packet, whatever N).", "");
    L.push("| Services | takeover entries counted / expected, rules (kernel copies dropped) | proxy start | connect() p50/p99 first Service | last Service | first byte p50 first / last | baseline connect / first byte (no proxy) | proxy CPU µs/conn first / last | connector CPU µs/conn first / last | proxy RSS | translated (backends saw) | from the full-NAT address / elsewhere | core forwarded, drops |", "|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    for (const k of kr) L.push(`| ${k.services} | ${k.takeover.entries} / ${k.takeover.expected}, ${k.takeover.rules} (${k.takeover.dropped}) | ${f(k.startMs / 1000, 1)} s | ${f(k.first.connect.p50)} / ${f(k.first.connect.p99)} µs | ${f(k.last.connect.p50)} / ${f(k.last.connect.p99)} µs | ` +
      `${f(k.first.firstByte.p50)} / ${f(k.last.firstByte.p50)} µs | ${f(k.baseline.connect.p50)} / ${f(k.baseline.firstByte.p50)} µs | ${f(k.first.proxyCpuUsPerConn)} / ${f(k.last.proxyCpuUsPerConn)} | ${f(k.first.clientCpuUsPerConn)} / ${f(k.last.clientCpuUsPerConn)} | ${f(k.proxyRssMiB, 0)} MiB | ` +
      `${k.translated.first} / ${k.translated.last} | ${k.fullNat.fromLocal} / ${k.fullNat.fromOther} | ${k.core.forwarded}, ${Object.entries(k.core.drops).map(([r, n]) => `${r} ${n}`).join(" ") || "none"} |`);
    cmd(`--services=${kr.map((k) => k.services).join(",")} --endpoints=${s.endpoints} --modes=iptables-legacy --no-proxy --no-sim`);
  }

  const vr = s.vmResults ?? [];
  L.push("## [VM] IPVS mode vs iptables mode inside the kernel VM (VM-only figures)", "");
  if (!vr.length) L.push(s.vmError ? `The VM part failed: ${s.vmError.slice(0, 500)}` : "(not measured in this run: add --vm, or --full)", "");
  else {
    L.push(`Linux ${vr[0].kernel} with IPVS under qemu TCG (../shared/ipvs-vm): software emulation, several times slower than the host. **Compare these rows only with each other.** ` +
      "The host topology is made again inside the VM; IPVS mode = virtual services (NAT to the backends' namespace) + ipsets + iptables + every ClusterIP bound to kube-ipvs0; " +
      `iptables mode = iptables-legacy-restore of the same cluster's rules, measured the same way in the same VM run. Connector: ${vr[0].connector === "c" ? "connector.c (compiled on the host, shipped into the VM)" : "connector.mjs (Node)"}.`, "");
    L.push("| Services | IPVS: virtual services / real servers counted back | ipset entries | iptables rules (IPVS mode) | full sync ipvsadm -R | full sync wasmvs Reconciler | +1 Service ipvsadm -R / Reconciler | kube-ipvs0 bind / ipset restore / iptables | IPVS connect p50/p99 first | last | pod IP | CPU µs/conn first / last | IPVS Conns / backends saw, first / last |", "|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    for (const v of vr) { const i = v.ipvs; L.push(`| ${v.services} | ${i.counted.services} / ${i.counted.realServers} (${i.virtualServices}+${i.incServices} / ${i.realServers} expected before +1) | ${i.counted.ipsetEntries} / ${i.expected.ipsetEntries} | ${i.counted.iptablesRules} / ${i.expected.iptablesRules} | ${f(i.syncIpvsadmMs / 1000, 2)} s | ${f(i.syncReconcilerMs / 1000, 2)} s (${i.reconcilerMessages} messages) | ${f(i.incIpvsadmMs, 0)} / ${f(i.incReconcilerMs, 1)} ms (${i.incServices} virtual services) | ${f(i.bindMs, 0)} / ${f(i.ipsetMs, 0)} / ${f(i.iptablesMs, 0)} ms | ${f(i.first.lat.p50)} / ${f(i.first.lat.p99)} µs | ${f(i.last.lat.p50)} / ${f(i.last.lat.p99)} µs | ${f(i.pod.lat.p50)} µs | ${f(i.first.cpu.usPerConn)} / ${f(i.last.cpu.usPerConn)} | ${i.ipvsConns.first} / ${i.translated.first}, ${i.ipvsConns.last} / ${i.translated.last} |`); }
    L.push("", "| Services | iptables mode [VM]: rules counted / expected | full sync | connect p50/p99 first Service | last Service | pod IP | CPU µs/conn first / last | translated | no rules at all: connect p50 |", "|---|---|---|---|---|---|---|---|---|");
    for (const v of vr) { const t = v.iptables; L.push(`| ${v.services} | ${t.rules.counted} / ${t.rules.expected} | ${f(t.syncMs / 1000, 2)} s | ${f(t.first.lat.p50)} / ${f(t.first.lat.p99)} µs (rule ${t.first.position}) | ${f(t.last.lat.p50)} / ${f(t.last.lat.p99)} µs (rule ${t.last.position}) | ${f(t.pod.lat.p50)} µs | ${f(t.first.cpu.usPerConn)} / ${f(t.last.cpu.usPerConn)} | ${t.translated.first} / ${t.translated.last} | ${f(v.baseline.lat.p50)} µs |`); }
    cmd(`--vm-services=${vr.map((v) => v.services).join(",")} --no-host --no-sim`);
  }

  L.push("## Beside the published figures", "");
  L.push("| published | their figure | ours | how ours was obtained |", "|---|---|---|---|");
  const m10 = (mode: string) => get(mode, 10000) ?? undefined;
  const sim10 = (mode: string) => simAt(mode, 10000);
  const tig = (mode: string) => { const m = sim10(mode); return m ? `${f(m.extraCpuCores * 100)}% of a core at ${s.sim[0]?.rate ?? "?"} new conn/s; ${f(m.rulesWalked, 0)} rules walked per new connection (mean)` : "-"; };
  L.push(`| Tigera: 10k Services, iptables ≈35% of a core extra vs IPVS ≈8%; ≈20,000 rules per new connection | 35% / 8%, 20,000 rules | iptables-legacy: ${tig("iptables-legacy")}; iptables-nft: ${tig("iptables-nft")}; nftables: ${sim10("nftables") ? f(sim10("nftables")!.extraCpuCores * 100) + "% of a core" : "-"}; IPVS: ${ir.some((r) => r.services === 10000) ? `measured on this host: CPU per connect ${f(ir.find((r) => r.services === 10000)!.last.cpu.usPerConn, 1)} µs` : sim10("ipvs") ? `${f(sim10("ipvs")!.extraCpuCores * 100)}% of a core (modelled${sim10("ipvs")!.units.startsWith("VM") ? ", VM units" : ""})` : vr.length ? `measured in the VM only (see [VM]: CPU per connect ${vr.map((v) => `${v.services}: ${f(v.ipvs.last.cpu.usPerConn, 0)} µs vs iptables ${f(v.iptables.last.cpu.usPerConn, 0)} µs`).join("; ")})` : "not measured in this run"} | simulator over the 10k cluster's real ruleset, uniform Service mix, CPU model calibrated by the measured connects (extra = over no rules at all) |`);
  for (const [n, pub] of [[5000, 0.047], [10000, 0.062], [30000, 0.272]] as const) {
    const h = get("iptables-legacy", n), m = simAt("iptables-legacy", n), hn = get("iptables-nft", n), mn = simAt("iptables-nft", n);
    L.push(`| Kubernetes nftables post: iptables first packet p50 at ${n / 1000}k | ${pub} ms | legacy: ${h ? `${f(h.first.lat.p50 / 1000, 3)}–${f(h.last.lat.p50 / 1000, 3)} ms first–last Service (measured)` : m ? `${f(m.firstPacket.p50 / 1000, 3)} ms mix p50 (modelled)` : "-"}; nft backend: ${hn ? `${f(hn.first.lat.p50 / 1000, 3)}–${f(hn.last.lat.p50 / 1000, 3)} ms (measured)` : mn ? `${f(mn.firstPacket.p50 / 1000, 3)} ms (modelled)` : "-"} | whole TCP connect (SYN out, SYN-ACK back) through veth${h || hn ? `, so it includes about ${f((h ?? hn)!.baseline.lat.p50, 0)} µs with no rules at all` : ""} |`);
  }
  const h5 = get("iptables-legacy", 5000), hn5 = get("iptables-nft", 5000);
  L.push(`| Huawei 2017: +1 rule at 5k Services | 11 min | legacy ${h5 ? f(h5.incrementalMs, 0) + " ms" : "-"}, nft backend ${hn5 ? f(hn5.incrementalMs, 0) + " ms" : "-"} (+1 Service, partial restore) | kube-proxy then ran many iptables commands under the lock; today's partial restore is one call |`);
  const n10 = get("nftables", 10000), nm10 = simAt("nftables", 10000);
  L.push(`| nftables partial-sync PR: +1 Service at 10k | 141 ms | ${n10 ? f(n10.incrementalMs, 0) + " ms (measured)" : nm10 ? f(nm10.incrementalMs, 0) + " ms (modelled)" : "-"} | nft -f of the new Service's chains and map elements only; theirs is kube-proxy's whole sync loop |`);
  cmd(s.full ? "--full" : "");

  L.push("## wasmvs", "");
  L.push("The WASM data plane's cost per new connection: batches of SYNs to random Services through `PacketBatch` (parse → lookup miss → schedule → connection entry → NAT rewrite), timed around the WASM call. " +
    "This is **not** a socket connect (socket mode through `wasmvs proxy` is the section above); this is the decision and rewrite only, with no kernel I/O.", "");
  L.push("| Services | ns per new connection |", "|---|---|");
  for (const w of s.wasmPerN) L.push(`| ${w.services} | ${f(w.nsPerNewConn, 0)} |`);
  cmd(s.full ? "--full" : "");

  L.push("## Modelled past the machine", "");
  L.push("Each point below runs the traffic through the real data plane (Core/PacketBatch) and costs every new connection by the calibrated models: iptables = a curve in the rules walked W (the walk counted over the real generated ruleset), nftables = a curve in N (verdict maps), sync and +1 Service = curves in the rule count R; the curves are below, with how far each missed.", "");
  L.push("Every kernel-mode figure in this table is the **model's** (≈, with the span of the fit's uncertainty in brackets: the curve refitted with each measured N left out, and the other candidate curves); at a measured N the measured figure is in the tables above.", "");
  L.push("| Services | mode | at a measured N? | first-packet p50 (µs, Service mix) | p99 | CPU µs/new conn | rules walked | full sync s | +1 Service ms | data plane: connections, wall s, drops |", "|---|---|---|---|---|---|---|---|---|---|");
  for (const p of s.sim) for (const m of p.modes) {
    const syncS = m.range.syncMs && ([m.range.syncMs[0] / 1000, m.range.syncMs[1] / 1000] as [number, number]);
    L.push(`| ${p.services} | ${m.mode}${m.units.startsWith("VM") ? " [VM units]" : ""} | ${m.measured ? "yes (model shown; measured above)" : "no: modelled"} | ${modelled(m.firstPacket.p50, m.range.p50)} | ${modelled(m.firstPacket.p99, m.range.p99)} | ${modelled(m.cpuPerConn, m.range.cpuPerConn)} | ${f(m.rulesWalked, 0)} | ${modelled(m.syncMs / 1000, syncS, 2)} | ${modelled(m.incrementalMs, m.range.incrementalMs, 0)} | ${p.engine.connections}, ${f(p.engine.wallMs / 1000, 2)}, ${JSON.stringify(p.engine.dropped)} |`);
  }
  cmd(s.full ? "--full" : "");
  L.push("### The model's curves", "");
  L.push("First-packet latency and CPU per new connection against the rules walked W (iptables) or N (nftables): a + b·W, or two such lines joined at a knee " +
    "(+ c·(W − knee) past it: a walk costs little per rule while the ruleset sits in the caches and a miss per rule once it does not), coefficients ≥ 0, " +
    "whichever missed less when each measured N was left out. Past the measured range the knee's curve goes on as its steeper line.", "");
  L.push("Full sync and +1 Service against the rule count R. **Measured** at the N in the table above (wall time of the restore in a namespace); **modelled** everywhere else, by the curve below: " +
    "per mode and figure, the one among a + b·R, a + b·R + c·R² (coefficients ≥ 0) and a·R^k that missed least when each measured N was left out in turn (fit on the other N, predict it). " +
    "A point is checked only when the other N fix the curve (as many distinct x as the curve has coefficients: 3 N for a line or power law, 4 for the quadratic); the picked model's own error is the table's, the others' are beside it.", "");
  L.push(...markdownTable(curveTable(s.calibration, s.checks)));
  L.push("");
  L.push("### How far the model missed (leave one N out)", "");
  const rows = Object.entries(s.checks).flatMap(([mode, c]) => (Object.entries(c) as [string, Check[]][]).flatMap(([what, list]) => list.map((x) => `| ${mode} | ${what} | ${x.n} | ${f(x.x, 0)} | ${f(x.measured, 2)} | ${f(x.predicted, 2)} | ${f(x.errPct, 0)}% |`)));
  if (rows.length) { L.push("| mode | figure | N left out | x (rules walked, N or rules) | measured | predicted | error |", "|---|---|---|---|---|---|---|", ...rows); }
  else L.push("No checks: fewer than two N measured in this run (run with --full).");
  cmd(s.full ? "--full" : "");
  L.push("## Calibration", "", "```json", JSON.stringify(s.calibration, null, 1), "```", "");
  return L.join("\n") + "\n";
}
