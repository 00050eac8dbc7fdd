// The watcher against a local API server that replays recorded responses (test/fixtures/k8s/watch-script.json):
// a paginated list, a chunked watch from the list's resourceVersion with bookmarks, an ERROR 410 event and an
// HTTP 410 that force a relist, adds, updates and deletes; the tables must converge to the final objects.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { createServer, type ServerResponse } from "node:http";
import { readFileSync } from "node:fs";
import type { AddressInfo } from "node:net";
import { KubeConfig } from "@kubernetes/client-node";
import { KubeWatcher, type SyncUpdate } from "../src/k8s/watch.ts";
import { rs } from "./fixtures/k8s/golden.ts";

type Resp = { expectQuery?: Record<string, string>; body?: unknown; status?: number; events?: unknown[]; hold?: boolean };
const script: Record<string, { list: Resp[]; watch: Resp[] }> = JSON.parse(readFileSync(new URL("./fixtures/k8s/watch-script.json", import.meta.url), "utf8"));

test("list, watch, bookmarks, 410 relist, adds/updates/deletes converge", async () => {
  const queues = Object.fromEntries(Object.entries(script).filter(([k]) => k.startsWith("/")).map(([k, v]) => [k, { list: [...v.list], watch: [...v.watch] }]));
  const requests: string[] = [];
  const problems: string[] = [];
  const open = new Set<ServerResponse>();
  const server = createServer((req, res) => {
    const url = new URL(req.url!, "http://x");
    requests.push(`${url.pathname}?${url.searchParams}`);
    const q = queues[url.pathname];
    const isWatch = url.searchParams.get("watch") === "true";
    const next = q?.[isWatch ? "watch" : "list"].shift();
    if (!next) { res.writeHead(isWatch ? 200 : 404, { "Content-Type": "application/json" }); if (isWatch) { open.add(res); return; } res.end("{}"); return; }
    for (const [k, v] of Object.entries(next.expectQuery ?? {})) if (url.searchParams.get(k) !== v) problems.push(`${url.pathname}: expected ${k}=${v}, got ${url.searchParams.get(k)}`);
    if (!isWatch || next.status) { res.writeHead(next.status ?? 200, { "Content-Type": "application/json" }); res.end(JSON.stringify(next.body)); return; }
    res.writeHead(200, { "Content-Type": "application/json", "Transfer-Encoding": "chunked" });
    const evs = [...(next.events ?? [])];
    const pump = () => {
      const e = evs.shift();
      if (e) { res.write(JSON.stringify(e) + "\n"); setTimeout(pump, 15); return; }
      if (next.hold) open.add(res); else res.end();
    };
    setTimeout(pump, 15);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as AddressInfo).port;
  const kc = new KubeConfig();
  kc.loadFromOptions({ clusters: [{ name: "t", server: `http://127.0.0.1:${port}`, skipTLSVerify: true }], users: [{ name: "u" }],
    contexts: [{ name: "c", cluster: "t", user: "u" }], currentContext: "c" });
  const updates: SyncUpdate[] = [];
  const errors: string[] = [];
  const w = new KubeWatcher({ kubeconfig: kc, node: { nodeName: "n1", addresses: ["192.0.2.1"] }, families: ["IPv4"], pageSize: 1,
    minSyncPeriodMs: 20, onSync: (u) => updates.push({ ...u, desired: structuredClone(u.desired) }), onError: (e) => errors.push(String(e)) });
  const expected = [
    { protocol: "tcp", addr: "10.0.0.1", port: 443, scheduler: "rr", flags: [], realServers: [] },
    { protocol: "tcp", addr: "10.0.0.1", port: 80, scheduler: "rr", flags: [], realServers: [rs("10.1.0.11", 8080)] },
  ];
  try {
    await w.start();
    // the first sync waits for both kinds: nothing partial
    assert.is(updates[0].reason, "initial");
    assert.equal(updates[0].desired.services.map((s) => `${s.addr}:${s.port} ${s.realServers.map((r) => r.addr).join(",")}`),
      ["10.0.0.1:80 10.1.0.1", "10.0.0.2:80 10.1.0.2"]);
    const deadline = Date.now() + 8000;
    while (Date.now() < deadline && JSON.stringify(w.index.desiredState().services) !== JSON.stringify(expected)) await new Promise((r) => setTimeout(r, 25));
    assert.equal(w.index.desiredState().services, expected);
    await new Promise((r) => setTimeout(r, 100));                        // let the debounced sync fire
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
    for (const k of Object.keys(queues)) { assert.is(queues[k].list.length, 0, `${k}: unused list responses`); assert.is(queues[k].watch.length, 0, `${k}: unused watch responses`); }
  } finally {
    await w.stop();
    for (const r of open) r.end();
    await new Promise((r) => server.close(r));
    server.closeAllConnections?.();
  }
});

test.run();
