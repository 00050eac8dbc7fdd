// Socket mode: listeners on each virtual address and port; every new TCP connection and every new UDP
// flow is scheduled by the WASM core (a SYN, or a datagram, through Core.packet), and the connection's
// life is fed back to the core (SYN-ACK out and ACK in once the backend answers, FIN/RST on close, an ACK
// per tick while data flows) so ActiveConn/InActConn are real and lc, wlc, sed, nq, ovf and lblc(r) see
// real load. The core's timers are the idle timeouts: when it expires an entry, the proxy closes the flow.
import * as net from "node:net";
import * as dgram from "node:dgram";
import { readFileSync, readdirSync } from "node:fs";
import { type Core, TCP_FLAGS, VERDICTS } from "../core/index.ts";
import { AF_INET, addrBytes, afOf, formatAddr } from "../core/addr.ts";
import { serviceKey, realServerKey } from "../model/types.ts";
import type { VirtualService } from "../model/types.ts";
import type { Logger } from "./log.ts";
import type { Tables } from "./tables.ts";
import type { DestStats, Decision, Forwarder } from "./forwarder.ts";
import { Slicer, addPendingProbe } from "./slice.ts";

import { NativeRelay, RELAY_CAUSE, RELAY_COUNTERS, type RelayOwner } from "./relay.ts";
import { type ConnPump, PumpWorkers } from "./workers.ts";

const { SYN, ACK, FIN, RST } = TCP_FLAGS;
const DROP = VERDICTS.indexOf("drop");

interface ForwarderOptions {
  udpFlows: number;
  maxConns: number;
  drainTimeoutMs: number;
  connectTimeoutMs: number;
  decisionLog: number;
  pump?: "native" | "js";
  idleTimeoutMs?: number; // a TCP connection that moves no byte this long is closed (default 900 s)
  fileLimit?: number; // open files allowed (default: RLIMIT_NOFILE's soft limit as it is now)
  workers?: number; // threads pumping TCP bytes (workers.ts); 1 or absent: the main thread pumps
}

// Descriptors kept back from the budget: 64 for everything else the process opens (health checks, the
// control and metrics sockets, the WASM file, logs), and 256 for accept bursts: the native relay accepts
// up to 64 connections per listener per loop turn before JS can refuse them (a soak at 1,000 conn/s into
// four listeners at the budget met EMFILE with 64 alone).
const FD_RESERVE = 64 + 256;

// The JS pump's margin under the open-files limit: libuv accepts before JS sees a connection, and at EMFILE it
// closes what waits in the backlog with a FIN and tells JS nothing, so the JS pump refuses (with a reset,
// counted) while this many descriptors are still free: one for the accept being refused, the rest for the
// control and metrics sockets, health checks and what Node opens for itself.
const JS_FD_MARGIN = 16;

// Descriptors open now (Linux), or 0 when that cannot be read.
function openFileCount(): number {
  try {
    return readdirSync("/proc/self/fd").length - 1; // less the one the listing itself opened
  } catch {
    return 0;
  }
}

function softFileLimit(): number {
  try {
    const m = readFileSync("/proc/self/limits", "utf8").match(/Max open files\s+(\d+|unlimited)/);
    if (m) return m[1] === "unlimited" ? 1 << 30 : Number(m[1]);
  } catch {
    /* not Linux */
  }
  return 1024;
}

// How long a UDP flow must have been idle before a new flow may take its place in a full table: a flood
// from fresh source ports then replaces flows that have gone quiet, not ones in use.
const UDP_EVICT_IDLE_MS = 1000;

interface Listener {
  key: string;
  proto: "tcp" | "udp";
  vaddr: string;
  vport: number;
  svcId: number;
  removed: boolean;
  connectMs: number;
  idleMs: number; // the service's timeouts
  af: number;
  vbytes: Uint8Array; // vaddr encoded once, for Core.packetBytes
  server?: net.Server;
  native?: number;
  udp?: dgram.Socket;
  flows?: Map<string, UdpFlow>;
}

interface Flow {
  idx: number; // the core's entry; -1 once the entry went while the flow drains (see entryGone)
  destId: number; // the core's destination
  readonly l: Listener;
  destKey: string;
  act: boolean;
  cport: number;
  vport: number;
  proto: number;
  close(reason: string): void;
}

