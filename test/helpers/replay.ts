// Replays a kernel scenario (test/fixtures/kernel/scenarios.json format, or a seeded random one from
// test/kernel/random-scenarios.cjs) through the WASM data plane, packet by packet, reporting what the kernel's
// transcript holds for each step: the chosen destination and the connection's state, the destination list
// in order with every counter, and at the end the Conns/PersistConn totals and the whole connection table.
import { Core, TCP_FLAGS as F, type DestInfo } from "../../src/core/index.ts";
import random from "../kernel/random-scenarios.cjs";

export interface Step {
  op: string;
  dest?: string;
  port?: number;
  weight?: number;
  u?: number;
  l?: number;
  client?: string;
  sport?: number;
  answer?: boolean;
  ms?: number;
}
export interface Scenario {
  name: string;
  service: {
    proto: "tcp" | "udp";
    vip: string;
    port: number;
    scheduler: string;
    flags: string[];
    persistent: number | null;
    netmask: string | number | null;
    udpTimeout?: number;
  };
  steps: Step[];
  pool?: string[];
  seed?: number;
  trace?: boolean;
}
export type Counters = Record<string, [number, number]>;
export interface Observed {
  name: string;
  choices: { client: string; sport: number; dest: string | null; state?: string | null; after?: Counters }[];
  closes?: { step: number; state?: string | null; after: Counters }[];
  waits?: { step: number; after: Counters }[];
  counters?: Record<string, { active: number; inactive: number }>;
  listOrder?: string[];
}
// a random scenario's transcript: one line per step, and the end (see random-scenarios.cjs and driver.cjs)
export interface Traced {
  name: string;
  seed: number;
  obs: string[];
  end: string;
  stepErrors?: unknown[];
}

export const key = (af6: boolean, addr: string, port: number) => (af6 ? `[${addr}]:${port}` : `${addr}:${port}`);
const destKey = (d: DestInfo) => key(d.af === 10, d.addr, d.port);

export function counters(c: Core, svc: number): Counters {
  const out: Counters = {};
  for (const d of c.service(svc).dests) out[destKey(d)] = [d.activeConns, d.inactConns];
  return out;
}

export const generate = (seed: number): Scenario => random.generate(seed);

export interface StepResult {
  op: string;
  ok?: boolean; // add/edit/del: accepted
  dest?: string | null; // connect: the chosen destination (null: refused)
  state?: string | null; // connect: the new entry's state; close: the entry's state after the FIN
}

