// Inside the VM (root, Linux 6.1 with IPVS): the netlink client against the real kernel and the real
// ipvsadm 1.31. Prints "@@RESULT {checks: [{name, ok, want?, got?}]}" for test/kernel-netlink.test.ts.
import { spawnSync } from "node:child_process";
import net from "node:net";
import dgram from "node:dgram";
import { existsSync } from "node:fs";
import type { VirtualService, RealServer } from "../../src/model/types.ts";
import { IpvsClient, IpvsError } from "../../src/kernel/client.ts";
import { KernelTarget } from "../../src/kernel/target.ts";
import { serviceDiff, realServerDiff, canonServiceKey, canonRealServerKey } from "../../src/kernel/reconcile.ts";
import { sameDests, decodeDests } from "../../src/kernel/table.ts";
import { addServiceArgs, addDestArgs, ipvsadm, sh, result } from "./rules.ts";
import { masqServer } from "../helpers/real-server.ts";

const checks: { name: string; ok: boolean; want?: unknown; got?: unknown }[] = [];
const check = (name: string, ok: boolean, want?: unknown, got?: unknown) =>
  checks.push(ok ? { name, ok } : { name, ok, want, got });
const big = (_k: string, v: unknown) => (typeof v === "bigint" ? `${v}n` : v);
const eq = (name: string, got: unknown, want: unknown) =>
  check(name, JSON.stringify(got, big) === JSON.stringify(want, big), want, got);

const rs = masqServer;

