// IPVS connection synchronisation (net/netfilter/ipvs/ip_vs_sync.c), the kernel's wire format version 1:
// a backup's receive path (check a message, then create or update each entry in the connection table,
// bound to the local destination by address and port, as ip_vs_proc_conn does) and a master's send path
// (entries appended to messages in place as packets change them, as ip_vs_sync_conn does). The host only
// moves datagrams: it copies one into syncRxBuffer() and calls syncReceive, and sends what syncOutPtr
// lists. Nothing is allocated per message or per entry; every read is checked against the datagram's length.
import {
  AF_INET,
  AF_INET6,
  IPPROTO_IP,
  IPPROTO_TCP,
  IPPROTO_UDP,
  IPPROTO_SCTP,
  FWD_FULLNAT,
  FWD_MASQ,
} from "../common";
import { Dest, destOf } from "../dest/dest";
import { Service, lookupService, lookupFwmark, getService } from "../service/service";
import {
  E,
  capacity,
  CF_TEMPLATE,
  CF_INACTIVE,
  CF_ONE_PACKET,
  lookupIn,
  setKey,
  connNew,
  setState,
  refresh,
  expire,
  setLocal,
} from "../conn/table";
import {
  ADDR_CLIENT,
  ADDR_DEST,
  ADDR_LOCAL,
  ADDR_VIRTUAL,
  entAddr,
  entAddrEq,
  entAddrSame,
  entAf,
  entCport,
  entCtl,
  entDest,
  entDport,
  entFlags,
  entInpkts,
  entLive,
  entLport,
  entProto,
  entState,
  entSyncState,
  entTimeout,
  entVport,
  setEntInpkts,
  setEntState,
  setEntSyncState,
} from "../conn/entry";
import { tcpTimeoutMs, udpTimeoutMs, TCP_S_LAST } from "../conn/state";
import { sctpTimeoutMs, SCTP_S_LAST, SCTP_S_ESTABLISHED } from "../conn/sctp";
import {
  SYNC_REC_SIZE,
  SYNC_REC_CADDR,
  SYNC_REC_VADDR,
  SYNC_REC_DADDR,
  SYNC_REC_LADDR,
  SYNC_REC_AF,
  SYNC_REC_PROTO,
  SYNC_REC_STATE,
  SYNC_REC_FLAGS,
  SYNC_REC_CPORT,
  SYNC_REC_VPORT,
  SYNC_REC_DPORT,
  SYNC_REC_LPORT,
  SYNC_REC_FWMARK,
  SYNC_REC_TIMEOUT,
  SYNC_REC_OPTS,
  SYNC_REC_VERDICT,
} from "../layout";

// ---- the wire ---------------------------------------------------------------------------------------
const HDR_V0: u32 = 4; // nr_conns u8, syncid u8, size be16
const HDR_V1: u32 = 8; // reserved u8 (0), syncid u8, size be16, nr_conns u8, version s8 (1), spare u16 (0)
const ENTRY_V4: u32 = 36; // type, protocol, ver_size, flags, state, cport, vport, dport, fwmark, timeout, 3 addrs
const ENTRY_V6: u32 = 72;
const ENTRY_V0: u32 = 24; // version 0: IPv4 only, 16-bit flags, no timeout or fwmark
const V0_OPTIONS: u32 = 24; // version 0's sequence options (two ip_vs_seq), sent when a SEQ flag is set
const SEQ_OPTIONS: u32 = 24;
const TYPE_INET6: u32 = 1;
const OPT_SEQ_DATA: u32 = 1;
const OPT_PE_DATA: u32 = 2;
const OPT_PE_NAME: u32 = 3;
const OPT_F_PARAM: u32 = 0x40; // "may be skipped": a receiver that does not know the type ignores it
// Ours: full-NAT's local address and port (16 or 4 address bytes, then the port). Flagged skippable, and
// of a type the kernel does not parse, so a kernel backup drops the option and keeps the entry.
export const OPT_FULLNAT_LOCAL: u32 = OPT_F_PARAM | 8;
const PE_DATA_MAX: u32 = 255; // IP_VS_PEDATA_MAXLEN
const PE_NAME_MAX: u32 = 16; // IP_VS_PENAME_MAXLEN

// the kernel's connection flags as they travel (IP_VS_CONN_F_*)
const F_FWD_MASK: u32 = 0x0007;
const F_SYNC: u32 = 0x0020;
const F_HASHED: u32 = 0x0040;
const F_NOOUTPUT: u32 = 0x0080;
const F_SEQ_MASK: u32 = 0x0600;
const F_NO_CPORT: u32 = 0x0800;
// what a backup keeps of a received entry's flags (IP_VS_CONN_F_BACKUP_MASK), and may change on an update
const F_BACKUP_MASK: u32 = F_FWD_MASK | F_NOOUTPUT | CF_INACTIVE | F_SEQ_MASK | F_NO_CPORT | CF_TEMPLATE;
const CTPL_S_LAST: u32 = 2;
const UDP_S_LAST: u32 = 1;
const TEMPLATE_DEFAULT_MS: u32 = 180000; // a template sent with no timeout lives 3 minutes (ip_vs_proc_conn)

