// Scheduler decision traces: reads the records the data plane writes while tracing is on
// (assembly/trace.ts) and decodes each into the state that made the decision, and runs traced scenarios (a
// service, its destinations, a sequence of connections) through the real packet path: data only. The
// English that explains a decision is src/explain/trace.ts's, for `wasmvs trace` and the browser page.
// No node: imports here (the page bundles it).
//
// The decision always comes from the WASM record; the host only adds figures read from the service's state
// (Core.service) to explain it, and never decides anything itself.
import * as TL from "../../assembly/trace-layout.ts";
import { familyOf } from "../model/schedulers.ts";
import { ntoa4 } from "../model/inet.ts";
import {
  Core,
  SCHEDULERS,
  TCP_FLAGS,
  type ServiceSpec,
  type DestSpec,
  type ServiceInfo,
  type SettingName,
} from "./index.ts";

// ---- records ---------------------------------------------------------------------------------------------
// The word numbers come from assembly/trace-layout.ts, the file the schedulers compile, so they cannot drift.
const WORD_NAMES = [
  "W_KIND",
  "W_SVC",
  "W_DEST",
  "W_SEQ",
  "W_HKEY",
  "W_HPORT",
  "W_CUR0",
  "W_CUR1",
  "W_N",
  "W_CW0",
  "W_CW1",
  "W_MW",
  "W_DI",
  "W_RESTART",
  "W_FAIL",
  "W_SCAN",
  "W_A_ACT",
  "W_A_INACT",
  "W_A_W",
  "W_R_ID",
  "W_R_ACT",
  "W_R_INACT",
  "W_R_W",
  "W_TOTAL",
  "W_R1",
  "W_R2",
  "W_C1",
  "W_C2",
  "W_C1_ACT",
  "W_C1_INACT",
  "W_C1_W",
  "W_C2_ACT",
  "W_C2_INACT",
  "W_C2_W",
  "W_BUCKET",
  "W_TSIZE",
  "W_BDEST",
  "W_PROBES",
  "W_FALLBACK",
  "W_REJECT",
  "W_MEMBER",
  "W_PATHLEN",
  "W_PATH",
  "W_LBUCKET",
  "W_FOUND",
  "W_PREV",
  "W_OUTCOME",
  "W_HALFIDLE",
  "W_PREV_ACT",
  "W_PREV_W",
  "W_WLC",
  "W_ENTRIES",
  "W_ERASED",
  "W_EXPIRED",
  "W_SETLEN",
  "W_SET",
] as const;
type WordName = (typeof WORD_NAMES)[number];
export const Q = {
  tableSize: TL.Q_TABLE_SIZE,
  slotDest: TL.Q_SLOT_DEST,
  mhMembers: TL.Q_MH_MEMBERS,
  mhMember: TL.Q_MH_MEMBER,
  mhOffset: TL.Q_MH_OFFSET,
  mhSkip: TL.Q_MH_SKIP,
  mhTurns: TL.Q_MH_TURNS,
  slotMember: TL.Q_SLOT_MEMBER,
  entries: TL.Q_ENTRIES,
  expired: TL.Q_EXPIRED,
};
export const REJECT = ["", "empty", "weight 0", "overloaded", "deleted"] as const;
export const OUTCOME = [
  "",
  "new",
  "kept",
  "unavailable",
  "quiesced",
  "overloaded",
  "no usable member",
  "none",
] as const;

export { familyOf, type Family } from "../model/schedulers.ts";

// One decoded record: the scheduler, the chosen destination id (-1: none) and every word by name.
export interface TraceRecord {
  sched: string;
  svc: number;
  dest: number;
  seq: number;
  f: Record<WordName, number>;
  path: { slot: number; dest: number }[]; // sh/mh fallback probes
  set: number[]; // lblcr members after the decision, kernel order
}

