// Prometheus metrics, computed at scrape time from the core's counters and the forwarder's: per service and
// per destination connections, packets and bytes like IPVS's stats, active and inactive connections,
// weights, health and drain state, drops by reason, flow table sizes.
//
// A scrape must not stall forwarding, and at 10k services x 10 destinations it is ~100k series per family:
// the core writes every service's and destination's counters into one area in runs of whole services (one
// WASM call per run, src/core/counters.ts), the labels are cached per service and destination id as bytes
// (they change only with the tables), the text is built family by family from that snapshot into reused
// buffers, and the work yields to the event loop between runs and buffers, so connections are served
// meanwhile. Scrapes run one at a time; concurrent requests share the one in progress.
import * as http from "node:http";
import type { Proxy } from "./index.ts";
import { type AppliedService, destKey } from "./tables.ts";
import { SocketForwarder } from "./socket.ts";
import type { PumpWorkers } from "./workers.ts";
import { PacketForwarder, type PacketIoStats } from "./packet.ts";
import { serviceKey, realServerKey, type RealServer, type VirtualService } from "../model/types.ts";
import type { DestStats } from "./forwarder.ts";
import { formatAddr } from "../core/addr.ts";
import { syncMetricsText } from "./sync.ts";
import { CounterReader } from "../core/counters.ts";
import { Slicer, drained } from "./slice.ts";

const CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8";
// records the core writes per call: a run is read whole before the next yield (the area is the module's,
// so a run must not outlive a turn of the loop), well under a slice of reading. Slices (./slice.ts) end
// after 1 ms, or sooner when a connection waits: a new one takes several turns of the loop (accept,
// schedule and connect, connected), each of which may wait behind one slice.
const RUN_RECORDS = 2048;

// Runs fn over 0..n-1, yielding to the event loop between slices.
async function sliced(n: number, fn: (i: number) => void): Promise<void> {
  const slicer = new Slicer();
  for (let i = 0; i < n; i++) {
    fn(i);
    const turn = slicer.pause();
    if (turn) await turn;
  }
}

const esc = (s: string) => s.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n");

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
type SvcCol = (typeof SVC_COLS)[number];
type DstCol = (typeof DST_COLS)[number];

/** One scrape's snapshot: a row per service and per destination (labels as bytes), values in columns. */
export interface Snapshot {
  svcLabels: readonly Buffer[];
  svc: Record<SvcCol, ArrayLike<number>>;
  dstLabels: readonly Buffer[];
  dst: Record<DstCol, ArrayLike<number>>;
  omitted: number; // destinations whose series were left out (over MAX_DEST_SERIES)
}

// Rows of labels and number columns, written in place and kept from one scrape to the next by the metrics
// server (its scrapes run one at a time): grown by push each scrape, the columns were most of a scrape's
// garbage (1.8 MB at 10k services over the cap, 3.8 MB at 10k destinations), and back-to-back scrapes ran a
// young-generation collection every 7, each a pause that a new connection waits behind.
class Rows<C extends string> {
  labels: Buffer[] = [];
  n = 0;
  cols: Record<C, Float64Array>;
  constructor(private readonly names: readonly C[]) {
    this.cols = this.make(1024);
  }
  private make(cap: number): Record<C, Float64Array> {
    return Object.fromEntries(this.names.map((c) => [c, new Float64Array(cap)])) as Record<C, Float64Array>;
  }
  /** A new row (its values to be set, every column); returns its index. */
  add(label: Buffer): number {
    const cap = this.cols[this.names[0]].length;
    if (this.n === cap) {
      const grown = this.make(cap * 2);
      for (const c of this.names) grown[c].set(this.cols[c]);
      this.cols = grown;
    }
    this.labels[this.n] = label;
    return this.n++;
  }
  /** The rows written since the last view (the labels array is trimmed to them). */
  view(): { labels: readonly Buffer[]; cols: Record<C, ArrayLike<number>> } {
    if (this.labels.length > this.n) this.labels.length = this.n;
    const cols = Object.fromEntries(this.names.map((c) => [c, this.cols[c].subarray(0, this.n)]));
    return { labels: this.labels, cols: cols as Record<C, Float64Array> };
  }
}

/** Where snapshots are written: one per sequence of scrapes that never overlap (a snapshot taken into it is
 * overwritten by the next). */
export class SnapshotRows {
  readonly svc = new Rows(SVC_COLS);
  readonly dst = new Rows(DST_COLS);
  svcKeys: string[] = []; // per service row, for the sums over the cap
  start() {
    this.svc.n = 0;
    this.dst.n = 0;
  }
  snapshot(omitted: number): Snapshot {
    const s = this.svc.view(),
      d = this.dst.view();
    if (this.svcKeys.length > this.svc.n) this.svcKeys.length = this.svc.n;
    return { svcLabels: s.labels, svc: s.cols, dstLabels: d.labels, dst: d.cols, omitted };
  }
}

