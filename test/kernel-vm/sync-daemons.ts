// Inside the VM (root, Linux 6.1 with IPVS), run by test/kernel-daemon.test.ts: `wasmvs sync --config` with
// a `daemons:` section. --once starts the configured daemons; --check reports one missing or different; the
// loop starts again a daemon someone stopped and restarts one running with other options (each logged);
// on SIGTERM the daemons are stopped only with stopOnExit: true; a bad section changes nothing.
// Prints "@@RESULT {checks: [...]}".
import { spawn, spawnSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import { result } from "./rules.ts";

const checks: { name: string; ok: boolean; want?: unknown; got?: unknown }[] = [];
const eq = (name: string, got: unknown, want: unknown) => {
  const ok = JSON.stringify(got) === JSON.stringify(want);
  checks.push(ok ? { name, ok } : { name, ok, want, got });
};
const yes = (name: string, ok: boolean, got?: unknown) => checks.push(ok ? { name, ok } : { name, ok, got });
const ipvsadm = (args: string[]) => spawnSync("ipvsadm", args, { encoding: "utf8" });
const listed = () => ipvsadm(["-L", "--daemon"]).stdout;
const wasmvs = (args: string[]) => {
  const r = spawnSync(process.execPath, ["bin/wasmvs.js", ...args], { encoding: "utf8", timeout: 300_000 });
  return { code: r.status, out: r.stdout, err: r.stderr };
};

const MASTER = "master sync daemon (mcast=dummy0, syncid=12, maxlen=1472, group=224.0.0.81, port=8848, ttl=1)\n";
const BACKUP = "backup sync daemon (mcast=dummy0, syncid=12, maxlen=1452, group=ff02::12, port=8850, ttl=1)\n";
const config = (stopOnExit: boolean) => `services:
  - protocol: tcp
    addr: 10.9.0.1
    port: 80
    scheduler: rr
    realServers:
      - { addr: 10.9.1.1, port: 8080 }
daemons:
  master: { mcastInterface: dummy0, syncid: 12 }
  backup:
    mcastInterface: dummy0
    syncid: 12
    mcastGroup: ff02::12
    mcastPort: 8850
  stopOnExit: ${stopOnExit}
`;

/** `wasmvs sync --config F --sync-period 2` as a process; lines() is everything it printed so far. */
function loop(file: string) {
  const p = spawn(process.execPath, ["bin/wasmvs.js", "sync", "--config", file, "--sync-period", "2"], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  let text = "";
  p.stdout.on("data", (d) => (text += d));
  p.stderr.on("data", (d) => (text += d));
  const exited = new Promise<number | null>((r) => p.on("exit", (c) => r(c)));
  const until = async (re: RegExp, ms: number) => {
    const end = Date.now() + ms;
    while (!re.test(text) && Date.now() < end) await new Promise((r) => setTimeout(r, 250));
    return re.test(text);
  };
  return { p, text: () => text, until, exited };
}

async function main() {
  spawnSync("ip", ["link", "add", "dummy0", "type", "dummy"]);
  spawnSync("ip", ["link", "set", "dummy0", "multicast", "on", "up"]);
  const f = "/tmp/wasmvs-daemons.yaml";
  writeFileSync(f, config(true));

  // --once: both started, said so; then --check is clean
  const once = wasmvs(["sync", "--config", f, "--once"]);
  eq("--once: exit 0", [once.code, once.err], [0, ""]);
  yes("--once says it started the master", once.out.includes("[daemons] started: --start-daemon master"), once.out);
  yes("--once says it started the backup", once.out.includes("[daemons] started: --start-daemon backup"), once.out);
  eq("--once: the daemons ipvsadm lists", listed(), MASTER + BACKUP);
  const clean = wasmvs(["sync", "--config", f, "--check"]);
  eq("--check after --once: in sync", clean.code, 0);
  ipvsadm(["--stop-daemon", "backup"]);
  const drift = wasmvs(["sync", "--config", f, "--check"]);
  eq("--check with the backup stopped: exit 1", drift.code, 1);
  yes("--check names the missing backup", drift.out.includes("sync daemon: the backup is not running"), drift.out);
  eq("--check changed nothing", listed(), MASTER);

  // the loop: starts the backup, repairs a stopped master, restarts one with other options
  const l = loop(f);
  yes("loop: the backup started", await l.until(/\[daemons\] started: --start-daemon backup/, 240_000), l.text());
  eq("loop: both run", listed(), MASTER + BACKUP);
  ipvsadm(["--stop-daemon", "master"]);
  yes(
    "loop: a stopped master is started again, and said",
    await l.until(/the master sync daemon was not running \(drift\): started again/, 120_000),
    l.text(),
  );
  eq("loop: both run again", listed(), MASTER + BACKUP);
  ipvsadm(["--stop-daemon", "backup"]);
  ipvsadm(["--start-daemon", "backup", "--mcast-interface", "dummy0", "--syncid", "99"]);
  yes(
    "loop: a backup with other options is restarted as configured",
    await l.until(/the backup sync daemon ran with other options .*syncid=99.*: restarted as/, 120_000),
    l.text(),
  );
  eq("loop: as configured", listed(), MASTER + BACKUP);
  l.p.kill("SIGTERM");
  eq("loop: SIGTERM exits 0", await l.exited, 0);
  yes("loop: stopOnExit: true stops them, said", /stopped the master sync daemon/.test(l.text()), l.text());
  eq("loop: stopOnExit: true: none left", listed(), "");

  // stopOnExit: false leaves them running
  writeFileSync(f, config(false));
  const k = loop(f);
  yes("keep: started", await k.until(/started: --start-daemon backup/, 240_000), k.text());
  k.p.kill("SIGTERM");
  eq("keep: SIGTERM exits 0", await k.exited, 0);
  eq("keep: stopOnExit: false leaves both running", listed(), MASTER + BACKUP);
  for (const s of ["master", "backup"]) ipvsadm(["--stop-daemon", s]);

  // a bad section: refused naming the field, nothing changed (no daemon, the table as it was)
  const table = ipvsadm(["-Sn"]).stdout;
  for (const [name, text, want] of [
    ["syncid 256", "  master: { mcastInterface: dummy0, syncid: 256 }", /daemons\.master\.syncid: must be an integer/],
    ["a unicast group", "  backup: { mcastInterface: dummy0, mcastGroup: 10.1.1.1 }", /daemons\.backup\.mcastGroup/],
    ["no interface", "  master: { syncid: 1 }", /daemons\.master\.mcastInterface: is required/],
    ["a __proto__ key", "  __proto__: { mcastInterface: dummy0 }", /daemons\.__proto__: unknown key/],
  ] as [string, string, RegExp][]) {
    writeFileSync(f, `services: []\ndaemons:\n${text}\n`);
    const r = wasmvs(["sync", "--config", f, "--once"]);
    eq(`bad config (${name}): exit 2`, r.code, 2);
    yes(`bad config (${name}): names the field with its line`, want.test(r.err) && /:3:\d+:/.test(r.err), r.err);
    eq(`bad config (${name}): no daemon started`, listed(), "");
    eq(`bad config (${name}): the table untouched`, ipvsadm(["-Sn"]).stdout, table);
  }
  result({ checks });
}
main().catch((e) => result({ checks, fatal: String((e as Error)?.stack ?? e) }));
