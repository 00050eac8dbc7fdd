// Packet I/O for wasmvs packet mode: receives IPv4/IPv6 packets with AF_PACKET (SOCK_DGRAM, so each
// packet starts at the IP header) straight into the WASM batch area with recvmmsg, and sends the
// rewritten ones with raw IPPROTO_RAW sockets (header included; the kernel routes and resolves the
// neighbour) with sendmmsg. Readiness comes from uv_poll on Node's own loop, so the host stays event
// driven. This file decides nothing about a packet beyond "which direction is it" (its destination is
// one of the full-NAT local addresses or not) and "is it forwarded" (the verdict byte the WASM core
// wrote); everything else is the core's.
//
// Batch area layout (assembly/packet/exports.ts): 32-byte descriptors {u32 offset, u32 length,
// u32 direction, u32 mark, u8 verdict, ...}; packet i's bytes are in slot i of the data area.
#include <node_api.h>
#include <uv.h>

#include <arpa/inet.h>
#include <errno.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <array>
#include <atomic>
#include <deque>
#include <mutex>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include "napi_args.h"
#include "nexthop.h"
#include "nfqueue.h"
#include "ring.h"
#include "sync_io.h"
#include "toobig.h"
#ifdef WASMVS_XDP
#include "xdp.h"
#endif

namespace {

constexpr uint32_t kDescSize = 32;
constexpr size_t kCtrlSize = CMSG_SPACE(sizeof(struct tpacket_auxdata));

struct Counters {
  double rxPackets = 0;        // handed to the core
  double rxCalls = 0;          // recvmmsg calls that returned packets
  double rxIgnored = 0;        // our own output, or frames for another host
  double rxOversize = 0;       // larger than a slot (GRO/GSO aggregates, jumbo frames): dropped here
  double rxCsumCompleted = 0;  // checksum offload left for us (veth, local senders): completed here
  double rxTrimmed = 0;        // link-layer padding cut off (frames under Ethernet's 60-byte minimum)
  double rxKernelDrops = 0;    // the sockets' receive queues overflowed (PACKET_STATISTICS)
  double txPackets = 0;
  double txCalls = 0;
  double txNoBuffer = 0;      // EAGAIN / ENOBUFS: the send queue was full
  double txTooBig = 0;        // over the route's MTU with DF set (or IPv6): not sent (an error went back, toobig.h)
  double txIcmpTooBig = 0;    // ICMP "fragmentation needed" / ICMPv6 "packet too big" sent to a sender
  double txIcmpLimited = 0;   // such errors not sent: over the rate limit (toobig::Limit)
  double txIcmpUnquoted = 0;  // such errors not sent: the packet's headers were not kept (under kKeepFrom*)
  double txFragmented = 0;    // IPv4 packets without DF over the route's MTU, sent in fragments
  double txFragments = 0;     // the fragments they were sent in
  double txUnreachable = 0;   // no route / neighbour
  double txOtherErrors = 0;
  double recvNs = 0;         // time inside recvmmsg, or reading the rx rings
  double sendNs = 0;         // time inside sendmmsg, or filling and kicking the tx rings
  double txRingPackets = 0;  // sent through a tx ring (also in txPackets)
  double txRingKicks = 0;    // sendto() calls that sent a ring's frames
  double txRawFallback = 0;  // ring mode, but sent through the raw socket (next hop unknown, too big, ring full)
  double rxRingBlocks = 0;   // rx ring blocks read
  double rxXdpFrames = 0;    // frames read from the AF_XDP rx rings
  double rxXdpWakeups = 0;   // fill ring wake-ups the kernel asked for
  double txXdpPackets = 0;   // sent through an AF_XDP tx ring (also in txPackets)
  double txXdpKicks = 0;     // sendto() calls that sent an AF_XDP socket's frames
  int lastTxErrno = 0;
};

struct Io;
struct Worker;  // an I/O thread (io_threads.h)
struct Buf;

struct Poll {
  uv_poll_t handle;
  Io* io;
};

struct Io {
  napi_env env = nullptr;
  std::vector<int> rx;  // one socket per (interface, IPv4 | IPv6)
  int tx4 = -1, tx6 = -1;
  std::vector<uint32_t> local4;  // network order
  std::vector<std::array<uint8_t, 16>> local6;
  uint32_t maxPackets = 0, slot = 0;
  std::vector<mmsghdr> msgs;
  std::vector<iovec> iov;
  std::vector<sockaddr_ll> names;
  std::vector<char> ctrl;
  std::vector<mmsghdr> out4, out6;
  std::vector<iovec> outIov4, outIov6;
  std::vector<sockaddr_in> to4;
  std::vector<sockaddr_in6> to6;
  std::vector<Poll*> polls;
  // the one-thread AF_XDP path's gathering (onXdpReadable): the sockets' polls, stopped while a timer runs
  std::vector<Poll*> xdpPolls;
  int gatherFd = -1;  // timerfd
  bool gathering = false;
  uint32_t lastBatch = 0;  // AF_XDP: the last recv's packets (> 0), whether to gather (kHoldFrom, io_threads.h)
  napi_ref callback = nullptr;
  napi_async_context asyncCtx = nullptr;
  size_t nextRx = 0;  // round robin over sockets: none starves under load
  bool closed = false;
  bool useRing = false;           // --packet-io ring, and every rx ring could be set up
  std::string ringFallback;       // why ring I/O was asked for and not used
  std::vector<ring::Rx> rxRings;  // parallel to rx (ring mode)
  std::deque<ring::Tx> txRings;   // one per outgoing interface, made on first use (a deque:
                                  // `kicked` holds pointers across the making of another)
  std::vector<int> txRingless;    // interfaces whose tx ring could not be set up
  std::vector<ring::Tx*> kicked;
  ring::Tx* lastTx = nullptr;  // the tx ring last used (most batches go out of one interface)
  bool useXdp = false;         // --packet-io xdp, and the program and sockets could be set up
  std::string xdpFallback;     // why AF_XDP was asked for and not used
#ifdef WASMVS_XDP
  xdp::Xdp xdp;
  std::vector<xdp::Sock*> xdpKicked;
#endif
  nexthop::Table hops;
  // packets over their route's MTU (toobig.h): each large packet's first bytes as it arrived, by slot
  std::vector<uint8_t> orig;
  std::vector<uint8_t> origLen;
  std::vector<uint32_t> outDesc4, outDesc6;  // the descriptor of each raw-socket message
  std::vector<uint32_t> overMtu;             // descriptors the raw socket refused with EMSGSIZE
  std::vector<uint8_t> scratch;              // an error or a fragment being built
  toobig::Limit icmpLimit;
  uint16_t fragId = 1;
  nfq::Queue queue;  // fwmark services' packets (nfqueue.h), once openQueue has bound one
  Counters c;
  // open({ threads: N > 1 }): this handle has no sockets of its own; N I/O threads do (io_threads.h)
  std::vector<Worker*> workers;
  uv_async_t* async = nullptr;
  size_t nextWorker = 0;
  int threadQueueBase = -1;   // with threads: the first of their netfilter queues (base + k for thread k), once bound
  Worker* current = nullptr;  // the thread whose batch is in the core's batch area
  Buf* currentBuf = nullptr;
};

double nowNs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return double(ts.tv_sec) * 1e9 + double(ts.tv_nsec);
}

using napi_args::args;
inline napi_value throwErr(napi_env env, const std::string& msg) {
  return napi_args::throwError(env, msg);
}

std::string errnoText(int e) {
  return std::string(strerror(e));
}

Io* unwrap(napi_env env, napi_value v) {
  void* p = nullptr;
  if (napi_get_value_external(env, v, &p) != napi_ok || !p) {
    throwErr(env, "not a packet I/O handle");
    return nullptr;
  }
  Io* io = static_cast<Io*>(p);
  if (io->closed) {
    throwErr(env, "packet I/O handle is closed");
    return nullptr;
  }
  return io;
}

// The WASM memory as bytes; every offset the host passes is checked against it.
bool memoryOf(napi_env env, napi_value v, uint8_t** base, size_t* len) {
  void* data = nullptr;
  bool isAb = false;
  napi_is_arraybuffer(env, v, &isAb);
  if (!isAb || napi_get_arraybuffer_info(env, v, &data, len) != napi_ok) {
    throwErr(env, "expected the WASM memory's ArrayBuffer");
    return false;
  }
  *base = static_cast<uint8_t*>(data);
  return true;
}

void closeFds(Io* io) {
#ifdef WASMVS_XDP
  xdp::close(&io->xdp);
  io->xdpKicked.clear();
#endif
  for (ring::Rx& r : io->rxRings) {
    r.fd = -1;
    r.release();
  }  // unmaps; the fd is in io->rx
  io->rxRings.clear();
  for (ring::Tx& t : io->txRings) t.release();
  io->txRings.clear();
  io->lastTx = nullptr;
  for (int fd : io->rx) close(fd);
  io->rx.clear();
  if (io->tx4 >= 0) close(io->tx4);
  if (io->tx6 >= 0) close(io->tx6);
  io->tx4 = io->tx6 = -1;
  if (io->gatherFd >= 0) close(io->gatherFd);
  io->gatherFd = -1;
  nfq::close(io->queue);
}

void stopPolls(Io* io) {
  for (Poll* p : io->polls) {
    uv_poll_stop(&p->handle);
    uv_close(reinterpret_cast<uv_handle_t*>(&p->handle),
             [](uv_handle_t* h) { delete reinterpret_cast<Poll*>(h->data); });
  }
  io->polls.clear();
  io->xdpPolls.clear();
}

void stopThreads(Io* f);

void releaseIo(Io* io) {
  if (io->closed) return;
  io->closed = true;
  if (!io->workers.empty()) stopThreads(io);
  stopPolls(io);
  closeFds(io);
  if (io->callback) napi_delete_reference(io->env, io->callback);
  io->callback = nullptr;
  if (io->asyncCtx) napi_async_destroy(io->env, io->asyncCtx);
  io->asyncCtx = nullptr;
}

void finalizeIo(napi_env, void* data, void*) {
  Io* io = static_cast<Io*>(data);
  releaseIo(io);
  delete io;
}

