#!/bin/sh
# Prints 1 when libxdp's and libbpf's headers and libraries are installed (Debian: libxdp-dev, libbpf-dev), so
# the packet addon is built with AF_XDP (--packet-io xdp); 0 builds it without, and says so.
for h in xdp/xsk.h bpf/bpf.h bpf/libbpf.h linux/if_xdp.h; do
  [ -f "/usr/include/$h" ] || [ -f "/usr/local/include/$h" ] || { echo 0; exit 0; }
done
printf 'int main(void){return 0;}\n' | ${CC:-cc} -x c - -o /dev/null -lxdp -lbpf >/dev/null 2>&1 && echo 1 || echo 0
