// Packets that no longer fit the outgoing route after NAT, treated as IPVS treats them in ip_vs_xmit.c
// (ensure_mtu_is_adequate, then ip_finish_output for what it lets through):
// - IPv4 with DF set, and every IPv6 packet: dropped, and the sender gets ICMP "fragmentation needed" /
//   ICMPv6 "packet too big" with the route's MTU, quoting the packet as it arrived (before NAT), so its
//   path MTU discovery works through the proxy. Not for an ICMP error itself, nor for an IPv6 fragment
//   after the first.
// - IPv4 without DF: fragmented to the MTU, as the kernel fragments what IPVS sends.
// The MTU is only known where packets are sent (the kernel's routes), so this is the addon's, not the
// core's; the core never sees routes. The quote needs the bytes NAT changed (addresses, ports, checksums,
// TTL), so the addon keeps the first kOrigSize bytes of every packet that could be too big when it
// arrives; the rest of a packet is not changed by NAT and is quoted from the packet as forwarded.
#pragma once

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

namespace toobig {

constexpr uint32_t kOrigSize = 128;          // IPv4: 60 + a TCP header to its checksum; IPv6: 40 + 70 of extensions
constexpr uint32_t kKeepFrom4 = 576;         // no IPv4 route is expected below this (a smaller one is counted only)
constexpr uint32_t kKeepFrom6 = 1280;        // IPv6's minimum MTU: nothing at or below it is ever too big
constexpr uint32_t kQuote4 = 576 - 20 - 8;   // icmp_send quotes up to 576 bytes in all
constexpr uint32_t kQuote6 = 1280 - 40 - 8;  // icmp6_send up to IPv6's minimum MTU
constexpr uint32_t kMaxError = 1280;         // the largest error built here
constexpr uint8_t kTtl = 64;                 // the kernel's default TTL / hop limit for its own errors

inline uint32_t sum16(const uint8_t* p, uint32_t n) {
  uint32_t s = 0, i = 0;
  for (; i + 1 < n; i += 2) s += (uint32_t(p[i]) << 8) | p[i + 1];
  if (i < n) s += uint32_t(p[i]) << 8;
  return s;
}
inline uint16_t fold(uint64_t s) {
  while (s >> 16) s = (s & 0xffff) + (s >> 16);
  return uint16_t(s);
}
inline void put16(uint8_t* p, uint32_t v) {
  p[0] = uint8_t(v >> 8);
  p[1] = uint8_t(v);
}

// The ICMP error for a packet over `mtu`: orig holds its first n bytes as it arrived, pkt/len the packet
// as forwarded, l4 the offset of its L4 header. Returns the error's length in out (kMaxError bytes), or 0
// when the bytes NAT changed were not kept (the ports at least must be quoted as they were sent).
inline uint32_t build(uint8_t* out, const uint8_t* orig, uint32_t n, const uint8_t* pkt, uint32_t len, uint32_t l4,
                      uint32_t mtu) {
  if ((orig[0] >> 4) != (pkt[0] >> 4)) return 0;  // not this packet's bytes (a descriptor made by hand)
  const bool v6 = (orig[0] >> 4) == 6;
  const uint32_t hdr = v6 ? 48 : 28;
  uint32_t q = len < (v6 ? kQuote6 : kQuote4) ? len : (v6 ? kQuote6 : kQuote4);
  if (l4 + 18 > n && q > n) q = n;  // NAT may have changed bytes past what was kept: quote only those
  if (l4 + 8 > q) return 0;
  uint8_t* quote = out + hdr;
  memcpy(quote, orig, q < n ? q : n);
  if (q > n) memcpy(quote + n, pkt + n, q - n);
  memset(out, 0, hdr);
  if (!v6) {
    out[0] = 0x45;
    out[1] = uint8_t((orig[1] & 0x1e) | 0xc0);  // as icmp_send: the packet's TOS, precedence "internetwork control"
    put16(out + 2, hdr + q);
    out[8] = kTtl;
    out[9] = 1;                      // ICMP
    memcpy(out + 12, orig + 16, 4);  // from the address the sender used (the VIP, or the proxy's local address)
    memcpy(out + 16, orig + 12, 4);
    put16(out + 10, uint16_t(~fold(sum16(out, 20))));
    out[20] = 3;  // destination unreachable
    out[21] = 4;  // fragmentation needed
    put16(out + 26, mtu > 0xffff ? 0xffff : mtu);
    put16(out + 22, uint16_t(~fold(sum16(out + 20, 8 + q))));
    return hdr + q;
  }
  out[0] = 0x60;
  put16(out + 4, 8 + q);
  out[6] = 58;  // ICMPv6
  out[7] = kTtl;
  memcpy(out + 8, orig + 24, 16);
  memcpy(out + 24, orig + 8, 16);
  out[40] = 2;  // packet too big
  out[44] = uint8_t(mtu >> 24);
  out[45] = uint8_t(mtu >> 16);
  out[46] = uint8_t(mtu >> 8);
  out[47] = uint8_t(mtu);
  const uint64_t pseudo = uint64_t(sum16(out + 8, 32)) + (8 + q) + 58;
  put16(out + 42, uint16_t(~fold(pseudo + sum16(out + 40, 8 + q))));
  return hdr + q;
}

// IPv4 fragmentation of a packet over `mtu` (DF clear), as ip_do_fragment: 8-byte aligned pieces, the
// options with the "copied" flag repeated in every piece after the first, a fragment's own offset and MF
// kept. An ID of 0 is replaced by `id` (the raw socket would give each piece its own). Each piece is built
// in buf (at least mtu bytes) and handed to emit(buf, length). Returns the number of pieces, 0 if the MTU
// cannot carry any data.
template <typename Emit>
uint32_t fragment4(const uint8_t* p, uint32_t len, uint32_t mtu, uint16_t id, uint8_t* buf, Emit emit) {
  const uint32_t ihl = (p[0] & 15u) * 4;
  if (ihl < 20 || ihl > len || mtu < 68) return 0;
  uint8_t copied[40];
  uint32_t nc = 0;
  for (uint32_t i = 20; i < ihl;) {
    const uint8_t t = p[i];
    if (t == 0) break;  // end of options
    if (t == 1) {       // no-operation
      i++;
      continue;
    }
    if (i + 1 >= ihl || p[i + 1] < 2 || i + p[i + 1] > ihl) break;
    if (t & 0x80) {
      memcpy(copied + nc, p + i, p[i + 1]);
      nc += p[i + 1];
    }
    i += p[i + 1];
  }
  while (nc % 4) copied[nc++] = 0;
  const uint32_t ihlLater = 20 + nc;
  if (ihl + 8 > mtu || ihlLater + 8 > mtu) return 0;
  const uint32_t offset0 = ((uint32_t(p[6] & 0x1f) << 8) | p[7]) * 8;
  const bool moreAfter = (p[6] & 0x20) != 0;
  const uint32_t dlen = len - ihl;
  uint32_t pos = 0, pieces = 0;
  while (pos < dlen) {
    const uint32_t h = pieces == 0 ? ihl : ihlLater;
    uint32_t chunk = (mtu - h) & ~7u;
    if (chunk > dlen - pos) chunk = dlen - pos;
    const bool last = pos + chunk == dlen;
    memcpy(buf, p, 20);
    if (pieces == 0)
      memcpy(buf + 20, p + 20, ihl - 20);
    else
      memcpy(buf + 20, copied, nc);
    buf[0] = uint8_t(0x40 | (h / 4));
    put16(buf + 2, h + chunk);
    if (buf[4] == 0 && buf[5] == 0) put16(buf + 4, id);
    put16(buf + 6, ((offset0 + pos) / 8) | ((!last || moreAfter) ? 0x2000 : 0));
    buf[10] = buf[11] = 0;
    put16(buf + 10, uint16_t(~fold(sum16(buf, h))));
    memcpy(buf + h, p + ihl + pos, chunk);
    emit(buf, h + chunk);
    pos += chunk;
    pieces++;
  }
  return pieces;
}

// The kernel's own limits for these two errors, which it exempts so as not to break path MTU discovery
// (net/ipv4/icmp.c icmpv4_mask_allow: "fragmentation needed" never limited; net/ipv6/icmp.c
// icmpv6_mask_allow: an ICMPv6 type is limited only when net.ipv6.icmp.ratemask names it, and the default,
// 0-1,3-127, leaves out 2, "packet too big"). Where a type is limited, the kernel's global token bucket
// (net.ipv4.icmp_msgs_per_sec and icmp_msgs_burst, read from this network namespace) is applied here; the
// kernel's per-destination limit is not.
struct Limit {
  double perSec = 1000, burst = 50, tokens = 50, last = 0;
  bool limit6 = false;  // net.ipv6.icmp.ratemask names type 2

