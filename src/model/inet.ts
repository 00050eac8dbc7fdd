// Address parsing and printing with the C library's exact semantics, as ipvsadm uses them:
// inet_aton (IPv4 input: "10.1" and "0x0a.0.0.1" are addresses too), inet_pton (IPv6 input), inet_ntop
// (IPv6 output: RFC 5952 compression, "::a.b.c.d" and "::ffff:a.b.c.d" tails), inet_ntoa.
// No I/O here: the module loads in a browser as well.

export const AF_INET = 2;
export const AF_INET6 = 10;

export const IPPROTO_TCP = 6;
export const IPPROTO_UDP = 17;
export const IPPROTO_SCTP = 132;

/** inet_aton: 1 to 4 parts, each decimal, octal (leading 0) or hex (0x); the last part fills the rest. */
export function inetAton(s: string): number | undefined {
  if (!s.length) return undefined;
  const parts = s.split(".");
  if (parts.length > 4) return undefined;
  const vals: number[] = [];
  for (const p of parts) {
    let v: number;
    if (/^0[xX][0-9a-fA-F]*$/.test(p)) v = p.length === 2 ? 0 : parseInt(p.slice(2), 16);
    else if (/^0[0-7]*$/.test(p)) v = p.length === 1 ? 0 : parseInt(p, 8);
    else if (/^[1-9][0-9]*$/.test(p)) v = parseInt(p, 10);
    else return undefined;
    if (!Number.isFinite(v) || v > 0xffffffff) return undefined;
    vals.push(v);
  }
  const n = vals.length;
  for (let i = 0; i < n - 1; i++) if (vals[i] > 255) return undefined;
  const last = vals[n - 1];
  const maxLast = [0xffffffff, 0xffffff, 0xffff, 0xff][n - 1];
  if (last > maxLast) return undefined;
  let v = 0;
  for (let i = 0; i < n - 1; i++) v += vals[i] * 2 ** (24 - 8 * i);
  return (v + last) >>> 0;
}

/** Strict dotted quad (inet_pton AF_INET): exactly four decimal parts 0..255, no leading zeros. */
function inetPton4(s: string): number | undefined {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(s);
  if (!m) return undefined;
  let v = 0;
  for (let i = 1; i <= 4; i++) {
    const p = m[i];
    if (p.length > 1 && p[0] === "0") return undefined;
    const x = Number(p);
    if (x > 255) return undefined;
    v = v * 256 + x;
  }
  return v >>> 0;
}

/** inet_pton AF_INET6 into 16 bytes, or undefined. */
export function inetPton6(s: string): Uint8Array | undefined {
  if (!/^[0-9a-fA-F:.]+$/.test(s)) return undefined;
  let head = s;
  let tail: number[] = [];
  const v4m = /(?:^|:)(\d+\.\d+\.\d+\.\d+)$/.exec(s);
  if (v4m) {
    const v4 = inetPton4(v4m[1]);
    if (v4 === undefined) return undefined;
    tail = [v4 >>> 16, v4 & 0xffff];
    head = s.slice(0, s.length - v4m[1].length);
    if (head.endsWith(":") && !head.endsWith("::")) head = head.slice(0, -1);
  } else if (s.includes(".")) return undefined;
  const dbl = head.indexOf("::");
  if (dbl >= 0 && head.indexOf("::", dbl + 1) >= 0) return undefined;
  const parseGroups = (t: string): number[] | undefined => {
    if (t === "") return [];
    const gs = t.split(":");
    const out: number[] = [];
    for (const g of gs) {
      if (!/^[0-9a-fA-F]{1,4}$/.test(g)) return undefined;
      out.push(parseInt(g, 16));
    }
    return out;
  };
  let groups: number[];
  if (dbl >= 0) {
    const a = parseGroups(head.slice(0, dbl));
    const b = parseGroups(head.slice(dbl + 2));
    if (!a || !b) return undefined;
    const fill = 8 - tail.length - a.length - b.length;
    if (fill < 1) return undefined;
    groups = [...a, ...new Array(fill).fill(0), ...b, ...tail];
  } else {
    const a = parseGroups(head);
    if (!a) return undefined;
    groups = [...a, ...tail];
    if (groups.length !== 8) return undefined;
  }
  const out = new Uint8Array(16);
  groups.forEach((g, i) => {
    out[2 * i] = g >> 8;
    out[2 * i + 1] = g & 0xff;
  });
  return out;
}

