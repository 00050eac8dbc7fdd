// ipvsadm 1.31's command line, parsed as ipvsadm parses it (popt option rules, the commands-vs-options
// table, the same checks in the same order) into typed commands, with ipvsadm's own error messages and
// exit statuses (test/fixtures/ipvsadm/errors.json records the real ones). Also the -R restore format
// (what -S prints) into ordered commands and the DesiredState they build.
import type { DesiredState, IpvsTimeouts, RealServer, TunnelType, VirtualService } from "./types.ts";
import { serviceKey, realServerKey } from "./types.ts";
import type { ListFormat } from "./format.ts";
import { SVC_F_ONEPACKET, SVC_F_PERSISTENT, SVC_F_SCHED1, SVC_F_SCHED2, SVC_F_SCHED3 } from "./format.ts";
import {
  AF_INET,
  AF_INET6,
  IPPROTO_SCTP,
  IPPROTO_TCP,
  IPPROTO_UDP,
  canonicalAddr,
  inetAton,
  inetPton6,
  ntoa4,
  ntop6,
} from "./inet.ts";
import { type NameResolver, numericResolver } from "./names.ts";
import type { SyncDaemon } from "./daemon.ts";
import { SCHED_FLAG_BITS, schedFlag, schedFlagName } from "./schedulers.ts";

/** What ipvsadm would print on stderr (exact text, newline included) and exit with. */
export class IpvsadmError extends Error {
  /** `detail`: what wasmvs adds before ipvsadm's text, naming the word at fault (ipvsadm names none) */
  constructor(
    readonly text: string,
    readonly status: number,
    readonly detail?: string,
  ) {
    super(text.replace(/\n+$/, ""));
    this.name = "IpvsadmError";
  }
}

type ListWhat = "all" | "service" | "connections" | "timeout" | "daemon";
interface ListCommand {
  kind: "list";
  what: ListWhat;
  service?: VirtualService;
  numeric: boolean;
  format: ListFormat;
  exact: boolean;
  nosort: boolean;
}
export type IpvsadmCommand =
  | { kind: "add-service" | "edit-service"; service: VirtualService }
  | { kind: "delete-service"; service: VirtualService }
  | { kind: "flush" }
  | { kind: "add-server" | "edit-server"; service: VirtualService; server: RealServer }
  | { kind: "delete-server"; service: VirtualService; server: RealServer }
  | { kind: "zero"; service?: VirtualService }
  | { kind: "set-timeouts"; timeouts: IpvsTimeouts }
  | ListCommand
  | { kind: "save"; numeric: boolean }
  | { kind: "restore" }
  | { kind: "start-daemon"; state: "master" | "backup"; daemon: SyncDaemon }
  | { kind: "stop-daemon"; state: "master" | "backup" }
  | { kind: "help" }
  | { kind: "version" };

// Changes to a desired state, in ipvsadm's terms: the restore format's commands that change a table.
export const STATE_COMMANDS: ReadonlySet<string> = new Set([
  "add-service",
  "edit-service",
  "delete-service",
  "flush",
  "add-server",
  "edit-server",
  "delete-server",
  "set-timeouts",
]);
export type StateCommand = Extract<
  IpvsadmCommand,
  {
    kind:
      | "add-service"
      | "edit-service"
      | "delete-service"
      | "flush"
      | "add-server"
      | "edit-server"
      | "delete-server"
      | "set-timeouts";
  }
>;

interface ParseOptions {
  program?: string; // argv[0] in "Try `%s -h' ..." (default "ipvsadm")
  resolver?: NameResolver; // host and service names in addresses (default: numbers only)
  readingStdin?: boolean; // inside -R: a nested -R is refused as ipvsadm refuses it
}

const MAX_TIMEOUT = 86400 * 31;
const DEFAULT_PERSISTENT_TIMEOUT = 360;
const DEF_SCHED = "wlc";

// ---- the option table (ipvsadm.c's popt table) ------------------------------------------------------
type ArgKind = "none" | "string" | "optional";
interface Opt {
  long: string;
  short?: string;
  arg: ArgKind;
  tag: string;
}
const OPTS: Opt[] = [
  { long: "add-service", short: "A", arg: "none", tag: "A" },
  { long: "edit-service", short: "E", arg: "none", tag: "E" },
  { long: "delete-service", short: "D", arg: "none", tag: "D" },
  { long: "clear", short: "C", arg: "none", tag: "C" },
  { long: "list", short: "L", arg: "none", tag: "L" },
  { long: "list", short: "l", arg: "none", tag: "L" },
  { long: "zero", short: "Z", arg: "none", tag: "Z" },
  { long: "add-server", short: "a", arg: "none", tag: "a" },
  { long: "edit-server", short: "e", arg: "none", tag: "e" },
  { long: "delete-server", short: "d", arg: "none", tag: "d" },
  { long: "set", arg: "none", tag: "set" },
  { long: "help", short: "h", arg: "none", tag: "h" },
  { long: "version", short: "v", arg: "none", tag: "v" },
  { long: "restore", short: "R", arg: "none", tag: "R" },
  { long: "save", short: "S", arg: "none", tag: "S" },
  { long: "start-daemon", arg: "string", tag: "start-daemon" },
  { long: "stop-daemon", arg: "string", tag: "stop-daemon" },
  { long: "tcp-service", short: "t", arg: "string", tag: "t" },
  { long: "udp-service", short: "u", arg: "string", tag: "u" },
  { long: "sctp-service", arg: "string", tag: "sctp" },
  { long: "fwmark-service", short: "f", arg: "string", tag: "f" },
  { long: "scheduler", short: "s", arg: "string", tag: "s" },
  { long: "persistent", short: "p", arg: "optional", tag: "p" },
  { long: "netmask", short: "M", arg: "string", tag: "M" },
  { long: "real-server", short: "r", arg: "string", tag: "r" },
  { long: "masquerading", short: "m", arg: "none", tag: "m" },
  { long: "ipip", short: "i", arg: "none", tag: "i" },
  { long: "gatewaying", short: "g", arg: "none", tag: "g" },
  { long: "weight", short: "w", arg: "string", tag: "w" },
  { long: "u-threshold", short: "x", arg: "string", tag: "x" },
  { long: "l-threshold", short: "y", arg: "string", tag: "y" },
  { long: "numeric", short: "n", arg: "none", tag: "n" },
  { long: "connection", short: "c", arg: "none", tag: "c" },
  { long: "mcast-interface", arg: "string", tag: "mcast-interface" },
  { long: "syncid", arg: "string", tag: "syncid" },
  { long: "timeout", arg: "none", tag: "timeout" },
  { long: "daemon", arg: "none", tag: "daemon" },
  { long: "stats", arg: "none", tag: "stats" },
  { long: "rate", arg: "none", tag: "rate" },
  { long: "thresholds", arg: "none", tag: "thresholds" },
  { long: "persistent-conn", arg: "none", tag: "persistent-conn" },
  { long: "nosort", arg: "none", tag: "nosort" },
  { long: "sort", arg: "none", tag: "sort" },
  { long: "exact", short: "X", arg: "none", tag: "X" },
  { long: "ipv6", short: "6", arg: "none", tag: "6" },
  { long: "ops", short: "o", arg: "none", tag: "o" },
  { long: "pe", arg: "string", tag: "pe" },
  { long: "sched-flags", short: "b", arg: "string", tag: "b" },
  { long: "mcast-group", arg: "string", tag: "mcast-group" },
  { long: "mcast-port", arg: "string", tag: "mcast-port" },
  { long: "mcast-ttl", arg: "string", tag: "mcast-ttl" },
  { long: "sync-maxlen", arg: "string", tag: "sync-maxlen" },
  { long: "tun-info", arg: "none", tag: "tun-info" },
  { long: "tun-type", arg: "string", tag: "tun-type" },
  { long: "tun-port", arg: "string", tag: "tun-port" },
  { long: "tun-nocsum", arg: "none", tag: "tun-nocsum" },
  { long: "tun-csum", arg: "none", tag: "tun-csum" },
  { long: "tun-remcsum", arg: "none", tag: "tun-remcsum" },
];
const BY_LONG = new Map(OPTS.map((o) => [o.long, o]));
const BY_SHORT = new Map(OPTS.filter((o) => o.short).map((o) => [o.short!, o]));

