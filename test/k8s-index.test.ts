// The incremental index: one change reports exactly the virtual services, ipset entries and kube-ipvs0
// addresses it changed, and any sequence of changes ends where a fresh mapping of the final objects does.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { ClusterIndex, mapCluster, readObjects, generateCluster } from "../src/k8s/index.ts";
import { GOLDEN, NODE, CONFIG, rs } from "./fixtures/k8s/golden.ts";

const objects = () => readObjects(GOLDEN).objects.map((o) => structuredClone(o));
function load() {
  const ix = new ClusterIndex({ node: NODE, config: CONFIG });
  for (const o of objects()) ix.apply(o);
  return ix;
}
const slice = (name: string) =>
  objects().find((o) => o.kind === "EndpointSlice" && (o.metadata as { name: string }).name === name)!;
const svc = (name: string) =>
  objects().find((o) => o.kind === "Service" && (o.metadata as { name: string }).name === name)!;

test("an endpoint turning not-ready updates exactly the VSs of that service port", () => {
  const ix = load();
  const s = slice("web-abc12") as { endpoints: { conditions: { ready: boolean } }[] };
  s.endpoints[1].conditions.ready = false; // 10.244.2.7 (node-b) goes not-ready
  const ch = ix.applyEndpointSlice(s);
  assert.equal(ch.added, []);
  assert.equal(ch.removed, []);
  assert.equal(ch.updated.sort(), ["tcp 10.96.0.10:443", "tcp 10.96.0.10:80"]);
  assert.equal(ch.ipsetAdd, []);
  assert.equal(ch.ipsetDel, []); // hairpin entries are for local endpoints only
  assert.equal(ix.virtualService("tcp 10.96.0.10:80")!.realServers, [rs("10.244.1.5", 8080)]);
});

test("a new local endpoint adds its hairpin entries; removing the slice takes them away again", () => {
  const ix = load();
  const s = slice("lb-1") as { endpoints: unknown[] };
  s.endpoints.push({ addresses: ["10.244.1.10"], conditions: { ready: true }, nodeName: "node-a" });
  const ch = ix.applyEndpointSlice(s);
  // ClusterIP, LB and both NodePort VSs of shop/lb gain the local endpoint
  assert.equal(ch.updated.sort(), [
    "tcp 10.0.2.15:31080",
    "tcp 10.96.0.30:80",
    "tcp 192.168.1.10:31080",
    "tcp 203.0.113.10:80",
  ]);
  assert.equal(ch.ipsetAdd, [["KUBE-LOOP-BACK", "10.244.1.10,tcp:80,10.244.1.10"]]);
  const del = ix.deleteEndpointSlice("shop", "lb-1");
  assert.equal(del.updated.length, 4);
  assert.equal(del.ipsetDel.sort(), [
    ["KUBE-LOOP-BACK", "10.244.1.10,tcp:80,10.244.1.10"],
    ["KUBE-LOOP-BACK", "10.244.1.9,tcp:80,10.244.1.9"],
  ]);
  assert.equal(ix.virtualService("tcp 203.0.113.10:80")!.realServers, []);
});

test("deleting a Service removes its VSs, ipset entries and kube-ipvs0 addresses", () => {
  const ix = load();
  const ch = ix.deleteService("shop", "lb");
  assert.equal(ch.removed.sort(), [
    "tcp 10.0.2.15:31080",
    "tcp 10.96.0.30:80",
    "tcp 192.168.1.10:31080",
    "tcp 203.0.113.10:80",
  ]);
  assert.equal(ch.bindDel.sort(), ["10.96.0.30", "203.0.113.10"]);
  const dels = ch.ipsetDel.map(([s, e]) => `${s} ${e}`).sort();
  assert.equal(dels, [
    "KUBE-CLUSTER-IP 10.96.0.30,tcp:80",
    "KUBE-HEALTH-CHECK-NODE-PORT 32000",
    "KUBE-LOAD-BALANCER 203.0.113.10,tcp:80",
    "KUBE-LOAD-BALANCER-FW 203.0.113.10,tcp:80",
    "KUBE-LOAD-BALANCER-LOCAL 203.0.113.10,tcp:80",
    "KUBE-LOAD-BALANCER-SOURCE-CIDR 203.0.113.10,tcp:80,198.51.100.0/24",
    "KUBE-LOOP-BACK 10.244.1.9,tcp:80,10.244.1.9",
    "KUBE-NODE-PORT-LOCAL-TCP 31080",
    "KUBE-NODE-PORT-TCP 31080",
  ]);
  assert.equal(ix.ipvsState("IPv4").lbNoNodeAccess, []);
  // a slice without its Service waits; the Service coming back picks it up
  const back = ix.applyService(svc("lb"));
  assert.equal(back.added.length, 4);
  assert.equal(ix.virtualService("tcp 203.0.113.10:80")!.realServers, [rs("10.244.1.9", 80)]);
});

