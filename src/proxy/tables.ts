// The WASM core's tables kept equal to a desired state: services and destinations are added, edited and
// deleted by diff (never rebuilt), so the connection table, persistence templates and scheduler state
// survive a reload. Health overlays the configured weights: a destination that is down is applied with
// weight 0 (quiesce) or left out (remove).
import { AF_INET, AF_INET6, Core, SVC_F } from "../core/index.ts";
import type { DesiredState, RealServer, VirtualService } from "../model/types.ts";
import { serviceKey, realServerKey } from "../model/types.ts";
import { Slicer } from "./slice.ts";

export interface AppliedService {
  key: string;
  id: number;
  spec: VirtualService;
}
export type DownAction = "quiesce" | "remove";

export interface ApplyResult {
  addedServices: AppliedService[];
  removedServices: string[];
  removedDests: string[]; // `${svcKey}|${rsKey}` no longer in the core
  addedDests: string[];
}

const svcSpec = (s: VirtualService) => ({
  proto: (s.protocol ?? "tcp") as "tcp" | "udp",
  addr: s.addr,
  port: s.port,
  fwmark: s.fwmark,
  af: s.fwmark ? (s.family === "inet6" ? AF_INET6 : AF_INET) : undefined,
  scheduler: s.scheduler,
  flags: s.flags,
  persistent: s.persistent,
  netmask: s.netmask,
});

export function destKey(svcKey: string, r: Pick<RealServer, "addr" | "port">): string {
  return `${svcKey}|${realServerKey(r)}`;
}

export class Tables {
  readonly services = new Map<string, AppliedService>();
  readonly byId = new Map<number, AppliedService>();
  // fwd: what ipvsadm's -m means (socket mode connects itself: masq; packet mode: proxy.forward).
  // perDest: a real server's own "fullnat" holds (packet mode); socket mode forwards every one alike.
  constructor(
    readonly core: Core,
    readonly fwd: "masq" | "fullnat" = "masq",
    readonly perDest = false,
  ) {}

  /** How real server r forwards in the core. */
  fwdOf(r: Pick<RealServer, "fwd">): "masq" | "fullnat" {
    return this.perDest && r.fwd === "fullnat" ? "fullnat" : this.fwd;
  }

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
    const res: ApplyResult = { addedServices: [], removedServices: [], removedDests: [], addedDests: [] };
    const want = new Map(state.services.map((s) => [serviceKey(s), s]));
    for (const [key, a] of this.services) if (!want.has(key)) this.removeService(key, a, res);
    for (const [key, s] of want) this.applyService(key, s, down, res);
    if (state.timeouts) this.core.setTimeouts(state.timeouts.tcp, state.timeouts.tcpfin, state.timeouts.udp);
    return res;
  }

  /** apply, in stretches that yield to the event loop (a restore of 10k services changes them all): the
   * tables are between the two states meanwhile, each service either as it was or as it will be.
   * changedOnly: a service whose spec is the object applied last is left alone, without reading it back
   * from the core (a change shares what it leaves alone with the state before; health changes apply all). */
  async applyInSlices(
    state: DesiredState,
    down: (key: string) => DownAction | undefined = () => undefined,
    slicer = new Slicer(),
    changedOnly = false,
  ): Promise<ApplyResult> {
    const res: ApplyResult = { addedServices: [], removedServices: [], removedDests: [], addedDests: [] };
    const want = new Map<string, VirtualService>();
    for (const s of state.services) {
      want.set(serviceKey(s), s);
      await slicer.pause();
    }
    for (const [key, a] of [...this.services]) {
      if (!want.has(key)) this.removeService(key, a, res);
      await slicer.pause();
    }
    for (const [key, s] of want) {
      if (!changedOnly || this.services.get(key)?.spec !== s) this.applyService(key, s, down, res);
      await slicer.pause();
    }
    if (state.timeouts) this.core.setTimeouts(state.timeouts.tcp, state.timeouts.tcpfin, state.timeouts.udp);
    return res;
  }

  private removeService(key: string, a: AppliedService, res: ApplyResult) {
    for (const d of this.core.service(a.id).dests) res.removedDests.push(destKey(key, d));
    this.core.deleteService(a.id);
    this.services.delete(key);
    this.byId.delete(a.id);
    res.removedServices.push(key);
  }

  // Adds or edits one service and its destinations to match s under the health overlay.
  private applyService(
    key: string,
    s: VirtualService,
    down: (key: string) => DownAction | undefined,
    res: ApplyResult,
  ) {
    const core = this.core;
    let a = this.services.get(key);
    const fresh = !a; // just added: no destinations to read back
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
      if (
        info.scheduler !== s.scheduler ||
        (info.flags & ~SVC_F.hashed) !== flags ||
        (s.persistent && info.timeout !== timeout) ||
        info.netmask !== nm
      )
        core.editService(a.id, svcSpec(s));
      a.spec = s;
    }
    const eff = Tables.effective(s, down);
    const dests = fresh ? [] : core.service(a.id).dests;
    const have = new Map(dests.map((d) => [realServerKey(d), d]));
    const keep = new Set<string>();
    for (const r of eff) {
      const rk = realServerKey(r);
      keep.add(rk);
      const d = have.get(rk);
      const spec = {
        addr: r.addr,
        port: r.port,
        weight: r.weight,
        upperThreshold: r.upperThreshold,
        lowerThreshold: r.lowerThreshold,
        fwd: this.fwdOf(r),
      };
      if (!d) {
        core.addDest(a.id, spec);
        res.addedDests.push(`${key}|${rk}`);
      } else if (
        d.weight !== r.weight ||
        d.upperThreshold !== r.upperThreshold ||
        d.lowerThreshold !== r.lowerThreshold ||
        d.fwd !== spec.fwd
      )
        core.editDest(a.id, spec);
    }
    for (const [rk, d] of have)
      if (!keep.has(rk)) {
        core.deleteDest(a.id, d.addr, d.port);
        res.removedDests.push(`${key}|${rk}`);
      }
  }
}
