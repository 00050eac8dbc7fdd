// Prometheus metrics, computed at scrape time from the core's counters and the forwarder's: per service and
// per destination connections, packets and bytes like IPVS's stats, active and inactive connections,
// weights, health and drain state, drops by reason, flow table sizes.
//
// A scrape must not stall forwarding, and at 10k services x 10 destinations it is ~100k series per family:
// the tables are read in one pass (one core.service() per service, a map for the configured specs), the
// text is built family by family from that snapshot, and the work is cut into slices that yield to the
// event loop, so connections are served between slices. Scrapes run one at a time; concurrent requests
// share the one in progress.
import * as http from "node:http";
import type { Proxy } from "./index.ts";
import { destKey } from "./tables.ts";
import { SocketForwarder } from "./socket.ts";
import type { PumpWorkers } from "./workers.ts";
import { PacketForwarder } from "./packet.ts";
import { serviceKey, realServerKey, type RealServer, type VirtualService } from "../model/types.ts";
import type { DestStats } from "./forwarder.ts";
import { formatAddr } from "../core/addr.ts";
import { LAYOUT } from "../core/index.ts";
import { syncMetricsText } from "./sync.ts";

const CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8";
// longest stretch of scrape work between two yields to the event loop: a new connection takes several turns
// of the loop (accept, schedule and connect, connected), each of which may wait behind one stretch
const SLICE_MS = 1;

const yieldLoop = () => new Promise<void>((r) => setImmediate(r));

// Runs fn over 0..n-1, yielding to the event loop whenever a slice has run SLICE_MS.
async function sliced(n: number, fn: (i: number) => void): Promise<void> {
  let t = performance.now();
  for (let i = 0; i < n; i++) {
    fn(i);
    if ((i & 15) === 15 && performance.now() - t > SLICE_MS) {
      await yieldLoop();
      t = performance.now();
    }
  }
}

const esc = (s: string) => s.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n");

// One scrape's snapshot: a row per service and per destination, values in columns.
interface Snapshot {
  svcLabels: string[];
  svc: Record<string, number[]>;
  dstLabels: string[];
  dst: Record<string, number[]>;
  omitted: number; // destinations whose series were left out (over MAX_DEST_SERIES)
}

const SVC_COLS = ["conns", "inPkts", "outPkts", "inBytes", "outBytes"] as const;
const DST_COLS = [
  "conns",
  "inPkts",
  "outPkts",
  "inBytes",
  "outBytes",
  "active",
  "inact",
  "persist",
  "weight",
  "configured",
  "healthy",
  "draining",
  "flows",
] as const;

// What a destination's label and keys are, cached by the core's destination id; checked against the id's
// service, address and port on every scrape (an id is reused after a delete).
interface DestLabel {
  svcId: number;
  a0: number;
  a1: number;
  a2: number;
  a3: number;
  port: number;
  rk: string;
  key: string;
  label: string;
}
const destLabels = new Map<number, DestLabel>();
const svcLabels = new Map<string, string>();
// A configured service's real servers by key, and their destination keys, once per spec object (the
// desired state is replaced, not edited, on a change, so a new object means new servers).
interface SpecIndex {
  byRk: Map<string, RealServer>;
  keys: { rk: string; key: string; r: RealServer }[];
}
const specIndex = new WeakMap<VirtualService, SpecIndex>();
function indexOf(svcKey: string, spec: VirtualService): SpecIndex {
  let x = specIndex.get(spec);
  if (!x) {
    x = { byRk: new Map(), keys: [] };
    for (const r of spec.realServers) {
      const rk = realServerKey(r);
      x.byRk.set(rk, r);
      x.keys.push({ rk, key: destKey(svcKey, r), r });
    }
    specIndex.set(spec, x);
  }
  return x;
}

