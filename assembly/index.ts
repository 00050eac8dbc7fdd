// The exported surface of the data plane: thin wrappers that read arguments from the scratch area and
// call into the tables. Only numbers cross the boundary; addresses are 16 network-order bytes in
// scratch (IPv4 in the first 4), at the offsets of assembly/layout.ts, which src/core/ reads too. src/core/
// is the one caller.
import { AF_INET, OK, E_NO_SERVICE, E_NO_DEST, E_BAD_SETTING } from "./common";
import {
  addService,
  editService,
  delService,
  flushServices,
  getService,
  lookupService,
  lookupFwmark,
  addDest,
  editDest,
  delDest,
  serviceById,
} from "./service/service";
export { hsiphashSelfTest } from "./hash/siphash";
import { Dest, destById, destOf } from "./dest/dest";
import { pkt } from "./packet/info";
import {
  settings,
  SET_EXPIRE_NODEST_CONN,
  SET_EXPIRE_QUIESCENT_TEMPLATE,
  SET_CONN_REUSE_MODE,
  SET_SLOPPY_TCP,
  SET_CONNTRACK,
  SET_LBLC_EXPIRATION,
  SET_LBLCR_EXPIRATION,
  SET_MH_TABLE_INDEX,
  SET_SH_TABLE_BITS,
  SET_UDP_TIMEOUT,
} from "./settings";
import { seedRandom } from "./sched/random";
import { runClock } from "./clock";
import {
  SCRATCH_SIZE,
  ARG_ADDR,
  ARG_DST,
  SVC_ADDR,
  SVC_AF,
  SVC_PROTO,
  SVC_PORT,
  SVC_FWMARK,
  SVC_SCHED,
  SVC_FLAGS,
  SVC_TIMEOUT,
  SVC_NETMASK,
  SVC_CONNS,
  SVC_INPKTS,
  SVC_OUTPKTS,
  SVC_INBYTES,
  SVC_OUTBYTES,
  DEST_ADDR,
  DEST_AF,
  DEST_PORT,
  DEST_WEIGHT,
  DEST_LAST_WEIGHT,
  DEST_UTHRESHOLD,
  DEST_LTHRESHOLD,
  DEST_FLAGS,
  DEST_FWD,
  DEST_ACTIVE,
  DEST_INACTIVE,
  DEST_PERSIST,
  DEST_SVC,
  DEST_CONNS,
  DEST_INPKTS,
  DEST_OUTPKTS,
  DEST_INBYTES,
  DEST_OUTBYTES,
  CONN_CADDR,
  CONN_VADDR,
  CONN_DADDR,
  CONN_LADDR,
  CONN_AF,
  CONN_PROTO,
  CONN_STATE,
  CONN_FLAGS,
  CONN_CPORT,
  CONN_VPORT,
  CONN_DPORT,
  CONN_LPORT,
  CONN_DEST,
  CONN_CONTROLLER,
  CONN_CHILDREN,
  CONN_TIMEOUT,
  CONN_EXPIRES,
  CONN_INPKTS,
  CONN_LIVE,
  KEY_SIZE,
  KEY_AF,
  KEY_PROTO,
  KEY_CPORT,
  KEY_VPORT,
  KEY_CADDR,
  KEY_VADDR,
} from "./layout";

// ---- scratch: the argument / result area shared with the host --------------------------------------
const scratch = new StaticArray<u8>(SCRATCH_SIZE);
export function scratchPtr(): usize {
  return changetype<usize>(scratch);
}

// an address at scratch+off as four host-order words of the network-order bytes (IPv4: word 3)
let w0: u32 = 0,
  w1: u32 = 0,
  w2: u32 = 0,
  w3: u32 = 0;