// ---- what is counted --------------------------------------------------------------------------------
// Whole messages dropped (reasons 1..8) and single entries skipped (9..16), by reason; the host names them
// (src/proxy/sync.ts SYNC_REASONS). A message cut off part way (5..7) keeps the entries before the fault,
// as the kernel's receiver does.
export const SR_SHORT: i32 = 1; // shorter than a header
export const SR_SIZE: i32 = 2; // its size field is not its length
export const SR_SYNCID: i32 = 3; // another director pair's syncid
export const SR_OVERSIZED: i32 = 4; // longer than the receive limit (sync_maxlen)
export const SR_TRUNCATED: i32 = 5; // an entry runs past the message's end
export const SR_ENTRY_VERSION: i32 = 6; // an entry of an unknown version
export const SR_BAD_ENTRY: i32 = 7; // a bad type or option (zero or overlong length, twice, bad size)
export const SR_V0: i32 = 8; // a version 0 message whose entries could not be read
export const SR_MANDATORY: i32 = 9; // entry: an unknown option not marked skippable
export const SR_PROTO: i32 = 10; // entry: a protocol we do not balance
export const SR_STATE: i32 = 11; // entry: a state out of its protocol's range
export const SR_PE: i32 = 12; // entry: persistence-engine data (no engine here, as a kernel without sip)
export const SR_NO_DEST: i32 = 13; // entry: no local service and destination to bind it to
export const SR_TABLE_FULL: i32 = 14; // entry: the connection table is full
export const SR_STALE: i32 = 15; // entry: the end of a connection already replaced (ip_vs_proc_conn ignores it)
export const SR_QUEUE_FULL: i32 = 16; // master: an entry not sent, every outgoing message waiting
const SR_COUNT: i32 = 24;
// counters past the reasons
export const SS_MESSAGES: i32 = 17; // messages received
export const SS_ENTRIES: i32 = 18; // entries received
export const SS_CREATED: i32 = 19; // entries created in the table
export const SS_UPDATED: i32 = 20; // entries that updated one there
export const SS_V0_MESSAGES: i32 = 21; // version 0 messages read
export const SS_SENT_ENTRIES: i32 = 22; // master: entries put in messages
export const SS_SENT_MESSAGES: i32 = 23; // master: messages closed for sending
const stats = new StaticArray<u64>(SR_COUNT);

// ---- receive --------------------------------------------------------------------------------------------
export const RX_MAX: u32 = 65536;
let rx: usize = 0;
let records: usize = 0;
const RECORDS_MAX: u32 = 256; // nr_conns is a u8

export function syncRxBuffer(): usize {
  if (rx == 0) {
    rx = heap.alloc(<usize>RX_MAX);
    records = heap.alloc(<usize>(RECORDS_MAX * <u32>SYNC_REC_SIZE));
  }
  return rx;
}
export function syncRecords(): usize {
  syncRxBuffer();
  return records;
}
export function syncStat(which: i32): f64 {
  if (which < 0 || which >= SR_COUNT) return 0;
  return <f64>unchecked(stats[which]);
}
export function syncStatsReset(): void {
  for (let k = 0; k < SR_COUNT; k++) unchecked((stats[k] = 0));
}

@inline function count(reason: i32): void {
  unchecked((stats[reason] = stats[reason] + 1));
}
// Reads of the datagram; the debug build traps on any byte past its length (the fuzz test runs that build),
// the release build compiles the asserts out and relies on the length checks around each read.
let rxLen: u32 = 0;
@inline function rd8(o: u32): u32 {
  assert(<u64>o + 1 <= <u64>rxLen);
  return <u32>load<u8>(rx + <usize>o);
}
@inline function rd16(o: u32): u32 {
  assert(<u64>o + 2 <= <u64>rxLen);
  return <u32>bswap<u16>(load<u16>(rx + <usize>o));
}
@inline function rd32(o: u32): u32 {
  assert(<u64>o + 4 <= <u64>rxLen);
  return bswap<u32>(load<u32>(rx + <usize>o));
}

// the entry being read, in host order (IPv4 in word 3, as the connection table keeps it)
let eAf: i32 = AF_INET,
  eProto: u32 = 0,
  eFlags: u32 = 0,
  eState: u32 = 0,
  eCport: u32 = 0,
  eVport: u32 = 0,
  eDport: u32 = 0,
  eFwmark: u32 = 0,
  eTimeout: u32 = 0,
  eOpts: u32 = 0,
  eLport: u32 = 0;
