// Normal forms of service and real server keys: one spelling per address, so "fd00:0::1" and "fd00::1"
// name one service (shared by the reconciler, the drift check and the sync loop).
import type { VirtualService, RealServer } from "../model/types.ts";
import { serviceKey, realServerKey } from "../model/types.ts";
import { addrBytes, formatAddr } from "../core/addr.ts";
import * as C from "./constants.ts";

function canonAddr(a: string): string {
  if (a.indexOf(":") < 0) return a; // IPv4 has one spelling (a bad one fails when encoded)
  return formatAddr(C.AF_INET6, addrBytes(a));
}
const keyCache = new WeakMap<object, string>();
/** serviceKey with the address in canonical form ("fd00:0::1" and "fd00::1" are one service). Cached per
 * object: desired states are treated as immutable (a change is a new object). */
export function canonServiceKey(s: VirtualService): string {
  let k = keyCache.get(s);
  if (k === undefined) {
    k = canonServiceKeyOf(s);
    keyCache.set(s, k);
  }
  return k;
}
// uncached: for objects met once (a dump's), which would only grow the WeakMap the collector must walk
export function canonServiceKeyOf(s: VirtualService): string {
  if (s.fwmark || (s.addr ?? "").indexOf(":") < 0) return serviceKey(s);
  return serviceKey({ ...s, addr: canonAddr(s.addr ?? "") });
}
export function canonRealServerKey(r: Pick<RealServer, "addr" | "port">): string {
  return r.addr.indexOf(":") < 0 ? `${r.addr}:${r.port}` : realServerKey({ addr: canonAddr(r.addr), port: r.port });
}
