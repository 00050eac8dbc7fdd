// AF_XDP for packet mode's `--packet-io xdp`: a socket per receive queue of each interface, each with its own
// UMEM (frames the kernel writes received frames into and sends frames from), and a small XDP program of our
// own on each interface that redirects to those sockets only what wasmvs takes over: IPv4/IPv6 to one of the
// addresses in a hash map (the services' VIPs and the full-NAT local addresses), except ICMP echo and ICMPv6
// informational messages (ND, ping), which the kernel keeps answering. Everything else (ARP, ND, the node's
// own traffic) is passed to the kernel untouched, so the takeover table has nothing left to drop.
//
// Redirected frames never enter the kernel's stack: no skb for the original, no conntrack, no prerouting.
// The program is written here as raw BPF instructions (no clang at build time) and attached through a BPF
// link, so it goes away with the process, even one that is killed.
//
// Frames are copied once each way, as with the PACKET_MMAP rings: UMEM frame -> the core's batch slot on
// receive, slot -> a free UMEM tx frame behind an Ethernet header on send (the core's memory is V8's
// ArrayBuffer; registering it as the UMEM would pin memory V8 owns).
#pragma once

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <dirent.h>
#include <linux/bpf.h>
#include <linux/if_link.h>
#include <linux/if_xdp.h>
#include <net/if.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>
#include <xdp/xsk.h>

#include <array>
#include <deque>
#include <set>
#include <string>
#include <vector>

namespace xdp {

constexpr uint32_t kFrameSize = 2048;  // a frame: an Ethernet header and up to 2,034 bytes of packet
// Frames owned by the fill and rx rings, an interface's in all, shared among its queues' sockets (2,048 at
// least each): about as many small packets as a TPACKET_V3 ring's 4 MiB hold, so a proxy that falls behind
// for a few milliseconds loses no more than with the rings, and a 64-queue NIC does not pin gigabytes.
constexpr uint32_t kRxFramesPerInterface = 16384, kMinRxFrames = 2048;
constexpr uint32_t kTxFrames = 2048;  // owned by the tx and completion rings, or free
constexpr uint32_t kMaxAddresses = 65536;

inline std::string errnoText(int e) {
  return std::string(strerror(e));
}

// One AF_XDP socket: an interface's receive queue, and the same interface's sends.
struct Sock {
  int ifindex = 0;
  uint32_t queue = 0;
  uint8_t* area = nullptr;
  size_t areaLen = 0;
  xsk_umem* umem = nullptr;
  xsk_socket* xsk = nullptr;
  xsk_ring_prod fill{}, tx{};
  xsk_ring_cons comp{}, rx{};
  int fd = -1;
  uint32_t rxFrames = kMinRxFrames;  // a power of two: the fill and rx rings' size
  std::vector<uint64_t> txFree;      // tx frames neither queued nor in flight
  std::vector<uint64_t> refill;      // rx frames read, not yet back in the fill ring
  uint32_t pending = 0;              // queued since the last kick
};

// One interface: its program, the map of its sockets by queue, and the link that keeps the program on.
struct Port {
  int ifindex = 0;
  uint32_t queues = 0;  // its receive queues: one socket each
  std::string name;
  int prog = -1, xsks = -1, link = -1;
};

struct Xdp {
  int addrs = -1;  // the addresses taken over: 16-byte keys (IPv4 as ::ffff:a.b.c.d)
  std::vector<Port> ports;
  std::deque<Sock> socks;  // stable addresses: pollers and the tx lookup hold pointers
  std::string mode;        // "native" (the driver runs the program) or "generic" (after the skb is made)
  bool zeroCopy = false;
  std::set<std::array<uint8_t, 16>> fixed;  // the local addresses: always taken over
};

// A few BPF instructions with labels, enough for the redirect program.
class Asm {
 public:
  std::vector<bpf_insn> code;
  void op(uint8_t c, uint8_t dst, uint8_t src, int16_t off, int32_t imm) {
    bpf_insn i{};
    i.code = c;
    i.dst_reg = dst & 15;
    i.src_reg = src & 15;
    i.off = off;
    i.imm = imm;
    code.push_back(i);
  }
  void movReg(uint8_t d, uint8_t s) { op(BPF_ALU64 | BPF_MOV | BPF_X, d, s, 0, 0); }
  void movImm(uint8_t d, int32_t v) { op(BPF_ALU64 | BPF_MOV | BPF_K, d, 0, 0, v); }
  void addImm(uint8_t d, int32_t v) { op(BPF_ALU64 | BPF_ADD | BPF_K, d, 0, 0, v); }
  void load(uint8_t size, uint8_t d, uint8_t s, int16_t off) { op(BPF_LDX | size | BPF_MEM, d, s, off, 0); }
  void store(uint8_t size, uint8_t d, uint8_t s, int16_t off) { op(BPF_STX | size | BPF_MEM, d, s, off, 0); }
  void storeImm(uint8_t size, uint8_t d, int16_t off, int32_t v) { op(BPF_ST | size | BPF_MEM, d, 0, off, v); }
  void mapFd(uint8_t d, int fd) {
    op(BPF_LD | BPF_DW | BPF_IMM, d, BPF_PSEUDO_MAP_FD, 0, fd);
    op(0, 0, 0, 0, 0);
  }
  void call(int32_t fn) { op(BPF_JMP | BPF_CALL, 0, 0, 0, fn); }
  void exit() { op(BPF_JMP | BPF_EXIT, 0, 0, 0, 0); }
  // conditional jumps to a label placed later (or earlier) with `at`
  void jImm(uint8_t cmp, uint8_t d, int32_t v, const std::string& to) { jump(BPF_JMP | cmp | BPF_K, d, 0, v, to); }
  void jReg(uint8_t cmp, uint8_t d, uint8_t s, const std::string& to) { jump(BPF_JMP | cmp | BPF_X, d, s, 0, to); }
  void ja(const std::string& to) { jump(BPF_JMP | BPF_JA, 0, 0, 0, to); }
  void at(const std::string& label) { labels.push_back({label, code.size()}); }
  bool resolve() {
    for (const auto& [idx, label] : fixups) {
      bool found = false;
      for (const auto& [name, where] : labels)
        if (name == label) {
          code[idx].off = int16_t(int(where) - int(idx) - 1);
          found = true;
        }
      if (!found) return false;
    }
    return true;
  }

