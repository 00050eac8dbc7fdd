// The decision half of ip_vs_in / ip_vs_out: given the packet described in `pkt`, find or create its
// connection (scheduling, persistence templates, one-packet, connection reuse) and update states,
// counters and timers. The packet path (assembly/packet) parses bytes into `pkt` and rewrites them
// from the connection this returns; the simulator calls it directly.
import {
  AF_INET,
  AF_INET6,
  IPPROTO_TCP,
  IPPROTO_UDP,
  IPPROTO_SCTP,
  IPPROTO_IP,
  SVC_F_ONEPACKET,
  FWD_MASQ,
  FWD_FULLNAT,
} from "../common";
import { Dest, destOf } from "../dest/dest";
import { Service, lookupService, lookupFwmark, getService, serviceById } from "../service/service";
import { pkt } from "../packet/info";
import { settings } from "../settings";
import {
  E,
  CF_TEMPLATE,
  CF_NOOUTPUT,
  CF_ONE_PACKET,
  CF_INACTIVE,
  lookupIn,
  lookupOut,
  setKey,
  connNew,
  setState,
  refresh,
  expire,
  controlAdd,
  invalidateTemplate,
  setLocal,
  nodestFlushDue,
} from "./table";
import {
  entAf,
  entCtl,
  entDest,
  entDport,
  entFlags,
  entInpkts,
  entNctl,
  entProto,
  entState,
  setEntFlags,
  setEntInpkts,
  setEntState,
  setEntTimeout,
} from "./entry";
import {
  tcpNextState,
  tcpTimeoutMs,
  udpTimeoutMs,
  DIR_INPUT,
  DIR_OUTPUT,
  DIR_INPUT_ONLY,
  TH_SYN,
  TH_RST,
  TH_ACK,
  tcpStateActive,
  TCP_S_TIME_WAIT,
  TCP_S_CLOSE,
  TCP_S_FIN_WAIT,
  TCP_S_ESTABLISHED,
} from "./state";
import { sctpNextState, sctpTimeoutMs, SCTP_S_ESTABLISHED, SCTP_S_CLOSED, SCTP_CHUNK_INIT } from "./sctp";
import { syncMasterOn, syncConn } from "../sync/codec";
import { rrSchedule } from "../sched/rr";

// Verdicts
export const V_NOT_OURS: i32 = 0; // no service or no connection: the local stack's (NF_ACCEPT)
export const V_FORWARD: i32 = 1; // forward: client->server (inbound) or server->client (outbound)
export const V_DROP: i32 = 2; // dropped; dropReason says why

// Drop reasons, shared with the packet path (which adds its parse reasons from 16 up)
export const DROP_NO_DEST: i32 = 1; // scheduler found no destination: ICMP port unreachable
export const DROP_TABLE_FULL: i32 = 2; // connection table full
export const DROP_DEST_GONE: i32 = 3; // connection's destination deleted (expire_nodest_conn=0)
export const DROP_REUSE_CONNTRACK: i32 = 4; // reused tuple with a confirmed conntrack: SYN dropped
export const DROP_PORT_MISMATCH: i32 = 5; // non-persistent port-0 / mismatched service port
export const DROP_NO_LOCAL_PORT: i32 = 6; // full-NAT found no free local port

export let resultConn: i32 = -1;
export let resultDest: i32 = -1; // kept even when a one-packet entry is freed at once
export let dropReason: i32 = 0;
export let lastNewConn: bool = false; // the last inbound() created a connection

// Packet mode with a fwmark service's netfilter queue (set by the host): each packet of a marked flow comes
// twice, the AF_PACKET tap's copy first (no mark: the tap runs before netfilter), then the queue's with its
// mark. The queue's is the one IPVS would see; a fwmark connection's unmarked client packets are the tap's
// twins and not ours. Off: every packet counts, as in the kernel (the replay and the simulator).
export let fwmarkTwins: bool = false;
export function setFwmarkTwins(on: bool): void {
  fwmarkTwins = on;
}
@inline function notOurs(): i32 {
  resultConn = -1;
  return V_NOT_OURS;
}
function ofFwmarkService(i: u32): bool {
  const id = entDest(E(i));
  if (id < 0) return false;
  const s = getService(destOf(id).svcId);
  return s != null && s.isFwmark();
}

