// The ipvsadm command line end to end against an in-memory IpvsTarget (a test double): every recorded bad
// command line gives ipvsadm's message, exit status and resulting table; every recorded state, built by
// running its ipvsadm setup lines through wasmvs, saves (-Sn) and lists (-Ln) as the real ipvsadm did.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { fixtureNames, kernelState, loadFixture, loadJson } from "./ipvsadm-helpers.ts";
import { MemoryIpvsTarget } from "./ipvsadm-memory-target.ts";
import { runIpvsadm, wasmvsIpvsadmUsage } from "../src/cli/ipvsadm.ts";
import { filesResolver } from "../src/model/names.ts";

const etc = loadJson("etc.json");
const resolver = filesResolver(etc.services, etc.hosts);
const errors = loadJson("errors.json");

class Buf {
  s = "";
  write(x: string) {
    this.s += x;
    return true;
  }
}
async function run(t: MemoryIpvsTarget, argv: string[], stdin = "") {
  const out = new Buf(),
    err = new Buf();
  const status = await runIpvsadm(argv, t, out, err, { program: "ipvsadm", resolver, stdin: async () => stdin });
  return { status, stdout: out.s, stderr: err.s };
}
const words = (l: string) => l.split(/\s+/).filter(Boolean);
const ERR_BASE = ["-A -t 10.0.0.1:80 -s rr", "-a -t 10.0.0.1:80 -r 10.1.0.1 -m"];

// where wasmvs deliberately differs from ipvsadm (documented in the usage text and the README)
const DIFFERENT: Record<string, string> = {
  '["-a","-t","10.0.0.1:80","-r","10.1.0.2","-w","70000"]': "weights above 65535 are refused",
  '["-A","-t","10.0.0.3:80","-M","24"]': "non-contiguous netmasks (-M 24 is 0.0.0.24) are refused",
  '["-v"]': "version text",
  '["--version"]': "version text",
  '["-h"]': "usage text",
};

for (const c of errors.cases as {
  argv: string[];
  stdin?: string;
  stdout: string;
  stderr: string;
  status: number;
  after: string;
}[]) {
  const id = c.stdin?.includes("99999")
    ? '["-a","-t","10.0.0.1:80","-r","10.1.0.2","-w","70000"]'
    : JSON.stringify(c.argv);
  test(`ipvsadm ${c.argv.join(" ")}${c.stdin ? ` < ${JSON.stringify(c.stdin)}` : ""}`, async () => {
    const t = new MemoryIpvsTarget();
    for (const l of ERR_BASE) assert.is((await run(t, words(l))).status, 0);
    const before = (await run(t, ["-Sn"])).stdout;
    const r = await run(t, c.argv, c.stdin ?? "");
    // -R applies nothing when a line is refused, where ipvsadm applies the lines before it (or past it)
    if (c.stdin !== undefined && (c.status !== 0 || c.stdin.includes("99999"))) {
      assert.is(r.status, c.stdin.includes("99999") ? 2 : c.status, r.stderr);
      assert.is((await run(t, ["-Sn"])).stdout, before, "nothing applied");
      assert.match(r.stderr, /nothing applied/);
      return;
    }
    if (DIFFERENT[id]) {
      if (id.includes("70000") || id.includes('"24"')) {
        assert.is(r.status, 2, r.stderr);
        assert.match(r.stderr, /refused, nothing changed/);
      } else assert.is(r.status, 0);
      return;
    }
    assert.is(r.stderr, c.stderr, "stderr");
    assert.is(r.status, c.status, "exit status");
    assert.is(r.stdout, c.stdout, "stdout");
    if (c.after !== undefined) assert.is((await run(t, ["-Sn"])).stdout, c.after, "table afterwards (-Sn)");
  });
}

