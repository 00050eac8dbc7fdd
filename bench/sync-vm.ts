// npm run bench -- sync, its VM half (issue 20): what connection sync costs the kernel per entry, and what
// wasmvs costs on the same entries, in one boot of ../shared/ipvs-vm (Linux 6.1 under qemu TCG: only the
// ratios inside one run mean anything).
//
// Inside the VM, four namespaces: a client (sbc) opens N TCP connections (1 byte each way, then close)
// through a kernel director (sbd: IPVS masq, VIP 10.90.0.100:80) to a real server (sbr). Rounds alternate
// with the director's master daemon on and off. With it on, its datagrams reach this process (the VM's root
// namespace), which keeps them: the entries counted there are the round's. The figures per entry:
//   kernel master thread: the ipvs-m kthread's run time (/proc/PID/schedstat) over the round: taking full
//     buffers off the queue and sendmsg through UDP/IP/veth, and, on this one-CPU VM without
//     CONFIG_IRQ_TIME_ACCOUNTING, the datagram's delivery to the receiving socket (softirq run in the
//     sender's context). Not in it: putting the entry into a buffer, done in the packet path.
//   kernel master, packet path: the VM's busy CPU (/proc/stat) per round with the daemon on, less the
//     thread and this process, against the rounds with it off: the check and the append in the packet path.
//     The connections' own cost is ~100 times larger and varies round to round: a reference, noisy.
//   kernel backup thread: the same datagrams replayed (--passes + 1 times: the first creates every entry,
//     the others update) to a fourth namespace (sbb) whose kernel runs the backup daemon (the same service):
//     the ipvs-b kthread's run time per pass, recvmsg and ip_vs_process_message (decode, look up, create or
//     update, bind to the destination). Not in it: the datagram's receive in softirq (the sender's).
//   wasmvs master send: the same datagrams sent from the director's namespace to this one, once to warm up,
//     then --passes times, two ways: by Node's dgram (one send per message, as src/proxy/sync.ts sent them
//     before the packet addon's sockets) and by the packet addon (sendmmsg of 16 from one memory, as
//     src/proxy/sync.ts sends the core's slots now): the sender's CPU per pass, delivery included, as the
//     kernel's thread; beside it the sender's same timer turns with nothing sent.
//   wasmvs backup: two wasmvs backups (src/proxy/sync.ts's SyncDaemon and the core, a process each), one on
//     Node's dgram socket (a callback, Buffer and copy per datagram), one on the packet addon's (recvmmsg
//     into the core, one core call per wake-up), in sbb beside the kernel's, taking the same replayed
//     datagrams at the same time: each process's CPU per pass (receive, decode, apply; V8 compiles the code
//     during the first), as the kernel's thread. Then an idle pass: the peer started, nothing sent, the same
//     polling (the processes answer stats on stdin every 200 ms): what each pass's figure holds besides the
//     datagrams. --profile: each backup's sampling profile over the update passes (a diagnosis: the
//     profiler's own cost lands in those passes' figures).
//   wasmvs codec alone, in this process, on the same datagrams, after 3 s of warm-up: decode and create into
//     a fresh table, decode only, and the master's emit of every entry of that table into messages (on a
//     fresh core, then again on the same one).
// Prints "@@STEP ..." progress lines and "@@RESULT {json}"; bench/sync.ts boots the VM and reads them.
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import dgram from "node:dgram";
import { readdirSync, readFileSync, writeFileSync } from "node:fs";
import { Session } from "node:inspector";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { performance } from "node:perf_hooks";
import { Core } from "../src/core/index.ts";
import { syncStats } from "../src/core/sync.ts";
import { FLUSH_AGE_MS, SYNC_RX_HOLD_MS, SyncDaemon, type SyncDaemonOptions } from "../src/proxy/sync.ts";
import { silentLogger } from "../src/proxy/log.ts";

const NS = { client: "sbc", director: "sbd", real: "sbr", backup: "sbb" } as const;
const VIP = "10.90.0.100",
  REAL = "10.91.0.10",
  PORT = 80,
  REAL_PORT = 8080;
const GROUP = "224.0.0.81",
  MCAST_PORT = 8848,
  SYNCID = 1;
const CAPTURE_ADDR = "10.92.0.2", // this namespace's end of the director's sync link
  DIRECTOR_SYNC = "10.92.0.1",
  REPLAY_ADDR = "10.93.0.2"; // this namespace's end of the backup's sync link
const peer = fileURLToPath(new URL("./sync-vm-peer.cjs", import.meta.url));
const self = fileURLToPath(import.meta.url);

