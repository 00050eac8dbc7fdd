"use strict";
// Runs INSIDE the ipvs-vm (started by test/ipvsadm-record.cjs): builds varied IPVS states with the real
// ipvsadm 1.31, drives some real traffic through them, and prints one line per capture:
//   @@FIX {"name":..., "setup":[...], "out":{...}}     (one state: every listing variant + the raw /proc state)
//   @@ERR {"argv":[...], "stdin":..., "stdout":..., "stderr":..., "status":N}   (error messages and exit codes)
// Nothing here is imported by the tests; the fixtures it produces are.
const { execFileSync, spawnSync, spawn } = require("node:child_process");
const fs = require("node:fs");

const sh = (cmd) => execFileSync("/bin/sh", ["-c", cmd], { encoding: "utf8" });
const trySh = (cmd) => spawnSync("/bin/sh", ["-c", cmd], { encoding: "utf8" });
const adm = (argv, input) => {
  const r = spawnSync("ipvsadm", argv, { encoding: "utf8", input: input ?? "" });
  return { stdout: r.stdout, stderr: r.stderr, status: r.status };
};
const log = (s) => process.stderr.write(s + "\n");
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// ---- the network: d0 (dummy) carries VIPs and unanswered destinations; netns srv answers 10.2.0.x ----
function net() {
  const cmds = [
    "ip link add d0 type dummy",
    "ip link set d0 mtu 65000",
    "ip link set d0 up",
    "ip addr add 10.1.0.254/24 dev d0",
    "ip route add 10.0.0.0/24 dev d0",
    "ip -6 addr add fd00:1::fe/64 dev d0 nodad",
    "ip -6 route add fd00:100::/64 dev d0",
    "ip netns add srv",
    "ip link add veth0 type veth peer name veth1 netns srv",
    "ip addr add 10.2.0.1/24 dev veth0",
    "ip -6 addr add fd00:2::1/64 dev veth0 nodad",
    "ip link set veth0 up",
    "ip netns exec srv ip link set lo up",
    "ip netns exec srv ip addr add 10.2.0.2/24 dev veth1",
    "ip netns exec srv ip addr add 10.2.0.3/24 dev veth1",
    "ip netns exec srv ip -6 addr add fd00:2::2/64 dev veth1 nodad",
    "ip netns exec srv ip link set veth1 up",
    "ip netns exec srv ip route add default via 10.2.0.1",
    "ip netns exec srv ip -6 route add default via fd00:2::1",
    "sysctl -qw net.ipv4.vs.conntrack=1 || true",
    // fwmark 7 for locally generated traffic to 10.0.0.77 (TCP or UDP)
    "iptables -t mangle -A OUTPUT -d 10.0.0.77 -j MARK --set-mark 7",
  ];
  for (const c of cmds) {
    const r = trySh(c);
    if (r.status !== 0) log(`net: ${c}: ${r.stderr.trim()}`);
  }
}

const SERVER = `
const net = require('net'), dgram = require('dgram');
for (const port of [8080, 80]) {
  net.createServer((s) => { s.on('data', (d) => s.write(d)); s.on('error', () => {}); s.on('end', () => s.end()); })
    .listen({ port, host: '::', ipv6Only: false });
  const u = dgram.createSocket({ type: 'udp6', ipv6Only: false });
  u.on('message', (m, r) => u.send(m, r.port, r.address)); u.bind(port === 80 ? 53 : 8053, '::');
}
setTimeout(() => process.stdout.write('ready\\n'), 300);
`;

