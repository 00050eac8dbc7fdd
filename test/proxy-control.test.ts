// The proxy's control socket under bad input (issue 15 item 4) and restores through it (item 5): a real
// proxy in this process on loopback, its real unix socket, raw JSON lines and the ipvsadm CLI.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import * as net from "node:net";
import { spawnSync } from "node:child_process";
import { parseConfig } from "../src/proxy/config.ts";
import { Proxy, applyCommands, type StateCommand } from "../src/proxy/index.ts";
import { ProxyTarget, MAX_REQUEST_CHARS } from "../src/proxy/control.ts";
import { silentLogger } from "../src/proxy/log.ts";
import { runIpvsadm } from "../src/cli/ipvsadm.ts";
import { numericResolver } from "../src/model/names.ts";
import { countingState, restoreLines } from "./helpers/restore-gen.ts";
import { parseRestore } from "../src/model/ipvsadm.ts";
import { guardedBefore } from "./helpers/skip.ts";
import { stringifyInSlices } from "../src/proxy/slice.ts";

const dir = mkdtempSync(`${tmpdir()}/wvp-ctl-`);
const ctl = `${dir}/ctl.sock`;
let p: Proxy;
let backend: net.Server;
let backendPort = 0;

const rs = (addr: string, port: number, weight: unknown = 1) => ({
  addr,
  port,
  weight,
  fwd: "masq",
  upperThreshold: 0,
  lowerThreshold: 0,
});
const svc = (port: number) => ({
  protocol: "tcp",
  addr: "127.0.0.1",
  port,
  scheduler: "rr",
  flags: [],
  realServers: [],
});

guardedBefore(test, async () => {
  backend = net
    .createServer((s) => {
      s.on("data", (d) => s.write(d));
      s.on("error", () => {});
    })
    .listen(0, "127.0.0.1");
  await new Promise((r) => backend.once("listening", r));
  backendPort = (backend.address() as net.AddressInfo).port;
  p = await Proxy.start(parseConfig(`proxy: { control: ${ctl}, vipInterface: null, tick: 100 }\nservices: []\n`), {
    log: silentLogger(),
  });
});
test.after(async () => {
  await p?.stop();
  backend?.close();
  rmSync(dir, { recursive: true, force: true });
});

function freePort(): Promise<number> {
  return new Promise((res) => {
    const s = net.createServer().listen(0, "127.0.0.1", () => {
      const n = (s.address() as net.AddressInfo).port;
      s.close(() => res(n));
    });
  });
}

/** Sends raw lines on a fresh connection; resolves with the answers (one per line) or what came before close. */
function raw(lines: string[], ms = 5000): Promise<any[]> {
  return new Promise((res, rej) => {
    const s = net.connect(ctl);
    let buf = "";
    const out: any[] = [];
    const timer = setTimeout(() => {
      s.destroy();
      rej(new Error(`no answer within ${ms} ms (got ${out.length} of ${lines.length})`));
    }, ms);
    s.setEncoding("utf8");
    s.on("data", (d: string) => {
      buf += d;
      let nl: number;
      while ((nl = buf.indexOf("\n")) >= 0) {
        out.push(JSON.parse(buf.slice(0, nl)));
        buf = buf.slice(nl + 1);
      }
      if (out.length === lines.length) {
        clearTimeout(timer);
        s.end();
        res(out);
      }
    });
    s.on("close", () => {
      clearTimeout(timer);
      res(out);
    });
    s.on("error", () => {});
    s.write(lines.map((l) => l + "\n").join(""));
  });
}
const ask = async (req: unknown) => (await raw([JSON.stringify(req)]))[0];

const prototypeNamesRefused =
  "prototype names are no operations: constructor, toString, __proto__ answer at once, nothing serialised";
test(prototypeNamesRefused, async () => {
  const rss = process.memoryUsage().rss;
  for (const op of [
    "constructor",
    "toString",
    "__proto__",
    "hasOwnProperty",
    "valueOf",
    "__defineGetter__",
    "isPrototypeOf",
  ]) {
    const t0 = Date.now();
    const a = await ask({ id: 1, op });
    assert.is(a.ok, false, op);
    assert.match(a.error, /unknown operation/, op);
    assert.ok(Date.now() - t0 < 2000, `${op} answered in ${Date.now() - t0} ms`);
  }
  assert.ok(process.memoryUsage().rss - rss < 200 << 20, "no growth from serialising the proxy");
  assert.is((await ask({ id: 2, op: "info" })).ok, true, "still answering");
});

