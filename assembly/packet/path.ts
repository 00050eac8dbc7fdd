// The packet path for one packet in memory: parse IPv4/IPv6 + TCP/UDP/SCTP into `pkt`, run the decision
// half (conn/in.ts inbound()/outbound()), then rewrite the bytes per the connection's forwarding method
// with incremental checksum updates. No allocation, no I/O; every byte access goes through the
// bounds-asserted helpers below, so the debug build traps on any access outside [0, len) of the packet
// (the release build compiles the asserts out; the parser's own length checks are what keep it inside).
//
// Decisions (see also docs in src/core/packets.ts):
// - IPv4 options are honoured through IHL; the header checksum is verified (the kernel's ip_rcv drops a
//   bad one before IPVS sees it). Fragments (MF or offset) are dropped: the kernel defragments first.
// - Byte access and the current packet [pb, pb+pl) are bytes.ts's.
// - Bytes after the IPv4 total length / IPv6 payload length (link-layer padding) are ignored, as the
//   kernel trims the skb to the IP length; a packet shorter than its IP length is dropped.
// - IPv6 extension headers: hop-by-hop (first only), routing with segments left 0 and destination
//   options are walked (at most 8); a fragment header drops (fragment); AH, mobility, HIP, shim6, the
//   experimental 253/254 and a routing header with segments left > 0 (its final destination would be in
//   the pseudo-header) drop as unsupported; any other next header (ESP, no-next-header) is not ours.
// - ICMP and ICMPv6 errors about a known connection are translated as IPVS does (icmp.ts); other ICMP is
//   not ours.
// - TTL / hop limit: as ip_vs_xmit.c's decrement_ttl() called from __ip_vs_get_out_rt(): inbound packets
//   forwarded by NAT, full-NAT, DR or tunnel get TTL-1 (TTL <= 1: dropped, the kernel sends ICMP time
//   exceeded), LOCAL does not (the route is local). Replies reach IPVS in the FORWARD hook after
//   ip_forward() has already checked and decremented the TTL, so replies are checked before the lookup
//   and decremented when ours. packetSetTtlMode(0) turns this off.
// - L4 checksums are not verified (IPVS only checks them when an application helper is bound); they are
//   updated incrementally, UDP over IPv4 with checksum 0 stays 0, a UDP result of 0 is sent as 0xffff
//   (CSUM_MANGLED_0), and IPv6 UDP with checksum 0 is dropped (RFC 8200 §8.1: receivers discard it).
// - SCTP: the CRC32c is recomputed over the whole SCTP packet when a port changes (sctp_nat_csum); the
//   CRC has no pseudo-header, so address-only changes leave it as is.
import { syncedMasq } from "../sync/codec";
import {
  AF_INET,
  AF_INET6,
  IPPROTO_TCP,
  IPPROTO_UDP,
  IPPROTO_SCTP,
  FWD_MASQ,
  FWD_FULLNAT,
  FWD_LOCALNODE,
} from "../common";
import { pkt } from "./info";
import {
  inbound,
  outbound,
  resultConn,
  resultDest,
  dropReason,
  lastNewConn,
  fwmarkTwins,
  V_NOT_OURS,
  V_FORWARD,
  V_DROP,
} from "../conn/in";
import { inBucketOf, outBucketOf, E } from "../conn/table";
import {
  ADDR_CLIENT,
  ADDR_DEST,
  ADDR_LOCAL,
  ADDR_VIRTUAL,
  entAddr,
  entAddrEq,
  entCport,
  entDest,
  entDport,
  entFlags,
  entLive,
  entLport,
  entVport,
} from "../conn/entry";
import { serviceBucketOf } from "../service/service";
import { pfA, pfB, pfC, pfClear } from "../prefetch";
import { fold, delta32, delta16, csumApply, crc32cSkip } from "./csum";
import { pb, pl, ld8, ld16, ld32, be16, st8, st16, st32, wirePort } from "./bytes";
import { handleIcmp4, handleIcmp6, icmpConn, icmpDest, icmpFwd, RF_ICMP } from "./icmp";
import { fragKey, fragFile, fragFind, fragmentsForwarded, kS0, kS1, kS2, kS3, kD0, kD1, kD2, kD3 } from "./frag";

