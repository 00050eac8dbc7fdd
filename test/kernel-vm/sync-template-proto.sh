#!/bin/sh
# How the kernel's backup takes synced templates whose protocol is not TCP, UDP or SCTP, and how
# /proc/net/ip_vs_conn (what `ipvsadm -Lnc` prints) names them. Recorded into
# test/fixtures/kernel/sync-template-proto.txt (test/sync-codec.test.ts compares the core's listing with it):
#   IPVSVM_SHARE=$PWD ../shared/ipvs-vm/ipvs-vm.sh "cd $PWD && sh test/kernel-vm/sync-template-proto.sh" \
#     > test/fixtures/kernel/sync-template-proto.txt
set -e
ip link add sync0 type dummy
ip addr add 10.77.0.1/24 dev sync0
ip link set sync0 up multicast on
ip route add 224.0.0.0/4 dev sync0
ipvsadm -A -f 1 -s rr -p 120
ipvsadm -a -f 1 -r 10.8.0.2:0 -m
ipvsadm --start-daemon backup --mcast-interface sync0 --syncid 0
sleep 1
node test/kernel-vm/sync-template-proto.cjs
sleep 2
echo "# uname -r: $(uname -r)"
ipvsadm -Lnc
