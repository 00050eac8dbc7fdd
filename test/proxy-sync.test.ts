// The proxy's connection sync settings (issue 20): proxy.syncDaemons in a configuration, checked like every
// other field (bad values named with their line, nothing started), and a socket-mode proxy refusing them.
// The daemons' sockets and the kernel's own are exercised in the VM (test/proxy-sync-vm.test.ts).
import { test } from "uvu";
import * as assert from "uvu/assert";
import { parseConfig, ConfigError } from "../src/proxy/config.ts";
import { Proxy } from "../src/proxy/index.ts";

const base = (sync: string) => `proxy:
  mode: packet
  interfaces: [eth0]
  localAddresses: [192.0.2.250]
  syncDaemons:
${sync}
services:
  - {protocol: tcp, addr: 10.0.0.1, port: 80, scheduler: rr, realServers: [{addr: 10.1.0.1, port: 8080}]}
`;

function problems(sync: string): string {
  try {
    parseConfig(base(sync));
    return "";
  } catch (e) {
    if (!(e instanceof ConfigError)) throw e;
    return e.message;
  }
}

test("syncDaemons: a master and a backup with ipvsadm's options and the kernel's defaults", () => {
  const cfg = parseConfig(
    base(`    - {state: master, mcastInterface: eth1, syncid: 7, maxlen: 1400, mcastTtl: 2}
    - {state: backup, mcastInterface: eth1, mcastGroup: 239.1.2.3, mcastPort: 9000}`),
  );
  assert.equal(cfg.options.syncDaemons, [
    { state: "master", mcastInterface: "eth1", syncid: 7, maxlen: 1400, group: "224.0.0.81", port: 8848, ttl: 2 },
    { state: "backup", mcastInterface: "eth1", syncid: 0, maxlen: 0, group: "239.1.2.3", port: 9000, ttl: 1 },
  ]);
  assert.equal(parseConfig(base("    []")).options.syncDaemons, []);
});

test("syncDaemons: each bad value named with where it is", () => {
  const cases: [string, RegExp][] = [
    ["    - {state: primary, mcastInterface: eth1}", /syncDaemons\[0\]\.state: 'primary' is not one of master, backup/],
    ["    - {mcastInterface: eth1}", /syncDaemons\[0\]\.state: required/],
    ["    - {state: master}", /syncDaemons\[0\]\.mcastInterface: not an interface name/],
    ["    - {state: master, mcastInterface: 'eth 1'}", /mcastInterface: not an interface name/],
    ["    - {state: master, mcastInterface: eth1, syncid: 256}", /syncid: must be an integer in 0\.\.255/],
    ["    - {state: master, mcastInterface: eth1, syncid: -1}", /syncid: must be an integer/],
    ["    - {state: master, mcastInterface: eth1, syncid: '7'}", /syncid: must be an integer/],
    ["    - {state: master, mcastInterface: eth1, maxlen: 70000}", /maxlen: must be an integer in 0\.\.65507/],
    ["    - {state: master, mcastInterface: eth1, mcastGroup: 10.0.0.1}", /mcastGroup: not a multicast address/],
    ["    - {state: master, mcastInterface: eth1, mcastGroup: nowhere}", /mcastGroup: 'nowhere' is not an IPv4/],
    // ff::1 is 00ff::1: its first byte is 0, so it is not in ff00::/8 (a prefix test on the text said it was)
    ['    - {state: master, mcastInterface: eth1, mcastGroup: "ff::1"}', /mcastGroup: not a multicast address/],
    ["    - {state: master, mcastInterface: eth1, mcastPort: 0}", /mcastPort: must be an integer in 1\.\.65535/],
    ["    - {state: master, mcastInterface: eth1, mcastTtl: 256}", /mcastTtl: must be an integer in 1\.\.255/],
    ["    - {state: master, mcastInterface: eth1, __proto__: {syncid: 3}}", /unknown key/],
    ["    - {state: constructor, mcastInterface: eth1}", /'constructor' is not one of master, backup/],
    ["    - {state: toString, mcastInterface: eth1}", /'toString' is not one of/],
    ["    - master", /syncDaemons\[0\]: must be a mapping/],
    ["    master", /syncDaemons: must be a list/],
    [
      "    - {state: master, mcastInterface: eth1}\n    - {state: master, mcastInterface: eth2}",
      /syncDaemons\[1\]: a second master daemon/,
    ],
  ];
  for (const [sync, want] of cases) assert.match(problems(sync), want, sync);
});

test("a socket-mode proxy refuses sync daemons, saying why, and leaves nothing running", async () => {
  const cfg = parseConfig(`proxy:
  control: null
  vipInterface: null
  syncDaemons: [{state: backup, mcastInterface: lo}]
services:
  - {protocol: tcp, addr: 127.0.0.1, port: 18080, scheduler: rr, realServers: [{addr: 127.0.0.2, port: 9}]}
`);
  cfg.options.logLevel = "error";
  try {
    await Proxy.start(cfg);
    assert.unreachable("started");
  } catch (e) {
    assert.match((e as Error).message, /sync daemons need packet mode/);
  }
});

test.run();
