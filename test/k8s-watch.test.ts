// The watcher against a local API server that replays recorded responses (test/fixtures/k8s/watch-script.json):
// a paginated list, a chunked watch from the list's resourceVersion with bookmarks, an ERROR 410 event and an
// HTTP 410 that force a relist, adds, updates and deletes; the tables must converge to the final objects.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { createServer, type ServerResponse } from "node:http";
import { readFileSync } from "node:fs";
import type { AddressInfo } from "node:net";
import { KubeConfig } from "@kubernetes/client-node";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { KubeWatcher, type SyncUpdate, type WatchOptions } from "../src/k8s/watch.ts";
import { rs } from "./fixtures/k8s/golden.ts";
import { startFakeKubeApi, endpointSlice, type FakeKubeApi } from "./helpers/fake-kube-api.ts";

type Resp = {
  expectQuery?: Record<string, string>;
  body?: unknown;
  status?: number;
  events?: unknown[];
  hold?: boolean;
};
const script: Record<string, { list: Resp[]; watch: Resp[] }> = JSON.parse(
  readFileSync(new URL("./fixtures/k8s/watch-script.json", import.meta.url), "utf8"),
);

type Queues = Record<string, { list: Resp[]; watch: Resp[] }>;

// Answers each request with the next scripted response for its path (list or watch), recording the request
// and any query parameter that differs from the script's; a watch with nothing left is held open.
function scriptedServer(queues: Queues, requests: string[], problems: string[], open: Set<ServerResponse>) {
  return createServer((req, res) => {
    const url = new URL(req.url!, "http://x");
    requests.push(`${url.pathname}?${url.searchParams}`);
    const q = queues[url.pathname];
    const isWatch = url.searchParams.get("watch") === "true";
    const next = q?.[isWatch ? "watch" : "list"].shift();
    if (!next) {
      res.writeHead(isWatch ? 200 : 404, { "Content-Type": "application/json" });
      if (isWatch) {
        open.add(res);
        return;
      }
      res.end("{}");
      return;
    }
    for (const [k, v] of Object.entries(next.expectQuery ?? {}))
      if (url.searchParams.get(k) !== v)
        problems.push(`${url.pathname}: expected ${k}=${v}, got ${url.searchParams.get(k)}`);
    if (!isWatch || next.status) {
      res.writeHead(next.status ?? 200, { "Content-Type": "application/json" });
      res.end(JSON.stringify(next.body));
      return;
    }
    res.writeHead(200, { "Content-Type": "application/json", "Transfer-Encoding": "chunked" });
    const evs = [...(next.events ?? [])];
    const pump = () => {
      const e = evs.shift();
      if (e) {
        res.write(JSON.stringify(e) + "\n");
        setTimeout(pump, 15);
        return;
      }
      if (next.hold) open.add(res);
      else res.end();
    };
    setTimeout(pump, 15);
  });
}

// A kubeconfig for the plain-HTTP server on this port, no credentials.
function localKubeConfig(port: number): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: [{ name: "t", server: `http://127.0.0.1:${port}`, skipTLSVerify: true }],
    users: [{ name: "u" }],
    contexts: [{ name: "c", cluster: "t", user: "u" }],
    currentContext: "c",
  });
  return kc;
}

