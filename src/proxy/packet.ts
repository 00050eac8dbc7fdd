// Packet mode: L4 full-NAT or masq on raw packets, every decision and every rewrite made by the WASM core's
// packet path. The native addon (native/packet) receives frames from the balancer's interfaces with
// AF_PACKET straight into the core's batch area (no copy), the core runs the whole batch in one call
// and rewrites packets in place (destination to the real server, for full-NAT the source to a local
// address, and back for replies), and the addon sends what the core forwarded through raw IP sockets; the kernel
// routes them and resolves neighbours. takeover.ts keeps the kernel from answering the same packets.
//
// One batch: recv (syscall) -> processBatch (WASM) -> send (syscall), through PacketBatch.cycle so the
// WASM memory is handed out by src/core. Each stage is timed (status().timing, and the addon's recvNs /
// sendNs) so the benchmark can say where the time goes.
import { createRequire } from "node:module";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import type { Core } from "../core/index.ts";
import { PacketBatch, packetCounters } from "../core/packets.ts";
import type { VirtualService } from "../model/types.ts";
import type { Logger } from "./log.ts";
import type { Tables } from "./tables.ts";
import { destKey } from "./tables.ts";
import type { DestStats, Decision, Forwarder } from "./forwarder.ts";
import type { PacketModeOptions } from "./config.ts";
import { type MasqDest, Takeover } from "./takeover.ts";
import { FwmarkQueueRules } from "./fwmark.ts";

export interface PacketIoStats {
  rxPackets: number;
  rxCalls: number;
  rxIgnored: number;
  rxOversize: number;
  rxTrimmed: number;
  rxCsumCompleted: number;
  rxKernelDrops: number;
  txPackets: number;
  txCalls: number;
  txNoBuffer: number;
  txTooBig: number;
  // over the route's MTU after NAT (native/packet/toobig.h): errors sent and not, IPv4 fragmented
  txIcmpTooBig: number;
  txIcmpLimited: number;
  txIcmpUnquoted: number;
  txFragmented: number;
  txFragments: number;
  txUnreachable: number;
  txOtherErrors: number;
  lastTxErrno: number;
  recvNs: number;
  sendNs: number;
  // ring I/O: which I/O is in use, why ring I/O was not (or not wholly), and how much went through the rings
  io: "ring" | "mmsg" | "xdp";
  ringFallback: string;
  txRingPackets: number;
  txRingKicks: number;
  txRawFallback: number;
  rxRingBlocks: number;
  nextHopLookups: number;
  // AF_XDP (--packet-io xdp): why it was not used, how it runs ("native, copy"), and what went through it
  xdpFallback: string;
  xdpMode: string;
  xdpQueues: { interface: string; queues: number }[]; // each interface's receive queues (a socket each)
  rxXdpFrames: number;
  rxXdpWakeups: number;
  txXdpPackets: number;
  txXdpKicks: number;
  // the fwmark services' netfilter queue: its number (-1: none bound; with threads the first), packets read,
  // too big for a slot, reads that found the socket buffer overrun, netlink errors, verdicts sent
  queueNum: number;
  rxQueuePackets: number;
  rxQueueOversize: number;
  rxQueueOverruns: number;
  rxQueueErrors: number;
  queueVerdicts: number;
  // with I/O threads (open({ threads: N > 1 }), native/packet/io_threads.h): each thread's own, the sum above
  threads?: IoThreadStats[];
  threadFailures?: number;
  threadRestarts?: number;
}

interface IoThreadStats {
  rxPackets: number;
  txPackets: number;
  rxCalls: number;
  txCalls: number;
  recvNs: number;
  sendNs: number;
  cpuNs: number; // the thread's CPU time
  batches: number;
  sleeps: number;
  socketErrors: number; // pending socket errors read after a poll said POLLERR (an interface gone: ENETDOWN)
  queueNum: number; // its fwmark netfilter queue (the first queue + its index; -1: none bound)
  rxQueuePackets: number; // packets read from it
  xdpSockets: number; // AF_XDP: the receive queues it reads (queue q is thread q % N's)
  failures: number;
  restarts: number;
  droppedOnFailure: number; // received and not yet taken by the core when its thread failed
  running: boolean;
  lastError: string;
}