const eC = new StaticArray<u32>(4);
const eV = new StaticArray<u32>(4);
const eD = new StaticArray<u32>(4);
const eL = new StaticArray<u32>(4);
let peDataLen: u32 = 0;

// syncid: this backup's (0 takes every message). maxlen: the receive limit. mode 0 applies each entry to the
// connection table; mode 1 only decodes, into syncRecords() (for tests and tools). Returns the entries
// read (decoded or handed to the table, whatever became of them), or -reason when the message was dropped
// before its first entry.
export function syncReceive(len: u32, syncid: u32, maxlen: u32, mode: i32, now: f64): i32 {
  syncRxBuffer();
  count(SS_MESSAGES);
  if (len > RX_MAX || (maxlen != 0 && len > maxlen)) return reject(SR_OVERSIZED);
  if (len < HDR_V0) return reject(SR_SHORT);
  rxLen = len;
  if (rd16(2) != len) return reject(SR_SIZE);
  if (syncid != 0 && rd8(1) != syncid) return reject(SR_SYNCID);
  const tnow = <i64>now;
  if (len >= HDR_V1 && rd8(0) == 0 && rd8(5) == 1 && rd16(6) == 0) return receiveV1(len, mode, tnow);
  return receiveV0(len, mode, tnow);
}

@inline function reject(reason: i32): i32 {
  count(reason);
  return -reason;
}

// ---- batched receive: the host reads every waiting datagram at once (recvmmsg) into slots here ----------
// syncRxBatch(max, slot) lays out max lengths (u32, the host writes each datagram's own length there) and max
// slots of `slot` bytes each (exactly: the host reads into the same), and returns where the lengths are;
// syncRxBatchData() where the first slot is.
export const RX_BATCH_MAX: u32 = 64;
let batch: usize = 0;
let batchData: usize = 0;
let batchMax: u32 = 0;
let batchSlot: u32 = 0;

export function syncRxBatch(max: u32, slot: u32): usize {
  if (max == 0 || max > RX_BATCH_MAX || slot == 0 || slot > RX_MAX) return 0;
  if (batch != 0 && max <= batchMax && slot <= batchSlot) return batch;
  if (batch != 0) heap.free(batch);
  batch = heap.alloc(<usize>(max * 4 + 15 + max * slot));
  batchData = (batch + <usize>(max * 4) + 15) & ~(<usize>15);
  batchMax = max;
  batchSlot = slot;
  return batch;
}
export function syncRxBatchData(): usize {
  return batchData;
}

// The first n datagrams of the batch area, each as syncReceive takes one (mode 0: into the table). Returns
// the entries read over all of them; the dropped ones are counted by reason as single ones are.
export function syncReceiveBatch(n: u32, syncid: u32, maxlen: u32, now: f64): i32 {
  syncRxBuffer();
  if (n > batchMax) n = batchMax;
  const own = rx;
  let entries: i32 = 0;
  for (let k: u32 = 0; k < n; k++) {
    const len = load<u32>(batch + <usize>(k << 2));
    let r: i32;
    if (len > batchSlot) {
      // cut off at its slot (the host makes slots as long as the receive limit, so this is over it)
      count(SS_MESSAGES);
      r = reject(SR_OVERSIZED);
    } else {
      rx = batchData + <usize>(k * batchSlot);
      r = syncReceive(len, syncid, maxlen, 0, now);
    }
    if (r > 0) entries += r;
  }
  rx = own;
  return entries;
}

function receiveV1(len: u32, mode: i32, now: i64): i32 {
  const n = rd8(4);
  let p: u32 = HDR_V1;
  let done: i32 = 0;
  for (let k: u32 = 0; k < n; k++) {
    if (p + ENTRY_V4 > len) return cut(SR_TRUNCATED, done);
    const vs = rd16(p + 2);
    const size = vs & 0x0fff;
    const end = p + size;
    if (end > len) return cut(SR_TRUNCATED, done);
    if (vs >> 12 != 0) return cut(SR_ENTRY_VERSION, done);
    const skip = readV1(p, end);
    if (skip < 0) return cut(SR_BAD_ENTRY, done);
    count(SS_ENTRIES);
    const verdict = skip > 0 ? skip : check();
    if (verdict > 0) count(verdict);
    if (mode == 1) record(<u32>done, verdict);
    else if (verdict == 0) apply(now);
    done++;
    p += (size + 3) & ~3;
  }
  return done;
}

@inline function cut(reason: i32, done: i32): i32 {
  count(reason);
  return done > 0 ? done : -reason;
}

