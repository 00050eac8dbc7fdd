// The generated texts must be accepted by the real tools: ipset restore, iptables-restore (legacy and nft
// backends, IPv4 and IPv6) and nft -f, each inside a network namespace created here and deleted after.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { execFileSync, spawnSync } from "node:child_process";
import { mapCluster, iptablesFor, nftablesFor, generateCluster, withJumps, IPTABLES_JUMPS } from "../src/k8s/index.ts";
import { GOLDEN, NODE, CONFIG } from "./fixtures/k8s/golden.ts";

import { needs, skip } from "./helpers/skip.ts";

const why = needs(
  [
    "ip",
    "ipset",
    "iptables-legacy-restore",
    "iptables-nft-restore",
    "ip6tables-legacy-restore",
    "ip6tables-nft-restore",
    "nft",
    "python3",
  ],
  "apt-get install -y iproute2 ipset iptables nftables python3",
);

function inNetns(fn: (run: (cmd: string[], input: string) => void, ns: string) => void) {
  const ns = `wasmvs-k8s-${process.pid}-${Math.floor(Math.random() * 1e6)}`;
  execFileSync("ip", ["netns", "add", ns]);
  try {
    fn((cmd, input) => {
      const r = spawnSync("ip", ["netns", "exec", ns, ...cmd], { input, encoding: "utf8", maxBuffer: 1 << 28 });
      if (r.status !== 0)
        throw new Error(`${cmd.join(" ")} refused the input (exit ${r.status}): ${r.stderr.slice(0, 2000)}`);
    }, ns);
  } finally {
    execFileSync("ip", ["netns", "del", ns]);
  }
}

// xt_ipvs (the `-m ipvs` match of KUBE-IPVS-OUT-FILTER) exists only where the kernel has IPVS; without it
// those rules are left out of the load and the test says so.
import { readFileSync } from "node:fs";
const hasIpvsMatch = (() => {
  try {
    return readFileSync("/proc/net/ip_tables_matches", "utf8").split("\n").includes("ipvs");
  } catch {
    return false;
  }
})();
const loadable = (t: string) =>
  hasIpvsMatch
    ? t
    : t
        .split("\n")
        .filter((l) => !l.includes(" -m ipvs "))
        .join("\n");

const cases = () => [
  { name: "golden", m: mapCluster(GOLDEN, { node: NODE, config: CONFIG }) },
  {
    name: "synthetic 300 (30% dual-stack)",
    m: mapCluster(generateCluster({ services: 300, seed: 7, dualStackFraction: 0.3 }).items, {
      node: { nodeName: "node-0", addresses: ["192.168.1.10", "fd00:1::10"] },
      config: { clusterCIDRs: ["10.128.0.0/9", "fd00:128::/64"] },
    }),
  },
];

