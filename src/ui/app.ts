// The teaching page: loads the very same build/core.wasm (served as /core.wasm) through src/core's Core and
// TraceSession, so every decision shown is the data plane's own, with its trace record, and every connection
// lives as a real one (handshake, answer, FIN or RST close, expiry) in the data plane's connection table.
// Bundled for the browser by `wasmvs ui` (esbuild); no network access besides fetching core.wasm.
import { Core, SCHEDULERS } from "../core/index.ts";
import { schedulerInfo } from "../model/schedulers.ts";
import {
  TraceSession,
  letterName,
  familyOf,
  Q,
  type Decision,
  type Line,
  type Scenario,
  type LifeEvent,
  type CloseHow,
  type Family,
} from "../explain/trace.ts";
import { readTree, readLocality, readMhFill, type TreeView, type MhFillView } from "./sched-state.ts";
import { treeSvg, treeCaption, localityHtml, mhFillDraw, type DestLoad, type Paint } from "./insides.ts";

// ---- state (mirrored in the URL hash) ------------------------------------------------------------------
interface DestCfg {
  addr: string;
  weight: number;
  u: number;
  name: string;
}
type View = "explore" | "compare" | "nodes";
interface State {
  view: View;
  preset: string;
  sched: string;
  flags: string[];
  persist: number;
  dests: DestCfg[];
  clients: number;
  hold: number;
  rate: number;
  close: CloseHow;
  targets: number;
  cmp: string[];
  flows: number;
  cmpN: number;
  change: "none" | "remove" | "add";
  victim: number;
  nodes: number;
  ndB: number;
  ndSched: string;
  ndHold: number;
  ndRate: number;
}
const ABC: DestCfg[] = [
  { addr: "10.1.0.1", weight: 4, u: 0, name: "A" },
  { addr: "10.1.0.2", weight: 3, u: 0, name: "B" },
  { addr: "10.1.0.3", weight: 2, u: 0, name: "C" },
];
const DEFAULT: State = {
  view: "explore",
  preset: "",
  sched: "wlc",
  flags: [],
  persist: 0,
  dests: ABC,
  clients: 4,
  hold: 0,
  rate: 4,
  close: "fin",
  targets: 1,
  cmp: ["rr", "wlc", "sh", "dh", "mh"],
  flows: 1000,
  cmpN: 5,
  change: "none",
  victim: 0,
  nodes: 4,
  ndB: 2,
  ndSched: "lc",
  ndHold: 60000,
  ndRate: 2,
};
const schedFlags = (sched: string): readonly string[] => schedulerInfo(sched)?.flags ?? [];
const isSched = (s: string | null): s is string => !!s && (SCHEDULERS as readonly string[]).includes(s);
const MAX_DESTS = 64;

// One preset per scheduler: the traffic that shows what it is for, and two sentences to say it.
interface Preset {
  sched: string;
  dests: [number, number?][];
  clients: number;
  hold: number;
  rate: number;
  targets?: number;
  flags?: string[];
  intro: string;
}
const PRESETS: Record<string, Preset> = {
  rr: {
    sched: "rr",
    dests: [[1], [1], [1]],
    clients: 4,
    hold: 0,
    rate: 4,
    intro:
      "Round robin hands new connections to the real servers in turn, skipping any with weight 0. " +
      "It ignores load: a server still busy with long connections gets its turn anyway.",
  },
  wrr: {
    sched: "wrr",
    dests: [[4], [3], [2]],
    clients: 4,
    hold: 0,
    rate: 4,
    intro:
      "Weighted round robin walks the list in passes; " +
      "a pass only takes servers whose weight reaches the current weight, which drops each pass. " +
      "Over 9 connections A gets 4, B 3 and C 2, interleaved.",
  },
  lc: {
    sched: "lc",
    dests: [[1], [1], [1]],
    clients: 8,
    hold: 6000,
    rate: 3,
    intro:
      "Least-connection sends each new connection to the server with the smallest active×256 + inactive. " +
      "Connections of varying length (here about 6 s) keep the counts uneven, and lc follows them.",
  },
  wlc: {
    sched: "wlc",
    dests: [[4], [3], [2]],
    clients: 8,
    hold: 6000,
    rate: 3,
    intro:
      "Weighted least-connection divides that overhead by the weight, " +
      "so a weight-4 server carries twice the connections of a weight-2 one. It is IPVS's default scheduler.",
  },
  sed: {
    sched: "sed",
    dests: [[4], [1]],
    clients: 8,
    hold: 6000,
    rate: 3,
    intro:
      "Shortest expected delay compares (active + 1) / weight and ignores inactive connections. " +
      "With weights 4 and 1 the small server gets a connection only when the big one has four more.",
  },
  nq: {
    sched: "nq",
    dests: [[4], [1]],
    clients: 8,
    hold: 6000,
    rate: 3,
    intro:
      "Never queue sends a connection to an idle server first, even the weak one. " +
      "Only when every server is busy does it compare (active + 1) / weight, as sed does.",
  },
  fo: {
    sched: "fo",
    dests: [[3, 4], [2, 4], [1]],
    clients: 8,
    hold: 8000,
    rate: 3,
    intro:
      "Failover always uses the highest-weight server that is not overloaded. " +
      "A and B have an upper threshold of 4 connections: when A reaches it, B takes over, then C.",
  },
  ovf: {
    sched: "ovf",
    dests: [[3], [2], [1]],
    clients: 8,
    hold: 8000,
    rate: 3,
    intro:
      "Overflow uses the highest-weight server while its active connections do not exceed its weight, " +
      "then overflows to the next. Here the weights are capacities: 3, 2 and 1 connections.",
  },
  twos: {
    sched: "twos",
    dests: [[4], [3], [2]],
    clients: 8,
    hold: 6000,
    rate: 3,
    intro:
      "Power of two choices draws two servers at random, in proportion to weight, and keeps the less loaded. " +
      "It needs no full scan and still avoids hot spots.",
  },
  sh: {
    sched: "sh",
    dests: [[1], [1], [1]],
    clients: 200,
    hold: 3000,
    rate: 6,
    intro:
      "Source hashing maps the client address to one of 256 buckets, " +
      "so a client always returns to the same server while the list does not change. " +
      "Many clients (here 200) spread over the buckets.",
  },
  mh: {
    sched: "mh",
    dests: [[1], [1], [1]],
    clients: 200,
    hold: 3000,
    rate: 6,
    intro:
      "Maglev hashing fills a lookup table of M slots from each server's own permutation, " +
      "so a client sticks to one server and a change moves only about 1/n of clients. " +
      "With a few clients it can pick one server for all of them; 200 clients show the spread.",
  },
  dh: {
    sched: "dh",
    dests: [[1], [1], [1]],
    clients: 4,
    hold: 3000,
    rate: 4,
    targets: 8,
    intro:
      "Destination hashing maps the packet's destination address to a bucket, " +
      "for caches in front of many origins. This is a fwmark service reaching 8 destination addresses: " +
      "each address always goes to the same server.",
  },
  lblc: {
    sched: "lblc",
    dests: [[2], [2], [2]],
    clients: 4,
    hold: 8000,
    rate: 4,
    targets: 6,
    intro:
      "Locality-based least-connection remembers a server per destination address and keeps it until it is " +
      "overloaded (more active connections than its weight while another is under half). A fwmark service with 6 " +
      "destination addresses shows the table.",
  },
  lblcr: {
    sched: "lblcr",
    dests: [[2], [2], [2]],
    clients: 4,
    hold: 8000,
    rate: 4,
    targets: 3,
    intro:
      "lblc with replication keeps a set of servers per destination address: " +
      "when the set's least loaded member is overloaded, wlc adds another. " +
      "Three busy destination addresses grow their sets.",
  },
};

function presetState(name: string, base: State): State {
  const p = PRESETS[name];
  return {
    ...base,
    preset: name,
    sched: p.sched,
    flags: p.flags ?? [],
    persist: 0,
    clients: p.clients,
    hold: p.hold,
    rate: p.rate,
    targets: p.targets ?? 1,
    close: "fin",
    dests: p.dests.map(([w, u], i) => ({ addr: `10.1.0.${i + 1}`, weight: w, u: u ?? 0, name: letterName(i) })),
  };
}

// Reads the link. Every part that is wrong is named (and its default used), never silently fixed.
// the keys a link may carry (readHash names any other)
const HASH_KEYS = new Set([
  "view",
  "preset",
  "s",
  "f",
  "p",
  "d",
  "c",
  "h",
  "r",
  "cl",
  "t",
  "cmp",
  "fl",
  "cn",
  "ch",
  "v",
  "nn",
  "nb",
  "ns",
  "nh",
  "nr",
]);

/** The d= list: ADDR[:WEIGHT[:UPPER[:NAME]]] per real server, or what is wrong with each bad one. */
function readDests(text: string): { dests: DestCfg[]; bad: string[] } {
  const ds: DestCfg[] = [];
  const bad: string[] = [];
  for (const [i, t] of (text ? text.split(",") : []).entries()) {
    const [a, w, u, n] = t.split(":");
    const weight = w === undefined ? 1 : Number(w),
      thr = u === undefined || u === "" ? 0 : Number(u);
    const name = n || letterName(i);
    if (!/^(25[0-5]|2[0-4]\d|1?\d?\d)(\.(25[0-5]|2[0-4]\d|1?\d?\d)){3}$/.test(a))
      bad.push(`'${t}': ` + `'${a}' is not an IPv4 address`);
    else if (w === "" || !Number.isInteger(weight) || weight < 0 || weight > 65535)
      bad.push(`'${t}': weight must be 0..65535`);
    else if (!Number.isInteger(thr) || thr < 0 || thr > 100000) bad.push(`'${t}': upper threshold must be 0..100000`);
    else if (!/^[A-Z]{1,3}$/.test(name)) bad.push(`'${t}': name '${name}' must be 1 to 3 capital letters`);
    else if (ds.some((x) => x.addr === a)) bad.push(`'${t}': ${a} appears twice`);
    else if (ds.some((x) => x.name === name)) bad.push(`'${t}': name ${name} appears twice`);
    else ds.push({ addr: a, weight, u: thr, name });
  }
  if (ds.length > MAX_DESTS) bad.push(`${ds.length} real servers: at most ${MAX_DESTS}`);
  return { dests: ds, bad };
}

