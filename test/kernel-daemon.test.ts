// The connection sync daemon (issue 20, kernel target). On the host: the checks made before anything is
// sent, the attribute encoding read back by the decoder, `-L --daemon`'s text, and the CLI's refusals
// (exit 2, the field named, the target never opened). In the kernel VM (test/kernel-vm/daemon.ts): every
// row of option combinations started by wasmvs and by ipvsadm 1.31, `-L --daemon` byte for byte the same
// both ways, and the refusals (ipvsadm's own, wasmvs's own, the kernel's) leaving the daemons as they were.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { Writer, putDaemon, parseDaemon, messages, CodecError } from "../src/kernel/codec.ts";
import * as C from "../src/kernel/constants.ts";
import { type SyncDaemon, formatDaemons, validateDaemon, expectedMaxlen, sameDaemon } from "../src/model/daemon.ts";
import { prepareIpvsadm } from "../src/cli/ipvsadm.ts";
import { numericResolver } from "../src/model/names.ts";
import { runInVm, vmEnv } from "../bench/kernel-sync.ts";
import { scaledLimitS } from "./helpers/director-pair-host.ts";

const vm = fileURLToPath(new URL("../../shared/ipvs-vm/ipvs-vm.sh", import.meta.url));

/** A GET_DAEMON reply carrying the nest NEW_DAEMON's request would carry (the kernel fills the same). */
function roundTrip(d: SyncDaemon): SyncDaemon | undefined {
  const w = new Writer(256);
  const at = w.begin(0x20, 0, 1, C.IPVS_CMD_NEW_DAEMON);
  putDaemon(w, d);
  w.end(at);
  return parseDaemon([...messages(w.take())][0]);
}

test("encoding: every field, IPv4 and IPv6 groups, read back by the decoder", () => {
  const all: SyncDaemon = {
    state: "backup",
    mcastIfn: "eth0",
    syncid: 255,
    syncMaxlen: 2000,
    mcastGroup: "239.1.2.3",
    mcastPort: 9000,
    mcastTtl: 3,
  };
  assert.equal(roundTrip(all), all);
  const v6: SyncDaemon = { state: "master", mcastIfn: "d15abcdefghijkl", syncid: 0, mcastGroup: "ff02::1:5" };
  assert.equal(roundTrip(v6), v6);
  // the wire: state u32 1, the name NUL-terminated, the group in network order, port and maxlen host order
  const w = new Writer(256);
  putDaemon(w, { state: "master", mcastIfn: "a", syncid: 7, mcastGroup: "224.0.0.81", mcastPort: 8848 });
  const b = w.take();
  assert.is(b.readUInt16LE(2) & ~C.NLA_F_NESTED, C.IPVS_CMD_ATTR_DAEMON);
  const hex = b.toString("hex");
  assert.ok(hex.includes("0800010001000000"), "STATE u32 1 (master)");
  assert.ok(hex.includes("0600020061000000"), "MCAST_IFN 'a' with its NUL, padded");
  assert.ok(hex.includes("08000500e0000051"), "MCAST_GROUP 224.0.0.81 in network order");
  assert.ok(hex.includes("06000700902200"), "MCAST_PORT 8848 in host order");
  // DEL_DAEMON: the state alone
  const s = new Writer(64);
  putDaemon(s, { state: "backup" });
  assert.is(s.take().toString("hex"), "0c0003800800010002000000");
});

