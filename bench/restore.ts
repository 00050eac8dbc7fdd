// Restore (-R) throughput: parseRestore alone (what `wasmvs sync -R` reads) and `wasmvs -R --target proxy`
// against a running proxy (a separate process), at 10k and 100k lines, interleaved rounds, medians with
// min-max; and a long-lived connection's round trip through that proxy while it applies the restore, and
// a new connection every 10 ms timed to its first echoed byte, against the same idle in the same run.
//   node --import tsx bench/restore.ts [--rounds 3] [--sizes 10000,100000] [--nice N] [--pin]
// The proxy runs with bench/loop-watch.mjs preloaded: besides the round trips, the longest stretch of CPU
// the proxy spent without a turn of its event loop, idle and during the restore (what no load can inflate).
// --nice runs the proxy and the pinger (the held connection's client and its backend) under nice(1): on a
// loaded machine a busy proxy waits for its share of the CPU, and so does the pinger, so the round trip
// during a restore measures the machine's load as well as the proxy's own blocking; at -10 (as root) they
// get the CPU when they want it, and what is left is the proxy's.
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import * as os from "node:os";
import { tmpdir } from "node:os";
import { parseRestore } from "../src/model/ipvsadm.ts";
import { runIpvsadm } from "../src/cli/ipvsadm.ts";
import { numericResolver } from "../src/model/names.ts";
import { ProxyTarget } from "../src/proxy/control.ts";

const arg = (name: string, dflt: string) => {
  const i = process.argv.indexOf(name);
  return i > 0 ? process.argv[i + 1] : dflt;
};
const rounds = Number(arg("--rounds", "3"));
const sizes = arg("--sizes", "10000,100000").split(",").map(Number);
const nice = Number(arg("--nice", "0"));
// --pin: the proxy (every thread of it) on CPU 1, this process (the restore's client) and the pinger on CPU
// 0, as on a node where the proxy has a core to itself: what is left of the delay is the proxy's own threads'
const pin = process.argv.includes("--pin");
const pinned = (cpu: number, argv: string[]) => (pin ? ["taskset", "-c", String(cpu), ...argv] : argv);
const niced = (argv: string[], opts: Parameters<typeof spawn>[2], cpu = 0) => {
  const a = pinned(cpu, nice ? ["nice", "-n", String(nice), ...argv] : argv);
  return spawn(a[0], a.slice(1), opts);
};
if (pin) execFileSync("taskset", ["-a", "-p", "-c", "0", String(process.pid)], { stdio: "ignore" });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** `lines` restore lines: services on 127.0.x.y (local, so the proxy adds no address), nine real servers each. */
function restoreText(lines: number, backendPort: number): string {
  const out: string[] = [];
  for (let i = 0; out.length < lines; i++) {
    const vip = `127.1.${(i >> 8) & 255}.${i & 255}`;
    out.push(`-A -t ${vip}:${20000 + (i >> 16)} -s rr`);
    for (let j = 1; j <= 9 && out.length < lines; j++)
      out.push(`-a -t ${vip}:${20000 + (i >> 16)} -r 127.0.0.${j}:${backendPort} -m -w 1`);
  }
  return out.join("\n") + "\n";
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
};
const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(s.length * p))];
};
const fmt = (xs: number[]) =>
  `median ${median(xs).toFixed(0)} (min ${Math.min(...xs).toFixed(0)}, max ${Math.max(...xs).toFixed(0)})`;

