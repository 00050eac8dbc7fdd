// kube-proxy's IPVS-mode node state applied for real: HostRules runs ipset and iptables-restore inside a
// network namespace made here (test/helpers/host-rules-run.ts), for a synthetic dual-stack cluster. After
// the first pass the kernel's sets hold exactly the wanted entries and the jumps exist; a second pass sends
// nothing; hand-made drift (a stale entry, a missing one, a deleted jump) is repaired by a full pass; a
// Service deleted from the cluster leaves the sets. The VM test (kernel-k8s-sync) covers the addresses.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { execFileSync } from "node:child_process";

import { needs, skip } from "./helpers/skip.ts";

const NAME = "HostRules: ipsets and iptables converge, a second pass sends nothing, drift is repaired";
const why = needs(
  ["ip", "ipset", "iptables-restore", "ip6tables-restore"],
  "apt-get install -y iproute2 ipset iptables",
);
if (why) skip(import.meta.url, NAME, why);
else
  test(NAME, () => {
    const ns = `wasmvs-hr-${process.pid}`;
    execFileSync("ip", ["netns", "add", ns]);
    let out: string;
    try {
      out = execFileSync(
        "ip",
        ["netns", "exec", ns, process.execPath, "--import", "tsx", "test/helpers/host-rules-run.ts"],
        { encoding: "utf8", maxBuffer: 1 << 26 },
      );
    } finally {
      execFileSync("ip", ["netns", "del", ns]);
    }
    const line = out.split("\n").find((l) => l.startsWith("@@RESULT "));
    assert.ok(line, out.slice(-2000));
    const r = JSON.parse(line!.slice(9));
    const sameSets = (step: string) => {
      const { want, kernel } = r[step];
      for (const name of Object.keys(want)) assert.equal(kernel[name] ?? null, want[name], `${step}: set ${name}`);
    };
    assert.equal(r.first.failures, []);
    assert.ok(
      r.first.ipsetAdds > 100 && r.first.setsCreated.length === 34,
      `first pass: ${r.first.ipsetAdds} entries, ${r.first.setsCreated.length} sets`,
    );
    assert.equal(r.first.iptables, ["restored", "restored"]);
    assert.is(r.first.jumpsAdded.length, 18);
    sameSets("afterFirst");
    assert.match(r.afterFirst.nat, /-A KUBE-SERVICES .*--match-set KUBE-CLUSTER-IP dst,dst -j ACCEPT/);
    assert.match(r.afterFirst.nat, /-A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES/);
    assert.match(
      r.afterFirst.filter6,
      /-A KUBE-IPVS-FILTER -m conntrack --ctstate NEW -m set --match-set KUBE-6-IPVS-IPS dst -j REJECT/,
    );
    // nothing changed: nothing sent (the entries' text matches ipset's own save format, IPv6 included)
    assert.equal(
      { a: r.second.ipsetAdds, d: r.second.ipsetDels, t: r.second.iptables, j: r.second.jumpsAdded },
      { a: 0, d: 0, t: ["unchanged", "unchanged"], j: [] },
    );
    // drift repaired by a full pass
    assert.equal(
      { a: r.third.ipsetAdds, d: r.third.ipsetDels, j: r.third.jumpsAdded },
      { a: 1, d: 1, j: ["iptables -t nat PREROUTING -j KUBE-SERVICES"] },
    );
    sameSets("afterThird");
    assert.not.ok(r.afterThird.kernel["KUBE-CLUSTER-IP"].includes(r.drift.stale));
    assert.ok(r.afterThird.kernel["KUBE-CLUSTER-IP"].includes(r.drift.victim));
    assert.is((r.afterThird.prerouting.match(/-j KUBE-SERVICES/g) ?? []).length, 1, "one jump, not two");
    // a deleted Service's entries are removed
    assert.ok(r.fourth.ipsetDels >= 1, `deleting ${r.deleted.owner} removed ${r.fourth.ipsetDels} entries`);
    sameSets("afterFourth");
    assert.not.ok(JSON.stringify(r.afterFourth.kernel["KUBE-CLUSTER-IP"]).includes(`"${r.deleted.addr},`));
  });

test.run();
