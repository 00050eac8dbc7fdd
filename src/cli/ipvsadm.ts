// `wasmvs -A/-E/-D/-C/-a/-e/-d/-L/-l/-Z/-S/-R/--set ...`: ipvsadm 1.31's command line against any
// IpvsTarget (kernel IPVS over netlink, or the userspace proxy). Same flags, same output byte for byte, same
// messages and exit statuses where ipvsadm has them; a rule the validator refuses is refused before anything
// changes, with a message naming the field.
import { readFileSync } from "node:fs";
import type { IpvsTarget, ServiceStatus } from "../model/target.ts";
import type { RealServer, VirtualService } from "../model/types.ts";
import { serviceKey } from "../model/types.ts";
import {
  type IpvsadmCommand,
  IpvsadmError,
  STATE_COMMANDS,
  type StateCommand,
  StateEditor,
  parseIpvsadm,
  restoreLineWords,
} from "../model/ipvsadm.ts";
import { formatConnections, formatList, formatListService, formatSave, formatTimeouts } from "../model/format.ts";
import { type NameResolver, filesResolver, numericResolver } from "../model/names.ts";
import { type Problem, formatProblems, validateRealServer, validateService } from "../model/validate.ts";
import { canonicalAddr } from "../model/inet.ts";
import { type SyncDaemon, formatDaemons, validateDaemon } from "../model/daemon.ts";

export interface Sink {
  write(s: string): unknown;
}
export interface RunOptions {
  program?: string; // in ipvsadm's messages ("Try `wasmvs -h' ..."); default "wasmvs"
  stdin?: () => Promise<string>; // for -R (default: process.stdin)
  resolver?: NameResolver; // names for -L/-S without -n and "host:service" input (default: /etc files)
  version?: string; // for -v
}

export function wasmvsIpvsadmUsage(program = "wasmvs"): string {
  const p = program;
  return `${p}: ipvsadm 1.31's commands, for kernel IPVS or the wasmvs proxy
Usage:
  ${p} -A|E virtual-service [-s scheduler] [-p [timeout]] [-M netmask] [--pe persistence_engine] [-b sched-flags]
  ${p} -D virtual-service
  ${p} -C
  ${p} -R
  ${p} -S [-n]
  ${p} -a|e virtual-service -r server-address [options]
  ${p} -d virtual-service -r server-address
  ${p} -L|l [virtual-service] [options]
  ${p} -Z [virtual-service]
  ${p} --set tcp tcpfin udp
  ${p} --start-daemon {master|backup} [daemon-options]
  ${p} --stop-daemon {master|backup}
  ${p} -h

Commands:
Either long or short options are allowed.
  --add-service     -A        add virtual service with options
  --edit-service    -E        edit virtual service with options
  --delete-service  -D        delete virtual service
  --clear           -C        clear the whole table
  --restore         -R        restore rules from stdin
  --save            -S        save rules to stdout
  --add-server      -a        add real server with options
  --edit-server     -e        edit real server with options
  --delete-server   -d        delete real server
  --list            -L|-l     list the table
  --zero            -Z        zero counters in a service or all services
  --set tcp tcpfin udp        set connection timeout values
  --start-daemon              start connection sync daemon
  --stop-daemon               stop connection sync daemon
  --help            -h        display this help message

virtual-service:
  --tcp-service|-t  service-address   service-address is host[:port]
  --udp-service|-u  service-address   service-address is host[:port]
  --sctp-service    service-address   service-address is host[:port]
  --fwmark-service|-f fwmark          fwmark is an integer greater than zero

Options:
  --ipv6         -6                   fwmark entry uses IPv6
  --scheduler    -s scheduler         one of rr|wrr|lc|wlc|lblc|lblcr|dh|sh|sed|nq|fo|ovf|mh|twos,
                                      the default scheduler is wlc.
  --pe            engine              alternate persistence engine may be sip,
                                      not set by default.
  --persistent   -p [timeout]         persistent service
  --netmask      -M netmask           persistent granularity mask
  --real-server  -r server-address    server-address is host (and port)
  --gatewaying   -g                   gatewaying (direct routing) (default)
  --ipip         -i                   ipip encapsulation (tunneling)
  --masquerading -m                   masquerading (NAT)
  --tun-type      type                one of ipip|gue|gre,
                                      the default tunnel type is ipip.
  --tun-port      port                tunnel destination port
  --tun-nocsum                        tunnel encapsulation without checksum
  --tun-csum                          tunnel encapsulation with checksum
  --tun-remcsum                       tunnel encapsulation with remote checksum
  --weight       -w weight            capacity of real server (0..65535)
  --u-threshold  -x uthreshold        upper threshold of connections
  --l-threshold  -y lthreshold        lower threshold of connections
  --connection   -c                   output of current IPVS connections
  --timeout                           output of timeout (tcp tcpfin udp)
  --daemon                            output of daemon information
  --stats                             output of statistics information
  --rate                              output of rate information
  --exact                             expand numbers (display exact values)
  --thresholds                        output of thresholds information
  --persistent-conn                   output of persistent connection info
  --tun-info                          output of tunnel information
  --nosort                            disable sorting output of service/server entries
  --sort                              does nothing, for backwards compatibility
  --ops          -o                   one-packet scheduling
  --numeric      -n                   numeric output of addresses and ports
  --sched-flags  -b flags             scheduler flags (comma-separated)
Daemon Options:
  --syncid sid                        syncid for connection sync (default=0)
  --sync-maxlen length                max sync message length (default=1472, 1452 over IPv6)
  --mcast-interface interface         multicast interface for connection sync
  --mcast-group address               IPv4/IPv6 group (default=224.0.0.81)
  --mcast-port port                   UDP port (default=8848)
  --mcast-ttl ttl                     Multicast TTL (default=1)

Differences from ipvsadm: names come from /etc/hosts and /etc/services only (no DNS); weights above
65535 and non-contiguous netmasks (-M 24 is 0.0.0.24) are refused; fwmarks that ipvsadm -S prints as
negative numbers are read back; --start-daemon refuses a missing or impossible --mcast-interface name (over
15 bytes, empty) before sending it. -R reads and checks every
line first (syntax, values, and against the current table) and applies nothing if any line is refused; then
the proxy applies the input as one transaction, the kernel line by line (a refusal there stops the restore
and says which lines were applied; ipvsadm goes on past it).
`;
}

