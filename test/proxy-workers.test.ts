// Socket mode's N workers (src/proxy/workers.ts) in network namespaces, with real clients and backends: the
// scheduling decisions with 2 workers are the one-thread proxy's over the same recorded sequence, a worker
// that dies takes only its own connections and is started again, reloads under load with 2 workers lose
// nothing, the control socket, -Ln, -Lnc, /metrics, health checks and drain see and act on one table, and bad
// --workers values are refused with the usage. Needs root (a counted SKIP otherwise).
import { test } from "uvu";
import * as assert from "uvu/assert";
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { fileURLToPath } from "node:url";
import { setup, teardown, agent, NS, ADDR, type Agent } from "./fixtures/proxy/netns.ts";
import { ProxyTarget } from "../src/proxy/control.ts";
import { runIpvsadm } from "../src/cli/ipvsadm.ts";
import { guardedBefore, needs, skip } from "./helpers/skip.ts";

const B = ADDR.backend4;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
let client: Agent, lb: Agent, be: Agent;

async function waitFor(fn: () => Promise<boolean> | boolean, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await fn()) return;
    await sleep(20);
  }
  assert.unreachable(`timed out waiting for ${what}`);
}

const server = (addr: string, weight: number) => `{ addr: ${addr}, port: 8080, weight: ${weight} }`;
function config(workers: number, services: string, metrics = "null"): string {
  return `proxy:
  control: null
  metrics: ${metrics}
  vipInterface: wasmvs0
  tick: 100
  connectTimeout: 1
  drainTimeout: 1.5
  workers: ${workers}
services:
${services}`;
}
const LC_VIP = ADDR.vip4(1),
  WLC_VIP = ADDR.vip4(2),
  LOAD_VIP = ADDR.vip4(3);
const SERVICES = `  - { protocol: tcp, addr: ${LC_VIP}, port: 80, scheduler: lc, realServers: [ ${[1, 2, 3, 4]
  .map((i) => server(B(i), 1))
  .join(", ")} ] }
  - { protocol: tcp, addr: ${WLC_VIP}, port: 80, scheduler: wlc, realServers: [ ${[1, 2, 3, 4]
    .map((i) => server(B(i), [1, 2, 3, 1][i - 1]))
    .join(", ")} ] }
`;
const loadServices = (weights: number[]) =>
  `  - { protocol: tcp, addr: ${LOAD_VIP}, port: 80, scheduler: wlc, realServers: [ ${weights
    .map((w, i) => server(B(i + 1), w))
    .join(", ")} ] }
`;

interface Table {
  key: string;
  dests: { key: string; active: number; inact: number }[];
}
async function activeOf(vip: string): Promise<number> {
  const t: Table[] = await lb.call("proxyWorkers", "table");
  const s = t.find((x) => x.key.includes(`${vip}:80`));
  return s ? s.dests.reduce((n, d) => n + d.active, 0) : -1;
}

// A recorded sequence of opens and closes; after each step the core is seen to have taken it (its active
// count), so both runs feed the core the same inputs in the same order. Returns the backend of each open.
async function recordedRun(vip: string): Promise<string[]> {
  const steps: (number | "open")[] = [
    ...Array(6).fill("open"),
    1,
    4,
    ...Array(5).fill("open"),
    0,
    7,
    9,
    ...Array(4).fill("open"),
  ];
  const handles: number[] = [];
  const chosen: string[] = [];
  let open = 0;
  for (const step of steps) {
    if (step === "open") {
      const r: any = await client.call("openOne", vip, 80);
      assert.ok("h" in r, `connected: ${JSON.stringify(r)}`);
      handles.push(r.h);
      chosen.push(r.backend);
      open++;
    } else {
      await client.call("closeHandle", handles[step]);
      open--;
    }
    await waitFor(async () => (await activeOf(vip)) === open, 5000, `${open} active on ${vip}`);
  }
  await client.call("closeAll");
  return chosen;
}

