// wasmvs userspace, packet mode, measured in the same host topology and the same way as socket mode
// (proxy.ts):
//
//   client ns ──veth c0/nc── node ns: `wasmvs proxy run --mode packet` on nc and nb
//                                     ──veth nb/b0── backend ns
//
// Packet mode receives every frame arriving on nc and nb with AF_PACKET, lets the WASM core schedule and
// rewrite it (full-NAT: client → VIP becomes FULLNAT_IP → endpoint, and back), and sends it with a raw
// socket; its nftables table (inet wasmvs_packet, src/proxy/takeover.ts) drops the kernel's own copies in
// prerouting. So nothing listens on the VIPs and the node's kernel neither answers nor forwards: unlike socket
// mode, connect() returns only when the backend's SYN-ACK has come back through wasmvs, so connect() and the
// first byte both cover the whole path. The full-NAT source is FULLNAT_IP, a /32 on the node's lo outside
// every subnet, which the backends reach through their default route (the node). Senders' TSO/GSO are off
// on c0 and b0 as docs/proxy.md asks (an aggregate larger than a slot would be dropped).
//
// The takeover table holds the virtual services and the local address as set elements behind one rule per
// family (a hash lookup per packet). Its first version had one rule per virtual service in one chain, and at
// 1k Services that linear walk (every reply walked all of it) cost more CPU per connection than the rest of
// packet mode; the result counts both the chain's rules and the entries, so a return to a walk shows.
import type { ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Topology, nsOk, have, CLIENT_IP } from "./netns.ts";
import type { LatStat } from "./host.ts";
import { proxyConfig, startProxy, stopProxy, timeConnects, type Launcher, type Timed as Target } from "./proxy.ts";
import { loadPacketAddon } from "../../src/proxy/packet.ts";
import { ControlClient } from "../../src/proxy/control.ts";
import { TAKEOVER_TABLE } from "../../src/proxy/takeover.ts";
import type { ScalingCluster } from "../../src/sim/cluster.ts";
import type { ServiceTarget } from "../../src/sim/iptables.ts";

export const FULLNAT_IP = "192.168.203.1";

export interface PacketResult {
  mode: "wasmvs-packet";
  services: number;
  endpoints: number;
  virtualServices: number;
  startMs: number;
  /** what bin/wasmvs.js ran: the built dist/cli, or the TypeScript sources through tsx */
  launcher: Launcher;
  /** the takeover table counted back: entries (set elements, and rules that match without a set; expected: one per
   *  virtual service + the local address), rules in its chain, kernel copies it dropped */
  takeover: { entries: number; expected: number; rules: number; dropped: number };
  first: Target;
  last: Target;
  baseline: { target: string; connect: LatStat; firstByte: LatStat };
  backends: Record<string, number>;
  translated: { first: number; last: number };
  /** connections the backends accepted from the full-NAT address, and from anywhere else but the baseline's client
   * (must be 0);
   *  connections reset before the backend read their peer are in neither */
  fullNat: { address: string; fromLocal: number; fromOther: number };
  /** the proxy's own counters at the end: packets the core forwarded, drops by reason, I/O errors */
  core: { forwarded: number; drops: Record<string, number>; rxPackets: number; txPackets: number; txErrors: number };
  proxyRssMiB: number;
}

export interface PacketOptions {
  connects: number;
  cpuConnects: number;
  log?: (s: string) => void;
}

/** Why packet mode cannot be measured here, or "" (root, nft, ethtool and the native addon are needed). */
export function packetSkipReason(): string {
  const { error } = loadPacketAddon();
  if (error) return error;
  for (const t of ["nft", "ethtool"])
    if (!have(t)) return `${t} is missing (Debian: apt-get install ${t === "nft" ? "nftables" : t})`;
  return "";
}

function takeoverCounted(ns: string): { entries: number; rules: number; dropped: number } {
  const r = nsOk(ns, ["nft", "-j", "list", "table", "inet", TAKEOVER_TABLE]);
  let entries = 0,
    rules = 0,
    dropped = 0;
  for (const x of JSON.parse(r.stdout).nftables) {
    if (x.set) entries += x.set.elem?.length ?? 0;
    if (!x.rule) continue;
    rules++;
    if (!JSON.stringify(x.rule.expr).includes('"@')) entries++; // a rule matching one address itself
    for (const e of x.rule.expr ?? []) if (e.counter) dropped += e.counter.packets;
  }
  return { entries, rules, dropped };
}

