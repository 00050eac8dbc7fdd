// PACKET_MMAP rings for packet mode's ring I/O (--packet-io ring).
//
// rx: one TPACKET_V3 ring per receive socket. The kernel fills blocks of packets and hands a whole block
// over at once (full, or after kRetireMs), so a batch costs no syscall: the addon walks the block, copies
// each packet once into its slot in the WASM batch area and gives the block back. The copy stays because
// the core's memory is one WASM ArrayBuffer that V8 owns and may move on growth; mapping the ring inside
// it would tie V8's allocation to a kernel mapping. A 64-byte UDP packet copies in a few nanoseconds.
//
// tx: one TPACKET_V2 ring per outgoing interface, on a SOCK_RAW packet socket with PACKET_QDISC_BYPASS:
// each forwarded packet is copied once from the WASM area into a frame behind an Ethernet header
// (nexthop.h says which interface and which neighbour), and one sendto() per ring and batch sends them
// all. What a ring cannot take (no known next hop, bigger than the frame or the MTU, ring full) goes
// through the raw IP socket as before.
#pragma once

#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <poll.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <string>

namespace ring {

constexpr uint32_t kRxBlockSize = 1 << 17;  // 128 KiB: about 1,300 small packets a block
constexpr uint32_t kRxBlocks = 32;          // 4 MiB a socket
constexpr uint32_t kRxFrameSize = 2048;     // V3 packs packets; this only bounds the snap length
constexpr uint32_t kRetireMs = 1;           // a part-filled block is handed over after this long
constexpr uint32_t kTxFrameSize = 2048;
constexpr uint32_t kTxBlockSize = 1 << 16;
constexpr uint32_t kTxBlocks = 32;                                   // 1,024 frames
constexpr uint32_t kTxData = TPACKET2_HDRLEN - sizeof(sockaddr_ll);  // where a tx frame's bytes start

inline std::string errnoText(int e) {
  return std::string(strerror(e));
}

struct Rx {
  int fd = -1;
  uint8_t* map = nullptr;
  size_t mapLen = 0;
  uint32_t block = 0;            // the block being read
  tpacket3_hdr* next = nullptr;  // its next packet (nullptr: not started)
  uint32_t left = 0;             // packets left in it

  // Sets the ring up on a fresh (unbound) packet socket; false with err on failure.
  bool setup(int sock, std::string* err) {
    int v = TPACKET_V3;
    if (setsockopt(sock, SOL_PACKET, PACKET_VERSION, &v, sizeof v) < 0) {
      *err = "PACKET_VERSION V3: " + errnoText(errno);
      return false;
    }
    tpacket_req3 req{};
    req.tp_block_size = kRxBlockSize;
    req.tp_block_nr = kRxBlocks;
    req.tp_frame_size = kRxFrameSize;
    req.tp_frame_nr = (kRxBlockSize / kRxFrameSize) * kRxBlocks;
    req.tp_retire_blk_tov = kRetireMs;
    if (setsockopt(sock, SOL_PACKET, PACKET_RX_RING, &req, sizeof req) < 0) {
      *err = "PACKET_RX_RING: " + errnoText(errno);
      return false;
    }
    mapLen = size_t(kRxBlockSize) * kRxBlocks;
    void* m = mmap(nullptr, mapLen, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_LOCKED, sock, 0);
    if (m == MAP_FAILED) m = mmap(nullptr, mapLen, PROT_READ | PROT_WRITE, MAP_SHARED, sock, 0);
    if (m == MAP_FAILED) {
      *err = "mmap rx ring: " + errnoText(errno);
      mapLen = 0;
      return false;
    }
    map = static_cast<uint8_t*>(m);
    fd = sock;
    return true;
  }

  tpacket_block_desc* desc(uint32_t b) const {
    return reinterpret_cast<tpacket_block_desc*>(map + size_t(b) * kRxBlockSize);
  }

  // The next packet the kernel has handed over, or nullptr. Blocks read to the end go back to the kernel.
  tpacket3_hdr* take() {
    for (;;) {
      tpacket_block_desc* bd = desc(block);
      if (!next) {
        if (!(__atomic_load_n(&bd->hdr.bh1.block_status, __ATOMIC_ACQUIRE) & TP_STATUS_USER)) return nullptr;
        left = bd->hdr.bh1.num_pkts;
        next = reinterpret_cast<tpacket3_hdr*>(reinterpret_cast<uint8_t*>(bd) + bd->hdr.bh1.offset_to_first_pkt);
      }
      if (left == 0) {
        __atomic_store_n(&bd->hdr.bh1.block_status, TP_STATUS_KERNEL, __ATOMIC_RELEASE);
        block = (block + 1) % kRxBlocks;
        next = nullptr;
        continue;
      }
      tpacket3_hdr* h = next;
      left--;
      next = reinterpret_cast<tpacket3_hdr*>(reinterpret_cast<uint8_t*>(h) + h->tp_next_offset);
      return h;
    }
  }