// option classes (OPTC_*) and command indexes, in ipvsadm's order
const OPTNAMES = [
  "numeric",
  "connection",
  "service-address",
  "scheduler",
  "persistent",
  "netmask",
  "real-server",
  "forwarding-method",
  "weight",
  "u-threshold",
  "l-threshold",
  "mcast-interface",
  "timeout",
  "daemon",
  "stats",
  "rate",
  "thresholds",
  "persistent-conn",
  "nosort",
  "syncid",
  "exact",
  "ops",
  "pe",
  "sched-flags",
  "mcast-group",
  "mcast-port",
  "mcast-ttl",
  "sync-maxlen",
  "tun-info",
  "tun-type",
  "tun-port",
  "tun-nocsum",
  "tun-csum",
  "tun-remcsum",
];
const O = Object.fromEntries(OPTNAMES.map((n, i) => [n, i])) as Record<string, number>;
const CMDNAMES = [
  "add-service",
  "edit-service",
  "delete-service",
  "flush",
  "list",
  "add-server",
  "delete-server",
  "edit-server",
  "set",
  "start-daemon",
  "stop-daemon",
  "restore",
  "save",
  "zero",
];
// commands_v_options, one string per command, one character per option class
const TABLE = [
  "xx+   xxxxxxxxxxxxxxx   xxxxxxxxxx", // ADD
  "xx+   xxxxxxxxxxxxxxx   xxxxxxxxxx", // EDIT
  "xx+xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", // DEL
  "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", // FLUSH
  " 11xxxxxxxxx11       xxxxxxx xxxxx", // LIST
  "xx+xxx+    xxxxxxxxxxxxxxxxxx     ", // ADDSRV
  "xx+xxx+xxxxxxxxxxxxxxxxxxxxxxxxxxx", // DELSRV
  "xx+xxx+    xxxxxxxxxxxxxxxxxx     ", // EDITSRV
  "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", // TIMEOUT
  "xxxxxxxxxxx xxxxxxx xxxx    xxxxxx", // STARTD
  "xxxxxxxxxxxxxxxxxxx xxxxxxxxxxxxxx", // STOPD
  "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", // RESTORE
  " xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", // SAVE
  "xx xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", // ZERO
];
const TUNNAMES = ["ipip", "gue", "gre"];
const TUNOPTS = [O["tun-port"], O["tun-nocsum"], O["tun-csum"], O["tun-remcsum"]];
const TUN_TABLE = ["xxxx", "+111", "x11x"];
const FWD = { masq: 0, local: 1, tunnel: 2, route: 3 } as const;

// ---- C library number parsing -----------------------------------------------------------------------
/** string_to_number: strtol base 10, the whole string, within [min, max]; else -1. */
function stringToNumber(s: string, min: number, max: number): number {
  if (!/^[ \t\n\v\f\r]*[+-]?\d+$/.test(s)) return -1;
  const n = Number(s.trim());
  if (!Number.isSafeInteger(n)) return -1; // every max here is far below 2^53
  return n >= min && n <= max ? n : -1;
}
function atoi(s: string): number {
  const m = /^[ \t\n\v\f\r]*([+-]?\d+)/.exec(s);
  return m ? Number(m[1]) | 0 : 0;
}
const strIsDigit = (s: string) => /^\d*$/.test(s);

// ---- parse_service ----------------------------------------------------------------------------------
interface ParsedAddr {
  res: number;
  af?: number;
  addr?: string;
  port?: number;
  v6?: boolean;
}
const SERVICE_ADDR = 1,
  SERVICE_PORT = 2;
const PLAIN_QUAD = /^((?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d))(?::([^:]*))?$/;

