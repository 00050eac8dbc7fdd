// `wasmvs trace`: one virtual service, a sequence of connections through the real data plane, and for each
// decision the state that made it (from the scheduler's trace record), readable at 80 columns.
import { readFileSync } from "node:fs";
import { isIP } from "node:net";
import { SCHEDULERS, type ServiceSpec } from "../core/index.ts";
import {
  TraceSession, plain, type LifeEvent, type Scenario, type ScenarioDest, type ScenarioEvent, type ConnSpec, type Line,
    type Style, type Decision,
} from "../explain/trace.ts";
import { readTree, readLocality, readMhFill, type TreeView } from "../ui/sched-state.ts";
import { treeText, localityText, mhFillText } from "../ui/insides.ts";

export const TRACE_USAGE = `usage: wasmvs trace [service] [real servers] [traffic] [output]

service (ipvsadm flags; default -t 10.0.0.1:80 -s wlc):
  -s SCHED               ${SCHEDULERS.join(" ")}
  -t|-u|--sctp-service VIP:PORT   or   -f MARK (fwmark: destination addresses vary, see --targets)
  -b FLAGS               sh-fallback,sh-port,mh-fallback,mh-port   -o  one-packet
  -p [SECONDS]           persistent (default 300)   -M NETMASK   persistence netmask
real servers (repeat; default A 10.1.0.1:80 w4, B 10.1.0.2:80 w3, C 10.1.0.3:80 w2):
  -r ADDR:PORT[:W[:U[:L]]]   weight, upper and lower threshold; or -w W -x U -y L after -r
  --spec FILE            ipvsadm rules (-A/-a lines) instead of the flags above
  --file FILE            a scenario as JSON or YAML (service, dests, traffic, connections, events)
traffic (default 12 connections from 4 clients, one every 100 ms, left open):
  -n N  --clients K  --client IP  --sport PORT  --every MS
  each connection completes its handshake and carries a request and its answer
  --hold MS              each connection closes MS after it opened (0: stays open, ESTABLISHED)
  --close fin|rst        how it closes: the client's FIN (then TIME_WAIT) or its RST (CLOSE)
  --close-every K        every K-th connection closes at once (TIME_WAIT: inactive)
  --targets N --target IP    N destination addresses in turn (fwmark services: dh, lblc, lblcr)
  --conns FILE           one connection per line: CLIENT[:PORT] [DST] [at=MS] [hold=MS] [close=rst]
  --at K:del:ADDR:PORT | K:add:ADDR:PORT[:W] | K:weight:ADDR:PORT:W   change before connection K
  --set NAME=VALUE       a setting (mh_table_index, sh_table_bits, lblc_expiration_ms, ...)
  --seed N               twos' random seed (default 1)
output:
  --explain              one plain sentence per decision
  --insides              the scheduler's state per decision: the least-loaded schedulers' tree with the
                         winner's path, lblc/lblcr's table; mh: how its table was filled (first claims)
  --color / --no-color   (default: colour when stdout is a terminal and NO_COLOR is unset)
  --json                 the decisions as JSON lines
  --quiet                only the choices and the summary
`;

export interface Out { write(s: string): unknown; isTTY?: boolean }

class UsageError extends Error {}

function splitHostPort(s: string): { addr: string; port: number; rest: string[]; hasPort: boolean } {
  // [v6]:port[:w...] or a.b.c.d:port[:w...]
  let addr: string, tail: string;
  if (s.startsWith("[")) {
    const e = s.indexOf("]");
    if (e < 0) throw new UsageError(`bad address '${s}'`);
    addr = s.slice(1, e);
    tail = s.slice(e + 1).replace(/^:/, "");
  } else {
    const p = s.split(":");
    addr = p[0];
    tail = p.slice(1).join(":");
  }
  const parts = tail ? tail.split(":") : [];
  if (!isIP(addr)) throw new UsageError(`bad address '${addr}' in '${s}' (an IPv4 or IPv6 address)`);
  const port = parts.length ? Number(parts[0]) : 0;
  if (parts.length && parts[0] === "" || !Number.isInteger(port) || port < 0 ||
    port > 65535) throw new UsageError(`bad port in '${s}'`);
  return { addr, port, rest: parts.slice(1), hasPort: parts.length > 0 };
}

