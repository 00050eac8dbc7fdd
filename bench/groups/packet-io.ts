// npm run bench's "packetio" group: packet mode's I/O end to end (bench/packet-mode.ts as a child: namespaces, a
// UDP flood of 1,024 flows with 64-byte payloads, the proxy on one core) at batch 256 for the rings, the
// recvmmsg/sendmmsg fallback and AF_XDP when built, beside the kernel's own iptables DNAT on the same veth
// topology, each at 1 and 2 I/O threads (--workers, native/packet/io_threads.h; AF_XDP at one). Its table goes
// to stdout; the targets are issue 19's 1 Mpps per core (cost per packet, CPU time: what a shared machine's
// load moves least) and each path's figure for reference. Needs root.
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import type { Target } from "../lib/report.ts";
import type { Ctx, GroupResult } from "../lib/context.ts";

interface Row {
  io: string;
  batch: number;
  workers: number;
  mainCpuNsPerPkt: number;
  cpuNsPerPkt: number;
  softirqNsPerPkt: number;
  deliveredPps: number;
}

const root = fileURLToPath(new URL("../..", import.meta.url));

// The target when nothing was measured, and why
const unmeasured = (status: "SKIP" | "MISS", note: string): GroupResult => ({
  figures: [],
  targets: [{ id: "packet-io", target: "packet mode ≥ 1 Mpps per core", measured: "-", status, note }],
  svgs: {},
});

export async function benchPacketIo(ctx: Ctx): Promise<GroupResult> {
  if (process.getuid?.() !== 0) return unmeasured("SKIP", "needs root (namespaces, raw sockets)");
  const reps = ctx.quick ? 1 : 3,
    seconds = ctx.quick ? 1 : 3;
  const args = [
    "--import",
    "tsx",
    "bench/packet-mode.ts",
    `--reps=${reps}`,
    `--seconds=${seconds}`,
    "--batches=256",
    "--workers=1,2",
  ];
  const r = spawnSync(process.execPath, args, { cwd: root, stdio: ["ignore", "inherit", "inherit"] });
  if (r.status !== 0) return unmeasured("MISS", `bench/packet-mode.ts failed (exit ${r.status}): its output is above`);
  const j = JSON.parse(readFileSync(`${root}/report/packet-mode.json`, "utf8"));
  const rows = j.results as Row[];
  const cost = (x: Row) => (x.io === "kernel" ? x.softirqNsPerPkt : x.cpuNsPerPkt + x.softirqNsPerPkt);
  const mpps = (x: Row) => 1e3 / Math.max(1, cost(x));
  const paths = rows.filter((x) => x.io !== "kernel" && x.workers <= 1).sort((a, b) => cost(a) - cost(b));
  const kernel = rows.find((x) => x.io === "kernel");
  const targets: Target[] = rows.map((x) =>
    x.workers > 1
      ? {
          id: `packet-io-${x.io}-${x.workers}-threads`,
          target: `packet mode, ${x.io} I/O on ${x.workers} I/O threads (reference)`,
          measured:
            `${cost(x).toFixed(0)} ns per packet in all; the main thread (the core) ` +
            `${x.mainCpuNsPerPkt.toFixed(0)} ns, its ceiling ${(1e3 / Math.max(1, x.mainCpuNsPerPkt)).toFixed(2)} Mpps`,
          status: "REF",
        }
      : {
          id: `packet-io-${x.io}`,
          target:
            `${x.io === "kernel" ? "the kernel's iptables DNAT" : `packet mode, ${x.io} I/O`} on one core` +
            " (reference)",
          measured: `${mpps(x).toFixed(2)} Mpps per core (${cost(x).toFixed(0)} ns per packet)`,
          status: "REF",
        },
  );
  const best = paths[0];
  if (best)
    targets.push({
      id: "packet-io-1mpps",
      target: "packet mode ≥ 1 Mpps per core (64-byte UDP, 1,024 flows, this veth topology)",
      measured:
        `${mpps(best).toFixed(2)} by the best path, ${best.io}` +
        (kernel ? `; the kernel's DNAT ${mpps(kernel).toFixed(2)} on the same path` : ""),
      status: mpps(best) >= 1 ? "PASS" : "MISS",
      note: `bench/packet-mode.ts --reps=${reps} --seconds=${seconds}; load ${j.loadavg[0]} to ${j.loadavg[1]}`,
    });
  return { figures: [], targets, svgs: {}, extra: { packetIo: rows } };
}
