#!/bin/bash
# Runs inside the kernel VM (test/kernel-vm/sync-capture.ts starts it): a director (the VM's own namespace)
# with IPVS services of every kind the sync protocol carries, its sync daemon as master, clients, real
# servers and a listener joined to the sync group in namespaces. Prints the datagrams the master sent and
# what `ipvsadm -Lnc` and /proc/net/ip_vs_conn showed, between @@ markers.
set -e
here=$(cd "$(dirname "$0")" && pwd)
peers="$here/sync-peers.cjs"
work=$(mktemp -d)
modprobe ipip 2>/dev/null || true
sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1 net.ipv4.conf.all.rp_filter=0 \
  net.ipv4.conf.default.rp_filter=0
for ns in cl rs rs2 bk; do ip netns add $ns; ip -n $ns link set lo up; done
ip link add d-cl type veth peer name cl0 netns cl
ip link add d-rs type veth peer name rs0 netns rs
ip link add d-rs2 type veth peer name rs2a netns rs2
ip link add d-bk type veth peer name bk0 netns bk
# DR and tunnel answers go straight from rs2 to the client, on a link of their own
ip -n cl link add cl1 type veth peer name rs2b netns rs2
ip addr add 10.9.0.1/24 dev d-cl
ip -6 addr add fd09::1/64 dev d-cl nodad
ip addr add 10.8.0.1/24 dev d-rs
ip -6 addr add fd08::1/64 dev d-rs nodad
ip addr add 10.8.1.1/24 dev d-rs2
ip addr add 10.7.0.1/24 dev d-bk
for l in d-cl d-rs d-rs2 d-bk; do ip link set $l up; done
ip link add vip type dummy
ip link set vip up
ip addr add 10.0.0.1/32 dev vip
ip -6 addr add fd00::1/128 dev vip nodad
ip -n cl addr add 10.9.0.2/24 dev cl0
ip -n cl -6 addr add fd09::2/64 dev cl0 nodad
ip -n cl link set cl0 up
ip -n cl link set cl1 up
ip -n cl route add default via 10.9.0.1
ip -n cl -6 route add default via fd09::1
ip netns exec cl sysctl -qw net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.cl1.rp_filter=0 \
  net.ipv4.conf.cl0.rp_filter=0
ip -n rs addr add 10.8.0.2/24 dev rs0
ip -n rs addr add 10.8.0.3/24 dev rs0
ip -n rs -6 addr add fd08::2/64 dev rs0 nodad
ip -n rs link set rs0 up
ip -n rs route add default via 10.8.0.1
ip -n rs -6 route add default via fd08::1
ip -n rs2 addr add 10.8.1.2/24 dev rs2a
ip -n rs2 addr add 10.0.0.1/32 dev lo
ip -n rs2 link set rs2a up
ip -n rs2 link set rs2b up
ip -n rs2 route add 10.9.0.0/24 dev rs2b
ip -n rs2 link set tunl0 up 2>/dev/null || true
ip netns exec rs2 sysctl -qw net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0 \
  net.ipv4.conf.all.arp_ignore=1 net.ipv4.conf.all.arp_announce=2
ip netns exec rs2 sysctl -qw net.ipv4.conf.tunl0.rp_filter=0 2>/dev/null || true
ip -n bk addr add 10.7.0.2/24 dev bk0
ip -n bk link set bk0 up
ip -n bk route add 224.0.0.0/4 dev bk0

start() { # name, ns, args...: a peer in the background, waited for until it says "ready"
  local name=$1 ns=$2
  shift 2
  ip netns exec "$ns" node "$peers" "$@" >"$work/$name.out" 2>"$work/$name.err" &
  for _ in $(seq 1 300); do grep -q ready "$work/$name.out" 2>/dev/null && return 0; sleep 0.1; done
  echo "$name never became ready: $(cat "$work/$name.err")" >&2
  return 1
}
start rs rs server 10.8.0.2:8080 10.8.0.3:8080 10.8.0.2:8081 [fd08::2]:8080 10.8.0.2:8084 10.8.0.2:84 \
  udp:10.8.0.2:5353
start rs2 rs2 server 0.0.0.0:82 0.0.0.0:83
start listen bk listen 224.0.0.81 8848 10.7.0.2 "$work/dgrams.jsonl"

