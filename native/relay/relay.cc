// Socket mode's connection plumbing in C++, on Node's own thread: the TCP listeners' accepts, the connect to
// the backend JS chose, then the bytes both ways. JS keeps every decision: for each accepted connection it
// checks its limits, asks the WASM core, hands the descriptor back with the chosen backend address, and on a
// failed connect decides again (retry another backend, or reset). It learns of each event (accepted, accept
// failed, connected, connect failed, FIN from either side, closed with its cause) through one batched
// callback per loop turn, and reads per-connection read and byte counters from a Float64Array it owns.
// Nothing here schedules, times out idle flows or counts connections.
//
// The sockets live in an epoll set of our own, edge-triggered, each registered once; that set's descriptor
// is polled by libuv, so a burst of readiness costs one wake-up of Node's loop and no JS. Each direction
// reads into one shared buffer and writes straight on; only what the peer does not take at once is copied
// (into that direction's pending buffer), and the source is not read again until it is flushed
// (backpressure). EOF on one side becomes a shutdown of the other's write half once its pending bytes are
// out (half-close); when both directions have ended the sockets are closed. A read or write error on either
// side resets both (SO_LINGER 0), as the JS pump does.
#include <node_api.h>
#include <uv.h>
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>
#include <vector>

#include "napi_args.h"

