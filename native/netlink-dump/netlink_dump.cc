// A run of generic netlink dump requests answered in one tight loop on a worker thread: for each request,
// one sendmsg and the recvmsg calls until its NLMSG_DONE (or error), replies appended to one buffer. It
// exists for reading a whole IPVS table back: one GET_DEST dump per service, 10k services, where the cost
// is per request (the syscalls, the event loop wake-ups and the JS callbacks around each), not per byte.
// The messages are built and parsed in TypeScript (src/kernel/codec.ts); this file only moves bytes.
#include <node_api.h>
#include <linux/netlink.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>
#include <errno.h>
#include <string.h>
#include <stdint.h>
#include <string>
#include <vector>

namespace {

struct Job {
  napi_async_work work = nullptr;
  napi_deferred deferred = nullptr;
  std::vector<uint8_t> requests;  // concatenated nlmsghdr-framed requests
  std::vector<uint32_t> starts;   // offset of each request
  int timeoutMs = 5000;
  // results
  std::vector<uint8_t> replies;  // every data message, in request order
  std::vector<int32_t> index;    // per request: reply start, reply end, errno (0 ok)
  int error = 0;                 // a failure of the socket itself
  std::string what;
};

int openSocket(int timeoutMs, std::string& what) {
  int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_GENERIC);
  if (fd < 0) {
    what = "socket(AF_NETLINK)";
    return -errno;
  }
  int big = 1 << 20;
  setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &big, sizeof big);
  struct timeval tv = {timeoutMs / 1000, (timeoutMs % 1000) * 1000};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  struct sockaddr_nl sa = {};
  sa.nl_family = AF_NETLINK;
  if (bind(fd, (struct sockaddr*)&sa, sizeof sa) < 0) {
    int e = errno;
    close(fd);
    what = "bind(AF_NETLINK)";
    return -e;
  }
  return fd;
}

void Execute(napi_env, void* data) {
  Job* j = static_cast<Job*>(data);
  int fd = openSocket(j->timeoutMs, j->what);
  if (fd < 0) {
    j->error = -fd;
    return;
  }
  std::vector<uint8_t> buf(1 << 16);
  struct sockaddr_nl kernel = {};
  kernel.nl_family = AF_NETLINK;
  size_t n = j->starts.size();
  j->index.assign(n * 3, 0);
  for (size_t i = 0; i < n; i++) {
    uint8_t* req = j->requests.data() + j->starts[i];
    struct nlmsghdr* h = reinterpret_cast<struct nlmsghdr*>(req);
    uint32_t seq = static_cast<uint32_t>(i + 1);
    h->nlmsg_seq = seq;
    j->index[i * 3] = static_cast<int32_t>(j->replies.size());
    if (sendto(fd, req, h->nlmsg_len, 0, (struct sockaddr*)&kernel, sizeof kernel) < 0) {
      j->error = errno;
      j->what = "sendto";
      break;
    }
    bool done = false;
    while (!done) {
      ssize_t got = recv(fd, buf.data(), buf.size(), 0);
      if (got < 0) {
        if (errno == EINTR) continue;
        j->error = errno;
        j->what = errno == EAGAIN ? "recv (timed out waiting for the kernel)" : "recv";
        break;
      }
      size_t off = 0;
      while (off + NLMSG_HDRLEN <= static_cast<size_t>(got)) {
        struct nlmsghdr* m = reinterpret_cast<struct nlmsghdr*>(buf.data() + off);
        if (m->nlmsg_len < NLMSG_HDRLEN || off + m->nlmsg_len > static_cast<size_t>(got)) break;
        size_t step = NLMSG_ALIGN(m->nlmsg_len);
        if (m->nlmsg_seq == seq) {
          if (m->nlmsg_type == NLMSG_DONE) {
            if (m->nlmsg_len >= NLMSG_HDRLEN + 4) {
              int32_t e;
              memcpy(&e, NLMSG_DATA(m), 4);
              if (e < 0) j->index[i * 3 + 2] = -e;
            }
            done = true;
          } else if (m->nlmsg_type == NLMSG_ERROR) {
            int32_t e;
            memcpy(&e, NLMSG_DATA(m), 4);
            j->index[i * 3 + 2] = e < 0 ? -e : 0;
            done = true;
          } else if (m->nlmsg_type != NLMSG_NOOP && m->nlmsg_type != NLMSG_OVERRUN) {
            j->replies.insert(j->replies.end(), buf.data() + off, buf.data() + off + m->nlmsg_len);
            size_t pad = step - m->nlmsg_len;
            j->replies.insert(j->replies.end(), pad, 0);
          }
        }
        off += step;
      }
      if (j->error) break;
    }
    j->index[i * 3 + 1] = static_cast<int32_t>(j->replies.size());
    if (j->error) break;
  }
  close(fd);
}