export interface SyncVmResult {
  kernel: string;
  thp: string; // /sys/kernel/mm/transparent_hugepage/enabled: how a first touch of fresh memory is served
  conns: number;
  master: { entries: number; messages: number; ok: number; failed: number; threadNs: number; otherMs: number }[];
  off: { ok: number; failed: number; otherMs: number }[];
  // pass 0 creates every entry (and is wasmvs's first sight of the code: V8 compiles it then); later passes
  // update. Per wasmvs backup (BACKUPS' names): its process's CPU (µs, every thread), its event loop's busy
  // time (ms of wall time outside the loop's wait: callbacks and the loop's own turns), and the native
  // socket's recvmmsg calls and datagrams
  backup: { pass: number; entries: number; kernelNs: number; rcvbufErrors: number; w: Record<string, Took> }[];
  // the same polling with nothing sent (the peer started, nothing sent), one after each update pass: what a
  // pass's figure holds besides the datagrams; reported beside the passes, never subtracted unlabelled
  idle: { kernelNs: number; w: Record<string, Took> }[];
  // cpuUs: per pass, warmed up; idleUs: the sender's same bursts and timer turns without a send
  send: SendFigures; // Node's dgram, one send per message
  sendNative: SendFigures; // the packet addon's sendmmsg, 16 messages a call
  // the master daemon's own send() on a core's slots (--role=master): cpuUs the send() calls alone, passUs
  // each pass whole (the emit of every entry too), idleUs the same turns with nothing emitted
  sendDaemon?: SendFigures & { passUs: number[]; idleSendUs: number[]; sendProcUs: number[] };
  // ns per entry, one value per sample; emitWarm: the same core's emit again (its message slots touched);
  // *Faults: the process's minor page faults during each
  codec: {
    apply: number[];
    update: number[]; // the same datagrams again on that core: every entry an update
    updateBig: number[]; // updates in a table of the backup process's size
    decode: number[];
    emit: number[];
    emitWarm: number[];
    emitFaults: number[];
    emitWarmFaults: number[];
  };
  profile?: Record<string, { fn: string; selfMs: number }[]>; // --profile: each backup's self time by function
  kernelBackupEntries: number;
  wasmvs: Record<string, Record<string, number>>; // each backup's counters at the end
}
interface Took {
  cpuUs: number; // the process's, every thread
  threadUs: number; // its main thread's alone
  loopMs: number;
  rxCalls: number;
  rxDatagrams: number;
}
// the wasmvs backups taking the same datagrams: Node's dgram (as the daemons were); the addon's socket reading
// at each wake-up; the addon's socket waiting SYNC_RX_HOLD_MS after a burst's first datagram (as the daemons
// are now: src/proxy/sync.ts)
export const BACKUPS = [
  { name: "dgram", io: "dgram", hold: 0 },
  { name: "addon", io: "native", hold: 0 },
  { name: "addon-held", io: "native", hold: SYNC_RX_HOLD_MS },
] as const;
interface SendFigures {
  entries: number;
  messages: number;
  cpuUs: number[];
  idleUs: number[];
  received: number;
}
type BackupIo = "dgram" | "native";