function readAddr(af: i32, off: i32): void {
  const at = changetype<usize>(scratch) + <usize>off;
  if (af == AF_INET) {
    w0 = 0;
    w1 = 0;
    w2 = 0;
    w3 = bswap<u32>(load<u32>(at));
  } else {
    w0 = bswap<u32>(load<u32>(at));
    w1 = bswap<u32>(load<u32>(at, 4));
    w2 = bswap<u32>(load<u32>(at, 8));
    w3 = bswap<u32>(load<u32>(at, 12));
  }
}
function writeAddr(af: i32, off: i32, a0: u32, a1: u32, a2: u32, a3: u32): void {
  const at = changetype<usize>(scratch) + <usize>off;
  if (af == AF_INET) {
    store<u32>(at, bswap<u32>(a3));
    store<u32>(at, 0, 4);
    store<u64>(at, 0, 8);
  } else {
    store<u32>(at, bswap<u32>(a0));
    store<u32>(at, bswap<u32>(a1), 4);
    store<u32>(at, bswap<u32>(a2), 8);
    store<u32>(at, bswap<u32>(a3), 12);
  }
}

// ---- services ----------------------------------------------------------------------------------------
export function svcAdd(
  af: i32,
  proto: i32,
  port: u32,
  fwmark: u32,
  sched: i32,
  flags: u32,
  timeout: u32,
  netmask: u32,
): i32 {
  readAddr(af, ARG_ADDR);
  return addService(af, proto, w0, w1, w2, w3, port, fwmark, sched, flags, timeout, netmask);
}
export function svcEdit(id: i32, sched: i32, flags: u32, timeout: u32, netmask: u32): i32 {
  return editService(id, sched, flags, timeout, netmask);
}
export function svcDel(id: i32): i32 {
  const r = delService(id);
  if (r == 0) nodestDeleted();
  return r;
}
export function svcFlush(): void {
  flushServices();
  nodestDeleted();
}
// A destination (or a service's) was deleted: with expire_nodest_conn the kernel expires its entries at once.
function nodestDeleted(): void {
  if (settings.expireNodestConn != 0) queueNodestFlush();
}
// The service id for (af, proto, scratch address, port), or fwmark when non-zero; -1 when none.
export function svcFind(af: i32, proto: i32, port: u32, fwmark: u32): i32 {
  readAddr(af, ARG_ADDR);
  const s = fwmark != 0 ? lookupFwmark(af, fwmark) : lookupService(af, proto, w0, w1, w2, w3, port);
  return s ? s.id : -1;
}
export function svcCapacity(): i32 {
  return serviceById.length;
}

// Writes a service's fields to scratch (SVC_* in assembly/layout.ts); returns its destination count.
export function svcInfo(id: i32): i32 {
  const s = getService(id);
  if (!s) return E_NO_SERVICE;
  const p = changetype<usize>(scratch);
  writeAddr(s.af, SVC_ADDR, s.a0, s.a1, s.a2, s.a3);
  store<i32>(p, s.af, SVC_AF);
  store<i32>(p, s.proto, SVC_PROTO);
  store<u32>(p, s.port, SVC_PORT);
  store<u32>(p, s.fwmark, SVC_FWMARK);
  store<i32>(p, s.schedId, SVC_SCHED);
  store<u32>(p, s.flags, SVC_FLAGS);
  store<u32>(p, s.timeout, SVC_TIMEOUT);
  store<u32>(p, s.netmask, SVC_NETMASK);
  store<u64>(p, s.conns, SVC_CONNS);
  store<u64>(p, s.inPkts, SVC_INPKTS);
  store<u64>(p, s.outPkts, SVC_OUTPKTS);
  store<u64>(p, s.inBytes, SVC_INBYTES);
  store<u64>(p, s.outBytes, SVC_OUTBYTES);
  return s.dests.length;
}
// The id of the i-th destination of a service in the kernel's list order (newest first).
export function svcDestAt(id: i32, i: i32): i32 {
  const s = getService(id);
  if (!s) return E_NO_SERVICE;
  if (i < 0 || i >= s.dests.length) return E_NO_DEST;
  return unchecked(s.dests[i]).id;
}

