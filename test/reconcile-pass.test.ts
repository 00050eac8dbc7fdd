// The reconcile pass's shortcuts (src/kernel/reconcile.ts): a full pass skips the search for undesired
// real servers when every kernel real server of a service was matched, and builds drain keys only while
// something drains. These check, against a kernel model that applies what it is sent, that the shortcuts
// never hide a change: a real server swapped for another (same count), a duplicate in the desired state,
// a drain under way. Each runs twice: the re-read checking services on the kernel's encoded replies
// (table.ts: what a full pass does when the native dump loop is built) and the object path. A differential
// test then drives both through hostile desired states and changes behind their back: the same reports.
// The same passes against the real kernel: test/kernel-reconcile.test.ts (in the VM).
import { test } from "uvu";
import * as assert from "uvu/assert";
import type { VirtualService, RealServer } from "../src/model/types.ts";
import { IpvsError, type IpvsClient, type Op, type ServiceWithDests } from "../src/kernel/client.ts";
import { Reconciler, type ReconcileReport } from "../src/kernel/reconcile.ts";
import { Writer, putService, putDest } from "../src/kernel/codec.ts";
import { encodeTable, decodeDests } from "../src/kernel/table.ts";
import { canonRealServerKey } from "../src/kernel/keys.ts";

type KDest = RealServer & { activeConns: number; inactConns: number; persistConns: number };
// a kernel: services by "addr:port", each with its real servers; apply() performs the ops the encoder
// accepts (as the real client does) and refuses the others. encoded: dumpEncoded() hands the table over
// encoded as the kernel sends it; otherwise it answers null and the reconciler reads dump()'s objects.
function kernelModel(encoded = true) {
  const svcs = new Map<string, { s: VirtualService; dests: Map<string, KDest> }>();
  const key = (s: { addr?: string; port?: number }) => `${s.addr}:${s.port}`;
  const raw = () =>
    [...svcs.values()].map(({ s, dests }) => ({
      ...s,
      flags: [],
      stats: {},
      realServers: [...dests.values()].map((d) => ({ ...d, stats: {} })),
    })) as unknown as ServiceWithDests[];
  // what a read returns: the table encoded as the kernel sends it, parsed back as the client parses it
  const copy = (): ServiceWithDests[] => {
    const t = encodeTable(raw() as never);
    return t.services.map((x, i) => ({ ...x, realServers: decodeDests(t, i) })) as ServiceWithDests[];
  };
  const client = {
    async dump() {
      return copy();
    },
    async dumpEncoded() {
      return encoded ? encodeTable(raw() as never) : null;
    },
    async dests(s: VirtualService) {
      return copy().find((x) => key(x) === key(s))?.realServers ?? [];
    },
    async apply(ops: Op[]) {
      return ops.map((o) => {
        const k = key(o.service);
        const w = new Writer(512);
        try {
          putService(w, o.service, o.op === "addService" || o.op === "editService");
          if (o.op === "addDest" || o.op === "editDest") putDest(w, o.dest, true);
          else if (o.op === "deleteDest") putDest(w, o.dest, false);
        } catch (e) {
          return { op: o, error: new IpvsError(o.op, 22, (e as Error).message) };
        }
        if (o.op !== "addService" && !svcs.has(k)) return { op: o, error: new IpvsError(o.op, 3) }; // ESRCH
        if (o.op === "addService") svcs.set(k, { s: { ...o.service, realServers: [] }, dests: new Map() });
        else if (o.op === "deleteService") svcs.delete(k);
        else if (o.op === "editService") svcs.get(k)!.s = { ...o.service, realServers: [] };
        else if (o.op === "addDest" || o.op === "editDest") {
          const old = svcs.get(k)!.dests.get(canonRealServerKey(o.dest));
          const kept = { activeConns: old?.activeConns ?? 0, inactConns: old?.inactConns ?? 0, persistConns: 0 };
          svcs.get(k)!.dests.set(canonRealServerKey(o.dest), { ...o.dest, ...kept });
        } else if (o.op === "deleteDest") svcs.get(k)!.dests.delete(canonRealServerKey(o.dest));
        return { op: o };
      });
    },
  } as unknown as IpvsClient;
  return { svcs, client };
}
const rs = (addr: string, weight = 1): RealServer => ({
  addr,
  port: 80,
  weight,
  fwd: "masq",
  upperThreshold: 0,
  lowerThreshold: 0,
});
const svc = (realServers: RealServer[]): VirtualService => ({
  protocol: "tcp",
  addr: "10.0.0.1",
  port: 80,
  scheduler: "rr",
  flags: [],
  realServers,
});
const have = (m: ReturnType<typeof kernelModel>) =>
  [...(m.svcs.get("10.0.0.1:80")?.dests.values() ?? [])].map((d) => `${d.addr}/${d.weight}`).sort();

