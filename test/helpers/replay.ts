// Replays a kernel scenario (test/fixtures/kernel/scenarios.json format) through the WASM data plane,
// packet by packet, reporting each connection's chosen destination and the counters after each step.
import { Core, TCP_FLAGS as F } from "../../src/core/index.ts";

export interface Step { op: string; dest?: string; port?: number; weight?: number; u?: number; l?: number; client?: string; sport?: number; answer?: boolean }
export interface Scenario {
  name: string;
  service: { proto: "tcp" | "udp"; vip: string; port: number; scheduler: string; flags: string[]; persistent: number | null; netmask: string | null };
  steps: Step[];
}
export interface Observed {
  name: string;
  choices: { client: string; sport: number; dest: string | null; after?: Record<string, [number, number]> }[];
  closes?: { step: number; after: Record<string, [number, number]> }[];
  counters?: Record<string, { active: number; inactive: number }>;
}

export const key = (af6: boolean, addr: string, port: number) => (af6 ? `[${addr}]:${port}` : `${addr}:${port}`);

export function counters(c: Core, svc: number): Record<string, [number, number]> {
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
      // the client's FIN; the server answers with its own only if the FIN reached it (a connection to a
      // deleted real server has its packets dropped, so it stays as it was, as in the kernel); a close of
      // a connection that was refused has nothing to close
      const conn = c.conns().find((x) => !x.template && x.caddr === st.client && x.cport === st.sport);
      if (conn && c.packet("in", "tcp", st.client!, st.sport!, s.vip, s.port, { flags: F.FIN | F.ACK, now }).verdict === "forward") {
        c.packet("out", "tcp", conn.daddr, conn.dport, st.client!, st.sport!, { flags: F.FIN | F.ACK, now });
        c.packet("in", "tcp", st.client!, st.sport!, s.vip, s.port, { flags: F.ACK, now });
      } else if (conn) {
        // the driver resets a connection whose FIN was dropped (test/kernel/driver.cjs says why)
        c.packet("in", "tcp", st.client!, st.sport!, s.vip, s.port, { flags: F.RST | F.ACK, now });
      }
      onClose(closes++, counters(c, svc));
    }
  }
  return counters(c, svc);
}