// Parse and path drop reasons (1..6 are conn/in.ts's)
export const R_TRUNCATED: i32 = 16; // too short for a header it claims or needs
export const R_BAD_VERSION: i32 = 17; // IP version neither 4 nor 6
export const R_BAD_IHL: i32 = 18; // IPv4 IHL < 5 or beyond the packet
export const R_BAD_TOTAL_LENGTH: i32 = 19; // IPv4 total length < IHL or > packet; IPv6 payload beyond packet
export const R_BAD_IP_CSUM: i32 = 20; // IPv4 header checksum wrong
export const R_FRAGMENT: i32 = 21; // a later fragment whose first was not seen, or an SCTP fragment
export const R_BAD_EXT_HDR: i32 = 22; // unsupported / misplaced / too many IPv6 extension headers
export const R_BAD_TCP_DOFF: i32 = 23; // TCP data offset < 5 or beyond the segment
export const R_BAD_UDP_LENGTH: i32 = 24; // UDP length < 8 or beyond the datagram
export const R_UDP6_ZERO_CSUM: i32 = 25; // IPv6 UDP with checksum 0
export const R_TTL_EXCEEDED: i32 = 26; // TTL / hop limit <= 1 on a forwarded packet
export const R_BAD_DESCRIPTOR: i32 = 27; // descriptor outside the batch area or bad direction
export const R_LAST: i32 = 28;

export const MAX_EXT_HDRS: i32 = 8;
export const FWD_NONE: u32 = 255;

// result flags
export const RF_NEW: u32 = 1; // the packet created its connection
export const RF_REWRITTEN: u32 = 2; // bytes were changed (4, RF_ICMP: an ICMP error translated, icmp.ts)

// results of the last handlePacket()
export let rReason: i32 = 0;
export let rConn: i32 = -1;
export let rDest: i32 = -1;
export let rFwd: u32 = FWD_NONE;
export let rFlags: u32 = 0;
export let rL4: u32 = 0;
export let rProto: u32 = 0;
export let rVer: u32 = 0;

// A masq entry has forwarded a packet: replies may come addressed to clients (handlePacket)
export let masqInUse = false;

// 1: kernel TTL handling (default), 0: leave TTL / hop limit alone
export let ttlMode: i32 = 1;
export function setTtlMode(m: i32): void {
  ttlMode = m;
}

@inline export function fail(reason: i32): i32 {
  rReason = reason;
  return V_DROP;
}

// Replaces the 16-byte IPv6 address at packet offset o by entry e's address `which` (ADDR_*); returns the
// checksum delta.
@inline export function repl6(o: u32, e: usize, which: usize): u64 {
  const o0 = ld32(o),
    o1 = ld32(o + 4),
    o2 = ld32(o + 8),
    o3 = ld32(o + 12);
  const n0 = bswap<u32>(entAddr(e, which, 0)),
    n1 = bswap<u32>(entAddr(e, which, 1));
  const n2 = bswap<u32>(entAddr(e, which, 2)),
    n3 = bswap<u32>(entAddr(e, which, 3));
  st32(o, n0);
  st32(o + 4, n1);
  st32(o + 8, n2);
  st32(o + 12, n3);
  return delta32(o0, n0) + delta32(o1, n1) + delta32(o2, n2) + delta32(o3, n3);
}
@inline export function repl4(o: u32, e: usize, which: usize): u64 {
  const o3 = ld32(o);
  const n3 = bswap<u32>(entAddr(e, which, 3));
  st32(o, n3);
  return delta32(o3, n3);
}

const IPPROTO_ICMP: u32 = 1;
const IPPROTO_ICMPV6: u32 = 58;

// The result fields for an ICMP error handled by icmp.ts.
function icmpResult(v: i32): i32 {
  rConn = icmpConn;
  rDest = icmpDest;
  rFwd = icmpFwd;
  if (v == V_FORWARD) rFlags |= RF_REWRITTEN | RF_ICMP;
  return v;
}

