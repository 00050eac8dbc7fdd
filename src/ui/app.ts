// The teaching page: loads the very same build/core.wasm (served as /core.wasm) through src/core's Core and
// TraceSession, so every decision shown is the data plane's own, with its trace record.
// Bundled for the browser by `wasmvs ui` (esbuild); no network access besides fetching core.wasm.
import { Core, SCHEDULERS, type DestInfo } from "../core/index.ts";
import { TraceSession, plain, LETTERS, type Decision, type Line, type Scenario } from "../core/trace.ts";

// ---- state (mirrored in the URL hash) ------------------------------------------------------------------
interface DestCfg { addr: string; weight: number; u: number }
interface State {
  view: "explore" | "compare" | "nodes";
  sched: string; flags: string[]; persist: number;
  dests: DestCfg[];
  clients: number; hold: number; rate: number;
  cmp: string[]; flows: number; cmpN: number;
  nodes: number; ndB: number; ndSched: string; ndHold: number; ndRate: number;
}
const DEFAULT: State = {
  view: "explore", sched: "wlc", flags: [], persist: 0,
  dests: [{ addr: "10.1.0.1", weight: 4, u: 0 }, { addr: "10.1.0.2", weight: 3, u: 0 }, { addr: "10.1.0.3", weight: 2, u: 0 }],
  clients: 4, hold: 0, rate: 4,
  cmp: ["rr", "wlc", "sh", "dh", "mh"], flows: 1000, cmpN: 5,
  nodes: 4, ndB: 2, ndSched: "lc", ndHold: 60000, ndRate: 2,
};
const SCHED_FLAGS: Record<string, string[]> = { sh: ["sh-fallback", "sh-port"], mh: ["mh-fallback", "mh-port"] };

function readHash(): State {
  const s: State = structuredClone(DEFAULT);
  const p = new URLSearchParams(location.hash.slice(1));
  const int = (k: string, lo: number, hi: number, d: number) => { const v = Number(p.get(k)); return p.has(k) && Number.isFinite(v) ? Math.min(hi, Math.max(lo, Math.round(v))) : d; };
  const view = p.get("view");
  if (view === "explore" || view === "compare" || view === "nodes") s.view = view;
  const sc = p.get("s");
  if (sc && (SCHEDULERS as readonly string[]).includes(sc)) s.sched = sc;
  if (p.has("f")) s.flags = p.get("f")!.split(",").filter((f) => (SCHED_FLAGS[s.sched] ?? []).includes(f));
  s.persist = int("p", 0, 3600, 0);
  if (p.get("d")) {
    const ds = p.get("d")!.split(",").map((t) => { const [a, w, u] = t.split(":"); return { addr: a, weight: Number(w ?? 1), u: Number(u ?? 0) }; })
      .filter((d) => /^\d+\.\d+\.\d+\.\d+$/.test(d.addr) && d.weight >= 0 && d.weight <= 65535 && d.u >= 0);
    if (ds.length) s.dests = ds.slice(0, 26);
  }
  s.clients = int("c", 1, 5000, s.clients); s.hold = int("h", 0, 600000, s.hold); s.rate = int("r", 1, 200, s.rate);
  if (p.get("cmp")) { const c = p.get("cmp")!.split(",").filter((x) => (SCHEDULERS as readonly string[]).includes(x)); if (c.length) s.cmp = c; }
  s.flows = int("fl", 10, 20000, s.flows); s.cmpN = int("cn", 2, 26, s.cmpN);
  s.nodes = int("nn", 2, 8, s.nodes); s.ndB = int("nb", 2, 12, s.ndB); s.ndHold = int("nh", 100, 100000, s.ndHold); s.ndRate = int("nr", 1, 500, s.ndRate);
  const ns = p.get("ns");
  if (ns && (SCHEDULERS as readonly string[]).includes(ns)) s.ndSched = ns;
  return s;
}
function writeHash(): void {
  const s = state;
  const p = new URLSearchParams({ view: s.view, s: s.sched, f: s.flags.join(","), p: String(s.persist),
    d: s.dests.map((d) => `${d.addr}:${d.weight}${d.u ? `:${d.u}` : ""}`).join(","), c: String(s.clients), h: String(s.hold), r: String(s.rate),
    cmp: s.cmp.join(","), fl: String(s.flows), cn: String(s.cmpN), nn: String(s.nodes), nb: String(s.ndB), ns: s.ndSched, nh: String(s.ndHold), nr: String(s.ndRate) });
  history.replaceState(null, "", `#${p}`);
}

