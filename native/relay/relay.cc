// The byte pump of socket mode, in C++ on Node's own event loop (uv_poll), so a proxied message costs a
// read and a write per direction and no JavaScript. JS keeps every decision: it accepts, asks the WASM core,
// connects, then hands the two connected sockets here; it learns of each FIN and of the close (with its
// cause) through one batched callback per loop turn, and reads per-connection byte and read counters from
// a Float64Array it owns. Nothing here schedules, times out or counts connections.
//
// One relay = a client side and a backend side. Each direction reads into one shared buffer and writes
// straight on; only what the peer does not take at once is copied (into that direction's pending buffer),
// and the source is not read again until it is flushed (backpressure). EOF on one side becomes a shutdown
// of the other's write half once its pending bytes are out (half-close); both halves shut = a clean close.
// A read or write error on either side resets both (SO_LINGER 0), as the JS pump does.
#include <node_api.h>
#include <uv.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <vector>

namespace {

constexpr size_t kReadSize = 64 * 1024;
// events reported to JS: [slot, kind, cause, errno] per event
enum Kind { CLIENT_EOF = 1, BACKEND_EOF = 2, CLOSED = 3 };
enum Cause { CAUSE_FIN = 0, CAUSE_CLIENT_ERROR = 1, CAUSE_BACKEND_ERROR = 2 };
// counters per slot, in the Float64Array JS passes in: client->backend reads and bytes, then back
enum Counter { IN_READS = 0, IN_BYTES = 1, OUT_READS = 2, OUT_BYTES = 3, COUNTERS = 4 };

struct Relay;

struct Side {
  Relay* relay;
  int fd = -1;
  bool client;
  bool eof = false;        // read returned 0
  bool shut = false;       // we shut down its write half (the peer sent its FIN)
  int watching = 0;        // uv_poll events now asked for
  uv_poll_t poll;
  // bytes read from the other side that this side has not taken yet
  char* pending = nullptr;
  size_t pendingLen = 0, pendingOff = 0;
};

struct Relay {
  uint32_t slot;
  Side c, b;
  bool closing = false;
  int openHandles = 0;
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
  std::vector<int32_t> events;
  uv_check_t check;
  bool checkStarted = false;
  char* buf = nullptr;
};

State S;

Side& peer(Side& s) { return s.client ? s.relay->b : s.relay->c; }

void count(Relay* r, int which, double v) {
  if (r->slot < S.counterSlots) S.counters[r->slot * COUNTERS + which] += v;
}

void emit(Relay* r, int kind, int cause, int err) {
  S.events.push_back((int32_t)r->slot);
  S.events.push_back(kind);
  S.events.push_back(cause);
  S.events.push_back(err);
}

void onHandleClosed(uv_handle_t* h) {
  Side* s = static_cast<Side*>(h->data);
  Relay* r = s->relay;
  if (--r->openHandles == 0) {
    free(r->c.pending);
    free(r->b.pending);
    delete r;
  }
}

// Closes both sides; reset = RST instead of FIN for whatever is still open.
void finish(Relay* r, bool reset) {
  if (r->closing) return;
  r->closing = true;
  if (r->slot < S.relays.size() && S.relays[r->slot] == r) S.relays[r->slot] = nullptr;
  for (Side* s : {&r->c, &r->b}) {
    if (reset) {
      struct linger lg = {1, 0};
      setsockopt(s->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    }
    uv_close(reinterpret_cast<uv_handle_t*>(&s->poll), onHandleClosed);   // stops polling now
    close(s->fd);
    s->fd = -1;
  }
}

void fail(Relay* r, bool clientSide, int err) {
  emit(r, CLOSED, clientSide ? CAUSE_CLIENT_ERROR : CAUSE_BACKEND_ERROR, err);
  finish(r, true);
}

void onPoll(uv_poll_t* h, int status, int events);

// What each side must be polled for: readable while it may send and its peer has nothing pending from it;
// writable while it has something pending.
void rearm(Relay* r) {
  for (Side* s : {&r->c, &r->b}) {
    Side& o = peer(*s);
    int want = 0;
    if (!s->eof && o.pendingLen == 0) want |= UV_READABLE;
    if (s->pendingLen) want |= UV_WRITABLE;
    if (want == s->watching) continue;
    s->watching = want;
    if (want) uv_poll_start(&s->poll, want, onPoll);
    else uv_poll_stop(&s->poll);
  }
}

// to has taken everything from its peer and the peer sent FIN: pass the FIN on.
void maybeShut(Relay* r) {
  for (Side* to : {&r->c, &r->b}) {
    Side& from = peer(*to);
    if (from.eof && !to->shut && to->pendingLen == 0) {
      to->shut = true;
      shutdown(to->fd, SHUT_WR);
    }
  }
  if (r->c.shut && r->b.shut) {
    emit(r, CLOSED, CAUSE_FIN, 0);
    finish(r, false);
  }
}

// Writes data to side `to`; keeps what it does not take. false when the write failed (relay finished).
bool put(Relay* r, Side& to, const char* data, size_t len) {
  size_t off = 0;
  while (off < len) {
    ssize_t w = send(to.fd, data + off, len - off, MSG_NOSIGNAL);
    if (w > 0) { off += (size_t)w; continue; }
    if (w < 0 && errno == EINTR) continue;
    if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
    fail(r, to.client, errno);
    return false;
  }
  if (off < len) {
    size_t rest = len - off;
    if (!to.pending) to.pending = static_cast<char*>(malloc(kReadSize));
    // only called with pending empty, and rest <= kReadSize
    memcpy(to.pending, data + off, rest);
    to.pendingLen = rest;
    to.pendingOff = 0;
  }
  return true;
}

void readFrom(Relay* r, Side& from) {
  Side& to = peer(from);
  ssize_t n;
  do n = recv(from.fd, S.buf, kReadSize, 0); while (n < 0 && errno == EINTR);
  if (n > 0) {
    count(r, from.client ? IN_READS : OUT_READS, 1);
    count(r, from.client ? IN_BYTES : OUT_BYTES, (double)n);
    put(r, to, S.buf, (size_t)n);
    return;
  }
  if (n == 0) {
    from.eof = true;
    emit(r, from.client ? CLIENT_EOF : BACKEND_EOF, 0, 0);
    maybeShut(r);
    return;
  }
  if (errno == EAGAIN || errno == EWOULDBLOCK) return;
  fail(r, from.client, errno);
}

void flush(Relay* r, Side& to) {
  while (to.pendingLen) {
    ssize_t w = send(to.fd, to.pending + to.pendingOff, to.pendingLen, MSG_NOSIGNAL);
    if (w > 0) { to.pendingOff += (size_t)w; to.pendingLen -= (size_t)w; continue; }
    if (w < 0 && errno == EINTR) continue;
    if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
    fail(r, to.client, errno);
    return;
  }
  maybeShut(r);
}

void onPoll(uv_poll_t* h, int status, int events) {
  Side* s = static_cast<Side*>(h->data);
  Relay* r = s->relay;
  if (r->closing) return;
  if (status < 0) {
    int err = 0;
    socklen_t len = sizeof err;
    getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &err, &len);
    fail(r, s->client, err ? err : -status);
    return;
  }
  if ((events & UV_WRITABLE) && s->pendingLen) {
    flush(r, *s);
    if (r->closing) return;
  }
  if ((events & UV_READABLE) && !s->eof && peer(*s).pendingLen == 0) {
    readFrom(r, *s);
    if (r->closing) return;
  }
  rearm(r);
}

// Delivers the turn's events in one call: [slot, kind, cause, errno, ...] as an Int32Array.
void onCheck(uv_check_t*) {
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
  napi_get_global(env, &recv);   // MakeCallback needs an object receiver
  napi_status st = napi_make_callback(env, S.asyncContext, recv, fn, 1, &arr, &result);
  if (st == napi_pending_exception) {
    napi_value err;
    napi_get_and_clear_last_exception(env, &err);
    napi_fatal_exception(env, err);
  }
  napi_close_handle_scope(env, scope);
}

// ---- the JS surface ------------------------------------------------------------------------------
napi_value throwError(napi_env env, const char* msg) {
  napi_throw_error(env, nullptr, msg);
  return nullptr;
}

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

// init(onEvents, counters: Float64Array)
napi_value Init(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr);
  napi_valuetype t;
  napi_typeof(env, argv[0], &t);
  if (argc < 2 || t != napi_function) return throwError(env, "init(onEvents, counters): onEvents must be a function");
  if (!setCounters(env, argv[1])) return throwError(env, "init(onEvents, counters): counters must be a Float64Array");
  if (S.callback) napi_delete_reference(env, S.callback);
  napi_create_reference(env, argv[0], 1, &S.callback);
  if (S.env && S.env != env) return throwError(env, "the relay serves one Node environment (the main thread's)");
  if (!S.env) {
    S.env = env;
    napi_get_uv_event_loop(env, &S.loop);
    napi_value name;
    napi_create_string_utf8(env, "wasmvs.relay", NAPI_AUTO_LENGTH, &name);
    napi_async_init(env, nullptr, name, &S.asyncContext);
    S.buf = static_cast<char*>(malloc(kReadSize));
    uv_check_init(S.loop, &S.check);
    uv_check_start(&S.check, onCheck);
    uv_unref(reinterpret_cast<uv_handle_t*>(&S.check));   // the relays' polls keep the loop alive, not this
  }
  return nullptr;
}

