// What the ipvsadm-speaking CLI and the reconciler drive: kernel IPVS over netlink (src/kernel), or the
// userspace data plane (src/proxy, over its control socket). Both report the same shapes.
import type { VirtualService, RealServer, IpvsTimeouts } from "./types.ts";
import type { DaemonState, SyncDaemon } from "./daemon.ts";

export interface Stats {
  conns: bigint;
  inPkts: bigint;
  outPkts: bigint;
  inBytes: bigint;
  outBytes: bigint;
  cps: bigint;
  inPps: bigint;
  outPps: bigint;
  inBps: bigint;
  outBps: bigint; // rates (--rate)
}

export interface RealServerStatus extends RealServer {
  activeConns: number;
  inactConns: number;
  persistConns: number;
  stats: Stats;
}

export interface ServiceStatus extends Omit<VirtualService, "realServers"> {
  realServers: RealServerStatus[]; // in the target's list order (the kernel's: newest first)
  stats: Stats;
}

export interface ConnectionEntry {
  protocol: string; // "TCP", "UDP", "SCTP", "IP" (fwmark templates)
  expiresMs: number;
  state: string; // e.g. ESTABLISHED, SYN_RECV, UDP, NONE
  client: { addr: string; port: number };
  virtual: { addr: string; port: number };
  dest: { addr: string; port: number };
  template?: boolean;
}

export interface TargetInfo {
  version: string;
  connTableSize: number;
}

// Every call rejects with an Error whose message names what failed and why (e.g. the kernel's errno).
export interface IpvsTarget {
  readonly name: string; // "kernel" or "proxy"
  info(): Promise<TargetInfo>;
  services(): Promise<ServiceStatus[]>;
  addService(s: VirtualService): Promise<void>;
  editService(s: VirtualService): Promise<void>;
  deleteService(s: VirtualService): Promise<void>;
  flush(): Promise<void>;
  addRealServer(s: VirtualService, r: RealServer): Promise<void>;
  editRealServer(s: VirtualService, r: RealServer): Promise<void>;
  deleteRealServer(s: VirtualService, r: Pick<RealServer, "addr" | "port">): Promise<void>;
  zero(s?: VirtualService): Promise<void>;
  timeouts(): Promise<IpvsTimeouts>;
  setTimeouts(t: IpvsTimeouts): Promise<void>;
  connections(): Promise<ConnectionEntry[]>;
  close(): Promise<void>;
  // the connection sync daemon (a target without one leaves these out, and the CLI says so)
  daemons?(): Promise<SyncDaemon[]>;
  startDaemon?(d: SyncDaemon): Promise<void>;
  stopDaemon?(state: DaemonState): Promise<void>;
}