function num(v: string | undefined, what: string): number {
  const n = Number(v);
  if (v === undefined || v.trim() === "" ||
    !Number.isFinite(n)) throw new UsageError(`${what} needs a number (got '${v ?? ""}')`);
  return n;
}
// a whole number in [lo, hi], or a usage error naming the option
function int(v: string | undefined, what: string, lo: number, hi: number): number {
  const n = num(v, what);
  if (!Number.isInteger(n) || n < lo ||
    n > hi) throw new UsageError(`${what} wants a whole number from ${lo} to ${hi} (got '${v}')`);
  return n;
}
const SCHED_FLAG_OWNER: Record<string, string> = { "sh-fallback": "sh", "sh-port": "sh", "mh-fallback": "mh",
  "mh-port": "mh", ops: "" };

export interface TraceOptions { scenario: Scenario; explain: boolean; color?: boolean; json: boolean; quiet: boolean;
  insides?: boolean }

// Parses the command line (and any --spec/--file/--conns it names) into a scenario and output options.
export function parseTraceArgs(argv: string[], readFile: (p: string) => string = (p) => readFileSync(p, "utf8")): TraceOptions {
  const service: ServiceSpec = { proto: "tcp", addr: "10.0.0.1", port: 80, scheduler: "wlc" };
  let serviceGiven = false;
  let dests: ScenarioDest[] = [];
  const traffic: NonNullable<Scenario["traffic"]> = {};
  const events: ScenarioEvent[] = [];
  const settings: Record<string, number> = {};
  let connections: ConnSpec[] | undefined;
  let file: Scenario | undefined;
  let seed: number | undefined;
  const portless = new Set<ScenarioDest>();   // -r without a port: ipvsadm uses the service's
  const opts = { explain: false, color: undefined as boolean | undefined, json: false, quiet: false, insides: false };

  const args = [...argv];
  const next = (flag: string) => {
    const v = args.shift();
    if (v === undefined) throw new UsageError(`${flag} needs a value`);
    return v;
  };
  while (args.length) {
    const a = args.shift()!;
    switch (a) {
      case "-s": case "--scheduler": service.scheduler = next(a); break;
      case "-t": case "--tcp-service": case "-u": case "--udp-service": case "--sctp-service": {
        const hp = splitHostPort(next(a));
        service.proto = a === "-u" || a === "--udp-service" ? "udp" : a === "--sctp-service" ? "sctp" : "tcp";
        service.addr = hp.addr; service.port = hp.port; delete service.fwmark; serviceGiven = true;
        break;
      }
      case "-f": case "--fwmark-service": service.fwmark = int(next(a), a, 1, 0xffffffff); delete service.addr;
        delete service.port; serviceGiven = true; break;
      case "-b": case "--sched-flags": service.flags = [...(service.flags ?? []), ...next(a).split(",").filter(Boolean)]; break;
      case "-o": case "--ops": service.flags = [...(service.flags ?? []), "ops"]; break;
      case "-p": case "--persistent": {
        const v = args[0];
        if (v !== undefined && /^\d+$/.test(v)) { args.shift(); service.persistent = Number(v); } else service.persistent = 300;
        break;
      }
      case "-M": case "--netmask": service.netmask = next(a); break;
      case "-r": case "--real-server": {
        const v = next(a);
        const hp = splitHostPort(v);
        const [w, u, l] = hp.rest.map((x, k) => int(x,
          `-r ${v}: ${["weight", "upper threshold", "lower threshold"][k] ?? "field"}`, 0, k ? 0x7fffffff : 65535));
        if (hp.rest.length > 3) throw new UsageError(`-r ${v}: ADDR:PORT[:W[:U[:L]]] has at most five fields`);
        dests.push({ addr: hp.addr, port: hp.port, weight: w ?? 1, upperThreshold: u ?? 0, lowerThreshold: l ?? 0 });
        if (!hp.hasPort) portless.add(dests[dests.length - 1]);
        break;
      }
      case "-w": case "--weight": case "-x": case "--u-threshold": case "-y": case "--l-threshold": {
        const d = dests[dests.length - 1];
        if (!d) throw new UsageError(`${a} must follow -r`);
        const v = a === "-w" || a === "--weight" ? int(next(a), a, 0, 65535) : int(next(a), a, 0, 0x7fffffff);
        if (a === "-w" || a === "--weight") d.weight = v; else if (a === "-x" || a === "--u-threshold") d.upperThreshold = v; else d.lowerThreshold = v;
        break;
      }
      case "-g": case "-m": case "-i": case "--gatewaying": case "--masquerading": case "--ipip": break;   // forwarding does not change the choice
      case "--spec": {
        const text = readFile(next(a));
        const toks = text.split("\n").map((l) => l.replace(/#.*/, "")).join(" ").split(/\s+/)
          .filter((t) => t && !["-A", "-a", "-E", "-e", "--add-service", "--add-server", "ipvsadm", "wasmvs"].includes(t));
        args.unshift(...toks);
        break;
      }
      case "--file": {
        const name = next(a);
        const text = readFile(name);
        file = (/\.ya?ml$/i.test(name) ? parseYaml(text) : JSON.parse(text)) as Scenario;
        break;
      }
      case "-n": case "--count": traffic.count = int(next(a), a, 0, 1_000_000); break;
      case "--clients": traffic.clients = int(next(a), a, 1, 1_000_000); break;
      case "--client": traffic.clientBase = next(a);
        if (!isIP(traffic.clientBase)) throw new UsageError(`--client wants an IP address (got '${traffic.clientBase}')`); break;
      case "--sport": traffic.sport = int(next(a), a, 1, 65535); break;
      case "--every": traffic.interval = int(next(a), a, 0, 86_400_000); break;
      case "--hold": traffic.hold = int(next(a), a, 0, 86_400_000); break;
      case "--close": {
        const v = next(a);
        if (v !== "fin" && v !== "rst") throw new UsageError(`--close wants fin or rst (got '${v}')`);
        traffic.close = v;
        break;
      }
      case "--close-every": traffic.closeEvery = int(next(a), a, 1, 1_000_000); break;
      case "--targets": traffic.targets = int(next(a), a, 1, 65536); break;
      case "--target": traffic.targetBase = next(a);
        if (!isIP(traffic.targetBase)) throw new UsageError(`--target wants an IP address (got '${traffic.targetBase}')`); break;
      case "--conns": connections = parseConns(readFile(next(a))); break;
      case "--at": {
        const v = next(a);
        const m = v.match(/^(\d+):(add|del|weight):(.+)$/);
        if (!m) throw new UsageError(`--at wants K:add|del|weight:ADDR:PORT[:W] (got '${v}')`);
        const hp = splitHostPort(m[3]);
        const w = hp.rest.length ? int(hp.rest[0], `--at ${v}: weight`, 0, 65535) : undefined;
        if (m[2] === "weight" && w === undefined) throw new UsageError(`--at ${v}: weight needs a value`);
        const ev: ScenarioEvent = { before: Number(m[1]), op: m[2] === "weight" ? "edit" : (m[2] as "add" | "del"),
          dest: { addr: hp.addr, port: hp.port, weight: w ?? 1 } };
        events.push(ev);
        if (!hp.hasPort) portless.add(ev.dest);
        break;
      }
      case "--set": {
        const v = next(a);
        const m = v.match(/^([a-z_]+)=(\d+)$/);
        if (!m) throw new UsageError(`--set wants NAME=VALUE (got '${v}')`);
        settings[m[1]] = Number(m[2]);
        break;
      }
      case "--seed": seed = int(next(a), a, 0, 0xffffffff); break;
      case "--explain": opts.explain = true; break;
      case "--insides": opts.insides = true; break;
      case "--color": case "--colour": opts.color = true; break;
      case "--no-color": case "--no-colour": opts.color = false; break;
      case "--json": opts.json = true; break;
      case "--quiet": case "-q": opts.quiet = true; break;
      default: throw new UsageError(`unknown option '${a}'`);
    }
  }
  if (!(SCHEDULERS as readonly string[]).includes(service.scheduler)) {
    throw new UsageError(`unknown scheduler '${service.scheduler}' (known: ${SCHEDULERS.join(", ")})`);
  }
  for (const f of service.flags ?? []) {
    const owner = SCHED_FLAG_OWNER[f];
    if (owner === undefined) throw new UsageError(`unknown scheduler flag '${f}' (known: ${Object.keys(SCHED_FLAG_OWNER).join(", ")})`);
    if (owner &&
      owner !== service.scheduler) throw new UsageError(`-b ${f} is a flag of the ${owner} scheduler, not of ${service.scheduler}`);
  }
  if (traffic.targets !== undefined && traffic.targets > 1 && !service.fwmark) {
    throw new UsageError("--targets needs a fwmark service (-f MARK): a TCP/UDP service has one destination address, its VIP");
  }
  for (const d of portless) d.port = service.fwmark ? 0 : service.port ?? 0;
  if (!dests.length) dests = [{ addr: "10.1.0.1", port: 80, weight: 4 }, { addr: "10.1.0.2", port: 80, weight: 3 }, { addr: "10.1.0.3", port: 80, weight: 2 }];
  void serviceGiven;
  let scenario: Scenario = { service, dests, traffic, events, settings, seed, connections };
  if (file) {
    scenario = { ...file, service: { ...file.service }, dests: file.dests ?? dests,
      traffic: { ...(file.traffic ?? {}), ...traffic }, events: [...(file.events ?? []), ...events],
      settings: { ...(file.settings ?? {}), ...settings }, seed: seed ?? file.seed, connections: connections ?? file.connections };
  }
  checkEvents(scenario);
  return { scenario, ...opts };
}

// Every --at change must name a real server the service has at that point (or, to add, one it has not).
function checkEvents(sc: Scenario): void {
  const have = new Set(sc.dests.map((x) => `${x.addr}:${x.port}`));
  for (const e of [...(sc.events ?? [])].sort((a, b) => a.before - b.before)) {
    const key = `${e.dest.addr}:${e.dest.port}`;
    const verb = e.op === "edit" ? "weight" : e.op;
    if (e.op === "add") {
      if (have.has(key)) throw new UsageError(`--at ${e.before}:add:${key}: the service already has ${key}`);
      have.add(key);
    } else if (!have.has(key)) {
      throw new UsageError(`--at ${e.before}:${verb}:${key}: the service has no real server ${key} then (it has ${[...have].join(", ") || "none"})`);
    } else if (e.op === "del") have.delete(key);
  }
}

function parseYaml(text: string): unknown {
  // yaml is a dependency of the project; loaded lazily so the browser bundle never sees it
  const req = (globalThis as any).__wasmvsYaml as ((s: string) => unknown) | undefined;
  if (!req) throw new UsageError("YAML files need the yaml package (preloaded by runTrace)");
  return req(text);
}

// CLIENT[:PORT] [DST] [at=MS] [hold=MS] [close=fin|rst]
export function parseConns(text: string): ConnSpec[] {
  const out: ConnSpec[] = [];
  for (const raw of text.split("\n")) {
    const line = raw.replace(/#.*/, "").trim();
    if (!line) continue;
    const [first, ...rest] = line.split(/\s+/);
    const c: ConnSpec = { client: first };
    const m = first.match(/^(\d+\.\d+\.\d+\.\d+):(\d+)$/) ?? first.match(/^\[(.+)\]:(\d+)$/);
    if (m) { c.client = m[1]; c.sport = Number(m[2]); }
    for (const t of rest) {
      if (t.startsWith("at=")) c.at = int(t.slice(3), `--conns '${line}': at=`, 0, 86_400_000);
      else if (t.startsWith("hold=")) c.hold = int(t.slice(5), `--conns '${line}': hold=`, 0, 86_400_000);
      else if (t.startsWith("close=")) {
        const v = t.slice(6);
        if (v !== "fin" && v !== "rst") throw new UsageError(`--conns '${line}': close= wants fin or rst`);
        c.close = v;
      }
      else c.dst = t;
    }
    out.push(c);
  }
  return out;
}

// ---- output --------------------------------------------------------------------------------------------
const PALETTE = [33, 35, 36, 34, 93, 95, 96, 94];   // ANSI foreground colours for destinations
const STYLE: Record<Style, string> = { dest: "1", win: "1;32", lose: "31", dim: "2", num: "33", warn: "1;33", head: "1;36" };

export function paint(line: Line, color: boolean, destIndex: (id: number) => number = () => 0): string {
  return line.map((s) => {
    if (typeof s === "string") return s;
    if (!color) return s.t;
    const code = s.s === "dest" && s.d !== undefined && s.d >= 0 ? `1;${PALETTE[destIndex(s.d) % PALETTE.length]}` : STYLE[s.s];
    return `\x1b[${code}m${s.t}\x1b[0m`;
  }).join("");
}

export function wrap(text: string, width: number, indent: string): string[] {
  const words = text.split(/\s+/);
  const lines: string[] = [];
  let cur = "";
  for (const w of words) {
    if (cur && indent.length + cur.length + 1 + w.length > width) { lines.push(indent + cur); cur = w; }
    else cur = cur ? `${cur} ${w}` : w;
  }
  if (cur) lines.push(indent + cur);
  return lines;
}

function hp(addr: string, port: number): string { return addr.includes(":") ? `[${addr}]:${port}` : `${addr}:${port}`; }

export async function runTrace(argv: string[], out: Out = process.stdout, err: Out = process.stderr): Promise<number> {
  if (argv.includes("-h") || argv.includes("--help")) { out.write(TRACE_USAGE); return 0; }
  let o: TraceOptions;
  try {
    if (argv.some((a) => /\.ya?ml$/i.test(a))) {
      const { parse } = await import("yaml");
      (globalThis as any).__wasmvsYaml = parse;
    }
    o = parseTraceArgs(argv);
  } catch (e) {
    if (e instanceof UsageError || e instanceof SyntaxError || (e as NodeJS.ErrnoException).code === "ENOENT") {
      err.write(`wasmvs trace: ${(e as Error).message}\n(wasmvs trace --help for the options)\n`);
      return 2;
    }
    throw e;
  }
  const color = o.color ?? (!!out.isTTY && !process.env.NO_COLOR);
  let session: TraceSession;
  try {
    session = await TraceSession.create(o.scenario);
  } catch (e) {
    err.write(`wasmvs trace: ${(e as Error).message}\n`);
    return 1;
  }
  const W = 80;
  const svc = session.service();
  const order = new Map<number, number>();
  [...svc.dests].reverse().forEach((x, i) => order.set(x.id, i));
  const destIndex = (id: number) => order.get(id) ?? (order.set(id, order.size), order.size - 1);
  const P = (l: Line) => paint(l, color, destIndex);
  const name = session.name;
  const sc = o.scenario;
  if (!o.json) {
    const where = svc.fwmark ? `fwmark ${svc.fwmark}` : `${svc.proto} ${hp(svc.addr, svc.port)}`;
    const flags = [...(sc.service.flags ?? []), ...(sc.service.persistent ? [`persistent ${sc.service.persistent}s`] : [])];
    out.write(P([{ t: `${svc.scheduler}`, s: "head" }, ` on ${where}${flags.length ? ` (${flags.join(", ")})` : ""}; list order (newest first): `,
      ...svc.dests.flatMap((x, i): Line => [i ? " " : "", { t: name(x.id), s: "dest", d: x.id }])]) + "\n");
    let row: Line = [];
    for (const x of [...svc.dests].reverse()) {
      const cell: Line = ["  ", { t: name(x.id), s: "dest", d: x.id }, ` ${hp(x.addr, x.port)} w${x.weight}${x.upperThreshold ? ` x${x.upperThreshold}` : ""}${x.lowerThreshold ? ` y${x.lowerThreshold}` : ""}`];
      if (plain(row).length + plain(cell).length > W) { out.write(P(row) + "\n"); row = []; }
      row.push(...cell);
    }
    out.write(P(row) + "\n");
    for (const l of wrap(describeTraffic(sc).trim(), W, "  ")) out.write(l + "\n");
    if (o.insides && svc.scheduler === "mh") {
      const v = readMhFill(session);
      if (v) for (const l of mhFillText(v, name, v.members.reduce((a, m) => a + m.turns, 0))) out.write(`  ${l}\n`);
    }
    out.write("\n");
  }
  // the tree as each decision finds it (the state after it is the next one's, less closes and expiries)
  let tree: TreeView | null = null;
  if (o.insides) session.beforeSchedule = () => { tree = readTree(session); };
  const counts = new Map<string, number>();
  let refused = 0, expired = 0;
  const choices: string[] = [];
  for (const dcs of session.run()) {
    expired += dcs.life.filter((e) => e.to === "expired").length;
    if (dcs.destId < 0) refused++; else counts.set(dcs.dest, (counts.get(dcs.dest) ?? 0) + 1);
    choices.push(dcs.dest);
    if (o.json) { out.write(JSON.stringify(jsonOf(dcs)) + "\n"); continue; }
    if (o.quiet) continue;
    for (const e of dcs.life) if (e.n !== dcs.n) out.write(P(lifeLine(e, name)) + "\n");
    for (const e of dcs.events) out.write(P([{ t: `-- ${e.replace(/\s+/g, " ")}`, s: "warn" }]) + "\n");
    const dest = dcs.destId >= 0 ? session.core.dest(dcs.destId) : null;
    const head: Line = [{ t: `#${dcs.n}`, s: "head" }, ` +${dcs.at}ms  ${hp(dcs.client, dcs.sport)}`,
      ...(sc.service.fwmark ? [` → ${dcs.dst}`] : []), "  ⇒ ",
      dest ? { t: dcs.dest, s: "dest", d: dcs.destId } : { t: "refused", s: "lose" },
      dest ? ` ${hp(dest.addr, dest.port)}` : "", dcs.how === "template" ? { t: "  (persistence)", s: "dim" } : ""];
    out.write(P(head) + "\n");
    for (const l of dcs.lines) out.write("  " + P(l) + "\n");
    if (o.insides) for (const l of insidesText(session, tree, dcs)) out.write(`    ${l}\n`);
    if (o.explain) {
      wrap(dcs.sentence, W, "    ").forEach((l, i) => out.write(P([{ t: i ? "    " : "  » ", s: "dim" }, l.slice(4)]) + "\n"));
    }
  }
  if (o.json) return 0;
  if (!o.quiet) out.write("\n");
  out.write(`choices: ${choices.join(" ")}\n`);
  const final = session.service();
  const summary: Line = ["totals: "];
  for (const x of [...final.dests].reverse()) summary.push({ t: name(x.id), s: "dest", d: x.id }, ` ${counts.get(name(x.id)) ?? 0} (act ${x.activeConns}, inact ${x.inactConns})  `);
  if (refused) summary.push({ t: `refused ${refused}`, s: "lose" });
  for (const l of wrapLine(summary, W)) out.write(P(l).trimEnd() + "\n");
  const states = new Map<string, number>();
  for (const e of session.entries()) states.set(e.state, (states.get(e.state) ?? 0) + 1);
  out.write(`entries at +${session.now - 1000}ms: ${[...states].map(([k, v]) => `${v} ${k}`).join(", ") || "none"}` +
    `${expired ? `; ${expired} expired` : ""}\n`);
  return 0;
}

// --insides: the tree this decision found (least-loaded schedulers) or the table after it (lblc, lblcr)
function insidesText(s: TraceSession, tree: TreeView | null, dcs: Decision): string[] {
  const sched = s.service().scheduler;
  if (tree) return ["tree (root first, leaves in list order, the path in brackets):", ...treeText(tree, s.name)];
  const v = sched === "lblc" || sched === "lblcr" ? readLocality(s) : null;
  return v && dcs.how !== "existing" ? ["table:", ...localityText(v, sched, s.now, s.name)] : [];
}

// "  ~ +350ms #1 A: ESTABLISHED → TIME_WAIT (client FIN…), inactive"
function lifeLine(e: LifeEvent, name: (id: number) => string): Line {
  const why = e.why === "timeout" ? "its timeout ran out" : e.why.startsWith("client RST") ?
    "client RST" : "FIN both ways";
  return [{ t: `  ~ +${e.at}ms #${e.n} `, s: "dim" }, { t: name(e.destId), s: "dest", d: e.destId },
    `: ${e.from} → `, { t: e.to, s: e.to === "expired" ? "warn" : "num" },
    { t: ` (${why})${e.to === "expired" ? "" : e.active ? ", active" : ", inactive"}`, s: "dim" }];
}

function wrapLine(line: Line, width: number): Line[] {
  const out: Line[] = [];
  let cur: Line = [];
  let len = 0;
  for (let i = 0; i < line.length; i += 2) {
    const pair = line.slice(i, i + 2);
    const l = plain(pair).length;
    if (len && len + l > width) { out.push(cur); cur = ["        "]; len = 8; }
    cur.push(...pair); len += l;
  }
  if (cur.length) out.push(cur);
  return out;
}

function describeTraffic(sc: Scenario): string {
  if (sc.connections?.length) return `  ${sc.connections.length} connections from a file`;
  const t = sc.traffic ?? {};
  const n = t.count ?? 12, k = t.clients ?? 4;
  const life = t.hold ? `each closes after ${t.hold} ms${t.close === "rst" ? " with an RST" : ""}` : t.closeEvery ?
    `every ${ordinalWord(t.closeEvery)} closes at once` : "none closes";
  const tg = sc.service.fwmark && (t.targets ?? 1) > 1 ? `, to ${t.targets} addresses from ${t.targetBase ?? "10.9.0.1"}` : "";
  return `${n} connections (handshake, request, answer), one per ${t.interval ?? 100} ms, from ${k} client${k === 1 ? "" : "s"} (${t.clientBase ?? "192.168.1.10"}…)${tg}; ${life}`;
}
function ordinalWord(k: number): string { return k === 2 ? "2nd" : k === 3 ? "3rd" : `${k}th`; }

function jsonOf(dd: Decision) {
  return { n: dd.n, at: dd.at, client: dd.client, sport: dd.sport, dst: dd.dst, how: dd.how, dest: dd.dest, destId: dd.destId,
    record: dd.record ? { sched: dd.record.sched, ...dd.record.f, path: dd.record.path, set: dd.record.set } : undefined,
    template: dd.template, events: dd.events, lines: dd.lines.map(plain), sentence: dd.sentence };
}
