// Excluded CIDRs (kube-proxy's --ipvs-exclude-cidrs): services whose VIP is inside are never touched.
import { isIPv4 } from "node:net";
import { addrBytes } from "../core/addr.ts";
import * as C from "./constants.ts";

export interface Cidr {
  af: number;
  bytes: Uint8Array;
  bits: number;
}
export function parseCidrs(cidrs: string[] = []): Cidr[] {
  return cidrs.map((c) => {
    const [a, b] = c.split("/");
    const af = isIPv4(a) ? C.AF_INET : C.AF_INET6;
    const bits = b === undefined ? (af === C.AF_INET ? 32 : 128) : Number(b);
    if (!Number.isInteger(bits) || bits < 0 || bits > (af === C.AF_INET ? 32 : 128)) throw new Error(`bad CIDR '${c}'`);
    return { af, bytes: addrBytes(a), bits };
  });
}
export function inCidrs(addr: string | undefined, cidrs: Cidr[]): boolean {
  if (!addr || !cidrs.length) return false;
  const af = isIPv4(addr) ? C.AF_INET : C.AF_INET6;
  const b = addrBytes(addr);
  next: for (const c of cidrs) {
    if (c.af !== af) continue;
    let i = 0;
    for (; i + 8 <= c.bits; i += 8) if (b[i >> 3] !== c.bytes[i >> 3]) continue next;
    if (i < c.bits) {
      const m = (0xff << (8 - (c.bits - i))) & 0xff;
      if ((b[i >> 3] & m) !== (c.bytes[i >> 3] & m)) continue;
    }
    return true;
  }
  return false;
}
