// Runs inside the VM (test/kernel-sync-faults.test.ts): `wasmvs sync` under faults, against the real
// kernel, as real processes. Prints @@RESULT {json}; the host side asserts.
//  1. eperm:   every kernel-talking command run as an unprivileged user: one line, exit 1 (no stack trace)
//  2. reload:  rmmod ip_vs and its schedulers under a running loop, then modprobe: the loop says what is
//              gone (the IPVS family, not a destination), backs off, and repairs the table
//  3. order:   a poller reads /proc/net/ip_vs and /proc/net/fib_trie while services come and go: a virtual
//              server must never exist without its address bound on the dummy interface
//  4. watch:   a cluster loop; malformed events on the watch (it keeps running); then the watch goes
//              silent while the EndpointSlice moves 10.1.0.2 -> 10.1.0.3: the kernel follows within the
//              idle deadline; `sync --check` and the metrics show the watch's age
import { spawn, spawnSync, execFileSync, type ChildProcess } from "node:child_process";
import { readFileSync, writeFileSync, chmodSync } from "node:fs";
import { startFakeKubeApi } from "../helpers/fake-kube-api.ts";

const BIN = "bin/wasmvs.js";
const started = Date.now();
const result: Record<string, unknown> = {};
const sh = (cmd: string) => {
  try {
    return execFileSync("sh", ["-c", cmd], { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
  } catch (e) {
    return `FAILED: ${(e as { stderr?: string }).stderr ?? (e as Error).message}`;
  }
};
const sn = () => sh("ipvsadm -Sn");
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
async function until(fn: () => boolean, ms: number, step = 100): Promise<number> {
  const t0 = Date.now();
  while (Date.now() - t0 < ms) {
    if (fn()) return Date.now() - t0;
    await sleep(step);
  }
  return -1;
}
function loop(args: string[]): { p: ChildProcess; log: () => string } {
  const p = spawn(process.execPath, [BIN, ...args], { stdio: ["ignore", "pipe", "pipe"] });
  let log = "";
  p.stdout!.on("data", (d) => (log += d));
  p.stderr!.on("data", (d) => (log += d));
  return { p, log: () => log };
}
/** A command run without blocking this process (it serves the fake API server meanwhile). */
function runAsync(args: string[]): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, [BIN, ...args], { stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "",
      stderr = "";
    p.stdout!.on("data", (d) => (stdout += d));
    p.stderr!.on("data", (d) => (stderr += d));
    p.once("exit", (status) => resolve({ status, stdout, stderr }));
  });
}
async function stop(p: ChildProcess): Promise<number | null> {
  if (p.exitCode !== null) return p.exitCode;
  const done = new Promise<number | null>((r) => p.once("exit", (c) => r(c)));
  p.kill("SIGTERM");
  const t = setTimeout(() => p.kill("SIGKILL"), 20_000);
  const c = await done;
  clearTimeout(t);
  return c;
}
// WASMVS_SECTIONS=reload,order runs only those (a quicker run by hand)
const only = process.env.WASMVS_SECTIONS?.split(",");
const section = async (name: string, fn: () => Promise<void>) => {
  if (only && !only.includes(name)) return;
  const t0 = Date.now();
  console.log(`# ${name} (${((Date.now() - started) / 1000).toFixed(0)} s in)`);
  try {
    await fn();
  } catch (e) {
    result[`${name}Fatal`] = String((e as Error)?.stack ?? e);
  }
  result[`${name}Ms`] = Date.now() - t0;
};

// ---- 1. EPERM -------------------------------------------------------------------------------------
await section("eperm", async () => {
  writeFileSync("/tmp/eperm-rules.txt", "-A -t 10.0.0.99:80 -s rr\n");
  chmodSync("/tmp/eperm-rules.txt", 0o644);
  const runs: Record<string, { status: number | null; stderr: string; stdout: string }> = {};
  for (const [name, args] of [
    ["sync --once", ["sync", "-R", "/tmp/eperm-rules.txt", "--once"]],
    ["sync --check", ["sync", "--check", "-R", "/tmp/eperm-rules.txt"]],
    ["-A", ["-A", "-t", "10.0.0.99:80", "-s", "rr"]],
    ["-Ln", ["-Ln"]],
    ["-Sn", ["-Sn"]],
  ] as [string, string[]][]) {
    const r = spawnSync(process.execPath, [BIN, ...args], {
      uid: 65534,
      gid: 65534,
      encoding: "utf8",
      env: { ...process.env, HOME: "/tmp" },
      timeout: 300_000,
    });
    runs[name] = { status: r.status, stderr: r.stderr, stdout: r.stdout.slice(0, 500) };
  }
  result.eperm = runs;
});

