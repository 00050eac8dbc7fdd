// Inside the VM (root, Linux 6.1 with IPVS), run by test/kernel-daemon.test.ts: the connection sync daemon
// commands of wasmvs against the real ipvsadm 1.31. For each row of option combinations: started by ipvsadm
// and read by wasmvs; started by wasmvs and read by ipvsadm; `-L --daemon` byte for byte the same either way;
// stopped by wasmvs. Then the refusals: ipvsadm's own (same text and status), wasmvs's own (a field named,
// exit 2), the kernel's (EEXIST, ESRCH, ENODEV), each leaving the daemons as they were.
// Prints "@@RESULT {checks: [{name, ok, want?, got?}]}".
import { spawnSync } from "node:child_process";
import { runIpvsadm } from "../../src/cli/ipvsadm.ts";
import { numericResolver } from "../../src/model/names.ts";
import { KernelTarget } from "../../src/kernel/target.ts";
import { IpvsClient, IpvsError } from "../../src/kernel/client.ts";
import { result } from "./rules.ts";

const checks: { name: string; ok: boolean; want?: unknown; got?: unknown }[] = [];
// JSON with object keys sorted: the same values in another key order are equal
const canon = (v: unknown): string =>
  JSON.stringify(v, (_k, x) =>
    x && typeof x === "object" && !Array.isArray(x)
      ? Object.fromEntries(Object.entries(x).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
      : x,
  );
const eq = (name: string, got: unknown, want: unknown) => {
  const ok = canon(got) === canon(want);
  checks.push(ok ? { name, ok } : { name, ok, want, got });
};

const ipvsadm = (args: string[], input?: string) => {
  const r = spawnSync("ipvsadm", args, { encoding: "utf8", input });
  return { code: r.status ?? 125, out: r.stdout, err: r.stderr };
};
let target: KernelTarget;
async function wasmvs(args: string[], input?: string) {
  let out = "",
    err = "";
  const code = await runIpvsadm(
    args,
    target,
    { write: (s: string) => (out += s) },
    { write: (s: string) => (err += s) },
    { program: "wasmvs", resolver: numericResolver, stdin: async () => input ?? "" },
  );
  return { code, out, err };
}
const listed = () => ipvsadm(["-L", "--daemon"]).out;
async function stopAll() {
  for (const s of ["master", "backup"]) ipvsadm(["--stop-daemon", s]);
}

// a 15-byte name: the longest the kernel keeps
const LONG_IF = "d15abcdefghijkl";
const ROWS: [string, string[][]][] = [
  ["master, defaults", [["--start-daemon", "master", "--mcast-interface", "dummy0", "--syncid", "5"]]],
  [
    "backup, every option (IPv4 group)",
    [
      ["--start-daemon", "backup", "--mcast-interface", "dummy0", "--syncid", "7", "--sync-maxlen", "2000"].concat([
        "--mcast-group",
        "239.1.2.3",
        "--mcast-port",
        "9000",
        "--mcast-ttl",
        "3",
      ]),
    ],
  ],
  [
    "master, IPv6 group, no syncid",
    [["--start-daemon", "master", "--mcast-interface", "dummy0", "--mcast-group", "ff02::1:5"]],
  ],
  ["master, maxlen 100", [["--start-daemon", "master", "--mcast-interface", "dummy0", "--sync-maxlen", "100"]]],
  [
    "backup, maxlen 100 (the kernel keeps 1024)",
    [["--start-daemon", "backup", "--mcast-interface", "dummy0", "--sync-maxlen", "100"]],
  ],
  ["master, maxlen 65507", [["--start-daemon", "master", "--mcast-interface", "dummy0", "--sync-maxlen", "65507"]]],
  [
    "backup IPv6, bounds (syncid 255, port 1, ttl 255)",
    [
      [
        "--start-daemon",
        "backup",
        "--mcast-interface",
        "dummy0",
        "--syncid",
        "255",
        "--mcast-group",
        "ff15::abcd",
      ].concat(["--mcast-port", "1", "--mcast-ttl", "255"]),
    ],
  ],
  [
    "both daemons (master IPv4, backup IPv6)",
    [
      ["--start-daemon", "master", "--mcast-interface", "dummy0", "--syncid", "3"],
      ["--start-daemon", "backup", "--mcast-interface", LONG_IF, "--syncid", "3", "--mcast-group", "ff12::8"],
    ],
  ],
  ["master on a 15-byte interface name", [["--start-daemon", "master", "--mcast-interface", LONG_IF, "--syncid", "0"]]],
  ["long options with =", [["--start-daemon=backup", "--mcast-interface=dummy0", "--syncid=9", "--mcast-port=8849"]]],
];

async function rows() {
  for (const [name, starts] of ROWS) {
    await stopAll();
    for (const a of starts) eq(`${name}: ipvsadm ${a.join(" ")}`, ipvsadm(a).code, 0);
    const ref = listed();
    eq(`${name}: ipvsadm lists something`, ref.length > 0, true);
    eq(`${name}: wasmvs -L --daemon reads what ipvsadm started`, await wasmvs(["-L", "--daemon"]), {
      code: 0,
      out: ref,
      err: "",
    });
    eq(`${name}: -Ln --daemon too`, (await wasmvs(["-Ln", "--daemon"])).out, ipvsadm(["-Ln", "--daemon"]).out);
    await stopAll();
    for (const a of starts) eq(`${name}: wasmvs ${a.join(" ")}`, await wasmvs(a), { code: 0, out: "", err: "" });
    eq(`${name}: ipvsadm reads what wasmvs started, byte for byte`, listed(), ref);
    eq(`${name}: wasmvs reads it back the same`, (await wasmvs(["-L", "--daemon"])).out, ref);
    for (const a of starts) {
      const state = /start-daemon[= ](master|backup)/.exec(a.join(" "))![1];
      eq(`${name}: wasmvs --stop-daemon ${state}`, await wasmvs(["--stop-daemon", state]), {
        code: 0,
        out: "",
        err: "",
      });
    }
    eq(`${name}: nothing runs after --stop-daemon`, listed(), "");
  }
}

// the same line through ipvsadm and wasmvs: the same status and message, and the daemons left as they were
async function sameRefusal(name: string, args: string[], want?: { code: number; err: RegExp }) {
  const before = listed();
  const i = ipvsadm(args);
  const afterI = listed();
  await stopAll();
  for (const l of before.split("\n").filter(Boolean)) restart(l);
  const w = await wasmvs(args);
  if (want) {
    eq(`${name}: wasmvs's status`, w.code, want.code);
    eq(`${name}: wasmvs's message ${want.err}`, want.err.test(w.err), true);
    if (!want.err.test(w.err)) eq(`${name}: message`, w.err, String(want.err));
  } else eq(`${name}: wasmvs as ipvsadm`, { code: w.code, err: w.err }, { code: i.code, err: i.err });
  eq(`${name}: nothing changed (wasmvs)`, listed(), before);
  if (!want) eq(`${name}: nothing changed (ipvsadm)`, afterI, before);
}
// starts again a daemon as ipvsadm listed it
function restart(line: string) {
  const m =
    /^(\w+) sync daemon \(mcast=([^,]+), syncid=(\d+), maxlen=(\d+), group=([^,]+), port=(\d+), ttl=(\d+)\)$/.exec(
      line,
    );
  if (!m) throw new Error(`cannot read back '${line}'`);
  const [, st, ifn, id, , group, port, ttl] = m;
  ipvsadm(
    ["--start-daemon", st, "--mcast-interface", ifn, "--syncid", id, "--mcast-group", group].concat([
      "--mcast-port",
      port,
      "--mcast-ttl",
      ttl,
    ]),
  );
}

async function refusals() {
  await stopAll();
  ipvsadm(["--start-daemon", "master", "--mcast-interface", "dummy0", "--syncid", "5"]);
  // the kernel's refusals, with ipvsadm's words
  await sameRefusal("a second master (EEXIST)", ["--start-daemon", "master", "--mcast-interface", "dummy0"]);
  await sameRefusal("no backup to stop (ESRCH)", ["--stop-daemon", "backup"]);
  await sameRefusal("no such interface (ENODEV)", ["--start-daemon", "backup", "--mcast-interface", "nosuch0"]);
  // ipvsadm's own checks, the same text and status 2
  for (const [name, args] of [
    ["syncid 256", ["--start-daemon", "backup", "--mcast-interface", "dummy0", "--syncid", "256"]],
    ["syncid -1", ["--start-daemon", "backup", "--mcast-interface", "dummy0", "--syncid", "-1"]],
    ["syncid garbage", ["--start-daemon", "backup", "--mcast-interface", "dummy0", "--syncid", "5x"]],
    ["maxlen 0", ["--start-daemon", "backup", "--mcast-interface", "dummy0", "--sync-maxlen", "0"]],
    ["maxlen 65508", ["--start-daemon", "backup", "--mcast-interface", "dummy0", "--sync-maxlen", "65508"]],
    ["port 0", ["--start-daemon", "backup", "--mcast-interface", "dummy0", "--mcast-port", "0"]],
    ["port 65536", ["--start-daemon", "backup", "--mcast-interface", "dummy0", "--mcast-port", "65536"]],
    ["ttl 0", ["--start-daemon", "backup", "--mcast-interface", "dummy0", "--mcast-ttl", "0"]],
    ["ttl 256", ["--start-daemon", "backup", "--mcast-interface", "dummy0", "--mcast-ttl", "256"]],
    ["unicast IPv4 group", ["--start-daemon", "backup", "--mcast-interface", "dummy0", "--mcast-group", "10.0.0.1"]],
    ["unicast IPv6 group", ["--start-daemon", "backup", "--mcast-interface", "dummy0", "--mcast-group", "fe80::1"]],
    ["garbage group", ["--start-daemon", "backup", "--mcast-interface", "dummy0", "--mcast-group", "__proto__"]],
    ["bad state", ["--start-daemon", "primary", "--mcast-interface", "dummy0"]],
    ["bad stop state", ["--stop-daemon", "constructor"]],
    ["-n with --start-daemon", ["--start-daemon", "backup", "--mcast-interface", "dummy0", "-n"]],
    ["two interfaces", ["--start-daemon", "backup", "--mcast-interface", "dummy0", "--mcast-interface", "lo"]],
    ["a service with --stop-daemon", ["--stop-daemon", "master", "-t", "10.0.0.1:80"]],
    ["--daemon with -c", ["-L", "--daemon", "-c"]],
    ["--daemon with --stats", ["-L", "--daemon", "--stats"]],
  ] as [string, string[]][])
    await sameRefusal(name, args);
  // wasmvs's own: what ipvsadm would send and the kernel refuse, named before anything is sent
  await sameRefusal("no interface", ["--start-daemon", "backup"], {
    code: 2,
    err: /--mcast-interface: must not be empty/,
  });
  await sameRefusal("a 16-byte interface", ["--start-daemon", "backup", "--mcast-interface", "0123456789abcdef"], {
    code: 2,
    err: /--mcast-interface: '0123456789abcdef' is longer than 15 bytes/,
  });
  await sameRefusal("an interface name with /", ["--start-daemon", "backup", "--mcast-interface", "a/b"], {
    code: 2,
    err: /--mcast-interface: 'a\/b' cannot be an interface name/,
  });
  await clientRefusals();
}

// IpvsClient refuses a bad value itself, naming the field, and sends nothing; the kernel's errors come named.
async function clientRefusals() {
  const c = await IpvsClient.open();
  try {
    for (const [name, d, field] of [
      ["syncid 300", { state: "master", mcastIfn: "dummy0", syncid: 300 }, "daemon.syncid"],
      ["ttl 0", { state: "backup", mcastIfn: "dummy0", syncid: 1, mcastTtl: 0 }, "daemon.mcastTtl"],
      ["port 70000", { state: "backup", mcastIfn: "dummy0", syncid: 1, mcastPort: 70000 }, "daemon.mcastPort"],
      ["group 1.2.3.4", { state: "backup", mcastIfn: "dummy0", syncid: 1, mcastGroup: "1.2.3.4" }, "daemon.mcastGroup"],
      ["maxlen 1e9", { state: "backup", mcastIfn: "dummy0", syncid: 1, syncMaxlen: 1e9 }, "daemon.syncMaxlen"],
      ["state 3", { state: 3, mcastIfn: "dummy0", syncid: 1 }, "daemon.state"],
      ["ifname 40 bytes", { state: "backup", mcastIfn: "x".repeat(40), syncid: 1 }, "daemon.mcastIfn"],
      ["a __proto__ key", JSON.parse('{"state":"backup","mcastIfn":"dummy0","syncid":1,"__proto__":{}}'), "__proto__"],
    ] as [string, never, string][]) {
      const before = listed();
      let e: unknown;
      try {
        await c.startDaemon(d);
      } catch (x) {
        e = x;
      }
      eq(`client refuses ${name}: an IpvsError EINVAL`, [e instanceof IpvsError, (e as IpvsError)?.errno], [true, 22]);
      eq(`client refuses ${name}: names ${field}`, String((e as Error)?.message).includes(field), true);
      eq(`client refuses ${name}: nothing changed`, listed(), before);
    }
    // the kernel's errors through the client, named
    let e: unknown;
    try {
      await c.startDaemon({ state: "master", mcastIfn: "dummy0", syncid: 1 });
    } catch (x) {
      e = x;
    }
    eq(
      "client: EEXIST named",
      (e as Error)?.message,
      "start the master sync daemon: a sync daemon in this state is running already (EEXIST)",
    );
    e = undefined;
    try {
      await c.startDaemon({ state: "backup", mcastIfn: "nosuch0", syncid: 1 });
    } catch (x) {
      e = x;
    }
    eq(
      "client: ENODEV named",
      (e as Error)?.message,
      "start the backup sync daemon: no such network interface (ENODEV)",
    );
    e = undefined;
    try {
      await c.stopDaemon("backup");
    } catch (x) {
      e = x;
    }
    eq(
      "client: ESRCH named",
      (e as Error)?.message,
      "stop the backup sync daemon: no sync daemon in this state is running (ESRCH)",
    );
    eq("client: daemons()", await c.daemons(), [
      {
        state: "master",
        mcastIfn: "dummy0",
        syncid: 5,
        syncMaxlen: 1472,
        mcastGroup: "224.0.0.81",
        mcastPort: 8848,
        mcastTtl: 1,
      },
    ]);
  } finally {
    c.close();
  }
}

async function restore() {
  await stopAll();
  const input =
    "--start-daemon master --mcast-interface dummy0 --syncid 9\n" +
    "--start-daemon backup --mcast-interface dummy0 --syncid 9 --mcast-group ff02::9\n";
  eq("ipvsadm -R with daemon lines", ipvsadm(["-R"], input).code, 0);
  const ref = listed();
  await stopAll();
  eq("wasmvs -R with daemon lines", await wasmvs(["-R"], input), { code: 0, out: "", err: "" });
  eq("wasmvs -R started the same daemons", listed(), ref);
  // -S prints no daemon lines, as ipvsadm's
  eq("-S with daemons running", (await wasmvs(["-S", "-n"])).out, ipvsadm(["-S", "-n"]).out);
  await stopAll();
  // a bad daemon line: -R applies nothing at all
  const bad = "-A -t 10.0.0.1:80 -s rr\n--start-daemon master --mcast-interface 0123456789abcdefXYZ\n";
  const w = await wasmvs(["-R"], bad);
  eq("wasmvs -R refuses a bad daemon line: status 2", w.code, 2);
  eq("wasmvs -R names the line and field", /line 2 .*--mcast-interface/.test(w.err), true);
  eq("wasmvs -R applied nothing", [ipvsadm(["-Sn"]).out, listed()], ["", ""]);
}

// the real command, once each way (its exit statuses and streams)
function binary() {
  const run = (args: string[]) => {
    const r = spawnSync(process.execPath, ["bin/wasmvs.js", ...args], { encoding: "utf8" });
    return { code: r.status, out: r.stdout, err: r.stderr };
  };
  ipvsadm(["--stop-daemon", "master"]);
  eq("bin/wasmvs --start-daemon", run(["--start-daemon", "master", "--mcast-interface", "dummy0", "--syncid", "4"]), {
    code: 0,
    out: "",
    err: "",
  });
  eq("bin/wasmvs -L --daemon = ipvsadm -L --daemon", run(["-L", "--daemon"]).out, listed());
  eq("bin/wasmvs: a second one", run(["--start-daemon", "master", "--mcast-interface", "dummy0"]), {
    code: 255,
    out: "",
    err: "Daemon has already run\n",
  });
  const u = run(["--start-daemon", "master", "--syncid", "x"]);
  eq("bin/wasmvs: a usage error exits 2", [u.code, u.err], [2, "illegal syncid specified\n"]);
  eq("bin/wasmvs --stop-daemon", run(["--stop-daemon", "master"]).code, 0);
}

async function main() {
  spawnSync("ip", ["link", "add", "dummy0", "type", "dummy"]);
  spawnSync("ip", ["link", "add", LONG_IF, "type", "dummy"]);
  for (const d of ["dummy0", LONG_IF]) spawnSync("ip", ["link", "set", d, "multicast", "on", "up"]);
  target = await KernelTarget.open();
  try {
    await rows();
    await refusals();
    await restore();
    binary();
  } finally {
    await target.close();
  }
  result({ checks, kernel: spawnSync("uname", ["-r"], { encoding: "utf8" }).stdout.trim() });
}
main().catch((e) => {
  result({ checks, fatal: String((e as Error)?.stack ?? e) });
});
