// ICMP and ICMPv6 errors about a known connection, translated as IPVS does (ip_vs_in_icmp, ip_vs_out_icmp
// and ip_vs_nat_icmp[_v6] in net/netfilter/ipvs/ip_vs_core.c), so that path MTU discovery, unreachables
// and time-exceeded work through the balancer.
//
// An error carries the start of the packet it is about. From the real server's side (dir 1: it comes to a
// full-NAT local address or, under masquerading, to the client) that packet is one we sent to the real
// server: daddr:dport its destination. From the client's side (dir 0: it comes to the virtual address)
// it is a reply we sent to the client: vaddr:vport its source. The connection is looked up by that
// quoted packet's tuple turned around, without touching its state or counters (the kernel's ICMP path
// does not either). Then both the outer header and the quoted one are rewritten to what the other side
// knows: towards the client the error comes from the virtual address and quotes the client's own
// packet to it; towards the real server it comes from the local address (full-NAT) and quotes its own
// packet. The quoted IPv4 header's checksum is recomputed, the quoted L4 checksum is left as it is (a
// copy nobody checks, as the kernel leaves it), and the ICMP checksum is recomputed over the message.
//
// Only errors are translated (ICMP destination unreachable, source quench, time exceeded, as IPVS;
// ICMPv6 types below 128); a quoted non-first fragment, a protocol other than TCP/UDP/SCTP or no known
// connection leaves the message to the local stack (not ours), as does a connection that is not NAT.
import { AF_INET, AF_INET6, IPPROTO_TCP, IPPROTO_UDP, IPPROTO_SCTP, FWD_MASQ, FWD_FULLNAT } from "../common";
import { lookupIn, lookupOut, E } from "../conn/table";
import {
  ADDR_CLIENT,
  ADDR_DEST,
  ADDR_LOCAL,
  ADDR_VIRTUAL,
  entCport,
  entDest,
  entDport,
  entFlags,
  entLport,
  entVport,
} from "../conn/entry";
import { V_NOT_OURS, V_FORWARD } from "../conn/in";
import { fold } from "./csum";
import { ld8, ld32, be16, st8, st16, wirePort, sumBytes } from "./bytes";
import { fail, repl4, repl6, R_TTL_EXCEEDED, R_TRUNCATED } from "./path";

export const RF_ICMP: u32 = 4; // result flag: an ICMP error translated for its connection

// what handleIcmp found, for the caller's result fields
export let icmpConn: i32 = -1;
export let icmpDest: i32 = -1;
export let icmpFwd: u32 = 255;

@inline function isTransport(p: u32): bool {
  return p == IPPROTO_TCP || p == IPPROTO_UDP || p == IPPROTO_SCTP;
}

// The connection the quoted packet belongs to (its tuple turned around), or -1.
function connOfQuote(af: i32, dir: u32, proto: u32, qs: u32, qd: u32, qsport: u32, qdport: u32): i32 {
  let s0: u32 = 0,
    s1: u32 = 0,
    s2: u32 = 0,
    s3: u32 = 0,
    d0: u32 = 0,
    d1: u32 = 0,
    d2: u32 = 0,
    d3: u32 = 0;
  if (af == AF_INET) {
    s3 = bswap<u32>(ld32(qs));
    d3 = bswap<u32>(ld32(qd));
  } else {
    s0 = bswap<u32>(ld32(qs));
    s1 = bswap<u32>(ld32(qs + 4));
    s2 = bswap<u32>(ld32(qs + 8));
    s3 = bswap<u32>(ld32(qs + 12));
    d0 = bswap<u32>(ld32(qd));
    d1 = bswap<u32>(ld32(qd + 4));
    d2 = bswap<u32>(ld32(qd + 8));
    d3 = bswap<u32>(ld32(qd + 12));
  }
  // dir 1: we sent laddr:lport -> daddr:dport; the reply side looks up daddr:dport -> laddr:lport
  if (dir != 0) return lookupOut(af, <i32>proto, d0, d1, d2, d3, qdport, s0, s1, s2, s3, qsport);
  // dir 0: we sent vaddr:vport -> caddr:cport; the client side looks up caddr:cport -> vaddr:vport
  return lookupIn(af, <i32>proto, d0, d1, d2, d3, qdport, s0, s1, s2, s3, qsport, false);
}

// The address at packet offsets a (outer) and b (quoted) both become entry e's address `which` (ADDR_*).
@inline function both(v6: bool, a: u32, b: u32, e: usize, which: usize): void {
  if (v6) {
    repl6(a, e, which);
    repl6(b, e, which);
  } else {
    repl4(a, e, which);
    repl4(b, e, which);
  }
}

// Rewrites the outer and the quoted addresses and ports for connection entry e. so/dso: outer source and
// destination address offsets; qs/qd: the quoted ones; qp: the quoted ports. Returns nothing: the
// checksums are the caller's to redo.
function rewrite(v6: bool, dir: u32, full: bool, e: usize, so: u32, dso: u32, qs: u32, qd: u32, qp: u32): void {
  if (dir != 0) {
    // towards the client: from the virtual address, about the client's packet to the virtual service
    both(v6, so, qd, e, ADDR_VIRTUAL);
    st16(qp + 2, wirePort(entVport(e)));
    if (full) {
      both(v6, dso, qs, e, ADDR_CLIENT);
      st16(qp, wirePort(entCport(e)));
    }
  } else {
    // towards the real server: to it, about its packet to the client side (full-NAT: to the local address)
    both(v6, dso, qs, e, ADDR_DEST);
    st16(qp, wirePort(entDport(e)));
    if (full) {
      both(v6, so, qd, e, ADDR_LOCAL);
      st16(qp + 2, wirePort(entLport(e)));
    }
  }
}