// What the header parsers found, for the stages after them.
const GO_ON: i32 = -1; // a parser's "no verdict yet"
let hL4: u32 = 0; // offset of the L4 header
let hEnd: u32 = 0; // end of the IP packet (IPv4 total length / IPv6 payload length)
let hProto: u32 = 0; // L4 protocol
let hFirstFrag = false; // the first fragment of a fragmented datagram (frag.ts)

// Parses, decides and rewrites the packet at [pb, pb+pl). Returns the verdict; r* hold the rest.
export function handlePacket(dir: u32, mark: u32, now: i64): i32 {
  rReason = 0;
  rConn = -1;
  rDest = -1;
  rFwd = FWD_NONE;
  rFlags = 0;
  rL4 = 0;
  rProto = 0;
  rVer = 0;
  hFirstFrag = false;
  if (pl < 1) return fail(R_TRUNCATED);
  const ver = ld8(0) >> 4;
  rVer = ver;
  let h: i32;
  if (ver == 4) h = parseIp4(dir, now);
  else if (ver == 6) h = parseIp6(dir, now);
  else return fail(R_BAD_VERSION);
  if (h != GO_ON) return h;
  rL4 = hL4;
  h = parseL4(ver, mark);
  if (h != GO_ON) return h;

  // replies: ip_forward() checks the TTL before the FORWARD hook where IPVS sees them
  if (dir != 0 && ttlMode != 0 && ld8(ver == 4 ? 8 : 7) <= 1) return fail(R_TTL_EXCEEDED);

  // a marked reply through the fwmark queue (a broad MARK rule): its tap twin is the one taken (conn/in.ts)
  if (fwmarkTwins && mark != 0 && dir != 0) return V_NOT_OURS;
  let v = dir == 0 ? inbound(hEnd, now) : outbound(hEnd, now);
  // A reply to a masqueraded client (an entry of a masq destination, or one a master synced: its reply side
  // is the client, not a local address, so the host files the packet "to a service"); tried only once such
  // an entry exists.
  if (v == V_NOT_OURS && dir == 0 && (masqInUse || syncedMasq) && !(fwmarkTwins && mark != 0)) {
    v = outbound(hEnd, now);
    if (v != V_NOT_OURS) dir = 1;
  }
  rConn = resultConn;
  if (v == V_NOT_OURS) return v;
  if (v == V_DROP) {
    rReason = dropReason;
    if (resultConn >= 0) {
      const e = E(<u32>resultConn);
      rFwd = entFlags(e) & 7;
      rDest = entDest(e);
    }
    return v;
  }
  const e = E(<u32>resultConn);
  const fwd = entFlags(e) & 7;
  rFwd = fwd;
  rDest = resultDest;
  if (dir == 0 && lastNewConn) rFlags |= RF_NEW;
  if (fwd == FWD_MASQ) masqInUse = true;

  // TTL / hop limit (inbound: decrement_ttl in __ip_vs_get_out_rt, not for a local destination)
  const decTtl = ttlMode != 0 && (dir != 0 || fwd != FWD_LOCALNODE);
  if (decTtl && ld8(ver == 4 ? 8 : 7) <= 1) return fail(R_TTL_EXCEEDED);
  if (hFirstFrag) fragFile(resultConn, now);
  if (fwd == FWD_MASQ || fwd == FWD_FULLNAT) natRewrite(dir, ver, e, fwd == FWD_FULLNAT, decTtl);
  else if (decTtl) decrementTtl(ver);
  return V_FORWARD;
}

