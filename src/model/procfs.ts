// The kernel's own text tables, parsed: /proc/net/ip_vs (services and destinations in the kernel's order,
// with counters) and /proc/net/ip_vs_conn (the connection table, which `ipvsadm -Lnc` prints). Useful to any
// target that reads procfs, and to the tests, which rebuild recorded kernel states from them.
import type { ConnectionEntry } from "./target.ts";
import type { ForwardingMethod, Protocol } from "./types.ts";
import { ntoa4, ntop6, inetPton6 } from "./inet.ts";

interface ProcDest {
  addr: string;
  port: number;
  fwd: ForwardingMethod;
  weight: number;
  activeConns: number;
  inactConns: number;
}
interface ProcService {
  protocol?: Protocol;
  addr?: string;
  port?: number;
  fwmark?: number;
  scheduler: string;
  ops: boolean;
  persistentJiffies?: number; // /proc prints svc->timeout in jiffies (seconds x HZ)
  netmaskHex?: string; // as printed: IPv4 mask, or the IPv6 prefix length byte-swapped
  dests: ProcDest[];
}
interface ProcIpVs {
  version: string;
  size: number;
  services: ProcService[];
}

const FWD: Record<string, ForwardingMethod> = { Masq: "masq", Local: "local", Tunnel: "tunnel", Route: "route" };

// a service line: "TCP  0A000001:0050 rr ops persistent 300 FFFFFFFF", its parts in order
const SERVICE_LINE = new RegExp(
  [
    /^(TCP|UDP|SCTP|FWM) {2}/, // protocol
    /(?:(\[[0-9a-f:]+\]|[0-9A-F]{8}):([0-9A-F]{4})|([0-9A-F]{8})) /, // address:port, or a fwmark
    /(\S+)\s+(ops\s+)?/, // scheduler, one-packet
    /(?:persistent (\d+) ([0-9A-F]+))?/, // persistence: timeout, netmask
  ]
    .map((part) => part.source)
    .join(""),
);

function hexAddr(s: string): string {
  if (s.startsWith("[")) return ntop6(inetPton6(s.slice(1, -1))!);
  if (s.includes(":")) return ntop6(inetPton6(s)!);
  return ntoa4(parseInt(s, 16) >>> 0);
}

export function parseProcIpVs(text: string): ProcIpVs {
  const lines = text.split("\n");
  const m = /^IP Virtual Server version (\S+) \(size=(\d+)\)/.exec(lines[0] ?? "");
  const out: ProcIpVs = { version: m?.[1] ?? "", size: Number(m?.[2] ?? 0), services: [] };
  for (const line of lines.slice(3)) {
    if (!line.trim()) continue;
    const d = /^ {2}-> (\[[0-9a-f:]+\]|[0-9A-F]{8}):([0-9A-F]{4})\s+(\S+)\s+(-?\d+)\s+(\d+)\s+(\d+)/.exec(line);
    if (d) {
      out.services[out.services.length - 1].dests.push({
        addr: hexAddr(d[1]),
        port: parseInt(d[2], 16),
        fwd: FWD[d[3]] ?? "route",
        weight: Number(d[4]),
        activeConns: Number(d[5]),
        inactConns: Number(d[6]),
      });
      continue;
    }
    const s = SERVICE_LINE.exec(line);
    if (!s) throw new Error(`unrecognised /proc/net/ip_vs line: ${JSON.stringify(line)}`);
    const svc: ProcService = { scheduler: s[5], ops: !!s[6], dests: [] };
    if (s[1] === "FWM") svc.fwmark = parseInt(s[4], 16) >>> 0;
    else {
      svc.protocol = s[1].toLowerCase() as Protocol;
      svc.addr = hexAddr(s[2]);
      svc.port = parseInt(s[3], 16);
    }
    if (s[7] !== undefined) {
      svc.persistentJiffies = Number(s[7]);
      svc.netmaskHex = s[8];
    }
    out.services.push(svc);
  }
  return out;
}

/** /proc/net/ip_vs_conn rows as ConnectionEntry (expiry in whole seconds there, so ms = s x 1000). */
export function parseProcIpVsConn(text: string): ConnectionEntry[] {
  const out: ConnectionEntry[] = [];
  for (const line of text.split("\n").slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f.length < 9) continue;
    const [proto, ca, cp, va, vp, da, dp, state, exp] = f;
    out.push({
      protocol: proto,
      expiresMs: Number(exp) * 1000,
      state,
      client: { addr: hexAddr(ca), port: parseInt(cp, 16) },
      virtual: { addr: hexAddr(va), port: parseInt(vp, 16) },
      dest: { addr: hexAddr(da), port: parseInt(dp, 16) },
      template: parseInt(cp, 16) === 0 && (state === "NONE" || state === "ASSURED") ? true : undefined,
    });
  }
  return out;
}
