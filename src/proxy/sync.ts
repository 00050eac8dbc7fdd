// The proxy's connection sync daemons (issue 20), speaking the kernel's sync protocol so a kernel director
// and a wasmvs director can stand in for each other: a backup joins the multicast group on its interface
// and hands each datagram to the core (assembly/sync/codec.ts checks it and creates the entries); a master
// sends the messages the core's data plane fills as connections change. Same defaults as the kernel's
// daemons (ip_vs_sync.c): group 224.0.0.81, port 8848, TTL 1, syncid 0, a master's messages at most
// 1472 bytes (1500 - IPv4 - UDP) and sent when full or 2 s after their first entry. The sockets are the packet
// addon's (native/packet/sync_io.h: a backup takes every waiting datagram with one recvmmsg and one core
// call, a master sends every finished message with one sendmmsg, both straight from WASM memory), or Node's
// dgram where the addon is not built.
import dgram from "node:dgram";
import { isIPv6 } from "node:net";
import { networkInterfaces } from "node:os";
import { readFileSync } from "node:fs";
import type { Core } from "../core/index.ts";
import {
  SYNC_DROPS,
  SYNC_SKIPS,
  SyncRxBatch,
  syncOutPending,
  syncReceive,
  syncStats,
  syncTakeMessages,
  type SyncCounter,
} from "../core/sync.ts";
import type { Logger } from "./log.ts";
import { loadPacketAddon } from "./packet.ts";
import {
  DEFAULT_MCAST_GROUP,
  DEFAULT_MCAST_PORT,
  DEFAULT_MCAST_TTL,
  type SyncDaemon as ModelDaemon,
} from "../model/daemon.ts";
import { inetPton6, ntop6 } from "../model/inet.ts";

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
export const FLUSH_AGE_MS = 2000; // IPVS_SYNC_FLUSH_TIME
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

type SyncSocket = { readonly __syncSocket: unique symbol };
/** The sync daemons' calls in the packet addon (native/packet/sync_io.h). */
export interface SyncIoAddon {
  syncOpen(o: {
    master: number;
    v6: number;
    group: string;
    port: number;
    ifaddr: string;
    ifname: string;
    ttl: number;
  }): SyncSocket;
  syncRecv(h: SyncSocket, memory: ArrayBuffer, lens: number, data: number, max: number, slot: number): number;
  syncSend(h: SyncSocket, memory: ArrayBuffer, list: number, n: number): number;
  syncStart(h: SyncSocket, onReadable: () => void, holdMs: number): void;
  syncStats(h: SyncSocket): { txErrors: number; rxErrors: number; lastError: string } & Record<string, number>;
  syncClose(h: SyncSocket): void;
}

/**
 * How a daemon's datagrams move. native: the packet addon's socket, a backup reading every waiting datagram
 * with one recvmmsg into the core and one call (syncReceiveBatch), a master sending every finished message
 * with one sendmmsg from the core's slots. dgram: Node's socket, one callback, Buffer and copy per datagram
 * and one send per message (where the addon is not built; and the benchmark's comparison).
 */
export type SyncIo = "native" | "dgram";
const RX_BATCH = 32; // datagrams per recvmmsg (the codec takes up to 64)
// A backup's wait after the first datagram of a burst before it reads (natively): a master sends its finished
// messages back to back (the kernel's when a buffer fills, and at most 20 ms apart), and a wake-up of Node's
// loop costs more than decoding a datagram's entries (bench/README.md: in the kernel VM, 5.2 datagrams a read
// with it against 1.0 without, 8.8 against 13.9 µs of CPU per entry). The entries reach the table up to this
// much later: a master holds them up to 2 s itself. The socket's queue holds what comes meanwhile (the kernel's
// default, ~90 full datagrams; /proc/net/snmp's Udp RcvbufErrors counts any it could not).
export const SYNC_RX_HOLD_MS = 10;
const RX_ROUNDS = 8; // recvmmsg calls per wake-up at most: then other work gets a turn (the poll fires again)

function syncAddon(): SyncIoAddon | undefined {
  const a = loadPacketAddon().addon as unknown as Partial<SyncIoAddon> | undefined;
  return a && typeof a.syncOpen === "function" ? (a as SyncIoAddon) : undefined;
}

export class SyncDaemon {
  private socket?: dgram.Socket;
  private native?: { io: SyncIoAddon; h: SyncSocket };
  private timer?: NodeJS.Timeout;
  private dgramSendErrors = 0;
  private dgramLastError = "";
  private rxHoldMs = 0;
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

