// A wasmvs director pair on the host, in network namespaces, with keepalived moving the addresses (issue 20,
// docs/proxy.md "A pair with keepalived"). No IPVS is needed: VRRP is keepalived's, forwarding wasmvs's.
//
//   c (client 10.70.0.10) ──┐                          ┌── r (real server 10.71.0.10)
//   a  front 10.70.0.2 ─────┤ br-front    br-back ─────┤── back 10.71.0.2   a
//   b  front 10.70.0.3 ─────┘  (in sw)     (in sw)     └── back 10.71.0.3   b
//
// The active director holds the VIP 10.70.0.100 on "front" and the full-NAT local address 10.71.0.1 on
// "back", as two VRRP addresses of one instance. Names carry the test process's id, so runs do not meet.
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { onExit } from "./on-exit.ts";

export type Director = "a" | "b";
export const ADDR = {
  vip: "10.70.0.100",
  local: "10.71.0.1",
  client: "10.70.0.10",
  real: "10.71.0.10",
  front: { a: "10.70.0.2", b: "10.70.0.3" },
  back: { a: "10.71.0.2", b: "10.71.0.3" },
} as const;

const ip = (args: string[]) => execFileSync("ip", args, { stdio: ["ignore", "ignore", "pipe"] });
export const inNs = (ns: string, args: string[], input?: string): string =>
  execFileSync("ip", ["netns", "exec", ns, ...args], { encoding: "utf8", input, stdio: ["pipe", "pipe", "pipe"] });

export function keepalivedPair(tag: string) {
  const NS = { sw: `${tag}sw`, c: `${tag}c`, a: `${tag}a`, b: `${tag}b`, r: `${tag}r` };
  const procs: ChildProcess[] = [];
  const teardown = () => {
    for (const p of procs.splice(0)) if (p.exitCode === null) p.kill("SIGKILL");
    for (const ns of Object.values(NS)) {
      try {
        ip(["netns", "del", ns]);
      } catch {
        /* absent */
      }
    }
  };
  onExit(teardown);

  function build(): void {
    teardown();
    for (const ns of Object.values(NS)) {
      ip(["netns", "add", ns]);
      ip(["-n", ns, "link", "set", "lo", "up"]);
    }
    for (const br of ["br-front", "br-back"]) {
      // no snooping: VRRP's and the sync daemons' multicast reach every port
      ip(["-n", NS.sw, "link", "add", br, "type", "bridge", "mcast_snooping", "0", "stp_state", "0"]);
      ip(["-n", NS.sw, "link", "set", br, "up"]);
    }
    const links: [string, string, string, string][] = [
      [NS.c, "eth0", "p-c", "br-front"],
      [NS.a, "front", "p-af", "br-front"],
      [NS.b, "front", "p-bf", "br-front"],
      [NS.a, "back", "p-ab", "br-back"],
      [NS.b, "back", "p-bb", "br-back"],
      [NS.r, "eth0", "p-r", "br-back"],
    ];
    for (const [ns, dev, port, br] of links) {
      ip(["link", "add", dev, "netns", ns, "type", "veth", "peer", "name", port, "netns", NS.sw]);
      ip(["-n", NS.sw, "link", "set", port, "master", br, "up"]);
      ip(["-n", ns, "link", "set", dev, "up"]);
    }
    ip(["-n", NS.c, "addr", "add", `${ADDR.client}/24`, "dev", "eth0"]);
    ip(["-n", NS.r, "addr", "add", `${ADDR.real}/24`, "dev", "eth0"]);
    for (const d of ["a", "b"] as const) {
      ip(["-n", NS[d], "addr", "add", `${ADDR.front[d]}/24`, "dev", "front"]);
      ip(["-n", NS[d], "addr", "add", `${ADDR.back[d]}/24`, "dev", "back"]);
    }
  }

  /** A process in a namespace whose output is kept (log()); killed at teardown. */
  function run(ns: string, argv: string[]): { proc: ChildProcess; log: () => string } {
    const proc = spawn("ip", ["netns", "exec", ns, ...argv], { stdio: ["pipe", "pipe", "pipe"] });
    procs.push(proc);
    let out = "";
    proc.stdout!.on("data", (b) => (out += b));
    proc.stderr!.on("data", (b) => (out += b));
    return { proc, log: () => out };
  }

  /** Whether director d holds the VIP now. */
  const holdsVip = (d: Director) => inNs(NS[d], ["ip", "-4", "addr", "show", "dev", "front"]).includes(ADDR.vip);

  /** Director d dies: its links go down first (no goodbye gets out: keepalived's VRRP child would send a
   * priority 0 advertisement when its parent dies), then its processes (by pid) are killed. */
  function kill(d: Director, pids: number[]): void {
    for (const dev of ["front", "back"]) ip(["-n", NS[d], "link", "set", dev, "down"]);
    for (const pid of pids) {
      try {
        process.kill(pid, "SIGKILL");
      } catch {
        /* gone */
      }
    }
  }

  return { NS, build, teardown, run, holdsVip, kill };
}

/** A line-oriented child (test/kernel-vm/stream-*.cjs): ask() writes a command, resolves with the next JSON line. */
export function asker(proc: ChildProcess) {
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
  return (cmd: string, timeoutMs = 30_000) =>
    new Promise<Record<string, unknown>>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`no answer to '${cmd}' in ${timeoutMs} ms`)), timeoutMs);
      waiters.push((l) => {
        clearTimeout(t);
        try {
          resolve(JSON.parse(l) as Record<string, unknown>);
        } catch {
          reject(new Error(`not JSON: ${l.slice(0, 200)}`));
        }
      });
      if (cmd) proc.stdin!.write(`${cmd}\n`);
    });
}