// IPv4 header: options through IHL, the header checksum verified (ip_rcv drops a bad one before IPVS
// sees it), ICMP errors to icmp.ts, fragments to frag.ts. GO_ON with hL4/hEnd/hProto and pkt's addresses.
function parseIp4(dir: u32, now: i64): i32 {
  const len = pl;
  if (len < 20) return fail(R_TRUNCATED);
  const ihl = (ld8(0) & 15) << 2;
  if (ihl < 20 || ihl > len) return fail(R_BAD_IHL);
  const tot = be16(2);
  if (tot < ihl || tot > len) return fail(R_BAD_TOTAL_LENGTH);
  let s: u64 = <u64>ld32(0) + <u64>ld32(4) + <u64>ld32(8) + <u64>ld32(12) + <u64>ld32(16);
  for (let o: u32 = 20; o < ihl; o += 4) s += <u64>ld32(o);
  if (fold(s) != 0xffff) return fail(R_BAD_IP_CSUM);
  const proto = ld8(9);
  rProto = proto;
  const frag = be16(6) & 0x3fff;
  if (proto == IPPROTO_ICMP && frag == 0) {
    rL4 = ihl;
    let v = handleIcmp4(dir, ihl, tot, ttlMode);
    // a masq real server's error to the client is addressed as its replies are (handlePacket)
    if (v == V_NOT_OURS && dir == 0 && (masqInUse || syncedMasq)) v = handleIcmp4(1, ihl, tot, ttlMode);
    return icmpResult(v);
  }
  if (proto != IPPROTO_TCP && proto != IPPROTO_UDP && proto != IPPROTO_SCTP) return V_NOT_OURS;
  pkt.af = AF_INET;
  pkt.s0 = 0;
  pkt.s1 = 0;
  pkt.s2 = 0;
  pkt.s3 = bswap<u32>(ld32(12));
  pkt.d0 = 0;
  pkt.d1 = 0;
  pkt.d2 = 0;
  pkt.d3 = bswap<u32>(ld32(16));
  if (frag != 0) {
    fragKey(AF_INET, proto, be16(4), 0, 0, 0, pkt.s3, 0, 0, 0, pkt.d3);
    if ((frag & 0x1fff) != 0) return laterFragment(dir, 4, now);
    hFirstFrag = true;
  }
  hL4 = ihl;
  hEnd = tot;
  hProto = proto;
  return GO_ON;
}

// IPv6 header and extension headers: hop-by-hop (first only), routing with segments left 0 and
// destination options are walked (at most MAX_EXT_HDRS); a fragment header goes to frag.ts; AH, mobility,
// HIP, shim6, 253/254 and a routing header with segments left > 0 (its final destination would be in the
// pseudo-header) drop as unsupported; ICMPv6 errors go to icmp.ts; anything else is not ours.
function parseIp6(dir: u32, now: i64): i32 {
  if (pl < 40) return fail(R_TRUNCATED);
  const end: u32 = 40 + be16(4);
  if (end > pl) return fail(R_BAD_TOTAL_LENGTH);
  pkt.af = AF_INET6;
  pkt.s0 = bswap<u32>(ld32(8));
  pkt.s1 = bswap<u32>(ld32(12));
  pkt.s2 = bswap<u32>(ld32(16));
  pkt.s3 = bswap<u32>(ld32(20));
  pkt.d0 = bswap<u32>(ld32(24));
  pkt.d1 = bswap<u32>(ld32(28));
  pkt.d2 = bswap<u32>(ld32(32));
  pkt.d3 = bswap<u32>(ld32(36));
  let nh = ld8(6);
  let off: u32 = 40;
  let n = 0;
  while (nh != IPPROTO_TCP && nh != IPPROTO_UDP && nh != IPPROTO_SCTP) {
    if (nh == 0 || nh == 43 || nh == 60 || nh == 44) {
      if ((nh == 0 && off != 40) || ++n > MAX_EXT_HDRS) {
        rProto = nh;
        return fail(R_BAD_EXT_HDR);
      }
      if (off + 8 > end) {
        rProto = nh;
        return fail(R_TRUNCATED);
      }
      if (nh == 44) {
        const fo = be16(off + 2);
        if (fo != 0) {
          // not an atomic fragment (offset 0, no more): the datagram is in pieces
          fragKey(
            AF_INET6,
            ld8(off),
            bswap<u32>(ld32(off + 4)),
            pkt.s0,
            pkt.s1,
            pkt.s2,
            pkt.s3,
            pkt.d0,
            pkt.d1,
            pkt.d2,
            pkt.d3,
          );
          if ((fo & 0xfff8) != 0) {
            rProto = 44;
            return laterFragment(dir, 6, now);
          }
          hFirstFrag = true;
        }
        nh = ld8(off);
        off += 8;
        continue;
      }
      const hl = (ld8(off + 1) + 1) << 3;
      if (off + hl > end) {
        rProto = nh;
        return fail(R_TRUNCATED);
      }
      if (nh == 43 && ld8(off + 3) != 0) {
        rProto = nh;
        return fail(R_BAD_EXT_HDR);
      }
      nh = ld8(off);
      off += hl;
      continue;
    }
    rProto = nh;
    if (nh == IPPROTO_ICMPV6 && !hFirstFrag) {
      rL4 = off;
      let v = handleIcmp6(dir, off, end, ttlMode);
      if (v == V_NOT_OURS && dir == 0 && (masqInUse || syncedMasq)) v = handleIcmp6(1, off, end, ttlMode);
      return icmpResult(v);
    }
    if (nh == 51 || nh == 135 || nh == 139 || nh == 140 || nh == 253 || nh == 254) return fail(R_BAD_EXT_HDR);
    return V_NOT_OURS;
  }
  rProto = nh;
  hL4 = off;
  hEnd = end;
  hProto = nh;
  return GO_ON;
}