// ipvs_strerror: the message libipvs gives for an errno in the context of the failed call
const ERRNO: Record<string, number> = {
  EPERM: 1,
  ENOENT: 2,
  ESRCH: 3,
  ENOMEM: 12,
  EEXIST: 17,
  EINVAL: 22,
  ERANGE: 34,
  EMSGSIZE: 90,
  ENOPROTOOPT: 92,
  EOPNOTSUPP: 95,
  EAFNOSUPPORT: 97,
};
const STRERROR: Record<number, string> = {
  34: "Numerical result out of range",
  16: "Device or resource busy",
  19: "No such device",
  110: "Connection timed out",
};
export function ipvsStrerror(kind: IpvsadmCommand["kind"] | "list", e: unknown): string {
  const any = e as { code?: unknown; errno?: unknown; message?: string };
  let n: number | undefined;
  if (typeof any?.errno === "number") n = Math.abs(any.errno);
  else if (typeof any?.code === "string" && any.code in ERRNO) n = ERRNO[any.code];
  else if (typeof any?.code === "number") n = Math.abs(any.code);
  if (n === undefined) return any?.message ?? String(e);
  const ctx: Record<string, Record<number, string>> = {
    "add-service": { 17: "Service already exists", 2: "Scheduler or persistence engine not found" },
    "edit-service": { 3: "No such service", 2: "Scheduler or persistence engine not found" },
    "delete-service": { 3: "No such service" },
    zero: { 3: "No such service" },
    "add-server": { 3: "Service not defined", 17: "Destination already exists" },
    "edit-server": { 3: "Service not defined", 2: "No such destination" },
    "start-daemon": { 17: "Daemon has already run" },
    "stop-daemon": { 3: "No daemon is running" },
    "delete-server": { 3: "Service not defined", 2: "No such destination" },
    list: { 3: "No such service" },
  };
  const any2: Record<number, string> = {
    1: "Permission denied (you must be root)",
    22: "Invalid operation.  Possibly wrong module version, address not unicast, ...",
    92: "Protocol not available",
    12: "Memory allocation problem",
    95: "Operation not supported with IPv6",
    97: "Operation not supported with specified address family",
    90: "Module is wrong version",
  };
  return ctx[kind]?.[n] ?? any2[n] ?? STRERROR[n] ?? any?.message ?? `errno ${n}`;
}

