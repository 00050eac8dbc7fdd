// The one command-line grammar (src/cli/args.ts) under bad input, and the ipvsadm grammar's table lookups
// under prototype keys: every refusal names what is wrong, and nothing bad gets through as a default.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { UsageError, checks, parseArgs, parseOrExit, type CommandSpec } from "../src/cli/args.ts";
import { IpvsadmError, parseIpvsadm } from "../src/model/ipvsadm.ts";

const SPEC: CommandSpec = {
  name: "wasmvs t",
  usage: "usage: wasmvs t\n",
  flags: {
    "--config": { kind: "value", aliases: ["-c"] },
    "--once": { kind: "flag" },
    "--node-ip": { kind: "list", check: checks.ip },
    "--port": { kind: "value", check: checks.int(0, 65535) },
  },
  positionals: { max: 1 },
};
const refused = (argv: unknown[], why: RegExp) => {
  try {
    parseArgs(argv as string[], SPEC);
  } catch (e) {
    assert.instance(e, UsageError, String(e));
    assert.match((e as Error).message, why);
    return;
  }
  assert.unreachable(`${JSON.stringify(argv).slice(0, 80)} was accepted`);
};

test("values in every spelling, lists split on commas, -- ends the flags", () => {
  const p = parseArgs(["-c", "a.yaml", "--node-ip=10.0.0.1,::1", "--node-ip", "10.0.0.2", "--once", "--", "--x"], SPEC);
  assert.is(p.get("--config"), "a.yaml");
  assert.equal(p.all("--node-ip"), ["10.0.0.1", "::1", "10.0.0.2"]);
  assert.ok(p.has("--once"));
  assert.equal(p.positionals, ["--x"]);
  assert.is(parseArgs(["--help", "--config", "x"], SPEC).help, true);
});

test("unknown flags, prototype keys and garbage are refused by name", () => {
  for (const k of ["--bogus", "--__proto__", "--constructor", "--toString", "--hasOwnProperty", "-x", "--valueOf=1"]) {
    refused([k], new RegExp(`unknown option '${k.split("=")[0]}'`));
  }
  refused(["--once=yes"], /--once takes no value/);
  refused(["--config"], /--config needs a value/);
  refused(["--config", "--once"], /--config needs a value/);
  refused(["--config", "--port=1"], /--config needs a value/);
  refused(["--config", "a", "--config", "b"], /--config is given more than once/);
  refused(["--port", "65536"], /--port '65536' is not a whole number from 0 to 65535/);
  refused(["--port", "-1"], /--port '-1' is not a whole number/);
  refused(["--port", " 80"], /--port ' 80' is not a whole number/);
  refused(["--node-ip", "10.0.0.300"], /--node-ip '10\.0\.0\.300' is not an IPv4 or IPv6 address/);
  refused(["--node-ip="], /--node-ip needs a value/);
  refused(["a", "b"], /unexpected argument 'b'/);
  refused([42], /argument 1 is not a string/);
  refused([null], /argument 1 is not a string/);
});

test("a huge argument is refused with a short message", () => {
  const huge = `--${"x".repeat(1 << 20)}`;
  try {
    parseArgs([huge], SPEC);
    assert.unreachable("accepted");
  } catch (e) {
    assert.ok((e as Error).message.length < 200, `${(e as Error).message.length} characters`);
  }
  try {
    parseArgs(["--port", "9".repeat(1 << 20)], SPEC);
    assert.unreachable("accepted");
  } catch (e) {
    assert.ok((e as Error).message.length < 200);
  }
});

test("parseOrExit: --help to stdout and 0; a usage error to stderr with the usage and 2", () => {
  let out = "",
    err = "";
  const io = { out: { write: (s: string) => (out += s) }, err: { write: (s: string) => (err += s) } };
  assert.is(parseOrExit(["--help"], SPEC, io), 0);
  assert.is(out, "usage: wasmvs t\n");
  assert.is(err, "");
  out = "";
  assert.is(parseOrExit(["--nope"], SPEC, io), 2);
  assert.is(err, "wasmvs t: unknown option '--nope'\nusage: wasmvs t\n");
  assert.is(out, "");
});

test("checks.hostPort: hosts, bracketed IPv6, bad ports and addresses", () => {
  for (const good of ["127.0.0.1:9100", ":9100", "[::1]:9100", "localhost:9100"])
    assert.is(checks.hostPort(good), undefined, good);
  for (const bad of ["10.0.0.300:9", "127.0.0.1", "[::1:9100", "[nope]:1", "1.2.3.4:65536", "::1:9100", ""]) {
    assert.type(checks.hostPort(bad), "string", bad);
  }
});

test("ipvsadm -b: prototype keys are invalid scheduler flags, as ipvsadm says (not a silent no-flag service)", () => {
  for (const f of ["constructor", "toString", "__proto__", "hasOwnProperty", "valueOf"]) {
    try {
      parseIpvsadm(["-A", "-t", "10.0.0.1:80", "-s", "sh", "-b", f]);
      assert.unreachable(`-b ${f} was accepted`);
    } catch (e) {
      assert.instance(e, IpvsadmError);
      assert.is((e as IpvsadmError).text, `invalid scheduler flag \`${f}'\n`);
      assert.is((e as IpvsadmError).status, 2);
    }
  }
});

test.run();
