// The proxy's connection sync daemons (issue 20), speaking the kernel's sync protocol so a kernel director
// and a wasmvs director can stand in for each other: a backup joins the multicast group on its interface
// and hands each datagram to the core (assembly/sync/codec.ts checks it and creates the entries); a master
// sends the messages the core's data plane fills as connections change. Same defaults as the kernel's
// daemons (ip_vs_sync.c): group 224.0.0.81, port 8848, TTL 1, syncid 0, a master's messages at most
// 1472 bytes (1500 - IPv4 - UDP) and sent when full or 2 s after their first entry.
import dgram from "node:dgram";
import { isIPv6 } from "node:net";
import { networkInterfaces } from "node:os";
import { readFileSync } from "node:fs";
import type { Core } from "../core/index.ts";
import { syncReceive, syncStats, syncTakeMessages, type SyncCounter } from "../core/sync.ts";
import type { Logger } from "./log.ts";
import { DEFAULT_MCAST_GROUP, DEFAULT_MCAST_PORT, DEFAULT_MCAST_TTL } from "../model/daemon.ts";

export interface SyncDaemonOptions {
  state: "master" | "backup";
  mcastInterface: string;
  syncid: number; // 0..255; a backup with 0 takes every syncid
  maxlen: number; // 0: the kernel's default (master 1472; backup the interface's MTU - 28, at least 1472)
  group: string; // multicast group, IPv4 or IPv6
  port: number;
  ttl: number;
}

export const SYNC_DEFAULTS = {
  syncid: 0,
  maxlen: 0,
  group: DEFAULT_MCAST_GROUP,
  port: DEFAULT_MCAST_PORT,
  ttl: DEFAULT_MCAST_TTL,
} as const;
const FLUSH_AGE_MS = 2000; // IPVS_SYNC_FLUSH_TIME
const SEND_EVERY_MS = 20; // how often the master looks for finished messages

/** The interface's address of the group's family, or why there is none. */
function interfaceAddress(name: string, v6: boolean): string {
  const addrs = networkInterfaces()[name];
  if (!addrs) throw new Error(`sync daemon: no interface '${name}' here`);
  const a = addrs.find((x) => (v6 ? x.family === "IPv6" : x.family === "IPv4"));
  if (!a) throw new Error(`sync daemon: interface '${name}' has no ${v6 ? "IPv6" : "IPv4"} address`);
  return v6 ? `${a.address}%${name}` : a.address;
}

function mtuOf(name: string): number {
  try {
    return Number(readFileSync(`/sys/class/net/${name}/mtu`, "utf8").trim()) || 1500;
  } catch {
    return 1500;
  }
}

export class SyncDaemon {
  private socket?: dgram.Socket;
  private timer?: NodeJS.Timeout;
  sendErrors = 0;
  lastError = "";
  readonly maxlen: number;

  private constructor(
    private core: Core,
    readonly opts: SyncDaemonOptions,
    private now: () => number,
    private log: Logger,
  ) {
    const hlen = isIPv6(opts.group) ? 48 : 28;
    // start_sync_thread's limits: a master's default is 1500 - headers; a backup reads up to its MTU
    if (opts.state === "master") this.maxlen = opts.maxlen ? Math.min(opts.maxlen, 65535 - hlen) : 1500 - hlen;
    else
      this.maxlen = opts.maxlen
        ? Math.max(1024, Math.min(opts.maxlen, 65535 - hlen))
        : Math.min(Math.max(mtuOf(opts.mcastInterface), 1500), 65535) - hlen;
  }

  static async start(core: Core, opts: SyncDaemonOptions, now: () => number, log: Logger): Promise<SyncDaemon> {
    const d = new SyncDaemon(core, opts, now, log);
    await (opts.state === "backup" ? d.startBackup() : d.startMaster());
    log.info("sync daemon started", { ...opts, maxlen: d.maxlen });
    return d;
  }

  private async startBackup(): Promise<void> {
    const o = this.opts;
    const v6 = isIPv6(o.group);
    const ifaddr = interfaceAddress(o.mcastInterface, v6);
    const s = dgram.createSocket({ type: v6 ? "udp6" : "udp4", reuseAddr: true });
    this.socket = s;
    await new Promise<void>((resolve, reject) => {
      s.once("error", reject);
      s.bind(o.port, () => {
        s.off("error", reject);
        resolve();
      });
    });
    s.addMembership(o.group, ifaddr);
    s.on("message", (msg) => {
      syncReceive(this.core, msg, o.syncid, this.maxlen, this.now());
    });
    s.on("error", (e) => {
      this.lastError = e.message;
      this.log.warn("sync backup: receive error", { error: e.message });
    });
  }

  private async startMaster(): Promise<void> {
    const o = this.opts;
    const v6 = isIPv6(o.group);
    const ifaddr = interfaceAddress(o.mcastInterface, v6);
    const s = dgram.createSocket({ type: v6 ? "udp6" : "udp4" });
    this.socket = s;
    await new Promise<void>((resolve, reject) => {
      s.once("error", reject);
      // bound to the interface's address, as the kernel's master binds its socket (bind_mcastif_addr)
      s.bind(0, v6 ? undefined : ifaddr, () => {
        s.off("error", reject);
        resolve();
      });
    });
    s.setMulticastInterface(ifaddr);
    s.setMulticastTTL(o.ttl);
    s.setMulticastLoopback(false);
    s.on("error", (e) => {
      this.sendErrors++;
      this.lastError = e.message;
    });
    const r = this.core.x.syncMasterStart(o.syncid, this.maxlen);
    if (r < 0) throw new Error(`sync daemon: the core refused syncid ${o.syncid} or maxlen ${this.maxlen}`);
    this.timer = setInterval(() => this.send(FLUSH_AGE_MS), SEND_EVERY_MS);
  }

  /** Sends the finished messages (and a part-filled one older than ageMs). */
  send(ageMs: number): number {
    const s = this.socket;
    if (!s) return 0;
    const msgs = syncTakeMessages(this.core, this.now(), ageMs);
    for (const m of msgs)
      s.send(m, this.opts.port, this.opts.group, (e) => {
        if (!e) return;
        this.sendErrors++;
        this.lastError = e.message;
      });
    return msgs.length;
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    if (this.opts.state === "master") {
      this.send(0);
      this.core.x.syncMasterStop();
    }
    const s = this.socket;
    this.socket = undefined;
    if (s) await new Promise<void>((r) => s.close(() => r()));
  }

  status() {
    return { ...this.opts, maxlen: this.maxlen, sendErrors: this.sendErrors, lastError: this.lastError };
  }
}

/** Every sync counter of the core by name, with the daemons' settings (proxy status, metrics). */
export function syncStatus(
  core: Core,
  daemons: SyncDaemon[],
): { daemons: unknown[]; counters: Record<SyncCounter, number> } {
  return { daemons: daemons.map((d) => d.status()), counters: syncStats(core) };
}