// ipvsadm's front end on the proxy's control socket: its output (exit status 0 asserted)
async function ipvsadm(t: ProxyTarget, ...args: string[]): Promise<string> {
  let out = "";
  const sink = { write: (x: string) => void (out += x) } as Parameters<typeof runIpvsadm>[2];
  const st = await runIpvsadm(args, t, sink, sink, {});
  assert.is(st, 0, `ipvsadm ${args.join(" ")}: ${out}`);
  return out;
}

// IPVS ActiveConn of one destination as /metrics gives it (-1: no such series)
async function activeMetric(url: string, dest: string): Promise<number> {
  const m: string = await lb.call("fetchText", url);
  const re = new RegExp(`wasmvs_proxy_destination_active_connections\\{[^}]*destination="${dest}"\\} (\\d+)`);
  return Number(m.match(re)?.[1] ?? -1);
}

const why = needs(["ip"], "apt-get install -y iproute2");
if (why) {
  skip(import.meta.url, "socket-mode proxy workers in network namespaces (every test of this file)", why);
} else {
  guardedBefore(test, async () => {
    setup(6);
    [client, lb, be] = await Promise.all([agent(NS.client), agent(NS.lb), agent(NS.backend)]);
    for (let i = 1; i <= 5; i++) await be.call("backend", B(i), 8080, "tcp");
  });
  test.after(async () => {
    await lb?.call("stopProxy").catch(() => {});
    await Promise.all([client?.stop(), lb?.stop(), be?.stop()]);
    teardown();
  });

  test("lc and wlc with 2 workers choose as the one-thread proxy over the same recorded sequence", async () => {
    const runs: Record<number, { lc: string[]; wlc: string[]; workersUsed: number[] }> = {};
    for (const workers of [1, 2]) {
      await lb.call("startProxy", config(workers, SERVICES));
      try {
        const lc = await recordedRun(LC_VIP);
        // the workers' shares, seen while connections are open (then the wlc run)
        const used = new Set<number>();
        const handles: any[] = await client.call("openSeq", WLC_VIP, 80, 4, true);
        for (const c of (await lb.call<any[]>("proxyWorkers", "conns")) ?? []) used.add(c.worker);
        await client.call("closeAll");
        await waitFor(async () => (await activeOf(WLC_VIP)) === 0, 5000, "the probe connections closed");
        assert.is(handles.length, 4);
        const wlc = await recordedRun(WLC_VIP);
        runs[workers] = { lc, wlc, workersUsed: [...used].sort() };
      } finally {
        await lb.call("stopProxy");
      }
    }
    assert.equal(runs[2].workersUsed, [0, 1], "both workers carried connections");
    assert.equal(runs[1].workersUsed, [-1], "one thread: the main thread pumps");
    assert.equal(runs[2].lc, runs[1].lc, "lc");
    assert.equal(runs[2].wlc, runs[1].wlc, "wlc");
    assert.ok(new Set(runs[2].wlc).size >= 3, `wlc spread over the backends: ${runs[2].wlc}`);
  });

  test("a worker that dies: its connections are reset and counted, the other's all live on; restarted", async () => {
    await lb.call("startProxy", config(2, loadServices([1, 1, 1, 1]), '"127.0.0.1:9479"'));
    try {
      const held: any[] = await client.call("openSeq", LOAD_VIP, 80, 20, true);
      assert.ok(
        held.every((o) => "h" in o),
        "all 20 connected",
      );
      const conns: { cport: number; worker: number }[] = await lb.call("proxyWorkers", "conns");
      const onWorker = new Map(conns.map((c) => [c.cport, c.worker]));
      const survivors = held.filter((o) => onWorker.get(o.lport) === 1).map((o) => o.h);
      const victims = held.filter((o) => onWorker.get(o.lport) === 0).map((o) => o.h);
      assert.ok(survivors.length >= 5 && victims.length >= 5, `spread: ${survivors.length}/${victims.length}`);
      await client.call("loadStart", LOAD_VIP, 80, 6);
      await sleep(600);
      await lb.call("proxyWorkers", "fail", 0);
      await waitFor(
        async () => (await lb.call<any>("proxyWorkers", "status")).restarts === 1,
        10000,
        "the worker restarted",
      );
      await sleep(600); // load goes on through the restarted worker and the other one
      const load: { ok: number; fail: number; errors: string[] } = await client.call("loadStop");
      const st: any = await lb.call("proxyWorkers", "status");
      // the other worker's connections: every one still answers (the goal: zero lost)
      const alive: boolean[] = await client.call("pingAll", survivors);
      assert.is(alive.filter(Boolean).length, survivors.length, "the surviving worker's connections all answer");
      const dead: boolean[] = await client.call("pingAll", victims);
      assert.is(dead.filter(Boolean).length, 0, "the dead worker's connections were reset");
      // lost: the held ones on worker 0 and the load's connections in flight there at the time, no more
      assert.ok(st.lost >= victims.length && st.lost <= victims.length + 6, `lost ${st.lost}`);
      assert.ok(load.fail <= 6, `load failures ${load.fail}: ${load.errors}`);
      assert.ok(load.ok > 20, `load went on: ${load.ok}`);
      // the metrics say so too: the restart, and each lost connection under its reason
      const metrics: string = await lb.call("fetchText", "http://127.0.0.1:9479/metrics");
      assert.match(metrics, /\nwasmvs_proxy_worker_restarts_total 1\n/);
      assert.match(metrics, new RegExp(`\\nwasmvs_proxy_drops_total\\{reason="worker_died"\\} ${st.lost}\\n`));
      assert.match(metrics, /\nwasmvs_proxy_worker_tcp_connections\{worker="1"\} \d+\n/);
      // after the restart, new connections reach both workers again
      const after: any[] = await client.call("openSeq", LOAD_VIP, 80, 8, true);
      assert.ok(after.every((o) => "h" in o));
      const workers = new Set((await lb.call<any[]>("proxyWorkers", "conns")).map((c) => c.worker));
      assert.ok(workers.has(0) && workers.has(1), `both workers take connections: ${[...workers]}`);
      // and the one table shows what is open: the survivors and the 8 new ones, nothing leaked
      const want = survivors.length + 8;
      const end = Date.now() + 5000;
      while ((await activeOf(LOAD_VIP)) !== want && Date.now() < end) await sleep(20);
      const table = await lb.call<Table[]>("proxyWorkers", "table");
      assert.is(
        await activeOf(LOAD_VIP),
        want,
        `active in the one table: ${JSON.stringify(table)}; ${JSON.stringify(await lb.call("proxyWorkers", "conns"))}`,
      );
      await client.call("closeAll");
      await waitFor(async () => (await activeOf(LOAD_VIP)) === 0, 5000, "no connection left active");
    } finally {
      await lb.call("stopProxy");
    }
  });

  // The race behind a flaky run (21 active against 18 open): a worker dies, its clients are reset and one
  // reconnects from the same source port before the main thread has learned of the death. The worker is held
  // between shutting its relay and ending, so the reconnect comes first every time. The OS accepting the same
  // 4-tuple again proves the old socket gone: its entry must be closed before the new SYN is scheduled.
  test("a client back on the same port before its dead worker's end is known: one entry, the new one", async () => {
    await lb.call("startProxy", config(2, loadServices([1, 1, 1, 1])));
    try {
      const held: any[] = await client.call("openSeq", LOAD_VIP, 80, 12, true);
      assert.ok(
        held.every((o) => "h" in o),
        "all 12 connected",
      );
      const conns: { cport: number; worker: number }[] = await lb.call("proxyWorkers", "conns");
      const onWorker = new Map(conns.map((c) => [c.cport, c.worker]));
      const doomed = held.filter((o) => onWorker.get(o.lport) === 0);
      const others = held.filter((o) => onWorker.get(o.lport) === 1);
      assert.is(doomed.length, 6, "the least loaded worker takes each: 6 and 6");
      // worker 1 emptied: the reconnects below all go to it, as worker 0 still counts its 6 (then fewer)
      for (const o of others) await client.call("closeHandle", o.h);
      await waitFor(async () => (await activeOf(LOAD_VIP)) === 6, 5000, "6 active");
      await lb.call("proxyWorkers", "hold", 0);
      await waitFor(
        async () =>
          (
            await client.call<any[]>(
              "state",
              doomed.map((o) => o.h),
            )
          ).every((x) => !x.alive),
        5000,
        "worker 0's clients reset",
      );
      const back: number[] = [];
      for (const o of doomed.slice(0, 3)) {
        const r: any = await client.call("openOne", LOAD_VIP, 80, 3000, o.lport);
        assert.ok("h" in r, `reconnected from port ${o.lport}: ${JSON.stringify(r)}`);
        assert.is(r.lport, o.lport);
        back.push(r.h);
      }
      assert.equal(await client.call("pingAll", back), [true, true, true], "the reconnected clients are served");
      await lb.call("proxyWorkers", "release", 0);
      await waitFor(
        async () => (await lb.call<any>("proxyWorkers", "status")).restarts === 1,
        10000,
        "the worker restarted",
      );
      // the one table: the 3 reconnected connections active, the dead worker's 6 entries closed
      const end = Date.now() + 3000;
      while ((await activeOf(LOAD_VIP)) !== 3 && Date.now() < end) await sleep(20);
      const table = await lb.call<Table[]>("proxyWorkers", "table");
      assert.is(await activeOf(LOAD_VIP), 3, `active in the one table: ${JSON.stringify(table)}`);
      assert.equal(await client.call("pingAll", back), [true, true, true], "and they live on");
      // each old connection counted once: 3 superseded at the reconnect, 3 lost with the worker
      const st: any = await lb.call("proxyWorkers", "status");
      const drops: Record<string, number> = await lb.call("proxyWorkers", "drops");
      assert.equal([st.lost, drops.superseded ?? 0, drops.worker_died], [3, 3, 3]);
      await client.call("closeAll");
      await waitFor(async () => (await activeOf(LOAD_VIP)) === 0, 5000, "no connection left active");
    } finally {
      await lb.call("stopProxy");
    }
  });

  // The other race of that flaky run (19 active against 18): a connection handed to a worker that dies before
  // connecting its backend. Its entry is in SYN_RECV, where a client's RST changes nothing (the kernel's
  // table: 60 s more, counted active); but the client's reset came from this side, as a backend's would.
  test("a connection a dying worker held before its backend answered: its entry closes", async () => {
    await lb.call("startProxy", config(2, loadServices([1, 1, 1, 1])));
    try {
      const two: any[] = await client.call("openSeq", LOAD_VIP, 80, 2, true);
      const conns: { cport: number; worker: number }[] = await lb.call("proxyWorkers", "conns");
      const onWorker = new Map(conns.map((c) => [c.cport, c.worker]));
      const keep = two.find((o) => onWorker.get(o.lport) === 1);
      // worker 0 emptied: the next connection goes to it, held, which never takes it
      for (const o of two.filter((o) => o !== keep)) await client.call("closeHandle", o.h);
      await waitFor(async () => (await activeOf(LOAD_VIP)) === 1, 5000, "1 active");
      await lb.call("proxyWorkers", "hold", 0);
      const pending = client.call<any>("openOne", LOAD_VIP, 80, 8000);
      await waitFor(async () => (await activeOf(LOAD_VIP)) === 2, 5000, "the new connection scheduled");
      await lb.call("proxyWorkers", "release", 0);
      const r = await pending;
      assert.ok("error" in r, `the connection the dead worker held is reset: ${JSON.stringify(r)}`);
      await waitFor(
        async () => (await lb.call<any>("proxyWorkers", "status")).restarts === 1,
        10000,
        "the worker restarted",
      );
      const end = Date.now() + 3000;
      while ((await activeOf(LOAD_VIP)) !== 1 && Date.now() < end) await sleep(20);
      const table = await lb.call<Table[]>("proxyWorkers", "table");
      assert.is(await activeOf(LOAD_VIP), 1, `active in the one table: ${JSON.stringify(table)}`);
      assert.equal(await client.call("pingAll", [keep.h]), [true], "the other worker's connection lives on");
      assert.is((await lb.call<any>("proxyWorkers", "status")).lost, 1);
      await client.call("closeAll");
    } finally {
      await lb.call("stopProxy");
    }
  });

  // What an operator sees and does with 2 workers, whatever the machine's cores: one table through the control
  // socket (ipvsadm -Ln and -Lnc) and /metrics, a failing health check quiescing a backend whose connections
  // sit on both workers, and a drain closing them on both at its bound.
  test("2 workers: -Ln, -Lnc and /metrics show one table; health checks and drain act on both", async () => {
    const dir = mkdtempSync(`${tmpdir()}/wasmvs-workers-ops-`);
    const flag = `${dir}/up`;
    writeFileSync(flag, "");
    const vip = WLC_VIP;
    const b1 = `${B(1)}:8080`,
      b2 = `${B(2)}:8080`;
    const text = config(
      2,
      `  - protocol: tcp
    addr: ${vip}
    port: 80
    scheduler: wrr
    realServers:
      - { addr: ${B(1)}, port: 8080, weight: 2,
          health: { type: exec, command: [test, -e, ${flag}], interval: 0.05, rise: 2, fall: 2 } }
      - { addr: ${B(2)}, port: 8080 }
`,
      '"127.0.0.1:9478"',
    ).replace("control: null", `control: ${dir}/ctl.sock`);
    await lb.call("startProxy", text);
    const t = await ProxyTarget.open(`${dir}/ctl.sock`);
    try {
      const opened: any[] = await client.call("openSeq", vip, 80, 8, true);
      assert.ok(
        opened.every((o) => "h" in o),
        "all 8 connected",
      );
      const conns: { cport: number; worker: number }[] = await lb.call("proxyWorkers", "conns");
      assert.equal([...new Set(conns.map((c) => c.worker))].sort(), [0, 1], "both workers carry connections");
      await waitFor(async () => (await activeOf(vip)) === 8, 5000, "8 active");
      // -Ln: one service, its two destinations, ActiveConn summing to the 8 open connections
      const ln = await ipvsadm(t, "-Ln");
      const rows = [...ln.matchAll(/->\s+(\S+)\s+\w+\s+(\d+)\s+(\d+)\s+(\d+)/g)];
      const on1 = opened.filter((o) => o.backend === b1);
      const want = [
        [b1, on1.length],
        [b2, 8 - on1.length],
      ];
      assert.equal(rows.map((r) => [r[1], Number(r[3])]).sort(), want, ln);
      // -Lnc: each client port once, ESTABLISHED, whichever worker pumps it
      const lnc = await ipvsadm(t, "-Lnc");
      const ports = [...lnc.matchAll(/TCP\s+\S+\s+ESTABLISHED\s+\S+:(\d+)\s/g)].map((m) => Number(m[1])).sort();
      assert.equal(ports, opened.map((o) => o.lport).sort(), lnc);
      const metric = (dest: string) => activeMetric("http://127.0.0.1:9478/metrics", dest);
      assert.equal([await metric(b1), await metric(b2)], [on1.length, 8 - on1.length], "/metrics: the same counts");
      // a health check fails: B1 quiesced, new connections go to B2, B1's (on both workers) live on
      const workersOf = (hs: any[]) => new Set(hs.map((o) => conns.find((c) => c.cport === o.lport)?.worker));
      assert.is(workersOf(on1).size, 2, "B1's connections sit on both workers");
      rmSync(flag);
      const weight = async () => (await t.services())[0].realServers.find((r) => r.addr === B(1))!.weight;
      await waitFor(async () => (await weight()) === 0, 3000, "B1 quiesced");
      const during: any[] = await client.call("openSeq", vip, 80, 4, false);
      assert.ok(
        during.every((o) => o.backend === b2),
        `no new connection to the quiesced B1: ${JSON.stringify(during)}`,
      );
      const alive = (hs: any[]) =>
        client.call<boolean[]>(
          "pingAll",
          hs.map((o) => o.h),
        );
      assert.ok((await alive(on1)).every(Boolean), "B1's established connections live on");
      writeFileSync(flag, "");
      await waitFor(async () => (await weight()) === 2, 3000, "B1 back");
      // drain: B1 removed; its connections live until the bound (drainTimeout 1.5 s), then close on both workers
      await t.deleteRealServer({ protocol: "tcp", addr: vip, port: 80 } as any, { addr: B(1), port: 8080 });
      await sleep(400);
      assert.ok((await alive(on1)).every(Boolean), "kept after removal, within the bound");
      await waitFor(
        async () =>
          (
            await client.call<any[]>(
              "state",
              on1.map((o) => o.h),
            )
          ).every((x) => !x.alive),
        5000,
        "B1's connections closed at the bound",
      );
      const on2 = opened.filter((o) => o.backend === b2);
      assert.ok((await alive(on2)).every(Boolean), "B2's connections untouched");
      await waitFor(async () => (await activeOf(vip)) === on2.length, 5000, `${on2.length} active after the drain`);
      await client.call("closeAll");
      await waitFor(async () => (await activeOf(vip)) === 0, 5000, "none active");
      const st: any = await lb.call("proxyWorkers", "status");
      assert.equal([st.restarts, st.lost], [0, 0]);
    } finally {
      await t.close();
      await lb.call("stopProxy");
      rmSync(dir, { recursive: true, force: true });
    }
  });

  // Workers ended with connections open, again and again: by an exception and by the proxy's stop. Before
  // each worker shut its relay from its own JS first, this crashed the process now and then in V8's teardown
  // (free(): invalid pointer); the agent running the proxy must survive every round.
  test("workers that die and stop with connections open, 6 rounds: the process survives", async () => {
    for (let round = 0; round < 6; round++) {
      await lb.call("startProxy", config(2, loadServices([1, 1, 1, 1])));
      const held: any[] = await client.call("openSeq", LOAD_VIP, 80, 6, true);
      assert.ok(
        held.every((o) => "h" in o),
        `round ${round}: connected`,
      );
      await client.call("loadStart", LOAD_VIP, 80, 4);
      await sleep(200);
      await lb.call("proxyWorkers", "fail", round % 2);
      await waitFor(
        async () => (await lb.call<any>("proxyWorkers", "status")).restarts === 1,
        10000,
        `round ${round}: the worker restarted`,
      );
      await sleep(200);
      await lb.call("stopProxy"); // the workers end with the load's connections and the held ones open
      await client.call("loadStop");
      await client.call("closeAll");
    }
    assert.ok((await lb.call<number>("fdCount")) > 0, "the proxy's process is alive");
  });

  test("reloads under load with 2 workers lose no connection", async () => {
    await lb.call("startProxy", config(2, loadServices([1, 1, 1, 1])));
    try {
      const held: any[] = await client.call("openSeq", LOAD_VIP, 80, 8, true);
      await client.call("loadStart", LOAD_VIP, 80, 6);
      const weightSets = [
        [1, 2, 3, 1],
        [4, 1, 1, 1, 2],
        [1, 1, 1, 1, 1],
        [2, 2, 1, 1, 3],
        [1, 1, 1, 1, 1],
      ];
      for (const w of weightSets) {
        await sleep(150);
        await lb.call("reloadProxy", config(2, loadServices(w)));
      }
      await sleep(300);
      const load: { ok: number; fail: number; errors: string[] } = await client.call("loadStop");
      assert.is(load.fail, 0, `failures: ${load.errors}`);
      assert.ok(load.ok > 20, `served under reloads: ${load.ok}`);
      const alive: boolean[] = await client.call(
        "pingAll",
        held.map((o) => o.h),
      );
      assert.is(alive.filter(Boolean).length, held.length, "held connections live through the reloads");
      const st: any = await lb.call("proxyWorkers", "status");
      assert.equal([st.workers, st.restarts, st.lost], [2, 0, 0]);
      await client.call("closeAll");
    } finally {
      await lb.call("stopProxy");
    }
  });
}