test("every field of every request is checked, with errors naming the field; nothing changes", async () => {
  const before = JSON.stringify(p.desired);
  const port1 = await freePort();
  const t = await ask({ id: 1, op: "setTimeouts", args: [{ tcp: -1, tcpfin: "x", udp: 1e20 }] });
  assert.is(t.ok, false);
  assert.match(t.error, /args\[0\]\.tcpfin: must be an integer, not the string "x"/);
  const t2 = await ask({ id: 1, op: "setTimeouts", args: [{ tcp: -1, tcpfin: 5, udp: 1e9 }] });
  assert.match(t2.error, /args\[0\]\.tcp: timeout -1 must be 0\.\.2678400/);
  assert.match(t2.error, /args\[0\]\.udp: timeout 1000000000 must be 0\.\.2678400/);
  assert.is((await ask({ id: 1, op: "addService", args: [svc(port1)] })).ok, true);
  const w = await ask({ id: 1, op: "addRealServer", args: [svc(port1), rs("127.0.0.1", backendPort, "abc")] });
  assert.match(w.error, /args\[1\]\.weight: must be an integer, not the string "abc"/);
  const cases: [unknown, RegExp][] = [
    [{ op: "addService", args: [{ ...svc(40002), __proto__x: 1 }] }, /args\[0\]\.__proto__x: unknown field/],
    [
      {
        op: "addService",
        args: [JSON.parse(`{"__proto__":{"scheduler":"rr"},"protocol":"tcp","addr":"127.0.0.1","port":40003}`)],
      },
      /args\[0\]\.__proto__: unknown field/,
    ],
    [
      { op: "addService", args: [{ ...svc(40004), scheduler: "constructor" }] },
      /args\[0\]\.scheduler: unknown scheduler 'constructor'/,
    ],
    [
      { op: "addService", args: [{ ...svc(40005), port: 99999 }] },
      /args\[0\]\.port: port 99999 must be an integer 0\.\.65535/,
    ],
    [
      { op: "addService", args: [{ ...svc(40006), addr: "toString" }] },
      /args\[0\]\.addr: 'toString' is not an IPv4 or IPv6 address/,
    ],
    [
      { op: "addService", args: [{ ...svc(40007), flags: "ops" }] },
      /args\[0\]\.flags: must be a list of at most 16 strings/,
    ],
    [{ op: "addService", args: [svc(40008), "extra"] }, /takes 1 argument, not 2/],
    [{ op: "addService", args: [null] }, /args\[0\]: must be an object, not null/],
    [{ op: "addService", args: [[1, 2]] }, /args\[0\]: must be an object, not a list/],
    [
      { op: "addService", args: [{ ...svc(40009), addr: "x".repeat(100000) }] },
      /args\[0\]\.addr: must be a string of at most 256/,
    ],
    [
      { op: "addRealServer", args: [svc(port1), rs("224.0.0.5", 80)] },
      /args\[1\]\.addr: '224\.0\.0\.5' is a multicast address/,
    ],
    [
      { op: "addRealServer", args: [svc(port1), { ...rs("127.0.0.1", 80), weight: { $big: "1" } }] },
      /args\[1\]\.weight: must be an integer/,
    ],
    [{ op: "deleteRealServer", args: [svc(port1)] }, /takes 2 arguments, not 1/],
    [{ op: "zero", args: ["all"] }, /args\[0\]: must be an object, not the string "all"/],
    [{ op: "decisions", args: [-5] }, /args\[0\]: must be a count/],
    [{ op: "info", args: {} }, /args: must be a list, not an object/],
    [{ op: "info", extra: 1 }, /unknown request field 'extra'/],
    [{ op: 7 }, /unknown operation number 7/],
    [
      { op: "apply", args: [[{ kind: "constructor" }]] },
      /args\[0\]\[0\]\.kind: the string "constructor" is not one of/,
    ],
    [
      { op: "apply", args: [[{ kind: "add-server", service: svc(port1), server: rs("127.0.0.1", 1, -1) }]] },
      /args\[0\]\[0\]\.server\.weight: weight -1/,
    ],
    [{ op: "apply", args: [[{ kind: "flush", service: svc(1) }]] }, /args\[0\]\[0\]\.service: unknown field for flush/],
    [{ op: "apply", args: ["flush"] }, /args\[0\]: must be a list of at most/],
  ];
  // answers come in the order requests finish: matched by id
  const answers = await raw(cases.map(([req], i) => JSON.stringify({ id: i, ...(req as object) })));
  assert.is(answers.length, cases.length);
  for (const a of answers) {
    assert.is(a.ok, false, JSON.stringify(cases[a.id][0]).slice(0, 80));
    assert.match(a.error, cases[a.id][1]);
  }
  const now = JSON.parse(JSON.stringify(p.desired));
  assert.is(now.services.length, JSON.parse(before).services.length + 1, "only the one good addService applied");
  assert.equal(now.services.at(-1).realServers, []);
  assert.is((await ask({ id: 4, op: "deleteService", args: [svc(port1)] })).ok, true);
});

test("garbage, deep nesting and oversized requests are refused by name; the proxy keeps serving", async () => {
  const answers = await raw([
    "not json",
    "[]",
    "42",
    '"op"',
    "null",
    '{"op":"info","args":' + "[".repeat(100000) + "]".repeat(100000) + "}",
    '{"op":"info","id":{"a":1}}',
    "\u0000\u0001\u00ff",
    '{"op":"info","id":"' + "i".repeat(100) + '"}',
  ]);
  assert.match(answers[0].error, /request is not JSON/);
  assert.match(answers[1].error, /must be an object .* not a list/);
  assert.match(answers[2].error, /must be an object .* not number 42/);
  assert.match(answers[3].error, /not the string "op"/);
  assert.match(answers[4].error, /not null/);
  assert.match(answers[5].error, /nests deeper than 8 levels/);
  assert.match(answers[6].error, /id: must be a number or a string/);
  assert.match(answers[7].error, /request is not JSON/);
  assert.match(answers[8].error, /id: must be a number or a string of at most 64/);
  // one request over the limit: answered with the limit, and that connection closed
  const big = await raw(['{"op":"info","args":["' + "x".repeat(MAX_REQUEST_CHARS + 10) + '"]}'], 30000);
  assert.is(big.length, 1);
  assert.match(big[0].error, new RegExp(`over the limit of ${MAX_REQUEST_CHARS} characters`));
  assert.is((await ask({ id: 9, op: "info" })).ok, true, "a new connection is served");
});

