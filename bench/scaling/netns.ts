// The measured topology, made per run and always deleted: three network namespaces joined by veth pairs.
//
//   client ns  192.168.201.2 ──veth── 192.168.201.1  node ns (the rules under test; ip_forward=1)
//                                  192.168.202.1 ──veth── 192.168.202.2  backend ns
//
// The backend namespace routes the whole pod range (10.128.0.0/9, where src/k8s/synth puts endpoints) to
// lo, so one listening process answers for every endpoint address on the ports it listens on. The client
// namespace runs the connector (connector.c, or connector.mjs without a C compiler). Nothing is sent
// outside these namespaces.
import { spawn, spawnSync, execFileSync, type ChildProcess } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, readFileSync, writeFileSync, mkdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const here = fileURLToPath(new URL(".", import.meta.url));
export const CLIENT_IP = "192.168.201.2",
  NODE_IP = "192.168.201.1",
  NODE_BACK_IP = "192.168.202.1",
  BACKEND_NET_IP = "192.168.202.2";
export const POD_RANGE = "10.128.0.0/9";

export const have = (cmd: string) => spawnSync("sh", ["-c", `command -v ${cmd}`]).status === 0;
export const isRoot = () => process.getuid?.() === 0;

/** Why the host-kernel part cannot run here, or "" when it can. */
export function hostSkipReason(): string {
  if (!isRoot()) return "not root: network namespaces, veth pairs and iptables need CAP_NET_ADMIN/CAP_SYS_ADMIN";
  const missing = [
    "ip",
    "iptables-legacy-restore",
    "iptables-nft-restore",
    "iptables-legacy",
    "iptables-nft",
    "nft",
  ].filter((c) => !have(c));
  if (missing.length) return `missing ${missing.join(", ")}`;
  return "";
}

export interface RunResult {
  ms: number;
  status: number;
  stdout: string;
  stderr: string;
}

/** Runs a command inside a namespace, stdin from `input`, timed from spawn to exit. */
export function nsRun(ns: string, cmd: string[], input?: string, env?: Record<string, string>): RunResult {
  const t0 = performance.now();
  const r = spawnSync("ip", ["netns", "exec", ns, ...cmd], {
    input,
    encoding: "utf8",
    maxBuffer: 1 << 30,
    env: { ...process.env, ...env },
  });
  const ms = performance.now() - t0;
  return {
    ms,
    status: r.status ?? -1,
    stdout: r.stdout ?? "",
    stderr: (r.stderr ?? "") + (r.error ? String(r.error) : ""),
  };
}

export function nsOk(ns: string, cmd: string[], input?: string, env?: Record<string, string>): RunResult {
  const r = nsRun(ns, cmd, input, env);
  if (r.status !== 0)
    throw new Error(`${cmd.join(" ")} in ${ns} failed (exit ${r.status}): ${r.stderr.slice(0, 1500)}`);
  return r;
}

/**
 * How many times slower than a host this machine runs the benchmark's processes: WASMVS_BENCH_TIME_FACTOR, 1
 * unless set. The VM playing the host sets it (qemu TCG starts a Node process many times slower, and a packet-mode
 * run there once failed on the backends' fixed 10 s start limit); the fixed waits are multiplied by it.
 */
export function benchTimeFactor(): number {
  const v = process.env.WASMVS_BENCH_TIME_FACTOR;
  if (v === undefined || v === "") return 1;
  const x = Number(v);
  if (!Number.isFinite(x) || x < 1 || x > 100)
    throw new Error(`WASMVS_BENCH_TIME_FACTOR=${JSON.stringify(v.slice(0, 20))} is not a number from 1 to 100`);
  return x;
}

/** The connector: a compiled copy of connector.c in the temp dir (cached by source hash), else Node. */
let connectorCmd: string[] | null = null;
export function connector(): { cmd: string[]; kind: "c" | "node" } {
  if (!connectorCmd) {
    const src = join(here, "connector.c");
    const hash = createHash("sha256").update(readFileSync(src)).digest("hex").slice(0, 12);
    const dir = join(tmpdir(), "wasmvs-scaling");
    mkdirSync(dir, { recursive: true });
    const bin = join(dir, `connector-${hash}`);
    if (!existsSync(bin) && have("cc")) spawnSync("cc", ["-O2", "-o", bin, src]);
    connectorCmd = existsSync(bin) ? [bin] : [process.execPath, join(here, "connector.mjs")];
  }
  return { cmd: connectorCmd, kind: connectorCmd.length === 1 ? "c" : "node" };
}

export interface ConnectRun {
  lat: number[][];
  fails: number;
  userUs: number;
  sysUs: number;
  wallUs: number;
  errors: number[];
}

/** count connects from the client namespace, cycling over targets ("ip:port"). lat[i] in ns per target. */
export function connectFrom(
  ns: string,
  count: number,
  targets: string[],
  o: { readFirstByte?: boolean } = {},
): ConnectRun {
  const r = nsOk(
    ns,
    [...connector().cmd, String(count), ...targets],
    undefined,
    o.readFirstByte ? { CONNECTOR_READ: "1" } : undefined,
  );
  const lat: number[][] = targets.map(() => []);
  const errors: number[] = [];
  let cpu = [0, 0, 0, 0];
  for (const line of r.stdout.split("\n")) {
    if (!line) continue;
    if (line.startsWith("#cpu")) {
      cpu = line.split(" ").slice(1).map(Number);
      continue;
    }
    const [i, v] = line.split(" ").map(Number);
    if (v < 0) errors.push(-v);
    else lat[i].push(v);
  }
  return { lat, fails: cpu[3], userUs: cpu[0], sysUs: cpu[1], wallUs: cpu[2], errors };
}