for (const encoded of [true, false]) {
  const path = encoded ? "encoded read" : "object read";

  test(`${path}: a real server swapped for another (same count): new added, old deleted, re-read`, async () => {
    const m = kernelModel(encoded);
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

  test(`${path}: a duplicate desired real server is refused and cannot hide an undesired one`, async () => {
    const m = kernelModel(encoded);
    const rec = new Reconciler(m.client);
    await rec.sync({ services: [svc([rs("10.1.0.1"), rs("10.1.0.2")])] });
    const r = await rec.sync({ services: [svc([rs("10.1.0.1"), rs("10.1.0.1")])] }, { refresh: true });
    assert.equal(
      r.failures.map((f) => f.error),
      ["duplicate real server in the desired state"],
    );
    assert.equal(
      r.changes.map((c) => c.kind),
      ["delete-rs"],
    );
    assert.equal(have(m), ["10.1.0.1/1"]);
  });

  test(`${path}: while one real server drains, the others' edits and a restore are still found`, async () => {
    const m = kernelModel(encoded);
    const rec = new Reconciler(m.client);
    await rec.sync({ services: [svc([rs("10.1.0.1"), rs("10.1.0.2"), rs("10.1.0.3")])] });
    m.svcs.get("10.0.0.1:80")!.dests.get("10.1.0.3:80")!.activeConns = 2; // it has connections: drains
    const r = await rec.sync({ services: [svc([rs("10.1.0.1"), rs("10.1.0.2")])] }, { refresh: true });
    assert.equal(
      r.changes.map((c) => c.kind),
      ["drain-rs"],
    );
    assert.equal(r.draining.length, 1);
    const r2 = await rec.sync({ services: [svc([rs("10.1.0.1", 5), rs("10.1.0.2")])] }, { refresh: true });
    assert.equal(
      r2.changes.map((c) => c.kind),
      ["edit-rs"],
    );
    assert.equal(have(m), ["10.1.0.1/5", "10.1.0.2/1", "10.1.0.3/0"]);
    const back = { services: [svc([rs("10.1.0.1", 5), rs("10.1.0.2"), rs("10.1.0.3")])] };
    const r3 = await rec.sync(back, { refresh: true });
    assert.equal(
      r3.changes.map((c) => c.kind),
      ["restore-rs"],
    );
    assert.equal(r3.draining.length, 0);
    assert.equal(have(m), ["10.1.0.1/5", "10.1.0.2/1", "10.1.0.3/1"]);
  });

  test(`${path}: an unchanged full pass with re-read sends nothing`, async () => {
    const m = kernelModel(encoded);
    const rec = new Reconciler(m.client);
    const d = { services: [svc([rs("10.1.0.1"), rs("10.1.0.2")])] };
    await rec.sync(d);
    const r = await rec.sync(d, { refresh: true });
    assert.is(r.messages, 0);
    assert.equal(r.changes, []);
  });
}

test("a desired object given again after a change behind its back: the re-read still finds the change", async () => {
  for (const encoded of [true, false]) {
    const m = kernelModel(encoded);
    const rec = new Reconciler(m.client);
    const d = { services: [svc([rs("10.1.0.1"), rs("10.1.0.2")])] };
    await rec.sync(d);
    // someone else's edits, one at a time: a weight, a threshold, the forwarding method, the scheduler
    const dest = () => m.svcs.get("10.0.0.1:80")!.dests.get("10.1.0.2:80")!; // (an edit replaces it)
    const edits: [() => void, string][] = [
      [
        () => {
          dest().weight = 0;
        },
        "edit-rs weight 0 → 1",
      ],
      [
        () => {
          dest().lowerThreshold = 3;
        },
        "edit-rs lower threshold 3 → 0",
      ],
      [
        () => {
          dest().upperThreshold = 8;
        },
        "edit-rs upper threshold 8 → 0",
      ],
      [
        () => {
          dest().fwd = "route";
        },
        "edit-rs forwarding route → masq",
      ],
      [
        () => {
          m.svcs.get("10.0.0.1:80")!.s.scheduler = "wlc";
        },
        "edit-service scheduler wlc → rr",
      ],
    ];
    for (const [edit, want] of edits) {
      edit();
      const r = await rec.sync(d, { refresh: true });
      assert.equal(
        r.changes.map((c) => `${c.kind} ${c.fields}`),
        [want],
        `${encoded}: ${want}`,
      );
      assert.equal((await rec.sync(d, { refresh: true })).messages, 0);
    }
  }
});

test("the kernel's list order does not matter to the encoded check (newest first, reversed, shuffled)", async () => {
  const m = kernelModel(true);
  const rec = new Reconciler(m.client);
  const many = svc(Array.from({ length: 300 }, (_, i) => rs(`10.2.${i >> 8}.${i & 255}`, 1 + (i % 7))));
  await rec.sync({ services: [many] });
  const dests = m.svcs.get("10.0.0.1:80")!.dests;
  for (const order of ["reverse", "shuffle"]) {
    const e = [...dests.entries()];
    const mix = (x: [string, RealServer]) => (x[1].weight * 7919 + x[0].length) % 13;
    if (order === "reverse") e.reverse();
    else e.sort((a, b) => mix(a) - mix(b));
    dests.clear();
    for (const [k, v] of e) dests.set(k, v);
    const r = await rec.sync({ services: [many] }, { refresh: true });
    assert.is(r.messages, 0, order);
  }
});

// Both read paths through the same steps: desired states with wrong types, odd spellings, prototype keys,
// tunnels, IPv6, duplicates, huge and bad numbers, and changes made behind the reconciler's back. After
// every step both must have reported the same and left the same kernel.
test("the encoded and the object read give the same reports and the same kernel, under hostile input", async () => {
  const v6 = (realServers: RealServer[]): VirtualService => ({
    protocol: "udp",
    addr: "fd00:0::1",
    port: 53,
    scheduler: "sh",
    flags: ["sh-port"],
    realServers,
  });
  const odd = (o: Partial<RealServer>, addr = "10.1.0.9") => ({ ...rs(addr), ...o }) as RealServer;
  const steps: { desired: VirtualService[]; behind?: (m: ReturnType<typeof kernelModel>) => void }[] = [
    { desired: [svc([rs("10.1.0.1"), rs("10.1.0.2", 3)]), v6([rs("fd01::1"), rs("fd01:0::2", 2)])] },
    { desired: [svc([rs("10.1.0.1"), rs("10.1.0.2", 3)]), v6([rs("fd01::1"), rs("fd01::2", 2)])] },
    { desired: [svc([odd({ weight: "1" as never }, "10.1.0.1"), odd({ port: "80" as never }, "10.1.0.2")])] },
    { desired: [svc([rs("010.1.0.1"), rs("__proto__"), rs("constructor"), rs("toString"), rs("10.1.0.2", 3)])] },
    {
      desired: [
        svc([odd({ weight: -1 }), odd({ weight: 1e12 }, "10.1.0.8"), odd({ weight: NaN }, "10.1.0.7"), rs("10.1.0.2")]),
      ],
    },
    { desired: [svc([odd({ fwd: "fullnat" as never }), odd({ upperThreshold: undefined as never }, "10.1.0.2")])] },
    { desired: [svc([odd({ fwd: "tunnel", tunType: "gue", tunPort: 6080, tunFlags: ["csum"] }), rs("10.1.0.2")])] },
    { desired: [svc([odd({ fwd: "tunnel", tunType: "gue", tunPort: 6081, tunFlags: ["csum"] }), rs("10.1.0.2")])] },
    { desired: [svc([rs("10.1.0.2"), rs("10.1.0.2", 5), rs("10.1.0.3")])] },
    {
      desired: [svc([rs("10.1.0.2"), rs("10.1.0.3")])],
      behind: (m) => {
        const d = m.svcs.get("10.0.0.1:80")!.dests;
        d.get("10.1.0.3:80")!.weight = 9;
        d.delete("10.1.0.2:80");
      },
    },
    {
      desired: [svc([rs("10.1.0.2"), rs("10.1.0.3")])],
      behind: (m) => {
        m.svcs.get("10.0.0.1:80")!.dests.get("10.1.0.3:80")!.upperThreshold = 5;
      },
    },
    { desired: [svc([rs("10.1.0.2"), { ...rs("10.1.0.3"), port: 8080 }])] },
    { desired: [svc([rs("10.1.0.2"), rs("10.1.0.3")])] },
    {
      desired: [svc([rs("10.1.0.2"), rs("10.1.0.3")])],
      behind: (m) => {
        const busy = { ...rs("10.1.0.4"), activeConns: 2, inactConns: 0, persistConns: 0 };
        m.svcs.get("10.0.0.1:80")!.dests.set("10.1.0.4:80", busy);
      },
    },
    { desired: [svc(Array.from({ length: 1000 }, (_, i) => rs(`10.3.${i >> 8}.${i & 255}`, i % 3)))] },
    { desired: [svc(Array.from({ length: 1000 }, (_, i) => rs(`10.3.${i >> 8}.${i & 255}`, i === 500 ? 7 : i % 3)))] },
    { desired: [] },
  ];
  const runs = [true, false].map((encoded) => {
    const m = kernelModel(encoded);
    return { m, rec: new Reconciler(m.client) };
  });
  const brief = (r: ReconcileReport) => ({
    changes: r.changes.map((c) => `${c.kind} ${c.service} ${c.rs ?? ""} ${c.fields ?? ""} ${c.reason ?? ""}`).sort(),
    failures: r.failures.map((f) => `${f.kind} ${f.rs ?? ""} ${f.error}`).sort(),
    messages: r.messages,
    notes: r.notes,
    draining: r.draining.map((d) => d.rs).sort(),
  });
  const kernel = (m: ReturnType<typeof kernelModel>) =>
    JSON.stringify(
      [...m.svcs.values()].map(({ s, dests }) => [
        s.addr,
        s.scheduler,
        [...dests.entries()].map(([k, d]) => `${k}/${d.weight}/${d.fwd}/${d.tunPort ?? ""}`).sort(),
      ]),
    );
  for (const [i, step] of steps.entries()) {
    const got = [];
    for (const { m, rec } of runs) {
      step.behind?.(m);
      got.push(brief(await rec.sync({ services: step.desired }, { refresh: true })));
    }
    assert.equal(got[0], got[1], `step ${i}`);
    assert.is(kernel(runs[0].m), kernel(runs[1].m), `step ${i}: kernel`);
  }
});

test("a malformed reply is refused with the attribute named, as the object read refuses it", async () => {
  for (const encoded of [true, false]) {
    const m = kernelModel(encoded);
    const rec = new Reconciler(m.client);
    await rec.sync({ services: [svc([rs("10.1.0.1")])] });
    const broken = () => {
      const t = encodeTable(
        [...m.svcs.values()].map(({ s, dests }) => ({
          ...s,
          flags: [],
          stats: {},
          realServers: [...dests.values()],
        })) as never,
      );
      // WEIGHT's attribute header says 2 bytes of payload (6 in all) instead of 4
      for (let p = 20 + 4; p + 4 <= t.replies.length; ) {
        const len = t.replies.readUInt16LE(p),
          type = t.replies.readUInt16LE(p + 2);
        if (type === 4) {
          t.replies.writeUInt16LE(6, p);
          break;
        }
        p += (len + 3) & ~3;
      }
      return t;
    };
    m.client.dumpEncoded = async () => (encoded ? broken() : null);
    m.client.dump = async () => {
      const t = broken();
      return t.services.map((x, i) => ({ ...x, realServers: decodeDests(t, i) })) as never;
    };
    let err = "";
    try {
      await rec.sync({ services: [svc([rs("10.1.0.1")])] }, { refresh: true });
    } catch (e) {
      err = (e as Error).message;
    }
    assert.is(err, "malformed reply: IPVS_DEST_ATTR_WEIGHT has 2 byte(s), needs 4", String(encoded));
  }
});

test.run();
