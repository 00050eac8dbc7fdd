// kube-proxy's own golden tests, ported as data: Kubernetes objects in (test/fixtures/kube-proxy/*.objects.json),
// the rules kube-proxy's tests expect out (*.nft, written from pkg/proxy/nftables/proxier_test.go's expected
// text), compared with what `wasmvs k8s rules` writes for the same node and flags. Like kube-proxy's own
// assertion, the comparison is of the resulting ruleset, not of the transaction's order: the same tables,
// chains (with their hooks and priorities), sets and maps, each chain's rules in order, each set's or map's
// elements as a set; numbers compare by value (0x00004000 is 0x4000).
import { test } from "uvu";
import * as assert from "uvu/assert";
import { spawnSync } from "node:child_process";
import { k8sCommand } from "../src/cli/k8s.ts";
import { readFileSync } from "node:fs";

const FIX = "test/fixtures/kube-proxy";

interface Ruleset {
  decls: Map<string, string>;
  rules: Map<string, string[]>;
  elements: Map<string, Set<string>>;
}

export function rulesetOf(text: string): Ruleset {
  const r: Ruleset = { decls: new Map(), rules: new Map(), elements: new Map() };
  const hex = (s: string) => s.replace(/\b0x([0-9a-f]+)\b/gi, (_m, h) => `0x${parseInt(h, 16).toString(16)}`);
  for (const raw of text.split("\n")) {
    const line = hex(raw.trim());
    if (!line || line.startsWith("#") || /^(flush|delete) /.test(line)) continue;
    let m: RegExpExecArray | null;
    if ((m = /^add (chain|set|map|table) (ip6?|inet) (\S+)(?: (\S+))?(?: (\{.*\}))?$/.exec(line))) {
      const key = `${m[1]} ${m[2]} ${m[3]}${m[4] ? ` ${m[4]}` : ""}`;
      // a base chain is added bare (to delete it) and then with its hook: the declaration with attributes wins
      if (m[5] || !r.decls.has(key)) r.decls.set(key, m[5] ?? "");
      if (m[1] === "chain" && !r.rules.has(key)) r.rules.set(key, []);
    } else if ((m = /^add rule (ip6?|inet) (\S+) (\S+) (.*)$/.exec(line))) {
      const key = `chain ${m[1]} ${m[2]} ${m[3]}`;
      if (!r.rules.has(key)) r.rules.set(key, []);
      r.rules.get(key)!.push(m[4]);
    } else if ((m = /^add element (ip6?|inet) (\S+) (\S+) \{ (.*) \}$/.exec(line))) {
      const key = `${m[1]} ${m[2]} ${m[3]}`;
      if (!r.elements.has(key)) r.elements.set(key, new Set());
      r.elements.get(key)!.add(m[4]);
    } else throw new Error(`a line this comparison does not know: ${line}`);
  }
  return r;
}

/** Every difference between two rulesets, as lines a reader can act on ([] = the same). */
export function rulesetDiff(want: Ruleset, got: Ruleset): string[] {
  const out: string[] = [];
  for (const [k, v] of want.decls)
    if (!got.decls.has(k)) out.push(`missing ${k} ${v}`);
    else if (got.decls.get(k) !== v) out.push(`${k}: want ${v}, got ${got.decls.get(k)}`);
  for (const [k, v] of got.decls) if (!want.decls.has(k)) out.push(`unexpected ${k} ${v}`);
  for (const [k, v] of want.rules) {
    const g = got.rules.get(k) ?? [];
    if (g.join("\n") !== v.join("\n"))
      out.push(`${k} rules:\n    want ${v.join("\n         ")}\n    got  ${g.join("\n         ")}`);
  }
  for (const [k, v] of got.rules)
    if (!want.rules.has(k) && v.length) out.push(`unexpected rules in ${k}: ${v.join("; ")}`);
  const keys = new Set([...want.elements.keys(), ...got.elements.keys()]);
  for (const k of keys) {
    const w = want.elements.get(k) ?? new Set(),
      g = got.elements.get(k) ?? new Set();
    for (const e of w) if (!g.has(e)) out.push(`${k}: missing element { ${e} }`);
    for (const e of g) if (!w.has(e)) out.push(`${k}: unexpected element { ${e} }`);
  }
  return out;
}

/** `wasmvs k8s rules` in this process: its exit status, stdout and stderr. */
async function k8sRules(args: string[]): Promise<{ status: number; stdout: string; stderr: string }> {
  let stdout = "",
    stderr = "";
  const sink = (f: (s: string) => void) => ({
    write: (s: string) => {
      f(s);
      return true;
    },
  });
  const status = await k8sCommand(
    ["rules", ...args],
    sink((x) => (stdout += x)) as unknown as typeof process.stdout,
    sink((x) => (stderr += x)) as unknown as typeof process.stderr,
  );
  return { status, stdout, stderr };
}

