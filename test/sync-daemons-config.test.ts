// The `daemons:` section of the config `wasmvs sync --config` reads (issue 20): parsed into the sync daemons
// kept running, and bad input refused before anything changes, naming the field with its line and column
// (wrong types, unknown and prototype keys, huge numbers, groups that are not multicast). The section at
// work against the kernel is in test/kernel-daemon.test.ts (the VM).
import { test } from "uvu";
import * as assert from "uvu/assert";
import { ConfigError, parseConfig } from "../src/proxy/config.ts";
import { ensureDaemons } from "../src/kernel/daemons.ts";
import type { DaemonState, SyncDaemon } from "../src/model/daemon.ts";

const refused = (text: string): string => {
  try {
    parseConfig(text, "c.yaml");
  } catch (e) {
    assert.instance(e, ConfigError);
    return (e as Error).message;
  }
  throw new Error(`accepted:\n${text}`);
};

test("a director's daemons: both states, every option, stopOnExit", () => {
  const c = parseConfig(
    `daemons:
  master: { mcastInterface: eth1, syncid: 10 }
  backup:
    mcastInterface: eth1
    syncid: 10
    syncMaxlen: 1400
    mcastGroup: ff02::1:9
    mcastPort: 8850
    mcastTtl: 2
  stopOnExit: true
`,
  );
  assert.equal(c.daemons, {
    daemons: [
      { state: "master", mcastIfn: "eth1", syncid: 10 },
      {
        state: "backup",
        mcastIfn: "eth1",
        syncid: 10,
        syncMaxlen: 1400,
        mcastPort: 8850,
        mcastTtl: 2,
        mcastGroup: "ff02::1:9",
      },
    ],
    stopOnExit: true,
  });
  assert.is(parseConfig("services: []\n").daemons, undefined);
  assert.equal(parseConfig("daemons: { backup: { mcastInterface: eth0 } }\n").daemons, {
    daemons: [{ state: "backup", mcastIfn: "eth0", syncid: 0 }],
    stopOnExit: false,
  });
  // JSON is read by the same parser
  assert.is(
    parseConfig('{"daemons": {"master": {"mcastInterface": "bond0", "syncid": 1}}}').daemons?.daemons.length,
    1,
  );
});

test("bad daemons: refused naming the field, its line and column", () => {
  const cases: [string, RegExp][] = [
    ["  master: { mcastInterface: eth1, syncid: 256 }", /c\.yaml:2:\d+: daemons\.master\.syncid: must be an integer/],
    ["  master: { mcastInterface: eth1, syncid: -1 }", /daemons\.master\.syncid/],
    ["  master: { mcastInterface: eth1, syncid: 1e400 }", /daemons\.master\.syncid/],
    ["  master: { mcastInterface: eth1, syncid: '5' }", /daemons\.master\.syncid/],
    ["  master: { mcastInterface: eth1, syncid: 1.5 }", /daemons\.master\.syncid/],
    ["  master: { mcastInterface: eth1, syncMaxlen: 65508 }", /daemons\.master\.syncMaxlen/],
    ["  master: { mcastInterface: eth1, mcastPort: 0 }", /daemons\.master\.mcastPort/],
    ["  master: { mcastInterface: eth1, mcastPort: 99999999999999999999 }", /daemons\.master\.mcastPort/],
    ["  master: { mcastInterface: eth1, mcastTtl: 256 }", /daemons\.master\.mcastTtl/],
    ["  master: { mcastInterface: eth1, mcastGroup: 10.0.0.1 }", /daemons\.master\.mcastGroup: '10\.0\.0\.1' is not/],
    ["  master: { mcastInterface: eth1, mcastGroup: fe80::1 }", /daemons\.master\.mcastGroup/],
    ["  master: { mcastInterface: eth1, mcastGroup: [224.0.0.81] }", /daemons\.master\.mcastGroup: must be a string/],
    ["  master: { syncid: 1 }", /daemons\.master\.mcastInterface: is required/],
    ["  master: { mcastInterface: '' }", /daemons\.master\.mcastInterface: must not be empty/],
    ["  master: { mcastInterface: eth0123456789abc }", /daemons\.master\.mcastInterface: .*longer than 15 bytes/],
    ["  master: { mcastInterface: 'a/b' }", /cannot be an interface name/],
    ["  master: { mcastInterface: [eth0] }", /daemons\.master\.mcastInterface: must be a string/],
    ["  master: eth0", /daemons\.master: must be a mapping/],
    ["  primary: { mcastInterface: eth0 }", /daemons\.primary: unknown key \(known: master, backup, stopOnExit\)/],
    ["  __proto__: { mcastInterface: eth0 }", /daemons\.__proto__: unknown key/],
    ["  constructor: { mcastInterface: eth0 }", /daemons\.constructor: unknown key/],
    ["  master: { mcastInterface: eth0, toString: 1 }", /daemons\.master\.toString: unknown key/],
    ["  master: { mcastInterface: eth0, __proto__: { syncid: 3 } }", /daemons\.master\.__proto__: unknown key/],
    ["  master: { mcastInterface: eth0, mcast_interface: eth0 }", /daemons\.master\.mcast_interface: unknown key/],
    ["  stopOnExit: yes please", /daemons\.stopOnExit: must be true or false/],
    ["  stopOnExit: 1", /daemons\.stopOnExit: must be true or false/],
  ];
  for (const [line, re] of cases) assert.match(refused(`daemons:\n${line}\n`), re, line);
  assert.match(refused("daemons: [master]\n"), /daemons: must be a mapping/);
  // every problem at once, not the first only
  const all = refused(
    "daemons:\n  master: { syncid: 300, mcastTtl: 0 }\n  backup: { mcastInterface: x, mcastPort: -1 }\n",
  );
  for (const f of ["master.mcastInterface", "master.syncid", "master.mcastTtl", "backup.mcastPort"])
    assert.ok(all.includes(`daemons.${f}`), `${f} in:\n${all}`);
});