export class Tracer {
  readonly core: Core;
  private readonly W: Record<WordName, number>;
  private readonly words: number;
  private readonly cap: number;
  private seen = 0;
  constructor(core: Core) {
    this.core = core;
    const x = core.x;
    if (typeof x.traceEnable !== "function")
      throw new Error("this core.wasm has no tracing (rebuild with assembly/trace.ts)");
    // biome-ignore lint/performance/noDynamicNamespaceImportAccess: every word, once, when a tracer is made
    this.W = Object.fromEntries(WORD_NAMES.map((n) => [n, TL[n]])) as Record<WordName, number>;
    this.words = x.traceWords();
    this.cap = x.traceCapacity();
  }
  enable(on = true): void {
    this.core.x.traceEnable(on ? 1 : 0);
  }
  get enabled(): boolean {
    return this.core.x.traceEnabled() === 1;
  }
  // forget every record written so far
  reset(): void {
    this.core.x.traceReset();
    this.seen = 0;
  }
  // the records written since the last take() (at most the ring's capacity)
  take(): TraceRecord[] {
    const x = this.core.x;
    const n = x.traceCount();
    const out: TraceRecord[] = [];
    const from = Math.max(this.seen, n - this.cap);
    if (from < n) {
      const base = x.traceBuf() >>> 0;
      const all = new Int32Array(x.memory.buffer, base, this.words * this.cap);
      for (let k = from; k < n; k++)
        out.push(this.decode(all.subarray((k % this.cap) * this.words, ((k % this.cap) + 1) * this.words)));
    }
    this.seen = n;
    return out;
  }
  query(svc: number, q: number, i = 0): number {
    return this.core.x.traceQuery(svc, q, i);
  }

  private decode(w: Int32Array): TraceRecord {
    const W = this.W;
    const f = Object.fromEntries(WORD_NAMES.map((n) => [n, w[W[n]]])) as Record<WordName, number>;
    const sched = SCHEDULERS[f.W_KIND] ?? `#${f.W_KIND}`;
    const fam = familyOf(sched);
    const path: TraceRecord["path"] = [];
    const set: number[] = [];
    if (fam === "hash")
      for (let k = 0; k < f.W_PATHLEN; k++) path.push({ slot: w[W.W_PATH + 2 * k], dest: w[W.W_PATH + 2 * k + 1] });
    if (sched === "lblcr") for (let k = 0; k < Math.min(f.W_SETLEN, 16); k++) set.push(w[W.W_SET + k]);
    return { sched, svc: f.W_SVC, dest: f.W_DEST, seq: f.W_SEQ, f, path, set };
  }
}

// ---- scenarios -----------------------------------------------------------------------------------------
export interface ScenarioDest extends DestSpec {
  name?: string;
}
// How a connection ends: the client's FIN (then the server's), or the client's RST.
export type CloseHow = "fin" | "rst";
interface Traffic {
  count?: number; // connections (default 12)
  clients?: number; // distinct client addresses, used in turn (default 4)
  clientBase?: string; // first client address (default 192.168.1.10)
  sport?: number; // first source port (default 40000, +1 per connection)
  interval?: number; // ms between new connections (default 100)
  hold?: number; // ms a connection stays open before it closes (0 = stays open; default 0)
  close?: CloseHow; // how a held connection ends (default fin)
  closeEvery?: number; // every k-th connection closes right after its handshake (TIME_WAIT: inactive)
  targets?: number; // destination addresses used in turn (fwmark services; dh/lblc key on them)
  targetBase?: string; // first destination address (default the VIP, or 10.9.0.1 for fwmark)
}
// answered: false leaves the SYN unanswered (the entry stays SYN_RECV, counted active, for 60 s)
export interface ConnSpec {
  client: string;
  sport?: number;
  dst?: string;
  at?: number;
  hold?: number;
  close?: CloseHow;
  answered?: boolean;
}
export interface ScenarioEvent {
  before: number;
  op: "add" | "del" | "edit";
  dest: ScenarioDest;
}
export interface Scenario {
  service: ServiceSpec;
  dests: ScenarioDest[];
  settings?: Partial<Record<SettingName, number>>;
  seed?: number;
  traffic?: Traffic;
  connections?: ConnSpec[];
  events?: ScenarioEvent[];
}

// What happened to a connection entry after its first packet: a state change (the handshake, a close) or
// its expiry, as read back from the connection table.
export interface LifeEvent {
  at: number; // ms since the start
  n: number; // the connection's number
  client: string;
  sport: number;
  destId: number;
  from: string;
  to: string; // TCP states; to = "expired" when the entry left the table
  active: boolean; // counted in ActiveConn after the change
  why: string; // the packets that caused it, or "timeout"
}

// A connection entry the session opened, as the table last showed it.
interface Entry {
  n: number;
  client: string;
  sport: number;
  dst: string;
  destId: number;
  index: number;
  state: string;
  active: boolean;
  expires: number; // ms since the start
}

export interface Decision {
  n: number; // 1-based connection number
  at: number; // ms since the start
  client: string;
  sport: number;
  dst: string;
  how: "scheduled" | "template" | "existing" | "refused";
  destId: number; // -1 when refused
  dest: string; // its name ("-" when refused)
  record?: TraceRecord;
  template?: { net: string; expiresIn: number };
  before: ServiceInfo;
  reason?: string; // why the data plane refused it (how "refused")
  events: string[]; // configuration changes applied just before this connection
  life: LifeEvent[]; // what happened to earlier entries since the previous decision, this one's handshake last
}