namespace {

constexpr size_t kReadSize = 64 * 1024;
constexpr int kReadsPerTurn = 16;  // then other connections get a turn (the rest waits on an idle handle)
constexpr int kAcceptsPerTurn = 64;
constexpr uint64_t kAcceptPauseMs = 100;  // after EMFILE/ENFILE: new connections wait in the backlog meanwhile
// events reported to JS, kEventWords int32 each: [slot or listener id, kind, a, b, address (16 bytes)]
// CLOSED: a = cause, b = errno; CONNECT_FAILED: b = errno; ACCEPTED: a = fd, b = af << 16 | port;
// ACCEPT_FAILED: a = connections reset for want of a descriptor, b = errno
constexpr size_t kEventWords = 8;
enum Kind {
  CLIENT_EOF = 1,
  BACKEND_EOF = 2,
  CLOSED = 3,
  CONNECTED = 4,
  CONNECT_FAILED = 5,
  ACCEPTED = 6,
  ACCEPT_FAILED = 7
};
enum Cause { CAUSE_FIN = 0, CAUSE_CLIENT_ERROR = 1, CAUSE_BACKEND_ERROR = 2 };
// counters per slot, in the Float64Array JS passes in: client->backend reads and bytes, then back
enum Counter { IN_READS = 0, IN_BYTES = 1, OUT_READS = 2, OUT_BYTES = 3, COUNTERS = 4 };
enum Phase { IDLE, CONNECTING, RELAYING };

struct Relay;

// what an epoll entry points at
struct Pollable {
  bool listener = false;
};

struct Listener : Pollable {
  int32_t id;
  int fd;
  bool paused = false;
  uint64_t resumeAt = 0;
};

struct Side : Pollable {
  Relay* relay;
  int fd = -1;
  bool client;
  bool readable = false;  // an edge said there is something to read (data, FIN or error) not read yet
  bool hup = false;       // the edge carried a FIN or error: read on to it even after a short read
  bool eof = false;       // read returned 0
  bool shut = false;      // its write half is shut (the peer's FIN was passed on)
  // bytes read from the other side that this side has not taken yet
  char* pending = nullptr;
  size_t pendingLen = 0, pendingOff = 0;
};

struct Relay {
  uint32_t slot;
  Phase phase = IDLE;
  Side c, b;
  bool closing = false;
  bool queuedAgain = false;
  uint64_t deadline = 0;  // connect timeout, in uv_now ms
};

struct State {
  napi_env env = nullptr;
  uv_loop_t* loop = nullptr;
  napi_ref callback = nullptr;
  napi_ref countersRef = nullptr;
  napi_async_context asyncContext = nullptr;
  double* counters = nullptr;
  size_t counterSlots = 0;
  std::vector<Relay*> relays;
  size_t live = 0, connecting = 0;
  std::vector<int32_t> events;
  std::vector<Relay*> graveyard;  // finished during a batch; freed after it (stale events may name them)
  std::vector<Relay*> again;      // stopped reading at kReadsPerTurn with more to read
  std::vector<Listener*> listeners;
  size_t pausedListeners = 0;
  int epfd = -1;
  uv_poll_t epPoll;
  uv_check_t check;
  uv_idle_t idle;
  uv_timer_t timer;
  bool inBatch = false;
  char* buf = nullptr;
  int spareFd = -1;     // kept in reserve to refuse connections when descriptors run out (refuseBacklog)
  bool closed = false;  // the environment is going away (a worker thread ending): no more callbacks into JS
};

// One relay per thread: the main thread's, and one in each of `wasmvs proxy --workers N`'s pump threads
// (src/proxy/workers.ts). Each thread's loop runs only its own, so no state is shared between threads.
thread_local State S;

Side& peer(Side& s) {
  return s.client ? s.relay->b : s.relay->c;
}

void count(Relay* r, int which, double v) {
  if (r->slot < S.counterSlots) S.counters[r->slot * COUNTERS + which] += v;
}

void emitRaw(int32_t id, int kind, int32_t a, int32_t b, const void* addr16 = nullptr) {
  int32_t w[kEventWords] = {id, kind, a, b, 0, 0, 0, 0};
  if (addr16) memcpy(&w[4], addr16, 16);
  S.events.insert(S.events.end(), w, w + kEventWords);
}

void emit(Relay* r, int kind, int cause, int err) {
  emitRaw((int32_t)r->slot, kind, cause, err);
}

void refLoop() {
  // open relays and listeners keep Node's loop alive, as open sockets and servers do
  bool listening = false;
  for (Listener* l : S.listeners)
    if (l) {
      listening = true;
      break;
    }
  if (S.live || listening)
    uv_ref(reinterpret_cast<uv_handle_t*>(&S.epPoll));
  else
    uv_unref(reinterpret_cast<uv_handle_t*>(&S.epPoll));
}

void destroy(Relay* r) {
  free(r->c.pending);
  free(r->b.pending);
  delete r;
}

void closeSide(Side& s, bool reset) {
  if (s.fd < 0) return;
  // leave the epoll set explicitly: a copy of the descriptor (a child between fork and exec) would keep the
  // registration, and its pointer, alive past the close
  epoll_ctl(S.epfd, EPOLL_CTL_DEL, s.fd, nullptr);
  if (reset) {
    struct linger lg = {1, 0};
    setsockopt(s.fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
  }
  close(s.fd);
  s.fd = -1;
}

// Closes both sides (RST when reset, else FIN) and lets the slot go.
void finish(Relay* r, bool reset) {
  if (r->closing) return;
  r->closing = true;
  if (r->phase == CONNECTING) S.connecting--;
  if (r->slot < S.relays.size() && S.relays[r->slot] == r) S.relays[r->slot] = nullptr;
  S.live--;
  closeSide(r->c, reset);
  closeSide(r->b, reset);
  if (S.inBatch || r->queuedAgain)
    S.graveyard.push_back(r);
  else
    destroy(r);
  refLoop();
}

void fail(Relay* r, bool clientSide, int err) {
  emit(r, CLOSED, clientSide ? CAUSE_CLIENT_ERROR : CAUSE_BACKEND_ERROR, err);
  finish(r, true);
}

// Passes each finished direction's FIN on once its bytes are out; both directions ended = close.
void maybeShut(Relay* r) {
  for (Side* to : {&r->c, &r->b}) {
    Side& from = peer(*to);
    if (!from.eof || to->shut || to->pendingLen) continue;
    to->shut = true;
    if (r->c.shut && r->b.shut) break;
    shutdown(to->fd, SHUT_WR);
  }
  if (r->c.shut && r->b.shut) {
    // both sides read to EOF and all bytes delivered: close sends the last FIN
    emit(r, CLOSED, CAUSE_FIN, 0);
    finish(r, false);
  }
}

// Writes data to side `to`; keeps what it does not take. false when the write failed (relay finished).
bool put(Relay* r, Side& to, const char* data, size_t len) {
  size_t off = 0;
  while (off < len) {
    ssize_t w = send(to.fd, data + off, len - off, MSG_NOSIGNAL);
    if (w > 0) {
      off += (size_t)w;
      continue;
    }
    if (w < 0 && errno == EINTR) continue;
    if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
    fail(r, to.client, errno);
    return false;
  }
  if (off < len) {
    size_t rest = len - off;  // <= kReadSize: put is only called with nothing pending
    if (!to.pending) to.pending = static_cast<char*>(malloc(kReadSize));
    memcpy(to.pending, data + off, rest);
    to.pendingLen = rest;
    to.pendingOff = 0;
  }
  return true;
}

// Reads side `from` while it has something and its peer takes it; false when the relay finished.
bool pumpFrom(Relay* r, Side& from) {
  Side& to = peer(from);
  for (int i = 0; i < kReadsPerTurn; i++) {
    if (!from.readable || from.eof || to.pendingLen) return true;
    ssize_t n;
    do n = recv(from.fd, S.buf, kReadSize, 0);
    while (n < 0 && errno == EINTR);
    if (n > 0) {
      count(r, from.client ? IN_READS : OUT_READS, 1);
      count(r, from.client ? IN_BYTES : OUT_BYTES, (double)n);
      // a short read drained the socket: the next byte comes with a new edge (unless FIN/error is there)
      if ((size_t)n < kReadSize && !from.hup) from.readable = false;
      if (!put(r, to, S.buf, (size_t)n)) return false;
      continue;
    }
    if (n == 0) {
      from.eof = true;
      from.readable = false;
      emit(r, from.client ? CLIENT_EOF : BACKEND_EOF, 0, 0);
      maybeShut(r);
      return !r->closing;
    }
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      from.readable = false;
      from.hup = false;
      return true;
    }
    fail(r, from.client, errno);
    return false;
  }
  if (from.readable && !r->queuedAgain) {
    r->queuedAgain = true;
    S.again.push_back(r);
    uv_idle_start(&S.idle, [](uv_idle_t*) {});  // keeps the loop from sleeping until the rest is read
  }
  return true;
}

bool flush(Relay* r, Side& to) {
  while (to.pendingLen) {
    ssize_t w = send(to.fd, to.pending + to.pendingOff, to.pendingLen, MSG_NOSIGNAL);
    if (w > 0) {
      to.pendingOff += (size_t)w;
      to.pendingLen -= (size_t)w;
      continue;
    }
    if (w < 0 && errno == EINTR) continue;
    if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return true;
    fail(r, to.client, errno);
    return false;
  }
  maybeShut(r);
  return !r->closing;
}

void pump(Relay* r) {
  if (r->phase != RELAYING || r->closing) return;
  if (!pumpFrom(r, r->c)) return;
  pumpFrom(r, r->b);
}

void connected(Relay* r) {
  r->phase = RELAYING;
  S.connecting--;
  emit(r, CONNECTED, 0, 0);
  pump(r);  // the client may have sent already
}

void connectFailed(Relay* r, int err) {
  r->phase = IDLE;
  S.connecting--;
  closeSide(r->b, false);
  r->b = Side();
  r->b.relay = r;
  r->b.client = false;
  emit(r, CONNECT_FAILED, 0, err);
}

void onSideEvent(Side& s, uint32_t ev) {
  Relay* r = s.relay;
  if (r->closing || s.fd < 0) return;
  if (!s.client && r->phase == CONNECTING) {
    if (!(ev & (EPOLLOUT | EPOLLERR | EPOLLHUP))) return;
    int err = 0;
    socklen_t len = sizeof err;
    if (getsockopt(s.fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0) err = errno;
    if (err) {
      connectFailed(r, err);
      return;
    }
    // data (or a FIN) already there came with this edge: no other edge will say so
    if (ev & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) s.readable = true;
    if (ev & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) s.hup = true;
    connected(r);
    return;
  }
  if (ev & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) s.readable = true;
  if (ev & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) s.hup = true;
  if (r->phase != RELAYING) return;  // the client spoke before its backend is there: read it once connected
  if ((ev & EPOLLOUT) && s.pendingLen && !flush(r, s)) return;
  pump(r);
}

// Frees what finished during a batch, except relays still listed in S.again (freed once off that list).
void drainGraveyard() {
  size_t keep = 0;
  for (Relay* r : S.graveyard) {
    if (r->queuedAgain)
      S.graveyard[keep++] = r;
    else
      destroy(r);
  }
  S.graveyard.resize(keep);
}

void runAgain() {
  if (S.again.empty()) return;
  std::vector<Relay*> list;
  list.swap(S.again);
  S.inBatch = true;
  for (Relay* r : list) {
    r->queuedAgain = false;
    pump(r);
  }
  S.inBatch = false;
  drainGraveyard();
  if (S.again.empty()) uv_idle_stop(&S.idle);
}

void onAccept(Listener* l);

void onEpoll(uv_poll_t*, int, int) {
  struct epoll_event evs[256];
  for (int round = 0; round < 4; round++) {
    int n = epoll_wait(S.epfd, evs, 256, 0);
    if (n <= 0) break;
    S.inBatch = true;
    for (int i = 0; i < n; i++) {
      auto* p = static_cast<Pollable*>(evs[i].data.ptr);
      if (p->listener)
        onAccept(static_cast<Listener*>(p));
      else
        onSideEvent(*static_cast<Side*>(p), evs[i].events);
    }
    S.inBatch = false;
    drainGraveyard();
    if (n < 256) break;
  }
  runAgain();
}

bool listenerEvents(Listener* l, uint32_t events) {
  struct epoll_event ev;
  ev.events = events;
  ev.data.ptr = static_cast<Pollable*>(l);
  return epoll_ctl(S.epfd, EPOLL_CTL_MOD, l->fd, &ev) == 0;
}

void onCheck(uv_check_t*);

// Connect timeouts and paused listeners: a coarse sweep while any connect is in flight or listener paused.
void onTimer(uv_timer_t*) {
  uint64_t now = uv_now(S.loop);
  if (S.connecting)
    for (Relay* r : S.relays)
      if (r && r->phase == CONNECTING && now >= r->deadline) connectFailed(r, ETIMEDOUT);
  if (S.pausedListeners)
    for (Listener* l : S.listeners)
      if (l && l->paused && now >= l->resumeAt) {
        l->paused = false;
        S.pausedListeners--;
        listenerEvents(l, EPOLLIN);
      }
  if (S.spareFd < 0) S.spareFd = open("/dev/null", O_RDONLY | O_CLOEXEC);
  if (!S.connecting && !S.pausedListeners) uv_timer_stop(&S.timer);
  // a timeout's event goes out now: the check phase comes only after the loop's next wake-up, which on a
  // worker's quiet loop (nothing else to wait for) may be seconds away
  if (!S.events.empty()) onCheck(&S.check);
}

// Out of descriptors: the connections waiting in the backlog are reset at once rather than left to time out
// there (a client learns now, and its retry may meet free descriptors), with the descriptor kept in reserve
// for this: closed, used to accept and reset each, reopened. Returns how many were reset.
int refuseBacklog(Listener* l) {
  if (S.spareFd < 0) return 0;
  close(S.spareFd);
  S.spareFd = -1;
  int n = 0;
  for (int i = 0; i < kAcceptsPerTurn; i++) {
    int fd = accept4(l->fd, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      break;
    }
    struct linger lg = {1, 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    close(fd);
    n++;
  }
  S.spareFd = open("/dev/null", O_RDONLY | O_CLOEXEC);  // else the timer tries again
  return n;
}

void startTimer() {
  if (!uv_is_active(reinterpret_cast<uv_handle_t*>(&S.timer))) uv_timer_start(&S.timer, onTimer, 50, 50);
}

// Accepts what the backlog holds (level-triggered: the rest comes next turn) and hands each to JS.
void onAccept(Listener* l) {
  for (int i = 0; i < kAcceptsPerTurn; i++) {
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    int fd = accept4(l->fd, reinterpret_cast<sockaddr*>(&ss), &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return;
      int err = errno;
      int refused = err == EMFILE || err == ENFILE ? refuseBacklog(l) : 0;
      emitRaw(l->id, ACCEPT_FAILED, refused, err);
      if (err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM) {
        // out of descriptors: stop accepting a while rather than spin; new connections wait in the backlog
        l->paused = true;
        l->resumeAt = uv_now(S.loop) + kAcceptPauseMs;
        S.pausedListeners++;
        listenerEvents(l, 0);
        startTimer();
      }
      return;
    }
    uint8_t addr[16] = {0};
    int af = ss.ss_family, port = 0;
    if (af == AF_INET) {
      auto* a4 = reinterpret_cast<sockaddr_in*>(&ss);
      memcpy(addr, &a4->sin_addr, 4);
      port = ntohs(a4->sin_port);
    } else {
      auto* a6 = reinterpret_cast<sockaddr_in6*>(&ss);
      memcpy(addr, &a6->sin6_addr, 16);
      port = ntohs(a6->sin6_port);
    }
    emitRaw(l->id, ACCEPTED, fd, (af << 16) | port, addr);
  }
}

// Delivers the turn's events in one call: [slot, kind, cause, errno, ...] as an Int32Array.
void onCheck(uv_check_t*) {
  if (S.closed) return;
  runAgain();
  if (S.events.empty()) return;
  napi_env env = S.env;
  napi_handle_scope scope;
  napi_open_handle_scope(env, &scope);
  size_t n = S.events.size();
  napi_value ab, arr, fn, recv, result;
  void* data;
  napi_create_arraybuffer(env, n * sizeof(int32_t), &data, &ab);
  memcpy(data, S.events.data(), n * sizeof(int32_t));
  S.events.clear();
  napi_create_typedarray(env, napi_int32_array, n, ab, 0, &arr);
  napi_get_reference_value(env, S.callback, &fn);
  napi_get_global(env, &recv);  // MakeCallback needs an object receiver
  napi_status st = napi_make_callback(env, S.asyncContext, recv, fn, 1, &arr, &result);
  if (st == napi_pending_exception) {
    napi_value err;
    napi_get_and_clear_last_exception(env, &err);
    napi_fatal_exception(env, err);
  }
  napi_close_handle_scope(env, scope);
}

bool watch(Side& s) {
  struct epoll_event ev;
  ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
  ev.data.ptr = static_cast<Pollable*>(&s);
  return epoll_ctl(S.epfd, EPOLL_CTL_ADD, s.fd, &ev) == 0;
}

// ---- the JS surface ------------------------------------------------------------------------------
using napi_args::throwError;

bool setCounters(napi_env env, napi_value v) {
  bool isTyped;
  napi_is_typedarray(env, v, &isTyped);
  if (!isTyped) return false;
  napi_typedarray_type type;
  size_t length, offset;
  void* data;
  napi_value ab;
  napi_get_typedarray_info(env, v, &type, &length, &data, &ab, &offset);
  if (type != napi_float64_array) return false;
  if (S.countersRef) napi_delete_reference(env, S.countersRef);
  napi_create_reference(env, v, 1, &S.countersRef);
  S.counters = static_cast<double*>(data);
  S.counterSlots = length / COUNTERS;
  return true;
}

using napi_args::args;
inline bool getU32(napi_env env, napi_value v, uint32_t* out) {
  return napi_args::u32(env, v, out);
}

Relay* relayAt(uint32_t slot) {
  return slot < S.relays.size() ? S.relays[slot] : nullptr;
}

napi_value boolean(napi_env env, bool b) {
  napi_value v;
  napi_get_boolean(env, b, &v);
  return v;
}

// The environment ends (a worker thread that exits or dies, or the process): every connection still here
// is reset, so its client learns at once, and the loop handles are closed, which a worker's loop must be
// before Node closes it (else Node aborts the whole process).
void cleanup(void*) {
  if (S.closed) return;
  S.closed = true;
  for (Relay* r : S.relays)
    if (r) {
      closeSide(r->c, true);
      closeSide(r->b, true);
      destroy(r);
    }
  S.relays.clear();
  drainGraveyard();
  for (Relay* r : S.graveyard) destroy(r);
  S.graveyard.clear();
  S.again.clear();
  for (Listener* l : S.listeners)
    if (l) {
      close(l->fd);
      delete l;
    }
  S.listeners.clear();
  S.live = 0;
  for (uv_handle_t* h : {reinterpret_cast<uv_handle_t*>(&S.epPoll), reinterpret_cast<uv_handle_t*>(&S.check),
                         reinterpret_cast<uv_handle_t*>(&S.idle), reinterpret_cast<uv_handle_t*>(&S.timer)})
    if (!uv_is_closing(h)) uv_close(h, nullptr);
  close(S.epfd);
  if (S.spareFd >= 0) close(S.spareFd);
  S.spareFd = -1;
  S.counters = nullptr;
  S.counterSlots = 0;
}

// init(onEvents, counters: Float64Array)
napi_value Init(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  napi_valuetype t = napi_undefined;
  if (args(env, info, 2, argv)) napi_typeof(env, argv[0], &t);
  if (t != napi_function) return throwError(env, "init(onEvents, counters): onEvents must be a function");
  if (!setCounters(env, argv[1])) return throwError(env, "init(onEvents, counters): counters must be a Float64Array");
  if (S.env && S.env != env) return throwError(env, "the relay serves one Node environment (the main thread's)");
  if (S.callback) napi_delete_reference(env, S.callback);
  napi_create_reference(env, argv[0], 1, &S.callback);
  if (!S.env) {
    S.epfd = epoll_create1(EPOLL_CLOEXEC);
    if (S.epfd < 0) return throwError(env, "relay: epoll_create1 failed");
    S.env = env;
    napi_get_uv_event_loop(env, &S.loop);
    napi_value name;
    napi_create_string_utf8(env, "wasmvs.relay", NAPI_AUTO_LENGTH, &name);
    napi_async_init(env, nullptr, name, &S.asyncContext);
    S.buf = static_cast<char*>(malloc(kReadSize));
    S.spareFd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    uv_poll_init(S.loop, &S.epPoll, S.epfd);
    uv_poll_start(&S.epPoll, UV_READABLE, onEpoll);
    uv_check_init(S.loop, &S.check);
    uv_check_start(&S.check, onCheck);
    uv_idle_init(S.loop, &S.idle);
    uv_timer_init(S.loop, &S.timer);
    napi_add_env_cleanup_hook(env, cleanup, nullptr);
    for (uv_handle_t* h : {reinterpret_cast<uv_handle_t*>(&S.check), reinterpret_cast<uv_handle_t*>(&S.idle),
                           reinterpret_cast<uv_handle_t*>(&S.timer)})
      uv_unref(h);
    refLoop();
  }
  return nullptr;
}

// counters(Float64Array): a bigger array (JS copied the old figures into it)
napi_value Counters(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  if (!args(env, info, 1, argv) || !setCounters(env, argv[0]))
    return throwError(env, "counters(a): a must be a Float64Array");
  return nullptr;
}

// adopt(slot, clientFd): takes an accepted connection's descriptor (one an ACCEPTED event gave). Throws
// when it cannot, and closes the descriptor then. Either way the slot's first counter is 0 on return:
// another thread that handed the descriptor over (with -1 there) knows from it whether it is taken.
napi_value Adopt(napi_env env, napi_callback_info info) {
  if (!S.env) return throwError(env, "relay.adopt before relay.init");
  napi_value argv[2];
  uint32_t slot, c;
  if (!args(env, info, 2, argv) || !getU32(env, argv[0], &slot) || !getU32(env, argv[1], &c))
    return throwError(env, "adopt(slot, clientFd): two non-negative integers");
  if (slot >= S.counterSlots || relayAt(slot)) {
    close((int)c);
    return throwError(env, slot >= S.counterSlots ? "adopt: slot beyond the counters array" : "adopt: slot in use");
  }
  Relay* r = new Relay();
  r->slot = slot;
  r->c.relay = r;
  r->c.client = true;
  r->c.fd = (int)c;
  r->b.relay = r;
  r->b.client = false;
  if (!watch(r->c)) {
    close((int)c);
    S.counters[slot * COUNTERS] = 0;  // the descriptor is taken (see Adopt's comment)
    delete r;
    return throwError(env, "adopt: epoll_ctl failed");
  }
  if (slot >= S.relays.size()) S.relays.resize(slot + 1, nullptr);
  S.relays[slot] = r;
  S.live++;
  for (int i = 0; i < COUNTERS; i++) S.counters[slot * COUNTERS + i] = 0;
  refLoop();
  return nullptr;
}

// A textual IPv4 or IPv6 address and a port as a sockaddr; false if the text is neither.
static bool sockaddrOf(const char* addr, uint32_t port, sockaddr_storage* ss, socklen_t* sl, int* family) {
  memset(ss, 0, sizeof *ss);
  if (strchr(addr, ':')) {
    auto* a6 = reinterpret_cast<sockaddr_in6*>(ss);
    if (inet_pton(AF_INET6, addr, &a6->sin6_addr) != 1) return false;
    a6->sin6_family = AF_INET6;
    a6->sin6_port = htons((uint16_t)port);
    *sl = sizeof *a6;
    *family = AF_INET6;
  } else {
    auto* a4 = reinterpret_cast<sockaddr_in*>(ss);
    if (inet_pton(AF_INET, addr, &a4->sin_addr) != 1) return false;
    a4->sin_family = AF_INET;
    a4->sin_port = htons((uint16_t)port);
    *sl = sizeof *a4;
    *family = AF_INET;
  }
  return true;
}

// connect(slot, addr, port, timeoutMs): a non-blocking connect to the backend; CONNECTED or CONNECT_FAILED
// (with errno; ETIMEDOUT after timeoutMs) follows. Only while the slot has no backend.
napi_value Connect(napi_env env, napi_callback_info info) {
  napi_value argv[4];
  uint32_t slot, port, timeout;
  char addr[64];
  size_t alen = 0;
  if (!args(env, info, 4, argv) || !getU32(env, argv[0], &slot) || !getU32(env, argv[2], &port) ||
      !getU32(env, argv[3], &timeout) || napi_get_value_string_utf8(env, argv[1], addr, sizeof addr, &alen) != napi_ok)
    return throwError(env, "connect(slot, addr, port, timeoutMs)");
  Relay* r = relayAt(slot);
  if (!r || r->phase != IDLE) return throwError(env, "connect: the slot has no client or already a backend");
  struct sockaddr_storage ss;
  socklen_t sl;
  int family;
  if (!sockaddrOf(addr, port, &ss, &sl, &family)) return throwError(env, "connect: not an IP address");
  r->phase = CONNECTING;
  S.connecting++;
  r->deadline = uv_now(S.loop) + timeout;
  startTimer();
  int b = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (b < 0) {
    connectFailed(r, errno);
    return nullptr;
  }
  r->b.fd = b;
  int one = 1;
  setsockopt(b, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (connect(b, reinterpret_cast<sockaddr*>(&ss), sl) < 0 && errno != EINPROGRESS) {
    connectFailed(r, errno);
    return nullptr;
  }
  if (!watch(r->b)) connectFailed(r, errno);
  return nullptr;
}

// close(slot): resets whatever is open now (idle timeout, drain bound, refusal, shutdown); no event follows,
// and events of this turn not yet delivered for the slot are dropped (the slot may be reused at once).
napi_value Close(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  uint32_t slot;
  if (!args(env, info, 1, argv) || !getU32(env, argv[0], &slot))
    return throwError(env, "close(slot): a non-negative integer");
  Relay* r = relayAt(slot);
  if (!r) return boolean(env, false);
  std::vector<int32_t> keep;
  for (size_t i = 0; i + kEventWords <= S.events.size(); i += kEventWords)
    if ((uint32_t)S.events[i] != slot || S.events[i + 1] >= ACCEPTED)
      keep.insert(keep.end(), S.events.begin() + i, S.events.begin() + i + kEventWords);
  S.events.swap(keep);
  finish(r, true);
  return boolean(env, true);
}

// listen(id, addr, port, backlog): a TCP listener whose connections come as ACCEPTED events; 0, or -errno.
napi_value Listen(napi_env env, napi_callback_info info) {
  if (!S.env) return throwError(env, "relay.listen before relay.init");
  napi_value argv[4];
  uint32_t id, port, backlog;
  char addr[64];
  size_t alen = 0;
  if (!args(env, info, 4, argv) || !getU32(env, argv[0], &id) || !getU32(env, argv[2], &port) ||
      !getU32(env, argv[3], &backlog) || napi_get_value_string_utf8(env, argv[1], addr, sizeof addr, &alen) != napi_ok)
    return throwError(env, "listen(id, addr, port, backlog)");
  struct sockaddr_storage ss;
  socklen_t sl;
  int family;
  if (!sockaddrOf(addr, port, &ss, &sl, &family)) return throwError(env, "listen: not an IP address");
  napi_value ret;
  int fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    napi_create_int32(env, -errno, &ret);
    return ret;
  }
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (family == AF_INET6) setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);  // accepted sockets inherit it
  if (bind(fd, reinterpret_cast<sockaddr*>(&ss), sl) < 0 || listen(fd, (int)backlog) < 0) {
    int e = errno;
    close(fd);
    napi_create_int32(env, -e, &ret);
    return ret;
  }
  Listener* l = new Listener();
  l->listener = true;
  l->id = (int32_t)id;
  l->fd = fd;
  struct epoll_event ev;
  ev.events = EPOLLIN;
  ev.data.ptr = static_cast<Pollable*>(l);
  if (epoll_ctl(S.epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
    int e = errno;
    close(fd);
    delete l;
    napi_create_int32(env, -e, &ret);
    return ret;
  }
  if (id >= S.listeners.size()) S.listeners.resize(id + 1, nullptr);
  if (S.listeners[id]) {
    epoll_ctl(S.epfd, EPOLL_CTL_DEL, fd, nullptr);
    close(fd);
    delete l;
    return throwError(env, "listen: id in use");
  }
  S.listeners[id] = l;
  uv_ref(reinterpret_cast<uv_handle_t*>(&S.epPoll));  // a listener keeps the loop alive, as a server does
  napi_create_int32(env, 0, &ret);
  return ret;
}

// unlisten(id): stops listening (connections already accepted are not touched).
napi_value Unlisten(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  uint32_t id;
  if (!args(env, info, 1, argv) || !getU32(env, argv[0], &id)) return throwError(env, "unlisten(id)");
  if (id >= S.listeners.size() || !S.listeners[id]) return boolean(env, false);
  Listener* l = S.listeners[id];
  S.listeners[id] = nullptr;
  if (l->paused) S.pausedListeners--;
  epoll_ctl(S.epfd, EPOLL_CTL_DEL, l->fd, nullptr);
  close(l->fd);
  delete l;
  refLoop();
  return boolean(env, true);
}

// resetFd(fd): refuses an accepted connection JS will not take (RST).
napi_value ResetFd(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  uint32_t fd;
  if (!args(env, info, 1, argv) || !getU32(env, argv[0], &fd)) return throwError(env, "resetFd(fd)");
  struct linger lg = {1, 0};
  setsockopt((int)fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
  close((int)fd);
  return nullptr;
}

// shutdown(): what the environment's end does (every connection reset, the listeners and loop handles
// closed, no callback into JS after it), done while JS still runs normally. A worker thread calls it before
// it ends: worker threads ended by terminate() with connections open crashed the process now and then in
// V8's teardown (free(): invalid pointer, in a stress loop); shut first from their own JS, they did not.
napi_value Shutdown(napi_env env, napi_callback_info) {
  cleanup(nullptr);
  return boolean(env, true);
}

// active(): relays open now
napi_value Active(napi_env env, napi_callback_info) {
  napi_value v;
  napi_create_uint32(env, (uint32_t)S.live, &v);
  return v;
}

// pending(): whether this relay has work waiting for the loop: readiness in its epoll set not yet taken (a
// connection to accept, a connect completed, bytes), reads stopped at kReadsPerTurn, or events JS has not
// seen. Long JS work asks between its steps and yields early (src/proxy/slice.ts): one poll(2), about 1 us.
napi_value Pending(napi_env env, napi_callback_info) {
  bool waiting = !S.again.empty() || !S.events.empty();
  if (!waiting && S.epfd >= 0) {
    struct pollfd p = {S.epfd, POLLIN, 0};
    waiting = poll(&p, 1, 0) > 0;
  }
  napi_value v;
  napi_get_boolean(env, waiting, &v);
  return v;
}

napi_value Module(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"init", nullptr, Init, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"counters", nullptr, Counters, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"adopt", nullptr, Adopt, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"connect", nullptr, Connect, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"close", nullptr, Close, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"listen", nullptr, Listen, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"unlisten", nullptr, Unlisten, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"resetFd", nullptr, ResetFd, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"active", nullptr, Active, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"pending", nullptr, Pending, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"shutdown", nullptr, Shutdown, nullptr, nullptr, nullptr, napi_default, nullptr},
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
  return exports;
}

}  // namespace

NAPI_MODULE(NODE_GYP_MODULE_NAME, Module)
