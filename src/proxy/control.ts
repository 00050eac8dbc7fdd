// The control socket: a unix stream socket, mode 0600 (root-only when the proxy runs as root), speaking
// newline-delimited JSON: {"id":1,"op":"addService","args":[...]} -> {"id":1,"ok":true,"result":...}
// or {"id":1,"ok":false,"error":"Service already exists"}. BigInts travel as {"$big":"123"}.
// ProxyTarget is the IpvsTarget client over it, so `wasmvs -A/-a/-e/-d/-Ln --target proxy` drive a
// running proxy the way they drive the kernel.
import * as net from "node:net";
import { chmodSync, mkdirSync, unlinkSync, existsSync } from "node:fs";
import { dirname } from "node:path";
import type { IpvsTarget, TargetInfo, ServiceStatus, ConnectionEntry } from "../model/target.ts";
import type { VirtualService, RealServer, IpvsTimeouts, DesiredState } from "../model/types.ts";
import type { Proxy } from "./index.ts";
import { type ProxyMode, type StateCommand, NextState, STATE_COMMANDS, StepError, nextState } from "./batch.ts";
import { Slicer, drained, stringifyInSlices } from "./slice.ts";
import { daemonsListing } from "./sync.ts";
import { BatchWorker, type Staged } from "./batch-host.ts";
import { type SyncDaemon, validateDaemon } from "../model/daemon.ts";
import {
  type Problem,
  describe,
  serverRequestProblems,
  serviceIdentityProblems,
  serviceRequestProblems,
  timeoutsRequestProblems,
} from "../model/validate.ts";

export const DEFAULT_CONTROL = "/run/wasmvs/proxy.sock";

const replacer = (_k: string, v: unknown) => (typeof v === "bigint" ? { $big: v.toString() } : v);

// A reply's pieces as the reader takes them: megabytes queued at once would be encoded in one turn of the loop
async function writePieces(sock: net.Socket, head: string, pieces: string[]): Promise<void> {
  sock.write(head);
  for (const piece of pieces) {
    if (sock.destroyed) return; // the client went: the rest has no reader
    if (!sock.write(piece)) await drained(sock);
  }
  if (!sock.destroyed) sock.write("}\n");
}

// A result already in JSON text, in pieces made in stretches of the loop (a large listing): written as it is.
class Serialized {
  constructor(readonly pieces: string[]) {}
}
const reviver = (_k: string, v: unknown) => {
  const big = v && typeof v === "object" ? (v as { $big?: unknown }).$big : undefined;
  return typeof big === "string" && Object.keys(v as object).length === 1 ? BigInt(big) : v;
};

// Every request is checked before it reaches the proxy: its size and nesting (before parsing), its shape
// (only id, op and args), the operation (an own property of a table with no prototype, so "constructor" or
// "toString" name nothing), and each argument against the schema of that operation, with errors naming the
// field. A request that fails any check changes nothing.
export const MAX_REQUEST_CHARS = 64 << 20; // a restore of 100k lines is about 20 MB
export const MAX_NESTING = 8; // request > args > batch > command > service > flags
export const MAX_BATCH = 1 << 20;

// commands a client sends per line of a large batch: a line is parsed in one stretch (0.7 ms at 250 commands,
// 75 kB; 2.5 ms at 1,000, which held the loop p99 5.5-7 ms of CPU during a restore instead of 4-4.7)
export const MAX_PART = 250;

// A line this long (about 50 commands of a batch) that does not continue a batch staged on the main thread
// goes to the batch worker (batch-worker.ts) to be parsed and staged there, and so do the lines after it
// while its batch lasts: a restore's parse, checks and next state then cost the main thread, which accepts
// and schedules connections, nothing but the next state's diff and its application to the core.
export const OFFLOAD_CHARS = 16384;

type Check = (args: unknown[]) => Problem[];
interface Handler {
  check: Check;
  // biome-ignore lint/suspicious/noExplicitAny: each op's check() has already validated its arguments' shape
  run: (p: Proxy, args: any[], session: Session) => unknown;
  logged?: boolean;
}