async function wasmvsRules(objects: string, args: string[]): Promise<string> {
  const r = await k8sRules([`${FIX}/${objects}`, ...args]);
  assert.is(r.status, 0, r.stderr.slice(0, 2000));
  return r.stdout;
}

// TestOverallNFTablesRules's node: "test-node", primary IP 192.168.0.2, clusterCIDR 10.0.0.0/8, Service CIDR
// 172.30.0.0/16, NodePorts on the node's primary IPs
const OVERALL_NODE = [
  "--mode=nftables",
  "--node-name=test-node",
  "--node-ip=192.168.0.2",
  "--cluster-cidr=10.0.0.0/8",
  "--service-cidrs=172.30.0.0/16",
  "--nodeport-addresses=primary",
];

test("TestOverallNFTablesRules (kube-proxy 1.34): k8s rules writes the ruleset its test expects", async () => {
  const want = rulesetOf(readFileSync(`${FIX}/overall-nftables.1.34.nft`, "utf8"));
  for (const args of [[], ["--kube-proxy-version=1.34"]]) {
    const diff = rulesetDiff(
      want,
      rulesetOf(await wasmvsRules("overall-nftables.objects.json", [...OVERALL_NODE, ...args])),
    );
    assert.equal(diff, [], diff.join("\n"));
  }
});

test("the comparison itself sees a changed priority, a dropped rule, a reordered chain and a missing element", () => {
  const want = rulesetOf(readFileSync(`${FIX}/overall-nftables.1.34.nft`, "utf8"));
  const text = readFileSync(`${FIX}/overall-nftables.1.34.nft`, "utf8");
  const variants = [
    text.replace(
      "filter-input { type filter hook input priority 0 ; }",
      "filter-input { type filter hook input priority -110 ; }",
    ),
    text.replace("add rule ip kube-proxy reject-chain reject\n", ""),
    text.replace(
      "add rule ip kube-proxy filter-forward ct state new jump service-endpoints-check\nadd rule ip kube-proxy " +
        "filter-forward ct state new jump cluster-ips-check",
      "add rule ip kube-proxy filter-forward ct state new jump cluster-ips-check\nadd rule ip kube-proxy " +
        "filter-forward ct state new jump service-endpoints-check",
    ),
    text.replace("add element ip kube-proxy cluster-ips { 172.30.0.46 }\n", ""),
  ];
  for (const v of variants) {
    assert.is.not(v, text);
    assert.ok(rulesetDiff(want, rulesetOf(v)).length > 0);
  }
});

for (const v of ["1.31", "1.32"]) {
  test(`TestOverallNFTablesRules (kube-proxy ${v}, before PRs 132456, 131492): the ruleset expected`, async () => {
    const want = rulesetOf(readFileSync(`${FIX}/overall-nftables.1.31-1.32.nft`, "utf8"));
    const args = [...OVERALL_NODE, `--kube-proxy-version=${v}`];
    const got = rulesetOf(await wasmvsRules("overall-nftables.objects.json", args));
    const diff = rulesetDiff(want, got);
    assert.equal(diff, [], diff.join("\n"));
  });
}

test(
  "TestOverallNFTablesRules (kube-proxy 1.33, PR 132456 backported): 1.34's filter chains, 1.32's " + "service chains",
  async () => {
    // the two ported texts combined: PR 132456 changed only the base chains, PR 131492 (1.34 only) only the
    // service chains' masquerade rule
    const before = rulesetOf(readFileSync(`${FIX}/overall-nftables.1.31-1.32.nft`, "utf8"));
    const after = rulesetOf(readFileSync(`${FIX}/overall-nftables.1.34.nft`, "utf8"));
    const serviceChain = /^chain ip kube-proxy service-[A-Z0-9]{8}-/;
    const rules = new Map([...after.rules].map(([k, r]) => [k, serviceChain.test(k) ? before.rules.get(k)! : r]));
    const want = { ...after, rules };
    assert.ok([...want.rules.keys()].filter((k) => serviceChain.test(k)).length === 5, "five service chains");
    const args = [...OVERALL_NODE, "--kube-proxy-version=1.33"];
    const got = rulesetOf(await wasmvsRules("overall-nftables.objects.json", args));
    const diff = rulesetDiff(want, got);
    assert.equal(diff, [], diff.join("\n"));
  },
);