// One rule set touching every attribute: protocols, IPv6, fwmark (both families), persistence with
// netmasks, every scheduler the kernel has with its flags, one-packet, tunnels, thresholds, weights.
const RULES: VirtualService[] = [
  {
    protocol: "tcp",
    addr: "10.0.0.1",
    port: 80,
    scheduler: "rr",
    flags: [],
    realServers: [
      rs("10.1.0.1", 8080, { weight: 3 }),
      rs("10.1.0.2", 8080, { weight: 0, upperThreshold: 100, lowerThreshold: 10 }),
      rs("10.1.0.3", 8080, { weight: 65535 }),
    ],
  },
  {
    protocol: "udp",
    addr: "10.0.0.1",
    port: 53,
    scheduler: "wrr",
    flags: ["ops"],
    realServers: [rs("10.1.0.1", 53), rs("10.1.0.2", 53, { weight: 2 })],
  },
  { protocol: "sctp", addr: "10.0.0.2", port: 3868, scheduler: "lc", flags: [], realServers: [rs("10.1.0.1", 3868)] },
  {
    protocol: "tcp",
    addr: "10.0.0.3",
    port: 443,
    scheduler: "wlc",
    flags: [],
    persistent: 300,
    netmask: "255.255.255.0",
    realServers: [rs("10.1.0.4", 443, { fwd: "route" })],
  },
  {
    protocol: "tcp",
    addr: "10.0.0.4",
    port: 0,
    scheduler: "sed",
    flags: [],
    persistent: 60,
    realServers: [rs("10.1.0.4", 0, { fwd: "route" })],
  },
  {
    protocol: "tcp",
    addr: "10.0.0.5",
    port: 80,
    scheduler: "nq",
    flags: ["flag-1", "flag-2", "flag-3"],
    realServers: [],
  },
  {
    protocol: "tcp",
    addr: "10.0.0.6",
    port: 80,
    scheduler: "fo",
    flags: [],
    realServers: [rs("10.1.0.5", 80, { upperThreshold: 5 })],
  },
  { protocol: "tcp", addr: "10.0.0.7", port: 80, scheduler: "ovf", flags: [], realServers: [rs("10.1.0.5", 80)] },
  { protocol: "tcp", addr: "10.0.0.8", port: 80, scheduler: "dh", flags: [], realServers: [rs("10.1.0.6", 80)] },
  {
    protocol: "tcp",
    addr: "10.0.0.9",
    port: 80,
    scheduler: "sh",
    flags: ["sh-fallback", "sh-port"],
    realServers: [rs("10.1.0.6", 80), rs("10.1.0.7", 80)],
  },
  {
    protocol: "udp",
    addr: "10.0.0.9",
    port: 80,
    scheduler: "mh",
    flags: ["mh-fallback", "mh-port"],
    realServers: [rs("10.1.0.6", 80)],
  },
  { protocol: "tcp", addr: "10.0.0.10", port: 80, scheduler: "lblc", flags: [], realServers: [rs("10.1.0.8", 80)] },
  { protocol: "tcp", addr: "10.0.0.11", port: 80, scheduler: "lblcr", flags: [], realServers: [rs("10.1.0.8", 80)] },
  // tunnels (ipvsadm forces dest port = service port for -i/-g on non-fwmark services)
  {
    protocol: "tcp",
    addr: "10.0.0.12",
    port: 80,
    scheduler: "rr",
    flags: [],
    realServers: [
      rs("10.2.0.1", 80, { fwd: "tunnel", tunType: "ipip" }),
      rs("10.2.0.2", 80, { fwd: "tunnel", tunType: "gue", tunPort: 6080, tunFlags: ["csum"] }),
      rs("10.2.0.3", 80, { fwd: "tunnel", tunType: "gue", tunPort: 6081, tunFlags: ["remcsum"] }),
      rs("10.2.0.4", 80, { fwd: "tunnel", tunType: "gre", tunFlags: ["nocsum"] }),
      rs("10.2.0.5", 80, { fwd: "tunnel", tunType: "gre", tunFlags: ["csum"] }),
    ],
  },
  // IPv6
  {
    protocol: "tcp",
    addr: "fd00::1",
    port: 80,
    scheduler: "mh",
    flags: ["mh-port"],
    persistent: 120,
    netmask: "64",
    realServers: [rs("fd01::1", 8080, { weight: 2 }), rs("fd01::2", 8080, { upperThreshold: 9, lowerThreshold: 3 })],
  },
  { protocol: "udp", addr: "fd00::1", port: 53, scheduler: "sh", flags: ["sh-port"], realServers: [rs("fd01::1", 53)] },
  // fwmark, both families; an IPv4 fwmark service with a tunnel to an IPv6 real server is legal
  {
    fwmark: 7,
    family: "inet",
    scheduler: "wlc",
    flags: [],
    persistent: 900,
    netmask: "255.255.0.0",
    realServers: [rs("10.1.0.9", 0, { fwd: "route" }), rs("10.1.0.10", 0)],
  },
  { fwmark: 8, family: "inet6", scheduler: "rr", flags: ["ops"], realServers: [rs("fd01::9", 0, { fwd: "route" })] },
  {
    fwmark: 9,
    family: "inet",
    scheduler: "rr",
    flags: [],
    realServers: [rs("fd02::9", 0, { fwd: "tunnel", tunType: "ipip" })],
  },
];

const serviceAfV6 = (s: VirtualService) => (s.fwmark ? s.family === "inet6" : (s.addr ?? "").includes(":"));

const snapshot = () => ({
  save: ipvsadm(["-Sn"]),
  list: ipvsadm(["-Ln"]),
  tun: ipvsadm(["-Ln", "--tun-info"]),
  thresholds: ipvsadm(["-Ln", "--thresholds"]),
  persistent: ipvsadm(["-Ln", "--persistent-conn"]),
});

type Target = KernelTarget;

async function main() {
  const target = await KernelTarget.open({ timeoutMs: 10_000 });
  eq("family id resolved", target.client.family > 0, true);
  const info = await target.info();
  eq("GET_INFO version", info.version, "1.2.1");
  eq(
    "GET_INFO matches ipvsadm's header",
    ipvsadm(["-Ln"]).split("\n")[0],
    `IP Virtual Server version ${info.version} (size=${info.connTableSize})`,
  );
  await sameAsIpvsadm(target);
  await readBack(target);
  await edits(target);
  await errors(target);
  await batches(target);
  await timeouts(target);
  await statsAndConnections(target);
  await target.close();
  result({ checks, kernel: sh("uname -r").trim(), hasSctp: existsSync("/proc/net/sctp") });
}

