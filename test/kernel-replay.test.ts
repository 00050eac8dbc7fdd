// Replays every scenario the real kernel ran (test/fixtures/kernel: Linux 6.1 in ../shared/ipvs-vm,
// recorded by test/kernel/record.cjs) through the WASM data plane, packet by packet, and asserts the
// kernel's exact choice for every connection and its ActiveConn/InActConn counters after every step.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { readFileSync } from "node:fs";
import { Core, TCP_FLAGS as F } from "../src/core/index.ts";

interface Step { op: string; dest?: string; port?: number; weight?: number; u?: number; l?: number; client?: string; sport?: number; answer?: boolean }
interface Scenario {
  name: string;
  service: { proto: "tcp" | "udp"; vip: string; port: number; scheduler: string; flags: string[]; persistent: number | null; netmask: string | null };
  steps: Step[];
}
interface Observed {
  name: string;
  choices: { client: string; sport: number; dest: string | null; after?: Record<string, [number, number]> }[];
  closes?: { step: number; after: Record<string, [number, number]> }[];
  counters?: Record<string, { active: number; inactive: number }>;
}

const dir = new URL("./fixtures/kernel/", import.meta.url);
const scenarios: Scenario[] = JSON.parse(readFileSync(new URL("scenarios.json", dir), "utf8"));
const observed: { kernel: string; scenarios: Observed[] } = JSON.parse(readFileSync(new URL("observed.json", dir), "utf8"));
const byName = new Map(observed.scenarios.map((o) => [o.name, o]));

const key = (af6: boolean, addr: string, port: number) => (af6 ? `[${addr}]:${port}` : `${addr}:${port}`);

function counters(c: Core, svc: number): Record<string, [number, number]> {
  const out: Record<string, [number, number]> = {};
  for (const d of c.service(svc).dests) out[key(d.af === 10, d.addr, d.port)] = [d.activeConns, d.inactConns];
  return out;
}

export async function replay(sc: Scenario, onChoice: (i: number, got: string | null, after: Record<string, [number, number]>) => void,
                             onClose: (i: number, after: Record<string, [number, number]>) => void) {
  const c = await Core.load({ connCapacity: 1 << 14 });
  const s = sc.service;
  const v6 = s.vip.includes(":");
  const svc = c.addService({ proto: s.proto, addr: s.vip, port: s.port, scheduler: s.scheduler, flags: s.flags,
    persistent: s.persistent ?? undefined, netmask: s.netmask ?? undefined });
  let now = 1000, n = 0, closes = 0;
  for (const st of sc.steps) {
    now += 40;
    const spec = { addr: st.dest!, port: st.port!, weight: st.weight, upperThreshold: st.u, lowerThreshold: st.l };
    if (st.op === "add") c.addDest(svc, spec);
    else if (st.op === "edit") c.editDest(svc, spec);
    else if (st.op === "del") c.deleteDest(svc, st.dest!, st.port!);
    else if (st.op === "connect") {
      let chosen: string | null = null;
      const r = c.packet("in", s.proto, st.client!, st.sport!, s.vip, s.port, { flags: F.SYN, now });
      if (r.verdict === "forward") {
        const conn = c.conn(r.conn) ?? null;
        chosen = conn ? key(v6, conn.daddr, conn.dport) : null;
        if (st.answer && conn && s.proto === "tcp") {
          c.packet("out", "tcp", conn.daddr, conn.dport, st.client!, st.sport!, { flags: F.SYN | F.ACK, now });
          c.packet("in", "tcp", st.client!, st.sport!, s.vip, s.port, { flags: F.ACK, now });
        }
      }
      onChoice(n++, chosen, counters(c, svc));
    } else if (st.op === "close") {
      const conn = c.conns().find((x) => !x.template && x.caddr === st.client && x.cport === st.sport)!;
      c.packet("in", "tcp", st.client!, st.sport!, s.vip, s.port, { flags: F.FIN | F.ACK, now });
      c.packet("out", "tcp", conn.daddr, conn.dport, st.client!, st.sport!, { flags: F.FIN | F.ACK, now });
      c.packet("in", "tcp", st.client!, st.sport!, s.vip, s.port, { flags: F.ACK, now });
      onClose(closes++, counters(c, svc));
    }
  }
  return counters(c, svc);
}

let total = 0;
for (const sc of scenarios) {
  const obs = byName.get(sc.name);
  if (!obs) continue;
  test(`kernel ${observed.kernel}: ${sc.name} (${obs.choices.length} connections)`, async () => {
    const mismatches: string[] = [];
    const final = await replay(sc, (i, got, after) => {
      const want = obs.choices[i];
      if (got !== want.dest) mismatches.push(`#${i} ${want.client}:${want.sport}: kernel ${want.dest}, wasm ${got}`);
      else if (want.after && JSON.stringify(after) !== JSON.stringify(want.after))
        mismatches.push(`#${i} counters: kernel ${JSON.stringify(want.after)}, wasm ${JSON.stringify(after)}`);
    }, (i, after) => {
      const want = obs.closes?.[i];
      if (want && JSON.stringify(after) !== JSON.stringify(want.after))
        mismatches.push(`close #${i} counters: kernel ${JSON.stringify(want.after)}, wasm ${JSON.stringify(after)}`);
    });
    total += obs.choices.length;
    assert.equal(mismatches.slice(0, 5), [], `${mismatches.length} mismatches`);
    if (obs.counters) {
      const want = Object.fromEntries(Object.entries(obs.counters).map(([k, v]) => [k, [v.active, v.inactive]]));
      assert.equal(final, want, "final ActiveConn/InActConn");
    }
  });
}

test("replayed every recorded scenario", () => {
  assert.ok(observed.scenarios.length >= 100, "the recording covers at least 100 scenarios");
  assert.ok(total >= 1000, `at least 1,000 connections compared (${total})`);
});

test.run();