// The backend and the pinger live in a child process (plain JS), so this process's own work does not delay them.
const PINGER = `
const net = require("node:net");
const srv = net.createServer((s) => { s.on("data", (d) => s.write(d)); s.on("error", () => {}); });
srv.listen(0, "127.0.0.1", () => process.stdout.write(JSON.stringify({ port: srv.address().port }) + "\\n"));
let sock, port, rtts = [], connects = [], at = [], on = false, sent = [];
// a new connection every 10 ms too, timed from connect() to its first echoed byte (accept, schedule, connect)
const connectTick = () => {
  if (!on) return;
  const t = performance.now(), wall = Date.now();
  const c = net.connect(port, "127.0.0.1", () => c.write("c"));
  c.once("data", () => { connects.push(performance.now() - t); at.push(wall); c.destroy(); });
  c.on("error", () => { connects.push(1e9); at.push(wall); });
  setTimeout(connectTick, 10);
};
process.stdin.setEncoding("utf8").on("data", (d) => {
  for (const line of d.split("\\n").filter(Boolean)) {
    const m = JSON.parse(line);
    if (m.connect) {
      port = m.connect;
      const connected = () => process.stdout.write(JSON.stringify({ connected: true }) + "\\n");
      sock = net.connect(m.connect, "127.0.0.1", connected);
      sock.on("error", () => {});
      sock.on("data", (d) => {
        const now = performance.now();
        for (let i = 0; i < d.length && sent.length; i++) rtts.push(now - sent.shift());
      });
    }
    if (m.start) {
      rtts = [];
      connects = [];
      at = [];
      on = true;
      const tick = () => { if (!on) return; sent.push(performance.now()); sock.write("p"); setTimeout(tick, 10); };
      tick();
      connectTick();
    }
    if (m.stop) {
      on = false;
      sent = [];
      setTimeout(() => process.stdout.write(JSON.stringify({ rtts, connects, at }) + "\\n"), 50);
    }
  }
});`;

class Pinger {
  readonly child: ChildProcess;
  private waiters: ((m: any) => void)[] = [];
  constructor() {
    this.child = niced([process.execPath, "-e", PINGER], { stdio: ["pipe", "pipe", "inherit"] });
    let buf = "";
    this.child.stdout!.setEncoding("utf8").on("data", (d: string) => {
      buf += d;
      let nl: number;
      while ((nl = buf.indexOf("\n")) >= 0) {
        const m = JSON.parse(buf.slice(0, nl));
        buf = buf.slice(nl + 1);
        this.waiters.shift()?.(m);
      }
    });
  }
  next(): Promise<any> {
    return new Promise((r) => this.waiters.push(r));
  }
  send(m: unknown) {
    this.child.stdin!.write(JSON.stringify(m) + "\n");
  }
}

