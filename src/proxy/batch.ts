// A batch of ipvsadm's table-changing commands applied to a desired state, as the kernel would refuse them,
// and the proxy's own checks of the state that results. No forwarding, no core: the control socket's batch
// worker (batch-worker.ts) runs this too, off the main thread.
import type { DesiredState, VirtualService } from "../model/types.ts";
import { STATE_COMMANDS, type StateCommand, StateEditor } from "../model/ipvsadm.ts";
import { type Problem, loopProblems, nonUnicast } from "../model/validate.ts";
import { canonicalAddr } from "../model/inet.ts";
import { Slicer } from "./slice.ts";

export type { StateCommand };
export { STATE_COMMANDS };

/** A command of a batch the proxy refused; `step` is its index in the batch (nothing of the batch applied). */
export class StepError extends Error {
  constructor(
    readonly step: number,
    message: string,
  ) {
    super(message);
    this.name = "StepError";
  }
}

// What the proxy cannot do, whatever the kernel would take: packet mode serves port-0 (all ports) and fwmark
// services and SCTP, socket mode none of them.
function proxyRefusal(c: StateCommand, mode: ProxyMode): string | undefined {
  if (c.kind === "add-service") {
    const s = c.service;
    if (s.fwmark && mode === "socket")
      return (
        "fwmark services work in packet mode (--mode packet) and in the kernel's IPVS ('wasmvs sync', or wasmvs " +
        "without --target proxy): socket mode listens on address:port"
      );
    if (mode === "socket" && (!s.addr || !s.port))
      return (
        "port 0 (all ports) services work in packet mode (--mode packet) and in the kernel's IPVS: socket mode " +
        "listens on one port per service"
      );
    if (mode === "socket" && s.protocol === "sctp") return socketSctpRefusal;
  }
  if ((c.kind === "add-server" || c.kind === "edit-server") && c.server.fwd !== "masq" && c.server.fwd !== "fullnat") {
    const flag = c.server.fwd === "route" ? "-g " : c.server.fwd === "tunnel" ? "-i " : "";
    return (
      `forwarding method ${flag}'${c.server.fwd}' works only in the kernel's IPVS ('wasmvs sync', or wasmvs ` +
      "without --target proxy): the proxy, in socket and in packet mode, forwards by NAT (-m)"
    );
  }
  return undefined;
}

export type ProxyMode = "socket" | "packet";
// Why socket mode has no SCTP: Node has no SCTP sockets, and a kernel may have no sctp module either.
const socketSctpRefusal =
  "SCTP services work in packet mode (--mode packet) and in the kernel's IPVS ('wasmvs sync'): socket mode " +
  "has no SCTP sockets (Node has none, and one-to-one SCTP sockets need the kernel's sctp module)";

// One command on the editor, as the kernel would refuse it (ipvsadm's messages): throws StepError(step).
function applyStep(editor: StateEditor, c: StateCommand, step: number, mode: ProxyMode = "socket"): void {
  // -m is the proxy's NAT (Tables.fwd); a real server given as full-NAT (by a config-like caller) keeps it
  const nat = (f: string) => (f === "fullnat" ? ("fullnat" as const) : ("masq" as const));
  const cmd =
    c.kind === "add-server" || c.kind === "edit-server" ? { ...c, server: { ...c.server, fwd: nat(c.server.fwd) } } : c;
  let why = proxyRefusal(c, mode) ?? editor.apply(cmd);
  // a service given with its real servers (config-like callers) adds them too
  if (!why && c.kind === "add-service")
    for (const r of c.service.realServers ?? [])
      why ??= editor.apply({ kind: "add-server", service: c.service, server: { ...r, fwd: nat(r.fwd) } });
  if (why) throw new StepError(step, why);
}

/** Applies commands to a desired state in O(1) each, as the kernel would refuse them (ipvsadm's messages);
 * throws StepError at the first refusal, leaving `d` as it was. */
export function applyCommands(d: DesiredState, cmds: readonly StateCommand[]): void {
  const editor = new StateEditor(d);
  cmds.forEach((c, i) => applyStep(editor, c, i));
  const next = editor.state();
  d.services = next.services;
  if (next.timeouts) d.timeouts = next.timeouts;
}

/** A batch's next state, built beside `base` (which is not changed; the services the commands leave alone
 * are shared with it) as its commands come: a large restore arrives in parts, and applying each part when it
 * comes lets the part's parsed objects die young, where keeping every command until the batch's end kept
 * 100k command objects alive through dozens of young-generation collections, each copying them. */