// Runs the scenario; onStep sees each step's result with the Core, to read counters or the list from.
export async function run(sc: Scenario, onStep: (i: number, r: StepResult, c: Core, svc: number) => void) {
  const c = await Core.load({ connCapacity: 1 << 14 });
  const s = sc.service;
  const v6 = s.vip.includes(":");
  const onePacket = s.proto === "udp" && s.flags.includes("ops");
  if (s.udpTimeout) c.setTimeouts(0, 0, s.udpTimeout);
  const svc = c.addService({
    proto: s.proto,
    addr: s.vip,
    port: s.port,
    scheduler: s.scheduler,
    flags: s.flags,
    persistent: s.persistent ?? undefined,
    netmask: s.netmask ?? undefined,
  });
  let now = 1000;
  for (let i = 0; i < sc.steps.length; i++) {
    const st = sc.steps[i];
    now += 40;
    const spec = { addr: st.dest!, port: st.port!, weight: st.weight, upperThreshold: st.u, lowerThreshold: st.l };
    if (st.op === "add" || st.op === "edit" || st.op === "del") {
      let ok = true;
      try {
        if (st.op === "add") c.addDest(svc, spec);
        else if (st.op === "edit") c.editDest(svc, spec);
        else c.deleteDest(svc, st.dest!, st.port!);
      } catch {
        ok = false;
      }
      onStep(i, { op: st.op, ok }, c, svc);
    } else if (st.op === "connect") {
      let dest: string | null = null,
        state: string | null = null;
      const before = onePacket ? c.service(svc).dests.map((d) => d.conns) : [];
      const flags = s.proto === "tcp" ? F.SYN : 0;
      const r = c.packet("in", s.proto, st.client!, st.sport!, s.vip, s.port, { flags, now });
      if (r.verdict === "forward") {
        const conn = c.conn(r.conn) ?? null;
        if (conn && !conn.template) {
          dest = key(v6, conn.daddr, conn.dport);
          if (st.answer && s.proto === "tcp") {
            c.packet("out", "tcp", conn.daddr, conn.dport, st.client!, st.sport!, { flags: F.SYN | F.ACK, now });
            c.packet("in", "tcp", st.client!, st.sport!, s.vip, s.port, { flags: F.ACK, now });
          }
          state = c.conn(r.conn)!.state;
        } else if (onePacket) {
          // a one-packet entry is freed at once: the destination whose Conns grew took it (as the driver sees it)
          const grew = c.service(svc).dests.filter((d, k) => d.conns > (before[k] ?? 0n));
          if (grew.length === 1) {
            dest = destKey(grew[0]);
            state = "UDP";
          }
        }
      }
      onStep(i, { op: "connect", dest, state }, c, svc);
    } else if (st.op === "close") {
      // the client's FIN; the server answers with its own only if the FIN reached it (a connection to a
      // deleted real server has its packets dropped, so it stays as it was, as in the kernel); a close of
      // a connection that was refused has nothing to close
      const conn = c.conns().find((x) => !x.template && x.caddr === st.client && x.cport === st.sport);
      let state: string | null = null;
      const fin = conn && c.packet("in", "tcp", st.client!, st.sport!, s.vip, s.port, { flags: F.FIN | F.ACK, now });
      if (conn && fin && fin.verdict === "forward") {
        c.packet("out", "tcp", conn.daddr, conn.dport, st.client!, st.sport!, { flags: F.FIN | F.ACK, now });
        c.packet("in", "tcp", st.client!, st.sport!, s.vip, s.port, { flags: F.ACK, now });
        state = c.conn(conn.index)?.state ?? null;
      } else if (conn) {
        state = c.conn(conn.index)?.state ?? null;
        // the driver resets a connection whose FIN was dropped (test/kernel/driver.cjs says why)
        c.packet("in", "tcp", st.client!, st.sport!, s.vip, s.port, { flags: F.RST | F.ACK, now });
      }
      onStep(i, { op: "close", state }, c, svc);
    } else if (st.op === "wait") {
      now += st.ms!;
      c.advance(now);
      onStep(i, { op: "wait" }, c, svc);
    } else throw new Error(`${sc.name} step ${i}: unknown op ${st.op}`);
  }
  return { core: c, svc };
}

// The hand-written scenarios' replay: a callback per connection (destination, state, counters), per close
// and per wait; returns the final counters and the list order.
export async function replay(
  sc: Scenario,
  onChoice: (i: number, got: string | null, after: Counters, state: string | null) => void,
  onClose: (i: number, after: Counters, state: string | null) => void,
  onWait: (i: number, after: Counters) => void = () => {},
) {
  let n = 0,
    closes = 0,
    waits = 0;
  const { core, svc } = await run(sc, (_i, r, c, id) => {
    if (r.op === "connect") onChoice(n++, r.dest ?? null, counters(c, id), r.state ?? null);
    else if (r.op === "close") onClose(closes++, counters(c, id), r.state ?? null);
    else if (r.op === "wait") onWait(waits++, counters(c, id));
  });
  return { counters: counters(core, svc), listOrder: core.service(svc).dests.map(destKey) };
}

// A random scenario's transcript as the driver writes it from the kernel: one line per step, and the end.
export async function trace(sc: Scenario): Promise<{ obs: string[]; end: string }> {
  const index = new Map(
    (sc.pool ?? []).map((p, k) => {
      const [a, port] = p.split(" ");
      return [key(a.includes(":"), a, +port), k];
    }),
  );
  const idx = (d: string | null | undefined) =>
    d == null ? "-" : index.has(d) ? index.get(d)!.toString(16) : `<${d}>`;
  const list = (c: Core, svc: number, withWeight: boolean) =>
    random.listText(
      c.service(svc).dests.map((d) => ({
        i: index.get(destKey(d)) ?? -1,
        weight: d.weight,
        active: d.activeConns,
        inactive: d.inactConns,
      })),
      withWeight,
    );
  const obs: string[] = [];
  const { core, svc } = await run(sc, (_i, r, c, id) => {
    if (r.op === "connect") obs.push(`${idx(r.dest)} ${random.stateCode(r.state)} ${list(c, id, false)}`);
    else if (r.op === "close") obs.push(`${random.stateCode(r.state)} ${list(c, id, false)}`);
    else if (r.op === "wait") obs.push(list(c, id, false));
    else obs.push(`${r.ok ? "ok" : "refused"} ${list(c, id, true)}`);
  });
  const dests = core.service(svc).dests.map((d) => `${idx(destKey(d))}:${d.conns}:${d.persistConns}`);
  // the service's entries, as the driver reads them: an invalidated template (virtual port 65535) is left out
  const s = sc.service;
  const lines = core
    .conns()
    .filter((x) => x.vaddr === s.vip && x.vport === s.port)
    .map(
      (x) =>
        `${x.proto.toUpperCase()} ${x.caddr} ${x.cport} ${x.vaddr} ${x.vport} ` + `${x.daddr} ${x.dport} ${x.state}`,
    );
  return { obs, end: `${dests.join(",") || "."} ${random.tableText(lines)}` };
}