test("bad values are refused before encoding, each naming its field", () => {
  const base = { state: "master", mcastIfn: "eth0", syncid: 1 };
  const cases: [Record<string, unknown>, string][] = [
    [{ ...base, syncid: 256 }, "daemon.syncid"],
    [{ ...base, syncid: -1 }, "daemon.syncid"],
    [{ ...base, syncid: 1.5 }, "daemon.syncid"],
    [{ ...base, syncid: "1" }, "daemon.syncid"],
    [{ ...base, syncid: Number.NaN }, "daemon.syncid"],
    [{ ...base, syncMaxlen: 0 }, "daemon.syncMaxlen"],
    [{ ...base, syncMaxlen: 65508 }, "daemon.syncMaxlen"],
    [{ ...base, syncMaxlen: 1e300 }, "daemon.syncMaxlen"],
    [{ ...base, mcastTtl: 0 }, "daemon.mcastTtl"],
    [{ ...base, mcastTtl: 256 }, "daemon.mcastTtl"],
    [{ ...base, mcastPort: 0 }, "daemon.mcastPort"],
    [{ ...base, mcastPort: 65536 }, "daemon.mcastPort"],
    [{ ...base, mcastGroup: "10.0.0.1" }, "daemon.mcastGroup"],
    [{ ...base, mcastGroup: "fe80::1" }, "daemon.mcastGroup"],
    [{ ...base, mcastGroup: "224.0.0" }, "daemon.mcastGroup"],
    [{ ...base, mcastGroup: 3758096465 }, "daemon.mcastGroup"],
    [{ ...base, mcastIfn: "" }, "daemon.mcastIfn"],
    [{ ...base, mcastIfn: "0123456789abcdef" }, "daemon.mcastIfn"],
    [{ ...base, mcastIfn: "é".repeat(8) }, "daemon.mcastIfn"],
    [{ ...base, mcastIfn: "a/b" }, "daemon.mcastIfn"],
    [{ ...base, mcastIfn: "a b" }, "daemon.mcastIfn"],
    [{ ...base, mcastIfn: ".." }, "daemon.mcastIfn"],
    [{ ...base, mcastIfn: ["eth0"] }, "daemon.mcastIfn"],
    [{ ...base, state: "primary" }, "daemon.state"],
    [{ ...base, state: "constructor" }, "daemon.state"],
    [{ ...base, toString: "x" }, "daemon.toString"],
    [JSON.parse('{"state":"master","mcastIfn":"eth0","syncid":1,"__proto__":{"syncid":2}}'), "daemon.__proto__"],
    [{ ...base, constructor: {} }, "daemon.constructor"],
  ];
  for (const [d, field] of cases) {
    const ps = validateDaemon(d);
    assert.ok(
      ps.some((p) => p.path === field),
      `${JSON.stringify(d)}: ${JSON.stringify(ps)}`,
    );
    const w = new Writer(64);
    assert.throws(
      () => putDaemon(w, d as unknown as SyncDaemon),
      (e: unknown) => e instanceof CodecError && e.message.includes(field),
    );
  }
  for (const v of [null, undefined, 3, "master", [], [base]]) assert.is(validateDaemon(v).length, 1);
  assert.equal(validateDaemon(base), []);
  assert.throws(() => putDaemon(new Writer(16), { state: "x" as "master" }), /daemon\.state/);
});

test("-L --daemon: ipvsadm's lines, master first, optional parts only when reported", () => {
  const m: SyncDaemon = {
    state: "master",
    mcastIfn: "eth0",
    syncid: 5,
    syncMaxlen: 1472,
    mcastGroup: "224.0.0.81",
    mcastPort: 8848,
    mcastTtl: 1,
  };
  const b: SyncDaemon = { state: "backup", mcastIfn: "eth1", syncid: 3, mcastGroup: "ff12::8" };
  assert.is(
    formatDaemons([b, m]),
    "master sync daemon (mcast=eth0, syncid=5, maxlen=1472, group=224.0.0.81, port=8848, ttl=1)\n" +
      "backup sync daemon (mcast=eth1, syncid=3, group=ff12::8)\n",
  );
  assert.is(formatDaemons([]), "");
});

test("the kernel's clamp of maxlen, and drift comparison", () => {
  assert.is(expectedMaxlen({ state: "backup" }, 100), 1024);
  assert.is(expectedMaxlen({ state: "master" }, 100), 100);
  assert.is(expectedMaxlen({ state: "master", mcastGroup: "ff02::1" }, 65507), 65487);
  const want: SyncDaemon = { state: "backup", mcastIfn: "eth0", syncid: 1, syncMaxlen: 100 };
  const got: SyncDaemon = { ...want, syncMaxlen: 1024, mcastGroup: "224.0.0.81", mcastPort: 8848, mcastTtl: 1 };
  assert.ok(sameDaemon(want, got));
  assert.not.ok(sameDaemon(want, { ...got, syncid: 2 }));
  assert.not.ok(sameDaemon(want, { ...got, mcastGroup: "239.0.0.1" }));
  assert.ok(sameDaemon({ ...want, mcastGroup: "FF02:0::1" }, { ...got, mcastGroup: "ff02::1" }));
});

