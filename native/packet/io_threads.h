// Packet mode on N I/O threads (open({ threads: N }), N > 1): the WASM core and every decision stay on the main
// (JS) thread, so there is one connection table and the decisions are exactly the one-thread path's; the
// syscalls, which are most of packet mode's CPU (the kernel's send and the veth peer's receive), move to N
// native threads. Each thread owns an Io of its own: AF_PACKET receive sockets (with their rx rings) that
// join one PACKET_FANOUT_HASH group per (interface, family) with the other threads', so one direction of a
// flow always reaches the same thread and keeps its order, and its own send side (tx rings, raw sockets,
// next-hop table, ICMP limit). With AF_XDP, thread 0 sets up the programs and every queue's socket and each
// thread takes the sockets of its share of the receive queues (q % N == k: takeXdpSocks), no fanout group.
//
// A thread receives a batch into one of its kBufs batch buffers (the batch area's layout: descriptors, then
// slots) and hands it to the main thread through a single-producer single-consumer queue (ready), waking it
// with uv_async_send (libuv folds the wake-ups of one turn of its loop into one callback). On the main thread,
// recv() takes a ready buffer (round robin over the threads), copies it into the core's batch area; the JS
// runs the one WASM call as with one thread; send() copies the descriptors and the forwarded packets back
// into the buffer and queues it back to its thread (done), writing the thread's eventfd only when it sleeps.
// The thread sends it as the one-thread path does (sendFrom) and reuses the buffer.
//
// With AF_XDP a thread gathers before it hands over: its rx rings hold what arrived since the last look, often
// a few packets, and each hand-over costs the main thread a wake-up and a WASM call whatever its size. So a
// batch is held (filling) until it has tapMax packets or kGatherNs has passed since its first packet was read,
// the thread sleeping that time out on its eventfd (the main thread's batches to send still wake it), but only
// while the last batch handed over had kHoldFrom packets or more: at a light load (a look finds one or two
// packets) holding would add its time to every packet's latency and save the core almost nothing. The rx
// rings' blocks do the same in the kernel (1 ms); recvmmsg is not held (its slots and descriptors differ).
// The one-thread AF_XDP path gathers for the same time on Node's loop (onXdpReadable, packet_io.cc).
//
// A thread that fails (an exception: the only failure it can survive to report) is counted, logged through
// the JS callback's note, and started again with its sockets; after kMaxRestarts failures in a minute it is
// stopped for good and its receive sockets closed, so the kernel's fanout moves its flows to the others.
// close() stops and joins every thread before closing their sockets.
//
// fwmark services (openQueue): thread k reads netfilter queue base + k, its own, with its receive sockets;
// the kernel's NFQUEUE --queue-balance (src/proxy/fwmark.ts) spreads the marked packets over those queues by
// addresses and protocol, so a flow's marked packets also reach one thread in order. A tap copy and its queued
// twin may reach different threads: the core sets the twin aside whichever comes first (conn/in.ts).
#pragma once
// included inside packet_io.cc's namespace, after Io, recvInto and sendFrom: its system headers are there

constexpr uint32_t kBufs = 4;         // batch buffers per thread: in the kernel's hands, queued, in the core's
constexpr uint32_t kQueue = 8;        // a queue's capacity (a power of two, at least kBufs)
constexpr uint32_t kMaxRestarts = 5;  // failures of one thread in a minute before it is stopped for good
constexpr double kGatherNs = 100e3;   // AF_XDP: how long a batch is held for more (WASMVS_PACKET_GATHER_US)
constexpr uint32_t kHoldFrom = 8;     // ... when the last batch had at least this many packets

struct Buf {
  std::vector<uint8_t> area;  // maxPackets descriptors, then maxPackets slots
  std::vector<uint8_t> orig;  // the first bytes of each large packet as it came (toobig.h), by slot
  std::vector<uint8_t> origLen;
  uint32_t n = 0;
};