// ---- destinations -----------------------------------------------------------------------------------
export function destAdd(svcId: i32, af: i32, port: u32, weight: i32, u: u32, l: u32, fwd: u32): i32 {
  readAddr(af, ARG_ADDR);
  return addDest(svcId, af, w0, w1, w2, w3, port, weight, u, l, fwd);
}
export function destEdit(svcId: i32, af: i32, port: u32, weight: i32, u: u32, l: u32, fwd: u32): i32 {
  readAddr(af, ARG_ADDR);
  return editDest(svcId, af, w0, w1, w2, w3, port, weight, u, l, fwd);
}
export function destDel(svcId: i32, af: i32, port: u32): i32 {
  readAddr(af, ARG_ADDR);
  const r = delDest(svcId, af, w0, w1, w2, w3, port);
  if (r == 0) nodestDeleted();
  return r;
}
// Writes a destination's fields to scratch (DEST_* in assembly/layout.ts).
export function destInfo(id: i32): i32 {
  if (id < 0 || id >= destById.length || !unchecked(destById[id])) return E_NO_DEST;
  const d = destOf(id);
  const p = changetype<usize>(scratch);
  writeAddr(d.af, DEST_ADDR, d.a0, d.a1, d.a2, d.a3);
  store<i32>(p, d.af, DEST_AF);
  store<u32>(p, d.port, DEST_PORT);
  store<i32>(p, d.weight, DEST_WEIGHT);
  store<i32>(p, d.lastWeight, DEST_LAST_WEIGHT);
  store<u32>(p, d.uThreshold, DEST_UTHRESHOLD);
  store<u32>(p, d.lThreshold, DEST_LTHRESHOLD);
  store<u32>(p, d.flags, DEST_FLAGS);
  store<u32>(p, d.fwd, DEST_FWD);
  store<u32>(p, d.activeConns, DEST_ACTIVE);
  store<u32>(p, d.inactConns, DEST_INACTIVE);
  store<u32>(p, d.persistConns, DEST_PERSIST);
  store<i32>(p, d.svcId, DEST_SVC);
  store<u64>(p, d.conns, DEST_CONNS);
  store<u64>(p, d.inPkts, DEST_INPKTS);
  store<u64>(p, d.outPkts, DEST_OUTPKTS);
  store<u64>(p, d.inBytes, DEST_INBYTES);
  store<u64>(p, d.outBytes, DEST_OUTBYTES);
  return OK;
}

// ---- scheduling without a connection (trace, simulator, tests) ---------------------------------------
// Source address at ARG_ADDR, destination address at ARG_DST. Returns the chosen destination's id,
// or -100 (no destination; schedFailReason() says why).
let lastFail: i32 = 0;
const NO_DEST_RESULT: i32 = -100; // distinct from the configuration errors
export function schedule(svcId: i32, af: i32, proto: i32, sport: u32, dport: u32, nowMs: f64): i32 {
  const now = <i64>nowMs;
  const s = getService(svcId);
  if (!s) return E_NO_SERVICE;
  fillPacket(af, proto, sport, dport);
  const sched = s.sched;
  if (!sched) {
    lastFail = 1;
    return NO_DEST_RESULT;
  }
  const d = sched.schedule(s, pkt, now);
  if (!d) {
    lastFail = sched.failReason();
    if (lastFail == 0) lastFail = 1;
    return NO_DEST_RESULT;
  }
  lastFail = 0;
  return d.id;
}
export function schedFailReason(): i32 {
  return lastFail;
}

function fillPacket(af: i32, proto: i32, sport: u32, dport: u32): void {
  readAddr(af, ARG_ADDR);
  pkt.af = af;
  pkt.proto = proto;
  pkt.s0 = w0;
  pkt.s1 = w1;
  pkt.s2 = w2;
  pkt.s3 = w3;
  readAddr(af, ARG_DST);
  pkt.d0 = w0;
  pkt.d1 = w1;
  pkt.d2 = w2;
  pkt.d3 = w3;
  pkt.sport = sport;
  pkt.dport = dport;
  pkt.mark = 0;
  pkt.tcpFlags = 0;
}