// The L4 header: its lengths checked, ports and flags into pkt. A first fragment holds only the start of
// its datagram: a UDP length beyond it is expected, and SCTP's CRC cannot be redone (dropped, frag.ts).
function parseL4(ver: u32, mark: u32): i32 {
  const l4 = hL4,
    end = hEnd,
    proto = hProto;
  const l4len = end - l4;
  let flags: u32 = 0;
  if (proto == IPPROTO_TCP) {
    if (l4len < 20) return fail(R_TRUNCATED);
    const doff = (ld8(l4 + 12) >> 4) << 2;
    if (doff < 20 || doff > l4len) return fail(R_BAD_TCP_DOFF);
    flags = ld8(l4 + 13);
  } else if (proto == IPPROTO_UDP) {
    if (l4len < 8) return fail(R_TRUNCATED);
    const ul = be16(l4 + 4);
    if (ul < 8 || (ul > l4len && !hFirstFrag)) return fail(R_BAD_UDP_LENGTH);
    if (ver == 6 && ld16(l4 + 6) == 0) return fail(R_UDP6_ZERO_CSUM);
  } else {
    if (hFirstFrag) return fail(R_FRAGMENT);
    // SCTP: common header (12) + at least one chunk header (4). The deciding chunk is the first, but a
    // COOKIE ECHO / COOKIE ACK directly followed by an ABORT counts as the ABORT (set_sctp_state).
    if (l4len < 16) return fail(R_TRUNCATED);
    flags = ld8(l4 + 12);
    if (flags == 10 || flags == 11) {
      const cl = be16(l4 + 14);
      if (cl >= 4) {
        const nx = l4 + 12 + ((cl + 3) & ~3);
        if (nx + 4 <= end && ld8(nx) == 6) flags = 6;
      }
    }
  }
  pkt.proto = <i32>proto;
  pkt.sport = be16(l4);
  pkt.dport = be16(l4 + 2);
  pkt.mark = mark;
  pkt.tcpFlags = flags;
  return GO_ON;
}