let state = readHash();
let mod: WebAssembly.Module;
const $ = <T extends HTMLElement = HTMLElement>(id: string) => document.getElementById(id) as T;
const esc = (s: string) => s.replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" })[c]!);
const COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2"];
const colorOf = (i: number) => COLORS[i % COLORS.length];

// a small seeded generator (client choice, connection lengths), so a link replays the same traffic
function rng(seed: number) { let s = seed >>> 0 || 1; return () => { s ^= s << 13; s >>>= 0; s ^= s >>> 17; s ^= s << 5; s >>>= 0; return s / 4294967296; }; }

async function newCore(): Promise<Core> { return Core.fromModule(mod, 1 << 14); }

// ---- Explore ----------------------------------------------------------------------------------------------
interface Shown { n: number; client: string; sport: number; at: number; dest: string; destAddr: string; how: string }
const ex = {
  session: null as TraceSession | null,
  rand: rng(1),
  t: 0,                      // ms since the session started
  shown: [] as Shown[],
  history: [] as { t: number; act: Map<number, number> }[],
  timer: 0 as number | ReturnType<typeof setInterval>,
  order: new Map<string, number>(),   // addr -> colour index (insertion order)
};

function scenarioOf(s: State): Scenario {
  return { service: { proto: "tcp", addr: "10.0.0.1", port: 80, scheduler: s.sched, flags: s.flags, persistent: s.persist || undefined },
    dests: s.dests.map((d, i) => ({ addr: d.addr, port: 80, weight: d.weight, upperThreshold: d.u, name: LETTERS[i] })), seed: 1 };
}

async function resetExplore(): Promise<void> {
  stopStream();
  ex.session = await TraceSession.create(scenarioOf(state), await newCore());
  ex.rand = rng(1); ex.t = 0; ex.shown = []; ex.history = [];
  ex.order = new Map(state.dests.map((d, i) => [d.addr, i]));
  $("log").innerHTML = "";
  $("reason").textContent = "Send a connection (n) or start a stream (s).";
  renderExplore();
}

function destIndex(id: number): number {
  const s = ex.session;
  if (!s || id < 0) return 0;
  const addr = s.core.dest(id).addr;
  if (!ex.order.has(addr)) ex.order.set(addr, ex.order.size);
  return ex.order.get(addr)!;
}

function segHtml(line: Line): string {
  return line.map((g) => {
    if (typeof g === "string") return esc(g);
    const cls = g.s === "dest" && g.d !== undefined && g.d >= 0 ? `s-dest d${destIndex(g.d) % 8}` : `s-${g.s}`;
    return `<span class="${cls}">${esc(g.t)}</span>`;
  }).join("");
}

function sendOne(): Decision | null {
  const s = ex.session;
  if (!s) return null;
  const i = Math.floor(ex.rand() * state.clients);
  const client = `192.168.${1 + Math.floor(i / 240)}.${10 + (i % 240)}`;
  const hold = state.hold ? Math.max(1, Math.round(-Math.log(1 - ex.rand()) * state.hold)) : 0;
  ex.t += Math.round(1000 / state.rate);
  const d = s.connect({ client, sport: 20000 + (ex.shown.length % 40000), at: ex.t, hold });
  const destAddr = d.destId >= 0 ? s.core.dest(d.destId).addr : "-";
  ex.shown.unshift({ n: d.n, client: d.client, sport: d.sport, at: d.at, dest: d.dest, destAddr, how: d.how });
  if (ex.shown.length > 5000) ex.shown.pop();
  const li = document.createElement("li");
  li.value = d.n;
  li.dataset.client = d.client; li.dataset.sport = String(d.sport); li.dataset.at = String(d.at); li.dataset.dest = destAddr; li.dataset.how = d.how;
  li.innerHTML = `<b>${esc(d.client)}:${d.sport}</b> ⇒ ${d.destId >= 0 ? `<span class="s-dest d${destIndex(d.destId) % 8}">${esc(d.dest)}</span> ${esc(destAddr)}` : '<span class="s-lose">refused</span>'}` +
    `<pre>${d.lines.map(segHtml).join("\n")}</pre><div class="sentence">${esc(d.sentence)}</div>`;
  const log = $("log");
  log.prepend(li);
  while (log.children.length > 60) log.lastChild!.remove();
  $("reason").innerHTML = `<b>#${d.n}</b> ${esc(d.sentence)}`;
  renderExplore();
  animate(d);
  return d;
}