// Reads one version 1 entry at [p, end) into the e* globals. Returns 0, a reason to skip this entry alone,
// or -1 when the message is bad from here on (the kernel drops the rest of the message then).
function readV1(p: u32, end: u32): i32 {
  const type = rd8(p);
  let a: u32 = p + 24;
  if (type & TYPE_INET6) {
    if (p + ENTRY_V6 > end) return -1;
    eAf = AF_INET6;
    for (let w: u32 = 0; w < 4; w++) {
      unchecked((eC[w] = rd32(a + w * 4)));
      unchecked((eV[w] = rd32(a + 16 + w * 4)));
      unchecked((eD[w] = rd32(a + 32 + w * 4)));
    }
    a += 48;
  } else if (type == 0) {
    if (p + ENTRY_V4 > end) return -1;
    eAf = AF_INET;
    for (let w = 0; w < 3; w++) {
      unchecked((eC[w] = 0));
      unchecked((eV[w] = 0));
      unchecked((eD[w] = 0));
    }
    unchecked((eC[3] = rd32(a)));
    unchecked((eV[3] = rd32(a + 4)));
    unchecked((eD[3] = rd32(a + 8)));
    a += 12;
  } else return -1;
  eProto = rd8(p + 1);
  eFlags = rd32(p + 4);
  eState = rd16(p + 8);
  eCport = rd16(p + 10);
  eVport = rd16(p + 12);
  eDport = rd16(p + 14);
  eFwmark = rd32(p + 16);
  eTimeout = rd32(p + 20);
  eOpts = 0;
  eLport = 0;
  peDataLen = 0;
  let skip: i32 = 0;
  // the optional parameters: type u8, length u8 (never 0), data
  while (a < end) {
    if (a + 2 > end) return -1;
    const ptype = rd8(a);
    const plen = rd8(a + 1);
    a += 2;
    if (plen == 0 || a + plen > end) return -1;
    const t = ptype & ~OPT_F_PARAM;
    if (t == OPT_SEQ_DATA) {
      if (plen != SEQ_OPTIONS || eOpts & 1) return -1;
      eOpts |= 1; // sequence offsets (only an application helper changes them; none runs here)
    } else if (t == OPT_PE_DATA) {
      if (plen > PE_DATA_MAX || eOpts & 2) return -1;
      eOpts |= 2;
      peDataLen = plen;
    } else if (t == OPT_PE_NAME) {
      if (plen > PE_NAME_MAX || eOpts & 4) return -1;
      eOpts |= 4;
    } else if (ptype == OPT_FULLNAT_LOCAL && (plen == 6 || plen == 18) && !(eOpts & 8)) {
      eOpts |= 8;
      if (plen == 6) {
        unchecked((eL[0] = 0));
        unchecked((eL[1] = 0));
        unchecked((eL[2] = 0));
        unchecked((eL[3] = rd32(a)));
      } else for (let w: u32 = 0; w < 4; w++) unchecked((eL[w] = rd32(a + w * 4)));
      eLport = rd16(a + plen - 2);
    } else if (!(ptype & OPT_F_PARAM)) skip = SR_MANDATORY;
    a += plen;
  }
  return skip;
}

// ip_vs_proc_sync_conn's checks of a decoded entry: 0 to apply it, or the reason it is skipped
function check(): i32 {
  eFlags = (eFlags & F_BACKUP_MASK) | F_SYNC;
  if (eFlags & CF_TEMPLATE) return 0; // a template's state is not checked (only logged when out of range)
  let states: u32 = 0;
  if (eProto == <u32>IPPROTO_TCP) states = <u32>TCP_S_LAST;
  else if (eProto == <u32>IPPROTO_UDP) states = UDP_S_LAST;
  else if (eProto == <u32>IPPROTO_SCTP) states = <u32>SCTP_S_LAST;
  else return SR_PROTO;
  if (eState >= states) return SR_STATE;
  if (eOpts & 2) return SR_PE;
  return 0;
}

function record(k: u32, verdict: i32): void {
  if (k >= RECORDS_MAX) return;
  const r = records + <usize>(k * <u32>SYNC_REC_SIZE);
  putAddr(r + SYNC_REC_CADDR, eC);
  putAddr(r + SYNC_REC_VADDR, eV);
  putAddr(r + SYNC_REC_DADDR, eD);
  putAddr(r + SYNC_REC_LADDR, eL);
  store<u8>(r + SYNC_REC_AF, <u8>eAf);
  store<u8>(r + SYNC_REC_PROTO, <u8>eProto);
  store<u16>(r + SYNC_REC_STATE, <u16>eState);
  store<u32>(r + SYNC_REC_FLAGS, eFlags);
  store<u16>(r + SYNC_REC_CPORT, <u16>eCport);
  store<u16>(r + SYNC_REC_VPORT, <u16>eVport);
  store<u16>(r + SYNC_REC_DPORT, <u16>eDport);
  store<u16>(r + SYNC_REC_LPORT, <u16>eLport);
  store<u32>(r + SYNC_REC_FWMARK, eFwmark);
  store<u32>(r + SYNC_REC_TIMEOUT, eTimeout);
  store<u32>(r + SYNC_REC_OPTS, eOpts);
  store<i32>(r + SYNC_REC_VERDICT, verdict);
}