export class Topology {
  readonly client: string;
  readonly node: string;
  readonly backend: string;
  private backendProc: ChildProcess | null = null;
  private backendOut = "";
  private static live = new Set<Topology>();
  private static hooked = false;

  constructor(tag: string) {
    const base = `wvs${process.pid % 100000}${tag}`.slice(0, 20);
    this.client = `${base}-c`;
    this.node = `${base}-n`;
    this.backend = `${base}-b`;
  }

  static cleanupAll(): void {
    for (const t of [...Topology.live]) t.destroy();
  }

  create(): this {
    if (!Topology.hooked) {
      Topology.hooked = true;
      process.on("exit", () => Topology.cleanupAll());
      for (const sig of ["SIGINT", "SIGTERM"] as const)
        process.once(sig, () => {
          Topology.cleanupAll();
          process.exit(130);
        });
    }
    Topology.live.add(this);
    const ip = (...a: string[]) => execFileSync("ip", a, { stdio: ["ignore", "ignore", "pipe"] });
    for (const ns of [this.client, this.node, this.backend]) ip("netns", "add", ns);
    ip("-n", this.client, "link", "add", "c0", "type", "veth", "peer", "name", "nc", "netns", this.node);
    ip("-n", this.backend, "link", "add", "b0", "type", "veth", "peer", "name", "nb", "netns", this.node);
    const sh = (ns: string, script: string) => nsOk(ns, ["sh", "-ec", script]);
    sh(
      this.client,
      `ip link set lo up; ip link set c0 up; ip addr add ${CLIENT_IP}/24 dev c0; ip route add default via ${NODE_IP}`,
    );
    sh(
      this.node,
      `ip link set lo up; ip link set nc up; ip link set nb up; ip addr add ${NODE_IP}/24 dev nc; ` +
        `ip addr add ${NODE_BACK_IP}/24 dev nb;
      ip route add ${POD_RANGE} via ${BACKEND_NET_IP}; sysctl -qw net.ipv4.ip_forward=1`,
    );
    sh(
      this.backend,
      `ip link set lo up; ip link set b0 up; ip addr add ${BACKEND_NET_IP}/24 dev b0; ` +
        `ip route add default via ${NODE_BACK_IP};
      ip route add local ${POD_RANGE} dev lo`,
    );
    return this;
  }

  /** Starts the backend listeners on these ports; resolves once they listen (10 s, times benchTimeFactor). */
  async startBackends(ports: number[], o: { banner?: boolean; peers?: boolean } = {}): Promise<void> {
    const uniq = [...new Set(ports)].sort((a, b) => a - b);
    const p = spawn(
      "ip",
      ["netns", "exec", this.backend, process.execPath, join(here, "backend.mjs"), ...uniq.map(String)],
      {
        stdio: ["pipe", "pipe", "inherit"],
        env: {
          ...process.env,
          ...(o.banner ? { BACKEND_BANNER: "1" } : {}),
          ...(o.peers ? { BACKEND_PEERS: "1" } : {}),
        },
      },
    );
    this.backendProc = p;
    await new Promise<void>((resolve, reject) => {
      const limitS = 10 * benchTimeFactor();
      const t = setTimeout(() => reject(new Error(`backends did not start in ${limitS} s`)), limitS * 1000);
      p.stdout!.on("data", (d: Buffer) => {
        this.backendOut += d.toString();
        if (this.backendOut.includes("ready\n")) {
          clearTimeout(t);
          resolve();
        }
      });
      p.on("exit", (code) => {
        clearTimeout(t);
        reject(new Error(`backends exited (${code})`));
      });
    });
  }

  /** Stops the backends; returns the connections each endpoint address:port accepted. They get graceMs (times
   * benchTimeFactor) to drain their accept queue and print the tally before they are killed (and it is lost). */
  async stopBackends(graceMs = 3000): Promise<Record<string, number>> {
    const p = this.backendProc;
    if (!p) return {};
    this.backendProc = null;
    const out = await new Promise<string>((resolve) => {
      let buf = "";
      p.stdout!.removeAllListeners("data");
      p.stdout!.on("data", (d: Buffer) => (buf += d.toString()));
      // "close", not "exit": the process can exit before its stdout's last data is read, and then the tally
      // was lost (a VM run's iptables backends "saw 0/0" once in four clean-clone runs)
      p.on("close", () => resolve(buf));
      p.stdin!.end();
      setTimeout(() => {
        p.kill("SIGKILL");
      }, graceMs * benchTimeFactor()).unref();
    });
    const line = out.split("\n").find((l) => l.startsWith("{"));
    return line ? JSON.parse(line) : {};
  }

  destroy(): void {
    if (!Topology.live.has(this)) return;
    Topology.live.delete(this);
    if (this.backendProc) {
      try {
        this.backendProc.kill("SIGKILL");
      } catch {
        /* gone */
      }
      this.backendProc = null;
    }
    for (const ns of [this.client, this.node, this.backend]) spawnSync("ip", ["netns", "del", ns]);
  }
}

/** A private xtables lock file, so a run never makes the host's own iptables writers wait; removed when
 * the process exits (the signal handlers above exit through it too). */
let lockHooked = false;
export function privateLock(): Record<string, string> {
  const f = join(tmpdir(), `wasmvs-xtables-${process.pid}.lock`);
  if (!existsSync(f)) writeFileSync(f, "");
  if (!lockHooked) {
    lockHooked = true;
    process.once("exit", () => rmSync(f, { force: true }));
  }
  return { XTABLES_LOCKFILE: f };
}