test("CLI: bad daemon lines exit 2 naming the option, before any target is opened", async () => {
  const run = async (argv: string[]) => {
    let err = "";
    const r = await prepareIpvsadm(argv, { write: (s: string) => (err += s) }, { resolver: numericResolver });
    return { code: typeof r === "number" ? r : 0, err };
  };
  const cases: [string[], number, RegExp][] = [
    [["--start-daemon", "master"], 2, /--mcast-interface: must not be empty/],
    [["--start-daemon", "master", "--mcast-interface", "x".repeat(16)], 2, /longer than 15 bytes/],
    [["--start-daemon", "master", "--mcast-interface", "__proto__/"], 2, /cannot be an interface name/],
    [["--start-daemon", "master", "--mcast-interface", "eth0", "--syncid", "256"], 2, /^illegal syncid specified\n$/],
    [["--start-daemon", "master", "--mcast-interface", "eth0", "--mcast-ttl", "0"], 2, /illegal mcast-ttl/],
    [["--start-daemon", "master", "--mcast-interface", "eth0", "--mcast-group", "1.2.3.4"], 2, /invalid IPv4/],
    [["--start-daemon", "slave", "--mcast-interface", "eth0"], 2, /illegal start-daemon parameter/],
    [["--stop-daemon", "toString"], 2, /illegal start_daemon specified/],
    [["--stop-daemon", "master", "--mcast-interface", "eth0"], 2, /Illegal 'mcast-interface' option/],
  ];
  for (const [argv, code, re] of cases) {
    const r = await run(argv);
    assert.is(r.code, code, argv.join(" "));
    assert.match(r.err, re, argv.join(" "));
  }
  assert.is((await run(["--start-daemon", "backup", "--mcast-interface", "eth0", "--syncid", "9"])).code, 0);
  assert.is((await run(["--stop-daemon", "backup", "--syncid", "9"])).code, 0); // ipvsadm takes it
});

// one VM boot for both scripts: the commands against ipvsadm, then `wasmvs sync` with a daemons: section
type VmChecks = { checks: { name: string; ok: boolean; want?: unknown; got?: unknown }[]; fatal?: string };
let vmRun: Promise<{ code: number; stdout: string; limitS: number }> | undefined;
function inVm() {
  // quiet machine: boot 20 s, ten rows of starts and stops and the refusals 60 s, about ten starts of
  // bin/wasmvs 50 s, the sync loop's passes 70 s (at a load of 19 on 2 cores the whole took 1230 s)
  const limitS = scaledLimitS(200);
  vmRun ??= runInVm(
    "node --import tsx test/kernel-vm/daemon.ts; node --import tsx test/kernel-vm/sync-daemons.ts",
    { ...vmEnv(), IPVSVM_TIMEOUT: String(limitS) },
    () => true,
  ).then((r) => ({ ...r, limitS }));
  return vmRun;
}
async function vmResult(i: number): Promise<VmChecks> {
  assert.ok(existsSync(vm), `${vm} is missing: the kernel VM from ../shared is needed`);
  const { code, stdout, limitS } = await inVm();
  const line = stdout.split("\n").filter((l) => l.startsWith("@@RESULT "))[i];
  assert.ok(line, `no result ${i + 1} from the VM (exit ${code}, limit ${limitS} s):\n${stdout.slice(-3000)}`);
  const r = JSON.parse(line!.slice(9)) as VmChecks;
  assert.not.ok(r.fatal, r.fatal);
  const bad = r.checks.filter((c) => !c.ok);
  assert.equal(
    bad.map((c) => `${c.name}: want ${JSON.stringify(c.want)} got ${JSON.stringify(c.got)}`),
    [],
  );
  return r;
}

test("the daemon commands against Linux 6.1 and ipvsadm 1.31 (in the VM)", async () => {
  const r = (await vmResult(0)) as VmChecks & { kernel?: string };
  console.log(`  ${r.checks.length} checks against ipvsadm 1.31 on Linux ${r.kernel}`);
  assert.ok(r.checks.length >= 150, `${r.checks.length} checks ran`);
  assert.match(r.kernel ?? "", /^6\.1\./);
});

const syncKeepsDaemons =
  "wasmvs sync keeps a config's daemons: started, repaired when stopped, stopped on exit if asked (VM)";
test(syncKeepsDaemons, async () => {
  const r = await vmResult(1);
  assert.ok(r.checks.length >= 30, `${r.checks.length} checks ran`);
});

test.run();
