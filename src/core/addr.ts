// Address parsing and printing shared by the host modules.
import { isIPv4, isIPv6 } from "node:net";
import { ntop6 } from "../model/inet.ts";

export const AF_INET = 2;
export const AF_INET6 = 10;

export function afOf(addr: string): number {
  if (isIPv4(addr)) return AF_INET;
  if (isIPv6(addr)) return AF_INET6;
  throw new Error(`bad address '${addr}': not an IPv4 or IPv6 address`);
}

// 16 bytes in network order; IPv4 in the first 4
export function addrBytes(addr: string, out = new Uint8Array(16)): Uint8Array {
  out.fill(0);
  if (isIPv4(addr)) {
    const p = addr.split(".");
    for (let i = 0; i < 4; i++) out[i] = Number(p[i]);
    return out;
  }
  if (!isIPv6(addr)) throw new Error(`bad address '${addr}': not an IPv4 or IPv6 address`);
  let s = addr;
  // an embedded IPv4 tail (::ffff:1.2.3.4)
  const v4 = s.match(/(\d+\.\d+\.\d+\.\d+)$/);
  let tail: number[] = [];
  if (v4) {
    const b = v4[1].split(".").map(Number);
    tail = [(b[0] << 8) | b[1], (b[2] << 8) | b[3]];
    s = s.slice(0, -v4[1].length) + "0:0";
  }
  const [head, rest] = s.includes("::") ? s.split("::") : [s, undefined];
  const hs = head ? head.split(":") : [];
  const rs = rest !== undefined && rest !== "" ? rest.split(":") : [];
  const groups = new Array(8).fill(0);
  hs.forEach((g, i) => (groups[i] = parseInt(g, 16)));
  rs.forEach((g, i) => (groups[8 - rs.length + i] = parseInt(g, 16)));
  if (tail.length) {
    groups[6] = tail[0];
    groups[7] = tail[1];
  }
  for (let i = 0; i < 8; i++) {
    out[2 * i] = groups[i] >> 8;
    out[2 * i + 1] = groups[i] & 0xff;
  }
  return out;
}

// IPv6 as inet_ntop prints it (glibc's rules, as ipvsadm shows addresses)
export function formatAddr(af: number, b: Uint8Array): string {
  if (af === AF_INET) return `${b[0]}.${b[1]}.${b[2]}.${b[3]}`;
  return ntop6(b);
}