// an in-memory kernel with the kernel's rules (EEXIST, ESRCH): the pass logic; the real kernel is in the VM
function fakeKernel(initial: SyncDaemon[] = []) {
  const running = new Map<DaemonState, SyncDaemon>(initial.map((d) => [d.state, d]));
  const calls: string[] = [];
  return {
    calls,
    running,
    daemons: async () =>
      [...running.values()].map((d) => ({ mcastGroup: "224.0.0.81", mcastPort: 8848, mcastTtl: 1, ...d })),
    startDaemon: async (d: SyncDaemon) => {
      calls.push(`start ${d.state}`);
      if (running.has(d.state)) throw Object.assign(new Error("EEXIST"), { errno: 17 });
      if (d.mcastIfn === "nosuch0") throw new Error("start the backup sync daemon: no such network interface (ENODEV)");
      running.set(d.state, d);
    },
    stopDaemon: async (s: DaemonState) => {
      calls.push(`stop ${s}`);
      if (!running.delete(s)) throw Object.assign(new Error("ESRCH"), { errno: 3 });
    },
  };
}

test("a pass: starts what is missing, repairs drift, leaves unnamed states and matching ones alone", async () => {
  const m: SyncDaemon = { state: "master", mcastIfn: "eth1", syncid: 10 };
  const k = fakeKernel([{ state: "backup", mcastIfn: "eth9", syncid: 3 }]);
  let p = await ensureDaemons(k, [m], true);
  assert.equal(p, { changes: ["started: --start-daemon master --mcast-interface eth1 --syncid 10"], failures: [] });
  assert.equal(k.calls, ["start master"], "the backup, not configured, is left alone");
  k.calls.length = 0;
  p = await ensureDaemons(k, [m]);
  assert.equal([p, k.calls], [{ changes: [], failures: [] }, []], "in sync: nothing done");
  k.running.delete("master");
  p = await ensureDaemons(k, [m]);
  assert.match(p.changes[0], /the master sync daemon was not running \(drift\): started again/);
  k.running.set("master", { ...m, syncid: 99 });
  k.calls.length = 0;
  p = await ensureDaemons(k, [m]);
  assert.equal(k.calls, ["stop master", "start master"]);
  assert.match(p.changes[0], /ran with other options \(master sync daemon \(mcast=eth1, syncid=99.*restarted as/);
  // one failing does not stop the other
  const k2 = fakeKernel();
  p = await ensureDaemons(k2, [{ state: "backup", mcastIfn: "nosuch0", syncid: 1 }, m], true);
  assert.is(p.failures.length, 1);
  assert.match(p.failures[0], /ENODEV/);
  assert.equal([...k2.running.keys()], ["master"]);
});

test.run();
