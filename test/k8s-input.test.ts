// Bad input: every problem is named by object and field, the object is skipped whole, the rest is processed.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { mapCluster, readObjects, readProxyConfig, parseDuration } from "../src/k8s/index.ts";
import { NODE } from "./fixtures/k8s/golden.ts";

const good = `
apiVersion: v1
kind: Service
metadata: {name: ok, namespace: a}
spec: {clusterIP: 10.0.0.1, ports: [{port: 80}]}
`;

test("malformed YAML: the broken document is named with its line, the others are read", () => {
  const text = `${good}---
apiVersion: v1
kind: Service
metadata: {name: broken, namespace: a
spec: [
---
apiVersion: v1
kind: Service
metadata: {name: ok2, namespace: a}
spec: {clusterIP: 10.0.0.2, ports: [{port: 81}]}
`;
  const r = mapCluster(text, { node: NODE, families: ["IPv4"] });
  assert.is(r.errors.length, 1);
  assert.match(String(r.errors[0]), /^K8sInputError: input document 2: malformed YAML at line \d+, column \d+/);
  assert.equal(
    r.desired.services.map((s) => `${s.addr}:${s.port}`),
    ["10.0.0.1:80", "10.0.0.2:81"],
  );
});

test("malformed JSON falls back to the YAML reader and says where", () => {
  const r = readObjects('{"apiVersion": "v1", "kind": "List", "items": [ {"kind": "Service",, } ]}');
  assert.is(r.objects.length, 0);
  assert.match(String(r.errors[0]), /malformed YAML at line 1/);
});

test("unknown kinds and objects without kind are reported and skipped", () => {
  const r = mapCluster(
    `${good}---
apiVersion: v1
kind: ConfigMap
metadata: {name: cm, namespace: a}
---
apiVersion: v1
metadata: {name: nokind}
`,
    { node: NODE, families: ["IPv4"] },
  );
  assert.equal(
    r.errors.map(String),
    [
      "K8sInputError: input document 3: kind: missing",
      'K8sInputError: ConfigMap a/cm: kind: unsupported kind "ConfigMap" (expected Service or EndpointSlice)',
    ].sort((a, b) => (a.includes("ConfigMap") ? 1 : -1) - (b.includes("ConfigMap") ? 1 : -1)),
  );
  assert.is(r.desired.services.length, 1);
});

