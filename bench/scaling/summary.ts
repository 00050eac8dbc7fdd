// The Markdown summary of a scaling run: measured figures beside the published ones, the model's
// extrapolation with its checked error, and under every figure the one command that regenerates it.
import type { HostResult } from "./host.ts";
import type { ProxyResult } from "./proxy.ts";
import type { PacketResult } from "./packet.ts";
import type { VmResult } from "./vm.ts";
import type { SimPointResult, ModeChecks, Calibration, Check, Range } from "../../src/sim/index.ts";
import { mainTable, curveTable, markdownTable, modelled, fmt as f } from "./rows.ts";

export interface SummaryInput {
  hostResults: HostResult[];
  proxyResults?: ProxyResult[];
  vmResults?: VmResult[];
  vmError?: string | null;
  vmServices?: number[];
  sim: SimPointResult[];
  checks: Record<string, ModeChecks>;
  calibration: Calibration;
  wasmPerN: { services: number; nsPerNewConn: number }[];
  services: number[];
  endpoints: number;
  full: boolean;
  hostSkip: string;
  /** the run's exact command line (scaling.json's meta.command) */
  command: string;
  svgs: string[];
  packetResults?: PacketResult[];
  packetSkip?: string;
  proxyFailures?: { services: number; error: string }[]; // socket mode could not run at these N (and why)
  packetFailures?: { services: number; error: string }[]; // packet mode failed at these N (and why)
  ipvsSkip?: string; // why IPVS mode was not measured on this host ("" = it was)
  hostFailures?: { mode: string; services: number; error: string }[];
}

/** A modelled figure in µs shown in ms, with its range. */
const modelledMs = (us: number, r: Range) => modelled(us / 1000, r && [r[0] / 1000, r[1] / 1000], 3);

/** One Markdown table row, and a header row with its separator. */
const row = (...cells: (string | number)[]) => `| ${cells.join(" | ")} |`;
const header = (...cols: string[]) => [row(...cols), `|${"---|".repeat(cols.length)}`];

/** The summary being written: its lines, and the command that regenerates the figures above it. */
class Summary {
  readonly L: string[] = [];
  constructor(readonly s: SummaryInput) {}
  push(...lines: string[]): void {
    this.L.push(...lines);
  }
  /** The exact command of the run that produced the figures above (every figure in a summary comes from one run;
   *  a narrower command with defaults would give other figures). */
  cmd(): void {
    this.L.push("", "Produced by:", "", "```", this.s.command, "```", "");
  }
  host(mode: string, n: number): HostResult | undefined {
    return this.s.hostResults.find((r) => r.mode === mode && r.services === n);
  }
  simAt(mode: string, n: number) {
    return this.s.sim.find((p) => p.services === n)?.modes.find((m) => m.mode === mode);
  }
}

export function summaryMarkdown(s: SummaryInput): string {
  const out = new Summary(s);
  intro(out);
  out.push("## The run's table (as printed on the terminal)", "");
  out.push(
    ...markdownTable(
      mainTable({
        hostResults: s.hostResults,
        sim: s.sim,
        proxyResults: s.proxyResults ?? [],
        packetResults: s.packetResults ?? [],
        vmResults: s.vmResults ?? [],
        wasmPerN: s.wasmPerN,
      }),
    ),
    "",
  );
  out.cmd();
  measuredOnHost(out);
  ipvsOnHost(out);
  socketMode(out);
  packetMode(out);
  vmSection(out);
  published(out);
  wasmCost(out);
  modelledPastTheMachine(out);
  out.push("## Calibration", "", "```json", JSON.stringify(s.calibration, null, 1), "```", "");
  return out.L.join("\n") + "\n";
}