class TcpConn implements Flow, RelayOwner {
  backend: net.Socket | null = null;
  daddr = "";
  dport = 0;
  destKey = "";
  idx = -1;
  destId = -1;
  act = false;
  proto = 6;
  clientEnded = false;
  backendEnded = false;
  lostIn = 0; // the flags of a client FIN or RST the core dropped (see feed)
  connected = false;
  done = false;
  retried = false;
  lastActive = 0; // the forwarder's clock when a byte last moved (or the connection was made)
  st!: DestStats;
  // the native relay's slot once it pumps this connection (-1: the JS pump), and its counters as last read
  slot = -1;
  pump: ConnPump | null = null; // the main thread's relay or a worker's
  inReads = 0;
  inBytes = 0;
  outReads = 0;
  outBytes = 0;
  private caddrText = "";
  private clientKeyMemo: number | string | undefined;
  // client: the accepted socket when JS pumps; null when the native relay accepted (it holds the descriptor)
  constructor(
    readonly fw: SocketForwarder,
    readonly l: Listener,
    readonly client: net.Socket | null,
    readonly af: number,
    readonly cbytes: Uint8Array,
    readonly cport: number,
  ) {}
  get vport() {
    return this.l.vport;
  }
  get caddr() {
    return this.caddrText || (this.caddrText = formatAddr(this.af, this.cbytes));
  }
  // the client's address and port as a map key: a number for IPv4 (no string per connection)
  get clientKey(): number | string {
    if (this.clientKeyMemo !== undefined) return this.clientKeyMemo;
    const b = this.cbytes;
    this.clientKeyMemo =
      this.af === AF_INET
        ? (((b[0] << 24) | (b[1] << 16) | (b[2] << 8) | b[3]) >>> 0) * 65536 + this.cport
        : `${Buffer.from(b.buffer, b.byteOffset, 16).toString("hex")}.${this.cport}`;
    return this.clientKeyMemo;
  }
  feed(dir: "in" | "out", flags: number) {
    if (this.idx < 0) return;
    const c = this.fw.core;
    if (dir === "out") {
      c.replyTo(this.idx, 6, this.cport, this.l.vport, flags, 60, this.fw.now()); // by entry: see replyTo
      return;
    }
    const now = this.fw.now();
    const v = c.packetBytes("in", 6, this.af, this.cbytes, this.cport, this.l.vbytes, this.l.vport, flags, 60, now);
    // the client's FIN or RST dropped while its real server was deleted (expire_nodest_conn=0): a client's TCP
    // would send it again until it got through, so it is kept for the end (finish)
    if (v === DROP && flags & (FIN | RST) && c.lastResult(v).reason === "destination deleted") this.lostIn = flags;
  }
  close(reason: string) {
    if (this.done) return;
    this.fw.log.debug("tcp close", { reason, client: `${this.caddr}:${this.cport}`, dest: this.destKey });
    this.feed("in", RST);
    this.resetAll();
    this.finish();
  }
  // Resets the client and the backend, whichever pump holds them.
  resetAll() {
    if (this.slot >= 0) {
      this.collect();
      this.pump!.close(this.slot);
      this.slot = -1;
    } else {
      this.client?.resetAndDestroy();
      this.backend?.resetAndDestroy();
    }
  }
  get native() {
    return this.slot >= 0;
  }
  // Adds what the native relay pumped since the last look to the destination's counters.
  collect() {
    if (this.slot < 0) return;
    const a = this.pump!.counters,
      o = this.slot * RELAY_COUNTERS;
    const inReads = a[o],
      inBytes = a[o + 1],
      outReads = a[o + 2],
      outBytes = a[o + 3];
    // a worker not yet holding the connection marks it with -1 (workers.ts)
    if (inReads < 0 || (inReads === this.inReads && outReads === this.outReads)) return;
    const st = this.st;
    st.inPkts += inReads - this.inReads;
    st.inBytes += inBytes - this.inBytes;
    st.outPkts += outReads - this.outReads;
    st.outBytes += outBytes - this.outBytes;
    this.inReads = inReads;
    this.inBytes = inBytes;
    this.outReads = outReads;
    this.outBytes = outBytes;
    this.act = true;
  }
  onConnected() {
    if (this.done) return;
    this.connected = true;
    this.lastActive = this.fw.now();
    this.feed("out", SYN | ACK);
    this.feed("in", ACK);
  }
  onConnectFailed(code: string, errno: number) {
    if (this.done) return;
    this.fw.connectFailed(
      this,
      Object.assign(new Error(`connect ${code} ${this.daddr}:${this.dport}`), { code, errno }),
    );
  }
  onEof(side: "client" | "backend") {
    if (side === "client") {
      this.clientEnded = true;
      this.feed("in", FIN | ACK);
    } else {
      this.backendEnded = true;
      this.feed("out", FIN | ACK);
    }
  }
  onClosed(cause: number, errno: number) {
    this.collect();
    this.slot = -1;
    if (this.done) return;
    if (cause === RELAY_CAUSE.FIN) this.feed("in", ACK);
    // the client's reset came from this side, as a backend's would: so fed (a client's RST leaves an entry
    // in SYN_RECV counted active for 60 s more, as in the kernel; this one ends it)
    else if (cause === RELAY_CAUSE.PUMP_LOST) this.feed("out", RST);
    else {
      this.fw.log.debug(cause === RELAY_CAUSE.CLIENT_ERROR ? "client error" : "backend error", {
        dest: this.destKey,
        errno,
      });
      this.feed(cause === RELAY_CAUSE.CLIENT_ERROR ? "in" : "out", RST);
    }
    this.finish();
  }
  finish() {
    if (this.done) return;
    this.done = true;
    this.fw.tcp.delete(this);
    this.fw.forgetClient(this);
    if (this.fw.byIdx.get(this.idx) === this) {
      this.fw.byIdx.delete(this.idx);
      // a FIN or RST lost while the real server was deleted, which is back now (re-added from the trash): it
      // goes through now, as the client's retransmission would have, so the entry ends in TIME_WAIT or CLOSE
      // (the soak's 268 drops: entries left in FIN_WAIT, which refused the client port's next SYN once the
      // real server was deleted again)
      if (this.lostIn) this.feed("in", this.lostIn);
      // a flow whose destination was deleted while it drained: its last state changes were dropped by the
      // core (expire_nodest_conn=0), and no packet will ever end its entry; free it so a client reusing the
      // source port is scheduled afresh instead of refused
      this.fw.core.expireOrphan(this.idx, this.fw.now());
    }
    this.fw.onDone();
  }
}