const loadWhileChanging =
  "load while it changes: 400 bad requests between 100 good ones, each good one applied, forwarding on";
test(loadWhileChanging, async () => {
  const port = await freePort();
  assert.is((await ask({ id: 1, op: "addService", args: [svc(port)] })).ok, true);
  assert.is((await ask({ id: 1, op: "addRealServer", args: [svc(port), rs("127.0.0.1", backendPort)] })).ok, true);
  const held = net.connect(port, "127.0.0.1");
  await new Promise((r) => held.once("connect", r));
  const bad = [
    { op: "constructor" },
    { op: "addService", args: [{ ...svc(1), port: "1" }] },
    { op: "setTimeouts", args: [{ tcp: "x" }] },
    { op: "__proto__" },
  ];
  const lines: string[] = [];
  for (let i = 0; i < 100; i++) {
    lines.push(
      JSON.stringify({
        id: `g${i}`,
        op: "addRealServer",
        args: [svc(port), rs(`127.0.${1 + (i >> 6)}.${1 + (i & 63)}`, 9)],
      }),
    );
    for (const b of bad) lines.push(JSON.stringify({ id: `b${i}`, ...b }));
  }
  const [answers, echo] = await Promise.all([
    raw(lines, 60000),
    new Promise<string>((res) => {
      held.once("data", (d) => res(String(d)));
      held.write("ping");
    }),
  ]);
  assert.is(echo, "ping", "an established connection keeps forwarding");
  assert.is(answers.filter((a) => String(a.id).startsWith("g") && a.ok).length, 100, "every good change applied");
  assert.is(answers.filter((a) => String(a.id).startsWith("b") && !a.ok).length, 400, "every bad one refused");
  assert.is(p.desired.services.find((s) => s.port === port)!.realServers.length, 101);
  held.destroy();
  await ask({ id: 1, op: "deleteService", args: [svc(port)] });
});

// issue 15 item 5: each -R line cloned and re-applied the whole state (4,000 lines 43 s)
test("-R --target proxy: one transaction; a refused last line leaves nothing applied", async () => {
  const t = await ProxyTarget.open(ctl, 60000);
  const sink = () => {
    const o = {
      s: "",
      write(x: string) {
        o.s += x;
        return true;
      },
    };
    return o;
  };
  try {
    const port = await freePort(); // 50 services on 127.77.0.1-50 (loopback, no address to add), one port
    const lines = Array.from(
      { length: 50 },
      (_, i) => `-A -t 127.77.0.${i + 1}:${port} -s rr\n-a -t 127.77.0.${i + 1}:${port} -r 127.0.0.1:${backendPort} -m`,
    ).join("\n");
    let out = sink(),
      err = sink();
    const n = p.desired.services.length;
    // the proxy refuses what the kernel would take: a real server that is its own virtual service (a loop)
    let st = await runIpvsadm(["-R"], t, out, err, {
      resolver: numericResolver,
      stdin: async () => lines + `\n-a -t 127.77.0.1:${port} -r 127.77.0.1:${port} -m\n`,
    });
    assert.is(st, 255, err.s);
    assert.match(err.s, /its own virtual service: connections would loop through the proxy/);
    assert.match(err.s, /-R: the proxy refused lines 1-101 as one transaction: nothing was applied/);
    assert.is(p.desired.services.length, n, "nothing applied");
    out = sink();
    err = sink();
    st = await runIpvsadm(["-R"], t, out, err, { resolver: numericResolver, stdin: async () => lines });
    assert.is(st, 0, err.s);
    assert.is(p.desired.services.length, n + 50);
    const got = await new Promise<string>((res, rej) => {
      const c = net.connect(port, "127.77.0.50", () => c.write("hi"));
      c.on("data", (d) => {
        res(String(d));
        c.destroy();
      }).on("error", rej);
    });
    assert.is(got, "hi", "the restored services forward");
    out = sink();
    err = sink();
    st = await runIpvsadm(["-C"], t, out, err, { resolver: numericResolver });
    assert.is(st, 0);
  } finally {
    await t.close();
  }
});

// issue 15 item 5: a 100k-line restore was one 20 MB line, parsed in one stretch of the event loop
const batchInParts =
  "a large batch comes in parts: a refused part refuses the batch, pipelined parts included; nothing applied";