/** The title, what was measured where (and what was not), the plots, and any mode that failed. */
function intro(out: Summary): void {
  const { s } = out;
  out.push("# Scaling: kube-proxy modes past 1,000 Services", "");
  const measuredNs = [...new Set(s.hostResults.map((r) => r.services))];
  const hostModes = [...new Set(s.hostResults.map((r) => r.mode))];
  const where = s.hostSkip
    ? `**Nothing was measured on this host (host part skipped: ${s.hostSkip})**: every kernel-mode figure below is ` +
      `modelled, from the built-in calibration (${s.calibration.machine}).`
    : `Measured on this machine's kernel: ${hostModes.join(", ")} at ${measuredNs.join(", ")} Services × ` +
      `${s.endpoints} endpoints` +
      (s.ipvsSkip
        ? `; IPVS mode not measured on this host (${s.ipvsSkip})`
        : ", IPVS mode among them, in the same namespaces and the same run") +
      ".";
  const vmRows = s.vmResults?.length ? "the [VM] rows and section" : "none in this run";
  out.push(
    `Run ${new Date().toISOString()}. ` +
      where +
      ` Host-kernel figures are comparable with each other only; VM figures (${vmRows}) only with other VM figures. ` +
      "Figures marked ≈ are **modelled**, with the span of the fit's uncertainty in brackets; every other " +
      "figure is measured.",
    "",
  );
  out.push(`Plots: ${s.svgs.map((n) => `[${n}](${n})`).join(", ")}; every figure is in scaling.json.`, "");
  for (const x of s.hostFailures ?? [])
    out.push(`**${x.mode} at ${x.services} Services FAILED:** ${x.error.slice(0, 600)}`, "");
}

/** The kernel modes measured on this host, and the xtables lock test. */
function measuredOnHost(out: Summary): void {
  const { s } = out;
  out.push("## Measured on this kernel", "");
  if (!s.hostResults.length) {
    out.push("(not measured in this run)");
    return;
  }
  out.push(
    ...header(
      "mode",
      "Services",
      "rules installed (counted back)",
      "full sync",
      "+1 Service",
      "connect p50/p99 first Service",
      "last Service",
      "pod IP, no Service",
      "CPU µs/conn first → last (no rules)",
    ),
  );
  for (const r of s.hostResults) {
    out.push(
      row(
        r.mode,
        r.services,
        `${r.rules.counted} / ${r.rules.expected}`,
        `${f(r.syncMs / 1000, 2)} s`,
        `${f(r.incrementalMs, 0)} ms`,
        `${f(r.first.lat.p50)} / ${f(r.first.lat.p99)} µs (rule ${r.first.position})`,
        `${f(r.last.lat.p50)} / ${f(r.last.lat.p99)} µs (rule ${r.last.position})`,
        `${f(r.pod.lat.p50)} µs`,
        `${f(r.first.cpu.usPerConn)} → ${f(r.last.cpu.usPerConn)} (${f(r.baseline.cpu.usPerConn)})`,
      ),
    );
  }
  out.cmd();
  const locks = s.hostResults.filter((r) => r.lock);
  if (!locks.length) return;
  out.push(
    "### The xtables lock",
    "",
    "A full restore of the same ruleset again while a second writer adds one rule at a time " +
      "with `-w 5` (private lock file via XTABLES_LOCKFILE):",
    "",
  );
  out.push(
    ...header("mode", "Services", "full restore", "writers", "failed (waited > 5 s)", "wait p50", "wait max", "note"),
  );
  for (const r of locks) {
    const l = r.lock!;
    const note = l.starved
      ? `restore still running when the writers stopped at ${f(l.writersStoppedAtMs / 1000, 1)} s: ` +
        "each small nft-backend commit changes the generation and iptables-nft-restore starts over"
      : "";
    out.push(
      row(
        r.mode,
        r.services,
        `${f(l.bigRestoreMs / 1000, 2)} s`,
        l.writers,
        l.failed,
        `${f(l.waitP50Ms, 0)} ms`,
        `${f(l.waitMaxMs, 0)} ms`,
        note,
      ),
    );
  }
  out.cmd();
}