class UdpFlow implements Flow {
  sock: dgram.Socket;
  act = true;
  proto = 17;
  idx = -1;
  destId = -1;
  destKey = "";
  done = false;
  lastActive = 0;
  st!: DestStats;
  constructor(
    readonly fw: SocketForwarder,
    readonly l: Listener,
    readonly key: string,
    readonly caddr: string,
    readonly cport: number,
    readonly daddr: string,
    readonly dport: number,
  ) {
    this.sock = dgram.createSocket(daddr.includes(":") ? "udp6" : "udp4");
    this.sock.on("message", (msg, r) => {
      if (r.port !== this.dport || r.address !== this.daddr) return;
      this.act = true;
      fw.touchUdp(this);
      this.st.outPkts++;
      this.st.outBytes += msg.length;
      fw.core.replyTo(this.idx, 17, this.cport, this.l.vport, 0, msg.length, fw.now()); // by entry, as TcpConn.feed
      if (!this.l.udp) return;
      this.l.udp.send(msg, this.cport, this.caddr);
    });
    this.sock.on("error", (e) => fw.log.debug("udp flow error", { error: e.message }));
  }
  get vport() {
    return this.l.vport;
  }
  close(_reason: string) {
    if (this.done) return;
    this.done = true;
    this.l.flows?.delete(this.key);
    this.fw.udpCount--;
    this.fw.udpLru.delete(this);
    if (this.fw.byIdx.get(this.idx) === this) this.fw.byIdx.delete(this.idx);
    try {
      this.sock.close();
    } catch {
      /* closed */
    }
    this.fw.maybeCloseUdp(this.l);
  }
}

export class SocketForwarder implements Forwarder {
  readonly mode = "socket" as const;
  readonly listeners = new Map<string, Listener>();
  readonly tcp = new Set<TcpConn>();
  readonly byIdx = new Map<number, Flow>();
  // each open TCP connection by its service and client address and port: the OS accepting one of these
  // 4-tuples again proves the old socket gone, whether or not its end has reached this thread yet
  private readonly tcpByClient = new Map<string, Map<number | string, TcpConn>>();
  readonly stats = new Map<string, DestStats>();
  readonly drops = new Map<string, number>();
  readonly removedAt = new Map<string, number>(); // destination or service key -> when it was removed (ms)
  readonly decisions: Decision[] = [];
  udpCount = 0;
  // UDP flows, least recently active first (a Map keeps insertion order; activity re-inserts)
  readonly udpLru = new Map<UdpFlow, true>();
  readonly fileBudget: number; // descriptors for listeners, TCP connections (2 each) and UDP flows (1 each)
  private readonly fileLimit: number;
  private readonly fdsAtStart = openFileCount(); // what the process held before its first listener
  private t0 = performance.now();
  private idleWaiters: (() => void)[] = [];
  readonly relay: NativeRelay | null = null;
  readonly workers: PumpWorkers | null = null;
  private unprobe: () => void = () => {};

  constructor(
    readonly core: Core,
    readonly tables: Tables,
    readonly opts: ForwarderOptions,
    readonly log: Logger,
  ) {
    this.fileLimit = opts.fileLimit ?? softFileLimit();
    this.fileBudget = this.fileLimit - FD_RESERVE;
    if (opts.pump !== "js") {
      const r = NativeRelay.load();
      if (typeof r === "string")
        log.warn("native relay not loaded; TCP bytes go through the JS pump (build it with npm install)", { error: r });
      else {
        this.relay = r;
        // long work on this loop (a scrape, a restore's apply) yields as soon as a connection waits
        this.unprobe = addPendingProbe(() => r.pending());
      }
    }
    const workers = opts.workers ?? 1;
    if (workers > 1 && this.relay) {
      const relay = this.relay;
      // a slot per connection the budget allows, and room for those whose release is still on its way
      this.workers = new PumpWorkers(
        workers,
        opts.maxConns + 1024,
        (fd) => relay.resetFd(fd),
        log,
        (n) => {
          for (let i = 0; i < n; i++) this.drop("worker_died");
        },
      );
    } else if (workers > 1) log.warn("--workers needs the native relay: one thread pumps", { workers });
  }