test("list, watch, bookmarks, 410 relist, adds/updates/deletes converge", async () => {
  const queues = Object.fromEntries(
    Object.entries(script)
      .filter(([k]) => k.startsWith("/"))
      .map(([k, v]) => [k, { list: [...v.list], watch: [...v.watch] }]),
  );
  const requests: string[] = [];
  const problems: string[] = [];
  const open = new Set<ServerResponse>();
  const server = scriptedServer(queues, requests, problems, open);
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as AddressInfo).port;
  const kc = localKubeConfig(port);
  const updates: SyncUpdate[] = [];
  const errors: string[] = [];
  const w = new KubeWatcher({
    kubeconfig: kc,
    node: { nodeName: "n1", addresses: ["192.0.2.1"] },
    families: ["IPv4"],
    pageSize: 1,
    minSyncPeriodMs: 20,
    onSync: (u) => updates.push({ ...u, desired: structuredClone(u.desired) }),
    onError: (e) => errors.push(String(e)),
  });
  const expected = [
    { protocol: "tcp", addr: "10.0.0.1", port: 443, scheduler: "rr", flags: [], realServers: [] },
    { protocol: "tcp", addr: "10.0.0.1", port: 80, scheduler: "rr", flags: [], realServers: [rs("10.1.0.11", 8080)] },
  ];
  try {
    await w.start();
    // the first sync waits for both kinds: nothing partial
    assert.is(updates[0].reason, "initial");
    assert.equal(
      updates[0].desired.services.map((s) => `${s.addr}:${s.port} ${s.realServers.map((r) => r.addr).join(",")}`),
      ["10.0.0.1:80 10.1.0.1", "10.0.0.2:80 10.1.0.2"],
    );
    const deadline = Date.now() + 8000;
    while (Date.now() < deadline && JSON.stringify(w.index.desiredState().services) !== JSON.stringify(expected))
      await new Promise((r) => setTimeout(r, 25));
    assert.equal(w.index.desiredState().services, expected);
    await new Promise((r) => setTimeout(r, 100)); // let the debounced sync fire
    assert.equal(updates.at(-1)!.desired.services, expected);
    assert.ok(updates.length >= 2 && updates.length < 20, `${updates.length} syncs`);
    assert.equal(problems, []);
    assert.equal(errors, []);
    // the requests: paged list, watch from the list's RV with bookmarks, relist after each 410
    const svcReqs = requests.filter((r) => r.startsWith("/api/v1/services"));
    assert.is(svcReqs.filter((r) => !r.includes("watch=true")).length, 3);
    assert.is(svcReqs.filter((r) => r.includes("watch=true")).length, 2);
    const epsReqs = requests.filter((r) => r.startsWith("/apis/discovery.k8s.io"));
    assert.is(epsReqs.filter((r) => !r.includes("watch=true")).length, 2);
    for (const k of Object.keys(queues)) {
      assert.is(queues[k].list.length, 0, `${k}: unused list responses`);
      assert.is(queues[k].watch.length, 0, `${k}: unused watch responses`);
    }
  } finally {
    await w.stop();
    for (const r of open) r.end();
    await new Promise((r) => server.close(r));
    server.closeAllConnections?.();
  }
});

// ---- faults, against test/helpers/fake-kube-api.ts (a real HTTP server, the watcher's real HTTP path) ----

const unhandled: unknown[] = [];
process.on("unhandledRejection", (e) => {
  unhandled.push(e);
});

async function withApi(
  o: Partial<WatchOptions>,
  fn: (api: FakeKubeApi, w: KubeWatcher, errors: string[], notices: string[]) => Promise<void>,
) {
  const dir = mkdtempSync(`${tmpdir()}/wasmvs-watch-`);
  const api = await startFakeKubeApi({
    vip: "10.96.0.10",
    vport: 80,
    targetPort: 8080,
    endpoint: "10.1.0.2",
    kubeconfig: `${dir}/kc.yaml`,
  });
  const errors: string[] = [],
    notices: string[] = [];
  const w = new KubeWatcher({
    kubeconfig: `${dir}/kc.yaml`,
    node: { nodeName: "n1", addresses: ["192.0.2.1"] },
    families: ["IPv4"],
    onSync: () => {},
    onError: (e, what) => errors.push(`${what}: ${(e as Error)?.message ?? e}`),
    onNotice: (m) => notices.push(m),
    ...o,
  });
  try {
    await fn(api, w, errors, notices);
  } finally {
    await w.stop();
    api.close();
    rmSync(dir, { recursive: true, force: true });
  }
}
/** start(), then wait until both kinds' watches are open (start resolves once both are listed). */
async function started(w: KubeWatcher) {
  await w.start();
  await until("both watches to open", () => w.status().every((s) => s.watching), 5000);
}
const endpointsOf = (w: KubeWatcher) =>
  w.index.desiredState().services.flatMap((s) => s.realServers.map((r) => r.addr));
