// Network namespaces joined by veth pairs, for the packet-mode tests: made fresh, removed on teardown and
// at exit. IPv6 DAD is off on every link so addresses answer at once.
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import * as assert from "uvu/assert";
import type { Agent } from "../fixtures/proxy/netns.ts";
import { onExit } from "./on-exit.ts";

const WASMVS = fileURLToPath(new URL("../../bin/wasmvs.js", import.meta.url));

export function ip(args: string[]): void {
  execFileSync("ip", args, { stdio: ["ignore", "ignore", "pipe"] });
}

/** `ip netns exec NS ...`, its stdout as text. */
export function nsx(ns: string, args: string[], input?: string): string {
  return execFileSync("ip", ["netns", "exec", ns, ...args], {
    input,
    encoding: "utf8",
    stdio: ["pipe", "pipe", "pipe"],
  });
}

/** Adds address a (with its prefix; IPv6 without duplicate address detection) to dev in namespace ns. */
export function addrAdd(ns: string, a: string, dev: string): void {
  const v6 = a.includes(":");
  ip(["-n", ns, ...(v6 ? ["-6"] : []), "addr", "add", a, "dev", dev, ...(v6 ? ["nodad"] : [])]);
}

/** The names of the packet tests' usual topology, unique to this process under a short tag: a client, the
 * balancer and two real servers' namespaces, and the veth ends client-balancer and balancer-each server. */
export function twoBackendNames(tag: string) {
  const n = (s: string) => `${tag}${(process.pid % 46656).toString(36)}${s}`;
  return {
    NS: { client: n("c"), lb: n("l"), be1: n("b1"), be2: n("b2") },
    IF: { cl: n("cl"), lc: n("lc"), l1: n("l1"), b1: n("b1"), l2: n("l2"), b2: n("b2") },
  };
}

/** SIGTERM to a packet-mode proxy, and its exit code once it has stopped; SIGKILL and an error if it has not
 * within ms. A proxy already gone gives its exit code. */
export async function stopPacketProxy(p: ChildProcess, ms: number): Promise<number | null> {
  if (p.exitCode !== null) return p.exitCode;
  const gone = new Promise<number | null>((r) => p.once("exit", (code) => r(code)));
  p.kill("SIGTERM");
  const code = await Promise.race([gone, new Promise<"timeout">((r) => setTimeout(() => r("timeout"), ms))]);
  if (code === "timeout") {
    p.kill("SIGKILL");
    throw new Error("the packet-mode proxy did not stop on SIGTERM");
  }
  return code;
}

/** The namespaces in `names`, each link a veth pair [namespace A, device A, namespace B, device B], with an
 * optional fifth element: how many receive and transmit queues each end has (1 by default). */
export function vethNet(names: readonly string[]) {
  let up = false;
  const teardown = () => {
    for (const ns of names) {
      try {
        ip(["netns", "del", ns]);
      } catch {
        /* absent */
      }
    }
    up = false;
  };
  onExit(() => {
    if (up) teardown();
  });
  const setup = (pairs: ([string, string, string, string] | [string, string, string, string, number])[]) => {
    teardown();
    for (const ns of names) {
      ip(["netns", "add", ns]);
      ip(["-n", ns, "link", "set", "lo", "up"]);
    }
    up = true;
    for (const [na, a, nb, b, queues = 1] of pairs) {
      const q = queues > 1 ? ["numtxqueues", String(queues), "numrxqueues", String(queues)] : [];
      ip(["link", "add", a, "netns", na, ...q, "type", "veth", "peer", "name", b, "netns", nb, ...q]);
      for (const [ns, dev] of [
        [na, a],
        [nb, b],
      ]) {
        nsx(ns, ["sysctl", "-q", "-w", `net.ipv6.conf.${dev}.accept_dad=0`]);
        ip(["-n", ns, "link", "set", dev, "up"]);
      }
    }
  };
  return { setup, teardown };
}

/**
 * `wasmvs proxy -c CONFIG --mode packet ARGS...` in namespace `ns`, ready once it has made its control socket.
 * If it exits first or takes over 15 s, it is killed and the error carries what it printed.
 */
