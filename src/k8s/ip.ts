// IP addresses and CIDRs as kube-proxy sees them: Go's net.ParseIP "sloppy" parsing (IPv4 octets may carry
// leading zeros, an IPv4-mapped IPv6 address is IPv4) and net.IP.String() printing (RFC 5952 for IPv6).
export type Family = "IPv4" | "IPv6";

interface ParsedIP {
  family: Family;
  bytes: Uint8Array;
} // 4 or 16 bytes

function parseV4(s: string): Uint8Array | null {
  const parts = s.split(".");
  if (parts.length !== 4) return null;
  const b = new Uint8Array(4);
  for (let i = 0; i < 4; i++) {
    const p = parts[i];
    if (!/^[0-9]{1,3}$/.test(p)) return null;
    const n = Number(p); // ParseIPSloppy: leading zeros are decimal, not octal
    if (n > 255) return null;
    b[i] = n;
  }
  return b;
}

function parseV6(s: string): Uint8Array | null {
  if (s.length < 2 || s.includes("%")) return null;
  let head = s,
    tailV4: Uint8Array | null = null;
  const lastColon = s.lastIndexOf(":");
  if (s.indexOf(".", lastColon) > 0) {
    tailV4 = parseV4(s.slice(lastColon + 1));
    if (!tailV4) return null;
    head = s.slice(0, lastColon + 1) + "0:0";
  }
  const dbl = head.indexOf("::");
  if (dbl >= 0 && head.indexOf("::", dbl + 1) >= 0) return null;
  const groups: number[] = [];
  const parseGroups = (part: string): number[] | null => {
    if (part === "") return [];
    const out: number[] = [];
    for (const g of part.split(":")) {
      if (!/^[0-9a-fA-F]{1,4}$/.test(g)) return null;
      out.push(parseInt(g, 16));
    }
    return out;
  };
  if (dbl >= 0) {
    const a = parseGroups(head.slice(0, dbl)),
      b = parseGroups(head.slice(dbl + 2));
    if (!a || !b || a.length + b.length > 7) return null;
    groups.push(...a, ...new Array(8 - a.length - b.length).fill(0), ...b);
  } else {
    const a = parseGroups(head);
    if (a?.length !== 8) return null;
    groups.push(...a);
  }
  const bytes = new Uint8Array(16);
  for (let i = 0; i < 8; i++) {
    bytes[2 * i] = groups[i] >> 8;
    bytes[2 * i + 1] = groups[i] & 255;
  }
  if (tailV4) bytes.set(tailV4, 12);
  return bytes;
}

export function parseIP(s: string): ParsedIP | null {
  if (typeof s !== "string" || s === "") return null;
  if (!s.includes(":")) {
    const b = parseV4(s);
    return b ? { family: "IPv4", bytes: b } : null;
  }
  const b = parseV6(s);
  if (!b) return null;
  // ::ffff:a.b.c.d is an IPv4 address to Go
  if (b.slice(0, 10).every((x) => x === 0) && b[10] === 255 && b[11] === 255)
    return { family: "IPv4", bytes: b.slice(12) };
  return { family: "IPv6", bytes: b };
}

export function formatIP(ip: ParsedIP): string {
  const b = ip.bytes;
  if (b.length === 4) return `${b[0]}.${b[1]}.${b[2]}.${b[3]}`;
  const g: number[] = [];
  for (let i = 0; i < 8; i++) g.push((b[2 * i] << 8) | b[2 * i + 1]);
  // longest run of zero groups (length >= 2), first one on ties: RFC 5952
  let best = -1,
    bestLen = 0;
  for (let i = 0; i < 8; ) {
    if (g[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && g[j] === 0) j++;
    if (j - i > bestLen) {
      best = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = (x: number[]) => x.map((v) => v.toString(16)).join(":");
  if (bestLen < 2) return hex(g);
  return `${hex(g.slice(0, best))}::${hex(g.slice(best + bestLen))}`;
}

/** Canonical text of an address, or null when it does not parse. */
export function canonicalIP(s: string): string | null {
  const p = parseIP(s);
  return p ? formatIP(p) : null;
}

export function ipFamily(s: string): Family | null {
  return parseIP(s)?.family ?? null;
}

interface CIDR {
  family: Family;
  bytes: Uint8Array;
  prefix: number;
  text: string;
}

export function parseCIDR(s: string): CIDR | null {
  if (typeof s !== "string") return null;
  const slash = s.indexOf("/");
  if (slash < 0) return null;
  const ip = parseIP(s.slice(0, slash));
  const ptext = s.slice(slash + 1);
  if (!ip || !/^[0-9]{1,3}$/.test(ptext)) return null;
  let prefix = Number(ptext);
  const bits = ip.bytes.length * 8;
  // a v4-mapped IPv6 network written with an IPv6 prefix length
  if (ip.family === "IPv4" && s.slice(0, slash).includes(":")) prefix -= 96;
  if (prefix < 0 || prefix > bits) return null;
  const masked = ip.bytes.slice();
  for (let i = 0; i < masked.length; i++) {
    const keep = Math.max(0, Math.min(8, prefix - i * 8));
    masked[i] &= (0xff << (8 - keep)) & 0xff;
  }
  return {
    family: ip.family,
    bytes: masked,
    prefix,
    text: `${formatIP({ family: ip.family, bytes: masked })}/${prefix}`,
  };
}

export function cidrContains(c: CIDR, ip: ParsedIP | string): boolean {
  const p = typeof ip === "string" ? parseIP(ip) : ip;
  if (!p || p.family !== c.family) return false;
  for (let i = 0; i < c.bytes.length; i++) {
    const keep = Math.max(0, Math.min(8, c.prefix - i * 8));
    const m = (0xff << (8 - keep)) & 0xff;
    if ((p.bytes[i] & m) !== c.bytes[i]) return false;
  }
  return true;
}

export function isLoopback(ip: ParsedIP): boolean {
  if (ip.family === "IPv4") return ip.bytes[0] === 127;
  return ip.bytes.slice(0, 15).every((x) => x === 0) && ip.bytes[15] === 1;
}

export function isLinkLocalUnicast(ip: ParsedIP): boolean {
  if (ip.family === "IPv4") return ip.bytes[0] === 169 && ip.bytes[1] === 254;
  return ip.bytes[0] === 0xfe && (ip.bytes[1] & 0xc0) === 0x80;
}

/** net.JoinHostPort */
export function hostPort(ip: string, port: number): string {
  return ip.includes(":") ? `[${ip}]:${port}` : `${ip}:${port}`;
}