test(batchInParts, async () => {
  const port = await freePort();
  const cmd = (i: number) => ({ kind: "add-service", service: { ...svc(port), addr: `127.78.${i >> 8}.${i & 255}` } });
  const part = (from: number, n: number) => Array.from({ length: n }, (_, i) => cmd(from + i));
  const bad = part(1000, 1000);
  bad[7] = { kind: "add-service", service: { ...svc(port), scheduler: "__proto__" } } as any;
  const n = p.desired.services.length;
  // sent at once, not waiting for answers: the parts after the refused one, and the apply, are refused too
  const answers = await raw(
    [
      JSON.stringify({ id: 0, op: "applyPart", args: [part(0, 1000)] }),
      JSON.stringify({ id: 1, op: "applyPart", args: [bad] }),
      JSON.stringify({ id: 2, op: "applyPart", args: [part(2000, 1000)] }),
      JSON.stringify({ id: 3, op: "applyPart", args: [[{ kind: "constructor" }]] }),
      JSON.stringify({ id: 4, op: "apply", args: [part(3000, 10)] }),
      // the batch ended with that apply: the next one on the same connection starts afresh
      JSON.stringify({ id: 5, op: "applyPart", args: [part(4000, 5)] }),
      JSON.stringify({ id: 6, op: "apply", args: [part(4005, 5)] }),
    ],
    60000,
  );
  const by = new Map(answers.map((x) => [x.id, x]));
  assert.equal(by.get(0).result, { staged: 1000 });
  assert.match(
    by.get(1).error,
    /args\[0\]\[1007\]\.service\.scheduler: unknown scheduler '__proto__'/,
    "named by its index in the whole batch",
  );
  for (const id of [2, 3, 4])
    assert.match(by.get(id).error, /refused, nothing applied: args\[0\]\[1007\]/, `answer ${id}`);
  assert.equal(by.get(6).result, { applied: 10 });
  assert.is(p.desired.services.length, n + 10, "only the second batch applied");
  // a StepError names the step in the whole batch: a duplicate in the last part
  const t = await ProxyTarget.open(ctl, 60000);
  try {
    const dup = [...part(5000, 2500), cmd(5001)] as StateCommand[];
    const e = await t.apply(dup).then(
      () => undefined,
      (x) => x,
    );
    assert.is(e?.step, 2500, String(e));
    assert.match(String(e), /Service already exists/);
    assert.is(p.desired.services.length, n + 10, "nothing of it applied");
    await t.apply(part(6000, 2500) as StateCommand[]);
    assert.is(p.desired.services.length, n + 2510);
  } finally {
    await t.close();
  }
  assert.is((await ask({ id: 1, op: "flush" })).ok, true);
});

const partsAndBadLines =
  "a batch's parts pipelined with bad lines and other requests: each answered once, the line after a part " +
  "read once that part is staged";
test(partsAndBadLines, async () => {
  const port = await freePort();
  const cmd = (i: number) => ({ kind: "add-service", service: { ...svc(port), addr: `127.80.${i >> 8}.${i & 255}` } });
  const part = (from: number, n: number) => Array.from({ length: n }, (_, i) => cmd(from + i));
  const n = p.desired.services.length;
  const answers = await raw(
    [
      JSON.stringify({ id: 0, op: "applyPart", args: [part(0, 3000)] }), // staged in several slices
      "not json {",
      JSON.stringify({ id: "proto", op: "__proto__", args: [part(3000, 1)] }),
      JSON.stringify({ id: "info", op: "info" }),
      JSON.stringify({ id: 1, op: "applyPart", args: [part(3000, 300)] }),
      JSON.stringify({ id: "type", op: "applyPart", args: "x" }),
      JSON.stringify({ id: "huge", op: "applyPart", args: [{ length: 1e9 }] }),
      JSON.stringify({ id: "extra", op: "applyPart", args: [part(3300, 1)], constructor: 1 }),
      JSON.stringify({ id: 2, op: "apply", args: [part(3300, 10)] }),
    ],
    60000,
  );
  assert.is(answers.length, 9, "every line answered once");
  const at = (id: unknown) => answers.findIndex((x) => x.id === id);
  const by = (id: unknown) => answers[at(id)];
  assert.equal(by(0).result, { staged: 3000 });
  assert.ok(at(0) < at("info"), "the lines after a part are read once it is staged");
  assert.match(answers.find((x) => x.id === null).error, /request is not JSON/);
  assert.match(by("proto").error, /unknown operation the string "__proto__"/);
  assert.is(by("info").ok, true);
  assert.equal(by(1).result, { staged: 3300 });
  assert.match(by("type").error, /args: must be a list, not/);
  assert.match(by("huge").error, /must be a list of at most \d+ commands/);
  assert.match(by("extra").error, /unknown request field 'constructor'/);
  assert.equal(by(2).result, { applied: 3310 }, "the bad lines between the parts did not touch the batch");
  assert.is(p.desired.services.length, n + 3310);
  assert.is((await ask({ id: 1, op: "flush" })).ok, true);
});

// The control connection's answers, one JSON line each: answer(k) waits for the k-th (from 1).
function answersOn(sock: net.Socket): (k: number) => Promise<any> {
  sock.setEncoding("utf8");
  const answers: any[] = [];
  let buf = "";
  let wake = () => {};
  sock.on("data", (d: string) => {
    buf += d;
    let nl: number;
    while ((nl = buf.indexOf("\n")) >= 0) {
      answers.push(JSON.parse(buf.slice(0, nl)));
      buf = buf.slice(nl + 1);
    }
    wake();
  });
  return async (k) => {
    while (answers.length < k) await new Promise<void>((r) => (wake = r));
    return answers[k - 1];
  };
}