int openRx(const std::string& ifname, uint16_t proto, uint32_t rcvbuf, ring::Rx* rxRing, std::string* err) {
  unsigned idx = if_nametoindex(ifname.c_str());
  if (!idx) {
    *err = "no interface '" + ifname + "'";
    return -1;
  }
  // protocol 0 until bound: nothing from other interfaces is queued in between
  int fd = socket(AF_PACKET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    *err = "AF_PACKET socket: " + errnoText(errno) + (errno == EPERM ? " (needs CAP_NET_RAW)" : "");
    return -1;
  }
  int one = 1;
  setsockopt(fd, SOL_PACKET, PACKET_AUXDATA, &one, sizeof one);
  // our own sends (raw socket output, tx ring frames) would be copied back to us only to be ignored
  setsockopt(fd, SOL_PACKET, PACKET_IGNORE_OUTGOING, &one, sizeof one);
  if (rxRing && !rxRing->setup(fd, err)) {
    close(fd);
    return -2;
  }
  if (rcvbuf && !rxRing) {
    int sz = int(rcvbuf);
    if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &sz, sizeof sz) < 0)
      setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &sz, sizeof sz);
  }
  sockaddr_ll sll{};
  sll.sll_family = AF_PACKET;
  sll.sll_protocol = htons(proto);
  sll.sll_ifindex = int(idx);
  if (bind(fd, reinterpret_cast<sockaddr*>(&sll), sizeof sll) < 0) {
    *err = "bind AF_PACKET to " + ifname + ": " + errnoText(errno);
    close(fd);
    return -1;
  }
  return fd;
}

int openTx(int family, std::string* err) {
  int fd = socket(family, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_RAW);
  if (fd < 0) {
    *err = std::string(family == AF_INET ? "raw IPv4" : "raw IPv6") + " socket: " + errnoText(errno) +
           (errno == EPERM ? " (needs CAP_NET_RAW)" : "");
    return -1;
  }
  if (family == AF_INET) {
    int one = 1;
    setsockopt(fd, IPPROTO_IP, IP_HDRINCL, &one, sizeof one);  // implied by IPPROTO_RAW; said for clarity
  }
  int sz = 4 << 20;
  if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &sz, sizeof sz) < 0)
    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sz, sizeof sz);
  return fd;
}

// The AF_PACKET receive sockets, one per interface and family, with rings when io->useRing; when a ring cannot
// be had, all of them again without (why: ringFallback). False with err, nothing left open, when a socket
// cannot be had.
// With threads: each socket joins a PACKET_FANOUT_HASH group, the k-th socket of every thread the same one;
// `fanout` holds the groups' ids (the kernel picks each, unique in the namespace, when the first thread joins).
bool joinFanout(int fd, size_t k, std::vector<uint16_t>* fanout, std::string* err) {
  const bool first = fanout->size() <= k;
  int arg = first ? int((PACKET_FANOUT_HASH | PACKET_FANOUT_FLAG_UNIQUEID) << 16)
                  : int((*fanout)[k]) | (PACKET_FANOUT_HASH << 16);
  if (setsockopt(fd, SOL_PACKET, PACKET_FANOUT, &arg, sizeof arg) < 0) {
    *err = "PACKET_FANOUT (the I/O threads' shared receive group): " + errnoText(errno);
    return false;
  }
  if (first) {
    int v = 0;
    socklen_t l = sizeof v;
    if (getsockopt(fd, SOL_PACKET, PACKET_FANOUT, &v, &l) < 0) {
      *err = "PACKET_FANOUT: the group's id: " + errnoText(errno);
      return false;
    }
    fanout->push_back(uint16_t(v & 0xffff));
  }
  return true;
}

bool openRxSockets(Io* io, const std::vector<std::string>& ifaces, uint32_t rcvbuf, std::vector<uint16_t>* fanout,
                   std::string* err) {
  for (int attempt = 0; attempt < 2; attempt++) {
    bool again = false;
    if (io->useRing) io->rxRings.reserve(ifaces.size() * 2);
    for (const std::string& ifn : ifaces) {
      for (uint16_t proto : {uint16_t(ETH_P_IP), uint16_t(ETH_P_IPV6)}) {
        ring::Rx* r = nullptr;
        if (io->useRing) {
          io->rxRings.emplace_back();
          r = &io->rxRings.back();
        }
        int fd = openRx(ifn, proto, rcvbuf, r, err);
        if (fd == -2) {  // the ring, not the socket: start again without rings, and say why
          io->ringFallback = *err;
          if (r) io->rxRings.pop_back();
          closeFds(io);
          io->useRing = false;
          again = true;
          break;
        }
        if (fd < 0) {
          closeFds(io);
          return false;
        }
        io->rx.push_back(fd);
        if (fanout && !joinFanout(fd, io->rx.size() - 1, fanout, err)) {
          closeFds(io);
          return false;
        }
      }
      if (again) break;
    }
    if (!again) break;
  }
  return true;
}

// The AF_XDP sockets and the redirect program on every interface, taking over the local addresses at once
// (the services' addresses follow with setAddresses); false with why when AF_XDP cannot be had.
bool openXdp(Io* io, const std::vector<std::string>& ifaces, std::string* why) {
#ifdef WASMVS_XDP
  for (uint32_t a : io->local4) {
    std::array<uint8_t, 16> k{};
    k[10] = k[11] = 0xff;
    memcpy(k.data() + 12, &a, 4);
    io->xdp.fixed.insert(k);
  }
  for (const auto& a : io->local6) io->xdp.fixed.insert(a);
  if (xdp::open(&io->xdp, ifaces, why) && xdp::setAddresses(&io->xdp, {}, why)) return true;
  xdp::close(&io->xdp);
  return false;
#else
  (void)io;
  (void)ifaces;
  *why = "the addon was built without AF_XDP (libxdp-dev and libbpf-dev were not installed when it was built: " +
         std::string("apt-get install libxdp-dev libbpf-dev, then node native/packet/build.mjs)");
  return false;
#endif
}

struct OpenOpts {
  std::vector<std::string> ifaces;
  std::vector<uint32_t> local4;
  std::vector<std::array<uint8_t, 16>> local6;
  uint32_t maxPackets = 64, slot = 2048, rcvbuf = 4 << 20, threads = 1;
  std::string io = "mmsg";
};

#ifdef WASMVS_XDP
// AF_XDP on N threads (openThreaded): thread 0's Io set up the programs, maps and every queue's socket; thread k
// (k > 0) takes the sockets of the queues q with q % N == k, so each receive queue is one thread's, and sends on
// its own sockets (on an interface where it has none, through the raw socket). False when it has none.
bool takeXdpSocks(Io* io, Io* first, uint32_t k, uint32_t n) {
  std::deque<xdp::Sock> keep;
  for (xdp::Sock& s : first->xdp.socks) (s.queue % n == k ? io->xdp.socks : keep).push_back(std::move(s));
  first->xdp.socks.swap(keep);
  io->xdp.mode = first->xdp.mode;
  io->xdp.zeroCopy = first->xdp.zeroCopy;
  return !io->xdp.socks.empty();
}
#endif

// An Io with its sockets and buffers (nullptr with err): the one-thread handle, or one I/O thread's. With
// AF_XDP on threads, `xdpFirst` is thread 0's Io, whose sockets thread `index` of `o.threads` takes its share of.
Io* openIo(napi_env env, const OpenOpts& o, std::vector<uint16_t>* fanout, std::string* err, Io* xdpFirst = nullptr,
           uint32_t index = 0) {
  Io* io = new Io();
  io->env = env;
  io->maxPackets = o.maxPackets;
  io->slot = o.slot;
  io->local4 = o.local4;
  io->local6 = o.local6;
  io->useRing = o.io == "ring";
  if (o.io == "xdp" && xdpFirst) {
    io->useXdp = xdpFirst->useXdp;  // its share of thread 0's sockets, or the rings as thread 0 fell back to
    io->xdpFallback = xdpFirst->xdpFallback;
#ifdef WASMVS_XDP
    if (io->useXdp) takeXdpSocks(io, xdpFirst, index, o.threads);
#endif
    io->useRing = !io->useXdp;
  } else if (o.io == "xdp") {
    io->useXdp = openXdp(io, o.ifaces, &io->xdpFallback);
    io->useRing = !io->useXdp;  // what AF_XDP cannot do, the rings do (and say why in xdpFallback)
  }
  if (!io->useXdp && !openRxSockets(io, o.ifaces, o.rcvbuf, fanout, err)) {
    delete io;
    return nullptr;
  }
  io->tx4 = openTx(AF_INET, err);
  if (io->tx4 >= 0) io->tx6 = openTx(AF_INET6, err);
  if (io->tx4 < 0 || io->tx6 < 0) {
    closeFds(io);
    delete io;
    return nullptr;
  }
  uint32_t n = io->maxPackets;
  io->msgs.resize(n);
  io->iov.resize(n);
  io->names.resize(n);
  io->ctrl.resize(size_t(n) * kCtrlSize);
  io->out4.resize(n);
  io->out6.resize(n);
  io->outIov4.resize(n);
  io->outIov6.resize(n);
  io->to4.resize(n);
  io->to6.resize(n);
  io->orig.resize(size_t(n) * toobig::kOrigSize);
  io->origLen.resize(n);
  io->outDesc4.resize(n);
  io->outDesc6.resize(n);
  io->scratch.resize(io->slot > toobig::kMaxError ? io->slot : toobig::kMaxError);
  io->icmpLimit.load();
  return io;
}

Worker* makeWorker(Io* f, Io* io, uint32_t index, std::string* err);