// The configured services by key, once per desired state (a change replaces the array).
const specMaps = new WeakMap<VirtualService[], Map<string, VirtualService>>();
function specsOf(services: VirtualService[]): Map<string, VirtualService> {
  let m = specMaps.get(services);
  if (!m) specMaps.set(services, (m = new Map(services.map((v) => [serviceKey(v), v]))));
  return m;
}

/** Per-destination series are written while the destinations number at most this; above it only the
 * per-service series are (summed over the destinations), and wasmvs_proxy_metrics_destinations_omitted
 * says how many were left out: at 10k services x 10 the per-destination families alone are 1.3M lines
 * (84 MB) a scrape, beyond what one event loop should render or a Prometheus server should ingest. */
const MAX_DEST_SERIES = 10000;

// Over the cap: the services' byte and packet sums in one pass over the forwarder's counters.
async function sumsByService(stats: Map<string, DestStats>): Promise<Map<string, DestStats>> {
  const sums = new Map<string, DestStats>();
  const it = stats.entries();
  await sliced(stats.size, () => {
    const e = it.next();
    if (e.done) return;
    const [k, st] = e.value,
      svcKey = k.slice(0, k.indexOf("|"));
    const t = sums.get(svcKey);
    if (!t) sums.set(svcKey, { ...st });
    else {
      t.inPkts += st.inPkts;
      t.outPkts += st.outPkts;
      t.inBytes += st.inBytes;
      t.outBytes += st.outBytes;
    }
  });
  return sums;
}

// The label and keys of the destination the core just wrote to its scratch record (at sp), from the cache.
function destLabel(svcId: number, svcKey: string, id: number, dv: DataView, sp: number): DestLabel {
  const port = dv.getUint32(sp + LAYOUT.DEST_PORT, true),
    at = sp + LAYOUT.DEST_ADDR;
  const a0 = dv.getUint32(at, true),
    a1 = dv.getUint32(at + 4, true);
  const a2 = dv.getUint32(at + 8, true),
    a3 = dv.getUint32(at + 12, true);
  let dl = destLabels.get(id);
  if (!dl || dl.svcId !== svcId || dl.port !== port || dl.a0 !== a0 || dl.a1 !== a1 || dl.a2 !== a2 || dl.a3 !== a3) {
    const af = dv.getInt32(sp + LAYOUT.DEST_AF, true);
    const addr = formatAddr(af, new Uint8Array(dv.buffer.slice(at, at + 16)));
    const rk = realServerKey({ addr, port });
    dl = {
      svcId,
      a0,
      a1,
      a2,
      a3,
      port,
      rk,
      key: destKey(svcKey, { addr, port }),
      label: `{service="${esc(svcKey)}",destination="${esc(rk)}"}`,
    };
    destLabels.set(id, dl);
  }
  return dl;
}

function pushDestRow(
  s: Snapshot,
  label: string,
  conns: number,
  st: DestStats | undefined,
  active: number,
  inact: number,
  persist: number,
  weight: number,
  configured: number,
  healthy: number,
  draining: number,
  f: number,
) {
  const col = s.dst;
  s.dstLabels.push(label);
  col.conns.push(conns);
  col.inPkts.push(st?.inPkts ?? 0);
  col.outPkts.push(st?.outPkts ?? 0);
  col.inBytes.push(st?.inBytes ?? 0);
  col.outBytes.push(st?.outBytes ?? 0);
  col.active.push(active);
  col.inact.push(inact);
  col.persist.push(persist);
  col.weight.push(weight);
  col.configured.push(configured);
  col.healthy.push(healthy);
  col.draining.push(draining);
  col.flows.push(f);
}