type Handle = { readonly __packetIo: unique symbol };
interface PacketIoAddon {
  open(o: {
    interfaces: string[];
    local: string[];
    maxPackets: number;
    slot: number;
    rcvbuf?: number;
    io?: "ring" | "mmsg" | "xdp";
    threads?: number; // > 1: that many I/O threads in one fanout group (native/packet/io_threads.h)
  }): Handle;
  recv(h: Handle, memory: ArrayBuffer, descPtr: number, dataPtr: number): number;
  send(h: Handle, memory: ArrayBuffer, descPtr: number, dataPtr: number, n: number): number;
  start(h: Handle, onReadable: (note?: string) => void): void; // note: an I/O thread failed (to be logged)
  stats(h: Handle): PacketIoStats;
  setAddresses(h: Handle, addresses: string[]): void;
  openQueue(h: Handle, num: number): void; // the fwmark services' netfilter queue (native/packet/nfqueue.h)
  close(h: Handle): void;
  readonly xdp: boolean; // built with AF_XDP (libxdp and libbpf were installed)
}

const BUILD = new URL("../../native/packet/build/", import.meta.url);

// The addon, or why there is none (said in full: what failed and how to build it).
export function loadPacketAddon(): { addon?: PacketIoAddon; error?: string; xdpMissing?: string } {
  const load = (name: string) =>
    createRequire(import.meta.url)(fileURLToPath(new URL(`Release/${name}.node`, BUILD))) as PacketIoAddon;
  try {
    return { addon: load("wasmvs_packet") };
  } catch (e) {
    // built with AF_XDP on a machine whose libxdp or libbpf is gone at run time (or never there: the kernel VM
    // carries only node's own libraries): the build without AF_XDP beside it serves every other I/O
    const why = (e as Error).message.split("\n")[0];
    if ((e as NodeJS.ErrnoException).code !== "MODULE_NOT_FOUND")
      try {
        return { addon: load("wasmvs_packet_plain"), xdpMissing: `the AF_XDP build could not be loaded: ${why}` };
      } catch {
        /* neither: say why the first failed */
      }
    return { error: packetAddonError(e as NodeJS.ErrnoException, why) };
  }
}

// Why there is no addon, said in full: what failed and how to build it.
function packetAddonError(e: NodeJS.ErrnoException, firstLine: string): string {
  let why = firstLine;
  if (e.code === "MODULE_NOT_FOUND") why = "it is not built";
  try {
    const st = JSON.parse(readFileSync(new URL("status.json", BUILD), "utf8"));
    if (!st.ok) why = `its build failed: ${st.detail}`;
  } catch {
    /* no build was attempted */
  }
  return (
    `packet mode is unavailable: the native addon (native/packet) could not be loaded: ${why}. ` +
    ("Build it with 'node native/packet/build.mjs' (npm install runs it; needs g++, make, python3 and Node's " +
      "headers). Socket mode needs no addon.")
  );
}

// Masq replies are addressed to the clients: with the takeover table off (suppressKernel: false), the
// kernel must not forward its own copy of them beside wasmvs's. Why it would, or undefined.
function kernelForwardsMasq(masq: MasqDest[], read = (f: string) => readFileSync(f, "utf8")): string | undefined {
  for (const [v6, file, name] of [
    [false, "/proc/sys/net/ipv4/ip_forward", "net.ipv4.ip_forward"],
    [true, "/proc/sys/net/ipv6/conf/all/forwarding", "net.ipv6.conf.all.forwarding"],
  ] as const) {
    if (!masq.some((d) => d.addr.includes(":") === v6)) continue;
    let on: boolean;
    try {
      on = read(file).trim() !== "0";
    } catch {
      continue; // no such family in this kernel: nothing to forward
    }
    if (on)
      return (
        `${name} is 1 and proxy.suppressKernel is false: the kernel would forward its own copy of every masq ` +
        `reply beside wasmvs's. Set ${name}=0 (packet mode sends by itself), or keep proxy.suppressKernel ` +
        "(its nftables table drops those copies)"
      );
  }
  return undefined;
}

