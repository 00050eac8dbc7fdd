// Golden mapping: test/fixtures/k8s/golden.yaml through the IPVS proxier's rules. Every expectation is written
// out by hand from kube-proxy's documented behaviour (ipvs-reference.md §4 and pkg/proxy/ipvs/proxier.go),
// not copied from our output.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { mapCluster, readObjects, readProxyConfig } from "../src/k8s/index.ts";
import { GOLDEN, NODE, CONFIG, rs, vs, byKey } from "./fixtures/k8s/golden.ts";

const m = mapCluster(GOLDEN, { node: NODE, config: CONFIG });
const v4 = byKey(m.ipvs.IPv4!.services);
const set = (name: string, fam: "IPv4" | "IPv6" = "IPv4") => m.ipvs[fam]!.ipsets.find((s) => s.name === name)!.entries;

test("golden input reads without errors", () => {
  assert.equal(m.errors.map(String), []);
});

test("ClusterIP: one VS per port and protocol, ready endpoints only, weight 1, masq", () => {
  // web: the not-ready 10.244.2.8 is left out; real servers are the EndpointSlice's target ports
  assert.equal(
    v4.get("tcp 10.96.0.10:80"),
    vs("tcp", "10.96.0.10", 80, [rs("10.244.1.5", 8080), rs("10.244.2.7", 8080)]),
  );
  assert.equal(
    v4.get("tcp 10.96.0.10:443"),
    vs("tcp", "10.96.0.10", 443, [rs("10.244.1.5", 8443), rs("10.244.2.7", 8443)]),
  );
  // no endpoints at all: the VS exists with no real servers
  assert.equal(v4.get("tcp 10.96.0.90:7000"), vs("tcp", "10.96.0.90", 7000, []));
});

test("sessionAffinity ClientIP: persistent with the 10800 s default or the configured timeout, /32 netmask", () => {
  assert.equal(v4.get("udp 10.96.0.53:53"), vs("udp", "10.96.0.53", 53, [rs("10.244.2.2", 53)], 10800));
  assert.equal(v4.get("tcp 10.96.0.53:53"), vs("tcp", "10.96.0.53", 53, [rs("10.244.2.2", 53)], 10800));
  // api: the same ip:port in two slices is one real server (the ready copy wins)
  const api = [rs("10.244.1.31", 8080), rs("10.244.2.30", 8080)];
  assert.equal(v4.get("tcp 10.96.0.20:8080"), vs("tcp", "10.96.0.20", 8080, api, 600));
  // NodePort: one VS per node address (loopback and link-local excluded), each persistent on its own
  assert.equal(v4.get("tcp 192.168.1.10:30080"), vs("tcp", "192.168.1.10", 30080, api, 600));
  assert.equal(v4.get("tcp 10.0.2.15:30080"), vs("tcp", "10.0.2.15", 30080, api, 600));
  assert.not.ok(v4.has("tcp 127.0.0.1:30080"));
});

test("LoadBalancer with externalTrafficPolicy Local: external VSs get local endpoints, ClusterIP gets all", () => {
  assert.equal(v4.get("tcp 10.96.0.30:80"), vs("tcp", "10.96.0.30", 80, [rs("10.244.1.9", 80), rs("10.244.2.9", 80)]));
  assert.equal(v4.get("tcp 203.0.113.10:80"), vs("tcp", "203.0.113.10", 80, [rs("10.244.1.9", 80)]));
  assert.equal(v4.get("tcp 192.168.1.10:31080"), vs("tcp", "192.168.1.10", 31080, [rs("10.244.1.9", 80)]));
  assert.equal(v4.get("tcp 10.0.2.15:31080"), vs("tcp", "10.0.2.15", 31080, [rs("10.244.1.9", 80)]));
  // ingress without ip (hostname) and with ipMode Proxy make no VS
  assert.not.ok(v4.has("tcp 203.0.113.99:80"));
});

test("externalIPs with Local policy and no local endpoint fall back to the cluster endpoints (#97081)", () => {
  for (const ip of ["10.96.0.40", "192.168.1.10", "198.51.100.77"])
    assert.equal(v4.get(`tcp ${ip}:8443`), vs("tcp", ip, 8443, [rs("10.244.2.40", 8443)]));
});

test("internalTrafficPolicy Local without local endpoints: the VS has no real server", () => {
  assert.equal(v4.get("tcp 10.96.0.50:9000"), vs("tcp", "10.96.0.50", 9000, []));
});