// A client: opens TCP connections (each sends `bytes` and reads the echo; `hold` of them stay open), and
// sends UDP datagrams. Prints "done" when the transient part is over, then keeps held sockets open.
const CLIENT = `
const net = require('net'), dgram = require('dgram');
const spec = JSON.parse(process.argv[1]);
(async () => {
  for (const t of spec.tcp || []) {
    for (let i = 0; i < t.n; i++) {
      await new Promise((res) => {
        const s = net.connect({ host: t.host, port: t.port, localPort: t.lport ? t.lport + i : undefined });
        let got = 0; const want = t.bytes;
        s.on('connect', () => s.write(Buffer.alloc(want, 97)));
        s.on('data', (d) => { got += d.length; if (got >= want) { if (i >= (t.hold || 0)) s.end(); res(); } });
        s.on('error', () => res()); setTimeout(res, 3000);
      });
    }
  }
  for (const u of spec.udp || []) {
    const s = dgram.createSocket(u.host.includes(':') ? 'udp6' : 'udp4');
    await new Promise((r) => s.bind(u.lport || 0, r));
    const buf = Buffer.alloc(u.size, 98);
    for (let i = 0; i < u.n; i++) {
      await new Promise((r) => s.send(buf, u.port, u.host, r));
    }
    if (!u.keep) s.close();
  }
  process.stdout.write('done\\n');
  setTimeout(() => process.exit(0), spec.linger || 60000);
})();
`;

function startNode(prefix, code, args) {
  const p = spawn("/bin/sh", ["-c", `${prefix} node -e "$0" "$@"`, code, ...args], {
    stdio: ["ignore", "pipe", "inherit"],
  });
  return new Promise((resolve) => {
    let buf = "";
    p.stdout.on("data", (d) => {
      buf += d;
      if (/ready|done/.test(buf)) resolve(p);
    });
    setTimeout(() => resolve(p), 120000);
  });
}

// Read a listing twice around another, so time-varying values (rates, expiry) are consistent.
function stable(fn, tries = 20) {
  for (let k = 0; k < tries; k++) {
    const r = fn();
    if (r) return r;
  }
  throw new Error("no stable capture");
}

function capture(opts = {}) {
  const out = {};
  const L = (...a) => adm(a).stdout;
  out.Sn = L("-Sn");
  out.S = L("-S");
  out.Ln = L("-Ln");
  out.L = L("-L");
  out.Ln_nosort = L("-Ln", "--nosort");
  out.Ln_sort = L("-Ln", "--sort");
  out.Ln_thresholds = L("-Ln", "--thresholds");
  out.Ln_persistent_conn = L("-Ln", "--persistent-conn");
  out.Ln_tun_info = L("-Ln", "--tun-info");
  out.Ln_stats = L("-Ln", "--stats");
  out.Ln_stats_exact = L("-Ln", "--stats", "--exact");
  out.Ln_stats_nosort = L("-Ln", "--stats", "--nosort");
  out.proc_ip_vs = fs.readFileSync("/proc/net/ip_vs", "utf8");
  out.proc_ip_vs_stats = fs.readFileSync("/proc/net/ip_vs_stats", "utf8");
  // rates move every 2 s: take exact, abbreviated, exact again until both exact ones agree
  const r = stable(() => {
    const a = L("-Ln", "--rate", "--exact"),
      b = L("-Ln", "--rate"),
      c = L("-Ln", "--rate", "--exact");
    return a === c ? { a, b } : null;
  });
  out.Ln_rate_exact = r.a;
  out.Ln_rate = r.b;
  // connection expiry moves every second
  const c = stable(() => {
    const a = fs.readFileSync("/proc/net/ip_vs_conn", "utf8"),
      b = L("-Lnc"),
      d = fs.readFileSync("/proc/net/ip_vs_conn", "utf8");
    return a === d ? { a, b } : null;
  });
  out.proc_ip_vs_conn = c.a;
  out.Lnc = c.b;
  out.L_timeout = L("-L", "--timeout");
  if (opts.one) {
    out.Ln_one = {};
    for (const svc of opts.one) out.Ln_one[svc.join(" ")] = L("-Ln", ...svc);
  }
  return out;
}

let failed = [];
function apply(lines) {
  for (const l of lines) {
    const argv = l.split(/\s+/).filter(Boolean);
    const r = adm(argv);
    if (r.status !== 0) {
      log(`SETUP FAILED: ipvsadm ${l}: ${r.stderr.trim()}`);
      failed.push(l);
    }
  }
}

// ---- the states -------------------------------------------------------------------------------------
const ALL_SCHEDS = ["rr", "wrr", "lc", "wlc", "lblc", "lblcr", "dh", "sh", "sed", "nq", "mh", "fo", "ovf"];

