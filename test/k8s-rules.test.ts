// kube-proxy's iptables and nftables modes from the same objects. Chain names are checked against the ones
// kube-proxy's own tests and source comments print (KUBE-SVC-XPGD46QRK7WJZT7O for ns1/svc1:p80 tcp, ...);
// rule shapes against pkg/proxy/iptables/proxier.go and pkg/proxy/nftables/proxier.go.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { mapCluster, iptablesFor, nftablesFor } from "../src/k8s/index.ts";
import { base32 } from "../src/k8s/hash.ts";
import { svcChain, sepChain, extChain } from "../src/k8s/iptables-mode.ts";
import { GOLDEN, NODE, CONFIG } from "./fixtures/k8s/golden.ts";

test("base32 is RFC 4648's (its test vectors)", () => {
  const enc = (s: string) => base32(new TextEncoder().encode(s));
  assert.is(enc(""), "");
  assert.is(enc("f"), "MY======");
  assert.is(enc("fo"), "MZXQ====");
  assert.is(enc("foob"), "MZXW6YQ=");
  assert.is(enc("fooba"), "MZXW6YTB");
  assert.is(enc("foobar"), "MZXW6YTBOI======");
});

test("chain names match kube-proxy's", () => {
  assert.is(svcChain("ns1/svc1:p80", "tcp"), "KUBE-SVC-XPGD46QRK7WJZT7O");
  assert.is(extChain("ns1/svc1:p80", "tcp"), "KUBE-EXT-XPGD46QRK7WJZT7O");
  assert.is(sepChain("ns1/svc1:p80", "tcp", "10.180.0.1:80"), "KUBE-SEP-SXIVWICOYRO3J4NJ");
  const one = mapCluster(
    `
apiVersion: v1
kind: Service
metadata: {name: svc1, namespace: ns1}
spec: {clusterIP: 172.30.0.41, ports: [{name: p80, port: 80}]}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: svc1-1, namespace: ns1, labels: {kubernetes.io/service-name: svc1}}
addressType: IPv4
ports: [{name: p80, port: 80}]
endpoints: [{addresses: [10.180.0.1], nodeName: other}]
`,
    { node: { nodeName: "n", addresses: ["192.0.2.1"] }, config: { clusterCIDRs: ["10.0.0.0/8"] }, families: ["IPv4"] },
  );
  const nft = nftablesFor(one.index).text;
  assert.ok(
    nft.includes(
      "add element ip kube-proxy service-ips { 172.30.0.41 . tcp . 80 : goto service-ULMVA6XW-ns1/svc1/tcp/p80 }",
    ),
  );
  // 1.34 matches the ClusterIP alone (PR 131492); 1.33 and before also the port
  assert.ok(
    nft.includes(
      "add rule ip kube-proxy service-ULMVA6XW-ns1/svc1/tcp/p80 ip daddr 172.30.0.41 ip saddr != 10.0.0.0/8 " +
        "jump mark-for-masquerade",
    ),
  );
  assert.ok(
    nftablesFor(one.index, "IPv4", undefined, "1.33").text.includes(
      "add rule ip kube-proxy service-ULMVA6XW-ns1/svc1/tcp/p80 ip daddr 172.30.0.41 tcp dport 80 ip saddr != " +
        "10.0.0.0/8 jump mark-for-masquerade",
    ),
  );
  assert.ok(
    nft.includes(
      "add rule ip kube-proxy service-ULMVA6XW-ns1/svc1/tcp/p80 numgen random mod 1 vmap { 0 : goto " +
        "endpoint-5OJB2KTY-ns1/svc1/tcp/p80__10.180.0.1/80 }",
    ),
  );
  assert.ok(
    nft.includes(
      "add rule ip kube-proxy endpoint-5OJB2KTY-ns1/svc1/tcp/p80__10.180.0.1/80 meta l4proto tcp dnat to 10.180.0.1:80",
    ),
  );
  const ipt = iptablesFor(one.index).text.split("\n");
  for (const l of [
    `-A KUBE-SERVICES -m comment --comment "ns1/svc1:p80 cluster IP" -m tcp -p tcp -d 172.30.0.41 --dport 80 -j ` +
      `KUBE-SVC-XPGD46QRK7WJZT7O`,
    `-A KUBE-SVC-XPGD46QRK7WJZT7O -m comment --comment "ns1/svc1:p80 cluster IP" -m tcp -p tcp -d 172.30.0.41 ` +
      `--dport 80 ! -s 10.0.0.0/8 -j KUBE-MARK-MASQ`,
    `-A KUBE-SVC-XPGD46QRK7WJZT7O -m comment --comment "ns1/svc1:p80 -> 10.180.0.1:80" -j KUBE-SEP-SXIVWICOYRO3J4NJ`,
    `-A KUBE-SEP-SXIVWICOYRO3J4NJ -m comment --comment ns1/svc1:p80 -s 10.180.0.1 -j KUBE-MARK-MASQ`,
    `-A KUBE-SEP-SXIVWICOYRO3J4NJ -m comment --comment ns1/svc1:p80 -m tcp -p tcp -j DNAT --to-destination ` +
      `10.180.0.1:80`,
    `-A KUBE-SERVICES -m comment --comment "kubernetes service nodeports; NOTE: this must be the last rule in ` +
      `this chain" -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS`,
  ])
    assert.ok(ipt.includes(l), `missing: ${l}`);
});

