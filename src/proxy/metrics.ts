// Prometheus metrics (prom-client), computed at scrape time from the core's counters and the
// forwarder's: per service and per destination connections, packets and bytes like IPVS's stats, active
// and inactive connections, weights, health and drain state, drops by reason, flow table sizes.
import * as http from "node:http";
import { Registry, Counter, Gauge } from "prom-client";
import type { Proxy } from "./index.ts";
import { SocketForwarder } from "./socket.ts";
import { PacketForwarder, type PacketIoStats } from "./packet.ts";

export function proxyRegistry(p: Proxy): Registry {
  const reg = new Registry();
  const svcL = ["service"], dstL = ["service", "destination"];
  const set = (m: Counter<string> | Gauge<string>, labels: Record<string, string>, v: number) => {
    if (m instanceof Counter) m.inc(labels, v); else m.set(labels, v);
  };
  const counter = (name: string, help: string, labelNames: string[], fill: (emit: (l: Record<string, string>, v: number) => void) => void) => {
    const m: Counter<string> = new Counter({
      name, help, labelNames, registers: [reg],
      collect() { m.reset(); fill((l, v) => { if (v > 0) set(m, l, v); }); },
    });
  };
  const gauge = (name: string, help: string, labelNames: string[], fill: (emit: (l: Record<string, string>, v: number) => void) => void) => {
    const m: Gauge<string> = new Gauge({ name, help, labelNames, registers: [reg], collect() { m.reset(); fill((l, v) => set(m, l, v)); } });
  };
  const svcs = () => p.services();
  counter("wasmvs_proxy_service_connections_total", "Connections scheduled by a virtual service (IPVS Conns)", svcL,
    (e) => { for (const s of svcs()) e({ service: s.key }, Number(s.status.stats.conns)); });
  for (const dir of ["in", "out"] as const) {
    counter(`wasmvs_proxy_service_${dir}_packets_total`, `Reads forwarded ${dir === "in" ? "client to backend" : "backend to client"} (socket mode: one read is one packet)`, svcL,
      (e) => { for (const s of svcs()) e({ service: s.key }, Number(dir === "in" ? s.status.stats.inPkts : s.status.stats.outPkts)); });
    counter(`wasmvs_proxy_service_${dir}_bytes_total`, `Bytes forwarded ${dir === "in" ? "client to backend" : "backend to client"}`, svcL,
      (e) => { for (const s of svcs()) e({ service: s.key }, Number(dir === "in" ? s.status.stats.inBytes : s.status.stats.outBytes)); });
    counter(`wasmvs_proxy_destination_${dir}_packets_total`, `Reads forwarded ${dir} per destination`, dstL,
      (e) => { for (const s of svcs()) for (const d of s.dests) e({ service: s.key, destination: d.key }, Number(dir === "in" ? d.status.stats.inPkts : d.status.stats.outPkts)); });
    counter(`wasmvs_proxy_destination_${dir}_bytes_total`, `Bytes forwarded ${dir} per destination`, dstL,
      (e) => { for (const s of svcs()) for (const d of s.dests) e({ service: s.key, destination: d.key }, Number(dir === "in" ? d.status.stats.inBytes : d.status.stats.outBytes)); });
  }
  counter("wasmvs_proxy_destination_connections_total", "Connections scheduled to a destination (IPVS Conns)", dstL,
    (e) => { for (const s of svcs()) for (const d of s.dests) e({ service: s.key, destination: d.key }, Number(d.status.stats.conns)); });
  gauge("wasmvs_proxy_destination_active_connections", "IPVS ActiveConn", dstL,
    (e) => { for (const s of svcs()) for (const d of s.dests) e({ service: s.key, destination: d.key }, d.status.activeConns); });
  gauge("wasmvs_proxy_destination_inactive_connections", "IPVS InActConn", dstL,
    (e) => { for (const s of svcs()) for (const d of s.dests) e({ service: s.key, destination: d.key }, d.status.inactConns); });
  gauge("wasmvs_proxy_destination_persistent_connections", "IPVS PersistConn (templates)", dstL,
    (e) => { for (const s of svcs()) for (const d of s.dests) e({ service: s.key, destination: d.key }, d.status.persistConns); });
  gauge("wasmvs_proxy_destination_weight", "Effective weight in the core (0: quiesced or draining)", dstL,
    (e) => { for (const s of svcs()) for (const d of s.dests) e({ service: s.key, destination: d.key }, d.status.weight); });
  gauge("wasmvs_proxy_destination_configured_weight", "Configured weight", dstL,
    (e) => { for (const s of svcs()) for (const d of s.dests) e({ service: s.key, destination: d.key }, d.configuredWeight); });
  gauge("wasmvs_proxy_destination_healthy", "1 when the health check passes (or there is none)", dstL,
    (e) => { for (const s of svcs()) for (const d of s.dests) e({ service: s.key, destination: d.key }, d.healthy ? 1 : 0); });
  gauge("wasmvs_proxy_destination_draining", "1 when the destination takes no new flows (weight 0, down or removed) but still has flows", dstL,
    (e) => { for (const s of svcs()) for (const d of s.dests) e({ service: s.key, destination: d.key }, d.draining ? 1 : 0); });
  gauge("wasmvs_proxy_destination_open_flows", "TCP connections and UDP flows open now", dstL,
    (e) => { for (const s of svcs()) for (const d of s.dests) e({ service: s.key, destination: d.key }, d.flows); });
  counter("wasmvs_proxy_drops_total", "Connections or datagrams refused, by reason", ["reason"],
    (e) => { for (const [r, n] of p.fw.drops) e({ reason: r }, n); });
  const fw = p.fw;
  if (fw instanceof SocketForwarder) {
    gauge("wasmvs_proxy_udp_flows", "UDP flows in the bounded table", [], (e) => e({}, fw.udpCount));
    gauge("wasmvs_proxy_udp_flows_max", "Size of the UDP flow table", [], (e) => e({}, p.cfg.options.udpFlows));
    gauge("wasmvs_proxy_tcp_connections", "Proxied TCP connections open now", [], (e) => e({}, fw.tcp.size));
  } else if (fw instanceof PacketForwarder) {
    const io = (k: keyof PacketIoStats) => (e: (l: Record<string, string>, v: number) => void) => e({}, fw.ioStats()[k]);
    counter("wasmvs_proxy_packet_received_total", "Packets received from the interfaces and run through the core", [], io("rxPackets"));
    counter("wasmvs_proxy_packet_sent_total", "Packets the core forwarded, handed to the kernel", [], io("txPackets"));
    counter("wasmvs_proxy_packet_checksum_completed_total", "Packets whose sender left the L4 checksum to offload, completed before rewriting", [], io("rxCsumCompleted"));
    counter("wasmvs_proxy_packet_batches_total", "Batches run through the core", [], (e) => e({}, fw.timing.batches));
  }
  gauge("wasmvs_proxy_conn_table_entries", "Entries in the core's connection table (with templates)", [], (e) => e({}, p.core.connStats().live));
  gauge("wasmvs_proxy_conn_table_capacity", "Capacity of the core's connection table", [], (e) => e({}, p.core.connStats().capacity));
  return reg;
}

export function startMetricsServer(p: Proxy, hostPort: string): Promise<http.Server> {
  const reg = proxyRegistry(p);
  const m = hostPort.match(/^\[?(.*?)\]?:(\d+)$/)!;
  const server = http.createServer(async (req, res) => {
    if (req.url === "/metrics") {
      try { res.writeHead(200, { "content-type": reg.contentType }); res.end(await reg.metrics()); }
      catch (e) { res.writeHead(500); res.end(String(e)); }
    } else if (req.url === "/healthz") { res.writeHead(200); res.end("ok\n"); }
    else { res.writeHead(404); res.end(); }
  });
  return new Promise((res, rej) => { server.once("error", rej); server.listen(Number(m[2]), m[1], () => res(server)); });
}