/** kube-proxy's IPVS mode measured on this host (when its kernel has IPVS). */
function ipvsOnHost(out: Summary): void {
  const { s } = out;
  const ir = s.hostResults.filter((r) => r.ipvs);
  out.push("## kube-proxy IPVS mode on this kernel", "");
  if (!ir.length) {
    out.push(s.hostSkip ? "(host part skipped)" : `(not measured on this host: ${s.ipvsSkip || "not in --modes"})`, "");
    return;
  }
  out.push(
    "The same topology as the modes above. Full sync (the run's table) = `ipvsadm -R` of every virtual " +
      "service into a " +
      "fresh namespace, plus every ClusterIP bound to kube-ipvs0 (`ip -batch`), `ipset restore` and " +
      "`iptables-legacy-restore --noflush` of IPVS mode's rules in the node namespace, whose virtual services " +
      "wasmvs's " +
      "Reconciler (generic netlink, a child process there) wrote, timed beside `ipvsadm -R`. " +
      "+1 Service: the new virtual services by `ipvsadm -R` and by `Reconciler.update`. Everything counted " +
      "back after +1 Service. " +
      "IPVS's Conns counter and the backends' tally (they see only the endpoints' addresses) prove the NAT.",
    "",
  );
  out.push(
    ...header(
      "Services",
      "virtual services / real servers counted (expected)",
      "ipset entries",
      "iptables rules",
      "kube-ipvs0 addresses",
      "full sync: ipvsadm -R / Reconciler",
      "kube-ipvs0 / ipset / iptables",
      "+1 Service: ipvsadm -R / Reconciler",
      "connect p50/p99 first Service",
      "last Service",
      "pod IP p50",
      "CPU µs/conn first / last (no rules)",
      "IPVS Conns / backends saw, first / last",
    ),
  );
  for (const r of ir) {
    const i = r.ipvs!,
      c = i.counted,
      e = i.expected;
    out.push(
      row(
        r.services,
        `${c.services} / ${c.realServers} (${e.services} / ${e.realServers})`,
        `${c.ipsetEntries} / ${e.ipsetEntries}`,
        `${c.iptablesRules} / ${e.iptablesRules}`,
        `${c.boundAddrs} / ${e.boundAddrs}`,
        `${f(i.syncIpvsadmMs / 1000, 2)} s / ${f(i.syncReconcilerMs / 1000, 2)} s (${i.reconcilerMessages} messages)`,
        `${f(i.bindMs, 0)} / ${f(i.ipsetMs, 0)} / ${f(i.iptablesMs, 0)} ms`,
        `${f(i.incIpvsadmMs, 0)} / ${f(i.incReconcilerMs, 1)} ms (${i.incServices} virtual services)`,
        `${f(r.first.lat.p50)} / ${f(r.first.lat.p99)} µs`,
        `${f(r.last.lat.p50)} / ${f(r.last.lat.p99)} µs`,
        `${f(r.pod.lat.p50)} µs`,
        `${f(r.first.cpu.usPerConn)} / ${f(r.last.cpu.usPerConn)} (${f(r.baseline.cpu.usPerConn)})`,
        `${i.ipvsConns.first} / ${r.translated.first}, ${i.ipvsConns.last} / ${r.translated.last}`,
      ),
    );
  }
  out.cmd();
}

