// npm run bench -- sync: what connection sync costs per entry in the WASM core (assembly/sync/codec.ts), on
// the master (an entry put into a message) and on the backup (a message read and each entry applied to the
// connection table: the steady state, where each entry updates one synced before; and decoding alone).
// Timed interleaved in CPU time, so other tenants' load lands on all alike; the figures are ns per entry,
// median with p25–p75. Then the kernel's own cost on the same entries, in one boot of the kernel VM
// (bench/sync-vm.ts says what each figure includes): the baseline the issue names.
import { Core } from "../src/core/index.ts";
import { syncTakeMessages } from "../src/core/sync.ts";
import { interleaved, quantile, type Stat } from "./lib/measure.ts";
import { withBaselines, type Figure, type Target } from "./lib/report.ts";
import type { Ctx, GroupResult } from "./lib/context.ts";
import { existsSync } from "node:fs";
import { cpus, loadavg } from "node:os";
import { fileURLToPath } from "node:url";
import { runInVm, vmEnv } from "./kernel-sync.ts";
import { BACKUPS, type SyncVmResult } from "./sync-vm.ts";
import { SYNC_RX_HOLD_MS } from "../src/proxy/sync.ts";

// the wasmvs backup that runs as src/proxy/sync.ts's daemons do (the verdict is its)
const DAEMON = BACKUPS.find((b) => b.io === "native" && b.hold === SYNC_RX_HOLD_MS)?.name ?? "addon";
import { elapsed } from "./lib/progress.ts";

const N = 20_000; // live connections on the master

async function masterWithConnections(): Promise<Core> {
  const core = await Core.load({ connCapacity: 1 << 16 });
  const id = core.addService({ proto: "tcp", addr: "10.0.0.1", port: 80, scheduler: "rr" });
  for (let d = 0; d < 8; d++) core.addDest(id, { addr: `10.8.0.${d + 2}`, port: 8080, weight: 1, fwd: "masq" });
  for (let k = 0; k < N; k++)
    core.packet("in", "tcp", `10.9.${(k >> 8) & 255}.${k & 255}`, 10000 + (k % 50000), "10.0.0.1", 80, { flags: 2 });
  return core;
}

export async function benchSync(ctx: Ctx): Promise<GroupResult> {
  const master = await masterWithConnections();
  master.x.syncMasterStart(1, 0);
  // the messages one pass sends, kept for the backup
  master.x.syncEmitAll(0);
  const msgs = syncTakeMessages(master, 0, 0);
  const backup = await Core.load({ connCapacity: 1 << 16 });
  const id = backup.addService({ proto: "tcp", addr: "10.0.0.1", port: 80, scheduler: "rr" });
  for (let d = 0; d < 8; d++) backup.addDest(id, { addr: `10.8.0.${d + 2}`, port: 8080, weight: 1, fwd: "fullnat" });
  const rx = () => backup.x.syncRxBuffer() >>> 0;
  const feed = (mode: number) => {
    let n = 0;
    for (const m of msgs) {
      backup.u8.set(m, rx());
      n += backup.x.syncReceive(m.length, 1, 0, mode, 1000);
    }
    return n;
  };
  const entries = feed(0); // created once; every timed pass updates (the messages of the last passes only)
  const rounds = ctx.quick ? 5 : 15;
  const [emit, apply, decode] = interleaved(
    [
      {
        name: "master: emit",
        fn: () => {
          const n = master.x.syncEmitAll(0);
          master.x.syncOutDone(master.x.syncFlush(0, 0));
          return n;
        },
        ops: N,
      },
      { name: "backup: apply (update)", fn: () => feed(0), ops: entries },
      { name: "backup: decode only", fn: () => feed(1), ops: entries },
    ],
    rounds,
  );
  const base: Figure["baselines"] = [];
  const figures: Figure[] = [
    withBaselines({
      group: "sync",
      name: "master: entry into a message",
      params: { live: N },
      unit: "entry",
      ours: emit,
      oursLabel: "wasmvs",
      baselines: base,
    }),
    withBaselines({
      group: "sync",
      name: "backup: entry read and applied",
      params: { live: N },
      unit: "entry",
      ours: apply,
      oursLabel: "wasmvs",
      baselines: base,
    }),
    withBaselines({
      group: "sync",
      name: "backup: entry decoded only",
      params: { live: N },
      unit: "entry",
      ours: decode,
      oursLabel: "wasmvs",
      baselines: base,
    }),
  ];
  const vm = await benchSyncVm(ctx.quick);
  figures.push(...vm.figures);
  return {
    figures,
    targets: vm.targets,
    // the VM's raw measurements beside bench.json (run.ts writes every file of this map to --out)
    svgs: vm.result ? { "sync-vm.json": JSON.stringify(vm.result, null, 1) } : {},
    extra: { syncMessages: msgs.length, backupEntries: entries, vm: vm.result },
  };
}