 private:
  std::vector<std::pair<std::string, size_t>> labels;
  std::vector<std::pair<size_t, std::string>> fixups;
  void jump(uint8_t c, uint8_t d, uint8_t s, int32_t v, const std::string& to) {
    fixups.push_back({code.size(), to});
    op(c, d, s, 0, v);
  }
};

// The redirect program for one interface: frames to a taken-over address go to the socket of their queue.
inline std::vector<bpf_insn> redirectProgram(int addrsFd, int xsksFd) {
  enum { R0, R1, R2, R3, R4, R5, R6, R7, R8, R9, FP };
  Asm a;
  a.movReg(R6, R1);          // struct xdp_md*
  a.load(BPF_W, R2, R6, 0);  // data
  a.load(BPF_W, R3, R6, 4);  // data_end
  a.movReg(R4, R2);
  a.addImm(R4, 14);
  a.jReg(BPF_JGT, R4, R3, "pass");
  a.load(BPF_H, R5, R2, 12);  // EtherType, loaded little-endian
  a.jImm(BPF_JEQ, R5, 0x0008, "v4");
  a.jImm(BPF_JEQ, R5, 0xdd86, "v6");
  a.ja("pass");

  a.at("v4");
  a.movReg(R4, R2);
  a.addImm(R4, 34);
  a.jReg(BPF_JGT, R4, R3, "pass");
  a.load(BPF_B, R5, R2, 23);  // protocol
  a.jImm(BPF_JNE, R5, 1, "v4key");
  a.load(BPF_B, R5, R2, 14);  // ICMP echo (a 20-byte header only) stays with the kernel
  a.jImm(BPF_JNE, R5, 0x45, "v4key");
  a.movReg(R4, R2);
  a.addImm(R4, 35);
  a.jReg(BPF_JGT, R4, R3, "pass");
  a.load(BPF_B, R5, R2, 34);
  a.jImm(BPF_JEQ, R5, 8, "pass");
  a.jImm(BPF_JEQ, R5, 0, "pass");
  a.at("v4key");
  a.storeImm(BPF_DW, FP, -16, 0);
  a.storeImm(BPF_W, FP, -8, int32_t(0xffff0000u));  // bytes 00 00 ff ff: ::ffff:a.b.c.d
  a.load(BPF_W, R5, R2, 30);
  a.store(BPF_W, FP, R5, -4);
  a.ja("lookup");

  a.at("v6");
  a.movReg(R4, R2);
  a.addImm(R4, 54);
  a.jReg(BPF_JGT, R4, R3, "pass");
  a.load(BPF_B, R5, R2, 20);  // next header
  a.jImm(BPF_JNE, R5, 58, "v6key");
  a.movReg(R4, R2);
  a.addImm(R4, 55);
  a.jReg(BPF_JGT, R4, R3, "pass");
  a.load(BPF_B, R5, R2, 54);  // ICMPv6 informational (ND, echo, MLD): the kernel's
  a.jImm(BPF_JGT, R5, 127, "pass");
  a.at("v6key");
  a.load(BPF_DW, R5, R2, 38);
  a.store(BPF_DW, FP, R5, -16);
  a.load(BPF_DW, R5, R2, 46);
  a.store(BPF_DW, FP, R5, -8);

  a.at("lookup");
  a.mapFd(R1, addrsFd);
  a.movReg(R2, FP);
  a.addImm(R2, -16);
  a.call(BPF_FUNC_map_lookup_elem);
  a.jImm(BPF_JEQ, R0, 0, "pass");
  a.mapFd(R1, xsksFd);
  a.load(BPF_W, R2, R6, 16);  // rx_queue_index
  a.movImm(R3, XDP_PASS);     // no socket on that queue: the kernel's
  a.call(BPF_FUNC_redirect_map);
  a.exit();
  a.at("pass");
  a.movImm(R0, XDP_PASS);
  a.exit();
  if (!a.resolve()) return {};
  return a.code;
}

// The interface's receive queues (sysfs: rx-0, rx-1, ...), at least one.
inline uint32_t rxQueues(const std::string& ifname) {
  uint32_t n = 0;
  DIR* d = opendir(("/sys/class/net/" + ifname + "/queues").c_str());
  if (!d) return 1;
  while (dirent* e = readdir(d))
    if (strncmp(e->d_name, "rx-", 3) == 0) n++;
  closedir(d);
  return n ? n : 1;
}

inline void closeSock(Sock& s) {
  if (s.xsk) xsk_socket__delete(s.xsk);
  if (s.umem) xsk_umem__delete(s.umem);
  if (s.area) munmap(s.area, s.areaLen);
  s.xsk = nullptr;
  s.umem = nullptr;
  s.area = nullptr;
  s.fd = -1;
}

inline void close(Xdp* x) {
  for (Port& p : x->ports) {
    if (p.link >= 0) ::close(p.link);  // detaches the program
    if (p.prog >= 0) ::close(p.prog);
    if (p.xsks >= 0) ::close(p.xsks);
  }
  x->ports.clear();
  for (Sock& s : x->socks) closeSock(s);
  x->socks.clear();
  if (x->addrs >= 0) ::close(x->addrs);
  x->addrs = -1;
}

inline bool openSock(Sock* s, const std::string& ifname, std::string* err) {
  s->areaLen = size_t(kFrameSize) * (s->rxFrames + kTxFrames);
  void* m = mmap(nullptr, s->areaLen, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (m == MAP_FAILED) {
    *err = "UMEM: " + errnoText(errno);
    return false;
  }
  s->area = static_cast<uint8_t*>(m);
  xsk_umem_config uc{};
  // fill and tx rings twice their frames: the kernel publishes how far it has read them after it hands the
  // frames back, and a reservation must never find a ring full of entries it has in fact read
  uc.fill_size = 2 * s->rxFrames;
  uc.comp_size = kTxFrames;
  uc.frame_size = kFrameSize;
  uc.frame_headroom = 0;
  int r = xsk_umem__create(&s->umem, s->area, s->areaLen, &s->fill, &s->comp, &uc);
  if (r) {
    s->umem = nullptr;
    *err = "UMEM registration: " + errnoText(-r) + (r == -EPERM ? " (needs CAP_NET_ADMIN and CAP_IPC_LOCK)" : "");
    return false;
  }
  xsk_socket_config sc{};
  sc.rx_size = s->rxFrames;
  sc.tx_size = 2 * kTxFrames;
  sc.libxdp_flags = XSK_LIBXDP_FLAGS__INHIBIT_PROG_LOAD;  // our program, not libxdp's (which takes every frame)
  sc.bind_flags = XDP_USE_NEED_WAKEUP;                    // zero-copy where the driver has it, else copy
  r = xsk_socket__create(&s->xsk, ifname.c_str(), s->queue, s->umem, &s->rx, &s->tx, &sc);
  if (r) {
    s->xsk = nullptr;
    *err = "AF_XDP socket on " + ifname + " queue " + std::to_string(s->queue) + ": " + errnoText(-r);
    return false;
  }
  s->fd = xsk_socket__fd(s->xsk);
  uint32_t idx = 0;
  if (xsk_ring_prod__reserve(&s->fill, s->rxFrames, &idx) != s->rxFrames) {
    *err = "AF_XDP fill ring: could not reserve its frames";
    return false;
  }
  for (uint32_t i = 0; i < s->rxFrames; i++) *xsk_ring_prod__fill_addr(&s->fill, idx + i) = uint64_t(i) * kFrameSize;
  xsk_ring_prod__submit(&s->fill, s->rxFrames);
  s->txFree.reserve(kTxFrames);
  s->refill.reserve(s->rxFrames);
  for (uint32_t i = 0; i < kTxFrames; i++) s->txFree.push_back(uint64_t(s->rxFrames + i) * kFrameSize);
  return true;
}

// Sets everything up on the interfaces; false with err (and nothing left behind) on failure.
inline bool open(Xdp* x, const std::vector<std::string>& ifaces, std::string* err) {
  libbpf_set_print(nullptr);  // its own stderr lines: the error below says what failed
  bpf_map_create_opts mo{};
  mo.sz = sizeof mo;
  mo.map_flags = BPF_F_NO_PREALLOC;
  x->addrs = bpf_map_create(BPF_MAP_TYPE_HASH, "wasmvs_addrs", 16, 1, kMaxAddresses, &mo);
  if (x->addrs < 0) {
    *err = "BPF hash map: " + errnoText(errno) + (errno == EPERM ? " (needs CAP_BPF or CAP_SYS_ADMIN)" : "");
    return false;
  }
  bool native = true;
  for (const std::string& ifn : ifaces) {
    Port p;
    p.name = ifn;
    p.ifindex = int(if_nametoindex(ifn.c_str()));
    if (!p.ifindex) {
      *err = "no interface '" + ifn + "'";
      close(x);
      return false;
    }
    const uint32_t queues = rxQueues(ifn);
    p.queues = queues;
    p.xsks = bpf_map_create(BPF_MAP_TYPE_XSKMAP, "wasmvs_xsks", 4, 4, queues, nullptr);
    if (p.xsks < 0) {
      *err = "XSKMAP for " + ifn + ": " + errnoText(errno);
      close(x);
      return false;
    }
    std::vector<bpf_insn> prog = redirectProgram(x->addrs, p.xsks);
    std::vector<char> log(65536);
    bpf_prog_load_opts po{};
    po.sz = sizeof po;
    po.log_buf = log.data();
    po.log_size = uint32_t(log.size());
    po.log_level = 1;
    po.expected_attach_type = BPF_XDP;
    p.prog = bpf_prog_load(BPF_PROG_TYPE_XDP, "wasmvs_xsk", "GPL", prog.data(), prog.size(), &po);
    if (p.prog < 0) {
      *err = "XDP program refused: " + errnoText(errno) + ": " + std::string(log.data()).substr(0, 400);
      x->ports.push_back(p);
      close(x);
      return false;
    }
    x->ports.push_back(p);
    Port& q = x->ports.back();
    for (uint32_t i = 0; i < queues; i++) {
      x->socks.emplace_back();
      Sock& s = x->socks.back();
      s.ifindex = q.ifindex;
      s.queue = i;
      while (s.rxFrames * 2 * queues <= kRxFramesPerInterface) s.rxFrames *= 2;
      if (!openSock(&s, ifn, err)) {
        close(x);
        return false;
      }
      int fd = s.fd;
      if (bpf_map_update_elem(q.xsks, &i, &fd, BPF_ANY) < 0) {
        *err = "XSKMAP entry for " + ifn + " queue " + std::to_string(i) + ": " + errnoText(errno);
        close(x);
        return false;
      }
      xdp_options xo{};
      socklen_t ol = sizeof xo;
      if (getsockopt(fd, SOL_XDP, XDP_OPTIONS, &xo, &ol) == 0 && (xo.flags & XDP_OPTIONS_ZEROCOPY)) x->zeroCopy = true;
    }
    // the driver's own XDP (veth has it) before the generic hook; a link, so it goes with the process
    bpf_link_create_opts lo{};
    lo.sz = sizeof lo;
    lo.flags = XDP_FLAGS_DRV_MODE;
    q.link = bpf_link_create(q.prog, q.ifindex, BPF_XDP, &lo);
    if (q.link < 0) {
      const int e = errno;
      lo.flags = XDP_FLAGS_SKB_MODE;
      q.link = bpf_link_create(q.prog, q.ifindex, BPF_XDP, &lo);
      if (q.link < 0) {
        *err = "attaching the XDP program to " + ifn + ": " + errnoText(errno) + " (native: " + errnoText(e) +
               (errno == EBUSY ? "; another XDP program is attached to it" : "") + ")";
        close(x);
        return false;
      }
      native = false;
    }
  }
  x->mode = native ? "native" : "generic";
  return true;
}

// The addresses taken over: the fixed ones (local addresses) and `vips`; what is no longer there goes.
inline bool setAddresses(Xdp* x, const std::set<std::array<uint8_t, 16>>& vips, std::string* err) {
  std::set<std::array<uint8_t, 16>> want = vips;
  want.insert(x->fixed.begin(), x->fixed.end());
  if (want.size() > kMaxAddresses) {  // refused before the map changes
    *err = "XDP address map: " + std::to_string(want.size()) + " addresses, more than its " +
           std::to_string(kMaxAddresses);
    return false;
  }
  std::vector<std::array<uint8_t, 16>> stale;
  std::array<uint8_t, 16> key{}, next{};
  bool first = true;
  while (bpf_map_get_next_key(x->addrs, first ? nullptr : key.data(), next.data()) == 0) {
    if (!want.count(next)) stale.push_back(next);
    key = next;
    first = false;
  }
  const uint8_t one = 1;
  for (const auto& k : want)
    if (bpf_map_update_elem(x->addrs, k.data(), &one, BPF_ANY) < 0) {
      *err = "XDP address map: " + errnoText(errno);
      return false;
    }
  for (const auto& k : stale) bpf_map_delete_elem(x->addrs, k.data());
  return true;
}

// Frames the kernel has sent: back to the free list.
inline void reclaim(Sock* s) {
  uint32_t idx = 0;
  const uint32_t n = xsk_ring_cons__peek(&s->comp, kTxFrames, &idx);
  for (uint32_t i = 0; i < n; i++) s->txFree.push_back(*xsk_ring_cons__comp_addr(&s->comp, idx + i));
  if (n) xsk_ring_cons__release(&s->comp, n);
}

// Tx descriptors the kernel has not taken yet.
inline uint32_t txQueued(const Sock* s) {
  return s->tx.cached_prod - __atomic_load_n(s->tx.consumer, __ATOMIC_ACQUIRE);
}

// The kernel's drop counts for a socket (cumulative): no fill frame, rx ring full, or dropped otherwise.
inline double drops(const Sock& s) {
  xdp_statistics st{};
  socklen_t l = sizeof st;
  if (getsockopt(s.fd, SOL_XDP, XDP_STATISTICS, &st, &l) != 0) return 0;
  return double(st.rx_dropped + st.rx_ring_full + st.rx_fill_ring_empty_descs);
}

}  // namespace xdp