const START = 1000;
function addrAdd(base: string, k: number): string {
  if (base.includes(":")) {
    const p = base.split(":");
    const last = parseInt(p[p.length - 1] || "0", 16) + k;
    p[p.length - 1] = last.toString(16);
    return p.join(":");
  }
  const b = base.split(".").map(Number);
  const v = ((((b[0] << 24) | (b[1] << 16) | (b[2] << 8) | b[3]) >>> 0) + k) >>> 0;
  return ntoa4(v);
}

const LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ";
// A, B, … Z, AA, AB, … : a name per backend that never wraps back onto an earlier one
export function letterName(i: number): string {
  let s = "";
  for (let k = i + 1; k > 0; k = Math.floor((k - 1) / 26)) s = LETTERS[(k - 1) % 26] + s;
  return s;
}

// A traced service on its own Core: connections go through the real packet path, one at a time, each with
// its whole life: the handshake, a request and its answer, and later a close (FIN or RST) if it is held.
export class TraceSession {
  readonly core: Core;
  readonly tracer: Tracer;
  readonly svc: number;
  readonly scenario: Scenario;
  readonly names = new Map<number, string>();
  private readonly nameOf = new Map<string, string>(); // addr:port -> name
  private closes: { e: Entry; at: number; how: CloseHow }[] = [];
  private open: Entry[] = []; // entries this session opened that are still in the table
  private life: LifeEvent[] = []; // not yet handed out with a decision
  private n = 0;
  now = START;
  private vip: string;
  private vport: number;
  private proto: string;
  private mark: number;

  protected constructor(core: Core, scenario: Scenario) {
    this.core = core;
    this.scenario = scenario;
    this.tracer = new Tracer(core);
    for (const [k, v] of Object.entries(scenario.settings ?? {})) core.set(k as SettingName, v as number);
    core.seedRandom(scenario.seed ?? 1);
    const spec = scenario.service;
    this.svc = core.addService(spec);
    this.proto = spec.fwmark ? "tcp" : (spec.proto ?? "tcp");
    this.vip = spec.fwmark ? (scenario.traffic?.targetBase ?? "10.9.0.1") : spec.addr!;
    this.vport = spec.port ?? 80;
    this.mark = spec.fwmark ?? 0;
    scenario.dests.forEach((x, i) => this.addDest({ ...x, name: x.name ?? letterName(i) }));
    core.advance(this.now);
    this.tracer.reset();
    this.tracer.enable(true);
  }

  static async create(scenario: Scenario, core?: Core): Promise<TraceSession> {
    return new TraceSession(core ?? (await Core.load({ connCapacity: 1 << 16 })), scenario);
  }
  protected static async coreFor(core?: Core): Promise<Core> {
    return core ?? Core.load({ connCapacity: 1 << 16 });
  }

  name = (id: number): string => this.names.get(id) ?? (id < 0 ? "-" : `#${id}`);

  // A destination's name: the one it was given, else the one it had before under that address, else the next
  // unused letter name (so a backend keeps its name across removal and re-adding).
  addDest(x: ScenarioDest): number {
    const key = `${x.addr}:${x.port}`;
    const taken = new Set(this.nameOf.values());
    let k = this.nameOf.size;
    while (taken.has(letterName(k))) k++;
    const name = x.name ?? this.nameOf.get(key) ?? letterName(k);
    const id = this.core.addDest(this.svc, x);
    this.names.set(id, name);
    this.nameOf.set(key, name);
    return id;
  }
  nameOfAddr(addr: string, port: number): string | undefined {
    return this.nameOf.get(`${addr}:${port}`);
  }
  editDest(x: ScenarioDest): void {
    this.core.editDest(this.svc, x);
  }
  delDest(x: Pick<ScenarioDest, "addr" | "port">): void {
    this.core.deleteDest(this.svc, x.addr, x.port);
  }

  service(): ServiceInfo {
    return this.core.service(this.svc);
  }
  // The entries this session opened that are still in the table, oldest first.
  entries(): readonly Entry[] {
    return this.open;
  }
  // Life events not yet handed out with a decision (the page shows them as time passes without a connection).
  takeLife(): LifeEvent[] {
    const l = this.life;
    this.life = [];
    return l;
  }