test("missing fields, invalid IPs and ports: each named by object and field, nothing of that object applied", () => {
  const r = mapCluster(
    `${good}---
apiVersion: v1
kind: Service
metadata: {namespace: a}
spec: {clusterIP: 10.0.0.3, ports: [{port: 80}]}
---
apiVersion: v1
kind: Service
metadata: {name: badip, namespace: a}
spec: {clusterIP: 10.0.0.300, ports: [{port: 80}], externalIPs: [1.2.3.4, "nope"]}
---
apiVersion: v1
kind: Service
metadata: {name: badport, namespace: a}
spec: {clusterIP: 10.0.0.4, ports: [{port: 80}, {name: x, port: 0}, {name: y, port: 81, protocol: ICMP},
  {name: z, port: 82, nodePort: 99999}]}
---
apiVersion: v1
kind: Service
metadata: {name: nospec, namespace: a}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: nolabel, namespace: a}
addressType: IPv4
ports: [{port: 80}]
endpoints: [{addresses: [10.1.0.1]}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: ok-1, namespace: a, labels: {kubernetes.io/service-name: ok}}
addressType: IPv4
ports: [{port: 70000}]
endpoints: [{addresses: ["10.1.0.999"]}, {addresses: ["fd00::1"]}, {addresses: []},
  {addresses: [10.1.0.2], conditions: {ready: "yes"}}]
`,
    { node: NODE, families: ["IPv4"] },
  );
  const msgs = r.errors.map((e) => e.message);
  for (const m of [
    "Service a/<no name>: metadata.name: missing",
    'Service a/badip: spec.clusterIP: invalid IP address "10.0.0.300"',
    'Service a/badip: spec.externalIPs[1]: invalid IP address "nope"',
    "Service a/badport: spec.ports[1].port: must be an integer in 1..65535, got 0",
    'Service a/badport: spec.ports[2].protocol: must be TCP, UDP or SCTP, got "ICMP"',
    "Service a/badport: spec.ports[3].nodePort: must be an integer in 0..65535, got 99999",
    "Service a/nospec: spec: missing",
    'EndpointSlice a/nolabel: metadata.labels["kubernetes.io/service-name"]: missing: the slice names no Service',
    "EndpointSlice a/ok-1: ports[0].port: must be an integer in 1..65535, got 70000",
    'EndpointSlice a/ok-1: endpoints[0].addresses[0]: invalid IP address "10.1.0.999"',
    "EndpointSlice a/ok-1: endpoints[1].addresses[0]: fd00::1 is not an IPv4 address",
    "EndpointSlice a/ok-1: endpoints[2].addresses: must list at least one address",
    'EndpointSlice a/ok-1: endpoints[3].conditions.ready: must be true or false, got "yes"',
  ])
    assert.ok(msgs.includes(m), `missing error: ${m}\n got: ${msgs.join("\n      ")}`);
  assert.is(msgs.length, 13);
  // only a/ok survives, with no endpoints (its slice was refused whole)
  assert.equal(r.desired.services, [
    { protocol: "tcp", addr: "10.0.0.1", port: 80, scheduler: "rr", flags: [], realServers: [] },
  ]);
});

test("addresses are read as Go reads them: leading zeros, v4-mapped IPv6, IPv6 compressed", () => {
  const r = mapCluster(
    `
apiVersion: v1
kind: Service
metadata: {name: s, namespace: a}
spec: {clusterIPs: ["010.000.000.001", "FD00:0:0:0:0:0:0:0001"], ports: [{port: 80}], externalIPs: ["::ffff:192.0.2.7"]}
`,
    { node: NODE },
  );
  assert.equal(
    r.desired.services.map((s) => s.addr),
    ["10.0.0.1", "192.0.2.7", "fd00::1"],
  );
});

test("configuration errors name the field; the defaults stand in", () => {
  const { config, errors } = readProxyConfig(`
kind: KubeProxyConfiguration
mode: userspace
clusterCIDR: 10.0.0.0/33
ipvs: {scheduler: fastest, syncPeriod: soon, strictARP: "yes", excludeCIDRs: [10.0.0.0/8, bogus]}
`);
  assert.equal(
    errors.map((e) => e.message),
    [
      "KubeProxyConfiguration: mode: unknown proxy mode 'userspace' (ipvs, iptables, nftables)",
      "KubeProxyConfiguration: ipvs.scheduler: unknown IPVS scheduler 'fastest' (rr, wrr, lc, wlc, lblc, lblcr, " +
        "dh, sh, sed, nq, mh, fo, ovf, twos)",
      'KubeProxyConfiguration: ipvs.syncPeriod: invalid duration "soon" (expected e.g. "30s", "1m0s", "500ms")',
      'KubeProxyConfiguration: ipvs.excludeCIDRs[1]: invalid CIDR "bogus"',
      'KubeProxyConfiguration: ipvs.strictARP: expected true or false, got "yes"',
      'KubeProxyConfiguration: clusterCIDR[0]: invalid CIDR "10.0.0.0/33"',
    ],
  );
  assert.is(config.syncPeriodMs, 30_000);
  assert.equal(config.excludeCIDRs, ["10.0.0.0/8"]);
  assert.equal(
    [parseDuration("1m0s"), parseDuration("1h2m3.5s"), parseDuration("250ms"), parseDuration("0")],
    [60_000, 3_723_500, 250, 0],
  );
});

test.run();
