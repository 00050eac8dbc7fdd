// kube-proxy IPVS mode's Service-type tests (pkg/proxy/ipvs/proxier_test.go) as data
// (test/fixtures/kube-proxy/ipvs-service-types.ts): the same objects through mapCluster, then the checks
// kube-proxy's test makes against its fakes: the whole IPVS table (every virtual server, its scheduler and
// persistence, its real servers as a set, weight 1), the listed ipsets' entries (as sets), and a jump to each
// listed target from each listed chain, matching the listed ipset (kube-proxy's hasJump). Where the test goes on
// (an EndpointSlice or Service updated or deleted, then another sync), the same changes go through the index
// (ClusterIndex.apply/delete*) and each later state is checked the same way, kube-ipvs0's addresses included.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { mapCluster, readProxyConfig, type IpvsFamilyState } from "../src/k8s/index.ts";
import { CASES, type IpvsCase } from "./fixtures/kube-proxy/ipvs-service-types.ts";

const hostPort = (ip: string, port: number) => (ip.includes(":") ? `[${ip}]:${port}` : `${ip}:${port}`);

/** What a case or a later step expects of the state after a sync. */
type Expect = Pick<IpvsCase, "ipvs" | "vsCount" | "ipsets" | "iptables" | "iptablesFirst" | "bindAddrs">;

/** Every way what we generate for one case differs from what kube-proxy's test expects ([] = none), the first
 * sync's and each later step's (prefixed with the step). */
export function ipvsCaseDiff(c: IpvsCase): string[] {
  const m = mapCluster(c.objects, {
    node: { nodeName: "test-node", addresses: c.nodeIPs },
    config: { nodePortAddresses: c.nodePortAddresses ?? [], ...c.config },
    families: [c.family],
  });
  const refused = c.refused ?? [];
  const out = m.errors
    .filter((e) => !refused.some((r) => e.message.includes(r)))
    .map((e) => `input refused: ${e.message}`);
  for (const r of refused) if (!m.errors.some((e) => e.message.includes(r))) out.push(`not refused: ${r}`);
  out.push(...stateDiff(m.ipvs[c.family]!, c));
  for (const [i, step] of (c.later ?? []).entries()) {
    const errors = [
      ...(step.apply ?? []).flatMap((o) => m.index.apply(o).errors),
      ...(step.delete ?? []).flatMap((d) =>
        d.kind === "Service"
          ? m.index.deleteService(d.namespace, d.name).errors
          : m.index.deleteEndpointSlice(d.namespace, d.name).errors,
      ),
    ];
    const st = m.index.ipvsState(c.family);
    const at = `step ${i + 1} (${step.what}): `;
    out.push(...errors.map((e) => `${at}input refused: ${e.message}`), ...stateDiff(st, step).map((d) => at + d));
  }
  return out;
}

function stateDiff(st: IpvsFamilyState, c: Expect): string[] {
  const out: string[] = [];
  const got = new Map(st.services.map((v) => [`${(v.protocol ?? "").toUpperCase()} ${hostPort(v.addr!, v.port!)}`, v]));
  const partial = c.vsCount !== undefined;
  if (partial && got.size !== c.vsCount)
    out.push(`${got.size} virtual servers (${[...got.keys()].join(", ")}), want ${c.vsCount}`);
  for (const [key, want] of Object.entries(c.ipvs ?? {})) {
    const v = got.get(key);
    if (!v) {
      if (!partial) out.push(`missing virtual server ${key}`);
      continue;
    }
    const rs = v.realServers.map((r) => hostPort(r.addr, r.port)).sort();
    if (want.rsWithin) {
      const stray = rs.filter((r) => !want.rs.includes(r));
      if (stray.length) out.push(`${key}: real servers ${stray.join(" ")} not among ${want.rs.join(" ")}`);
    } else if (rs.join(" ") !== [...want.rs].sort().join(" ")) {
      out.push(`${key}: real servers ${rs.join(" ") || "(none)"}, want ${[...want.rs].sort().join(" ") || "(none)"}`);
    }
    if (v.realServers.some((r) => r.weight !== 1)) out.push(`${key}: a real server's weight is not 1`);
    if (v.scheduler !== (want.scheduler ?? "rr"))
      out.push(`${key}: scheduler ${v.scheduler}, want ${want.scheduler ?? "rr"}`);
    if (v.persistent !== want.persistent) out.push(`${key}: persistence ${v.persistent}, want ${want.persistent}`);
    if ((v.flags ?? []).join(",") !== (want.flags ?? []).join(","))
      out.push(`${key}: flags ${v.flags}, want ${want.flags}`);
  }
  if (c.ipvs && !partial)
    for (const key of got.keys()) if (!(key in c.ipvs)) out.push(`unexpected virtual server ${key}`);
  for (const [set, want] of Object.entries(c.ipsets ?? {})) {
    const s = st.ipsets.find((x) => x.base === set);
    const entries = [...(s?.entries ?? [])].sort();
    if (entries.join(" ") !== [...want].sort().join(" "))
      out.push(`ipset ${set}: ${entries.join(" ") || "(empty)"}, want ${[...want].sort().join(" ") || "(empty)"}`);
  }
  if (c.bindAddrs && st.bindAddrs.join(" ") !== [...c.bindAddrs].sort().join(" "))
    out.push(`kube-ipvs0: ${st.bindAddrs.join(" ") || "(none)"}, want ${c.bindAddrs.join(" ") || "(none)"}`);
  const rules = st.iptablesRestore.split("\n");
  for (const [chain, jumps] of Object.entries(c.iptables ?? {})) {
    for (const [target, set] of jumps) {
      const hit = rules.some(
        (r) =>
          r.startsWith(`-A ${chain} `) &&
          r.endsWith(` -j ${target}`) &&
          (set === "" || new RegExp(`--match-set \\S*${set}\\b`).test(r)),
      );
      if (!hit) out.push(`no jump from ${chain}${set ? ` matching ${set}` : ""} to ${target}`);
    }
  }
  for (const [chain, first] of Object.entries(c.iptablesFirst ?? {})) {
    const r = rules.find((l) => l.startsWith(`-A ${chain} `));
    if (r !== `-A ${chain} ${first}`) out.push(`first rule of ${chain}: ${r ?? "(none)"}, want -A ${chain} ${first}`);
  }
  return out;
}