let defaultResolver: NameResolver | undefined;
function systemResolver(): NameResolver {
  if (!defaultResolver) {
    const read = (f: string) => {
      try {
        return readFileSync(f, "utf8");
      } catch {
        return "";
      }
    };
    defaultResolver = filesResolver(read("/etc/services"), read("/etc/hosts"));
  }
  return defaultResolver;
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString("utf8");
}

function sameService(a: Omit<VirtualService, "realServers">, b: Omit<VirtualService, "realServers">): boolean {
  const norm = (s: Omit<VirtualService, "realServers">) =>
    serviceKey({ ...s, addr: s.addr ? canonicalAddr(s.addr) : s.addr });
  return norm(a) === norm(b);
}

/** Run one ipvsadm command line against a target; returns ipvsadm's exit status. */
export async function runIpvsadm(
  argv: string[],
  target: IpvsTarget,
  out: Sink,
  err: Sink,
  opts: RunOptions = {},
): Promise<number> {
  const o = { ...opts, program: opts.program ?? "wasmvs", resolver: opts.resolver ?? systemResolver() };
  const prepared = await prepareIpvsadm(argv, err, o);
  return typeof prepared === "number" ? prepared : runPrepared(prepared, target, out, err, o);
}

type Resolved = RunOptions & { program: string; resolver: NameResolver };
interface RestoreLine {
  line: number;
  text: string;
  cmd: IpvsadmCommand;
}
/** A command line checked as far as it can be without the target (for -R: every line of the input). */
export interface Prepared {
  cmd: IpvsadmCommand;
  restore?: RestoreLine[];
}

/**
 * Everything that can be refused without the target, before it is opened: the command line (ipvsadm's
 * messages and statuses; with `explain`, a first line naming the word at fault, which ipvsadm does not), the
 * values the validator refuses, and for -R the whole input. Returns the exit status when refused.
 */
export async function prepareIpvsadm(
  argv: string[],
  err: Sink,
  opts: RunOptions & { explain?: boolean } = {},
): Promise<Prepared | number> {
  const o: Resolved = { ...opts, program: opts.program ?? "wasmvs", resolver: opts.resolver ?? systemResolver() };
  if (argv.length === 0) argv = ["-L"]; // ipvsadm with no arguments lists the table (names, not numbers)
  let cmd: IpvsadmCommand;
  try {
    cmd = parseIpvsadm(argv, { program: o.program, resolver: o.resolver, readingStdin: false });
  } catch (e) {
    if (!(e instanceof IpvsadmError)) throw e;
    if (opts.explain && e.detail) err.write(`${o.program}: ${e.detail}\n`);
    err.write(e.text);
    return e.status;
  }
  if (cmd.kind === "add-service" || cmd.kind === "edit-service") {
    if (refuseProblems(validateService(cmd.service, "service"), err, o)) return 2;
  }
  if (cmd.kind === "add-server" || cmd.kind === "edit-server") {
    if (refuseProblems(validateRealServer(cmd.server, cmd.service, "realServer"), err, o)) return 2;
  }
  if (cmd.kind === "start-daemon" && refuseProblems(daemonProblems(cmd.daemon), err, o)) return 2;
  if (cmd.kind !== "restore") return { cmd };
  const lines = checkRestoreInput(await (o.stdin ?? readStdin)(), err, o);
  return typeof lines === "number" ? lines : { cmd, restore: lines };
}

/** Runs a prepared command line against the target. */
export function runPrepared(
  p: Prepared,
  target: IpvsTarget,
  out: Sink,
  err: Sink,
  opts: RunOptions = {},
): Promise<number> {
  const o: Resolved = { ...opts, program: opts.program ?? "wasmvs", resolver: opts.resolver ?? systemResolver() };
  return p.restore ? applyRestore(p.restore, target, out, err, o) : execute(p.cmd, target, out, err, o);
}