for (const name of fixtureNames()) {
  const fx = loadFixture(name);
  test(`${name}: the ipvsadm setup lines through wasmvs build the same table (-Sn, -Ln variants)`, async () => {
    const t = new MemoryIpvsTarget();
    const failed: string[] = [];
    for (const l of fx.setup) {
      const r = await run(t, words(l));
      if (r.status !== 0) failed.push(l);
    }
    assert.equal(failed, fx.setupFailed ?? [], "the lines that failed");
    const sn = (await run(t, ["-Sn"])).stdout;
    if (name.startsWith("sorting-")) {
      // the same rules; the order may differ because the kernel's table order differs from insertion order
      // and ipvsadm's comparator is not transitive (the printer reproduces the kernel's case exactly)
      assert.equal(sn.split("\n").sort(), fx.out.Sn.split("\n").sort());
    } else {
      assert.is(sn, fx.out.Sn);
      if (!/traffic|big-counters/.test(name)) {
        for (const [args, key] of [
          [["-Ln"], "Ln"],
          [["-Ln", "--thresholds"], "Ln_thresholds"],
          [["-Ln", "--tun-info"], "Ln_tun_info"],
          [["-Ln", "--persistent-conn"], "Ln_persistent_conn"],
          [["-L"], "L"],
          [["-S"], "S"],
          [["-Ln", "--stats"], "Ln_stats"],
        ] as const) {
          assert.is((await run(t, [...args])).stdout, fx.out[key], args.join(" "));
        }
      }
    }
    assert.is((await run(t, ["-L", "--timeout"])).stdout, fx.out.L_timeout);
  });
}

test("-Lnc, -Ln --stats/--rate through the CLI from a recorded kernel state (traffic)", async () => {
  const fx = loadFixture("traffic");
  const k = kernelState(fx);
  const t = new MemoryIpvsTarget();
  t.table = k.services;
  t.conns = k.conns;
  t.t = k.timeouts;
  assert.is((await run(t, ["-Lnc"])).stdout, fx.out.Lnc);
  assert.is((await run(t, ["-Ln", "--stats"])).stdout, fx.out.Ln_stats);
  assert.is((await run(t, ["-Ln", "--rate", "--exact"])).stdout, fx.out.Ln_rate_exact);
  assert.is((await run(t, ["-Ln", "--nosort"])).stdout, fx.out.Ln_nosort);
  assert.is((await run(t, ["-l", "-n", "--persistent-conn"])).stdout, fx.out.Ln_persistent_conn);
  const z = await run(t, ["-Z", "-t", "10.0.0.100:80"]);
  assert.is(z.status, 0);
  assert.match((await run(t, ["-Ln", "--stats"])).stdout, /TCP {2}10\.0\.0\.100:80 +0 +0 +0 +0 +0\n/);
});

test("validation refuses a bad rule before anything changes, naming the field", async () => {
  const t = new MemoryIpvsTarget();
  const r = await run(t, words("-A -t 10.0.0.1:80 -s rr -M 255.0.255.0 -p"));
  assert.is(r.status, 2);
  assert.match(r.stderr, /service\.netmask: IPv4 netmask '255\.0\.255\.0' is not contiguous/);
  await run(t, words("-A -t 10.0.0.1:80 -s rr"));
  const w = await run(t, words("-a -t 10.0.0.1:80 -r 10.1.0.1 -m -w 70000"));
  assert.match(w.stderr, /realServer\.weight: weight 70000 must be an integer 0\.\.65535/);
  assert.equal(t.calls, ["addService tcp 10.0.0.1:80"]);
});

test("-R: an unparsable line applies nothing and names the line (ipvsadm applies the lines before it)", async () => {
  const t = new MemoryIpvsTarget();
  const r = await run(
    t,
    ["-R"],
    "-A -t 10.0.0.1:80\n-a -t 10.0.0.1:80 -r 10.1.0.1\n-a -t 10.0.0.1:80 -r 10.1.0.2 -w nope\n-A -t 10.0.0.2:80\n",
  );
  assert.is(
    r.stderr,
    "illegal weight specified\nipvsadm: -R refused at line 3 (-a -t 10.0.0.1:80 -r 10.1.0.2 -w nope): nothing " +
      "applied\n",
  );
  assert.is(r.status, 2);
  assert.equal(t.calls, []);
});

