// The boundary between assembly/ and src/: the compiled modules (release and debug) against the host's typed
// export list, the scratch layout against what the module really writes, the one scheduler list against
// everything that names schedulers, and the abort message.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import {
  Core,
  WasmAbort,
  readWasmString,
  wasmPath,
  LAYOUT,
  SCHEDULERS,
  SCHEDULER_LIST,
  SCHED_FLAG_NAMES,
  CONN_F,
  TCP_FLAGS,
} from "../src/core/index.ts";
import { CORE_FUNCTIONS, CORE_GLOBALS, RUNTIME_EXPORTS } from "../src/core/exports.ts";
import { DESC_SIZE, PACKET_DROP_REASONS } from "../src/core/packets.ts";
import { Tracer } from "../src/core/trace.ts";
import { validateService } from "../src/model/validate.ts";
import { SCHED_FLAG_BITS } from "../src/model/schedulers.ts";
import { readProxyConfig } from "../src/k8s/config.ts";
import { exportSignatures } from "./helpers/wasm-signatures.ts";
import { CounterReader } from "../src/core/counters.ts";
import { formatAddr } from "../src/core/addr.ts";

// AssemblyScript's types as WASM value types (wasm32: usize is i32)
const WASM_TYPE: Record<string, string> = {
  i32: "i32",
  u32: "i32",
  bool: "i32",
  usize: "i32",
  i64: "i64",
  u64: "i64",
  f64: "f64",
};
const asTypes = (s: string) =>
  s === "" ? [] : s.split(" ").map((t) => WASM_TYPE[t] ?? `unknown AssemblyScript type ${t}`);

for (const debug of [false, true]) {
  test(`${debug ? "debug" : "release"} build: every export is typed in src/core/exports.ts, with its signature`, () => {
    const sigs = exportSignatures(new Uint8Array(readFileSync(wasmPath(debug))));
    const problems: string[] = [];
    for (const [name, [params, result]] of Object.entries(CORE_FUNCTIONS)) {
      const sig = sigs.get(name);
      const want = `(${asTypes(params).join(" ")}) -> ${result === "void" ? "" : asTypes(result)[0]}`;
      if (!sig) {
        problems.push(`${name}: typed in exports.ts, not exported by the module`);
        continue;
      }
      if (sig.kind !== "function") {
        problems.push(`${name}: a ${sig.kind} in the module`);
        continue;
      }
      const got = `(${sig.params.join(" ")}) -> ${sig.results.join(" ")}`;
      if (got !== want) problems.push(`${name}: module ${got}, exports.ts ${want}`);
    }
    for (const name of CORE_GLOBALS) {
      const sig = sigs.get(name);
      if (sig?.kind !== "global" || sig.type !== "i32" || sig.mutable) {
        problems.push(`${name}: not an immutable i32 global`);
      }
    }
    const known = new Set<string>([...Object.keys(CORE_FUNCTIONS), ...CORE_GLOBALS, ...RUNTIME_EXPORTS, "memory"]);
    for (const name of sigs.keys()) {
      if (!known.has(name)) problems.push(`${name}: exported by the module, not typed in exports.ts`);
    }
    assert.equal(problems, []);
    assert.is(sigs.get("memory")?.kind, "memory");
  });
}

test("the signature reader refuses what is not a module, and reads a hand-made one", () => {
  assert.throws(() => exportSignatures(new Uint8Array([1, 2, 3])), /not a WASM module/);
  assert.throws(() => exportSignatures(new Uint8Array([0, 0x61, 0x73, 0x6d, 1, 0, 0, 0, 1, 5])), /truncated/);
  // (func (export "f") (param i32 i64) (result f64) f64.const 0)
  const m = new Uint8Array([
    0, 0x61, 0x73, 0x6d, 1, 0, 0, 0, 1, 7, 1, 0x60, 2, 0x7f, 0x7e, 1, 0x7c, 3, 2, 1, 0, 7, 5, 1, 1, 0x66, 0, 0, 10, 13,
    1, 11, 0, 0x44, 0, 0, 0, 0, 0, 0, 0, 0, 0x0b,
  ]);
  new WebAssembly.Module(m); // a valid module
  assert.equal(exportSignatures(m).get("f"), { kind: "function", params: ["i32", "i64"], results: ["f64"] });
});