// 1. made by us, read by ipvsadm: identical to the same rules made by ipvsadm
async function sameAsIpvsadm(target: Target) {
  await target.flush();
  for (const s of RULES) {
    await target.addService(s);
    for (const r of s.realServers) await target.addRealServer(s, r);
  }
  const ours = snapshot();
  ipvsadm(["-C"]);
  for (const s of RULES) {
    ipvsadm(addServiceArgs(s));
    for (const r of s.realServers) ipvsadm(addDestArgs(s, r));
  }
  const theirs = snapshot();
  for (const k of Object.keys(ours) as (keyof typeof ours)[])
    eq(`ipvsadm ${k} of rules made by wasmvs = of rules made by ipvsadm`, ours[k], theirs[k]);
  eq(
    "every rule is there",
    ours.save.split("\n").filter(Boolean).length,
    RULES.length + RULES.reduce((a, s) => a + s.realServers.length, 0),
  );
}

// 2. made by ipvsadm, read by us: every field as written
async function readBack(target: Target) {
  const c = target.client;
  const got = await target.services();
  eq("dump: service count", got.length, RULES.length);
  // both ways of reading destinations back (the native GET_DEST loop when built, the netlink package's
  // sockets otherwise) give the same table
  {
    const { nativeDump } = await import("../../src/kernel/native-dump.ts");
    check("the native dump loop is built and loads (npm install builds native/netlink-dump)", nativeDump() !== null);
    const viaSockets = await IpvsClient.open({ nativeDumps: false });
    const a = await c.dump(),
      b = await viaSockets.dump();
    viaSockets.close();
    const strip = (xs: typeof a) =>
      JSON.stringify(
        xs.map((s) => ({
          ...s,
          stats: undefined,
          realServers: s.realServers.map((r) => ({ ...r, stats: undefined })),
        })),
        big,
      );
    eq("native dump = socket dump", strip(a), strip(b));
  }
  await encodedCheck(c);
  for (const want of RULES) {
    const k = canonServiceKey(want);
    const g = got.find((s) => canonServiceKey(s) === k);
    if (!g) {
      check(`dump has ${k}`, false, k, null);
      continue;
    }
    eq(`dump ${k}: service fields`, serviceDiff(want, g), []);
    eq(`dump ${k}: flag names`, [...g.flags].sort(), [...want.flags].sort());
    eq(`dump ${k}: persistence`, [g.persistent, g.netmask], [want.persistent, want.netmask]);
    eq(
      `dump ${k}: real servers (kernel order: newest first)`,
      g.realServers.map((r) => canonRealServerKey(r)),
      want.realServers.map((r) => canonRealServerKey(r)).reverse(),
    );
    for (const r of want.realServers) {
      const h = g.realServers.find((x) => canonRealServerKey(x) === canonRealServerKey(r));
      if (!h) continue;
      eq(`dump ${k} ${canonRealServerKey(r)}: fields`, realServerDiff(r, h), []);
      eq(
        `dump ${k} ${canonRealServerKey(r)}: tunnel`,
        [h.tunType, h.tunPort, h.tunFlags],
        [
          r.tunType,
          r.tunType === "gue" ? r.tunPort : undefined,
          r.tunType && r.tunType !== "ipip" ? r.tunFlags : undefined,
        ],
      );
    }
  }
  // GET_SERVICE (doit) of one service and of a missing one
  const one = await c.getService(RULES[14]);
  eq("GET_SERVICE doit", one && [one.scheduler, one.persistent, one.netmask, one.flags], [
    "mh",
    120,
    "64",
    ["mh-port"],
  ]);
  eq("GET_SERVICE of a missing service", await c.getService({ ...RULES[0], port: 81 }), undefined);
}

