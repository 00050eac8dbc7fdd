// The reconcile pass's shortcuts (src/kernel/reconcile.ts): a full pass skips the search for undesired
// real servers when every kernel real server of a service was matched, and builds drain keys only while
// something drains. These check, against a kernel model that applies what it is sent, that the shortcuts
// never hide a change: a real server swapped for another (same count), a duplicate in the desired state,
// a drain under way. The same passes against the real kernel: test/kernel-reconcile.test.ts (in the VM).
import { test } from "uvu";
import * as assert from "uvu/assert";
import type { VirtualService, RealServer } from "../src/model/types.ts";
import type { IpvsClient, Op, ServiceWithDests } from "../src/kernel/client.ts";
import { Reconciler } from "../src/kernel/reconcile.ts";

type KDest = RealServer & { activeConns: number; inactConns: number; persistConns: number };
// a kernel: services by "addr:port", each with its real servers; apply() performs the ops
function kernelModel() {
  const svcs = new Map<string, { s: VirtualService; dests: Map<string, KDest> }>();
  const key = (s: { addr?: string; port?: number }) => `${s.addr}:${s.port}`;
  const copy = (): ServiceWithDests[] => [...svcs.values()].map(({ s, dests }) => ({ ...s, flags: [], stats: {},
    realServers: [...dests.values()].map((d) => ({ ...d, stats: {} })) })) as unknown as ServiceWithDests[];
  const client = {
    async dump() { return copy(); },
    async dests(s: VirtualService) { return copy().find((x) => key(x) === key(s))?.realServers ?? []; },
    async apply(ops: Op[]) {
      return ops.map((o) => {
        const k = key(o.service);
        if (o.op === "addService") svcs.set(k, { s: { ...o.service, realServers: [] }, dests: new Map() });
        else if (o.op === "deleteService") svcs.delete(k);
        else if (o.op === "addDest" || o.op === "editDest") {
          const old = svcs.get(k)!.dests.get(key(o.dest));
          const kept = { activeConns: old?.activeConns ?? 0, inactConns: old?.inactConns ?? 0, persistConns: 0 };
          svcs.get(k)!.dests.set(key(o.dest), { ...o.dest, ...kept });
        } else if (o.op === "deleteDest") svcs.get(k)!.dests.delete(key(o.dest));
        return { op: o };
      });
    },
  } as unknown as IpvsClient;
  return { svcs, client };
}
const rs = (addr: string, weight = 1): RealServer =>
  ({ addr, port: 80, weight, fwd: "masq", upperThreshold: 0, lowerThreshold: 0 });
const svc = (realServers: RealServer[]): VirtualService =>
  ({ protocol: "tcp", addr: "10.0.0.1", port: 80, scheduler: "rr", flags: [], realServers });
const have = (m: ReturnType<typeof kernelModel>) =>
  [...(m.svcs.get("10.0.0.1:80")?.dests.values() ?? [])].map((d) => `${d.addr}/${d.weight}`).sort();

test("a real server swapped for another (same count) is added and the old one deleted, with re-read", async () => {
  const m = kernelModel();
  const rec = new Reconciler(m.client);
  await rec.sync({ services: [svc([rs("10.1.0.1"), rs("10.1.0.2")])] });
  assert.equal(have(m), ["10.1.0.1/1", "10.1.0.2/1"]);
  const r = await rec.sync({ services: [svc([rs("10.1.0.1"), rs("10.1.0.3")])] }, { refresh: true });
  assert.equal(r.changes.map((c) => c.kind).sort(), ["add-rs", "delete-rs"]);
  assert.equal(have(m), ["10.1.0.1/1", "10.1.0.3/1"]);
  // and from the cached view
  const r2 = await rec.sync({ services: [svc([rs("10.1.0.4"), rs("10.1.0.3")])] });
  assert.equal(r2.changes.map((c) => c.kind).sort(), ["add-rs", "delete-rs"]);
  assert.equal(have(m), ["10.1.0.3/1", "10.1.0.4/1"]);
});

test("a duplicate desired real server is refused and cannot hide an undesired one", async () => {
  const m = kernelModel();
  const rec = new Reconciler(m.client);
  await rec.sync({ services: [svc([rs("10.1.0.1"), rs("10.1.0.2")])] });
  const r = await rec.sync({ services: [svc([rs("10.1.0.1"), rs("10.1.0.1")])] }, { refresh: true });
  assert.equal(r.failures.map((f) => f.error), ["duplicate real server in the desired state"]);
  assert.equal(r.changes.map((c) => c.kind), ["delete-rs"]);
  assert.equal(have(m), ["10.1.0.1/1"]);
});

test("while one real server drains, the others' edits and a restore are still found", async () => {
  const m = kernelModel();
  const rec = new Reconciler(m.client);
  await rec.sync({ services: [svc([rs("10.1.0.1"), rs("10.1.0.2"), rs("10.1.0.3")])] });
  m.svcs.get("10.0.0.1:80")!.dests.get("10.1.0.3:80")!.activeConns = 2;   // it has connections: drains
  const r = await rec.sync({ services: [svc([rs("10.1.0.1"), rs("10.1.0.2")])] }, { refresh: true });
  assert.equal(r.changes.map((c) => c.kind), ["drain-rs"]);
  assert.equal(r.draining.length, 1);
  const r2 = await rec.sync({ services: [svc([rs("10.1.0.1", 5), rs("10.1.0.2")])] }, { refresh: true });
  assert.equal(r2.changes.map((c) => c.kind), ["edit-rs"]);
  assert.equal(have(m), ["10.1.0.1/5", "10.1.0.2/1", "10.1.0.3/0"]);
  const back = { services: [svc([rs("10.1.0.1", 5), rs("10.1.0.2"), rs("10.1.0.3")])] };
  const r3 = await rec.sync(back, { refresh: true });
  assert.equal(r3.changes.map((c) => c.kind), ["restore-rs"]);
  assert.equal(r3.draining.length, 0);
  assert.equal(have(m), ["10.1.0.1/5", "10.1.0.2/1", "10.1.0.3/1"]);
});

test("an unchanged full pass with re-read sends nothing", async () => {
  const m = kernelModel();
  const rec = new Reconciler(m.client);
  const d = { services: [svc([rs("10.1.0.1"), rs("10.1.0.2")])] };
  await rec.sync(d);
  const r = await rec.sync(d, { refresh: true });
  assert.is(r.messages, 0);
  assert.equal(r.changes, []);
});

test.run();