// One producer thread, one consumer thread; kBufs buffers circulate, so a push always has room.
struct Spsc {
  std::atomic<uint32_t> head{0}, tail{0};
  Buf* slots[kQueue] = {};
  void push(Buf* b) {
    const uint32_t t = tail.load(std::memory_order_relaxed);
    slots[t % kQueue] = b;
    tail.store(t + 1, std::memory_order_release);
  }
  Buf* pop() {
    const uint32_t h = head.load(std::memory_order_relaxed);
    if (h == tail.load(std::memory_order_acquire)) return nullptr;
    Buf* b = slots[h % kQueue];
    head.store(h + 1, std::memory_order_release);
    return b;
  }
  bool empty() const { return head.load(std::memory_order_acquire) == tail.load(std::memory_order_acquire); }
  void reset() { head.store(0), tail.store(0); }
};

struct Worker {
  Io* io = nullptr;     // this thread's sockets and counters (written by the thread only)
  Io* front = nullptr;  // the handle JS holds
  uint32_t index = 0;
  pthread_t thread{};
  bool running = false;  // a thread was started and not yet joined
  bool stopped = false;  // stopped for good after too many failures
  int wake = -1;         // eventfd: the main thread's "a batch came back" while the thread sleeps
  std::atomic<bool> stop{false}, sleeping{false}, failed{false};
  std::string error;  // why it failed, written before failed is set
  Spsc ready, done;
  std::vector<Buf> bufs;
  std::vector<Buf*> spare;                           // the thread's own
  Buf* filling = nullptr;                            // the thread's: the batch being gathered (AF_XDP)
  uint32_t held = 0;                                 // its packets
  uint32_t lastBatch = 0;                            // the last batch handed over (kHoldFrom)
  double heldSince = 0;                              // when its first was read (nowNs)
  double batches = 0, sleeps = 0, socketErrors = 0;  // the thread's own
  // what the thread published of its counters (under m), for stats() on the main thread
  std::mutex m;
  Counters pub;
  double pubLookups = 0, cpuNs = 0, pubBatches = 0, pubSleeps = 0, pubSocketErrors = 0;
  nfq::Queue pubQueue;          // its netfilter queue's counters (the counts only; fd -1 until bound)
  std::string pubRingFallback;  // the thread may set io->ringFallback (a tx ring it could not have)
  // the main thread's own
  double kernelDrops = 0, failures = 0, restarts = 0, dropped = 0;
  std::vector<double> failedAt;  // ms, the last minute's failures
  std::string lastError;
  // WASMVS_PACKET_THREAD_FAULT=K:N[:T] (tests): thread K throws once it has received N packets in a run, in
  // each of its first T runs (default 1)
  double faultAfter = -1, faultTimes = 1;
};

uint32_t recvThreaded(Io* front, uint8_t* desc, uint8_t* data);