// ---- bad values: refused before anything starts ------------------------------------------------------
const bin = fileURLToPath(new URL("../bin/wasmvs.js", import.meta.url));
function run(args: string[]): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, [bin, ...args], { stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "",
      stderr = "";
    p.stdout.on("data", (d) => (stdout += d));
    p.stderr.on("data", (d) => (stderr += d));
    const timer = setTimeout(() => p.kill("SIGKILL"), 60_000);
    p.on("close", (status) => {
      clearTimeout(timer);
      resolve({ status, stdout, stderr });
    });
  });
}

test("bad --workers values exit 2 with the usage; bad proxy.workers values are refused naming the key", async () => {
  for (const v of ["0", "-1", "1e9", "x", "1025", "2.5", "__proto__", "constructor", ""]) {
    const r = await run(["proxy", "run", "-c", "/nonexistent", "--workers", v]);
    assert.is(r.status, 2, `--workers '${v}': ${r.stderr}`);
    assert.match(r.stderr, /--workers/);
    assert.match(r.stderr, /usage: wasmvs proxy /);
    assert.is(r.stdout, "");
  }
  const dir = mkdtempSync(`${tmpdir()}/wasmvs-workers-`);
  try {
    for (const v of ["0", "-1", "1e9", "x", "2.5", "[2]", "{}", "null"]) {
      const file = `${dir}/p.yaml`;
      writeFileSync(file, `proxy:\n  workers: ${v}\nservices: []\n`);
      const r = await run(["proxy", "check", "-c", file]);
      assert.is(r.status, 1, `workers: ${v}: ${r.stdout}${r.stderr}`);
      assert.match(r.stderr, /proxy\.workers/);
    }
    writeFileSync(`${dir}/ok.yaml`, "proxy:\n  workers: auto\nservices: []\n");
    assert.is((await run(["proxy", "check", "-c", `${dir}/ok.yaml`])).status, 0);
    // packet mode's I/O threads: 1..64; usage errors naming the field
    const packet = ["proxy", "run", "-c", `${dir}/ok.yaml`, "--mode", "packet", "--interface", "lo"];
    const many = await run([...packet, "--local-address", "10.9.9.9", "--workers", "65"]);
    assert.is(many.status, 2, many.stderr);
    assert.match(many.stderr, "proxy.workers (--workers): packet mode runs 1..64 I/O threads, not 65");
    // fwmark services with threads: one queue each, so the last, proxy.fwmarkQueue + workers - 1, must exist
    const fwm = "proxy:\n  workers: 2\n  fwmarkQueue: 65535\nservices:\n  - { fwmark: 7, realServers: [] }\n";
    writeFileSync(`${dir}/fwmark.yaml`, fwm);
    const marked = await run(["proxy", "run", "-c", `${dir}/fwmark.yaml`, "--mode", "packet", "--interface", "lo"]);
    assert.is(marked.status, 2, marked.stderr);
    assert.match(marked.stderr, "proxy.fwmarkQueue 65535 with proxy.workers (--workers) 2: the fwmark services need");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