function readHash(hash: string): { state: State; problems: string[] } {
  const s: State = structuredClone(DEFAULT);
  const problems: string[] = [];
  const raw = hash.replace(/^#/, "");
  if (!raw) return { state: s, problems };
  let p: URLSearchParams;
  try {
    p = new URLSearchParams(raw);
  } catch {
    return { state: s, problems: ["the link is not a list of key=value pairs"] };
  }
  for (const k of p.keys()) if (!HASH_KEYS.has(k)) problems.push(`unknown key '${k}'`);
  const int = (k: string, lo: number, hi: number, d: number, what: string) => {
    if (!p.has(k)) return d;
    const t = p.get(k)!,
      v = Number(t);
    if (t.trim() === "" || !Number.isInteger(v) || v < lo || v > hi) {
      problems.push(`${what} (${k}=${t}) must be a whole number from ${lo} to ${hi}`);
      return d;
    }
    return v;
  };
  const view = p.get("view");
  if (view === "explore" || view === "compare" || view === "nodes") s.view = view;
  else if (p.has("view")) problems.push(`view '${view}' is not explore, compare or nodes`);
  const preset = p.get("preset");
  if (preset) {
    if (Object.hasOwn(PRESETS, preset)) Object.assign(s, presetState(preset, s));
    else problems.push(`preset '${preset}' is not one of ${Object.keys(PRESETS).join(", ")}`);
  }
  const sc = p.get("s");
  if (p.has("s")) {
    if (isSched(sc)) s.sched = sc;
    else problems.push(`scheduler '${sc}' is not one of ` + `${SCHEDULERS.join(", ")}`);
  }
  if (p.get("f")) {
    for (const f of p.get("f")!.split(",")) {
      if (schedFlags(s.sched).includes(f)) s.flags.push(f);
      else problems.push(`flag '${f}' does not belong to ${s.sched}`);
    }
  }
  s.persist = int("p", 0, 3600, s.persist, "persistence");
  if (p.has("d")) {
    const { dests, bad } = readDests(p.get("d")!);
    if (bad.length) problems.push(`real servers (d=): ${bad.join("; ")}`);
    else s.dests = dests;
  }
  s.clients = int("c", 1, 5000, s.clients, "clients");
  s.hold = int("h", 0, 600000, s.hold, "connection length");
  s.rate = int("r", 1, 50, s.rate, "stream rate");
  s.targets = int("t", 1, 256, s.targets, "destination addresses");
  if (p.has("cl")) {
    const c = p.get("cl");
    if (c === "fin" || c === "rst") s.close = c;
    else problems.push(`close (cl=${c}) must be fin or rst`);
  }
  if (p.has("cmp")) {
    const c = p.get("cmp")!.split(",").filter(Boolean);
    const badC = c.filter((x) => !isSched(x));
    if (badC.length) problems.push(`compare: ${badC.map((x) => `'${x}'`).join(", ")} not a scheduler`);
    else s.cmp = c;
  }
  s.flows = int("fl", 10, 20000, s.flows, "flows");
  s.cmpN = int("cn", 2, 26, s.cmpN, "backends");
  const ch = p.get("ch");
  if (ch === "none" || ch === "remove" || ch === "add") s.change = ch;
  else if (p.has("ch")) problems.push(`change (ch=${ch}) must be none, remove or add`);
  s.victim = int("v", 0, s.cmpN - 1, 0, "backend to remove");
  s.nodes = int("nn", 2, 8, s.nodes, "nodes");
  s.ndB = int("nb", 2, 12, s.ndB, "backends per node");
  s.ndHold = int("nh", 100, 100000, s.ndHold, "mean connection length");
  s.ndRate = int("nr", 1, 500, s.ndRate, "connections per second");
  const ns = p.get("ns");
  if (p.has("ns")) {
    if (isSched(ns) && ns !== "mh") s.ndSched = ns;
    else problems.push(`per-node scheduler '${ns}' is not one of the others than mh`);
  }
  return { state: s, problems };
}
function hashOf(s: State): string {
  const p = new URLSearchParams({
    view: s.view,
    ...(s.preset ? { preset: s.preset } : {}),
    s: s.sched,
    f: s.flags.join(","),
    p: String(s.persist),
    d: s.dests.map((d) => `${d.addr}:${d.weight}:${d.u || ""}:${d.name}`).join(","),
    c: String(s.clients),
    h: String(s.hold),
    r: String(s.rate),
    cl: s.close,
    t: String(s.targets),
    cmp: s.cmp.join(","),
    fl: String(s.flows),
    cn: String(s.cmpN),
    ch: s.change,
    v: String(s.victim),
    nn: String(s.nodes),
    nb: String(s.ndB),
    ns: s.ndSched,
    nh: String(s.ndHold),
    nr: String(s.ndRate),
  });
  return `#${p}`;
}
function writeHash(): void {
  history.replaceState(null, "", hashOf(state));
  lastHash = location.hash;
}

let state: State = structuredClone(DEFAULT);
let lastHash = "";
let mod: WebAssembly.Module;
const $ = <T extends HTMLElement = HTMLElement>(id: string) => document.getElementById(id) as T;
const esc = (s: string) =>
  s.replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]!);
// eight colours, each at least 4.5:1 against the page's white and off-white (checked by test/ui.test.ts)
const COLORS = ["#1f5fa8", "#b3261e", "#1e7a34", "#6b3fa0", "#a34d00", "#00707a", "#7a4a2e", "#b0186e"];
// a backend's colour follows its name (A, B, … AA …), so it never changes while the scenario runs
function nameIndex(name: string): number {
  let k = 0;
  for (const ch of name) k = k * 26 + (ch.charCodeAt(0) - 64);
  return k - 1;
}
const colorOfName = (name: string) => COLORS[Math.max(0, nameIndex(name)) % COLORS.length];

// a small seeded generator (client choice, connection lengths), so a link replays the same traffic
function rng(seed: number) {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s / 4294967296;
  };
}

async function newCore(): Promise<Core> {
  return Core.fromModule(mod, 1 << 14);
}

// ---- Explore ----------------------------------------------------------------------------------------------
// Everything the teacher does is an action in a log; stepping back replays the log from the start on a fresh
// core to one action earlier, so the state shown is exactly the one the data plane had then.
type Action =
  | { k: "send"; client: string; sport: number; dst?: string; at: number; hold: number; close: CloseHow }
  | { k: "wait"; at: number }
  | { k: "edit"; addr: string; weight: number; u: number }
  | { k: "del"; addr: string }
  | { k: "add"; addr: string; weight: number; name: string };
interface Shown {
  n: number;
  client: string;
  sport: number;
  dst: string;
  at: number;
  dest: string;
  destAddr: string;
  how: string;
  hold: number;
  close: CloseHow;
}
const LOG_MAX = 60;
const ex = {
  session: null as TraceSession | null,
  base: [] as DestCfg[], // the real servers when the session started
  actions: [] as Action[],
  pos: 0, // actions applied
  t: 0, // ms since the session started
  sent: 0, // connections sent (the source port counter)
  shown: [] as Shown[],
  last: null as Decision | null,
  life: [] as LifeEvent[], // recent state changes, newest last
  history: [] as { t: number; act: Map<string, number> }[],
  timer: 0 as number | ReturnType<typeof setInterval>,
  replaying: false,
  predict: { on: false, right: 0, asked: 0, pending: "" },
};

function scenarioOf(s: State, dests: DestCfg[]): Scenario {
  const fw = s.targets > 1;
  return {
    service: fw
      ? { fwmark: 1, scheduler: s.sched, flags: s.flags, persistent: s.persist || undefined }
      : {
          proto: "tcp",
          addr: "10.0.0.1",
          port: 80,
          scheduler: s.sched,
          flags: s.flags,
          persistent: s.persist || undefined,
        },
    dests: dests.map((d) => ({ addr: d.addr, port: 80, weight: d.weight, upperThreshold: d.u, name: d.name })),
    seed: 1,
    traffic: fw ? { targetBase: "10.9.0.1" } : undefined,
  };
}

async function resetExplore(): Promise<void> {
  stopStream();
  ex.base = structuredClone(state.dests);
  ex.actions = [];
  ex.pos = 0;
  await rebuild(0);
  $("reason").textContent = "Send a connection (n) or start a stream (s).";
}

// A fresh session with the actions [0, pos) applied; the log shows the last of them.
async function rebuild(pos: number): Promise<void> {
  ex.replaying = true;
  ex.session = await TraceSession.create(scenarioOf(state, ex.base), await newCore());
  ex.session.beforeSchedule = noteSchedulerState;
  seen.tree = null;
  ex.t = 0;
  ex.sent = 0;
  ex.shown = [];
  ex.history = [];
  ex.life = [];
  ex.last = null;
  ex.pos = 0;
  $("log").innerHTML = "";
  const from = Math.max(0, pos - LOG_MAX);
  for (let i = 0; i < pos; i++) {
    if (i === from) ex.replaying = false;
    apply(ex.actions[i]);
    ex.pos = i + 1;
  }
  ex.replaying = false;
  syncConfig();
  renderExplore();
}

function syncConfig(): void {
  const s = ex.session!;
  state.dests = [...s.service().dests]
    .reverse()
    .map((d) => ({ addr: d.addr, weight: d.weight, u: d.upperThreshold, name: s.name(d.id) }));
  writeHash();
}

function apply(a: Action): Decision | null {
  const s = ex.session!;
  if (a.k === "send") {
    const d = s.connect({ client: a.client, sport: a.sport, dst: a.dst, at: a.at, hold: a.hold, close: a.close });
    ex.t = a.at;
    ex.sent++;
    const destAddr = d.destId >= 0 ? s.core.dest(d.destId).addr : "-";
    ex.shown.push({
      n: d.n,
      client: d.client,
      sport: d.sport,
      dst: d.dst,
      at: d.at,
      dest: d.dest,
      destAddr,
      how: d.how,
      hold: a.hold,
      close: a.close,
    });
    ex.last = d;
    noteLife(d.life);
    if (!ex.replaying) logDecision(d, destAddr);
    record();
    return d;
  }
  if (a.k === "wait") {
    s.advanceTo(a.at);
    ex.t = a.at;
    noteLife(s.takeLife());
    record();
    return null;
  }
  const cfg = s.service().dests.find((x) => x.addr === a.addr);
  if (a.k === "add") {
    if (!cfg) s.addDest({ addr: a.addr, port: 80, weight: a.weight, name: a.name });
  } else if (cfg && a.k === "del") s.delDest({ addr: a.addr, port: 80 });
  else if (cfg && a.k === "edit") s.editDest({ addr: a.addr, port: 80, weight: a.weight, upperThreshold: a.u });
  return null;
}

function noteLife(l: LifeEvent[]): void {
  ex.life.push(...l);
  if (ex.life.length > 200) ex.life.splice(0, ex.life.length - 200);
}