/** One control connection's batch being sent in parts ("applyPart" ... "apply"): each line stays small, so
 * no request holds the event loop for long while it is parsed, and each part is applied to the batch's next
 * state as it comes (only that state's objects live on). Dropped with the connection. */
export interface BatchSession {
  batch?: NextState;
  refused?: string;
}
interface Session extends BatchSession {
  /** this connection's id in the batch worker */
  sid: number;
  /** the batch in progress is the worker's (begun from `remoteBase`); `batch`/`refused` are then unused */
  remote?: boolean;
  remoteBase?: DesiredState;
  turn: Promise<unknown>;
  // a reply being written in pieces (it waits for the reader between them): others wait, not interleave
  writing?: Promise<void>;
}

// A session's parts are checked one after another, in the order they came (checking yields).
function inTurn<T>(s: Session, fn: () => Promise<T>): Promise<T> {
  const r = s.turn.then(fn, fn);
  s.turn = r.catch(() => {});
  return r;
}

const none: Check = (args) => arity(args, 0, 0);
function arity(args: unknown[], min: number, max: number): Problem[] {
  return args.length < min || args.length > max
    ? [
        {
          path: "args",
          message:
            `takes ${min === max ? min : `${min} to ${max}`} argument${max === 1 ? "" : "s"}, not ` + `${args.length}`,
        },
      ]
    : [];
}
const serviceArg: Check = (a) => [
  ...arity(a, 1, 1),
  ...(a.length === 1 ? serviceRequestProblems(a[0], "args[0]") : []),
];
const identityArg: Check = (a) => [
  ...arity(a, 1, 1),
  ...(a.length === 1 ? serviceIdentityProblems(a[0], "args[0]") : []),
];
const serverArgs =
  (identityOnly: boolean): Check =>
  (a) => {
    const p = arity(a, 2, 2);
    if (p.length) return p;
    const sp = serviceIdentityProblems(a[0], "args[0]");
    return sp.length ? sp : serverRequestProblems(a[1], a[0] as VirtualService, "args[1]", identityOnly);
  };

// The fields each command of a batch may have (made once: a 100k-line restore checks 100k commands).
const COMMAND_FIELDS: Record<string, string[]> = {
  "add-service": ["kind", "service"],
  "edit-service": ["kind", "service"],
  "delete-service": ["kind", "service"],
  flush: ["kind"],
  "add-server": ["kind", "service", "server"],
  "edit-server": ["kind", "service", "server"],
  "delete-server": ["kind", "service", "server"],
  "set-timeouts": ["kind", "timeouts"],
};

/** Problems with one command of an "apply" batch (ipvsadm's restore commands that change a table). */
export function commandProblems(c: unknown, path: string): Problem[] {
  if (typeof c !== "object" || c === null || Array.isArray(c) || Object.getPrototypeOf(c) !== Object.prototype)
    return [{ path, message: `must be an object, not ${describe(c)}` }];
  const cmd = c as Record<string, unknown>;
  const kind = cmd.kind;
  if (typeof kind !== "string" || !STATE_COMMANDS.has(kind))
    return [{ path: `${path}.kind`, message: `${describe(kind)} is not one of ${[...STATE_COMMANDS].join(", ")}` }];
  const allowed = COMMAND_FIELDS[kind];
  const p: Problem[] = [];
  for (const k in cmd)
    if (Object.hasOwn(cmd, k) && !allowed.includes(k))
      p.push({
        path: `${path}.${k.slice(0, 32)}`,
        message: `unknown field for ${kind} (known: ${allowed.join(", ")})`,
      });
  if (p.length) return p;
  if (kind === "set-timeouts") return timeoutsRequestProblems(cmd.timeouts, `${path}.timeouts`);
  if (kind === "flush") return p;
  if (kind === "add-service" || kind === "edit-service") return serviceRequestProblems(cmd.service, `${path}.service`);
  const sp = serviceIdentityProblems(cmd.service, `${path}.service`);
  if (sp.length || kind === "delete-service") return sp;
  return serverRequestProblems(cmd.server, cmd.service as VirtualService, `${path}.server`, kind === "delete-server");
}