  // Closes due connections, moves the clock to `at` (ms since the start) and notes the entries that expired.
  advanceTo(at: number): void {
    const t = START + at;
    this.closes.sort((a, b) => a.at - b.at);
    while (this.closes.length && this.closes[0].at <= t) {
      const c = this.closes.shift()!;
      this.tick(c.at);
      this.closeConn(c.e, c.how, c.at);
    }
    this.tick(t);
  }

  private tick(t: number): void {
    if (t > this.now) this.now = t;
    this.core.advance(this.now);
    const keep: Entry[] = [];
    for (const e of this.open) {
      if (e.expires + START > this.now) {
        keep.push(e);
        continue;
      }
      if (this.read(e, "timeout")) keep.push(e);
    }
    this.open = keep;
  }

  // Reads entry e back from the table and records a change; false when it has left the table.
  private read(e: Entry, why: string): boolean {
    const c = this.core.conn(e.index);
    const base = { at: this.now - START, n: e.n, client: e.client, sport: e.sport, destId: e.destId, why };
    if (!c || c.template || c.caddr !== e.client || c.cport !== e.sport) {
      this.life.push({ ...base, from: e.state, to: "expired", active: false });
      return false;
    }
    if (c.state !== e.state || c.active !== e.active)
      this.life.push({ ...base, from: e.state, to: c.state, active: c.active });
    e.state = c.state;
    e.active = c.active;
    e.expires = c.expires - START;
    return true;
  }

  private pkt(e: Entry, dir: "in" | "out", flags: number, len = 60): void {
    if (dir === "in")
      this.core.packet("in", this.proto, e.client, e.sport, e.dst, this.vport, {
        flags,
        now: this.now,
        mark: this.mark,
        len,
      });
    else {
      const c = this.core.conn(e.index);
      if (c) this.core.packet("out", this.proto, c.daddr, c.dport, e.client, e.sport, { flags, now: this.now, len });
    }
  }

  private closeConn(e: Entry, how: CloseHow, at: number): void {
    if (!this.open.includes(e)) return; // expired before its close
    const { ACK, FIN, RST } = TCP_FLAGS;
    this.now = Math.max(this.now, at);
    if (how === "rst") this.pkt(e, "in", RST);
    else {
      this.pkt(e, "in", FIN | ACK);
      this.pkt(e, "out", ACK);
      this.pkt(e, "out", FIN | ACK);
      this.pkt(e, "in", ACK);
    }
    if (!this.read(e, how === "rst" ? "client RST" : "client FIN, server ACK+FIN, client ACK"))
      this.open = this.open.filter((x) => x !== e);
  }

  // Called when a connection is about to be scheduled, its time reached: the page and `wasmvs trace --insides`
  // read the scheduler's state here, as the decision sees it.
  beforeSchedule?: () => void;

  // Closes the open connection from client:sport now (FIN or RST); false when there is none.
  close(client: string, sport: number, how: CloseHow = "fin"): boolean {
    const e = this.open.find((x) => x.client === client && x.sport === sport);
    if (!e) return false;
    this.closes = this.closes.filter((x) => x.e !== e);
    this.closeConn(e, how, this.now);
    return true;
  }

