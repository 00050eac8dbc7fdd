// A director pair inside the kernel VM, for failover tests (issue 20). Runs INSIDE the VM (root, its own
// network); the host side is test/helpers/director-pair-host.ts (pairVmEnv, the VM's time limit). The namespaces:
//
//   dp-cli (client 10.70.0.10) ─┐                         ┌─ dp-rs (real servers 10.71.0.10..)
//   dp-a   front 10.70.0.2 ─────┤ br-front   br-back ─────┤── back 10.71.0.2   dp-a
//   dp-b   front 10.70.0.3 ─────┘  (in dp-sw) (in dp-sw) └── back 10.71.0.3   dp-b
//
// Two L2 segments, each a bridge in the switch namespace dp-sw (multicast snooping off, so the sync
// daemon's multicast reaches every port). The active director holds the VIP 10.70.0.100 on "front" and
// the real servers' gateway 10.71.0.1 on "back" (as keepalived's two VRRP addresses would), so masquerading
// (NAT) works through either director. Each director's interfaces are named "front" and "back" in its own
// namespace, so `--mcast-interface front` means the same on both.
import { type ChildProcess, execFileSync, spawn, spawnSync } from "node:child_process";
import { onExit } from "./on-exit.ts";

export const NS = { sw: "dp-sw", client: "dp-cli", a: "dp-a", b: "dp-b", real: "dp-rs" } as const;
export type Director = "a" | "b";

export interface DirectorPair {
  ns: typeof NS;
  vip: string; // the virtual address clients use (on the active director's "front")
  gateway: string; // the real servers' default route (on the active director's "back")
  client: string;
  front: Record<Director, string>; // each director's own front address
  back: Record<Director, string>; // each director's own back address
  reals: string[]; // real server addresses (in dp-rs)
  active: Director; // who holds the VIP and the gateway now
}

/** Runs a command in a namespace; throws with its stderr when it fails. */
export function nsRun(ns: string, cmd: string[], input?: string): string {
  const r = spawnSync("ip", ["netns", "exec", ns, ...cmd], { encoding: "utf8", input, timeout: 120_000 });
  if (r.status !== 0)
    throw new Error(`in ${ns}: ${cmd.join(" ")}: exit ${r.status ?? r.signal}: ${(r.stderr || r.stdout).trim()}`);
  return r.stdout;
}
/** The same, returning the status and output instead of throwing. */
export function nsTry(ns: string, cmd: string[], input?: string): { code: number; out: string; err: string } {
  const r = spawnSync("ip", ["netns", "exec", ns, ...cmd], { encoding: "utf8", input, timeout: 120_000 });
  return { code: r.status ?? 125, out: r.stdout ?? "", err: r.stderr ?? "" };
}
/** A shell line in a namespace (bash -c). */
export const nsSh = (ns: string, line: string): string => nsRun(ns, ["bash", "-c", line]);

const ip = (args: string[]) => execFileSync("ip", args, { stdio: ["ignore", "ignore", "pipe"] });

/** Removes every namespace of the bed (absent ones are fine). */
export function teardownPair(): void {
  for (const ns of Object.values(NS)) spawnSync("ip", ["netns", "del", ns], { stdio: "ignore" });
}

/**
 * Builds the bed from scratch (an old one is removed first): the namespaces, both segments, addresses,
 * forwarding on the directors, the VIP and gateway on A. `reals`: how many real-server addresses dp-rs has.
 */
