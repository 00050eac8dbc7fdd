// The IPVS generic netlink client: public types and calls (moby/ipvs's shape). Wire encoding is in
// codec.ts, numbers in constants.ts. Every call has a timeout; every reply is checked; a refused request
// rejects with an IpvsError carrying the kernel's errno and what it means there.
//
// Batching: the kernel's netlink_rcv_skb walks every message of one sendmsg() and genetlink hands each to
// IPVS in order, so apply() packs many NEW/SET/DEL messages into one datagram. Only the last message asks
// for an ACK; a failing message still gets its own NLMSG_ERROR (netlink answers errors unasked), and as
// replies come back in order, the last ACK means every earlier message was processed. Dumps cannot be
// batched on one socket (a second dump while one runs gets EBUSY), so dest dumps fan out over a small pool
// of sockets instead.
import { createRequire } from "node:module";
import { execFile } from "node:child_process";
import type { VirtualService, RealServer, IpvsTimeouts } from "../model/types.ts";
import { serviceKey, realServerKey } from "../model/types.ts";
import type { RealServerStatus, TargetInfo } from "../model/target.ts";
import * as C from "./constants.ts";
import {
  Writer,
  errorCode,
  putService,
  serviceRequest,
  putDest,
  putTimeouts,
  parseService,
  parseDest,
  parseInfo,
  parseConfig,
  parseFamilyId,
  putDaemon,
  parseDaemon,
  serviceAf,
  CodecError,
  type RawMessage,
  type KernelService,
} from "./codec.ts";
import { nativeDump, type NativeDump } from "./native-dump.ts";
import { decodeDests, type EncodedTable } from "./table.ts";
import type { DaemonState, SyncDaemon } from "../model/daemon.ts";

export type { KernelService } from "./codec.ts";

// The netlink package is CommonJS; only its raw socket layer is used (the framing is ours).
interface RawSocket {
  send(
    msg: Uint8Array | Uint8Array[],
    options?: { port?: number },
    cb?: (err?: Error & { errno?: number }) => void,
  ): void;
  on(ev: "message" | "truncatedMessage", fn: (buf: Buffer) => void): void;
  on(ev: "error", fn: (err: Error & { errno?: number; code?: string }) => void): void;
  close(): void;
  unref(): void;
  ref(): void;
  getRecvBufferSize(): number;
  getSendBufferSize(): number;
}
type RawCtor = new (
  protocol: number,
  opts?: { recvBufferSize?: number; sendBufferSize?: number; messagePeeking?: boolean; msgBufferSize?: number },
) => RawSocket;
let RawNetlinkSocket: RawCtor | undefined;
function rawCtor(): RawCtor {
  if (!RawNetlinkSocket) {
    const require = createRequire(import.meta.url);
    RawNetlinkSocket = (require("netlink/dist/raw.js") as { RawNetlinkSocket: RawCtor }).RawNetlinkSocket;
  }
  return RawNetlinkSocket;
}

// ---------------------------------------------------------------------------------------------------
// Errors

export class IpvsError extends Error {
  readonly errno: number;
  readonly code: string;
  readonly meaning: string;
  constructor(
    readonly what: string,
    errno: number,
    meaning?: string,
  ) {
    const code = C.ERRNO_NAMES[errno] ?? `errno ${errno}`;
    const m = meaning ?? C.ERRNO_MEANINGS[errno] ?? "kernel refused";
    super(`${what}: ${m} (${code})`);
    this.name = "IpvsError";
    this.errno = errno;
    this.code = code;
    this.meaning = m;
  }
}

export const NO_IPVS_MESSAGE =
  "this kernel has no IPVS (the ip_vs module is missing or CONFIG_IP_VS is unset): " +
  "`wasmvs proxy` runs the same tables in userspace";

/** The kernel has no "IPVS" generic netlink family. The message is one line, meant to be printed as is. */
export class NoIpvsError extends Error {
  readonly errno = C.ERRNO.ENOENT;
  readonly code = "ENOENT";
  constructor() {
    super(NO_IPVS_MESSAGE);
    this.name = "NoIpvsError";
  }
}

/** What an errno means for this command (ENOENT differs between service and destination commands). */
export function errnoMeaning(cmd: number, errno: number): string {
  if (cmd === C.IPVS_CMD_NEW_DAEMON || cmd === C.IPVS_CMD_DEL_DAEMON) {
    if (errno === C.ERRNO.EEXIST) return "a sync daemon in this state is running already";
    if (errno === C.ERRNO.ESRCH) return "no sync daemon in this state is running";
    if (errno === C.ERRNO.EINVAL && cmd === C.IPVS_CMD_NEW_DAEMON)
      return "invalid argument (a group that is not multicast, or destinations of both address families)";
  }
  const svcCmd = cmd === C.IPVS_CMD_NEW_SERVICE || cmd === C.IPVS_CMD_SET_SERVICE;
  if (errno === C.ERRNO.ENOENT && svcCmd) return "unknown scheduler or persistence engine (no such ip_vs_* module)";
  if (errno === C.ERRNO.ESRCH || (errno === C.ERRNO.ENOENT && cmd === C.IPVS_CMD_DEL_SERVICE)) return "no such service";
  if (errno === C.ERRNO.EEXIST)
    return cmd === C.IPVS_CMD_NEW_DEST
      ? "destination already exists"
      : cmd === C.IPVS_CMD_NEW_SERVICE
        ? "service already exists"
        : "already exists";
  if (errno === C.ERRNO.ENOENT) return "no such destination";
  return C.ERRNO_MEANINGS[errno] ?? "kernel refused";
}