// counters(Float64Array): a bigger array (JS copied the old figures into it)
napi_value Counters(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr);
  if (argc < 1 || !setCounters(env, argv[0])) return throwError(env, "counters(a): a must be a Float64Array");
  return nullptr;
}

bool getU32(napi_env env, napi_value v, uint32_t* out) { return napi_get_value_uint32(env, v, out) == napi_ok; }

// start(slot, clientFd, backendFd): duplicates both descriptors (the caller then destroys its sockets) and
// pumps between them. Throws when a descriptor cannot be duplicated or polled (nothing is left open then).
napi_value Start(napi_env env, napi_callback_info info) {
  if (!S.env) return throwError(env, "relay.start before relay.init");
  size_t argc = 3;
  napi_value argv[3];
  napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr);
  uint32_t slot, cfd, bfd;
  if (argc < 3 || !getU32(env, argv[0], &slot) || !getU32(env, argv[1], &cfd) || !getU32(env, argv[2], &bfd))
    return throwError(env, "start(slot, clientFd, backendFd): three non-negative integers");
  if (slot >= S.counterSlots) return throwError(env, "start: slot beyond the counters array");
  if (slot < S.relays.size() && S.relays[slot]) return throwError(env, "start: slot in use");
  int c = fcntl((int)cfd, F_DUPFD_CLOEXEC, 0);
  if (c < 0) { napi_throw_error(env, "EMFILE", strerror(errno)); return nullptr; }
  int b = fcntl((int)bfd, F_DUPFD_CLOEXEC, 0);
  if (b < 0) { int e = errno; close(c); napi_throw_error(env, "EMFILE", strerror(e)); return nullptr; }
  Relay* r = new Relay();
  r->slot = slot;
  r->c.relay = r; r->c.client = true; r->c.fd = c;
  r->b.relay = r; r->b.client = false; r->b.fd = b;
  if (uv_poll_init_socket(S.loop, &r->c.poll, c) != 0) {
    close(c); close(b); delete r;
    return throwError(env, "start: cannot poll the client socket");
  }
  r->c.poll.data = &r->c;
  r->openHandles = 1;
  if (uv_poll_init_socket(S.loop, &r->b.poll, b) != 0) {
    r->closing = true;   // freed when the client side's handle has closed
    uv_close(reinterpret_cast<uv_handle_t*>(&r->c.poll), onHandleClosed);
    close(c); close(b);
    return throwError(env, "start: cannot poll the backend socket");
  }
  r->b.poll.data = &r->b;
  r->openHandles = 2;
  if (slot >= S.relays.size()) S.relays.resize(slot + 1, nullptr);
  S.relays[slot] = r;
  for (int i = 0; i < COUNTERS; i++) S.counters[slot * COUNTERS + i] = 0;
  rearm(r);
  return nullptr;
}