const g = mapCluster(GOLDEN, { node: NODE, config: CONFIG });
const ipt = iptablesFor(g.index).text;
const lines = ipt.split("\n");
const nft = nftablesFor(g.index).text;

test("iptables mode: statistic probabilities 1/n, affinity with recent, the last endpoint unconditional", () => {
  const web = svcChain("shop/web:http", "tcp");
  const sep1 = sepChain("shop/web:http", "tcp", "10.244.1.5:8080"),
    sep2 = sepChain("shop/web:http", "tcp", "10.244.2.7:8080");
  assert.ok(
    lines.includes(
      `-A ${web} -m comment --comment "shop/web:http -> 10.244.1.5:8080" -m statistic --mode random ` +
        `--probability 0.5000000000 -j ${sep1}`,
    ),
  );
  assert.ok(lines.includes(`-A ${web} -m comment --comment "shop/web:http -> 10.244.2.7:8080" -j ${sep2}`));
  const api = svcChain("shop/api", "tcp"),
    asep = sepChain("shop/api", "tcp", "10.244.1.31:8080");
  assert.ok(
    lines.includes(
      `-A ${api} -m comment --comment "shop/api -> 10.244.1.31:8080" -m recent --name ${asep} --rcheck ` +
        `--seconds 600 --reap -j ${asep}`,
    ),
  );
  assert.ok(
    lines.includes(
      `-A ${asep} -m comment --comment shop/api -m recent --name ${asep} --set -m tcp -p tcp -j DNAT ` +
        `--to-destination 10.244.1.31:8080`,
    ),
  );
  assert.ok(
    lines.includes(
      `-A KUBE-NODEPORTS -m comment --comment shop/api -m tcp -p tcp --dport 30080 -j ${extChain("shop/api", "tcp")}`,
    ),
  );
  assert.ok(
    lines.includes(
      `-A ${extChain("shop/api", "tcp")} -m comment --comment "masquerade traffic for shop/api external ` +
        `destinations" -j KUBE-MARK-MASQ`,
    ),
  );
});

test("iptables mode: Local policy EXT chain, no-endpoint REJECT, no-local-endpoint DROP, firewall chain", () => {
  const ext = extChain("shop/lb:http", "tcp"),
    svl = "KUBE-SVL-" + svcChain("shop/lb:http", "tcp").slice(9),
    svc = svcChain("shop/lb:http", "tcp");
  for (const l of [
    `-A ${ext} -m comment --comment "pod traffic for shop/lb:http external destinations" -s 10.244.0.0/16 -j ${svc}`,
    `-A ${ext} -m comment --comment "masquerade LOCAL traffic for shop/lb:http external destinations" -m ` +
      `addrtype --src-type LOCAL -j KUBE-MARK-MASQ`,
    `-A ${ext} -m comment --comment "route LOCAL traffic for shop/lb:http external destinations" -m addrtype ` +
      `--src-type LOCAL -j ${svc}`,
    `-A ${ext} -j ${svl}`,
    `-A KUBE-SERVICES -m comment --comment "shop/noeps has no endpoints" -m tcp -p tcp -d 10.96.0.90 --dport ` +
      `7000 -j REJECT`,
    `-A KUBE-SERVICES -m comment --comment "shop/internal has no local endpoints" -m tcp -p tcp -d 10.96.0.50 ` +
      `--dport 9000 -j DROP`,
    `-A KUBE-EXTERNAL-SERVICES -m comment --comment "shop/ext has no local endpoints" -m tcp -p tcp -d ` +
      `198.51.100.77 --dport 8443 -j DROP`,
    `-A KUBE-NODEPORTS -m comment --comment "shop/lb:http health check node port" -m tcp -p tcp --dport 32000 ` +
      `-j ACCEPT`,
    `-A KUBE-FORWARD -m conntrack --ctstate INVALID -j DROP`,
  ])
    assert.ok(lines.includes(l), `missing: ${l}`);
  const fw = "KUBE-FW-" + svc.slice(9);
  assert.ok(
    lines.includes(
      `-A KUBE-SERVICES -m comment --comment "shop/lb:http loadbalancer IP" -m tcp -p tcp -d 203.0.113.10 ` +
        `--dport 80 -j ${fw}`,
    ),
  );
  assert.ok(
    lines.includes(`-A ${fw} -m comment --comment "shop/lb:http loadbalancer IP" -s 198.51.100.0/24 -j ${ext}`),
  );
  assert.ok(
    lines.includes(
      `-A KUBE-PROXY-FIREWALL -m comment --comment "shop/lb:http traffic not accepted by ${fw}" -m tcp -p tcp ` +
        `-d 203.0.113.10 --dport 80 -j DROP`,
    ),
  );
});