const step = (s: string) => process.stdout.write(`@@STEP ${s}\n`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const run = (cmd: string, args: string[]) => execFileSync(cmd, args, { encoding: "utf8", stdio: "pipe" });
const inNs = (ns: string, args: string[]) => run("ip", ["netns", "exec", ns, ...args]);

function bed(): void {
  for (const ns of Object.values(NS)) {
    run("ip", ["netns", "add", ns]);
    run("ip", ["-n", ns, "link", "set", "lo", "up"]);
  }
  const links: [string, string, string | null, string][] = [
    [NS.client, "eth0", NS.director, "front"],
    [NS.director, "back", NS.real, "eth0"],
    [NS.director, "sync", null, "syncm"],
    [NS.backup, "sync", null, "syncb"],
  ];
  for (const [a, da, b, db] of links) {
    run("ip", ["link", "add", da, "netns", a, "type", "veth", "peer", "name", db, ...(b ? ["netns", b] : [])]);
    run("ip", ["-n", a, "link", "set", da, "up"]);
    run("ip", [...(b ? ["-n", b] : []), "link", "set", db, "up"]);
  }
  const addrs: [string | null, string, string][] = [
    [NS.client, "eth0", "10.90.0.10/24"],
    [NS.director, "front", "10.90.0.1/24"],
    [NS.director, "front", `${VIP}/32`],
    [NS.director, "back", "10.91.0.1/24"],
    [NS.real, "eth0", `${REAL}/24`],
    [NS.director, "sync", `${DIRECTOR_SYNC}/24`],
    [null, "syncm", `${CAPTURE_ADDR}/24`],
    [NS.backup, "sync", "10.93.0.1/24"],
    [null, "syncb", `${REPLAY_ADDR}/24`],
  ];
  for (const [ns, dev, a] of addrs) run("ip", [...(ns ? ["-n", ns] : []), "addr", "add", a, "dev", dev]);
  run("ip", ["-n", NS.real, "route", "add", "default", "via", "10.91.0.1"]);
  inNs(NS.director, ["sysctl", "-q", "-w", "net.ipv4.ip_forward=1"]);
  run("sysctl", ["-q", "-w", "net.core.rmem_max=16777216"]);
  for (const ns of [NS.director, NS.backup]) {
    inNs(ns, ["ipvsadm", "-A", "-t", `${VIP}:${PORT}`, "-s", "rr"]);
    inNs(ns, ["ipvsadm", "-a", "-t", `${VIP}:${PORT}`, "-r", `${REAL}:${REAL_PORT}`, "-m"]);
  }
}

function threadPid(prefix: string): number | undefined {
  for (const d of readdirSync("/proc")) {
    if (!/^\d+$/.test(d)) continue;
    try {
      if (readFileSync(`/proc/${d}/comm`, "utf8").startsWith(prefix)) return Number(d);
    } catch {
      /* gone */
    }
  }
  return undefined;
}
const runtimeNs = (pid: number) => Number(readFileSync(`/proc/${pid}/schedstat`, "utf8").split(" ")[0]);
// the VM's busy CPU in ms (/proc/stat counts in USER_HZ, 100 a second on x86)
function busyMs(): number {
  const f = readFileSync("/proc/stat", "utf8").split("\n")[0].trim().split(/\s+/).slice(1).map(Number);
  return (f[0] + f[1] + f[2] + f[5] + f[6] + f[7]) * 10;
}
const cpuMs = (u: NodeJS.CpuUsage) => (u.user + u.system) / 1000;

async function waitFor(ok: () => boolean, ms: number, what: string): Promise<void> {
  const end = performance.now() + ms;
  while (!ok()) {
    if (performance.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

/** Runs a peer to its end; its last stdout line as JSON. */
function peerRun(ns: string | null, args: string[]): Promise<Record<string, number>> {
  return runJson(ns, [process.execPath, peer, ...args], args[0]);
}

/** Runs a program (in a namespace) to its end; its last stdout line as JSON. */
function runJson(ns: string | null, argv: string[], what: string): Promise<Record<string, number>> {
  const p = ns ? spawn("ip", ["netns", "exec", ns, ...argv]) : spawn(argv[0], argv.slice(1));
  let out = "",
    err = "";
  p.stdout.on("data", (b) => (out += b));
  p.stderr.on("data", (b) => (err += b));
  return new Promise((resolve, reject) =>
    p.on("exit", (code) => {
      const last = out.trim().split("\n").at(-1) ?? "";
      if (code !== 0 || !last.startsWith("{")) reject(new Error(`${what}: exit ${code}: ${err || out}`));
      else resolve(JSON.parse(last));
    }),
  );
}

function writeMessages(file: string, msgs: Buffer[]): void {
  const parts: Buffer[] = [];
  for (const m of msgs) {
    const len = Buffer.alloc(4);
    len.writeUInt32BE(m.length);
    parts.push(len, m);
  }
  writeFileSync(file, Buffer.concat(parts));
}

// the calling thread's own run time, µs (process.cpuUsage also counts V8's compiler and GC threads); the
// kernel's figures are its threads' alone
function threadCpuUs(): number {
  return Number(readFileSync("/proc/thread-self/schedstat", "utf8").split(" ")[0]) / 1e3;
}

function readMessages(file: string): Buffer[] {
  const buf = readFileSync(file);
  const msgs: Buffer[] = [];
  for (let at = 0; at + 4 <= buf.length; at += 4 + buf.readUInt32BE(at))
    msgs.push(buf.subarray(at + 4, at + 4 + buf.readUInt32BE(at)));
  return msgs;
}

function udpRcvbufErrors(ns: string): number {
  const lines = inNs(ns, ["cat", "/proc/net/snmp"])
    .split("\n")
    .filter((l) => l.startsWith("Udp:"));
  const names = lines[0].split(/\s+/),
    vals = lines[1].split(/\s+/);
  return Number(vals[names.indexOf("RcvbufErrors")]);
}

/** The wasmvs backup in sbb, as a process of its own; answers "stats" on stdin with its CPU and counters. */
class WasmvsBackup {
  private lines: string[] = [];
  private waiters: ((l: string) => void)[] = [];
  private constructor(private p: ChildProcess) {
    createInterface({ input: p.stdout! }).on("line", (l) => {
      const w = this.waiters.shift();
      if (w) w(l);
      else this.lines.push(l);
    });
    p.stderr!.on("data", (b) => process.stderr.write(b));
  }
  static async start(io: BackupIo, hold: number): Promise<WasmvsBackup> {
    const argv = [process.execPath, "--import", "tsx", self, "--role=backup", `--io=${io}`, `--hold=${hold}`];
    const p = spawn("ip", ["netns", "exec", NS.backup, ...argv], { stdio: ["pipe", "pipe", "pipe"] });
    const b = new WasmvsBackup(p);
    const first = await b.line(240_000);
    if (first !== "ready") throw new Error(`the wasmvs backup did not start: ${first}`);
    return b;
  }
  private line(ms: number): Promise<string> {
    const l = this.lines.shift();
    if (l !== undefined) return Promise.resolve(l);
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error("the wasmvs backup did not answer")), ms);
      this.waiters.push((x) => {
        clearTimeout(t);
        resolve(x);
      });
    });
  }
  stats(): Promise<Record<string, number>> {
    return this.ask("stats") as Promise<Record<string, number>>;
  }
  /** "prof-start" / "prof-stop" (the summary) or "stats". */
  async ask(what: string): Promise<unknown> {
    this.p.stdin!.write(`${what}\n`);
    return JSON.parse(await this.line(120_000));
  }
  stop(): void {
    this.p.kill();
  }
}