// The kernel's own counts for netfilter queue `num`, or summed over queues num .. num + count - 1 (the I/O
// threads' one each), from one read of /proc/net/netfilter/nfnetlink_queue (this namespace's): packets it
// dropped because the queue was full, and because they could not be sent to the reader. undefined when none
// of them is listed.
export function queueKernelDrops(
  num: number,
  read = () => readFileSync("/proc/net/netfilter/nfnetlink_queue", "utf8"),
  count = 1,
): { full: number; unsent: number } | undefined {
  let text: string;
  try {
    text = read();
  } catch {
    return undefined;
  }
  let out: { full: number; unsent: number } | undefined;
  for (const line of text.split("\n")) {
    const f = line.trim().split(/\s+/).map(Number);
    if (f.length < 7 || !(f[0] >= num && f[0] < num + count)) continue;
    out = { full: (out?.full ?? 0) + f[5], unsent: (out?.unsent ?? 0) + f[6] };
  }
  return out;
}

// AF_XDP on N I/O threads: queue q of an interface is thread q % N's (native/packet/packet_io.cc, takeXdpSocks), so
// on an interface with fewer receive queues than threads, threads queues..N-1 get nothing. One entry per such
// interface, for the start-up warning: how to give it more (ethtool -L on a NIC; a veth's are fixed when made).
export function xdpQueueShortfall(
  ports: readonly { interface: string; queues: number }[],
  threads: number,
): { interface: string; queues: number; threads: number; idleThreads: number[]; fix: string }[] {
  if (threads <= 1) return [];
  return ports
    .filter((p) => p.queues < threads)
    .map((p) => ({
      interface: p.interface,
      queues: p.queues,
      threads,
      idleThreads: Array.from({ length: threads - p.queues }, (_, i) => p.queues + i),
      fix:
        `ethtool -L ${p.interface} combined ${threads} (or rx ${threads}) where the driver allows it, ` +
        `or --workers ${p.queues}`,
    }));
}

interface PacketForwarderOptions extends PacketModeOptions {
  decisionLog: number;
  threads: number; // I/O threads; 1: the one-thread path (recv and send on the main thread)
}

export class PacketForwarder implements Forwarder {
  readonly mode = "packet" as const;
  readonly stats = new Map<string, DestStats>();
  readonly decisions: Decision[] = [];
  // per-stage time (ns) summed over batches; callbackNs is everything from wake-up to return
  readonly timing = { wakeups: 0, batches: 0, packets: 0, wasmNs: 0, callbackNs: 0, maxBatch: 0 };
  private readonly batch: PacketBatch;
  private readonly takeover?: Takeover;
  private readonly fwmarkRules?: FwmarkQueueRules; // with suppressKernel: false the operator queues marked packets
  private readonly t0 = performance.now();
  private closed = false;

  private constructor(
    readonly core: Core,
    readonly tables: Tables,
    readonly opts: PacketForwarderOptions,
    readonly log: Logger,
    private readonly io: PacketIoAddon,
    private readonly h: Handle,
  ) {
    this.batch = new PacketBatch(core, { maxPackets: opts.batchSize, maxBytes: opts.batchSize * opts.slotSize });
    if (opts.suppressKernel) {
      this.takeover = new Takeover(opts.interfaces, opts.localAddresses);
      this.fwmarkRules = new FwmarkQueueRules(opts.fwmarkQueue, opts.threads);
    }
    io.start(h, (note) => this.onReadable(note));
  }

  // Opens the sockets; throws a clear error when the addon is missing or the sockets cannot be had.
  static open(core: Core, tables: Tables, opts: PacketForwarderOptions, log: Logger): PacketForwarder {
    if (!opts.interfaces.length)
      throw new Error("packet mode needs interfaces to receive on (proxy.interfaces or --interface)");
    const { addon, error, xdpMissing } = loadPacketAddon();
    if (!addon) throw new Error(error);
    for (const a of opts.localAddresses) core.setSnat(a);
    let h: Handle;
    try {
      h = addon.open({
        interfaces: opts.interfaces,
        local: opts.localAddresses,
        maxPackets: opts.batchSize,
        slot: opts.slotSize,
        io: opts.io,
        threads: opts.threads,
      });
    } catch (e) {
      throw new Error(`packet mode cannot open its sockets: ${(e as Error).message}`);
    }
    const st = addon.stats(h);
    if (opts.io === "xdp" && st.io !== "xdp")
      log.warn("AF_XDP unavailable: using the rings", { why: xdpMissing ?? st.xdpFallback });
    if (opts.io !== "mmsg" && st.io === "mmsg") {
      log.warn("ring I/O unavailable: using recvmmsg/sendmmsg", { why: st.ringFallback });
    }
    for (const s of xdpQueueShortfall(st.io === "xdp" ? st.xdpQueues : [], opts.threads))
      log.warn(
        "AF_XDP: an interface has fewer receive queues than I/O threads, so some threads get none of its packets",
        s,
      );
    return new PacketForwarder(core, tables, opts, log, addon, h);
  }