// A fragment after the first: its datagram's connection (frag.ts) gets it with the same addresses and TTL
// handling as the first, its payload untouched. Without one (the first not seen, or not ours) it drops.
function laterFragment(dir: u32, ver: u32, now: i64): i32 {
  const c = fragFind(now);
  if (c < 0) return fail(R_FRAGMENT);
  const e = E(<u32>c);
  // the entry may have been freed and reused since the first fragment: it must still be that flow's
  const sa = dir == 0 ? ADDR_CLIENT : ADDR_DEST,
    da = dir == 0 ? ADDR_VIRTUAL : ADDR_LOCAL;
  if (entLive(e) == 0 || !entAddrEq(e, sa, kS0, kS1, kS2, kS3) || !entAddrEq(e, da, kD0, kD1, kD2, kD3))
    return fail(R_FRAGMENT);
  const fwd = entFlags(e) & 7;
  rConn = c;
  rDest = entDest(e);
  rFwd = fwd;
  const decTtl = ttlMode != 0 && (dir != 0 || fwd != FWD_LOCALNODE);
  if (decTtl && ld8(ver == 4 ? 8 : 7) <= 1) return fail(R_TTL_EXCEEDED);
  if (fwd == FWD_MASQ || fwd == FWD_FULLNAT) {
    const full = fwd == FWD_FULLNAT;
    let ad: u64 = 0;
    if (dir == 0) {
      ad += ver == 4 ? repl4(16, e, ADDR_DEST) : repl6(24, e, ADDR_DEST);
      if (full) ad += ver == 4 ? repl4(12, e, ADDR_LOCAL) : repl6(8, e, ADDR_LOCAL);
    } else {
      ad += ver == 4 ? repl4(12, e, ADDR_VIRTUAL) : repl6(8, e, ADDR_VIRTUAL);
      if (full) ad += ver == 4 ? repl4(16, e, ADDR_CLIENT) : repl6(24, e, ADDR_CLIENT);
    }
    if (ver == 4) st16(10, csumApply(ld16(10), ad));
    rFlags |= RF_REWRITTEN;
  }
  if (decTtl) decrementTtl(ver);
  fragmentsForwarded++;
  return V_FORWARD;
}

// TTL / hop limit minus one (>= 2 here), the IPv4 header checksum updated.
function decrementTtl(ver: u32): void {
  if (ver == 4) {
    const o = ld16(8);
    st16(8, o - 1); // TTL is the low byte of the little-endian word
    st16(10, csumApply(ld16(10), delta16(o, o - 1)));
  } else {
    st8(7, ld8(7) - 1);
  }
  rFlags |= RF_REWRITTEN;
}

// NAT: addresses and ports per the connection e, the L4 checksum updated incrementally (SCTP: CRC32c
// recomputed when a port changed), then the TTL and the IPv4 header checksum.
function natRewrite(dir: u32, ver: u32, e: usize, full: bool, decTtl: bool): void {
  const l4 = hL4,
    proto = hProto;
  let ad: u64 = 0; // address delta (IPv4 header and the pseudo-header)
  let pd: u64 = 0; // port delta
  let portsChanged = false;
  // offsets of the source/destination address in the header
  const so: u32 = ver == 4 ? 12 : 8;
  const dso: u32 = ver == 4 ? 16 : 24;
  let ns: u32 = 0,
    nd: u32 = 0; // new source / destination port on the wire
  let rs = false,
    rd = false; // which side changes
  let sa: usize = 0,
    da: usize = 0;
  if (dir == 0) {
    // client -> service: destination -> daddr:dport; full-NAT also source -> laddr:lport
    rd = true;
    da = ADDR_DEST;
    nd = wirePort(entDport(e));
    if (full) {
      rs = true;
      sa = ADDR_LOCAL;
      ns = wirePort(entLport(e));
    }
  } else {
    // server -> client: source -> vaddr:vport; full-NAT also destination -> caddr:cport
    rs = true;
    sa = ADDR_VIRTUAL;
    ns = wirePort(entVport(e));
    if (full) {
      rd = true;
      da = ADDR_CLIENT;
      nd = wirePort(entCport(e));
    }
  }
  if (ver == 4) {
    if (rs) ad += repl4(so, e, sa);
    if (rd) ad += repl4(dso, e, da);
  } else {
    if (rs) ad += repl6(so, e, sa);
    if (rd) ad += repl6(dso, e, da);
  }
  if (rs) {
    const op = ld16(l4);
    if (op != ns) {
      st16(l4, ns);
      pd += delta16(op, ns);
      portsChanged = true;
    }
  }
  if (rd) {
    const op = ld16(l4 + 2);
    if (op != nd) {
      st16(l4 + 2, nd);
      pd += delta16(op, nd);
      portsChanged = true;
    }
  }
  // L4 checksum
  if (proto == IPPROTO_TCP) {
    st16(l4 + 16, csumApply(ld16(l4 + 16), ad + pd));
  } else if (proto == IPPROTO_UDP) {
    const c = ld16(l4 + 6);
    if (c != 0) {
      const nc = csumApply(c, ad + pd);
      st16(l4 + 6, nc == 0 ? 0xffff : nc);
    }
  } else if (portsChanged) {
    assert(<u64>hEnd <= <u64>pl && l4 + 12 <= hEnd);
    st32(l4 + 8, crc32cSkip(pb + <usize>l4, hEnd - l4, 8));
  }
  // IP header: TTL and checksum (IPv6 has neither checksum nor TTL in the pseudo-header)
  if (ver == 4) {
    let hd = ad;
    if (decTtl) {
      const o = ld16(8);
      st16(8, o - 1);
      hd += delta16(o, o - 1);
    }
    st16(10, csumApply(ld16(10), hd));
  } else if (decTtl) {
    st8(7, ld8(7) - 1);
  }
  rFlags |= RF_REWRITTEN;
}

