// `wasmvs trace`: one virtual service, a sequence of connections through the real data plane, and for each
// decision the state that made it (from the scheduler's trace record), readable at 80 columns.
import { readFileSync } from "node:fs";
import { isIP } from "node:net";
import { SCHEDULERS, type ServiceSpec } from "../core/index.ts";
import { SCHEDULER_LIST, SCHED_FLAG_NAMES, schedFlag } from "../model/schedulers.ts";
import { UsageError, parseArgs, type CommandSpec, type FlagSpec } from "./args.ts";
import {
  TraceSession,
  plain,
  type LifeEvent,
  type Scenario,
  type ScenarioDest,
  type ScenarioEvent,
  type ConnSpec,
  type Line,
  type Style,
  type Decision,
} from "../explain/trace.ts";
import { readTree, readLocality, readMhFill, type TreeView } from "../ui/sched-state.ts";
import { treeText, localityText, mhFillText } from "../ui/insides.ts";

export const TRACE_USAGE = `usage: wasmvs trace [service] [real servers] [traffic] [output]

service (ipvsadm flags; default -t 10.0.0.1:80 -s wlc):
  -s SCHED               ${SCHEDULERS.join(" ")}
  -t|-u|--sctp-service VIP:PORT   or   -f MARK (fwmark: destination addresses vary, see --targets)
  -b FLAGS               ${SCHEDULER_LIST.flatMap((s) => s.flags).join(",")}   -o  one-packet
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

export interface Out {
  write(s: string): unknown;
  isTTY?: boolean;
}

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
  if ((parts.length && parts[0] === "") || !Number.isInteger(port) || port < 0 || port > 65535)
    throw new UsageError(`bad port in '${s}'`);
  return { addr, port, rest: parts.slice(1), hasPort: parts.length > 0 };
}

function num(v: string | undefined, what: string): number {
  const n = Number(v);
  if (v === undefined || v.trim() === "" || !Number.isFinite(n))
    throw new UsageError(`${what} needs a number (got '${v ?? ""}')`);
  return n;
}
// a whole number in [lo, hi], or a usage error naming the option
function int(v: string | undefined, what: string, lo: number, hi: number): number {
  const n = num(v, what);
  if (!Number.isInteger(n) || n < lo || n > hi)
    throw new UsageError(`${what} wants a whole number from ${lo} to ${hi} (got '${v}')`);
  return n;
}

export interface TraceOptions {
  scenario: Scenario;
  explain: boolean;
  color?: boolean;
  json: boolean;
  quiet: boolean;
  insides?: boolean;
}

const v = (aliases: string[] = []): FlagSpec => ({ kind: "value", aliases });
const f = (aliases: string[] = []): FlagSpec => ({ kind: "flag", aliases });
// the grammar; the values are checked in order as they are applied (a -w refers to the -r before it)
const TRACE: CommandSpec = {
  name: "wasmvs trace",
  usage: TRACE_USAGE,
  keepOrder: true,
  flags: {
    "--scheduler": v(["-s"]),
    "--tcp-service": v(["-t"]),
    "--udp-service": v(["-u"]),
    "--sctp-service": v(),
    "--fwmark-service": v(["-f"]),
    "--sched-flags": v(["-b"]),
    "--ops": f(["-o"]),
    "--persistent": { kind: "optional", aliases: ["-p"], optionalValue: /^\d+$/ },
    "--netmask": v(["-M"]),
    "--real-server": v(["-r"]),
    "--weight": v(["-w"]),
    "--u-threshold": v(["-x"]),
    "--l-threshold": v(["-y"]),
    "--gatewaying": f(["-g"]),
    "--masquerading": f(["-m"]),
    "--ipip": f(["-i"]),
    "--spec": v(),
    "--file": v(),
    "--count": v(["-n"]),
    "--clients": v(),
    "--client": v(),
    "--sport": v(),
    "--every": v(),
    "--hold": v(),
    "--close": v(),
    "--close-every": v(),
    "--targets": v(),
    "--target": v(),
    "--conns": v(),
    "--at": v(),
    "--set": v(),
    "--seed": v(),
    "--explain": f(),
    "--insides": f(),
    "--color": f(["--colour"]),
    "--no-color": f(["--no-colour"]),
    "--json": f(),
    "--quiet": f(["-q"]),
  },
};
// the words of an ipvsadm rules file that only say "add": dropped, the rest is read as trace flags
const SPEC_NOISE = new Set(["-A", "-a", "-E", "-e", "--add-service", "--add-server", "ipvsadm", "wasmvs"]);

/** What the flags build, in the order given. */
interface TraceDraft {
  service: ServiceSpec;
  dests: ScenarioDest[];
  traffic: NonNullable<Scenario["traffic"]>;
  events: ScenarioEvent[];
  settings: Record<string, number>;
  connections?: ConnSpec[];
  file?: Scenario;
  seed?: number;
  portless: Set<ScenarioDest>; // -r without a port: ipvsadm uses the service's
  opts: Omit<TraceOptions, "scenario">;
}
interface TraceInput {
  readFile: (p: string) => string;
  parseYaml?: (text: string) => unknown;
}

// Parses the command line (and any --spec/--file/--conns it names) into a scenario and output options.
// parseYaml reads a --file ending in .yaml/.yml (runTrace passes the yaml package's; loaded only then).
export function parseTraceArgs(
  argv: string[],
  readFile: (p: string) => string = (p) => readFileSync(p, "utf8"),
  parseYaml?: (text: string) => unknown,
): TraceOptions {
  const d: TraceDraft = {
    service: { proto: "tcp", addr: "10.0.0.1", port: 80, scheduler: "wlc" },
    dests: [],
    traffic: {},
    events: [],
    settings: {},
    portless: new Set(),
    opts: { explain: false, color: undefined, json: false, quiet: false, insides: false },
  };
  const input: TraceInput = { readFile, parseYaml };
  const todo = parseArgs(argv, TRACE).order;
  while (todo.length) {
    const { name, value } = todo.shift()!;
    if (name === "--spec") {
      const text = input.readFile(value!);
      const words = text
        .split("\n")
        .map((l) => l.replace(/#.*/, ""))
        .join(" ")
        .split(/\s+/)
        .filter((t) => t && !SPEC_NOISE.has(t));
      todo.unshift(...parseArgs(words, TRACE).order);
      continue;
    }
    if (
      !(applyServiceFlag(d, name, value) || applyDestFlag(d, name, value) || applyTrafficFlag(d, name, value, input))
    ) {
      applyOutputFlag(d, name);
    }
  }
  checkService(d);
  return { scenario: scenarioOf(d), ...d.opts };
}

function applyServiceFlag(d: TraceDraft, name: string, value: string | undefined): boolean {
  const service = d.service;
  switch (name) {
    case "--scheduler":
      service.scheduler = value!;
      return true;
    case "--tcp-service":
    case "--udp-service":
    case "--sctp-service": {
      const hp = splitHostPort(value!);
      service.proto = name === "--udp-service" ? "udp" : name === "--sctp-service" ? "sctp" : "tcp";
      service.addr = hp.addr;
      service.port = hp.port;
      delete service.fwmark;
      return true;
    }
    case "--fwmark-service":
      service.fwmark = int(value, name, 1, 0xffffffff);
      delete service.addr;
      delete service.port;
      return true;
    case "--sched-flags":
      service.flags = [...(service.flags ?? []), ...value!.split(",").filter(Boolean)];
      return true;
    case "--ops":
      service.flags = [...(service.flags ?? []), "ops"];
      return true;
    case "--persistent":
      service.persistent = value === undefined ? 300 : Number(value);
      return true;
    case "--netmask":
      service.netmask = value;
      return true;
    default:
      return false;
  }
}

function applyDestFlag(d: TraceDraft, name: string, value: string | undefined): boolean {
  switch (name) {
    case "--real-server": {
      const hp = splitHostPort(value!);
      const [w, u, l] = hp.rest.map((x, k) =>
        int(
          x,
          `-r ${value}: ${["weight", "upper threshold", "lower threshold"][k] ?? "field"}`,
          0,
          k ? 0x7fffffff : 65535,
        ),
      );
      if (hp.rest.length > 3) throw new UsageError(`-r ${value}: ADDR:PORT[:W[:U[:L]]] has at most five fields`);
      d.dests.push({ addr: hp.addr, port: hp.port, weight: w ?? 1, upperThreshold: u ?? 0, lowerThreshold: l ?? 0 });
      if (!hp.hasPort) d.portless.add(d.dests[d.dests.length - 1]);
      return true;
    }
    case "--weight":
    case "--u-threshold":
    case "--l-threshold": {
      const dest = d.dests[d.dests.length - 1];
      if (!dest) throw new UsageError(`${name} must follow -r`);
      if (name === "--weight") dest.weight = int(value, name, 0, 65535);
      else if (name === "--u-threshold") dest.upperThreshold = int(value, name, 0, 0x7fffffff);
      else dest.lowerThreshold = int(value, name, 0, 0x7fffffff);
      return true;
    }
    case "--gatewaying":
    case "--masquerading":
    case "--ipip":
      return true; // forwarding does not change the choice
    default:
      return false;
  }
}

function applyTrafficFlag(d: TraceDraft, name: string, value: string | undefined, input: TraceInput): boolean {
  const traffic = d.traffic;
  switch (name) {
    case "--file": {
      const text = input.readFile(value!);
      if (!/\.ya?ml$/i.test(value!)) d.file = JSON.parse(text) as Scenario;
      else if (input.parseYaml) d.file = input.parseYaml(text) as Scenario;
      else throw new UsageError(`--file ${value}: a YAML scenario needs a YAML parser (runTrace passes one)`);
      return true;
    }
    case "--count":
      traffic.count = int(value, "-n", 0, 1_000_000);
      return true;
    case "--clients":
      traffic.clients = int(value, name, 1, 1_000_000);
      return true;
    case "--client":
      if (!isIP(value!)) throw new UsageError(`--client wants an IP address (got '${value}')`);
      traffic.clientBase = value;
      return true;
    case "--sport":
      traffic.sport = int(value, name, 1, 65535);
      return true;
    case "--every":
      traffic.interval = int(value, name, 0, 86_400_000);
      return true;
    case "--hold":
      traffic.hold = int(value, name, 0, 86_400_000);
      return true;
    case "--close":
      if (value !== "fin" && value !== "rst") throw new UsageError(`--close wants fin or rst (got '${value}')`);
      traffic.close = value;
      return true;
    case "--close-every":
      traffic.closeEvery = int(value, name, 1, 1_000_000);
      return true;
    case "--targets":
      traffic.targets = int(value, name, 1, 65536);
      return true;
    case "--target":
      if (!isIP(value!)) throw new UsageError(`--target wants an IP address (got '${value}')`);
      traffic.targetBase = value;
      return true;
    case "--conns":
      d.connections = parseConns(input.readFile(value!));
      return true;
    case "--at":
      d.events.push(atEvent(d, value!));
      return true;
    case "--set": {
      const m = value!.match(/^([a-z_]+)=(\d+)$/);
      if (!m) throw new UsageError(`--set wants NAME=VALUE (got '${value}')`);
      d.settings[m[1]] = Number(m[2]);
      return true;
    }
    case "--seed":
      d.seed = int(value, name, 0, 0xffffffff);
      return true;
    default:
      return false;
  }
}

// --at K:add|del|weight:ADDR:PORT[:W]
function atEvent(d: TraceDraft, value: string): ScenarioEvent {
  const m = value.match(/^(\d+):(add|del|weight):(.+)$/);
  if (!m) throw new UsageError(`--at wants K:add|del|weight:ADDR:PORT[:W] (got '${value}')`);
  const hp = splitHostPort(m[3]);
  const w = hp.rest.length ? int(hp.rest[0], `--at ${value}: weight`, 0, 65535) : undefined;
  if (m[2] === "weight" && w === undefined) throw new UsageError(`--at ${value}: weight needs a value`);
  const ev: ScenarioEvent = {
    before: Number(m[1]),
    op: m[2] === "weight" ? "edit" : (m[2] as "add" | "del"),
    dest: { addr: hp.addr, port: hp.port, weight: w ?? 1 },
  };
  if (!hp.hasPort) d.portless.add(ev.dest);
  return ev;
}

function applyOutputFlag(d: TraceDraft, name: string): void {
  switch (name) {
    case "--explain":
      d.opts.explain = true;
      break;
    case "--insides":
      d.opts.insides = true;
      break;
    case "--color":
      d.opts.color = true;
      break;
    case "--no-color":
      d.opts.color = false;
      break;
    case "--json":
      d.opts.json = true;
      break;
    case "--quiet":
      d.opts.quiet = true;
      break;
    default:
      throw new Error(`trace: ${name} is declared but not handled`);
  }
}

function checkService(d: TraceDraft): void {
  const service = d.service;
  if (!(SCHEDULERS as readonly string[]).includes(service.scheduler)) {
    throw new UsageError(`unknown scheduler '${service.scheduler}' (known: ${SCHEDULERS.join(", ")})`);
  }
  for (const f of service.flags ?? []) {
    const flag = f === "ops" ? { bit: 0 } : schedFlag(f);
    const known = ["ops", ...Object.keys(SCHED_FLAG_NAMES)].join(", ");
    if (flag === undefined) throw new UsageError(`unknown scheduler flag '${f}' (known: ${known})`);
    const owner = flag.owner;
    if (owner && owner !== service.scheduler)
      throw new UsageError(`-b ${f} is a flag of the ${owner} scheduler, not of ${service.scheduler}`);
  }
  if (d.traffic.targets !== undefined && d.traffic.targets > 1 && !service.fwmark) {
    throw new UsageError(
      "--targets needs a fwmark service (-f MARK): a TCP/UDP service has one destination address, its VIP",
    );
  }
}

function scenarioOf(d: TraceDraft): Scenario {
  const { service, traffic, events, settings, seed, connections, file } = d;
  for (const x of d.portless) x.port = service.fwmark ? 0 : (service.port ?? 0);
  const dests = d.dests.length
    ? d.dests
    : [
        { addr: "10.1.0.1", port: 80, weight: 4 },
        { addr: "10.1.0.2", port: 80, weight: 3 },
        { addr: "10.1.0.3", port: 80, weight: 2 },
      ];
  let scenario: Scenario = { service, dests, traffic, events, settings, seed, connections };
  if (file) {
    scenario = {
      ...file,
      service: { ...file.service },
      dests: file.dests ?? dests,
      traffic: { ...(file.traffic ?? {}), ...traffic },
      events: [...(file.events ?? []), ...events],
      settings: { ...(file.settings ?? {}), ...settings },
      seed: seed ?? file.seed,
      connections: connections ?? file.connections,
    };
  }
  checkEvents(scenario);
  return scenario;
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
      throw new UsageError(
        `--at ${e.before}:${verb}:${key}: the service has no real server ${key} then (it has ` +
          `${[...have].join(", ") || "none"})`,
      );
    } else if (e.op === "del") have.delete(key);
  }
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
    if (m) {
      c.client = m[1];
      c.sport = Number(m[2]);
    }
    for (const t of rest) {
      if (t.startsWith("at=")) c.at = int(t.slice(3), `--conns '${line}': at=`, 0, 86_400_000);
      else if (t.startsWith("hold=")) c.hold = int(t.slice(5), `--conns '${line}': hold=`, 0, 86_400_000);
      else if (t.startsWith("close=")) {
        const v = t.slice(6);
        if (v !== "fin" && v !== "rst") throw new UsageError(`--conns '${line}': close= wants fin or rst`);
        c.close = v;
      } else c.dst = t;
    }
    out.push(c);
  }
  return out;
}

// ---- output --------------------------------------------------------------------------------------------
const PALETTE = [33, 35, 36, 34, 93, 95, 96, 94]; // ANSI foreground colours for destinations
const STYLE: Record<Style, string> = {
  dest: "1",
  win: "1;32",
  lose: "31",
  dim: "2",
  num: "33",
  warn: "1;33",
  head: "1;36",
};

export function paint(line: Line, color: boolean, destIndex: (id: number) => number = () => 0): string {
  return line
    .map((s) => {
      if (typeof s === "string") return s;
      if (!color) return s.t;
      const code =
        s.s === "dest" && s.d !== undefined && s.d >= 0 ? `1;${PALETTE[destIndex(s.d) % PALETTE.length]}` : STYLE[s.s];
      return `\x1b[${code}m${s.t}\x1b[0m`;
    })
    .join("");
}

export function wrap(text: string, width: number, indent: string): string[] {
  const words = text.split(/\s+/);
  const lines: string[] = [];
  let cur = "";
  for (const w of words) {
    if (cur && indent.length + cur.length + 1 + w.length > width) {
      lines.push(indent + cur);
      cur = w;
    } else cur = cur ? `${cur} ${w}` : w;
  }
  if (cur) lines.push(indent + cur);
  return lines;
}

function hp(addr: string, port: number): string {
  return addr.includes(":") ? `[${addr}]:${port}` : `${addr}:${port}`;
}

export async function runTrace(argv: string[], out: Out = process.stdout, err: Out = process.stderr): Promise<number> {
  let o: TraceOptions;
  try {
    if (parseArgs(argv, TRACE).help) {
      out.write(TRACE_USAGE);
      return 0;
    }
    // yaml is a dependency of the project, loaded only when a YAML scenario is named (not in the browser bundle)
    const parseYaml = argv.some((a) => /\.ya?ml$/i.test(a)) ? (await import("yaml")).parse : undefined;
    o = parseTraceArgs(argv, undefined, parseYaml);
  } catch (e) {
    if (e instanceof UsageError || e instanceof SyntaxError || (e as NodeJS.ErrnoException).code === "ENOENT") {
      err.write(`wasmvs trace: ${(e as Error).message}\n${TRACE_USAGE}`);
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
  const svc = session.service();
  const order = new Map<number, number>();
  [...svc.dests].reverse().forEach((x, i) => order.set(x.id, i));
  const destIndex = (id: number) => {
    if (!order.has(id)) order.set(id, order.size);
    return order.get(id) ?? 0;
  };
  const P = (l: Line) => paint(l, color, destIndex);
  if (!o.json) writeHeader(out, P, session, o);
  // the tree as each decision finds it (the state after it is the next one's, less closes and expiries)
  let tree: TreeView | null = null;
  if (o.insides)
    session.beforeSchedule = () => {
      tree = readTree(session);
    };
  const counts = new Map<string, number>();
  let refused = 0,
    expired = 0;
  const choices: string[] = [];
  for (const dcs of session.run()) {
    expired += dcs.life.filter((e) => e.to === "expired").length;
    if (dcs.destId < 0) refused++;
    else counts.set(dcs.dest, (counts.get(dcs.dest) ?? 0) + 1);
    choices.push(dcs.dest);
    if (o.json) {
      out.write(JSON.stringify(jsonOf(dcs)) + "\n");
      continue;
    }
    if (!o.quiet) writeDecision(out, P, session, o, dcs, tree);
  }
  if (o.json) return 0;
  if (!o.quiet) out.write("\n");
  writeSummary(out, P, session, { choices, counts, refused, expired });
  return 0;
}

const W = 80; // the trace's text width
type Painter = (l: Line) => string;

/** The service, its real servers in rows, the traffic, and (mh with --insides) how its table was filled. */
function writeHeader(out: Out, P: Painter, session: TraceSession, o: TraceOptions): void {
  const svc = session.service();
  const name = session.name;
  const sc = o.scenario;
  const where = svc.fwmark ? `fwmark ${svc.fwmark}` : `${svc.proto} ${hp(svc.addr, svc.port)}`;
  const flags = [
    ...(sc.service.flags ?? []),
    ...(sc.service.persistent ? [`persistent ${sc.service.persistent}s`] : []),
  ];
  out.write(
    P([
      { t: `${svc.scheduler}`, s: "head" },
      ` on ${where}${flags.length ? ` (${flags.join(", ")})` : ""}; list order (newest first): `,
      ...svc.dests.flatMap((x, i): Line => [i ? " " : "", { t: name(x.id), s: "dest", d: x.id }]),
    ]) + "\n",
  );
  let row: Line = [];
  for (const x of [...svc.dests].reverse()) {
    const cell: Line = [
      "  ",
      { t: name(x.id), s: "dest", d: x.id },
      ` ${hp(x.addr, x.port)} w${x.weight}${x.upperThreshold ? ` x${x.upperThreshold}` : ""}` +
        `${x.lowerThreshold ? ` y${x.lowerThreshold}` : ""}`,
    ];
    if (plain(row).length + plain(cell).length > W) {
      out.write(P(row) + "\n");
      row = [];
    }
    row.push(...cell);
  }
  out.write(P(row) + "\n");
  for (const l of wrap(describeTraffic(sc).trim(), W, "  ")) out.write(l + "\n");
  if (o.insides && svc.scheduler === "mh") {
    const v = readMhFill(session);
    if (v)
      for (const l of mhFillText(
        v,
        name,
        v.members.reduce((a, m) => a + m.turns, 0),
      ))
        out.write(`  ${l}\n`);
  }
  out.write("\n");
}

/** One decision: lifecycle events before it, the choice, the scheduler's lines, insides, the sentence. */
function writeDecision(
  out: Out,
  P: Painter,
  session: TraceSession,
  o: TraceOptions,
  dcs: Decision,
  tree: TreeView | null,
): void {
  const name = session.name;
  const sc = o.scenario;
  for (const e of dcs.life) if (e.n !== dcs.n) out.write(P(lifeLine(e, name)) + "\n");
  for (const e of dcs.events) out.write(P([{ t: `-- ${e.replace(/\s+/g, " ")}`, s: "warn" }]) + "\n");
  const dest = dcs.destId >= 0 ? session.core.dest(dcs.destId) : null;
  const head: Line = [
    { t: `#${dcs.n}`, s: "head" },
    ` +${dcs.at}ms  ${hp(dcs.client, dcs.sport)}`,
    ...(sc.service.fwmark ? [` → ${dcs.dst}`] : []),
    "  ⇒ ",
    dest ? { t: dcs.dest, s: "dest", d: dcs.destId } : { t: "refused", s: "lose" },
    dest ? ` ${hp(dest.addr, dest.port)}` : "",
    dcs.how === "template" ? { t: "  (persistence)", s: "dim" } : "",
  ];
  out.write(P(head) + "\n");
  for (const l of dcs.lines) out.write("  " + P(l) + "\n");
  if (o.insides) for (const l of insidesText(session, tree, dcs)) out.write(`    ${l}\n`);
  if (o.explain) {
    wrap(dcs.sentence, W, "    ").forEach((l, i) =>
      out.write(P([{ t: i ? "    " : "  » ", s: "dim" }, l.slice(4)]) + "\n"),
    );
  }
}