// ---- the scratch layout -----------------------------------------------------------------------------------
const ADDR = 16,
  WIDE = 8;
const WIDE_FIELD = /_(CONNS|INPKTS|OUTPKTS|INBYTES|OUTBYTES|EXPIRES)$/;
const fieldSize = (name: string) =>
  /_ADDR$/.test(name) ? ADDR : WIDE_FIELD.test(name) && name !== "CONN_INPKTS" ? WIDE : 4;

test("each scratch record's fields lie inside the record, do not overlap, and the records fit the area", () => {
  const L = LAYOUT as unknown as Record<string, number>;
  for (const rec of ["SVC", "DEST", "CONN"]) {
    const fields = Object.keys(L)
      .filter((k) => k.startsWith(`${rec}_`) && k !== `${rec}_END` && !k.includes("_F_"))
      .map((k) => ({ k, at: L[k], size: fieldSize(k) }))
      .sort((a, b) => a.at - b.at);
    assert.ok(fields.length > 5, rec);
    for (let i = 0; i < fields.length; i++) {
      const f = fields[i],
        next = fields[i + 1]?.at ?? L[`${rec}_END`];
      assert.ok(Number.isInteger(f.at) && f.at >= 0, f.k);
      const into = fields[i + 1]?.k ?? `${rec}_END`;
      assert.ok(f.at + f.size <= next, `${f.k} at ${f.at} (${f.size} bytes) runs into ${into}`);
    }
    assert.ok(L[`${rec}_END`] <= LAYOUT.SCRATCH_SIZE, `${rec}_END`);
  }
  assert.ok(LAYOUT.ARG_DST + ADDR <= LAYOUT.SCRATCH_SIZE);
});

// A UDP IPv6 sh service with flags, persistence and a netmask, and a tunnel destination whose weight went
// 7 -> 0 with load 3/9: every field of both records reads back as set.
function checkServiceAndDestRecords(core: Core): void {
  const svc = core.addService({
    proto: "udp",
    addr: "2001:db8::7",
    port: 4321,
    scheduler: "sh",
    flags: ["sh-port"],
    persistent: 3600,
    netmask: 96,
  });
  const d = core.addDest(svc, {
    addr: "2001:db8::42",
    port: 8765,
    weight: 7,
    upperThreshold: 11,
    lowerThreshold: 5,
    fwd: "tunnel",
  });
  core.editDest(svc, {
    addr: "2001:db8::42",
    port: 8765,
    weight: 0,
    upperThreshold: 11,
    lowerThreshold: 5,
    fwd: "tunnel",
  });
  core.setLoad(d, 3, 9);
  const s = core.service(svc);
  assert.equal(
    {
      af: s.af,
      proto: s.proto,
      addr: s.addr,
      port: s.port,
      fwmark: s.fwmark,
      scheduler: s.scheduler,
      flags: s.flags,
      timeout: s.timeout,
      netmask: s.netmask,
    },
    {
      af: 10,
      proto: "udp",
      addr: "2001:db8::7",
      port: 4321,
      fwmark: 0,
      scheduler: "sh",
      flags: SCHED_FLAG_NAMES["sh-port"] | 0x1,
      timeout: 3600,
      netmask: 96,
    },
  );
  const dest = s.dests[0];
  assert.equal(
    {
      id: dest.id,
      af: dest.af,
      addr: dest.addr,
      port: dest.port,
      weight: dest.weight,
      lastWeight: dest.lastWeight,
      upperThreshold: dest.upperThreshold,
      lowerThreshold: dest.lowerThreshold,
      fwd: dest.fwd,
      active: dest.activeConns,
      inactive: dest.inactConns,
      svcId: dest.svcId,
    },
    {
      id: d,
      af: 10,
      addr: "2001:db8::42",
      port: 8765,
      weight: 0,
      lastWeight: 7,
      upperThreshold: 11,
      lowerThreshold: 5,
      fwd: "tunnel",
      active: 3,
      inactive: 9,
      svcId: svc,
    },
  );
}