// Parts are applied to the batch's next state as they come (their commands are not kept), so a batch is
// checked against the table it began from: a change from elsewhere before its apply refuses it whole.
test("a batch whose table changed before its apply is refused whole; a pipelined one is not", async () => {
  const port = await freePort();
  const cmd = (i: number) => ({ kind: "add-service", service: { ...svc(port), addr: `127.79.0.${i}` } });
  const n = p.desired.services.length;
  const s = net.connect(ctl);
  const answer = answersOn(s);
  try {
    s.write(`${JSON.stringify({ id: 0, op: "applyPart", args: [[cmd(1), cmd(2)]] })}\n`);
    assert.equal((await answer(1)).result, { staged: 2 });
    assert.is((await ask({ id: 9, op: "addService", args: [{ ...svc(port), addr: "127.79.0.9" }] })).ok, true);
    s.write(`${JSON.stringify({ id: 1, op: "apply", args: [[cmd(3)]] })}\n`);
    assert.match((await answer(2)).error, /refused, nothing applied: the proxy's table changed while the batch came/);
    assert.is(p.desired.services.length, n + 1, "only the other connection's service");
    // two batches pipelined on one connection: the second begins from the first's result
    s.write(
      [
        { id: 2, op: "applyPart", args: [[cmd(4)]] },
        { id: 3, op: "apply", args: [[cmd(5)]] },
        { id: 4, op: "applyPart", args: [[cmd(6)]] },
        { id: 5, op: "apply", args: [[{ kind: "delete-service", service: cmd(4).service }]] },
      ]
        .map((x) => `${JSON.stringify(x)}\n`)
        .join(""),
    );
    assert.equal((await answer(4)).result, { applied: 2 });
    assert.equal((await answer(6)).result, { applied: 2 });
    assert.equal(
      p.desired.services.map((x) => x.addr).filter((a) => a?.startsWith("127.79.")),
      ["127.79.0.9", "127.79.0.5", "127.79.0.6"],
    );
  } finally {
    s.destroy();
  }
  assert.is((await ask({ id: 1, op: "flush" })).ok, true);
});

test(
  "applyPart: bad parts by name; a batch over the limit is refused and dropped; a closed connection drops " +
    "its part",
  async () => {
    const answers = await raw([
      JSON.stringify({ id: 0, op: "applyPart", args: [] }),
      JSON.stringify({ id: 1, op: "applyPart", args: ["x"] }),
      JSON.stringify({ id: 2, op: "applyPart", args: [{ length: 5 }] }),
      JSON.stringify({ id: 3, op: "applyPart", args: [[null, 7, "flush", []]] }),
    ]);
    const by = new Map(answers.map((x) => [x.id, x]));
    assert.match(by.get(0).error, /takes 1 argument, not 0/);
    assert.match(by.get(1).error, /args\[0\]: must be a list of at most/);
    assert.match(by.get(2).error, /args\[0\]: must be a list of at most/);
    assert.match(by.get(3).error, /args\[0\]\[0\]: must be an object, not null/);
    // 1,048,576 commands at most in a batch, across its parts: the staged commands are dropped when it overflows
    const flush = JSON.stringify({ kind: "flush" });
    const partOf = (n: number) => `[${Array(n).fill(flush).join(",")}]`;
    const lines = Array.from({ length: 17 }, (_, i) => `{"id":${i},"op":"applyPart","args":[${partOf(65536)}]}`);
    const over = await raw([...lines, `{"id":99,"op":"apply","args":[[]]}`], 120000);
    const last = new Map(over.map((x) => [x.id, x]));
    assert.equal(last.get(15).result, { staged: 1 << 20 });
    assert.match(last.get(16).error, /refused, nothing applied: a batch of more than 1048576 commands/);
    assert.match(last.get(99).error, /refused, nothing applied/);
    // a part left staged by a connection that closed is not applied by anyone
    const n = p.desired.services.length;
    const port = await freePort();
    await raw([JSON.stringify({ id: 0, op: "applyPart", args: [[{ kind: "add-service", service: svc(port) }]] })]);
    assert.equal((await ask({ id: 1, op: "apply", args: [[]] })).result, { applied: 0 });
    assert.is(p.desired.services.length, n);
  },
);

test("applyCommands: the cost per command does not grow with the table (reads of existing services counted)", () => {
  const cmds = (n: number) =>
    parseRestore(restoreLines(n), { readingStdin: true })
      .commands.map((c) => c.command as StateCommand)
      .map((c) => (c.kind === "add-server" ? { ...c, server: { ...c.server, fwd: "masq" as const } } : c));
  const small = countingState(500),
    large = countingState(500);
  applyCommands(small.state, cmds(1000));
  applyCommands(large.state, cmds(4000));
  assert.is(large.state.services.length, 500 + 800);
  assert.ok(
    large.reads() - small.reads() < 100,
    `reads: ${small.reads()} for 1000 commands, ${large.reads()} for 4000`,
  );
});

test("a listing written in slices parses to what one JSON.stringify gives, whatever its shape", async () => {
  const replacer = (_k: string, v: unknown) => (typeof v === "bigint" ? { $big: v.toString() } : v);
  const many = Array.from({ length: 1000 }, (_, k) => ({ addr: `10.0.${k >> 8}.${k & 255}`, conns: BigInt(k) }));
  const shapes: object[][] = [
    [],
    [{}],
    [{ realServers: [] }],
    [{ realServers: many }],
    [{ a: 1, realServers: many.slice(0, 17), z: 'x\n"}' }, { b: null }, { realServers: "not an array" }],
    [{ realServers: [1, "two", null, { three: 3n }, [4]] }, { __proto__: { hidden: 1 }, own: 1 } as object],
    Array.from({ length: 300 }, (_, k) => ({ k, realServers: many.slice(0, k % 40) })),
  ];
  for (const list of shapes) {
    const pieces = await stringifyInSlices(list, "realServers", replacer);
    const whole = JSON.stringify(list, replacer);
    assert.equal(JSON.parse(pieces.join("")), JSON.parse(whole), whole.slice(0, 80));
    for (const piece of pieces.slice(0, -1)) assert.ok(piece.length >= 65536, "pieces of about 64 kB");
  }
});

test("seeded random listings: sliced JSON is JSON.stringify's value (WASMVS_LISTING_SEED=N: another)", async () => {
  const seed = Number(process.env.WASMVS_LISTING_SEED ?? 20261207);
  let x = seed >>> 0 || 1;
  const rnd = (n: number) => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) % n;
  };
  const strings = ["", "a", 'q"uote', "back\\slash", "new\nline", "tab\t", "é✓", "\u0000", "__proto__", "constructor"];
  const value = (depth: number): unknown => {
    switch (rnd(depth > 2 ? 6 : 9)) {
      case 0:
        return rnd(1e6) - 5e5;
      case 1:
        return BigInt(rnd(1e9)) * 1000003n;
      case 2:
        return strings[rnd(strings.length)];
      case 3:
        return rnd(2) === 0;
      case 4:
        return null;
      case 5:
        return rnd(1000) / 7;
      case 6:
        return Array.from({ length: rnd(5) }, () => value(depth + 1));
      default: {
        const o: Record<string, unknown> = {};
        for (let k = rnd(5); k > 0; k--) o[strings[rnd(strings.length)] || "k"] = value(depth + 1);
        return o;
      }
    }
  };
  const replacer = (_k: string, v: unknown) => (typeof v === "bigint" ? { $big: v.toString() } : v);
  const sorted = (v: unknown): unknown =>
    Array.isArray(v)
      ? v.map(sorted)
      : v && typeof v === "object"
        ? Object.fromEntries(
            Object.entries(v)
              .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
              .map(([k, x]) => [k, sorted(x)]),
          )
        : v;
  const canonical = (text: string) => JSON.stringify(sorted(JSON.parse(text)));
  for (let round = 0; round < 200; round++) {
    const list = Array.from({ length: rnd(6) }, () => {
      const el = value(1);
      if (el === null || typeof el !== "object" || Array.isArray(el)) return { v: el };
      const o = el as Record<string, unknown>;
      if (rnd(3) > 0) o.realServers = Array.from({ length: rnd(3) === 0 ? rnd(300) : rnd(20) }, () => value(1));
      return o;
    });
    const pieces = await stringifyInSlices(list, "realServers", replacer);
    const whole = JSON.stringify(list, replacer);
    // compared as text with keys sorted (realServers moves last; a "constructor" key defeats a deep equal)
    assert.is(canonical(pieces.join("")), canonical(whole), `seed ${seed} round ${round}: ${whole.slice(0, 100)}`);
  }
});