// Sets a destination's connection counters directly, applying the OVERLOAD rules (tests and the
// simulator's what-if views; the connection table does this itself for real connections).
export function destSetLoad(id: i32, active: u32, inactive: u32): i32 {
  if (id < 0 || id >= destById.length || !unchecked(destById[id])) return E_NO_DEST;
  const d = destOf(id);
  d.activeConns = active;
  d.inactConns = inactive;
  d.updateOverload();
  const s = getService(d.svcId);
  if (s) {
    const sched = s.sched;
    if (sched) sched.loadChanged(s, d);
  }
  return OK;
}

// ---- settings -------------------------------------------------------------------------------------
export function setSetting(id: i32, value: i64): i32 {
  switch (id) {
    case SET_EXPIRE_NODEST_CONN:
      settings.expireNodestConn = <i32>value;
      break;
    case SET_EXPIRE_QUIESCENT_TEMPLATE:
      settings.expireQuiescentTemplate = <i32>value;
      break;
    case SET_CONN_REUSE_MODE:
      settings.connReuseMode = <i32>value;
      break;
    case SET_SLOPPY_TCP:
      settings.sloppyTcp = <i32>value;
      break;
    case SET_CONNTRACK:
      settings.conntrack = <i32>value;
      break;
    case SET_LBLC_EXPIRATION:
      settings.lblcExpirationMs = value;
      break;
    case SET_LBLCR_EXPIRATION:
      settings.lblcrExpirationMs = value;
      break;
    case SET_MH_TABLE_INDEX:
      if (value < 8 || value > 17) return E_BAD_SETTING;
      settings.mhTableIndex = <i32>value;
      break;
    case SET_SH_TABLE_BITS:
      if (value < 4 || value > 20) return E_BAD_SETTING;
      settings.shTableBits = <i32>value;
      break;
    case SET_UDP_TIMEOUT:
      settings.udpTimeoutMs = value;
      break;
    default:
      return E_BAD_SETTING;
  }
  return OK;
}

export function setRandomSeed(seed: u64): void {
  seedRandom(seed);
}

// ---- connections --------------------------------------------------------------------------------
import {
  connInit as tableInit,
  capacity as connCapacityNow,
  connCount,
  templateCount,
  refusedFull,
  evictedClosed,
  evictedOther,
  E,
  expire as expireEntry,
  queueNodestFlush,
  nodestFlushDue,
  clockMs,
  CF_TEMPLATE as CONN_F_TEMPLATE,
} from "./conn/table";
import {
  ADDR_CLIENT,
  ADDR_DEST,
  ADDR_LOCAL,
  ADDR_VIRTUAL,
  entAddr,
  entAf,
  entCport,
  entCtl,
  entDest,
  entDport,
  entExpires,
  entFlags,
  entInpkts,
  entLive,
  entLport,
  entNctl,
  entProto,
  entState,
  entTimeout,
  entVport,
} from "./conn/entry";
import { inbound, outbound, outboundTo, resultConn, dropReason, lastNewConn, setSnat4, setSnat6 } from "./conn/in";
import { tcpTimeoutMs, setUdpTimeoutMs, udpTimeoutMs, TCP_S_ESTABLISHED, TCP_S_FIN_WAIT } from "./conn/state";

// Sizes the connection table (fixed from then on); the tables are empty afterwards.
export function connInit(capacity: u32): i32 {
  return tableInit(capacity);
}
export function connCapacity(): u32 {
  return connCapacityNow;
}
export function connLive(): u32 {
  nodestFlushDue(clockMs);
  return connCount;
}
export function connTemplates(): u32 {
  return templateCount;
}
export function connRefusedFull(): f64 {
  return <f64>refusedFull;
}
// entries freed for a new connection when the table was full: finished (TIME_WAIT, CLOSE), other inactive
export function connEvicted(finished: bool): f64 {
  return <f64>(finished ? evictedClosed : evictedOther);
}