// issue 15 item 9: "refused, nothing changed" was printed while the service and rs1 had been applied
test("-R: a refused weight on line 3 applies nothing, and says so truly", async () => {
  const t = new MemoryIpvsTarget();
  const r = await run(
    t,
    ["-R"],
    "-A -t 10.9.0.1:80 -s rr\n-a -t 10.9.0.1:80 -r 10.1.0.1:80 -m\n-a -t 10.9.0.1:80 -r 10.1.0.2:80 -m -w 70000\n",
  );
  assert.is(r.status, 2);
  assert.match(
    r.stderr,
    new RegExp(
      /-R refused, nothing applied:\n {2}/.source +
        /line 3 \(-a -t 10\.9\.0\.1:80 -r 10\.1\.0\.2:80 -m -w 70000\): realServer\.weight: weight 70000/.source,
    ),
  );
  assert.equal(t.calls, [], "the target saw no change");
  assert.is((await run(t, ["-Sn"])).stdout, "");
});

test("-R: lines the table refuses (exists, not defined, no destination) apply nothing, each named", async () => {
  const t = new MemoryIpvsTarget();
  await run(t, words("-A -t 10.0.0.1:80 -s rr"));
  const r = await run(
    t,
    ["-R"],
    "-A -t 10.0.0.2:80\n-A -t 10.0.0.1:80\n-a -t 10.0.0.3:80 -r 10.1.0.1\n-d -t 10.0.0.2:80 -r 10.1.0.9\n-a -t " +
      "10.0.0.2:80 -r 0.0.0.0\n",
  );
  assert.is(r.status, 2, "the unspecified address is refused with the values, before the table is read");
  assert.match(r.stderr, /line 5 .*: realServer\.addr: '0\.0\.0\.0' is the unspecified address/);
  const r2 = await run(
    t,
    ["-R"],
    "-A -t 10.0.0.2:80\n-A -t 10.0.0.1:80\n-a -t 10.0.0.3:80 -r 10.1.0.1\n-d -t 10.0.0.2:80 -r 10.1.0.9\n",
  );
  assert.is(r2.status, 255);
  assert.is(
    r2.stderr,
    "ipvsadm: -R refused, nothing applied:\n  line 2 (-A -t 10.0.0.1:80): Service already exists\n" +
      ("  line 3 (-a -t 10.0.0.3:80 -r 10.1.0.1): Service not defined\n  line 4 (-d -t 10.0.0.2:80 -r 10.1.0.9): " +
        "No such destination\n"),
  );
  assert.equal(t.calls, ["addService tcp 10.0.0.1:80"]);
});

test("-R: a refusal only the target knows stops there and says exactly which lines were applied", async () => {
  const t = new MemoryIpvsTarget(); // like a kernel without the twos module
  const r = await run(t, ["-R"], "-A -t 10.0.0.1:80 -s rr\n-A -t 10.0.0.2:80 -s twos\n-A -t 10.0.0.3:80\n");
  assert.is(r.status, 255);
  assert.is(
    r.stderr,
    "Scheduler or persistence engine not found\n" +
      "ipvsadm: -R stopped at line 2 (-A -t 10.0.0.2:80 -s twos): the 1 line before it were applied, the rest not\n",
  );
  assert.is((await run(t, ["-Sn"])).stdout, "-A -t 10.0.0.1:80 -s rr\n");
});

test("-R: bad input of every kind applies nothing", async () => {
  for (const input of [
    "-A -t __proto__:80\n",
    "-A -t 10.0.0.1:80 -s constructor\n",
    "\u0000\u0001garbage\n",
    "-A -t 10.0.0.1:99999\n",
    `-A -t 10.0.0.1:80\n${"-a -t 10.0.0.1:80 -r 10.1.0.1 -w 1 ".repeat(2000)}\n`,
    "-A -t 10.0.0.1:80\n-A -t 10.0.0.1:80 -s toString\n",
  ]) {
    const t = new MemoryIpvsTarget();
    const r = await run(t, ["-R"], input);
    assert.ok(r.status !== 0, `${JSON.stringify(input.slice(0, 40))}: refused`);
    assert.equal(t.calls, [], `${JSON.stringify(input.slice(0, 40))}: nothing applied`);
    assert.match(r.stderr, /nothing applied/);
  }
});

test("usage text", async () => {
  const t = new MemoryIpvsTarget();
  const r = await run(t, ["-h"]);
  assert.is(r.stdout, wasmvsIpvsadmUsage("ipvsadm"));
  assert.match(wasmvsIpvsadmUsage(), /wasmvs -A\|E virtual-service/);
});

test.run();