async function snapshot(p: Proxy, maxDests = MAX_DEST_SERIES): Promise<Snapshot> {
  const s: Snapshot = { svcLabels: [], svc: {}, dstLabels: [], dst: {}, omitted: 0 };
  for (const c of SVC_COLS) s.svc[c] = [];
  for (const c of DST_COLS) s.dst[c] = [];
  const flows = p.fw.flowsByDest();
  const stats = p.fw.stats;
  const specs = specsOf(p.desired.services);
  // the proxy's services, not core.serviceIds(): that reads every slot of the core's table in one go
  const ids = Int32Array.from(p.tables.byId.keys()).sort();
  const x = p.core.x,
    sp = p.core.scratch;
  const u64 = (dv: DataView, o: number) => dv.getUint32(o, true) + dv.getUint32(o + 4, true) * 4294967296;
  // one read of each service record: its destination count and connections (-1: deleted meanwhile)
  const destCount = new Int32Array(ids.length),
    connsOf = new Float64Array(ids.length);
  let total = 0;
  await sliced(ids.length, (i) => {
    const n = (destCount[i] = x.svcInfo(ids[i]));
    if (n < 0) return;
    total += n;
    connsOf[i] = u64(p.core.dv, sp + LAYOUT.SVC_CONNS);
  });
  const perDest = total <= maxDests;
  if (!perDest) s.omitted = total;
  const sums = perDest ? new Map<string, DestStats>() : await sumsByService(stats);
  const pushDest = (
    label: string,
    conns: number,
    st: DestStats | undefined,
    active: number,
    inact: number,
    persist: number,
    weight: number,
    configured: number,
    healthy: number,
    draining: number,
    f: number,
  ) => pushDestRow(s, label, conns, st, active, inact, persist, weight, configured, healthy, draining, f);
  // Reads the core's records directly (no DestInfo objects, no BigInts): a scrape at 100k destinations
  // otherwise makes enough garbage that collecting it stalls the loop.
  await sliced(ids.length, (i) => {
    const a = p.tables.byId.get(ids[i]);
    if (!a || destCount[i] < 0) return;
    // over the cap the first read is all it takes; else read again (deleted between two slices: left out)
    const n = perDest ? x.svcInfo(a.id) : destCount[i];
    if (n < 0) return;
    let dv = p.core.dv;
    const svcConns = perDest ? u64(dv, sp + LAYOUT.SVC_CONNS) : connsOf[i];
    let sl = svcLabels.get(a.key);
    if (!sl) {
      if (svcLabels.size > 1 << 18) svcLabels.clear();
      svcLabels.set(a.key, (sl = `{service="${esc(a.key)}"}`));
    }
    s.svcLabels.push(sl);
    s.svc.conns.push(svcConns);
    if (!perDest) {
      const t = sums.get(a.key);
      s.svc.inPkts.push(t?.inPkts ?? 0);
      s.svc.outPkts.push(t?.outPkts ?? 0);
      s.svc.inBytes.push(t?.inBytes ?? 0);
      s.svc.outBytes.push(t?.outBytes ?? 0);
      return;
    }
    const spec = specs.get(a.key) ?? a.spec;
    const conf = indexOf(a.key, spec);
    let inPkts = 0,
      outPkts = 0,
      inBytes = 0,
      outBytes = 0;
    let seen: Set<string> | undefined;
    for (let k = 0; k < n; k++) {
      const id = x.svcDestAt(a.id, k);
      if (id < 0 || x.destInfo(id) < 0) continue;
      dv = p.core.dv;
      const dl = destLabel(a.id, a.key, id, dv, sp);
      const weight = dv.getInt32(sp + LAYOUT.DEST_WEIGHT, true);
      const st = stats.get(dl.key),
        f = flows.get(dl.key) ?? 0;
      if (flows.size) (seen ??= new Set()).add(dl.rk);
      if (st) {
        inPkts += st.inPkts;
        outPkts += st.outPkts;
        inBytes += st.inBytes;
        outBytes += st.outBytes;
      }
      pushDest(
        dl.label,
        u64(dv, sp + LAYOUT.DEST_CONNS),
        st,
        dv.getUint32(sp + LAYOUT.DEST_ACTIVE, true),
        dv.getUint32(sp + LAYOUT.DEST_INACTIVE, true),
        dv.getUint32(sp + LAYOUT.DEST_PERSIST, true),
        weight,
        conf.byRk.get(dl.rk)?.weight ?? weight,
        p.health.down(dl.key) === undefined ? 1 : 0,
        weight === 0 && f > 0 ? 1 : 0,
        f,
      );
    }
    // destinations out of the core (health: remove) that still have flows draining
    if (flows.size)
      for (const { rk, key, r } of conf.keys) {
        const f = flows.get(key) ?? 0;
        if (!f || seen?.has(rk)) continue;
        const st = stats.get(key);
        if (st) {
          inPkts += st.inPkts;
          outPkts += st.outPkts;
          inBytes += st.inBytes;
          outBytes += st.outBytes;
        }
        pushDest(
          `{service="${esc(a.key)}",destination="${esc(rk)}"}`,
          0,
          st,
          0,
          0,
          0,
          0,
          r.weight,
          p.health.down(key) === undefined ? 1 : 0,
          1,
          f,
        );
      }
    s.svc.inPkts.push(inPkts);
    s.svc.outPkts.push(outPkts);
    s.svc.inBytes.push(inBytes);
    s.svc.outBytes.push(outBytes);
  });
  if (destLabels.size > 4 * s.dstLabels.length + 1024) destLabels.clear();
  return s;
}