function startStream(): void {
  if (ex.timer) return;
  ex.timer = setInterval(() => sendOne(), Math.max(5, Math.round(1000 / state.rate)));
  $("stream").setAttribute("aria-pressed", "true");
}
function stopStream(): void {
  if (ex.timer) clearInterval(ex.timer as number);
  ex.timer = 0;
  $("stream")?.setAttribute("aria-pressed", "false");
}

// backend boxes on the right of the stage, clients on the left
function boxY(k: number, n: number): number { return 20 + (k + 0.5) * (260 / Math.max(n, 1)); }

function renderExplore(): void {
  const s = ex.session;
  if (!s) return;
  const svc = s.service();
  const ds = [...svc.dests].reverse();   // insertion order
  // stage
  const n = ds.length;
  const h = Math.min(56, 250 / Math.max(n, 1));
  const maxAct = Math.max(4, ...ds.map((d) => d.activeConns + d.inactConns));
  let svg = `<text x="20" y="16" font-size="17" fill="#5d6670">clients</text><text x="560" y="16" font-size="17" fill="#5d6670">real servers · active/inactive</text>`;
  svg += `<rect x="270" y="122" width="150" height="56" rx="6" fill="#222a33"/><text x="345" y="146" fill="#fff" font-size="20" font-weight="700" text-anchor="middle">${esc(svc.scheduler)}</text><text x="345" y="168" fill="#c8d0d8" font-size="14" text-anchor="middle">10.0.0.1:80</text>`;
  const last = ex.shown[0];
  if (last) svg += `<text x="20" y="292" font-size="16" fill="#333">#${last.n} ${esc(last.client)}:${last.sport} ⇒ ${esc(last.dest)}</text>`;
  ds.forEach((d, k) => {
    const y = boxY(k, n) - h / 2, c = colorOf(destIndex(d.id));
    const wA = (d.activeConns / maxAct) * 170, wI = (d.inactConns / maxAct) * 170;
    const ty = y + Math.min(24, h / 2 + 6);
    svg += `<g data-dest="${esc(d.addr)}"><rect x="560" y="${y}" width="330" height="${h - 4}" rx="5" fill="#fff" stroke="${c}" stroke-width="${d.weight ? 2.5 : 1.5}" ${d.weight ? "" : 'stroke-dasharray="5 4"'}/>` +
      `<text x="570" y="${ty}" font-size="20" font-weight="700" fill="${c}">${esc(s.name(d.id))}</text>` +
      `<text x="596" y="${ty}" font-size="17" fill="#333">${esc(d.addr)}  w${d.weight}${d.weight ? "" : " (drained)"}${d.overloaded ? "  OVERLOADED" : ""}</text>` +
      `<rect x="700" y="${y + h - 17}" width="${wA}" height="9" fill="${c}"/><rect x="${700 + wA}" y="${y + h - 17}" width="${wI}" height="9" fill="none" stroke="${c}"/>` +
      `<text x="880" y="${ty}" font-size="18" font-weight="600" text-anchor="end" fill="#333">${d.activeConns}/${d.inactConns}</text></g>`;
  });
  svg += `<circle id="dot" r="7" cx="-20" cy="-20" fill="#f0a500" stroke="#222" />`;
  $("stage").innerHTML = svg;
  // chart: active connections over time per backend
  const now = new Map(ds.map((d) => [d.id, d.activeConns]));
  ex.history.push({ t: ex.t, act: now });
  if (ex.history.length > 120) ex.history.shift();
  const maxY = Math.max(2, ...ex.history.flatMap((p) => [...p.act.values()]));
  let ch = `<line x1="30" y1="120" x2="890" y2="120" stroke="#bbb"/><text x="26" y="16" font-size="15" text-anchor="end" fill="#5d6670">${maxY}</text><text x="26" y="122" font-size="15" text-anchor="end" fill="#5d6670">0</text>`;
  for (const d of ds) {
    const pts = ex.history.map((p, i) => `${30 + (i / 119) * 860},${120 - ((p.act.get(d.id) ?? 0) / maxY) * 105}`).join(" ");
    ch += `<polyline points="${pts}" fill="none" stroke="${colorOf(destIndex(d.id))}" stroke-width="2"><title>${esc(s.name(d.id))}</title></polyline>`;
  }
  $("chart").innerHTML = ch;
  // table
  const tb = $("dests").querySelector("tbody")!;
  tb.innerHTML = ds.map((d) => `<tr data-addr="${esc(d.addr)}"><td><b style="color:${colorOf(destIndex(d.id))}">${esc(s.name(d.id))}</b></td><td>${esc(d.addr)}:80</td>` +
    `<td><input type="number" min="0" max="65535" value="${d.weight}" aria-label="weight of ${esc(s.name(d.id))}" data-act="weight"></td>` +
    `<td><input type="number" min="0" max="100000" value="${d.upperThreshold}" aria-label="upper threshold of ${esc(s.name(d.id))}" data-act="u"></td>` +
    `<td>${d.activeConns}</td><td>${d.inactConns}</td><td>${d.conns}</td>` +
    `<td><button data-act="drain" aria-label="drain ${esc(s.name(d.id))}">drain</button> <button data-act="remove" aria-label="remove ${esc(s.name(d.id))}">remove</button></td></tr>`).join("");
  $("status").textContent = `${svc.scheduler}: ${n} real servers, ${ex.shown.length} connections sent, t=${(ex.t / 1000).toFixed(1)} s`;
}