  // One new connection at `at` ms since the start (default: now): its SYN is scheduled, then (if forwarded)
  // the server's SYN-ACK, the client's ACK and one request and answer. hold: ms until it closes
  // (0/undefined: stays open); closeNow: closes right after the answer (TIME_WAIT, inactive).
  connect(c: ConnSpec & { closeNow?: boolean }, events: string[] = []): Decision {
    if (c.at !== undefined) this.advanceTo(c.at);
    this.beforeSchedule?.();
    const sport = c.sport ?? 40000 + this.n;
    const dst = c.dst ?? this.vip;
    const before = this.service();
    this.tracer.take();
    const r = this.core.packet("in", this.proto, c.client, sport, dst, this.vport, {
      flags: TCP_FLAGS.SYN,
      now: this.now,
      mark: this.mark,
    });
    const recs = this.tracer.take().filter((x) => x.svc === this.svc);
    const n = ++this.n;
    const base = { n, at: this.now - START, client: c.client, sport, dst, before, events };
    if (r.verdict !== "forward") {
      const rec = recs[recs.length - 1];
      return {
        ...base,
        how: "refused",
        destId: -1,
        dest: "-",
        record: rec,
        reason: r.reason ?? r.verdict,
        life: this.takeLife(),
      };
    }
    const conn = this.core.conn(r.conn)!;
    const destId = conn.destId;
    if (r.isNew) {
      const e: Entry = {
        n,
        client: c.client,
        sport,
        dst,
        destId,
        index: r.conn,
        state: "NONE",
        active: false,
        expires: 0,
      };
      this.read(e, this.proto === "tcp" ? "client SYN" : "first packet");
      this.open = this.open.filter((x) => x.index !== e.index);
      this.open.push(e);
      if (this.proto === "tcp" && c.answered !== false) {
        const { SYN, ACK, PSH } = TCP_FLAGS;
        this.pkt(e, "out", SYN | ACK);
        this.pkt(e, "in", ACK);
        this.pkt(e, "in", PSH | ACK, 200);
        this.pkt(e, "out", PSH | ACK, 1200);
        this.read(e, "server SYN-ACK, client ACK, a request and its answer");
        if (c.closeNow) this.closeConn(e, c.close ?? "fin", this.now);
        else if (c.hold) this.closes.push({ e, at: this.now + c.hold, how: c.close ?? "fin" });
      }
    }
    const life = this.takeLife();
    if (recs.length) {
      const rec = recs[recs.length - 1];
      if (rec.dest !== destId) throw new Error(`trace record says ${rec.dest} but the connection went to ${destId}`);
      return { ...base, how: "scheduled", destId, dest: this.name(destId), record: rec, life };
    }
    if (r.isNew && conn.controlledBy >= 0) {
      const t = this.core.conn(conn.controlledBy);
      const net = t ? t.caddr : "?";
      const expiresIn = t ? Math.max(0, Math.round((t.expires - this.now) / 1000)) : 0;
      return { ...base, how: "template", destId, dest: this.name(destId), template: { net, expiresIn }, life };
    }
    return { ...base, how: "existing", destId, dest: this.name(destId), life };
  }

  // The scenario's connection sequence (explicit connections, or generated traffic), with its events.
  *run(): Generator<Decision> {
    const s = this.scenario;
    const conns: (ConnSpec & { closeNow?: boolean })[] = [];
    if (s.connections?.length) {
      s.connections.forEach((c, i) =>
        conns.push({ ...c, at: c.at ?? i * (s.traffic?.interval ?? 100), close: c.close ?? s.traffic?.close }),
      );
    } else {
      const t = s.traffic ?? {};
      const count = t.count ?? 12,
        clients = Math.max(1, t.clients ?? 4),
        interval = t.interval ?? 100;
      const base = t.clientBase ?? (s.service.addr?.includes(":") ? "2001:db8::10" : "192.168.1.10");
      const targets = Math.max(1, t.targets ?? 1);
      const tbase = t.targetBase ?? (s.service.fwmark ? "10.9.0.1" : s.service.addr!);
      for (let i = 0; i < count; i++) {
        conns.push({
          client: addrAdd(base, i % clients),
          sport: (t.sport ?? 40000) + i,
          at: i * interval,
          close: t.close,
          dst: s.service.fwmark ? addrAdd(tbase, i % targets) : undefined,
          hold: t.hold,
          closeNow: t.closeEvery ? (i + 1) % t.closeEvery === 0 : false,
        });
      }
    }
    for (let i = 0; i < conns.length; i++) {
      const events: string[] = [];
      for (const e of s.events ?? []) {
        if (e.before !== i + 1) continue;
        const key = `${e.dest.addr}:${e.dest.port}`;
        const known = this.service().dests.some((x) => x.addr === e.dest.addr && x.port === e.dest.port);
        if (e.op !== "add" && !known)
          throw new Error(
            `event before connection ${e.before}: ${e.op === "del" ? "delete" : "edit"} ${key}: the service has ` +
              `no such real server`,
          );
        if (e.op === "add" && known)
          throw new Error(`event before connection ${e.before}: add ${key}: the service already has it`);
        if (e.op === "add") {
          this.addDest(e.dest);
          events.push(`add ${e.dest.name ?? this.nameOf.get(key) ?? ""} ${key} weight ${e.dest.weight ?? 1}`);
        } else if (e.op === "del") {
          events.push(`delete ${this.nameOf.get(key) ?? ""} ${key}`);
          this.delDest(e.dest);
        } else {
          this.editDest(e.dest);
          events.push(`edit ${this.nameOf.get(key) ?? ""} weight ${e.dest.weight ?? 1}`);
        }
      }
      yield this.connect(conns[i], events);
    }
  }

  // Runs the clock on to `at` ms after the last connection (closes and expiries still due) and returns what happened.
  finish(at: number): LifeEvent[] {
    this.advanceTo(at);
    return this.takeLife();
  }
}