test("no ready endpoint: serving+terminating endpoints are used, not-serving ones are not", () => {
  assert.equal(v4.get("tcp 10.96.0.60:80"), vs("tcp", "10.96.0.60", 80, [rs("10.244.1.20", 80)]));
});

test("SCTP and UDP NodePorts; UDP with Local policy", () => {
  for (const a of ["10.96.0.70:9999", "192.168.1.10:30999", "10.0.2.15:30999"])
    assert.equal(v4.get(`sctp ${a}`)?.realServers, []);
  assert.equal(v4.get("udp 10.96.0.71:5000")!.realServers, [rs("10.244.1.71", 5000), rs("10.244.2.71", 5000)]);
  assert.equal(v4.get("udp 192.168.1.10:30500")!.realServers, [rs("10.244.1.71", 5000)]);
});

test("dual-stack: one proxier per family; headless and ExternalName make nothing", () => {
  assert.equal(v4.get("tcp 10.96.0.80:80"), vs("tcp", "10.96.0.80", 80, [rs("10.244.1.80", 8080)]));
  assert.equal(m.ipvs.IPv6!.services, [vs("tcp", "fd00:96::80", 80, [rs("fd00:244:0:1::80", 8080)])]);
  assert.is(m.ipvs.IPv4!.services.length, 28); // 2+2+3+4+4+3+1+1+3+3+1+1, see the cases above
  assert.is(m.desired.services.length, 29);
});

