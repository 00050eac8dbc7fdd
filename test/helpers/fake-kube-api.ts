// A minimal Kubernetes API server for tests: lists one Service and one EndpointSlice, holds watches open,
// and can push a MODIFIED EndpointSlice event; writes a kubeconfig pointing at itself. For fault tests it
// can also move the slice without telling the open watches (a silent watch), write raw lines to the slice
// watches (malformed events), fail the next lists with HTTP 500, and it records every request.
import { createServer, type ServerResponse } from "node:http";
import { writeFileSync } from "node:fs";
import type { AddressInfo } from "node:net";

export function endpointSlice(addr: string, port: number, rv: string) {
  return {
    metadata: {
      name: "web-abc",
      namespace: "default",
      resourceVersion: rv,
      labels: { "kubernetes.io/service-name": "web" },
    },
    addressType: "IPv4",
    ports: [{ name: "http", port, protocol: "TCP" }],
    endpoints: [{ addresses: [addr], conditions: { ready: true, serving: true, terminating: false } }],
  };
}

export interface FakeKubeApi {
  /** The slice now has this endpoint: listed from now on, and sent to the open watches unless silent. */
  pushSlice(addr: string, rv: string, o?: { silent?: boolean }): void;
  /** Writes this line (and a newline) to every open EndpointSlice watch (a Buffer: already encoded). */
  pushRaw(line: string | Buffer): void;
  /** The next n list requests (either kind) answer HTTP 500. */
  failLists(n: number): void;
  /** Every request: time (Date.now()), path and query. */
  requests: { at: number; path: string; query: URLSearchParams }[];
  openWatches(): number;
  close(): void;
}

const SLICES = "/apis/discovery.k8s.io/v1/endpointslices";
const NL = Buffer.from("\n");

// Service "web" (ClusterIP vip:vport -> targetPort) with its slice at endpoint addr:targetPort.
export async function startFakeKubeApi(o: {
  vip: string;
  vport: number;
  targetPort: number;
  endpoint: string;
  kubeconfig: string;
}): Promise<FakeKubeApi> {
  const watches = new Map<ServerResponse, string>();
  let slice = endpointSlice(o.endpoint, o.targetPort, "6");
  let listRv = "10",
    failing = 0;
  const requests: FakeKubeApi["requests"] = [];
  const api = createServer((req, res) => {
    const url = new URL(req.url!, "http://x");
    requests.push({ at: Date.now(), path: url.pathname, query: url.searchParams });
    if (url.searchParams.get("watch") === "true") {
      res.writeHead(200, { "Content-Type": "application/json" });
      res.on("error", () => {});
      watches.set(res, url.pathname);
      res.on("close", () => watches.delete(res));
      res.write("");
      return;
    }
    if (failing > 0 && (url.pathname === "/api/v1/services" || url.pathname === SLICES)) {
      failing--;
      res.writeHead(500, { "Content-Type": "application/json" });
      res.end(
        JSON.stringify({ kind: "Status", status: "Failure", message: "etcdserver: request timed out", code: 500 }),
      );
      return;
    }
    res.writeHead(200, { "Content-Type": "application/json" });
    if (url.pathname === "/api/v1/services") {
      res.end(
        JSON.stringify({
          kind: "ServiceList",
          apiVersion: "v1",
          metadata: { resourceVersion: listRv },
          items: [
            {
              metadata: { name: "web", namespace: "default", resourceVersion: "5" },
              spec: {
                type: "ClusterIP",
                clusterIP: o.vip,
                clusterIPs: [o.vip],
                ports: [{ name: "http", port: o.vport, protocol: "TCP", targetPort: o.targetPort }],
              },
            },
          ],
        }),
      );
    } else if (url.pathname === SLICES) {
      res.end(
        JSON.stringify({
          kind: "EndpointSliceList",
          apiVersion: "discovery.k8s.io/v1",
          metadata: { resourceVersion: listRv },
          items: [slice],
        }),
      );
    } else res.end("{}");
  });
  await new Promise<void>((r) => api.listen(0, "127.0.0.1", r));
  writeFileSync(
    o.kubeconfig,
    `apiVersion: v1
kind: Config
clusters:
  - name: t
    cluster: {server: "http://127.0.0.1:${(api.address() as AddressInfo).port}", insecure-skip-tls-verify: true}
users: [{name: u, user: {}}]
contexts: [{name: c, context: {cluster: t, user: u}}]
current-context: c
`,
  );
  const sliceWatches = () => [...watches].filter(([, p]) => p === SLICES).map(([w]) => w);
  return {
    pushSlice(addr, rv, opts = {}) {
      slice = endpointSlice(addr, o.targetPort, rv);
      listRv = rv;
      if (opts.silent) return;
      const ev = { type: "MODIFIED", object: { kind: "EndpointSlice", apiVersion: "discovery.k8s.io/v1", ...slice } };
      for (const w of sliceWatches()) w.write(JSON.stringify(ev) + "\n");
    },
    pushRaw(line) {
      for (const w of sliceWatches()) w.write(typeof line === "string" ? `${line}\n` : Buffer.concat([line, NL]));
    },
    failLists(n) {
      failing = n;
    },
    requests,
    openWatches: () => watches.size,
    close() {
      for (const w of watches.keys()) w.end();
      api.close();
      api.closeAllConnections?.();
    },
  };
}