// ---- 2. module reload under a running loop ---------------------------------------------------------
await section("reload", async () => {
  sh("ipvsadm -C");
  writeFileSync(
    "/tmp/reload-rules.txt",
    "-A -t 10.97.0.1:80 -s rr\n-a -t 10.97.0.1:80 -r 10.1.0.5:8080 -m -w 1\n" +
      "-A -u 10.97.0.1:53 -s wrr\n-a -u 10.97.0.1:53 -r 10.1.0.5:53 -m -w 2\n",
  );
  const l = loop(["sync", "-R", "/tmp/reload-rules.txt", "--sync-period", "2"]);
  result.reloadFirst = await until(() => sn().includes("-a -u 10.97.0.1:53 -r 10.1.0.5:53 -m -w 2"), 240_000, 250);
  // the loop re-adds what is flushed every 2 s: flush and unload until the module goes (at most 40 tries)
  const scheds =
    "ip_vs_rr ip_vs_wrr ip_vs_lc ip_vs_wlc ip_vs_sed ip_vs_nq ip_vs_fo ip_vs_ovf ip_vs_dh ip_vs_sh ip_vs_mh " +
    "ip_vs_lblc ip_vs_lblcr";
  let unloaded = false;
  // the kernel loads ip_vs again by itself when someone asks for the IPVS family (request_module):
  // first with that blocked, so the loop meets a kernel without the family; then as it is
  result.reloadModprobePath = readFileSync("/proc/sys/kernel/modprobe", "utf8").trim();
  writeFileSync("/proc/sys/kernel/modprobe", "/nonexistent-modprobe\n");
  // the loop is held still while the module goes (it re-adds a service between a flush and the rmmod on a
  // loaded machine, which pins the scheduler module): the test is what it does once the family is gone
  l.p.kill("SIGSTOP");
  for (let i = 0; i < 40 && !unloaded; i++) {
    sh(`ipvsadm -C; rmmod ${scheds} 2>/dev/null; rmmod ip_vs`);
    unloaded = !readFileSync("/proc/modules", "utf8")
      .split("\n")
      .some((m) => m.startsWith("ip_vs "));
    if (!unloaded) await sleep(100);
  }
  l.p.kill("SIGCONT");
  result.reloadUnloaded = unloaded;
  const logAt = l.log().length;
  await sleep(6000); // a few failing passes, backing off
  result.reloadWhileGone = l.log().slice(logAt);
  writeFileSync("/proc/sys/kernel/modprobe", `${result.reloadModprobePath}\n`);
  sh("modprobe ip_vs");
  const t0 = Date.now();
  result.reloadRepairedMs = await until(
    () =>
      sn().includes("-a -u 10.97.0.1:53 -r 10.1.0.5:53 -m -w 2") &&
      sn().includes("-a -t 10.97.0.1:80 -r 10.1.0.5:8080 -m -w 1"),
    90_000,
    250,
  );
  result.reloadAfterModprobe = l.log().slice(logAt).slice(-3000);
  result.reloadTable = sn();
  result.reloadWaitedMs = Date.now() - t0;
  result.reloadExit = await stop(l.p);
  result.reloadAlive = result.reloadExit === 0;
  sh("ipvsadm -C");
});