// ---------------------------------------------------------------------------------------------------
// Operations (what apply() batches)

export type Op =
  | { op: "addService"; service: VirtualService }
  | { op: "editService"; service: VirtualService }
  | { op: "deleteService"; service: VirtualService }
  | { op: "addDest"; service: VirtualService; dest: RealServer }
  | { op: "editDest"; service: VirtualService; dest: RealServer }
  | { op: "deleteDest"; service: VirtualService; dest: Pick<RealServer, "addr" | "port"> };

export interface OpResult {
  op: Op;
  error?: IpvsError;
}

const OP_CMD: Record<Op["op"], number> = {
  addService: C.IPVS_CMD_NEW_SERVICE,
  editService: C.IPVS_CMD_SET_SERVICE,
  deleteService: C.IPVS_CMD_DEL_SERVICE,
  addDest: C.IPVS_CMD_NEW_DEST,
  editDest: C.IPVS_CMD_SET_DEST,
  deleteDest: C.IPVS_CMD_DEL_DEST,
};

export function describeOp(o: Op): string {
  const s = serviceKey(o.service);
  switch (o.op) {
    case "addService":
      return `add service ${s}`;
    case "editService":
      return `edit service ${s}`;
    case "deleteService":
      return `delete service ${s}`;
    case "addDest":
      return `add real server ${realServerKey(o.dest)} to ${s}`;
    case "editDest":
      return `edit real server ${realServerKey(o.dest)} of ${s}`;
    case "deleteDest":
      return `delete real server ${realServerKey(o.dest)} from ${s}`;
  }
}

// ---------------------------------------------------------------------------------------------------
// One netlink socket: requests keyed by sequence number

// One request (or one batch: sequence numbers first..last) waiting for its answer. A class rather than
// closures: under emulation a few closures per request cost more than the request.
class Pending {
  error?: number; // the single request's errno
  errors?: Map<number, number>; // seq -> errno (batches)
  deadline: number;
  private released = false;
  settled = false;
  resolveFn!: (v: { error?: number; errors?: Map<number, number> }) => void;
  rejectFn!: (e: Error) => void;
  constructor(
    readonly conn: Conn,
    readonly first: number,
    readonly last: number,
    readonly what: string,
    readonly timeoutMs: number,
    readonly weight: number,
    readonly onMsg: ((m: RawMessage) => void) | undefined,
    batch: boolean,
    readonly sink?: MsgSink,
  ) {
    this.deadline = performance.now() + timeoutMs;
    if (batch) this.errors = new Map();
  }
  drop(): void {
    for (let s = this.first; s !== (this.last + 1) >>> 0; s = (s + 1) >>> 0) this.conn.forget(s);
  }
  private release(): void {
    if (!this.released) {
      this.released = true;
      this.conn.release(this.weight);
    }
  }
  resolve(): void {
    this.settled = true;
    this.release();
    this.resolveFn({ error: this.error, errors: this.errors });
  }
  reject(e: Error): void {
    this.settled = true;
    this.release();
    this.rejectFn(e);
  }
  timeout(): void {
    this.drop();
    this.reject(new IpvsError(this.what, C.ERRNO.ETIMEDOUT, `no answer from the kernel within ${this.timeoutMs} ms`));
  }
  sent(err?: Error & { errno?: number }): void {
    if (!err) return;
    this.drop();
    this.reject(new IpvsError(`${this.what} (sendmsg)`, err.errno ?? 0));
  }
}

/** Where a request's reply messages go (an object rather than a closure per request). */
interface MsgSink {
  msg(m: RawMessage): void;
}

class DestSink implements MsgSink {
  out: RealServerStatus[] = [];
  constructor(private af: number) {}
  msg(m: RawMessage): void {
    const d = parseDest(m, this.af);
    if (d) this.out.push(d);
  }
}

class Conn {
  private sock: RawSocket;
  private seq = (Math.random() * 0x7fffffff) >>> 0;
  private pending = new Map<number, Pending>();
  readonly maxSend: number;
  closed = false;