// --role=backup --io=dgram|native --hold=MS: the wasmvs backup process itself (in sbb)
async function backupRole(io: BackupIo, hold: number): Promise<void> {
  const core = await Core.load({ connCapacity: 1 << 17 });
  const id = core.addService({ proto: "tcp", addr: VIP, port: PORT, scheduler: "rr" });
  core.addDest(id, { addr: REAL, port: REAL_PORT, weight: 1, fwd: "masq" });
  const opts: SyncDaemonOptions = {
    state: "backup",
    mcastInterface: "sync",
    syncid: 0,
    maxlen: 0,
    group: GROUP,
    port: MCAST_PORT,
    ttl: 1,
  };
  const d = await SyncDaemon.start(core, opts, () => performance.now(), silentLogger(), { io, rxHoldMs: hold });
  process.stdout.write("ready\n");
  const session = new Session();
  type Reply = { profile?: CpuProfile };
  const post = (m: string) =>
    new Promise<Reply>((res, rej) => session.post(m, (e, r) => (e ? rej(e) : res((r ?? {}) as Reply))));
  createInterface({ input: process.stdin }).on("line", async (l) => {
    if (l === "prof-start") {
      session.connect();
      await post("Profiler.enable");
      await post("Profiler.start");
      process.stdout.write("{}\n");
      return;
    }
    if (l === "prof-stop") {
      const { profile } = await post("Profiler.stop");
      session.disconnect();
      process.stdout.write(`${JSON.stringify(profile ? profileSummary(profile) : [])}\n`);
      return;
    }
    const u = process.cpuUsage();
    const loopMs = performance.eventLoopUtilization().active;
    const sock = d.ioStats() ?? {};
    const line = {
      cpuUs: u.user + u.system,
      threadUs: threadCpuUs(),
      loopMs,
      rxCalls: sock.rxCalls,
      rxDatagrams: sock.rxDatagrams,
    };
    process.stdout.write(`${JSON.stringify({ ...line, ...syncStats(core) })}\n`);
  });
}

// --role=master --passes=N: the wasmvs master daemon's own send (src/proxy/sync.ts's SyncDaemon on the packet
// addon's socket, in sbd), on the entries of the captured datagrams: a core takes them as a backup does
// (creates them), then each pass puts every live entry in messages a turn at a time (what fills 16 messages,
// as the packet path leaves them between two of the daemon's 20 ms turns) and calls the daemon's send(), as
// its timer does. Timed: the send() calls alone, in the main thread's run time (syncFlush, syncOutList,
// sendmmsg with the delivery, syncOutDone), and each pass whole, in the process's (the emit and the timer
// turns too); then idle passes, the same turns with nothing emitted. Warm-up passes first (3 s). Prints
// {"sendUs","sendProcUs","passUs","idleUs","idleSendUs","entries","messages"}.
async function masterRole(file: string, passes: number): Promise<void> {
  const msgs = readMessages(file);
  const core = await Core.load({ connCapacity: 1 << 17 });
  const id = core.addService({ proto: "tcp", addr: VIP, port: PORT, scheduler: "rr" });
  core.addDest(id, { addr: REAL, port: REAL_PORT, weight: 1, fwd: "masq" });
  const rx = core.x.syncRxBuffer() >>> 0;
  let inMsgs = 0;
  for (const m of msgs) {
    core.u8.set(m, rx);
    inMsgs += Math.max(0, core.x.syncReceive(m.length, 0, 0, 0, 1000));
  }
  const opts: SyncDaemonOptions = {
    state: "master",
    mcastInterface: "sync",
    syncid: SYNCID,
    maxlen: 0,
    group: GROUP,
    port: MCAST_PORT,
    ttl: 1,
  };
  const d = await SyncDaemon.start(core, opts, () => performance.now(), silentLogger(), { io: "native" });
  if (!d.ioStats()) throw new Error("the master daemon is not on the packet addon's socket");
  const perTurn = Math.max(1, Math.round((16 * inMsgs) / Math.max(1, msgs.length)));
  const cap = core.x.connCapacity();
  const cpu = () => {
    const u = process.cpuUsage();
    return u.user + u.system;
  };
  // one pass: turns 2 ms apart (the receivers' socket buffers must not overflow), then 300 ms for the last;
  // idle: as many turns, nothing emitted
  const pass = async (idleTurns = 0) => {
    let at = 0,
      turns = 0,
      sendUs = 0,
      sendProcUs = 0;
    const t0 = cpu();
    do {
      if (!idleTurns) at = core.x.syncEmitFrom(performance.now(), at, perTurn);
      const s0 = threadCpuUs(),
        p0 = cpu();
      d.send(FLUSH_AGE_MS); // as the daemon's timer calls it: the finished messages
      sendUs += threadCpuUs() - s0;
      sendProcUs += cpu() - p0;
      turns++;
      await sleep(2);
    } while (idleTurns ? turns < idleTurns : at < cap);
    const s0 = threadCpuUs(),
      p0 = cpu();
    d.send(0); // the pass's last, part-filled message (the timer sends it 2 s on)
    sendUs += threadCpuUs() - s0;
    sendProcUs += cpu() - p0;
    await sleep(300);
    return { sendUs, sendProcUs, passUs: cpu() - t0, turns };
  };
  const sent = () => syncStats(core);
  // warm-up: V8 and the emulator compile a path run a few times a pass only after many passes (the first
  // idle turns cost 10 times the later ones); 3 s at least, as the codec's warm-up
  const until = performance.now() + 3000;
  let turns = 0;
  for (let k = 0; k < 3 || performance.now() < until; k++) turns = (await pass()).turns;
  await pass(turns);
  const s0 = sent();
  await pass();
  const out = {
    sendUs: [] as number[],
    sendProcUs: [] as number[], // the same in the process's time (every thread)
    passUs: [] as number[],
    idleUs: [] as number[],
    idleSendUs: [] as number[], // the same send() turns with nothing to send: the timing's floor
    entries: sent().sent_entries - s0.sent_entries,
    messages: sent().sent_messages - s0.sent_messages,
  };
  for (let k = 0; k < passes; k++) {
    const r = await pass();
    out.sendUs.push(r.sendUs);
    out.sendProcUs.push(r.sendProcUs);
    out.passUs.push(r.passUs);
  }
  for (let k = 0; k < passes; k++) {
    const r = await pass(turns);
    out.idleUs.push(r.passUs);
    out.idleSendUs.push(r.sendUs);
  }
  process.stdout.write(`${JSON.stringify(out)}\n`);
  await d.stop();
  process.exit(0);
}