  static long readNumber(const char* path, long fallback) {
    FILE* f = fopen(path, "r");
    if (!f) return fallback;
    long v = fallback;
    if (fscanf(f, "%ld", &v) != 1) v = fallback;
    fclose(f);
    return v;
  }
  // "0-1,3-127": does the list name `type`?
  static bool listNames(const char* path, int type) {
    FILE* f = fopen(path, "r");
    if (!f) return false;
    char buf[512] = {0};
    const size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    for (char* p = buf; *p;) {
      char* end = nullptr;
      const long lo = strtol(p, &end, 10);
      if (end == p) break;
      long hi = lo;
      p = end;
      if (*p == '-') {
        hi = strtol(p + 1, &end, 10);
        p = end;
      }
      if (type >= lo && type <= hi) return true;
      while (*p == ',' || *p == ' ' || *p == '\n') p++;
    }
    return false;
  }
  void load() {
    perSec = double(readNumber("/proc/sys/net/ipv4/icmp_msgs_per_sec", 1000));
    burst = tokens = double(readNumber("/proc/sys/net/ipv4/icmp_msgs_burst", 50));
    limit6 = listNames("/proc/sys/net/ipv6/icmp/ratemask", 2);
  }
  // whether an error of this family is limited at all (IPv4's "fragmentation needed" never is)
  bool applies(bool v6) const { return v6 && limit6; }
  bool allow(double nowMs) {
    if (last == 0) last = nowMs;
    tokens += (nowMs - last) * perSec / 1000;
    if (tokens > burst) tokens = burst;
    last = nowMs;
    if (tokens < 1) return false;
    tokens -= 1;
    return true;
  }
};

}  // namespace toobig