namespace threads {

double threadCpuNs() {
  timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return double(ts.tv_sec) * 1e9 + double(ts.tv_nsec);
}

void publish(Worker* w) {
  std::lock_guard<std::mutex> g(w->m);
  w->pub = w->io->c;
  w->pubLookups = w->io->hops.lookups;
  w->cpuNs = threadCpuNs();
  w->pubBatches = w->batches;
  w->pubSleeps = w->sleeps;
  w->pubSocketErrors = w->socketErrors;
  const nfq::Queue& q = w->io->queue;
  w->pubQueue.fd = q.fd;
  w->pubQueue.num = q.num;
  w->pubQueue.packets = q.packets;
  w->pubQueue.oversize = q.oversize;
  w->pubQueue.errors = q.errors;
  w->pubQueue.overruns = q.overruns;
  w->pubQueue.verdicts = q.verdicts;
  if (w->pubRingFallback.size() != w->io->ringFallback.size()) w->pubRingFallback = w->io->ringFallback;
}

// The buffer's large packets' first bytes live in the buffer; the Io's own arrays are swapped in while the
// thread receives into it or sends from it (recvInto and sendFrom read io->orig by slot).
void swapOrig(Io* io, Buf* b) {
  std::swap(io->orig, b->orig);
  std::swap(io->origLen, b->origLen);
}

void sendBack(Worker* w, Buf* b) {
  Io* io = w->io;
  const uint32_t descBytes = io->maxPackets * kDescSize;
  swapOrig(io, b);
  sendFrom(io, b->area.data(), b->area.size(), 0, descBytes, b->n);
  swapOrig(io, b);
  w->spare.push_back(b);
}

// How long an AF_XDP batch is held for more packets (0: handed over at once, as the rings' are here)
double gatherNs(const Io* io) {
  if (!io->useXdp) return 0;
  static const char* env = getenv("WASMVS_PACKET_GATHER_US");
  return env ? atof(env) * 1e3 : kGatherNs;
}

void handOver(Worker* w, Buf* b, uint32_t n) {
  b->n = n;
  w->ready.push(b);
  uv_async_send(w->front->async);
  w->batches++;
}

void loop(Worker* w) {
  Io* io = w->io;
  const uint32_t descBytes = io->maxPackets * kDescSize;
  const double gather = gatherNs(io);
  if (gather > 0) prctl(PR_SET_TIMERSLACK, 1000UL, 0, 0, 0);  // the hold's timed sleep: 1 µs late, not 50
  std::vector<pollfd> fds;
  for (int fd : io->rx) fds.push_back({fd, POLLIN, 0});
#ifdef WASMVS_XDP
  for (const xdp::Sock& s : io->xdp.socks) fds.push_back({s.fd, POLLIN, 0});  // this thread's receive queues
#endif
  if (io->queue.fd >= 0) fds.push_back({io->queue.fd, POLLIN, 0});  // bound while the thread was paused
  fds.push_back({w->wake, POLLIN, 0});
  double lastPub = 0;
  // w->failures is written by the main thread before it starts this run (pthread_create orders the two)
  const double faultAt = w->faultAfter >= 0 && w->failures < w->faultTimes ? io->c.rxPackets + w->faultAfter : -1;
  while (!w->stop.load(std::memory_order_acquire)) {
    bool busy = false;
    while (Buf* b = w->done.pop()) {
      sendBack(w, b);
      busy = true;
    }
    if (!w->filling && !w->spare.empty()) {
      w->filling = w->spare.back();
      w->spare.pop_back();
      w->held = 0;
    }
    double t = 0;
    if (Buf* b = w->filling) {
      swapOrig(io, b);
      const uint32_t n = recvInto(io, b->area.data(), b->area.data() + descBytes, w->held);
      swapOrig(io, b);
      t = nowNs();
      if (n > w->held && w->held == 0) w->heldSince = t;
      w->held = n;
      if (n && (n >= tapMax(io) || w->lastBatch < kHoldFrom || t - w->heldSince >= gather)) {
        w->filling = nullptr;
        w->held = 0;
        w->lastBatch = n;
        handOver(w, b, n);
        busy = true;
        if (faultAt >= 0 && io->c.rxPackets >= faultAt)
          throw std::runtime_error("injected fault (WASMVS_PACKET_THREAD_FAULT)");
      }
    }
    if (!t) t = nowNs();
    if (t - lastPub > 1e6) {
      publish(w);
      lastPub = t;
    }
    if (busy) continue;
    if (w->held) {
      // a batch held for more: sleep out the rest of its time, woken early only by a batch to send
      w->sleeping.store(true, std::memory_order_relaxed);
      std::atomic_thread_fence(std::memory_order_seq_cst);
      if (w->done.empty()) {
        const double left = std::max(0.0, w->heldSince + gather - t);
        timespec ts{time_t(left / 1e9), long(std::fmod(left, 1e9))};
        pollfd p{w->wake, POLLIN, 0};
        if (ppoll(&p, 1, &ts, nullptr) > 0 && (p.revents & POLLIN)) {
          uint64_t v;
          (void)!read(w->wake, &v, sizeof v);
        }
      }
      w->sleeping.store(false, std::memory_order_relaxed);
      continue;
    }
    // nothing to do: sleep until a receive socket has packets or the main thread queues a batch back (or
    // only the latter while every buffer is out). The store, the fence and the check pair with send()'s.
    w->sleeping.store(true, std::memory_order_relaxed);
    std::atomic_thread_fence(std::memory_order_seq_cst);
    if (!w->done.empty()) {
      w->sleeping.store(false, std::memory_order_relaxed);
      continue;
    }
    publish(w);
    w->sleeps++;
    const bool rx = w->filling != nullptr;
    for (pollfd& p : fds) p.revents = 0;
    poll(rx ? fds.data() : &fds.back(), rx ? fds.size() : 1, 100);
    w->sleeping.store(false, std::memory_order_relaxed);
    uint64_t v;
    if (fds.back().revents & POLLIN) (void)!read(w->wake, &v, sizeof v);
    // a socket's pending error (its interface went away: ENETDOWN) keeps poll saying POLLERR until it is read;
    // the rings never call recv, so it is read here, counted, and not spun on
    for (size_t k = 0; k + 1 < fds.size(); k++)
      if (fds[k].revents & POLLERR) {
        int e = 0;
        socklen_t l = sizeof e;
        getsockopt(fds[k].fd, SOL_SOCKET, SO_ERROR, &e, &l);
        if (fds[k].fd == io->queue.fd)
          io->queue.overruns++;  // a netlink socket's only pending error: its buffer overran (ENOBUFS)
        else
          w->socketErrors++;
      }
  }
  publish(w);
}

void* run(void* arg) {
  Worker* w = static_cast<Worker*>(arg);
  try {
    loop(w);
  } catch (const std::exception& e) {
    w->error = e.what();
    w->failed.store(true, std::memory_order_release);
    uv_async_send(w->front->async);
  } catch (...) {
    w->error = "unknown exception";
    w->failed.store(true, std::memory_order_release);
    uv_async_send(w->front->async);
  }
  return nullptr;
}

// Every buffer back in the thread's hands (the thread is not running): queued batches are dropped, counted.
void resetBuffers(Worker* w) {
  while (Buf* b = w->ready.pop()) w->dropped += b->n;
  w->dropped += w->held;  // a batch it was gathering
  w->filling = nullptr;
  w->held = 0;
  w->ready.reset();
  w->done.reset();
  w->spare.clear();
  for (Buf& b : w->bufs) w->spare.push_back(&b);
}

bool startThread(Worker* w, std::string* err) {
  w->stop.store(false);
  w->failed.store(false);
  int e = pthread_create(&w->thread, nullptr, run, w);
  if (e != 0) {
    *err = "pthread_create: " + errnoText(e);
    return false;
  }
  char name[16];
  snprintf(name, sizeof name, "wasmvs-pio%u", w->index);
  pthread_setname_np(w->thread, name);
  w->running = true;
  return true;
}

void joinThread(Worker* w) {
  if (!w->running) return;
  w->stop.store(true, std::memory_order_release);
  uint64_t one = 1;
  (void)!write(w->wake, &one, sizeof one);
  pthread_join(w->thread, nullptr);
  w->running = false;
}

// A failed thread, joined: started again with its sockets, or stopped for good. The note for the JS log.
std::string recover(Worker* w) {
  joinThread(w);
  Io* f = w->front;
  if (f->current == w && f->currentBuf) f->currentBuf = nullptr;  // the core's copy of its batch is dropped too
  w->failures++;
  w->lastError = w->error;
  const double ms = nowNs() / 1e6;
  w->failedAt.push_back(ms);
  while (!w->failedAt.empty() && ms - w->failedAt.front() > 60000) w->failedAt.erase(w->failedAt.begin());
  resetBuffers(w);
  std::string what = "packet I/O thread " + std::to_string(w->index) + " failed (" + w->error + ")";
  std::string err = "it failed " + std::to_string(kMaxRestarts) + " times in a minute";
  if (w->failedAt.size() < kMaxRestarts && startThread(w, &err)) {
    w->restarts++;
    return what + "; restarted";
  }
  // its flows go to the other threads once its receive sockets leave the fanout groups
  w->stopped = true;
  for (int fd : w->io->rx) close(fd);
  w->io->rx.clear();
  for (ring::Rx& r : w->io->rxRings) {
    r.fd = -1;  // closed above
    r.release();
  }
  w->io->rxRings.clear();
#ifdef WASMVS_XDP
  // its AF_XDP sockets leave their interfaces' XSKMAPs (thread 0's): their queues' frames go to the kernel
  Io* first = f->workers.empty() ? nullptr : f->workers[0]->io;
  for (xdp::Sock& s : w->io->xdp.socks)
    for (const xdp::Port& p : first ? first->xdp.ports : std::vector<xdp::Port>{})
      if (p.ifindex == s.ifindex) bpf_map_delete_elem(p.xsks, &s.queue);
#endif
  // and its netfilter queue: with no reader bound, --queue-bypass gives its marked packets back to the kernel
  nfq::close(w->io->queue);
  {
    std::lock_guard<std::mutex> g(w->m);
    w->pubQueue.fd = -1;  // stats() says it reads none now (the thread, stopped, publishes no more)
  }
  return what + "; not restarted: " + err + "; its flows move to the other threads";
}

}  // namespace threads