/** The choices in order, each real server's count and connections, and the entries left at the end. */
function writeSummary(
  out: Out,
  P: Painter,
  session: TraceSession,
  r: { choices: string[]; counts: Map<string, number>; refused: number; expired: number },
): void {
  const { choices, counts, refused, expired } = r;
  const name = session.name;
  out.write(`choices: ${choices.join(" ")}\n`);
  const final = session.service();
  const summary: Line = ["totals: "];
  for (const x of [...final.dests].reverse())
    summary.push(
      { t: name(x.id), s: "dest", d: x.id },
      ` ${counts.get(name(x.id)) ?? 0} (act ${x.activeConns}, inact ${x.inactConns})  `,
    );
  if (refused) summary.push({ t: `refused ${refused}`, s: "lose" });
  for (const l of wrapLine(summary, W)) out.write(P(l).trimEnd() + "\n");
  const states = new Map<string, number>();
  for (const e of session.entries()) states.set(e.state, (states.get(e.state) ?? 0) + 1);
  out.write(
    `entries at +${session.now - 1000}ms: ${[...states].map(([k, v]) => `${v} ${k}`).join(", ") || "none"}` +
      `${expired ? `; ${expired} expired` : ""}\n`,
  );
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
  const why =
    e.why === "timeout" ? "its timeout ran out" : e.why.startsWith("client RST") ? "client RST" : "FIN both ways";
  return [
    { t: `  ~ +${e.at}ms #${e.n} `, s: "dim" },
    { t: name(e.destId), s: "dest", d: e.destId },
    `: ${e.from} → `,
    { t: e.to, s: e.to === "expired" ? "warn" : "num" },
    { t: ` (${why})${e.to === "expired" ? "" : e.active ? ", active" : ", inactive"}`, s: "dim" },
  ];
}

