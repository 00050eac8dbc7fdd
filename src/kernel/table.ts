// The kernel's table as read back for a full reconcile pass, its destinations left in their netlink
// encoding (one buffer for the whole table), and the check that one service in it is exactly a desired
// one, made on those bytes: no object per real server, no second map. Where the check cannot tell (an
// IPv6 or tunnel real server, an odd attribute, a different order) it answers "no", and the reconciler
// takes the object path (decodeDests), which compares field by field and reports what differs.
import type { VirtualService, RealServer } from "../model/types.ts";
import type { RealServerStatus } from "../model/target.ts";
import { addrBytes } from "../core/addr.ts";
import {
  Writer,
  addrAf,
  fwdNum,
  tunFlagBits,
  parseDest,
  parseV4,
  serviceAf,
  type KernelService,
  type RawMessage,
} from "./codec.ts";
import * as C from "./constants.ts";

/** One service dump, then every service's GET_DEST replies back to back: for service i, the messages in
 * replies[index[3i], index[3i + 1]) (index[3i + 2] is the dump's errno, 0 here: errors are thrown). */
export interface EncodedTable {
  services: KernelService[];
  replies: Buffer;
  index: Int32Array;
  afs: Uint8Array;
}

/** Service i's real servers as objects (the path every service took before, and still the odd ones). */
export function decodeDests(t: EncodedTable, i: number): RealServerStatus[] {
  const buf = t.replies,
    to = t.index[i * 3 + 1],
    af = t.afs[i];
  const m: RawMessage = { type: 0, flags: 0, seq: 0, pid: 0, buf, off: 0, len: 0 };
  const out: RealServerStatus[] = [];
  for (let off = t.index[i * 3]; off + C.NLMSG_HDRLEN <= to; ) {
    const len = buf.readUInt32LE(off);
    if (len < C.NLMSG_HDRLEN || off + len > to) break;
    m.type = buf.readUInt16LE(off + 4);
    m.off = off;
    m.len = len;
    const d = parseDest(m, af);
    if (d) out.push(d);
    off += (len + 3) & ~3;
  }
  return out;
}

// The fields of one destination that the comparison needs, decoded into this one object (reused).
const FWD_NAMES = ["masq", "local", "tunnel", "route", "bypass"];
const DEST_WIDTH = [0, 0, 2, 4, 4, 4, 4, 4, 4, 4, 0, 2, 0, 1, 2, 2];
const d = { v4: 0, port: 0, fwd: 0, weight: 0, uth: 0, lth: 0 };

// Decodes the destination nest of the message at `off` into `d`; 1: done, 0: no destination in the
// message (skipped, as parseDest skips it), -1: something the fast check does not handle (IPv6, no address
// family, tunnel, a short attribute): the object path decides, and reports a malformed reply the same way.
function readDest(buf: Buffer, off: number, len: number): number {
  const end = off + len;
  let p = off + C.NLMSG_HDRLEN + C.GENL_HDRLEN,
    nest = -1,
    nestEnd = 0;
  while (p + 4 <= end) {
    const alen = buf.readUInt16LE(p);
    if (alen < 4 || p + alen > end) break;
    if ((buf.readUInt16LE(p + 2) & C.NLA_TYPE_MASK) === C.IPVS_CMD_ATTR_DEST) {
      nest = p + 4;
      nestEnd = p + alen;
      break;
    }
    p += (alen + 3) & ~3;
  }
  if (nest < 0) return 0;
  let af = 0,
    addrAt = -1,
    addrLen = 0,
    seenPort = false;
  d.fwd = 0;
  d.weight = 0;
  d.uth = 0;
  d.lth = 0;
  for (p = nest; p + 4 <= nestEnd; ) {
    const alen = buf.readUInt16LE(p);
    if (alen < 4 || p + alen > nestEnd) break;
    const t = buf.readUInt16LE(p + 2) & C.NLA_TYPE_MASK,
      at = p + 4;
    if (alen - 4 < (DEST_WIDTH[t] ?? 0)) return -1;
    switch (t) {
      case C.IPVS_DEST_ATTR_ADDR:
        addrAt = at;
        addrLen = alen - 4;
        break;
      case C.IPVS_DEST_ATTR_PORT:
        d.port = buf.readUInt16BE(at);
        seenPort = true;
        break;
      case C.IPVS_DEST_ATTR_FWD_METHOD:
        d.fwd = buf.readUInt32LE(at) & C.IP_VS_CONN_F_FWD_MASK;
        break;
      case C.IPVS_DEST_ATTR_WEIGHT:
        d.weight = buf.readInt32LE(at);
        break;
      case C.IPVS_DEST_ATTR_U_THRESH:
        d.uth = buf.readUInt32LE(at);
        break;
      case C.IPVS_DEST_ATTR_L_THRESH:
        d.lth = buf.readUInt32LE(at);
        break;
      case C.IPVS_DEST_ATTR_ADDR_FAMILY:
        af = buf.readUInt16LE(at);
        break;
    }
    p += (alen + 3) & ~3;
  }
  if (af !== C.AF_INET || addrLen < 4 || !seenPort || d.fwd === C.IP_VS_CONN_F_TUNNEL) return -1;
  d.v4 = buf.readUInt32BE(addrAt);
  return 1;
}