function parseService(buf: string, proto: number, resolver: NameResolver): ParsedAddr {
  if (strIsDigit(buf)) return { res: 0 };
  let host = buf;
  let portp: string | null = null;
  if (buf[0] === "[") {
    const inner = buf.slice(1);
    const i = inner.indexOf("]");
    if (i < 0) return { res: 0 };
    host = inner.slice(0, i);
    const rest = inner.slice(i + 1);
    if (rest[0] === ":") portp = rest.slice(1);
    else return { res: 0 };
  }
  const out: ParsedAddr = { res: 0 };
  // the common case first: a plain dotted quad (what -S prints), which inet_aton and inet_ntoa give back as is
  const quad = portp === null ? PLAIN_QUAD.exec(host) : null;
  const v6 = quad ? undefined : inetPton6(host);
  if (quad) {
    out.af = AF_INET;
    out.addr = quad[1];
    if (quad[2] !== undefined) portp = quad[2];
  } else if (v6) {
    out.af = AF_INET6;
    out.addr = ntop6(v6);
    out.v6 = true;
  } else {
    const i = host.lastIndexOf(":");
    portp = null;
    if (i >= 0) {
      portp = host.slice(i + 1);
      host = host.slice(0, i);
    }
    const v4 = inetAton(host);
    if (v4 !== undefined) {
      out.af = AF_INET;
      out.addr = ntoa4(v4);
    } else {
      const h = resolver.hostToAddr(host);
      if (h === undefined) return { res: 0 };
      out.af = AF_INET;
      out.addr = h;
    }
  }
  out.res = SERVICE_ADDR;
  if (portp !== null) {
    out.res |= SERVICE_PORT;
    let n = stringToNumber(portp, 0, 65535);
    if (n === -1) n = resolver.serviceToPort(portp, proto) ?? -1;
    if (n === -1) return { res: 0 };
    out.port = n;
  }
  return out;
}

// ---- popt-like tokenizer ----------------------------------------------------------------------------
type Tok = { kind: "opt"; opt: Opt; arg: string | null; text: string } | { kind: "err"; text: string; why: string };

function* tokenize(argv: string[], leftovers: string[]): Generator<Tok> {
  let i = 0;
  while (i < argv.length) {
    const a = argv[i++];
    if (a === "--") {
      leftovers.push(...argv.slice(i));
      return;
    }
    if (a.startsWith("--") && a.length > 2) {
      const eq = a.indexOf("=");
      const name = eq >= 0 ? a.slice(2, eq) : a.slice(2);
      const opt = BY_LONG.get(name);
      if (!opt) {
        yield { kind: "err", text: a, why: "unknown option" };
        return;
      }
      let arg: string | null = eq >= 0 ? a.slice(eq + 1) : null;
      if (opt.arg === "string" && arg === null) {
        if (i >= argv.length) {
          yield { kind: "err", text: a, why: "missing argument" };
          return;
        }
        arg = argv[i++];
      } else if (opt.arg === "optional" && arg === null && i < argv.length && !argv[i].startsWith("-")) arg = argv[i++];
      yield { kind: "opt", opt, arg, text: a };
      continue;
    }
    if (a.startsWith("-") && a.length > 1) {
      for (let k = 1; k < a.length; k++) {
        const opt = BY_SHORT.get(a[k]);
        if (!opt) {
          yield { kind: "err", text: a.length > 2 ? a : `-${a[k]}`, why: "unknown option" };
          return;
        }
        if (opt.arg === "none") {
          yield { kind: "opt", opt, arg: null, text: `-${a[k]}` };
          continue;
        }
        let arg: string | null = a.slice(k + 1) || null;
        if (arg === null) {
          if (opt.arg === "string") {
            if (i >= argv.length) {
              yield { kind: "err", text: `-${a[k]}`, why: "missing argument" };
              return;
            }
            arg = argv[i++];
          } else if (i < argv.length && !argv[i].startsWith("-")) arg = argv[i++];
        }
        yield { kind: "opt", opt, arg, text: `-${a[k]}` };
        break;
      }
      continue;
    }
    leftovers.push(a);
  }
}

// ---- the parser ---------------------------------------------------------------------------------------
const fail = (msg: string, status = 2, detail?: string): never => {
  throw new IpvsadmError(msg + "\n", status, detail);
};
const tryhelp = (program: string, detail?: string): never => {
  throw new IpvsadmError(`Try \`${program} -h' or '${program} --help' for more information.\n`, 255, detail);
};
const COMMAND_WORDS = "-A -E -D -C -a -e -d -L -l -Z -S -R --set -h -v";

interface Svc {
  af: number;
  protocol: number;
  addr?: string;
  port: number;
  fwmark: number;
  sched: string;
  flags: number;
  timeout: number;
  netmask: number;
  pe: string;
}
interface Dest {
  af: number;
  addr?: string;
  port: number;
  fwd: number;
  weight: number;
  u: number;
  l: number;
  tunType: number;
  tunPort: number;
  tunFlags: number;
}

/** Parse one ipvsadm command line (without the program name). Throws IpvsadmError as ipvsadm fails. */
/** What the options set, as ipvsadm's parse_options fills its structures. */
interface ParseState {
  svc: Svc;
  dest: Dest;
  opts: Set<number>;
  resolver: NameResolver;
  schedFlagsArg: string;
  daemon: Omit<SyncDaemon, "state">; // the daemon options as given (checked by validateDaemon before use)
  fmt: {
    numeric: boolean;
    stats: boolean;
    rate: boolean;
    thresholds: boolean;
    pconn: boolean;
    nosort: boolean;
    exact: boolean;
    tuninfo: boolean;
  };
}
interface FirstWord {
  cmd: number;
  daemonState: "master" | "backup";
}

