// Test helpers run inside the VM: ipvsadm command lines for the model's shapes (test-only: the real
// ipvsadm front end is src/model/ipvsadm.ts), a seeded random generator, and a JSON result printer.
import { execFileSync, execSync } from "node:child_process";
import type { VirtualService, RealServer } from "../../src/model/types.ts";

export function svcArg(s: VirtualService): string[] {
  if (s.fwmark) return s.family === "inet6" ? ["-f", String(s.fwmark), "-6"] : ["-f", String(s.fwmark)];
  const a = s.addr!.includes(":") ? `[${s.addr}]:${s.port}` : `${s.addr}:${s.port}`;
  return [s.protocol === "udp" ? "-u" : s.protocol === "sctp" ? "--sctp-service" : "-t", a];
}

export function addServiceArgs(s: VirtualService, edit = false): string[] {
  const a = [edit ? "-E" : "-A", ...svcArg(s), "-s", s.scheduler];
  if (s.persistent !== undefined) a.push("-p", String(s.persistent));
  if (s.netmask) a.push("-M", s.netmask);
  if (s.pe) a.push("--pe", s.pe);
  const b = s.flags.filter((f) => f !== "ops");
  if (b.length) a.push("-b", b.join(","));
  if (s.flags.includes("ops")) a.push("-o");
  return a;
}

export function addDestArgs(s: VirtualService, r: RealServer, edit = false): string[] {
  const a = [
    edit ? "-e" : "-a",
    ...svcArg(s),
    "-r",
    r.addr.includes(":") ? `[${r.addr}]:${r.port}` : `${r.addr}:${r.port}`,
  ];
  a.push(r.fwd === "masq" ? "-m" : r.fwd === "tunnel" ? "-i" : "-g", "-w", String(r.weight));
  if (r.upperThreshold) a.push("-x", String(r.upperThreshold));
  if (r.lowerThreshold) a.push("-y", String(r.lowerThreshold));
  if (r.fwd === "tunnel" && r.tunType) {
    a.push("--tun-type", r.tunType);
    if (r.tunType === "gue") a.push("--tun-port", String(r.tunPort));
    for (const f of r.tunFlags ?? []) a.push(`--tun-${f}`);
  }
  return a;
}

export const ipvsadm = (args: string[]) => execFileSync("ipvsadm", args, { encoding: "utf8" });
export const sh = (cmd: string) => execSync(cmd, { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });

/** mulberry32 */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function result(r: unknown): void {
  process.stdout.write("@@RESULT " + JSON.stringify(r, (_k, v) => (typeof v === "bigint" ? v.toString() : v)) + "\n");
}
