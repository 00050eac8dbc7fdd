#!/bin/sh
# How long a local client waits for IPVS's refusal when a service has no usable destination, per family
# (test/kernel/README.md). Runs inside the kernel VM:
#   ../shared/ipvs-vm/ipvs-vm.sh "$(cat test/kernel/no-dest-refusal.sh)"
set -e
ip link add d0 type dummy
ip link set d0 up
ip addr add 10.9.0.1/32 dev d0
ip -6 addr add fd00::9/128 dev d0 nodad
ipvsadm -A -t 10.9.0.1:80 -s rr
ipvsadm -A -t '[fd00::9]:80' -s rr
ipvsadm -a -t 10.9.0.1:80 -r 10.9.0.2:80 -m -w 0
ipvsadm -a -t '[fd00::9]:80' -r '[fd00::2]:80' -m -w 0
node -e '
const net = require("net");
const one = (host) => new Promise((r) => {
  const t = Date.now(), s = net.connect({ host, port: 80 });
  s.on("error", (e) => r(`${e.code} after ${Date.now() - t} ms`));
  s.on("connect", () => { s.destroy(); r("connected"); });
});
(async () => { for (const h of ["10.9.0.1", "fd00::9", "10.9.0.1", "fd00::9"]) console.log(h, await one(h)); })();
'
grep -E "Icmp6OutDestUnreachs|Icmp6InDestUnreachs" /proc/net/snmp6
awk '/^TcpExt/ { if (!h) { split($0, k); h = 1 } else for (i = 2; i <= NF; i++) if (k[i] == "TCPSynRetrans") print k[i], $i }' /proc/net/netstat