export async function spawnPacketProxy(
  ns: string,
  o: { config: string; control: string; args: string[]; env?: NodeJS.ProcessEnv },
): Promise<ChildProcess> {
  const argv = ["netns", "exec", ns, process.execPath, WASMVS, "proxy", "-c", o.config, "--mode", "packet", ...o.args];
  const child = spawn("ip", argv, { stdio: ["ignore", "pipe", "pipe"], env: o.env });
  let log = "";
  child.stdout?.on("data", (d) => (log += d));
  child.stderr?.on("data", (d) => (log += d));
  const end = Date.now() + 15000;
  while (!existsSync(o.control)) {
    const why =
      child.exitCode !== null
        ? `exited (${child.exitCode})`
        : Date.now() > end
          ? "did not open its control socket"
          : "";
    if (why) {
      child.kill("SIGKILL");
      throw new Error(`the packet-mode proxy ${why}: ${log}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return child;
}

/** Fragmented datagrams from many flows, from namespace ns's addresses in `srcs` to vip:53 (one Python socket per
 * flow, `per` datagrams of 4,000 bytes each, every one numbered), and what came back: echoes (from test/fixtures/
 * proxy/agent.ts's UDP backends) that held their datagram whole, echoes that did not, the backends that answered
 * and the flows that saw more than one. */
export function bigDatagrams(ns: string, srcs: string[], vip: string, flows: number, per: number) {
  const py = `import socket, select, json, time
srcs, vip, flows, per = ${JSON.stringify(srcs)}, "${vip}", ${flows}, ${per}
fam = socket.AF_INET6 if ":" in vip else socket.AF_INET
socks = []
for a in srcs:
    for f in range(flows):
        s = socket.socket(fam, socket.SOCK_DGRAM)
        s.bind((a, 0))
        s.setblocking(False)
        socks.append(s)
def msg(i, j): return (("%d.%d." % (i, j)).encode() + b"0123456789abcdef" * 250)[:4000]
for j in range(per):
    for i, s in enumerate(socks):
        s.sendto(msg(i, j), (vip, 53))
        time.sleep(0.002)  # paced: the backend's one Node socket would overflow its buffer on a burst
ok, bad, seen, backends, sticky = 0, [], set(), {}, {}
end = time.time() + 4
while len(seen) + len(bad) < len(socks) * per and time.time() < end:
    r, _, _ = select.select(socks, [], [], 0.2)
    for s in r:
        i = socks.index(s)
        d = s.recv(65536)
        parts = d.split(b" ", 2)
        if len(parts) < 3: bad.append(len(d)); continue
        head = parts[2].split(b".")
        j = int(head[1]) if len(head) > 2 and head[1].isdigit() else -1
        if parts[2] != msg(i, j) or (i, j) in seen: bad.append(len(d)); continue
        seen.add((i, j))
        b = parts[1].decode()
        backends[b] = backends.get(b, 0) + 1
        sticky.setdefault(i, set()).add(b)
print(json.dumps({"sent": len(socks) * per, "ok": len(seen), "bad": bad, "backends": backends,
                  "unsticky": sum(1 for v in sticky.values() if len(v) > 1)}))
`;
  return JSON.parse(nsx(ns, ["python3", "-c", py])) as {
    sent: number;
    ok: number;
    bad: number[];
    backends: Record<string, number>;
    unsticky: number;
  };
}

/** Echoes `bytes` over each of the client's open connections (the agent's bulkEcho) and asserts every echo came
 * back intact; `what` names them in a failure ("IPv6 connection 7: ..."). */
export async function echoIntact(client: Agent, conns: { h: number }[], bytes: number, what = "connection") {
  const res: { h: number; ok: boolean }[] = await client.call(
    "bulkEcho",
    conns.map((c) => c.h),
    bytes,
  );
  for (const b of res) assert.ok(b.ok, `${what} ${b.h}: echo not intact: ${JSON.stringify(b)}`);
}

/** Opens n connections at once from the client to vip:port (the agent's openPar), asserts every one connected
 * (`what` names a failure: "IPv6 connect failed: ..."), and returns them. */
export async function openAll(client: Agent, vip: string, port: number, n: number, what = "connect") {
  const conns: { h: number; lport: number; backend: string }[] = await client.call("openPar", vip, port, n);
  for (const c of conns) assert.ok("h" in c, `${what} failed: ${JSON.stringify(c)}`);
  return conns;
}