// ---- the VM half: the kernel's daemons and wasmvs's on the same entries, one boot ------------------------
const VM_SCRIPT = fileURLToPath(new URL("../../shared/ipvs-vm/ipvs-vm.sh", import.meta.url));

/** Median and quartiles of per-entry values (ns), as a Stat of `ops` entries per sample. */
function statOfValues(values: number[], ops: number): Stat {
  const s = [...values].sort((a, b) => a - b);
  const median = quantile(s, 0.5);
  const dev = s.map((x) => Math.abs(x - median)).sort((a, b) => a - b);
  return {
    median,
    p25: quantile(s, 0.25),
    p75: quantile(s, 0.75),
    mad: quantile(dev, 0.5),
    samples: s.length,
    opsPerSample: ops,
  };
}

// quiet-machine seconds for a run (boot, node and tsx starts, the rounds), scaled as the other VM benches
function syncVmLimitS(conns: number, rounds: number): number {
  const quietS = 120 + 2 * rounds * (20 + conns * 0.01) + 120;
  const perCore = loadavg()[0] / Math.max(1, cpus().length);
  return Math.round(quietS * Math.min(10, 3 * Math.max(1, perCore)));
}

async function benchSyncVm(quick: boolean): Promise<{ figures: Figure[]; targets: Target[]; result?: SyncVmResult }> {
  const skipRow = (note: string): Target => ({
    id: "sync-vs-kernel",
    target: "sync cost per connection against the kernel's, same VM run",
    measured: "-",
    status: "SKIP",
    note,
  });
  if (!existsSync(VM_SCRIPT)) return { figures: [], targets: [skipRow(`${VM_SCRIPT} is missing`)] };
  const conns = quick ? 300 : 1000,
    rounds = quick ? 1 : 2;
  const env = vmEnv();
  const limitS = Number(process.env.IPVSVM_TIMEOUT) || syncVmLimitS(conns, rounds);
  env.IPVSVM_TIMEOUT = String(limitS);
  process.stderr.write(
    `[${elapsed()}] sync: the kernel's daemons and wasmvs's on the same entries, in the VM: ${rounds} rounds of ` +
      `${conns} connections with the master on and ${rounds} with it off (limit ${limitS} s)\n`,
  );
  const { code, stdout } = await runInVm(
    `node --import tsx bench/sync-vm.ts --conns=${conns} --rounds=${rounds} --samples=${quick ? 3 : 7} ` +
      `--passes=${quick ? 2 : 4}${process.argv.includes("--profile") ? " --profile" : ""}`,
    env,
  );
  const line = stdout.split("\n").find((l) => l.startsWith("@@RESULT "));
  if (!line) return { figures: [], targets: [skipRow(`the VM run failed (exit ${code}; its output is above)`)] };
  const r = JSON.parse(line.slice(9)) as SyncVmResult;
  return { ...syncVmFigures(r), result: r };
}

type VmStats = Record<"wSend" | "nSend" | "kMaster" | "kBackup" | "kCreate", Stat> & {
  dSend?: Stat; // the master daemon's own send() (absent from runs before it was measured)
  backup: Record<string, Stat>; // updates, per wasmvs backup (BACKUPS): the process's CPU, every thread
  backupThread: Record<string, Stat | undefined>; // the same, its main thread alone (runs before: absent)
  dSendProc?: Stat; // the daemon's send turns in the process's time
  create: Record<string, Stat>;
};

// the median of per-pass µs as time per entry of a pass, for a note
function perEntryUs(us: number[], entries: number): string {
  if (!us.length) return "not measured";
  const m = [...us].sort((a, b) => a - b)[us.length >> 1];
  return `${((m * 1e3) / Math.max(1, entries)).toFixed(0)} ns`;
}