const cmd1 = (p: Proxy, c: StateCommand) => p.change((d) => nextState(d, [c], undefined, p.fw.mode));

const batchArg: Check = (a) => {
  const p = arity(a, 1, 1);
  if (p.length) return p;
  if (!Array.isArray(a[0]) || a[0].length > MAX_BATCH)
    return [{ path: "args[0]", message: `must be a list of at most ${MAX_BATCH} commands, not ${describe(a[0])}` }];
  return p; // each command is checked in run, in slices, so forwarding goes on meanwhile
};

// Checks a part and applies it to the session's batch (the next state, beside the proxy's state when the
// batch began); a refused part refuses the batch (later parts and the "apply" that ends it are answered with
// the reason), so a pipelining client never applies half of one.
export async function stage(
  base: () => DesiredState,
  mode: ProxyMode,
  s: BatchSession,
  cmds: unknown[],
  slicer = new Slicer(),
): Promise<void> {
  const staged = s.batch?.count ?? 0;
  if (s.refused === undefined && staged + cmds.length > MAX_BATCH) {
    s.refused = `a batch of more than ${MAX_BATCH} commands`;
    s.batch = undefined;
  }
  if (s.refused !== undefined) throw new Error(`apply: refused, nothing applied: ${s.refused}`);
  const problems: Problem[] = [];
  for (let i = 0; i < cmds.length && problems.length < 20; i++) {
    problems.push(...commandProblems(cmds[i], `args[0][${staged + i}]`));
    await slicer.pause();
  }
  if (problems.length) {
    s.refused = problems
      .slice(0, 10)
      .map((x) => `${x.path}: ${x.message}`)
      .join("; ");
    s.batch = undefined;
    throw new Error(`apply: ${s.refused}`);
  }
  s.batch ??= new NextState(base(), mode);
  try {
    await s.batch.add(cmds as StateCommand[], slicer);
  } catch (e) {
    s.refused = e instanceof StepError ? `command ${e.step} of the batch: ${e.message}` : (e as Error).message;
    s.batch = undefined;
    throw e;
  }
}
const workerFailed = (e: Error) => `the batch's worker thread failed (${e.message}); send the batch again`;
export const BATCH_STALE =
  "apply: refused, nothing applied: the proxy's table changed while the batch came (a reload or another " +
  "client's change); send the batch again";
