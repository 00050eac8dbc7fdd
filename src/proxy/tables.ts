// The WASM core's tables kept equal to a desired state: services and destinations are added, edited and
// deleted by diff (never rebuilt), so the connection table, persistence templates and scheduler state
// survive a reload. Health overlays the configured weights: a destination that is down is applied with
// weight 0 (quiesce) or left out (remove).
import { Core, SVC_F } from "../core/index.ts";
import type { DesiredState, RealServer, VirtualService } from "../model/types.ts";
import { serviceKey, realServerKey } from "../model/types.ts";

export interface AppliedService { key: string; id: number; spec: VirtualService }
export type DownAction = "quiesce" | "remove";

export interface ApplyResult {
  addedServices: AppliedService[];
  removedServices: string[];
  removedDests: string[];      // `${svcKey}|${rsKey}` no longer in the core
  addedDests: string[];
}

const svcSpec = (s: VirtualService) => ({
  proto: (s.protocol ?? "tcp") as "tcp" | "udp", addr: s.addr, port: s.port, scheduler: s.scheduler, flags: s.flags,
  persistent: s.persistent, netmask: s.netmask,
});

export function destKey(svcKey: string, r: Pick<RealServer, "addr" | "port">): string { return `${svcKey}|${realServerKey(r)}`; }

export class Tables {
  readonly services = new Map<string, AppliedService>();
  readonly byId = new Map<number, AppliedService>();
  // fwd: how every destination forwards (socket mode connects itself: masq; packet mode: fullnat)
  constructor(readonly core: Core, readonly fwd: "masq" | "fullnat" = "masq") {}

  // Effective real servers of a service under the health overlay.
  static effective(s: VirtualService, down: (key: string) => DownAction | undefined): RealServer[] {
    const key = serviceKey(s);
    const out: RealServer[] = [];
    for (const r of s.realServers) {
      const d = down(destKey(key, r));
      if (d === "remove") continue;
      out.push(d === "quiesce" ? { ...r, weight: 0 } : r);
    }
    return out;
  }

  apply(state: DesiredState, down: (key: string) => DownAction | undefined = () => undefined): ApplyResult {
    const core = this.core;
    const res: ApplyResult = { addedServices: [], removedServices: [], removedDests: [], addedDests: [] };
    const want = new Map(state.services.map((s) => [serviceKey(s), s]));
    for (const [key, a] of this.services) {
      if (want.has(key)) continue;
      for (const d of core.service(a.id).dests) res.removedDests.push(destKey(key, d));
      core.deleteService(a.id);
      this.services.delete(key);
      this.byId.delete(a.id);
      res.removedServices.push(key);
    }
    for (const [key, s] of want) {
      let a = this.services.get(key);
      if (!a) {
        const id = core.addService(svcSpec(s));
        a = { key, id, spec: s };
        this.services.set(key, a);
        this.byId.set(id, a);
        res.addedServices.push(a);
      } else {
        const info = core.service(a.id);
        const flags = Core.serviceFlags(svcSpec(s));
        const nm = Core.netmaskValue(info.af, s.netmask);
        const timeout = s.persistent ? s.persistent : 0;
        if (info.scheduler !== s.scheduler || (info.flags & ~SVC_F.hashed) !== flags || (s.persistent && info.timeout !== timeout) || info.netmask !== nm)
          core.editService(a.id, svcSpec(s));
        a.spec = s;
      }
      const eff = Tables.effective(s, down);
      const have = new Map(core.service(a.id).dests.map((d) => [realServerKey(d), d]));
      const keep = new Set<string>();
      for (const r of eff) {
        const rk = realServerKey(r);
        keep.add(rk);
        const d = have.get(rk);
        const spec = { addr: r.addr, port: r.port, weight: r.weight, upperThreshold: r.upperThreshold, lowerThreshold: r.lowerThreshold, fwd: this.fwd };
        if (!d) { core.addDest(a.id, spec); res.addedDests.push(`${key}|${rk}`); }
        else if (d.weight !== r.weight || d.upperThreshold !== r.upperThreshold || d.lowerThreshold !== r.lowerThreshold) core.editDest(a.id, spec);
      }
      for (const [rk, d] of have) if (!keep.has(rk)) { core.deleteDest(a.id, d.addr, d.port); res.removedDests.push(`${key}|${rk}`); }
    }
    if (state.timeouts) core.setTimeouts(state.timeouts.tcp, state.timeouts.tcpfin, state.timeouts.udp);
    return res;
  }
}