/** A destination row's values (the label goes beside them). */
interface DestRow {
  conns: number;
  st: DestStats | undefined;
  active: number;
  inact: number;
  persist: number;
  weight: number;
  configured: number;
  healthy: number;
  draining: number;
  flows: number;
}

function pushDestRow(s: SnapshotRows, label: Buffer, r: DestRow) {
  const i = s.dst.add(label),
    col = s.dst.cols;
  col.conns[i] = r.conns;
  col.inPkts[i] = r.st?.inPkts ?? 0;
  col.outPkts[i] = r.st?.outPkts ?? 0;
  col.inBytes[i] = r.st?.inBytes ?? 0;
  col.outBytes[i] = r.st?.outBytes ?? 0;
  col.active[i] = r.active;
  col.inact[i] = r.inact;
  col.persist[i] = r.persist;
  col.weight[i] = r.weight;
  col.configured[i] = r.configured;
  col.healthy[i] = r.healthy;
  col.draining[i] = r.draining;
  col.flows[i] = r.flows;
}

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

// Over the cap, socket mode: the services' byte and packet sums in one pass over the forwarder's counters
// (every destination that ever carried bytes, removed ones included, so the sums never go back).
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

const labelOf = (svcKey: string, rk?: string) =>
  Buffer.from(rk === undefined ? `{service="${esc(svcKey)}"}` : `{service="${esc(svcKey)}",destination="${esc(rk)}"}`);

// Labels and keys by the core's service and destination ids (small dense integers, so arrays), checked
// against the record on every scrape: an id is reused after a delete. They change only with the tables, so
// a scrape of an unchanged table makes no string and no buffer for them.
interface DestLabel {
  svcId: number;
  w0: number;
  w1: number;
  w2: number;
  w3: number;
  port: number;
  rk: string;
  key: string;
  label: Buffer;
}
const destLabels: (DestLabel | undefined)[] = [];
const svcLabels: ({ key: string; label: Buffer } | undefined)[] = [];

function svcLabel(a: AppliedService): Buffer {
  const e = svcLabels[a.id];
  if (e && e.key === a.key) return e.label;
  const fresh = { key: a.key, label: labelOf(a.key) };
  svcLabels[a.id] = fresh;
  return fresh.label;
}

// The current destination record's label and keys, from the cache.
function destLabel(r: CounterReader, a: AppliedService): DestLabel {
  const id = r.destId,
    port = r.destPort;
  const w0 = r.destAddrWord(0),
    w1 = r.destAddrWord(1),
    w2 = r.destAddrWord(2),
    w3 = r.destAddrWord(3);
  let dl = destLabels[id];
  if (!dl || dl.svcId !== a.id || dl.port !== port || dl.w0 !== w0 || dl.w1 !== w1 || dl.w2 !== w2 || dl.w3 !== w3) {
    const addr = formatAddr(r.destAf, r.destAddrBytes());
    const rk = realServerKey({ addr, port });
    dl = { svcId: a.id, w0, w1, w2, w3, port, rk, key: destKey(a.key, { addr, port }), label: labelOf(a.key, rk) };
    destLabels[id] = dl;
  }
  return dl;
}

const NO_FLOWS: ReadonlyMap<string, number> = new Map();

/** The scrape's snapshot, from the core's counter records (see src/core/counters.ts). In packet mode the
 * open flows and the byte counts are the core's own (its entries, IPVS's counters, in the records); in
 * socket mode they are the forwarder's (its sockets, the relay's counts). */
