// What the proxy needs from a forwarder, socket mode (socket.ts) or packet mode (packet.ts).
import type { VirtualService } from "../model/types.ts";

export interface DestStats {
  inPkts: number;
  outPkts: number;
  inBytes: number;
  outBytes: number;
}
export interface Decision {
  proto: string;
  caddr: string;
  cport: number;
  vaddr: string;
  vport: number;
  daddr: string;
  dport: number;
  retried?: boolean;
}

export interface Forwarder {
  readonly mode: "socket" | "packet";
  readonly stats: Map<string, DestStats>; // per destination key (tables.ts destKey)
  readonly drops: Map<string, number>; // refusals and drops by reason
  readonly decisions: Decision[]; // the last scheduling decisions (when asked to keep them)
  flowsByDest(): Map<string, number>; // open flows per destination key (also refreshes stats)
  sync(services: VirtualService[]): Promise<{ key: string; error: string }[]>;
  markRemoved(destKeys: string[], added: string[]): void;
  tick(): void;
  now(): number; // the core's clock (ms)
  status(): Record<string, unknown>;
  close(): Promise<void>;
}