test("ipsets: names, types and entries as the IPVS proxier fills them", () => {
  const sorted = (a: string[]) => [...a].sort();
  assert.equal(
    set("KUBE-LOOP-BACK"),
    sorted([
      "10.244.1.5,tcp:8080,10.244.1.5",
      "10.244.1.5,tcp:8443,10.244.1.5",
      "10.244.1.31,tcp:8080,10.244.1.31",
      "10.244.1.9,tcp:80,10.244.1.9",
      "10.244.1.20,tcp:80,10.244.1.20",
      "10.244.1.71,udp:5000,10.244.1.71",
      "10.244.1.80,tcp:8080,10.244.1.80",
    ]),
  );
  assert.equal(
    set("KUBE-CLUSTER-IP"),
    sorted([
      "10.96.0.10,tcp:80",
      "10.96.0.10,tcp:443",
      "10.96.0.53,udp:53",
      "10.96.0.53,tcp:53",
      "10.96.0.20,tcp:8080",
      "10.96.0.30,tcp:80",
      "10.96.0.31,tcp:443",
      "10.96.0.40,tcp:8443",
      "10.96.0.50,tcp:9000",
      "10.96.0.60,tcp:80",
      "10.96.0.70,sctp:9999",
      "10.96.0.71,udp:5000",
      "10.96.0.80,tcp:80",
      "10.96.0.90,tcp:7000",
    ]),
  );
  assert.equal(set("KUBE-EXTERNAL-IP"), []);
  assert.equal(set("KUBE-EXTERNAL-IP-LOCAL"), ["192.168.1.10,tcp:8443", "198.51.100.77,tcp:8443"]);
  assert.equal(set("KUBE-LOAD-BALANCER"), ["203.0.113.10,tcp:80", "203.0.113.11,tcp:443"]);
  assert.equal(set("KUBE-LOAD-BALANCER-LOCAL"), ["203.0.113.10,tcp:80"]);
  assert.equal(set("KUBE-LOAD-BALANCER-FW"), ["203.0.113.10,tcp:80", "203.0.113.11,tcp:443"]);
  assert.equal(set("KUBE-LOAD-BALANCER-SOURCE-CIDR"), [
    "203.0.113.10,tcp:80,198.51.100.0/24",
    "203.0.113.11,tcp:443,192.168.1.0/24",
    "203.0.113.11,tcp:443,198.51.100.0/24",
  ]);
  // the node IP 192.168.1.10 is inside lb-allow's ranges: allowed from the node; lb's ranges do not cover it
  assert.equal(set("KUBE-LOAD-BALANCER-SOURCE-IP"), ["203.0.113.11,tcp:443,203.0.113.11"]);
  assert.equal(m.ipvs.IPv4!.lbNoNodeAccess, [{ ip: "203.0.113.10", protocol: "tcp", port: 80 }]);
  assert.equal(set("KUBE-NODE-PORT-TCP"), ["30080", "31080", "31443"]);
  assert.equal(set("KUBE-NODE-PORT-LOCAL-TCP"), ["31080"]);
  assert.equal(set("KUBE-NODE-PORT-UDP"), ["30500"]);
  assert.equal(set("KUBE-NODE-PORT-LOCAL-UDP"), ["30500"]);
  assert.equal(set("KUBE-NODE-PORT-SCTP-HASH"), ["10.0.2.15,sctp:30999", "192.168.1.10,sctp:30999"]);
  assert.equal(set("KUBE-NODE-PORT-LOCAL-SCTP-HASH"), []);
  assert.equal(set("KUBE-HEALTH-CHECK-NODE-PORT"), ["32000"]);
  // bound to kube-ipvs0: every ClusterIP, LB ingress IP and externalIP except the one the node already has
  const bound = [
    "10.96.0.10",
    "10.96.0.53",
    "10.96.0.20",
    "10.96.0.30",
    "10.96.0.31",
    "10.96.0.40",
    "10.96.0.50",
    "10.96.0.60",
    "10.96.0.70",
    "10.96.0.71",
    "10.96.0.80",
    "10.96.0.90",
    "203.0.113.10",
    "203.0.113.11",
    "198.51.100.77",
  ];
  assert.equal(set("KUBE-IPVS-IPS"), sorted(bound));
  assert.equal(m.ipvs.IPv4!.bindAddrs, sorted(bound));
  const types = Object.fromEntries(m.ipvs.IPv4!.ipsets.map((s) => [s.name, s.type]));
  assert.equal(types, {
    "KUBE-LOOP-BACK": "hash:ip,port,ip",
    "KUBE-CLUSTER-IP": "hash:ip,port",
    "KUBE-EXTERNAL-IP": "hash:ip,port",
    "KUBE-EXTERNAL-IP-LOCAL": "hash:ip,port",
    "KUBE-LOAD-BALANCER": "hash:ip,port",
    "KUBE-LOAD-BALANCER-FW": "hash:ip,port",
    "KUBE-LOAD-BALANCER-LOCAL": "hash:ip,port",
    "KUBE-LOAD-BALANCER-SOURCE-IP": "hash:ip,port,ip",
    "KUBE-LOAD-BALANCER-SOURCE-CIDR": "hash:ip,port,net",
    "KUBE-NODE-PORT-TCP": "bitmap:port",
    "KUBE-NODE-PORT-LOCAL-TCP": "bitmap:port",
    "KUBE-NODE-PORT-UDP": "bitmap:port",
    "KUBE-NODE-PORT-LOCAL-UDP": "bitmap:port",
    "KUBE-NODE-PORT-SCTP-HASH": "hash:ip,port",
    "KUBE-NODE-PORT-LOCAL-SCTP-HASH": "hash:ip,port",
    "KUBE-HEALTH-CHECK-NODE-PORT": "bitmap:port",
    "KUBE-IPVS-IPS": "hash:ip",
  });
});

test("IPv6 sets are KUBE-6-…, cut to 31 characters", () => {
  const names = m.ipvs.IPv6!.ipsets.map((s) => s.name);
  assert.ok(names.includes("KUBE-6-LOAD-BALANCER-SOURCE-CID"));
  assert.ok(names.includes("KUBE-6-NODE-PORT-LOCAL-SCTP-HAS"));
  assert.ok(names.includes("KUBE-6-NODE-PORT-TCP"));
  assert.equal(set("KUBE-6-CLUSTER-IP", "IPv6"), ["fd00:96::80,tcp:80"]);
  assert.equal(set("KUBE-6-LOOP-BACK", "IPv6"), ["fd00:244:0:1::80,tcp:8080,fd00:244:0:1::80"]);
  assert.match(
    m.ipvs.IPv6!.ipsetRestore,
    /^create KUBE-6-CLUSTER-IP hash:ip,port family inet6 hashsize 1024 maxelem 65536 -exist$/m,
  );
  assert.match(m.ipvs.IPv4!.ipsetRestore, /^create KUBE-NODE-PORT-TCP bitmap:port range 0-65535 -exist$/m);
  assert.match(m.ipvs.IPv4!.ipsetRestore, /^add KUBE-NODE-PORT-TCP 31080 -exist$/m);
});