const HANDLERS: Record<string, Handler> = Object.assign(Object.create(null) as Record<string, Handler>, {
  info: { check: none, run: (p: Proxy) => p.info() },
  // sliced: at 20,000 real servers in one service, one piece held the loop (new connections) for 0.3 s
  services: {
    check: none,
    run: async (p: Proxy) =>
      new Serialized(await stringifyInSlices(await p.serviceStatusSliced(), "realServers", replacer)),
  },
  addService: {
    check: serviceArg,
    logged: true,
    run: (p: Proxy, [s]: [VirtualService]) => cmd1(p, { kind: "add-service", service: s }),
  },
  editService: {
    check: serviceArg,
    logged: true,
    run: (p: Proxy, [s]: [VirtualService]) => cmd1(p, { kind: "edit-service", service: s }),
  },
  deleteService: {
    check: identityArg,
    logged: true,
    run: (p: Proxy, [s]: [VirtualService]) => cmd1(p, { kind: "delete-service", service: s }),
  },
  flush: { check: none, logged: true, run: (p: Proxy) => cmd1(p, { kind: "flush" }) },
  addRealServer: {
    check: serverArgs(false),
    logged: true,
    run: (p: Proxy, [s, r]: [VirtualService, RealServer]) => cmd1(p, { kind: "add-server", service: s, server: r }),
  },
  editRealServer: {
    check: serverArgs(false),
    logged: true,
    run: (p: Proxy, [s, r]: [VirtualService, RealServer]) => cmd1(p, { kind: "edit-server", service: s, server: r }),
  },
  deleteRealServer: {
    check: serverArgs(true),
    logged: true,
    run: (p: Proxy, [s, r]: [VirtualService, RealServer]) => cmd1(p, { kind: "delete-server", service: s, server: r }),
  },
  zero: {
    check: (a: unknown[]) => [
      ...arity(a, 0, 1),
      ...(a.length === 1 && a[0] !== null ? serviceIdentityProblems(a[0], "args[0]") : []),
    ],
    run: (p: Proxy, [s]: [VirtualService | null | undefined]) => p.zero(s ?? undefined),
  },
  timeouts: { check: none, run: (p: Proxy) => p.timeouts() },
  setTimeouts: {
    check: (a: unknown[]) => [...arity(a, 1, 1), ...(a.length === 1 ? timeoutsRequestProblems(a[0], "args[0]") : [])],
    logged: true,
    run: (p: Proxy, [t]: [IpvsTimeouts]) => cmd1(p, { kind: "set-timeouts", timeouts: t }),
  },
  // a batch of ipvsadm commands as one transaction: all applied, or none (StepError names the first refused,
  // by its index in the whole batch); a large one comes as "applyPart" lines, then the "apply" that ends it
  applyPart: {
    check: batchArg,
    run: (p: Proxy, [cmds]: [unknown[]], s: Session) =>
      inTurn(s, async () => {
        await stage(() => p.desired, p.fw.mode, s, cmds);
        return { staged: s.batch?.count ?? 0 };
      }),
  },
  apply: {
    check: batchArg,
    logged: true,
    run: async (p: Proxy, [cmds]: [unknown[]], s: Session) => {
      // in the session's turn: a next batch pipelined on this connection begins from this one's result
      return inTurn(s, async () => {
        let batch: NextState;
        try {
          await stage(() => p.desired, p.fw.mode, s, cmds);
          batch = s.batch ?? new NextState(p.desired, p.fw.mode);
        } finally {
          // the batch ends here either way
          s.batch = undefined;
          s.refused = undefined;
        }
        await p.change((d) => {
          // its commands were checked against the state it began from, and are not kept to check them again
          if (d !== batch.base) throw new Error(BATCH_STALE);
          return batch.state();
        });
        return { applied: batch.count };
      });
    },
  },
  // sliced as services: the table may hold a million entries
  connections: {
    check: none,
    run: async (p: Proxy) => new Serialized(await stringifyInSlices(await p.connectionsSliced(), "", replacer)),
  },
  reload: { check: none, logged: true, run: (p: Proxy) => p.reload() },
  status: { check: none, run: (p: Proxy) => p.status() },
  decisions: {
    check: (a: unknown[]) => [
      ...arity(a, 0, 1),
      ...(a.length === 1 &&
      a[0] !== null &&
      !(Number.isInteger(a[0]) && (a[0] as number) >= 0 && (a[0] as number) <= 1 << 20)
        ? [{ path: "args[0]", message: `must be a count 0..${1 << 20}, not ${describe(a[0])}` }]
        : []),
    ],
    run: (p: Proxy, [n]: [number | null | undefined]) => p.fw.decisions.slice(-(n ?? p.fw.decisions.length)),
  },
  clearDecisions: {
    check: none,
    run: (p: Proxy) => {
      p.fw.decisions.length = 0;
    },
  },
  desired: { check: none, run: (p: Proxy) => p.desired },
  // the sync daemons as `-L --daemon` lists them (src/proxy/sync.ts daemonsListing)
  daemons: { check: none, run: (p: Proxy) => daemonsListing(p.syncDaemons) },
});

/** How deeply a JSON text nests objects and lists, counted without parsing (stops counting past `limit`). */
export function jsonNesting(text: string, limit = MAX_NESTING): number {
  let depth = 0,
    max = 0,
    inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 92)
        i++; // backslash: skip the escaped character
      else if (c === 34) inString = false;
    } else if (c === 34) inString = true;
    else if (c === 123 || c === 91) {
      if (++depth > max && (max = depth) > limit) return max;
    } else if (c === 125 || c === 93) depth--;
  }
  return max;
}