// The handle of N I/O threads (io_threads.h): no sockets of its own, one Io per thread in one fanout group.
Io* openThreaded(napi_env env, const OpenOpts& o, std::string* err) {
  Io* f = new Io();
  f->env = env;
  f->maxPackets = o.maxPackets;
  f->slot = o.slot;
  f->useRing = o.io == "ring";
  std::vector<uint16_t> fanout;
  Io* first = nullptr;  // thread 0's: with AF_XDP, the others take their share of its sockets
  for (uint32_t k = 0; k < o.threads; k++) {
    Io* io = openIo(env, o, &fanout, err, first, k);
    if (k == 0) first = io;
    Worker* w = io ? makeWorker(f, io, k, err) : nullptr;
    if (!w) {
      if (io) {
        releaseIo(io);
        delete io;
      }
      releaseIo(f);
      delete f;
      return nullptr;
    }
    f->workers.push_back(w);
  }
  return f;
}

// open({ interfaces: string[], local: string[], maxPackets, slot, rcvbuf, io, threads }) -> handle
napi_value Open(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  if (!args(env, info, 1, argv)) return throwErr(env, "open(options) needs an options object");
  OpenOpts o;
  std::vector<std::string> local;
  if (!napi_args::namedStrings(env, argv[0], "interfaces", &o.ifaces) || o.ifaces.empty())
    return throwErr(env, "options.interfaces must be a non-empty array of interface names");
  if (!napi_args::namedStrings(env, argv[0], "local", &local))
    return throwErr(env, "options.local must be an array of addresses");
  o.maxPackets = napi_args::namedU32(env, argv[0], "maxPackets", 64);
  o.slot = napi_args::namedU32(env, argv[0], "slot", 2048);
  o.rcvbuf = napi_args::namedU32(env, argv[0], "rcvbuf", 4 << 20);
  o.threads = napi_args::namedU32(env, argv[0], "threads", 1);
  if (o.maxPackets == 0 || o.maxPackets > 65536 || o.slot < 64 || o.slot > 65536)
    return throwErr(env, "maxPackets must be 1..65536 and slot 64..65536");
  if (o.threads == 0 || o.threads > 64) return throwErr(env, "options.threads must be 1..64");
  for (const std::string& a : local) {
    in_addr a4;
    in6_addr a6;
    if (inet_pton(AF_INET, a.c_str(), &a4) == 1)
      o.local4.push_back(a4.s_addr);
    else if (inet_pton(AF_INET6, a.c_str(), &a6) == 1) {
      std::array<uint8_t, 16> b;
      memcpy(b.data(), &a6, 16);
      o.local6.push_back(b);
    } else
      return throwErr(env, "'" + a + "' is not an IPv4 or IPv6 address");
  }
  bool hasIo = false;
  napi_has_named_property(env, argv[0], "io", &hasIo);
  if (hasIo) {
    napi_value v;
    napi_get_named_property(env, argv[0], "io", &v);
    if (!napi_args::string(env, v, &o.io) || (o.io != "ring" && o.io != "mmsg" && o.io != "xdp"))
      return throwErr(env, "options.io must be 'ring', 'mmsg' or 'xdp'");
  }
  std::string err;
  Io* io = o.threads > 1 ? openThreaded(env, o, &err) : openIo(env, o, nullptr, &err);
  if (!io) return throwErr(env, err);
  napi_value ext;
  napi_create_external(env, io, finalizeIo, nullptr, &ext);
  return ext;
}

// Offload left undone by the sender (CHECKSUM_PARTIAL: veth, or a sender on this host): the L4
// checksum field holds the pseudo-header sum; summing from the L4 header to the end and storing the
// complement completes it, as the NIC would have.
// The L4 header's offset and protocol of an IPv6 packet past its hop-by-hop, routing and destination
// options headers (a sender with offload puts them before a partial checksum as readily as not); false for
// anything else before the L4 header.
bool ipv6L4(const uint8_t* p, uint32_t len, uint32_t* l4, uint32_t* proto) {
  uint32_t nh = p[6], off = 40;
  for (int n = 0; n < 8 && (nh == 0 || nh == 43 || nh == 60); n++) {
    if (off + 8 > len) return false;
    uint32_t hl = (uint32_t(p[off + 1]) + 1) * 8;
    nh = p[off];
    off += hl;
  }
  if (off > len) return false;
  *l4 = off;
  *proto = nh;
  return true;
}

bool completeChecksum(uint8_t* p, uint32_t len) {
  if (len < 20) return false;
  uint32_t l4 = 0, proto = 0;
  if ((p[0] >> 4) == 4) {
    l4 = (p[0] & 15u) * 4;
    proto = p[9];
    if (((p[6] & 0x3f) | p[7]) != 0) return false;  // a fragment: its checksum covers more than it holds
  } else if ((p[0] >> 4) == 6 && len >= 40) {
    if (!ipv6L4(p, len, &l4, &proto)) return false;  // stops at a fragment header: not completed
  } else
    return false;
  uint32_t at;
  if (proto == IPPROTO_TCP)
    at = 16;
  else if (proto == IPPROTO_UDP)
    at = 6;
  else
    return false;
  if (l4 + at + 2 > len) return false;
  uint32_t end = len;
  if ((p[0] >> 4) == 4) {
    uint32_t tl = (uint32_t(p[2]) << 8) | p[3];
    if (tl < end) end = tl;
  } else {
    uint32_t pl = 40 + ((uint32_t(p[4]) << 8) | p[5]);
    if (pl < end) end = pl;
  }
  uint64_t sum = 0;
  uint32_t i = l4;
  for (; i + 1 < end; i += 2) sum += (uint32_t(p[i]) << 8) | p[i + 1];
  if (i < end) sum += uint32_t(p[i]) << 8;
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  uint16_t c = uint16_t(~sum);
  if (proto == IPPROTO_UDP && c == 0) c = 0xffff;
  p[l4 + at] = uint8_t(c >> 8);
  p[l4 + at + 1] = uint8_t(c);
  return true;
}

// AF_XDP hands over no "checksum left to offload" flag (AF_PACKET's TP_STATUS_CSUMNOTREADY). Such a packet's
// L4 checksum field holds exactly its pseudo-header sum, folded and not complemented (what the sender's stack
// writes for the device to finish): a field equal to that sum, over a packet whose checksum does not verify,
// is one to complete. A correct checksum equals that sum only for a payload summing to 0 or 0xffff, and is
// then left alone by the verification; the pseudo-header sum is all a packet with a good checksum costs here.
bool looksUnfinished(const uint8_t* p, uint32_t len) {
  uint32_t l4 = 0, proto = 0, end = len;
  uint64_t sum = 0;
  if (len >= 20 && (p[0] >> 4) == 4) {
    l4 = (p[0] & 15u) * 4;
    proto = p[9];
    if (((p[6] & 0x3f) | p[7]) != 0) return false;
    const uint32_t tl = (uint32_t(p[2]) << 8) | p[3];
    if (tl < end) end = tl;
    for (uint32_t i = 12; i < 20; i += 2) sum += (uint32_t(p[i]) << 8) | p[i + 1];
  } else if (len >= 40 && (p[0] >> 4) == 6) {
    if (!ipv6L4(p, len, &l4, &proto)) return false;
    const uint32_t pl = 40 + ((uint32_t(p[4]) << 8) | p[5]);
    if (pl < end) end = pl;
    for (uint32_t i = 8; i < 40; i += 2) sum += (uint32_t(p[i]) << 8) | p[i + 1];
  } else
    return false;
  const uint32_t at = proto == IPPROTO_TCP ? 16 : proto == IPPROTO_UDP ? 6 : 0;
  if (!at || l4 >= end || l4 + at + 2 > end) return false;
  sum += proto + (end - l4);
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  const uint32_t field = (uint32_t(p[l4 + at]) << 8) | p[l4 + at + 1];
  if (field != sum && !(field == 0 && sum == 0xffff)) return false;
  // the whole checksum over pseudo-header and segment: 0xffff when it verifies
  uint64_t all = sum;
  uint32_t i = l4;
  for (; i + 1 < end; i += 2) all += (uint32_t(p[i]) << 8) | p[i + 1];
  if (i < end) all += uint32_t(p[i]) << 8;
  while (all >> 16) all = (all & 0xffff) + (all >> 16);
  return all != 0xffff;
}

// The packet's own length: an Ethernet frame under 60 bytes arrives padded, and the padding is not part
// of the IP packet (the kernel trims the skb to the IP length in ip_rcv / ipv6_rcv). Handed on whole, the
// raw send would make it the new IP length and the backend would see a bad L4 checksum. A frame shorter
// than its IP length is left as it is: the core drops it (bad_total_length) and counts it. IPv6 payload
// length 0 (a jumbogram) is left alone.
uint32_t ipLength(const uint8_t* p, uint32_t len) {
  if (len >= 20 && (p[0] >> 4) == 4) {
    uint32_t tl = (uint32_t(p[2]) << 8) | p[3];
    if (tl >= 20 && tl < len) return tl;
  } else if (len >= 40 && (p[0] >> 4) == 6) {
    uint32_t pl = (uint32_t(p[4]) << 8) | p[5];
    if (pl != 0 && 40 + pl < len) return 40 + pl;
  }
  return len;
}

inline void put32(uint8_t* p, uint32_t v) {
  memcpy(p, &v, 4);
}  // little-endian host (x86, arm64)
inline uint32_t get32(const uint8_t* p) {
  uint32_t v;
  memcpy(&v, p, 4);
  return v;
}

uint32_t directionOf(const Io* io, const uint8_t* p, uint32_t len) {
  if (len >= 20 && (p[0] >> 4) == 4) {
    uint32_t d;
    memcpy(&d, p + 16, 4);
    for (uint32_t a : io->local4)
      if (a == d) return 1;
  } else if (len >= 40 && (p[0] >> 4) == 6) {
    for (const auto& a : io->local6)
      if (memcmp(a.data(), p + 24, 16) == 0) return 1;
  }
  return 0;
}