test("a shared address stays bound while another Service still uses it", () => {
  const ix = load();
  const other = {
    apiVersion: "v1",
    kind: "Service",
    metadata: { name: "other", namespace: "shop" },
    spec: { clusterIP: "10.96.0.99", externalIPs: ["198.51.100.77"], ports: [{ port: 9443 }] },
  };
  const add = ix.applyService(other);
  assert.equal(add.bindAdd, ["10.96.0.99"]); // 198.51.100.77 was already bound by shop/ext
  const del = ix.deleteService("shop", "ext");
  assert.ok(!del.bindDel.includes("198.51.100.77"));
  assert.ok(ix.ipvsState("IPv4").bindAddrs.includes("198.51.100.77"));
});

test("an invalid update is refused whole: the previous version stays", () => {
  const ix = load();
  const bad = svc("web") as { spec: { ports: { port: number }[] } };
  bad.spec.ports[1].port = 70000;
  const ch = ix.applyService(bad);
  assert.is(ch.errors.length, 1);
  assert.match(
    String(ch.errors[0]),
    /Service shop\/web: spec\.ports\[1\]\.port: must be an integer in 1\.\.65535, got 70000/,
  );
  assert.equal(ch.updated, []);
  assert.equal(ch.removed, []);
  assert.ok(ix.virtualService("tcp 10.96.0.10:443"));
});

test("random change sequences converge to the fresh mapping of the final objects", () => {
  const list = generateCluster({ services: 150, seed: 11, dualStackFraction: 0.3 }).items;
  const node = { nodeName: "node-0", addresses: ["192.168.1.10", "fd00:1::10"] };
  const ix = new ClusterIndex({ node, config: { clusterCIDRs: ["10.128.0.0/9"] } });
  let seed = 5;
  const rnd = () => (seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32;
  const live = new Map<string, Record<string, unknown>>();
  const key = (o: Record<string, unknown>) =>
    `${o.kind}/${(o.metadata as { namespace: string }).namespace}/${(o.metadata as { name: string }).name}`;
  // apply in a shuffled order, with deletes and re-adds and endpoint flips along the way
  const order = [...list].sort(() => rnd() - 0.5);
  for (const o of order) {
    ix.apply(o);
    live.set(key(o), o);
    if (rnd() < 0.2) {
      const victims = [...live.values()];
      const v = victims[Math.floor(rnd() * victims.length)];
      const md = v.metadata as { namespace: string; name: string };
      if (v.kind === "Service") ix.deleteService(md.namespace, md.name);
      else ix.deleteEndpointSlice(md.namespace, md.name);
      live.delete(key(v));
    }
    if (rnd() < 0.2) {
      const sl = [...live.values()].filter((x) => x.kind === "EndpointSlice");
      const s = structuredClone(sl[Math.floor(rnd() * sl.length)]) as {
        endpoints: { conditions: { ready: boolean } }[];
      };
      if (s?.endpoints.length) {
        s.endpoints[0].conditions.ready = !s.endpoints[0].conditions.ready;
        ix.apply(s as never);
        live.set(key(s as never), s as never);
      }
    }
  }
  const fresh = mapCluster([...live.values()], { node, config: { clusterCIDRs: ["10.128.0.0/9"] } });
  assert.equal(ix.desiredState(), fresh.desired);
  for (const f of ["IPv4", "IPv6"] as const) {
    assert.equal(ix.ipvsState(f).ipsetRestore, fresh.ipvs[f]!.ipsetRestore);
    assert.equal(ix.ipvsState(f).iptablesRestore, fresh.ipvs[f]!.iptablesRestore);
  }
});

test.run();
