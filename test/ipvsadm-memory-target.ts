// TEST DOUBLE, used only by test/ipvsadm-cli.test.ts: an in-memory IpvsTarget that keeps tables the way
// kernel IPVS does (destinations newest first, 0 timeouts keep the current value) and refuses what it refuses
// with the kernel's errno in `code` (EEXIST, ESRCH, ENOENT, ERANGE, EINVAL), so the CLI can be exercised end
// to end without a kernel. Not a data plane: no connections are made, counters stay as set.
import type {
  ConnectionEntry,
  IpvsTarget,
  RealServerStatus,
  ServiceStatus,
  Stats,
  TargetInfo,
} from "../src/model/target.ts";
import type { IpvsTimeouts, RealServer, VirtualService } from "../src/model/types.ts";
import { realServerKey, serviceKey } from "../src/model/types.ts";
import { canonicalAddr, parseLiteral } from "../src/model/inet.ts";
import { KERNEL_SCHEDULERS } from "../src/model/schedulers.ts";

const zero = (): Stats => ({
  conns: 0n,
  inPkts: 0n,
  outPkts: 0n,
  inBytes: 0n,
  outBytes: 0n,
  cps: 0n,
  inPps: 0n,
  outPps: 0n,
  inBps: 0n,
  outBps: 0n,
});
const fail = (code: string, message: string): never => {
  throw Object.assign(new Error(message), { code });
};
const key = (s: Omit<VirtualService, "realServers">) =>
  serviceKey({ ...s, addr: s.addr ? canonicalAddr(s.addr) : s.addr });
const rkey = (r: Pick<RealServer, "addr" | "port">) => realServerKey({ addr: canonicalAddr(r.addr), port: r.port });

function unicast(addr: string): boolean {
  const p = parseLiteral(addr);
  if (!p) return false;
  return p.af === 2
    ? !(p.bytes[0] >= 224 && p.bytes[0] < 240) && !p.bytes.slice(0, 4).every((b) => b === 255)
    : p.bytes[0] !== 0xff;
}

export class MemoryIpvsTarget implements IpvsTarget {
  readonly name = "memory (test double)";
  table: ServiceStatus[] = [];
  conns: ConnectionEntry[] = [];
  t: IpvsTimeouts = { tcp: 900, tcpfin: 120, udp: 300 };
  calls: string[] = [];

  async info(): Promise<TargetInfo> {
    return { version: "1.2.1", connTableSize: 4096 };
  }
  async services(): Promise<ServiceStatus[]> {
    return structuredClone(this.table);
  }
  private find(s: Omit<VirtualService, "realServers">): ServiceStatus | undefined {
    return this.table.find((x) => key(x) === key(s));
  }

  async addService(s: VirtualService): Promise<void> {
    this.calls.push(`addService ${key(s)}`);
    if (this.find(s)) fail("EEXIST", "service exists");
    if (!KERNEL_SCHEDULERS.includes(s.scheduler) || (s.pe && s.pe !== "sip")) fail("ENOENT", "no scheduler");
    const { realServers: _, ...rest } = s;
    this.table.push({
      ...structuredClone(rest),
      addr: s.addr ? canonicalAddr(s.addr) : undefined,
      realServers: [],
      stats: zero(),
    });
    if (!s.addr) delete this.table[this.table.length - 1].addr;
  }
  async editService(s: VirtualService): Promise<void> {
    this.calls.push(`editService ${key(s)}`);
    const cur = this.find(s);
    if (!cur) return fail("ESRCH", "no such service");
    if (!KERNEL_SCHEDULERS.includes(s.scheduler)) fail("ENOENT", "no scheduler");
    const { realServers: _, ...rest } = structuredClone(s);
    for (const k of ["persistent", "netmask", "pe"] as const) delete cur[k];
    Object.assign(cur, rest, { addr: cur.addr });
    if (!cur.addr) delete cur.addr;
  }
  async deleteService(s: VirtualService): Promise<void> {
    this.calls.push(`deleteService ${key(s)}`);
    const i = this.table.findIndex((x) => key(x) === key(s));
    if (i < 0) fail("ESRCH", "no such service");
    this.table.splice(i, 1);
  }
  async flush(): Promise<void> {
    this.calls.push("flush");
    this.table = [];
  }
  async addRealServer(s: VirtualService, r: RealServer): Promise<void> {
    this.calls.push(`addRealServer ${key(s)} ${rkey(r)}`);
    const svc = this.find(s);
    if (!svc) return fail("ESRCH", "no such service");
    if (!unicast(r.addr)) fail("EINVAL", "not unicast");
    if (svc.realServers.some((x) => rkey(x) === rkey(r))) fail("EEXIST", "dest exists");
    if (r.lowerThreshold > r.upperThreshold) fail("ERANGE", "thresholds");
    const d: RealServerStatus = {
      ...structuredClone(r),
      addr: canonicalAddr(r.addr),
      activeConns: 0,
      inactConns: 0,
      persistConns: 0,
      stats: zero(),
    };
    svc.realServers.unshift(d); // the kernel's list order: newest first
  }
  async editRealServer(s: VirtualService, r: RealServer): Promise<void> {
    this.calls.push(`editRealServer ${key(s)} ${rkey(r)}`);
    const svc = this.find(s);
    if (!svc) return fail("ESRCH", "no such service");
    const d = svc.realServers.find((x) => rkey(x) === rkey(r));
    if (!d) return fail("ENOENT", "no such dest");
    if (r.lowerThreshold > r.upperThreshold) fail("ERANGE", "thresholds");
    for (const k of ["tunType", "tunPort", "tunFlags"] as const) delete d[k];
    Object.assign(d, structuredClone(r), { addr: d.addr });
  }
  async deleteRealServer(s: VirtualService, r: Pick<RealServer, "addr" | "port">): Promise<void> {
    this.calls.push(`deleteRealServer ${key(s)} ${rkey(r)}`);
    const svc = this.find(s);
    if (!svc) return fail("ESRCH", "no such service");
    const i = svc.realServers.findIndex((x) => rkey(x) === rkey(r));
    if (i < 0) fail("ENOENT", "no such dest");
    svc.realServers.splice(i, 1);
  }
  async zero(s?: VirtualService): Promise<void> {
    this.calls.push(`zero ${s ? key(s) : "all"}`);
    const list = s ? [this.find(s) ?? fail("ESRCH", "no such service")] : this.table;
    for (const x of list) {
      x.stats = zero();
      for (const d of x.realServers) d.stats = zero();
    }
  }
  async timeouts(): Promise<IpvsTimeouts> {
    return { ...this.t };
  }
  async setTimeouts(t: IpvsTimeouts): Promise<void> {
    this.calls.push(`setTimeouts ${t.tcp} ${t.tcpfin} ${t.udp}`);
    this.t = { tcp: t.tcp || this.t.tcp, tcpfin: t.tcpfin || this.t.tcpfin, udp: t.udp || this.t.udp };
  }
  async connections(): Promise<ConnectionEntry[]> {
    return structuredClone(this.conns);
  }
  async close(): Promise<void> {}
}
