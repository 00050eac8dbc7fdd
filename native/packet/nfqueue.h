// fwmark services in packet mode: AF_PACKET and AF_XDP see a packet before netfilter's mangle table marks it,
// so marked packets come to wasmvs another way: an iptables NFQUEUE rule after the operator's MARK rules
// (src/proxy/fwmark.ts) queues them to one netfilter queue, bound here over nfnetlink (no libnetfilter_queue).
// Each queued packet is copied whole into a batch slot with its mark; the kernel's copy is then dropped at
// once with one batch verdict per read (wasmvs sends what it forwards itself, as it does for AF_PACKET's
// copies). Without GSO flags the kernel completes a partial checksum before queueing, so the slot holds a
// finished packet.
#pragma once

#include <arpa/inet.h>
#include <errno.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_queue.h>
#include <linux/netlink.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <string>
#include <vector>

namespace nfq {

struct Queue {
  int fd = -1;
  uint16_t num = 0;
  uint32_t lastId = 0;       // the newest packet id read and not yet given its verdict
  bool owed = false;         // a verdict is owed for ids up to lastId
  std::vector<uint8_t> buf;  // acknowledgements at set-up
  uint32_t seq = 1;
  // the staging area recvmmsg reads into (stage()): a cell per datagram
  std::vector<uint8_t> stageBuf;
  std::vector<mmsghdr> mm;
  std::vector<iovec> iov;
  uint32_t cell = 0;
  // counted: packets read, too big for a slot, netlink errors read back, reads the socket buffer overran
  double packets = 0, oversize = 0, errors = 0, overruns = 0, verdicts = 0;
};

// One nfnetlink queue message: header, nfgenmsg with the queue number, then attributes appended by add().
struct Msg {
  std::vector<uint8_t> b;
  Msg(uint16_t type, uint16_t flags, uint16_t queue, uint32_t seq) : b(NLMSG_HDRLEN + sizeof(nfgenmsg)) {
    nlmsghdr* h = reinterpret_cast<nlmsghdr*>(b.data());
    h->nlmsg_type = uint16_t((NFNL_SUBSYS_QUEUE << 8) | type);
    h->nlmsg_flags = uint16_t(NLM_F_REQUEST | flags);
    h->nlmsg_seq = seq;
    nfgenmsg* g = reinterpret_cast<nfgenmsg*>(b.data() + NLMSG_HDRLEN);
    g->nfgen_family = AF_UNSPEC;
    g->version = NFNETLINK_V0;
    g->res_id = htons(queue);
  }
  void add(uint16_t type, const void* data, uint16_t len) {
    size_t at = b.size();
    b.resize(at + NLA_ALIGN(NLA_HDRLEN + len));
    nlattr* a = reinterpret_cast<nlattr*>(b.data() + at);
    a->nla_type = type;
    a->nla_len = uint16_t(NLA_HDRLEN + len);
    memcpy(b.data() + at + NLA_HDRLEN, data, len);
  }
  const uint8_t* done() {
    reinterpret_cast<nlmsghdr*>(b.data())->nlmsg_len = uint32_t(b.size());
    return b.data();
  }
};

// Sends a config message and reads its acknowledgement; false with why.
inline bool request(Queue& q, Msg& m, const char* what, std::string* err) {
  const uint32_t seq = reinterpret_cast<nlmsghdr*>(m.b.data())->nlmsg_seq;
  if (send(q.fd, m.done(), m.b.size(), 0) < 0) {
    *err = std::string(what) + ": " + strerror(errno);
    return false;
  }
  for (int tries = 0; tries < 64; tries++) {
    ssize_t n = recv(q.fd, q.buf.data(), q.buf.size(), 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      *err = std::string(what) + ": " + strerror(errno);
      return false;
    }
    for (nlmsghdr* h = reinterpret_cast<nlmsghdr*>(q.buf.data()); NLMSG_OK(h, size_t(n)); h = NLMSG_NEXT(h, n)) {
      if (h->nlmsg_type != NLMSG_ERROR || h->nlmsg_seq != seq) continue;
      int e = -reinterpret_cast<nlmsgerr*>(NLMSG_DATA(h))->error;
      if (e == 0) return true;
      *err = std::string(what) + ": " + strerror(e) +
             (e == EBUSY || e == EPERM ? " (another program has bound this queue number)" : "");
      return false;
    }
  }
  *err = std::string(what) + ": no acknowledgement";
  return false;
}

// Binds queue `num` in copy-packet mode; false with why, nothing left open.
inline bool open(Queue& q, uint16_t num, std::string* err) {
  q.fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_NETFILTER);
  if (q.fd < 0) {
    *err = std::string("netfilter queue socket: ") + strerror(errno);
    return false;
  }
  q.num = num;
  q.buf.resize(0x10000 + 4096);
  int rcv = 4 << 20;
  setsockopt(q.fd, SOL_SOCKET, SO_RCVBUF, &rcv, sizeof rcv);
  timeval tv = {2, 0};  // the acknowledgements below; reads are MSG_DONTWAIT after
  setsockopt(q.fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  sockaddr_nl sa = {};
  sa.nl_family = AF_NETLINK;
  Msg bindMsg(NFQNL_MSG_CONFIG, NLM_F_ACK, num, q.seq++);
  nfqnl_msg_config_cmd cmd = {NFQNL_CFG_CMD_BIND, 0, 0};
  bindMsg.add(NFQA_CFG_CMD, &cmd, sizeof cmd);
  Msg params(NFQNL_MSG_CONFIG, NLM_F_ACK, num, q.seq++);
  nfqnl_msg_config_params p = {htonl(0xffff), NFQNL_COPY_PACKET};
  params.add(NFQA_CFG_PARAMS, &p, sizeof p);
  uint32_t maxlen = htonl(8192);  // packets waiting for wasmvs; beyond this the kernel drops (and counts)
  params.add(NFQA_CFG_QUEUE_MAXLEN, &maxlen, sizeof maxlen);
  if (bind(q.fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) < 0) {
    *err = std::string("netfilter queue socket: bind: ") + strerror(errno);
  } else if (request(q, bindMsg, ("binding netfilter queue " + std::to_string(num)).c_str(), err) &&
             request(q, params, "setting the queue to copy packets", err)) {
    return true;
  }
  ::close(q.fd);
  q.fd = -1;
  return false;
}

// Sizes the staging area: up to n datagrams per read of up to cell bytes each (a slot and its headers).
inline void stage(Queue& q, uint32_t n, uint32_t cell) {
  q.cell = cell;
  q.stageBuf.assign(size_t(n) * cell, 0);
  q.mm.assign(n, mmsghdr{});
  q.iov.assign(n, iovec{});
}

// Reads up to n waiting datagrams (one queued packet each: nfqnl_enqueue_packet sends them alone) with one
// recvmmsg; their count, or 0 when none waits.
inline uint32_t readMany(Queue& q, uint32_t n) {
  if (n > q.mm.size()) n = uint32_t(q.mm.size());
  for (uint32_t i = 0; i < n; i++) {
    q.iov[i] = {q.stageBuf.data() + size_t(i) * q.cell, q.cell};
    q.mm[i].msg_hdr = msghdr{};
    q.mm[i].msg_hdr.msg_iov = &q.iov[i];
    q.mm[i].msg_hdr.msg_iovlen = 1;
  }
  for (;;) {
    int r = recvmmsg(q.fd, q.mm.data(), n, MSG_DONTWAIT, nullptr);
    if (r >= 0) return uint32_t(r);
    if (errno == EINTR) continue;
    if (errno == ENOBUFS) {  // the socket buffer overran: the kernel dropped what did not fit
      q.overruns++;
      continue;
    }
    return 0;
  }
}

// Datagram i of the last read: its packet's payload (nullptr when it holds none, or was cut short) and mark.
// False when it is not a queued packet (an error reply to a verdict, counted); a packet's id is recorded for
// the verdict whether or not its payload is usable.
inline bool packetAt(Queue& q, uint32_t i, const uint8_t** payload, uint32_t* plen, uint32_t* mark) {
  const uint8_t* buf = q.stageBuf.data() + size_t(i) * q.cell;
  size_t n = q.mm[i].msg_len;
  const bool cut = (q.mm[i].msg_hdr.msg_flags & MSG_TRUNC) != 0;
  *payload = nullptr;
  *plen = 0;
  *mark = 0;
  const nlmsghdr* h = reinterpret_cast<const nlmsghdr*>(buf);
  if (n < NLMSG_HDRLEN || h->nlmsg_len < NLMSG_HDRLEN + sizeof(nfgenmsg)) return false;
  if (h->nlmsg_type == NLMSG_ERROR) {
    if (n >= NLMSG_HDRLEN + sizeof(nlmsgerr) && reinterpret_cast<const nlmsgerr*>(NLMSG_DATA(h))->error) q.errors++;
    return false;
  }
  if (h->nlmsg_type != ((NFNL_SUBSYS_QUEUE << 8) | NFQNL_MSG_PACKET)) return false;
  const uint8_t* a = buf + NLMSG_HDRLEN + NLMSG_ALIGN(sizeof(nfgenmsg));
  const uint8_t* end = buf + (h->nlmsg_len < n ? h->nlmsg_len : n);
  bool haveId = false;
  while (a + NLA_HDRLEN <= end) {
    const nlattr* at = reinterpret_cast<const nlattr*>(a);
    if (at->nla_len < NLA_HDRLEN || a + at->nla_len > end) break;
    const uint8_t* v = a + NLA_HDRLEN;
    const uint32_t vlen = at->nla_len - NLA_HDRLEN;
    switch (at->nla_type & NLA_TYPE_MASK) {
      case NFQA_PACKET_HDR:
        if (vlen >= 4) {
          uint32_t id;
          memcpy(&id, v, 4);
          q.lastId = ntohl(id);  // ids rise: one verdict for the newest covers every earlier one
          q.owed = true;
          haveId = true;
        }
        break;
      case NFQA_MARK:
        if (vlen >= 4) {
          memcpy(mark, v, 4);
          *mark = ntohl(*mark);
        }
        break;
      case NFQA_PAYLOAD:
        *payload = v;
        *plen = vlen;
        break;
    }
    a += NLA_ALIGN(at->nla_len);
  }
  if (!haveId) return false;
  q.packets++;
  if (cut || !*payload || *plen == 0) {
    q.oversize++;
    *payload = nullptr;
  }
  return true;
}

// Drops the kernel's copies of every packet read so far (wasmvs sends what it forwards itself).
inline void dropRead(Queue& q) {
  if (!q.owed) return;
  Msg v(NFQNL_MSG_VERDICT_BATCH, 0, q.num, q.seq++);
  nfqnl_msg_verdict_hdr vh = {htonl(NF_DROP), htonl(q.lastId)};
  v.add(NFQA_VERDICT_HDR, &vh, sizeof vh);
  if (send(q.fd, v.done(), v.b.size(), MSG_DONTWAIT) >= 0) {
    q.owed = false;
    q.verdicts++;
  }
}

inline void close(Queue& q) {
  if (q.fd >= 0) ::close(q.fd);  // the kernel drops what was still queued for us
  q.fd = -1;
}

}  // namespace nfq