// A batch pre-pass for large tables (packet/exports.ts): parses the plain header (IPv4 with options, IPv6
// without extension headers, within the same bounds rules) and files, for the staged touches of
// assembly/prefetch.ts, the address of the connection's bucket word in pfA[k]; for a SYN, which will most
// likely be scheduled, its Service's bucket word in pfB[k]; and in pfC[k] 1 when the packet most likely
// has a connection already, whose destination and Service its counting updates.
export function prefetchPacket(dir: u32, k: u32): void {
  pfClear(k);
  const len = pl;
  if (len < 24) return;
  const b0 = ld8(0);
  let s0: u32 = 0,
    s1: u32 = 0,
    s2: u32 = 0,
    s3: u32 = 0,
    d0: u32 = 0,
    d1: u32 = 0,
    d2: u32 = 0,
    d3: u32 = 0;
  let l4: u32 = 0,
    proto: u32 = 0,
    af: i32 = AF_INET;
  if (b0 >> 4 == 4) {
    l4 = (b0 & 15) << 2;
    if (l4 < 20 || l4 + 4 > len) return;
    proto = ld8(9);
    s3 = bswap<u32>(ld32(12));
    d3 = bswap<u32>(ld32(16));
  } else if (b0 >> 4 == 6) {
    if (len < 44) return;
    proto = ld8(6);
    l4 = 40;
    af = AF_INET6;
    s0 = bswap<u32>(ld32(8));
    s1 = bswap<u32>(ld32(12));
    s2 = bswap<u32>(ld32(16));
    s3 = bswap<u32>(ld32(20));
    d0 = bswap<u32>(ld32(24));
    d1 = bswap<u32>(ld32(28));
    d2 = bswap<u32>(ld32(32));
    d3 = bswap<u32>(ld32(36));
  } else return;
  if (proto != IPPROTO_TCP && proto != IPPROTO_UDP && proto != IPPROTO_SCTP) return;
  const sp = be16(l4),
    dp = be16(l4 + 2);
  if (dir != 0) {
    unchecked((pfA[k] = <u32>outBucketOf(<i32>proto, d0, d1, d2, d3, dp)));
    unchecked((pfC[k] = 1));
    return;
  }
  unchecked((pfA[k] = <u32>inBucketOf(<i32>proto, s0, s1, s2, s3, sp)));
  if (proto == IPPROTO_TCP && l4 + 14 <= len && (ld8(l4 + 13) & 2) != 0) {
    unchecked((pfB[k] = <u32>serviceBucketOf(af, <i32>proto, d0, d1, d2, d3, dp)));
  } else {
    unchecked((pfC[k] = 1));
  }
}