type Write = (chunk: string | Buffer) => Promise<void>;

// Lines are written as bytes into a reused buffer: a scrape at 100k series would otherwise make a string
// per line, and collecting them stalls the event loop for tens of milliseconds.
const CHUNK = 1 << 16;
const NL = 10,
  SP = 32;
const labelCache = new Map<string, Buffer>();
const labelBytes = (l: string) => {
  let b = labelCache.get(l);
  if (!b) {
    if (labelCache.size > 1 << 20) labelCache.clear();
    labelCache.set(l, (b = Buffer.from(l)));
  }
  return b;
};

// Writes one family from a snapshot column; counters leave out their zero series, as before.
async function family(
  write: Write,
  name: string,
  type: "counter" | "gauge",
  help: string,
  labels: string[],
  col: number[],
) {
  await write(`# HELP ${name} ${help}\n# TYPE ${name} ${type}\n`);
  const nameB = Buffer.from(name),
    skipZero = type === "counter";
  let buf = Buffer.allocUnsafe(CHUNK),
    at = 0;
  let t = performance.now();
  for (let i = 0; i < labels.length; i++) {
    const v = col[i];
    if (skipZero && !(v > 0)) continue;
    const lb = labelBytes(labels[i]);
    if (at + nameB.length + lb.length + 32 > CHUNK) {
      await write(buf.subarray(0, at));
      buf = Buffer.allocUnsafe(CHUNK);
      at = 0;
      if (performance.now() - t > SLICE_MS) {
        await yieldLoop();
        t = performance.now();
      }
    }
    at += nameB.copy(buf, at);
    at += lb.copy(buf, at);
    buf[at++] = SP;
    if (Number.isInteger(v) && v >= 0 && v < 10) buf[at++] = 48 + v;
    else at += buf.write(String(v), at, "latin1");
    buf[at++] = NL;
  }
  if (at) await write(buf.subarray(0, at));
}

async function scalar(write: Write, name: string, type: "counter" | "gauge", help: string, rows: [string, number][]) {
  let buf = `# HELP ${name} ${help}\n# TYPE ${name} ${type}\n`;
  for (const [l, v] of rows) if (type === "gauge" || v > 0) buf += `${name}${l} ${v}\n`;
  await write(buf);
}