export class NextState {
  private readonly editor: StateEditor;
  /** commands applied so far (the next one's step in the batch) */
  count = 0;
  constructor(
    readonly base: DesiredState,
    readonly mode: ProxyMode = "socket",
  ) {
    this.editor = new StateEditor(base);
  }

  /** Applies commands in slices that yield to the event loop; throws StepError (its index in the whole batch)
   * at the first refusal, after which the batch is unusable. */
  async add(cmds: readonly StateCommand[], slicer = new Slicer()): Promise<void> {
    for (let i = 0; i < cmds.length; i++) {
      applyStep(this.editor, cmds[i], this.count++, this.mode);
      await slicer.pause();
    }
  }

  state(): DesiredState {
    const next = this.editor.state();
    const timeouts = next.timeouts ?? this.base.timeouts;
    return timeouts ? { services: next.services, timeouts } : { services: next.services };
  }
}

/** The state after `cmds`, built beside `d` (see NextState), yielding to the event loop between slices
 * (the control socket's changes). Throws StepError at the first refusal. */
export async function nextState(
  d: DesiredState,
  cmds: readonly StateCommand[],
  slicer = new Slicer(),
  mode: ProxyMode = "socket",
): Promise<DesiredState> {
  const next = new NextState(d, mode);
  await next.add(cmds, slicer);
  return next.state();
}

/** What the proxy cannot serve though the kernel would take it: a virtual address that is not unicast
 * (socket mode would listen on every address for 0.0.0.0 or ::), a real server that is not unicast (the
 * kernel refuses those too) and real servers that lead back into the proxy. */
export function proxyStateProblems(d: DesiredState): Problem[] {
  const p: Problem[] = [];
  d.services.forEach((s, i) => p.push(...addressProblems(s, i)));
  return [...p, ...loopProblems(d.services)];
}

function addressProblems(s: VirtualService, i: number): Problem[] {
  const p: Problem[] = [];
  const why = s.addr ? nonUnicast(s.addr) : undefined;
  if (why) p.push({ path: `services[${i}].addr`, message: `${why}: a virtual service needs a unicast address` });
  s.realServers.forEach((r, j) => {
    const bad = nonUnicast(r.addr);
    if (bad) p.push({ path: `services[${i}].realServers[${j}].addr`, message: bad });
  });
  return p;
}

/** proxyStateProblems in slices. A loop needs a real server that is some virtual service: the whole-table
 * search for loops runs only when one is (rare), so a large table is checked in slices. */
export async function proxyStateProblemsInSlices(d: DesiredState, slicer = new Slicer()): Promise<Problem[]> {
  const p: Problem[] = [];
  const vips = new Set<string>();
  const vipAddrs = new Set<string>();
  // each distinct address parsed once: a 100k-line restore names a few thousand addresses 100k times, and
  // parsing each (and a key string per real server) was a tenth of the restore's young-generation garbage
  const addrs = new Map<string, { canon: string; bad: string | undefined }>();
  const look = (addr: string) => {
    let e = addrs.get(addr);
    if (!e) addrs.set(addr, (e = { canon: canonicalAddr(addr), bad: nonUnicast(addr) }));
    return e;
  };
  for (let i = 0; i < d.services.length; i++) {
    const s = d.services[i];
    const why = s.addr ? look(s.addr).bad : undefined;
    if (why) p.push({ path: `services[${i}].addr`, message: `${why}: a virtual service needs a unicast address` });
    for (let j = 0; j < s.realServers.length; j++) {
      const bad = look(s.realServers[j].addr).bad;
      if (bad) p.push({ path: `services[${i}].realServers[${j}].addr`, message: bad });
    }
    if (s.addr && s.port) {
      const canon = look(s.addr).canon;
      vipAddrs.add(canon);
      vips.add(`${s.protocol ?? "tcp"} ${canon} ${s.port}`);
    }
    await slicer.pause();
  }
  for (const s of d.services) {
    for (const r of s.realServers) {
      const canon = look(r.addr).canon;
      if (vipAddrs.has(canon) && vips.has(`${s.protocol ?? "tcp"} ${canon} ${r.port || s.port}`))
        return [...p, ...loopProblems(d.services)];
    }
    await slicer.pause();
  }
  return p;
}