/** The request's operation and arguments, or an error naming what is wrong with it. */
export function parseRequest(line: string): {
  id: unknown;
  handler?: Handler;
  op?: string;
  args?: unknown[];
  error?: string;
} {
  if (line.length > MAX_REQUEST_CHARS)
    return {
      id: null,
      error: `request of ${line.length} characters is over the limit of ${MAX_REQUEST_CHARS} characters`,
    };
  const depth = jsonNesting(line);
  if (depth > MAX_NESTING) return { id: null, error: `request nests deeper than ${MAX_NESTING} levels` };
  let req: unknown;
  // requests carry no bigints; a reviver would cost a call per value
  try {
    req = JSON.parse(line);
  } catch (e) {
    return { id: null, error: `request is not JSON: ${(e as Error).message}` };
  }
  if (typeof req !== "object" || req === null || Array.isArray(req))
    return { id: null, error: `request must be an object {"id","op","args"}, not ${describe(req)}` };
  const r = req as Record<string, unknown>;
  const id =
    typeof r.id === "number" && Number.isFinite(r.id)
      ? r.id
      : typeof r.id === "string" && r.id.length <= 64
        ? r.id
        : null;
  const extra = Object.keys(r).filter((k) => k !== "id" && k !== "op" && k !== "args");
  if (extra.length) return { id, error: `unknown request field '${extra[0].slice(0, 32)}' (known: id, op, args)` };
  if (r.id !== undefined && r.id !== null && id === null)
    return { id, error: "id: must be a number or a string of at most 64 characters" };
  const op = r.op;
  if (typeof op !== "string" || !Object.hasOwn(HANDLERS, op))
    return { id, error: `unknown operation ${describe(op)} (known: ${Object.keys(HANDLERS).join(", ")})` };
  if (r.args !== undefined && !Array.isArray(r.args))
    return { id, error: `args: must be a list, not ${describe(r.args)}` };
  const args = (r.args ?? []) as unknown[];
  const handler = HANDLERS[op];
  const problems = handler.check(args);
  if (problems.length)
    return {
      id,
      error: `${op}: ${problems
        .slice(0, 10)
        .map((x) => `${x.path}: ${x.message}`)
        .join("; ")}${problems.length > 10 ? `; and ${problems.length - 10} more` : ""}`,
    };
  return { id, handler, op, args };
}

export class ControlServer {
  private conns = new Set<net.Socket>();
  private sessions = new Set<Session>();
  private sids = 0;
  /** where large batches are parsed and staged (started with the first one) */
  readonly worker: BatchWorker;
  private constructor(
    readonly server: net.Server,
    readonly path: string,
  ) {
    // a worker that dies refuses every batch it held: their later parts and their "apply" say so
    this.worker = new BatchWorker((e) => {
      for (const s of this.sessions)
        if (s.remote) {
          s.remote = false;
          s.remoteBase = undefined;
          s.batch = undefined;
          s.refused = workerFailed(e);
        }
    });
  }

  static async listen(p: Proxy, path: string): Promise<ControlServer> {
    mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
    if (existsSync(path)) {
      // a live proxy answers; a stale socket file is replaced
      const live = await new Promise<boolean>((res) => {
        const s = net.connect(path, () => {
          s.destroy();
          res(true);
        });
        s.on("error", () => res(false));
      });
      if (live) throw new Error(`control socket ${path} is in use by another proxy`);
      unlinkSync(path);
    }
    const server = net.createServer();
    const cs = new ControlServer(server, path);
    server.on("connection", (sock) => cs.serve(p, sock));
    const old = process.umask(0o177); // created 0600: no window where others could connect
    try {
      await new Promise<void>((res, rej) => {
        server.once("error", rej);
        server.listen(path, () => {
          server.off("error", rej);
          res();
        });
      });
    } finally {
      process.umask(old);
    }
    chmodSync(path, 0o600);
    return cs;
  }