// --profile: the wasmvs backup's CPU profile over the update passes (the inspector's sampling profiler, in
// the process), self time summed by function and file, the largest first
type CpuProfile = {
  nodes: { id: number; callFrame: { functionName: string; url: string; lineNumber: number } }[];
  samples: number[];
  timeDeltas: number[];
};
function profileSummary(prof: CpuProfile): { fn: string; selfMs: number }[] {
  const byId = new Map(prof.nodes.map((n) => [n.id, n]));
  const self = new Map<string, number>();
  prof.samples.forEach((id, k) => {
    const cf = byId.get(id)?.callFrame;
    const where = cf?.url ? ` ${cf.url.split("/").slice(-2).join("/")}:${cf.lineNumber + 1}` : "";
    const key = `${cf?.functionName || "(anonymous)"}${where}`;
    self.set(key, (self.get(key) ?? 0) + (prof.timeDeltas[k + 1] ?? 0) / 1000);
  });
  return [...self]
    .sort((a, b) => b[1] - a[1])
    .slice(0, 40)
    .map(([fn, selfMs]) => ({ fn, selfMs: Math.round(selfMs * 10) / 10 }));
}

// The codec alone on the captured datagrams, in this process: samples of each, interleaved.
const noCodecSamples = (): SyncVmResult["codec"] => ({
  apply: [],
  update: [],
  updateBig: [],
  decode: [],
  emit: [],
  emitWarm: [],
  emitFaults: [],
  emitWarmFaults: [],
});