  // Brings the destinations' byte and packet counters up to date with the native relay's.
  collectCounters(): void {
    if (this.relay) for (const c of this.tcp) c.collect();
  }

  now(): number {
    return Math.floor(performance.now() - this.t0) + 1;
  }

  drop(reason: string) {
    this.drops.set(reason, (this.drops.get(reason) ?? 0) + 1);
  }

  statsFor(key: string): DestStats {
    let s = this.stats.get(key);
    if (!s) this.stats.set(key, (s = { inPkts: 0, outPkts: 0, inBytes: 0, outBytes: 0 }));
    return s;
  }

  private record(d: Decision) {
    if (!this.opts.decisionLog) return;
    if (this.decisions.length >= this.opts.decisionLog) this.decisions.shift();
    this.decisions.push(d);
  }

  // Opens listeners for new services, marks those of removed services (they stop taking new flows).
  async sync(services: VirtualService[]): Promise<{ key: string; error: string }[]> {
    const errors: { key: string; error: string }[] = [];
    await this.workers?.ready();
    // a socket listens on one port: all ports (port 0) would need TPROXY or a redirect rule per service
    for (const s of services)
      if (s.fwmark)
        errors.push({
          key: serviceKey(s),
          error: "fwmark services work in packet mode (--mode packet): socket mode listens on address:port",
        });
      else if (!s.port)
        errors.push({
          key: serviceKey(s),
          error: "port 0 (all ports) services work in packet mode (--mode packet): socket mode listens on one port",
        });
    if (errors.length) return errors;
    const slicer = new Slicer(); // 10k new listeners take a while: forwarding goes on between slices
    const want = new Map<string, VirtualService>();
    for (const s of services) {
      want.set(serviceKey(s), s);
      await slicer.pause();
    }
    for (const [key, l] of this.listeners) {
      await slicer.pause();
      if (want.has(key)) continue;
      if (!l.removed) {
        l.removed = true;
        this.removedAt.set(key, this.now());
        this.stopListening(l);
        this.maybeCloseUdp(l);
      }
    }
    for (const [key, s] of want) {
      await slicer.pause();
      const a = this.tables.services.get(key);
      if (!a) continue;
      let l = this.listeners.get(key);
      const connectMs = s.connectTimeout !== undefined ? s.connectTimeout * 1000 : this.opts.connectTimeoutMs;
      const idleMs = s.idleTimeout !== undefined ? s.idleTimeout * 1000 : (this.opts.idleTimeoutMs ?? 900_000);
      if (l) {
        l.connectMs = connectMs;
        l.idleMs = idleMs;
      }
      if (l?.removed && l.proto === "udp" && l.udp) {
        l.removed = false;
        l.svcId = a.id;
        this.removedAt.delete(key);
        continue;
      }
      if (l && !l.removed) {
        l.svcId = a.id;
        continue;
      }
      this.removedAt.delete(key);
      l = {
        key,
        proto: s.protocol === "udp" ? "udp" : "tcp",
        vaddr: s.addr!,
        vport: s.port!,
        svcId: a.id,
        removed: false,
        connectMs,
        idleMs,
        af: afOf(s.addr!),
        vbytes: addrBytes(s.addr!),
      };
      try {
        if (l.proto === "tcp") await this.listenTcp(l);
        else await this.listenUdp(l);
        this.listeners.set(key, l);
        this.log.info("listening", { service: key });
      } catch (e) {
        errors.push({ key, error: (e as Error).message });
        this.log.error("cannot listen", { service: key, error: (e as Error).message });
      }
    }
    return errors;
  }

  private stopListening(l: Listener) {
    l.server?.close();
    l.server = undefined;
    if (l.native !== undefined) this.relay?.unlisten(l.native);
    l.native = undefined;
  }

