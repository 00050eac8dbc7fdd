// Run inside a network namespace by test/host-rules.test.ts (ipsets and iptables are per namespace):
// applies kube-proxy's IPVS-mode node state for a synthetic cluster with HostRules, then drifts it by hand
// and applies again, printing "@@RESULT {json}" with every report and what the kernel holds after each step.
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { mapCluster, generateCluster } from "../../src/k8s/index.ts";
import { serviceKey } from "../../src/model/types.ts";
import { HostRules, parseIpsetSave, type HostFamilyState } from "../../src/kernel/host-rules.ts";

// xt_ipvs (KUBE-IPVS-OUT-FILTER's `-m ipvs`) exists only on a kernel with IPVS: left out elsewhere
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

const m = mapCluster(generateCluster({ services: 60, seed: 3, dualStackFraction: 0.3 }).items, {
  node: { nodeName: "node-0", addresses: ["192.168.1.10", "fd00:1::10"] },
  config: { clusterCIDRs: ["10.128.0.0/9", "fd00:128::/64"] },
});
const states = (): HostFamilyState[] =>
  (["IPv4", "IPv6"] as const).map((f) => {
    const st = m.index.ipvsState(f);
    return {
      family: f,
      ipsets: st.ipsets,
      iptablesRestore: loadable(st.iptablesRestore),
      iptablesJumps: st.iptablesJumps,
      bindAddrs: [],
    };
  });
const sh = (cmd: string, args: string[]) => execFileSync(cmd, args, { encoding: "utf8", maxBuffer: 1 << 26 });
const kernelSets = () =>
  Object.fromEntries([...parseIpsetSave(sh("ipset", ["save"]))].map(([k, v]) => [k, [...v].sort()]));
const wantSets = () =>
  Object.fromEntries(
    states()
      .flatMap((f) => f.ipsets)
      .map((s) => [s.name, [...new Set(s.entries)].sort()]),
  );

const host = new HostRules({ bindInterface: null });
const out: Record<string, unknown> = {};
out.first = await host.apply(states(), { full: true });
out.afterFirst = {
  kernel: kernelSets(),
  want: wantSets(),
  nat: sh("iptables-save", ["-t", "nat"]),
  filter6: sh("ip6tables-save", ["-t", "filter"]),
};
out.second = await host.apply(states());
// drift: a stale entry, a missing entry and a deleted jump rule; a full pass repairs all three
const stale = "10.96.250.250,tcp:9999";
sh("ipset", ["add", "KUBE-CLUSTER-IP", stale]);
const victim = wantSets()["KUBE-CLUSTER-IP"][0];
sh("ipset", ["del", "KUBE-CLUSTER-IP", victim]);
sh("iptables", [
  "-t",
  "nat",
  "-D",
  "PREROUTING",
  "-m",
  "comment",
  "--comment",
  "kubernetes service portals",
  "-j",
  "KUBE-SERVICES",
]);
out.drift = { stale, victim };
out.third = await host.apply(states(), { full: true });
out.afterThird = {
  kernel: kernelSets(),
  want: wantSets(),
  prerouting: sh("iptables", ["-t", "nat", "-S", "PREROUTING"]),
};
// a Service deleted from the cluster: its entries leave the sets
const gone = m.index.virtualServices("IPv4")[0];
const owner = m.index.owners(serviceKey(gone))[0] ?? "";
const [ns, name] = owner.replace(/:.*$/, "").split("/");
out.deleted = { owner, addr: gone.addr };
if (ns && name) m.index.deleteService(ns, name);
out.fourth = await host.apply(states());
out.afterFourth = { kernel: kernelSets(), want: wantSets() };
host.close();
console.log("@@RESULT " + JSON.stringify(out));