async function until(what: string, fn: () => boolean, ms: number): Promise<number> {
  const t0 = Date.now();
  while (!fn()) {
    if (Date.now() - t0 > ms) assert.unreachable(`${what}: not within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
  return Date.now() - t0;
}

test("a silent watch is noticed: the idle deadline aborts it, a relist follows the slice to 10.1.0.3", async () => {
  await withApi({ idleTimeoutMs: 1500 }, async (api, w, _errors, notices) => {
    await started(w);
    assert.equal(endpointsOf(w), ["10.1.0.2"]);
    const watch = api.requests.find((r) => r.path.endsWith("/endpointslices") && r.query.get("watch") === "true")!;
    assert.is(watch.query.get("allowWatchBookmarks"), "true");
    const t = Number(watch.query.get("timeoutSeconds"));
    assert.ok(t >= 300 && t <= 600, `the server bounds each watch (client-go: 5-10 min): timeoutSeconds=${t}`);
    await new Promise((r) => setTimeout(r, 200));
    api.pushSlice("10.1.0.3", "11", { silent: true }); // the watch stays open and says nothing
    const ms = await until("the index to follow the silent move", () => endpointsOf(w).includes("10.1.0.3"), 5000);
    assert.equal(endpointsOf(w), ["10.1.0.3"]);
    assert.ok(ms <= 1500 + 1500, `followed ${ms} ms after the move, the deadline is 1.5 s`);
    const st = w.status().find((s) => s.kind === "EndpointSlice")!;
    assert.ok(st.idleAborts >= 1 && st.relists >= 2, JSON.stringify(st));
    assert.ok(Date.now() - st.lastRelistAt < 3000);
    assert.match(
      notices.join("\n"),
      /no event and no bookmark for 2 s: aborted, relisting|no event and no bookmark for 1 s/,
    );
  });
});

test("bookmarks keep a quiet watch alive (no relist while they come)", async () => {
  await withApi({ idleTimeoutMs: 800 }, async (api, w) => {
    await started(w);
    const lists0 = api.requests.filter(
      (r) => r.path.endsWith("/endpointslices") && r.query.get("watch") !== "true",
    ).length;
    for (let i = 0; i < 8; i++) {
      api.pushRaw(
        JSON.stringify({
          type: "BOOKMARK",
          object: { kind: "EndpointSlice", metadata: { resourceVersion: String(20 + i) } },
        }),
      );
      await new Promise((r) => setTimeout(r, 300));
    }
    const lists = api.requests.filter(
      (r) => r.path.endsWith("/endpointslices") && r.query.get("watch") !== "true",
    ).length;
    assert.is(lists, lists0, "no relist: the bookmarks arrived within the deadline");
    assert.is(w.status().find((s) => s.kind === "EndpointSlice")!.resourceVersion, "27");
  });
});

// malformed events: each is refused and counted before the index sees it; the last good state stays
const BAD_EVENTS: string[] = [
  JSON.stringify({ type: "ADDED", object: { kind: "EndpointSlice" } }), // the event that ended the process
  JSON.stringify({ type: "ADDED" }),
  JSON.stringify({ type: "MODIFIED", object: null }),
  JSON.stringify({ type: "DELETED", object: [] }),
  JSON.stringify({ type: "ADDED", object: "x" }),
  JSON.stringify({ type: "ADDED", object: 5 }),
  "null",
  "[]",
  '"x"',
  "42",
  "}{",
  "{",
  "garbage \u0000 \ud800",
  JSON.stringify({ type: 7, object: {} }),
  JSON.stringify({ type: "toString", object: {} }),
  JSON.stringify({ type: "constructor" }),
  '{"__proto__": {"type": "ADDED"}, "object": {"kind": "EndpointSlice"}}',
  '{"type": "ADDED", "object": {"__proto__": {"metadata": {"name": "x", "namespace": "y"}}}}',
  JSON.stringify({ type: "ADDED", object: { metadata: { name: "web-abc", namespace: { x: 1 } } } }),
  JSON.stringify({ type: "ADDED", object: { metadata: { name: ["web-abc"], namespace: "default" } } }),
  JSON.stringify({
    type: "ADDED",
    object: { metadata: { name: "web-abc", namespace: "default", resourceVersion: 12 } },
  }),
  JSON.stringify({ type: "ADDED", object: { kind: "Service", metadata: { name: "web-abc", namespace: "default" } } }),
  JSON.stringify({
    type: "MODIFIED",
    object: { ...endpointSlice("10.1.0.2", 8080, "12"), addressType: { toString: 1 } },
  }),
  JSON.stringify({ type: "MODIFIED", object: { ...endpointSlice("10.1.0.2", 8080, "13"), endpoints: "all" } }),
  JSON.stringify({
    type: "MODIFIED",
    object: { ...endpointSlice("10.1.0.2", 8080, "14"), endpoints: [null, 5, { addresses: "10.1.0.9" }] },
  }),
  JSON.stringify({
    type: "MODIFIED",
    object: { ...endpointSlice("10.1.0.2", 8080, "15"), ports: [{ port: "http" }, null] },
  }),
  JSON.stringify({ type: "MODIFIED", object: { ...endpointSlice("not-an-ip", 8080, "16") } }),
  '{"type":"MODIFIED","object":{"metadata":{"name":"web-abc","namespace":"default","resourceVersion":"17","labels":' +
    '{"__proto__":{"kubernetes.io/service-name":"web"}}},"addressType":"IPv4","endpoints":[]}}',
  JSON.stringify({
    type: "ADDED",
    object: { metadata: { name: "__proto__", namespace: "constructor", resourceVersion: "18" } },
  }),
  JSON.stringify({
    type: "ADDED",
    object: {
      metadata: { name: "toString", namespace: "hasOwnProperty", resourceVersion: "19" },
      addressType: "IPv4",
      endpoints: [],
    },
  }),
  // huge: 200k endpoints of garbage, and one 2 MB name
  JSON.stringify({
    type: "MODIFIED",
    object: {
      ...endpointSlice("10.1.0.2", 8080, "20"),
      endpoints: Array.from({ length: 200_000 }, (_, i) => ({ addresses: [i] })),
    },
  }),
  JSON.stringify({
    type: "ADDED",
    object: { metadata: { name: "x".repeat(2 << 20), namespace: "default", resourceVersion: "21" } },
  }),
];

test("malformed watch events are refused and counted; the last good state stays; the watch goes on", async () => {
  await withApi({}, async (api, w, errors) => {
    await started(w);
    const before = unhandled.length;
    for (const line of BAD_EVENTS) api.pushRaw(line);
    await new Promise((r) => setTimeout(r, 1500));
    assert.is(
      unhandled.length,
      before,
      `unhandled rejections: ${unhandled
        .slice(before, before + 3)
        .map(String)
        .join("; ")}`,
    );
    assert.equal(endpointsOf(w), ["10.1.0.2"], "the last good state");
    const st = w.status().find((s) => s.kind === "EndpointSlice")!;
    const refusedHere = Object.values(st.refused).reduce((a, b) => a + b, 0);
    const refusedByIndex = errors.filter((e) => e.startsWith("input:")).length;
    // each bad event is refused once: by the envelope check (counted) or by the index's field checks
    assert.ok(refusedHere >= 20, JSON.stringify(st.refused));
    assert.ok(
      refusedHere + refusedByIndex >= BAD_EVENTS.length,
      `${refusedHere} + ${refusedByIndex} of ${BAD_EVENTS.length}\n${errors.join("\n")}`,
    );
    assert.ok(
      errors.some((e) => /refused \(metadata.name missing/.test(e)),
      errors.slice(0, 5).join("\n"),
    );
    assert.ok(
      errors.every((e) => e.length < 1000),
      "each refusal is logged in one bounded line",
    );
    api.pushSlice("10.1.0.4", "30");
    await until("a good event after the bad ones to apply", () => endpointsOf(w).includes("10.1.0.4"), 5000);
    assert.equal(endpointsOf(w), ["10.1.0.4"]);
  });
});

test("a 15 MB watch line costs the loop one parse, not a search per chunk (before: 5.7-8.3 s)", async () => {
  await withApi({}, async (api, w, errors) => {
    await started(w);
    // one event just under the 16 MiB line cap, refused by the index (its name is too long); it arrives in
    // the socket's 64 kB reads, about 240 of them
    // (encoded before the clock starts: the fake API runs in this process)
    const line = Buffer.from(
      JSON.stringify({
        type: "ADDED",
        object: { metadata: { name: "x".repeat(15 << 20), namespace: "default", resourceVersion: "40" } },
      }),
    );
    let last = performance.now(),
      stall = 0;
    const tick = setInterval(() => {
      const now = performance.now();
      stall = Math.max(stall, now - last);
      last = now;
    }, 1);
    try {
      api.pushRaw(line);
      await until("the 15 MB event to be refused", () => errors.some((e) => /refused/.test(e)), 60_000);
    } finally {
      clearInterval(tick);
    }
    console.log(`  a 15 MB watch line: the loop's longest stall ${stall.toFixed(0)} ms`);
    // joining and parsing 15 MB is 100-500 ms (quiet to a load of 7); a search of the whole line per chunk
    // was 5.7 s at a load of 7
    assert.ok(stall < 2000, `the loop stalled ${stall.toFixed(0)} ms`);
    api.pushSlice("10.1.0.5", "41");
    await until("a good event after it to apply", () => endpointsOf(w).includes("10.1.0.5"), 10_000);
  });
});