function wrapLine(line: Line, width: number): Line[] {
  const out: Line[] = [];
  let cur: Line = [];
  let len = 0;
  for (let i = 0; i < line.length; i += 2) {
    const pair = line.slice(i, i + 2);
    const l = plain(pair).length;
    if (len && len + l > width) {
      out.push(cur);
      cur = ["        "];
      len = 8;
    }
    cur.push(...pair);
    len += l;
  }
  if (cur.length) out.push(cur);
  return out;
}

function describeTraffic(sc: Scenario): string {
  if (sc.connections?.length) return `  ${sc.connections.length} connections from a file`;
  const t = sc.traffic ?? {};
  const n = t.count ?? 12,
    k = t.clients ?? 4;
  const life = t.hold
    ? `each closes after ${t.hold} ms${t.close === "rst" ? " with an RST" : ""}`
    : t.closeEvery
      ? `every ${ordinalWord(t.closeEvery)} closes at once`
      : "none closes";
  const tg =
    sc.service.fwmark && (t.targets ?? 1) > 1 ? `, to ${t.targets} addresses from ${t.targetBase ?? "10.9.0.1"}` : "";
  return (
    `${n} connections (handshake, request, answer), one per ${t.interval ?? 100} ms, from ${k} client` +
    `${k === 1 ? "" : "s"} (${t.clientBase ?? "192.168.1.10"}…)${tg}; ${life}`
  );
}
function ordinalWord(k: number): string {
  return k === 2 ? "2nd" : k === 3 ? "3rd" : `${k}th`;
}

function jsonOf(dd: Decision) {
  return {
    n: dd.n,
    at: dd.at,
    client: dd.client,
    sport: dd.sport,
    dst: dd.dst,
    how: dd.how,
    dest: dd.dest,
    destId: dd.destId,
    record: dd.record
      ? { sched: dd.record.sched, ...dd.record.f, path: dd.record.path, set: dd.record.set }
      : undefined,
    template: dd.template,
    events: dd.events,
    lines: dd.lines.map(plain),
    sentence: dd.sentence,
  };
}