const scenarios = [
  {
    name: "reference-example",
    setup: [
      "-A -t 10.96.0.1:443 -s rr",
      "-a -t 10.96.0.1:443 -r 172.18.0.2:6443 -m -w 1",
      "-A -t 10.96.0.10:53 -s rr -p 10800",
      "-a -t 10.96.0.10:53 -r 10.244.0.2:53 -m -w 1",
      "-a -t 10.96.0.10:53 -r 10.244.0.3:53 -m -w 0",
      "-A -u 10.96.0.10:53 -s rr",
      "-a -u 10.96.0.10:53 -r 10.244.0.2:53 -m -w 1",
    ],
    one: [
      ["-t", "10.96.0.10:53"],
      ["-u", "10.96.0.10:53"],
    ],
  },
  {
    name: "every-scheduler-and-method",
    setup: ALL_SCHEDS.flatMap((s, i) => [
      `-A -t 10.0.1.${i + 1}:${8000 + i} -s ${s}`,
      `-a -t 10.0.1.${i + 1}:${8000 + i} -r 10.1.1.${i + 1}:80 -m -w ${i}`,
      `-a -t 10.0.1.${i + 1}:${8000 + i} -r 10.1.2.${i + 1} -g -w ${65535 - i}`,
      `-a -t 10.0.1.${i + 1}:${8000 + i} -r 10.1.3.${i + 1} -i`,
    ]).concat(["-A -t 10.0.1.99:80", "-a -t 10.0.1.99:80 -r 10.1.9.9"]),
  },
  {
    name: "flags-persistence-ops-pe",
    setup: [
      "-A -t 10.0.2.1:80 -s sh -b sh-fallback",
      "-a -t 10.0.2.1:80 -r 10.1.0.1:80 -m",
      "-A -t 10.0.2.2:80 -s sh -b sh-port",
      "-A -t 10.0.2.3:80 -s sh -b sh-port,sh-fallback",
      "-A -t 10.0.2.4:80 -s mh -b mh-fallback,mh-port",
      "-a -t 10.0.2.4:80 -r 10.1.0.2:8080 -m -w 3",
      "-A -t 10.0.2.5:80 -s mh -b mh-port",
      "-A -t 10.0.2.6:80 -s rr -b flag-1,flag-2,flag-3",
      "-A -t 10.0.2.7:80 -s wlc -b flag-2",
      "-A -t 10.0.2.8:80 -s rr -p",
      "-A -t 10.0.2.9:0 -s rr -p 300 -M 255.255.255.0",
      "-a -t 10.0.2.9:0 -r 10.1.0.3:0 -m",
      "-a -t 10.0.2.9:0 -r 10.1.0.4 -g",
      "-A -t 10.0.2.10:80 -s sh -b sh-port -p 60 -M 255.255.0.0",
      "-A -u 10.0.2.11:53 -s rr -o",
      "-A -u 10.0.2.12:5060 -s rr -p 120 --pe sip",
      "-A -u 10.0.2.13:5060 -s rr -p 120 -M 255.0.0.0 --pe sip -o",
      "-A -f 1 -s rr -o",
      "-a -f 1 -r 10.1.0.5:0 -m",
      "-a -f 1 -r 10.1.0.6:80 -g -w 2",
      "-A -f 2 -s wrr -p 900",
      "-A -f 3 -6 -s mh -b mh-fallback -p 30 -M 64",
      "-a -f 3 -6 -r [fd00::5]:443 -m -w 7",
      "-A -f 4294967295 -s lc",
      "-A -f 4 -6 -s rr",
      "-A -f 5 -6 -s rr -p 10 -M 128",
      "-A --sctp-service 10.0.2.20:3868 -s rr",
      "-a --sctp-service 10.0.2.20:3868 -r 10.1.0.7:3869 -m",
      "-A --sctp-service [fd00::20]:3868 -s wrr -p 30",
      "-a --sctp-service [fd00::20]:3868 -r [fd00::21]:3868 -m",
    ],
  },
  {
    name: "ipv6-and-tunnels",
    setup: [
      "-A -t [fd00:100::1]:443 -s wrr",
      "-a -t [fd00:100::1]:443 -r [fd00:200::1]:8443 -m -w 5",
      "-a -t [fd00:100::1]:443 -r [2001:db8:aaaa:bbbb:cccc:dddd:eeee:ffff]:65535 -m -w 0",
      "-a -t [fd00:100::1]:443 -r [fd00:200::3]:443 -g",
      "-A -u [2001:db8:1234:5678:9abc:def0:1234:5678]:65535 -s rr -p 3600 -M 48",
      "-a -u [2001:db8:1234:5678:9abc:def0:1234:5678]:65535 -r [64:ff9b::a00:1]:53 -m",
      "-A -t [::1]:80 -s rr",
      "-A -t [::]:80 -s rr -p",
      "-A -t 10.0.3.1:80 -s rr",
      "-a -t 10.0.3.1:80 -r 10.1.3.1 -i",
      "-a -t 10.0.3.1:80 -r 10.1.3.2 -i --tun-type ipip -w 2",
      "-a -t 10.0.3.1:80 -r 10.1.3.3 -i --tun-type gue --tun-port 6080",
      "-a -t 10.0.3.1:80 -r 10.1.3.4 -i --tun-type gue --tun-port 6081 --tun-csum",
      "-a -t 10.0.3.1:80 -r 10.1.3.5 -i --tun-type gue --tun-port 65535 --tun-remcsum",
      "-a -t 10.0.3.1:80 -r 10.1.3.6 -i --tun-type gue --tun-port 1 --tun-nocsum",
      "-a -t 10.0.3.1:80 -r 10.1.3.7 -i --tun-type gre",
      "-a -t 10.0.3.1:80 -r 10.1.3.8 -i --tun-type gre --tun-csum",
      "-a -t 10.0.3.1:80 -r 10.1.3.9 -i --tun-type gre --tun-nocsum",
      "-a -t 10.0.3.1:80 -r [fd00:300::1]:80 -i",
      "-a -t 10.0.3.1:80 -r [fd00:300::2]:80 -i --tun-type gue --tun-port 5555 --tun-csum",
      "-A -t [fd00:100::3]:80 -s rr",
      "-a -t [fd00:100::3]:80 -r 10.1.3.10 -i --tun-type gre --tun-csum",
      "-a -t [fd00:100::3]:80 -r [fd00:300::3]:80 -i --tun-type ipip",
    ],
  },
  {
    name: "thresholds-weights",
    setup: [
      "-A -t 10.0.4.1:80 -s wlc",
      "-a -t 10.0.4.1:80 -r 10.1.4.1:80 -m -x 100 -y 50",
      "-a -t 10.0.4.1:80 -r 10.1.4.2:80 -m -w 0 -x 2147483647 -y 0",
      "-a -t 10.0.4.1:80 -r 10.1.4.3:80 -m -w 65535 -x 0 -y 0",
      "-a -t 10.0.4.1:80 -r 10.1.4.4:80 -m -w 12345 -x 10 -y 10",
      "-e -t 10.0.4.1:80 -r 10.1.4.4:80 -m -w 54321 -x 20 -y 5",
      "-E -t 10.0.4.1:80 -s lc -p 100",
      "-A -u 10.0.4.2:53",
      "-a -u 10.0.4.2:53 -r 10.1.4.5 -x 3",
      "-a -u 10.0.4.2:53 -r 10.1.4.6 -x 5 -y 3",
      "-e -u 10.0.4.2:53 -r 10.1.4.6 -w 0",
      "-A -t 10.0.4.3:80",
      "-a -t 10.0.4.3:80 -r 10.1.4.7:80 -m",
      "-a -t 10.0.4.3:80 -r 10.1.4.8:80 -m",
      "-d -t 10.0.4.3:80 -r 10.1.4.7:80",
    ],
  },
  {
    name: "sorting-wraparound",
    // addresses and ports across the int32 wrap, fwmarks across it, IPv6 words across it; many dests
    setup: (() => {
      const v4 = [
        "1.0.0.1",
        "200.0.0.1",
        "127.0.0.1",
        "128.0.0.1",
        "10.0.0.1",
        "255.255.255.254",
        "0.0.0.1",
        "100.0.0.1",
        "127.255.255.255",
        "129.0.0.0",
        "64.0.0.0",
        "192.168.1.1",
        "8.8.8.8",
        "172.16.0.1",
      ];
      const lines = [];
      v4.forEach((a, i) => {
        lines.push(`-A -t ${a}:${[80, 1, 65535, 443, 8080][i % 5]} -s rr`);
      });
      lines.push(
        "-A -t 1.0.0.1:65535 -s rr",
        "-A -t 1.0.0.1:1 -s rr",
        "-A -u 1.0.0.1:80 -s rr",
        "-A -u 200.0.0.1:80 -s rr",
      );
      lines.push("-A --sctp-service 1.0.0.1:80 -s rr");
      for (const m of [1, 2, 2147483647, 2147483648, 2147483649, 4294967295, 3000000000, 100])
        lines.push(`-A -f ${m} -s rr`);
      lines.push("-A -f 2147483648 -6 -s rr", "-A -f 5 -6 -s rr");
      for (const a of [
        "fd00::1",
        "2001:db8::1",
        "::1",
        "ffff::1",
        "7fff::1",
        "8000::1",
        "fd00::1:0:0:1",
        "fd00:0:0:0:8000::1",
      ])
        lines.push(`-A -t [${a}]:80 -s rr`);
      const svc = "-t 10.0.0.1:8080";
      const dests = [
        "1.0.0.1",
        "200.0.0.1",
        "127.0.0.1",
        "128.0.0.1",
        "10.0.0.2",
        "255.255.255.254",
        "0.0.0.1",
        "100.0.0.1",
        "129.0.0.0",
        "64.0.0.0",
        "192.168.1.1",
        "8.8.8.8",
        "172.16.0.1",
        "10.0.0.3",
        "150.0.0.1",
        "50.0.0.1",
        "230.0.0.1",
      ];
      dests.forEach((d, i) => lines.push(`-a ${svc} -r ${d}:${[80, 1, 65535, 8080][i % 4]} -m -w ${i}`));
      lines.push(`-a ${svc} -r 200.0.0.1:65535 -m`, `-a ${svc} -r 200.0.0.1:2 -m`);
      const svc6 = "-t [fd00::1]:80";
      for (const d of [
        "fd00::2",
        "::2",
        "ffff::2",
        "7fff::2",
        "8000::2",
        "8000::1:2",
        "fd00:0:0:0:8000::2",
        "fd00::8000:0:0:2",
      ])
        lines.push(`-a ${svc6} -r [${d}]:80 -m`);
      return lines;
    })(),
  },
  {
    name: "sorting-random-many",
    setup: (() => {
      // deterministic pseudo-random addresses: many services and dests, non-transitive comparator territory
      let x = 12345;
      const rnd = () => (x = (x * 1103515245 + 12345) >>> 0) >>> 8;
      const lines = [];
      const seen = new Set();
      for (let i = 0; i < 45; i++) {
        const a = `${rnd() & 255}.${rnd() & 255}.${rnd() & 255}.${(rnd() % 254) + 1}`;
        const p = rnd() % 3 === 0 ? 80 : rnd() & 65535 || 1;
        const k = `${a}:${p}`;
        if (seen.has(k)) continue;
        seen.add(k);
        lines.push(`-A -${i % 4 === 3 ? "u" : "t"} ${k} -s rr`);
        if (i === 0) {
          for (let j = 0; j < 40; j++)
            lines.push(
              `-a -t ${k} -r ${rnd() & 255}.${rnd() & 255}.${rnd() & 255}.${(rnd() % 254) + 1}:${rnd() & 65535} -m`,
            );
        }
      }
      return lines;
    })(),
  },
  {
    name: "traffic",
    setup: [
      "-A -t 10.0.0.100:80 -s rr",
      "-a -t 10.0.0.100:80 -r 10.2.0.2:8080 -m -w 2",
      "-a -t 10.0.0.100:80 -r 10.2.0.3:8080 -m -w 1",
      "-A -t 10.0.0.101:80 -s wlc -p 300",
      "-a -t 10.0.0.101:80 -r 10.2.0.2:8080 -m",
      "-a -t 10.0.0.101:80 -r 10.2.0.3:8080 -m",
      "-A -u 10.0.0.102:53 -s rr",
      "-a -u 10.0.0.102:53 -r 10.2.0.2:53 -m",
      "-a -u 10.0.0.102:53 -r 10.2.0.3:53 -m",
      "-A -f 7 -s rr -p 200",
      "-a -f 7 -r 10.2.0.2:8080 -m",
      "-a -f 7 -r 10.2.0.3:8080 -m -w 0",
      "-A -t [fd00:100::100]:80 -s rr",
      "-a -t [fd00:100::100]:80 -r [fd00:2::2]:8080 -m",
      "-A -t 10.0.0.103:80 -s rr",
      "-a -t 10.0.0.103:80 -r 10.1.0.9:80 -m",
      "--set 1000 100 200",
    ],
    traffic: {
      server: true,
      client: {
        tcp: [
          { host: "10.0.0.100", port: 80, n: 9, bytes: 3000, hold: 3 },
          { host: "10.0.0.101", port: 80, n: 4, bytes: 200, hold: 1 },
          { host: "10.0.0.77", port: 8080, n: 3, bytes: 100, hold: 1 },
          { host: "fd00:100::100", port: 80, n: 2, bytes: 5000, hold: 1 },
          { host: "10.0.0.103", port: 80, n: 2, bytes: 10 }, // never answered: SYN_RECV
        ],
        udp: [
          { host: "10.0.0.102", port: 53, n: 5, size: 100, lport: 40000, keep: true },
          { host: "10.0.0.102", port: 53, n: 1, size: 1000, lport: 40001, keep: true },
        ],
      },
    },
  },
  {
    name: "big-counters",
    setup: [
      "-A -u 10.0.0.110:9 -s rr",
      "-a -u 10.0.0.110:9 -r 10.1.0.20:9 -m",
      "-a -u 10.0.0.110:9 -r 10.1.0.21:9 -g",
      "-A -u 10.0.0.111:9 -s rr",
      "-a -u 10.0.0.111:9 -r 10.1.0.22:9 -m",
    ],
    traffic: {
      client: {
        udp: [
          { host: "10.0.0.110", port: 9, n: 9000, size: 60000, lport: 41000 },
          { host: "10.0.0.110", port: 9, n: 9000, size: 60000, lport: 41001 },
          { host: "10.0.0.111", port: 9, n: 2000, size: 60000, lport: 41002 },
        ],
      },
      nowait: true,
    },
  },
];