  /**
   * recvBuf: 0 = the package peeks at each datagram's size, then reads it (two recvmsg per datagram);
   * otherwise every datagram is read at once into a buffer of this size (one recvmsg). The kernel sizes a
   * dump's datagrams by the largest read buffer it has seen (netlink_dump: max_recvmsg_len, at most
   * 32 KiB; at least NLMSG_GOODSIZE, at most 8 KiB), so with peeking a dump comes in ~3.7 KiB pieces (a
   * service with 10 real servers: two datagrams and a DONE, seven recvmsg calls) and with a 16 KiB buffer
   * in one datagram and a DONE (three recvmsg calls). Every datagram then fits (nothing is truncated: the
   * kernel never builds a dump datagram larger than the buffer that reads it, and the other replies are
   * small); a truncated one would fail the socket rather than hang. Small datagrams are copied out of the
   * fixed-size buffer so that what the parsers keep (LazyStats) does not retain it.
   */
  constructor(readonly recvBuf = 0) {
    const Raw = rawCtor();
    this.sock = new Raw(
      C.NETLINK_GENERIC,
      recvBuf > 0
        ? { recvBufferSize: 8 << 20, sendBufferSize: 8 << 20, messagePeeking: false, msgBufferSize: recvBuf }
        : { recvBufferSize: 8 << 20, sendBufferSize: 8 << 20 },
    );
    this.sock.unref(); // pending requests hold their own timers; an idle client does not keep node alive
    // never let an exception escape into the native callback (it would abort the process)
    const half = recvBuf >> 1;
    this.sock.on(
      "message",
      recvBuf > 0
        ? (buf) => {
            try {
              this.onData(buf.length <= half ? Buffer.from(buf) : buf);
            } catch (e) {
              this.failAll(e as Error);
            }
          }
        : (buf) => {
            try {
              this.onData(buf);
            } catch (e) {
              this.failAll(e as Error);
            }
          },
    );
    this.sock.on("truncatedMessage", () => {
      this.failAll(
        new IpvsError(
          "netlink socket: reply truncated",
          C.ERRNO.EMSGSIZE,
          `a reply did not fit the ${recvBuf}-byte receive buffer: re-read the kernel's state`,
        ),
      );
    });
    this.sock.on("error", (err) => {
      if (process.env.WASMVS_NL_DEBUG) process.stderr.write(`netlink socket error: ${err.message}\n`);
      const errno = err.errno ?? 0;
      this.failAll(
        new IpvsError(
          errno === C.ERRNO.ENOBUFS ? "netlink socket: replies lost" : "netlink socket",
          errno,
          errno === C.ERRNO.ENOBUFS
            ? "receive buffer overrun: some replies were lost, re-read the kernel's state"
            : undefined,
        ),
      );
    });
    // the kernel refuses a datagram longer than sk_sndbuf - 32
    this.maxSend = Math.max(4096, Math.min(this.sock.getSendBufferSize() - 512, 256 << 10));
    // a small reply (ACK, error with the request copied, GET_INFO) takes up to about 1 KiB of the receive
    // buffer (skb truesize); keep the worst case under half of it
    this.replyBudget = Math.max(16, Math.floor(this.sock.getRecvBufferSize() / 2048));
  }

  nextSeq(n = 1): number {
    if (this.seq === 0 || this.seq + n > 0xffffffff) this.seq = 1; // never wrap inside a batch
    const s = this.seq;
    this.seq += n;
    return s;
  }

  // one message view reused for every message (handlers parse it synchronously and keep no reference
  // to it; what they keep, like LazyStats, refers to the datagram)
  private readonly msg: RawMessage = { type: 0, flags: 0, seq: 0, pid: 0, buf: Buffer.alloc(0), off: 0, len: 0 };
  private onData(buf: Buffer): void {
    const m = this.msg;
    m.buf = buf;
    let off = 0;
    const n = buf.length;
    while (off + C.NLMSG_HDRLEN <= n) {
      const len = buf.readUInt32LE(off);
      if (len < C.NLMSG_HDRLEN || off + len > n) break;
      m.type = buf.readUInt16LE(off + 4);
      m.flags = buf.readUInt16LE(off + 6);
      m.seq = buf.readUInt32LE(off + 8);
      m.pid = buf.readUInt32LE(off + 12);
      m.off = off;
      m.len = len;
      off += (len + 3) & ~3;
      const p = this.pending.get(m.seq);
      if (!p) continue;
      if (m.type === C.NLMSG_ERROR) {
        const e = errorCode(m);
        if (p.errors) {
          if (e) p.errors.set(m.seq, e);
        } else if (e) p.error = e;
        if (m.seq === p.last) this.finish(p);
      } else if (m.type === C.NLMSG_DONE) {
        if (m.len >= C.NLMSG_HDRLEN + 4) {
          const e = -m.buf.readInt32LE(m.off + C.NLMSG_HDRLEN);
          if (e > 0) p.error = e;
        }
        this.finish(p);
      } else if (m.type !== C.NLMSG_OVERRUN && m.type !== 1 /* NOOP */) {
        if (p.sink) p.sink.msg(m);
        else p.onMsg?.(m);
      }
    }
  }

  private finish(p: Pending): void {
    for (let s = p.first; s !== (p.last + 1) >>> 0; s = (s + 1) >>> 0) this.pending.delete(s);
    p.resolve();
  }

  private failAll(e: Error): void {
    const seen = new Set<Pending>();
    for (const p of this.pending.values())
      if (!seen.has(p)) {
        seen.add(p);
        p.reject(e);
      }
    this.pending.clear();
  }

  /**
   * Sends `data` (messages with sequence numbers first..last) and resolves when the message numbered
   * `last` is answered (ACK, error, or DONE for a dump).
   */
  exchange(
    data: Buffer,
    first: number,
    last: number,
    what: string,
    timeoutMs: number,
    opts: { onMsg?: (m: RawMessage) => void; sink?: MsgSink; batch?: boolean; weight?: number } = {},
  ): Promise<{ error?: number; errors?: Map<number, number> }> {
    if (this.closed) return Promise.reject(new IpvsError(what, C.ERRNO.EBUSY, "the netlink client is closed"));
    const p = new Pending(this, first, last, what, timeoutMs, opts.weight ?? 2, opts.onMsg, !!opts.batch, opts.sink);
    const promise = new Promise<{ error?: number; errors?: Map<number, number> }>((res, rej) => {
      p.resolveFn = res;
      p.rejectFn = rej;
    });
    for (let s = first; s !== (last + 1) >>> 0; s = (s + 1) >>> 0) this.pending.set(s, p);
    this.armTimer(timeoutMs);
    this.enqueue(data, p);
    return promise;
  }

