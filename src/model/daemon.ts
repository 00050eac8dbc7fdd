// IPVS's connection sync daemon (ipvsadm --start-daemon): its configuration, the checks made before anything
// is sent to the kernel (each naming the field), and `ipvsadm -L --daemon`'s output.
import { describe, type Problem } from "./validate.ts";
import { inetAton, inetPton6, ntoa4, ntop6 } from "./inet.ts";

export type DaemonState = "master" | "backup";

/** One sync daemon as started (absent optional fields take the kernel's defaults). */
export interface SyncDaemon {
  state: DaemonState;
  mcastIfn: string; // the interface the multicast goes out of (master) or is received on (backup)
  syncid: number; // 0..255; a backup takes only messages carrying its own (0: any, on a master: none set)
  syncMaxlen?: number; // the UDP payload size; the kernel clamps it (see expectedMaxlen)
  mcastGroup?: string; // IPv4 or IPv6 multicast group (default 224.0.0.81)
  mcastPort?: number; // default 8848
  mcastTtl?: number; // default 1
}

export const DEFAULT_MCAST_GROUP = "224.0.0.81";
export const DEFAULT_MCAST_PORT = 8848;
export const DEFAULT_MCAST_TTL = 1;
// an interface name as the kernel stores it: IFNAMSIZ (16) with the NUL
const IFNAME_MAX = 15;
// ipvsadm's bound: a UDP payload in an IPv4 packet (65535 - 20 - 8)
export const SYNC_MAXLEN_MAX = 65507;
const FIELDS = new Set(["state", "mcastIfn", "syncid", "syncMaxlen", "mcastGroup", "mcastPort", "mcastTtl"]);

const isInt = (v: unknown, lo: number, hi: number): v is number =>
  typeof v === "number" && Number.isInteger(v) && v >= lo && v <= hi;

/** Whether `a` is a multicast group: 224.0.0.0/4 or ff00::/8 (what the kernel requires). */
export function multicastFamily(a: string): "inet" | "inet6" | undefined {
  if (a.includes(":")) {
    const b = inetPton6(a);
    return b && b[0] === 0xff ? "inet6" : undefined;
  }
  const v = /^\d{1,3}(\.\d{1,3}){3}$/.test(a) ? inetAton(a) : undefined;
  return v !== undefined && v >>> 28 === 14 ? "inet" : undefined;
}

/** Why an interface name cannot name a Linux interface ("" when it can). */
export function ifnameProblem(v: unknown): string {
  if (typeof v !== "string") return `must be an interface name (a string), not ${describe(v)}`;
  if (!v.length) return "must not be empty";
  if (Buffer.byteLength(v) > IFNAME_MAX) return `'${v.slice(0, 40)}' is longer than ${IFNAME_MAX} bytes`;
  if (v === "." || v === ".." || /[/:\s\0]/.test(v)) return `'${v}' cannot be an interface name`;
  return "";
}

/** Every problem with a daemon's configuration, each naming its field under `path` (unknown keys too). */
export function validateDaemon(d: unknown, path = "daemon"): Problem[] {
  const ps: Problem[] = [];
  const bad = (f: string, message: string) => ps.push({ path: `${path}.${f}`, message });
  if (typeof d !== "object" || d === null || Array.isArray(d))
    return [{ path, message: `must be an object, not ${describe(d)}` }];
  const o = d as Record<string, unknown>;
  for (const k of Object.keys(o)) if (!FIELDS.has(k)) bad(k, `unknown field (one of ${[...FIELDS].join(", ")})`);
  if (o.state !== "master" && o.state !== "backup")
    bad("state", `must be "master" or "backup", not ${describe(o.state)}`);
  const ifn = ifnameProblem(o.mcastIfn);
  if (ifn) bad("mcastIfn", ifn);
  if (!isInt(o.syncid, 0, 255)) bad("syncid", `must be an integer 0..255, not ${describe(o.syncid)}`);
  if (o.syncMaxlen !== undefined && !isInt(o.syncMaxlen, 1, SYNC_MAXLEN_MAX))
    bad("syncMaxlen", `must be an integer 1..${SYNC_MAXLEN_MAX}, not ${describe(o.syncMaxlen)}`);
  if (o.mcastGroup !== undefined && (typeof o.mcastGroup !== "string" || !multicastFamily(o.mcastGroup)))
    bad("mcastGroup", `must be an IPv4 or IPv6 multicast group (224.0.0.0/4, ff00::/8), not ${describe(o.mcastGroup)}`);
  if (o.mcastPort !== undefined && !isInt(o.mcastPort, 1, 65535))
    bad("mcastPort", `must be an integer 1..65535, not ${describe(o.mcastPort)}`);
  if (o.mcastTtl !== undefined && !isInt(o.mcastTtl, 1, 255))
    bad("mcastTtl", `must be an integer 1..255, not ${describe(o.mcastTtl)}`);
  return ps;
}