// the daemon's fields by the options that set them
const DAEMON_FLAGS: Record<string, string> = {
  "daemon.mcastIfn": "--mcast-interface",
  "daemon.syncid": "--syncid",
  "daemon.syncMaxlen": "--sync-maxlen",
  "daemon.mcastGroup": "--mcast-group",
  "daemon.mcastPort": "--mcast-port",
  "daemon.mcastTtl": "--mcast-ttl",
};
/** What --start-daemon's options leave wrong before anything is sent: ipvsadm checks the numbers; wasmvs
 * also refuses a missing or impossible interface name (ipvsadm sends it, and the kernel says ENODEV). */
function daemonProblems(d: SyncDaemon): Problem[] {
  return validateDaemon(d).map((p) => ({ ...p, path: DAEMON_FLAGS[p.path] ?? p.path }));
}

// Problems the kernel refuses on its own (unknown scheduler, thresholds, a non-unicast real server) are
// left to the target, so the user meets ipvsadm's own message in the kernel's order of checks; the rest
// (which ipvsadm would let through) are refused here before anything changes.
function refuseProblems(all: Problem[], err: Sink, opts: { program: string }): boolean {
  const problems = all.filter((p) => !p.kernel);
  if (!problems.length) return false;
  err.write(`${opts.program}: refused, nothing changed:\n${formatProblems(problems).replace(/^/gm, "  ")}\n`);
  return true;
}

/** -L, -l and their forms: the table, one service, the connections, the timeouts or the sync daemons. */
async function listCommand(
  cmd: Extract<IpvsadmCommand, { kind: "list" }>,
  target: IpvsTarget,
  out: Sink,
  err: Sink,
  resolver: NameResolver,
): Promise<number> {
  const fo = {
    numeric: cmd.numeric,
    format: cmd.format,
    exact: cmd.exact,
    nosort: cmd.nosort,
    resolver,
  };
  try {
    switch (cmd.what) {
      case "connections":
        out.write(formatConnections(await target.connections(), fo));
        return 0;
      case "timeout":
        out.write(formatTimeouts(await target.timeouts()));
        return 0;
      case "daemon":
        // a target without a sync daemon runs none, so ipvsadm would print nothing
        out.write(formatDaemons(target.daemons ? await target.daemons() : []));
        return 0;
      case "service": {
        const all: ServiceStatus[] = await target.services();
        const s = all.find((x) => sameService(x, cmd.service!));
        if (!s) {
          err.write("No such service\n");
          return 1;
        }
        out.write(formatListService(s, fo));
        return 0;
      }
      default: {
        const [info, services] = await Promise.all([target.info(), target.services()]);
        out.write(formatList(info, services, fo));
        return 0;
      }
    }
  } catch (e) {
    err.write(ipvsStrerror("list", e) + "\n");
    return 1;
  }
}

