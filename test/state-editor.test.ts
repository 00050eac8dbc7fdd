// StateEditor (src/model/ipvsadm.ts), the one place a restore or a control request changes a desired state:
// the same states as ordered maps of services and real servers would give (random command runs against a
// plain model), and O(change) work: the services a change leaves alone are the same objects in the next
// state (what lets the proxy apply only what changed), with no copy of the table per command.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { type IpvsadmCommand, StateEditor } from "../src/model/ipvsadm.ts";
import type { DesiredState, RealServer, VirtualService } from "../src/model/types.ts";

const svc = (i: number): VirtualService => ({
  protocol: "tcp",
  addr: `10.0.${i >> 8}.${i & 255}`,
  port: 80,
  scheduler: "rr",
  flags: [],
  realServers: [],
});
const rs = (j: number, weight = 1): RealServer => ({
  addr: `10.1.0.${j}`,
  port: 8080,
  weight,
  fwd: "masq",
  upperThreshold: 0,
  lowerThreshold: 0,
});
const big = (n: number, per: number): DesiredState => ({
  services: Array.from({ length: n }, (_, i) => ({
    ...svc(i),
    realServers: Array.from({ length: per }, (_, j) => rs(j + 1)),
  })),
});

test("a change leaves every other service the same object; the state before is not changed", () => {
  const before = big(1000, 5);
  const copy = JSON.stringify(before);
  const e = new StateEditor(before);
  assert.is(e.apply({ kind: "add-server", service: svc(7), server: rs(9) }), undefined);
  assert.is(e.apply({ kind: "delete-service", service: svc(8) }), undefined);
  assert.is(e.apply({ kind: "add-service", service: svc(5000) }), undefined);
  const after = e.state();
  assert.is(JSON.stringify(before), copy, "the state before is unchanged");
  assert.is(after.services.length, 1000);
  let shared = 0;
  for (const s of after.services) if (before.services.includes(s)) shared++;
  assert.is(shared, 998, "all but the edited and the added service are shared");
  assert.equal(
    after.services[7].realServers.map((r) => r.addr),
    ["10.1.0.1", "10.1.0.2", "10.1.0.3", "10.1.0.4", "10.1.0.5", "10.1.0.9"],
  );
  assert.is(after.services[999].addr, "10.0.19.136", "the new service goes last");
  // a second editor on the new state starts from it: a refusal names what the first did
  const e2 = new StateEditor(after);
  assert.is(e2.apply({ kind: "add-service", service: svc(5000) }), "Service already exists");
  assert.is(e2.apply({ kind: "delete-service", service: svc(8) }), "No such service");
  assert.is(e2.apply({ kind: "add-server", service: svc(7), server: rs(9) }), "Destination already exists");
});

// The model: services and their real servers as ordered maps, rebuilt whole each time (what StateEditor was).
function model(cmds: IpvsadmCommand[], init: DesiredState): { state: DesiredState; msgs: (string | undefined)[] } {
  const key = (s: VirtualService) => `${s.protocol} ${s.addr}:${s.port}`;
  const m = new Map<string, { s: VirtualService; rs: Map<string, RealServer> }>();
  for (const s of init.services)
    m.set(key(s), { s, rs: new Map(s.realServers.map((r) => [`${r.addr}:${r.port}`, r])) });
  const msgs = cmds.map((c): string | undefined => {
    if (c.kind === "flush") return void m.clear();
    if (c.kind === "add-service") {
      if (m.has(key(c.service))) return "Service already exists";
      m.set(key(c.service), { s: { ...c.service, realServers: [] }, rs: new Map() });
      return;
    }
    if (c.kind === "edit-service") {
      const cur = m.get(key(c.service));
      if (!cur) return "No such service";
      cur.s = { ...c.service, realServers: [] };
      return;
    }
    if (c.kind === "delete-service") return m.delete(key(c.service)) ? undefined : "No such service";
    if (c.kind === "add-server" || c.kind === "edit-server" || c.kind === "delete-server") {
      const cur = m.get(key(c.service));
      if (!cur) return "Service not defined";
      const k = `${c.server.addr}:${c.server.port}`;
      if (c.kind === "add-server") {
        if (cur.rs.has(k)) return "Destination already exists";
        cur.rs.set(k, c.server);
      } else if (!cur.rs.has(k)) return "No such destination";
      else if (c.kind === "edit-server") cur.rs.set(k, c.server);
      else cur.rs.delete(k);
    }
    return;
  });
  return { state: { services: [...m.values()].map(({ s, rs }) => ({ ...s, realServers: [...rs.values()] })) }, msgs };
}

test("random runs of commands (flush, delete and add again, edits) give the model's states and messages", () => {
  let seed = 12345;
  const rnd = (n: number) => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    return seed % n;
  };
  for (let run = 0; run < 300; run++) {
    const init = big(rnd(6), rnd(4));
    const cmds: IpvsadmCommand[] = [];
    for (let k = 0; k < 40; k++) {
      const s = { ...svc(rnd(8)), scheduler: ["rr", "wlc"][rnd(2)] };
      const r = rs(1 + rnd(5), rnd(3));
      const kinds = ["add-service", "edit-service", "delete-service", "add-server", "edit-server", "delete-server"];
      const kind = rnd(60) === 0 ? "flush" : kinds[rnd(kinds.length)];
      cmds.push(
        (kind === "flush"
          ? { kind }
          : kind.endsWith("-server")
            ? { kind, service: s, server: r }
            : { kind, service: s }) as IpvsadmCommand,
      );
    }
    const want = model(cmds, init);
    // in one editor, and one editor per command (as separate control requests)
    const e = new StateEditor(init);
    const msgs = cmds.map((c) => e.apply(c));
    assert.equal(msgs, want.msgs, `run ${run}: messages`);
    assert.equal(e.state().services, want.state.services, `run ${run}: state`);
    let d = init;
    const msgs1 = cmds.map((c) => {
      const e1 = new StateEditor(d);
      const m = e1.apply(c);
      d = e1.state();
      return m;
    });
    assert.equal(msgs1, want.msgs, `run ${run}: messages, one editor per command`);
    assert.equal(d.services, want.state.services, `run ${run}: state, one editor per command`);
  }
});

test("prototype names as addresses are plain keys", () => {
  const e = new StateEditor({ services: [] });
  for (const addr of ["__proto__", "constructor", "toString"]) {
    const s = { ...svc(0), addr };
    assert.is(e.apply({ kind: "add-service", service: s }), undefined);
    assert.is(e.apply({ kind: "add-service", service: s }), "Service already exists");
    assert.is(e.apply({ kind: "add-server", service: s, server: { ...rs(1), addr } }), undefined);
  }
  assert.equal(
    e.state().services.map((s) => s.addr),
    ["__proto__", "constructor", "toString"],
  );
});

test.run();