/** wasmvs proxy in socket mode, measured on this host. */
function socketMode(out: Summary): void {
  const { s } = out;
  const pr = s.proxyResults ?? [];
  out.push("## wasmvs userspace: `wasmvs proxy` socket mode (measured on this kernel)", "");
  if (!pr.length) out.push("(not measured in this run)", "");
  else {
    out.push(
      "The same host topology, with `wasmvs proxy run -c FILE` in the node namespace listening on every " +
        "virtual service " +
        "of IPVS mode for the cluster (the Service CIDR made local by a route; no rules). " +
        "`connect()` returns when the node's kernel completes the handshake with the proxy's listening " +
        "socket, before the " +
        "proxy accepts, so the figure that covers the proxy is the **time to the backend's first byte** " +
        "(the backends send one byte on accept): client → proxy accept → the WASM core's decision → backend " +
        "connect → relay. " +
        "Baseline: the same straight to a pod IP. CPU: the proxy process's own user+sys time over a burst ÷ " +
        "connections.",
      "",
    );
    out.push(
      ...header(
        "Services",
        "virtual services (listeners)",
        "proxy start (run from)",
        "first byte p50/p99 first Service",
        "last Service",
        "connect() p50 first / last",
        "baseline first byte p50 (no proxy)",
        "proxy CPU µs/conn first / last",
        "client CPU µs/conn",
        "proxy RSS",
        "translated (backends saw)",
      ),
    );
    for (const p of pr) {
      out.push(
        row(
          p.services,
          `${p.virtualServices} (${p.listening})`,
          `${f(p.startMs / 1000, 1)} s (${p.launcher})`,
          `${f(p.first.firstByte.p50)} / ${f(p.first.firstByte.p99)} µs`,
          `${f(p.last.firstByte.p50)} / ${f(p.last.firstByte.p99)} µs`,
          `${f(p.first.connect.p50)} / ${f(p.last.connect.p50)} µs`,
          `${f(p.baseline.firstByte.p50)} µs`,
          `${f(p.first.proxyCpuUsPerConn)} / ${f(p.last.proxyCpuUsPerConn)}`,
          f(p.last.clientCpuUsPerConn),
          `${f(p.proxyRssMiB, 0)} MiB`,
          `${p.translated.first} / ${p.translated.last}`,
        ),
      );
    }
    out.cmd();
  }
  for (const x of s.proxyFailures ?? [])
    out.push(`**Not measured at ${x.services} Services:** ${x.error.slice(0, 600)}`, "");
}

/** wasmvs proxy in packet mode, measured on this host. */
function packetMode(out: Summary): void {
  const { s } = out;
  const kr = s.packetResults ?? [];
  out.push("## wasmvs userspace: `wasmvs proxy` packet mode (measured on this kernel)", "");
  for (const x of s.packetFailures ?? [])
    out.push(`**FAILED at ${x.services} Services:** ${x.error.slice(0, 600)}`, "");
  if (!kr.length) {
    out.push(s.packetSkip ? `(skipped: ${s.packetSkip})` : "(not measured in this run)", "");
    return;
  }
  out.push(
    "The same host topology, with `wasmvs proxy run` in packet mode in the node namespace: every frame arriving from " +
      "the client and the backends (AF_PACKET on both veths) goes through the WASM core's packet path " +
      `(schedule, full-NAT rewrite to source ${kr[0].fullNat.address}, checksums) and out by a raw socket; ` +
      `its nftables table ` +
      "`inet wasmvs_packet` drops the kernel's own copies in prerouting. " +
      "Nothing listens on the node, so **connect() already covers the whole path** (the SYN-ACK comes from " +
      "the backend " +
      "through wasmvs); the first byte adds the backend's banner. " +
      "CPU: the proxy process's user+sys ÷ connections, and the connector's, " +
      "which carries the node's takeover rules " +
      "(veth runs the receiver's prerouting in the sender's context). " +
      "The takeover table keeps the virtual services and the local address in nftables sets (one rule per " +
      "family: a hash " +
      "lookup per packet, whatever N).",
    "",
  );
  out.push(
    ...header(
      "Services",
      "takeover entries counted / expected, rules (kernel copies dropped)",
      "proxy start (run from)",
      "connect() p50/p99 first Service",
      "last Service",
      "first byte p50 first / last",
      "baseline connect / first byte (no proxy)",
      "proxy CPU µs/conn first / last",
      "connector CPU µs/conn first / last",
      "proxy RSS",
      "translated (backends saw)",
      "from the full-NAT address / elsewhere",
      "core forwarded, drops",
    ),
  );
  for (const k of kr) {
    const drops =
      Object.entries(k.core.drops)
        .map(([r, n]) => `${r} ${n}`)
        .join(" ") || "none";
    out.push(
      row(
        k.services,
        `${k.takeover.entries} / ${k.takeover.expected}, ${k.takeover.rules} (${k.takeover.dropped})`,
        `${f(k.startMs / 1000, 1)} s (${k.launcher})`,
        `${f(k.first.connect.p50)} / ${f(k.first.connect.p99)} µs`,
        `${f(k.last.connect.p50)} / ${f(k.last.connect.p99)} µs`,
        `${f(k.first.firstByte.p50)} / ${f(k.last.firstByte.p50)} µs`,
        `${f(k.baseline.connect.p50)} / ${f(k.baseline.firstByte.p50)} µs`,
        `${f(k.first.proxyCpuUsPerConn)} / ${f(k.last.proxyCpuUsPerConn)}`,
        `${f(k.first.clientCpuUsPerConn)} / ${f(k.last.clientCpuUsPerConn)}`,
        `${f(k.proxyRssMiB, 0)} MiB`,
        `${k.translated.first} / ${k.translated.last}`,
        `${k.fullNat.fromLocal} / ${k.fullNat.fromOther}`,
        `${k.core.forwarded}, ${drops}`,
      ),
    );
  }
  out.cmd();
}