  private listenTcp(l: Listener): Promise<void> {
    if (this.relay) {
      // accepts in the addon: no net.Socket per connection
      l.native = this.relay.listen(l.vaddr, l.vport, 1024, {
        onAccept: (fd, af, addr, port) => this.onNativeTcp(l, fd, af, addr, port),
        onAcceptFailed: (code, reset) => {
          this.drop(`accept_${code.toLowerCase()}`);
          for (let i = 0; i < reset; i++) this.drop("no_descriptor_reset");
          this.log.warn("accept failed", { service: l.key, error: code, reset });
        },
      });
      return Promise.resolve();
    }
    const server = net.createServer({ allowHalfOpen: true, pauseOnConnect: true, noDelay: true });
    server.on("connection", (sock) => this.onTcp(l, sock));
    server.on("error", (e: NodeJS.ErrnoException) => {
      // accept failures (EMFILE/ENFILE: libuv refuses the pending connection and goes on listening)
      this.drop(`accept_${(e.code ?? "error").toLowerCase()}`);
      this.log.warn("accept failed", { service: l.key, error: e.message });
    });
    l.server = server;
    return new Promise((res, rej) => {
      const onErr = (e: Error) => {
        server.close();
        rej(e);
      };
      server.once("error", onErr);
      server.listen({ host: l.vaddr, port: l.vport, backlog: 1024, exclusive: true }, () => {
        server.off("error", onErr);
        res();
      });
    });
  }

  private listenUdp(l: Listener): Promise<void> {
    const sock = l.vaddr.includes(":")
      ? dgram.createSocket({ type: "udp6", ipv6Only: true })
      : dgram.createSocket({ type: "udp4" });
    l.udp = sock;
    l.flows = new Map();
    sock.on("message", (msg, r) => this.onUdp(l, msg, r.address, r.port));
    return new Promise((res, rej) => {
      sock.once("error", rej);
      sock.bind({ address: l.vaddr, port: l.vport, exclusive: true }, () => {
        sock.off("error", rej);
        sock.on("error", (e) => this.log.warn("udp listener error", { service: l.key, error: e.message }));
        res();
      });
    });
  }

  maybeCloseUdp(l: Listener) {
    if (l.removed && l.udp && (!l.flows || l.flows.size === 0)) {
      l.udp.close();
      l.udp = undefined;
      if (this.listeners.get(l.key) === l) this.listeners.delete(l.key);
    }
  }

  // ---- TCP ------------------------------------------------------------------------------------------
  // A connection the native relay accepted: fd is ours to take or refuse.
  private onNativeTcp(l: Listener, fd: number, af: number, addr: Uint8Array, cport: number) {
    const relay = this.relay!;
    if (l.removed) {
      relay.resetFd(fd);
      this.drop("service_removed");
      return;
    }
    if (!this.tcpRoom()) {
      relay.resetFd(fd);
      this.drop("max_conns");
      return;
    }
    const pump: ConnPump | undefined = this.workers ? this.workers.pick() : relay;
    if (!pump) {
      relay.resetFd(fd);
      this.drop("no_worker");
      return;
    }
    const c = new TcpConn(this, l, null, af, addr.slice(), cport);
    try {
      c.pump = pump;
      c.slot = pump.adopt(fd, c);
    } catch (e) {
      this.drop("relay_refused");
      this.log.warn("native relay cannot take the connection", { service: l.key, error: (e as Error).message });
      return;
    }
    this.tcp.add(c);
    this.supersede(c);
    this.schedule(c, false);
  }

  private onTcp(l: Listener, client: net.Socket) {
    const caddr = client.remoteAddress,
      cport = client.remotePort;
    if (!caddr || !cport) {
      client.destroy();
      return;
    }
    if (l.removed) {
      client.resetAndDestroy();
      this.drop("service_removed");
      return;
    }
    if (!this.tcpRoom()) {
      client.resetAndDestroy();
      this.drop("max_conns");
      return;
    }
    if (!this.jsFdRoom()) {
      client.resetAndDestroy();
      this.drop("no_descriptor_reset");
      return;
    }
    const c = new TcpConn(this, l, client, afOf(caddr), addrBytes(caddr), cport);
    client.on("error", (e) => {
      // the client reset (or the socket failed): the backend gets a reset too
      if (!c.done) {
        this.log.debug("client error", { error: e.message });
        c.feed("in", RST);
        c.backend?.resetAndDestroy();
        c.finish();
      }
    });
    client.on("close", () => {
      if (!c.done && !c.connected) {
        c.feed("in", RST);
        c.backend?.destroy();
        c.finish();
      }
    });
    this.tcp.add(c);
    this.supersede(c);
    if (!this.schedule(c, false)) return;
  }

  // Descriptors in use by what the budget covers: a socket per listener, two per TCP connection (the
  // accepted one is already open when this is asked, so it counts), one per UDP flow.
  fdsInUse(): number {
    return this.listeners.size + 2 * this.tcp.size + this.udpCount;
  }

  // Room for one more TCP connection: under maxConns, and while UDP flows hold sockets, its two sockets
  // fit the open-files budget beside theirs (so a full UDP table cannot turn the orderly refusal into
  // EMFILE). Without UDP flows maxConns alone decides, as sized from the limit at start.
  private tcpRoom(): boolean {
    if (this.opts.maxConns && this.tcp.size >= this.opts.maxConns) return false;
    return this.udpCount === 0 || this.fdsInUse() + 2 <= this.fileBudget;
  }