export async function snapshot(
  p: Proxy,
  maxDests = MAX_DEST_SERIES,
  s: SnapshotRows = new SnapshotRows(),
): Promise<Snapshot> {
  const packet = p.fw.mode === "packet";
  const flows = packet ? NO_FLOWS : p.fw.flowsByDest();
  const stats = p.fw.stats;
  const specs = specsOf(p.desired.services);
  const slicer = new Slicer();
  const pause = () => slicer.pauseNow();
  // The services' records alone first (10k in about a millisecond), their rows written as for a table over
  // the cap while the destinations are counted; a table under it is read again with its destinations. So a
  // table over the cap is read once, not counted and then read.
  let total = 0;
  for (const perDest of [false, true]) {
    const r = new CounterReader(p.core, RUN_RECORDS);
    r.withDests = perDest;
    s.start();
    while (r.nextRun()) {
      while (r.nextService()) {
        const a = p.tables.byId.get(r.svcId);
        if (!a) continue;
        if (!perDest) total += r.svcDests;
        const i = s.svc.add(svcLabel(a));
        s.svc.cols.conns[i] = r.svcConns;
        s.svcKeys[i] = a.key;
        if (perDest) serviceRows(p, s, i, r, a, specs, flows, stats, packet);
        // over the cap: in packet mode the service's own counters (IPVS's, removed destinations' packets
        // included); in socket mode the forwarder's, filled in below
        else if (packet) setSums(s, i, r.svcInPkts, r.svcOutPkts, r.svcInBytes, r.svcOutBytes);
        else setSums(s, i, 0, 0, 0, 0);
      }
      await pause();
    }
    if (total > maxDests) break;
  }
  const perDest = total <= maxDests;
  if (!perDest && !packet) {
    const sums = await sumsByService(stats);
    for (let i = 0; i < s.svc.n; i++) {
      const x = sums.get(s.svcKeys[i]);
      if (x) setSums(s, i, x.inPkts, x.outPkts, x.inBytes, x.outBytes);
    }
  }
  return s.snapshot(perDest ? 0 : total);
}

function setSums(s: SnapshotRows, i: number, inPkts: number, outPkts: number, inBytes: number, outBytes: number) {
  const col = s.svc.cols;
  col.inPkts[i] = inPkts;
  col.outPkts[i] = outPkts;
  col.inBytes[i] = inBytes;
  col.outBytes[i] = outBytes;
}

// One service's destination rows (the current service record's), and its sums.
function serviceRows(
  p: Proxy,
  s: SnapshotRows,
  row: number,
  r: CounterReader,
  a: AppliedService,
  specs: Map<string, VirtualService>,
  flows: ReadonlyMap<string, number>,
  stats: Map<string, DestStats>,
  packet: boolean,
) {
  const conf = indexOf(a.key, specs.get(a.key) ?? a.spec);
  let inPkts = 0,
    outPkts = 0,
    inBytes = 0,
    outBytes = 0;
  let seen: Set<string> | undefined;
  while (r.nextDest()) {
    const dl = destLabel(r, a);
    const weight = r.destWeight,
      active = r.destActive,
      inact = r.destInactive;
    const st = packet
      ? { inPkts: r.destInPkts, outPkts: r.destOutPkts, inBytes: r.destInBytes, outBytes: r.destOutBytes }
      : stats.get(dl.key);
    const f = packet ? active + inact : (flows.get(dl.key) ?? 0);
    if (flows.size) (seen ??= new Set()).add(dl.rk);
    if (st) {
      inPkts += st.inPkts;
      outPkts += st.outPkts;
      inBytes += st.inBytes;
      outBytes += st.outBytes;
    }
    pushDestRow(s, dl.label, {
      conns: r.destConns,
      st,
      active,
      inact,
      persist: r.destPersist,
      weight,
      configured: conf.byRk.get(dl.rk)?.weight ?? weight,
      healthy: p.health.down(dl.key) === undefined ? 1 : 0,
      draining: weight === 0 && f > 0 ? 1 : 0,
      flows: f,
    });
  }
  // destinations out of the core (health: remove) that still have flows draining
  if (flows.size)
    for (const { rk, key, r: rs } of conf.keys) {
      const f = flows.get(key) ?? 0;
      if (!f || seen?.has(rk)) continue;
      const st = stats.get(key);
      if (st) {
        inPkts += st.inPkts;
        outPkts += st.outPkts;
        inBytes += st.inBytes;
        outBytes += st.outBytes;
      }
      pushDestRow(s, labelOf(a.key, rk), {
        conns: 0,
        st,
        active: 0,
        inact: 0,
        persist: 0,
        weight: 0,
        configured: rs.weight,
        healthy: p.health.down(key) === undefined ? 1 : 0,
        draining: 1,
        flows: f,
      });
    }
  setSums(s, row, inPkts, outPkts, inBytes, outBytes);
}

type Write = (chunk: string | Buffer) => Promise<void>;

// Lines are written as bytes into a reused buffer: a scrape at 100k series would otherwise make a string
// per line, and collecting them stalls the event loop for tens of milliseconds.
const CHUNK = 1 << 16;
const NL = 10,
  SP = 32;