// Full-NAT local (source) addresses, set by the host
let snat4: u32 = 0;
let snat6_0: u32 = 0,
  snat6_1: u32 = 0,
  snat6_2: u32 = 0,
  snat6_3: u32 = 0;
export function setSnat4(a: u32): void {
  snat4 = a;
}
export function setSnat6(a0: u32, a1: u32, a2: u32, a3: u32): void {
  snat6_0 = a0;
  snat6_1 = a1;
  snat6_2 = a2;
  snat6_3 = a3;
}

@inline function drop(reason: i32): i32 {
  dropReason = reason;
  resultConn = -1;
  resultDest = -1;
  return V_DROP;
}

// ip_vs_control_assure_ct: the template of a connection that reached ESTABLISHED (or got a UDP reply) becomes
// ASSURED, as /proc/net/ip_vs_conn shows it (issue 14's random runs found every wasmvs template left NONE)
export const CTPL_S_ASSURED: u8 = 1;
function assureTemplate(e: usize): void {
  const ctl = entCtl(e);
  if (ctl == 0) return;
  const t = E(ctl - 1);
  if (entFlags(t) & CF_TEMPLATE) setEntState(t, CTPL_S_ASSURED);
}

// The protocol state transition for one packet in a direction, with its counters and timeout.
export function transition(i: u32, dir: i32, now: i64): void {
  const e = E(i);
  const proto = <i32>entProto(e);
  if (proto == IPPROTO_TCP) {
    let block = dir;
    const f = entFlags(e);
    if (f & CF_NOOUTPUT) {
      if (dir == DIR_OUTPUT) setEntFlags(e, f & ~CF_NOOUTPUT);
      else block = DIR_INPUT_ONLY;
    }
    const ns = tcpNextState(block, pkt.tcpFlags, entState(e));
    if (ns == TCP_S_ESTABLISHED && entState(e) != ns) assureTemplate(e);
    setState(i, ns, tcpStateActive(ns));
    refresh(i, unchecked(tcpTimeoutMs[ns]), now);
  } else if (proto == IPPROTO_SCTP) {
    let sdir = dir;
    const f = entFlags(e);
    if (f & CF_NOOUTPUT) {
      if (dir == DIR_OUTPUT) setEntFlags(e, f & ~CF_NOOUTPUT);
      else sdir = DIR_INPUT_ONLY;
    }
    const ns = sctpNextState(sdir, pkt.tcpFlags, entState(e));
    if (ns == SCTP_S_ESTABLISHED && entState(e) != ns) assureTemplate(e);
    setState(i, ns, ns == SCTP_S_ESTABLISHED);
    refresh(i, unchecked(sctpTimeoutMs[ns]), now);
  } else {
    if (dir == DIR_OUTPUT) assureTemplate(e);
    refresh(i, udpTimeoutMs, now);
  }
}

// per-packet stats; an available destination always has a live service (d.svcId is valid)
@inline function countIn(d: Dest, len: u32): void {
  if (!d.available()) return;
  d.inPkts++;
  d.inBytes += len;
  const s = changetype<Service>(unchecked(serviceById[d.svcId]));
  s.inPkts++;
  s.inBytes += len;
}

@inline function countOut(d: Dest, len: u32): void {
  if (!d.available()) return;
  d.outPkts++;
  d.outBytes += len;
  const s = changetype<Service>(unchecked(serviceById[d.svcId]));
  s.outPkts++;
  s.outBytes += len;
}

function isNewConn(): bool {
  if (pkt.proto == IPPROTO_TCP) return (pkt.tcpFlags & TH_SYN) != 0;
  if (pkt.proto == IPPROTO_SCTP) return pkt.tcpFlags == SCTP_CHUNK_INIT;
  return false;
}