// mulberry32
function rng(seed: number) {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
const ODD: unknown[] = [
  null,
  0,
  -1,
  1e308,
  "",
  "x",
  "__proto__",
  "constructor",
  "toString",
  [],
  {},
  [null],
  { __proto__: null },
  true,
  "10.1.0.9",
  "::1",
  65536,
];
function mutateValue(v: unknown, r: () => number, depth = 0): unknown {
  if (r() < 0.15 || depth > 6) return ODD[Math.floor(r() * ODD.length)];
  if (Array.isArray(v)) return r() < 0.2 ? [] : v.map((x) => mutateValue(x, r, depth + 1));
  if (v && typeof v === "object") {
    const o: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) {
      const p = r();
      if (p < 0.08) continue; // field dropped
      o[p < 0.12 ? ["__proto__", "constructor", "toString", "hasOwnProperty"][Math.floor(r() * 4)] : k] = mutateValue(
        x,
        r,
        depth + 1,
      );
    }
    return o;
  }
  return r() < 0.7 ? v : ODD[Math.floor(r() * ODD.length)];
}

test("seeded fuzz of the event path: 3000 mutated events, no crash, a good event then applies", async () => {
  await withApi({}, async (api, w) => {
    await started(w);
    const before = unhandled.length;
    const r = rng(22);
    for (let i = 0; i < 3000; i++) {
      const ev = {
        type: ["ADDED", "MODIFIED", "DELETED", "BOOKMARK", "ERROR", "x"][Math.floor(r() * 6)],
        object: {
          kind: "EndpointSlice",
          apiVersion: "discovery.k8s.io/v1",
          ...endpointSlice(`10.1.${Math.floor(r() * 3)}.${Math.floor(r() * 255)}`, 8080, String(100 + i)),
        },
      };
      let line = JSON.stringify(
        ev.type === "ERROR" ? { type: "ERROR", object: { code: 500, message: "x" } } : mutateValue(ev, r),
      );
      if (r() < 0.05) line = line.slice(0, Math.floor(r() * line.length)); // truncated
      api.pushRaw(line);
      if (i % 200 === 0) await new Promise((res) => setTimeout(res, 10));
    }
    await new Promise((res) => setTimeout(res, 1000));
    assert.is(
      unhandled.length,
      before,
      `unhandled rejections: ${unhandled
        .slice(before, before + 3)
        .map(String)
        .join("; ")}`,
    );
    // (an ERROR event ends the watch and it re-watches, so the good event may need a new watch: wait)
    await until("a watch to be open", () => w.status().find((s) => s.kind === "EndpointSlice")!.watching, 10_000);
    await new Promise((res) => setTimeout(res, 100));
    api.pushSlice("10.1.0.5", "9999");
    await until(
      "the good event to apply",
      () => JSON.stringify(endpointsOf(w)) === JSON.stringify(["10.1.0.5"]),
      10_000,
    );
  });
});

