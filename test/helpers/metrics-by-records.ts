// The /metrics snapshot as it was read before the one-pass counters area (src/proxy/metrics.ts until issue 15
// round 3): a call per service (svcInfo) and per destination (svcDestAt, destInfo) through the scratch
// record, with the forwarder's flowsByDest() in either mode. Kept as the reference the one-pass snapshot
// must equal (test/proxy-metrics.test.ts); labels turned into bytes at the end, as the writer takes them.
import type { Proxy } from "../../src/proxy/index.ts";
import { destKey } from "../../src/proxy/tables.ts";
import type { Snapshot } from "../../src/proxy/metrics.ts";
import { serviceKey, realServerKey, type RealServer, type VirtualService } from "../../src/model/types.ts";
import type { DestStats } from "../../src/proxy/forwarder.ts";
import { formatAddr } from "../../src/core/addr.ts";
import { LAYOUT } from "../../src/core/index.ts";

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
interface OldSnapshot {
  svcLabels: string[];
  svc: Record<string, number[]>;
  dstLabels: string[];
  dst: Record<string, number[]>;
  omitted: number;
}
const sliced = async (n: number, fn: (i: number) => void) => {
  for (let i = 0; i < n; i++) fn(i);
};
const esc = (s: string) => s.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n");

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
  s: OldSnapshot,
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

async function oldSnapshot(p: Proxy, maxDests = MAX_DEST_SERIES): Promise<OldSnapshot> {
  const s: OldSnapshot = { svcLabels: [], svc: {}, dstLabels: [], dst: {}, omitted: 0 };
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

/** The old path's snapshot, its labels as bytes. */
export async function snapshotByRecords(p: Proxy, maxDests = MAX_DEST_SERIES): Promise<Snapshot> {
  const s = await oldSnapshot(p, maxDests);
  return {
    ...s,
    svcLabels: s.svcLabels.map((l) => Buffer.from(l)),
    dstLabels: s.dstLabels.map((l) => Buffer.from(l)),
  } as Snapshot;
}
