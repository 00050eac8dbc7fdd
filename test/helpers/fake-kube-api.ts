// A minimal Kubernetes API server for tests: lists one Service and one EndpointSlice, holds watches open,
// and can push a MODIFIED EndpointSlice event; writes a kubeconfig pointing at itself.
import { createServer, type ServerResponse } from "node:http";
import { writeFileSync } from "node:fs";
import type { AddressInfo } from "node:net";

export function endpointSlice(addr: string, port: number, rv: string) {
  return {
    metadata: { name: "web-abc", namespace: "default", resourceVersion: rv, labels: { "kubernetes.io/service-name": "web" } },
    addressType: "IPv4", ports: [{ name: "http", port, protocol: "TCP" }],
    endpoints: [{ addresses: [addr], conditions: { ready: true, serving: true, terminating: false } }],
  };
}

export interface FakeKubeApi { pushSlice(addr: string, rv: string): void; close(): void }

// Service "web" (ClusterIP vip:vport -> targetPort) with its slice at endpoint addr:targetPort.
export async function startFakeKubeApi(o: { vip: string; vport: number; targetPort: number; endpoint: string; kubeconfig: string }): Promise<FakeKubeApi> {
  const watches: ServerResponse[] = [];
  const api = createServer((req, res) => {
    const url = new URL(req.url!, "http://x");
    res.writeHead(200, { "Content-Type": "application/json" });
    if (url.searchParams.get("watch") === "true") { res.on("error", () => {}); watches.push(res); res.write(""); return; }
    if (url.pathname === "/api/v1/services") {
      res.end(JSON.stringify({ kind: "ServiceList", apiVersion: "v1", metadata: { resourceVersion: "10" }, items: [{
        metadata: { name: "web", namespace: "default", resourceVersion: "5" },
        spec: { type: "ClusterIP", clusterIP: o.vip, clusterIPs: [o.vip], ports: [{ name: "http", port: o.vport, protocol: "TCP", targetPort: o.targetPort }] },
      }] }));
    } else if (url.pathname === "/apis/discovery.k8s.io/v1/endpointslices") {
      res.end(JSON.stringify({ kind: "EndpointSliceList", apiVersion: "discovery.k8s.io/v1", metadata: { resourceVersion: "10" },
        items: [endpointSlice(o.endpoint, o.targetPort, "6")] }));
    } else res.end("{}");
  });
  await new Promise<void>((r) => api.listen(0, "127.0.0.1", r));
  writeFileSync(o.kubeconfig, `apiVersion: v1
kind: Config
clusters: [{name: t, cluster: {server: "http://127.0.0.1:${(api.address() as AddressInfo).port}", insecure-skip-tls-verify: true}}]
users: [{name: u, user: {}}]
contexts: [{name: c, context: {cluster: t, user: u}}]
current-context: c
`);
  return {
    pushSlice(addr, rv) {
      const ev = { type: "MODIFIED", object: { kind: "EndpointSlice", apiVersion: "discovery.k8s.io/v1", ...endpointSlice(addr, o.targetPort, rv) } };
      for (const w of watches) w.write(JSON.stringify(ev) + "\n");
    },
    close() { for (const w of watches) w.end(); api.close(); },
  };
}