  /**
   * io: native when the packet addon has the sync calls (it does wherever packet mode runs), else dgram.
   * rxHoldMs: a native backup's wait after a burst's first datagram (SYNC_RX_HOLD_MS).
   */
  static async start(
    core: Core,
    opts: SyncDaemonOptions,
    now: () => number,
    log: Logger,
    how: { io?: SyncIo; rxHoldMs?: number } = {},
  ): Promise<SyncDaemon> {
    const io = how.io;
    const d = new SyncDaemon(core, opts, now, log);
    d.rxHoldMs = how.rxHoldMs ?? SYNC_RX_HOLD_MS;
    const addon = io === "dgram" ? undefined : syncAddon();
    if (io === "native" && !addon) throw new Error("sync daemon: the packet addon's sync sockets are not built");
    if (!addon) await (opts.state === "backup" ? d.startBackup() : d.startMaster());
    else if (opts.state === "backup") d.startBackupNative(addon);
    else d.startMasterNative(addon);
    log.info("sync daemon started", { ...opts, maxlen: d.maxlen, io: addon ? "native" : "dgram" });
    return d;
  }

  /** The native socket's own counters (recvmmsg and sendmmsg calls, datagrams), or undefined on dgram. */
  ioStats(): Record<string, number | string> | undefined {
    return this.native ? this.native.io.syncStats(this.native.h) : undefined;
  }

  get sendErrors(): number {
    return this.native ? this.native.io.syncStats(this.native.h).txErrors : this.dgramSendErrors;
  }
  get lastError(): string {
    return this.native ? this.native.io.syncStats(this.native.h).lastError : this.dgramLastError;
  }

  private openNative(io: SyncIoAddon, master: boolean): SyncSocket {
    const o = this.opts;
    const v6 = isIPv6(o.group);
    // an IPv4 socket joins (and a master sends) by the interface's address, an IPv6 one by its index
    const ifaddr = v6 ? "" : interfaceAddress(o.mcastInterface, false);
    if (v6) interfaceAddress(o.mcastInterface, true); // the same error as dgram's when it has no IPv6 address
    const h = io.syncOpen({
      master: master ? 1 : 0,
      v6: v6 ? 1 : 0,
      group: o.group,
      port: o.port,
      ifaddr,
      ifname: o.mcastInterface,
      ttl: o.ttl,
    });
    this.native = { io, h };
    return h;
  }

  // Every waiting datagram in slots of maxlen bytes (a longer one is refused by its length, as oversized),
  // then the core takes the lot in one call.
  private startBackupNative(io: SyncIoAddon): void {
    const h = this.openNative(io, false);
    const o = this.opts;
    let b: SyncRxBatch;
    try {
      b = new SyncRxBatch(this.core, RX_BATCH, this.maxlen);
    } catch (e) {
      io.syncClose(h);
      this.native = undefined;
      throw new Error(`sync daemon: ${(e as Error).message}`);
    }
    io.syncStart(
      h,
      () => {
        for (let k = 0; k < RX_ROUNDS; k++) {
          const n = io.syncRecv(h, b.memory, b.lens, b.data, b.max, b.slot);
          if (n > 0) b.receive(n, o.syncid, this.maxlen, this.now());
          if (n < b.max) return;
        }
      },
      this.rxHoldMs,
    );
  }

  private startMasterNative(io: SyncIoAddon): void {
    this.openNative(io, true);
    this.startMasterCore();
  }