  forget(seq: number): void {
    this.pending.delete(seq);
  }

  // timeouts: one timer per socket, checking deadlines while requests are pending (a timer per request
  // costs more than the request under emulation)
  private timer?: NodeJS.Timeout;
  private armTimer(timeoutMs: number): void {
    if (this.timer) return;
    const tick = Math.max(10, Math.min(250, timeoutMs / 4));
    this.timer = setInterval(() => {
      if (!this.pending.size) {
        clearInterval(this.timer);
        this.timer = undefined;
        return;
      }
      const now = performance.now();
      const late = new Set<Pending>();
      for (const p of this.pending.values()) if (p.deadline <= now) late.add(p);
      for (const p of late) p.timeout();
    }, tick);
  }

  // One send at a time per socket, and a bound on the replies that may be waiting in the receive buffer.
  // Both protect against the netlink package: its native send queue aborts the process when many sends
  // are queued in one tick, and a receive-buffer overrun (the kernel's ENOBUFS) reaches its poll handler,
  // which aborts the process too. Replies are bounded by `weight` (the messages of a datagram that may
  // answer). The kernel handles each datagram synchronously inside sendmsg(), so this costs little.
  private sendQueue: { data: Buffer; p: Pending }[] = [];
  private sending = false;
  private inflight = 0;
  readonly replyBudget: number;
  private enqueue(data: Buffer, p: Pending): void {
    this.sendQueue.push({ data, p });
    if (!this.sending) this.pump();
  }
  release(weight: number): void {
    this.inflight -= weight;
    if (!this.sending) this.pump();
  }
  static sendMs = 0; // time inside sendmsg() (the kernel's own processing): for the benchmark
  private pump(): void {
    while (this.sendQueue.length && this.sendQueue[0].p.settled) this.sendQueue.shift(); // timed out while queued
    const next = this.sendQueue[0];
    if (!next || this.closed) {
      this.sending = false;
      return;
    }
    if (this.inflight > 0 && this.inflight + next.p.weight > this.replyBudget) {
      this.sending = false;
      return;
    }
    this.sendQueue.shift();
    this.sending = true;
    this.inflight += next.p.weight;
    const t = performance.now();
    this.sock.send(next.data, { port: 0 }, (err) => {
      try {
        next.p.sent(err);
      } catch {
        /* never into the native callback */
      }
      this.pump();
    });
    Conn.sendMs += performance.now() - t;
  }

  /**
   * Makes the kernel build this socket's dump datagrams up to `bytes` long. netlink_dump sizes them by
   * the largest read the socket has made (max_recvmsg_len) and the package reads each datagram at its
   * exact size, so without this they stay ~3.7 KiB (NLMSG_GOODSIZE) and a service with 10 real servers
   * comes back in two datagrams plus the DONE. One refused request (a genl command IPVS does not have)
   * whose error echoes it back, `bytes` long, raises that size for the socket's lifetime: afterwards up
   * to ~40 real servers come in one datagram (two fewer recvmsg calls and one fewer kernel dump call per
   * service). The refusal (EOPNOTSUPP) is the expected answer.
   */
  async prime(family: number, bytes: number, timeoutMs: number): Promise<void> {
    const n = Math.max(64, Math.min(bytes, this.maxSend)) & ~3;
    const b = Buffer.alloc(n);
    const seq = this.nextSeq();
    b.writeUInt32LE(n, 0);
    b.writeUInt16LE(family, 4);
    b.writeUInt16LE(C.NLM_F_REQUEST | C.NLM_F_ACK, 6);
    b.writeUInt32LE(seq, 8);
    b[16] = 0;
    b[17] = C.IPVS_GENL_VERSION; // IPVS_CMD_UNSPEC: no such operation
    await this.exchange(b, seq, seq, "size the dump datagrams", timeoutMs, { weight: Math.ceil(n / 1024) + 2 });
  }

  /** Runs fn with this socket's dump slot (one dump at a time per socket). */
  withDump<T>(fn: () => Promise<T>): Promise<T> {
    if (!this.dumping) {
      this.dumping = true;
      let r: Promise<T>;
      try {
        r = fn();
      } catch (e) {
        r = Promise.reject(e);
      }
      r.then(this.dumpDone, this.dumpDone);
      return r;
    }
    return new Promise<T>((res, rej) =>
      this.dumpWaiters.push(() => {
        let r: Promise<T>;
        try {
          r = fn();
        } catch (e) {
          r = Promise.reject(e);
        }
        r.then(this.dumpDone, this.dumpDone);
        r.then(res, rej);
      }),
    );
  }
  private dumping = false;
  private dumpWaiters: (() => void)[] = [];
  private readonly dumpDone = (): void => {
    const next = this.dumpWaiters.shift();
    if (next) next();
    else this.dumping = false;
  };

  /** One dump request (its sequence number is written here) whose messages go to `sink`. */
  dumpExchange(data: Buffer, sink: MsgSink, timeoutMs: number): Promise<{ error?: number }> {
    if (this.dumping) return this.withDump(() => this.sendDump(data, sink, timeoutMs));
    this.dumping = true;
    const r = this.sendDump(data, sink, timeoutMs);
    r.then(this.dumpDone, this.dumpDone);
    return r;
  }
  private sendDump(data: Buffer, sink: MsgSink, timeoutMs: number): Promise<{ error?: number }> {
    const seq = this.nextSeq();
    data.writeUInt32LE(seq, 8);
    return this.exchange(data, seq, seq, "list real servers (GET_DEST dump)", timeoutMs, { sink, weight: 8 });
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.timer);
    this.timer = undefined;
    this.failAll(new IpvsError("netlink", C.ERRNO.EBUSY, "the netlink client was closed"));
    this.sock.close();
  }
}