function record(): void {
  const act = new Map(ex.session!.service().dests.map((d) => [ex.session!.name(d.id), d.activeConns]));
  ex.history.push({ t: ex.t, act });
  if (ex.history.length > 120) ex.history.shift();
}

// A new action at the current position: anything after it (stepped back over) is dropped.
function act(a: Action): Decision | null {
  ex.actions.length = ex.pos;
  ex.actions.push(a);
  const d = apply(a);
  ex.pos++;
  return d;
}

// the n-th connection's k-th random number: a hash of (n, k), so the traffic of a link is the same every time
function draw(n: number, k: number): number {
  let h = Math.imul(n + 1, 0x9e3779b1) ^ Math.imul(k + 1, 0x85ebca77);
  h = Math.imul(h ^ (h >>> 16), 0x7feb352d);
  h = Math.imul(h ^ (h >>> 15), 0x846ca68b);
  h ^= h >>> 16;
  return (h >>> 0) / 4294967296;
}
function nextSend(): Action {
  let k = 0;
  const r = () => draw(ex.sent, k++);
  const i = Math.floor(r() * state.clients);
  const client = `192.168.${1 + Math.floor(i / 240)}.${10 + (i % 240)}`;
  const hold = state.hold ? Math.max(1, Math.round(-Math.log(1 - r()) * state.hold)) : 0;
  const dst = state.targets > 1 ? `10.9.0.${1 + Math.floor(r() * state.targets)}` : undefined;
  // a new source port per connection, wrapping after 40,000 as a client's ephemeral ports do
  return {
    k: "send",
    client,
    sport: 20000 + (ex.sent % 40000),
    dst,
    at: ex.t + Math.round(1000 / state.rate),
    hold,
    close: state.close,
  };
}

function sendOne(): Decision | null {
  if (!ex.session) return null;
  // stepping forward replays the next recorded action when there is one
  const d = ex.pos < ex.actions.length ? redo() : act(nextSend());
  renderExplore();
  if (d) animate(d);
  return d;
}
function redo(): Decision | null {
  const a = ex.actions[ex.pos];
  const d = apply(a);
  ex.pos++;
  if (a.k !== "send") syncConfig();
  return d;
}

async function stepBack(): Promise<void> {
  if (ex.pos === 0) return;
  stopStream();
  await rebuild(ex.pos - 1);
  $("reason").textContent =
    `Stepped back to step ${ex.pos} of ${ex.actions.length} (replayed from the start on a ` + `fresh core).`;
}

function wait(ms: number): void {
  if (!ex.session) return;
  act({ k: "wait", at: ex.t + ms });
  $("reason").textContent = `The clock moved on ${ms / 1000} s: entries whose timeout ran out left the table.`;
  renderExplore();
}

function logDecision(d: Decision, destAddr: string): void {
  const s = ex.session!;
  const li = document.createElement("li");
  li.value = d.n;
  Object.assign(li.dataset, { client: d.client, sport: String(d.sport), at: String(d.at), dest: destAddr, how: d.how });
  const own = d.life
    .filter((e) => e.n === d.n)
    .map((e) => e.to)
    .join(" → ");
  li.innerHTML =
    `<b>${esc(d.client)}:${d.sport}</b> ⇒ ` +
    `${d.destId >= 0 ? `${destTag(s.name(d.destId))} ${esc(destAddr)}` : '<span class="s-lose">refused</span>'}` +
    (own ? ` <span class="s-dim">${esc(own)}</span>` : "") +
    `<pre>${d.lines.map(segHtml).join("\n")}</pre><div class="sentence">${esc(d.sentence)}</div>`;
  const log = $("log");
  log.prepend(li);
  while (log.children.length > LOG_MAX) log.lastChild!.remove();
  $("reason").innerHTML = `<b>#${d.n}</b> ${esc(d.sentence)}`;
}

function destTag(name: string): string {
  return `<span class="s-dest" style="color:${colorOfName(name)}">${esc(name)}</span>`;
}

function segHtml(line: Line): string {
  const s = ex.session!;
  return line
    .map((g) => {
      if (typeof g === "string") return esc(g);
      if (g.s === "dest" && g.d !== undefined && g.d >= 0) return destTag(s.name(g.d));
      return `<span class="s-${g.s}">${esc(g.t)}</span>`;
    })
    .join("");
}

function startStream(): void {
  if (ex.timer) return;
  ex.timer = setInterval(() => sendOne(), Math.max(20, Math.round(1000 / state.rate)));
  $("stream").setAttribute("aria-pressed", "true");
}
function stopStream(): void {
  if (ex.timer) clearInterval(ex.timer as number);
  ex.timer = 0;
  $("stream")?.setAttribute("aria-pressed", "false");
}

// the stage is drawn in CSS pixels (its viewBox follows its width), so its text keeps its size on a phone
function renderStage(): void {
  const s = ex.session!;
  const svc = s.service();
  const ds = [...svc.dests].reverse(); // insertion order
  const el = $("stage") as unknown as SVGSVGElement;
  const W = Math.max(300, Math.round(el.parentElement!.clientWidth - 2));
  const n = ds.length,
    row = 40,
    top = 30;
  const H = Math.max(170, top + n * row + 34);
  el.setAttribute("viewBox", `0 0 ${W} ${H}`);
  el.setAttribute("width", String(W));
  el.setAttribute("height", String(H));
  const narrow = W < 560;
  const bx = narrow ? Math.round(W * 0.36) : Math.round(W * 0.42),
    bw = W - bx - 6;
  const vipX = narrow ? 8 : Math.round(W * 0.16),
    vipW = narrow ? bx - 24 : Math.round(W * 0.2);
  const maxC = Math.max(4, ...ds.map((d) => d.activeConns + d.inactConns));
  let svg =
    `<text x="8" y="18" font-size="14" ` +
    `fill="#4a525c">${narrow ? "" : "clients → "}${esc(svc.fwmark ? `fwmark ${svc.fwmark}` : "10.0.0.1:80")}</text>` +
    `<text x="${bx}" y="18" font-size="14" fill="#4a525c">real servers · active / inactive</text>`;
  const midY = top + (n * row) / 2;
  svg +=
    `<rect x="${vipX}" y="${midY - 26}" width="${vipW}" height="52" rx="6" fill="#222a33"/>` +
    `<text x="${vipX + vipW / 2}" y="${midY - 4}" fill="#fff" font-size="18" font-weight="700" ` +
    `text-anchor="middle">${esc(svc.scheduler)}</text>` +
    `<text x="${vipX + vipW / 2}" y="${midY + 16}" fill="#dfe4ea" font-size="13" text-anchor="middle">t = ` +
    `${(ex.t / 1000).toFixed(1)} s</text>`;
  ds.forEach((d, k) => {
    const y = top + k * row,
      name = s.name(d.id),
      c = colorOfName(name);
    const barW = Math.max(0, bw - 150);
    const wA = (d.activeConns / maxC) * barW,
      wI = (d.inactConns / maxC) * barW;
    const why = d.overloaded
      ? ` OVERLOADED (${d.activeConns + d.inactConns} ≥ ${d.upperThreshold})`
      : d.weight
        ? ""
        : " drained";
    svg +=
      `<g data-dest="${esc(d.addr)}" data-name="${esc(name)}" class="box">` +
      `<rect x="${bx}" y="${y}" width="${bw}" height="${row - 6}" rx="5" fill="#fff" stroke="${c}" ` +
      `stroke-width="${d.weight ? 2.5 : 1.5}" ${d.weight ? "" : 'stroke-dasharray="5 4"'}/>` +
      `<text x="${bx + 8}" y="${y + 16}" font-size="16" font-weight="700" fill="${c}">${esc(name)}</text>` +
      `<text x="${bx + 8 + 10 * name.length + 8}" y="${y + 16}" font-size="13" ` +
      `fill="#1d2125">${esc(narrow ? `w${d.weight}` : `${d.addr} w${d.weight}`)}` +
      `<tspan fill="#8a1c14" font-weight="600">${esc(why)}</tspan></text>` +
      `<rect x="${bx + 8}" y="${y + 22}" width="${wA}" height="9" fill="${c}"/>` +
      `<rect x="${bx + 8 + wA}" y="${y + 22}" width="${wI}" height="9" fill="#fff" stroke="${c}"/>` +
      `<text x="${bx + bw - 8}" y="${y + 27}" font-size="15" font-weight="600" text-anchor="end" ` +
      `fill="#1d2125">${d.activeConns} / ${d.inactConns}</text></g>`;
  });
  const last = ex.shown[ex.shown.length - 1];
  if (last)
    svg +=
      `<text x="8" y="${H - 10}" font-size="14" fill="#1d2125">#${last.n} ` +
      `${esc(last.client)}:${last.sport} ⇒ ${esc(last.dest)}</text>`;
  svg += `<circle id="dot" r="7" cx="-20" cy="-20" fill="#f0a500" stroke="#222" />`;
  el.innerHTML = svg;
}

// step charts: a count holds its value until it changes
function renderChart(): void {
  const s = ex.session!;
  const names = [...s.service().dests].reverse().map((d) => s.name(d.id));
  const el = $("chart") as unknown as SVGSVGElement;
  const W = Math.max(300, Math.round(el.parentElement!.clientWidth - 2)),
    H = 140,
    L = 40,
    R = 8,
    T = 14,
    B = 24;
  el.setAttribute("viewBox", `0 0 ${W} ${H}`);
  el.setAttribute("width", String(W));
  el.setAttribute("height", String(H));
  const hs = ex.history;
  const maxY = Math.max(2, ...hs.flatMap((p) => [...p.act.values()]));
  const t0 = hs.length ? hs[0].t : 0,
    t1 = hs.length ? Math.max(hs[hs.length - 1].t, t0 + 1) : 1;
  const X = (t: number) => L + ((t - t0) / (t1 - t0)) * (W - L - R),
    Y = (v: number) => H - B - (v / maxY) * (H - T - B);
  let ch =
    `<line x1="${L}" y1="${H - B}" x2="${W - R}" y2="${H - B}" stroke="#8a939c"/>` +
    `<line x1="${L}" y1="${T}" x2="${L}" y2="${H - B}" stroke="#8a939c"/>` +
    `<text x="${L - 6}" y="${T + 5}" font-size="13" text-anchor="end" fill="#4a525c">${maxY}</text>` +
    `<text x="${L - 6}" y="${H - B + 4}" font-size="13" text-anchor="end" fill="#4a525c">0</text>` +
    `<text x="${L}" y="${H - 6}" font-size="13" fill="#4a525c">${(t0 / 1000).toFixed(1)} s</text>` +
    `<text x="${W - R}" y="${H - 6}" font-size="13" text-anchor="end" fill="#4a525c">${(t1 / 1000).toFixed(1)} ` +
    `s</text>`;
  for (const nm of names) {
    let pts = "";
    hs.forEach((p, i) => {
      const v = Y(p.act.get(nm) ?? 0);
      if (i) pts += ` ${X(p.t)},${Y(hs[i - 1].act.get(nm) ?? 0)}`;
      pts += ` ${X(p.t)},${v}`;
    });
    ch +=
      `<polyline points="${pts}" fill="none" stroke="${colorOfName(nm)}" stroke-width="2">` +
      `<title>${esc(nm)}</title></polyline>`;
  }
  el.innerHTML = ch;
}