// the master daemon's own send turns, its whole passes and its idle passes (runs before them: none)
function daemonFigures(
  r: SyncVmResult,
  f: VmStats,
  fig: (name: string, ours: Stat, baselines: Figure["baselines"], note: string) => Figure,
  kernelM: Figure["baselines"],
): Figure[] {
  const sd = r.sendDaemon;
  if (!sd || !f.dSend) return [];
  const per = (us: number[]) =>
    statOfValues(
      us.map((x) => (x * 1e3) / (sd.entries || 1)),
      sd.entries,
    );
  return [
    fig(
      "VM master: the daemon's send turns",
      f.dSend,
      kernelM,
      "SyncDaemon.send() on a core's slots (syncFlush, syncOutList, sendmmsg, syncOutDone), its thread's " +
        `time; ${sd.entries} entries in ${sd.messages} messages a pass; the same turns ` +
        `with nothing to send ${perEntryUs(sd.idleSendUs ?? [], sd.entries)} a pass's entry`,
    ),
    fig(
      "VM master: the daemon's pass, emit included",
      per(sd.passUs),
      [],
      "the whole pass: every entry into a message (the kernel's append, in its packet path) and the turns",
    ),
    fig(
      "VM master: the daemon's idle pass",
      per(sd.idleUs),
      [],
      "the same turns with nothing emitted, per entry of a pass: in the pass figure",
    ),
  ];
}

// each figure's samples as per-entry stats: the kernel's threads, wasmvs's senders and backups
function vmStats(r: SyncVmResult): VmStats {
  const entries = r.send.entries;
  const per = (xs: number[]) => statOfValues(xs, entries);
  const usPer = (xs: number[]) => per(xs.map((us) => (us * 1e3) / entries));
  const usPerOf = (xs: number[], n: number) =>
    statOfValues(
      xs.map((us) => (us * 1e3) / Math.max(1, n)),
      n,
    );
  const warm = r.backup.filter((b) => b.pass > 0),
    first = r.backup.filter((b) => b.pass === 0);
  const names = BACKUPS.map((b) => b.name);
  const byName = (f: (name: string) => Stat) => Object.fromEntries(names.map((n) => [n, f(n)]));
  const sd = r.sendDaemon;
  return {
    kMaster: statOfValues(
      r.master.map((m) => m.threadNs / m.entries),
      Math.round(entries / r.master.length),
    ),
    wSend: usPer(r.send.cpuUs),
    nSend: usPer(r.sendNative.cpuUs),
    dSend: sd && usPerOf(sd.cpuUs, sd.entries),
    dSendProc: sd?.sendProcUs && usPerOf(sd.sendProcUs, sd.entries),
    kBackup: per(warm.map((b) => b.kernelNs / b.entries)),
    kCreate: per(first.map((b) => b.kernelNs / b.entries)),
    backup: byName((n) => usPer(warm.map((b) => b.w[n].cpuUs))),
    backupThread: Object.fromEntries(
      names.map((n) => [
        n,
        warm.every((b) => b.w[n].threadUs !== undefined) ? usPer(warm.map((b) => b.w[n].threadUs)) : undefined,
      ]),
    ),
    create: byName((n) => usPer(first.map((b) => b.w[n].cpuUs))),
  };
}

// the same polling or pacing with nothing sent, per entry of a pass: what the pass figures hold besides the
// datagrams (the backups' and the senders')
function idleFigures(
  r: SyncVmResult,
  fig: (name: string, ours: Stat, baselines: Figure["baselines"], note: string) => Figure,
): Figure[] {
  const entries = r.send.entries;
  const per = (xs: number[]) => statOfValues(xs, entries);
  const usPer = (xs: number[]) => per(xs.map((us) => (us * 1e3) / entries));
  const kIdle = per(r.idle.map((b) => b.kernelNs / entries));
  return [
    ...BACKUPS.map(({ name: n }) =>
      fig(
        `VM backup: idle pass, ${n}`,
        usPer(r.idle.map((b) => b.w[n].cpuUs)),
        [{ name: "kernel ipvs-b thread", stat: kIdle }],
        "no datagram, the same polling, per entry of a pass: in the backup figures above, not subtracted",
      ),
    ),
    fig(
      "VM master: send's idle pass, Node dgram",
      usPer(r.send.idleUs),
      [],
      "the sender's same bursts and timer turns with nothing sent, per entry of a pass: in the send figure",
    ),
    fig("VM master: send's idle pass, addon", usPer(r.sendNative.idleUs), [], "the same"),
  ];
}