const json = (x: unknown) => JSON.stringify(x);

// Every difference between a hand-written scenario's kernel transcript and the WASM replay: each connection's
// destination, state and counters, each close's state and counters, the counters after each wait, the final
// counters and the final list order.
export async function compareObserved(sc: Scenario, obs: Observed): Promise<string[]> {
  const out: string[] = [];
  const final = await replay(
    sc,
    (i, got, after, state) => {
      const want = obs.choices[i];
      if (!want) out.push(`#${i}: not in the transcript`);
      else if (got !== want.dest) out.push(`#${i} ${want.client}:${want.sport}: kernel ${want.dest}, wasm ${got}`);
      else if ("state" in want && state !== want.state) out.push(`#${i} state: kernel ${want.state}, wasm ${state}`);
      else if (want.after && json(after) !== json(want.after)) {
        out.push(`#${i} counters: kernel ${json(want.after)}, wasm ${json(after)}`);
      }
    },
    (i, after, state) => {
      const want = obs.closes?.[i];
      if (!want) out.push(`close #${i}: not in the transcript`);
      else if ("state" in want && state !== (want.state ?? null)) {
        out.push(`close #${i} state: kernel ${want.state}, wasm ${state}`);
      } else if (json(after) !== json(want.after)) {
        out.push(`close #${i} counters: kernel ${json(want.after)}, wasm ${json(after)}`);
      }
    },
    (i, after) => {
      const want = obs.waits?.[i];
      if (!want || json(after) !== json(want.after)) {
        out.push(`wait #${i} counters: kernel ${json(want?.after)}, wasm ${json(after)}`);
      }
    },
  );
  if (obs.counters) {
    const want: Counters = Object.fromEntries(
      Object.entries(obs.counters).map(([k, v]) => [k, [v.active, v.inactive]]),
    );
    const sorted = (o: Counters) => json(Object.entries(o).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
    // ipvsadm -Ln lists destinations sorted; the order is compared on its own below
    if (sorted(final.counters) !== sorted(want)) {
      out.push(`final counters: kernel ${json(want)}, wasm ${json(final.counters)}`);
    }
  }
  if (obs.listOrder && json(final.listOrder) !== json(obs.listOrder)) {
    out.push(`list order: kernel ${json(obs.listOrder)}, wasm ${json(final.listOrder)}`);
  }
  return out;
}

// The first difference between a random scenario's kernel transcript and the WASM replay, or null.
export async function compareTraced(t: Traced): Promise<{ sc: Scenario; diff: string | null }> {
  const sc = generate(t.seed);
  if (sc.name !== t.name) return { sc, diff: `seed ${t.seed} generates ${sc.name}, the transcript is ${t.name}` };
  const got = await trace(sc);
  const k = got.obs.findIndex((o, i) => o !== t.obs[i]);
  if (k >= 0 || got.obs.length !== t.obs.length) {
    const at = k >= 0 ? k : Math.min(got.obs.length, t.obs.length);
    return {
      sc,
      diff:
        `${t.name} step ${at} ${json(sc.steps[at])}\n    kernel ${t.obs[at]}\n` +
        `    wasm   ${got.obs[at]}` +
        (at > 0 ? `\n    (step ${at - 1}: ${t.obs[at - 1]})` : ""),
    };
  }
  if (got.end !== t.end) {
    return {
      sc,
      diff:
        `${t.name} end (destination Conns:PersistConn, connection table)\n    kernel ${t.end}\n` +
        `    wasm   ${got.end}`,
    };
  }
  return { sc, diff: null };
}
