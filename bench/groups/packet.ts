// Figure 3: packet batches. The packet path's own benchmark lives in bench/packet.ts (written by the packet
// engineers); this hook calls its `benchPackets(opts)` when the file exists and prints Mpps beside kernel
// IPVS's published 1.2 Mpps per core.
//
// bench/packet.ts's contract (as it stands): benchPackets(opts: { flows?, batch?, rounds?, roundMs?, log?, ... })
// resolves to figures { flows, batch, packetBytes, mpps: {median,min,max}, wasmMpps: {...}, baselineMpps,
// ratio, ... } where the baseline is Core.packet() called once per packet. Rates are turned into ns per
// packet here; its spread is min–max over its rounds (it keeps no quartiles). The hook also accepts
// { name, nsPerPacket | ours: Stat, baseline?: { name, nsPerPacket } } should the file change shape.
import { existsSync } from "node:fs";
import { fileURLToPath, pathToFileURL } from "node:url";
import type { Stat } from "../lib/measure.ts";
import { withBaselines, type Figure, type Target } from "../lib/report.ts";
import { Progress } from "../lib/progress.ts";
import type { Ctx, GroupResult } from "../lib/context.ts";

// issue 21: the in-WASM packet path on one core, 256-packet batches of established flows, by flow count
export const PACKET_TARGET_MPPS: Record<number, number> = { 1000: 15, 100000: 8 };
export const KERNEL_IPVS_MPPS = 1.2; // published kernel IPVS forwarding rate per core (with NIC I/O)
export const PACKET_FILE = fileURLToPath(new URL("../packet.ts", import.meta.url));

type StatLike = Stat | number | undefined | null;
function asStat(x: StatLike): Stat | null {
  if (x == null) return null;
  if (typeof x === "number") return { median: x, p25: x, p75: x, mad: 0, samples: 1, opsPerSample: 1 };
  const o = x as Partial<Stat>;
  if (typeof o.median === "number") {
    return {
      median: o.median,
      p25: o.p25 ?? o.median,
      p75: o.p75 ?? o.median,
      mad: o.mad ?? 0,
      samples: o.samples ?? 0,
      opsPerSample: o.opsPerSample ?? 0,
    };
  }
  return null;
}

export async function benchPacketsHook(ctx: Ctx): Promise<GroupResult> {
  const figures: Figure[] = [];
  const targets: Target[] = [];
  const p = new Progress("packet", 1);
  if (!existsSync(PACKET_FILE)) {
    p.step("bench/packet.ts is not there yet: skipped (hook: bench/groups/packet.ts)");
    targets.push({
      id: "packet",
      target: `packet batches: Mpps beside kernel IPVS ${KERNEL_IPVS_MPPS} Mpps/core`,
      measured: "-",
      status: "SKIP",
      note: "bench/packet.ts not present",
    });
    return { figures, targets, svgs: {} };
  }
  p.step("running benchPackets() from bench/packet.ts");
  const mod: any = await import(pathToFileURL(PACKET_FILE).href);
  if (typeof mod.benchPackets !== "function") {
    targets.push({
      id: "packet",
      target: "packet batches",
      measured: "-",
      status: "SKIP",
      note: "bench/packet.ts exports no benchPackets()",
    });
    return { figures, targets, svgs: {} };
  }
  const opts = ctx.quick
    ? { flows: [1000, 100_000], rounds: 3, roundMs: 50, log: (m: string) => p.note(m.trim()) }
    : { rounds: 7, roundMs: 200, log: (m: string) => p.note(m.trim()) };
  const raw = await mod.benchPackets(opts);
  const list: any[] = Array.isArray(raw) ? raw : Array.isArray(raw?.figures) ? raw.figures : raw ? [raw] : [];
  const rate = (r: any): Stat | null => {
    // {median,min,max} Mpps -> ns per packet
    if (typeof r === "number") return asStat(1000 / r);
    if (r && typeof r.median === "number") {
      return {
        median: 1000 / r.median,
        p25: 1000 / (r.max ?? r.median),
        p75: 1000 / (r.min ?? r.median),
        mad: 0,
        samples: 0,
        opsPerSample: 0,
      };
    }
    return null;
  };
  for (const [i, f] of list.entries()) {
    const ours = asStat(f.ours ?? f.nsPerPacket) ?? rate(f.mpps);
    const base = f.baseline
      ? asStat(f.baseline.nsPerPacket ?? f.baseline.ours ?? f.baseline.stat)
      : rate(f.baselineMpps);
    const baseName = f.baseline?.name ?? "Core.packet() per call";
    const name = String(
      f.name ?? (f.flows ? `${f.flows} flows${f.batch ? `, ${f.batch}/batch` : ""}` : `case ${i + 1}`),
    );
    const mpps = ours ? 1000 / ours.median : NaN;
    const wasmOnly = f.wasmMpps?.median;
    figures.push(
      withBaselines({
        group: "packet",
        name,
        params: { flows: f.flows ?? 0, batch: f.batch ?? 0, packetBytes: f.packetBytes ?? 0 },
        unit: "packet",
        ours,
        oursLabel: "WASM processBatch (incl. copy in)",
        baselines: base ? [{ name: String(baseName), stat: base }] : [],
        note:
          `${mpps.toFixed(2)} Mpps${wasmOnly ? ` (WASM alone ${wasmOnly.toFixed(2)})` : ""} vs kernel IPVS ` +
          `${KERNEL_IPVS_MPPS} Mpps/core; no NIC I/O; spread min–max`,
      }),
    );
    targets.push({
      id: `packet-${i}`,
      target: `packet batches, ${name}: Mpps beside kernel IPVS ${KERNEL_IPVS_MPPS} Mpps/core`,
      measured: ours
        ? `${mpps.toFixed(2)} Mpps = ${(mpps / KERNEL_IPVS_MPPS).toFixed(1)}× the kernel's figure` +
          `${base ? `; ${(base.median / ours.median).toFixed(1)}× ` + `${baseName}` : ""}`
        : "-",
      status: ours ? "REF" : "SKIP",
      note: "ours has no NIC I/O: not like for like",
    });
    const want = PACKET_TARGET_MPPS[f.flows];
    if (want && ours && f.batch === 256) {
      targets.push({
        id: `packet-${f.flows}`,
        target:
          `packet path at ${f.flows.toLocaleString("en")} flows ≥ ${want} Mpps ` + "(256-packet batches, one core)",
        measured:
          `${mpps.toFixed(2)} Mpps (rounds ${(1000 / ours.p75).toFixed(2)}–${(1000 / ours.p25).toFixed(2)})` +
          `${wasmOnly ? `; WASM alone ${wasmOnly.toFixed(2)}` : ""}`,
        status: mpps >= want ? "PASS" : "MISS",
        note: "CPU time per round, host copy of the packets included",
      });
    }
  }
  return { figures, targets, svgs: {} };
}