/** Execute a parsed command (what ipvsadm does after parsing). */
export async function execute(
  cmd: IpvsadmCommand,
  target: IpvsTarget,
  out: Sink,
  err: Sink,
  opts: RunOptions & { program: string; resolver: NameResolver },
): Promise<number> {
  const refuse = (all: Problem[]) => (refuseProblems(all, err, opts) ? 2 : 0);
  const kernel = async (f: () => Promise<void>): Promise<number> => {
    try {
      await f();
      return 0;
    } catch (e) {
      err.write(ipvsStrerror(cmd.kind, e) + "\n");
      return 255;
    }
  };
  switch (cmd.kind) {
    case "help":
      out.write(wasmvsIpvsadmUsage(opts.program));
      return 0;
    case "version":
      out.write(
        `${opts.program}${opts.version ? " " + opts.version : ""} (ipvsadm v1.31 commands, target ${target.name})\n`,
      );
      return 0;
    case "start-daemon":
    case "stop-daemon": {
      if (!target.startDaemon || !target.stopDaemon) {
        err.write(`${opts.program}: the ${target.name} target has no connection sync daemon (--${cmd.kind})\n`);
        return 2;
      }
      if (cmd.kind === "stop-daemon") return kernel(() => target.stopDaemon!(cmd.state));
      if (refuse(daemonProblems(cmd.daemon))) return 2;
      return kernel(() => target.startDaemon!(cmd.daemon));
    }
    case "add-service":
    case "edit-service": {
      if (refuse(validateService(cmd.service, "service"))) return 2;
      return kernel(() =>
        cmd.kind === "add-service" ? target.addService(cmd.service) : target.editService(cmd.service),
      );
    }
    case "delete-service":
      return kernel(() => target.deleteService(cmd.service));
    case "flush":
      return kernel(() => target.flush());
    case "zero":
      return kernel(() => target.zero(cmd.service));
    case "add-server":
    case "edit-server": {
      if (refuse(validateRealServer(cmd.server, cmd.service, "realServer"))) return 2;
      return kernel(() =>
        cmd.kind === "add-server"
          ? target.addRealServer(cmd.service, cmd.server)
          : target.editRealServer(cmd.service, cmd.server),
      );
    }
    case "delete-server": {
      const r: Pick<RealServer, "addr" | "port"> = { addr: cmd.server.addr, port: cmd.server.port };
      return kernel(() => target.deleteRealServer(cmd.service, r));
    }
    case "set-timeouts": {
      return kernel(async () => {
        const t = cmd.timeouts;
        // 0 keeps the current value, as the kernel does
        const cur = t.tcp && t.tcpfin && t.udp ? t : await target.timeouts();
        await target.setTimeouts({ tcp: t.tcp || cur.tcp, tcpfin: t.tcpfin || cur.tcpfin, udp: t.udp || cur.udp });
      });
    }
    case "save": {
      try {
        out.write(formatSave(await target.services(), { numeric: cmd.numeric, resolver: opts.resolver }));
        return 0;
      } catch (e) {
        err.write(ipvsStrerror("list", e) + "\n");
        return 1;
      }
    }
    case "list":
      return listCommand(cmd, target, out, err, opts.resolver);
    case "restore": {
      const lines = checkRestoreInput(await (opts.stdin ?? readStdin)(), err, opts);
      return typeof lines === "number" ? lines : applyRestore(lines, target, out, err, opts);
    }
  }
}

const CHANGES = STATE_COMMANDS;
type Change = StateCommand;
/** A target that applies a batch of changes as one transaction (the proxy), with the refused one's index. */
interface Transactional {
  apply(cmds: Change[]): Promise<void>;
}
const transactional = (t: IpvsTarget): t is IpvsTarget & Transactional =>
  typeof (t as Partial<Transactional>).apply === "function";

/** -R: every line is read and checked first (syntax, values, and against the target's current table), and
 * nothing is applied if one is refused; then the proxy applies the changes as one transaction, the kernel line
 * by line, stopping at a refusal and saying which lines were applied. */
function checkRestoreInput(text: string, err: Sink, opts: Resolved): RestoreLine[] | number {
  const lines: RestoreLine[] = [];
  const all = text.split("\n");
  for (let i = 0; i < all.length; i++) {
    const words = restoreLineWords(all[i]);
    if (!words.length) continue;
    try {
      lines.push({
        line: i + 1,
        text: all[i].trim(),
        cmd: parseIpvsadm(words, { program: opts.program, resolver: opts.resolver, readingStdin: true }),
      });
    } catch (e) {
      if (!(e instanceof IpvsadmError)) throw e;
      err.write(
        e.text + `${opts.program}: -R refused at line ${i + 1} (${all[i].trim().slice(0, 200)}): nothing applied\n`,
      );
      return e.status;
    }
  }
  const where = (l: { line: number; text: string }) => `line ${l.line} (${l.text.slice(0, 200)})`;
  const problems: string[] = [];
  for (const l of lines) {
    const c = l.cmd;
    const ps =
      c.kind === "add-service" || c.kind === "edit-service"
        ? validateService(c.service, "service")
        : c.kind === "add-server" || c.kind === "edit-server"
          ? validateRealServer(c.server, c.service, "realServer")
          : c.kind === "start-daemon"
            ? daemonProblems(c.daemon)
            : [];
    for (const p of ps) problems.push(`${where(l)}: ${p.path}: ${p.message}`);
  }
  if (problems.length) {
    err.write(
      `${opts.program}: -R refused, nothing applied:\n${problems
        .slice(0, 50)
        .map((p) => `  ${p}\n`)
        .join("")}` + (problems.length > 50 ? `  and ${problems.length - 50} more\n` : ""),
    );
    return 2;
  }
  return lines;
}