test("-Ln of a large service in pieces: pipelined replies stay whole lines; a reader gone harms none", async () => {
  const port = await freePort();
  assert.is((await ask({ id: 1, op: "addService", args: [svc(port)] })).ok, true);
  const cmds = Array.from({ length: 3000 }, (_, i) => ({
    kind: "add-server",
    service: svc(port),
    server: rs(`10.77.${i >> 8}.${i & 255}`, 8080),
  }));
  const t = await ProxyTarget.open(ctl, 60000);
  await t.client.call("apply", cmds);
  t.client.close();
  // a listing, then others on the same connection: every reply a whole JSON line, in its request's id
  const answers = await raw(
    [
      JSON.stringify({ id: "l1", op: "services" }),
      JSON.stringify({ id: "i1", op: "info" }),
      JSON.stringify({ id: "bad", op: "constructor" }),
      JSON.stringify({ id: "l2", op: "services" }),
    ],
    60000,
  );
  assert.equal(answers.map((a) => a.id).sort(), ["bad", "i1", "l1", "l2"]);
  for (const id of ["l1", "l2"]) {
    const a = answers.find((x) => x.id === id);
    assert.is(a.ok, true);
    assert.is(a.result.find((x: { port: number }) => x.port === port).realServers.length, 3000, id);
  }
  assert.is(answers.find((a) => a.id === "bad").ok, false);
  // readers that leave before the reply is read: the proxy goes on answering
  for (let k = 0; k < 5; k++) {
    const s = net.connect(ctl);
    s.on("error", () => {});
    s.write(`${JSON.stringify({ id: k, op: "services" })}\n`);
    await new Promise((r) => setTimeout(r, 5 * k));
    s.destroy();
  }
  const again = await ask({ id: "after", op: "services" });
  assert.is(again.result.find((x: { port: number }) => x.port === port).realServers.length, 3000);
  await ask({ id: 1, op: "deleteService", args: [svc(port)] });
});

