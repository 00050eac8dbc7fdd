// UDP flood for bench/packet-mode.ts: IPv4/UDP packets from `flows` source ports to dst:port, built by
// hand and sent with sendmmsg on one raw socket (64 per call) for `seconds`, as fast as the CPU allows.
// Prints the number sent. UDP checksum 0 (allowed over IPv4) so building a packet costs nothing.
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BATCH 64

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + t.tv_nsec / 1e9;
}

int main(int argc, char** argv) {
  if (argc < 7) {
    fprintf(stderr, "usage: flood SRC DST PORT FLOWS SECONDS PAYLOAD\n");
    return 2;
  }
  struct in_addr src, dst;
  if (!inet_aton(argv[1], &src) || !inet_aton(argv[2], &dst)) {
    fprintf(stderr, "bad address\n");
    return 2;
  }
  int port = atoi(argv[3]), flows = atoi(argv[4]), payload = atoi(argv[6]);
  double seconds = atof(argv[5]);
  if (flows < 1 || flows > 60000 || payload < 0 || payload > 1400) {
    fprintf(stderr, "bad flows or payload\n");
    return 2;
  }
  int fd = socket(AF_INET, SOCK_RAW, IPPROTO_RAW);
  if (fd < 0) {
    perror("raw socket");
    return 1;
  }
  int len = 20 + 8 + payload;
  static unsigned char pkts[BATCH][1500];
  struct mmsghdr msgs[BATCH];
  struct iovec iov[BATCH];
  struct sockaddr_in to = {.sin_family = AF_INET, .sin_addr = dst};
  memset(msgs, 0, sizeof msgs);
  for (int i = 0; i < BATCH; i++) {
    unsigned char* p = pkts[i];
    memset(p, 0, len);
    p[0] = 0x45;
    p[2] = len >> 8;
    p[3] = len & 255;
    p[8] = 64;
    p[9] = 17;
    memcpy(p + 12, &src, 4);
    memcpy(p + 16, &dst, 4);
    p[22] = port >> 8;
    p[23] = port & 255;
    p[24] = (8 + payload) >> 8;
    p[25] = (8 + payload) & 255;
    iov[i].iov_base = p;
    iov[i].iov_len = len;
    msgs[i].msg_hdr.msg_iov = &iov[i];
    msgs[i].msg_hdr.msg_iovlen = 1;
    msgs[i].msg_hdr.msg_name = &to;
    msgs[i].msg_hdr.msg_namelen = sizeof to;
  }
  unsigned long long sent = 0, flow = 0;
  double end = now() + seconds;
  while (now() < end) {
    for (int i = 0; i < BATCH; i++) {
      int sp = 10000 + (int)(flow++ % (unsigned)flows);
      pkts[i][20] = sp >> 8;
      pkts[i][21] = sp & 255;
    }
    int r = sendmmsg(fd, msgs, BATCH, 0);
    if (r > 0) sent += r;
  }
  printf("%llu\n", sent);
  return 0;
}
