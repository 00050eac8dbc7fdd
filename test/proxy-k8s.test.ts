// wasmvs proxy --kubeconfig: a local API server lists one Service and its EndpointSlice; the proxy maps
// them as kube-proxy's IPVS proxier would and serves the ClusterIP (a loopback address here, so nothing
// leaves the machine); a real client reaches the real backend through it, and an EndpointSlice update
// arriving on the watch moves new connections to the new endpoint.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { startFakeKubeApi } from "./helpers/fake-kube-api.ts";
import { backend, fetchVip as fetchAt, until } from "./helpers/proxy-k8s.ts";

const VIP = "127.0.0.50",
  VPORT = 18080;
const fetchVip = () => fetchAt(VIP, VPORT);

test("the proxy serves a cluster's Service from a kubeconfig and follows EndpointSlice changes", async () => {
  const dir = mkdtempSync(join(tmpdir(), "wasmvs-k8s-"));
  const kubeconfig = join(dir, "kubeconfig.yaml");
  const api = await startFakeKubeApi({ vip: VIP, vport: VPORT, targetPort: 19090, endpoint: "127.0.0.60", kubeconfig });
  const b1 = await backend("127.0.0.60", 19090, "from 60");
  const b2 = await backend("127.0.0.61", 19090, "from 61");
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
  let log = "";
  proxy.stdout.on("data", (d) => (log += d));
  proxy.stderr.on("data", (d) => (log += d));
  try {
    await until("the ClusterIP to answer from the first endpoint", async () => (await fetchVip()) === "from 60");
    // the EndpointSlice now points at another pod: a MODIFIED event on the open watch
    api.pushSlice("127.0.0.61", "11");
    await until("new connections to go to the new endpoint", async () => (await fetchVip()) === "from 61");
  } catch (e) {
    throw new Error(`${(e as Error).message}\nproxy log:\n${log.slice(-3000)}`);
  } finally {
    const exited = new Promise((r) => proxy.once("exit", r));
    proxy.kill("SIGTERM");
    const clean = await Promise.race([exited.then(() => true), new Promise((r) => setTimeout(() => r(false), 10_000))]);
    if (!clean) proxy.kill("SIGKILL");
    assert.ok(clean, `the proxy exits within 10 s of SIGTERM\n${log.slice(-2000)}`);
    api.close();
    b1.close();
    b2.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
