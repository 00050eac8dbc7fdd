// The simulator's speed target (issue 6): 10M connections over 10k Services through the real data plane in
// ≤ 10 s on one core. The same traffic as `node --import tsx bench/scaling.ts --target`; run several times
// (one with --quick), median wall time, with the traffic generator alone timed once beside it.
import { scalingCluster, simServices, runEngine, TARGET_TRAFFIC, TARGET_SERVICES, TARGET_SECONDS } from "../../src/sim/index.ts";
import type { Target } from "../lib/report.ts";
import { Progress } from "../lib/progress.ts";
import type { Ctx, GroupResult } from "../lib/context.ts";

export async function benchSim(ctx: Ctx): Promise<GroupResult> {
  const runs = ctx.quick ? 1 : 3;
  const p = new Progress("sim", runs + 1);
  p.step(`building the ${TARGET_SERVICES.toLocaleString("en")}-Service cluster`);
  const { services } = simServices(scalingCluster(TARGET_SERVICES, 2, 1, { nft: false }));
  const walls: number[] = [];
  let genMs = NaN, nsPerPacket: number[] = [], packets = 0, forwarded = 0;
  for (let i = 0; i < runs; i++) {
    p.step(`${TARGET_TRAFFIC.connections.toLocaleString("en")} connections, run ${i + 1} of ${runs}`);
    const r = await runEngine(services, { ...TARGET_TRAFFIC, timeGenerator: i === 0 });
    if (i === 0) genMs = r.generatorMs ?? NaN;
    walls.push(r.wallMs / 1000); nsPerPacket.push(r.nsPerPacket);
    packets = r.packets; forwarded = r.forwarded;
    p.note(`${(r.wallMs / 1000).toFixed(2)} s, ${r.nsPerPacket.toFixed(0)} ns/packet, ${r.forwarded} of ${r.packets} forwarded`);
  }
  const med = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  const wall = med(walls);
  const targets: Target[] = [{
    id: "sim",
    target: `simulator ${TARGET_TRAFFIC.connections / 1e6}M conns / ${TARGET_SERVICES / 1000}k Services ≤ ${TARGET_SECONDS} s`,
    measured: `${wall.toFixed(1)} s (runs ${walls.map((w) => w.toFixed(1)).join(", ")}); ${med(nsPerPacket).toFixed(0)} ns/packet; generator alone ${(genMs / 1000).toFixed(1)} s`,
    status: wall <= TARGET_SECONDS && forwarded === packets ? "PASS" : "MISS",
    note: forwarded === packets ? "node --import tsx bench/scaling.ts --target" : `${packets - forwarded} packets not forwarded`,
  }];
  return { figures: [], targets, svgs: {}, extra: { simWallS: walls, generatorS: genMs / 1000 } };
}
