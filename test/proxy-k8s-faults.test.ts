// wasmvs proxy --kubeconfig under a malformed watch: the proxy uses the sync's watcher, so one bad event
// (the one that ended `wasmvs sync`) must not end it either. A local API server, a real backend on a
// loopback address, the proxy as a real process: bad events on the watch, then the ClusterIP still answers
// from the same endpoint, and a good event after them still moves it.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { startFakeKubeApi } from "./helpers/fake-kube-api.ts";
import { backend, fetchVip as fetchAt, until } from "./helpers/proxy-k8s.ts";

const VIP = "127.0.0.52",
  VPORT = 18082;
const fetchVip = () => fetchAt(VIP, VPORT);

test("wasmvs proxy --kubeconfig survives malformed watch events, keeps serving, and follows a good one", async () => {
  const dir = mkdtempSync(join(tmpdir(), "wasmvs-k8s-faults-"));
  const kubeconfig = join(dir, "kubeconfig.yaml");
  const api = await startFakeKubeApi({ vip: VIP, vport: VPORT, targetPort: 19092, endpoint: "127.0.0.62", kubeconfig });
  const b1 = await backend("127.0.0.62", 19092, "from 62");
  const b2 = await backend("127.0.0.63", 19092, "from 63");
  const bin = fileURLToPath(new URL("../bin/wasmvs.js", import.meta.url));
  const proxy = spawn(
    process.execPath,
    [
      bin,
      "proxy",
      "run",
      "--kubeconfig",
      kubeconfig,
      "--node-name",
      "n1",
      "--node-ip",
      "192.0.2.10",
      "--control",
      "none",
    ],
    { stdio: ["ignore", "pipe", "pipe"] },
  );
  let log = "",
    exited: number | null | undefined;
  proxy.stdout.on("data", (d) => (log += d));
  proxy.stderr.on("data", (d) => (log += d));
  proxy.once("exit", (code) => (exited = code));
  try {
    await until("the ClusterIP to answer from the first endpoint", async () => (await fetchVip()) === "from 62");
    await until("the slice watch to be open", async () => api.openWatches() >= 2);
    for (const line of [
      JSON.stringify({ type: "ADDED", object: { kind: "EndpointSlice" } }),
      "}{",
      "null",
      JSON.stringify({
        type: "MODIFIED",
        object: { metadata: { name: "web-abc", namespace: "default", resourceVersion: "12" }, addressType: 5 },
      }),
      '{"type":"ADDED","object":{"__proto__":{"metadata":{}}}}',
    ])
      api.pushRaw(line);
    await new Promise((r) => setTimeout(r, 1500));
    assert.is(exited, undefined, `the proxy ended (exit ${exited}) on a malformed event:\n${log.slice(-2000)}`);
    assert.is(await fetchVip(), "from 62", "the last good state still serves");
    api.pushSlice("127.0.0.63", "13");
    await until("new connections to go to the new endpoint", async () => (await fetchVip()) === "from 63");
    assert.match(log, /refused/);
  } catch (e) {
    throw new Error(`${(e as Error).message}\nproxy log:\n${log.slice(-3000)}`);
  } finally {
    const done = new Promise((r) => proxy.once("exit", r));
    if (exited === undefined) proxy.kill("SIGTERM");
    const clean =
      exited !== undefined ||
      (await Promise.race([done.then(() => true), new Promise((r) => setTimeout(() => r(false), 10_000))]));
    if (!clean) proxy.kill("SIGKILL");
    api.close();
    b1.close();
    b2.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