  private serve(p: Proxy, sock: net.Socket) {
    this.conns.add(sock);
    const session: Session = { sid: ++this.sids, turn: Promise.resolve() };
    this.sessions.add(session);
    sock.on("close", () => {
      this.conns.delete(sock);
      this.sessions.delete(session);
      this.worker.close(session.sid);
    });
    sock.on("error", () => {});
    // Lines are handled one per turn of the event loop: one read can bring many (a pipelined restore's parts,
    // 75 kB each), and parsing them in one go would hold the loop; many waiting pause the reads. The line after
    // a batch's part (or its end) is read once that part is answered: parsed as they came, the parts waited
    // for their turn as objects beside the one being applied (a restore then took 3-4 % more CPU), and a
    // request sent after a part is answered after it.
    const lines: string[] = [];
    let draining = false;
    const next = () => {
      const line = lines.shift();
      if (line === undefined) {
        draining = false;
        return;
      }
      if (lines.length < 8 && sock.isPaused()) sock.resume();
      const batch = this.handle(p, sock, line, session);
      if (batch) void batch.finally(() => setImmediate(next));
      else setImmediate(next);
    };
    // the pending request in pieces: each chunk is searched once for a newline (not the whole buffer again)
    let parts: string[] = [];
    let size = 0;
    sock.setEncoding("utf8");
    sock.on("data", (chunk: string) => {
      let start = 0,
        nl: number;
      while ((nl = chunk.indexOf("\n", start)) >= 0) {
        parts.push(chunk.slice(start, nl));
        const line = parts.join("");
        parts = [];
        size = 0;
        start = nl + 1;
        if (line.trim()) {
          lines.push(line);
          if (lines.length > 32) sock.pause();
          if (!draining) {
            draining = true;
            setImmediate(next);
          }
        }
      }
      if (start < chunk.length) {
        parts.push(chunk.slice(start));
        size += chunk.length - start;
      }
      if (size > MAX_REQUEST_CHARS) {
        sock.end(
          JSON.stringify({
            id: null,
            ok: false,
            error: `request is over the limit of ${MAX_REQUEST_CHARS} characters; connection closed`,
          }) + "\n",
        );
        parts = [];
        size = 0;
        sock.removeAllListeners("data");
        sock.resume();
      }
    });
  }

  // Answers one request line; for a batch's part (or its end), the promise of its answer.
  private handle(p: Proxy, sock: net.Socket, line: string, session: Session): Promise<void> | undefined {
    const local = session.batch !== undefined || session.refused !== undefined;
    if (session.remote || (!local && line.length >= OFFLOAD_CHARS)) return this.offload(p, sock, line, session);
    const req = parseRequest(line);
    const answered = this.answer(p, sock, req, session);
    return req.op === "applyPart" || req.op === "apply" ? answered : undefined;
  }

  // A line through the batch worker: a batch's part or end is answered from there (an "apply" with the next
  // state the worker built, applied here as a local batch's is); any other line is handled here, as before.
  private async offload(p: Proxy, sock: net.Socket, line: string, s: Session): Promise<void> {
    const begin = !s.remote;
    const base = begin ? p.desired : s.remoteBase!;
    let done: Staged;
    try {
      done = await this.worker.send(s.sid, line, p.fw.mode, base, begin);
    } catch (e) {
      // the worker failed: the batch this line belongs to (or began) is refused, nothing of it applied
      const req = parseRequest(line);
      if (req.op !== "applyPart" && req.op !== "apply") return void this.answer(p, sock, req, s);
      s.remote = false;
      s.remoteBase = undefined;
      s.batch = undefined;
      s.refused = req.op === "applyPart" ? workerFailed(e as Error) : undefined;
      const run = () => Promise.reject(new Error(`apply: refused, nothing applied: ${workerFailed(e as Error)}`));
      return this.answer(p, sock, { ...req, handler: { check: none, run } }, s);
    }
    if (done.notBatch) return void this.answer(p, sock, parseRequest(line), s);
    const began = base;
    s.remote = done.op === "applyPart"; // an "apply" ends the batch, refused or not
    s.remoteBase = s.remote ? base : undefined;
    const run = async () => {
      if (!done.ok) throw done.step === undefined ? new Error(done.error) : new StepError(done.step, done.error!);
      if (done.op === "applyPart") return done.result;
      const next = done.next!;
      try {
        await p.change((d) => {
          // checked against the state it began from, as a local batch is
          if (d !== began) throw new Error(BATCH_STALE);
          if (done.problems !== undefined) throw new Error(done.problems);
          return next;
        }, true);
      } finally {
        if (p.desired === next) this.worker.adopt(done);
        else this.worker.forget(done);
      }
      return done.result;
    };
    return this.answer(p, sock, { id: done.id, op: done.op, args: [], handler: { ...HANDLERS[done.op!], run } }, s);
  }