test("iptables beside the IPVS tables: masquerade cases, externalIP accept, LB no-node-access, filters", () => {
  const t = m.ipvs.IPv4!.iptablesRestore;
  const has = (l: string) => assert.ok(t.split("\n").includes(l), `missing: ${l}`);
  has(
    `-A KUBE-SERVICES -m comment --comment "Kubernetes service cluster ip + port for masquerade purpose" -m set ` +
      `--match-set KUBE-CLUSTER-IP dst,dst ! -s 10.244.0.0/16 -j KUBE-MARK-MASQ`,
  );
  has(
    `-A KUBE-SERVICES -m comment --comment "Kubernetes service external ip + port with ` +
      `externalTrafficPolicy=local" -m set --match-set KUBE-EXTERNAL-IP-LOCAL dst,dst -m physdev ! --physdev-is-in ` +
      `-m addrtype ! --src-type LOCAL -j ACCEPT`,
  );
  has(
    `-A KUBE-SERVICES -m comment --comment "Kubernetes service external ip + port with ` +
      `externalTrafficPolicy=local" -m set --match-set KUBE-EXTERNAL-IP-LOCAL dst,dst -m addrtype --dst-type LOCAL ` +
      `-j ACCEPT`,
  );
  assert.not.match(t, /--match-set KUBE-EXTERNAL-IP dst,dst -j KUBE-MARK-MASQ/); // the set is empty, so no rule
  has(
    `-A KUBE-NODE-PORT -p sctp -m comment --comment "Kubernetes nodeport SCTP port for masquerade purpose with ` +
      `type 'hash ip:port'" -m set --match-set KUBE-NODE-PORT-SCTP-HASH dst,dst -j KUBE-MARK-MASQ`,
  );
  has(
    `-A KUBE-NODE-PORT -p udp -m comment --comment "Kubernetes nodeport UDP port with ` +
      `externalTrafficPolicy=local" -m set --match-set KUBE-NODE-PORT-LOCAL-UDP dst -j RETURN`,
  );
  has(
    `-A KUBE-POSTROUTING -m comment --comment "Kubernetes endpoints dst ip:port, source ip for solving hairpin ` +
      `purpose" -m set --match-set KUBE-LOOP-BACK dst,dst,src -j MASQUERADE`,
  );
  has(
    `-A KUBE-PROXY-FIREWALL -m comment --comment "Kubernetes service load balancer ip + port for load balancer ` +
      `with sourceRange" -m set --match-set KUBE-LOAD-BALANCER-FW dst,dst -j KUBE-SOURCE-RANGES-FIREWALL`,
  );
  has(`-A KUBE-IPVS-OUT-FILTER -s 203.0.113.10 -m ipvs --vaddr 203.0.113.10 --vproto tcp --vport 80 -j DROP`);
  has(`-A KUBE-IPVS-FILTER -m conntrack --ctstate NEW -m set --match-set KUBE-IPVS-IPS dst -j REJECT`);
  has(`-A KUBE-MARK-MASQ -j MARK --or-mark 0x00004000`);
  // the -LOCAL node-port rule must come before the plain one
  assert.ok(
    t.indexOf("KUBE-NODE-PORT-LOCAL-TCP dst -j RETURN") < t.indexOf("KUBE-NODE-PORT-TCP dst -j KUBE-MARK-MASQ"),
  );
});