export function ntoa4(v: number): string {
  return `${(v >>> 24) & 255}.${(v >>> 16) & 255}.${(v >>> 8) & 255}.${v & 255}`;
}

/** inet_ntop AF_INET6 (glibc): longest zero run of 2+ groups compressed, first one on a tie; IPv4 tails. */
export function ntop6(b: Uint8Array): string {
  const w: number[] = [];
  for (let i = 0; i < 8; i++) w.push((b[2 * i] << 8) | b[2 * i + 1]);
  let best = -1,
    bestLen = 0;
  for (let i = 0; i < 8; ) {
    if (w[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && w[j] === 0) j++;
    if (j - i > bestLen) {
      best = i;
      bestLen = j - i;
    }
    i = j;
  }
  if (bestLen < 2) best = -1;
  let out = "";
  for (let i = 0; i < 8; i++) {
    if (best >= 0 && i >= best && i < best + bestLen) {
      if (i === best) out += ":";
      continue;
    }
    if (i !== 0) out += ":";
    if (i === 6 && best === 0 && (bestLen === 6 || (bestLen === 5 && w[5] === 0xffff))) {
      out += `${b[12]}.${b[13]}.${b[14]}.${b[15]}`;
      break;
    }
    out += w[i].toString(16);
  }
  if (best >= 0 && best + bestLen === 8) out += ":";
  return out;
}

/** A literal (as the model stores it) to family and 16 bytes (IPv4 in the first 4, rest zero). */
export function parseLiteral(addr: string): { af: number; bytes: Uint8Array } | undefined {
  const v4 = inetPton4(addr);
  if (v4 !== undefined) {
    const bytes = new Uint8Array(16);
    bytes[0] = v4 >>> 24;
    bytes[1] = (v4 >>> 16) & 255;
    bytes[2] = (v4 >>> 8) & 255;
    bytes[3] = v4 & 255;
    return { af: AF_INET, bytes };
  }
  const v6 = inetPton6(addr);
  if (v6) return { af: AF_INET6, bytes: v6 };
  return undefined;
}

export function afOfLiteral(addr: string | undefined): number {
  if (addr === undefined) return AF_INET;
  return addr.includes(":") ? AF_INET6 : AF_INET;
}

/** The canonical text of an address, as inet_ntop prints it ("fd00:0::1" -> "fd00::1"). */
export function canonicalAddr(addr: string): string {
  const p = parseLiteral(addr);
  if (!p) return addr;
  return p.af === AF_INET ? ntoa4(word(p.bytes, 0)) : ntop6(p.bytes);
}

/** Big-endian 32-bit word i of a 16-byte address, as ntohl(s6_addr32[i]). */
export function word(b: Uint8Array, i: number): number {
  return ((b[4 * i] << 24) | (b[4 * i + 1] << 16) | (b[4 * i + 2] << 8) | b[4 * i + 3]) >>> 0;
}

export function isContiguousMask(v: number): boolean {
  const inv = ~v >>> 0;
  return ((inv + 1) & inv) >>> 0 === 0;
}

export function protoNumber(p: string | undefined): number {
  switch (p) {
    case "tcp":
      return IPPROTO_TCP;
    case "udp":
      return IPPROTO_UDP;
    case "sctp":
      return IPPROTO_SCTP;
    default:
      return 0;
  }
}