// ---------------------------------------------------------------------------------------------------
// The client

export interface ClientOptions {
  timeoutMs?: number; // per call (a batch counts as one call per datagram); default 5000
  dumpSockets?: number; // sockets for parallel destination dumps; default 16
  nativeDumps?: boolean; // read destinations through native/netlink-dump when it is built; default true
  maxBatch?: number; // messages per datagram; default 256, and never more than the receive buffer can answer
  ackEach?: boolean; // ask for an ACK on every message of a batch (measurement; default false)
  loadModule?: boolean; // try `modprobe ip_vs` when the family is missing; default true
  recvBuffer?: number; // the service dump's socket: bytes per read (see Conn); 0 = peek first; default 32768
  primeDumps?: boolean; // raise the dump pool's datagram size to 16 KiB (Conn.prime); default true
}

export interface ServiceWithDests extends KernelService {
  realServers: RealServerStatus[];
}

/** Milliseconds spent inside sendmsg() so far (kernel processing of our requests), for benchmarks. */
export function sendTimeMs(): number {
  return Conn.sendMs;
}

/** What a request to a vanished family means: the kernel answers ENOENT for an unknown genl family id. */
export const FAMILY_GONE = "the kernel's IPVS generic netlink family is gone (the ip_vs module was unloaded)";

export class IpvsClient {
  /** The IPVS generic netlink family id; re-resolved when the module was reloaded (a new id). */
  family: number;
  private main: Conn;
  private pool: Conn[] = [];
  private w = new Writer(256 << 10);
  readonly timeoutMs: number;
  readonly maxBatch: number;
  readonly ackEach: boolean;
  private dumpSockets: number;

  private constructor(main: Conn, family: number, o: ClientOptions) {
    this.main = main;
    this.family = family;
    this.timeoutMs = o.timeoutMs ?? 5000;
    this.maxBatch = Math.max(1, o.maxBatch ?? 256);
    this.ackEach = o.ackEach ?? false;
    this.dumpSockets = Math.max(1, o.dumpSockets ?? 16);
    this.recvBuffer = o.recvBuffer === undefined ? 32768 : o.recvBuffer > 0 ? Math.max(8192, o.recvBuffer) : 0;
    this.primeDumps = o.primeDumps ?? true;
    this.nativeDumps = o.nativeDumps ?? true;
  }
  private nativeDumps: boolean;
  private primeDumps: boolean;
  private recvBuffer: number;
  // The service dump runs on its own socket that reads into a fixed 32 KiB buffer, so the kernel sends it
  // in 32 KiB datagrams instead of ~3.7 KiB ones: IPVS's service dump re-walks the table from the start
  // for every datagram, so that is 9x fewer walks (measured at 10k services: 1.2-2.5 s -> 0.4-0.6 s).
  // Everything else peeks (each small reply would pay a 32 KiB allocation otherwise: measured dearer
  // than the extra recvmsg, e.g. dest dumps at 1k services: peeking 781 ms, 8 KiB 968 ms, 16 KiB 1233 ms).
  private svcConn?: Conn;

  /** Opens a socket and resolves the "IPVS" family. Rejects with NoIpvsError when the kernel has none. */
  static async open(o: ClientOptions = {}): Promise<IpvsClient> {
    const timeoutMs = o.timeoutMs ?? 5000;
    let conn: Conn;
    try {
      conn = new Conn();
    } catch (e) {
      const err = e as Error & { errno?: number };
      throw new IpvsError("opening a generic netlink socket", err.errno ?? 0, err.message);
    }
    try {
      let id = await resolveFamily(conn, timeoutMs);
      if (!id && o.loadModule !== false) {
        await new Promise<void>((res) => execFile("modprobe", ["-q", "ip_vs"], { timeout: 3000 }, () => res()));
        id = await resolveFamily(conn, timeoutMs);
      }
      if (!id) throw new NoIpvsError();
      return new IpvsClient(conn, id, o);
    } catch (e) {
      conn.close();
      throw e;
    }
  }

  /** Messages per datagram in apply(): maxBatch, bounded by what the receive buffer can answer. */
  get batchSize(): number {
    return Math.min(this.maxBatch, this.main.replyBudget);
  }

  close(): void {
    this.main.close();
    this.svcConn?.close();
    for (const c of this.pool) c.close();
    this.pool = [];
  }

  // --- single requests ----------------------------------------------------------------------------

  /**
   * After an ENOENT: whether the IPVS family moved. Reloading ip_vs (rmmod, modprobe) registers the
   * family under a new id, and the kernel answers ENOENT to the old one, as IPVS itself does for a missing
   * destination. Resolving the name tells them apart: a new id is taken (true: retry the request); no
   * family at all is an IpvsError saying so; the same id means the ENOENT was IPVS's own (false).
   */
  async familyMoved(what: string): Promise<boolean> {
    const id = await resolveFamily(this.main, this.timeoutMs);
    if (!id) throw new IpvsError(what, C.ERRNO.ENOENT, FAMILY_GONE);
    if (id === this.family) return false;
    this.family = id;
    return true;
  }