  // The JS pump: room under the open-files limit for this accepted connection (already open) and its backend
  // socket, JS_FD_MARGIN left over (see there: past it libuv would close waiting clients without a word).
  private jsFdRoom(): boolean {
    return this.fdsAtStart + this.fdsInUse() + 2 + JS_FD_MARGIN <= this.fileLimit;
  }

  // A new connection from a client address and port that an open one still holds here: the old socket is gone
  // (the OS would not accept the same 4-tuple twice), only its end has not reached this thread yet: a worker
  // that died and has not been seen to, or a close on its way from a worker. Its entry is closed first, as
  // its RST would have closed it, so the new SYN is scheduled afresh (else it lands on the old entry, which a
  // late RST for the old connection then closes under the new one, or leaves counted active).
  private supersede(c: TcpConn) {
    let m = this.tcpByClient.get(c.l.key);
    if (!m) this.tcpByClient.set(c.l.key, (m = new Map()));
    const old = m.get(c.clientKey);
    if (old && !old.done) {
      this.drop("superseded");
      old.close("superseded: the same client address and port connected again");
    }
    m.set(c.clientKey, c);
  }

  forgetClient(c: TcpConn) {
    const m = this.tcpByClient.get(c.l.key);
    if (m?.get(c.clientKey) !== c) return;
    m.delete(c.clientKey);
    if (!m.size) this.tcpByClient.delete(c.l.key);
  }

  // Schedules c through the core and connects; false when refused.
  private schedule(c: TcpConn, retry: boolean): boolean {
    const l = c.l,
      now = this.now();
    const r = this.core.lastResult(
      this.core.packetBytes("in", 6, c.af, c.cbytes, c.cport, l.vbytes, l.vport, SYN, 60, now),
    );
    if (r.verdict !== "forward" || r.conn < 0) {
      this.drop(r.verdict === "drop" ? (r.reason ?? "drop").replace(/\W+/g, "_") : "not_scheduled");
      c.resetAll();
      c.finish();
      return false;
    }
    const info = this.core.conn(r.conn)!;
    const old = this.byIdx.get(r.conn);
    if (old && old !== c && r.isNew) this.entryGone(old, "index reused");
    c.idx = r.conn;
    c.destId = info.destId;
    c.daddr = info.daddr;
    c.dport = info.dport || l.vport;
    const a = this.tables.byId.get(l.svcId);
    c.destKey = `${l.key}|${realServerKey({ addr: info.daddr, port: info.dport })}`;
    c.st = this.statsFor(c.destKey);
    this.byIdx.set(r.conn, c);
    if (this.opts.decisionLog)
      this.record({
        proto: "tcp",
        caddr: c.caddr,
        cport: c.cport,
        vaddr: l.vaddr,
        vport: l.vport,
        daddr: c.daddr,
        dport: c.dport,
        retried: retry || undefined,
      });
    void a;
    this.connect(c);
    return true;
  }

  private connect(c: TcpConn) {
    if (c.native) {
      c.pump!.connect(c.slot, c.daddr, c.dport, c.l.connectMs);
      return;
    }
    const b = net.connect({ host: c.daddr, port: c.dport, allowHalfOpen: true, noDelay: true });
    c.backend = b;
    c.connected = false;
    const timer = setTimeout(
      () => b.destroy(Object.assign(new Error("connect timeout"), { code: "ETIMEDOUT" })),
      c.l.connectMs,
    );
    b.once("connect", () => {
      clearTimeout(timer);
      if (c.done) {
        b.destroy();
        return;
      }
      c.connected = true;
      c.lastActive = this.now();
      c.feed("out", SYN | ACK);
      c.feed("in", ACK);
      this.wire(c);
      c.client!.resume();
    });
    b.on("error", (e: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      if (c.done || c.backend !== b) return;
      if (!c.connected) return this.connectFailed(c, e);
      // the backend reset or failed mid-stream: the client sees a reset now
      this.log.debug("backend error", { dest: c.destKey, error: e.message });
      c.feed("out", RST);
      c.client!.resetAndDestroy();
      c.finish();
    });
  }