function animate(d: Decision): void {
  const s = ex.session!;
  const ds = [...s.service().dests].reverse();
  const k = ds.findIndex((x) => x.id === d.destId);
  const dot = document.getElementById("dot");
  if (!dot) return;
  const y0 = 40 + (Number(d.client.split(".")[3]) * 7) % 220;
  const x1 = k >= 0 ? 560 : 420, y1 = k >= 0 ? boxY(k, ds.length) : 150;
  const t0 = performance.now(), T = Math.min(450, 900 / state.rate + 80);
  const step = (t: number) => {
    const a = Math.min(1, (t - t0) / T);
    const x = a < 0.5 ? 30 + (290 - 30) * a * 2 : 410 + (x1 - 410) * (a - 0.5) * 2;
    const y = a < 0.5 ? y0 + (150 - y0) * a * 2 : 150 + (y1 - 150) * (a - 0.5) * 2;
    dot.setAttribute("cx", String(x)); dot.setAttribute("cy", String(y));
    dot.setAttribute("fill", k >= 0 ? colorOf(destIndex(d.destId)) : "#b3261e");
    if (a < 1) requestAnimationFrame(step);
  };
  requestAnimationFrame(step);
}

// configuration changes on the live session (the same calls ipvsadm -e / -d make)
function destAction(addr: string, act: string, value?: number): void {
  const s = ex.session!;
  const cfg = state.dests.find((d) => d.addr === addr);
  if (!cfg) return;
  try {
    if (act === "remove") {
      s.delDest({ addr, port: 80 });
      state.dests = state.dests.filter((d) => d !== cfg);
    } else {
      if (act === "drain") cfg.weight = 0;
      if (act === "weight") cfg.weight = value!;
      if (act === "u") cfg.u = value!;
      s.editDest({ addr, port: 80, weight: cfg.weight, upperThreshold: cfg.u });
    }
    $("reason").textContent = `${act === "remove" ? "Removed" : act === "drain" ? "Drained (weight 0)" : "Edited"} ${addr}: the scheduler was told, as the kernel's update/del hooks do.`;
  } catch (e) { $("reason").textContent = String((e as Error).message); }
  writeHash();
  renderExplore();
}

function addDest(): void {
  const s = ex.session!;
  let k = 1;
  while (state.dests.some((d) => d.addr === `10.1.0.${k}`)) k++;
  const cfg = { addr: `10.1.0.${k}`, weight: 1, u: 0 };
  state.dests.push(cfg);
  s.addDest({ addr: cfg.addr, port: 80, weight: 1 });
  writeHash();
  renderExplore();
}

// ---- Compare ----------------------------------------------------------------------------------------------
const cmp = { cores: new Map<string, Core>(), victim: 0, change: "none" as "none" | "remove" | "add" };

function flowOf(f: number) {
  return { client: `172.16.${(f >> 8) & 255}.${f & 255}`, sport: 10000 + (f % 50000), dst: `10.9.${((f * 7919) >> 8) & 255}.${(f * 7919) & 255}` };
}

