// Every service's and destination's counters in one pass, for the proxy's /metrics scrape: one call writes
// a run of whole services into the counters area (CTR_* in assembly/layout.ts), so the host formats its text
// from typed arrays instead of a call and a record per service and per destination.
import { AF_INET } from "./common";
import { serviceById } from "./service/service";
import {
  CTR_HEAD_SERVICES,
  CTR_HEAD_DESTS,
  CTR_HEAD_END,
  CTR_SVC_ID,
  CTR_SVC_DESTS,
  CTR_SVC_CONNS,
  CTR_SVC_INPKTS,
  CTR_SVC_OUTPKTS,
  CTR_SVC_INBYTES,
  CTR_SVC_OUTBYTES,
  CTR_SVC_END,
  CTR_DEST_ID,
  CTR_DEST_AF,
  CTR_DEST_PORT,
  CTR_DEST_WEIGHT,
  CTR_DEST_ACTIVE,
  CTR_DEST_INACTIVE,
  CTR_DEST_PERSIST,
  CTR_DEST_SVC,
  CTR_DEST_ADDR,
  CTR_DEST_CONNS,
  CTR_DEST_INPKTS,
  CTR_DEST_OUTPKTS,
  CTR_DEST_INBYTES,
  CTR_DEST_OUTBYTES,
  CTR_DEST_END,
} from "./layout";

// the area, grown (never shrunk) to the largest run asked for
let area: usize = 0;
let areaSize: usize = 0;

export function countersPtr(): usize {
  return area;
}

// Writes the services with id >= from, in id order and each whole, until at least `budget` records are
// written (a service with more destinations is written whole), each followed by its destinations' records
// when withDests (else CTR_SVC_DESTS still counts them); returns the id to continue from, or -1 when the last
// service is written. The host yields to its event loop between two calls.
export function countersWrite(from: i32, budget: i32, withDests: bool): i32 {
  const n = serviceById.length;
  let end = from < 0 ? 0 : from;
  let services: i32 = 0,
    dests: i32 = 0;
  while (end < n && (services + dests < budget || services == 0)) {
    const s = unchecked(serviceById[end]);
    end++;
    if (!s) continue;
    services++;
    if (withDests) dests += s.dests.length;
  }
  const need = <usize>CTR_HEAD_END + <usize>services * CTR_SVC_END + <usize>dests * CTR_DEST_END;
  if (need > areaSize) {
    if (area) heap.free(area);
    areaSize = max(need, areaSize << 1);
    area = heap.alloc(areaSize);
  }
  store<i32>(area, services, CTR_HEAD_SERVICES);
  store<i32>(area, dests, CTR_HEAD_DESTS);
  let p = area + CTR_HEAD_END;
  for (let id = from < 0 ? 0 : from; id < end; id++) {
    const s = unchecked(serviceById[id]);
    if (!s) continue;
    const ds = s.dests;
    const nd = ds.length;
    store<i32>(p, s.id, CTR_SVC_ID);
    store<i32>(p, nd, CTR_SVC_DESTS);
    store<f64>(p, <f64>s.conns, CTR_SVC_CONNS);
    store<f64>(p, <f64>s.inPkts, CTR_SVC_INPKTS);
    store<f64>(p, <f64>s.outPkts, CTR_SVC_OUTPKTS);
    store<f64>(p, <f64>s.inBytes, CTR_SVC_INBYTES);
    store<f64>(p, <f64>s.outBytes, CTR_SVC_OUTBYTES);
    p += CTR_SVC_END;
    if (!withDests) continue;
    for (let k = 0; k < nd; k++) {
      const d = unchecked(ds[k]);
      store<i32>(p, d.id, CTR_DEST_ID);
      store<i32>(p, d.af, CTR_DEST_AF);
      store<u32>(p, d.port, CTR_DEST_PORT);
      store<i32>(p, d.weight, CTR_DEST_WEIGHT);
      store<u32>(p, d.activeConns, CTR_DEST_ACTIVE);
      store<u32>(p, d.inactConns, CTR_DEST_INACTIVE);
      store<u32>(p, d.persistConns, CTR_DEST_PERSIST);
      store<i32>(p, d.svcId, CTR_DEST_SVC);
      if (d.af == AF_INET) {
        store<u32>(p, bswap<u32>(d.a3), CTR_DEST_ADDR);
        store<u32>(p, 0, CTR_DEST_ADDR + 4);
        store<u64>(p, 0, CTR_DEST_ADDR + 8);
      } else {
        store<u32>(p, bswap<u32>(d.a0), CTR_DEST_ADDR);
        store<u32>(p, bswap<u32>(d.a1), CTR_DEST_ADDR + 4);
        store<u32>(p, bswap<u32>(d.a2), CTR_DEST_ADDR + 8);
        store<u32>(p, bswap<u32>(d.a3), CTR_DEST_ADDR + 12);
      }
      store<f64>(p, <f64>d.conns, CTR_DEST_CONNS);
      store<f64>(p, <f64>d.inPkts, CTR_DEST_INPKTS);
      store<f64>(p, <f64>d.outPkts, CTR_DEST_OUTPKTS);
      store<f64>(p, <f64>d.inBytes, CTR_DEST_INBYTES);
      store<f64>(p, <f64>d.outBytes, CTR_DEST_OUTBYTES);
      p += CTR_DEST_END;
    }
  }
  return end < n ? end : -1;
}