if (why) skip(import.meta.url, "load generated rules in a namespace (IPVS, iptables and nftables modes)", why);
else {
  test(
    `IPVS mode: ipset restore, then iptables-restore --noflush with the ipsets, both backends, both families` +
      (hasIpvsMatch ? "" : " (this kernel has no xt_ipvs: the -m ipvs KUBE-IPVS-OUT-FILTER rules are not loaded)"),
    () => {
      for (const { name, m } of cases())
        for (const backend of ["legacy", "nft"])
          inNetns((run) => {
            run(["ipset", "restore"], m.ipvs.IPv4!.ipsetRestore);
            run(["ipset", "restore"], m.ipvs.IPv6!.ipsetRestore);
            try {
              run([`iptables-${backend}-restore`, "--noflush"], loadable(m.ipvs.IPv4!.iptablesInstall));
            } catch (e) {
              assert.unreachable(`${name} ${backend} IPv4: ${(e as Error).message}`);
            }
            try {
              run([`ip6tables-${backend}-restore`, "--noflush"], loadable(m.ipvs.IPv6!.iptablesInstall));
            } catch (e) {
              assert.unreachable(`${name} ${backend} IPv6: ${(e as Error).message}`);
            }
          });
    },
  );

  test("iptables mode: iptables-restore, both backends, both families", () => {
    for (const { name, m } of cases())
      for (const backend of ["legacy", "nft"])
        inNetns((run) => {
          try {
            run([`iptables-${backend}-restore`, "--noflush"], iptablesFor(m.index, "IPv4").text);
            run([`ip6tables-${backend}-restore`, "--noflush"], iptablesFor(m.index, "IPv6").text);
          } catch (e) {
            assert.unreachable(`${name} ${backend}: ${(e as Error).message}`);
          }
        });
  });

  // kube-proxy creates its nfacct counters over nfnetlink (NFNL_SUBSYS_ACCT); here a few lines of Python do the
  // same, and read a counter back, inside the namespace
  const NFACCT_PY = `
import socket, struct, sys
def call(msg, name, flags):
    s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 12)
    nm = name.encode() + b"\\0"
    attr = struct.pack("=HH", 4 + len(nm), 1) + nm
    attr += b"\\0" * (-len(attr) % 4)
    body = struct.pack("=BBH", 0, 0, 0) + attr
    s.send(struct.pack("=IHHII", 16 + len(body), (7 << 8) | msg, flags, 1, 0) + body)
    return s.recv(65536)
op, names = sys.argv[1], sys.argv[2:]
for n in names:
    if op == "create":
        err = struct.unpack("=i", call(0, n, 0x405)[16:20])[0]
        if err: sys.exit("nfacct %s: %d" % (n, err))
    else:
        r = call(1, n, 0x1)
        i = 20
        while i + 4 <= len(r):
            ln, ty = struct.unpack("=HH", r[i:i + 4])
            if ty & 0x7fff == 2: print(struct.unpack(">Q", r[i + 4:i + 12])[0])
            i += (ln + 3) & ~3
`;
  const COUNTERS = ["ct_state_invalid_dropped_pkts", "localhost_nps_accepted_pkts"];

  test(
    "iptables mode --nfacct=on: refused until kube-proxy's counters exist, then loads (both backends) and counts " +
      "a connection to a localhost NodePort",
    () => {
      const m = mapCluster(readFileSync("test/fixtures/kube-proxy/overall-nftables.objects.json", "utf8"), {
        node: { nodeName: "test-node", addresses: ["192.168.0.2"] },
        config: { clusterCIDRs: ["10.0.0.0/8"] },
      });
      const text = iptablesFor(m.index, "IPv4", { nfacct: true }).text;
      assert.ok(text.includes("-d 127.0.0.0/8 --dport 3001 -m nfacct --nfacct-name localhost_nps_accepted_pkts"));
      for (const backend of ["legacy", "nft"])
        inNetns((run) => {
          let refused = "";
          try {
            run([`iptables-${backend}-restore`, "--noflush"], text);
          } catch (e) {
            refused = (e as Error).message;
          }
          assert.match(refused, /refused the input/, `${backend}: loaded without the counters`);
          run(["python3", "-c", NFACCT_PY, "create", ...COUNTERS], "");
          run([`iptables-${backend}-restore`, "--noflush"], withJumps(text, IPTABLES_JUMPS));
        });
      // the kernel counts: a SYN from the node to 127.0.0.1:3001 crosses nat OUTPUT -> KUBE-NODEPORTS
      inNetns((run, ns) => {
        run(["python3", "-c", NFACCT_PY, "create", ...COUNTERS], "");
        run(["iptables-legacy-restore", "--noflush"], withJumps(text, IPTABLES_JUMPS));
        run(["ip", "link", "set", "lo", "up"], "");
        const connect =
          "import socket\ns=socket.socket()\ns.settimeout(0.3)\n" +
          "try: s.connect(('127.0.0.1', 3001))\nexcept Exception: pass";
        spawnSync("ip", ["netns", "exec", ns, "python3", "-c", connect]);
        const read = ["netns", "exec", ns, "python3", "-c", NFACCT_PY, "get", "localhost_nps_accepted_pkts"];
        const got = spawnSync("ip", read, { encoding: "utf8" });
        assert.ok(Number(got.stdout.trim()) >= 1, `packets counted: ${JSON.stringify(got.stdout)} ${got.stderr}`);
      });
    },
  );

  test("nftables mode: nft -f, ip and ip6 tables", () => {
    for (const { name, m } of cases())
      inNetns((run) => {
        try {
          run(["nft", "-f", "-"], nftablesFor(m.index, "IPv4", ["10.96.0.0/12"]).text);
          run(["nft", "-f", "-"], nftablesFor(m.index, "IPv6", ["fd00:96::/112"]).text);
        } catch (e) {
          assert.unreachable(`${name}: ${(e as Error).message}`);
        }
      });
  });
}

test.run();