// close(slot): resets both sides now (idle timeout, drain bound, shutdown); no event follows, and events
// of this turn not yet delivered for the slot are dropped (the slot may be reused at once).
napi_value Close(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr);
  uint32_t slot;
  if (argc < 1 || !getU32(env, argv[0], &slot)) return throwError(env, "close(slot): a non-negative integer");
  napi_value ret;
  if (slot >= S.relays.size() || !S.relays[slot]) { napi_get_boolean(env, false, &ret); return ret; }
  Relay* r = S.relays[slot];
  std::vector<int32_t> keep;
  for (size_t i = 0; i + 3 < S.events.size(); i += 4)
    if ((uint32_t)S.events[i] != slot) keep.insert(keep.end(), S.events.begin() + i, S.events.begin() + i + 4);
  S.events.swap(keep);
  finish(r, true);
  napi_get_boolean(env, true, &ret);
  return ret;
}

// active(): relays open now
napi_value Active(napi_env env, napi_callback_info) {
  uint32_t n = 0;
  for (Relay* r : S.relays) if (r) n++;
  napi_value v;
  napi_create_uint32(env, n, &v);
  return v;
}

napi_value Module(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
    {"init", nullptr, Init, nullptr, nullptr, nullptr, napi_default, nullptr},
    {"counters", nullptr, Counters, nullptr, nullptr, nullptr, napi_default, nullptr},
    {"start", nullptr, Start, nullptr, nullptr, nullptr, napi_default, nullptr},
    {"close", nullptr, Close, nullptr, nullptr, nullptr, napi_default, nullptr},
    {"active", nullptr, Active, nullptr, nullptr, nullptr, napi_default, nullptr},
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
  return exports;
}

}  // namespace

NAPI_MODULE(NODE_GYP_MODULE_NAME, Module)