// Frees entry i now if its destination has been deleted (the userspace proxy calls this when the
// sockets of such a flow close: with expire_nodest_conn=0 the flow's last state changes were dropped,
// and the entry would otherwise refuse a client that reuses the source port until it times out).
// Returns whether it was freed.
export function connExpireOrphan(i: i32, nowMs: f64): bool {
  if (i < 0 || <u32>i >= connCapacityNow) return false;
  const e = E(<u32>i);
  if (!entLive(e) || entFlags(e) & CONN_F_TEMPLATE) return false;
  const id = entDest(e);
  if (id < 0 || destOf(id).available()) return false;
  return expireEntry(<u32>i, <i64>nowMs);
}

// Runs the clock: expires connections and runs scheduler timers. Returns the number expired.
export function advance(nowMs: f64): i32 {
  nodestFlushDue(<i64>nowMs);
  return runClock(<i64>nowMs);
}

// One packet described by numbers: source at ARG_ADDR, destination at ARG_DST. dir 0: client to
// service, 1: real server to client (NAT replies). flags: TCP flags, or the SCTP chunk type.
// Returns the verdict (0 not ours, 1 forward, 2 drop); lastConn()/lastDropReason() tell more.
export function packet(
  dir: i32,
  af: i32,
  proto: i32,
  sport: u32,
  dport: u32,
  flags: u32,
  len: u32,
  mark: u32,
  nowMs: f64,
): i32 {
  if (connCapacityNow == 0) tableInit(65536);
  fillPacket(af, proto, sport, dport);
  pkt.tcpFlags = flags;
  pkt.mark = mark;
  return dir == 0 ? inbound(len, <i64>nowMs) : outbound(len, <i64>nowMs);
}
// A reply from the real server on connection entry i (what socket mode knows: the reply's tuple alone may
// name another entry). flags: TCP flags, or the SCTP chunk type. Verdict as packet(); 0 (not ours) when i
// is no live connection of this protocol and client and virtual ports (the flow's entry expired meanwhile).
export function packetReplyTo(i: i32, proto: i32, cport: u32, vport: u32, flags: u32, len: u32, nowMs: f64): i32 {
  if (i < 0 || <u32>i >= connCapacityNow) return 0;
  const e = E(<u32>i);
  if (!entLive(e) || entFlags(e) & CONN_F_TEMPLATE) return 0;
  if (<i32>entProto(e) != proto || <u32>entCport(e) != cport) return 0;
  if (<u32>entVport(e) != vport) return 0;
  pkt.proto = proto;
  pkt.af = <i32>entAf(e);
  pkt.tcpFlags = flags;
  pkt.mark = 0;
  return outboundTo(<u32>i, len, <i64>nowMs);
}
export function lastConn(): i32 {
  return resultConn;
}
export function lastDropReason(): i32 {
  return dropReason;
}
export function lastWasNew(): bool {
  return lastNewConn;
}

// The next live entry at or after index `from`, or -1.
export function connNext(from: i32): i32 {
  nodestFlushDue(clockMs);
  for (let i = <u32>max(from, 0); i < connCapacityNow; i++) if (entLive(E(i))) return <i32>i;
  return -1;
}

// Writes a connection entry to scratch (CONN_* in assembly/layout.ts): four addresses (client, virtual,
// destination, local), then the numbers.
export function connInfo(i: i32): i32 {
  nodestFlushDue(clockMs);
  if (i < 0 || <u32>i >= connCapacityNow) return -1;
  const e = E(<u32>i);
  const p = changetype<usize>(scratch);
  const af = <i32>entAf(e);
  copyAddr(af, CONN_CADDR, e, ADDR_CLIENT);
  copyAddr(af, CONN_VADDR, e, ADDR_VIRTUAL);
  copyAddr(af, CONN_DADDR, e, ADDR_DEST);
  copyAddr(af, CONN_LADDR, e, ADDR_LOCAL);
  store<i32>(p, af, CONN_AF);
  store<i32>(p, entProto(e), CONN_PROTO);
  store<i32>(p, entState(e), CONN_STATE);
  store<u32>(p, entFlags(e), CONN_FLAGS);
  store<u32>(p, entCport(e), CONN_CPORT);
  store<u32>(p, entVport(e), CONN_VPORT);
  store<u32>(p, entDport(e), CONN_DPORT);
  store<u32>(p, entLport(e), CONN_LPORT);
  store<i32>(p, entDest(e), CONN_DEST);
  store<i32>(p, <i32>entCtl(e) - 1, CONN_CONTROLLER);
  store<u32>(p, entNctl(e), CONN_CHILDREN);
  store<u32>(p, entTimeout(e), CONN_TIMEOUT);
  store<f64>(p, <f64>entExpires(e), CONN_EXPIRES);
  store<u32>(p, entInpkts(e), CONN_INPKTS);
  store<u32>(p, entLive(e), CONN_LIVE);
  return 0;
}