// The table of real servers is updated in place: rows appear and go with the servers, and an input being
// edited is never overwritten, so clicks and typing land while a stream runs.
function renderDests(): void {
  const s = ex.session!;
  const ds = [...s.service().dests].reverse();
  const tb = $("dests").querySelector("tbody")!;
  const rows = new Map(Array.from(tb.querySelectorAll<HTMLTableRowElement>("tr")).map((r) => [r.dataset.addr!, r]));
  let prev: HTMLTableRowElement | null = null;
  for (const d of ds) {
    const name = s.name(d.id);
    let tr = rows.get(d.addr);
    if (!tr) {
      tr = document.createElement("tr");
      tr.dataset.addr = d.addr;
      tr.innerHTML =
        `<td><b style="color:${colorOfName(name)}">${esc(name)}</b></td><td>${esc(d.addr)}:80</td>` +
        `<td><input type="number" min="0" max="65535" step="1" required aria-label="weight of ${esc(name)}" ` +
        `data-act="weight"></td>` +
        `<td><input type="number" min="0" max="100000" step="1" required aria-label="upper threshold of ` +
        `${esc(name)}" data-act="u"></td>` +
        `<td data-c="act"></td><td data-c="inact"></td><td data-c="conns"></td>` +
        `<td><button data-act="drain" aria-label="drain ${esc(name)}">drain</button> <button data-act="remove" ` +
        `aria-label="remove ${esc(name)}">remove</button></td>`;
      tb.insertBefore(tr, prev ? prev.nextSibling : tb.firstChild);
    }
    rows.delete(d.addr);
    const w = tr.querySelector<HTMLInputElement>('input[data-act="weight"]')!,
      u = tr.querySelector<HTMLInputElement>('input[data-act="u"]')!;
    if (document.activeElement !== w && w.value !== String(d.weight)) {
      w.value = String(d.weight);
      w.removeAttribute("aria-invalid");
    }
    if (document.activeElement !== u && u.value !== String(d.upperThreshold)) {
      u.value = String(d.upperThreshold);
      u.removeAttribute("aria-invalid");
    }
    const set = (c: string, v: string) => {
      const td = tr!.querySelector<HTMLElement>(`[data-c="${c}"]`)!;
      if (td.textContent !== v) td.textContent = v;
    };
    set("act", String(d.activeConns));
    set("inact", String(d.inactConns));
    set("conns", String(d.conns));
    tr.classList.toggle("drained", d.weight === 0);
    prev = tr;
  }
  for (const r of rows.values()) {
    if (r.contains(document.activeElement)) $("add").focus();
    r.remove();
  }
}

const whyShort = (why: string) =>
  why === "timeout" ? "timeout" : why.startsWith("client RST") ? "RST" : "FIN both ways";
function renderEntries(): void {
  const s = ex.session!;
  const es = s.entries();
  const counts = new Map<string, number>();
  for (const e of es) counts.set(e.state, (counts.get(e.state) ?? 0) + 1);
  const expired = ex.life.filter((e) => e.to === "expired").length;
  $("entry-counts").textContent =
    `${es.length} entr${es.length === 1 ? "y" : "ies"}: ` +
    `${[...counts].map(([k, v]) => `${v} ${k}`).join(", ") || "none"}` +
    (expired ? ` · ${expired} expired recently` : "");
  const recent = es.slice(-10).reverse();
  $("entries").querySelector("tbody")!.innerHTML = recent
    .map((e) => {
      const left = Math.max(0, Math.round((e.expires - ex.t) / 1000));
      return (
        `<tr data-n="${e.n}" data-state="${e.state}"><td>#${e.n}</td><td>${esc(e.client)}:${e.sport}</td>` +
        `<td>${destTag(s.name(e.destId))}</td>` +
        `<td class="st-${e.state}">${e.state}</td><td>${e.active ? "active" : "inactive"}</td><td>${left} s</td></tr>`
      );
    })
    .join("");
  const changes = ex.life
    .filter((e) => e.to !== "SYN_RECV" && !(e.from === "SYN_RECV" && e.to === "ESTABLISHED"))
    .slice(-6)
    .reverse();
  $("life").innerHTML = changes
    .map(
      (e) =>
        `<li data-to="${e.to}">+${(e.at / 1000).toFixed(1)} s #${e.n} ` +
        `${destTag(s.name(e.destId))}: ${e.from} → ` +
        `<b>${e.to}</b> <span class="s-dim">(${esc(whyShort(e.why))})</span></li>`,
    )
    .join("");
}

// ---- the scheduler's insides: its state after the last decision and its algorithm, the line it ended on lit
const PSEUDO: Record<Family, string[]> = {
  rr: [
    "p = the destination chosen last (the cursor)",
    "for each destination after p, wrapping round the list:",
    "    overloaded or weight 0? skip it",
    "    else: cursor = it; use it",
    "back at p with nothing usable: refuse",
  ],
  wrr: [
    "loop:",
    "    i = the next destination after the cursor",
    "    past the end? back to the head; cw = cw − gcd of the weights",
    "        cw ≤ 0? cw = the largest weight",
    "    weight(i) ≥ cw and not overloaded? cursor = i; use it",
    "no weight above 0: refuse",
  ],
  least: [
    "best = none",
    "for each destination in list order:",
    "    overloaded or weight 0 (ovf: active > weight)? skip it",
    "    best = none or load(it) < load(best)? best = it",
    "use best; none: refuse",
    "(wasmvs keeps a tournament tree instead of the scan; it picks what the scan picks, ties included)",
  ],
  twos: [
    "total = the sum of the weights of the usable destinations",
    "r1, r2 = two random numbers in 0 … total (the first range holds 0 too)",
    "c1, c2 = the destinations whose ranges hold r1 and r2",
    "use the one with the lower (active×256 + inactive) / weight; a tie keeps c1",
  ],
  hash: [
    "h = hash(key) mod the table size",
    "d = table[h]",
    "d usable (not weight 0, not overloaded)? use it",
    "fallback flag? re-hash with a counter, probe the next slot, until one is usable",
    "else: refuse",
  ],
  locality: [
    "en = the table entry for the destination address",
    "en's server (lblcr: the least loaded of its set) usable and not overloaded? use it",
    "else d = weighted least-connection over every destination",
    "remember d in en (lblcr: add d to the set); use d",
  ],
};
function litLines(fam: Family, d: Decision): number[] {
  const f = d.record?.f;
  if (!f) return [];
  if (fam === "rr") return d.destId < 0 ? [1, 2, 4] : f.W_CUR0 >= 0 ? [0, 1, 3] : [1, 3];
  if (fam === "wrr")
    return d.destId < 0 ? [5] : f.W_CW1 > f.W_CW0 ? [0, 1, 2, 3, 4] : f.W_CW1 < f.W_CW0 ? [0, 1, 2, 4] : [0, 1, 4];
  if (fam === "least") return d.destId < 0 ? [1, 2, 4] : [1, 3, 4];
  if (fam === "twos") return d.destId < 0 ? [0] : [0, 1, 2, 3];
  if (fam === "hash") return d.destId < 0 ? [0, 1, f.W_PROBES > 0 ? 3 : 4] : f.W_PROBES > 0 ? [0, 1, 3] : [0, 1, 2];
  return f.W_OUTCOME === 2 ? [0, 1] : [0, 2, 3];
}

// What the least-loaded scheduler's tree held when the last connection was scheduled, with each
// destination's figures then (TraceSession.beforeSchedule runs just before the scheduler is asked).
const seen = { tree: null as TreeView | null, loads: new Map<number, DestLoad>() };
function noteSchedulerState(): void {
  const s = ex.session!;
  const svc = s.service();
  seen.tree = familyOf(svc.scheduler) === "least" ? readTree(s) : null;
  seen.loads = new Map(
    svc.dests.map((x) => [
      x.id,
      { act: x.activeConns, inact: x.inactConns, weight: x.weight, overloaded: x.overloaded },
    ]),
  );
}
const paint: Paint = {
  name: (id) => (id < 0 ? "-" : ex.session!.name(id)),
  color: (n) => colorOfName(n),
  esc: (t) => esc(t),
};

// mh's population, claim by claim: read again when the table may have changed, stepped by its own controls
const mhFill = { view: null as MhFillView | null, key: "", k: 0, timer: 0 as number | ReturnType<typeof setInterval> };
function renderMhFill(): void {
  const s = ex.session!;
  const svc = s.service();
  const box = $("mh-fill-box");
  box.hidden = svc.scheduler !== "mh";
  if (box.hidden) {
    stopMhPlay();
    mhFill.view = null;
    mhFill.key = "";
    return;
  }
  const key = JSON.stringify(svc.dests.map((x) => [x.id, x.weight, x.lastWeight]));
  if (key !== mhFill.key || !mhFill.view) {
    mhFill.view = readMhFill(s);
    mhFill.key = key;
    mhFill.k = mhFill.view?.size ?? 0;
  }
  const v = mhFill.view!;
  const range = $<HTMLInputElement>("mh-k");
  range.max = String(v.size);
  range.value = String(mhFill.k);
  $("mh-fill-info").innerHTML = mhFillDraw($<HTMLCanvasElement>("mh-fill"), v, mhFill.k, paint);
}
function mhStep(to: number): void {
  if (!mhFill.view) return;
  mhFill.k = Math.max(0, Math.min(mhFill.view.size, to));
  renderMhFill();
}
function stopMhPlay(): void {
  if (mhFill.timer) clearInterval(mhFill.timer as number);
  mhFill.timer = 0;
  $("mh-play").setAttribute("aria-pressed", "false");
}
function wireMhFill(): void {
  const perRound = () => mhFill.view?.members.reduce((a, m) => a + m.turns, 0) || 1;
  $("mh-start").addEventListener("click", () => {
    stopMhPlay();
    mhStep(0);
  });
  $("mh-prev").addEventListener("click", () => {
    stopMhPlay();
    mhStep(mhFill.k - 1);
  });
  $("mh-next").addEventListener("click", () => {
    stopMhPlay();
    mhStep(mhFill.k + 1);
  });
  $("mh-round").addEventListener("click", () => {
    stopMhPlay();
    mhStep(mhFill.k + perRound());
  });
  $("mh-all").addEventListener("click", () => {
    stopMhPlay();
    mhStep(mhFill.view?.size ?? 0);
  });
  $<HTMLInputElement>("mh-k").addEventListener("input", (e) => {
    stopMhPlay();
    mhStep(Number((e.target as HTMLInputElement).value));
  });
  $("mh-play").addEventListener("click", () => {
    if (mhFill.timer) {
      stopMhPlay();
      return;
    }
    if (!mhFill.view) return;
    if (mhFill.k >= mhFill.view.size) mhStep(0);
    // about five seconds for a whole table, whatever its size
    const by = Math.max(1, Math.round(mhFill.view.size / 160));
    $("mh-play").setAttribute("aria-pressed", "true");
    mhFill.timer = setInterval(() => {
      mhStep(mhFill.k + by);
      if (!mhFill.view || mhFill.k >= mhFill.view.size) stopMhPlay();
    }, 30);
  });
}

