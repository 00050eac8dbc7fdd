// Every wasmvs command, as a user types it (bin/wasmvs.js, a real process): a flag it does not know, a bad
// address or value, and --help. A usage error exits 2 (the ipvsadm verbs: ipvsadm's own status) with a
// message naming the word at fault and the command's usage on stderr, and nothing on stdout; --help prints
// the usage on stdout and exits 0. Nothing is touched first: a proxy target that does not exist is never
// asked (its error would show), and no file is written where a flag points.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { spawn } from "node:child_process";
import { mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { fileURLToPath } from "node:url";

// WASMVS_WALK_BIN: the same walk against another checkout's command (how this test was seen failing first)
const bin = process.env.WASMVS_WALK_BIN ?? fileURLToPath(new URL("../bin/wasmvs.js", import.meta.url));
const scratch = mkdtempSync(`${tmpdir()}/wasmvs-walk-`);
// a proxy control socket that cannot exist, and a kernel target that never answers: either one reached
// would say "cannot reach the proxy" or "no IPVS" instead of the usage error
const env = { ...process.env, WASMVS_PROXY_SOCKET: `${scratch}/no-proxy.sock`, NO_COLOR: "1" };

interface Run {
  status: number | null;
  stdout: string;
  stderr: string;
}
function run(args: string[]): Promise<Run> {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, [bin, ...args], { env, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "",
      stderr = "";
    p.stdout.on("data", (d) => (stdout += d));
    p.stderr.on("data", (d) => (stderr += d));
    // a command that went on to do its work (a proxy, a benchmark) would not end: stopped and reported
    const timer = setTimeout(() => p.kill("SIGKILL"), 60_000);
    p.on("close", (status) => {
      clearTimeout(timer);
      resolve({ status, stdout, stderr });
    });
  });
}

/** args, the exit status, what stderr must say (the word at fault), the usage it must carry */
type Bad = [string[], number, RegExp];
interface Command {
  name: string;
  usage: RegExp;
  help: string[];
  bad: Bad[];
}