// one of entry e's addresses (ADDR_*) into scratch+off
function copyAddr(af: i32, off: i32, e: usize, which: usize): void {
  writeAddr(af, off, entAddr(e, which, 0), entAddr(e, which, 1), entAddr(e, which, 2), entAddr(e, which, 3));
}

// ipvsadm --set tcp tcpfin udp (seconds; 0 leaves a value unchanged)
export function setTimeouts(tcp: u32, tcpfin: u32, udp: u32): void {
  if (tcp) tcpTimeoutMs[TCP_S_ESTABLISHED] = tcp * 1000;
  if (tcpfin) tcpTimeoutMs[TCP_S_FIN_WAIT] = tcpfin * 1000;
  if (udp) setUdpTimeoutMs(udp * 1000);
}
export function getTimeout(which: i32): u32 {
  if (which == 0) return tcpTimeoutMs[TCP_S_ESTABLISHED] / 1000;
  if (which == 1) return tcpTimeoutMs[TCP_S_FIN_WAIT] / 1000;
  return udpTimeoutMs / 1000;
}

// Full-NAT source address for an address family, from ARG_ADDR.
export function setSnatAddr(af: i32): void {
  readAddr(af, ARG_ADDR);
  if (af == AF_INET) setSnat4(w3);
  else setSnat6(w0, w1, w2, w3);
}

// ---- batch entry points for benchmarks and the simulator (one boundary crossing per batch) ----------
import { inBucketOf, lookupIn, lookupInFrom, touchInEntry } from "./conn/table";
import { pfA } from "./prefetch";

// A key area: KEY_SIZE bytes per key (KEY_* in assembly/layout.ts: af, proto, cport, vport, caddr, vaddr,
// addresses in network order); results as i32 connection indexes at resultsPtr.
let keyArea: usize = 0;
let keyResults: usize = 0;
let keyMax: i32 = 0;
export function keyBatchInit(max: i32): usize {
  keyArea = heap.alloc(<usize>max * KEY_SIZE);
  keyResults = heap.alloc(<usize>max * 4);
  keyMax = max;
  return keyArea;
}
export function keyResultsPtr(): usize {
  return keyResults;
}

// the key at p as host-order words (IPv4 in word 3)
let kc0: u32 = 0,
  kc1: u32 = 0,
  kc2: u32 = 0,
  kc3: u32 = 0,
  kv0: u32 = 0,
  kv1: u32 = 0,
  kv2: u32 = 0,
  kv3: u32 = 0;
@inline function readKey(p: usize): void {
  if (<i32>load<u8>(p, KEY_AF) == AF_INET) {
    kc0 = 0;
    kc1 = 0;
    kc2 = 0;
    kc3 = bswap<u32>(load<u32>(p, KEY_CADDR));
    kv0 = 0;
    kv1 = 0;
    kv2 = 0;
    kv3 = bswap<u32>(load<u32>(p, KEY_VADDR));
  } else {
    kc0 = bswap<u32>(load<u32>(p, KEY_CADDR));
    kc1 = bswap<u32>(load<u32>(p, KEY_CADDR + 4));
    kc2 = bswap<u32>(load<u32>(p, KEY_CADDR + 8));
    kc3 = bswap<u32>(load<u32>(p, KEY_CADDR + 12));
    kv0 = bswap<u32>(load<u32>(p, KEY_VADDR));
    kv1 = bswap<u32>(load<u32>(p, KEY_VADDR + 4));
    kv2 = bswap<u32>(load<u32>(p, KEY_VADDR + 8));
    kv3 = bswap<u32>(load<u32>(p, KEY_VADDR + 12));
  }
}