// The full pass's check on the encoded replies (table.ts) against the object comparison, on what the kernel
// sends: "the same" for every IPv4 service without tunnels (the others it leaves to the objects), never
// "the same" where a field or a real server differs (an edit made here with ipvsadm, then undone).
async function encodedCheck(c: IpvsClient) {
  const objectsSame = (want: VirtualService, got: RealServer[]) =>
    got.length === want.realServers.length &&
    want.realServers.every((r) => {
      const h = got.find((x) => canonRealServerKey(x) === canonRealServerKey(r));
      return h && !realServerDiff(r, h).length;
    });
  const simple = (s: VirtualService) =>
    !serviceAfV6(s) && s.realServers.every((r) => !r.addr.includes(":") && r.fwd !== "tunnel");
  const compare = async () => {
    const t = (await c.dumpEncoded())!;
    return t.services.map((ks, i) => {
      const want = RULES.find((s) => canonServiceKey(s) === canonServiceKey(ks))!;
      const objects = objectsSame(want, decodeDests(t, i));
      return { k: canonServiceKey(ks), want, fast: sameDests(t, i, want), objects };
    });
  };
  const r = await compare();
  const keys = (xs: typeof r) => xs.map((x) => x.k);
  eq("encoded check: never the same where the objects differ", keys(r.filter((x) => x.fast && !x.objects)), []);
  eq(
    "encoded check: the same for every IPv4 service without tunnels",
    keys(r.filter((x) => simple(x.want) && !x.fast)),
    [],
  );
  const edits: [string, string, string[], string][] = [
    ["10.0.0.1:80", "10.1.0.1:8080", ["-m", "-w", "4"], "a weight"],
    ["10.0.0.1:80", "10.1.0.1:8080", ["-m", "-w", "3", "-x", "7"], "a threshold"],
    ["10.0.0.3:443", "10.1.0.4:443", ["-m", "-w", "1"], "the forwarding"],
  ];
  for (const [vs, dest, args, what] of edits) {
    ipvsadm(["-e", "-t", vs, "-r", dest, ...args]);
    const e = (await compare()).find((x) => x.k === `tcp ${vs}`)!;
    eq(`encoded check: ${what} changed behind its back is not the same`, [e.fast, e.objects], [false, false]);
  }
  ipvsadm(["-e", "-t", "10.0.0.1:80", "-r", "10.1.0.1:8080", "-m", "-w", "3"]);
  ipvsadm(["-e", "-t", "10.0.0.3:443", "-r", "10.1.0.4:443", "-g", "-w", "1"]);
  const undone = await compare();
  const fastOf = (k: string) => undone.find((x) => x.k === k)!.fast;
  eq("encoded check: undone, the same again", ["tcp 10.0.0.1:80", "tcp 10.0.0.3:443"].map(fastOf), [true, true]);
}

// 3. edits: SET_SERVICE and SET_DEST read back by ipvsadm; DEL_DEST, DEL_SERVICE
async function edits(target: Target) {
  const e = { ...RULES[0], scheduler: "wlc", persistent: 30, netmask: "255.255.255.128", flags: ["ops"] };
  await target.editService(e);
  await target.editRealServer(
    e,
    rs("10.1.0.1", 8080, { weight: 7, fwd: "route", upperThreshold: 4, lowerThreshold: 2 }),
  );
  eq(
    "SET_SERVICE/SET_DEST read by ipvsadm",
    ipvsadm(["-Sn"])
      .split("\n")
      .filter((l) => l.startsWith("-A -t 10.0.0.1:80 ") || l.includes("-r 10.1.0.1:8080")),
    ["-A -t 10.0.0.1:80 -s wlc -p 30 -M 255.255.255.128 -o", "-a -t 10.0.0.1:80 -r 10.1.0.1:8080 -g -w 7"],
  );
  eq(
    "SET_DEST thresholds",
    ipvsadm(["-Ln", "--thresholds", "-t", "10.0.0.1:80"])
      .split("\n")
      .find((l) => l.includes("10.1.0.1:8080"))
      ?.trim()
      .split(/\s+/),
    ["->", "10.1.0.1:8080", "4", "2", "0", "0"],
  );
  await target.deleteRealServer(RULES[1], { addr: "10.1.0.2", port: 53 });
  await target.deleteService(RULES[2]);
  eq(
    "DEL_DEST and DEL_SERVICE",
    [ipvsadm(["-Sn"]).includes("10.1.0.2:53"), ipvsadm(["-Sn"]).includes("10.0.0.2:3868")],
    [false, false],
  );
}