function newConnExpected(i: u32): bool {
  const e = E(i);
  if (entCtl(e) != 0) return false; // controlled by a persistence template
  const st = entState(e);
  const proto = <i32>entProto(e);
  if (proto == IPPROTO_TCP) {
    return (
      st == TCP_S_TIME_WAIT ||
      st == TCP_S_CLOSE ||
      ((settings.connReuseMode & 2) != 0 && st == TCP_S_FIN_WAIT && (entFlags(e) & CF_NOOUTPUT) != 0)
    );
  }
  if (proto == IPPROTO_SCTP) return st == SCTP_S_CLOSED;
  return false;
}

// ip_vs_service_find: fwmark, then <proto, vaddr, vport>, then the port-0 service on the VIP.
function findService(): Service | null {
  if (pkt.mark != 0) {
    const s = lookupFwmark(pkt.af, pkt.mark);
    if (s) return s;
  }
  let s = lookupService(pkt.af, pkt.proto, pkt.d0, pkt.d1, pkt.d2, pkt.d3, pkt.dport);
  if (s) return s;
  return lookupService(pkt.af, pkt.proto, pkt.d0, pkt.d1, pkt.d2, pkt.d3, 0);
}

// The client's network under the service's persistence netmask
let sn0: u32 = 0,
  sn1: u32 = 0,
  sn2: u32 = 0,
  sn3: u32 = 0;
function maskClient(s: Service): void {
  if (s.af == AF_INET) {
    sn0 = 0;
    sn1 = 0;
    sn2 = 0;
    sn3 = pkt.s3 & s.netmask;
    return;
  }
  const plen = <i32>s.netmask;
  sn0 = pkt.s0 & prefixWord(plen, 0);
  sn1 = pkt.s1 & prefixWord(plen, 1);
  sn2 = pkt.s2 & prefixWord(plen, 2);
  sn3 = pkt.s3 & prefixWord(plen, 3);
}
@inline function prefixWord(plen: i32, w: i32): u32 {
  const bits = plen - w * 32;
  if (bits >= 32) return 0xffffffff;
  if (bits <= 0) return 0;
  return ~(<u32>0xffffffff >>> <u32>bits);
}

// ip_vs_check_template: a template whose destination is gone (or quiesced, with
// expire_quiescent_template) is invalidated so it never matches again.
function templateValid(t: u32): bool {
  const e = E(t);
  const id = entDest(e);
  if (id >= 0) {
    const d = destOf(id);
    if (d.available() && !(settings.expireQuiescentTemplate != 0 && d.weight == 0)) return true;
  }
  invalidateTemplate(t);
  return false;
}