// an address as the layout keeps it: 16 network-order bytes, IPv4 in the first 4
function putAddr(at: usize, a: StaticArray<u32>): void {
  if (eAf == AF_INET) {
    store<u32>(at, bswap<u32>(unchecked(a[3])));
    store<u32>(at, 0, 4);
    store<u64>(at, 0, 8);
    return;
  }
  for (let w = 0; w < 4; w++) store<u32>(at + <usize>(w * 4), bswap<u32>(unchecked(a[w])));
}

// Version 0 (sync_version=0 on a kernel master): IPv4, no timeout, no fwmark; read and applied the same way.
function receiveV0(len: u32, mode: i32, now: i64): i32 {
  count(SS_V0_MESSAGES);
  const n = rd8(0);
  let p: u32 = HDR_V0;
  let done: i32 = 0;
  for (let k: u32 = 0; k < n; k++) {
    if (p + ENTRY_V0 > len) return done > 0 ? cut(SR_TRUNCATED, done) : reject(SR_V0);
    eAf = AF_INET;
    eProto = rd8(p + 1);
    eCport = rd16(p + 2);
    eVport = rd16(p + 4);
    eDport = rd16(p + 6);
    for (let w = 0; w < 3; w++) {
      unchecked((eC[w] = 0));
      unchecked((eV[w] = 0));
      unchecked((eD[w] = 0));
      unchecked((eL[w] = 0));
    }
    unchecked((eC[3] = rd32(p + 8)));
    unchecked((eV[3] = rd32(p + 12)));
    unchecked((eD[3] = rd32(p + 16)));
    unchecked((eL[3] = 0));
    eFlags = rd16(p + 20);
    eState = rd16(p + 22);
    eFwmark = 0;
    eTimeout = 0;
    eOpts = 0;
    eLport = 0;
    peDataLen = 0;
    p += ENTRY_V0;
    if (eFlags & F_SEQ_MASK) {
      if (p + V0_OPTIONS > len) return done > 0 ? cut(SR_TRUNCATED, done) : reject(SR_V0);
      eOpts |= 1;
      p += V0_OPTIONS;
    }
    count(SS_ENTRIES);
    const verdict = check();
    if (verdict > 0) count(verdict);
    if (mode == 1) record(<u32>done, verdict);
    else if (verdict == 0) apply(now);
    done++;
  }
  return done;
}

// ---- backup: into the table (ip_vs_proc_conn) ---------------------------------------------------------------

// ip_vs_find_dest: the service by fwmark, else by <protocol, address, port> (then its port-0 service), and
// in it the destination with the entry's address and port (for a fwmark service not in masq, port 0 too)
function findDest(): Dest | null {
  let s: Service | null = null;
  if (eFwmark != 0) s = lookupFwmark(eAf, eFwmark);
  if (!s) {
    const a0 = unchecked(eV[0]),
      a1 = unchecked(eV[1]),
      a2 = unchecked(eV[2]),
      a3 = unchecked(eV[3]);
    s = lookupService(eAf, <i32>eProto, a0, a1, a2, a3, eVport);
    if (!s) s = lookupService(eAf, <i32>eProto, a0, a1, a2, a3, 0);
  }
  if (!s) return null;
  const d0 = unchecked(eD[0]),
    d1 = unchecked(eD[1]),
    d2 = unchecked(eD[2]),
    d3 = unchecked(eD[3]);
  let port = eDport;
  if (eFwmark != 0 && (eFlags & F_FWD_MASK) != 0) port = 0;
  let d = s.findDest(eAf, d0, d1, d2, d3, port);
  if (!d) d = s.findDest(eAf, d0, d1, d2, d3, port ^ eDport);
  // A fwmark service's template carries port 0, and a persistent fwmark service's connection the packet's
  // port (both the kernel's and ours), which its destinations need not have: the kernel keeps such an entry
  // unbound (it still forwards by the entry's own address and port; its template no longer holds).
  // Ours must have a destination, and binds it by address alone; the entry keeps its own port.
  if (!d && s.isFwmark()) {
    const ds = s.dests;
    for (let k = 0, n = ds.length; k < n; k++) {
      const x = unchecked(ds[k]);
      if (x.sameAddr(eAf, d0, d1, d2, d3, x.port)) return x;
    }
  }
  return d;
}

function timeoutMs(): u32 {
  if (eTimeout != 0) return eTimeout > 0x7fffffff / 1000 ? 0x7fffffff : eTimeout * 1000;
  if (eFlags & CF_TEMPLATE) return TEMPLATE_DEFAULT_MS;
  if (eProto == <u32>IPPROTO_TCP) return unchecked(tcpTimeoutMs[eState]);
  if (eProto == <u32>IPPROTO_SCTP) return unchecked(sctpTimeoutMs[eState]);
  return udpTimeoutMs;
}