test("the whole IPVS-mode restore text for one ClusterIP Service", () => {
  const one = mapCluster(
    `
apiVersion: v1
kind: Service
metadata: {name: s, namespace: n}
spec: {clusterIP: 10.0.0.1, ports: [{port: 80}]}
`,
    {
      node: { nodeName: "n1", addresses: ["192.0.2.1"] },
      config: { clusterCIDRs: ["10.1.0.0/16"] },
      families: ["IPv4"],
    },
  );
  assert.is(
    one.ipvs.IPv4!.iptablesRestore,
    [
      "*nat",
      ":KUBE-SERVICES - [0:0]",
      ":KUBE-POSTROUTING - [0:0]",
      ":KUBE-NODE-PORT - [0:0]",
      ":KUBE-LOAD-BALANCER - [0:0]",
      ":KUBE-MARK-MASQ - [0:0]",
      "-A KUBE-SERVICES -s 127.0.0.0/8 -j RETURN",
      `-A KUBE-SERVICES -m comment --comment "Kubernetes service cluster ip + port for masquerade purpose" -m ` +
        `set --match-set KUBE-CLUSTER-IP dst,dst ! -s 10.1.0.0/16 -j KUBE-MARK-MASQ`,
      "-A KUBE-SERVICES -m addrtype --dst-type LOCAL -j KUBE-NODE-PORT",
      "-A KUBE-LOAD-BALANCER -j KUBE-MARK-MASQ",
      "-A KUBE-SERVICES -m set --match-set KUBE-CLUSTER-IP dst,dst -j ACCEPT",
      "-A KUBE-POSTROUTING -m mark ! --mark 0x00004000/0x00004000 -j RETURN",
      "-A KUBE-POSTROUTING -j MARK --xor-mark 0x00004000",
      `-A KUBE-POSTROUTING -m comment --comment "kubernetes service traffic requiring SNAT" -j MASQUERADE ` +
        `--random-fully`,
      "-A KUBE-MARK-MASQ -j MARK --or-mark 0x00004000",
      "COMMIT",
      "*filter",
      ":KUBE-FORWARD - [0:0]",
      ":KUBE-NODE-PORT - [0:0]",
      ":KUBE-PROXY-FIREWALL - [0:0]",
      ":KUBE-SOURCE-RANGES-FIREWALL - [0:0]",
      ":KUBE-IPVS-FILTER - [0:0]",
      ":KUBE-IPVS-OUT-FILTER - [0:0]",
      "-A KUBE-SOURCE-RANGES-FIREWALL -j DROP",
      `-A KUBE-FORWARD -m comment --comment "kubernetes forwarding rules" -m mark --mark 0x00004000/0x00004000 ` +
        `-j ACCEPT`,
      `-A KUBE-FORWARD -m comment --comment "kubernetes forwarding conntrack rule" -m conntrack --ctstate ` +
        `RELATED,ESTABLISHED -j ACCEPT`,
      `-A KUBE-NODE-PORT -m comment --comment "Kubernetes health check node port" -m set --match-set ` +
        `KUBE-HEALTH-CHECK-NODE-PORT dst -j ACCEPT`,
      "-A KUBE-IPVS-FILTER -m set --match-set KUBE-LOAD-BALANCER dst,dst -j RETURN",
      "-A KUBE-IPVS-FILTER -m set --match-set KUBE-CLUSTER-IP dst,dst -j RETURN",
      "-A KUBE-IPVS-FILTER -m set --match-set KUBE-EXTERNAL-IP dst,dst -j RETURN",
      "-A KUBE-IPVS-FILTER -m set --match-set KUBE-EXTERNAL-IP-LOCAL dst,dst -j RETURN",
      "-A KUBE-IPVS-FILTER -m set --match-set KUBE-HEALTH-CHECK-NODE-PORT dst -j RETURN",
      "-A KUBE-IPVS-FILTER -m conntrack --ctstate NEW -m set --match-set KUBE-IPVS-IPS dst -j REJECT",
      "COMMIT",
      "",
    ].join("\n"),
  );
});

test("masquerade cases: masqueradeAll marks all ClusterIP traffic; without a local detector only src,dst", () => {
  const objs = readObjects(GOLDEN).objects;
  const all = mapCluster(objs, { node: NODE, config: { ...CONFIG, masqueradeAll: true }, families: ["IPv4"] });
  assert.match(all.ipvs.IPv4!.iptablesRestore, /--match-set KUBE-CLUSTER-IP dst,dst -j KUBE-MARK-MASQ\n/);
  const none = mapCluster(objs, { node: NODE, config: { clusterCIDRs: [] }, families: ["IPv4"] });
  assert.match(none.ipvs.IPv4!.iptablesRestore, /--match-set KUBE-CLUSTER-IP src,dst -j KUBE-MARK-MASQ\n/);
  const bridge = mapCluster(objs, {
    node: NODE,
    config: { detectLocalMode: "InterfaceNamePrefix", interfaceNamePrefix: "veth" },
    families: ["IPv4"],
  });
  assert.match(
    bridge.ipvs.IPv4!.iptablesRestore,
    /--match-set KUBE-CLUSTER-IP dst,dst ! -i veth\+ -j KUBE-MARK-MASQ\n/,
  );
});