  /** Runs a request, once more if it failed because the family moved (see familyMoved). */
  private async sameFamily<T>(what: string, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (e) {
      if (!(e instanceof IpvsError) || e.errno !== C.ERRNO.ENOENT || !(await this.familyMoved(what))) throw e;
      return fn();
    }
  }

  /** One request; resolves with the messages it got back (doit replies or dump parts). */
  private request(
    cmd: number,
    what: string,
    fill: ((w: Writer) => void) | null,
    dump = false,
    conn = this.main,
    onMsg?: (m: RawMessage) => void,
  ): Promise<void> {
    return this.sameFamily(what, () => this.requestOnce(cmd, what, fill, dump, conn, onMsg));
  }
  private async requestOnce(
    cmd: number,
    what: string,
    fill: ((w: Writer) => void) | null,
    dump: boolean,
    conn: Conn,
    onMsg?: (m: RawMessage) => void,
  ): Promise<void> {
    const w = new Writer(512);
    const seq = conn.nextSeq();
    const at = w.begin(this.family, C.NLM_F_REQUEST | C.NLM_F_ACK | (dump ? C.NLM_F_DUMP : 0), seq, cmd);
    try {
      fill?.(w);
    } catch (e) {
      if (e instanceof CodecError) throw new IpvsError(what, e.errno, e.message);
      throw e;
    }
    w.end(at);
    const run = () => conn.exchange(w.take(), seq, seq, what, this.timeoutMs, { onMsg, weight: dump ? 8 : 2 });
    const r = await (dump ? conn.withDump(run) : run());
    if (r.error) throw new IpvsError(what, r.error, errnoMeaning(cmd, r.error));
  }

  async info(): Promise<TargetInfo> {
    let info: TargetInfo | undefined;
    await this.request(C.IPVS_CMD_GET_INFO, "get IPVS info", null, false, this.main, (m) => {
      info = parseInfo(m);
    });
    if (!info) throw new IpvsError("get IPVS info", C.ERRNO.EINVAL, "the kernel sent no info");
    return info;
  }

  async getConfig(): Promise<IpvsTimeouts> {
    let t: IpvsTimeouts | undefined;
    await this.request(C.IPVS_CMD_GET_CONFIG, "get timeouts", null, false, this.main, (m) => {
      t = parseConfig(m);
    });
    if (!t) throw new IpvsError("get timeouts", C.ERRNO.EINVAL, "the kernel sent no timeouts");
    return t;
  }

  /** SET_CONFIG; a 0 or absent value keeps the kernel's current one (the kernel's rule). */
  setConfig(t: Partial<IpvsTimeouts>): Promise<void> {
    return this.request(C.IPVS_CMD_SET_CONFIG, "set timeouts", (w) => putTimeouts(w, t));
  }

  /** Every service (a dump), without destinations. */
  async services(): Promise<KernelService[]> {
    let out: KernelService[] = [];
    if (!this.svcConn && this.recvBuffer) this.svcConn = new Conn(this.recvBuffer);
    await this.sameFamily("list services", () => {
      out = [];
      return this.requestOnce(C.IPVS_CMD_GET_SERVICE, "list services", null, true, this.svcConn ?? this.main, (m) => {
        const s = parseService(m);
        if (s) out.push(s);
      });
    });
    return out;
  }

  /** One service (GET_SERVICE doit); undefined when the kernel says ESRCH. */
  async getService(s: VirtualService): Promise<KernelService | undefined> {
    let out: KernelService | undefined;
    try {
      await this.request(
        C.IPVS_CMD_GET_SERVICE,
        `get service ${serviceKey(s)}`,
        (w) => putService(w, s, false),
        false,
        this.main,
        (m) => {
          out = parseService(m);
        },
      );
    } catch (e) {
      if (e instanceof IpvsError && (e.errno === C.ERRNO.ESRCH || e.errno === C.ERRNO.ENOENT)) return undefined;
      throw e;
    }
    return out;
  }

  /** A service's destinations, in the kernel's list order (newest first). */
  dests(s: VirtualService, conn = this.main): Promise<RealServerStatus[]> {
    return this.sameFamily(`list real servers of ${serviceKey(s)}`, () => this.destsOnce(s, conn));
  }
  private async destsOnce(s: VirtualService, conn: Conn): Promise<RealServerStatus[]> {
    // the hot path of dump(): the request is the cached identity nest behind a header, the replies go
    // to a collector object (no Writer, no closures), and the dump slot is taken without a promise chain
    // when the socket is free
    let data: Buffer;
    try {
      data = serviceRequest(this.family, C.NLM_F_REQUEST | C.NLM_F_ACK | C.NLM_F_DUMP, C.IPVS_CMD_GET_DEST, s);
    } catch (e) {
      if (e instanceof CodecError) throw new IpvsError(`list real servers of ${serviceKey(s)}`, e.errno, e.message);
      throw e;
    }
    const sink = new DestSink(serviceAf(s));
    const r = await conn.dumpExchange(data, sink, this.timeoutMs);
    if (r.error) {
      const what = `list real servers of ${serviceKey(s)}`;
      throw new IpvsError(what, r.error, errnoMeaning(C.IPVS_CMD_GET_DEST, r.error));
    }
    return sink.out;
  }