  private async answer(p: Proxy, sock: net.Socket, req: ReturnType<typeof parseRequest>, session: Session) {
    try {
      if (req.error !== undefined) throw new Error(req.error);
      const result = await req.handler!.run(p, req.args!, session);
      while (session.writing) await session.writing;
      if (result instanceof Serialized) {
        const head = `{"id":${JSON.stringify(req.id)},"ok":true,"result":`;
        const w = writePieces(sock, head, result.pieces).catch(() => {});
        session.writing = w;
        await w;
        if (session.writing === w) session.writing = undefined;
      } else sock.write(JSON.stringify({ id: req.id, ok: true, result: result ?? null }, replacer) + "\n");
      if (req.handler!.logged) p.log.info("control", { op: req.op });
    } catch (e) {
      const step = e instanceof StepError ? { step: e.step } : {};
      while (session.writing) await session.writing;
      sock.write(JSON.stringify({ id: req.id, ok: false, error: (e as Error).message, ...step }) + "\n");
    }
  }

  async close(): Promise<void> {
    for (const s of this.conns) s.destroy();
    await this.worker.terminate();
    await new Promise<void>((r) => this.server.close(() => r()));
    try {
      unlinkSync(this.path);
    } catch {
      /* gone */
    }
  }
}

export class ControlClient {
  private sock: net.Socket;
  private next = 1;
  private pending = new Map<number, { res: (v: unknown) => void; rej: (e: Error) => void; timer: NodeJS.Timeout }>();
  private buf = "";
  private constructor(
    sock: net.Socket,
    readonly timeoutMs: number,
  ) {
    this.sock = sock;
    sock.setEncoding("utf8");
    sock.on("data", (chunk: string) => {
      let start = 0,
        nl: number;
      while ((nl = chunk.indexOf("\n", start)) >= 0) {
        const msg = JSON.parse(this.buf + chunk.slice(start, nl), reviver);
        this.buf = "";
        start = nl + 1;
        const w = this.pending.get(msg.id);
        // a request the proxy could not read (too large) is answered with no id
        if (!w) {
          if (msg.id === null && msg.ok === false) this.failAll(new Error(msg.error));
          continue;
        }
        this.pending.delete(msg.id);
        clearTimeout(w.timer);
        if (msg.ok) w.res(msg.result);
        else w.rej(typeof msg.step === "number" ? new StepError(msg.step, msg.error) : new Error(msg.error));
      }
      this.buf += chunk.slice(start);
    });
    sock.on("error", (e) => this.failAll(e));
    sock.on("close", () => this.failAll(new Error("control socket closed")));
  }

  private failAll(e: Error) {
    for (const w of this.pending.values()) {
      clearTimeout(w.timer);
      w.rej(e);
    }
    this.pending.clear();
  }

  static connect(path = DEFAULT_CONTROL, timeoutMs = 10000): Promise<ControlClient> {
    return new Promise((res, rej) => {
      const s = net.connect(path);
      s.once("connect", () => res(new ControlClient(s, timeoutMs)));
      s.once("error", (e: NodeJS.ErrnoException) =>
        rej(
          new Error(
            `cannot reach the proxy at ${path}: ` +
              (e.code === "ENOENT" || e.code === "ECONNREFUSED"
                ? "is `wasmvs proxy` running?"
                : e.code === "EACCES"
                  ? "permission denied (root only)"
                  : e.message),
          ),
        ),
      );
    });
  }

  call<T = unknown>(op: string, ...args: unknown[]): Promise<T> {
    return this.callWithin(this.timeoutMs, op, ...args);
  }