// the tree (least-loaded schedulers) or the locality table (lblc, lblcr), as the last decision saw them
function renderInsides(fam: Family, d: Decision | null): void {
  const s = ex.session!;
  const sched = s.service().scheduler;
  const box = $("insides");
  if (fam === "least") {
    const t = seen.tree ?? readTree(s);
    if (!seen.tree) noteSchedulerState();
    box.innerHTML = t
      ? treeSvg(t, seen.loads, sched, paint) +
        `<p class="state-info">${d ? "" : "No decision yet; the tree as it stands. "}${treeCaption(t, paint)}</p>`
      : "";
  } else if (fam === "locality") {
    const v = readLocality(s);
    box.innerHTML = v ? localityHtml(v, sched, s.now, d?.dst ?? "", paint) : "";
  } else box.innerHTML = "";
  renderMhFill();
}

function renderInternals(): void {
  const s = ex.session!;
  const svc = s.service();
  const fam = familyOf(svc.scheduler);
  const d = ex.last;
  renderInsides(fam, d);
  const lit = (d && d.how === "scheduled") || d?.how === "refused" ? litLines(fam, d) : [];
  $("pseudo").innerHTML = PSEUDO[fam]
    .map((l, i) => `<span data-line="${i}"${lit.includes(i) ? ' class="lit"' : ""}>${esc(l)}</span>`)
    .join("\n");
  $("pseudo").dataset.lit = lit.join(",");
  const canvas = $<HTMLCanvasElement>("slots");
  const info = $("state-info");
  const f = d?.record?.f;
  if (fam === "hash") {
    const size = s.tracer.query(s.svc, Q.tableSize);
    const names: string[] = [];
    for (let i = 0; i < size; i++) {
      const id = s.tracer.query(s.svc, Q.slotDest, i);
      names.push(id >= 0 ? s.name(id) : "-");
    }
    canvas.hidden = false;
    const cols = size <= 256 ? 32 : 128,
      cell = size <= 256 ? 10 : 3,
      rows = Math.ceil(size / cols);
    canvas.width = cols * cell;
    canvas.height = rows * cell;
    const g = canvas.getContext("2d")!;
    g.fillStyle = "#fff";
    g.fillRect(0, 0, canvas.width, canvas.height);
    names.forEach((nm, i) => {
      g.fillStyle = nm === "-" ? "#d5d8dc" : colorOfName(nm);
      g.fillRect((i % cols) * cell, Math.floor(i / cols) * cell, cell - (cell > 4 ? 1 : 0), cell - (cell > 4 ? 1 : 0));
    });
    const mark = (i: number, c: string) => {
      g.strokeStyle = c;
      g.lineWidth = 2;
      g.strokeRect((i % cols) * cell - 1, Math.floor(i / cols) * cell - 1, cell + 1, cell + 1);
    };
    if (d?.record) {
      for (const p of d.record.path) mark(p.slot, "#8a939c");
      mark(d.record.f.W_BUCKET, "#000");
    }
    canvas.dataset.slots = names.join(",");
    canvas.dataset.bucket = d?.record ? String(d.record.f.W_BUCKET) : "";
    const counts = new Map<string, number>();
    for (const nm of names) counts.set(nm, (counts.get(nm) ?? 0) + 1);
    info.innerHTML =
      `${svc.scheduler === "mh" ? `lookup table, M = ${size} slots` : `${size} buckets`}: ` +
      [...counts]
        .filter(([k]) => k !== "-")
        .map(([k, v]) => `${destTag(k)} ${v}`)
        .join(" · ") +
      (d?.record
        ? ` · this connection: ` +
          `${svc.scheduler === "mh" ? "slot" : "bucket"} <b>${d.record.f.W_BUCKET}</b> (framed)`
        : "");
    canvas.setAttribute("aria-label", info.textContent ?? "");
    return;
  }
  canvas.hidden = true;
  const list = svc.dests; // list order
  if (fam === "rr" || fam === "wrr") {
    const cur = f ? f.W_CUR1 : -1;
    const chips = list.map((x, i) => `${i === cur ? "▶" : ""}${destTag(s.name(x.id))}`).join(" ");
    info.innerHTML =
      `list order: ${chips}` +
      (fam === "wrr" && f ? ` · current weight cw <b>${f.W_CW1}</b> (max ${f.W_MW}, step gcd ${f.W_DI})` : "") +
      ` · cursor ${cur >= 0 && list[cur] ? destTag(s.name(list[cur].id)) : "at the head"}`;
  } else if (fam === "locality") {
    info.innerHTML = f
      ? `table: ${f.W_ENTRIES} entr${f.W_ENTRIES === 1 ? "y" : "ies"} (one per destination address seen), ` +
        `${f.W_EXPIRED} expired; ` +
        `this address hashed to bucket ${f.W_LBUCKET} of 1024` +
        (d!.record!.set.length ? `; its set: {${d!.record!.set.map((id) => destTag(s.name(id))).join(" ")}}` : "")
      : "no decision yet";
  } else if (fam === "twos" && f) {
    info.innerHTML = `draws r1 = <b>${f.W_R1}</b>, r2 = <b>${f.W_R2}</b> in 0 … ${f.W_TOTAL}`;
  } else {
    info.innerHTML = f
      ? `winner ${destTag(s.name(d!.destId))}` +
        (f.W_R_ID >= 0 ? `, runner-up ${destTag(s.name(f.W_R_ID))}` : "") +
        " (the comparison is in the decision log)"
      : "no decision yet";
  }
}

function renderExplore(): void {
  if (!ex.session || ex.replaying) return;
  renderInternals();
  renderStage();
  renderChart();
  renderDests();
  renderEntries();
  renderPredict();
  const tl = $<HTMLInputElement>("timeline");
  tl.max = String(ex.actions.length);
  tl.value = String(ex.pos);
  $("step-of").textContent = `step ${ex.pos} of ${ex.actions.length}`;
  $<HTMLButtonElement>("back").disabled = ex.pos === 0;
  $("status").textContent =
    `${ex.session.service().scheduler}: ${ex.session.service().dests.length} real servers, ` +
    `${ex.sent} connections, t=${(ex.t / 1000).toFixed(1)} s`;
}

function animate(d: Decision): void {
  const s = ex.session!;
  const g = $("stage").querySelector<SVGGElement>(`g[data-name="${d.dest}"]`);
  const dot = document.getElementById("dot");
  if (!dot || (ex.timer && state.rate > 10)) return;
  const box = g?.querySelector("rect");
  const x1 = box ? Number(box.getAttribute("x")) : 200,
    y1 = box ? Number(box.getAttribute("y")) + 16 : 80;
  const y0 = 40 + ((Number(d.client.split(".")[3]) * 7) % 100);
  const t0 = performance.now(),
    T = Math.min(450, 900 / state.rate + 80);
  const c = d.destId >= 0 ? colorOfName(s.name(d.destId)) : "#b3261e";
  const step = (t: number) => {
    const a = Math.min(1, (t - t0) / T);
    dot.setAttribute("cx", String(10 + (x1 - 10) * a));
    dot.setAttribute("cy", String(y0 + (y1 - y0) * a));
    dot.setAttribute("fill", c);
    if (a < 1) requestAnimationFrame(step);
  };
  requestAnimationFrame(step);
}

// configuration changes on the live session (the same calls ipvsadm -e / -d make)
function destAction(addr: string, what: string, value?: number): void {
  const s = ex.session!;
  const d = s.service().dests.find((x) => x.addr === addr);
  if (!d) return;
  const name = s.name(d.id);
  if (what === "remove") act({ k: "del", addr });
  else
    act({
      k: "edit",
      addr,
      weight: what === "drain" ? 0 : what === "weight" ? value! : d.weight,
      u: what === "u" ? value! : d.upperThreshold,
    });
  $("reason").textContent =
    `${what === "remove" ? "Removed" : what === "drain" ? "Drained (weight 0)" : "Edited"} ` +
    `${name} ${addr}: the scheduler was told, as the kernel's update/del hooks do.` +
    (what === "remove"
      ? " Its open connections stay in the table, " +
        "counted on a server that is gone (with the kernel's default expire_nodest_conn=0, as here, their packets " +
        "are dropped until they time out; kube-proxy and wasmvs proxy set 1, which expires them at once)."
      : "");
  syncConfig();
  renderExplore();
}

function addDest(): void {
  const s = ex.session!;
  const have = s.service().dests;
  if (have.length >= MAX_DESTS) {
    $("reason").textContent = `At most ${MAX_DESTS} real servers on this page.`;
    return;
  }
  let k = 1;
  while (have.some((d) => d.addr === `10.1.${k >> 8}.${k & 255}`)) k++;
  const addr = `10.1.${k >> 8}.${k & 255}`;
  // a returning address keeps its old name; a new one takes the next unused name
  const used = new Set([...s.names.values()]);
  let i = 0;
  while (used.has(letterName(i))) i++;
  const name = s.nameOfAddr(addr, 80) ?? letterName(i);
  act({ k: "add", addr, weight: 1, name });
  syncConfig();
  renderExplore();
}