test("list errors back off exponentially with jitter up to a cap, said in the log, then recover", async () => {
  await withApi({ retryBaseMs: 100, retryMaxMs: 800 }, async (api, w, errors) => {
    api.failLists(12); // both kinds' lists answer 500, 6 times each or so
    await w.start();
    assert.equal(endpointsOf(w), ["10.1.0.2"]);
    const lists = api.requests
      .filter((r) => r.path === "/api/v1/services" && r.query.get("watch") !== "true")
      .map((r) => r.at);
    const gaps = lists.slice(1).map((t, i) => t - lists[i]);
    assert.ok(gaps.length >= 4, `${lists.length} lists`);
    // attempt n waits in [d/2, d], d = 100·2^(n-1) capped at 800: 50-100, 100-200, 200-400, 400-800, 400-800
    // (the announced delays are checked exactly; the clock only from below: a loaded machine runs timers late)
    assert.ok(gaps[2] >= 195, `the delays grow: ${gaps.join(", ")} ms`);
    const announced = errors
      .filter((e) => e.startsWith("Service"))
      .map((e) => /retrying in (\d+\.\d) s \(attempt (\d+)/.exec(e))
      .filter(Boolean)
      .map((m) => [Number(m![1]) * 1000, Number(m![2])]);
    assert.ok(announced.length >= 4, errors.join("\n"));
    for (const [ms, n] of announced) {
      const d = Math.min(800, 100 * 2 ** (n - 1));
      assert.ok(ms >= d / 2 - 50 && ms <= d + 50, `attempt ${n}: ${ms} ms announced, want ${d / 2}-${d}`);
    }
    assert.match(errors.join("\n"), /HTTP.*500|500|request timed out/);
    assert.match(errors.join("\n"), /retrying in \d+\.\d s \(attempt 3, backing off exponentially, at most 1 s\)/);
  });
});

test.run();