export function buildPair(o: { reals?: number } = {}): DirectorPair {
  teardownPair();
  onExit(teardownPair);
  for (const ns of Object.values(NS)) {
    ip(["netns", "add", ns]);
    ip(["-n", ns, "link", "set", "lo", "up"]);
  }
  for (const br of ["br-front", "br-back"]) {
    ip(["-n", NS.sw, "link", "add", br, "type", "bridge", "mcast_snooping", "0", "stp_state", "0"]);
    ip(["-n", NS.sw, "link", "set", br, "up"]);
  }
  // [namespace, device there, switch port, bridge]
  const links: [string, string, string, string][] = [
    [NS.client, "eth0", "p-cli", "br-front"],
    [NS.a, "front", "p-af", "br-front"],
    [NS.b, "front", "p-bf", "br-front"],
    [NS.a, "back", "p-ab", "br-back"],
    [NS.b, "back", "p-bb", "br-back"],
    [NS.real, "eth0", "p-rs", "br-back"],
  ];
  for (const [ns, dev, port, br] of links) {
    ip(["link", "add", dev, "netns", ns, "type", "veth", "peer", "name", port, "netns", NS.sw]);
    ip(["-n", NS.sw, "link", "set", port, "master", br, "up"]);
    ip(["-n", ns, "link", "set", dev, "multicast", "on", "up"]);
  }
  const pair: DirectorPair = {
    ns: NS,
    vip: "10.70.0.100",
    gateway: "10.71.0.1",
    client: "10.70.0.10",
    front: { a: "10.70.0.2", b: "10.70.0.3" },
    back: { a: "10.71.0.2", b: "10.71.0.3" },
    reals: Array.from({ length: Math.max(1, o.reals ?? 1) }, (_, i) => `10.71.0.${10 + i}`),
    active: "a",
  };
  ip(["-n", NS.client, "addr", "add", `${pair.client}/24`, "dev", "eth0"]);
  for (const d of ["a", "b"] as const) {
    const ns = NS[d];
    ip(["-n", ns, "addr", "add", `${pair.front[d]}/24`, "dev", "front"]);
    ip(["-n", ns, "addr", "add", `${pair.back[d]}/24`, "dev", "back"]);
    nsRun(ns, ["sysctl", "-q", "-w", "net.ipv4.ip_forward=1"]);
  }
  for (const r of pair.reals) ip(["-n", NS.real, "addr", "add", `${r}/24`, "dev", "eth0"]);
  ip(["-n", NS.real, "route", "add", "default", "via", pair.gateway]);
  holdAddresses(pair, "a");
  return pair;
}

/** Puts the VIP and the gateway on director `d` and tells the neighbours (gratuitous ARP, then a flush). */
function holdAddresses(pair: DirectorPair, d: Director): void {
  const ns = NS[d];
  ip(["-n", ns, "addr", "add", `${pair.vip}/24`, "dev", "front"]);
  ip(["-n", ns, "addr", "add", `${pair.gateway}/24`, "dev", "back"]);
  // busybox arping -U: unsolicited ARP, as keepalived sends; the neighbour flush below makes the move
  // certain even where the gratuitous ARP is ignored (a neighbour entry the client does not refresh)
  nsTry(ns, ["arping", "-U", "-c", "1", "-I", "front", pair.vip]);
  nsTry(ns, ["arping", "-U", "-c", "1", "-I", "back", pair.gateway]);
  ip(["-n", NS.client, "neigh", "flush", "all"]);
  ip(["-n", NS.real, "neigh", "flush", "all"]);
  pair.active = d;
}

/**
 * Fails over from the active director to the other: the active one "dies" (both its links go down, so
 * it neither answers nor forwards), and the other takes the VIP and the gateway. Returns the new active.
 */
export function failOver(pair: DirectorPair): Director {
  const from = pair.active,
    to: Director = from === "a" ? "b" : "a";
  for (const dev of ["front", "back"]) ip(["-n", NS[from], "link", "set", dev, "down"]);
  holdAddresses(pair, to);
  return to;
}

/** `ipvsadm ARGS` in a director's namespace. */
export const ipvsadmIn = (d: Director, args: string[]): string => nsRun(NS[d], ["ipvsadm", ...args]);

/** The same masquerading service on both directors: VIP:port, rr, every real server at realPort. */
export function sameServiceOnBoth(pair: DirectorPair, port: number, realPort: number): void {
  for (const d of ["a", "b"] as const) {
    ipvsadmIn(d, ["-A", "-t", `${pair.vip}:${port}`, "-s", "rr"]);
    for (const r of pair.reals) ipvsadmIn(d, ["-a", "-t", `${pair.vip}:${port}`, "-r", `${r}:${realPort}`, "-m"]);
  }
}