test("the two nftables layouts differ where the PRs say, and nowhere else", () => {
  const before = rulesetOf(readFileSync(`${FIX}/overall-nftables.1.31-1.32.nft`, "utf8"));
  const after = rulesetOf(readFileSync(`${FIX}/overall-nftables.1.34.nft`, "utf8"));
  const diff = rulesetDiff(before, after).join("\n");
  for (const c of [
    "filter-prerouting",
    "filter-output-post-dnat",
    "filter-prerouting-pre-dnat",
    "filter-output-pre-dnat",
  ]) {
    assert.ok(diff.includes(`chain ip kube-proxy ${c} `), c);
  }
  assert.not.ok(/element/.test(diff), "no set or map element differs");
  const changed = [...new Set([...before.rules.keys(), ...after.rules.keys()])]
    .filter((k) => (before.rules.get(k) ?? []).join("\n") !== (after.rules.get(k) ?? []).join("\n"))
    .map((k) => k.replace("chain ip kube-proxy ", "").replace(/^(service-)[A-Z0-9]{8}-.*/, "$1*"));
  assert.equal([...new Set(changed)].sort(), [
    "filter-output",
    "filter-output-post-dnat",
    "filter-output-pre-dnat",
    "filter-prerouting",
    "filter-prerouting-pre-dnat",
    "service-*",
  ]);
});

interface IptablesRuleset {
  chains: Set<string>;
  rules: Map<string, Map<string, string[]>>;
  last: Map<string, string>;
}

// the service a rule belongs to, from its comment ("ns1/svc1:p80 cluster IP", ns2/svc2:p80, "... for ns5/svc5:p80 ...")
const serviceOf = (rule: string) => /--comment "?(?:[^"]* )?([\w.-]+\/[\w.-]+:[\w.-]*)/.exec(rule)?.[1] ?? "";

/**
 * An iptables-save text as iptables-restore sees it: the chains each table declares (a set), and each chain's
 * rules. kube-proxy writes the dispatch chains (KUBE-SERVICES, KUBE-NODEPORTS, ...) in Go map order, so rules
 * of different Services may come in any order; one Service's rules keep theirs, and so does every chain's
 * last rule when it belongs to no Service (KUBE-SERVICES' NodePort jump must stay last).
 */
export function iptablesRulesetOf(text: string): IptablesRuleset {
  const r: IptablesRuleset = { chains: new Set(), rules: new Map(), last: new Map() };
  let table = "";
  // a mark compares by value: kube-proxy writes 0x4000 in its tests, %#08x on a node
  const hex = (s: string) => s.replace(/\b0x([0-9a-f]+)\b/gi, (_m, h) => `0x${parseInt(h, 16).toString(16)}`);
  for (const raw of text.split("\n")) {
    const line = hex(raw.trim());
    if (!line || line.startsWith("#") || line === "COMMIT") continue;
    let m: RegExpExecArray | null;
    if ((m = /^\*(\w+)$/.exec(line))) table = m[1];
    else if ((m = /^:(\S+) (\S+) \[\d+:\d+\]$/.exec(line)) && table) r.chains.add(`${table} ${m[1]}`);
    else if ((m = /^-A (\S+) (.*)$/.exec(line)) && table) {
      const chain = `${table} ${m[1]}`,
        svc = serviceOf(m[2]);
      if (!r.rules.has(chain)) r.rules.set(chain, new Map());
      const groups = r.rules.get(chain)!;
      if (!groups.has(svc)) groups.set(svc, []);
      groups.get(svc)!.push(m[2]);
      r.last.set(chain, svc ? "" : m[2]);
    } else throw new Error(`a line this comparison does not know: ${line}`);
  }
  return r;
}

export function iptablesDiff(want: IptablesRuleset, got: IptablesRuleset): string[] {
  const out: string[] = [];
  for (const c of want.chains) if (!got.chains.has(c)) out.push(`missing chain ${c}`);
  for (const c of got.chains) if (!want.chains.has(c)) out.push(`unexpected chain ${c}`);
  const chains = new Set([...want.rules.keys(), ...got.rules.keys()]);
  for (const c of chains) {
    const w = want.rules.get(c) ?? new Map<string, string[]>(),
      g = got.rules.get(c) ?? new Map<string, string[]>();
    for (const svc of new Set([...w.keys(), ...g.keys()])) {
      const a = w.get(svc) ?? [],
        b = g.get(svc) ?? [];
      if (a.join("\n") !== b.join("\n")) {
        const lines = (rs: string[]) => rs.join("\n         ");
        out.push(`${c}${svc ? ` (${svc})` : ""}:\n    want ${lines(a)}\n    got  ${lines(b)}`);
      }
    }
    const wl = want.last.get(c);
    if (wl && got.last.get(c) !== wl) out.push(`${c}: the last rule must be ${wl}`);
  }
  return out;
}