// IPv4 header checksum of the header at o (ihl bytes), stored.
function ipv4Checksum(o: u32, ihl: u32): void {
  st16(o + 10, 0);
  st16(o + 10, ~fold(sumBytes(o, ihl)) & 0xffff);
}

// ICMP (IPv4) at l4 up to end, the outer header's length ihl. Returns the verdict.
export function handleIcmp4(dir: u32, ihl: u32, end: u32, ttlMode: i32): i32 {
  icmpConn = -1;
  icmpDest = -1;
  icmpFwd = 255;
  const l4 = ihl;
  if (end < l4 + 8) return fail(R_TRUNCATED);
  const type = ld8(l4);
  if (type != 3 && type != 4 && type != 11) return V_NOT_OURS;
  const q = l4 + 8; // the quoted IPv4 header
  if (end < q + 20 || ld8(q) >> 4 != 4) return V_NOT_OURS;
  const qihl = (ld8(q) & 15) << 2;
  if (qihl < 20 || end < q + qihl + 4) return V_NOT_OURS;
  if ((be16(q + 6) & 0x1fff) != 0) return V_NOT_OURS; // a non-first fragment has no ports
  const proto = ld8(q + 9);
  if (!isTransport(proto)) return V_NOT_OURS;
  const qp = q + qihl;
  const c = connOfQuote(AF_INET, dir, proto, q + 12, q + 16, be16(qp), be16(qp + 2));
  if (c < 0) return V_NOT_OURS;
  const e = E(<u32>c);
  const fwd = entFlags(e) & 7;
  if (fwd != FWD_MASQ && fwd != FWD_FULLNAT) return V_NOT_OURS;
  icmpConn = c;
  icmpDest = entDest(e);
  icmpFwd = fwd;
  if (ttlMode != 0 && ld8(8) <= 1) return fail(R_TTL_EXCEEDED);
  rewrite(false, dir, fwd == FWD_FULLNAT, e, 12, 16, q + 12, q + 16, qp);
  if (ttlMode != 0) st8(8, ld8(8) - 1);
  ipv4Checksum(q, qihl);
  ipv4Checksum(0, ihl);
  st16(l4 + 2, 0);
  st16(l4 + 2, ~fold(sumBytes(l4, end - l4)) & 0xffff);
  return V_FORWARD;
}

// ICMPv6 at l4 up to end. Returns the verdict.
export function handleIcmp6(dir: u32, l4: u32, end: u32, ttlMode: i32): i32 {
  icmpConn = -1;
  icmpDest = -1;
  icmpFwd = 255;
  if (end < l4 + 8) return fail(R_TRUNCATED);
  if (ld8(l4) >= 128) return V_NOT_OURS; // informational (echo, neighbour discovery...)
  const q = l4 + 8; // the quoted IPv6 header
  if (end < q + 40 || ld8(q) >> 4 != 6) return V_NOT_OURS;
  let nh = ld8(q + 6);
  let off = q + 40;
  for (let n = 0; n < 8 && (nh == 0 || nh == 43 || nh == 60 || nh == 44); n++) {
    if (off + 8 > end) return V_NOT_OURS;
    if (nh == 44) {
      if ((be16(off + 2) & 0xfff8) != 0) return V_NOT_OURS; // a non-first fragment has no ports
      nh = ld8(off);
      off += 8;
      continue;
    }
    const hl = (ld8(off + 1) + 1) << 3;
    nh = ld8(off);
    off += hl;
  }
  if (!isTransport(nh) || end < off + 4) return V_NOT_OURS;
  const c = connOfQuote(AF_INET6, dir, nh, q + 8, q + 24, be16(off), be16(off + 2));
  if (c < 0) return V_NOT_OURS;
  const e = E(<u32>c);
  const fwd = entFlags(e) & 7;
  if (fwd != FWD_MASQ && fwd != FWD_FULLNAT) return V_NOT_OURS;
  icmpConn = c;
  icmpDest = entDest(e);
  icmpFwd = fwd;
  if (ttlMode != 0 && ld8(7) <= 1) return fail(R_TTL_EXCEEDED);
  rewrite(true, dir, fwd == FWD_FULLNAT, e, 8, 24, q + 8, q + 24, off);
  if (ttlMode != 0) st8(7, ld8(7) - 1);
  // the checksum covers the pseudo-header: addresses, upper-layer length, next header 58
  st16(l4 + 2, 0);
  const len = end - l4;
  let s = sumBytes(8, 32) + sumBytes(l4, len);
  s += <u64>bswap<u32>(len) + <u64>bswap<u32>(58);
  st16(l4 + 2, ~fold(s) & 0xffff);
  return V_FORWARD;
}