// The control socket opens after the forwarder, so it may lag the first forwarded connection a little.
async function connectControl(ctlPath: string, p: ChildProcess): Promise<ControlClient> {
  for (let i = 0; ; i++) {
    try {
      return await ControlClient.connect(ctlPath);
    } catch (e) {
      if (i >= 50 || p.exitCode !== null) throw e;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

type PacketStatus = {
  mode: string;
  verdicts?: Record<string, number>;
  drops?: Record<string, number>;
  io?: Record<string, number>;
};

// The core's verdicts and drops and the packet I/O's counters, from the proxy's status in packet mode.
function coreCounters(fw: PacketStatus) {
  if (fw.mode !== "packet") throw new Error(`the proxy runs in ${fw.mode} mode, not packet mode`);
  const io = fw.io ?? {};
  return {
    forwarded: Number(fw.verdicts?.forward ?? 0),
    drops: (fw.drops ?? {}) as Record<string, number>,
    rxPackets: Number(io.rxPackets ?? 0),
    txPackets: Number(io.txPackets ?? 0),
    txErrors:
      Number(io.txNoBuffer ?? 0) +
      Number(io.txTooBig ?? 0) +
      Number(io.txUnreachable ?? 0) +
      Number(io.txOtherErrors ?? 0),
  };
}

// Connections the backends saw from the full-NAT address, and from any other address but the client's.
function fullNatSources(backends: Record<string, number>) {
  // "from unknown": the connector's RST arrived before the backend's accept callback could read the peer
  const fromLocal = backends[`from ${FULLNAT_IP}`] ?? 0;
  const fromOther = Object.entries(backends)
    .filter(
      ([k]) => k.startsWith("from ") && k !== `from ${FULLNAT_IP}` && k !== "from unknown" && k !== `from ${CLIENT_IP}`,
    )
    .reduce((n, [, v]) => n + v, 0); // CLIENT_IP: the baseline's connects straight to a pod IP
  return { fromLocal, fromOther };
}

export async function measurePacket(c: ScalingCluster, o: PacketOptions): Promise<PacketResult> {
  const log = o.log ?? (() => {});
  const first = c.targets[0],
    last = c.targets[c.targets.length - 1];
  const podTarget = `10.255.255.254:${first.endpoints[0].split(":")[1]}`;
  const topo = new Topology("K").create();
  const dir = mkdtempSync(join(tmpdir(), "wasmvs-scaling-packet-"));
  const ctlPath = join(dir, "ctl.sock");
  let proxy: ChildProcess | null = null;
  let ctl: ControlClient | null = null;
  try {
    nsOk(topo.node, ["ip", "addr", "add", `${FULLNAT_IP}/32`, "dev", "lo"]);
    nsOk(topo.client, ["ethtool", "-K", "c0", "tso", "off", "gso", "off"]);
    nsOk(topo.backend, ["ethtool", "-K", "b0", "tso", "off", "gso", "off"]);
    const ports = [...first.endpoints, ...last.endpoints].map((e) => Number(e.split(":")[1]));
    await topo.startBackends(ports, { banner: true, peers: true });
    // socket mode's configuration (IPVS mode's virtual services), switched to packet mode
    const base = proxyConfig(c);
    const cfg = JSON.parse(base.text);
    cfg.proxy = {
      ...cfg.proxy,
      mode: "packet",
      interfaces: ["nc", "nb"],
      localAddresses: [FULLNAT_IP],
      control: ctlPath,
    };
    const svcs = cfg.services as { protocol: string; addr: string; port: number }[];
    writeFileSync(join(dir, "proxy.json"), JSON.stringify(cfg));
    log(`wasmvs-packet ${c.services}: starting the proxy in packet mode (${svcs.length} virtual services)`);
    // started = the last Service answers through it (sockets open, core loaded, takeover table in place)
    const { p, startMs, launcher } = await startProxy(
      topo,
      join(dir, "proxy.json"),
      "error",
      last,
      "the packet-mode proxy",
    );
    proxy = p;
    const pid = p.pid!;
    ctl = await connectControl(ctlPath, p);
    const t = await timeConnects(topo, pid, o, first, last, podTarget, "wasmvs-packet", c.services, log, {
      connectsMustSucceed: true,
      through: "packet mode",
    });
    const core = coreCounters((await ctl.call("status")) as PacketStatus);
    const counted = takeoverCounted(topo.node);
    ctl.close();
    ctl = null;
    log(`wasmvs-packet ${c.services}: stopping`);
    await stopProxy(p);
    proxy = null;
    const backends = await topo.stopBackends();
    const seen = (t: ServiceTarget) => t.endpoints.reduce((n, e) => n + (backends[e] ?? 0), 0);
    const { fromLocal, fromOther } = fullNatSources(backends);
    return {
      mode: "wasmvs-packet",
      services: c.services,
      endpoints: c.endpoints,
      virtualServices: svcs.length,
      startMs,
      launcher,
      takeover: { entries: counted.entries, expected: svcs.length + 1, rules: counted.rules, dropped: counted.dropped },
      first: t.first,
      last: t.last,
      baseline: t.baseline,
      backends,
      translated: { first: seen(first), last: seen(last) },
      fullNat: { address: FULLNAT_IP, fromLocal, fromOther },
      core,
      proxyRssMiB: t.rss,
    };
  } finally {
    ctl?.close();
    if (proxy && proxy.exitCode === null) {
      try {
        proxy.kill("SIGKILL");
      } catch {
        /* gone */
      }
    }
    topo.destroy();
    rmSync(dir, { recursive: true, force: true });
  }
}