// --workers N: each worker's connections, and the restarts and connections lost to workers that died.
async function workerMetrics(write: Write, w: PumpWorkers): Promise<void> {
  const st = w.status();
  await scalar(
    write,
    "wasmvs_proxy_worker_tcp_connections",
    "gauge",
    "TCP connections each worker thread pumps now",
    st.connections.map((n, i) => [`{worker="${i}"}`, n]),
  );
  await scalar(
    write,
    "wasmvs_proxy_worker_restarts_total",
    "counter",
    "Worker threads that died and were started again",
    [["", st.restarts]],
  );
}

/** Writes the whole exposition through write (which may wait for the socket to drain). */
async function writeMetrics(p: Proxy, write: Write): Promise<void> {
  const s = await snapshot(p);
  const sv = (c: (typeof SVC_COLS)[number]) => s.svc[c];
  const dv = (c: (typeof DST_COLS)[number]) => s.dst[c];
  await family(
    write,
    "wasmvs_proxy_service_connections_total",
    "counter",
    "Connections scheduled by a virtual service (IPVS Conns)",
    s.svcLabels,
    sv("conns"),
  );
  for (const dir of ["in", "out"] as const) {
    const what = dir === "in" ? "client to backend" : "backend to client";
    await family(
      write,
      `wasmvs_proxy_service_${dir}_packets_total`,
      "counter",
      `Reads forwarded ${what} (socket mode: one read is one packet)`,
      s.svcLabels,
      sv(`${dir}Pkts`),
    );
    await family(
      write,
      `wasmvs_proxy_service_${dir}_bytes_total`,
      "counter",
      `Bytes forwarded ${what}`,
      s.svcLabels,
      sv(`${dir}Bytes`),
    );
    await family(
      write,
      `wasmvs_proxy_destination_${dir}_packets_total`,
      "counter",
      `Reads forwarded ${dir} per destination`,
      s.dstLabels,
      dv(`${dir}Pkts`),
    );
    await family(
      write,
      `wasmvs_proxy_destination_${dir}_bytes_total`,
      "counter",
      `Bytes forwarded ${dir} per destination`,
      s.dstLabels,
      dv(`${dir}Bytes`),
    );
  }
  const dst: [string, "counter" | "gauge", string, (typeof DST_COLS)[number]][] = [
    ["connections_total", "counter", "Connections scheduled to a destination (IPVS Conns)", "conns"],
    ["active_connections", "gauge", "IPVS ActiveConn", "active"],
    ["inactive_connections", "gauge", "IPVS InActConn", "inact"],
    ["persistent_connections", "gauge", "IPVS PersistConn (templates)", "persist"],
    ["weight", "gauge", "Effective weight in the core (0: quiesced or draining)", "weight"],
    ["configured_weight", "gauge", "Configured weight", "configured"],
    ["healthy", "gauge", "1 when the health check passes (or there is none)", "healthy"],
    [
      "draining",
      "gauge",
      "1 when the destination takes no new flows (weight 0, down or removed) but still has flows",
      "draining",
    ],
    ["open_flows", "gauge", "TCP connections and UDP flows open now", "flows"],
  ];
  for (const [n, t, h, c] of dst) await family(write, `wasmvs_proxy_destination_${n}`, t, h, s.dstLabels, dv(c));
  await scalar(
    write,
    "wasmvs_proxy_metrics_destinations_omitted",
    "gauge",
    `Destinations whose series this scrape left out (more than ${MAX_DEST_SERIES}: ` +
      "the per-service series still count them)",
    [["", s.omitted]],
  );
  await scalar(
    write,
    "wasmvs_proxy_drops_total",
    "counter",
    "Connections or datagrams refused, by reason",
    [...p.fw.drops].map(([r, n]) => [`{reason="${esc(r)}"}`, n]),
  );
  const fw = p.fw;
  if (fw instanceof SocketForwarder) {
    await scalar(write, "wasmvs_proxy_udp_flows", "gauge", "UDP flows in the bounded table", [["", fw.udpCount]]);
    await scalar(write, "wasmvs_proxy_udp_flows_max", "gauge", "Size of the UDP flow table", [
      ["", p.cfg.options.udpFlows],
    ]);
    await scalar(write, "wasmvs_proxy_tcp_connections", "gauge", "Proxied TCP connections open now", [
      ["", fw.tcp.size],
    ]);
    if (fw.workers) await workerMetrics(write, fw.workers);
  } else if (fw instanceof PacketForwarder) {
    const io = fw.ioStats();
    await scalar(
      write,
      "wasmvs_proxy_packet_received_total",
      "counter",
      "Packets received from the interfaces and run through the core",
      [["", io.rxPackets]],
    );
    await scalar(
      write,
      "wasmvs_proxy_packet_sent_total",
      "counter",
      "Packets the core forwarded, handed to the kernel",
      [["", io.txPackets]],
    );
    await scalar(
      write,
      "wasmvs_proxy_packet_checksum_completed_total",
      "counter",
      "Packets whose sender left the L4 checksum to offload, completed before rewriting",
      [["", io.rxCsumCompleted]],
    );
    await scalar(write, "wasmvs_proxy_packet_batches_total", "counter", "Batches run through the core", [
      ["", fw.timing.batches],
    ]);
  }
  const cs = p.core.connStats();
  await scalar(
    write,
    "wasmvs_proxy_conn_table_entries",
    "gauge",
    "Entries in the core's connection table (with templates)",
    [["", cs.live]],
  );
  await scalar(write, "wasmvs_proxy_conn_table_capacity", "gauge", "Capacity of the core's connection table", [
    ["", cs.capacity],
  ]);
  await scalar(
    write,
    "wasmvs_proxy_conn_table_evicted_total",
    "counter",
    "Entries freed for a new connection when the table was full: finished (TIME_WAIT, CLOSE) or other inactive",
    [
      ['{class="finished"}', cs.evictedFinished],
      ['{class="inactive"}', cs.evictedInactive],
    ],
  );
  await scalar(
    write,
    "wasmvs_proxy_conn_table_refused_total",
    "counter",
    "New connections refused because every entry was established or a template",
    [["", cs.refusedFull]],
  );
  // the connection sync daemons' own families (src/proxy/sync.ts), when one runs
  if (p.syncDaemons.length) await write(syncMetricsText(p.core, p.syncDaemons));
}