  now(): number {
    return Math.floor(performance.now() - this.t0) + 1;
  }

  // Drains what is ready, a bounded number of batches per wake-up so timers and the control socket run;
  // the poll is level-triggered, so what is left wakes us again at once.
  private onReadable(note?: string): void {
    if (this.closed) return;
    if (note !== undefined) {
      this.log.error("packet I/O thread failed", { why: note });
      return;
    }
    try {
      this.drain();
    } catch (e) {
      this.log.error("packet batch failed", { error: (e as Error).message });
    }
  }

  private drain(): void {
    const t0 = performance.now();
    const { io, h, batch } = this;
    const max = this.opts.batchSize;
    this.timing.wakeups++;
    const fill = (mem: ArrayBuffer, desc: number, data: number) => io.recv(h, mem, desc, data);
    const send = (mem: ArrayBuffer, desc: number, data: number, n: number) => {
      io.send(h, mem, desc, data, n);
    };
    for (let round = 0; round < 16; round++) {
      const n = batch.cycle(fill, send, this.now(), this.timing);
      if (n === 0) break;
      if (this.opts.decisionLog) this.recordDecisions(n);
      this.timing.batches++;
      this.timing.packets += n;
      if (n > this.timing.maxBatch) this.timing.maxBatch = n;
      if (n < max && this.opts.threads <= 1) break; // with threads, another thread's batch may be ready
    }
    this.timing.callbackNs += (performance.now() - t0) * 1e6;
  }

  private recordDecisions(n: number): void {
    for (let i = 0; i < n; i++) {
      const r = this.batch.result(i);
      if (r.verdictCode !== 1 || !r.isNew) continue;
      const c = this.core.conn(r.conn);
      if (!c) continue;
      if (this.decisions.length >= this.opts.decisionLog) this.decisions.shift();
      this.decisions.push({
        proto: c.proto,
        caddr: c.caddr,
        cport: c.cport,
        vaddr: c.vaddr,
        vport: c.vport,
        daddr: c.daddr,
        dport: c.dport,
      });
    }
  }

  // Open flows are the core's connection entries; per-destination packet and byte counts are the core's
  // own (IPVS's), copied here for the proxy's views.
  flowsByDest(): Map<string, number> {
    const flows = new Map<string, number>();
    for (const [key, a] of this.tables.services) {
      for (const d of this.core.service(a.id).dests) {
        const k = destKey(key, d);
        flows.set(k, d.activeConns + d.inactConns);
        this.stats.set(k, {
          inPkts: Number(d.inPkts),
          outPkts: Number(d.outPkts),
          inBytes: Number(d.inBytes),
          outBytes: Number(d.outBytes),
        });
      }
    }
    return flows;
  }

