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

class Buf { s = ""; write(x: string) { this.s += x; return true; } }
async function run(t: MemoryIpvsTarget, argv: string[], stdin = "") {
  const out = new Buf(), err = new Buf();
  const status = await runIpvsadm(argv, t, out, err, { program: "ipvsadm", resolver, stdin: async () => stdin });
  return { status, stdout: out.s, stderr: err.s };
}
const words = (l: string) => l.split(/\s+/).filter(Boolean);
const ERR_BASE = ["-A -t 10.0.0.1:80 -s rr", "-a -t 10.0.0.1:80 -r 10.1.0.1 -m"];

// where wasmvs deliberately differs from ipvsadm (documented in the usage text and the README)
const DIFFERENT: Record<string, string> = {
  '["-a","-t","10.0.0.1:80","-r","10.1.0.2","-w","70000"]': "weights above 65535 are refused",
  '["-A","-t","10.0.0.3:80","-M","24"]': "non-contiguous netmasks (-M 24 is 0.0.0.24) are refused",
  '["-v"]': "version text", '["--version"]': "version text", '["-h"]': "usage text",
};

for (const c of errors.cases as { argv: string[]; stdin?: string; stdout: string; stderr: string; status: number; after: string }[]) {
  const id = c.stdin?.includes("99999") ? '["-a","-t","10.0.0.1:80","-r","10.1.0.2","-w","70000"]' : JSON.stringify(c.argv);
  test(`ipvsadm ${c.argv.join(" ")}${c.stdin ? ` < ${JSON.stringify(c.stdin)}` : ""}`, async () => {
    const t = new MemoryIpvsTarget();
    for (const l of ERR_BASE) assert.is((await run(t, words(l))).status, 0);
    const r = await run(t, c.argv, c.stdin ?? "");
    if (DIFFERENT[id]) {
      if (id.includes("70000") || id.includes('"24"')) {
        assert.is(r.status, 2, r.stderr);
        if (c.stdin) assert.is((await run(t, ["-Sn"])).stdout, c.after.split("\n").filter((l) => !/10\.0\.0\.2[45]|99999/.test(l)).join("\n") + "-A -t 10.0.0.24:80 -s wlc\n");
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
        for (const [args, key] of [[["-Ln"], "Ln"], [["-Ln", "--thresholds"], "Ln_thresholds"], [["-Ln", "--tun-info"], "Ln_tun_info"],
          [["-Ln", "--persistent-conn"], "Ln_persistent_conn"], [["-L"], "L"], [["-S"], "S"], [["-Ln", "--stats"], "Ln_stats"]] as const) {
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
  t.table = k.services; t.conns = k.conns; t.t = k.timeouts;
  assert.is((await run(t, ["-Lnc"])).stdout, fx.out.Lnc);
  assert.is((await run(t, ["-Ln", "--stats"])).stdout, fx.out.Ln_stats);
  assert.is((await run(t, ["-Ln", "--rate", "--exact"])).stdout, fx.out.Ln_rate_exact);
  assert.is((await run(t, ["-Ln", "--nosort"])).stdout, fx.out.Ln_nosort);
  assert.is((await run(t, ["-l", "-n", "--persistent-conn"])).stdout, fx.out.Ln_persistent_conn);
  const z = await run(t, ["-Z", "-t", "10.0.0.100:80"]);
  assert.is(z.status, 0);
  assert.match((await run(t, ["-Ln", "--stats"])).stdout, /TCP  10\.0\.0\.100:80 +0 +0 +0 +0 +0\n/);
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

test("-R: restore stops at the first unparsable line, keeps going after kernel refusals", async () => {
  const t = new MemoryIpvsTarget();
  const r = await run(t, ["-R"], "-A -t 10.0.0.1:80\n-A -t 10.0.0.1:80\n-a -t 10.0.0.1:80 -r 10.1.0.1\n-a -t 10.0.0.1:80 -r 10.1.0.1 -w nope\n-A -t 10.0.0.2:80\n");
  assert.is(r.stderr, "Service already exists\nillegal weight specified\n");
  assert.is(r.status, 2);
  assert.is((await run(t, ["-Sn"])).stdout, "-A -t 10.0.0.1:80 -s wlc\n-a -t 10.0.0.1:80 -r 10.1.0.1:80 -g -w 1\n");
});

test("usage text", async () => {
  const t = new MemoryIpvsTarget();
  const r = await run(t, ["-h"]);
  assert.is(r.stdout, wasmvsIpvsadmUsage("ipvsadm"));
  assert.match(wasmvsIpvsadmUsage(), /wasmvs -A\|E virtual-service/);
});

test.run();