  private startMasterCore(): void {
    const o = this.opts;
    const r = this.core.x.syncMasterStart(o.syncid, this.maxlen);
    if (r < 0) throw new Error(`sync daemon: the core refused syncid ${o.syncid} or maxlen ${this.maxlen}`);
    this.timer = setInterval(() => this.send(FLUSH_AGE_MS), SEND_EVERY_MS);
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
      this.dgramLastError = e.message;
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
      this.dgramSendErrors++;
      this.dgramLastError = e.message;
    });
    this.startMasterCore();
  }

  /** Sends the finished messages (and a part-filled one older than ageMs). */
  send(ageMs: number): number {
    const nat = this.native;
    if (nat) {
      // straight from the core's slots; what the kernel's queue cannot take yet stays there for the next turn
      const out = syncOutPending(this.core, this.now(), ageMs);
      if (out.n === 0) return 0;
      const sent = nat.io.syncSend(nat.h, out.memory, out.list, out.n);
      out.done(sent);
      return sent;
    }
    const s = this.socket;
    if (!s) return 0;
    const msgs = syncTakeMessages(this.core, this.now(), ageMs);
    for (const m of msgs)
      s.send(m, this.opts.port, this.opts.group, (e) => {
        if (!e) return;
        this.dgramSendErrors++;
        this.dgramLastError = e.message;
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
    if (this.native) this.native.io.syncClose(this.native.h);
    this.native = undefined;
  }

  status() {
    const io: SyncIo = this.native ? "native" : "dgram";
    return { ...this.opts, maxlen: this.maxlen, io, sendErrors: this.sendErrors, lastError: this.lastError };
  }
}

/** Every sync counter of the core by name, with the daemons' settings (proxy status, metrics). */
export function syncStatus(
  core: Core,
  daemons: SyncDaemon[],
): { daemons: unknown[]; counters: Record<SyncCounter, number> } {
  return { daemons: daemons.map((d) => d.status()), counters: syncStats(core) };
}

/** Whether two daemons' options are the same (a reload keeps such a daemon running as it is). */
export function sameSyncOptions(a: SyncDaemonOptions, b: SyncDaemonOptions): boolean {
  return (
    a.state === b.state &&
    a.mcastInterface === b.mcastInterface &&
    a.syncid === b.syncid &&
    a.maxlen === b.maxlen &&
    groupText(a.group) === groupText(b.group) &&
    a.port === b.port &&
    a.ttl === b.ttl
  );
}

const groupText = (g: string) => {
  const b = isIPv6(g) ? inetPton6(g) : undefined;
  return b ? ntop6(b) : g;
};

/** Why these daemons cannot start here (each naming the daemon), checked before a reload changes anything:
 * the interface must exist with an address of the group's family. */
export function syncStartProblems(want: SyncDaemonOptions[]): string[] {
  const out: string[] = [];
  for (const o of want) {
    try {
      interfaceAddress(o.mcastInterface, isIPv6(o.group));
    } catch (e) {
      out.push(`proxy.syncDaemons ${o.state}: ${(e as Error).message.replace(/^sync daemon: /, "")}`);
    }
  }
  return out;
}

/** The daemons as `ipvsadm -L --daemon` prints the kernel's (src/model/daemon.ts formatDaemons): the payload
 * size the daemon keeps (the kernel's clamp, already applied) and the group in inet_ntop's text. */
export function daemonsListing(daemons: SyncDaemon[]): ModelDaemon[] {
  return daemons.map((d) => ({
    state: d.opts.state,
    mcastIfn: d.opts.mcastInterface,
    syncid: d.opts.syncid,
    syncMaxlen: d.maxlen,
    mcastGroup: groupText(d.opts.group),
    mcastPort: d.opts.port,
    mcastTtl: d.opts.ttl,
  }));
}

// ---- Prometheus families (/metrics), what `wasmvs proxy status` shows under "sync" -------------------------
// Each family has every series even at zero: the reasons are a fixed, short list, and a series that appears
// only with its first count hides that count from rate().
const esc = (s: string) => s.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n");
const SYNC_TOTALS: [string, SyncCounter, string][] = [
  ["received_messages", "messages", "Sync messages a backup took in (each then checked)"],
  ["received_v0_messages", "v0_messages", "Version 0 sync messages among them (sync_version=0 masters)"],
  ["received_entries", "entries", "Connection entries read from accepted messages"],
  ["entries_created", "created", "Entries a backup created in the connection table"],
  ["entries_updated", "updated", "Entries a backup updated (state, timeout) in the connection table"],
  ["sent_messages", "sent_messages", "Sync messages a master finished and sent"],
  ["sent_entries", "sent_entries", "Connection entries a master put into messages"],
];

/** The sync daemons' families, as text: nothing when none runs. */
export function syncMetricsText(core: Core, daemons: SyncDaemon[]): string {
  if (!daemons.length) return "";
  const c = syncStats(core);
  let out = "# HELP wasmvs_proxy_sync_daemon A connection sync daemon running (1), with its options\n";
  out += "# TYPE wasmvs_proxy_sync_daemon gauge\n";
  for (const d of daemons) {
    const o = d.opts;
    out +=
      `wasmvs_proxy_sync_daemon{state="${o.state}",mcast_interface="${esc(o.mcastInterface)}",` +
      `syncid="${o.syncid}",group="${groupText(o.group)}",port="${o.port}"} 1\n`;
  }
  for (const [name, key, help] of SYNC_TOTALS) {
    const n = `wasmvs_proxy_sync_${name}_total`;
    out += `# HELP ${n} ${help}\n# TYPE ${n} counter\n${n} ${c[key]}\n`;
  }
  const byReason = (name: string, help: string, reasons: readonly string[]) => {
    const n = `wasmvs_proxy_sync_${name}_total`;
    out += `# HELP ${n} ${help}\n# TYPE ${n} counter\n`;
    for (const r of reasons) out += `${n}{reason="${r}"} ${c[r as SyncCounter]}\n`;
  };
  byReason("dropped_messages", "Sync messages dropped whole, by reason", Object.keys(SYNC_DROPS));
  byReason("skipped_entries", "Entries of accepted messages not used, by reason", Object.keys(SYNC_SKIPS));
  const n = "wasmvs_proxy_sync_send_errors_total";
  out += `# HELP ${n} Sync messages a master's socket failed to send\n# TYPE ${n} counter\n`;
  for (const d of daemons) if (d.opts.state === "master") out += `${n}{state="master"} ${d.sendErrors}\n`;
  return out;
}