/** Parse one ipvsadm command line (without the program name). Throws IpvsadmError as ipvsadm fails. */
export function parseIpvsadm(argv: string[], popts: ParseOptions = {}): IpvsadmCommand {
  const program = popts.program ?? "ipvsadm";
  const st: ParseState = {
    svc: { af: 0, protocol: 0, port: 0, fwmark: 0, sched: "", flags: 0, timeout: 0, netmask: 0xffffffff, pe: "" },
    dest: { af: 0, port: 0, fwd: FWD.route, weight: 1, u: 0, l: 0, tunType: 0, tunPort: 0, tunFlags: 0 },
    opts: new Set<number>(),
    resolver: popts.resolver ?? numericResolver,
    schedFlagsArg: "",
    daemon: { mcastIfn: "", syncid: 0 },
    fmt: {
      numeric: false,
      stats: false,
      rate: false,
      thresholds: false,
      pconn: false,
      nosort: false,
      exact: false,
      tuninfo: false,
    },
  };
  const leftovers: string[] = [];
  const toks = tokenize(argv, leftovers);
  const first = firstWord(toks.next(), program);
  if ("kind" in first) return first;
  const { cmd } = first;
  for (const t of toks) {
    if (t.kind === "err") {
      throw new IpvsadmError(`${t.text}: ${t.why}\n`, 255);
    }
    applyOption(st, t);
  }
  const timeouts = cmd === 8 ? setTimeouts(leftovers) : undefined;
  if (leftovers.length) fail(`unexpected argument ${leftovers[0]}`);
  if (st.schedFlagsArg) applySchedFlags(st.svc, st.schedFlagsArg);
  checkCommandOptions(cmd, st.opts);
  if (cmd === 0 || cmd === 1) checkService(st.svc);
  if (cmd === 5 || cmd === 7) checkServer(st);
  return commandOf(cmd, st, first.daemonState, timeouts, popts.readingStdin === true, program);
}

/** The first word says the command (an option among the others to popt, but it must come first). */
function firstWord(next: IteratorResult<Tok>, program: string): FirstWord | IpvsadmCommand {
  if (next.done) return tryhelp(program, "no command");
  if (next.value.kind === "err") return tryhelp(program, `${next.value.text}: ${next.value.why}`);
  const f = next.value;
  let cmd: number;
  let daemonState: "master" | "backup" = "master";
  switch (f.opt.tag) {
    case "A":
      cmd = 0;
      break;
    case "E":
      cmd = 1;
      break;
    case "D":
      cmd = 2;
      break;
    case "C":
      cmd = 3;
      break;
    case "L":
      cmd = 4;
      break;
    case "a":
      cmd = 5;
      break;
    case "d":
      cmd = 6;
      break;
    case "e":
      cmd = 7;
      break;
    case "set":
      cmd = 8;
      break;
    case "R":
      cmd = 11;
      break;
    case "S":
      cmd = 12;
      break;
    case "Z":
      cmd = 13;
      break;
    case "start-daemon":
    case "stop-daemon":
      cmd = f.opt.tag === "start-daemon" ? 9 : 10;
      if (f.arg === "master") daemonState = "master";
      else if (f.arg === "backup") daemonState = "backup";
      else fail(cmd === 9 ? "illegal start-daemon parameter specified" : "illegal start_daemon specified");
      break;
    case "h":
      return { kind: "help" };
    case "v":
      return { kind: "version" };
    default:
      return tryhelp(program, `${f.text} is not a command: a line starts with one of ${COMMAND_WORDS}`);
  }
  return { cmd, daemonState };
}

/** One option after the command: its value checked and set, as ipvsadm's option switch does. */
function applyOption(st: ParseState, t: Extract<Tok, { kind: "opt" }>): void {
  const arg = t.arg ?? "";
  if (!(serviceOption(st, t, arg) || serverOption(st, t, arg) || listOption(st, t) || daemonOption(st, t, arg))) {
    fail(`invalid option \`${t.text}'`);
  }
}

function markOption(st: ParseState, c: number): void {
  if (st.opts.has(c)) fail(`multiple '${OPTNAMES[c]}' options specified`);
  st.opts.add(c);
}

/** The virtual service: its address or mark, scheduler, persistence, flags. */
function serviceOption(st: ParseState, t: Extract<Tok, { kind: "opt" }>, arg: string): boolean {
  const { svc, resolver } = st;
  const setOption = (c: number) => markOption(st, c);
  switch (t.opt.tag) {
    case "t":
    case "u":
    case "sctp": {
      setOption(O["service-address"]);
      svc.protocol = t.opt.tag === "t" ? IPPROTO_TCP : t.opt.tag === "u" ? IPPROTO_UDP : IPPROTO_SCTP;
      const p = parseService(arg, svc.protocol, resolver);
      if (p.af !== undefined) {
        svc.af = p.af;
        svc.addr = p.addr;
        if (p.v6) svc.netmask = 128;
      }
      if (p.port !== undefined) svc.port = p.port;
      if (!(p.res & SERVICE_ADDR)) {
        fail(
          "illegal virtual server address[:port] specified",
          2,
          `${t.text} '${arg.slice(0, 64)}': not ADDRESS[:PORT]`,
        );
      }
      return true;
    }
    case "f": {
      setOption(O["service-address"]);
      svc.af = AF_INET;
      svc.protocol = IPPROTO_TCP;
      if (!/^[ \t\n\v\f\r]*[+-]?\d+$/.test(arg)) fail(`invalid fwmark value \`${arg}' specified`);
      let l = Number(arg.trim());
      // ipvsadm -S prints marks >= 2^31 signed ("-f -1") and its own -R refuses them; wasmvs reads them
      // back as the unsigned mark they are, so save and restore round-trip (a deliberate difference)
      if (l >= -2147483648 && l < 0) l = l >>> 0;
      if (!(l > 0 && l <= 0xffffffff)) fail(`invalid fwmark value \`${arg}' specified`);
      svc.fwmark = l;
      return true;
    }
    case "s":
      setOption(O.scheduler);
      svc.sched = arg.slice(0, 15);
      return true;
    case "p": {
      setOption(O.persistent);
      svc.flags |= SVC_F_PERSISTENT;
      if (t.arg === null) svc.timeout = DEFAULT_PERSISTENT_TIMEOUT;
      else {
        const n = stringToNumber(arg, 1, MAX_TIMEOUT);
        if (n === -1) fail(`invalid timeout value \`${arg}' specified`);
        svc.timeout = n;
      }
      return true;
    }
    case "M": {
      setOption(O.netmask);
      if (svc.af !== AF_INET6) {
        let v = inetAton(arg);
        if (v === undefined) {
          const h = resolver.hostToAddr(arg);
          v = h === undefined ? undefined : inetAton(h);
        }
        if (v === undefined) fail("illegal virtual server persistent mask specified");
        svc.netmask = v!;
      } else {
        svc.netmask = atoi(arg);
        if (svc.netmask < 1 || svc.netmask > 128) fail("illegal ipv6 netmask specified");
      }
      return true;
    }
    case "6":
      if (svc.fwmark) {
        svc.af = AF_INET6;
        svc.netmask = 128;
      } else fail("-6 used before -f\n");
      return true;
    case "o":
      setOption(O.ops);
      svc.flags |= SVC_F_ONEPACKET;
      return true;
    case "pe":
      setOption(O.pe);
      svc.pe = arg.slice(0, 32);
      return true;
    case "b":
      setOption(O["sched-flags"]);
      st.schedFlagsArg = arg.slice(0, 127);
      return true;
    default:
      return false;
  }
}