// Places every flow with `sched` over the given backends: Core.schedule, each choice counted as an open
// connection before the next (so the least-loaded schedulers spread). Returns the backend address per flow.
async function place(sched: string, backs: string[], flows: number): Promise<string[]> {
  let core = cmp.cores.get(sched);
  if (!core) { core = await newCore(); cmp.cores.set(sched, core); }
  core.flush();
  core.seedRandom(1);
  const svc = core.addService({ fwmark: 1, scheduler: sched });
  const ids = backs.map((a) => core!.addDest(svc, { addr: a, port: 80, weight: 1 }));
  const addrOf = new Map(ids.map((id, i) => [id, backs[i]]));
  const out: string[] = [];
  for (let f = 0; f < flows; f++) {
    const fl = flowOf(f);
    const id = core.schedule(svc, fl.client, fl.sport, { dst: fl.dst, now: 1000 });
    out.push(id >= 0 ? addrOf.get(id)! : "-");
    if (id >= 0) { const d = core.dest(id); core.setLoad(id, d.activeConns + 1, d.inactConns); }
  }
  return out;
}

async function renderCompare(): Promise<void> {
  const base = Array.from({ length: state.cmpN }, (_, i) => `10.2.0.${i + 1}`);
  const victimSel = $<HTMLSelectElement>("cmp-victim");
  victimSel.innerHTML = base.map((a, i) => `<option value="${i}" ${i === cmp.victim ? "selected" : ""}>${LETTERS[i]} ${a}</option>`).join("");
  let after = base;
  let what = "";
  if (cmp.change === "remove") { after = base.filter((_, i) => i !== cmp.victim); what = `after removing ${LETTERS[cmp.victim]}`; }
  if (cmp.change === "add") { after = [...base, `10.2.0.${state.cmpN + 1}`]; what = `after adding ${LETTERS[state.cmpN]}`; }
  const cards: string[] = [];
  for (const sched of state.cmp) {
    const p0 = await place(sched, base, state.flows);
    const p1 = cmp.change === "none" ? p0 : await place(sched, after, state.flows);
    const counts = after.map((a) => p1.filter((x) => x === a).length);
    const placed = counts.reduce((a, b) => a + b, 0);
    const mean = placed / after.length, max = Math.max(...counts);
    const moved = p0.filter((x, f) => x !== p1[f]).length;
    const had = cmp.change === "remove" ? p0.filter((x) => x === base[cmp.victim]).length : 0;
    const W = 280, bw = W / after.length;
    let bars = "";
    counts.forEach((c, i) => {
      const h = max ? (c / max) * 90 : 0;
      bars += `<rect x="${i * bw + 2}" y="${100 - h}" width="${bw - 4}" height="${h}" fill="${colorOf(base.indexOf(after[i]) >= 0 ? base.indexOf(after[i]) : i)}"><title>${LETTERS[base.indexOf(after[i]) >= 0 ? base.indexOf(after[i]) : i]}: ${c}</title></rect>` +
        `<text x="${i * bw + bw / 2}" y="114" font-size="11" text-anchor="middle">${LETTERS[base.indexOf(after[i]) >= 0 ? base.indexOf(after[i]) : i]} ${c}</text>`;
    });
    bars += `<line x1="0" x2="${W}" y1="${100 - (max ? (mean / max) * 90 : 0)}" y2="${100 - (max ? (mean / max) * 90 : 0)}" stroke="#333" stroke-dasharray="3 3"/>`;
    const minimal = cmp.change === "remove" ? had : cmp.change === "add" ? Math.round(state.flows / after.length) : 0;
    const movedCls = cmp.change === "none" ? "" : moved <= minimal * 1.15 + 2 ? "good" : "bad";
    cards.push(`<div class="panel card" data-sched="${sched}"><h3>${sched}</h3><svg viewBox="0 0 ${W} 120" role="img" aria-label="${sched} distribution">${bars}</svg>` +
      `<div class="metric">imbalance max/mean <b data-m="imbalance">${placed ? (max / mean).toFixed(2) : "-"}</b>${placed < state.flows ? ` · refused ${state.flows - placed}` : ""}</div>` +
      (cmp.change === "none" ? `<div class="metric">remove or add a backend to see how many flows move</div>`
        : `<div class="metric ${movedCls}">${what}: moved <b data-m="moved">${((moved / state.flows) * 100).toFixed(1)}%</b>` +
          ` (${cmp.change === "remove" ? `${((had / state.flows) * 100).toFixed(1)}% had to` : `ideal ≈ ${((1 / after.length) * 100).toFixed(1)}%`})</div>`) + `</div>`);
  }
  $("cmp-cards").innerHTML = cards.join("");
  $("status").textContent = `compare: ${state.cmp.length} schedulers, ${state.flows} flows, ${state.cmpN} backends${what ? ", " + what : ""}`;
}