// Calls the JS callback on the main thread: no argument for "batches are ready", or a note to log.
void callJs(Io* io, const std::string* note) {
  napi_env env = io->env;
  napi_handle_scope scope;
  napi_open_handle_scope(env, &scope);
  napi_value cb, global, result, arg;
  napi_get_reference_value(env, io->callback, &cb);
  napi_get_global(env, &global);
  if (note) napi_create_string_utf8(env, note->c_str(), note->size(), &arg);
  if (napi_make_callback(env, io->asyncCtx, global, cb, note ? 1 : 0, note ? &arg : nullptr, &result) ==
      napi_pending_exception) {
    napi_value e;
    napi_get_and_clear_last_exception(env, &e);
    napi_fatal_exception(env, e);
  }
  napi_close_handle_scope(env, scope);
}

void onThreadsAsync(uv_async_t* a) {
  Io* f = static_cast<Io*>(a->data);
  if (f->closed || !f->callback) return;
  for (Worker* w : f->workers)
    if (w->running && w->failed.load(std::memory_order_acquire)) {
      const std::string note = threads::recover(w);
      callJs(f, &note);
      if (f->closed) return;
    }
  callJs(f, nullptr);
  if (f->closed) return;
  // the JS takes a bounded number of batches per turn: what is left wakes it again, after timers and I/O
  for (Worker* w : f->workers)
    if (!w->ready.empty()) {
      uv_async_send(f->async);
      break;
    }
}