// ---- error messages: bad command lines against a known state ------------------------------------------
const ERR_BASE = ["-A -t 10.0.0.1:80 -s rr", "-a -t 10.0.0.1:80 -r 10.1.0.1 -m"];
const S = ["-t", "10.0.0.1:80"];
const errCases = [
  [],
  ["-A", "-t", "10.0.0.1:80", "-s", "foo"],
  ["-A", "-t", "10.0.0.1"],
  ["-E", "-t", "10.0.0.1"],
  ["-A", "-t", "10.0.0.2:80", "-o"],
  ["-A", "-t", "10.0.0.1:99999"],
  ["-A", "-t", "10.0.0.1:-1"],
  ["-A", "-t", "999.0.0.1:80"],
  ["-A", "-t", ":80"],
  ["-A", "-t", "80"],
  ["-A", "-t", "[fd00::1"],
  ["-A", "-t", "[fd00::1]80"],
  ["-A", "-t", "fd00::1"],
  ["-A", "-t", "10.0.0.1:80"],
  ["-A", "-t", "10.0.0.3:80", "-s", "sh", "-b", "foo"],
  ["-A", "-t", "10.0.0.3:80", "-b", "sh-port"],
  ["-A", "-t", "10.0.0.3:80", "-s", "mh", "-b", "mh-port,sh-port"],
  ["-A", "-t", "10.0.0.3:80", "-b", ""],
  ["-A", "-t", "10.0.0.3:80", "-p", "abc"],
  ["-A", "-t", "10.0.0.3:80", "-p", "0"],
  ["-A", "-t", "10.0.0.3:80", "-p", "2678401"],
  ["-A", "-t", "10.0.0.3:80", "-M", "bad"],
  ["-A", "-t", "10.0.0.3:80", "-M", "24"],
  ["-A", "-f", "0"],
  ["-A", "-f", "x"],
  ["-A", "-f", "4294967296"],
  ["-A", "-f", "1", "-6", "-M", "129"],
  ["-A", "-f", "1", "-6", "-M", "0"],
  ["-A", "-6", "-f", "1"],
  ["-A", "-t", "10.0.0.3:80", "--pe", "foo", "-p"],
  ["-A", "-t", "10.0.0.3:80", "-r", "10.1.0.1"],
  ["-A", "-t", "10.0.0.3:80", "-u", "10.0.0.3:80"],
  ["-A", "-E"],
  ["-A", "-t", "10.0.0.3:80", "-s", "rr", "-s", "wrr"],
  ["-a", ...S],
  ["-a", ...S, "-r", "10.1.0.2", "-w", "70000"],
  ["-a", ...S, "-r", "10.1.0.2", "-w", "-1"],
  ["-a", ...S, "-r", "10.1.0.2", "-w", "1x"],
  ["-a", ...S, "-r", "10.1.0.2", "-x", "abc"],
  ["-a", ...S, "-r", "10.1.0.2", "-y", "-5"],
  ["-a", ...S, "-r", "10.1.0.2", "-x", "2147483648"],
  ["-a", ...S, "-r", "10.1.0.2", "-x", "5", "-y", "10"],
  ["-a", ...S, "-r", "bogus"],
  ["-a", ...S, "-r", "10.1.0.2:70000"],
  ["-a", ...S, "-r", "10.1.0.2", "--tun-type", "ipip"],
  ["-a", ...S, "-r", "10.1.0.2", "-i", "--tun-type", "gue"],
  ["-a", ...S, "-r", "10.1.0.2", "-i", "--tun-type", "ipip", "--tun-port", "5"],
  ["-a", ...S, "-r", "10.1.0.2", "-i", "--tun-type", "gue", "--tun-port", "5", "--tun-csum", "--tun-nocsum"],
  ["-a", ...S, "-r", "10.1.0.2", "-i", "--tun-type", "gre", "--tun-remcsum"],
  ["-a", ...S, "-r", "10.1.0.2", "-i", "--tun-type", "foo"],
  ["-a", ...S, "-r", "10.1.0.2", "-i", "--tun-type", "gue", "--tun-port", "0"],
  ["-a", ...S, "-r", "10.1.0.2", "-i", "--tun-csum"],
  ["-a", ...S, "-r", "[fd00::1]:80", "-m"],
  ["-a", ...S, "-r", "10.1.0.2", "-m", "-g"],
  ["-a", ...S, "-r", "10.1.0.1", "-m"],
  ["-a", "-t", "10.9.9.9:80", "-r", "10.1.0.1"],
  ["-d", ...S, "-r", "10.1.0.99"],
  ["-e", ...S, "-r", "10.1.0.99"],
  ["-d", ...S],
  ["-d", ...S, "-r", "10.1.0.1", "-w", "3"],
  ["-D", "-t", "10.9.9.9:80"],
  ["-D"],
  ["-E", "-t", "10.9.9.9:80"],
  ["-Z", "-t", "10.9.9.9:80"],
  ["-L", "-t", "10.9.9.9:80"],
  ["-Ln", "-t", "10.9.9.9:80"],
  ["-L", "-c", "--stats"],
  ["-L", "-c", "--timeout"],
  ["-L", "--timeout", "--persistent-conn"],
  ["-L", "--foo"],
  ["-X"],
  ["-n"],
  ["-A", "-t"],
  ["--set", "1", "2"],
  ["--set", "1", "2", "x"],
  ["--set", "1", "2", "3", "4"],
  ["-L", "extra"],
  ["-C", "-n"],
  ["-S", "--stats"],
  ["-S", "-t", "10.0.0.1:80"],
  ["-Z", "-n"],
  ["-Lnc", "--rate"],
  ["-L", "--stats", "--rate"],
  ["-R", "-n"],
  ["--tcp-service", "10.0.0.1:80"],
  ["-t", "10.0.0.1:80", "-A"],
  ["-At", "10.0.0.4:80"],
  ["-A", "-t10.0.0.5:80"],
  ["-A", "--tcp-service=10.0.0.6:80", "--scheduler=rr"],
  ["-A", "--tcp-service", "10.0.0.7:80", "-p", "-s", "rr"],
  ["-A", "-t", "10.0.0.8:80", "-p30"],
  ["-a", ...S, "-r", "10.1.0.3", "-w0"],
  ["-a", ...S, "-r10.1.0.4", "-mw", "5"],
  ["-L", "--exact"],
  ["-v"],
  ["--version"],
];
const restoreCases = [
  "-A -t 10.0.0.20:80 -s rr\n-a -t 10.0.0.20:80 -r 10.1.0.1:80 -m -w 3\n",
  "ipvsadm -A -t 10.0.0.21:80\n\n  \t-a -t 10.0.0.21:80   -r 10.1.0.2\n# comment?\n-A -t 10.0.0.22:80 -s " +
    "bogus\n-A -t 10.0.0.23:80\n",
  "-A -t 10.0.0.24:80\n-a -t 10.0.0.24:80 -r 10.1.0.2 -w 99999\n-A -t 10.0.0.25:80\n",
  "-A -t 10.0.0.1:80\n",
  "-L -n\n",
];