iptables -t mangle -A PREROUTING -d 10.0.0.1 -p tcp --dport 84 -j MARK --set-mark 1
ipvsadm -A -t 10.0.0.1:80 -s rr
ipvsadm -a -t 10.0.0.1:80 -r 10.8.0.2:8080 -m
ipvsadm -a -t 10.0.0.1:80 -r 10.8.0.3:8080 -m
ipvsadm -A -t 10.0.0.1:81 -s rr -p 300
ipvsadm -a -t 10.0.0.1:81 -r 10.8.0.2:8081 -m
ipvsadm -A -u 10.0.0.1:53 -s rr
ipvsadm -a -u 10.0.0.1:53 -r 10.8.0.2:5353 -m
ipvsadm -A -t [fd00::1]:80 -s rr
ipvsadm -a -t [fd00::1]:80 -r [fd08::2]:8080 -m
ipvsadm -A -f 1 -s rr -p 120
ipvsadm -a -f 1 -r 10.8.0.2:8084 -m
ipvsadm -A -t 10.0.0.1:82 -s rr
ipvsadm -a -t 10.0.0.1:82 -r 10.8.1.2:82 -g
ipvsadm -A -t 10.0.0.1:83 -s rr
ipvsadm -a -t 10.0.0.1:83 -r 10.8.1.2:83 -i
ipvsadm --start-daemon master --mcast-interface d-bk --syncid 7
sleep 1

cat >"$work/plan1.json" <<'PLAN'
[
  {"vip": "10.0.0.1", "port": 80, "proto": "tcp", "lport": 41001, "how": "hold"},
  {"vip": "10.0.0.1", "port": 80, "proto": "tcp", "lport": 41002, "how": "hold"},
  {"vip": "10.0.0.1", "port": 80, "proto": "tcp", "lport": 41003, "how": "half"},
  {"vip": "10.0.0.1", "port": 80, "proto": "tcp", "lport": 41004, "how": "srvclose"},
  {"vip": "10.0.0.1", "port": 80, "proto": "tcp", "lport": 41005, "how": "both"},
  {"vip": "10.0.0.1", "port": 80, "proto": "tcp", "lport": 41006, "how": "reset"},
  {"vip": "10.0.0.1", "port": 81, "proto": "tcp", "lport": 41011, "how": "hold"},
  {"vip": "10.0.0.1", "port": 81, "proto": "tcp", "lport": 41012, "how": "hold"},
  {"vip": "10.0.0.1", "port": 53, "proto": "udp", "lport": 41021},
  {"vip": "fd00::1", "port": 80, "proto": "tcp", "lport": 41031, "how": "hold"},
  {"vip": "fd00::1", "port": 80, "proto": "tcp", "lport": 41032, "how": "both"},
  {"vip": "10.0.0.1", "port": 84, "proto": "tcp", "lport": 41041, "how": "hold"},
  {"vip": "10.0.0.1", "port": 82, "proto": "tcp", "lport": 41051, "how": "hold"},
  {"vip": "10.0.0.1", "port": 83, "proto": "tcp", "lport": 41061, "how": "hold"}
]
PLAN
ip netns exec cl node "$peers" client "$work/plan1.json" >"$work/client1.out" 2>"$work/client1.err" &
for _ in $(seq 1 600); do grep -q done "$work/client1.out" 2>/dev/null && break; sleep 0.1; done
sleep 3 # the master sends a part-filled message after 2 s
echo "@@LNC1"
ipvsadm -Lnc
echo "@@PROC1"
cat /proc/net/ip_vs_conn
echo "@@DGRAMS1"
cat "$work/dgrams.jsonl"
: >"$work/dgrams.jsonl"

# version 0, as a kernel with sync_version=0 sends it (IPv4 only)
sysctl -qw net.ipv4.vs.sync_version=0
cat >"$work/plan2.json" <<'PLAN'
[
  {"vip": "10.0.0.1", "port": 80, "proto": "tcp", "lport": 42001, "how": "hold"},
  {"vip": "10.0.0.1", "port": 81, "proto": "tcp", "lport": 42011, "how": "hold"}
]
PLAN
ip netns exec cl node "$peers" client "$work/plan2.json" >"$work/client2.out" 2>"$work/client2.err" &
for _ in $(seq 1 600); do grep -q done "$work/client2.out" 2>/dev/null && break; sleep 0.1; done
sleep 3
echo "@@LNC2"
ipvsadm -Lnc
echo "@@DGRAMS2"
cat "$work/dgrams.jsonl"
echo "@@ERR"
cat "$work"/*.err
echo "@@END"