async function codecAlone(rounds: Buffer[][], samples: number): Promise<SyncVmResult["codec"]> {
  const out = noCodecSamples();
  // a table sized to the entries, as the host bench's (a master's bulk emit walks the whole table)
  const capacity = 1 << Math.ceil(Math.log2(Math.max(1024, rounds.flat().length * 32)));
  const backupCore = async () => {
    const c = await Core.load({ connCapacity: capacity });
    const id = c.addService({ proto: "tcp", addr: VIP, port: PORT, scheduler: "rr" });
    c.addDest(id, { addr: REAL, port: REAL_PORT, weight: 1, fwd: "masq" });
    return c;
  };
  const feed = (c: Core, msgs: Buffer[], mode: number, now = 1000) => {
    const rx = c.x.syncRxBuffer() >>> 0;
    let n = 0;
    for (const m of msgs) {
      c.u8.set(m, rx);
      n += Math.max(0, c.x.syncReceive(m.length, 0, 0, mode, now));
    }
    return n;
  };
  // the backup process's table (1 << 17 entries, 16 MiB), its entries created once: updates timed there, the
  // clock moved on each time (each update re-files the entry's timer, as in the backup)
  const big = await Core.load({ connCapacity: 1 << 17 });
  const bigId = big.addService({ proto: "tcp", addr: VIP, port: PORT, scheduler: "rr" });
  big.addDest(bigId, { addr: REAL, port: REAL_PORT, weight: 1, fwd: "masq" });
  const all = rounds.flat();
  // warm-up until V8 has compiled the hot code for good (its background compiles count in this CPU time)
  const scratch = await backupCore();
  scratch.x.syncMasterStart(SYNCID, 0);
  const until = performance.now() + 3000;
  for (let k = 0; k < 5 || performance.now() < until; k++) {
    feed(scratch, all, 0);
    feed(scratch, all, 1);
    scratch.x.syncEmitAll(0);
    scratch.x.syncOutDone(scratch.x.syncFlush(0, 0));
  }
  feed(big, all, 0);
  for (let s = 0; s < samples; s++) {
    const c = await backupCore();
    let t = process.cpuUsage();
    const applied = feed(c, all, 0);
    out.apply.push((cpuMs(process.cpuUsage(t)) * 1e6) / applied);
    t = process.cpuUsage();
    const updated = feed(c, all, 0, 21000);
    out.update.push((cpuMs(process.cpuUsage(t)) * 1e6) / updated);
    t = process.cpuUsage();
    const bigUpdated = feed(big, all, 0, 41000 + 20000 * s);
    out.updateBig.push((cpuMs(process.cpuUsage(t)) * 1e6) / bigUpdated);
    t = process.cpuUsage();
    const decoded = feed(c, all, 1);
    out.decode.push((cpuMs(process.cpuUsage(t)) * 1e6) / decoded);
    c.x.syncMasterStart(SYNCID, 0);
    let f = process.resourceUsage().minorPageFault;
    t = process.cpuUsage();
    const emitted = c.x.syncEmitAll(0);
    c.x.syncOutDone(c.x.syncFlush(0, 0));
    out.emit.push((cpuMs(process.cpuUsage(t)) * 1e6) / emitted);
    out.emitFaults.push(process.resourceUsage().minorPageFault - f);
    // the same emit again: the same message slots, now touched (a fresh core's first emit writes into pages
    // of its WASM memory that nothing touched before)
    c.x.syncMasterStart(SYNCID, 0);
    f = process.resourceUsage().minorPageFault;
    t = process.cpuUsage();
    const again = c.x.syncEmitAll(0);
    c.x.syncOutDone(c.x.syncFlush(0, 0));
    out.emitWarm.push((cpuMs(process.cpuUsage(t)) * 1e6) / again);
    out.emitWarmFaults.push(process.resourceUsage().minorPageFault - f);
  }
  return out;
}

/** Runs --role=master in the director's namespace; settle waits for its datagrams and counts them. */
async function timeMasterDaemon(passes: number, settle: () => Promise<number>) {
  const argv = [process.execPath, "--import", "tsx", self, "--role=master", `--passes=${passes}`];
  const dm = await runJson(NS.director, argv, "the wasmvs master daemon");
  const received = await settle();
  const list = (k: string) => dm[k] as unknown as number[];
  const sd = {
    entries: dm.entries,
    messages: dm.messages,
    cpuUs: list("sendUs"),
    passUs: list("passUs"),
    idleUs: list("idleUs"),
    idleSendUs: list("idleSendUs"),
    sendProcUs: list("sendProcUs"),
    received,
  };
  const us = (xs: number[]) => xs.map((x) => Math.round(x)).join(" ");
  step(
    `wasmvs's master daemon timed: ${dm.entries} entries in ${dm.messages} messages a pass; CPU µs per pass: ` +
      `send() ${us(sd.cpuUs)} (nothing to send: ${us(sd.idleSendUs)}), whole pass ${us(sd.passUs)}, ` +
      `idle ${us(sd.idleUs)}; ${received} datagrams received`,
  );
  return sd;
}