// One received packet already in its slot: trims padding, completes an offloaded checksum, writes its
// descriptor. Returns false when it is not handed to the core (ignored or counted as a drop here).
bool admit(Io* io, uint8_t* desc, uint32_t out, uint32_t slotIndex, uint8_t* p, uint32_t len, bool csumNotReady) {
  uint32_t own = ipLength(p, len);
  if (own != len) {
    len = own;
    io->c.rxTrimmed++;
  }
  if (csumNotReady && completeChecksum(p, len)) io->c.rxCsumCompleted++;
  // a packet that may not fit its route after NAT: its headers as they came, for the error's quote
  if (len > ((p[0] >> 4) == 6 ? toobig::kKeepFrom6 : toobig::kKeepFrom4)) {
    memcpy(&io->orig[size_t(slotIndex) * toobig::kOrigSize], p, toobig::kOrigSize);
    io->origLen[slotIndex] = toobig::kOrigSize;
  } else {
    io->origLen[slotIndex] = 0;
  }
  uint8_t* d = desc + size_t(out) * kDescSize;
  put32(d, slotIndex * io->slot);
  put32(d + 4, len);
  put32(d + 8, directionOf(io, p, len));
  put32(d + 12, 0);
  return true;
}

// How many of a batch's slots the AF_PACKET or AF_XDP receive may fill: all, or half while a fwmark queue is
// bound. A marked flow's packets come both ways (its tap copies are twins the core sets aside), so a busy tap
// would otherwise fill every batch and leave the queue to overflow.
uint32_t tapMax(const Io* io) {
  return io->queue.fd >= 0 && io->maxPackets > 1 ? io->maxPackets / 2 : io->maxPackets;
}

// Ring mode: packets the kernel has handed over in the rx rings' blocks, copied once into the slots from
// `from` on (descriptor k in slot k). Returns the descriptors in use, `from` included.
uint32_t recvRings(Io* io, uint8_t* desc, uint8_t* data, uint32_t from) {
  const uint32_t max = tapMax(io), slot = io->slot;
  uint32_t out = from;
  const size_t nr = io->rxRings.size();
  for (size_t k = 0; k < nr && out < max; k++) {
    ring::Rx& r = io->rxRings[(io->nextRx + k) % nr];
    uint32_t blockBefore = r.block;
    while (out < max) {
      tpacket3_hdr* h = r.take();
      if (!h) break;
      const sockaddr_ll* sll =
          reinterpret_cast<const sockaddr_ll*>(reinterpret_cast<uint8_t*>(h) + TPACKET_ALIGN(sizeof(tpacket3_hdr)));
      if (sll->sll_pkttype == PACKET_OUTGOING || sll->sll_pkttype == PACKET_OTHERHOST) {
        io->c.rxIgnored++;
        continue;
      }
      uint32_t len = h->tp_snaplen;
      if (len != h->tp_len || len > slot) {
        io->c.rxOversize++;
        continue;
      }
      uint8_t* p = data + size_t(out) * slot;
      memcpy(p, reinterpret_cast<uint8_t*>(h) + h->tp_mac, len);
      if (admit(io, desc, out, out, p, len, (h->tp_status & TP_STATUS_CSUMNOTREADY) != 0)) out++;
    }
    io->c.rxRingBlocks += (r.block + ring::kRxBlocks - blockBefore) % ring::kRxBlocks;
  }
  if (out > from) io->c.rxCalls++;
  return out;
}

#ifdef WASMVS_XDP
// AF_XDP: frames the kernel wrote into the sockets' UMEMs, each copied once into its slot (from the IP header
// on) and its frame given straight back to the fill ring. Slots from `from` on, as recvRings.
uint32_t recvXdp(Io* io, uint8_t* desc, uint8_t* data, uint32_t from) {
  const uint32_t max = tapMax(io), slot = io->slot;
  uint32_t out = from;
  const size_t ns = io->xdp.socks.size();
  for (size_t k = 0; k < ns && out < max; k++) {
    xdp::Sock& s = io->xdp.socks[(io->nextRx + k) % ns];
    uint32_t rxIdx = 0, fillIdx = 0;
    const uint32_t n = xsk_ring_cons__peek(&s.rx, max - out, &rxIdx);
    if (!n) continue;
    for (uint32_t i = 0; i < n; i++) {
      const xdp_desc* d = xsk_ring_cons__rx_desc(&s.rx, rxIdx + i);
      s.refill.push_back(d->addr & ~uint64_t(xdp::kFrameSize - 1));
      const uint8_t* f = s.area + d->addr;
      const uint32_t len = d->len;
      if (len < ETH_HLEN + 20 || !((f[12] == 0x08 && f[13] == 0x00) || (f[12] == 0x86 && f[13] == 0xdd))) {
        io->c.rxIgnored++;  // the program redirects only IPv4/IPv6; a tagged or short frame is not ours
        continue;
      }
      if (len - ETH_HLEN > slot) {
        io->c.rxOversize++;
        continue;
      }
      uint8_t* p = data + size_t(out) * slot;
      memcpy(p, f + ETH_HLEN, len - ETH_HLEN);
      // no checksum state comes with the frame: a local sender's (veth) offloaded checksum is recognised
      if (admit(io, desc, out, out, p, len - ETH_HLEN, looksUnfinished(p, len - ETH_HLEN))) out++;
    }
    xsk_ring_cons__release(&s.rx, n);
    // The frames go back to the fill ring once copied. The kernel says how far it has read that ring a little
    // after it hands over the rx entries (xsk_flush), so the ring is twice the frames (xdp.h); a reservation
    // that fails all the same keeps the frames for the next call rather than write where it may not.
    const uint32_t back = uint32_t(s.refill.size());
    if (xsk_ring_prod__reserve(&s.fill, back, &fillIdx) == back) {
      for (uint32_t i = 0; i < back; i++) *xsk_ring_prod__fill_addr(&s.fill, fillIdx + i) = s.refill[i];
      xsk_ring_prod__submit(&s.fill, back);
      s.refill.clear();
    }
    io->c.rxXdpFrames += n;
    if (xsk_ring_prod__needs_wakeup(&s.fill)) {
      io->c.rxXdpWakeups++;
      recvfrom(s.fd, nullptr, 0, MSG_DONTWAIT, nullptr, nullptr);
    }
  }
  if (out > from) io->c.rxCalls++;
  return out;
}
#endif

// The fwmark services' queued packets into the slots from slotFrom on, descriptors from out on, each with its
// mark, read with recvmmsg; then one verdict drops the kernel's copies. Returns the descriptors written.
uint32_t recvQueue(Io* io, uint8_t* desc, uint8_t* data, uint32_t out, uint32_t slotFrom) {
  const uint32_t max = io->maxPackets, slot = io->slot;
  uint32_t wrote = 0, s = slotFrom;
  double t0 = nowNs();
  while (s < max && out + wrote < max) {
    const uint32_t room = std::min(max - s, max - out - wrote);
    const uint32_t got = nfq::readMany(io->queue, room);
    if (!got) break;
    for (uint32_t i = 0; i < got; i++) {
      const uint8_t* payload;
      uint32_t plen, mark;
      if (!nfq::packetAt(io->queue, i, &payload, &plen, &mark) || !payload) continue;
      if (plen > slot) {
        io->queue.oversize++;
        continue;
      }
      uint8_t* p = data + size_t(s) * slot;
      memcpy(p, payload, plen);
      if (!admit(io, desc, out + wrote, s, p, plen, false)) continue;
      put32(desc + size_t(out + wrote) * kDescSize + 12, mark);
      wrote++;
      s++;
    }
    if (got < room) break;
  }
  nfq::dropRead(io->queue);
  io->c.recvNs += nowNs() - t0;
  return wrote;
}

// One batch received into desc/data (the batch area's layout, maxPackets descriptors and slots): the
// descriptors in use (0..n-1). Called on the main thread (recv) or by an I/O thread (io_threads.h), which may
// add to a batch it holds: `from` descriptors and slots are taken already (the rings and AF_XDP keep
// descriptor k in slot k, so the two counts are the same there; recvmmsg skips slots, so it is given 0).
uint32_t recvInto(Io* io, uint8_t* desc, uint8_t* data, uint32_t from = 0) {
  const uint32_t slot = io->slot;
#ifdef WASMVS_XDP
  if (io->useXdp) {
    double t0 = nowNs();
    uint32_t got = recvXdp(io, desc, data, from);
    io->c.recvNs += nowNs() - t0;
    io->nextRx = io->xdp.socks.empty() ? 0 : (io->nextRx + 1) % io->xdp.socks.size();
    if (io->queue.fd >= 0) got += recvQueue(io, desc, data, got, got);
    io->c.rxPackets += got - from;
    return got;
  }
#endif
  if (io->useRing) {
    double t0 = nowNs();
    uint32_t got = recvRings(io, desc, data, from);
    io->c.recvNs += nowNs() - t0;
    io->nextRx = io->rxRings.empty() ? 0 : (io->nextRx + 1) % io->rxRings.size();
    if (io->queue.fd >= 0) got += recvQueue(io, desc, data, got, got);
    io->c.rxPackets += got - from;
    return got;
  }
  uint32_t used = from, out = from;  // slots filled, descriptors written
  const size_t nfd = io->rx.size();
  const uint32_t tmax = tapMax(io);
  for (size_t k = 0; k < nfd && used < tmax; k++) {
    int fd = io->rx[(io->nextRx + k) % nfd];
    for (uint32_t i = used; i < tmax; i++) {
      io->iov[i] = {data + size_t(i) * slot, slot};
      msghdr& h = io->msgs[i].msg_hdr;
      h.msg_name = &io->names[i];
      h.msg_namelen = sizeof(sockaddr_ll);
      h.msg_iov = &io->iov[i];
      h.msg_iovlen = 1;
      h.msg_control = io->ctrl.data() + size_t(i) * kCtrlSize;
      h.msg_controllen = kCtrlSize;
      h.msg_flags = 0;
    }
    double t0 = nowNs();
    int r = recvmmsg(fd, &io->msgs[used], tmax - used, MSG_DONTWAIT | MSG_TRUNC, nullptr);
    io->c.recvNs += nowNs() - t0;
    if (r <= 0) continue;
    io->c.rxCalls++;
    for (uint32_t i = used; i < used + uint32_t(r); i++) {
      msghdr& h = io->msgs[i].msg_hdr;
      uint32_t len = io->msgs[i].msg_len;
      uint8_t type = io->names[i].sll_pkttype;
      if (type == PACKET_OUTGOING || type == PACKET_OTHERHOST) {
        io->c.rxIgnored++;
        continue;
      }
      if ((h.msg_flags & MSG_TRUNC) || len > slot) {
        io->c.rxOversize++;
        continue;
      }
      uint8_t* p = data + size_t(i) * slot;
      bool csumNotReady = false;
      for (cmsghdr* cm = CMSG_FIRSTHDR(&h); cm; cm = CMSG_NXTHDR(&h, cm)) {
        if (cm->cmsg_level != SOL_PACKET || cm->cmsg_type != PACKET_AUXDATA) continue;
        tpacket_auxdata aux;
        memcpy(&aux, CMSG_DATA(cm), sizeof aux);
        csumNotReady = (aux.tp_status & TP_STATUS_CSUMNOTREADY) != 0;
      }
      if (admit(io, desc, out, i, p, len, csumNotReady)) out++;
    }
    used += uint32_t(r);
  }
  io->nextRx = nfd ? (io->nextRx + 1) % nfd : 0;
  if (io->queue.fd >= 0) out += recvQueue(io, desc, data, out, used);
  io->c.rxPackets += out - from;
  return out;
}