  async sync(services: VirtualService[]): Promise<{ key: string; error: string }[]> {
    const errors: { key: string; error: string }[] = [];
    // a port-0 service (all the VIP's ports) is the core's like any other; a fwmark service's packets come
    // through a netfilter queue, marked (fwmark.ts)
    // (with I/O threads, one queue per thread from proxy.fwmarkQueue on)
    const marked = services.filter((s) => s.fwmark);
    if (marked.length && !this.closed)
      try {
        this.io.openQueue(this.h, this.opts.fwmarkQueue);
        // a marked flow's packets now come twice, the tap's copy first: the core takes the queue's
        this.core.x.packetSetFwmarkTwins(1);
      } catch (e) {
        return marked.map((s) => ({
          key: `fwmark ${s.fwmark}`,
          error:
            `fwmark services come to packet mode through netfilter ${this.queueNames()}, which cannot ` +
            `be had: ${(e as Error).message}; choose another with proxy.fwmarkQueue`,
        }));
      }
    const masq = this.masqDests(services);
    const fwdWhy = this.takeover ? undefined : kernelForwardsMasq(masq);
    if (fwdWhy) return [{ key: "masq real servers", error: fwdWhy }];
    try {
      await this.takeover?.sync(services, masq);
    } catch (e) {
      errors.push({ key: "kernel takeover rules", error: (e as Error).message });
    }
    try {
      await this.fwmarkRules?.sync(services);
    } catch (e) {
      errors.push({ key: "fwmark queue rules", error: (e as Error).message });
    }
    try {
      // AF_XDP takes only these addresses' packets (and the local addresses'); a no-op with the other I/O
      if (!this.closed) this.io.setAddresses(this.h, [...new Set(services.flatMap((s) => (s.addr ? [s.addr] : [])))]);
    } catch (e) {
      errors.push({ key: "XDP address map", error: (e as Error).message });
    }
    return errors;
  }

  // The real servers that forward by masq, as the takeover table matches their replies.
  private masqDests(services: VirtualService[]): MasqDest[] {
    const out: MasqDest[] = [];
    for (const s of services)
      for (const r of s.realServers) {
        if (this.tables.fwdOf(r) !== "masq") continue;
        // a fwmark service takes whichever of TCP, UDP and SCTP its mark was given; port 0 keeps the packet's
        if (s.fwmark) for (const protocol of ["tcp", "udp", "sctp"]) out.push({ addr: r.addr, protocol, port: r.port });
        else out.push({ addr: r.addr, protocol: s.protocol, port: s.port ? r.port || s.port : 0 });
      }
    return out;
  }

  // Removal follows the kernel: a deleted destination's connections are the core's to expire (or drop,
  // with expire_nodest_conn=0); there is nothing of the proxy's own to close.
  markRemoved(_destKeys: string[], _added: string[]): void {}

  tick(): void {
    this.core.advance(this.now());
  }

  ioStats(): PacketIoStats {
    return this.io.stats(this.h);
  }

  // "queue Q", or with I/O threads "queues Q..Q+N-1" (one each)
  private queueNames(): string {
    const q = this.opts.fwmarkQueue,
      n = this.opts.threads;
    return n > 1 ? `queues ${q}..${q + n - 1} (one per I/O thread)` : `queue ${q}`;
  }

  // Drops by reason: the packet path's (malformed, no destination, table full, ...) and the I/O layer's.
  get drops(): Map<string, number> {
    const m = new Map<string, number>(Object.entries(packetCounters(this.core).drops));
    if (this.closed) return m;
    const s = this.io.stats(this.h);
    const add = (k: string, v: number) => {
      if (v) m.set(k, v);
    };
    add("oversize", s.rxOversize + s.rxQueueOversize);
    add("queue_overrun", s.rxQueueOverruns);
    if (s.queueNum >= 0) {
      // one queue per I/O thread (thread k's is queueNum + k)
      const k = queueKernelDrops(s.queueNum, undefined, Math.max(1, this.opts.threads));
      add("queue_full", k?.full ?? 0);
      add("queue_unsent", k?.unsent ?? 0);
    }
    add("rx_queue_overflow", s.rxKernelDrops);
    add("tx_no_buffer", s.txNoBuffer);
    add("tx_too_big", s.txTooBig);
    add("tx_unreachable", s.txUnreachable);
    add("tx_error", s.txOtherErrors);
    return m;
  }

  status(): Record<string, unknown> {
    const c = packetCounters(this.core);
    return {
      interfaces: this.opts.interfaces,
      localAddresses: this.opts.localAddresses,
      batchSize: this.opts.batchSize,
      verdicts: c.verdicts,
      drops: Object.fromEntries(this.drops),
      fragments: this.core.x.packetFragmentCount(),
      io: this.closed ? undefined : this.io.stats(this.h),
      timing: { ...this.timing },
    };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.io.close(this.h);
    await this.takeover?.remove();
    await this.fwmarkRules?.remove();
  }
}