void Complete(napi_env env, napi_status, void* data) {
  Job* j = static_cast<Job*>(data);
  if (j->error) {
    napi_value msg, code, err;
    std::string text = j->what + ": " + strerror(j->error);
    napi_create_string_utf8(env, text.c_str(), text.size(), &msg);
    napi_create_int32(env, j->error, &code);
    napi_create_error(env, nullptr, msg, &err);
    napi_set_named_property(env, err, "errno", code);
    napi_reject_deferred(env, j->deferred, err);
  } else {
    napi_value result, replies, index, ab;
    void* out;
    napi_create_buffer_copy(env, j->replies.size(), j->replies.data(), &out, &replies);
    napi_create_arraybuffer(env, j->index.size() * 4, &out, &ab);
    if (!j->index.empty()) memcpy(out, j->index.data(), j->index.size() * 4);
    napi_create_typedarray(env, napi_int32_array, j->index.size(), ab, 0, &index);
    napi_create_object(env, &result);
    napi_set_named_property(env, result, "replies", replies);
    napi_set_named_property(env, result, "index", index);
    napi_resolve_deferred(env, j->deferred, result);
  }
  napi_delete_async_work(env, j->work);
  delete j;
}

// dumpRun(requests: Buffer, starts: Uint32Array, timeoutMs: number): Promise<{ replies: Buffer, index: Int32Array }>
napi_value DumpRun(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr);
  bool isBuf = false;
  if (argc < 3 || napi_is_buffer(env, argv[0], &isBuf) != napi_ok || !isBuf) {
    napi_throw_type_error(env, nullptr, "dumpRun(requests: Buffer, starts: Uint32Array, timeoutMs: number)");
    return nullptr;
  }
  void* reqData;
  size_t reqLen;
  napi_get_buffer_info(env, argv[0], &reqData, &reqLen);
  napi_typedarray_type type;
  size_t count;
  void* startsData;
  napi_value ab;
  size_t byteOff;
  if (napi_get_typedarray_info(env, argv[1], &type, &count, &startsData, &ab, &byteOff) != napi_ok ||
      type != napi_uint32_array) {
    napi_throw_type_error(env, nullptr, "starts must be a Uint32Array");
    return nullptr;
  }
  Job* j = new Job();
  j->requests.assign(static_cast<uint8_t*>(reqData), static_cast<uint8_t*>(reqData) + reqLen);
  j->starts.assign(static_cast<uint32_t*>(startsData), static_cast<uint32_t*>(startsData) + count);
  for (uint32_t s : j->starts) {
    if (s + NLMSG_HDRLEN > reqLen ||
        s + reinterpret_cast<struct nlmsghdr*>(j->requests.data() + s)->nlmsg_len > reqLen) {
      delete j;
      napi_throw_range_error(env, nullptr, "a request start is outside the requests buffer");
      return nullptr;
    }
  }
  int32_t t = 5000;
  napi_get_value_int32(env, argv[2], &t);
  j->timeoutMs = t > 0 ? t : 5000;
  napi_value promise, name;
  napi_create_promise(env, &j->deferred, &promise);
  napi_create_string_utf8(env, "netlink_dump", NAPI_AUTO_LENGTH, &name);
  napi_create_async_work(env, nullptr, name, Execute, Complete, j, &j->work);
  napi_queue_async_work(env, j->work);
  return promise;
}

napi_value Init(napi_env env, napi_value exports) {
  napi_value fn;
  napi_create_function(env, "dumpRun", NAPI_AUTO_LENGTH, DumpRun, nullptr, &fn);
  napi_set_named_property(env, exports, "dumpRun", fn);
  return exports;
}

}  // namespace

NAPI_MODULE(NODE_GYP_MODULE_NAME, Init)