/** The whole exposition as one string (tests, tools). */
export async function metricsText(p: Proxy): Promise<string> {
  const parts: Buffer[] = [];
  await writeMetrics(p, async (c) => {
    parts.push(typeof c === "string" ? Buffer.from(c) : Buffer.from(c));
  });
  return Buffer.concat(parts).toString();
}

export function startMetricsServer(p: Proxy, hostPort: string): Promise<http.Server> {
  const m = hostPort.match(/^\[?(.*?)\]?:(\d+)$/)!;
  let running: Promise<void> = Promise.resolve();
  const server = http.createServer((req, res) => {
    if (req.url === "/metrics") {
      // one scrape at a time: a second one waits for the first instead of doubling the work
      running = running.then(async () => {
        try {
          res.writeHead(200, { "content-type": CONTENT_TYPE });
          await writeMetrics(
            p,
            (c) =>
              new Promise<void>((r) => {
                if (!c.length || res.destroyed) return r();
                if (res.write(c)) return r();
                const done = () => {
                  res.off("drain", done);
                  res.off("close", done);
                  r();
                };
                res.once("drain", done);
                res.once("close", done);
              }),
          );
          res.end();
        } catch (e) {
          if (!res.headersSent) {
            res.writeHead(500);
            res.end(String(e));
          } else res.destroy(e as Error);
        }
      });
    } else if (req.url === "/healthz") {
      res.writeHead(200);
      res.end("ok\n");
    } else {
      res.writeHead(404);
      res.end();
    }
  });
  return new Promise((res, rej) => {
    server.once("error", rej);
    server.listen(Number(m[2]), m[1], () => res(server));
  });
}