// Writes one family from a snapshot column; counters leave out their zero series, as before.
async function family(
  write: Write,
  name: string,
  type: "counter" | "gauge",
  help: string,
  labels: readonly Buffer[],
  col: ArrayLike<number>,
) {
  await write(`# HELP ${name} ${help}\n# TYPE ${name} ${type}\n`);
  const nameB = Buffer.from(name),
    skipZero = type === "counter";
  let buf = Buffer.allocUnsafe(CHUNK),
    at = 0;
  const slicer = new Slicer();
  for (let i = 0; i < labels.length; i++) {
    const turn = slicer.pause(); // awaited only when it yields: an await per line would cost a microtask
    if (turn) await turn;
    const v = col[i];
    if (skipZero && !(v > 0)) continue;
    const lb = labels[i];
    if (at + nameB.length + lb.length + 32 > CHUNK) {
      await write(buf.subarray(0, at));
      buf = Buffer.allocUnsafe(CHUNK);
      at = 0;
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

// The services' and destinations' traffic: connections, packets and bytes, each way.
async function trafficFamilies(write: Write, s: Snapshot): Promise<void> {
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
}

// The destinations' state (IPVS's ActiveConn, InActConn, weights, health, drain) and what the cap left out.
async function destinationFamilies(write: Write, s: Snapshot): Promise<void> {
  const dv = (c: (typeof DST_COLS)[number]) => s.dst[c];
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
}

// What the forwarder itself counts: socket mode's flow tables and workers, packet mode's I/O.
async function forwarderFamilies(write: Write, p: Proxy): Promise<void> {
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
    if (io.threads) await packetThreadMetrics(write, io.threads);
  }
}

// Packet mode's I/O threads (--workers N > 1): what each carried, its CPU, its failures.
async function packetThreadMetrics(write: Write, threads: NonNullable<PacketIoStats["threads"]>): Promise<void> {
  const per = (f: (t: (typeof threads)[number]) => number): [string, number][] =>
    threads.map((t, i) => [`{thread="${i}"}`, f(t)]);
  await scalar(
    write,
    "wasmvs_proxy_packet_thread_received_total",
    "counter",
    "Packets an I/O thread received for the core",
    per((t) => t.rxPackets),
  );
  await scalar(
    write,
    "wasmvs_proxy_packet_thread_sent_total",
    "counter",
    "Packets an I/O thread handed to the kernel",
    per((t) => t.txPackets),
  );
  await scalar(
    write,
    "wasmvs_proxy_packet_thread_cpu_seconds_total",
    "counter",
    "CPU time of an I/O thread",
    per((t) => t.cpuNs / 1e9),
  );
  await scalar(
    write,
    "wasmvs_proxy_packet_thread_failures_total",
    "counter",
    "Failures of an I/O thread (each restarted, or stopped after too many)",
    per((t) => t.failures),
  );
}

// The core's connection table: its size, and what a full table evicted or refused.
async function connTableFamilies(write: Write, p: Proxy): Promise<void> {
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
}

/** Writes the whole exposition through write (which may wait for the socket to drain). */
async function writeMetrics(p: Proxy, write: Write, take: (p: Proxy) => Promise<Snapshot> = snapshot) {
  const s = await take(p);
  await trafficFamilies(write, s);
  await destinationFamilies(write, s);
  await scalar(
    write,
    "wasmvs_proxy_drops_total",
    "counter",
    "Connections or datagrams refused, by reason",
    [...p.fw.drops].map(([r, n]) => [`{reason="${esc(r)}"}`, n]),
  );
  await forwarderFamilies(write, p);
  await connTableFamilies(write, p);
  // the connection sync daemons' own families (src/proxy/sync.ts), when one runs
  if (p.syncDaemons.length) await write(syncMetricsText(p.core, p.syncDaemons));
}

/** The whole exposition as one string (tests, tools). */
export async function metricsText(p: Proxy, take: (p: Proxy) => Promise<Snapshot> = snapshot): Promise<string> {
  const parts: Buffer[] = [];
  await writeMetrics(
    p,
    async (c) => {
      parts.push(typeof c === "string" ? Buffer.from(c) : Buffer.from(c));
    },
    take,
  );
  return Buffer.concat(parts).toString();
}

export function startMetricsServer(p: Proxy, hostPort: string): Promise<http.Server> {
  const m = hostPort.match(/^\[?(.*?)\]?:(\d+)$/)!;
  let running: Promise<void> = Promise.resolve();
  const rows = new SnapshotRows(); // the scrapes run one at a time, so one set of rows serves them all
  const take = (q: Proxy) => snapshot(q, MAX_DEST_SERIES, rows);
  const server = http.createServer((req, res) => {
    if (req.url === "/metrics") {
      // one scrape at a time: a second one waits for the first instead of doubling the work
      running = running.then(async () => {
        try {
          res.writeHead(200, { "content-type": CONTENT_TYPE });
          await writeMetrics(
            p,
            (c) => (!c.length || res.destroyed || res.write(c) ? Promise.resolve() : drained(res)),
            take,
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