test("nftables mode: verdict maps, numgen vmap, affinity sets, Local short-circuits, no-endpoint maps", () => {
  const has = (l: string) => assert.ok(nft.split("\n").includes(l), `missing: ${l}`);
  // a line whose chain names carry kube-proxy's 8-character hash, written HASH
  const hasHashed = (l: string) =>
    assert.match(nft, new RegExp(l.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&").replaceAll("HASH", "\\w{8}")));
  has(
    `add map ip kube-proxy service-ips { type ipv4_addr . inet_proto . inet_service : verdict ; comment ` +
      `"ClusterIP, ExternalIP and LoadBalancer IP traffic" ; }`,
  );
  has(`add rule ip kube-proxy services ip daddr . meta l4proto . th dport vmap @service-ips`);
  has(
    `add rule ip kube-proxy services fib daddr type local ip daddr != 127.0.0.0/8 meta l4proto . th dport vmap ` +
      `@service-nodeports`,
  );
  hasHashed(
    "add rule ip kube-proxy service-HASH-shop/web/tcp/http numgen random mod 2 vmap { " +
      "0 : goto endpoint-HASH-shop/web/tcp/http__10.244.1.5/8080 , " +
      "1 : goto endpoint-HASH-shop/web/tcp/http__10.244.2.7/8080 }",
  );
  hasHashed(
    "add set ip kube-proxy affinity-HASH-shop/api/tcp/__10.244.1.31/8080 " +
      "{ type ipv4_addr ; flags dynamic,timeout ; timeout 600s ; }",
  );
  hasHashed(
    "add rule ip kube-proxy endpoint-HASH-shop/api/tcp/__10.244.1.31/8080 " +
      "update @affinity-HASH-shop/api/tcp/__10.244.1.31/8080 { ip saddr }",
  );
  assert.match(
    nft,
    /add element ip kube-proxy service-nodeports \{ tcp \. 30080 : goto external-\w{8}-shop\/api\/tcp\/ \}/,
  );
  hasHashed(
    "add rule ip kube-proxy external-HASH-shop/lb/tcp/http ip saddr 10.244.0.0/16 " +
      'goto service-HASH-shop/lb/tcp/http comment "short-circuit pod traffic"',
  );
  has(
    `add element ip kube-proxy no-endpoint-services { 10.96.0.90 . tcp . 7000 comment "shop/noeps" : goto ` +
      `reject-chain }`,
  );
  has(`add element ip kube-proxy no-endpoint-services { 10.96.0.50 . tcp . 9000 comment "shop/internal" : drop }`);
  hasHashed("add element ip kube-proxy firewall-ips { 203.0.113.10 . tcp . 80 : goto firewall-HASH-shop/lb/tcp/http }");
  hasHashed(
    "add rule ip kube-proxy firewall-HASH-shop/lb-allow/tcp/ " +
      "ip saddr != { 192.168.1.0/24, 198.51.100.0/24, 203.0.113.11 } drop",
  );
  has(`add rule ip kube-proxy masquerading masquerade fully-random`);
  has(`add rule ip kube-proxy mark-for-masquerade mark set mark or 0x00004000`);
});

test.run();