@inline function activeState(): bool {
  return (eFlags & CF_INACTIVE) == 0;
}

function apply(now: i64): void {
  const tpl = (eFlags & CF_TEMPLATE) != 0;
  // a fwmark service's template is keyed <IPPROTO_IP, client net, 0, fwmark, 0>; the wire carries the mark
  // as the virtual address, which the table keeps in word 3
  const c0 = unchecked(eC[0]),
    c1 = unchecked(eC[1]),
    c2 = unchecked(eC[2]),
    c3 = unchecked(eC[3]);
  let v0 = unchecked(eV[0]),
    v1 = unchecked(eV[1]),
    v2 = unchecked(eV[2]),
    v3 = unchecked(eV[3]);
  if (tpl && eProto == <u32>IPPROTO_IP && eAf == AF_INET6) {
    v3 = v0;
    v0 = 0;
    v1 = 0;
    v2 = 0;
  }
  let i = lookupIn(eAf, <i32>eProto, c0, c1, c2, c3, eCport, v0, v1, v2, v3, eVport, tpl);
  if (i >= 0 && !tpl) {
    const e = E(<u32>i);
    if (<u32>entDport(e) != eDport || !sameDaddr(e)) {
      if (eFlags & CF_INACTIVE) {
        count(SR_STALE); // the end of the connection this entry replaced
        return;
      }
      expire(<u32>i, now);
      i = -1;
    }
  }
  if (i >= 0) {
    const u = <u32>i;
    if (!tpl && entDest(E(u)) >= 0) setState(u, <u8>eState, activeState());
    else setEntState(E(u), <u8>eState);
    refresh(u, timeoutMs(), now);
    count(SS_UPDATED);
    return;
  }
  const d = findDest();
  if (!d) {
    // the kernel keeps such an entry unbound until the destination appears; ours always has a destination
    count(SR_NO_DEST);
    return;
  }
  setKey(eAf, <i32>eProto, c0, c1, c2, c3, eCport, v0, v1, v2, v3, eVport);
  const r = connNew(d, eDport, (eFlags & (CF_TEMPLATE | F_NO_CPORT)) | F_SYNC, now);
  if (r < 0) {
    count(SR_TABLE_FULL);
    return;
  }
  const u = <u32>r;
  if (!tpl) {
    setState(u, <u8>eState, activeState());
    if (eOpts & 8 && d.fwd == FWD_FULLNAT) setLocal(u, eL[0], eL[1], eL[2], eL[3], eLport);
    else if (d.fwd == FWD_FULLNAT || d.fwd == FWD_MASQ) syncedMasq = true;
  } else setEntState(E(u), <u8>eState);
  refresh(u, timeoutMs(), now);
  count(SS_CREATED);
}

function sameDaddr(e: usize): bool {
  return entAddrEq(e, ADDR_DEST, unchecked(eD[0]), unchecked(eD[1]), unchecked(eD[2]), unchecked(eD[3]));
}

// ---- master: out of the table (ip_vs_sync_conn) --------------------------------------------------------------
export let syncMasterOn = false;
// A masqueraded entry came by sync: its replies go to the client itself, so the packet path looks a packet
// that matched no service up as a reply too (assembly/packet/path.ts)
export let syncedMasq = false;
let txSyncid: u32 = 0;
let txMaxlen: u32 = 1472; // 1500 - IPv4 - UDP: the kernel master's limit when none is given
const TX_SLOTS: u32 = 64;
// Each slot holds one message of at most txMaxlen bytes: 64 × 1472 bytes at the default, not 64 × 64 KiB. A
// master's first messages are written into memory nothing touched before (in the kernel VM, where THP is on,
// the 4 MiB of 64 KiB slots cost a fresh core's emit 12 times its cost into touched slots).
let txSlotBytes: u32 = 0;
let txBytes: usize = 0; // allocated at tx
let tx: usize = 0; // TX_SLOTS buffers of txSlotBytes
let txHead: u32 = 0; // the oldest closed message
let txClosed: u32 = 0; // closed messages waiting to be sent
let txCur: u32 = 0; // the slot being filled
let txLen: u32 = 0; // its length so far (0: not started)
let txFirst: i64 = 0; // when its first entry went in
const SYNC_PERIOD: u32 = 50; // sysctl sync_threshold's defaults: an entry goes out at its 3rd packet in,
const SYNC_THRESHOLD: u32 = 3; // then every 50th