test("-Lnc in pieces lists every entry of a large table, as the one-piece listing does", async () => {
  const port = await freePort();
  assert.is((await ask({ id: 1, op: "addService", args: [svc(port)] })).ok, true);
  assert.is((await ask({ id: 1, op: "addRealServer", args: [svc(port), rs("127.0.0.1", backendPort)] })).ok, true);
  // entries straight into the core (SYNs it schedules; no socket behind them): 20,000, over many slices
  for (let k = 0; k < 20000; k++)
    p.core.packet("in", "tcp", `10.66.${k >> 8}.${k & 255}`, 1024 + k, "127.0.0.1", port, { flags: 0x02 });
  const [a] = await raw([JSON.stringify({ id: "c", op: "connections" })], 60000);
  const direct = p.connections();
  assert.is(a.ok, true);
  type Entry = { virtual: { port: number }; expiresMs: number };
  const mine = (list: Entry[]) => list.filter((c) => c.virtual.port === port);
  const strip = (list: Entry[]) => list.map(({ expiresMs: _e, ...rest }) => rest);
  assert.is(mine(a.result).length, 20000);
  assert.equal(strip(mine(a.result)), strip(mine(direct)), "every field but the expiry, in the same order");
  await ask({ id: 1, op: "deleteService", args: [svc(port)] });
});

test("bench/listing.ts: the CLI lists every real server of a proxy; bad options: the usage, exit 2", () => {
  const run = (args: string[]) =>
    spawnSync(process.execPath, ["--import", "tsx", "bench/listing.ts", ...args], {
      encoding: "utf8",
      timeout: 120_000,
    });
  const ok = run(["--services=3", "--dests=700", "--rounds=2"]);
  assert.is(ok.status, 0, ok.stderr.slice(0, 400));
  const out = JSON.parse(ok.stdout.trim().split("\n").at(-1) ?? "{}");
  assert.equal([out.services, out.dests, out.rounds.length], [3, 700, 2]);
  for (const r of out.rounds) assert.is(r.lines, 2100, "every real server listed by the CLI, once");
  for (const bad of [
    ["--bogus"],
    ["--dests=abc"],
    ["--dests=0"],
    ["--dests=1e5"],
    ["--services=__proto__"],
    ["--__proto__=1"],
    ["--constructor=1"],
    ["--services=1000", "--dests=1000"],
    ["--conns=0"],
    ["--conns=2000000"],
    ["--conns=-5"],
  ]) {
    const r = run(bad);
    assert.is(r.status, 2, `${bad.join(" ")}: exit ${r.status}, ${r.stderr.slice(0, 200)}`);
    assert.match(r.stderr, /usage: node --import tsx bench\/listing\.ts/, bad.join(" "));
  }
});

// issue 15 round 5: a large batch is parsed, checked and staged in a worker thread at nice 19; the proxy's
// table changes only once the whole batch is checked, and a worker that dies mid-batch leaves it unchanged
const throughWorker =
  "a large batch through the batch worker: at nice 19, the same answers; a worker that dies mid-batch " +
  "refuses it, nothing applied";
// add-service commands for a batch: service i on its own address, parts of n from a given i
function batchCommands(port: number) {
  const cmd = (i: number) => ({ kind: "add-service", service: { ...svc(port), addr: `127.81.${i >> 8}.${i & 255}` } });
  return { cmd, part: (from: number, n: number) => Array.from({ length: n }, (_, i) => cmd(from + i)) };
}
test(throughWorker, async () => {
  const port = await freePort();
  const { cmd, part } = batchCommands(port);
  const w = p.control!.worker;
  const n = p.desired.services.length;
  // parts over OFFLOAD_CHARS go to the worker; a small "apply" ends the batch there too
  const ok = await raw(
    [
      JSON.stringify({ id: 0, op: "applyPart", args: [part(0, 300)] }),
      JSON.stringify({ id: "info", op: "info" }),
      JSON.stringify({ id: 1, op: "apply", args: [part(300, 2)] }),
    ],
    60000,
  );
  assert.equal(
    ok.map((x) => x.result ?? x.error).filter((x) => !x?.version),
    [{ staged: 300 }, { applied: 302 }],
  );
  assert.ok(w.started >= 1, "the worker ran it");
  assert.is(p.desired.services.length, n + 302);
  // its thread runs at nice 19, the main thread as it was
  const { readdirSync, readFileSync } = await import("node:fs");
  const nices = readdirSync("/proc/self/task").map((t) => {
    const stat = readFileSync(`/proc/self/task/${t}/stat`, "utf8");
    return Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[16]);
  });
  assert.ok(nices.includes(19), `a thread at nice 19 (${nices.join(",")})`);
  assert.is(nices[0], 0, "the main thread's priority is unchanged");
  // the same refusals, named the same way, as on the main thread: a hostile command in a large part
  const bad = part(400, 300);
  bad[5] = { kind: "add-service", service: { ...svc(port), __proto__: { x: 1 }, scheduler: "constructor" } } as any;
  const refused = await raw(
    [
      JSON.stringify({ id: 0, op: "applyPart", args: [part(1000, 300)] }),
      JSON.stringify({ id: 1, op: "applyPart", args: [bad] }),
      JSON.stringify({ id: 2, op: "apply", args: [[]] }),
    ],
    60000,
  );
  assert.equal(refused[0].result, { staged: 300 });
  assert.match(refused[1].error, /args\[0\]\[305\]\.service\.scheduler: unknown scheduler 'constructor'/);
  assert.match(refused[2].error, /refused, nothing applied: args\[0\]\[305\]/);
  assert.is(p.desired.services.length, n + 302);
  // a duplicate found by the worker's next state: a StepError with its step in the whole batch
  const dup = await raw([JSON.stringify({ id: 0, op: "apply", args: [[...part(2000, 300), cmd(2000)]] })], 60000);
  assert.is(dup[0].step, 300);
  assert.match(dup[0].error, /Service already exists/);
  // a batch staged in the worker whose table changed before its apply (another connection's change, a
  // reload) is refused whole, as a batch staged on the main thread is
  const racing = net.connect(ctl);
  const nth = answersOn(racing);
  try {
    racing.write(`${JSON.stringify({ id: 0, op: "applyPart", args: [part(500, 300)] })}\n`);
    assert.equal((await nth(1)).result, { staged: 300 });
    assert.is((await ask({ id: 9, op: "addService", args: [{ ...svc(port), addr: "127.81.99.1" }] })).ok, true);
    racing.write(`${JSON.stringify({ id: 1, op: "apply", args: [part(800, 300)] })}\n`);
    assert.match((await nth(2)).error, /refused, nothing applied: the proxy's table changed while the batch came/);
    assert.is(p.desired.services.length, n + 303, "only the other connection's service");
    assert.is((await ask({ id: 9, op: "deleteService", args: [{ ...svc(port), addr: "127.81.99.1" }] })).ok, true);
  } finally {
    racing.destroy();
  }
});