/** The real server: its address, forwarding method, weight, thresholds and tunnel. */
function serverOption(st: ParseState, t: Extract<Tok, { kind: "opt" }>, arg: string): boolean {
  const { svc, dest, resolver } = st;
  const setOption = (c: number) => markOption(st, c);
  switch (t.opt.tag) {
    case "r": {
      setOption(O["real-server"]);
      const p = parseService(arg, svc.protocol, resolver);
      dest.af = p.af ?? svc.af;
      dest.addr = p.addr ?? svc.addr;
      dest.port = p.port ?? svc.port;
      if (!(p.res & SERVICE_ADDR)) {
        fail("illegal real server address[:port] specified", 2, `${t.text} '${arg.slice(0, 64)}': not ADDRESS[:PORT]`);
      }
      if (p.res === SERVICE_ADDR) dest.port = svc.port;
      return true;
    }
    case "i":
      setOption(O["forwarding-method"]);
      dest.fwd = FWD.tunnel;
      return true;
    case "g":
      setOption(O["forwarding-method"]);
      dest.fwd = FWD.route;
      return true;
    case "m":
      setOption(O["forwarding-method"]);
      dest.fwd = FWD.masq;
      return true;
    // ipvsadm 1.31 as Debian builds it takes any weight 0..INT_MAX (recorded: -w 70000 is accepted)
    case "w":
      setOption(O.weight);
      if ((dest.weight = stringToNumber(arg, 0, 2147483647)) === -1) fail("illegal weight specified");
      return true;
    case "x":
      setOption(O["u-threshold"]);
      if ((dest.u = stringToNumber(arg, 0, 2147483647)) === -1) fail("illegal u_threshold specified");
      return true;
    case "y":
      setOption(O["l-threshold"]);
      if ((dest.l = stringToNumber(arg, 0, 2147483647)) === -1) fail("illegal l_threshold specified");
      return true;
    case "tun-type": {
      setOption(O["tun-type"]);
      const k = TUNNAMES.indexOf(arg);
      if (k < 0) fail("illegal tunnel type specified");
      dest.tunType = k;
      return true;
    }
    case "tun-port": {
      setOption(O["tun-port"]);
      const n = stringToNumber(arg, 1, 65535);
      if (n === -1) fail("illegal tunnel port specified");
      dest.tunPort = n;
      return true;
    }
    case "tun-nocsum":
      setOption(O["tun-nocsum"]);
      return true;
    case "tun-csum":
      setOption(O["tun-csum"]);
      dest.tunFlags |= 1;
      return true;
    case "tun-remcsum":
      setOption(O["tun-remcsum"]);
      dest.tunFlags |= 2;
      return true;
    default:
      return false;
  }
}

/** What -L lists and how. */
function listOption(st: ParseState, t: Extract<Tok, { kind: "opt" }>): boolean {
  const { fmt } = st;
  const setOption = (c: number) => markOption(st, c);
  switch (t.opt.tag) {
    case "c":
      setOption(O.connection);
      return true;
    case "n":
      setOption(O.numeric);
      fmt.numeric = true;
      return true;
    case "timeout":
      setOption(O.timeout);
      return true;
    case "daemon":
      setOption(O.daemon);
      return true;
    case "stats":
      setOption(O.stats);
      fmt.stats = true;
      return true;
    case "rate":
      setOption(O.rate);
      fmt.rate = true;
      return true;
    case "thresholds":
      setOption(O.thresholds);
      fmt.thresholds = true;
      return true;
    case "persistent-conn":
      setOption(O["persistent-conn"]);
      fmt.pconn = true;
      return true;
    case "nosort":
      setOption(O.nosort);
      fmt.nosort = true;
      return true;
    case "sort":
      return true;
    case "X":
      setOption(O.exact);
      fmt.exact = true;
      return true;
    case "tun-info":
      setOption(O["tun-info"]);
      fmt.tuninfo = true;
      return true;
    default:
      return false;
  }
}

/** The sync daemon's options, checked as ipvsadm checks them. */
function daemonOption(st: ParseState, t: Extract<Tok, { kind: "opt" }>, arg: string): boolean {
  const setOption = (c: number) => markOption(st, c);
  const d = st.daemon;
  switch (t.opt.tag) {
    case "mcast-interface":
      setOption(O["mcast-interface"]);
      d.mcastIfn = arg;
      return true;
    case "syncid":
      setOption(O.syncid);
      if ((d.syncid = stringToNumber(arg, 0, 255)) === -1) fail("illegal syncid specified");
      return true;
    case "mcast-group": {
      setOption(O["mcast-group"]);
      if (arg.includes(":")) {
        const b = inetPton6(arg);
        if (b?.[0] !== 0xff) fail(`invalid IPv6 mcast-group \`${arg}'`);
        d.mcastGroup = ntop6(b!);
      } else {
        const v = /^\d+\.\d+\.\d+\.\d+$/.test(arg) ? inetAton(arg) : undefined;
        if (v === undefined || v >>> 28 !== 14) fail(`invalid IPv4 mcast-group \`${arg}'`);
        d.mcastGroup = ntoa4(v!);
      }
      return true;
    }
    case "mcast-port":
      setOption(O["mcast-port"]);
      if ((d.mcastPort = stringToNumber(arg, 1, 65535)) === -1) fail("illegal mcast-port specified");
      return true;
    case "mcast-ttl":
      setOption(O["mcast-ttl"]);
      if ((d.mcastTtl = stringToNumber(arg, 1, 255)) === -1) fail("illegal mcast-ttl specified");
      return true;
    case "sync-maxlen":
      setOption(O["sync-maxlen"]);
      if ((d.syncMaxlen = stringToNumber(arg, 1, 65535 - 20 - 8)) === -1) fail("illegal sync-maxlen specified");
      return true;
    default:
      return false;
  }
}