  /** Every service with its destinations: one service dump, then dest dumps over the socket pool. */
  async dump(): Promise<ServiceWithDests[]> {
    const svcs = await this.services();
    const native = this.nativeDumps ? nativeDump() : null;
    if (native && svcs.length) return this.dumpNative(native, svcs);
    if (this.pool.length < Math.min(this.dumpSockets, svcs.length)) {
      const fresh: Conn[] = [];
      while (this.pool.length < Math.min(this.dumpSockets, svcs.length)) {
        const c = new Conn();
        this.pool.push(c);
        fresh.push(c);
      }
      if (this.primeDumps)
        await Promise.all(fresh.map((c) => c.prime(this.family, 16384, this.timeoutMs).catch(() => undefined)));
    }
    let next = 0;
    const worker = async (c: Conn) => {
      while (next < svcs.length) {
        const s = svcs[next++];
        s.realServers = await this.dests(s, c);
      }
    };
    await Promise.all(this.pool.slice(0, Math.max(1, Math.min(this.pool.length, svcs.length))).map(worker));
    return svcs as ServiceWithDests[];
  }

  /** dump()'s destination half through the native loop: every GET_DEST request built here, sent and
   *  answered there in one run, each answer parsed here as the socket path would. */
  private dumpNative(native: NativeDump, svcs: KernelService[]): Promise<ServiceWithDests[]> {
    return this.sameFamily("list real servers (GET_DEST dumps)", () => this.dumpNativeOnce(native, svcs));
  }
  private async dumpNativeOnce(native: NativeDump, svcs: KernelService[]): Promise<ServiceWithDests[]> {
    const t = await this.destReplies(native, svcs);
    for (let i = 0; i < svcs.length; i++) (svcs[i] as ServiceWithDests).realServers = decodeDests(t, i);
    return svcs as ServiceWithDests[];
  }
  // every GET_DEST request built here, sent and answered in the native loop; a refused one throws
  private async destReplies(native: NativeDump, svcs: KernelService[]): Promise<EncodedTable> {
    const reqs: Buffer[] = [];
    const starts = new Uint32Array(svcs.length);
    const afs = new Uint8Array(svcs.length);
    let at = 0;
    for (let i = 0; i < svcs.length; i++) {
      let data: Buffer;
      try {
        data = serviceRequest(this.family, C.NLM_F_REQUEST | C.NLM_F_ACK | C.NLM_F_DUMP, C.IPVS_CMD_GET_DEST, svcs[i]);
      } catch (e) {
        if (e instanceof CodecError)
          throw new IpvsError(`list real servers of ${serviceKey(svcs[i])}`, e.errno, e.message);
        throw e;
      }
      reqs.push(data);
      starts[i] = at;
      at += data.length;
      afs[i] = serviceAf(svcs[i]);
    }
    let res: { replies: Buffer; index: Int32Array };
    try {
      res = await native.dumpRun(Buffer.concat(reqs, at), starts, this.timeoutMs);
    } catch (e) {
      throw new IpvsError(
        "list real servers (GET_DEST dumps)",
        (e as { errno?: number }).errno ?? 0,
        (e as Error).message,
      );
    }
    for (let i = 0; i < svcs.length; i++) {
      const err = res.index[i * 3 + 2];
      if (err)
        throw new IpvsError(`list real servers of ${serviceKey(svcs[i])}`, err, errnoMeaning(C.IPVS_CMD_GET_DEST, err));
    }
    return { services: svcs, replies: res.replies, index: res.index, afs };
  }

  /**
   * The whole table with the destinations left encoded (see table.ts): what a full reconcile pass reads,
   * so that it need not build an object per real server. null when the native loop is not built (then
   * dump() reads through the sockets).
   */
  async dumpEncoded(): Promise<EncodedTable | null> {
    const native = this.nativeDumps ? nativeDump() : null;
    if (!native) return null;
    const svcs = await this.services();
    if (!svcs.length) {
      return { services: svcs, replies: Buffer.alloc(0), index: new Int32Array(0), afs: new Uint8Array(0) };
    }
    return this.sameFamily("list real servers (GET_DEST dumps)", () => this.destReplies(native, svcs));
  }

  addService(s: VirtualService): Promise<void> {
    return this.one({ op: "addService", service: s });
  }
  editService(s: VirtualService): Promise<void> {
    return this.one({ op: "editService", service: s });
  }
  deleteService(s: VirtualService): Promise<void> {
    return this.one({ op: "deleteService", service: s });
  }
  addDest(s: VirtualService, d: RealServer): Promise<void> {
    return this.one({ op: "addDest", service: s, dest: d });
  }
  editDest(s: VirtualService, d: RealServer): Promise<void> {
    return this.one({ op: "editDest", service: s, dest: d });
  }
  deleteDest(s: VirtualService, d: Pick<RealServer, "addr" | "port">): Promise<void> {
    return this.one({ op: "deleteDest", service: s, dest: d });
  }

  /** ZERO: one service's counters, or every counter. */
  zero(s?: VirtualService): Promise<void> {
    return this.request(
      C.IPVS_CMD_ZERO,
      s ? `zero ${serviceKey(s)}` : "zero counters",
      s ? (w) => putService(w, s, false) : null,
    );
  }
  /** FLUSH: delete every service. */
  flush(): Promise<void> {
    return this.request(C.IPVS_CMD_FLUSH, "flush", null);
  }

  // --- the connection sync daemon -------------------------------------------------------------------