/** IPVS mode and iptables mode inside the kernel VM: figures comparable only with each other. */
function vmSection(out: Summary): void {
  const { s } = out;
  const vr = s.vmResults ?? [];
  out.push("## [VM] IPVS mode vs iptables mode inside the kernel VM (VM-only figures)", "");
  if (!vr.length) {
    out.push(
      s.vmError ? `The VM part failed: ${s.vmError.slice(0, 500)}` : "(not measured in this run: add --vm, or --full)",
      "",
    );
    return;
  }
  const conn =
    vr[0].connector === "c" ? "connector.c (compiled on the host, shipped into the VM)" : "connector.mjs (Node)";
  out.push(
    `Linux ${vr[0].kernel} with IPVS under qemu TCG (../shared/ipvs-vm): software emulation, several times slower ` +
      "than the host. **Compare these rows only with each other.** " +
      "The host topology is made again inside the VM; IPVS mode = virtual services (NAT to the backends' " +
      "namespace) + ipsets " +
      "+ iptables + every ClusterIP bound to kube-ipvs0; " +
      `iptables mode = iptables-legacy-restore of the same cluster's rules, measured the same way in the same ` +
      `VM run. Connector: ${conn}.`,
    "",
  );
  out.push(
    ...header(
      "Services",
      "IPVS: virtual services / real servers counted back",
      "ipset entries",
      "iptables rules (IPVS mode)",
      "full sync ipvsadm -R",
      "full sync wasmvs Reconciler",
      "+1 Service ipvsadm -R / Reconciler",
      "kube-ipvs0 bind / ipset restore / iptables",
      "IPVS connect p50/p99 first",
      "last",
      "pod IP",
      "CPU µs/conn first / last",
      "IPVS Conns / backends saw, first / last",
    ),
  );
  for (const v of vr) {
    const i = v.ipvs;
    out.push(
      row(
        v.services,
        `${i.counted.services} / ${i.counted.realServers} (${i.virtualServices}+${i.incServices} / ` +
          `${i.realServers} expected before +1)`,
        `${i.counted.ipsetEntries} / ${i.expected.ipsetEntries}`,
        `${i.counted.iptablesRules} / ${i.expected.iptablesRules}`,
        `${f(i.syncIpvsadmMs / 1000, 2)} s`,
        `${f(i.syncReconcilerMs / 1000, 2)} s (${i.reconcilerMessages} messages)`,
        `${f(i.incIpvsadmMs, 0)} / ${f(i.incReconcilerMs, 1)} ms (${i.incServices} virtual services)`,
        `${f(i.bindMs, 0)} / ${f(i.ipsetMs, 0)} / ${f(i.iptablesMs, 0)} ms`,
        `${f(i.first.lat.p50)} / ${f(i.first.lat.p99)} µs`,
        `${f(i.last.lat.p50)} / ${f(i.last.lat.p99)} µs`,
        `${f(i.pod.lat.p50)} µs`,
        `${f(i.first.cpu.usPerConn)} / ${f(i.last.cpu.usPerConn)}`,
        `${i.ipvsConns.first} / ${i.translated.first}, ${i.ipvsConns.last} / ${i.translated.last}`,
      ),
    );
  }
  out.push(
    "",
    ...header(
      "Services",
      "iptables mode [VM]: rules counted / expected",
      "full sync",
      "connect p50/p99 first Service",
      "last Service",
      "pod IP",
      "CPU µs/conn first / last",
      "translated",
      "no rules at all: connect p50",
    ),
  );
  for (const v of vr) {
    const t = v.iptables;
    out.push(
      row(
        v.services,
        `${t.rules.counted} / ${t.rules.expected}`,
        `${f(t.syncMs / 1000, 2)} s`,
        `${f(t.first.lat.p50)} / ${f(t.first.lat.p99)} µs (rule ${t.first.position})`,
        `${f(t.last.lat.p50)} / ${f(t.last.lat.p99)} µs (rule ${t.last.position})`,
        `${f(t.pod.lat.p50)} µs`,
        `${f(t.first.cpu.usPerConn)} / ${f(t.last.cpu.usPerConn)}`,
        `${t.translated.first} / ${t.translated.last}`,
        `${f(v.baseline.lat.p50)} µs`,
      ),
    );
  }
  out.cmd();
}