/** --set's three values: tcp tcpfin udp (0 keeps the current one). */
function setTimeouts(leftovers: string[]): IpvsTimeouts {
  if (leftovers.length < 3) fail("--set option requires 3 timeout values");
  const [a, b, c] = leftovers.splice(0, 3).map((x) => {
    const n = stringToNumber(x, 0, MAX_TIMEOUT);
    if (n === -1) fail(`invalid timeout value \`${x}' specified`);
    return n;
  });
  return { tcp: a, tcpfin: b, udp: c };
}

/** -b: each flag's bit, and the scheduler it belongs to. */
function applySchedFlags(svc: Svc, schedFlagsArg: string): void {
  svc.flags &= ~(SVC_F_SCHED1 | SVC_F_SCHED2 | SVC_F_SCHED3);
  const sched = svc.sched || DEF_SCHED;
  for (const flag of schedFlagsArg.split(",").filter(Boolean)) {
    const e = schedFlag(flag) ?? fail(`invalid scheduler flag \`${flag}'`);
    svc.flags |= e.bit;
    if (e.owner && sched !== e.owner) fail(`incompatible scheduler flag \`${flag}'`);
  }
}

/** generic_opt_check: the commands-vs-options table (+ required, x illegal, 1 at most one of them). */
function checkCommandOptions(cmd: number, opts: Set<number>): void {
  const row = TABLE[cmd];
  let count = 0,
    last = 0;
  for (let j = 0; j < OPTNAMES.length; j++) {
    if (!opts.has(j)) {
      if (row[j] === "+") fail(`You need to supply the '${OPTNAMES[j]}' option for the '${CMDNAMES[cmd]}' command`);
    } else {
      if (row[j] === "x") fail(`Illegal '${OPTNAMES[j]}' option with the '${CMDNAMES[cmd]}' command`);
      if (row[j] === "1") {
        count++;
        if (count === 1) {
          last = j;
          continue;
        }
        fail(
          `The option '${OPTNAMES[j]}' conflicts with the '${OPTNAMES[last]}' option in the '${CMDNAMES[cmd]}' command`,
        );
      }
    }
  }
}

/** -A/-E: a port unless persistent or fwmark, one-packet only for UDP, the default scheduler. */
function checkService(svc: Svc): void {
  if (!svc.fwmark && !svc.port && !(svc.flags & SVC_F_PERSISTENT))
    fail("Zero port specified for non-persistent service");
  if (svc.flags & SVC_F_ONEPACKET && !svc.fwmark && svc.protocol !== IPPROTO_UDP)
    fail("One-Packet Scheduling is only for UDP virtual services");
  if (!svc.sched) svc.sched = DEF_SCHED;
}

/** -a/-e: the real server's port and family against the service's, and the tunnel options. */
function checkServer(st: ParseState): void {
  const { svc, dest, opts } = st;
  if (!svc.fwmark && (dest.fwd === FWD.tunnel || dest.fwd === FWD.route)) dest.port = svc.port;
  if (dest.af !== svc.af && dest.fwd !== FWD.tunnel)
    fail("Different address family is allowed only for tunneling servers");
  if (
    (opts.has(O["tun-type"]) ||
      opts.has(O["tun-port"]) ||
      opts.has(O["tun-nocsum"]) ||
      opts.has(O["tun-csum"]) ||
      opts.has(O["tun-remcsum"])) &&
    dest.fwd !== FWD.tunnel
  )
    fail("Tunnel options conflict with forward method");
  checkTunnelOptions(dest, opts);
}

/** tunnel_opt_check: the tunnel type's own required, illegal and conflicting options. */
function checkTunnelOptions(dest: Dest, opts: Set<number>): void {
  let tc = 0,
    tl = 0;
  for (let j = 0; j < TUNOPTS.length; j++) {
    const k = TUNOPTS[j],
      rule = TUN_TABLE[dest.tunType][j];
    if (!opts.has(k)) {
      if (rule === "+")
        fail(`You need to supply the '${OPTNAMES[k]}' option for the '${TUNNAMES[dest.tunType]}' tunnel type`);
    } else {
      if (rule === "x") fail(`Illegal '${OPTNAMES[k]}' option with the '${TUNNAMES[dest.tunType]}' tunnel type`);
      if (rule === "1") {
        tc++;
        if (tc === 1) {
          tl = k;
          continue;
        }
        fail(
          `The option '${OPTNAMES[k]}' conflicts with the '${OPTNAMES[tl]}' option in the '` +
            `${TUNNAMES[dest.tunType]}' tunnel type`,
        );
      }
    }
  }
}

