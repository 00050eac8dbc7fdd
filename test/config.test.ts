// Bad configuration gets a clear error naming what is wrong, and changes nothing.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { Core, WasmvsError } from "../src/core/index.ts";

async function base() {
  const c = await Core.load({ debug: true, connCapacity: 64 });
  const svc = c.addService({ proto: "tcp", addr: "10.0.0.1", port: 80, scheduler: "wlc" });
  c.addDest(svc, { addr: "10.1.0.1", port: 80, weight: 3 });
  c.addDest(svc, { addr: "10.1.0.2", port: 80, weight: 1, upperThreshold: 10, lowerThreshold: 5 });
  const v6 = c.addService({ proto: "udp", addr: "fd00::1", port: 53, scheduler: "mh", flags: ["mh-port"] });
  c.addDest(v6, { addr: "fd00:1::1", port: 53, weight: 1 });
  return { c, svc, v6 };
}

const snapshot = (c: Core) =>
  JSON.stringify(
    c.serviceIds().map((id) => c.service(id)),
    (_k, v) => (typeof v === "bigint" ? v.toString() : v),
  );

function refused(c: Core, fn: () => unknown, message: RegExp) {
  const before = snapshot(c);
  let err: unknown;
  try {
    fn();
  } catch (e) {
    err = e;
  }
  assert.ok(err instanceof Error, "an error is thrown");
  assert.match((err as Error).message, message);
  assert.is(snapshot(c), before, "the tables are unchanged");
}

test("unknown scheduler", async () => {
  const { c, svc } = await base();
  refused(
    c,
    () => c.addService({ proto: "tcp", addr: "10.0.0.2", port: 80, scheduler: "fastest" }),
    /scheduler 'fastest'.*unknown scheduler/,
  );
  refused(
    c,
    () => c.editService(svc, { proto: "tcp", addr: "10.0.0.1", port: 80, scheduler: "nope" }),
    /scheduler 'nope'/,
  );
});

test("weight and thresholds out of range", async () => {
  const { c, svc } = await base();
  refused(
    c,
    () => c.addDest(svc, { addr: "10.1.0.3", port: 80, weight: -1 }),
    /add destination 10\.1\.0\.3:80 .*weight out of range/,
  );
  refused(c, () => c.addDest(svc, { addr: "10.1.0.3", port: 80, weight: 65536 }), /weight out of range/);
  refused(
    c,
    () => c.editDest(svc, { addr: "10.1.0.1", port: 80, weight: 70000 }),
    /edit destination 10\.1\.0\.1:80.*weight out of range/,
  );
  refused(
    c,
    () => c.addDest(svc, { addr: "10.1.0.3", port: 80, weight: 1, upperThreshold: 5, lowerThreshold: 6 }),
    /lower threshold is higher than upper threshold/,
  );
});

test("duplicates and missing parents", async () => {
  const { c, svc } = await base();
  refused(
    c,
    () => c.addService({ proto: "tcp", addr: "10.0.0.1", port: 80, scheduler: "rr" }),
    /add service tcp 10\.0\.0\.1:80: virtual service already exists/,
  );
  refused(c, () => c.addDest(svc, { addr: "10.1.0.1", port: 80, weight: 1 }), /destination already exists/);
  refused(c, () => c.addDest(99, { addr: "10.1.0.9", port: 80 }), /to service 99: no such virtual service/);
  refused(c, () => c.editDest(svc, { addr: "10.1.0.9", port: 80 }), /no such destination/);
  refused(c, () => c.deleteDest(svc, "10.1.0.9", 80), /delete destination 10\.1\.0\.9:80.*no such destination/);
  refused(c, () => c.deleteService(42), /no such virtual service/);
});

test("bad addresses, ports, prefixes, families, flags and methods", async () => {
  const { c, svc, v6 } = await base();
  refused(
    c,
    () => c.addService({ proto: "tcp", addr: "10.0.0.300", port: 80, scheduler: "rr" }),
    /bad address '10\.0\.0\.300'/,
  );
  refused(c, () => c.addDest(svc, { addr: "not-an-ip", port: 80 }), /bad address 'not-an-ip'/);
  refused(c, () => c.addService({ proto: "tcp", addr: "10.0.0.3", port: 70000, scheduler: "rr" }), /port out of range/);
  refused(
    c,
    () =>
      c.addService({
        proto: "tcp",
        addr: "10.0.0.3",
        port: 80,
        scheduler: "rr",
        persistent: 60,
        netmask: "255.0.255.0",
      }),
    /bad netmask/,
  );
  refused(
    c,
    () => c.addService({ proto: "tcp", addr: "fd00::9", port: 80, scheduler: "rr", persistent: 60, netmask: 129 }),
    /bad netmask/,
  );
  refused(
    c,
    () => c.addService({ proto: "icmp" as "tcp", addr: "10.0.0.3", port: 80, scheduler: "rr" }),
    /protocol must be tcp, udp or sctp/,
  );
  refused(c, () => c.addDest(v6, { addr: "10.1.0.1", port: 53 }), /bad or mismatched address family/);
  refused(
    c,
    () => c.addService({ proto: "tcp", addr: "10.0.0.3", port: 80, scheduler: "sh", flags: ["sh-pot"] }),
    /service flag 'sh-pot'/,
  );
  refused(c, () => c.addDest(svc, { addr: "10.1.0.5", port: 80, fwd: "teleport" as "masq" }), /forwarding 'teleport'/);
  refused(c, () => c.set("no_such_knob" as "conntrack", 1), /setting 'no_such_knob'/);
  refused(c, () => c.set("mh_table_index", 20), /out of range/);
});

test("errors carry a code and the right messages; a good change after a refused one works", async () => {
  const { c, svc } = await base();
  try {
    c.addDest(svc, { addr: "10.1.0.1", port: 80 });
    assert.unreachable();
  } catch (e) {
    assert.instance(e, WasmvsError);
    assert.is((e as WasmvsError).code, -4);
  }
  const id = c.addDest(svc, { addr: "10.1.0.3", port: 80, weight: 2 });
  assert.equal(
    c.service(svc).dests.map((d) => d.addr),
    ["10.1.0.3", "10.1.0.2", "10.1.0.1"],
  );
  assert.is(c.dest(id).weight, 2);
});

test.run();