/** Lines of `ipvsadm -Lnc` in a director's namespace (its connection table, synced entries included). */
export function connectionsIn(
  d: Director,
): { proto: string; state: string; client: string; virtual: string; dest: string }[] {
  return ipvsadmIn(d, ["-Lnc"])
    .split("\n")
    .slice(2)
    .map((l) => l.trim().split(/\s+/))
    .filter((f) => f.length >= 6)
    .map((f) => ({ proto: f[0], state: f[2], client: f[3], virtual: f[4], dest: f[5] }));
}

const here = new URL(".", import.meta.url).pathname;
export const STREAM_CLIENT = `${here}../kernel-vm/stream-client.cjs`;
export const STREAM_ECHO = `${here}../kernel-vm/stream-echo.cjs`;

/** A line-oriented child in a namespace: ask() writes one command and resolves with the next JSON line. */
export interface Controlled {
  proc: ChildProcess;
  ask(cmd: string, timeoutMs?: number): Promise<Record<string, unknown>>;
  stop(): void;
}
function controlled(ns: string, args: string[]): Controlled {
  const proc = spawn("ip", ["netns", "exec", ns, process.execPath, ...args], { stdio: ["pipe", "pipe", "inherit"] });
  let buf = "";
  const waiters: ((l: string) => void)[] = [];
  proc.stdout!.setEncoding("utf8");
  proc.stdout!.on("data", (d: string) => {
    buf += d;
    let i: number;
    while ((i = buf.indexOf("\n")) >= 0) {
      const l = buf.slice(0, i);
      buf = buf.slice(i + 1);
      waiters.shift()?.(l);
    }
  });
  const ask = (cmd: string, timeoutMs = 60_000) =>
    new Promise<Record<string, unknown>>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`${args[0]}: no answer to '${cmd}' in ${timeoutMs} ms`)), timeoutMs);
      waiters.push((l) => {
        clearTimeout(t);
        try {
          resolve(JSON.parse(l) as Record<string, unknown>);
        } catch {
          reject(new Error(`${args[0]}: not JSON: ${l.slice(0, 200)}`));
        }
      });
      if (cmd) proc.stdin!.write(`${cmd}\n`);
    });
  return { proc, ask, stop: () => proc.kill("SIGKILL") };
}

/** Echo servers in dp-rs on every real address at `port`; resolves once they listen. */
export async function startEchoServers(pair: DirectorPair, port: number): Promise<Controlled> {
  const c = controlled(NS.real, [STREAM_ECHO, String(port), ...pair.reals]);
  await c.ask("", 120_000); // {"ready":true}
  return c;
}

export interface StreamConn {
  id: number;
  local: string; // client address:port
  sent: number;
  recv: number;
  err?: string; // ECONNRESET, a pattern mismatch ("mismatch at N"), "closed"
}
/** N long-lived TCP connections from dp-cli to VIP:port, each streaming `chunk` bytes every `everyMs`. */
export async function startStreams(
  pair: DirectorPair,
  port: number,
  n: number,
  o: { chunk?: number; everyMs?: number } = {},
): Promise<{ status(): Promise<StreamConn[]>; finish(timeoutMs: number): Promise<StreamConn[]>; stop(): void }> {
  const c = controlled(NS.client, [STREAM_CLIENT, pair.vip, String(port), String(n), String(o.chunk ?? 512)]);
  c.proc.stdin!.write(`every ${o.everyMs ?? 50}\n`);
  await c.ask("", 120_000); // {"open":n}
  return {
    status: async () => (await c.ask("status")).conns as StreamConn[],
    // stop writing, wait until every echo is back (or the time is up), report
    finish: async (timeoutMs: number) => {
      const r = (await c.ask(`finish ${timeoutMs}`, timeoutMs + 30_000)).conns as StreamConn[];
      c.stop();
      return r;
    },
    stop: c.stop,
  };
}

/** Polls `fn` until it returns true or `ms` pass; returns whether it did. */
export async function waitFor(fn: () => boolean | Promise<boolean>, ms: number, everyMs = 500): Promise<boolean> {
  const end = Date.now() + ms;
  for (;;) {
    if (await fn()) return true;
    if (Date.now() > end) return false;
    await new Promise((r) => setTimeout(r, everyMs));
  }
}