// "Predict the next choice": the student names a backend first, then sees the data plane's decision.
function renderPredict(): void {
  const box = $("predict");
  box.hidden = !ex.predict.on;
  if (!ex.predict.on) return;
  const s = ex.session!;
  const names = [...s.service().dests].reverse().map((d) => s.name(d.id));
  const have = Array.from(box.querySelectorAll<HTMLButtonElement>("button[data-guess]"))
    .map((b) => b.dataset.guess)
    .join(",");
  if (have !== [...names, "-"].join(",")) {
    box.querySelector(".guesses")!.innerHTML =
      names
        .map(
          (nm) =>
            `<button data-guess="${esc(nm)}" ` + `style="border-color:${colorOfName(nm)}">${destTag(nm)}</button>`,
        )
        .join("") + `<button data-guess="-">refused</button>`;
  }
  $("score").textContent = ex.predict.asked ? `${ex.predict.right} of ${ex.predict.asked} right` : "";
}
function guess(name: string): void {
  stopStream();
  const d = sendOne();
  if (!d) return;
  ex.predict.asked++;
  const ok = d.dest === name || (name === "-" && d.destId < 0);
  if (ok) ex.predict.right++;
  const said = name === "-" ? "refused" : destTag(name);
  $("verdict").innerHTML =
    `${ok ? '<b class="good">Right.</b>' : `<b class="bad">Not quite:</b> you said ${said},`} ` +
    `the data plane chose ${d.destId >= 0 ? destTag(d.dest) : "to refuse"}. ${esc(d.sentence)}`;
  renderPredict();
}

// ---- Compare ----------------------------------------------------------------------------------------------
// Every scheduler gets the same flows as open connections on its own core. Then one backend goes (or one is
// added). In IPVS an established connection never moves: connections to a removed backend break, the others
// stay. What changes is where *new* connections go; for the hash schedulers the question is whether a client
// (dh: a destination address) returns to the same backend, and that is what is scored.
const cmpCores = new Map<string, Core>();
function flowOf(f: number) {
  return {
    client: `172.16.${(f >> 8) & 255}.${f & 255}`,
    sport: 10000 + (f % 50000),
    dst: `10.9.${((f * 7919) >> 8) & 255}.${(f * 7919) & 255}`,
  };
}
interface CmpResult {
  sched: string;
  before: string[];
  after: string[];
  counts: number[];
  refused: number;
  broken: number;
  stayed: number;
  newRefused: number;
}

async function compareOne(sched: string, base: string[], after: string[]): Promise<CmpResult> {
  let core = cmpCores.get(sched);
  if (!core) {
    core = await newCore();
    cmpCores.set(sched, core);
  }
  core.flush();
  core.seedRandom(1);
  const svc = core.addService({ fwmark: 1, scheduler: sched });
  const idOf = new Map(base.map((a) => [a, core!.addDest(svc, { addr: a, port: 80, weight: 1 })]));
  const addrOf = (id: number) => [...idOf].find(([, v]) => v === id)?.[0] ?? "-";
  const open = (f: number, sportShift: number): string => {
    const fl = flowOf(f);
    const id = core!.schedule(svc, fl.client, fl.sport + sportShift, { dst: fl.dst, now: 1000 });
    if (id < 0) return "-";
    const d = core!.dest(id);
    core!.setLoad(id, d.activeConns + 1, d.inactConns);
    return addrOf(id);
  };
  const before = Array.from({ length: state.flows }, (_, f) => open(f, 0));
  const refused = before.filter((x) => x === "-").length;
  let broken = 0;
  if (state.change === "remove") {
    const gone = base[state.victim];
    broken = before.filter((x) => x === gone).length;
    core.deleteDest(svc, gone, 80);
    idOf.delete(gone);
  } else if (state.change === "add") {
    const a = after[after.length - 1];
    idOf.set(a, core.addDest(svc, { addr: a, port: 80, weight: 1 }));
  }
  const stayed = state.flows - refused - broken;
  // the same clients open one new connection each (another source port)
  const next = state.change === "none" ? before : Array.from({ length: state.flows }, (_, f) => open(f, 1));
  const shown = state.change === "none" ? before : next;
  const counts = after.map((a) => shown.filter((x) => x === a).length);
  return {
    sched,
    before,
    after: next,
    counts,
    refused,
    broken,
    stayed,
    newRefused: state.change === "none" ? 0 : next.filter((x) => x === "-").length,
  };
}

const pct = (a: number, b: number) => ((a / b) * 100).toFixed(1);
let cmpRun = 0;
/** A scheduler's card chart: connections per backend as bars, and the mean as a dashed line. */
function compareBars(counts: number[], after: string[], W: number, nameOf: (a: string) => string): string {
  const placed = counts.reduce((a, b) => a + b, 0);
  const mean = placed / after.length,
    max = Math.max(...counts);
  const bw = W / after.length;
  let bars = "";
  counts.forEach((c, i) => {
    const h = max ? (c / max) * 84 : 0,
      nm = nameOf(after[i]);
    bars +=
      `<rect x="${i * bw + 2}" y="${96 - h}" width="${bw - 4}" height="${h}" fill="${colorOfName(nm)}">` +
      `<title>${nm}: ${c}</title></rect>` +
      (after.length <= 14
        ? `<text x="${i * bw + bw / 2}" y="114" font-size="12" text-anchor="middle" fill="#1d2125">${nm}</text>`
        : "");
  });
  if (max)
    bars +=
      `<line x1="0" x2="${W}" y1="${96 - (mean / max) * 84}" y2="${96 - (mean / max) * 84}" ` +
      `stroke="#333" stroke-dasharray="3 3"/>`;
  return bars;
}

/** Whether new connections keep their backend: scored for the hash schedulers, said for the others. */
function affinityLine(sched: string, r: CmpResult, base: string[], after: string[]): string {
  if (familyOf(sched) === "hash") {
    let moved = 0,
      mustMove = 0,
      comparable = 0;
    r.before.forEach((b, f) => {
      if (b === "-" || r.after[f] === "-") return;
      comparable++;
      if (b !== r.after[f]) moved++;
      if (state.change === "remove" && b === base[state.victim]) mustMove++;
    });
    const ideal = state.change === "remove" ? mustMove : Math.round(comparable / after.length);
    const good = moved <= ideal * 1.15 + 2;
    return (
      `<div class="metric ${good ? "good" : "bad"}">new connections from the same ` +
      `${sched === "dh" ? "destination addresses" : "clients"}: ` +
      `<b data-m="moved">${comparable ? ((moved / comparable) * 100).toFixed(1) : "0.0"}%</b> go elsewhere ` +
      `(${
        state.change === "remove"
          ? `${pct(ideal, Math.max(1, comparable))}% had to`
          : `ideal ≈ ${pct(1, after.length)}%`
      })</div>`
    );
  } else {
    const family = familyOf(sched);
    const by = family === "rr" || family === "wrr" ? "turn" : family === "locality" ? "its table and load" : "load";
    return (
      `<div class="metric" data-m="unscored">${sched} places a new connection by ${by}, ` +
      `not by client: no affinity to keep</div>`
    );
  }
}

async function renderCompare(): Promise<void> {
  const run = ++cmpRun;
  const base = Array.from({ length: state.cmpN }, (_, i) => `10.2.0.${i + 1}`);
  const nameOf = (a: string) => letterName(Number(a.split(".")[3]) - 1);
  const victimSel = $<HTMLSelectElement>("cmp-victim");
  victimSel.innerHTML = base
    .map((a, i) => `<option value="${i}" ${i === state.victim ? "selected" : ""}>${nameOf(a)} ${a}</option>`)
    .join("");
  let after = base,
    what = "";
  if (state.change === "remove") {
    after = base.filter((_, i) => i !== state.victim);
    what = `after removing ${nameOf(base[state.victim])}`;
  }
  if (state.change === "add") {
    after = [...base, `10.2.0.${state.cmpN + 1}`];
    what = `after adding ${letterName(state.cmpN)}`;
  }
  const cards: string[] = [];
  for (const sched of state.cmp) {
    const r = await compareOne(sched, base, after);
    if (run !== cmpRun) return; // a newer render started while this one awaited
    const placed = r.counts.reduce((a, b) => a + b, 0);
    const mean = placed / after.length,
      max = Math.max(...r.counts);
    const W = 280;
    const bars = compareBars(r.counts, after, W, nameOf);
    const refusedAll = r.refused + r.newRefused;
    const lines: string[] = [];
    lines.push(
      `<div class="metric">${state.change === "none" ? "open connections" : "new connections"} per backend ` +
        `· max/mean <b data-m="imbalance">${placed ? (max / mean).toFixed(2) : "-"}</b></div>`,
    );
    if (refusedAll) {
      lines.push(
        `<div class="metric bad" data-m="refused">refused <b>${r.refused.toLocaleString("en")}</b> of ` +
          `${state.flows.toLocaleString("en")}` +
          `${state.change === "none" ? "" : `, then ${r.newRefused.toLocaleString("en")} new`}: ` +
          `a refused connection is a failure</div>`,
      );
    }
    if (state.change !== "none") {
      lines.push(
        `<div class="metric">existing: <b data-m="stayed">${r.stayed}</b> stay on their backend` +
          (r.broken ? `, <b class="bad" data-m="broken">${r.broken}</b> to ${nameOf(base[state.victim])} break` : "") +
          `</div>`,
      );
      lines.push(affinityLine(sched, r, base, after));
    }
    cards.push(
      `<div class="panel card${refusedAll ? " failed" : ""}" data-sched="${sched}"><h3>${sched}</h3>` +
        `<svg viewBox="0 0 ${W} 120" role="img" aria-label="${sched}: connections per backend">${bars}</svg>` +
        lines.join("") +
        `</div>`,
    );
  }
  $("cmp-cards").innerHTML = cards.join("") || `<p class="hint">Tick at least one scheduler.</p>`;
  $("status").textContent =
    `compare: ${state.cmp.length} schedulers, ${state.flows} flows, ` +
    `${state.cmpN} backends${what ? ", " + what : ""}`;
}

// ---- Many nodes -------------------------------------------------------------------------------------------
interface NodeSet {
  sched: string;
  cores: Core[];
  svcs: number[];
  ids: number[][];
}
const NODE_COLORS = COLORS;
const nd = {
  sets: [] as NodeSet[],
  conns: [] as { set: number; node: number; dest: number; end: number }[],
  t: 0,
  rand: rng(7),
  timer: 0 as number | ReturnType<typeof setInterval>,
  series: [] as number[][], // imbalance per set over time
  clients: 0,
};

async function resetNodes(): Promise<void> {
  stopNodes();
  nd.sets = [];
  nd.conns = [];
  nd.t = 0;
  nd.rand = rng(7);
  nd.series = [];
  nd.clients = 0;
  for (const sched of [state.ndSched, "mh"]) {
    const set: NodeSet = { sched, cores: [], svcs: [], ids: [] };
    for (let n = 0; n < state.nodes; n++) {
      const core = await newCore();
      const svc = core.addService({ proto: "tcp", addr: "10.96.0.10", port: 80, scheduler: sched });
      set.ids.push(
        Array.from({ length: state.ndB }, (_, b) =>
          core.addDest(svc, { addr: `10.244.${b + 1}.5`, port: 80, weight: 1 }),
        ),
      );
      set.cores.push(core);
      set.svcs.push(svc);
    }
    nd.sets.push(set);
  }
  renderNodes();
}