uint32_t recvThreaded(Io* front, uint8_t* desc, uint8_t* data);  // io_threads.h

// recv(handle, memory, descPtr, dataPtr) -> packets written (descriptors 0..n-1)
napi_value Recv(napi_env env, napi_callback_info info) {
  napi_value argv[4];
  if (!args(env, info, 4, argv)) return throwErr(env, "recv(handle, memory, descPtr, dataPtr)");
  Io* io = unwrap(env, argv[0]);
  if (!io) return nullptr;
  uint8_t* mem;
  size_t memLen;
  if (!memoryOf(env, argv[1], &mem, &memLen)) return nullptr;
  uint32_t descPtr, dataPtr;
  napi_get_value_uint32(env, argv[2], &descPtr);
  napi_get_value_uint32(env, argv[3], &dataPtr);
  const uint32_t max = io->maxPackets, slot = io->slot;
  if (uint64_t(descPtr) + uint64_t(max) * kDescSize > memLen || uint64_t(dataPtr) + uint64_t(max) * slot > memLen)
    return throwErr(env, "batch area lies outside the WASM memory");
  const uint32_t got =
      io->workers.empty() ? recvInto(io, mem + descPtr, mem + dataPtr) : recvThreaded(io, mem + descPtr, mem + dataPtr);
  if (got) io->lastBatch = got;
  napi_value res;
  napi_create_uint32(env, got, &res);
  return res;
}

void countTxError(Io* io, int e) {
  io->c.lastTxErrno = e;
  if (e == EAGAIN || e == ENOBUFS)
    io->c.txNoBuffer++;
  else if (e == EMSGSIZE)
    io->c.txTooBig++;
  else if (e == EHOSTUNREACH || e == ENETUNREACH || e == EHOSTDOWN)
    io->c.txUnreachable++;
  else
    io->c.txOtherErrors++;
}

// descOf[k]: message k's descriptor, for the ones refused as over the MTU (handled after, by overMtu)
void sendAll(Io* io, int fd, mmsghdr* m, uint32_t n, const uint32_t* descOf) {
  uint32_t off = 0;
  while (off < n) {
    double t0 = nowNs();
    int r = sendmmsg(fd, m + off, n - off, MSG_DONTWAIT);
    io->c.sendNs += nowNs() - t0;
    io->c.txCalls++;
    if (r < 0) {  // the first one failed: skip it
      if (errno == EMSGSIZE)
        io->overMtu.push_back(descOf[off]);
      else
        countTxError(io, errno);
      off++;
      continue;
    }
    io->c.txPackets += r;
    off += uint32_t(r);
  }
}

ring::Tx* txRingFor(Io* io, int ifindex) {
  if (io->lastTx && io->lastTx->ifindex == ifindex) return io->lastTx;
  for (ring::Tx& t : io->txRings)
    if (t.ifindex == ifindex) return io->lastTx = &t;
  for (int i : io->txRingless)
    if (i == ifindex) return nullptr;
  ring::Tx t;
  std::string err;
  // WASMVS_PACKET_TX_FRAGS: the kernel's default fragment frames, for bench/packet-mode.ts's A/B only
  static const bool frags = getenv("WASMVS_PACKET_TX_FRAGS") != nullptr;
  if (!t.setup(ifindex, &err, !frags)) {
    io->txRingless.push_back(ifindex);
    if (io->ringFallback.empty()) io->ringFallback = "tx ring on interface " + std::to_string(ifindex) + ": " + err;
    return nullptr;
  }
  io->txRings.push_back(t);
  return io->lastTx = &io->txRings.back();
}

// Ring mode: puts the packet in a tx ring frame behind an Ethernet header; false when it must go through
// the raw socket instead (unknown next hop, bigger than a frame, ring full). hop: its next hop, known.
bool ringQueue(Io* io, const nexthop::Hop* hop, const uint8_t* p, uint32_t len, bool v6) {
  ring::Tx* t = txRingFor(io, hop->ifindex);
  if (!t) return false;
  const uint32_t pre = t->linear ? sizeof(ring::VnetHdr) : 0;
  if (pre + len + ETH_HLEN > ring::kTxFrameSize - ring::kTxData) return false;
  tpacket2_hdr* f = t->frame();
  if (!f) return false;
  uint8_t* eth = reinterpret_cast<uint8_t*>(f) + ring::kTxData + pre;
  if (pre) {
    ring::VnetHdr vh;  // hdr_len (little-endian, as virtio on this host): all of the frame
    vh.hdrLen = uint16_t(len + ETH_HLEN);
    memcpy(eth - pre, &vh, pre);
  }
  memcpy(eth, hop->dst, 6);
  memcpy(eth + 6, hop->src, 6);
  eth[12] = v6 ? 0x86 : 0x08;
  eth[13] = v6 ? 0xdd : 0x00;
  memcpy(eth + ETH_HLEN, p, len);
  if (t->pending == 0) io->kicked.push_back(t);
  t->submit(f, pre + len + ETH_HLEN);
  return true;
}

#ifdef WASMVS_XDP
// AF_XDP: the packet into a free tx frame of the outgoing interface's socket behind an Ethernet header; false
// when it must go through the raw socket (no socket on that interface, too big, no free frame or slot).
bool xdpQueue(Io* io, const nexthop::Hop* hop, const uint8_t* p, uint32_t len, bool v6) {
  xdp::Sock* s = nullptr;
  for (xdp::Sock& x : io->xdp.socks)
    if (x.ifindex == hop->ifindex) {
      s = &x;
      break;
    }
  if (!s || len + ETH_HLEN > xdp::kFrameSize) return false;
  if (s->txFree.empty()) xdp::reclaim(s);
  uint32_t idx = 0;
  if (s->txFree.empty() || xsk_ring_prod__reserve(&s->tx, 1, &idx) != 1) return false;
  const uint64_t addr = s->txFree.back();
  s->txFree.pop_back();
  uint8_t* eth = s->area + addr;
  memcpy(eth, hop->dst, 6);
  memcpy(eth + 6, hop->src, 6);
  eth[12] = v6 ? 0x86 : 0x08;
  eth[13] = v6 ? 0xdd : 0x00;
  memcpy(eth + ETH_HLEN, p, len);
  xdp_desc* d = xsk_ring_prod__tx_desc(&s->tx, idx);
  d->addr = addr;
  d->len = len + ETH_HLEN;
  d->options = 0;
  xsk_ring_prod__submit(&s->tx, 1);
  if (s->pending++ == 0) io->xdpKicked.push_back(s);
  return true;
}

// One sendto() has the kernel send up to 32 frames of a copy-mode socket (it says EAGAIN when more are left),
// so a batch's frames take a few; the completed frames go back to the free list.
void kickXdp(Io* io) {
  for (xdp::Sock* s : io->xdpKicked) {
    for (uint32_t tries = s->pending / 32 + 4; tries > 0 && xdp::txQueued(s) > 0; tries--) {
      io->c.txXdpKicks++;
      if (sendto(s->fd, nullptr, 0, MSG_DONTWAIT, nullptr, 0) < 0 && errno != EAGAIN && errno != EBUSY &&
          errno != ENOBUFS) {
        for (uint32_t k = 0; k < s->pending; k++) countTxError(io, errno);
        s->pending = 0;
        break;
      }
    }
    io->c.txPackets += s->pending;
    io->c.txXdpPackets += s->pending;
    s->pending = 0;
    xdp::reclaim(s);
  }
  io->xdpKicked.clear();
}
#endif

// A forwarded packet over its route's MTU (toobig.h): fragmented when IPv4 without DF, else dropped with
// an error to its sender (rate limited). d: its descriptor, p/len: the packet after NAT.
void overMtu(Io* io, const uint8_t* d, const uint8_t* p, uint32_t len, uint32_t mtu, double nowMs) {
  // a received packet fits its slot; a longer one is a descriptor made by hand, and no piece of it may
  // outgrow the scratch buffer
  if (len > io->scratch.size()) return countTxError(io, EMSGSIZE);
  const bool v6 = (p[0] >> 4) == 6;
  if (!v6 && !(p[6] & 0x40)) {
    if (io->fragId == 0) io->fragId = 1;
    uint32_t sent = 0;
    sockaddr_in to{};
    to.sin_family = AF_INET;
    memcpy(&to.sin_addr, p + 16, 4);
    const uint32_t pieces =
        toobig::fragment4(p, len, mtu, io->fragId++, io->scratch.data(), [&](const uint8_t* b, uint32_t n) {
          if (sendto(io->tx4, b, n, MSG_DONTWAIT, reinterpret_cast<sockaddr*>(&to), sizeof to) == ssize_t(n))
            sent++;
          else
            countTxError(io, errno);
        });
    if (pieces == 0) return countTxError(io, EMSGSIZE);
    io->c.txFragmented++;
    io->c.txFragments += sent;
    if (sent == pieces) io->c.txPackets++;
    return;
  }
  io->c.txTooBig++;
  const uint8_t proto = d[30];
  if (proto == (v6 ? 58 : 1) || (v6 && proto == 44)) return;  // no error about an ICMP error or a later fragment
  const uint32_t slot = get32(d) / io->slot;
  const uint32_t kept = slot < io->origLen.size() ? io->origLen[slot] : 0;
  const uint32_t l4 = uint32_t(d[28]) | (uint32_t(d[29]) << 8);
  uint8_t* out = io->scratch.data();
  const uint32_t n = kept ? toobig::build(out, &io->orig[size_t(slot) * toobig::kOrigSize], kept, p, len, l4, mtu) : 0;
  if (n == 0) {
    io->c.txIcmpUnquoted++;
    return;
  }
  if (io->icmpLimit.applies(v6) && !io->icmpLimit.allow(nowMs)) {
    io->c.txIcmpLimited++;
    return;
  }
  ssize_t r;
  if (v6) {
    sockaddr_in6 to{};
    to.sin6_family = AF_INET6;
    memcpy(&to.sin6_addr, out + 24, 16);
    r = sendto(io->tx6, out, n, MSG_DONTWAIT, reinterpret_cast<sockaddr*>(&to), sizeof to);
  } else {
    sockaddr_in to{};
    to.sin_family = AF_INET;
    memcpy(&to.sin_addr, out + 16, 4);
    r = sendto(io->tx4, out, n, MSG_DONTWAIT, reinterpret_cast<sockaddr*>(&to), sizeof to);
  }
  if (r == ssize_t(n))
    io->c.txIcmpTooBig++;
  else
    countTxError(io, errno);
}