// ---- Many nodes -------------------------------------------------------------------------------------------
interface NodeSet { sched: string; cores: Core[]; svcs: number[]; ids: number[][]; }
const nd = {
  sets: [] as NodeSet[],
  conns: [] as { set: number; node: number; dest: number; end: number }[],
  t: 0, rand: rng(7), timer: 0 as number | ReturnType<typeof setInterval>,
  series: [] as number[][],   // imbalance per set over time
  clients: 0,
};

async function resetNodes(): Promise<void> {
  stopNodes();
  nd.sets = []; nd.conns = []; nd.t = 0; nd.rand = rng(7); nd.series = []; nd.clients = 0;
  for (const sched of [state.ndSched, "mh"]) {
    const set: NodeSet = { sched, cores: [], svcs: [], ids: [] };
    for (let n = 0; n < state.nodes; n++) {
      const core = await newCore();
      const svc = core.addService({ proto: "tcp", addr: "10.96.0.10", port: 80, scheduler: sched });
      set.ids.push(Array.from({ length: state.ndB }, (_, b) => core.addDest(svc, { addr: `10.244.${b + 1}.5`, port: 80, weight: 1 })));
      set.cores.push(core); set.svcs.push(svc);
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
    const core = set.cores[c.node], id = set.ids[c.node][c.dest];
    const d = core.dest(id);
    core.setLoad(id, Math.max(0, d.activeConns - 1), d.inactConns);
  }
  nd.conns = nd.conns.filter((c) => c.end > nd.t);
  // perNode: one new connection on every node (kubernetes#79213: one client pod per node, one connection each)
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

function totals(set: NodeSet): number[][] {   // [backend][node] active
  return Array.from({ length: state.ndB }, (_, b) => set.cores.map((core, n) => core.dest(set.ids[n][b]).activeConns));
}

// How often every node would send the same client to the same backend (asked without connecting).
function agreement(set: NodeSet): number {
  let same = 0;
  const N = 200;
  for (let i = 0; i < N; i++) {
    const client = `100.65.${i >> 8}.${i & 255}`;
    const picks = set.cores.map((core, n) => set.ids[n].indexOf(core.schedule(set.svcs[n], client, 30000 + i, { now: nd.t })));
    if (picks.every((p) => p === picks[0])) same++;
  }
  return same / N;
}

function renderNodes(): void {
  const cards: string[] = [];
  const imb: number[] = [];
  nd.sets.forEach((set, si) => {
    const t = totals(set);
    const sums = t.map((r) => r.reduce((a, b) => a + b, 0));
    const total = sums.reduce((a, b) => a + b, 0);
    const mean = total / state.ndB, max = Math.max(...sums);
    const ratio = total ? max / mean : 1;
    imb.push(ratio);
    const W = 300, bw = W / state.ndB, top = Math.max(4, max);
    let svg = "";
    t.forEach((row, b) => {
      let y = 110;
      row.forEach((a, n) => {
        const h = (a / top) * 95;
        y -= h;
        svg += `<rect x="${b * bw + 3}" y="${y}" width="${bw - 6}" height="${h}" fill="${colorOf(n)}" opacity=".85"><title>node ${n + 1} → backend ${b + 1}: ${a}</title></rect>`;
      });
      svg += `<text x="${b * bw + bw / 2}" y="124" font-size="11" text-anchor="middle">b${b + 1}: ${sums[b]}</text>`;
    });
    const agree = set.sched === "mh" ? agreement(set) : 0;
    const label = set.sched === "mh" ? "Maglev (mh): the same table on every node" : `${set.sched} on each node, its own counters`;
    cards.push(`<div class="panel card" data-sched="${set.sched}" data-set="${si}"><h3>${esc(label)}</h3>` +
      `<svg viewBox="0 0 ${W} 128" role="img" aria-label="active connections per backend, stacked by node">${svg}</svg>` +
      `<div class="metric">active ${total} · imbalance max/mean <b data-m="imbalance" class="${ratio > 1.5 ? "bad" : "good"}">${total ? ratio.toFixed(2) : "-"}</b></div>` +
      (set.sched === "mh" ? `<div class="metric">every node sends a given client to the same backend: <b data-m="agree">${Math.round(agree * 100)}%</b></div>`
        : `<div class="metric">each node knows only its own: ${set.cores.map((c, n) => `n${n + 1} ${set.ids[n].reduce((a, id) => a + c.dest(id).activeConns, 0)}`).join(" · ")}</div>`) + `</div>`);
  });
  if (nd.sets.length) {
    nd.series.push(imb);
    if (nd.series.length > 120) nd.series.shift();
    const maxY = Math.max(2, ...nd.series.flat());
    let ch = `<text x="4" y="14" font-size="14" fill="#5d6670">imbalance max/mean over time (1 = even)</text><line x1="0" x2="600" y1="${120 - (1 / maxY) * 100}" y2="${120 - (1 / maxY) * 100}" stroke="#bbb" stroke-dasharray="3 3"/>`;
    nd.sets.forEach((set, si) => {
      const pts = nd.series.map((v, i) => `${(i / 119) * 600},${120 - (v[si] / maxY) * 100}`).join(" ");
      ch += `<polyline points="${pts}" fill="none" stroke="${si ? "#2ca02c" : "#d62728"}" stroke-width="2"/><text x="600" y="${20 + si * 16}" font-size="14" text-anchor="end" fill="${si ? "#2ca02c" : "#d62728"}">${esc(set.sched)}</text>`;
    });
    cards.push(`<div class="panel card" style="grid-column: span 2"><h3>Drift</h3><svg viewBox="0 0 600 125" role="img" aria-label="imbalance over time">${ch}</svg>` +
      `<p class="hint">Node colours in the bars: ${Array.from({ length: state.nodes }, (_, n) => `<span style="color:${colorOf(n)}">■ node ${n + 1}</span>`).join(" ")}. ` +
      `Per-node ${esc(state.ndSched)} balances each node's own few connections; every node starts from the same list and breaks ties the same way, so the sums drift apart. mh decides by the client alone.</p></div>`);
  }
  $("nd-cards").innerHTML = cards.join("");
  $("status").textContent = `many nodes: ${state.nodes} nodes × ${state.ndB} backends, t=${nd.t / 1000} s`;
}

function stopNodes(): void { if (nd.timer) clearInterval(nd.timer as number); nd.timer = 0; $("nd-run")?.setAttribute("aria-pressed", "false"); }

// ---- wiring -----------------------------------------------------------------------------------------------
function setView(v: State["view"]): void {
  state.view = v;
  for (const id of ["explore", "compare", "nodes"]) {
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
  $("flags").innerHTML = (SCHED_FLAGS[state.sched] ?? []).map((f) => `<label><input type="checkbox" value="${f}" ${state.flags.includes(f) ? "checked" : ""}> ${f}</label>`).join("") ||
    `<span class="hint">no flags for ${esc(state.sched)}</span>`;
}

function numInput(id: string, key: keyof State, after: () => void): void {
  const el = $<HTMLInputElement>(id);
  el.value = String(state[key]);
  el.addEventListener("change", () => {
    const v = Number(el.value);
    if (!Number.isFinite(v) || v < Number(el.min) || v > Number(el.max)) { el.value = String(state[key]); return; }
    (state as any)[key] = v;
    writeHash();
    after();
  });
}

async function main(): Promise<void> {
  const res = await fetch("core.wasm");
  mod = await WebAssembly.compile(await res.arrayBuffer());
  const schedSel = $<HTMLSelectElement>("sched");
  schedSel.innerHTML = SCHEDULERS.map((s) => `<option ${s === state.sched ? "selected" : ""}>${s}</option>`).join("");
  schedSel.addEventListener("change", () => { state.sched = schedSel.value; state.flags = []; renderFlags(); writeHash(); void resetExplore(); });
  renderFlags();
  $("flags").addEventListener("change", () => {
    state.flags = Array.from($("flags").querySelectorAll<HTMLInputElement>("input:checked")).map((i) => i.value);
    writeHash(); void resetExplore();
  });
  numInput("persist", "persist", () => void resetExplore());
  numInput("clients", "clients", () => {});
  numInput("hold", "hold", () => {});
  numInput("rate", "rate", () => { if (ex.timer) { stopStream(); startStream(); } });
  $("send").addEventListener("click", () => sendOne());
  $("stream").addEventListener("click", () => (ex.timer ? stopStream() : startStream()));
  $("reset").addEventListener("click", () => void resetExplore());
  $("add").addEventListener("click", () => addDest());
  $("dests").addEventListener("click", (e) => {
    const b = (e.target as HTMLElement).closest("button");
    if (!b) return;
    destAction(b.closest("tr")!.dataset.addr!, b.dataset.act!);
  });
  $("dests").addEventListener("change", (e) => {
    const i = e.target as HTMLInputElement;
    const v = Number(i.value);
    if (!Number.isInteger(v) || v < 0 || v > Number(i.max)) return;
    destAction(i.closest("tr")!.dataset.addr!, i.dataset.act!, v);
  });
  // compare
  $("cmp-scheds").innerHTML = SCHEDULERS.map((s) => `<label><input type="checkbox" value="${s}" ${state.cmp.includes(s) ? "checked" : ""}> ${s}</label>`).join("");
  $("cmp-scheds").addEventListener("change", () => {
    state.cmp = Array.from($("cmp-scheds").querySelectorAll<HTMLInputElement>("input:checked")).map((i) => i.value);
    writeHash(); void renderCompare();
  });
  numInput("cmp-flows", "flows", () => void renderCompare());
  numInput("cmp-n", "cmpN", () => { cmp.victim = 0; cmp.change = "none"; void renderCompare(); });
  $<HTMLSelectElement>("cmp-victim").addEventListener("change", (e) => { cmp.victim = Number((e.target as HTMLSelectElement).value); if (cmp.change === "remove") void renderCompare(); });
  $("cmp-remove").addEventListener("click", () => { cmp.change = "remove"; void renderCompare(); });
  $("cmp-addone").addEventListener("click", () => { cmp.change = "add"; void renderCompare(); });
  $("cmp-restore").addEventListener("click", () => { cmp.change = "none"; void renderCompare(); });
  // nodes
  const ndSel = $<HTMLSelectElement>("nd-sched");
  ndSel.innerHTML = SCHEDULERS.filter((s) => s !== "mh").map((s) => `<option ${s === state.ndSched ? "selected" : ""}>${s}</option>`).join("");
  ndSel.addEventListener("change", () => { state.ndSched = ndSel.value; writeHash(); void resetNodes(); });
  numInput("nd-n", "nodes", () => void resetNodes());
  numInput("nd-b", "ndB", () => void resetNodes());
  numInput("nd-hold", "ndHold", () => {});
  numInput("nd-rate", "ndRate", () => {});
  $("nd-step").addEventListener("click", () => stepNodes());
  $("nd-each").addEventListener("click", () => stepNodes(true));
  $("nd-run").addEventListener("click", () => {
    if (nd.timer) { stopNodes(); return; }
    nd.timer = setInterval(stepNodes, 250);
    $("nd-run").setAttribute("aria-pressed", "true");
  });
  $("nd-reset").addEventListener("click", () => void resetNodes());
  // tabs and keys
  document.querySelectorAll<HTMLButtonElement>("nav button").forEach((b) => b.addEventListener("click", () => setView(b.dataset.view as State["view"])));
  document.addEventListener("keydown", (e) => {
    const t = e.target as HTMLElement;
    if (e.ctrlKey || e.metaKey || e.altKey || t.matches("input, select, textarea")) return;
    const k = e.key;
    if (k === "1" || k === "2" || k === "3") { setView((["explore", "compare", "nodes"] as const)[Number(k) - 1]); e.preventDefault(); }
    else if (k === "?") { $<HTMLDialogElement>("help").showModal(); }
    else if (state.view === "explore" && (k === "n" || (k === " " && !t.matches("button")))) { sendOne(); e.preventDefault(); }
    else if (state.view === "explore" && k === "s") { ex.timer ? stopStream() : startStream(); }
    else if (state.view === "explore" && k === "r") { void resetExplore(); }
    else if (state.view === "nodes" && k === "n") { stepNodes(true); }
  });
  window.addEventListener("hashchange", () => {
    const before = JSON.stringify(state);
    const next = readHash();
    if (JSON.stringify(next) === before) return;
    state = next;
    schedSel.value = state.sched; renderFlags();
    void resetExplore().then(() => setView(state.view));
  });
  await resetExplore();
  setView(state.view);
  // for tests and curious readers: what the page decided, and the session behind it
  (window as any).wasmvs = { state: () => structuredClone(state), decisions: () => ex.shown.slice().reverse(), session: () => ex.session, ready: true };
  document.body.dataset.ready = "1";
}

main().catch((e) => { $("status").textContent = `failed: ${(e as Error).message}`; console.error(e); });
void plain;
export type { DestInfo };