// one simulated second: connections end, new ones arrive at a random node each (the same client and node
// for both schemes), and each node's own balancer chooses
function stepNodes(perNode = false): void {
  nd.t += 1000;
  for (const c of nd.conns.filter((c) => c.end <= nd.t)) {
    const set = nd.sets[c.set];
    const core = set.cores[c.node],
      id = set.ids[c.node][c.dest];
    const d = core.dest(id);
    core.setLoad(id, Math.max(0, d.activeConns - 1), d.inactConns);
  }
  nd.conns = nd.conns.filter((c) => c.end > nd.t);
  const k = perNode ? state.nodes : Math.max(0, Math.round(state.ndRate + (nd.rand() - 0.5) * state.ndRate));
  for (let i = 0; i < k; i++) {
    const node = perNode ? i : Math.floor(nd.rand() * state.nodes);
    const len = Math.max(100, Math.round(-Math.log(1 - nd.rand()) * state.ndHold));
    const client = `100.64.${(nd.clients >> 8) & 255}.${nd.clients & 255}`;
    const sport = 20000 + (nd.clients % 40000);
    nd.clients++;
    nd.sets.forEach((set, si) => {
      const core = set.cores[node];
      const id = core.schedule(set.svcs[node], client, sport, { now: nd.t });
      if (id < 0) return;
      const d = core.dest(id);
      core.setLoad(id, d.activeConns + 1, d.inactConns);
      nd.conns.push({ set: si, node, dest: set.ids[node].indexOf(id), end: nd.t + len });
    });
  }
  renderNodes();
}

function totals(set: NodeSet): number[][] {
  // [backend][node] active
  return Array.from({ length: state.ndB }, (_, b) => set.cores.map((core, n) => core.dest(set.ids[n][b]).activeConns));
}

// How often every node would send the same client to the same backend (asked without connecting).
function agreement(set: NodeSet): number {
  let same = 0;
  const N = 200;
  for (let i = 0; i < N; i++) {
    const client = `100.65.${i >> 8}.${i & 255}`;
    const picks = set.cores.map((core, n) =>
      set.ids[n].indexOf(core.schedule(set.svcs[n], client, 30000 + i, { now: nd.t })),
    );
    if (picks.every((p) => p === picks[0])) same++;
  }
  return same / N;
}

// a node's active connections over its own copies of the backends
const activeOn = (core: Core, ids: number[]) => ids.reduce((a, id) => a + core.dest(id).activeConns, 0);
const nodeKey = (n: number) => `<span style="color:${NODE_COLORS[n % NODE_COLORS.length]}">■ node ${n + 1}</span>`;

function renderNodes(): void {
  const cards: string[] = [];
  const imb: number[] = [];
  nd.sets.forEach((set, si) => {
    const t = totals(set);
    const sums = t.map((r) => r.reduce((a, b) => a + b, 0));
    const total = sums.reduce((a, b) => a + b, 0);
    const mean = total / state.ndB,
      max = Math.max(...sums);
    const ratio = total ? max / mean : 1;
    imb.push(ratio);
    const W = 300,
      bw = W / state.ndB,
      top = Math.max(4, max);
    let svg = "";
    t.forEach((row, b) => {
      let y = 108;
      row.forEach((a, n) => {
        const h = (a / top) * 92;
        y -= h;
        const fill = NODE_COLORS[n % NODE_COLORS.length];
        svg +=
          `<rect x="${b * bw + 3}" y="${y}" width="${bw - 6}" height="${h}" ` +
          `fill="${fill}"><title>node ${n + 1} → backend ${b + 1}: ${a}</title></rect>`;
      });
      svg +=
        `<text x="${b * bw + bw / 2}" y="124" font-size="12" text-anchor="middle" fill="#1d2125">b${b + 1}: ` +
        `${sums[b]}</text>`;
    });
    const agree = set.sched === "mh" ? agreement(set) : 0;
    const label =
      set.sched === "mh" ? "Maglev (mh): the same table on every node" : `${set.sched} on each node, its own counters`;
    cards.push(
      `<div class="panel card" data-sched="${set.sched}" data-set="${si}"><h3>${esc(label)}</h3>` +
        `<svg viewBox="0 0 ${W} 128" role="img" aria-label="active connections per backend, ` +
        `stacked by node">${svg}</svg>` +
        `<div class="metric">active ${total} · imbalance max/mean <b data-m="imbalance" ` +
        `class="${ratio > 1.5 ? "bad" : "good"}">${total ? ratio.toFixed(2) : "-"}</b></div>` +
        (set.sched === "mh"
          ? `<div class="metric">every node sends a given client to the same backend: ` +
            `<b data-m="agree">${Math.round(agree * 100)}%</b></div>`
          : `<div class="metric">each node knows only its own: ` +
            `${set.cores.map((c, n) => `n${n + 1} ${activeOn(c, set.ids[n])}`).join(" · ")}</div>`) +
        `</div>`,
    );
  });
  if (nd.sets.length) {
    nd.series.push(imb);
    if (nd.series.length > 120) nd.series.shift();
    const maxY = Math.max(2, ...nd.series.flat());
    const W = 600,
      H = 140,
      L = 34,
      B = 20,
      T = 22;
    const X = (i: number) => L + (i / 119) * (W - L - 8),
      Y = (v: number) => H - B - (v / maxY) * (H - T - B);
    let ch =
      `<text x="${L}" y="14" font-size="13" fill="#4a525c">imbalance max/mean over time (1 = even)</text>` +
      `<line x1="${L}" x2="${W - 8}" y1="${Y(1)}" y2="${Y(1)}" stroke="#8a939c" stroke-dasharray="3 3"/>` +
      `<text x="${L - 4}" y="${Y(1) + 4}" font-size="12" text-anchor="end" fill="#4a525c">1</text>` +
      `<text x="${L - 4}" y="${Y(maxY) + 4}" font-size="12" text-anchor="end" ` +
      `fill="#4a525c">${maxY.toFixed(1)}</text>`;
    nd.sets.forEach((set, si) => {
      let pts = "";
      nd.series.forEach((v, i) => {
        if (i) pts += ` ${X(i)},${Y(nd.series[i - 1][si])}`;
        pts += ` ${X(i)},${Y(v[si])}`;
      });
      const c = si ? COLORS[2] : COLORS[1];
      ch +=
        `<polyline points="${pts}" fill="none" stroke="${c}" stroke-width="2"/>` +
        `<text x="${W - 8}" y="${30 + si * 16}" font-size="13" text-anchor="end" fill="${c}">${esc(set.sched)}</text>`;
    });
    cards.push(
      `<div class="panel card wide-card"><h3>Drift</h3>` +
        `<svg viewBox="0 0 ${W} ${H}" role="img" aria-label="imbalance over time">${ch}</svg>` +
        `<p class="hint">Node colours in the bars: ` +
        `${Array.from({ length: state.nodes }, (_, n) => nodeKey(n)).join(" ")}. ` +
        `Per-node ${esc(state.ndSched)} balances each node's own few connections; ` +
        `every node starts from the same list and breaks ties the same way, so the sums drift apart. ` +
        `mh decides by the client alone.</p></div>`,
    );
  }
  $("nd-cards").innerHTML = cards.join("");
  $("status").textContent = `many nodes: ${state.nodes} nodes × ${state.ndB} backends, t=${nd.t / 1000} s`;
}

function stopNodes(): void {
  if (nd.timer) clearInterval(nd.timer as number);
  nd.timer = 0;
  $("nd-run")?.setAttribute("aria-pressed", "false");
}

// ---- wiring -----------------------------------------------------------------------------------------------
const VIEWS: View[] = ["explore", "compare", "nodes"];
function setView(v: View): void {
  state.view = v;
  for (const id of VIEWS) {
    $(`view-${id}`).hidden = id !== v;
    $(`tab-${id}`).setAttribute("aria-selected", String(id === v));
    $(`tab-${id}`).tabIndex = id === v ? 0 : -1;
  }
  if (v !== "explore") stopStream();
  if (v !== "nodes") stopNodes();
  writeHash();
  if (v === "compare") void renderCompare();
  if (v === "nodes" && !nd.sets.length) void resetNodes();
  if (v === "explore") renderExplore();
}

function renderFlags(): void {
  $("flags").innerHTML =
    schedFlags(state.sched)
      .map(
        (f) =>
          `<label>` + `<input type="checkbox" value="${f}" ${state.flags.includes(f) ? "checked" : ""}> ${f}</label>`,
      )
      .join("") || `<span class="hint">no flags for ${esc(state.sched)}</span>`;
}

// A number input: a value out of range or not whole is marked invalid and said, and changes nothing.
type NumberKey = { [K in keyof State]: State[K] extends number ? K : never }[keyof State];
function numInput(id: string, key: NumberKey, after: () => void): void {
  const el = $<HTMLInputElement>(id);
  el.value = String(state[key]);
  el.addEventListener("change", () => {
    const v = Number(el.value);
    const bad = el.value.trim() === "" || !Number.isInteger(v) || v < Number(el.min) || v > Number(el.max);
    el.setAttribute("aria-invalid", String(bad));
    if (bad) {
      say(
        `${el.labels?.[0]?.textContent?.trim() ?? id}: ` +
          `'${el.value}' is not a whole number from ${el.min} to ${el.max}; kept ${state[key]}.`,
      );
      return;
    }
    state[key] = v;
    writeHash();
    after();
  });
}
function say(msg: string): void {
  const box = $("problems");
  box.hidden = false;
  box.innerHTML = `<b>Not applied:</b> ${esc(msg)} <button id="problems-close" aria-label="dismiss">×</button>`;
}

function syncControls(): void {
  $<HTMLSelectElement>("sched").value = state.sched;
  $<HTMLSelectElement>("preset").value =
    state.preset && PRESETS[state.preset]?.sched === state.sched ? state.preset : "";
  renderFlags();
  for (const [id, k] of [
    ["persist", "persist"],
    ["clients", "clients"],
    ["hold", "hold"],
    ["rate", "rate"],
    ["targets", "targets"],
    ["cmp-flows", "flows"],
    ["cmp-n", "cmpN"],
    ["nd-n", "nodes"],
    ["nd-b", "ndB"],
    ["nd-hold", "ndHold"],
    ["nd-rate", "ndRate"],
  ] as const)
    $<HTMLInputElement>(id).value = String(state[k]);
  $<HTMLSelectElement>("close").value = state.close;
  $<HTMLSelectElement>("nd-sched").value = state.ndSched;
  $("cmp-scheds")
    .querySelectorAll<HTMLInputElement>("input")
    .forEach((i) => {
      i.checked = state.cmp.includes(i.value);
    });
  const p = PRESETS[state.preset];
  $("intro").textContent = p && p.sched === state.sched ? p.intro : "";
}