// TestOverallIPTablesRules's fake node: NodePorts on every local address, localhostNodePorts, detect-local by the
// 10.0.0.0/8 CIDR, nfacct counters created, and a fake iptables without --random-fully
const IPT_NODE = [
  "--mode=iptables",
  "--node-name=test-node",
  "--node-ip=192.168.0.2",
  "--cluster-cidr=10.0.0.0/8",
  "--nfacct=on",
  "--random-fully=off",
];

for (const v of ["1.31", "1.32", "1.33", "1.34"]) {
  test(`TestOverallIPTablesRules (kube-proxy ${v}): k8s rules writes the iptables-save its test expects`, async () => {
    const want = iptablesRulesetOf(readFileSync(`${FIX}/overall-iptables.save`, "utf8"));
    const got = await wasmvsRules("overall-nftables.objects.json", [...IPT_NODE, `--kube-proxy-version=${v}`]);
    const diff = iptablesDiff(want, iptablesRulesetOf(got));
    assert.equal(diff, [], diff.join("\n"));
  });
}

test("the iptables comparison sees a dropped rule, a reordered Service, a moved last rule and a missing chain", () => {
  const text = readFileSync(`${FIX}/overall-iptables.save`, "utf8");
  const want = iptablesRulesetOf(text);
  const nodeports = /^-A KUBE-SERVICES .*"kubernetes service nodeports; NOTE.*\n/m.exec(text)![0];
  const sep = '-A KUBE-SVC-NUKIZ6OKUXPJNT4C -m comment --comment "ns5/svc5:p80 -> 10.180.0.3:80" ';
  const sep5 = "KUBE-SEP-I77PXRDZVX7PMWMN";
  const sticky = `-m recent --name ${sep5} --rcheck --seconds 10800 --reap -j ${sep5}`;
  const svc1 = '-A KUBE-SERVICES -m comment --comment "ns1/svc1:p80';
  const variants = [
    text.replace("-A KUBE-MARK-MASQ -j MARK --or-mark 0x4000\n", ""),
    text.replace(`${sep}${sticky}\n${sep}-j ${sep5}\n`, `${sep}-j ${sep5}\n${sep}${sticky}\n`),
    text.replace(nodeports, "").replace(svc1, `${nodeports}${svc1}`),
    text.replace(":KUBE-FIREWALL - [0:0]\n", ""),
    text.replace(" -m nfacct --nfacct-name ct_state_invalid_dropped_pkts", ""),
  ];
  for (const v of variants) {
    assert.is.not(v, text);
    assert.ok(iptablesDiff(want, iptablesRulesetOf(v)).length > 0, v.slice(0, 80));
  }
  // Services in another order are the same ruleset (kube-proxy's map order)
  const svc1Rule = /^-A KUBE-SERVICES -m comment --comment "ns1\/svc1:p80 cluster IP".*\n/m.exec(text)![0];
  const moved = text.replace(svc1Rule, "").replace(nodeports, svc1Rule + nodeports);
  assert.equal(iptablesDiff(want, iptablesRulesetOf(moved)), []);
});

test("wasmvs k8s rules refuses a bad version, CIDR, on/off value or unknown flag: exit 2, nothing read", async () => {
  for (const a of [
    "--kube-proxy-version=1.30",
    "--kube-proxy-version=__proto__",
    "--kube-proxy-version=",
    "--service-cidrs=nope",
    "--service-cidrs=",
    "--cluster-cidr=10.0.0.0/99",
    "--nodeport-addresses=constructor",
  ]) {
    const r = await k8sRules(["/nonexistent", "--mode=nftables", a]);
    assert.is(r.status, 2, `${a}: ${r.stderr.slice(0, 300)}`);
    assert.match(r.stderr, /^wasmvs k8s rules: --[a-z-]+\b.+\nusage: wasmvs k8s/, a);
    assert.is(r.stdout, "");
  }
  for (const a of [
    "--nfacct=yes",
    "--nfacct=",
    "--random-fully=__proto__",
    "--random-fully=ON",
    "--nonsense",
    "--constructor=1",
    "--__proto__",
    "--toString",
  ]) {
    const r = await k8sRules(["/nonexistent", "--mode=iptables", a]);
    assert.is(r.status, 2, `${a}: ${r.stderr.slice(0, 300)}`);
    assert.match(r.stderr, /^wasmvs k8s rules: (--[a-zA-Z_-]+\b.+|unknown (flag|option) .+)\nusage: wasmvs k8s/, a);
    assert.is(r.stdout, "");
  }
  const w = spawnSync(
    process.execPath,
    ["bin/wasmvs.js", "k8s", "rules", "/nonexistent", "--mode=nftables", "--kube-proxy-version=9"],
    { encoding: "utf8", timeout: 60_000 },
  );
  assert.is(w.status, 2, "through the command users type");
});

test.run();