function commandOf(
  cmd: number,
  st: ParseState,
  daemonState: "master" | "backup",
  timeouts: IpvsTimeouts | undefined,
  readingStdin: boolean,
  program: string,
): IpvsadmCommand {
  const { svc, dest, opts, fmt } = st;
  const service = () => toVirtualService(svc);
  const server = () => toRealServer(dest);
  switch (cmd) {
    case 4: {
      if (
        ((opts.has(O.connection) || opts.has(O.timeout) || opts.has(O.daemon)) &&
          (fmt.stats || fmt.rate || fmt.thresholds)) ||
        ((opts.has(O.timeout) || opts.has(O.daemon)) && fmt.pconn)
      )
        fail("options conflicts in the list command");
      const format: ListFormat = fmt.stats
        ? "stats"
        : fmt.rate
          ? "rate"
          : fmt.thresholds
            ? "thresholds"
            : fmt.pconn
              ? "persistent-conn"
              : fmt.tuninfo
                ? "tun-info"
                : "default";
      const what: ListWhat = opts.has(O.connection)
        ? "connections"
        : opts.has(O["service-address"])
          ? "service"
          : opts.has(O.timeout)
            ? "timeout"
            : opts.has(O.daemon)
              ? "daemon"
              : "all";
      return {
        kind: "list",
        what,
        service: what === "service" ? service() : undefined,
        numeric: fmt.numeric,
        format,
        exact: fmt.exact,
        nosort: fmt.nosort,
      };
    }
    case 11:
      if (readingStdin) return tryhelp(program);
      return { kind: "restore" };
    case 12:
      return { kind: "save", numeric: fmt.numeric };
    case 3:
      return { kind: "flush" };
    case 0:
      return { kind: "add-service", service: service() };
    case 1:
      return { kind: "edit-service", service: service() };
    case 2:
      return { kind: "delete-service", service: service() };
    case 13:
      return { kind: "zero", service: opts.has(O["service-address"]) ? service() : undefined };
    case 5:
      return { kind: "add-server", service: service(), server: server() };
    case 7:
      return { kind: "edit-server", service: service(), server: server() };
    case 6:
      return { kind: "delete-server", service: service(), server: server() };
    case 8:
      return { kind: "set-timeouts", timeouts: timeouts! };
    case 9:
      return { kind: "start-daemon", state: daemonState, daemon: { state: daemonState, ...st.daemon } };
    default:
      return { kind: "stop-daemon", state: daemonState };
  }
}

function toVirtualService(s: Svc): VirtualService {
  const v: VirtualService = { scheduler: s.sched, flags: [], realServers: [] };
  if (s.fwmark) {
    v.fwmark = s.fwmark;
    v.family = s.af === AF_INET6 ? "inet6" : "inet";
  } else {
    v.protocol = s.protocol === IPPROTO_UDP ? "udp" : s.protocol === IPPROTO_SCTP ? "sctp" : "tcp";
    v.addr = s.addr ?? "0.0.0.0";
    v.port = s.port;
  }
  // every bit -b set goes to the kernel, flag-3 with sh too (only -Ln's text leaves it out)
  for (let i = 0; i < SCHED_FLAG_BITS.length; i++)
    if (s.flags & SCHED_FLAG_BITS[i]) v.flags.push(schedFlagName(s.sched || DEF_SCHED, i));
  if (s.flags & SVC_F_ONEPACKET) v.flags.push("ops");
  if (s.flags & SVC_F_PERSISTENT) v.persistent = s.timeout;
  if (s.af === AF_INET6) {
    if (s.netmask !== 128) v.netmask = String(s.netmask);
  } else if (s.netmask !== 0xffffffff) v.netmask = ntoa4(s.netmask);
  if (s.pe) v.pe = s.pe;
  return v;
}

function toRealServer(d: Dest): RealServer {
  const fwd = (["masq", "local", "tunnel", "route"] as const)[d.fwd];
  const r: RealServer = {
    addr: d.addr ?? "0.0.0.0",
    port: d.port,
    weight: d.weight,
    fwd,
    upperThreshold: d.u,
    lowerThreshold: d.l,
  };
  if (fwd === "tunnel") {
    r.tunType = TUNNAMES[d.tunType] as TunnelType;
    if (d.tunPort) r.tunPort = d.tunPort;
    if (d.tunFlags & 1) r.tunFlags = ["csum"];
    else if (d.tunFlags & 2) r.tunFlags = ["remcsum"];
  }
  return r;
}

// ---- restore (-R) -----------------------------------------------------------------------------------
/** config_stream_read: split one line into words (whitespace), dropping a leading "ipvsadm". */
export function restoreLineWords(line: string): string[] {
  const w = line.split(/[ \t\r\n\v\f]+/).filter((x) => x.length);
  if (w[0] === "ipvsadm") w.shift();
  return w;
}

interface RestoreLine {
  line: number;
  text: string;
  command: IpvsadmCommand;
}
interface RestoreProblem {
  line: number;
  text: string;
  message: string;
}
interface RestoreResult {
  commands: RestoreLine[]; // in order, as -R would execute them
  state: DesiredState; // the table they build from empty (what ipvsadm-restore after -C makes)
  problems: RestoreProblem[]; // lines ipvsadm would refuse (parse) or the kernel would (duplicate, missing)
}

/** Parse restore input (ipvsadm -S output or hand-written rules) into ordered commands and a DesiredState.
 * The state starts from `initial` (default: empty) and is built through an index, so the cost is linear in
 * the number of lines (a linear search per line made 20k lines take 16 s). */
export function parseRestore(text: string, opts: ParseOptions = {}, initial?: DesiredState): RestoreResult {
  const commands: RestoreLine[] = [];
  const problems: RestoreProblem[] = [];
  const lines = text.split("\n");
  lines.forEach((raw, i) => {
    const words = restoreLineWords(raw);
    if (!words.length) return;
    try {
      commands.push({ line: i + 1, text: raw, command: parseIpvsadm(words, { ...opts, readingStdin: true }) });
    } catch (e) {
      if (e instanceof IpvsadmError) problems.push({ line: i + 1, text: raw, message: e.message });
      else throw e;
    }
  });
  const editor = new StateEditor(initial ?? { services: [] });
  for (const c of commands) {
    const msg = editor.apply(c.command);
    if (msg) problems.push({ line: c.line, text: c.text, message: msg });
  }
  return { commands, state: editor.state(), problems };
}

// Service identity as the kernel compares it: addresses in canonical form (10.0.0.1 and ::ffff-less forms).
// Parsed commands carry canonical addresses already; the memo keeps a large restore from re-parsing each one.
const canonicalMemo = new Map<string, string>();
function canonical(addr: string): string {
  let c = canonicalMemo.get(addr);
  if (c === undefined) {
    if (canonicalMemo.size >= 65536) canonicalMemo.clear();
    canonicalMemo.set(addr, (c = canonicalAddr(addr)));
  }
  return c;
}
// (no copy of the whole service per command: a restore asks 100k times)
const serviceIdentity = (s: VirtualService) =>
  s.addr && !s.fwmark ? serviceKey({ protocol: s.protocol, addr: canonical(s.addr), port: s.port }) : serviceKey(s);