// The client-side index looked up for the key at p: the entry found, or a negative miss.
@inline function lookupKeyAt(p: usize): i32 {
  readKey(p);
  return lookupIn(
    <i32>load<u8>(p, KEY_AF),
    <i32>load<u8>(p, KEY_PROTO),
    kc0,
    kc1,
    kc2,
    kc3,
    load<u32>(p, KEY_CPORT),
    kv0,
    kv1,
    kv2,
    kv3,
    load<u32>(p, KEY_VPORT),
    false,
  );
}

// The same from the chain head `head` (the key's bucket word, loaded by the batch's pre-pass).
@inline function lookupKeyFrom(p: usize, head: u32): i32 {
  readKey(p);
  return lookupInFrom(
    head,
    <i32>load<u8>(p, KEY_AF),
    <i32>load<u8>(p, KEY_PROTO),
    kc0,
    kc1,
    kc2,
    kc3,
    load<u32>(p, KEY_CPORT),
    kv0,
    kv1,
    kv2,
    kv3,
    load<u32>(p, KEY_VPORT),
    false,
  );
}

// Looks up n keys in the client-side index; returns how many were found. Keys go in groups of
// LOOKUP_GROUP. From 32k live connections a group runs in four tight passes: every key's bucket word
// address (hashing, no misses), the bucket words, the chain heads they name, then the lookups from those
// heads; with the hashing out of the loops that miss, the CPU's reorder window holds many keys' loads at
// once (docs/conn-table.md, round 5).
const LOOKUP_GROUP: i32 = 64;
export function lookupBatch(n: i32): i32 {
  if (n > keyMax) n = keyMax;
  let found = 0;
  let warm: u32 = 0;
  for (let g = 0; g < n; g += LOOKUP_GROUP) {
    const end = min(g + LOOKUP_GROUP, n);
    if (connCount >= 32768) {
      for (let k = g; k < end; k++) {
        const p = keyArea + <usize>k * KEY_SIZE;
        readKey(p);
        const a = inBucketOf(<i32>load<u8>(p, KEY_PROTO), kc0, kc1, kc2, kc3, load<u32>(p, KEY_CPORT));
        unchecked((pfA[k - g] = <u32>a));
      }
      for (let i = 0; i < end - g; i++) unchecked((pfA[i] = load<u32>(<usize>unchecked(pfA[i]))));
      for (let i = 0; i < end - g; i++) warm += touchInEntry(unchecked(pfA[i]));
      for (let k = g; k < end; k++) {
        const p = keyArea + <usize>k * KEY_SIZE;
        const r = lookupKeyFrom(p, unchecked(pfA[k - g]));
        store<i32>(keyResults + ((<usize>k) << 2), r);
        if (r >= 0) found++;
      }
    } else {
      for (let k = g; k < end; k++) {
        const p = keyArea + <usize>k * KEY_SIZE;
        const r = lookupKeyAt(p);
        store<i32>(keyResults + ((<usize>k) << 2), r);
        if (r >= 0) found++;
      }
    }
  }
  lookupWarmSink = warm; // a side effect, so the touches are never optimised away
  return found;
}
let lookupWarmSink: u32 = 0;