// 4. errors carry the kernel's errno and a plain meaning
async function errors(target: Target) {
  const err = async (f: () => Promise<unknown>) => {
    try {
      await f();
      return "no error";
    } catch (x) {
      return x instanceof IpvsError ? `${x.code}: ${x.meaning}` : String(x);
    }
  };
  eq("EEXIST service", await err(() => target.addService(RULES[3])), "EEXIST: service already exists");
  eq(
    "EEXIST destination",
    await err(() => target.addRealServer(RULES[3], RULES[3].realServers[0])),
    "EEXIST: destination already exists",
  );
  eq("ESRCH", await err(() => target.editService({ ...RULES[3], port: 444 })), "ESRCH: no such service");
  eq(
    "ESRCH on a destination of a missing service",
    await err(() => target.addRealServer({ ...RULES[3], port: 444 }, rs("10.1.0.1", 1))),
    "ESRCH: no such service",
  );
  eq(
    "ENOENT destination",
    await err(() => target.deleteRealServer(RULES[3], { addr: "10.9.9.9", port: 443 })),
    "ENOENT: no such destination",
  );
  eq(
    "ENOENT scheduler",
    await err(() => target.addService({ ...RULES[3], port: 445, scheduler: "nosuch" })),
    "ENOENT: unknown scheduler or persistence engine (no such ip_vs_* module)",
  );
  eq(
    "EINVAL (masq to another family)",
    (await err(() => target.addRealServer(RULES[3], rs("fd01::7", 443)))).split(":")[0],
    "EINVAL",
  );
  eq(
    "codec refuses a bad address before the kernel",
    (await err(() => target.addService({ ...RULES[3], addr: "10.0.0.300" }))).split(":")[0],
    "EINVAL",
  );
  eq(
    "fullnat is refused as not supported",
    (await err(() => target.addRealServer(RULES[3], rs("10.1.0.1", 443, { fwd: "fullnat" })))).split(":")[0],
    "EOPNOTSUPP",
  );
  // EPERM: the same call from a process without CAP_NET_ADMIN
  const child = spawnSync(process.execPath, ["--import", "tsx", "test/kernel-vm/eperm.ts"], {
    uid: 65534,
    gid: 65534,
    encoding: "utf8",
    env: { ...process.env, HOME: "/tmp" },
  });
  eq(
    "EPERM without CAP_NET_ADMIN",
    child.stdout.trim(),
    "EPERM: needs CAP_NET_ADMIN (run as root or grant the capability)",
  );
}

// 5. batches: many messages per datagram; a refused one in the middle leaves the rest applied
async function batches(target: Target) {
  const c = target.client;
  await target.flush();
  const many: VirtualService[] = Array.from({ length: 600 }, (_, i) => ({
    protocol: "tcp",
    addr: `10.50.${i >> 8}.${i & 255}`,
    port: 80,
    scheduler: "rr",
    flags: [],
    realServers: [],
  }));
  const r1 = await c.apply(many.map((s) => ({ op: "addService" as const, service: s })));
  eq("600 NEW_SERVICE in batches: no errors", r1.filter((x) => x.error).length, 0);
  eq("600 NEW_SERVICE in batches: all in the kernel", ipvsadm(["-Sn"]).split("\n").filter(Boolean).length, 600);
  const mixed = [
    ...many.slice(0, 3),
    ...Array.from({ length: 5 }, (_, i) => ({ ...many[0], addr: `10.60.0.${i}` })),
    many[4],
  ];
  const r2 = await c.apply(mixed.map((s) => ({ op: "addService" as const, service: s })));
  eq(
    "refused messages inside a batch",
    r2.map((x) => x.error?.code ?? "ok"),
    ["EEXIST", "EEXIST", "EEXIST", "ok", "ok", "ok", "ok", "ok", "EEXIST"],
  );
  eq("batch size per datagram", c.batchSize > 1, true);
  // a dump that spans several datagrams: 700 real servers on one service
  const bigSvc: VirtualService = {
    protocol: "tcp",
    addr: "10.70.0.1",
    port: 80,
    scheduler: "wrr",
    flags: [],
    realServers: [],
  };
  for (let i = 0; i < 700; i++)
    bigSvc.realServers.push(rs(`10.71.${i >> 8}.${i & 255 || 1}`, 1000 + i, { weight: i % 5 }));
  const r3 = await c.apply([
    { op: "addService", service: bigSvc },
    ...bigSvc.realServers.map((r) => ({ op: "addDest" as const, service: bigSvc, dest: r })),
  ]);
  eq(
    "700 NEW_DEST: no errors",
    r3
      .filter((x) => x.error)
      .map((x) => x.error!.message)
      .slice(0, 3),
    [],
  );
  const bigGot = await c.dests(bigSvc);
  eq("multi-part GET_DEST dump: every real server", bigGot.length, 700);
  eq(
    "multi-part GET_DEST dump: weights",
    bigGot.map((r) => r.weight).reduce((a, b) => a + b, 0),
    bigSvc.realServers.reduce((a, r) => a + r.weight, 0),
  );
  eq("full dump: service count (600 + 5 + 1)", (await c.dump()).length, 606);
  await target.flush();
  eq("FLUSH", ipvsadm(["-Sn"]), "");
}