// recv() with threads: one ready batch, copied into the core's batch area (descriptors, then each packet into
// its slot); 0 when none is ready.
uint32_t recvThreaded(Io* f, uint8_t* desc, uint8_t* data) {
  if (f->currentBuf) {  // a batch taken and never sent back: back to its thread, nothing of it sent
    f->currentBuf->n = 0;
    f->current->done.push(f->currentBuf);
    f->currentBuf = nullptr;
  }
  const size_t nw = f->workers.size();
  const uint32_t descBytes = f->maxPackets * kDescSize, dataBytes = f->maxPackets * f->slot;
  for (size_t k = 0; k < nw; k++) {
    Worker* w = f->workers[(f->nextWorker + k) % nw];
    Buf* b = w->ready.pop();
    if (!b) continue;
    f->nextWorker = (f->nextWorker + k + 1) % nw;
    const uint8_t* src = b->area.data();
    memcpy(desc, src, size_t(b->n) * kDescSize);
    for (uint32_t i = 0; i < b->n; i++) {
      const uint32_t off = get32(src + size_t(i) * kDescSize), len = get32(src + size_t(i) * kDescSize + 4);
      if (uint64_t(off) + len <= dataBytes) memcpy(data + off, src + descBytes + off, len);
    }
    f->current = w;
    f->currentBuf = b;
    return b->n;
  }
  return 0;
}

// send() with threads: the batch's descriptors and forwarded packets (rewritten in place: same offsets and
// lengths) copied back into its buffer, queued to its thread; the thread's eventfd written only if it sleeps.
// Returns the packets queued to be sent.
uint32_t sendThreaded(Io* f, uint8_t* mem, size_t memLen, uint32_t descPtr, uint32_t dataPtr, uint32_t n) {
  Buf* b = f->currentBuf;
  Worker* w = f->current;
  if (!b) return 0;
  f->currentBuf = nullptr;
  if (n > b->n) n = b->n;
  const uint32_t descBytes = f->maxPackets * kDescSize, dataBytes = f->maxPackets * f->slot;
  uint8_t* dst = b->area.data();
  memcpy(dst, mem + descPtr, size_t(n) * kDescSize);
  uint32_t fwd = 0;
  for (uint32_t i = 0; i < n; i++) {
    uint8_t* d = dst + size_t(i) * kDescSize;
    if (d[16] != 1) continue;
    const uint32_t off = get32(d), len = get32(d + 4);
    if (uint64_t(off) + len > dataBytes || uint64_t(dataPtr) + off + len > memLen) {
      d[16] = 2;  // outside the slots: not sent (sendFrom would check against the buffer only)
      continue;
    }
    memcpy(dst + descBytes + off, mem + dataPtr + off, len);
    fwd++;
  }
  b->n = n;
  w->done.push(b);
  std::atomic_thread_fence(std::memory_order_seq_cst);
  if (w->sleeping.load(std::memory_order_relaxed)) {
    uint64_t one = 1;
    (void)!write(w->wake, &one, sizeof one);
  }
  return fwd;
}