// One lookup at a time, each key chosen by the previous result: key k + 1 + (r >>> 31) follows key k, and
// r >= 0 for a hit, so it is always the next key, but the CPU cannot start the next lookup's loads before
// this one's result is known (latency, like a pointer chase; lookupBatch measures throughput). Returns how
// many were found; `steps` lookups from key `start`, wrapping at n.
export function lookupChain(n: i32, start: i32, steps: i32): i32 {
  if (n > keyMax) n = keyMax;
  if (n <= 0) return 0;
  let found = 0;
  let k = start > 0 ? start % n : 0;
  for (let i = 0; i < steps; i++) {
    const p = keyArea + <usize>k * KEY_SIZE;
    const r = lookupKeyAt(p);
    if (r >= 0) found++;
    k += 1 + <i32>(<u32>r >>> 31);
    if (k >= n) k -= n;
  }
  return found;
}

// Schedules n new connections on a service from IPv4 clients srcBase+i (port 1024 + i % 60000), without
// creating entries. With bindLoad the chosen destination's inactive count goes up as a new connection's
// would (so least-loaded schedulers see load). Returns a checksum of the chosen ids (-1 per failure).
export function scheduleBatch(svcId: i32, n: i32, srcBase: u32, bindLoad: bool, nowMs: f64): i32 {
  const s = getService(svcId);
  if (!s) return E_NO_SERVICE;
  const sched = s.sched;
  if (!sched) return E_NO_SERVICE;
  const now = <i64>nowMs;
  pkt.af = s.af;
  pkt.proto = s.proto;
  pkt.d0 = s.a0;
  pkt.d1 = s.a1;
  pkt.d2 = s.a2;
  pkt.d3 = s.a3;
  pkt.dport = s.port;
  pkt.s0 = 0;
  pkt.s1 = 0;
  pkt.s2 = 0;
  pkt.mark = 0;
  pkt.tcpFlags = 2;
  let sum: i32 = 0;
  for (let i = 0; i < n; i++) {
    pkt.s3 = srcBase + <u32>i;
    pkt.sport = 1024 + <u32>(i % 60000);
    const d = sched.schedule(s, pkt, now);
    if (!d) {
      sum -= 1;
      continue;
    }
    sum += d.id;
    if (bindLoad) {
      d.inactConns++;
      sched.loadChanged(s, d);
    }
  }
  return sum;
}

// The rest of the surface, by module, each name listed: a module's export reaches the host only through a
// line here, and every export needs its line in src/core/exports.ts too, which types it for the host
// (test/boundary.test.ts fails until the two agree with the compiled module).

// every service's and destination's counters in one pass (the proxy's /metrics, src/core/counters.ts)
export { countersWrite, countersPtr } from "./counters";
// benchmark-only exports (bench/, via src/core/bench-api.ts)
export * from "./bench";
// the packet path (src/core/packets.ts); the batch area's other accessors are the traffic generator's
export {
  DESC_SIZE,
  packetSetPrefetch,
  batchInit,
  batchDataPtr,
  processBatch,
  packetDropCount,
  packetVerdictCount,
  packetResetCounters,
  packetReasonLimit,
  packetSetTtlMode,
  packetSetFwmarkTwins,
  packetFragmentCount,
} from "./packet/exports";
// tracing, host side (the schedulers' side of ./trace stays inside the module)
export {
  traceEnable,
  traceEnabled,
  traceBuf,
  traceWords,
  traceCapacity,
  traceCount,
  traceReset,
  traceQuery,
} from "./trace";
// the simulator's traffic generator (src/core/sim.ts)
export {
  SIM_DONE,
  SIM_E_SLOTS,
  SIM_E_NOT_READY,
  simInit,
  simRun,
  simMade,
  simPackets,
  simTicks,
  simOpenPeak,
  simPerServicePtr,
  simRecordPtr,
  simRecorded,
} from "./sim/traffic";
// connection synchronisation, the kernel's wire format (src/proxy/sync.ts)
export {
  syncRxBuffer,
  syncRecords,
  syncReceive,
  syncRxBatch,
  syncRxBatchData,
  syncReceiveBatch,
  syncOutList,
  syncStat,
  syncStatsReset,
  syncMasterStart,
  syncMasterStop,
  syncFlush,
  syncOutPtr,
  syncOutLen,
  syncOutDone,
  syncEmitAll,
  syncEmitFrom,
} from "./sync/codec";