// 6. timeouts (GET_CONFIG / SET_CONFIG) as ipvsadm --set / -L --timeout see them
async function timeouts(target: Target) {
  const t0 = await target.timeouts();
  eq(
    "GET_CONFIG = ipvsadm -L --timeout",
    ipvsadm(["-L", "--timeout"]).trim(),
    `Timeout (tcp tcpfin udp): ${t0.tcp} ${t0.tcpfin} ${t0.udp}`,
  );
  await target.setTimeouts({ tcp: 901, tcpfin: 61, udp: 31 });
  eq("SET_CONFIG read by ipvsadm", ipvsadm(["-L", "--timeout"]).trim(), "Timeout (tcp tcpfin udp): 901 61 31");
  await target.setTimeouts({ tcp: 0, tcpfin: 0, udp: 45 });
  eq("SET_CONFIG: 0 keeps the current value", await target.timeouts(), { tcp: 901, tcpfin: 61, udp: 45 });
  await target.setTimeouts(t0);
}

// Six TCP connects from fixed ports and three UDP datagrams to 10.80.0.1, from this process; returns once
// the kernel lists every entry and its rate estimator has counted them.
async function trafficCounted(target: Target) {
  const socks = Array.from({ length: 6 }, (_, i) => {
    const so = net.connect({ host: "10.80.0.1", port: 80, localPort: 41000 + i });
    so.on("error", () => {});
    return so;
  });
  const udp = dgram.createSocket("udp4");
  await new Promise<void>((r) => udp.bind(42000, () => r()));
  for (let i = 0; i < 3; i++) udp.send("x", 53, "10.80.0.1");
  // under emulation the entries can land late: wait (bounded) until the kernel has all of them
  for (let t = 0; t < 60; t++) {
    const cs = await target.connections();
    if (
      cs.filter((x) => x.protocol === "TCP" && x.client.port >= 41000 && x.client.port <= 41005).length >= 6 &&
      cs.some((x) => x.protocol === "UDP")
    )
      break;
    await new Promise((r) => setTimeout(r, 250));
  }
  // the kernel's stats are per-CPU counters summed by the rate estimator every 2 s: wait for that pass
  for (let t = 0; t < 40; t++) {
    const sv = await target.services();
    if (
      sv.find((x) => x.addr === "10.80.0.1" && x.protocol === "tcp")?.stats.conns === 6n &&
      (sv.find((x) => x.protocol === "udp")?.stats.conns ?? 0n) > 0n
    )
      break;
    await new Promise((r) => setTimeout(r, 250));
  }
  return { socks, udp };
}