export function syncMasterStart(syncid: u32, maxlen: u32): i32 {
  if (syncid > 255 || maxlen > 65507) return -1;
  txSyncid = syncid;
  txMaxlen = maxlen == 0 ? 1472 : max<u32>(maxlen, HDR_V1 + ENTRY_V6 + 20);
  txSlotBytes = (txMaxlen + 15) & ~15;
  const need = <usize>(TX_SLOTS * txSlotBytes);
  if (tx == 0 || need > txBytes) {
    if (tx != 0) heap.free(tx);
    tx = heap.alloc(need);
    txBytes = need;
  }
  txHead = 0;
  txClosed = 0;
  txCur = 0;
  txLen = 0;
  syncMasterOn = true;
  return 0;
}
export function syncMasterStop(): void {
  syncMasterOn = false;
}

@inline function slot(k: u32): usize {
  return tx + <usize>((k % TX_SLOTS) * txSlotBytes);
}

// Closes the message being filled when it is older than ageMs (0: whatever its age). Returns the number of
// messages ready to send.
export function syncFlush(now: f64, ageMs: f64): u32 {
  if (txLen > HDR_V1 && now - <f64>txFirst >= ageMs) closeMessage();
  return txClosed;
}
export function syncOutPtr(k: u32): usize {
  return k < txClosed ? slot(txHead + k) : 0;
}
export function syncOutLen(k: u32): u32 {
  return k < txClosed ? <u32>bswap<u16>(load<u16>(slot(txHead + k), 2)) : 0;
}
// Where the closed messages are, for a host that sends them all in one call: {u32 offset, u32 length} each,
// oldest first (syncFlush's count of them).
let outList: usize = 0;
export function syncOutList(): usize {
  if (outList == 0) outList = heap.alloc(<usize>(TX_SLOTS * 8));
  for (let k: u32 = 0; k < txClosed; k++) {
    const m = slot(txHead + k);
    store<u32>(outList + <usize>(k * 8), <u32>m);
    store<u32>(outList + <usize>(k * 8), <u32>bswap<u16>(load<u16>(m, 2)), 4);
  }
  return outList;
}

// the host sent the first n closed messages
export function syncOutDone(n: u32): void {
  if (n > txClosed) n = txClosed;
  txHead = (txHead + n) % TX_SLOTS;
  txClosed -= n;
  if (txClosed == 0 && txLen == 0) {
    txHead = 0;
    txCur = 0;
  }
}

function closeMessage(): void {
  txClosed++;
  txCur = (txHead + txClosed) % TX_SLOTS;
  txLen = 0;
  count(SS_SENT_MESSAGES);
}

// ip_vs_sync_conn_needed with sync_refresh_period 0: TCP and SCTP entries on a change to a closing state,
// an established one at its 3rd packet in and every 50th after, UDP the same by packets, templates with
// each child sent
function needed(i: u32, pkts: u32): bool {
  const e = E(i);
  const f = entFlags(e);
  if (f & CF_TEMPLATE) return true;
  const proto = <i32>entProto(e);
  const st = entState(e);
  if (proto == IPPROTO_TCP || proto == IPPROTO_SCTP) {
    let est: u8, mask: u32;
    if (proto == IPPROTO_TCP) {
      est = 1;
      mask = (1 << 1) | (1 << 4) | (1 << 5) | (1 << 6) | (1 << 7); // EST, FIN_WAIT, TIME_WAIT, CLOSE, CLOSE_WAIT
    } else {
      est = SCTP_S_ESTABLISHED;
      mask = (1 << 8) | (1 << 9) | (1 << 10) | (1 << 11) | (1 << 13); // EST, SHUTDOWN_*, CLOSED
    }
    if (!((1 << st) & mask)) return false;
    const changed = st != entSyncState(e);
    if (changed && st != est) {
      setEntSyncState(e, st);
      return true;
    }
  }
  if (pkts % SYNC_PERIOD != SYNC_THRESHOLD) return false;
  setEntSyncState(e, st);
  return true;
}

// Called by the data plane after each packet in (pkts: the entry's packets in so far): the entry and then
// its template go out when they need to.
export function syncConn(i: u32, pkts: u32, now: i64): void {
  let cur = i;
  let n = pkts;
  for (let depth = 0; depth < 2; depth++) {
    const e = E(cur);
    if (!(entFlags(e) & CF_ONE_PACKET) && needed(cur, n)) emit(cur, now);
    const ctl = entCtl(e);
    if (ctl == 0) return;
    cur = ctl - 1;
    const te = E(cur);
    n = entInpkts(te) + 1;
    setEntInpkts(te, n);
  }
}