/** -R, once every line is read and checked: against the target's table, then applied. */
async function applyRestore(
  lines: RestoreLine[],
  target: IpvsTarget,
  out: Sink,
  err: Sink,
  opts: Resolved,
): Promise<number> {
  const where = (l: { line: number; text: string }) => `line ${l.line} (${l.text.slice(0, 200)})`;
  const problems: string[] = [];
  // against the current table, as the target would refuse them (exists, not defined, no such destination)
  let current: ServiceStatus[];
  try {
    current = await target.services();
  } catch (e) {
    err.write(ipvsStrerror("list", e) + "\n");
    return 1;
  }
  const editor = new StateEditor({
    services: current.map(({ stats: _s, realServers, ...s }) => ({
      ...s,
      realServers: realServers.map(({ activeConns: _a, inactConns: _i, persistConns: _p, stats: _t, ...r }) => r),
    })),
  });
  for (const l of lines) {
    const why = CHANGES.has(l.cmd.kind) || l.cmd.kind === "zero" ? editor.apply(l.cmd) : undefined;
    if (why) problems.push(`${where(l)}: ${why}`);
  }
  if (problems.length) {
    err.write(
      `${opts.program}: -R refused, nothing applied:\n${problems
        .slice(0, 50)
        .map((p) => `  ${p}\n`)
        .join("")}` + (problems.length > 50 ? `  and ${problems.length - 50} more\n` : ""),
    );
    return 255;
  }
  // apply: runs of changes as one transaction where the target has them; other commands (-L, -Z) in order
  let applied = 0;
  const stopped = (l: { line: number; text: string }, message: string, runApplied: boolean) => {
    err.write(
      `${message}\n${opts.program}: -R stopped at ${where(l)}: ` +
        (applied
          ? `the ${applied} line${applied === 1 ? "" : "s"} before ` +
            `${runApplied ? "it were" : "this batch were"} applied`
          : "nothing was applied") +
        `, the rest not\n`,
    );
    return 255;
  };
  let result = 0;
  for (let i = 0; i < lines.length; ) {
    if (transactional(target) && CHANGES.has(lines[i].cmd.kind)) {
      let j = i;
      while (j < lines.length && CHANGES.has(lines[j].cmd.kind)) j++;
      const run = lines.slice(i, j);
      try {
        await target.apply(run.map((l) => l.cmd as Change));
      } catch (e) {
        const step = (e as { step?: unknown }).step;
        if (typeof step === "number" && run[step])
          return stopped(run[step], ipvsStrerror(run[step].cmd.kind as IpvsadmCommand["kind"], e), false);
        // refused as a whole (the table the lines would make, e.g. a real server looping into the proxy)
        err.write(
          `${(e as Error).message}\n${opts.program}: -R: the ${target.name} refused lines ${run[0].line}-` +
            `${run[run.length - 1].line} as one transaction: ` +
            (applied
              ? `the ${applied} line${applied === 1 ? "" : "s"} before them were applied\n`
              : "nothing was applied\n"),
        );
        return 255;
      }
      applied += run.length;
      i = j;
      continue;
    }
    const l = lines[i++];
    const quiet = { write: () => true };
    const errs: string[] = [];
    result = await execute(
      l.cmd,
      target,
      out,
      {
        write: (x: string) => {
          errs.push(x);
          return quiet.write();
        },
      },
      opts,
    );
    if (result !== 0 && CHANGES.has(l.cmd.kind)) return stopped(l, errs.join("").replace(/\n$/, ""), true);
    for (const x of errs) err.write(x);
    if (CHANGES.has(l.cmd.kind)) applied++;
  }
  return result;
}

export { numericResolver };