(async () => {
  net();
  log("kernel " + sh("uname -r").trim() + ", " + adm(["--version"]).stdout.trim());
  const only = process.argv[2] ? new RegExp(process.argv[2]) : null;
  for (const sc of scenarios) {
    if (only && !only.test(sc.name)) continue;
    const t0 = Date.now();
    adm(["-C"]);
    adm(["--set", "900", "120", "300"]);
    apply(sc.setup);
    const procs = [];
    if (sc.traffic) {
      if (sc.traffic.server) procs.push(await startNode("ip netns exec srv", SERVER, []));
      procs.push(await startNode("", CLIENT, [JSON.stringify({ ...sc.traffic.client, linger: 600000 })]));
      await sleep(sc.traffic.nowait ? 2500 : 4500); // let the rate estimator (2 s period) see traffic
    }
    const out = capture({ one: sc.one });
    for (const p of procs) p.kill("SIGKILL");
    process.stdout.write(
      "@@FIX " + JSON.stringify({ name: sc.name, setup: sc.setup, setupFailed: failed, out }) + "\n",
    );
    failed = [];
    log(`${sc.name}: ${Date.now() - t0} ms`);
    trySh("ip netns exec srv pkill -9 node; true");
  }
  process.stdout.write(
    "@@ETC " +
      JSON.stringify({
        services: fs.readFileSync("/etc/services", "utf8"),
        hosts: fs.existsSync("/etc/hosts") ? fs.readFileSync("/etc/hosts", "utf8") : "",
      }) +
      "\n",
  );
  if (!only || only.test("errors")) {
    for (const argv of errCases) {
      adm(["-C"]);
      apply(ERR_BASE);
      const r = adm(argv);
      const after = adm(["-Sn"]).stdout;
      process.stdout.write("@@ERR " + JSON.stringify({ argv, ...r, after }) + "\n");
    }
    for (const input of restoreCases) {
      adm(["-C"]);
      apply(ERR_BASE);
      const r = adm(["-R"], input);
      const after = adm(["-Sn"]).stdout;
      process.stdout.write("@@ERR " + JSON.stringify({ argv: ["-R"], stdin: input, ...r, after }) + "\n");
    }
    const h = adm(["-h"]);
    process.stdout.write("@@ERR " + JSON.stringify({ argv: ["-h"], ...h }) + "\n");
    log("errors done");
  }
})().catch((e) => {
  log(e.stack);
  process.exit(1);
});