// Tigera's 10k-Service CPU figures against the simulator's (iptables, nftables) and IPVS measured or modelled.
function tigeraRow(out: Summary): void {
  const { s } = out;
  const ir = s.hostResults.filter((r) => r.ipvs),
    vr = s.vmResults ?? [];
  const sim10 = (mode: string) => out.simAt(mode, 10000);
  const rate10 = s.sim.find((p) => p.services === 10000)?.rate ?? 0;
  // the extra share of a core moves with the CPU per connection: its range is the CPU model's, scaled the same way
  const extraCore = (m: NonNullable<ReturnType<typeof sim10>>) => {
    const r = m.range.cpuPerConn,
      at = (cpu: number) => (m.extraCpuCores + ((cpu - m.cpuPerConn) * rate10) / 1e6) * 100;
    return `${modelled(m.extraCpuCores * 100, r && [at(r[0]), at(r[1])])}% of a core`;
  };
  const tig = (mode: string) => {
    const m = sim10(mode);
    return m
      ? `${extraCore(m)} at ${rate10} new conn/s; ` +
          `${f(m.rulesWalked, 0)} rules walked per new connection (mean, counted over the ruleset)`
      : "-";
  };
  const nft10 = sim10("nftables"),
    ipvs10 = sim10("ipvs"),
    measured10 = ir.find((r) => r.services === 10000);
  const ipvs = measured10
    ? `measured on this host: CPU per connect ${f(measured10.last.cpu.usPerConn, 1)} µs`
    : ipvs10
      ? `${extraCore(ipvs10)} (modelled${ipvs10.units.startsWith("VM") ? ", VM units" : ""})`
      : vr.length
        ? `measured in the VM only (see [VM]: CPU per connect ${vr
            .map(
              (v) =>
                `${v.services}: ${f(v.ipvs.last.cpu.usPerConn, 0)} µs vs iptables ` +
                `${f(v.iptables.last.cpu.usPerConn, 0)} µs`,
            )
            .join("; ")})`
        : "not measured in this run";
  out.push(
    row(
      "Tigera: 10k Services, iptables ≈35% of a core extra vs IPVS ≈8%; ≈20,000 rules per new connection",
      "35% / 8%, 20,000 rules",
      `iptables-legacy: ${tig("iptables-legacy")}; iptables-nft: ${tig("iptables-nft")}; ` +
        `nftables: ${nft10 ? extraCore(nft10) : "-"}; IPVS: ${ipvs}`,
      "simulator over the 10k cluster's real ruleset, uniform Service mix, CPU model calibrated by the " +
        "measured connects " +
        "(extra = over no rules at all)",
    ),
  );
}

