// Next hops for the tx ring: a frame put on an AF_PACKET ring carries its own Ethernet header, so the
// addon must know, per destination, the outgoing interface and the next hop's link-layer address. It asks
// the kernel (rtnetlink RTM_GETROUTE, then RTM_GETNEIGH for the gateway or the destination) and keeps the
// answer for a second, so routes and neighbours that change are followed within a second. A destination the
// kernel cannot answer for at once (no route, a local or non-Ethernet route, a neighbour not yet resolved)
// is sent through the raw IP socket instead, which makes the kernel resolve it; the answer is retried after
// 100 ms. Nothing here decides where a packet goes: the kernel's tables do, as they do for the raw socket.
#pragma once

#include <linux/if_arp.h>
#include <linux/neighbour.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <array>
#include <unordered_map>

namespace nexthop {

struct Hop {
  bool ok = false;  // usable on a ring: unicast route out of an Ethernet interface, neighbour known
  int ifindex = 0;
  uint32_t mtu = 0;  // the route's MTU (its mtu metric or a learnt path MTU, else the device's); 0: unknown
  uint8_t dst[6] = {}, src[6] = {};
  double until = 0;  // monotonic ms after which it is asked again
};

using Key = std::array<uint8_t, 17>;  // family byte, then the address (IPv4 in the first 4 bytes)

struct KeyHash {
  size_t operator()(const Key& k) const {
    uint64_t a, b;
    memcpy(&a, k.data() + 1, 8);
    memcpy(&b, k.data() + 9, 8);
    return size_t((a * 0x9e3779b97f4a7c15ull) ^ (b + k[0]));
  }
};

inline double monoMs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return double(ts.tv_sec) * 1e3 + double(ts.tv_nsec) / 1e6;
}

class Table {
 public:
  ~Table() {
    if (nl_ >= 0) close(nl_);
    if (ioc_ >= 0) close(ioc_);
  }

  // The next hop for a destination (IPv4: 4 bytes, IPv6: 16), or nullptr: send it through the raw socket.
  // now: monoMs(), read once per batch by the caller.
  const Hop* find(int family, const uint8_t* addr, double now) {
    const Hop& h = entry(family, addr, now);
    return h.ok ? &h : nullptr;
  }

  // The MTU of the route to a destination (0 when the kernel has no usable route), whether or not its
  // neighbour is known: what a packet after NAT must fit.
  uint32_t mtu(int family, const uint8_t* addr, double now) { return entry(family, addr, now).mtu; }

  double lookups = 0;  // rtnetlink questions asked

 private:
  int nl_ = -1, ioc_ = -1;
  uint32_t seq_ = 0;
  std::unordered_map<Key, Hop, KeyHash> hops_;  // node-based: pointers to its values stay valid
  // The last destinations looked up, by the low bits of their last byte: a batch goes to a few real servers
  // and clients (the last destination alone missed every other packet over two real servers), and the
  // hash and find of the map cost about 2% of the one-thread ring path's samples.
  struct Recent {
    Key key{};
    Hop* hop = nullptr;
  };
  std::array<Recent, 16> recent_{};

  const Hop& entry(int family, const uint8_t* addr, double now) {
    Key k{};
    k[0] = uint8_t(family);
    memcpy(k.data() + 1, addr, family == AF_INET ? 4 : 16);
    Recent& r = recent_[(k[4] ^ k[16]) & 15];
    if (r.hop && r.key == k && r.hop->until > now) return *r.hop;
    auto it = hops_.find(k);
    if (it != hops_.end() && it->second.until > now) {
      r.key = k;
      r.hop = &it->second;
      return it->second;
    }
    if (hops_.size() > 65536) {  // a bound: many distinct destinations only cost re-asking
      hops_.clear();
      recent_ = {};
    }
    Hop& h = hops_[k];
    h = Hop{};
    h.ok = resolve(family, addr, &h);
    h.until = now + (h.ok ? 1000 : 100);
    lookups++;
    return h;
  }

