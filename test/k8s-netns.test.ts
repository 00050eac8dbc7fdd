// The generated texts must be accepted by the real tools: ipset restore, iptables-restore (legacy and nft
// backends, IPv4 and IPv6) and nft -f, each inside a network namespace created here and deleted after.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { execFileSync, spawnSync } from "node:child_process";
import { mapCluster, iptablesFor, nftablesFor, generateCluster } from "../src/k8s/index.ts";
import { GOLDEN, NODE, CONFIG } from "./fixtures/k8s/golden.ts";

import { needs, skip } from "./helpers/skip.ts";

const why = needs(["ip", "ipset", "iptables-legacy-restore", "iptables-nft-restore", "ip6tables-legacy-restore", "ip6tables-nft-restore", "nft"],
  "apt-get install -y iproute2 ipset iptables nftables");

function inNetns(fn: (run: (cmd: string[], input: string) => void) => void) {
  const ns = `wasmvs-k8s-${process.pid}-${Math.floor(Math.random() * 1e6)}`;
  execFileSync("ip", ["netns", "add", ns]);
  try {
    fn((cmd, input) => {
      const r = spawnSync("ip", ["netns", "exec", ns, ...cmd], { input, encoding: "utf8", maxBuffer: 1 << 28 });
      if (r.status !== 0) throw new Error(`${cmd.join(" ")} refused the input (exit ${r.status}): ${r.stderr.slice(0, 2000)}`);
    });
  } finally {
    execFileSync("ip", ["netns", "del", ns]);
  }
}

// xt_ipvs (the `-m ipvs` match of KUBE-IPVS-OUT-FILTER) exists only where the kernel has IPVS; without it
// those rules are left out of the load and the test says so.
import { readFileSync } from "node:fs";
const hasIpvsMatch = (() => { try { return readFileSync("/proc/net/ip_tables_matches", "utf8").split("\n").includes("ipvs"); } catch { return false; } })();
const loadable = (t: string) => hasIpvsMatch ? t : t.split("\n").filter((l) => !l.includes(" -m ipvs ")).join("\n");

const cases = () => [
  { name: "golden", m: mapCluster(GOLDEN, { node: NODE, config: CONFIG }) },
  { name: "synthetic 300 (30% dual-stack)", m: mapCluster(generateCluster({ services: 300, seed: 7, dualStackFraction: 0.3 }).items, {
    node: { nodeName: "node-0", addresses: ["192.168.1.10", "fd00:1::10"] }, config: { clusterCIDRs: ["10.128.0.0/9", "fd00:128::/64"] } }) },
];

if (why) skip(import.meta.url, "load generated rules in a namespace (IPVS, iptables and nftables modes)", why);
else {
  test(`IPVS mode: ipset restore, then iptables-restore --noflush with the ipsets, both backends, both families${hasIpvsMatch ? "" : " (this kernel has no xt_ipvs: the -m ipvs KUBE-IPVS-OUT-FILTER rules are not loaded)"}`, () => {
    for (const { name, m } of cases()) for (const backend of ["legacy", "nft"]) inNetns((run) => {
      run(["ipset", "restore"], m.ipvs.IPv4!.ipsetRestore);
      run(["ipset", "restore"], m.ipvs.IPv6!.ipsetRestore);
      try { run([`iptables-${backend}-restore`, "--noflush"], loadable(m.ipvs.IPv4!.iptablesInstall)); }
      catch (e) { assert.unreachable(`${name} ${backend} IPv4: ${(e as Error).message}`); }
      try { run([`ip6tables-${backend}-restore`, "--noflush"], loadable(m.ipvs.IPv6!.iptablesInstall)); }
      catch (e) { assert.unreachable(`${name} ${backend} IPv6: ${(e as Error).message}`); }
    });
  });

  test("iptables mode: iptables-restore, both backends, both families", () => {
    for (const { name, m } of cases()) for (const backend of ["legacy", "nft"]) inNetns((run) => {
      try {
        run([`iptables-${backend}-restore`, "--noflush"], iptablesFor(m.index, "IPv4").text);
        run([`ip6tables-${backend}-restore`, "--noflush"], iptablesFor(m.index, "IPv6").text);
      } catch (e) { assert.unreachable(`${name} ${backend}: ${(e as Error).message}`); }
    });
  });

  test("nftables mode: nft -f, ip and ip6 tables", () => {
    for (const { name, m } of cases()) inNetns((run) => {
      try {
        run(["nft", "-f", "-"], nftablesFor(m.index, "IPv4", ["10.96.0.0/12"]).text);
        run(["nft", "-f", "-"], nftablesFor(m.index, "IPv6", ["fd00:96::/112"]).text);
      } catch (e) { assert.unreachable(`${name}: ${(e as Error).message}`); }
    });
  });
}

test.run();