for (const c of CASES) {
  test(`${c.test}: ${c.name}`, () => {
    const diff = ipvsCaseDiff(c);
    assert.equal(diff, [], diff.join("\n"));
  });
}

test("the comparison sees a wrong real server, ipset entry, jump, first rule, VS count or expected refusal", () => {
  const base = CASES.find((c) => c.name === "node port service with protocol sctp and externalTrafficPolicy local")!;
  assert.equal(ipvsCaseDiff(base), []);
  const variants: IpvsCase[] = [
    { ...base, ipvs: { ...base.ipvs, "SCTP 100.101.102.103:3001": { rs: ["10.180.0.1:80", "10.180.1.1:80"] } } },
    { ...base, ipvs: { ...base.ipvs, "SCTP 10.20.30.41:80": { rs: ["10.180.0.1:80"] } } },
    {
      ...base,
      ipvs: { ...base.ipvs, "SCTP 10.20.30.41:80": { rs: ["10.180.0.1:80", "10.180.1.1:80"], persistent: 10800 } },
    },
    { ...base, ipsets: { "KUBE-NODE-PORT-SCTP-HASH": ["100.101.102.104,sctp:3001"] } },
    { ...base, iptables: { "KUBE-NODE-PORT": [["RETURN", "KUBE-NODE-PORT-SCTP-HASH"]] } },
    { ...base, ipvs: { "SCTP 10.20.30.41:80": base.ipvs!["SCTP 10.20.30.41:80"] } },
  ];
  variants.push(
    { ...base, iptablesFirst: { "KUBE-SERVICES": "-s ::1/128 -j RETURN" } },
    { ...base, vsCount: 3 },
    { ...base, refused: ["not an IPv6 address"] },
  );
  for (const v of variants) assert.ok(ipvsCaseDiff(v).length > 0, JSON.stringify(v.ipvs).slice(0, 200));
  // and in a later step: a real server kept after the delete, a loop-back entry kept, a binding kept or missing
  const e2e = CASES.find((c) => c.test === "TestEndpointSliceE2E" && c.later)!;
  const bind = CASES.find((c) => c.test === "TestMultiPortServiceBindAddr")!;
  assert.equal(ipvsCaseDiff(e2e), []);
  assert.equal(ipvsCaseDiff(bind), []);
  const step = e2e.later![0];
  const laterVariants: IpvsCase[] = [
    { ...e2e, later: [{ ...step, ipvs: { "TCP 172.20.1.1:80": { rs: ["10.0.1.1:80"] } } }] },
    { ...e2e, later: [{ ...step, ipsets: { "KUBE-LOOP-BACK": ["10.0.1.1,tcp:80,10.0.1.1"] } }] },
    { ...e2e, later: [{ ...step, vsCount: 0 }] },
    { ...bind, later: [{ ...bind.later![2], bindAddrs: ["172.16.55.4"] }] },
    { ...bind, later: [{ ...bind.later![0], bindAddrs: [] }] },
    { ...bind, bindAddrs: ["172.16.55.5"] },
  ];
  for (const v of laterVariants) assert.ok(ipvsCaseDiff(v).length > 0, JSON.stringify(v.later).slice(0, 200));
});

// the gate-off cases above need featureGates read from a KubeProxyConfiguration: the gate is honoured, a value
// that is not a boolean is refused by name (the gate stays at its default), prototype keys are plain names
test("featureGates.LoadBalancerIPMode is read from KubeProxyConfiguration; bad values are named", () => {
  const read = (fg: string) => readProxyConfig(`kind: KubeProxyConfiguration\nfeatureGates: ${fg}\n`);
  assert.is(readProxyConfig("kind: KubeProxyConfiguration\n").config.loadBalancerIPMode, true);
  assert.is(read("{LoadBalancerIPMode: false}").config.loadBalancerIPMode, false);
  assert.is(read("{LoadBalancerIPMode: true, SomeOtherGate: false}").config.loadBalancerIPMode, true);
  assert.equal(read("{LoadBalancerIPMode: false}").errors, []);
  const bad: [string, string][] = [
    ['{LoadBalancerIPMode: "false"}', 'featureGates.LoadBalancerIPMode: expected true or false, got "false"'],
    ["{LoadBalancerIPMode: 0}", "featureGates.LoadBalancerIPMode: expected true or false, got 0"],
    ["[LoadBalancerIPMode]", "featureGates: expected a map of gate names to true/false"],
    ["LoadBalancerIPMode=false", "featureGates: expected a map of gate names to true/false"],
    ["{__proto__: {LoadBalancerIPMode: false}}", "featureGates.__proto__: expected true or false"],
    ["{constructor: 1, toString: x}", "featureGates.constructor: expected true or false, got 1"],
  ];
  for (const [fg, msg] of bad) {
    const { config, errors } = read(fg);
    assert.ok(
      errors.some((e) => e.message.startsWith(`KubeProxyConfiguration: ${msg}`)),
      `${fg}: ${errors.map((e) => e.message).join("; ") || "no error"}`,
    );
    assert.is(config.loadBalancerIPMode, true, `${fg}: the gate keeps its default`);
  }
});

test.run();