// Appends entry i to the message being filled (closing it first when the entry would not fit).
export function emit(i: u32, now: i64): void {
  const e = E(i);
  const af = <i32>entAf(e);
  const f = entFlags(e);
  const fwd = f & F_FWD_MASK;
  const fullnat = fwd == FWD_FULLNAT && (entLport(e) != entCport(e) || !entAddrSame(e, ADDR_LOCAL, ADDR_CLIENT));
  const alen: u32 = af == AF_INET6 ? 16 : 4;
  let len: u32 = af == AF_INET6 ? ENTRY_V6 : ENTRY_V4;
  if (fullnat) len += 2 + alen + 2;
  let pad: u32 = (4 - (txLen & 3)) & 3;
  if (txLen != 0 && (txLen + pad + len > txMaxlen || load<u8>(slot(txCur), 4) == 255)) {
    closeMessage();
    pad = 0;
  }
  if (txLen == 0) {
    if (txClosed >= TX_SLOTS - 1) {
      count(SR_QUEUE_FULL);
      return;
    }
    const m = slot(txCur);
    store<u8>(m, 0);
    store<u8>(m, <u8>txSyncid, 1);
    store<u16>(m, 0, 2);
    store<u8>(m, 0, 4);
    store<u8>(m, 1, 5);
    store<u16>(m, 0, 6);
    txLen = HDR_V1;
    txFirst = now;
  }
  const m = slot(txCur);
  while (pad > 0) {
    store<u8>(m + <usize>txLen, 0);
    txLen++;
    pad--;
  }
  const p = m + <usize>txLen;
  store<u8>(p, af == AF_INET6 ? <u8>TYPE_INET6 : 0);
  const proto = <u32>entProto(e);
  store<u8>(p, <u8>proto, 1);
  store<u16>(p, bswap<u16>(<u16>(len & 0x0fff)), 2);
  // the kernel has no full-NAT: such an entry travels as masq, its local side in our skippable option
  let wireFlags = f & 0xffff & ~F_HASHED;
  if (fwd == FWD_FULLNAT) wireFlags &= ~F_FWD_MASK;
  store<u32>(p, bswap<u32>(wireFlags), 4);
  store<u16>(p, bswap<u16>(<u16>entState(e)), 8);
  store<u16>(p, bswap<u16>(entCport(e)), 10);
  store<u16>(p, bswap<u16>(entVport(e)), 12);
  store<u16>(p, bswap<u16>(entDport(e)), 14);
  store<u32>(p, bswap<u32>(fwmarkOf(e, f, proto)), 16);
  store<u32>(p, bswap<u32>(entTimeout(e) / 1000), 20);
  let a = p + 24;
  a = putWire(a, e, ADDR_CLIENT, af);
  a = putWire(a, e, ADDR_VIRTUAL, af);
  a = putWire(a, e, ADDR_DEST, af);
  if (fullnat) {
    store<u8>(a, <u8>OPT_FULLNAT_LOCAL);
    store<u8>(a, <u8>(alen + 2), 1);
    a = putWire(a + 2, e, ADDR_LOCAL, af);
    store<u16>(a, bswap<u16>(entLport(e)));
  }
  txLen += len;
  store<u16>(m, bswap<u16>(<u16>txLen), 2);
  store<u8>(m, load<u8>(m, 4) + 1, 4);
  count(SS_SENT_ENTRIES);
}

// the firewall mark the entry came by: a fwmark template keeps it as its address; a connection, its service's
function fwmarkOf(e: usize, f: u32, proto: u32): u32 {
  if (f & CF_TEMPLATE && proto == <u32>IPPROTO_IP) return entAddr(e, ADDR_VIRTUAL, 3);
  const id = entDest(e);
  if (id < 0) return 0;
  const s = getService(destOf(id).svcId);
  return s ? s.fwmark : 0;
}

// an entry's address (four host-order words) onto the wire: 4 bytes for IPv4 (word 3), 16 for IPv6
function putWire(a: usize, e: usize, which: usize, af: i32): usize {
  if (af != AF_INET6) {
    store<u32>(a, bswap<u32>(entAddr(e, which, 3)));
    return a + 4;
  }
  for (let w: usize = 0; w < 4; w++) store<u32>(a + (w << 2), bswap<u32>(entAddr(e, which, w)));
  return a + 16;
}

// The master daemon's send turn, for the benchmark (bench/sync-vm.ts): up to max live entries from index
// `from` on put in messages and kept in the slots for the host to send, as the packet path leaves them for
// the daemon's turn. Returns the index to go on from (capacity: the end of the table).
export function syncEmitFrom(now: f64, from: u32, max: u32): u32 {
  const t = <i64>now;
  let n: u32 = 0;
  let i = from;
  for (; i < capacity && n < max; i++) {
    if (!entLive(E(i))) continue;
    emit(i, t);
    n++;
  }
  return i;
}

// The master's cost alone, for the benchmark: every live entry of the table put in messages once, the
// messages then dropped unsent. Returns the entries emitted.
export function syncEmitAll(now: f64): u32 {
  let n: u32 = 0;
  const t = <i64>now;
  for (let i: u32 = 0; i < capacity; i++) {
    if (!entLive(E(i))) continue;
    emit(i, t);
    n++;
    if (txClosed > TX_SLOTS / 2) syncOutDone(txClosed);
  }
  return n;
}
