/* wasmvs bench scaling: timed TCP connects from inside a network namespace.
 *   connector COUNT HOST:PORT [HOST:PORT ...]
 * Connects COUNT times, cycling over the targets; each connect is timed from socket() to connect()'s
 * return (the SYN went through the node's rules, the SYN-ACK came back), then the socket is closed with
 * SO_LINGER 0 (an RST: no TIME_WAIT, so the run never runs out of ports). Prints "i ns" per connect
 * (i = target index; ns = -errno on failure) and, last, "#cpu user_us sys_us wall_us fails".
 * With CONNECTOR_READ=1 in the environment each connect also waits for the first byte the far end sends
 * (a userspace proxy accepts, connects to the backend and relays its banner: the whole path, not just the
 * kernel's handshake with the listening socket) and the time is taken when it arrives. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static long long now_ns(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec * 1000000000LL + t.tv_nsec;
}
static long long tv_us(struct timeval t) {
  return t.tv_sec * 1000000LL + t.tv_usec;
}

int main(int argc, char** argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: connector COUNT HOST:PORT...\n");
    return 2;
  }
  long count = atol(argv[1]);
  int nt = argc - 2;
  struct sockaddr_in* sa = calloc(nt, sizeof *sa);
  for (int i = 0; i < nt; i++) {
    char buf[64];
    snprintf(buf, sizeof buf, "%s", argv[i + 2]);
    char* c = strrchr(buf, ':');
    if (!c) return 2;
    *c = 0;
    sa[i].sin_family = AF_INET;
    sa[i].sin_port = htons(atoi(c + 1));
    if (inet_pton(AF_INET, buf, &sa[i].sin_addr) != 1) return 2;
  }
  static char out[1 << 16];
  setvbuf(stdout, out, _IOFBF, sizeof out);
  struct rusage r0, r1;
  getrusage(RUSAGE_SELF, &r0);
  long long w0 = now_ns();
  long fails = 0;
  struct linger lg = {1, 0};
  int readmode = getenv("CONNECTOR_READ") && atoi(getenv("CONNECTOR_READ")) > 0;
  for (long k = 0; k < count; k++) {
    int i = k % nt;
    long long t0 = now_ns();
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (readmode) {
      struct timeval tv = {3, 0};
      setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    }
    int rc = connect(fd, (struct sockaddr*)&sa[i], sizeof sa[i]);
    int e = errno;
    if (rc == 0 && readmode) {
      char b;
      ssize_t n = read(fd, &b, 1);
      if (n != 1) {
        rc = -1;
        e = n == 0 ? ECONNRESET : errno;
      }
    }
    long long t1 = now_ns();
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    close(fd);
    if (rc != 0) {
      fails++;
      printf("%d %d\n", i, -e);
    } else
      printf("%d %lld\n", i, t1 - t0);
  }
  long long w1 = now_ns();
  getrusage(RUSAGE_SELF, &r1);
  printf("#cpu %lld %lld %lld %ld\n", tv_us(r1.ru_utime) - tv_us(r0.ru_utime), tv_us(r1.ru_stime) - tv_us(r0.ru_stime),
         (w1 - w0) / 1000, fails);
  return 0;
}