  // One request, one answer (or an error): the buffer receives the first reply message.
  bool ask(void* req, size_t len, char* buf, size_t cap, nlmsghdr** reply) {
    if (nl_ < 0) {
      nl_ = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
      if (nl_ < 0) return false;
      timeval tv{0, 200000};
      setsockopt(nl_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    }
    nlmsghdr* q = static_cast<nlmsghdr*>(req);
    q->nlmsg_seq = ++seq_;
    if (send(nl_, req, len, 0) < 0) return false;
    for (;;) {
      ssize_t r = recv(nl_, buf, cap, 0);
      if (r <= 0) return false;
      nlmsghdr* m = reinterpret_cast<nlmsghdr*>(buf);
      if (!NLMSG_OK(m, size_t(r)) || m->nlmsg_seq != seq_) continue;  // a late answer to an old question
      if (m->nlmsg_type == NLMSG_ERROR) return false;
      *reply = m;
      return true;
    }
  }

  static void addAttr(nlmsghdr* n, uint16_t type, const void* data, size_t len) {
    rtattr* a = reinterpret_cast<rtattr*>(reinterpret_cast<char*>(n) + NLMSG_ALIGN(n->nlmsg_len));
    a->rta_type = type;
    a->rta_len = uint16_t(RTA_LENGTH(len));
    memcpy(RTA_DATA(a), data, len);
    n->nlmsg_len = NLMSG_ALIGN(n->nlmsg_len) + RTA_ALIGN(a->rta_len);
  }

  // RTAX_MTU inside RTA_METRICS: a route's mtu, or the path MTU the kernel learnt for this destination.
  static uint32_t metricMtu(rtattr* metrics) {
    int left = int(RTA_PAYLOAD(metrics));
    for (rtattr* a = static_cast<rtattr*>(RTA_DATA(metrics)); RTA_OK(a, left); a = RTA_NEXT(a, left)) {
      if (a->rta_type == RTAX_MTU && RTA_PAYLOAD(a) >= 4) {
        uint32_t v;
        memcpy(&v, RTA_DATA(a), 4);
        return v;
      }
    }
    return 0;
  }

  // The device's MTU into h, and its Ethernet address: false when it has none (not usable on a ring).
  bool linkOf(int ifindex, Hop* h) {
    if (ioc_ < 0) ioc_ = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    ifreq ifr{};
    if (!if_indextoname(unsigned(ifindex), ifr.ifr_name)) return false;
    if (ioctl(ioc_, SIOCGIFMTU, &ifr) < 0) return false;
    h->mtu = uint32_t(ifr.ifr_mtu);
    if (ioctl(ioc_, SIOCGIFHWADDR, &ifr) < 0 || ifr.ifr_hwaddr.sa_family != ARPHRD_ETHER) return false;
    memcpy(h->src, ifr.ifr_hwaddr.sa_data, 6);
    return true;
  }

  bool resolve(int family, const uint8_t* addr, Hop* h) {
    const size_t alen = family == AF_INET ? 4 : 16;
    struct {
      nlmsghdr n;
      rtmsg r;
      char attrs[64];
    } rq{};
    rq.n.nlmsg_len = NLMSG_LENGTH(sizeof(rtmsg));
    rq.n.nlmsg_type = RTM_GETROUTE;
    rq.n.nlmsg_flags = NLM_F_REQUEST;
    rq.r.rtm_family = uint8_t(family);
    rq.r.rtm_dst_len = uint8_t(alen * 8);
    addAttr(&rq.n, RTA_DST, addr, alen);
    alignas(nlmsghdr) char buf[8192];
    nlmsghdr* m;
    if (!ask(&rq, rq.n.nlmsg_len, buf, sizeof buf, &m) || m->nlmsg_type != RTM_NEWROUTE) return false;
    rtmsg* rt = static_cast<rtmsg*>(NLMSG_DATA(m));
    if (rt->rtm_type != RTN_UNICAST) return false;  // local, broadcast, blackhole...: the kernel's to handle
    uint8_t via[16];
    memcpy(via, addr, alen);
    int oif = 0;
    uint32_t routeMtu = 0;
    bool ringable = true;
    int left = int(RTM_PAYLOAD(m));
    for (rtattr* a = RTM_RTA(rt); RTA_OK(a, left); a = RTA_NEXT(a, left)) {
      if (a->rta_type == RTA_OIF)
        memcpy(&oif, RTA_DATA(a), 4);
      else if (a->rta_type == RTA_GATEWAY && RTA_PAYLOAD(a) == alen)
        memcpy(via, RTA_DATA(a), alen);
      else if (a->rta_type == RTA_VIA || a->rta_type == RTA_MULTIPATH)
        ringable = false;
      else if (a->rta_type == RTA_METRICS)
        routeMtu = metricMtu(a);
    }
    if (!oif) return false;
    const bool ethernet = linkOf(oif, h);
    if (routeMtu && h->mtu && routeMtu < h->mtu) h->mtu = routeMtu;
    if (!ethernet || !ringable) return false;
    h->ifindex = oif;
    struct {
      nlmsghdr n;
      ndmsg d;
      char attrs[64];
    } nq{};
    nq.n.nlmsg_len = NLMSG_LENGTH(sizeof(ndmsg));
    nq.n.nlmsg_type = RTM_GETNEIGH;
    nq.n.nlmsg_flags = NLM_F_REQUEST;
    nq.d.ndm_family = uint8_t(family);
    nq.d.ndm_ifindex = oif;
    addAttr(&nq.n, NDA_DST, via, alen);
    if (!ask(&nq, nq.n.nlmsg_len, buf, sizeof buf, &m) || m->nlmsg_type != RTM_NEWNEIGH) return false;
    ndmsg* nd = static_cast<ndmsg*>(NLMSG_DATA(m));
    const uint16_t usable = NUD_REACHABLE | NUD_STALE | NUD_DELAY | NUD_PROBE | NUD_PERMANENT;
    if (!(nd->ndm_state & usable)) return false;
    left = int(NLMSG_PAYLOAD(m, sizeof(ndmsg)));
    for (rtattr* a = reinterpret_cast<rtattr*>(reinterpret_cast<char*>(nd) + NLMSG_ALIGN(sizeof(ndmsg)));
         RTA_OK(a, left); a = RTA_NEXT(a, left)) {
      if (a->rta_type == NDA_LLADDR && RTA_PAYLOAD(a) == 6) {
        memcpy(h->dst, RTA_DATA(a), 6);
        return true;
      }
    }
    return false;
  }
};

}  // namespace nexthop