// 7. stats (32- and 64-bit attributes), ZERO, and connections() from /proc/net/ip_vs_conn, with traffic:
//    a local client connects to the VIP; the real servers sit behind a dummy interface nobody answers on
async function statsAndConnections(target: Target) {
  sh("ip link add wv0 type dummy && ip link set wv0 up && ip route add 10.80.1.0/24 dev wv0");
  const svc: VirtualService = {
    protocol: "tcp",
    addr: "10.80.0.1",
    port: 80,
    scheduler: "rr",
    flags: [],
    realServers: [rs("10.80.1.1", 80), rs("10.80.1.2", 80)],
  };
  const usvc: VirtualService = {
    protocol: "udp",
    addr: "10.80.0.1",
    port: 53,
    scheduler: "rr",
    flags: [],
    realServers: [rs("10.80.1.1", 53)],
  };
  for (const s of [svc, usvc]) {
    await target.addService(s);
    for (const r of s.realServers) await target.addRealServer(s, r);
  }
  sh("ip addr add 10.80.0.1/32 dev lo");
  const { socks, udp } = await trafficCounted(target);
  // the SYNs nobody answers are retransmitted while the counters are read (a second apart under emulation):
  // ipvsadm's figures must lie between ours read just before and just after it (counters only grow)
  const tcpStats = async () => {
    const x = (await target.services()).find((s) => s.addr === "10.80.0.1" && s.protocol === "tcp")!;
    return { st: x, n: [x.stats.conns, x.stats.inPkts, x.stats.outPkts, x.stats.inBytes, x.stats.outBytes] };
  };
  const before = await tcpStats();
  const st = before.st;
  const exact = ipvsadm(["-Ln", "--stats", "--exact", "-t", "10.80.0.1:80"])
    .split("\n")
    .find((l) => l.startsWith("TCP"))!
    .trim()
    .split(/\s+/)
    .slice(2, 7)
    .map(BigInt);
  const after = await tcpStats();
  check(
    "service stats = ipvsadm --stats --exact (conns, inpkts, outpkts, inbytes, outbytes), read between two of ours",
    exact.every((v, i) => before.n[i] <= v && v <= after.n[i]),
    { before: before.n.map(String), after: after.n.map(String) },
    exact.map(String),
  );
  eq("six connections counted", st.stats.conns, 6n);
  eq(
    "dest stats add up",
    st.realServers.reduce((a, r) => a + r.stats.conns, 0n),
    6n,
  );
  eq(
    "SYN_RECV connections are active",
    st.realServers.map((r) => r.activeConns + r.inactConns),
    [3, 3],
  );
  const conns = await target.connections();
  const lnc = ipvsadm(["-Lnc"]).split("\n").slice(2).filter(Boolean);
  eq("connections() = ipvsadm -Lnc entries", conns.length, lnc.length);
  eq(
    "connections(): TCP entries",
    conns.filter((x) => x.protocol === "TCP" && x.virtual.addr === "10.80.0.1" && x.virtual.port === 80).length,
    6,
  );
  eq(
    "connections(): one UDP entry",
    conns.filter((x) => x.protocol === "UDP").map((x) => [x.client.port, x.dest.addr, x.state]),
    [[42000, "10.80.1.1", "UDP"]],
  );
  eq(
    "connections(): ports and states",
    conns
      .filter((x) => x.protocol === "TCP")
      .map((x) => x.client.port)
      .sort(),
    [41000, 41001, 41002, 41003, 41004, 41005],
  );
  await target.zero(svc);
  const z = (await target.services()).find((s) => s.addr === "10.80.0.1" && s.protocol === "tcp")!;
  const zu = (await target.services()).find((s) => s.protocol === "udp")!;
  eq("ZERO one service", [z.stats.conns, z.stats.inPkts, zu.stats.conns > 0n], [0n, 0n, true]);
  await target.zero();
  const zu2 = (await target.services()).find((s) => s.protocol === "udp")!;
  eq("ZERO everything", zu2.stats.conns, 0n);
  for (const so of socks) so.destroy();
  udp.close();
  await target.flush();
}

main().catch((e) => {
  result({ checks, fatal: String(e?.stack ?? e) });
  process.exit(1);
});