const serverIdentity = (r: Pick<RealServer, "addr" | "port">) =>
  realServerKey({ addr: canonical(r.addr), port: r.port });

// A state's services by identity, built once per services array (a state is replaced, never edited in place,
// so the array names its contents); the editor that made a state hands its index on (see StateEditor.state).
const identityIndexes = new WeakMap<readonly VirtualService[], Map<string, VirtualService>>();
function identityIndex(services: readonly VirtualService[]): Map<string, VirtualService> {
  let m = identityIndexes.get(services);
  if (!m) {
    m = new Map();
    for (const s of services) m.set(serviceIdentity(s), s);
    identityIndexes.set(services, m);
  }
  return m;
}

// A service the editor changed: its fields, and its real servers in a map once one of them is edited.
interface EditedService {
  service: VirtualService;
  servers: Map<string, RealServer> | null; // null: service.realServers as they are
}

/** A DesiredState being edited (services and each one's real servers in insertion order, as the lists are),
 * in O(1) per command whatever the table's size: the state is read through its identity index, only the
 * services a command touches are copied, and state() shares every other service object with the initial
 * state (what lets the proxy apply only what changed). */
export class StateEditor {
  private base: readonly VirtualService[]; // kept for a state with no change (its array is copied)
  private index: Map<string, VirtualService>;
  // changes over base, by identity: an edited service, or null for a deleted one
  private edits = new Map<string, EditedService | null>();
  // services added (or deleted and added again: they go last, as in a list), in order
  private added = new Map<string, EditedService>();
  private timeouts?: IpvsTimeouts;
  constructor(initial: DesiredState) {
    this.base = initial.services;
    this.index = identityIndex(initial.services);
    if (initial.timeouts) this.timeouts = initial.timeouts;
  }

  private lookup(k: string): EditedService | VirtualService | undefined {
    const a = this.added.get(k);
    if (a) return a;
    const e = this.edits.get(k);
    if (e !== undefined) return e ?? undefined;
    return this.index.get(k);
  }

  // The service's entry for editing, copied out of base the first time.
  private editable(k: string): EditedService | undefined {
    const cur = this.lookup(k);
    if (!cur || "servers" in cur) return cur as EditedService | undefined;
    const e: EditedService = { service: cur, servers: null };
    this.edits.set(k, e);
    return e;
  }

  private static servers(e: EditedService): Map<string, RealServer> {
    if (!e.servers) {
      e.servers = new Map();
      for (const r of e.service.realServers ?? []) e.servers.set(serverIdentity(r), r);
    }
    return e.servers;
  }

  private static serviceOf(e: EditedService): VirtualService {
    return e.servers ? { ...e.service, realServers: [...e.servers.values()] } : e.service;
  }

  state(): DesiredState {
    let services: VirtualService[], index: Map<string, VirtualService>;
    if (this.edits.size === 0 && this.added.size === 0) [services, index] = [[...this.base], this.index];
    else {
      // the index is in the services' order, and gives each one's identity without recomputing it
      [services, index] = [[], new Map()];
      for (const [k, s] of this.index) {
        const e = this.edits.get(k);
        const v = e === undefined ? s : e ? StateEditor.serviceOf(e) : undefined;
        if (v) {
          services.push(v);
          index.set(k, v);
        }
      }
      for (const [k, e] of this.added) {
        const v = StateEditor.serviceOf(e);
        services.push(v);
        index.set(k, v);
      }
    }
    identityIndexes.set(services, index); // the next editor of this state starts from it
    return this.timeouts ? { services, timeouts: this.timeouts } : { services };
  }

  apply(c: IpvsadmCommand): string | undefined {
    switch (c.kind) {
      case "flush":
        this.base = [];
        this.index = new Map();
        this.edits.clear();
        this.added.clear();
        return;
      case "add-service": {
        const k = serviceIdentity(c.service);
        if (this.lookup(k)) return "Service already exists";
        if (this.index.has(k)) this.edits.set(k, null); // deleted before: added again, it goes last
        this.added.set(k, { service: { ...c.service, realServers: [] }, servers: null });
        return;
      }
      case "edit-service": {
        const k = serviceIdentity(c.service);
        const cur = this.editable(k);
        if (!cur) return "No such service";
        const servers = StateEditor.servers(cur);
        cur.service = { ...c.service, realServers: [] };
        cur.servers = servers;
        return;
      }
      case "delete-service": {
        const k = serviceIdentity(c.service);
        if (!this.lookup(k)) return "No such service";
        if (!this.added.delete(k) || this.index.has(k)) this.edits.set(k, null);
        return;
      }
      case "add-server":
      case "edit-server":
      case "delete-server": {
        const cur = this.editable(serviceIdentity(c.service));
        if (!cur) return "Service not defined";
        const servers = StateEditor.servers(cur);
        const rk = serverIdentity(c.server);
        const has = servers.has(rk);
        if (c.kind === "add-server") {
          if (has) return "Destination already exists";
          if (c.server.lowerThreshold > c.server.upperThreshold) return "Numerical result out of range";
          servers.set(rk, c.server);
        } else if (!has) return "No such destination";
        else if (c.kind === "edit-server") {
          if (c.server.lowerThreshold > c.server.upperThreshold) return "Numerical result out of range";
          servers.set(rk, c.server); // an existing key keeps its place in the list
        } else servers.delete(rk);
        return;
      }
      case "set-timeouts": {
        const t = this.timeouts ?? { tcp: 900, tcpfin: 120, udp: 300 };
        this.timeouts = {
          tcp: c.timeouts.tcp || t.tcp,
          tcpfin: c.timeouts.tcpfin || t.tcpfin,
          udp: c.timeouts.udp || t.udp,
        };
        return;
      }
      case "zero":
        return c.service && !this.lookup(serviceIdentity(c.service)) ? "No such service" : undefined;
      default:
        return;
    }
  }
}