async function loadHash(): Promise<void> {
  const { state: next, problems } = readHash(location.hash);
  state = next;
  lastHash = location.hash;
  const box = $("problems");
  if (problems.length) {
    box.hidden = false;
    box.innerHTML =
      `<b>This link has ${problems.length === 1 ? "a problem" : `${problems.length} problems`}; ` +
      `the defaults are used for ${problems.length === 1 ? "it" : "them"}:</b>` +
      `<ul>${problems.map((p) => `<li>${esc(p)}</li>`).join("")}</ul>` +
      `<button id="problems-close" aria-label="dismiss">×</button>`;
  } else {
    box.hidden = true;
    box.innerHTML = "";
  }
  syncControls();
  await resetExplore();
  setView(state.view);
}

// scheduler, preset and scheduler flags: each starts the scenario again
function wireService(): void {
  const schedSel = $<HTMLSelectElement>("sched");
  schedSel.innerHTML = SCHEDULERS.map((s) => `<option>${s}</option>`).join("");
  schedSel.addEventListener("change", () => {
    state.sched = schedSel.value;
    state.flags = [];
    state.preset = "";
    syncControls();
    writeHash();
    void resetExplore();
  });
  const presetSel = $<HTMLSelectElement>("preset");
  presetSel.innerHTML =
    `<option value="">(your own)</option>` +
    Object.keys(PRESETS)
      .map((k) => `<option value="${k}">${k}</option>`)
      .join("");
  presetSel.addEventListener("change", () => {
    if (!presetSel.value) return;
    state = presetState(presetSel.value, state);
    syncControls();
    writeHash();
    void resetExplore();
  });
  $("flags").addEventListener("change", () => {
    state.flags = Array.from($("flags").querySelectorAll<HTMLInputElement>("input:checked")).map((i) => i.value);
    writeHash();
    void resetExplore();
  });
}

// the traffic's numbers; the service's ones (persistence, addresses) start it again
function wireTraffic(): void {
  numInput("persist", "persist", () => void resetExplore());
  numInput("clients", "clients", () => {});
  numInput("hold", "hold", () => {});
  numInput("targets", "targets", () => void resetExplore());
  numInput("rate", "rate", () => {
    if (ex.timer) {
      stopStream();
      startStream();
    }
  });
  $<HTMLSelectElement>("close").addEventListener("change", (e) => {
    state.close = (e.target as HTMLSelectElement).value as CloseHow;
    writeHash();
  });
}

// step, back, play, reset, waits, the timeline, predict mode and mh's population stepper
function wireSteps(): void {
  $("send").addEventListener("click", () => sendOne());
  $("back").addEventListener("click", () => void stepBack());
  $("stream").addEventListener("click", () => (ex.timer ? stopStream() : startStream()));
  $("reset").addEventListener("click", () => void resetExplore());
  $("wait10").addEventListener("click", () => wait(10_000));
  $("wait120").addEventListener("click", () => wait(120_000));
  $<HTMLInputElement>("timeline").addEventListener("input", (e) => {
    stopStream();
    void rebuild(Number((e.target as HTMLInputElement).value));
  });
  wireMhFill();
  $<HTMLInputElement>("predict-on").addEventListener("change", (e) => {
    ex.predict.on = (e.target as HTMLInputElement).checked;
    if (ex.predict.on) stopStream();
    renderPredict();
  });
  $("predict").addEventListener("click", (e) => {
    const b = (e.target as HTMLElement).closest<HTMLButtonElement>("button[data-guess]");
    if (b) guess(b.dataset.guess!);
  });
}

// the problems box and the real servers' table (add, drain, remove, weight and threshold inputs)
function wireServers(): void {
  $("add").addEventListener("click", () => addDest());
  $("problems").addEventListener("click", (e) => {
    if ((e.target as HTMLElement).id === "problems-close") $("problems").hidden = true;
  });
  $("dests").addEventListener("click", (e) => {
    const b = (e.target as HTMLElement).closest("button");
    if (!b) return;
    destAction(b.closest("tr")!.dataset.addr!, b.dataset.act!);
  });
  $("dests").addEventListener("change", (e) => {
    const i = e.target as HTMLInputElement;
    const v = Number(i.value);
    const bad = i.value.trim() === "" || !Number.isInteger(v) || v < 0 || v > Number(i.max);
    i.setAttribute("aria-invalid", String(bad));
    if (bad) {
      say(`${i.getAttribute("aria-label")}: '${i.value}' is not a whole number from 0 to ${i.max}.`);
      return;
    }
    destAction(i.closest("tr")!.dataset.addr!, i.dataset.act!, v);
  });
}

// the Compare view's schedulers, flows and change
function wireCompare(): void {
  $("cmp-scheds").innerHTML = SCHEDULERS.map(
    (s) => `<label>` + `<input type="checkbox" value="${s}"> ${s}</label>`,
  ).join("");
  $("cmp-scheds").addEventListener("change", () => {
    state.cmp = Array.from($("cmp-scheds").querySelectorAll<HTMLInputElement>("input:checked")).map((i) => i.value);
    writeHash();
    void renderCompare();
  });
  numInput("cmp-flows", "flows", () => void renderCompare());
  numInput("cmp-n", "cmpN", () => {
    state.victim = 0;
    state.change = "none";
    writeHash();
    void renderCompare();
  });
  $<HTMLSelectElement>("cmp-victim").addEventListener("change", (e) => {
    state.victim = Number((e.target as HTMLSelectElement).value);
    writeHash();
    if (state.change === "remove") void renderCompare();
  });
  $("cmp-remove").addEventListener("click", () => {
    state.change = "remove";
    writeHash();
    void renderCompare();
  });
  $("cmp-addone").addEventListener("click", () => {
    state.change = "add";
    writeHash();
    void renderCompare();
  });
  $("cmp-restore").addEventListener("click", () => {
    state.change = "none";
    writeHash();
    void renderCompare();
  });
}

// the Many nodes view
function wireNodes(): void {
  const ndSel = $<HTMLSelectElement>("nd-sched");
  ndSel.innerHTML = SCHEDULERS.filter((s) => s !== "mh")
    .map((s) => `<option>${s}</option>`)
    .join("");
  ndSel.addEventListener("change", () => {
    state.ndSched = ndSel.value;
    writeHash();
    void resetNodes();
  });
  numInput("nd-n", "nodes", () => void resetNodes());
  numInput("nd-b", "ndB", () => void resetNodes());
  numInput("nd-hold", "ndHold", () => {});
  numInput("nd-rate", "ndRate", () => {});
  $("nd-step").addEventListener("click", () => stepNodes());
  $("nd-each").addEventListener("click", () => stepNodes(true));
  $("nd-run").addEventListener("click", () => {
    if (nd.timer) {
      stopNodes();
      return;
    }
    nd.timer = setInterval(stepNodes, 250);
    $("nd-run").setAttribute("aria-pressed", "true");
  });
  $("nd-reset").addEventListener("click", () => void resetNodes());
}

// tabs by click or arrow keys, the page's shortcuts, links typed or pasted, resizing
function wireKeys(): void {
  // tabs: click, or arrow keys between them (the WAI-ARIA tabs pattern)
  document
    .querySelectorAll<HTMLButtonElement>("nav button")
    .forEach((b) => b.addEventListener("click", () => setView(b.dataset.view as View)));
  $("tabs").addEventListener("keydown", (e) => {
    const i = VIEWS.indexOf(state.view);
    const k =
      e.key === "ArrowRight"
        ? (i + 1) % 3
        : e.key === "ArrowLeft"
          ? (i + 2) % 3
          : e.key === "Home"
            ? 0
            : e.key === "End"
              ? 2
              : -1;
    if (k < 0) return;
    e.preventDefault();
    setView(VIEWS[k]);
    $(`tab-${VIEWS[k]}`).focus();
  });
  document.addEventListener("keydown", (e) => {
    const t = e.target as HTMLElement;
    if (e.ctrlKey || e.metaKey || e.altKey || t.matches("input, select, textarea") || t.closest("nav")) return;
    const k = e.key;
    if (k === "1" || k === "2" || k === "3") {
      setView(VIEWS[Number(k) - 1]);
      e.preventDefault();
    } else if (k === "?") {
      $<HTMLDialogElement>("help").showModal();
    } else if (state.view === "explore" && (k === "n" || k === "ArrowRight" || (k === " " && !t.matches("button")))) {
      sendOne();
      e.preventDefault();
    } else if (state.view === "explore" && (k === "b" || k === "ArrowLeft")) {
      void stepBack();
      e.preventDefault();
    } else if (state.view === "explore" && k === "s") {
      ex.timer ? stopStream() : startStream();
    } else if (state.view === "explore" && k === "r") {
      void resetExplore();
    } else if (state.view === "nodes" && k === "n") {
      stepNodes(true);
    }
  });
  window.addEventListener("hashchange", () => {
    if (location.hash !== lastHash) void loadHash();
  });
  window.addEventListener("resize", () => {
    if (state.view === "explore") renderExplore();
  });
}

// The page's controls, each group wired by its own function; then the scenario in the link.
async function main(): Promise<void> {
  const res = await fetch("core.wasm");
  mod = await WebAssembly.compile(await res.arrayBuffer());
  wireService();
  wireTraffic();
  wireSteps();
  wireServers();
  wireCompare();
  wireNodes();
  wireKeys();
  await loadHash();
  // for tests and curious readers: what the page decided, and the session behind it
  (window as unknown as { wasmvs: object }).wasmvs = {
    state: () => structuredClone(state),
    decisions: () => ex.shown.slice(),
    session: () => ex.session,
    ready: true,
    step: () => ({ pos: ex.pos, of: ex.actions.length, t: ex.t }),
    colors: COLORS,
    // n new connections as the Step button makes them, drawn once at the end (for long runs in tests)
    sendMany: (n: number) => {
      for (let i = 0; i < n; i++) act(nextSend());
      renderExplore();
    },
  };
  document.body.dataset.ready = "1";
}

main().catch((e) => {
  $("status").textContent = `failed: ${(e as Error).message}`;
  console.error(e);
});
