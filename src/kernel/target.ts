// KernelTarget: the IpvsTarget (src/model/target.ts) that drives kernel IPVS over generic netlink.
// connections() reads /proc/net/ip_vs_conn (what ipvsadm -Lnc reads too): IPVS has no netlink dump of
// its connection table.
import { readFile } from "node:fs/promises";
import type { VirtualService, RealServer, IpvsTimeouts } from "../model/types.ts";
import type { IpvsTarget, TargetInfo, ServiceStatus, ConnectionEntry } from "../model/target.ts";
import { IpvsClient, type ClientOptions } from "./client.ts";
import { ntop6 } from "../model/inet.ts";
import type { DaemonState, SyncDaemon } from "../model/daemon.ts";

export class KernelTarget implements IpvsTarget {
  readonly name = "kernel";
  private constructor(readonly client: IpvsClient) {}

  /** Opens the netlink client; rejects with NoIpvsError (one line) on a kernel without IPVS. */
  static async open(o: ClientOptions = {}): Promise<KernelTarget> {
    return new KernelTarget(await IpvsClient.open(o));
  }

  info(): Promise<TargetInfo> {
    return this.client.info();
  }
  async services(): Promise<ServiceStatus[]> {
    return (await this.client.dump()).map(({ rawFlags: _f, timeoutSec: _t, netmaskWire: _n, ...s }) => s);
  }
  addService(s: VirtualService): Promise<void> {
    return this.client.addService(s);
  }
  editService(s: VirtualService): Promise<void> {
    return this.client.editService(s);
  }
  deleteService(s: VirtualService): Promise<void> {
    return this.client.deleteService(s);
  }
  flush(): Promise<void> {
    return this.client.flush();
  }
  addRealServer(s: VirtualService, r: RealServer): Promise<void> {
    return this.client.addDest(s, r);
  }
  editRealServer(s: VirtualService, r: RealServer): Promise<void> {
    return this.client.editDest(s, r);
  }
  deleteRealServer(s: VirtualService, r: Pick<RealServer, "addr" | "port">): Promise<void> {
    return this.client.deleteDest(s, r);
  }
  zero(s?: VirtualService): Promise<void> {
    return this.client.zero(s);
  }
  timeouts(): Promise<IpvsTimeouts> {
    return this.client.getConfig();
  }
  setTimeouts(t: IpvsTimeouts): Promise<void> {
    return this.client.setConfig(t);
  }
  async connections(): Promise<ConnectionEntry[]> {
    return parseIpVsConn(await readFile("/proc/net/ip_vs_conn", "utf8"));
  }
  daemons(): Promise<SyncDaemon[]> {
    return this.client.daemons();
  }
  startDaemon(d: SyncDaemon): Promise<void> {
    return this.client.startDaemon(d);
  }
  stopDaemon(state: DaemonState): Promise<void> {
    return this.client.stopDaemon(state);
  }
  async close(): Promise<void> {
    this.client.close();
  }
}

// /proc/net/ip_vs_conn:
//   Pro FromIP   FPrt ToIP     TPrt DestIP   DPrt State       Expires PEName PEData
//   TCP 0A020001 9C40 0A000001 0050 0A010002 1F90 ESTABLISHED     899
// IPv6 entries print the addresses as text (%pI6: eight 4-digit groups), ports as hex, expiry in seconds.
export function parseIpVsConn(text: string): ConnectionEntry[] {
  const out: ConnectionEntry[] = [];
  for (const line of text.split("\n")) {
    const f = line.trim().split(/\s+/);
    if (f.length < 9 || f[0] === "Pro") continue;
    const addr = (s: string) =>
      s.includes(":") ? v6(s) : [0, 2, 4, 6].map((i) => parseInt(s.slice(i, i + 2), 16)).join(".");
    const e: ConnectionEntry = {
      protocol: f[0],
      state: f[7],
      expiresMs: Number(f[8]) * 1000,
      client: { addr: addr(f[1]), port: parseInt(f[2], 16) },
      virtual: { addr: addr(f[3]), port: parseInt(f[4], 16) },
      dest: { addr: addr(f[5]), port: parseInt(f[6], 16) },
    };
    // persistence templates print their own states, NONE or ASSURED (once a connection they control is
    // established, ip_vs_control_assure_ct); fwmark ones have protocol IP. /proc prints no template flag.
    if (f[7] === "NONE" || f[7] === "ASSURED" || f[0] === "IP") e.template = true;
    out.push(e);
  }
  return out;
}

// /proc prints IPv6 as eight 4-digit groups; shown as inet_ntop would
function v6(s: string): string {
  const b = new Uint8Array(16);
  s.split(":").forEach((g, i) => {
    const v = parseInt(g, 16);
    b[2 * i] = v >> 8;
    b[2 * i + 1] = v & 0xff;
  });
  return ntop6(b);
}
