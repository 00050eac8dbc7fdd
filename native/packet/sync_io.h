// The connection sync daemons' UDP sockets (src/proxy/sync.ts, issue 20), beside packet mode's I/O in the same
// addon (sync daemons run only in packet mode, which loads it). Node's dgram socket costs a JavaScript
// callback, a Buffer and a copy into WASM memory per datagram, and a send request per message; here a backup
// reads every waiting datagram with one recvmmsg straight into the WASM core's batch area (one callback per
// wake-up), and a master sends every finished message with one sendmmsg straight from the core's message
// slots. The sockets are set up as Node's dgram sets them for src/proxy/sync.ts (the same bind, group
// membership and multicast options), so the wire is the same. Nothing here reads a datagram's bytes.
#pragma once

#include <node_api.h>
#include <uv.h>

#include <arpa/inet.h>
#include <errno.h>
#include <net/if.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "napi_args.h"

namespace syncio {

constexpr uint32_t kMaxBatch = 64;  // datagrams per recvmmsg or sendmmsg call

struct Counters {
  double rxCalls = 0;      // recvmmsg calls that returned datagrams
  double rxDatagrams = 0;  // datagrams handed to the core
  double rxErrors = 0;     // recvmmsg failures other than "nothing waiting"
  double txCalls = 0;      // sendmmsg calls
  double txDatagrams = 0;  // datagrams the kernel took
  double txErrors = 0;     // messages dropped on a send error (not "queue full": those wait for the next try)
  int lastErrno = 0;
};

struct Sock {
  napi_env env = nullptr;
  int fd = -1;
  bool v6 = false;
  sockaddr_storage to{};  // the group and port (master)
  socklen_t toLen = 0;
  uv_poll_t poll{};
  uv_timer_t hold{};  // a backup's wait between the first datagram of a burst and reading the lot
  uint32_t holdMs = 0;
  int handles = 0;  // libuv handles not yet closed: the Sock outlives them (finalize waits for them)
  napi_ref callback = nullptr;
  napi_async_context asyncCtx = nullptr;
  std::vector<mmsghdr> msgs;
  std::vector<iovec> iov;
  Counters c;
  bool closed = false;
};

inline napi_value fail(napi_env env, const std::string& msg) {
  return napi_args::throwError(env, msg);
}

inline Sock* unwrap(napi_env env, napi_value v) {
  void* p = nullptr;
  if (napi_get_value_external(env, v, &p) != napi_ok || !p) {
    fail(env, "not a sync socket handle");
    return nullptr;
  }
  Sock* s = static_cast<Sock*>(p);
  if (s->closed) {
    fail(env, "sync socket handle is closed");
    return nullptr;
  }
  return s;
}

inline void handleClosed(uv_handle_t* h) {
  Sock* x = static_cast<Sock*>(h->data);
  if (--x->handles == 0 && !x->env) delete x;  // finalized meanwhile
}

inline void release(Sock* s) {
  if (s->closed) return;
  s->closed = true;
  if (s->handles) {
    uv_poll_stop(&s->poll);
    uv_timer_stop(&s->hold);
    uv_close(reinterpret_cast<uv_handle_t*>(&s->poll), handleClosed);
    uv_close(reinterpret_cast<uv_handle_t*>(&s->hold), handleClosed);
  }
  if (s->fd >= 0) close(s->fd);
  s->fd = -1;
  if (s->callback) napi_delete_reference(s->env, s->callback);
  s->callback = nullptr;
  if (s->asyncCtx) napi_async_destroy(s->env, s->asyncCtx);
  s->asyncCtx = nullptr;
}

inline void finalize(napi_env, void* data, void*) {
  Sock* s = static_cast<Sock*>(data);
  release(s);
  if (s->handles)
    s->env = nullptr;  // the last handle's close deletes it
  else
    delete s;
}

inline std::string errnoText(const char* what, int e) {
  return std::string("sync socket: ") + what + ": " + strerror(e);
}

// Opens the socket (see syncOpen in src/proxy/sync.ts for the options); an error says which step failed.
inline bool setUp(Sock* s, bool master, const std::string& group, uint32_t port, const std::string& ifaddr,
                  uint32_t ifindex, uint32_t ttl, std::string* err) {
  int af = s->v6 ? AF_INET6 : AF_INET;
  int fd = socket(af, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return *err = errnoText("socket", errno), false;
  s->fd = fd;
  auto opt = [&](int level, int name, const void* v, socklen_t len, const char* what) {
    if (setsockopt(fd, level, name, v, len) == 0) return true;
    *err = errnoText(what, errno);
    return false;
  };
  const int one = 1, zero = 0;
  const int hops = int(ttl);
  if (!s->v6) {
    in_addr g{}, ifa{};
    if (inet_pton(AF_INET, group.c_str(), &g) != 1) return *err = "sync socket: bad IPv4 group " + group, false;
    if (inet_pton(AF_INET, ifaddr.c_str(), &ifa) != 1)
      return *err = "sync socket: bad interface address " + ifaddr, false;
    sockaddr_in a{};
    a.sin_family = AF_INET;
    if (master) {
      a.sin_addr = ifa;  // bound to the interface's address, as the kernel's master (bind_mcastif_addr)
      if (bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) return *err = errnoText("bind", errno), false;
      if (!opt(IPPROTO_IP, IP_MULTICAST_IF, &ifa, sizeof ifa, "IP_MULTICAST_IF")) return false;
      if (!opt(IPPROTO_IP, IP_MULTICAST_TTL, &hops, sizeof hops, "IP_MULTICAST_TTL")) return false;
      if (!opt(IPPROTO_IP, IP_MULTICAST_LOOP, &zero, sizeof zero, "IP_MULTICAST_LOOP")) return false;
      sockaddr_in* to = reinterpret_cast<sockaddr_in*>(&s->to);
      to->sin_family = AF_INET;
      to->sin_addr = g;
      to->sin_port = htons(uint16_t(port));
      s->toLen = sizeof(sockaddr_in);
    } else {
      if (!opt(SOL_SOCKET, SO_REUSEADDR, &one, sizeof one, "SO_REUSEADDR")) return false;
      a.sin_port = htons(uint16_t(port));
      if (bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) return *err = errnoText("bind", errno), false;
      ip_mreq m{};
      m.imr_multiaddr = g;
      m.imr_interface = ifa;
      if (!opt(IPPROTO_IP, IP_ADD_MEMBERSHIP, &m, sizeof m, "IP_ADD_MEMBERSHIP")) return false;
    }
    return true;
  }
  in6_addr g{};
  if (inet_pton(AF_INET6, group.c_str(), &g) != 1) return *err = "sync socket: bad IPv6 group " + group, false;
  sockaddr_in6 a{};
  a.sin6_family = AF_INET6;
  if (master) {
    if (bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) return *err = errnoText("bind", errno), false;
    const unsigned idx = ifindex;
    if (!opt(IPPROTO_IPV6, IPV6_MULTICAST_IF, &idx, sizeof idx, "IPV6_MULTICAST_IF")) return false;
    if (!opt(IPPROTO_IPV6, IPV6_MULTICAST_HOPS, &hops, sizeof hops, "IPV6_MULTICAST_HOPS")) return false;
    if (!opt(IPPROTO_IPV6, IPV6_MULTICAST_LOOP, &zero, sizeof zero, "IPV6_MULTICAST_LOOP")) return false;
    sockaddr_in6* to = reinterpret_cast<sockaddr_in6*>(&s->to);
    to->sin6_family = AF_INET6;
    to->sin6_addr = g;
    to->sin6_port = htons(uint16_t(port));
    s->toLen = sizeof(sockaddr_in6);
  } else {
    if (!opt(SOL_SOCKET, SO_REUSEADDR, &one, sizeof one, "SO_REUSEADDR")) return false;
    a.sin6_port = htons(uint16_t(port));
    if (bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) return *err = errnoText("bind", errno), false;
    ipv6_mreq m{};
    m.ipv6mr_multiaddr = g;
    m.ipv6mr_interface = ifindex;
    if (!opt(IPPROTO_IPV6, IPV6_JOIN_GROUP, &m, sizeof m, "IPV6_JOIN_GROUP")) return false;
  }
  return true;
}

inline std::string namedString(napi_env env, napi_value obj, const char* key) {
  napi_value v;
  std::string out;
  if (napi_get_named_property(env, obj, key, &v) == napi_ok) napi_args::string(env, v, &out);
  return out;
}

// syncOpen({master, v6, group, port, ifaddr, ifname, ttl}): a handle
inline napi_value Open(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  if (!napi_args::args(env, info, 1, argv)) return fail(env, "syncOpen(options)");
  const bool master = napi_args::namedU32(env, argv[0], "master", 0) != 0;
  Sock* s = new Sock();
  s->env = env;
  s->v6 = napi_args::namedU32(env, argv[0], "v6", 0) != 0;
  const std::string group = namedString(env, argv[0], "group"), ifaddr = namedString(env, argv[0], "ifaddr"),
                    ifname = namedString(env, argv[0], "ifname");
  const uint32_t port = napi_args::namedU32(env, argv[0], "port", 0), ttl = napi_args::namedU32(env, argv[0], "ttl", 1);
  const uint32_t ifindex = ifname.empty() ? 0 : if_nametoindex(ifname.c_str());
  std::string err;
  if (port == 0 || port > 65535)
    err = "sync socket: bad port";
  else if (s->v6 && ifindex == 0)
    err = "sync socket: no interface '" + ifname + "'";
  if (err.empty()) setUp(s, master, group, port, ifaddr, ifindex, ttl, &err);
  if (!err.empty()) {
    if (s->fd >= 0) close(s->fd);
    delete s;
    return fail(env, err);
  }
  s->msgs.resize(kMaxBatch);
  s->iov.resize(kMaxBatch);
  napi_value ext;
  napi_create_external(env, s, finalize, nullptr, &ext);
  return ext;
}

inline bool memoryOf(napi_env env, napi_value v, uint8_t** base, size_t* len) {
  void* data = nullptr;
  bool isAb = false;
  napi_is_arraybuffer(env, v, &isAb);
  if (!isAb || napi_get_arraybuffer_info(env, v, &data, len) != napi_ok) {
    fail(env, "expected the WASM memory's ArrayBuffer");
    return false;
  }
  *base = static_cast<uint8_t*>(data);
  return true;
}

// syncRecv(handle, memory, descPtr, dataPtr, max, slot): the waiting datagrams (at most max) into slots of
// `slot` bytes at dataPtr, each one's length (before truncation: a longer one is cut to the slot, and the
// core refuses it by its length) as a u32 at descPtr + 4k. Returns how many; 0 when none waits.
inline napi_value Recv(napi_env env, napi_callback_info info) {
  napi_value argv[6];
  if (!napi_args::args(env, info, 6, argv)) return fail(env, "syncRecv(handle, memory, desc, data, max, slot)");
  Sock* s = unwrap(env, argv[0]);
  if (!s) return nullptr;
  uint8_t* mem;
  size_t memLen;
  if (!memoryOf(env, argv[1], &mem, &memLen)) return nullptr;
  uint32_t desc, data, max, slot;
  if (!napi_args::u32(env, argv[2], &desc) || !napi_args::u32(env, argv[3], &data) ||
      !napi_args::u32(env, argv[4], &max) || !napi_args::u32(env, argv[5], &slot))
    return fail(env, "syncRecv: offsets must be numbers");
  if (max == 0 || max > kMaxBatch || slot == 0 || uint64_t(desc) + 4ull * max > memLen ||
      uint64_t(data) + uint64_t(slot) * max > memLen)
    return fail(env, "syncRecv: the batch area is outside the WASM memory");
  for (uint32_t k = 0; k < max; k++) {
    s->iov[k] = {mem + data + size_t(k) * slot, slot};
    mmsghdr& m = s->msgs[k];
    memset(&m, 0, sizeof m);
    m.msg_hdr.msg_iov = &s->iov[k];
    m.msg_hdr.msg_iovlen = 1;
  }
  int r = recvmmsg(s->fd, s->msgs.data(), max, MSG_DONTWAIT | MSG_TRUNC, nullptr);
  napi_value res;
  if (r < 0) {
    if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
      s->c.rxErrors++;
      s->c.lastErrno = errno;
    }
    r = 0;
  }
  for (int k = 0; k < r; k++) {
    uint32_t len = s->msgs[k].msg_len;  // with MSG_TRUNC: the datagram's own length
    memcpy(mem + desc + 4 * k, &len, 4);
  }
  if (r > 0) {
    s->c.rxCalls++;
    s->c.rxDatagrams += r;
  }
  napi_create_uint32(env, uint32_t(r), &res);
  return res;
}

// syncSend(handle, memory, descPtr, n): n messages, each {u32 offset, u32 length} at descPtr, to the group.
// Returns how many the kernel took or dropped on an error (the caller lets go of those); the rest, refused
// for a full send queue, wait for the next try.
inline napi_value Send(napi_env env, napi_callback_info info) {
  napi_value argv[4];
  if (!napi_args::args(env, info, 4, argv)) return fail(env, "syncSend(handle, memory, desc, n)");
  Sock* s = unwrap(env, argv[0]);
  if (!s) return nullptr;
  if (!s->toLen) return fail(env, "syncSend: not a master's socket");
  uint8_t* mem;
  size_t memLen;
  if (!memoryOf(env, argv[1], &mem, &memLen)) return nullptr;
  uint32_t desc, n;
  if (!napi_args::u32(env, argv[2], &desc) || !napi_args::u32(env, argv[3], &n))
    return fail(env, "syncSend: offsets must be numbers");
  if (uint64_t(desc) + 8ull * n > memLen) return fail(env, "syncSend: the list is outside the WASM memory");
  uint32_t done = 0;
  while (done < n) {
    const uint32_t batch = n - done < kMaxBatch ? n - done : kMaxBatch;
    for (uint32_t k = 0; k < batch; k++) {
      uint32_t off, len;
      memcpy(&off, mem + desc + 8 * (done + k), 4);
      memcpy(&len, mem + desc + 8 * (done + k) + 4, 4);
      if (uint64_t(off) + len > memLen) return fail(env, "syncSend: a message is outside the WASM memory");
      s->iov[k] = {mem + off, len};
      mmsghdr& m = s->msgs[k];
      memset(&m, 0, sizeof m);
      m.msg_hdr.msg_name = &s->to;
      m.msg_hdr.msg_namelen = s->toLen;
      m.msg_hdr.msg_iov = &s->iov[k];
      m.msg_hdr.msg_iovlen = 1;
    }
    int r = sendmmsg(s->fd, s->msgs.data(), batch, MSG_DONTWAIT);
    s->c.txCalls++;
    if (r > 0) {
      s->c.txDatagrams += r;
      done += uint32_t(r);
      continue;
    }
    const int e = r < 0 ? errno : EAGAIN;
    if (e == EINTR) continue;
    if (e == EAGAIN || e == EWOULDBLOCK || e == ENOBUFS) break;  // the queue is full: the rest waits
    s->c.txErrors++;  // this message fails (unreachable, too big): let it go, as dgram's error callback did
    s->c.lastErrno = e;
    done++;
  }
  napi_value res;
  napi_create_uint32(env, done, &res);
  return res;
}

inline void callBack(Sock* s) {
  if (s->closed || !s->callback) return;
  napi_env env = s->env;
  napi_handle_scope scope;
  napi_open_handle_scope(env, &scope);
  napi_value cb, global, result;
  napi_get_reference_value(env, s->callback, &cb);
  napi_get_global(env, &global);
  if (napi_make_callback(env, s->asyncCtx, global, cb, 0, nullptr, &result) == napi_pending_exception) {
    napi_value e;
    napi_get_and_clear_last_exception(env, &e);
    napi_fatal_exception(env, e);
  }
  napi_close_handle_scope(env, scope);
}

inline void onReadable(uv_poll_t* h, int status, int);

inline void onHeld(uv_timer_t* t) {
  Sock* s = static_cast<Sock*>(t->data);
  callBack(s);
  if (!s->closed) uv_poll_start(&s->poll, UV_READABLE, onReadable);
}

inline void onReadable(uv_poll_t* h, int status, int) {
  Sock* s = static_cast<Sock*>(h->data);
  if (status < 0) return;
  if (s->holdMs == 0) return callBack(s);
  // the first datagram of a burst: the rest of it lands meanwhile, and one wake-up reads the lot
  uv_poll_stop(&s->poll);
  uv_timer_start(&s->hold, onHeld, s->holdMs, 0);
}

// syncStart(handle, onReadable, holdMs): calls onReadable() whenever datagrams wait; with holdMs, holdMs after
// the first of them (the poll paused meanwhile), so that a burst is read in one wake-up
inline napi_value Start(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  if (!napi_args::args(env, info, 3, argv)) return fail(env, "syncStart(handle, onReadable, holdMs)");
  Sock* s = unwrap(env, argv[0]);
  if (!s) return nullptr;
  if (s->callback) return fail(env, "syncStart: already started");
  napi_valuetype t;
  napi_typeof(env, argv[1], &t);
  if (t != napi_function) return fail(env, "syncStart: onReadable must be a function");
  if (!napi_args::u32(env, argv[2], &s->holdMs) || s->holdMs > 1000) return fail(env, "syncStart: holdMs 0..1000");
  uv_loop_t* loop;
  napi_get_uv_event_loop(env, &loop);
  if (uv_poll_init(loop, &s->poll, s->fd) != 0) return fail(env, "syncStart: uv_poll_init failed");
  uv_timer_init(loop, &s->hold);
  s->poll.data = s;
  s->hold.data = s;
  s->handles = 2;
  napi_create_reference(env, argv[1], 1, &s->callback);
  napi_value name;
  napi_create_string_utf8(env, "wasmvs:sync", NAPI_AUTO_LENGTH, &name);
  napi_async_init(env, nullptr, name, &s->asyncCtx);
  uv_poll_start(&s->poll, UV_READABLE, onReadable);
  return nullptr;
}

inline napi_value Stats(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  if (!napi_args::args(env, info, 1, argv)) return fail(env, "syncStats(handle)");
  Sock* s = unwrap(env, argv[0]);
  if (!s) return nullptr;
  napi_value o;
  napi_create_object(env, &o);
  napi_args::setNumber(env, o, "rxCalls", s->c.rxCalls);
  napi_args::setNumber(env, o, "rxDatagrams", s->c.rxDatagrams);
  napi_args::setNumber(env, o, "rxErrors", s->c.rxErrors);
  napi_args::setNumber(env, o, "txCalls", s->c.txCalls);
  napi_args::setNumber(env, o, "txDatagrams", s->c.txDatagrams);
  napi_args::setNumber(env, o, "txErrors", s->c.txErrors);
  napi_value e;
  napi_create_string_utf8(env, s->c.lastErrno ? strerror(s->c.lastErrno) : "", NAPI_AUTO_LENGTH, &e);
  napi_set_named_property(env, o, "lastError", e);
  return o;
}

inline napi_value Close(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  void* p = nullptr;
  if (!napi_args::args(env, info, 1, argv) || napi_get_value_external(env, argv[0], &p) != napi_ok || !p)
    return fail(env, "not a sync socket handle");
  release(static_cast<Sock*>(p));
  return nullptr;
}

}  // namespace syncio