  connectFailed(c: TcpConn, e: NodeJS.ErrnoException) {
    this.drop(`connect_${(e.code ?? "error").toLowerCase()}`);
    this.log.warn("backend connect failed", { dest: c.destKey, error: e.message, retry: !c.retried });
    c.feed("out", RST);
    if (c.retried || c.client?.destroyed) {
      c.resetAll();
      c.finish();
      return;
    }
    c.retried = true;
    // one retry on another destination: the failed one is quiesced for this one decision
    const failed = { addr: c.daddr, port: c.dport, key: c.destKey };
    const svc = this.tables.byId.get(c.l.svcId);
    const d = svc
      ? this.core.service(svc.id).dests.find((x) => realServerKey(x) === failed.key.split("|")[1])
      : undefined;
    if (this.byIdx.get(c.idx) === c) this.byIdx.delete(c.idx);
    if (svc && d && d.weight > 0) {
      const spec = {
        addr: d.addr,
        port: d.port,
        upperThreshold: d.upperThreshold,
        lowerThreshold: d.lowerThreshold,
        fwd: "masq" as const,
      };
      this.core.editDest(svc.id, { ...spec, weight: 0 });
      try {
        if (!this.schedule(c, true)) return;
      } finally {
        this.core.editDest(svc.id, { ...spec, weight: d.weight });
      }
    } else if (!this.schedule(c, true)) return;
    if (c.destKey === failed.key) {
      c.backend?.destroy();
      c.feed("out", RST);
      c.resetAll();
      c.finish();
    }
  }

  private wire(c: TcpConn) {
    const client = c.client!,
      b = c.backend!,
      st = c.st;
    client.on("data", (d: Buffer) => {
      st.inPkts++;
      st.inBytes += d.length;
      c.act = true;
      if (!b.write(d)) client.pause();
    });
    b.on("data", (d: Buffer) => {
      st.outPkts++;
      st.outBytes += d.length;
      c.act = true;
      if (!client.write(d)) b.pause();
    });
    b.on("drain", () => client.resume());
    client.on("drain", () => b.resume());
    client.on("end", () => {
      c.clientEnded = true;
      c.feed("in", FIN | ACK);
      b.end();
    });
    b.on("end", () => {
      c.backendEnded = true;
      c.feed("out", FIN | ACK);
      client.end();
    });
    const closed = () => {
      if (c.done) return;
      if (client.destroyed && b.destroyed) {
        if (c.clientEnded && c.backendEnded) c.feed("in", ACK);
        else c.feed("in", RST);
        c.finish();
      } else if (client.destroyed && !c.clientEnded) {
        b.resetAndDestroy();
      } else if (b.destroyed && !c.backendEnded) {
        client.resetAndDestroy();
      }
    };
    client.on("close", closed);
    b.on("close", closed);
  }

  // ---- UDP ------------------------------------------------------------------------------------------
  private onUdp(l: Listener, msg: Buffer, caddr: string, cport: number) {
    const fk = `${caddr}|${cport}`;
    let f = l.flows!.get(fk);
    if (!f) {
      if (l.removed) {
        this.drop("service_removed");
        return;
      }
      if ((this.udpCount >= this.opts.udpFlows || this.fdsInUse() + 1 > this.fileBudget) && !this.evictIdleUdp()) {
        this.drop("udp_table_full");
        return;
      }
    }
    const r = this.core.packet("in", "udp", caddr, cport, l.vaddr, l.vport, { len: msg.length, now: this.now() });
    if (r.verdict !== "forward" || r.conn < 0) {
      this.drop(r.verdict === "drop" ? (r.reason ?? "drop").replace(/\W+/g, "_") : "not_scheduled");
      return;
    }
    if (f && r.isNew) {
      // the core scheduled this datagram afresh (its entry expired, or one-packet scheduling)
      const info = this.core.conn(r.conn);
      if (!info || info.daddr !== f.daddr || (info.dport || l.vport) !== f.dport) {
        f.close("rescheduled");
        f = undefined;
      } else {
        f.idx = r.conn;
        f.destId = info.destId;
        this.byIdx.set(r.conn, f);
      }
    }
    if (!f) {
      const info = this.core.conn(r.conn);
      if (!info) {
        this.drop("not_scheduled");
        return;
      }
      const old = this.byIdx.get(r.conn);
      if (old && r.isNew) this.entryGone(old, "index reused");
      f = new UdpFlow(this, l, fk, caddr, cport, info.daddr, info.dport || l.vport);
      f.idx = r.conn;
      f.destId = info.destId;
      f.destKey = `${l.key}|${realServerKey({ addr: info.daddr, port: info.dport })}`;
      f.st = this.statsFor(f.destKey);
      l.flows!.set(fk, f);
      this.udpCount++;
      this.byIdx.set(r.conn, f);
      this.record({ proto: "udp", caddr, cport, vaddr: l.vaddr, vport: l.vport, daddr: f.daddr, dport: f.dport });
    }
    f.act = true;
    this.touchUdp(f);
    f.st.inPkts++;
    f.st.inBytes += msg.length;
    f.sock.send(msg, f.dport, f.daddr);
  }

  touchUdp(f: UdpFlow): void {
    f.lastActive = this.now();
    if (f.done) return;
    this.udpLru.delete(f);
    this.udpLru.set(f, true);
  }

  // A full UDP table gives its least recently active flow's place to a new one, when that flow has been
  // idle UDP_EVICT_IDLE_MS (it would otherwise wait for the UDP timeout, 300 s by default). Counted.
  private evictIdleUdp(): boolean {
    const oldest = this.udpLru.keys().next();
    if (oldest.done) return false;
    const f = oldest.value;
    if (this.now() - f.lastActive < UDP_EVICT_IDLE_MS) return false;
    f.close("evicted");
    this.drop("udp_evicted_idle");
    return true;
  }