void kickRings(Io* io) {
  for (ring::Tx* t : io->kicked) {
    io->c.txRingKicks++;
    if (sendto(t->fd, nullptr, 0, MSG_DONTWAIT, nullptr, 0) < 0 && errno != EAGAIN && errno != ENOBUFS) {
      // the interface went down or away: the frames stay queued for the next kick, counted as errors now
      for (uint32_t k = 0; k < t->pending; k++) countTxError(io, errno);
    } else {
      io->c.txPackets += t->pending;
      io->c.txRingPackets += t->pending;
    }
    t->pending = 0;
  }
  io->kicked.clear();
}

// The batch's forwarded packets sent (descriptors at mem + descPtr, packets at mem + dataPtr + offset, every
// offset checked against memLen): the count handed to the kernel. Main thread (send) or an I/O thread.
uint32_t sendFrom(Io* io, uint8_t* mem, size_t memLen, uint32_t descPtr, uint32_t dataPtr, uint32_t n) {
  uint32_t n4 = 0, n6 = 0, queued = 0;
  const bool framed = io->useRing || io->useXdp;  // frames built here for a ring, not the raw socket's
  double t0 = framed ? nowNs() : 0;
  const double nowMs = t0 / 1e6;
  io->overMtu.clear();
  for (uint32_t i = 0; i < n; i++) {
    const uint8_t* d = mem + descPtr + size_t(i) * kDescSize;
    if (d[16] != 1) continue;  // verdict: forward
    uint32_t off = get32(d), len = get32(d + 4);
    if (uint64_t(dataPtr) + off + len > memLen || len < 20) continue;
    uint8_t* p = mem + dataPtr + off;
    if (framed) {
      const bool v6 = (p[0] >> 4) == 6;
      if (v6 && len < 40) continue;
      const nexthop::Hop* hop = io->hops.find(v6 ? AF_INET6 : AF_INET, p + (v6 ? 24 : 16), nowMs);
      if (hop && len > hop->mtu) {
        overMtu(io, d, p, len, hop->mtu, nowMs);
        continue;
      }
#ifdef WASMVS_XDP
      if (hop && io->useXdp && xdpQueue(io, hop, p, len, v6)) {
        queued++;
        continue;
      }
#endif
      if (hop && io->useRing && ringQueue(io, hop, p, len, v6)) {
        queued++;
        continue;
      }
      io->c.txRawFallback++;
    }
    msghdr* h;
    if ((p[0] >> 4) == 4) {
      sockaddr_in& to = io->to4[n4];
      to = {};
      to.sin_family = AF_INET;
      memcpy(&to.sin_addr, p + 16, 4);
      io->outIov4[n4] = {p, len};
      io->outDesc4[n4] = i;
      h = &io->out4[n4].msg_hdr;
      *h = {};
      h->msg_name = &to;
      h->msg_namelen = sizeof to;
      h->msg_iov = &io->outIov4[n4++];
    } else {
      if (len < 40) continue;
      sockaddr_in6& to = io->to6[n6];
      to = {};
      to.sin6_family = AF_INET6;
      memcpy(&to.sin6_addr, p + 24, 16);
      io->outIov6[n6] = {p, len};
      io->outDesc6[n6] = i;
      h = &io->out6[n6].msg_hdr;
      *h = {};
      h->msg_name = &to;
      h->msg_namelen = sizeof to;
      h->msg_iov = &io->outIov6[n6++];
    }
    h->msg_iovlen = 1;
  }
  if (framed) {
    kickRings(io);
#ifdef WASMVS_XDP
    kickXdp(io);
#endif
    io->c.sendNs += nowNs() - t0;
  }
  if (n4) sendAll(io, io->tx4, io->out4.data(), n4, io->outDesc4.data());
  if (n6) sendAll(io, io->tx6, io->out6.data(), n6, io->outDesc6.data());
  // refused as over the MTU: the route's MTU says how far (the raw socket checks only the device's)
  for (uint32_t i : io->overMtu) {
    const uint8_t* d = mem + descPtr + size_t(i) * kDescSize;
    const uint8_t* p = mem + dataPtr + get32(d);
    const uint32_t len = get32(d + 4);
    const bool v6 = (p[0] >> 4) == 6;
    const double ms = nowNs() / 1e6;
    const uint32_t mtu = io->hops.mtu(v6 ? AF_INET6 : AF_INET, p + (v6 ? 24 : 16), ms);
    if (mtu == 0 || mtu >= len)
      countTxError(io, EMSGSIZE);
    else
      overMtu(io, d, p, len, mtu, ms);
  }
  return n4 + n6 + queued;
}

#include "io_threads.h"

// send(handle, memory, descPtr, dataPtr, n) -> packets handed to the kernel (verdict "forward")
napi_value Send(napi_env env, napi_callback_info info) {
  napi_value argv[5];
  if (!args(env, info, 5, argv)) return throwErr(env, "send(handle, memory, descPtr, dataPtr, n)");
  Io* io = unwrap(env, argv[0]);
  if (!io) return nullptr;
  uint8_t* mem;
  size_t memLen;
  if (!memoryOf(env, argv[1], &mem, &memLen)) return nullptr;
  uint32_t descPtr, dataPtr, n;
  napi_get_value_uint32(env, argv[2], &descPtr);
  napi_get_value_uint32(env, argv[3], &dataPtr);
  napi_get_value_uint32(env, argv[4], &n);
  if (n > io->maxPackets) n = io->maxPackets;
  if (uint64_t(descPtr) + uint64_t(n) * kDescSize > memLen)
    return throwErr(env, "descriptors lie outside the WASM memory");
  const uint32_t sent = io->workers.empty() ? sendFrom(io, mem, memLen, descPtr, dataPtr, n)
                                            : sendThreaded(io, mem, memLen, descPtr, dataPtr, n);
  napi_value res;
  napi_create_uint32(env, sent, &res);
  return res;
}
void onReadable(uv_poll_t* h, int status, int) {
  Poll* p = static_cast<Poll*>(h->data);
  Io* io = p->io;
  if (io->closed || !io->callback || status < 0) return;
  callJs(io, nullptr);
}

// One thread on AF_XDP: as on the threads (io_threads.h), a batch is gathered before the core runs. When a
// socket becomes readable, its polls stop and a timerfd is set for the gathering time; when it fires, the JS
// drains what the rings hold then and the polls start again (level-triggered: what is left wakes them at once).
// Rings that hold a batch already (a proxy behind its load) are drained at once, and so are they while the last
// batch was under kHoldFrom packets (a light load: holding would only add latency, as on the threads).
void onGathered(uv_poll_t* h, int status, int);
void onXdpReadable(uv_poll_t* h, int status, int) {
  Poll* p = static_cast<Poll*>(h->data);
  Io* io = p->io;
  if (io->closed || !io->callback || status < 0 || io->gathering) return;
  if (io->lastBatch < kHoldFrom) return callJs(io, nullptr);
#ifdef WASMVS_XDP
  uint32_t ready = 0;
  for (xdp::Sock& s : io->xdp.socks) ready += xsk_cons_nb_avail(&s.rx, io->maxPackets);
  if (ready >= tapMax(io)) return callJs(io, nullptr);
#endif
  io->gathering = true;
  for (Poll* x : io->xdpPolls) uv_poll_stop(&x->handle);
  const double ns = threads::gatherNs(io);
  itimerspec t{};
  t.it_value.tv_sec = time_t(ns / 1e9);
  t.it_value.tv_nsec = long(std::fmod(ns, 1e9));
  if (t.it_value.tv_sec == 0 && t.it_value.tv_nsec == 0) t.it_value.tv_nsec = 1;
  timerfd_settime(io->gatherFd, 0, &t, nullptr);
}

void onGathered(uv_poll_t* h, int status, int) {
  Poll* p = static_cast<Poll*>(h->data);
  Io* io = p->io;
  uint64_t v;
  (void)!read(io->gatherFd, &v, sizeof v);
  if (io->closed || !io->callback || status < 0) return;
  io->gathering = false;
  callJs(io, nullptr);
  if (io->closed) return;
  for (Poll* x : io->xdpPolls) uv_poll_start(&x->handle, UV_READABLE, onXdpReadable);
}

Poll* addPoll(Io* io, uv_loop_t* loop, int fd, uv_poll_cb cb) {
  Poll* p = new Poll();
  p->io = io;
  p->handle.data = p;
  if (uv_poll_init(loop, &p->handle, fd) != 0) {
    delete p;
    return nullptr;
  }
  uv_poll_start(&p->handle, UV_READABLE, cb);
  io->polls.push_back(p);
  return p;
}