  /** NEW_DAEMON. The configuration is checked before anything is sent (a bad value: EINVAL naming the
   * field); the kernel's refusals: EEXIST (one of this state runs already), ENODEV (no such interface). */
  startDaemon(d: SyncDaemon): Promise<void> {
    return this.request(C.IPVS_CMD_NEW_DAEMON, `start the ${d.state} sync daemon`, (w) => putDaemon(w, d));
  }
  /** DEL_DAEMON; ESRCH when no daemon of this state runs. */
  stopDaemon(state: DaemonState): Promise<void> {
    return this.request(C.IPVS_CMD_DEL_DAEMON, `stop the ${state} sync daemon`, (w) => putDaemon(w, { state }));
  }
  /** GET_DAEMON (a dump): the running daemons, master first. */
  async daemons(): Promise<SyncDaemon[]> {
    let out: SyncDaemon[] = [];
    await this.sameFamily("list sync daemons", () => {
      out = [];
      return this.requestOnce(C.IPVS_CMD_GET_DAEMON, "list sync daemons", null, true, this.main, (m) => {
        const d = parseDaemon(m);
        if (d) out.push(d);
      });
    });
    return out.sort((a, b) => (a.state === b.state ? 0 : a.state === "master" ? -1 : 1));
  }

  private async one(o: Op): Promise<void> {
    const [r] = await this.apply([o]);
    if (r.error) throw r.error;
  }

  // --- batches ------------------------------------------------------------------------------------

  /**
   * Applies the operations in order, many per datagram. Never rejects for a refused operation: each
   * result carries its own error, and the rest are applied. Rejects only when the socket fails (then the
   * state of the unanswered part is unknown: re-read before trusting it).
   */
  async apply(ops: Op[], onBatch?: (done: number) => void): Promise<OpResult[]> {
    const results = await this.applyOnce(ops, onBatch);
    // refused with ENOENT: IPVS's own answer (no such destination), or the family moved (module reloaded)
    const enoent = results.filter((r) => r.error?.errno === C.ERRNO.ENOENT);
    if (enoent.length && (await this.familyMoved(describeOp(enoent[0].op)))) {
      const again = await this.applyOnce(enoent.map((r) => r.op));
      enoent.forEach((r, i) => {
        r.error = again[i].error;
      });
    }
    return results;
  }
  private async applyOnce(ops: Op[], onBatch?: (done: number) => void): Promise<OpResult[]> {
    const results: OpResult[] = ops.map((op) => ({ op }));
    const w = this.w;
    const conn = this.main;
    let i = 0;
    while (i < ops.length) {
      w.reset();
      const start = i;
      const seq0 = conn.nextSeq(this.maxBatch);
      const offsets: number[] = [];
      let lastAt = -1;
      const maxBatch = Math.min(this.maxBatch, conn.replyBudget);
      while (i < ops.length && i - start < maxBatch && (i === start || w.pos < conn.maxSend - 1024)) {
        const o = ops[i];
        const cmd = OP_CMD[o.op];
        const at = w.begin(this.family, C.NLM_F_REQUEST | (this.ackEach ? C.NLM_F_ACK : 0), seq0 + (i - start), cmd);
        try {
          putService(w, o.service, o.op === "addService" || o.op === "editService");
          if (o.op === "addDest" || o.op === "editDest") putDest(w, o.dest, true);
          else if (o.op === "deleteDest") putDest(w, o.dest, false);
          w.end(at);
          offsets.push(at);
          lastAt = at;
        } catch (e) {
          w.pos = at; // drop the half-written message; the op fails on its own
          results[i].error =
            e instanceof CodecError
              ? new IpvsError(describeOp(o), e.errno, e.message)
              : new IpvsError(describeOp(o), C.ERRNO.EINVAL, String(e));
        }
        i++;
      }
      if (lastAt < 0) continue;
      // the last message in the datagram asks for the ACK that closes the batch
      w.buf.writeUInt16LE(w.buf.readUInt16LE(lastAt + 6) | C.NLM_F_ACK, lastAt + 6);
      const lastSeq = w.buf.readUInt32LE(lastAt + 8);
      const r = await conn.exchange(w.take(), seq0, lastSeq, `batch of ${offsets.length}`, this.timeoutMs, {
        batch: true,
        weight: Math.min(offsets.length * (this.ackEach ? 1 : 1), conn.replyBudget),
      });
      if (r.errors?.size) {
        for (const [seq, errno] of r.errors) {
          const k = start + (seq - seq0);
          const o = ops[k];
          results[k].error = new IpvsError(describeOp(o), errno, errnoMeaning(OP_CMD[o.op], errno));
        }
      }
      onBatch?.(i);
    }
    return results;
  }
}

async function resolveFamily(conn: Conn, timeoutMs: number): Promise<number> {
  const w = new Writer(64);
  const seq = conn.nextSeq();
  const at = w.begin(C.GENL_ID_CTRL, C.NLM_F_REQUEST | C.NLM_F_ACK, seq, C.CTRL_CMD_GETFAMILY);
  w.str(C.CTRL_ATTR_FAMILY_NAME, C.IPVS_GENL_NAME);
  w.end(at);
  let id = 0;
  const r = await conn.exchange(w.take(), seq, seq, "resolve the IPVS generic netlink family", timeoutMs, {
    onMsg: (m) => {
      id = parseFamilyId(m) || id;
    },
  });
  if (r.error === C.ERRNO.ENOENT) return 0;
  if (r.error) throw new IpvsError("resolve the IPVS generic netlink family", r.error);
  return id;
}