function syncVmFigures(r: SyncVmResult): { figures: Figure[]; targets: Target[] } {
  const entries = r.send.entries;
  const per = (xs: number[]) => statOfValues(xs, entries);
  const usPer = (xs: number[]) => per(xs.map((us) => (us * 1e3) / entries));
  const warm = r.backup.filter((b) => b.pass > 0);
  const names = BACKUPS.map((b) => b.name);
  const f = vmStats(r);
  const fig = (name: string, ours: Stat, baselines: Figure["baselines"], note: string): Figure =>
    withBaselines({
      group: "sync",
      name,
      params: { vm: 1, entries },
      unit: "entry",
      ours,
      oursLabel: "wasmvs",
      baselines,
      note,
    });
  const kernelM = [{ name: "kernel ipvs-m thread", stat: f.kMaster }];
  const kernelOf = (stat: Stat) => [{ name: "kernel ipvs-b thread", stat }];
  const kernelB = kernelOf(f.kBackup);
  const reads = (n: string) => {
    const d = warm.reduce((x, b) => x + b.w[n].rxDatagrams, 0),
      c = warm.reduce((x, b) => x + b.w[n].rxCalls, 0);
    return c ? `; ${(d / c).toFixed(1)} datagrams a read` : "";
  };
  const loop = (n: string) => usPer(warm.map((b) => b.w[n].loopMs * 1e3));
  const figures = [
    fig(
      "VM master: send, addon (sendmmsg)",
      f.nSend,
      kernelM,
      "both: the datagrams out through UDP/IP/veth and their delivery on the VM's one CPU; kernel: + dequeue",
    ),
    fig("VM master: send, Node dgram", f.wSend, kernelM, "the same datagrams, one dgram send each"),
    ...daemonFigures(r, f, fig, kernelM),
    ...names.map((n) =>
      fig(
        `VM backup: receive and apply (updates), ${n}`,
        f.backup[n],
        kernelB,
        `its process's CPU; its event loop busy ${Math.round(loop(n).median)} ns per entry${reads(n)}`,
      ),
    ),
    ...names.flatMap((n) => {
      const t = f.backupThread[n];
      return t
        ? [
            fig(
              `VM backup: receive and apply (updates), ${n}, main thread`,
              t,
              kernelB,
              "the same passes in its main thread's run time alone, as the kernel's one thread",
            ),
          ]
        : [];
    }),
    ...names.map((n) =>
      fig(
        `VM backup: first pass (creates), ${n}`,
        f.create[n],
        kernelOf(f.kCreate),
        "the first pass includes V8 compiling",
      ),
    ),
    ...idleFigures(r, fig),
    fig(
      "VM master: entry into a message",
      per(r.codec.emit),
      [],
      "the codec's emit on a fresh core; the kernel's append is in its packet path (below)",
    ),
    fig(
      "VM master: entry into a message, again",
      per(r.codec.emitWarm),
      [],
      "the same core's emit again, into the message slots the first one touched",
    ),
    fig("VM backup: codec decode + create", per(r.codec.apply), [], "in memory, no socket, a fresh table"),
    fig("VM backup: codec decode + update", per(r.codec.update), kernelB, "the same datagrams again, that table"),
    fig(
      "VM backup: codec decode + update, 2^17 table",
      per(r.codec.updateBig),
      kernelB,
      "in a table of the backup process's size (16 MiB), the clock moved on",
    ),
    fig("VM backup: codec decode only", per(r.codec.decode), [], "in memory"),
  ];
  return { figures, targets: syncVmTargets(r, f) };
}