// Creates the connection for the current packet on service s: ip_vs_schedule / ip_vs_sched_persist.
// Returns the entry index or -1 with dropReason set.
function scheduleConn(s: Service, now: i64): i32 {
  const sched = s.sched;
  const onePacket: u32 = (s.flags & SVC_F_ONEPACKET) != 0 && pkt.proto == IPPROTO_UDP ? CF_ONE_PACKET : 0;
  if (s.persistent()) {
    maskClient(s);
    // template key: <proto, client net, 0, vip, vport> for the service port; fwmark and port-0 services
    // key on <IPPROTO_IP, net, 0, fwmark, 0> and <proto, net, 0, vip, 0>
    let tproto = pkt.proto,
      tv0 = pkt.d0,
      tv1 = pkt.d1,
      tv2 = pkt.d2,
      tv3 = pkt.d3,
      tvport: u32 = 0;
    const portMatch = pkt.dport == s.port && !s.isFwmark();
    if (portMatch) tvport = s.port == 21 ? 0 : s.port;
    else if (s.isFwmark()) {
      tproto = IPPROTO_IP;
      tv0 = 0;
      tv1 = 0;
      tv2 = 0;
      tv3 = s.fwmark;
    }
    let t = lookupIn(s.af, tproto, sn0, sn1, sn2, sn3, 0, tv0, tv1, tv2, tv3, tvport, true);
    let d: Dest | null = null;
    if (t >= 0 && templateValid(<u32>t)) {
      d = destOf(entDest(E(<u32>t)));
    } else {
      d = s.schedInline ? rrSchedule(s) : sched ? sched.schedule(s, pkt, now) : null;
      if (!d) return -DROP_NO_DEST;
      setKey(s.af, tproto, sn0, sn1, sn2, sn3, 0, tv0, tv1, tv2, tv3, tvport);
      t = connNew(d, portMatch && s.port != 21 ? d.port : 0, CF_TEMPLATE, now);
      if (t < 0) return -DROP_TABLE_FULL;
      setEntTimeout(E(<u32>t), s.timeout * 1000);
    }
    let dport = pkt.dport;
    if (dport == s.port && d.port != 0) dport = d.port;
    setKey(pkt.af, pkt.proto, pkt.s0, pkt.s1, pkt.s2, pkt.s3, pkt.sport, pkt.d0, pkt.d1, pkt.d2, pkt.d3, pkt.dport);
    const c = connNew(d, dport, onePacket, now);
    if (c < 0) return -DROP_TABLE_FULL;
    controlAdd(<u32>c, <u32>t);
    // each new child restarts the template's timer
    refresh(<u32>t, s.timeout * 1000, now);
    d.conns++;
    s.conns++;
    return c;
  }
  if (!s.isFwmark() && pkt.dport != s.port) return -DROP_PORT_MISMATCH;
  const d = s.schedInline ? rrSchedule(s) : sched ? sched.schedule(s, pkt, now) : null;
  if (!d) return -DROP_NO_DEST;
  setKey(pkt.af, pkt.proto, pkt.s0, pkt.s1, pkt.s2, pkt.s3, pkt.sport, pkt.d0, pkt.d1, pkt.d2, pkt.d3, pkt.dport);
  const c = connNew(d, d.port != 0 ? d.port : pkt.dport, onePacket, now);
  if (c < 0) return -DROP_TABLE_FULL;
  d.conns++;
  s.conns++;
  return c;
}

// Full-NAT: pick a local port so the reply side (daddr:dport <- laddr:lport) is unique.
function assignLocal(i: u32): bool {
  const e = E(i);
  const af = <i32>entAf(e);
  let l0: u32 = 0,
    l1: u32 = 0,
    l2: u32 = 0,
    l3: u32 = snat4;
  if (af == AF_INET6) {
    l0 = snat6_0;
    l1 = snat6_1;
    l2 = snat6_2;
    l3 = snat6_3;
  }
  const dport = <u32>entDport(e);
  const d = destOf(entDest(e));
  let port: u32 = 1024 + ((pkt.sport * 2654435761 + i * 40503) % 64512);
  for (let tries = 0; tries < 128; tries++) {
    if (lookupOut(af, <i32>entProto(e), d.a0, d.a1, d.a2, d.a3, dport, l0, l1, l2, l3, port) < 0) {
      setLocal(i, l0, l1, l2, l3, port);
      return true;
    }
    port = port >= 65535 ? 1024 : port + 1;
  }
  return false;
}