  void release() {
    if (map) munmap(map, mapLen);
    map = nullptr;
    if (fd >= 0) close(fd);
    fd = -1;
  }
};

// struct virtio_net_hdr's layout (linux/virtio_net.h does not compile as C++): no offload asked, only hdr_len.
struct VnetHdr {
  uint8_t flags = 0, gsoType = 0;
  uint16_t hdrLen = 0, gsoSize = 0, csumStart = 0, csumOffset = 0;
};
static_assert(sizeof(VnetHdr) == 10, "virtio_net_hdr is 10 bytes");

struct Tx {
  int fd = -1;
  int ifindex = 0;
  uint8_t* map = nullptr;
  size_t mapLen = 0;
  uint32_t frames = 0, cur = 0, pending = 0;
  // Each frame starts with a virtio_net_hdr whose hdr_len is the whole frame (PACKET_VNET_HDR): the kernel
  // then copies the frame into the skb's linear part. Without it only the Ethernet header is copied and
  // the rest is attached as a fragment of the ring's page, which veth must copy again into a fresh page
  // (skb_copy_ubufs) before the peer may see it: a page allocation per packet.
  bool linear = false;

  bool setup(int idx, std::string* err, bool wantLinear) {
    int sock = socket(AF_PACKET, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);  // protocol 0: sends only
    if (sock < 0) {
      *err = "AF_PACKET tx socket: " + errnoText(errno);
      return false;
    }
    int v = TPACKET_V2, one = 1;
    tpacket_req req{};
    req.tp_block_size = kTxBlockSize;
    req.tp_block_nr = kTxBlocks;
    req.tp_frame_size = kTxFrameSize;
    req.tp_frame_nr = (kTxBlockSize / kTxFrameSize) * kTxBlocks;
    sockaddr_ll sll{};
    sll.sll_family = AF_PACKET;
    sll.sll_ifindex = idx;
    // before the ring, as the kernel requires; without it (an old kernel) frames go as fragments
    linear = wantLinear && setsockopt(sock, SOL_PACKET, PACKET_VNET_HDR, &one, sizeof one) == 0;
    if (setsockopt(sock, SOL_PACKET, PACKET_VERSION, &v, sizeof v) < 0)
      *err = "PACKET_VERSION V2: " + errnoText(errno);
    else if (setsockopt(sock, SOL_PACKET, PACKET_QDISC_BYPASS, &one, sizeof one) < 0)
      *err = "PACKET_QDISC_BYPASS: " + errnoText(errno);
    else if (setsockopt(sock, SOL_PACKET, PACKET_TX_RING, &req, sizeof req) < 0)
      *err = "PACKET_TX_RING: " + errnoText(errno);
    else if (bind(sock, reinterpret_cast<sockaddr*>(&sll), sizeof sll) < 0)
      *err = "bind tx ring: " + errnoText(errno);
    if (!err->empty()) {
      close(sock);
      return false;
    }
    mapLen = size_t(kTxBlockSize) * kTxBlocks;
    void* m = mmap(nullptr, mapLen, PROT_READ | PROT_WRITE, MAP_SHARED, sock, 0);
    if (m == MAP_FAILED) {
      *err = "mmap tx ring: " + errnoText(errno);
      close(sock);
      mapLen = 0;
      return false;
    }
    map = static_cast<uint8_t*>(m);
    fd = sock;
    ifindex = idx;
    frames = req.tp_frame_nr;
    return true;
  }

  // The next free frame, or nullptr when the ring is full (the kernel has not sent the older ones yet).
  tpacket2_hdr* frame() {
    tpacket2_hdr* h = reinterpret_cast<tpacket2_hdr*>(map + size_t(cur) * kTxFrameSize);
    uint32_t st = __atomic_load_n(&h->tp_status, __ATOMIC_ACQUIRE);
    if (st != TP_STATUS_AVAILABLE && st != TP_STATUS_WRONG_FORMAT) return nullptr;
    return h;
  }

  void submit(tpacket2_hdr* h, uint32_t len) {
    h->tp_len = len;
    __atomic_store_n(&h->tp_status, TP_STATUS_SEND_REQUEST, __ATOMIC_RELEASE);
    cur = (cur + 1) % frames;
    pending++;
  }

  void release() {
    if (map) munmap(map, mapLen);
    map = nullptr;
    if (fd >= 0) close(fd);
    fd = -1;
  }
};

}  // namespace ring