// A persistent TCP service: one connection and its template, the connection record's fields and the
// 64-bit counters (each a different number), and connMatches on good and bad indexes.
function checkConnRecordAndCounters(core: Core): void {
  const web = core.addService({ proto: "tcp", addr: "10.9.8.7", port: 443, scheduler: "rr", persistent: 300 });
  const real = core.addDest(web, { addr: "10.1.2.3", port: 8443 });
  const r = core.packet("in", "tcp", "192.0.2.55", 40123, "10.9.8.7", 443, { flags: TCP_FLAGS.SYN, now: 5000 });
  assert.is(r.verdict, "forward");
  const c = core.conn(r.conn)!;
  assert.equal(
    {
      af: c.af,
      proto: c.proto,
      caddr: c.caddr,
      vaddr: c.vaddr,
      daddr: c.daddr,
      cport: c.cport,
      vport: c.vport,
      dport: c.dport,
      state: c.state,
      template: c.template,
      destId: c.destId,
      inPkts: c.inPkts,
    },
    {
      af: 2,
      proto: "tcp",
      caddr: "192.0.2.55",
      vaddr: "10.9.8.7",
      daddr: "10.1.2.3",
      cport: 40123,
      vport: 443,
      dport: 8443,
      state: "SYN_RECV",
      template: false,
      destId: real,
      inPkts: 1,
    },
  );
  assert.ok(c.expires > 5000 && c.timeoutMs > 0);
  // the 64-bit counters, each a different number: 1 connection, 2 packets in (100 bytes), 1 out (52 bytes)
  core.packet("in", "tcp", "192.0.2.55", 40123, "10.9.8.7", 443, { flags: TCP_FLAGS.ACK, len: 40, now: 5001 });
  core.packet("out", "tcp", "10.1.2.3", 8443, "192.0.2.55", 40123, { flags: TCP_FLAGS.ACK, len: 52, now: 5002 });
  const counted = (x: { conns: bigint; inPkts: bigint; outPkts: bigint; inBytes: bigint; outBytes: bigint }) => [
    x.conns,
    x.inPkts,
    x.inBytes,
    x.outPkts,
    x.outBytes,
  ];
  assert.equal(counted(core.service(web)), [1n, 2n, 100n, 1n, 52n]);
  assert.equal(counted(core.dest(real)), [1n, 2n, 100n, 1n, 52n]);
  const tpl = core.conns().find((e) => e.template)!;
  assert.ok(tpl, "the persistence template");
  assert.is(c.controlledBy, tpl.index);
  assert.is(tpl.children, 1);
  assert.ok((tpl.flags & CONN_F.template) !== 0);
  assert.ok(core.connMatches(r.conn, 6, 40123, 443));
  assert.not.ok(core.connMatches(r.conn, 6, 40124, 443), "another client port");
  assert.not.ok(core.connMatches(r.conn, 17, 40123, 443), "another protocol");
  assert.not.ok(core.connMatches(tpl.index, 6, 0, 443), "a template is no flow's entry");
  for (const bad of [-1, 1e9, NaN, 2 ** 31]) assert.not.ok(core.connMatches(bad, 6, 40123, 443), String(bad));
}

test("what the module writes at each layout offset is what the host reads there (a distinct value each)", async () => {
  const core = await Core.load({ connCapacity: 64 });
  checkServiceAndDestRecords(core);
  checkConnRecordAndCounters(core);
});