test("configuration: scheduler, mh-port flag, timeouts, sysctls, nodePortAddresses, excludeCIDRs", () => {
  const { config, errors } = readProxyConfig(`
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
mode: ipvs
clusterCIDR: 10.244.0.0/16,fd00:244::/56
nodePortAddresses: [192.168.1.0/24]
ipvs:
  scheduler: mh
  syncPeriod: 1m0s
  minSyncPeriod: 500ms
  excludeCIDRs: [10.99.0.0/16]
  strictARP: true
  tcpTimeout: 15m
  tcpFinTimeout: 30s
  udpTimeout: 0s
`);
  assert.equal(errors, []);
  assert.is(config.syncPeriodMs, 60_000);
  assert.is(config.minSyncPeriodMs, 500);
  const r = mapCluster(GOLDEN, { node: { ...NODE, kernelVersion: "5.4.0-150-generic" }, config });
  const api = r.desired.services.filter((s) => s.port === 30080);
  assert.equal(
    api.map((s) => s.addr),
    ["192.168.1.10"],
  ); // only the node address inside 192.168.1.0/24
  assert.equal(api[0].flags, ["mh-port"]); // FlagSourceHash; mh-fallback is not set
  assert.is(api[0].scheduler, "mh");
  assert.equal(r.desired.timeouts, { tcp: 900, tcpfin: 30, udp: 0 });
  assert.equal(r.excludeCIDRs, ["10.99.0.0/16"]);
  assert.equal(r.sysctls, {
    "net/ipv4/vs/conntrack": 1,
    "net/ipv4/vs/conn_reuse_mode": 0,
    "net/ipv4/vs/expire_nodest_conn": 1,
    "net/ipv4/vs/expire_quiescent_template": 1,
    "net/ipv4/ip_forward": 1,
    "net/ipv4/conf/all/arp_ignore": 1,
    "net/ipv4/conf/all/arp_announce": 2,
  });
  // defaults: rr, no timeouts, conn_reuse_mode left alone on 5.9+
  assert.equal(
    mapCluster(GOLDEN, { node: { ...NODE, kernelVersion: "6.1.0" }, config: {} }).sysctls[
      "net/ipv4/vs/conn_reuse_mode"
    ],
    undefined,
  );
  assert.is(readProxyConfig("kind: KubeProxyConfiguration\nmode: ipvs\n").config.scheduler, "rr");
  // "primary": the node's primary IP only
  const p = mapCluster(GOLDEN, { node: NODE, config: { nodePortAddresses: ["primary"] }, families: ["IPv4"] });
  assert.equal(
    p.desired.services.filter((s) => s.port === 30080).map((s) => s.addr),
    ["192.168.1.10"],
  );
});

test("topology hints: PreferSameZone narrows the cluster endpoints when every ready endpoint has a hint", () => {
  const yaml = `
apiVersion: v1
kind: Service
metadata: {name: z, namespace: n}
spec: {clusterIP: 10.0.0.9, ports: [{port: 80}]}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: z-1, namespace: n, labels: {kubernetes.io/service-name: z}}
addressType: IPv4
ports: [{port: 80}]
endpoints:
- {addresses: [10.1.0.1], conditions: {ready: true}, nodeName: x, hints: {forZones: [{name: zone-a}]}}
- {addresses: [10.1.0.2], conditions: {ready: true}, nodeName: y, hints: {forZones: [{name: zone-b}]}}
`;
  const a = mapCluster(yaml, {
    node: { nodeName: "n1", addresses: ["192.0.2.1"], zone: "zone-a" },
    families: ["IPv4"],
  });
  assert.equal(a.desired.services[0].realServers, [rs("10.1.0.1", 80)]);
  const c = mapCluster(yaml, {
    node: { nodeName: "n1", addresses: ["192.0.2.1"], zone: "zone-c" },
    families: ["IPv4"],
  });
  assert.equal(c.desired.services[0].realServers, [rs("10.1.0.1", 80), rs("10.1.0.2", 80)]); // no hint for zone-c: all
});

test("kubectl -o json List input maps the same as the YAML documents", () => {
  const list = JSON.stringify({
    apiVersion: "v1",
    kind: "List",
    items: readObjects(GOLDEN).objects,
    metadata: { resourceVersion: "" },
  });
  const j = mapCluster(list, { node: NODE, config: CONFIG });
  assert.equal(j.desired, m.desired);
  assert.is(j.ipvs.IPv4!.ipsetRestore, m.ipvs.IPv4!.ipsetRestore);
});

test.run();