  // ---- timers ---------------------------------------------------------------------------------------
  // Is the core's entry i still the one this flow owns (same protocol and ports, live)?
  private alive(f: Flow): boolean {
    return this.core.connMatches(f.idx, f.proto, (f as TcpConn | UdpFlow).cport, f.vport);
  }

  tick(): void {
    const now = this.now();
    const idle: TcpConn[] = [];
    for (const c of this.tcp) {
      c.collect();
      if (c.act && c.connected) {
        c.act = false;
        c.lastActive = now;
        c.feed("in", ACK);
      } else if (c.connected && now - c.lastActive >= c.l.idleMs) idle.push(c);
    }
    for (const c of idle) {
      this.drop("idle_timeout");
      c.close("idle timeout");
    }
    this.core.advance(now);
    const bound = this.opts.drainTimeoutMs;
    for (const f of this.flows()) {
      if (f instanceof TcpConn && !f.connected) continue;
      if (f.idx >= 0 && !f.act && !this.alive(f)) {
        this.entryGone(f, "idle timeout");
        if (f.idx >= 0) continue; // closed
      }
      if (f instanceof UdpFlow) f.act = false;
      const svcKey = f.destKey.split("|")[0];
      const t = this.removedAt.get(f.destKey) ?? this.removedAt.get(svcKey);
      if (t !== undefined && now - t >= bound) f.close("drain bound reached");
    }
    for (const l of [...this.listeners.values()]) this.maybeCloseUdp(l);
  }

  // The core no longer holds flow f's entry (it was freed, or a new connection has its slot). A flow whose real
  // server or service was deleted lives on until the drain bound (docs/proxy.md): the core, as the kernel with
  // expire_nodest_conn, expires the entries of a deleted real server at once, and the flow no longer feeds it.
  // Any other flow's entry went by the core's timers: the flow is closed as idle.
  private entryGone(f: Flow, reason: string): void {
    if (!this.destDeleted(f)) {
      f.close(reason);
      return;
    }
    if (this.byIdx.get(f.idx) === f) this.byIdx.delete(f.idx);
    f.idx = -1;
  }

  private destDeleted(f: Flow): boolean {
    if (f.l.removed) return true;
    try {
      return !this.core.dest(f.destId).available;
    } catch {
      return true; // its id is no longer known
    }
  }

  markRemoved(destKeys: string[], added: string[]) {
    const now = this.now();
    for (const k of destKeys) if (!this.removedAt.has(k)) this.removedAt.set(k, now);
    for (const k of added) this.removedAt.delete(k);
    if (!destKeys.length) return;
    // the flows whose entries went with their real server (expire_nodest_conn): drained from now on, detached
    const gone = new Set(destKeys);
    for (const f of this.flows()) if (f.idx >= 0 && gone.has(f.destKey) && !this.alive(f)) this.entryGone(f, "gone");
  }

  private flows(): Flow[] {
    const flows: Flow[] = [...this.tcp];
    for (const l of this.listeners.values()) if (l.flows) flows.push(...l.flows.values());
    return flows;
  }

  onDone() {
    if (this.tcp.size === 0) for (const w of this.idleWaiters.splice(0)) w();
  }

  activeFlows(): number {
    return this.tcp.size + this.udpCount;
  }

  flowsByDest(): Map<string, number> {
    this.collectCounters();
    const flows = new Map<string, number>();
    for (const c of this.tcp) flows.set(c.destKey, (flows.get(c.destKey) ?? 0) + 1);
    // every listener is visited only when some UDP flow is open: a scrape at 10k services would otherwise
    // spend 0.4 ms of its 5 ms here for nothing
    if (this.udpCount)
      for (const l of this.listeners.values())
        for (const f of l.flows?.values() ?? []) flows.set(f.destKey, (flows.get(f.destKey) ?? 0) + 1);
    return flows;
  }

  status(): Record<string, unknown> {
    return {
      pump: this.relay ? "native" : "js",
      ...(this.workers ? { workers: this.workers.status() } : {}),
      tcp: this.tcp.size,
      udpFlows: this.udpCount,
      drops: Object.fromEntries(this.drops),
      maxConns: this.opts.maxConns,
    };
  }

  // Stops listening; closes every flow (graceful: false resets them).
  async close(): Promise<void> {
    for (const l of this.listeners.values()) {
      this.stopListening(l);
      for (const f of [...(l.flows?.values() ?? [])]) f.close("shutdown");
      l.udp?.close();
    }
    this.listeners.clear();
    for (const c of [...this.tcp]) c.close("shutdown");
    this.unprobe();
    await this.workers?.stop();
  }
}
