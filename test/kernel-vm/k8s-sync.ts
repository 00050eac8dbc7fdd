// Runs inside the VM (test/kernel-k8s-sync.test.ts): a local API server lists one Service and its
// EndpointSlice; `wasmvs sync --kubeconfig` maps them as kube-proxy's IPVS proxier would and programs the
// real kernel; an EndpointSlice update on the watch moves the real server. Prints @@RESULT {json}.
import { createServer, type ServerResponse } from "node:http";
import { spawn, execFileSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import type { AddressInfo } from "node:net";

const slice = (addr: string, rv: string) => ({
  metadata: { name: "web-abc", namespace: "default", resourceVersion: rv, labels: { "kubernetes.io/service-name": "web" } },
  addressType: "IPv4", ports: [{ name: "http", port: 8080, protocol: "TCP" }],
  endpoints: [{ addresses: [addr], conditions: { ready: true, serving: true, terminating: false } }],
});
const watches: ServerResponse[] = [];
const api = createServer((req, res) => {
  const url = new URL(req.url!, "http://x");
  res.writeHead(200, { "Content-Type": "application/json" });
  if (url.searchParams.get("watch") === "true") { res.on("error", () => {}); watches.push(res); res.write(""); return; }
  if (url.pathname === "/api/v1/services") {
    res.end(JSON.stringify({ kind: "ServiceList", apiVersion: "v1", metadata: { resourceVersion: "10" }, items: [{
      metadata: { name: "web", namespace: "default", resourceVersion: "5" },
      spec: { type: "ClusterIP", clusterIP: "10.96.0.10", clusterIPs: ["10.96.0.10"], ports: [{ name: "http", port: 80, protocol: "TCP", targetPort: 8080 }] },
    }] }));
  } else if (url.pathname === "/apis/discovery.k8s.io/v1/endpointslices") {
    res.end(JSON.stringify({ kind: "EndpointSliceList", apiVersion: "discovery.k8s.io/v1", metadata: { resourceVersion: "10" }, items: [slice("10.1.0.5", "6")] }));
  } else res.end("{}");
});
await new Promise<void>((r) => api.listen(0, "127.0.0.1", r));
writeFileSync("/tmp/kc.yaml", `apiVersion: v1
kind: Config
clusters: [{name: t, cluster: {server: "http://127.0.0.1:${(api.address() as AddressInfo).port}", insecure-skip-tls-verify: true}}]
users: [{name: u, user: {}}]
contexts: [{name: c, context: {cluster: t, user: u}}]
current-context: c
`);
const sn = () => execFileSync("ipvsadm", ["-Sn"], { encoding: "utf8" });
async function until(fn: () => boolean, ms: number): Promise<boolean> {
  const end = Date.now() + ms;
  while (Date.now() < end) { if (fn()) return true; await new Promise((r) => setTimeout(r, 250)); }
  return false;
}
const sync = spawn(process.execPath, ["bin/wasmvs.js", "sync", "--kubeconfig", "/tmp/kc.yaml", "--node-name", "n1",
  "--node-ip", "192.0.2.1", "--sync-period", "5"], { stdio: ["ignore", "pipe", "pipe"] });
let log = "";
sync.stdout.on("data", (d) => (log += d));
sync.stderr.on("data", (d) => (log += d));
const result: Record<string, unknown> = {};
result.first = await until(() => sn().includes("-a -t 10.96.0.10:80 -r 10.1.0.5:8080 -m -w 1"), 240_000);   // tsx compiles the CLI first: slow under emulation
result.firstTable = sn();
for (const w of watches) w.write(JSON.stringify({ type: "MODIFIED", object: { kind: "EndpointSlice", apiVersion: "discovery.k8s.io/v1", ...slice("10.1.0.6", "11") } }) + "\n");
result.second = await until(() => { const t = sn(); return t.includes("-r 10.1.0.6:8080 -m -w 1") && !t.includes("10.1.0.5:8080"); }, 90_000);
result.secondTable = sn();
sync.kill("SIGTERM");
result.exit = await new Promise((r) => sync.once("exit", (code) => r(code)));
result.log = log.slice(-2000);
for (const w of watches) w.end();
api.close();
console.log("@@RESULT " + JSON.stringify(result));
process.exit(0);
