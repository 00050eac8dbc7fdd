// Inside the VM (recorded by test/kernel/record-nodest.ts into test/fixtures/kernel/nodest-observed.json):
// what the kernel does with a new SYN from a client port whose old entry is still in its table, for each
// state the old entry can be in, with its real server alive, quiesced (weight 0) or deleted, under
// expire_nodest_conn and conn_reuse_mode; and what expire_quiescent_template does to a persistent client.
//   node --import tsx test/kernel-vm/nodest.ts [FILTER]      prints "@@RESULT {...}"
// The bed: a client namespace -> this namespace (IPVS, VIP 10.0.0.1:80, masquerading) -> a backend namespace
// with two real servers (10.8.0.2, 10.8.0.3 :8080). The client's resets are dropped by its own firewall, so
// a socket can be abandoned without IPVS hearing of it (its entry stays in the state it reached), and its
// namespace keeps no TIME_WAIT sockets, so the source port can be used again at once.
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { NODEST_CASES, type NodestCase, type NodestObserved } from "../kernel/nodest-cases.ts";
import { result } from "./rules.ts";

const VIP = "10.0.0.1",
  D1 = "10.8.0.2",
  D2 = "10.8.0.3",
  CLIENT = "10.9.0.2";
const NS = { c: "nd-c", b: "nd-b" };
const peerJs = fileURLToPath(new URL("./nodest-peer.cjs", import.meta.url));
const run = (cmd: string, ...a: string[]) =>
  execFileSync(cmd, a, { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
const inNs = (ns: string, cmd: string, ...a: string[]) => run("ip", "netns", "exec", ns, cmd, ...a);
const ipt = () => run("sh", "-c", "command -v iptables-legacy || command -v iptables").trim();
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const sysctl = (name: string, v: number) => writeFileSync(`/proc/sys/net/ipv4/vs/${name}`, String(v));

function bed(): void {
  for (const ns of Object.values(NS)) {
    try {
      run("ip", "netns", "del", ns);
    } catch {
      /* not there */
    }
    run("ip", "netns", "add", ns);
    run("ip", "-n", ns, "link", "set", "lo", "up");
  }
  run("ip", "link", "add", "ndc", "type", "veth", "peer", "name", "eth0", "netns", NS.c);
  run("ip", "link", "add", "ndb", "type", "veth", "peer", "name", "eth0", "netns", NS.b);
  run("ip", "addr", "add", "10.9.0.1/24", "dev", "ndc");
  run("ip", "addr", "add", "10.8.0.1/24", "dev", "ndb");
  for (const d of ["ndc", "ndb"]) run("ip", "link", "set", d, "up");
  run("ip", "-n", NS.c, "addr", "add", `${CLIENT}/24`, "dev", "eth0");
  run("ip", "-n", NS.b, "addr", "add", `${D1}/24`, "dev", "eth0");
  run("ip", "-n", NS.b, "addr", "add", `${D2}/24`, "dev", "eth0");
  run("ip", "-n", NS.c, "link", "set", "eth0", "up");
  run("ip", "-n", NS.b, "link", "set", "eth0", "up");
  run("ip", "-n", NS.c, "route", "add", "default", "via", "10.9.0.1");
  run("ip", "-n", NS.b, "route", "add", "default", "via", "10.8.0.1");
  run("ip", "link", "add", "ndvip", "type", "dummy");
  run("ip", "link", "set", "ndvip", "up");
  run("ip", "addr", "add", `${VIP}/32`, "dev", "ndvip");
  writeFileSync("/proc/sys/net/ipv4/ip_forward", "1");
  inNs(NS.c, "sysctl", "-qw", "net.ipv4.tcp_max_tw_buckets=0");
  inNs(NS.c, ipt(), "-t", "raw", "-A", "OUTPUT", "-p", "tcp", "--tcp-flags", "RST", "RST", "-j", "DROP");
}

// A peer process in a namespace, spoken to in JSON lines.
class Peer {
  private p: ChildProcess;
  private waiting = new Map<number, (o: any) => void>();
  private next = 1;
  ready: Promise<void>;
  constructor(ns: string, args: string[]) {
    this.p = spawn("ip", ["netns", "exec", ns, process.execPath, peerJs, ...args], {
      stdio: ["pipe", "pipe", "inherit"],
    });
    let onReady: () => void;
    this.ready = new Promise((r) => (onReady = r));
    createInterface({ input: this.p.stdout! }).on("line", (l) => {
      const m = JSON.parse(l);
      if (m.ready) onReady();
      else this.waiting.get(m.id)?.(m);
    });
  }
  call(op: string, o: Record<string, unknown> = {}): Promise<any> {
    const id = this.next++;
    return new Promise((res) => {
      this.waiting.set(id, res);
      this.p.stdin!.write(`${JSON.stringify({ id, op, ...o })}\n`);
    });
  }
  kill() {
    this.p.kill();
  }
}

const hexPort = (p: number) => ` ${p.toString(16).toUpperCase().padStart(4, "0")} `;
const ipOf = (hex: string) => {
  const n = parseInt(hex, 16);
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join(".");
};
// The entries of client port `cport` (templates: cport 0, asked for with cport 0 and the client's address)
function entries(cport: number): { dest: string; state: string }[] {
  const out: { dest: string; state: string }[] = [];
  for (const l of readFileSync("/proc/net/ip_vs_conn", "utf8").split("\n").slice(1)) {
    if (!l.includes(hexPort(cport))) continue;
    const t = l.trim().split(/\s+/);
    if (t.length < 9 || parseInt(t[2], 16) !== cport || ipOf(t[1]) !== CLIENT) continue;
    out.push({ dest: ipOf(t[5]), state: t[7] });
  }
  return out;
}

// Packets IPVS forwarded to each real server still in the service (a deleted one is not listed)
function inPkts(): Map<string, number> {
  const m = new Map<string, number>();
  for (const l of run("ipvsadm", "-Ln", "--stats", "--exact", "-t", `${VIP}:80`).split("\n")) {
    const t = l.trim().split(/\s+/);
    if (t[0] === "->" && /^\d+\.\d+\.\d+\.\d+:\d+$/.test(t[1])) m.set(t[1].split(":")[0], Number(t[3]));
  }
  return m;
}

function service(persistent: boolean): void {
  run("ipvsadm", "-C");
  const p = persistent ? ["-p", "60"] : [];
  run("ipvsadm", "-A", "-t", `${VIP}:80`, "-s", "rr", ...p);
  run("ipvsadm", "-a", "-t", `${VIP}:80`, "-r", `${D1}:8080`, "-m", "-w", "1");
  run("ipvsadm", "-a", "-t", `${VIP}:80`, "-r", `${D2}:8080`, "-m", "-w", "1");
}

function condition(c: NodestCase["dest"], dest: string): void {
  if (c === "quiesced") run("ipvsadm", "-e", "-t", `${VIP}:80`, "-r", `${dest}:8080`, "-m", "-w", "0");
  else if (c === "deleted") run("ipvsadm", "-d", "-t", `${VIP}:80`, "-r", `${dest}:8080`);
}

// Brings the old connection from `port` to the case's state; returns the real server it went to.
async function oldConnection(client: Peer, k: NodestCase, port: number): Promise<string | undefined> {
  if (k.state === "SYN_RECV") {
    // the backends drop the SYN: IPVS keeps the entry in SYN_RECV (60 s)
    const rule = ["-t", "raw", "-I", "PREROUTING", "-p", "tcp", "--syn", "-j", "DROP"];
    inNs(NS.b, ipt(), ...rule);
    await client.call("open", { port, ms: 300 });
    inNs(NS.b, ipt(), ...rule.map((x) => (x === "-I" ? "-D" : x)));
    return entries(port)[0]?.dest;
  }
  const o = await client.call("open", { port, ms: 3000 });
  if (!o.ok) return undefined;
  // the backend's FIN first (FIN_WAIT), the client's (CLOSE_WAIT), both (TIME_WAIT), or the backend's reset
  if (k.state === "FIN_WAIT" || k.state === "TIME_WAIT") await client.call("send", { port, byte: "f" });
  if (k.state === "TIME_WAIT") await sleep(100);
  if (k.state === "CLOSE_WAIT" || k.state === "TIME_WAIT") await client.call("end", { port });
  if (k.state === "CLOSE") await client.call("send", { port, byte: "r" });
  await sleep(150);
  await client.call("abandon", { port });
  await sleep(50);
  return o.dest;
}

async function runCase(client: Peer, k: NodestCase, port: number): Promise<NodestObserved> {
  sysctl("expire_nodest_conn", k.expireNodestConn);
  sysctl("conn_reuse_mode", k.connReuseMode);
  sysctl("expire_quiescent_template", k.expireQuiescentTemplate);
  service(k.persistent);
  const dest = await oldConnection(client, k, port);
  const old = entries(port);
  if (dest) condition(k.dest, dest);
  await sleep(300); // expire_nodest_conn's flush is queued work: a jiffy later, give it time under emulation
  const afterChange = entries(port);
  // a persistent client comes back from another port; the others from the same one
  const again = k.persistent ? port + 1 : port;
  const before = inPkts();
  const t = await client.call("open", { port: again, ms: 2500 });
  const after = inPkts();
  const afterSyn = entries(again);
  const grew = (a: string) => (after.get(a) ?? 0) > (before.get(a) ?? 0);
  const other = dest === D1 ? D2 : D1;
  // where IPVS sent the new SYN, from the real servers' packet counters (an answer alone does not say: a SYN
  // sent to the old real server on the old entry meets the old socket there and is not answered)
  const sentTo = grew(other) ? "other" : dest && grew(dest) ? "old" : "none";
  await client.call("abandon", { port: again });
  return {
    name: k.name,
    oldDest: dest ?? null,
    oldState: old.find((e) => e.dest === dest)?.state ?? null,
    afterChange: afterChange.map((e) => e.state),
    sentTo,
    answered: t.ok ? (t.dest === dest ? "old" : "other") : "none",
    ms: t.ms,
    afterSyn: afterSyn.map((e) => `${e.dest === dest ? "old" : "other"} ${e.state}`).sort(),
  };
}

async function main() {
  const filter = new RegExp(process.argv[2] ?? "");
  bed();
  const backend = new Peer(NS.b, ["backend", "8080"]);
  const client = new Peer(NS.c, ["client", VIP, "80", CLIENT]);
  await Promise.all([backend.ready, client.ready]);
  const observed: NodestObserved[] = [];
  let port = 20000;
  for (const k of NODEST_CASES) {
    port += 2;
    if (!filter.test(k.name)) continue;
    const o = await runCase(client, k, port);
    observed.push(o);
    process.stdout.write(`@@STEP ${JSON.stringify(o)}\n`);
  }
  backend.kill();
  client.kill();
  run("ipvsadm", "-C");
  result({ kernel: run("uname", "-r").trim(), observed });
  process.exit(0);
}

main().catch((e) => {
  result({ fatal: String(e?.stack ?? e) });
  process.exit(1);
});