// Client -> virtual service. len: the packet's length for the byte counters.
export function inbound(len: u32, now: i64): i32 {
  nodestFlushDue(now);
  lastNewConn = false;
  let c = lookupIn(
    pkt.af,
    pkt.proto,
    pkt.s0,
    pkt.s1,
    pkt.s2,
    pkt.s3,
    pkt.sport,
    pkt.d0,
    pkt.d1,
    pkt.d2,
    pkt.d3,
    pkt.dport,
    false,
  );
  if (c >= 0 && fwmarkTwins && pkt.mark == 0 && ofFwmarkService(<u32>c)) return notOurs();
  // connection reuse: a new SYN on an old entry (conn_reuse_mode, expire_nodest_conn). A quiesced destination's
  // entry is rescheduled with expire_nodest_conn whatever conn_reuse_mode says (Linux 6.1 in the VM, and its
  // source: only is_new_conn_expected's branch asks for conn_reuse_mode)
  if (c >= 0 && isNewConn()) {
    const i = <u32>c;
    const e = E(i);
    let resched = false,
      oldCt = false;
    const id = entDest(e);
    if (settings.expireNodestConn != 0 && id >= 0 && destOf(id).weight == 0) {
      resched = true;
      oldCt = settings.conntrack != 0;
    } else if (settings.connReuseMode != 0 && newConnExpected(i)) {
      oldCt = settings.conntrack != 0;
      resched = entNctl(e) == 0 ? true : !oldCt;
    }
    if (resched) {
      if (entNctl(e) == 0) expire(i, now);
      if (oldCt) return drop(DROP_REUSE_CONNTRACK);
      c = -1;
    }
  }
  if (c < 0) {
    // only a SYN (TCP), an INIT (SCTP) or any UDP packet may create a connection
    if (pkt.proto == IPPROTO_TCP) {
      if ((pkt.tcpFlags & TH_RST) != 0) {
        resultConn = -1;
        return V_NOT_OURS;
      }
      if ((pkt.tcpFlags & TH_SYN) == 0 && settings.sloppyTcp == 0) {
        resultConn = -1;
        return V_NOT_OURS;
      }
    } else if (pkt.proto == IPPROTO_SCTP) {
      if (pkt.tcpFlags != SCTP_CHUNK_INIT) {
        resultConn = -1;
        return V_NOT_OURS;
      }
    }
    const s = findService();
    if (!s) {
      resultConn = -1;
      return V_NOT_OURS;
    }
    c = scheduleConn(s, now);
    if (c < 0) return drop(-c);
    lastNewConn = true;
    const e = E(<u32>c);
    const fwd = entFlags(e) & 7;
    if (fwd == FWD_FULLNAT && !assignLocal(<u32>c)) {
      expire(<u32>c, now);
      return drop(DROP_NO_LOCAL_PORT);
    }
  }
  const i = <u32>c;
  const e = E(i);
  const d = destOf(entDest(e));
  if (!d.available()) {
    if (settings.expireNodestConn != 0) {
      const oldCt = settings.conntrack != 0;
      expire(i, now);
      if (oldCt) return drop(DROP_DEST_GONE);
      return inbound(len, now); // the entry is gone: schedule this packet afresh
    }
    return drop(DROP_DEST_GONE);
  }
  countIn(d, len);
  transition(i, DIR_INPUT, now);
  const pkts = entInpkts(e) + 1;
  setEntInpkts(e, pkts);
  // the sync master: the entry (and its template) into the next message when it needs sending
  if (syncMasterOn) syncConn(i, pkts, now);
  resultConn = c;
  resultDest = d.id;
  // one-packet entries are never hashed and go as soon as their packet is through
  if (entFlags(e) & CF_ONE_PACKET) {
    // the caller reads the entry before the next packet; it is freed now but left intact in memory
    expire(i, now);
  }
  return V_FORWARD;
}

// Real server -> client (NAT replies): source is the server, destination the client side.
export function outbound(len: u32, now: i64): i32 {
  nodestFlushDue(now);
  const c = lookupOut(
    pkt.af,
    pkt.proto,
    pkt.s0,
    pkt.s1,
    pkt.s2,
    pkt.s3,
    pkt.sport,
    pkt.d0,
    pkt.d1,
    pkt.d2,
    pkt.d3,
    pkt.dport,
  );
  if (c < 0) {
    resultConn = -1;
    return V_NOT_OURS;
  }
  return outboundTo(<u32>c, len, now);
}

// A reply on entry i, found by its tuple (outbound) or known to the caller (socket mode holds each flow's
// entry: one client port talking to two VIPs that share a real server gives two entries one reply tuple).
export function outboundTo(i: u32, len: u32, now: i64): i32 {
  nodestFlushDue(now);
  const e = E(i);
  const id = entDest(e);
  if (id >= 0) countOut(destOf(id), len);
  transition(i, DIR_OUTPUT, now);
  resultConn = <i32>i;
  resultDest = id;
  return V_FORWARD;
}