// whether `r` is the decoded destination, as sameRealServer and the key comparison would say
function isDest(r: RealServer): boolean {
  return r.port === d.port && parseV4(r.addr) === d.v4;
}
function sameFields(r: RealServer): boolean {
  return (
    r.weight === d.weight &&
    r.fwd === (FWD_NAMES[d.fwd] ?? "route") &&
    (r.upperThreshold ?? 0) === d.uth &&
    (r.lowerThreshold ?? 0) === d.lth
  );
}

/**
 * Whether service i's real servers in the kernel are exactly `want`'s (the same set, every field equal),
 * read from the encoded replies. The kernel lists a service's real servers newest first, and the
 * reconciler adds them in the desired order, so the check looks at the mirrored position first, then the
 * same position, then searches. false when it cannot tell (see readDest).
 */
export function sameDests(t: EncodedTable, i: number, want: VirtualService): boolean {
  const rs = want.realServers,
    n = rs.length,
    buf = t.replies,
    to = t.index[i * 3 + 1];
  let count = 0;
  for (let off = t.index[i * 3]; off + C.NLMSG_HDRLEN <= to; ) {
    const len = buf.readUInt32LE(off);
    if (len < C.NLMSG_HDRLEN || off + len > to) break;
    const got = readDest(buf, off, len);
    off += (len + 3) & ~3;
    if (got === 0) continue;
    if (got < 0 || count >= n) return false;
    let r = rs[n - 1 - count];
    if (!isDest(r)) {
      r = rs[count];
      if (!isDest(r)) {
        let j = 0;
        while (j < n && !isDest(rs[j])) j++;
        if (j === n) return false;
        r = rs[j];
      }
    }
    if (r.fwd === "tunnel" || !sameFields(r)) return false;
    count++;
  }
  // every kernel destination matched a desired one and the kernel's are distinct, so equal counts mean
  // the same set (a duplicate in the desired list would leave one kernel destination unmatched)
  return count === n;
}

/**
 * A table held in memory, encoded as the kernel sends it (every attribute a 6.1 kernel puts in a GET_DEST
 * reply but the counters' nests, addresses 16 bytes wide): the kernel of the host-side tests and benchmark.
 */
export function encodeTable(services: (KernelService & { realServers: Partial<RealServerStatus>[] })[]): EncodedTable {
  const w = new Writer(1 << 16);
  const index = new Int32Array(services.length * 3),
    afs = new Uint8Array(services.length);
  const addr16 = new Uint8Array(16);
  services.forEach((s, i) => {
    afs[i] = serviceAf(s);
    index[i * 3] = w.pos;
    for (const r of s.realServers) {
      const at = w.begin(0, 0, 0, C.IPVS_CMD_NEW_DEST);
      const af = addrAf(r.addr!),
        fwd = fwdNum(r.fwd ?? "masq");
      w.nestBegin(C.IPVS_CMD_ATTR_DEST);
      addr16.fill(0);
      addrBytes(r.addr!, addr16);
      w.bytes(C.IPVS_DEST_ATTR_ADDR, addr16, 16);
      w.be16(C.IPVS_DEST_ATTR_PORT, r.port!);
      w.u32(C.IPVS_DEST_ATTR_FWD_METHOD, fwd);
      w.u32(C.IPVS_DEST_ATTR_WEIGHT, r.weight!);
      if (fwd === C.IP_VS_CONN_F_TUNNEL) {
        w.u8(C.IPVS_DEST_ATTR_TUN_TYPE, ["ipip", "gue", "gre"].indexOf(r.tunType ?? "ipip"));
        w.be16(C.IPVS_DEST_ATTR_TUN_PORT, r.tunPort ?? 0);
        w.u16(C.IPVS_DEST_ATTR_TUN_FLAGS, tunFlagBits(r.tunFlags));
      }
      w.u32(C.IPVS_DEST_ATTR_U_THRESH, r.upperThreshold ?? 0);
      w.u32(C.IPVS_DEST_ATTR_L_THRESH, r.lowerThreshold ?? 0);
      w.u32(C.IPVS_DEST_ATTR_ACTIVE_CONNS, r.activeConns ?? 0);
      w.u32(C.IPVS_DEST_ATTR_INACT_CONNS, r.inactConns ?? 0);
      w.u32(C.IPVS_DEST_ATTR_PERSIST_CONNS, r.persistConns ?? 0);
      w.u16(C.IPVS_DEST_ATTR_ADDR_FAMILY, af);
      w.nestEnd();
      w.end(at);
    }
    index[i * 3 + 1] = w.pos;
  });
  return { services, replies: w.take(), index, afs };
}