async function inside(conns: number, rounds: number, samples: number, passes: number, profile: boolean) {
  bed();
  step(`bed built: client, kernel director (master daemon), real server, kernel + wasmvs backups`);
  const decoder = await Core.load({ connCapacity: 1024 });
  const entriesOf = (m: Buffer) => {
    decoder.u8.set(m, decoder.x.syncRxBuffer() >>> 0);
    return Math.max(0, decoder.x.syncReceive(m.length, 0, 0, 1, 0));
  };
  const cap = dgram.createSocket({ type: "udp4", reuseAddr: true, recvBufferSize: 16 << 20 });
  await new Promise<void>((r) => cap.bind(MCAST_PORT, r));
  cap.addMembership(GROUP, CAPTURE_ADDR);
  let got: Buffer[] = [],
    lastAt = 0;
  cap.on("message", (m) => {
    got.push(m);
    lastAt = performance.now();
  });
  const settle = async () => {
    await sleep(2600); // the master sends a part-filled buffer 2 s after its first entry
    await waitFor(() => performance.now() - lastAt > 800, 60_000, "the sync datagrams to stop");
  };
  const res: SyncVmResult = {
    kernel: run("uname", ["-r"]).trim(),
    thp: (() => {
      try {
        return readFileSync("/sys/kernel/mm/transparent_hugepage/enabled", "utf8").trim();
      } catch {
        return "?";
      }
    })(),
    conns,
    master: [],
    off: [],
    backup: [],
    idle: [],
    send: { entries: 0, messages: 0, cpuUs: [], idleUs: [], received: 0 },
    sendNative: { entries: 0, messages: 0, cpuUs: [], idleUs: [], received: 0 },
    codec: noCodecSamples(),
    kernelBackupEntries: 0,
    wasmvs: {},
  };
  const server = spawn("ip", ["netns", "exec", NS.real, process.execPath, peer, "server", String(REAL_PORT), REAL]);
  await new Promise<void>((r) => server.stdout.once("data", () => r()));
  const kept: Buffer[][] = [];
  for (let k = 0; k < 2 * rounds; k++) {
    const on = k % 2 === 0;
    if (on) inNs(NS.director, ["ipvsadm", "--start-daemon", "master", "--mcast-interface", "sync", "--syncid", "1"]);
    let pid = 0;
    if (on) await waitFor(() => (pid = threadPid("ipvs-m:") ?? 0) > 0, 30_000, "the ipvs-m thread");
    got = [];
    const t0 = on ? runtimeNs(pid) : 0,
      b0 = busyMs(),
      c0 = process.cpuUsage();
    const r = await peerRun(NS.client, ["client", VIP, String(PORT), String(conns), "8"]);
    await settle();
    const threadNs = on ? runtimeNs(pid) - t0 : 0;
    const otherMs = busyMs() - b0 - cpuMs(process.cpuUsage(c0)) - threadNs / 1e6;
    if (on) {
      inNs(NS.director, ["ipvsadm", "--stop-daemon", "master"]);
      const msgs = got;
      kept.push(msgs);
      const entries = msgs.reduce((n, m) => n + entriesOf(m), 0);
      res.master.push({ entries, messages: msgs.length, ok: r.ok, failed: r.failed, threadNs, otherMs });
      step(
        `round ${k + 1}/${2 * rounds}, master on: ${r.ok} connections, ${entries} entries in ${msgs.length} msgs, ` +
          `ipvs-m ${(threadNs / 1e6).toFixed(1)} ms`,
      );
    } else {
      res.off.push({ ok: r.ok, failed: r.failed, otherMs });
      step(`round ${k + 1}/${2 * rounds}, master off: ${r.ok} connections`);
    }
  }
  server.kill();
  const all = kept.flat();
  const entries = all.reduce((n, m) => n + entriesOf(m), 0);
  writeMessages("/tmp/sync-vm-msgs.bin", all);
  // wasmvs's send of the same datagrams, from the director's namespace to this one, as the kernel's thread:
  // through Node's dgram (one send each) and through the packet addon (sendmmsg), one after the other
  const sendWith = async (io: BackupIo) => {
    got = [];
    const dir = [NS.director, ["send", "/tmp/sync-vm-msgs.bin", GROUP, String(MCAST_PORT), DIRECTOR_SYNC]] as const;
    const s = await peerRun(dir[0], [...dir[1], String(passes), io]);
    await waitFor(() => got.length >= all.length * (1 + passes) || performance.now() - lastAt > 3000, 60_000, "sends");
    const out = {
      entries,
      messages: all.length,
      cpuUs: s.cpuUs as unknown as number[],
      idleUs: s.idleUs as unknown as number[],
      received: got.length,
    };
    step(`wasmvs's sends timed (${io}): CPU µs per pass ${out.cpuUs.join(" ")}, idle ${out.idleUs.join(" ")}`);
    return out;
  };
  res.send = await sendWith("dgram");
  res.sendNative = await sendWith("native");
  // the master daemon itself (SyncDaemon.send on a core's slots), from the same namespace to the same socket
  got = [];
  res.sendDaemon = await timeMasterDaemon(passes, async () => {
    await waitFor(() => performance.now() - lastAt > 1000, 60_000, "the daemon's datagrams to stop");
    return got.length;
  });
  cap.close();
  // the backups: the kernel's daemon and wasmvs's (BACKUPS), side by side in sbb, on the same datagrams at the
  // same time
  const wbs: WasmvsBackup[] = [];
  for (const b of BACKUPS) wbs.push(await WasmvsBackup.start(b.io, b.hold));
  inNs(NS.backup, ["ipvsadm", "--start-daemon", "backup", "--mcast-interface", "sync", "--syncid", "0"]);
  let bpid = 0;
  await waitFor(() => (bpid = threadPid("ipvs-b:") ?? 0) > 0, 30_000, "the ipvs-b thread");
  step(`kernel and wasmvs backups (${BACKUPS.map((b) => b.name).join(", ")}) listening`);
  writeMessages("/tmp/sync-vm-none.bin", []);
  const statsOf = () => Promise.all(wbs.map((w) => w.stats()));
  const took = (a: Record<string, number>[], b: Record<string, number>[]) =>
    Object.fromEntries(
      BACKUPS.map((w, k) => [
        w.name,
        {
          cpuUs: b[k].cpuUs - a[k].cpuUs,
          threadUs: b[k].threadUs - a[k].threadUs,
          loopMs: b[k].loopMs - a[k].loopMs,
          rxCalls: (b[k].rxCalls ?? 0) - (a[k].rxCalls ?? 0),
          rxDatagrams: (b[k].rxDatagrams ?? 0) - (a[k].rxDatagrams ?? 0),
        },
      ]),
    );
  const show = (w: Record<string, Took>) =>
    BACKUPS.map((b) => {
      const t = w[b.name];
      const rx = b.io === "native" ? `, ${t.rxDatagrams} datagrams in ${t.rxCalls} reads` : "";
      return `${b.name} ${(t.cpuUs / 1e3).toFixed(1)} ms (loop ${t.loopMs.toFixed(1)} ms${rx})`;
    }).join(", ");
  // pass 0 creates; then each update pass is followed by an idle one: the peer starts and sends nothing,
  // the backups polled alike
  const plan = [0, ...Array.from({ length: passes }, (_, k) => [k + 1, -(k + 1)]).flat()];
  for (const pass of plan) {
    const idle = pass < 0;
    const want = idle ? 0 : entries;
    if (profile && pass === 1) for (const w of wbs) await w.ask("prof-start");
    const e0 = udpRcvbufErrors(NS.backup),
      k0 = runtimeNs(bpid),
      w0 = await statsOf();
    const file = idle ? "/tmp/sync-vm-none.bin" : "/tmp/sync-vm-msgs.bin";
    await peerRun(null, ["send", file, GROUP, String(MCAST_PORT), REPLAY_ADDR]);
    let w1 = w0;
    const end = performance.now() + 60_000;
    do {
      await sleep(200);
      w1 = await statsOf();
    } while (w1.some((w, k) => w.entries < w0[k].entries + want) && performance.now() < end);
    await sleep(500);
    w1 = await statsOf();
    const kernelNs = runtimeNs(bpid) - k0,
      w = took(w0, w1);
    if (idle) {
      res.idle.push({ kernelNs, w });
      step(`idle pass ${-pass} (nothing sent, the same polling): kernel ${(kernelNs / 1e6).toFixed(1)} ms, ${show(w)}`);
      continue;
    }
    const rcvbufErrors = udpRcvbufErrors(NS.backup) - e0;
    res.backup.push({ pass, entries, kernelNs, rcvbufErrors, w });
    step(
      `backup pass ${pass + 1}/${passes + 1} (${pass ? "updates" : "creates"}): CPU kernel ` +
        `${(kernelNs / 1e6).toFixed(1)} ms, ${show(w)}`,
    );
  }
  if (profile) {
    res.profile = {};
    for (const [k, w] of wbs.entries()) {
      const p = (await w.ask("prof-stop")) as { fn: string; selfMs: number }[];
      res.profile[BACKUPS[k].name] = p;
      for (const f of p.slice(0, 25)) step(`profile ${BACKUPS[k].name}: ${f.selfMs} ms self ${f.fn}`);
    }
  }
  const last = await statsOf();
  for (const [k, b] of BACKUPS.entries()) res.wasmvs[b.name] = last[k];
  res.kernelBackupEntries = inNs(NS.backup, ["ipvsadm", "-Lnc"]).trim().split("\n").length - 2;
  for (const w of wbs) w.stop();
  step(
    `backups timed: kernel holds ${res.kernelBackupEntries} entries, wasmvs created ` +
      BACKUPS.map((b) => `${res.wasmvs[b.name].created} (${b.name})`).join(", "),
  );
  res.codec = await codecAlone(kept, samples);
  const c = res.codec;
  const list = (xs: number[]) => xs.map((x) => Math.round(x)).join(" ");
  step(
    `wasmvs codec alone timed: ns/entry: decode + create ${list(c.apply)}, update ${list(c.update)}, ` +
      `update in a 2^17 table ${list(c.updateBig)}, decode ${list(c.decode)}; ` +
      `emit fresh core ${list(c.emit)} (minor faults ${list(c.emitFaults)}), ` +
      `again ${list(c.emitWarm)} (faults ${list(c.emitWarmFaults)}); THP ${res.thp}`,
  );
  process.stdout.write(`@@RESULT ${JSON.stringify(res)}\n`);
  process.exit(0);
}

if (process.argv[1] === self) {
  const arg = (n: string, d: number) => Number(process.argv.find((a) => a.startsWith(`--${n}=`))?.split("=")[1] ?? d);
  const file = process.argv.find((a) => a.startsWith("--file="))?.slice(7) ?? "/tmp/sync-vm-msgs.bin";
  if (process.argv.includes("--role=master")) await masterRole(file, arg("passes", 3));
  else if (process.argv.includes("--role=backup"))
    await backupRole(process.argv.includes("--io=native") ? "native" : "dgram", arg("hold", 0));
  else
    await inside(
      arg("conns", 1000),
      arg("rounds", 2),
      arg("samples", 5),
      arg("passes", 3),
      process.argv.includes("--profile"),
    );
}