// The Kubernetes nftables post's iptables first-packet latency at 5k, 10k and 30k Services.
function nftablesPostRows(out: Summary): void {
  for (const [n, pub] of [
    [5000, 0.047],
    [10000, 0.062],
    [30000, 0.272],
  ] as const) {
    const h = out.host("iptables-legacy", n),
      m = out.simAt("iptables-legacy", n);
    const hn = out.host("iptables-nft", n),
      mn = out.simAt("iptables-nft", n);
    const legacy = h
      ? `${f(h.first.lat.p50 / 1000, 3)}–${f(h.last.lat.p50 / 1000, 3)} ms first–last Service (measured)`
      : m
        ? `${modelledMs(m.firstPacket.p50, m.range.p50)} ms mix p50 (modelled)`
        : "-";
    const nft = hn
      ? `${f(hn.first.lat.p50 / 1000, 3)}–${f(hn.last.lat.p50 / 1000, 3)} ms (measured)`
      : mn
        ? `${modelledMs(mn.firstPacket.p50, mn.range.p50)} ms (modelled)`
        : "-";
    const noRules =
      h || hn ? `, so it includes about ${f((h ?? hn)!.baseline.lat.p50, 0)} µs with no rules at all` : "";
    out.push(
      row(
        `Kubernetes nftables post: iptables first packet p50 at ${n / 1000}k`,
        `${pub} ms`,
        `legacy: ${legacy}; nft backend: ${nft}`,
        `whole TCP connect (SYN out, SYN-ACK back) through veth${noRules}`,
      ),
    );
  }
}

/** Our figures beside the published ones they answer. */
function published(out: Summary): void {
  out.push("## Beside the published figures", "");
  out.push(...header("published", "their figure", "ours", "how ours was obtained"));
  tigeraRow(out);
  nftablesPostRows(out);
  const h5 = out.host("iptables-legacy", 5000),
    hn5 = out.host("iptables-nft", 5000);
  out.push(
    row(
      "Huawei 2017: +1 rule at 5k Services",
      "11 min",
      `legacy ${h5 ? f(h5.incrementalMs, 0) + " ms" : "-"}, nft backend ` +
        `${hn5 ? f(hn5.incrementalMs, 0) + " ms" : "-"} ` +
        "(+1 Service, partial restore)",
      "kube-proxy then ran many iptables commands under the lock; today's partial restore is one call",
    ),
  );
  const n10 = out.host("nftables", 10000),
    nm10 = out.simAt("nftables", 10000);
  out.push(
    row(
      "nftables partial-sync PR: +1 Service at 10k",
      "141 ms",
      n10
        ? f(n10.incrementalMs, 0) + " ms (measured)"
        : nm10
          ? modelled(nm10.incrementalMs, nm10.range.incrementalMs, 0) + " ms (modelled)"
          : "-",
      "nft -f of the new Service's chains and map elements only; theirs is kube-proxy's whole sync loop",
    ),
  );
  out.cmd();
}

/** The WASM data plane's cost per new connection. */
function wasmCost(out: Summary): void {
  const { s } = out;
  out.push("## wasmvs", "");
  out.push(
    "The WASM data plane's cost per new connection: batches of SYNs to random Services through `PacketBatch` " +
      "(parse → lookup miss → schedule → connection entry → NAT rewrite), timed around the WASM call. " +
      "This is **not** a socket connect (socket mode through `wasmvs proxy` is the section above); this is " +
      "the decision and " +
      "rewrite only, with no kernel I/O.",
    "",
  );
  out.push(...header("Services", "ns per new connection"));
  for (const w of s.wasmPerN) out.push(row(w.services, f(w.nsPerNewConn, 0)));
  out.cmd();
}