// start(handle, onReadable): calls onReadable() whenever any receive socket has packets (with threads: whenever
// batches are ready, and onReadable(note) when a thread failed, to be logged)
napi_value Start(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  if (!args(env, info, 2, argv)) return throwErr(env, "start(handle, onReadable)");
  Io* io = unwrap(env, argv[0]);
  if (!io) return nullptr;
  if (io->callback) return throwErr(env, "already started");
  napi_valuetype t;
  napi_typeof(env, argv[1], &t);
  if (t != napi_function) return throwErr(env, "onReadable must be a function");
  napi_create_reference(env, argv[1], 1, &io->callback);
  napi_value name;
  napi_create_string_utf8(env, "wasmvs:packet", NAPI_AUTO_LENGTH, &name);
  napi_async_init(env, nullptr, name, &io->asyncCtx);
  if (!io->workers.empty()) {
    std::string err;
    if (!startThreads(io, &err)) return throwErr(env, "packet I/O threads: " + err);
    return nullptr;
  }
  uv_loop_t* loop;
  napi_get_uv_event_loop(env, &loop);
  std::vector<int> fds = io->rx;
  if (io->queue.fd >= 0) fds.push_back(io->queue.fd);
  for (int fd : fds)
    if (!addPoll(io, loop, fd, onReadable)) return throwErr(env, "uv_poll_init failed");
#ifdef WASMVS_XDP
  const bool gather = io->useXdp && threads::gatherNs(io) > 0;
  if (gather) {
    io->gatherFd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    if (io->gatherFd < 0) return throwErr(env, "timerfd_create: " + errnoText(errno));
    if (!addPoll(io, loop, io->gatherFd, onGathered)) return throwErr(env, "uv_poll_init failed");
  }
  for (const xdp::Sock& s : io->xdp.socks) {
    Poll* p = addPoll(io, loop, s.fd, gather ? onXdpReadable : onReadable);
    if (!p) return throwErr(env, "uv_poll_init failed");
    io->xdpPolls.push_back(p);
  }
#endif
  return nullptr;
}

using napi_args::setNumber;

// The counters as stats() gives them (one thread's, or the sum of the threads')
void setCounters(napi_env env, napi_value o, const Counters& c, double lookups, double xdpDrops) {
  setNumber(env, o, "rxPackets", c.rxPackets);
  setNumber(env, o, "rxCalls", c.rxCalls);
  setNumber(env, o, "rxIgnored", c.rxIgnored);
  setNumber(env, o, "rxOversize", c.rxOversize);
  setNumber(env, o, "rxTrimmed", c.rxTrimmed);
  setNumber(env, o, "rxCsumCompleted", c.rxCsumCompleted);
  setNumber(env, o, "rxKernelDrops", c.rxKernelDrops + xdpDrops);
  setNumber(env, o, "txPackets", c.txPackets);
  setNumber(env, o, "txCalls", c.txCalls);
  setNumber(env, o, "txNoBuffer", c.txNoBuffer);
  setNumber(env, o, "txTooBig", c.txTooBig);
  setNumber(env, o, "txIcmpTooBig", c.txIcmpTooBig);
  setNumber(env, o, "txIcmpLimited", c.txIcmpLimited);
  setNumber(env, o, "txIcmpUnquoted", c.txIcmpUnquoted);
  setNumber(env, o, "txFragmented", c.txFragmented);
  setNumber(env, o, "txFragments", c.txFragments);
  setNumber(env, o, "txUnreachable", c.txUnreachable);
  setNumber(env, o, "txOtherErrors", c.txOtherErrors);
  setNumber(env, o, "lastTxErrno", c.lastTxErrno);
  setNumber(env, o, "txRingPackets", c.txRingPackets);
  setNumber(env, o, "txRingKicks", c.txRingKicks);
  setNumber(env, o, "txRawFallback", c.txRawFallback);
  setNumber(env, o, "rxRingBlocks", c.rxRingBlocks);
  setNumber(env, o, "nextHopLookups", lookups);
  setNumber(env, o, "rxXdpFrames", c.rxXdpFrames);
  setNumber(env, o, "rxXdpWakeups", c.rxXdpWakeups);
  setNumber(env, o, "txXdpPackets", c.txXdpPackets);
  setNumber(env, o, "txXdpKicks", c.txXdpKicks);
  setNumber(env, o, "recvNs", c.recvNs);
  setNumber(env, o, "sendNs", c.sendNs);
}

// a += b, every counter (the threads' sum); lastTxErrno: the last nonzero
void addCounters(Counters& a, const Counters& b) {
  a.rxPackets += b.rxPackets;
  a.rxCalls += b.rxCalls;
  a.rxIgnored += b.rxIgnored;
  a.rxOversize += b.rxOversize;
  a.rxTrimmed += b.rxTrimmed;
  a.rxCsumCompleted += b.rxCsumCompleted;
  a.txPackets += b.txPackets;
  a.txCalls += b.txCalls;
  a.txNoBuffer += b.txNoBuffer;
  a.txTooBig += b.txTooBig;
  a.txIcmpTooBig += b.txIcmpTooBig;
  a.txIcmpLimited += b.txIcmpLimited;
  a.txIcmpUnquoted += b.txIcmpUnquoted;
  a.txFragmented += b.txFragmented;
  a.txFragments += b.txFragments;
  a.txUnreachable += b.txUnreachable;
  a.txOtherErrors += b.txOtherErrors;
  a.txRingPackets += b.txRingPackets;
  a.txRingKicks += b.txRingKicks;
  a.txRawFallback += b.txRawFallback;
  a.rxRingBlocks += b.rxRingBlocks;
  a.rxXdpFrames += b.rxXdpFrames;
  a.rxXdpWakeups += b.rxXdpWakeups;
  a.txXdpPackets += b.txXdpPackets;
  a.txXdpKicks += b.txXdpKicks;
  a.recvNs += b.recvNs;
  a.sendNs += b.sendNs;
  a.rxKernelDrops += b.rxKernelDrops;
  if (b.lastTxErrno) a.lastTxErrno = b.lastTxErrno;
}

// stats() with threads: the threads' counters summed as the one-thread handle's are named, and each thread's
// AF_XDP: each interface's receive queues, as `xdpQueues: [{ interface, queues }]` (empty without AF_XDP). With
// I/O threads each queue is one thread's, so an interface with fewer queues than threads leaves some idle on it.
void setXdpQueues(napi_env env, napi_value o, const Io* io) {
  napi_value list;
  napi_create_array(env, &list);
#ifdef WASMVS_XDP
  uint32_t k = 0;
  if (io && io->useXdp)
    for (const xdp::Port& p : io->xdp.ports) {
      napi_value e, name;
      napi_create_object(env, &e);
      napi_create_string_utf8(env, p.name.c_str(), NAPI_AUTO_LENGTH, &name);
      napi_set_named_property(env, e, "interface", name);
      setNumber(env, e, "queues", p.queues);
      napi_set_element(env, list, k++, e);
    }
#else
  (void)io;
#endif
  napi_set_named_property(env, o, "xdpQueues", list);
}

// own in `threads` (what it carried, its CPU time, its failures), read from what each last published.
napi_value threadedStats(napi_env env, Io* f) {
  Counters sum;
  nfq::Queue queue;  // the threads' netfilter queues' counts, summed
  double lookups = 0, failures = 0, restarts = 0;
  std::string ringFallback;
  bool allRing = true;
  napi_value o, list;
  napi_create_object(env, &o);
  napi_create_array(env, &list);
  uint32_t k = 0;
  for (Worker* w : f->workers) {
    for (int fd : w->io->rx) {
      tpacket_stats st{};
      socklen_t l = sizeof st;
      if (getsockopt(fd, SOL_PACKET, PACKET_STATISTICS, &st, &l) == 0) w->kernelDrops += st.tp_drops;
    }
    Counters c;
    double cpu, batches, sleeps, socketErrors;
    nfq::Queue q;
    {
      std::lock_guard<std::mutex> g(w->m);
      c = w->pub;
      lookups += w->pubLookups;
      cpu = w->cpuNs;
      batches = w->pubBatches;
      sleeps = w->pubSleeps;
      socketErrors = w->pubSocketErrors;
      q = w->pubQueue;
      if (ringFallback.empty()) ringFallback = w->pubRingFallback;
    }
    c.rxKernelDrops += w->kernelDrops;
    addCounters(sum, c);
    failures += w->failures;
    restarts += w->restarts;
    allRing = allRing && w->io->useRing;
    napi_value t;
    napi_create_object(env, &t);
    setNumber(env, t, "rxPackets", c.rxPackets);
    setNumber(env, t, "txPackets", c.txPackets);
    setNumber(env, t, "rxCalls", c.rxCalls);
    setNumber(env, t, "txCalls", c.txCalls + c.txRingKicks);
    setNumber(env, t, "recvNs", c.recvNs);
    setNumber(env, t, "sendNs", c.sendNs);
    setNumber(env, t, "cpuNs", cpu);
    setNumber(env, t, "batches", batches);
    setNumber(env, t, "sleeps", sleeps);
    setNumber(env, t, "socketErrors", socketErrors);
    setNumber(env, t, "queueNum", q.fd >= 0 ? q.num : -1);
    setNumber(env, t, "rxQueuePackets", q.packets);
    double xdpSockets = 0;  // the AF_XDP receive queues it reads (fixed at open)
#ifdef WASMVS_XDP
    xdpSockets = double(w->io->xdp.socks.size());
#endif
    setNumber(env, t, "xdpSockets", xdpSockets);
    queue.packets += q.packets;
    queue.oversize += q.oversize;
    queue.overruns += q.overruns;
    queue.errors += q.errors;
    queue.verdicts += q.verdicts;
    setNumber(env, t, "failures", w->failures);
    setNumber(env, t, "restarts", w->restarts);
    setNumber(env, t, "droppedOnFailure", w->dropped);
    napi_value str;
    napi_get_boolean(env, w->running && !w->stopped, &str);
    napi_set_named_property(env, t, "running", str);
    napi_create_string_utf8(env, w->lastError.c_str(), NAPI_AUTO_LENGTH, &str);
    napi_set_named_property(env, t, "lastError", str);
    napi_set_element(env, list, k++, t);
  }
  // AF_XDP: thread 0 set it up (or said why not); every thread's sockets' drop counts (cumulative, read whole)
  const Io* first = f->workers.empty() ? nullptr : f->workers[0]->io;
  double xdpDrops = 0;
  std::string xdpMode;
#ifdef WASMVS_XDP
  for (Worker* w : f->workers)
    for (const xdp::Sock& s : w->io->xdp.socks) xdpDrops += xdp::drops(s);
  if (first && first->useXdp) xdpMode = first->xdp.mode + (first->xdp.zeroCopy ? ", zero-copy" : ", copy");
#endif
  setCounters(env, o, sum, lookups, xdpDrops);
  napi_value str;
  napi_create_string_utf8(env, first && first->useXdp ? "xdp" : allRing ? "ring" : "mmsg", NAPI_AUTO_LENGTH, &str);
  napi_set_named_property(env, o, "io", str);
  napi_create_string_utf8(env, ringFallback.c_str(), NAPI_AUTO_LENGTH, &str);
  napi_set_named_property(env, o, "ringFallback", str);
  napi_create_string_utf8(env, first ? first->xdpFallback.c_str() : "", NAPI_AUTO_LENGTH, &str);
  napi_set_named_property(env, o, "xdpFallback", str);
  napi_create_string_utf8(env, xdpMode.c_str(), NAPI_AUTO_LENGTH, &str);
  napi_set_named_property(env, o, "xdpMode", str);
  setXdpQueues(env, o, first);
  setNumber(env, o, "queueNum", f->threadQueueBase);  // the first; thread k reads queueNum + k
  setNumber(env, o, "rxQueuePackets", queue.packets);
  setNumber(env, o, "rxQueueOversize", queue.oversize);
  setNumber(env, o, "rxQueueOverruns", queue.overruns);
  setNumber(env, o, "rxQueueErrors", queue.errors);
  setNumber(env, o, "queueVerdicts", queue.verdicts);
  setNumber(env, o, "threadFailures", failures);
  setNumber(env, o, "threadRestarts", restarts);
  napi_set_named_property(env, o, "threads", list);
  return o;
}