test(
  "the batch worker: hostile lines of 16 kB and more answered as on the main thread; a worker killed between " +
    "two parts refuses the batch, nothing applied, and the next batch applies",
  async () => {
    const { part } = batchCommands(await freePort());
    const w = p.control!.worker;
    const n = p.desired.services.length - 302;
    // hostile lines of 16 kB and more go to the worker first: answered as the main thread answers them
    const pad = "x".repeat(20000);
    const withProto = `${JSON.stringify(part(6300, 300)).slice(0, -1)},{"kind":"flush","__proto__":{"x":1}}]`;
    const long = await raw(
      [
        `{"id":"garbage","op":"applyPart","args":[[${pad}`,
        JSON.stringify({ id: "ok", op: "applyPart", args: [part(6000, 300)] }),
        JSON.stringify({ id: "pad", op: "applyPart", args: [[]], pad }),
        JSON.stringify({ id: "ctor", op: "constructor", args: [pad] }),
        `{"id":"protokey","op":"applyPart","args":[${withProto}]}`,
        JSON.stringify({ id: "types", op: "applyPart", args: [[{ kind: "add-service", service: pad }]] }),
        JSON.stringify({ id: "info", op: "info", args: [], pad }),
        JSON.stringify({ id: "deep", op: "apply", args: [[[[[[[[[[pad]]]]]]]]]] }),
        JSON.stringify({ id: "end", op: "apply", args: [[]] }),
      ],
      60000,
    );
    const at = (id: unknown) => long.find((x) => x.id === id);
    assert.is(long.length, 9, "every line answered once");
    assert.match(long.find((x) => x.id === null && /not JSON/.test(x.error))?.error, /request is not JSON/);
    assert.equal(at("ok").result, { staged: 300 });
    assert.match(at("pad").error, /unknown request field 'pad'/);
    assert.match(at("ctor").error, /unknown operation the string "constructor"/);
    // a "__proto__" key in JSON text is an own field: named, the batch refused
    assert.match(at("protokey").error, /^apply: args\[0\]\[600\]\.__proto__: unknown field for flush/);
    assert.match(at("types").error, /refused, nothing applied: args\[0\]\[600\]\.__proto__/);
    assert.match(at("info").error, /unknown request field 'pad'/);
    assert.match(long.find((x) => x.id === null && /nests/.test(x.error))?.error, /nests deeper than 8 levels/);
    assert.match(at("end").error, /refused, nothing applied: args\[0\]\[600\]\.__proto__/);
    assert.is(p.desired.services.length, n + 302, "none of it applied");
    // the worker dies between two parts: the part after it, and the apply, are refused; nothing applied
    const before = JSON.stringify(p.desired);
    const s = net.connect(ctl);
    const answer = answersOn(s);
    try {
      s.write(`${JSON.stringify({ id: 0, op: "applyPart", args: [part(3000, 300)] })}\n`);
      assert.equal((await answer(1)).result, { staged: 300 });
      const started = w.started;
      w.crash();
      s.write(`${JSON.stringify({ id: 1, op: "applyPart", args: [part(3300, 300)] })}\n`);
      const second = await answer(2);
      assert.match(
        second.error,
        /^apply: refused, nothing applied: the batch.s worker thread failed \(.*asked to fail \(a test\).*\); send the/,
        JSON.stringify(second),
      );
      s.write(`${JSON.stringify({ id: 2, op: "apply", args: [part(3600, 300)] })}\n`);
      assert.match((await answer(3)).error, /^apply: refused, nothing applied: the batch's worker thread failed/);
      assert.is(JSON.stringify(p.desired), before, "the table unchanged");
      // the next batch on the same connection starts a new worker, and applies
      s.write(`${JSON.stringify({ id: 3, op: "apply", args: [part(4000, 300)] })}\n`);
      assert.equal((await answer(4)).result, { applied: 300 });
      assert.is(w.started, started + 1);
      assert.is(p.desired.services.length, n + 602);
    } finally {
      s.destroy();
    }
    assert.is((await ask({ id: 1, op: "flush" })).ok, true);
  },
);

test.run();