// The threads started (start()): each with its buffers; false with why if one cannot be.
bool startThreads(Io* f, std::string* err) {
  uv_loop_t* loop;
  napi_get_uv_event_loop(f->env, &loop);
  f->async = new uv_async_t();
  f->async->data = f;
  if (uv_async_init(loop, f->async, onThreadsAsync) != 0) {
    delete f->async;
    f->async = nullptr;
    *err = "uv_async_init failed";
    return false;
  }
  const char* fault = getenv("WASMVS_PACKET_THREAD_FAULT");
  for (Worker* w : f->workers) {
    if (fault) {
      unsigned k = 0;
      double after = 0, times = 1;
      if (sscanf(fault, "%u:%lf:%lf", &k, &after, &times) >= 2 && k == w->index) {
        w->faultAfter = after;
        w->faultTimes = times;
      }
    }
    if (!threads::startThread(w, err)) return false;
  }
  return true;
}

// Stops and joins every thread, then closes their sockets (releaseIo); the async handle is closed last.
void stopThreads(Io* f) {
  for (Worker* w : f->workers) threads::joinThread(w);
  for (Worker* w : f->workers) {
    releaseIo(w->io);
    delete w->io;
    if (w->wake >= 0) close(w->wake);
    delete w;
  }
  f->workers.clear();
  f->currentBuf = nullptr;
  f->current = nullptr;
  if (f->async)
    uv_close(reinterpret_cast<uv_handle_t*>(f->async), [](uv_handle_t* h) { delete reinterpret_cast<uv_async_t*>(h); });
  f->async = nullptr;
}

// openQueue with threads: every thread paused (joined at the top of its loop: batches in flight stay where
// they are), thread k's queue base + k bound, and the threads started again, now polling it. A thread stopped
// for good gets none (its share of the marked flows is bypassed to the kernel). False with why, every queue
// bound here closed again.
bool openThreadQueues(Io* f, uint16_t base, std::string* err) {
  std::vector<Worker*> paused;
  for (Worker* w : f->workers)
    if (w->running) {
      threads::joinThread(w);
      paused.push_back(w);
    }
  bool ok = true;
  for (Worker* w : f->workers) {
    if (w->stopped) continue;
    if (!nfq::open(w->io->queue, uint16_t(base + w->index), err)) {
      ok = false;
      break;
    }
    nfq::stage(w->io->queue, w->io->maxPackets, w->io->slot + 512);  // a slot's packet and its netlink headers
  }
  if (!ok)
    for (Worker* w : f->workers) nfq::close(w->io->queue);
  else
    f->threadQueueBase = base;
  std::string why;
  for (Worker* w : paused)  // one that failed meanwhile is left to onThreadsAsync's recover(), which counts it
    if (!w->failed.load(std::memory_order_acquire) && !threads::startThread(w, &why)) {
      w->failed.store(true, std::memory_order_release);
      w->error = why;
      uv_async_send(f->async);
    }
  return ok;
}

// The worker for thread `index` over an opened Io: its eventfd and buffers.
Worker* makeWorker(Io* f, Io* io, uint32_t index, std::string* err) {
  Worker* w = new Worker();
  w->io = io;
  w->front = f;
  w->index = index;
  w->wake = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (w->wake < 0) {
    *err = "eventfd: " + errnoText(errno);
    delete w;
    return nullptr;
  }
  w->pubRingFallback = io->ringFallback;  // why the rx rings could not be had, for stats() before the start
  w->bufs.resize(kBufs);
  for (Buf& b : w->bufs) {
    b.area.resize(size_t(io->maxPackets) * (kDescSize + io->slot));
    b.orig.resize(io->orig.size());
    b.origLen.resize(io->origLen.size());
    w->spare.push_back(&b);
  }
  return w;
}