// ---- 3. addresses before their virtual servers, removed after them ---------------------------------
await section("order", async () => {
  sh("ipvsadm -C; modprobe ip_vs_rr");
  const vips = Array.from({ length: 20 }, (_, i) => `10.98.0.${i + 1}`);
  const rules = (n: number) =>
    vips
      .slice(0, n)
      .map((v) => `-A -t ${v}:80 -s rr\n-a -t ${v}:80 -r 10.1.0.5:8080 -m -w 1\n`)
      .join("");
  writeFileSync("/tmp/order-rules.txt", rules(1));
  const l = loop(["sync", "-R", "/tmp/order-rules.txt", "--bind-interface", "wasmvs-ord0", "--sync-period", "1"]);
  result.orderFirst = await until(() => sn().includes("-A -t 10.98.0.1:80"), 240_000, 250);
  // the poller: each sample reads both tables; a VIP in IPVS without its local /32 is a violation
  const hex = (v: string) =>
    v
      .split(".")
      .map((x) => Number(x).toString(16).padStart(2, "0"))
      .join("")
      .toUpperCase() + ":0050";
  let samples = 0;
  const violations: string[] = [];
  let polling = true;
  const poll = (async () => {
    while (polling) {
      const ipvs = readFileSync("/proc/net/ip_vs", "utf8");
      const fib = readFileSync("/proc/net/fib_trie", "utf8");
      samples++;
      for (const v of vips) {
        if (!ipvs.includes(hex(v))) continue;
        const at = fib.indexOf(`-- ${v}\n`);
        const bound =
          at >= 0 &&
          fib
            .slice(at, at + 200)
            .split("\n")[1]
            ?.includes("/32 host LOCAL");
        if (!bound && violations.length < 20) violations.push(`sample ${samples}: ${v} in IPVS, not bound`);
      }
      await new Promise((r) => setImmediate(r));
    }
  })();
  // (waits read /proc, spawning nothing, so the poller gets the CPU)
  const inIpvs = (v: string) => readFileSync("/proc/net/ip_vs", "utf8").includes(hex(v));
  const isBound = (v: string) => {
    const f = readFileSync("/proc/net/fib_trie", "utf8");
    const at = f.indexOf(`-- ${v}\n`);
    return (
      at >= 0 &&
      f
        .slice(at, at + 200)
        .split("\n")[1]
        ?.includes("/32 host LOCAL")
    );
  };
  const logAt = l.log().length;
  writeFileSync("/tmp/order-rules.txt", rules(20));
  result.orderAdded = await until(() => vips.every((v) => inIpvs(v) && isBound(v)), 90_000, 200);
  await sleep(500);
  writeFileSync("/tmp/order-rules.txt", rules(1));
  result.orderRemoved = await until(() => !inIpvs("10.98.0.20") && !isBound("10.98.0.20"), 90_000, 200);
  await sleep(3000);
  result.orderPassLog = l.log().slice(logAt);
  polling = false;
  await poll;
  result.orderSamples = samples;
  result.orderViolations = violations;
  result.orderLog = l.log().slice(-2000);
  result.orderExit = await stop(l.p);
  sh("ipvsadm -C; ip link del wasmvs-ord0");
});

// ---- 4. a cluster loop: malformed events, then a silent watch ---------------------------------------
await section("watch", async () => {
  sh("ipvsadm -C");
  const api = await startFakeKubeApi({
    vip: "10.96.0.10",
    vport: 80,
    targetPort: 8080,
    endpoint: "10.1.0.2",
    kubeconfig: "/tmp/kc-faults.yaml",
  });
  const l = loop([
    "sync",
    "--kubeconfig",
    "/tmp/kc-faults.yaml",
    "--node-name",
    "n1",
    "--node-ip",
    "192.0.2.1",
    "--no-node-rules",
    "--sync-period",
    "5",
    "--watch-idle-timeout",
    "8",
    "--status-file",
    "/tmp/sync-status.json",
    "--metrics-address",
    "127.0.0.1:9309",
  ]);
  try {
    result.watchFirst = await until(() => sn().includes("-a -t 10.96.0.10:80 -r 10.1.0.2:8080 -m -w 1"), 240_000, 250);
    await until(() => api.openWatches() >= 2, 30_000);
    for (const line of [
      JSON.stringify({ type: "ADDED", object: { kind: "EndpointSlice" } }),
      "}{",
      "null",
      '{"type":"ADDED","object":{"__proto__":{}}}',
      JSON.stringify({
        type: "MODIFIED",
        object: { metadata: { name: "web-abc", namespace: "default", resourceVersion: "7" }, addressType: 5 },
      }),
    ])
      api.pushRaw(line);
    await sleep(3000);
    result.watchAliveAfterBad = l.p.exitCode === null;
    result.watchTableAfterBad = sn();
    // the watch stays open and says nothing; the slice moves
    api.pushSlice("10.1.0.3", "11", { silent: true });
    const t0 = Date.now();
    result.watchFollowedMs = await until(
      () => {
        const t = sn();
        return t.includes("-r 10.1.0.3:8080 -m -w 1") && !t.includes("-r 10.1.0.2:8080 -m -w 1");
      },
      120_000,
      200,
    );
    result.watchTable = sn();
    result.watchWaitedMs = Date.now() - t0;
    await until(() => api.openWatches() >= 2, 30_000);
    result.watchCheck = await runAsync(["sync", "--check", "--status-file", "/tmp/sync-status.json"]);
    result.watchMetrics = await fetch("http://127.0.0.1:9309/metrics")
      .then((r) => r.text())
      .catch((e) => `FAILED: ${e}`);
  } finally {
    result.watchLog = l.log().slice(-4000);
    result.watchExit = await stop(l.p);
    api.close();
    result.watchCheckAfterExit = await runAsync(["sync", "--check", "--status-file", "/tmp/sync-status.json"]);
  }
});

console.log("@@RESULT " + JSON.stringify(result));
process.exit(0);