  callWithin<T = unknown>(timeoutMs: number, op: string, ...args: unknown[]): Promise<T> {
    const id = this.next++;
    return new Promise((res, rej) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        rej(new Error(`proxy did not answer '${op}' within ${timeoutMs} ms`));
      }, timeoutMs);
      this.pending.set(id, { res: res as (v: unknown) => void, rej, timer });
      this.sock.write(JSON.stringify({ id, op, args }, replacer) + "\n");
    });
  }

  close(): void {
    this.sock.end();
    this.sock.destroy();
  }
}

export class ProxyTarget implements IpvsTarget {
  readonly name = "proxy";
  private constructor(readonly client: ControlClient) {}
  static async open(
    path = process.env.WASMVS_PROXY_SOCKET ?? DEFAULT_CONTROL,
    timeoutMs?: number,
  ): Promise<ProxyTarget> {
    return new ProxyTarget(await ControlClient.connect(path, timeoutMs));
  }
  info(): Promise<TargetInfo> {
    return this.client.call("info");
  }
  services(): Promise<ServiceStatus[]> {
    return this.client.call("services");
  }
  async addService(s: VirtualService): Promise<void> {
    await this.client.call("addService", s);
  }
  async editService(s: VirtualService): Promise<void> {
    await this.client.call("editService", s);
  }
  async deleteService(s: VirtualService): Promise<void> {
    await this.client.call("deleteService", s);
  }
  async flush(): Promise<void> {
    await this.client.call("flush");
  }
  async addRealServer(s: VirtualService, r: RealServer): Promise<void> {
    await this.client.call("addRealServer", s, r);
  }
  async editRealServer(s: VirtualService, r: RealServer): Promise<void> {
    await this.client.call("editRealServer", s, r);
  }
  async deleteRealServer(s: VirtualService, r: Pick<RealServer, "addr" | "port">): Promise<void> {
    await this.client.call("deleteRealServer", s, { addr: r.addr, port: r.port });
  }
  async zero(s?: VirtualService): Promise<void> {
    await this.client.call("zero", s ?? null);
  }
  timeouts(): Promise<IpvsTimeouts> {
    return this.client.call("timeouts");
  }
  async setTimeouts(t: IpvsTimeouts): Promise<void> {
    await this.client.call("setTimeouts", t);
  }
  connections(): Promise<ConnectionEntry[]> {
    return this.client.call("connections");
  }
  // beyond IpvsTarget
  /** Applies the commands as one transaction: all of them, or none (a StepError names the refused one). */
  async apply(cmds: StateCommand[]): Promise<void> {
    // parts of MAX_PART commands (one line each, quick for the proxy to parse), then the last as "apply", sent
    // without waiting for each answer (the proxy takes a connection's parts in order); a refused part refuses
    // the rest. The proxy answers once everything is applied: allow for a large restore (10k lines a second).
    const within = this.client.timeoutMs + cmds.length / 10;
    const sent: Promise<unknown>[] = [];
    let at = 0;
    for (; cmds.length - at > MAX_PART; at += MAX_PART)
      sent.push(this.client.callWithin(within, "applyPart", cmds.slice(at, at + MAX_PART)));
    sent.push(this.client.callWithin(within, "apply", cmds.slice(at)));
    await Promise.all(sent);
  }
  reload(): Promise<{ services: number }> {
    return this.client.call("reload");
  }
  /** The proxy's sync daemons, each checked as a --start-daemon's options are before it is printed. */
  async daemons(): Promise<SyncDaemon[]> {
    const got = await this.client.call<unknown>("daemons");
    if (!Array.isArray(got) || got.length > 2) throw new Error(`daemons: the proxy answered ${describe(got)}`);
    got.forEach((d, i) => {
      const p = validateDaemon(d, `daemons[${i}]`);
      if (p.length) throw new Error(`the proxy's answer: ${p.map((x) => `${x.path}: ${x.message}`).join("; ")}`);
    });
    return got as SyncDaemon[];
  }
  // biome-ignore lint/suspicious/noExplicitAny: the status object's shape is the proxy's, read by name
  status(): Promise<any> {
    return this.client.call("status");
  }
  async close(): Promise<void> {
    this.client.close();
  }
}