/** The simulator's points past the machine, the model's curves, and how far they missed. */
function modelledPastTheMachine(out: Summary): void {
  const { s } = out;
  out.push("## Modelled past the machine", "");
  out.push(
    "Each point below runs the traffic through the real data plane (Core/PacketBatch) and costs every new connection " +
      "by the calibrated models: iptables = a curve in the rules walked W (the walk counted over the real " +
      "generated ruleset), " +
      "nftables = a curve in N (verdict maps), sync and +1 Service = curves in the rule count R; the curves " +
      "are below, with " +
      "how far each missed.",
    "",
  );
  out.push(
    "Every kernel-mode figure in this table is the **model's** (≈, with the span of the fit's uncertainty in " +
      "brackets: " +
      "the curve refitted with each measured N left out, and the other candidate curves); at a measured N the " +
      "measured figure " +
      "is in the tables above.",
    "",
  );
  out.push(
    ...header(
      "Services",
      "mode",
      "at a measured N?",
      "first-packet p50 (µs, Service mix)",
      "p99",
      "CPU µs/new conn",
      "rules walked",
      "full sync s",
      "+1 Service ms",
      "data plane: connections, wall s, drops",
    ),
  );
  for (const p of s.sim)
    for (const m of p.modes) {
      const syncS = m.range.syncMs && ([m.range.syncMs[0] / 1000, m.range.syncMs[1] / 1000] as [number, number]);
      out.push(
        row(
          p.services,
          `${m.mode}${m.units.startsWith("VM") ? " [VM units]" : ""}`,
          m.measured ? "yes (model shown; measured above)" : "no: modelled",
          modelled(m.firstPacket.p50, m.range.p50),
          modelled(m.firstPacket.p99, m.range.p99),
          modelled(m.cpuPerConn, m.range.cpuPerConn),
          f(m.rulesWalked, 0),
          modelled(m.syncMs / 1000, syncS, 2),
          modelled(m.incrementalMs, m.range.incrementalMs, 0),
          `${p.engine.connections}, ${f(p.engine.wallMs / 1000, 2)}, ${JSON.stringify(p.engine.dropped)}`,
        ),
      );
    }
  out.cmd();
  out.push("### The model's curves", "");
  out.push(
    "First-packet latency and CPU per new connection against the rules walked W (iptables) or N (nftables): a " +
      "+ b·W, or two such lines joined at a knee " +
      "(+ c·(W − knee) past it: a walk costs little per rule while the ruleset sits in the caches and a miss " +
      "per rule once it does not), coefficients ≥ 0, " +
      "whichever missed less when each measured N was left out. Past the measured range the knee's curve goes " +
      "on as its steeper line.",
    "",
  );
  out.push(
    "Full sync and +1 Service against the rule count R. **Measured** at the N in the table above (wall time " +
      "of the restore in a namespace); **modelled** everywhere else, by the curve below: " +
      "per mode and figure, the one among a + b·R, a + b·R + c·R² (coefficients ≥ 0) and a·R^k that missed " +
      "least when each measured N was left out in turn (fit on the other N, predict it). " +
      "A point is checked only when the other N fix the curve (as many distinct x as the curve has " +
      "coefficients: 3 N for a line or power law, 4 for the quadratic); the picked model's own error is the " +
      "table's, the others' are beside it.",
    "",
  );
  out.push(...markdownTable(curveTable(s.calibration, s.checks)));
  out.push("");
  out.push("### How far the model missed (leave one N out)", "");
  const rows = Object.entries(s.checks).flatMap(([mode, c]) =>
    (Object.entries(c) as [string, Check[]][]).flatMap(([what, list]) =>
      list.map((x) => row(mode, what, x.n, f(x.x, 0), f(x.measured, 2), f(x.predicted, 2), `${f(x.errPct, 0)}%`)),
    ),
  );
  if (rows.length) {
    out.push(
      ...header("mode", "figure", "N left out", "x (rules walked, N or rules)", "measured", "predicted", "error"),
      ...rows,
    );
  } else out.push("No checks: fewer than two N measured in this run (run with --full).");
  out.cmd();
}
