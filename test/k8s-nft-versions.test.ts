// kube-proxy 1.34's nftables filter chains on the kernel: connections to the ExternalIP of an
// `externalTrafficPolicy: Local` Service whose endpoints all live on other nodes. The external chain's DNAT
// (short-circuit pod traffic, short-circuit local traffic) sends them to the cluster's endpoints. From the
// node itself (a hostNetwork pod), 1.31-1.32's filter-output runs at -110, before nat-output's DNAT at
// -100 in the same hook: it meets the ExternalIP in no-endpoint-services and drops the SYN; 1.34's runs at
// 0, after DNAT, and lets it through. From an ordinary pod the packet crosses prerouting (DNAT) before the
// forward hook whatever its priority, so both versions let it through: the kernel shows the change is about
// traffic the node originates. Real namespaces (the scaling benchmark's topology: the client namespace is
// the pod, the node namespace the node), the rules from `nftablesFor` loaded by nft, real TCP connects.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { Topology, nsOk, nsRun, CLIENT_IP, NODE_IP, NODE_BACK_IP } from "../bench/scaling/netns.ts";
import { mapCluster, nftablesFor, type KubeProxyVersion } from "../src/k8s/index.ts";
import { needs, skip } from "./helpers/skip.ts";

const why = needs(["ip", "nft"], "apt-get install iproute2 nftables");
const EXTERNAL_IP = "203.0.113.10",
  ENDPOINT = "10.128.0.5",
  PORT = 8080;

const objects = [
  {
    apiVersion: "v1",
    kind: "Service",
    metadata: { namespace: "ns1", name: "web" },
    spec: {
      type: "LoadBalancer",
      clusterIP: "10.96.0.10",
      clusterIPs: ["10.96.0.10"],
      externalTrafficPolicy: "Local",
      externalIPs: [EXTERNAL_IP],
      healthCheckNodePort: 30000,
      ports: [{ name: "http", port: 80, protocol: "TCP", targetPort: PORT, nodePort: 30080 }],
    },
  },
  {
    apiVersion: "discovery.k8s.io/v1",
    kind: "EndpointSlice",
    metadata: { namespace: "ns1", name: "web-1", labels: { "kubernetes.io/service-name": "web" } },
    addressType: "IPv4",
    ports: [{ name: "http", port: PORT, protocol: "TCP" }],
    endpoints: [
      { addresses: [ENDPOINT], nodeName: "other-node", conditions: { ready: true, serving: true, terminating: false } },
    ],
  },
];

function rulesFor(version: KubeProxyVersion): string {
  // the client namespace's address is the pod range here, so its traffic is pod traffic
  const m = mapCluster(objects, {
    node: { nodeName: "node-0", addresses: [NODE_IP, NODE_BACK_IP] },
    config: { clusterCIDRs: [`${CLIENT_IP}/32`, "10.128.0.0/9"] },
    families: ["IPv4"],
  });
  return nftablesFor(m.index, "IPv4", ["10.96.0.0/12"], version).text;
}

/** One TCP connect from a namespace to the ExternalIP, 3 s at most: "ok", "TIMEOUT" or the error's code. */
function connectFrom(ns: string): string {
  const js =
    `const s=require("net").connect({host:"${EXTERNAL_IP}",port:80});s.setTimeout(3000,()=>{console.log("TIMEOUT` +
    `");process.exit(0)});` +
    `s.on("connect",()=>{console.log("ok");s.destroy()});s.on("error",(e)=>console.log(e.code))`;
  return nsOk(ns, [process.execPath, "-e", js]).stdout.trim();
}

const CASES = [
  ["1.32", "node", "TIMEOUT"],
  ["1.34", "node", "ok"],
  ["1.32", "pod", "ok"],
  ["1.34", "pod", "ok"],
] as const;
if (why)
  skip(import.meta.url, "ExternalIP of a Local Service from the node and from a pod, per kube-proxy version", why);
else
  for (const [version, from, expect] of CASES) {
    test(
      `kube-proxy ${version}: ${from === "node" ? "the node's (a hostNetwork pod's)" : "a pod's"} connect to ` +
        (`the ExternalIP of a Local Service with no local endpoints ` +
          `${expect === "ok" ? "reaches the cluster's endpoint" : "is dropped"}`),
      async () => {
        const topo = new Topology(`K${version.replace(".", "")}${from[0]}`).create();
        try {
          await topo.startBackends([PORT]);
          // the node routes the ExternalIP out (towards the backends' side) like any address it does not own
          nsOk(topo.node, ["ip", "route", "add", "default", "via", "192.168.202.2"]);
          const load = nsRun(topo.node, ["nft", "-f", "-"], rulesFor(version));
          assert.is(load.status, 0, load.stderr.slice(0, 1500));
          const got = connectFrom(from === "node" ? topo.node : topo.client);
          const seen = await topo.stopBackends();
          assert.is(got, expect, `connect: ${got}`);
          assert.is(
            seen[`${ENDPOINT}:${PORT}`] ?? 0,
            expect === "ok" ? 1 : 0,
            `the endpoint accepted ${JSON.stringify(seen)}`,
          );
          // the ExternalIP's "no local endpoints" element is there in both versions: the chains decide
          const map = nsOk(topo.node, ["nft", "list", "map", "ip", "kube-proxy", "no-endpoint-services"]).stdout;
          assert.match(map, new RegExp(`${EXTERNAL_IP.replace(/\./g, "\\.")} \\. tcp \\. 80 .*: drop`));
        } finally {
          topo.destroy();
        }
      },
    );
  }

test.run();