// PASS/MISS against the kernel's threads, like with like (the addon's sockets, which the daemons use); the
// packet path's share as a reference
function syncVmTargets(r: SyncVmResult, f: VmStats): Target[] {
  const entries = r.send.entries;
  const names = BACKUPS.map((b) => b.name);
  const perConn = entries / r.master.reduce((n, m) => n + m.ok, 0);
  const emit = statOfValues(r.codec.emit, entries);
  const drops = r.backup.reduce((n, b) => n + b.rcvbufErrors, 0);
  const unsent = (s: SyncVmResult["send"]) => s.messages * (1 + s.cpuUs.length) - s.received;
  const lost = unsent(r.send) + unsent(r.sendNative);
  const ns = (s: Stat) => (s.median >= 1e4 ? `${(s.median / 1e3).toFixed(1)} µs` : `${s.median.toFixed(0)} ns`);
  const spread = (s: Stat) => `${ns({ ...s, median: s.p25 })}–${ns({ ...s, median: s.p75 })}`;
  const x = (a: Stat, b: Stat) => `${(a.median / b.median).toFixed(2)}×`;
  const verdict = (ours: Stat, base: Stat) => (ours.median <= base.median ? "PASS" : "MISS");
  // the kernel's packet-path share (ip_vs_sync_conn: the check on every packet and the append): the VM's busy
  // CPU with the daemon on, less the thread and this process, against the rounds with it off
  const offMs = r.off.reduce((n, o) => n + o.otherMs, 0) / Math.max(1, r.off.length);
  const path = r.master.map((m) => ((m.otherMs - offMs) * 1e6) / m.entries);
  const notes =
    `${entries} entries from ${r.master.length}×${r.conns} connections (${perConn.toFixed(2)} per connection), ` +
    `Linux ${r.kernel}; the kernel's backup holds ${r.kernelBackupEntries}, wasmvs's created ` +
    names.map((n) => `${r.wasmvs[n]?.created ?? "?"} (${n})`).join(", ") +
    (drops ? `; ${drops} datagrams dropped at the backups' sockets: the backup figures are low` : "") +
    (lost ? `; ${lost} of wasmvs's sent datagrams did not arrive` : "");
  const targets: Target[] = [
    {
      id: "sync-vm-master",
      target: "master: send as cheap per connection as the kernel's thread (same VM run)",
      measured:
        (f.dSend ? `daemon's thread ${ns(f.dSend)} (${spread(f.dSend)}), ` : "") +
        (f.dSendProc ? `its process ${ns(f.dSendProc)} (${spread(f.dSendProc)}), ` : "") +
        `addon alone ${ns(f.nSend)} (${spread(f.nSend)}) vs kernel ${ns(f.kMaster)} (${spread(f.kMaster)}) ` +
        `per entry (${f.dSend ? `${x(f.dSend, f.kMaster)}, ` : ""}${x(f.nSend, f.kMaster)}); ` +
        `Node dgram ${ns(f.wSend)} (${x(f.wSend, f.kMaster)})`,
      // the daemon's own send turns where measured (what a wasmvs master costs, not the bench's sender), in
      // its thread's time as the kernel's is its thread's
      status: verdict(f.dSend ?? f.nSend, f.kMaster),
      note:
        `${notes}; the verdict is ` +
        (f.dSend ? "the daemon's send turns' in its main thread's time" : "the addon sender's (no daemon run)"),
    },
    {
      id: "sync-vm-backup",
      target: "backup: receive + apply as cheap per connection as the kernel's thread (same VM run)",
      measured:
        `updates per entry: kernel ${ns(f.kBackup)}, ` +
        names
          .map((n) => {
            const t = f.backupThread[n];
            const thread = t ? `; thread ${ns(t)}, ${x(t, f.kBackup)}` : "";
            return `${n} ${ns(f.backup[n])} (${x(f.backup[n], f.kBackup)}${thread})`;
          })
          .join(", ") +
        `; creates: kernel ${ns(f.kCreate)}, ` +
        names.map((n) => `${n} ${ns(f.create[n])}`).join(", "),
      // like the master's: its main thread against the kernel's thread where measured
      status: verdict(f.backupThread[DAEMON] ?? f.backup[DAEMON], f.kBackup),
      note:
        `the verdict is ${DAEMON}'s, the socket src/proxy/sync.ts uses, ` +
        (f.backupThread[DAEMON] ? "in its main thread's time" : "in its process's time (no thread figure)"),
    },
    {
      id: "sync-vm-path",
      target: "kernel master's packet path (check + append), daemon on − off",
      measured:
        `${path.map((v) => ns({ median: v } as Stat)).join(", ")} per entry by round; wasmvs's emit ` + `${ns(emit)}`,
      status: "REF",
      note: "the VM's busy CPU less the thread: the connections' own cost varies far more than this (noise)",
    },
  ];
  return targets;
}