const out = `${scratch}/out`;
const ipvsadmUsage = /Try `wasmvs -h' or 'wasmvs --help' for more information\./;
const COMMANDS: Command[] = [
  {
    name: "ipvsadm verbs",
    usage: /^usage: wasmvs <command>/,
    help: ["-h"],
    bad: [
      [["--foo"], 255, /^wasmvs: --foo: unknown option\n/],
      [["-A", "-t", "10.0.0.1:80", "--foo"], 255, /^--foo: unknown option\n$/],
      [
        ["-A", "-t", "10.0.0.300:80"],
        2,
        /^wasmvs: -t '10\.0\.0\.300:80': not ADDRESS\[:PORT\]\nillegal virtual server/,
      ],
      [["-A", "-t", "10.0.0.300:80", "--target", "proxy"], 2, /-t '10\.0\.0\.300:80'/],
      [["-a", "-t", "10.0.0.1:80", "-r", "10.1.0.256", "--target=proxy"], 2, /-r '10\.1\.0\.256'/],
      [["--foo", "--target", "proxy"], 255, /--foo: unknown option/],
      [["-L", "--target", "bogus"], 2, /--target must be kernel or proxy, not 'bogus'/],
      [["-t", "10.0.0.1:80"], 255, /-t is not a command/],
      // the sync daemon (issue 20): named before any target is opened
      [["--start-daemon", "master"], 2, /--mcast-interface: must not be empty/],
      [["--start-daemon", "master", "--mcast-interface", "eth0", "--syncid", "__proto__"], 2, /^illegal syncid/],
      [["--stop-daemon", "constructor"], 2, /^illegal start_daemon specified\n$/],
      [["--start-daemon", "backup", "--mcast-interface", "x".repeat(300), "--target", "proxy"], 2, /than 15 bytes/],
    ],
  },
  {
    name: "ipvsadm",
    usage: /^/,
    help: ["ipvsadm", "--help"],
    bad: [
      [["ipvsadm", "--constructor"], 255, /--constructor: unknown option/],
      [["ipvsadm", "-D", "-t", "[fd00::1"], 2, /-t '\[fd00::1': not ADDRESS/],
    ],
  },
  {
    name: "sync",
    usage: /usage: wasmvs sync /,
    help: ["sync", "--help"],
    bad: [
      [["sync", "-R", "/nonexistent", "--bogus"], 2, /^wasmvs sync: unknown option '--bogus'\n/],
      [
        ["sync", "-R", "/nonexistent", "--metrics-address", "10.0.0.300:9"],
        2,
        /--metrics-address: '10\.0\.0\.300' is not/,
      ],
      [
        ["sync", "--kubeconfig", "k", "--node-name", "n", "--node-ip", "10.0.0.300"],
        2,
        /--node-ip '10\.0\.0\.300' is not an IPv4/,
      ],
      [["sync", "-R", "/nonexistent", "--sync-period", "soon"], 2, /--sync-period 'soon' is not a number of seconds/],
      [["sync", "--check", "--status-file", `${out}/status.json`, "--__proto__"], 2, /unknown option '--__proto__'/],
      [["sync", "-R"], 2, /-R needs a value/],
    ],
  },
  {
    name: "proxy",
    usage: /usage: wasmvs proxy /,
    help: ["proxy", "--help"],
    bad: [
      [["proxy", "run", "-c", "/nonexistent", "--bogus"], 2, /^wasmvs proxy run: unknown option '--bogus'\n/],
      [
        ["proxy", "-c", "/nonexistent", "--local-address", "10.0.0.300"],
        2,
        /--local-address '10\.0\.0\.300' is not an IPv4/,
      ],
      [["proxy", "run", "-c", "/nonexistent", "--metrics", "10.0.0.1"], 2, /--metrics: '10\.0\.0\.1' is not HOST:PORT/],
      [["proxy", "status", "--toString"], 2, /unknown option '--toString'/],
      [["proxy", "check", "--mode", "packet"], 2, /unknown option '--mode'/],
      [["proxy", "bogus"], 2, /unknown subcommand 'bogus'/],
      // the kernel's sysctls (issue 15)
      [["proxy", "-c", "/nonexistent", "--expire-nodest-conn", "2"], 2, /--expire-nodest-conn.*from 0 to 1/],
      [["proxy", "-c", "/nonexistent", "--conn-reuse-mode", "4"], 2, /--conn-reuse-mode.*from 0 to 3/],
      [["proxy", "-c", "/nonexistent", "--expire-quiescent-template", "-1"], 2, /--expire-quiescent-template/],
      [["proxy", "-c", "/nonexistent", "--conn-reuse-mode", "__proto__"], 2, /--conn-reuse-mode.*from 0 to 3/],
      // the connection sync daemons' flags (issue 20)
      [["proxy", "-c", "/nonexistent", "--sync-daemon", "primary"], 2, /--sync-daemon.*not one of master, backup/],
      [["proxy", "-c", "/nonexistent", "--sync-daemon", "master"], 2, /needs --mcast-interface IF/],
      [["proxy", "-c", "/nonexistent", "--syncid", "7"], 2, /--syncid needs --sync-daemon/],
      [["proxy", "-c", "/nonexistent", "--sync-daemon", "backup", "--syncid", "256"], 2, /--syncid.*0 to 255/],
      [["proxy", "-c", "/nonexistent", "--sync-daemon", "backup", "--mcast-group", "10.0.0.1"], 2, /not a multicast/],
      [["proxy", "-c", "/nonexistent", "--sync-daemon", "master", "--sync-daemon", "master"], 2, /one master/],
      [["proxy", "-c", "/nonexistent", "--sync-daemon", "backup", "--mcast-interface", "__proto__!"], 2, /interface/],
    ],
  },
  {
    name: "trace",
    usage: /usage: wasmvs trace /,
    help: ["trace", "--help"],
    bad: [
      [["trace", "--bogus"], 2, /^wasmvs trace: unknown option '--bogus'\n/],
      [["trace", "-t", "10.0.0.300:80"], 2, /bad address '10\.0\.0\.300'/],
      [["trace", "--client", "300.1.1.1"], 2, /--client wants an IP address/],
    ],
  },
  {
    name: "demo",
    usage: /usage: wasmvs demo/,
    help: ["demo", "--help"],
    bad: [
      [["demo", "--bogus"], 2, /^wasmvs demo: unknown option '--bogus'\n/],
      [["demo", "10.0.0.300"], 2, /unexpected argument '10\.0\.0\.300'/],
    ],
  },
  {
    name: "ui",
    usage: /usage: wasmvs ui /,
    help: ["ui", "--help"],
    bad: [
      [["ui", "--bogus"], 2, /^wasmvs ui: unknown option '--bogus'\n/],
      [["ui", "--port", "70000"], 2, /--port '70000' is not a whole number from 0 to 65535/],
    ],
  },
  {
    name: "k8s",
    usage: /usage: wasmvs k8s /,
    help: ["k8s", "--help"],
    bad: [
      [["k8s", "--bogus"], 2, /unknown subcommand '--bogus'/],
      [["k8s", "map", "/nonexistent", "--bogus"], 2, /^wasmvs k8s map: unknown option '--bogus'\n/],
      [["k8s", "map", "/nonexistent", "--node-ip=10.0.0.300"], 2, /--node-ip '10\.0\.0\.300' is not an IPv4/],
      [
        ["k8s", "rules", "/nonexistent", "--cluster-cidr", "10.0.0.0/99"],
        2,
        /--cluster-cidr '10\.0\.0\.0\/99' is not a CIDR/,
      ],
      [["k8s", "synth", "--services=many"], 2, /--services 'many' is not a whole number/],
      [["k8s", "watch", "--node-ip", "::gg"], 2, /--node-ip '::gg'/],
    ],
  },
  {
    name: "sim",
    usage: /usage: wasmvs sim /,
    help: ["sim", "--help"],
    bad: [
      [["sim", "--bogus"], 2, /^wasmvs sim: unknown option '--bogus'\n/],
      [["sim", "--rate=fast"], 2, /--rate 'fast' is not a number/],
    ],
  },
  {
    name: "bench",
    usage: /usage: wasmvs bench scaling/,
    help: ["bench", "scaling", "--help"],
    bad: [
      [["bench", "scaling", "--nonsense", `--out=${out}`], 2, /^wasmvs bench scaling: unknown option '--nonsense'\n/],
      [["bench", "scaling", "--services=abc", `--out=${out}`], 2, /--services 'abc' is not a whole number/],
      [["bench", "bogus"], 2, /unknown benchmark 'bogus'/],
    ],
  },
  {
    name: "version",
    usage: /usage: wasmvs version/,
    help: ["version", "--help"],
    bad: [[["version", "--bogus"], 2, /unknown option '--bogus'/]],
  },
  {
    name: "help",
    usage: /usage: wasmvs <command>/,
    help: ["help"],
    bad: [
      [["bogus"], 2, /^wasmvs: unknown command 'bogus'\n/],
      [["help", "--bogus"], 2, /unknown option '--bogus'/],
    ],
  },
];

const results = new Map<string, Run>();
// all the runs first, four at a time (each is a Node start; the machine is shared)
const all = COMMANDS.flatMap((c) => [c.help, ...c.bad.map((b) => b[0])]);
{
  let next = 0;
  await Promise.all(
    [0, 1, 2, 3].map(async () => {
      while (next < all.length) {
        const args = all[next++];
        results.set(args.join(" "), await run(args));
      }
    }),
  );
}

for (const c of COMMANDS) {
  test(
    `${c.name}: --help on stdout, exit 0; bad flags and values named, exit 2 (ipvsadm's status), usage ` + `on stderr`,
    () => {
      const h = results.get(c.help.join(" "))!;
      assert.is(h.status, 0, `${c.help.join(" ")}: ${h.stderr}`);
      assert.is(h.stderr, "", c.help.join(" "));
      assert.match(h.stdout, c.name === "ipvsadm" ? /^wasmvs: ipvsadm 1\.31's commands/ : c.usage);
      for (const [args, status, message] of c.bad) {
        const r = results.get(args.join(" "))!;
        const line = `wasmvs ${args.join(" ")}`;
        assert.is(r.status, status, `${line}: exit ${r.status}, stderr ${r.stderr.slice(0, 300)}`);
        assert.match(r.stderr, message, line);
        if (status === 2 && !c.name.startsWith("ipvsadm")) assert.match(r.stderr, c.usage, `${line}: the usage`);
        if (status === 255 && !r.stderr.includes("unknown option\n")) assert.match(r.stderr, ipvsadmUsage, line);
        assert.is(r.stdout, "", `${line}: nothing ran`);
        const said = r.stderr.split(/^usage: /m)[0];
        assert.not.match(said, /cannot reach|no IPVS|ENOENT|EACCES/, `${line}: nothing was contacted or read`);
      }
    },
  );
}

test("wasmvs k8s alone prints its usage to stdout and exits 0, as k8s --help does", async () => {
  const r = await run(["k8s"]);
  assert.is(r.status, 0);
  assert.match(r.stdout, /^usage: wasmvs k8s /);
  assert.is(r.stdout, results.get("k8s --help")!.stdout);
});

test("wasmvs help COMMAND prints that command's usage; help says demo is the default command", async () => {
  const r = await run(["help", "trace"]);
  assert.is(r.status, 0, r.stderr);
  assert.match(r.stdout, /^usage: wasmvs trace /);
  assert.not.match(results.get("help")!.stdout, /what npm start runs/);
});

test("nothing was written where the refused lines pointed (--out, --status-file)", () => {
  assert.equal(readdirSync(scratch), []);
});

test.after(() => rmSync(scratch, { recursive: true, force: true }));
test.run();