napi_value Stats(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  if (!args(env, info, 1, argv)) return throwErr(env, "stats(handle)");
  Io* io = unwrap(env, argv[0]);
  if (!io) return nullptr;
  for (int fd : io->rx) {  // reading resets the kernel's counts: accumulate
    tpacket_stats st{};
    socklen_t l = sizeof st;
    if (getsockopt(fd, SOL_PACKET, PACKET_STATISTICS, &st, &l) == 0) io->c.rxKernelDrops += st.tp_drops;
  }
  if (!io->workers.empty()) return threadedStats(env, io);
  double xdpDrops = 0;  // the AF_XDP sockets' counts are cumulative: read whole, not added up
#ifdef WASMVS_XDP
  for (const xdp::Sock& s : io->xdp.socks) xdpDrops += xdp::drops(s);
#endif
  napi_value o;
  napi_create_object(env, &o);
  const Counters& c = io->c;
  setCounters(env, o, c, io->hops.lookups, xdpDrops);
  napi_value str;
  napi_create_string_utf8(env, io->useXdp ? "xdp" : io->useRing ? "ring" : "mmsg", NAPI_AUTO_LENGTH, &str);
  napi_set_named_property(env, o, "io", str);
  napi_create_string_utf8(env, io->ringFallback.c_str(), NAPI_AUTO_LENGTH, &str);
  napi_set_named_property(env, o, "ringFallback", str);
  napi_create_string_utf8(env, io->xdpFallback.c_str(), NAPI_AUTO_LENGTH, &str);
  napi_set_named_property(env, o, "xdpFallback", str);
  std::string xdpMode;
#ifdef WASMVS_XDP
  if (io->useXdp) xdpMode = io->xdp.mode + (io->xdp.zeroCopy ? ", zero-copy" : ", copy");
#endif
  napi_create_string_utf8(env, xdpMode.c_str(), NAPI_AUTO_LENGTH, &str);
  napi_set_named_property(env, o, "xdpMode", str);
  setXdpQueues(env, o, io);
  const nfq::Queue& q = io->queue;
  setNumber(env, o, "queueNum", q.fd >= 0 ? q.num : -1);
  setNumber(env, o, "rxQueuePackets", q.packets);
  setNumber(env, o, "rxQueueOversize", q.oversize);
  setNumber(env, o, "rxQueueOverruns", q.overruns);
  setNumber(env, o, "rxQueueErrors", q.errors);
  setNumber(env, o, "queueVerdicts", q.verdicts);
  return o;
}

void pollFd(Io* io, int fd, std::string* err) {
  uv_loop_t* loop;
  napi_get_uv_event_loop(io->env, &loop);
  Poll* p = new Poll();
  p->io = io;
  p->handle.data = p;
  if (uv_poll_init(loop, &p->handle, fd) != 0) {
    delete p;
    *err = "uv_poll_init failed";
    return;
  }
  uv_poll_start(&p->handle, UV_READABLE, onReadable);
  io->polls.push_back(p);
}

// openQueue(handle, num): binds netfilter queue num for the fwmark services' packets (nfqueue.h); its packets
// come with the others' in recv(). Throws why it cannot (the number taken, no CAP_NET_ADMIN); a second call with
// the same number is a no-op, with another a mistake.
napi_value OpenQueue(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  if (!args(env, info, 2, argv)) return throwErr(env, "openQueue(handle, num)");
  Io* io = unwrap(env, argv[0]);
  if (!io) return nullptr;
  double num;
  if (napi_get_value_double(env, argv[1], &num) != napi_ok || num != double(uint32_t(num)) || num > 65535)
    return throwErr(env, "the queue number must be an integer 0..65535");
  std::string err;
  if (!io->workers.empty()) {
    const uint32_t last = uint32_t(num) + uint32_t(io->workers.size()) - 1;
    if (last > 65535)
      return throwErr(env, "one netfilter queue per I/O thread: " + std::to_string(uint32_t(num)) + ".." +
                               std::to_string(last) + " goes past 65535");
    if (io->threadQueueBase == int(num)) return nullptr;
    if (io->threadQueueBase >= 0)
      return throwErr(env, "queues are already bound from " + std::to_string(io->threadQueueBase));
    if (!openThreadQueues(io, uint16_t(num), &err)) return throwErr(env, err);
    return nullptr;
  }
  if (io->queue.fd >= 0) {
    if (io->queue.num == uint16_t(num)) return nullptr;
    return throwErr(env, "a queue is already bound: " + std::to_string(io->queue.num));
  }
  if (!nfq::open(io->queue, uint16_t(num), &err)) return throwErr(env, err);
  nfq::stage(io->queue, io->maxPackets, io->slot + 512);  // a slot's packet and its netlink headers
  if (io->callback) pollFd(io, io->queue.fd, &err);
  if (!err.empty()) return throwErr(env, err);
  return nullptr;
}

// setAddresses(handle, addresses: string[]): with AF_XDP, the addresses whose packets the XDP program takes
// (the services' VIPs; the local addresses always); the rest stay the kernel's. A no-op with other I/O.
napi_value SetAddresses(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  if (!args(env, info, 2, argv)) return throwErr(env, "setAddresses(handle, addresses)");
  Io* io = unwrap(env, argv[0]);
  if (!io) return nullptr;
  napi_value holder;
  napi_create_object(env, &holder);
  napi_set_named_property(env, holder, "a", argv[1]);
  std::vector<std::string> list;
  if (!napi_args::namedStrings(env, holder, "a", &list))
    return throwErr(env, "setAddresses: addresses must be an array of strings");
  std::set<std::array<uint8_t, 16>> keys;
  for (const std::string& a : list) {
    std::array<uint8_t, 16> k{};
    in_addr a4;
    if (inet_pton(AF_INET, a.c_str(), &a4) == 1) {
      k[10] = k[11] = 0xff;
      memcpy(k.data() + 12, &a4, 4);
    } else if (inet_pton(AF_INET6, a.c_str(), k.data()) != 1)
      return throwErr(env, "setAddresses: '" + a + "' is not an IPv4 or IPv6 address");
    keys.insert(k);
  }
#ifdef WASMVS_XDP
  std::string err;
  if (!io->workers.empty()) io = io->workers[0]->io;  // the maps are thread 0's (a syscall: no race with it)
  if (io->useXdp && !xdp::setAddresses(&io->xdp, keys, &err)) return throwErr(env, err);
#endif
  return nullptr;
}

napi_value Close(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  void* p = nullptr;
  if (!args(env, info, 1, argv) || napi_get_value_external(env, argv[0], &p) != napi_ok || !p)
    return throwErr(env, "not a packet I/O handle");
  releaseIo(static_cast<Io*>(p));
  return nullptr;
}

napi_value Init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"open", nullptr, Open, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"recv", nullptr, Recv, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"send", nullptr, Send, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"start", nullptr, Start, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"stats", nullptr, Stats, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"close", nullptr, Close, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"setAddresses", nullptr, SetAddresses, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"openQueue", nullptr, OpenQueue, nullptr, nullptr, nullptr, napi_default, nullptr},
      // the sync daemons' sockets (sync_io.h)
      {"syncOpen", nullptr, syncio::Open, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"syncRecv", nullptr, syncio::Recv, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"syncSend", nullptr, syncio::Send, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"syncStart", nullptr, syncio::Start, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"syncStats", nullptr, syncio::Stats, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"syncClose", nullptr, syncio::Close, nullptr, nullptr, nullptr, napi_default, nullptr},
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
  napi_value built;  // whether this build has AF_XDP (the libraries' headers were there when it was built)
#ifdef WASMVS_XDP
  napi_get_boolean(env, true, &built);
#else
  napi_get_boolean(env, false, &built);
#endif
  napi_set_named_property(env, exports, "xdp", built);
  return exports;
}

}  // namespace

NAPI_MODULE(NODE_GYP_MODULE_NAME, Init)