async function main() {
  const dir = mkdtempSync(`${tmpdir()}/wvs-restore-`);
  const pinger = new Pinger();
  const { port: backendPort } = await pinger.next();
  const ctl = `${dir}/ctl.sock`,
    cfg = `${dir}/p.yaml`;
  writeFileSync(
    cfg,
    `proxy: { control: ${ctl}, vipInterface: null, logLevel: warn }
services:
  - { protocol: tcp, addr: 127.0.0.1, port: 19999, scheduler: rr,
      realServers: [ { addr: 127.0.0.1, port: ${backendPort} } ] }
`,
  );
  const sink = { write: (_s: string) => true };
  const err = {
    s: "",
    write(x: string) {
      this.s += x;
      return true;
    },
  };
  type Gc = Record<string, { n: number; ms: number; max: number }>;
  type Stat = { p99: number; max: number; total?: number };
  type Watch = { ticks: number; wall: Stat; cpu: Stat; wait?: Stat; gc?: Gc };
  const res: Record<
    string,
    {
      parse: number[];
      parseCpu: number[];
      proxy: number[];
      idle: number[];
      during: number[];
      idleConnect: number[];
      duringConnect: number[];
      idleLoop: Watch[];
      duringLoop: Watch[];
    }
  > = {};
  // a fresh proxy per measurement: deleting thousands of services costs a core GC each (see docs/proxy.md)
  for (let r = 0; r < rounds; r++) {
    for (const n of sizes) {
      const argv = [process.execPath, new URL("../bin/wasmvs.js", import.meta.url).pathname, "proxy", "run", "-c", cfg];
      const watch = `${dir}/loop-watch.json`;
      const preload = new URL("./loop-watch.mjs", import.meta.url).pathname;
      const proxy = niced(
        argv,
        {
          stdio: ["ignore", "inherit", "inherit"],
          env: {
            ...process.env,
            WASMVS_LOOP_WATCH: watch,
            NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ""} --import ${preload}`,
          },
        },
        1,
      );
      const loopWatch = async () => {
        // the figures since the last call
        rmSync(watch, { force: true });
        proxy.kill("SIGUSR2");
        for (let i = 0; i < 200 && !existsSync(watch); i++) await sleep(25);
        await sleep(25);
        return JSON.parse(readFileSync(watch, "utf8"));
      };
      const exited = new Promise((res) => proxy.once("exit", res));
      let t: ProxyTarget | undefined;
      for (let i = 0; i < 1200 && !t; i++) {
        try {
          t = await ProxyTarget.open(ctl, 600000);
        } catch {
          await sleep(100);
        }
      }
      if (!t) throw new Error("the proxy did not start");
      pinger.send({ connect: 19999 });
      await pinger.next();
      const text = restoreText(n, backendPort);
      const row = (res[n] ??= {
        parse: [],
        parseCpu: [],
        proxy: [],
        idle: [],
        during: [],
        idleConnect: [],
        duringConnect: [],
        idleLoop: [],
        duringLoop: [],
      });
      let t0 = performance.now();
      const c0 = process.cpuUsage();
      parseRestore(text);
      row.parse.push(performance.now() - t0);
      const c1 = process.cpuUsage(c0);
      row.parseCpu.push((c1.user + c1.system) / 1000);
      // the connection idle for a second, then during the restore, in the same round
      await loopWatch();
      pinger.send({ start: true });
      await sleep(1000);
      pinger.send({ stop: true });
      const idle = await pinger.next();
      row.idle.push(...idle.rtts);
      row.idleConnect.push(...idle.connects);
      row.idleLoop.push(await loopWatch());
      pinger.send({ start: true });
      // when the proxy answered the batch's last part: after it, only the "apply" (the next state applied)
      const call = t.client.callWithin.bind(t.client);
      let lastPart = 0;
      t.client.callWithin = (ms, op, ...a) =>
        call(ms, op, ...a).then((r) => {
          if (op === "applyPart") lastPart = Date.now();
          return r as never;
        });
      t0 = performance.now();
      const wall0 = Date.now();
      const st = await runIpvsadm(["-R"], t, sink, err, { resolver: numericResolver, stdin: async () => text });
      const wall1 = Date.now();
      row.proxy.push(performance.now() - t0);
      row.duringLoop.push(await loopWatch());
      await sleep(200);
      pinger.send({ stop: true });
      const during = await pinger.next();
      row.during.push(...during.rtts);
      row.duringConnect.push(...during.connects);
      // the new connects over 10 ms, by when they began: while the parts came, or in the apply after them
      const slow = (during.connects as number[])
        .map((ms, i) => ({ ms, at: (during.at as number[])[i] - wall0 }))
        .filter((x) => x.ms > 10);
      const inParts = slow.filter((x) => x.at < lastPart - wall0);
      console.error(
        `  parts answered by ${lastPart - wall0} ms, applied by ${wall1 - wall0} ms; connects over 10 ms: ` +
          `${inParts.length} while the parts came (max ${Math.max(0, ...inParts.map((x) => x.ms)).toFixed(1)}), ` +
          `${slow.length - inParts.length} after (max ${Math.max(0, ...slow.map((x) => x.ms)).toFixed(1)})`,
      );
      if (st !== 0) throw new Error(`restore failed: ${err.s}`);
      console.error(
        `round ${r + 1}, ${n} lines: parse ${row.parse.at(-1)!.toFixed(0)} ms, -R --target proxy ` +
          `${row.proxy.at(-1)!.toFixed(0)} ms`,
      );
      await t.close();
      proxy.kill("SIGINT");
      await sleep(100);
      proxy.kill("SIGINT");
      await exited;
    }
  }
  console.log(
    `restore throughput, ${rounds} interleaved rounds (wall ms on a shared 2-core machine; lines/s from the ` +
      `median${pin ? "; the proxy alone on CPU 1" : ""})` +
      `${nice ? `, the proxy and the pinger at nice ${nice}` : ""}; load average ${os
        .loadavg()
        .map((x) => x.toFixed(1))
        .join(" ")}`,
  );
  for (const n of sizes) {
    const row = res[n];
    console.log(
      `${n} lines: parseRestore ${fmt(row.parse)} ms = ${Math.round(n / (median(row.parse) / 1000))} lines/s ` +
        `(CPU ${fmt(row.parseCpu)} ms = ${Math.round(n / (median(row.parseCpu) / 1000))} lines per CPU second); ` +
        `-R --target proxy ${fmt(row.proxy)} ms = ${Math.round(n / (median(row.proxy) / 1000))} lines/s`,
    );
    console.log(
      `  a held connection's round trip through the proxy: idle p50 ${median(row.idle).toFixed(2)} ms p99 ` +
        `${pct(row.idle, 0.99).toFixed(2)} ms; ` +
        (`during the restore p50 ${median(row.during).toFixed(2)} ms p99 ${pct(row.during, 0.99).toFixed(2)} ms ` +
          `max ${Math.max(...row.during).toFixed(1)} ms (${row.during.length} pings)`),
    );
    const lat = (xs: number[]) =>
      `p50 ${median(xs).toFixed(2)} / p99 ${pct(xs, 0.99).toFixed(2)} / ` +
      `max ${Math.max(...xs).toFixed(1)} ms (${xs.length})`;
    console.log(
      `  a new connection every 10 ms, connect to its first echoed byte: idle ${lat(row.idleConnect)}; during the ` +
        `restore ${lat(row.duringConnect)}`,
    );
    const worst = (ws: Watch[], k: "wall" | "cpu", f: "p99" | "max") => Math.max(...ws.map((w) => w[k][f])).toFixed(1);
    console.log(
      `  the proxy's loop between two turns (1 ms timer; worst of the rounds), idle / during the restore: ` +
        (`CPU p99 ${worst(row.idleLoop, "cpu", "p99")} / ${worst(row.duringLoop, "cpu", "p99")} ms, max ` +
          `${worst(row.idleLoop, "cpu", "max")} / `) +
        (`${worst(row.duringLoop, "cpu", "max")} ms; wall p99 ${worst(row.idleLoop, "wall", "p99")} / ` +
          `${worst(row.duringLoop, "wall", "p99")} ms, `) +
        `max ${worst(row.idleLoop, "wall", "max")} / ${worst(row.duringLoop, "wall", "max")} ms`,
    );
  }
  for (const n of sizes) {
    // the proxy's main thread during the restore, per round: its CPU, and the time it was ready to run but
    // waited for a core (a thread busy with slices never sleeps, so it is not woken ahead of others)
    const sched = res[n].duringLoop.map(
      (w) =>
        `CPU ${w.cpu.total} ms, waiting for a core ${w.wait?.total ?? "?"} ms ` +
        `(between two turns p99 ${w.wait?.p99 ?? "?"}, max ${w.wait?.max ?? "?"} ms)`,
    );
    console.log(`  the proxy's main thread during the restore, per round: ${sched.join(" | ")}`);
  }
  for (const n of sizes) {
    // the proxy's GC pauses during the restore (perf_hooks): per round, total ms and the longest, by kind
    const gcs = res[n].duringLoop.map((w) =>
      Object.entries(w.gc ?? {})
        .map(([k, g]) => `${k} ${g.n}x ${g.ms} ms (max ${g.max})`)
        .join(", "),
    );
    console.log(`  the proxy's GC during the restore, per round: ${gcs.join(" | ")}`);
  }
  pinger.child.kill();
  rmSync(dir, { recursive: true, force: true });
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