test("outside src/core nothing reads WASM memory at a bare offset", () => {
  const root = fileURLToPath(new URL("..", import.meta.url));
  const read = (f: string) => readFileSync(root + f, "utf8");
  // assembly/index.ts writes scratch only at named offsets
  assert.equal(read("assembly/index.ts").match(/store<\w+>\(p, [^;]*?, \d+\)/g) ?? [], []);
  for (const f of ["src/proxy/socket.ts", "src/proxy/metrics.ts", "src/sim/engine.ts"]) {
    const text = read(f);
    assert.not.match(text, /scratchPtr\(|\.x\.memory|core\.u8/, f);
    assert.not.match(text, /\.get\w+\((sp|p|this\.scratch) \+ \d+/, f);
  }
});

// ---- the counters area (countersWrite: the proxy's /metrics in one pass) ---------------------------------
test("each counters record's fields lie inside the record and do not overlap; counters are 8-aligned f64", () => {
  const L = LAYOUT as unknown as Record<string, number>;
  for (const rec of ["CTR_HEAD", "CTR_SVC", "CTR_DEST"]) {
    const fields = Object.keys(L)
      .filter((k) => k.startsWith(`${rec}_`) && k !== `${rec}_END`)
      .map((k) => ({ k, at: L[k], size: fieldSize(k) }))
      .sort((a, b) => a.at - b.at);
    assert.ok(fields.length >= 2, rec);
    for (let i = 0; i < fields.length; i++) {
      const f = fields[i],
        next = fields[i + 1]?.at ?? L[`${rec}_END`];
      assert.ok(
        f.at + f.size <= next,
        `${f.k} at ${f.at} (${f.size} bytes) runs into ${fields[i + 1]?.k ?? "the end"}`,
      );
      if (f.size === WIDE) assert.is(f.at % 8, 0, `${f.k} is read as a Float64Array element`);
    }
    assert.is(L[`${rec}_END`] % 8, 0, `${rec}_END keeps the next record 8-aligned`);
  }
});

test("what countersWrite writes is what the host reads: every field, runs of whole services, ids reused", async () => {
  const core = await Core.load({ connCapacity: 256 });
  const a = core.addService({ proto: "tcp", addr: "10.9.8.7", port: 443, scheduler: "rr", persistent: 300 });
  const b = core.addService({ proto: "udp", addr: "2001:db8::7", port: 53, scheduler: "wrr" });
  core.addDest(a, { addr: "10.1.2.3", port: 8443, weight: 3, upperThreshold: 50 });
  core.addDest(a, { addr: "10.1.2.4", port: 8444, weight: 5 });
  const d6 = core.addDest(b, { addr: "2001:db8::42", port: 5353, weight: 7 });
  core.setLoad(d6, 11, 13);
  for (let i = 0; i < 5; i++) core.packet("in", "tcp", "192.0.2.1", 40000 + i, "10.9.8.7", 443, { flags: 2, len: 100 });
  const gone = core.addService({ proto: "tcp", addr: "10.9.8.8", port: 80, scheduler: "rr" });
  core.deleteService(gone); // a hole in the ids: not written
  const want = [a, b].map((id) => core.service(id));
  for (const budget of [1, 2, 4096]) {
    const r = new CounterReader(core, budget);
    const got: unknown[] = [];
    let runs = 0;
    while (r.nextRun()) {
      runs++;
      while (r.nextService()) {
        const dests: unknown[] = [];
        while (r.nextDest())
          dests.push({
            id: r.destId,
            addr: formatAddr(r.destAf, r.destAddrBytes()),
            port: r.destPort,
            weight: r.destWeight,
            active: r.destActive,
            inact: r.destInactive,
            persist: r.destPersist,
            svcId: r.destSvc,
            counts: [r.destConns, r.destInPkts, r.destOutPkts, r.destInBytes, r.destOutBytes],
          });
        got.push({
          id: r.svcId,
          n: r.svcDests,
          counts: [r.svcConns, r.svcInPkts, r.svcOutPkts, r.svcInBytes, r.svcOutBytes],
          dests,
        });
      }
    }
    assert.equal(
      got,
      want.map((s) => ({
        id: s.id,
        n: s.dests.length,
        counts: [s.conns, s.inPkts, s.outPkts, s.inBytes, s.outBytes].map(Number),
        dests: s.dests.map((d) => ({
          id: d.id,
          addr: d.addr,
          port: d.port,
          weight: d.weight,
          active: d.activeConns,
          inact: d.inactConns,
          persist: d.persistConns,
          svcId: d.svcId,
          counts: [d.conns, d.inPkts, d.outPkts, d.inBytes, d.outBytes].map(Number),
        })),
      })),
      `budget ${budget}`,
    );
    if (budget === 4096) assert.is(runs, 1);
    else assert.ok(runs >= 2, `budget ${budget}: a run per service or two, each whole (${runs} runs)`);
  }
  assert.ok(want[0].conns > 0n && want[0].inBytes > 0n && want[1].dests[0].activeConns === 11, "non-zero values");
  // services only: each service's destinations counted, their records left out
  const r = new CounterReader(core, 1);
  r.withDests = false;
  const only: number[][] = [];
  while (r.nextRun()) while (r.nextService()) only.push([r.svcId, r.svcDests, r.svcConns, Number(r.nextDest())]);
  assert.equal(only, [
    [a, 2, Number(want[0].conns), 0],
    [b, 1, 0, 0],
  ]);
});

test("the module's packet descriptor size and drop reasons are the host's", async () => {
  const core = await Core.load({ connCapacity: 16 });
  assert.is(core.x.DESC_SIZE.value, DESC_SIZE);
  const limit = core.x.packetReasonLimit();
  for (let code = 16; code < limit; code++) assert.ok(PACKET_DROP_REASONS[code], `drop reason ${code} has no name`);
  for (const code of Object.keys(PACKET_DROP_REASONS)) assert.ok(Number(code) < limit, `reason ${code}`);
});

// ---- the scheduler list -----------------------------------------------------------------------------------
const service = (scheduler: string, flags: string[] = []) => ({
  protocol: "tcp" as const,
  addr: "10.0.0.1",
  port: 80,
  scheduler,
  flags,
  realServers: [],
});

test("scheduler ids are the list's positions, names unique, and each family one the trace explains", () => {
  assert.equal(
    SCHEDULER_LIST.map((s) => s.id),
    SCHEDULER_LIST.map((_, i) => i),
  );
  assert.is(new Set(SCHEDULERS).size, SCHEDULERS.length);
  for (const s of SCHEDULER_LIST) {
    assert.ok(["rr", "wrr", "least", "twos", "hash", "locality"].includes(s.family), s.name);
    assert.ok(s.flags.length <= SCHED_FLAG_BITS.length, s.name);
  }
});

test("every listed scheduler is reachable: CLI validation, k8s config, the core and its trace records", async () => {
  const core = await Core.load({ connCapacity: 64 });
  const tracer = new Tracer(core);
  tracer.enable();
  for (const [i, s] of SCHEDULER_LIST.entries()) {
    assert.equal(validateService(service(s.name)), [], `validate ${s.name}`);
    const k8s = readProxyConfig({ kind: "KubeProxyConfiguration", mode: "ipvs", ipvs: { scheduler: s.name } });
    assert.equal(k8s.errors.map(String), [], `k8s ${s.name}`);
    assert.is(k8s.config.scheduler, s.name);
    const id = core.addService({ proto: "tcp", addr: `10.0.${i}.1`, port: 80, scheduler: s.name });
    assert.is(core.service(id).scheduler, s.name, "the module made and reports it");
    core.addDest(id, { addr: `10.1.${i}.1`, port: 80 });
    tracer.take();
    assert.ok(core.schedule(id, "192.0.2.1", 1000, { dst: `10.0.${i}.1`, dport: 80 }) >= 0, `${s.name} schedules`);
    if (s.family !== "least" || s.name === "twos") {
      const recs = tracer.take();
      assert.is(recs.at(-1)?.sched, s.name, `${s.name}'s trace record names it`);
    }
    for (const [bit, flag] of s.flags.entries()) {
      assert.equal(validateService(service(s.name, [flag])), [], `${flag} with ${s.name}`);
      assert.is(Core.serviceFlags({ scheduler: s.name, flags: [flag] }), SCHED_FLAG_BITS[bit]);
      const other = SCHEDULERS.find((n) => n !== s.name)!;
      assert.ok(validateService(service(other, [flag])).some((p) => p.message.includes(`needs the ${s.name}`)));
    }
  }
});

test("names that are not schedulers or flags are refused everywhere, prototype keys included", async () => {
  const core = await Core.load({ connCapacity: 16 });
  for (const bad of ["__proto__", "constructor", "toString", "hasOwnProperty", "", "RR", "rr ", "ip_vs_rr", "14"]) {
    assert.ok(
      validateService(service(bad)).some((p) => p.path.endsWith(".scheduler")),
      `validate '${bad}'`,
    );
    const k8s = readProxyConfig({ kind: "KubeProxyConfiguration", mode: "ipvs", ipvs: { scheduler: bad } });
    if (bad !== "")
      assert.ok(
        k8s.errors.some((e) => String(e).includes("scheduler")),
        `k8s '${bad}'`,
      );
    assert.throws(() => core.addService({ proto: "tcp", addr: "10.0.0.1", port: 80, scheduler: bad }), /scheduler/);
    assert.ok(
      validateService(service("rr", [bad])).some((p) => p.path.endsWith(".flags")),
      `flag '${bad}'`,
    );
    assert.throws(() => Core.serviceFlags({ scheduler: "rr", flags: [bad] }), /service flag/, `flag '${bad}'`);
  }
  assert.equal(core.serviceIds(), [], "nothing was added");
  // the module itself refuses an id outside the list
  for (const id of [-1, SCHEDULERS.length, 2 ** 31 - 1]) {
    core.putAddr("10.0.0.1");
    assert.is(core.x.svcAdd(2, 6, 80, 0, id, 0, 0, 0xffffffff), -5, `id ${id}`);
  }
});

// ---- abort ----------------------------------------------------------------------------------------------
test("an abort in the module surfaces its message, file, line and column (debug build)", async () => {
  const core = await Core.load({ debug: true, connCapacity: 16 });
  let err: unknown;
  try {
    core.x.keyBatchInit(-1);
  } catch (e) {
    err = e;
  }
  assert.instance(err, WasmAbort);
  const a = err as WasmAbort;
  assert.is(a.wasmMessage, "Allocation too large");
  assert.is(a.file, "~lib/rt/tlsf.ts");
  assert.ok(a.line > 0 && a.column > 0);
  assert.match(a.message, /Allocation too large at ~lib\/rt\/tlsf\.ts:\d+:\d+/);
});

test("reading a WASM string from a bad pointer gives null, never a throw", async () => {
  const core = await Core.load({ connCapacity: 16 });
  const mem = core.x.memory,
    size = mem.buffer.byteLength;
  for (const p of [0, 1, 3, size, size + 4, -1, 2 ** 32 - 1, NaN]) assert.is(readWasmString(mem, p), null, String(p));
  // a length word that runs past the memory, and an odd one
  const p = core.scratch + 64;
  core.dv.setUint32(p - 4, size, true);
  assert.is(readWasmString(mem, p), null);
  core.dv.setUint32(p - 4, 3, true);
  assert.is(readWasmString(mem, p), null);
  core.dv.setUint32(p - 4, 4, true);
  core.dv.setUint16(p, 0x68, true);
  core.dv.setUint16(p + 2, 0x69, true);
  assert.is(readWasmString(mem, p), "hi");
});

test.run();