/** The payload size the kernel keeps for a requested one (start_sync_thread's clamp): a backup takes at
 * least 1024, and neither more than a UDP datagram holds over the group's family. */
export function expectedMaxlen(d: Pick<SyncDaemon, "state" | "mcastGroup">, requested: number): number {
  const hlen = d.mcastGroup && multicastFamily(d.mcastGroup) === "inet6" ? 40 + 8 : 20 + 8;
  return Math.min(Math.max(requested, d.state === "backup" ? 1024 : 1), 65535 - hlen);
}

/** Whether a running daemon (as the kernel reports it) is the configured one; a maxlen not configured
 * depends on the interface's MTU and is not compared. */
export function sameDaemon(want: SyncDaemon, got: SyncDaemon): boolean {
  const group = (g: string | undefined) => {
    const a = g ?? DEFAULT_MCAST_GROUP;
    const b = a.includes(":") ? inetPton6(a) : undefined;
    return b ? ntop6(b) : a;
  };
  return (
    want.state === got.state &&
    want.mcastIfn === got.mcastIfn &&
    want.syncid === got.syncid &&
    (want.syncMaxlen === undefined || expectedMaxlen(want, want.syncMaxlen) === got.syncMaxlen) &&
    group(want.mcastGroup) === group(got.mcastGroup) &&
    (want.mcastPort ?? DEFAULT_MCAST_PORT) === (got.mcastPort ?? DEFAULT_MCAST_PORT) &&
    (want.mcastTtl ?? DEFAULT_MCAST_TTL) === (got.mcastTtl ?? DEFAULT_MCAST_TTL)
  );
}

/** One daemon as ipvsadm's options would start it (for messages and logs). */
export function daemonArgs(d: SyncDaemon): string {
  let s = `--start-daemon ${d.state} --mcast-interface ${d.mcastIfn} --syncid ${d.syncid}`;
  if (d.syncMaxlen !== undefined) s += ` --sync-maxlen ${d.syncMaxlen}`;
  if (d.mcastGroup !== undefined) s += ` --mcast-group ${d.mcastGroup}`;
  if (d.mcastPort !== undefined) s += ` --mcast-port ${d.mcastPort}`;
  if (d.mcastTtl !== undefined) s += ` --mcast-ttl ${d.mcastTtl}`;
  return s;
}

/** `ipvsadm -L --daemon`: the master's line, then the backup's; the optional parts only when the kernel
 * reports them (Linux 4.x and later do). */
export function formatDaemons(ds: SyncDaemon[]): string {
  let out = "";
  for (const state of ["master", "backup"] as const) {
    const d = ds.find((x) => x.state === state);
    if (!d) continue;
    out += `${state} sync daemon (mcast=${d.mcastIfn}, syncid=${d.syncid}`;
    if (d.syncMaxlen) out += `, maxlen=${d.syncMaxlen}`;
    if (d.mcastGroup) out += `, group=${d.mcastGroup}`;
    if (d.mcastPort) out += `, port=${d.mcastPort}`;
    if (d.mcastTtl) out += `, ttl=${d.mcastTtl}`;
    out += ")\n";
  }
  return out;
}

/** A group as the kernel reports it (4 or 16 bytes) in inet_ntop's text. */
export function groupText(b: Uint8Array): string {
  return b.length === 4 ? ntoa4(((b[0] << 24) | (b[1] << 16) | (b[2] << 8) | b[3]) >>> 0) : ntop6(b);
}
