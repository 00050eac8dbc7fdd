// A linear rule walk over a real iptables ruleset (the iptables-restore text src/k8s writes for kube-proxy's
// iptables mode), with the netfilter semantics the kube-proxy rules use: exact -p/-d/-s (with masks and
// `!`), --dport, -m statistic --probability, -m addrtype --dst-type LOCAL, -m mark, -m conntrack --ctstate,
// -m recent (--rcheck misses for a new client, --set matches), jumps with returns, and the terminal
// targets. What it returns is the number of rules the kernel evaluates for one new connection, by table
// and hook, which is what the iptables cost model multiplies by a measured per-rule cost.
//
// It also finds the Services' positions in KUBE-SERVICES and their endpoints, which the benchmark uses to
// aim its connects at the first and the last Service in the chain.
import { ntoa4 } from "../model/inet.ts";

interface Rule {
  proto?: string;
  src?: Cidr;
  dst?: Cidr;
  dport?: number;
  prob?: number;
  dstLocal?: boolean;
  negDstLocal?: boolean;
  mark?: [number, number, boolean];
  ctstate?: [string[], boolean];
  recentCheck?: boolean;
  target: string;
  toDest?: string;
  xorMark?: boolean;
}
interface Cidr {
  addr: number;
  mask: number;
  neg: boolean;
}
interface Chains {
  [name: string]: Rule[];
}
export interface Ruleset {
  nat: Chains;
  filter: Chains;
}

const ip4 = (s: string) => s.split(".").reduce((a, b) => ((a << 8) | Number(b)) >>> 0, 0);
function cidr(s: string, neg: boolean): Cidr {
  const [a, l] = s.split("/");
  const len = l === undefined ? 32 : Number(l);
  const mask = len === 0 ? 0 : (0xffffffff << (32 - len)) >>> 0;
  return { addr: (ip4(a) & mask) >>> 0, mask, neg };
}

function tokens(line: string): string[] {
  const out: string[] = [];
  const re = /"((?:[^"\\]|\\.)*)"|(\S+)/g;
  let m: RegExpExecArray | null;
  while ((m = re.exec(line))) out.push(m[1] ?? m[2]);
  return out;
}

/** Parses iptables-restore text (only -A/-I rule lines of the nat and filter tables matter). */
export function parseRuleset(text: string): Ruleset {
  const rs: Ruleset = { nat: {}, filter: {} };
  let table: Chains | null = null;
  for (const line of text.split("\n")) {
    if (line.startsWith("*")) {
      table = line === "*nat" ? rs.nat : line === "*filter" ? rs.filter : null;
      continue;
    }
    if (!table) continue;
    if (line.startsWith(":")) {
      const c = line.slice(1).split(" ")[0];
      table[c] ??= [];
      continue;
    }
    if (!line.startsWith("-A ") && !line.startsWith("-I ")) continue;
    const t = tokens(line);
    const chain = t[1];
    const r: Rule = { target: "" };
    let neg = false;
    for (let i = 2; i < t.length; i++) {
      const a = t[i];
      if (a === "!") {
        neg = true;
        continue;
      }
      switch (a) {
        case "-p":
          r.proto = t[++i];
          break;
        case "-s":
          r.src = cidr(t[++i], neg);
          break;
        case "-d":
          r.dst = cidr(t[++i], neg);
          break;
        case "--dport":
          r.dport = Number(t[++i]);
          break;
        case "--probability":
          r.prob = Number(t[++i]);
          break;
        case "--dst-type":
          if (t[++i] === "LOCAL") {
            if (neg) r.negDstLocal = true;
            else r.dstLocal = true;
          }
          break;
        case "--mark": {
          if (r.target) break;
          const [v, m] = t[++i].split("/");
          r.mark = [Number(v), Number(m ?? "0xffffffff"), neg];
          break;
        }
        case "--ctstate":
          r.ctstate = [t[++i].split(","), neg];
          break;
        case "--rcheck":
          r.recentCheck = true;
          break;
        case "--xor-mark":
          r.xorMark = true;
          i++;
          break;
        case "-j":
          r.target = t[++i];
          break;
        case "--to-destination":
          r.toDest = t[++i];
          break;
        case "--comment":
          i++;
          break;
        default:
          break;
      }
      neg = false;
    }
    (table[chain] ??= []).push(r);
  }
  return rs;
}

interface Packet {
  proto: string;
  src: number;
  dst: number;
  dport: number;
}
interface WalkResult {
  nat: number;
  filter: number;
  post: number;
  total: number;
  dnat?: string;
  verdict: string;
}

const TERMINAL = new Set(["ACCEPT", "DROP", "REJECT", "DNAT", "MASQUERADE", "SNAT"]);

/** Walks one new connection's first packet through nat PREROUTING, filter FORWARD and nat POSTROUTING. */
export class Walker {
  constructor(
    readonly rs: Ruleset,
    readonly localAddrs: Set<number> = new Set(),
    readonly rnd: () => number = Math.random,
  ) {}

  private matches(r: Rule, p: Packet, st: { mark: number; ct: Set<string> }): boolean {
    if (r.proto && r.proto !== p.proto) return false;
    if (r.src && ((p.src & r.src.mask) >>> 0 === r.src.addr) === r.src.neg) return false;
    if (r.dst && ((p.dst & r.dst.mask) >>> 0 === r.dst.addr) === r.dst.neg) return false;
    if (r.dport !== undefined && r.dport !== p.dport) return false;
    if (r.dstLocal && !this.localAddrs.has(p.dst)) return false;
    if (r.negDstLocal && this.localAddrs.has(p.dst)) return false;
    if (r.mark && ((st.mark & r.mark[1]) >>> 0 === (r.mark[0] & r.mark[1])) === r.mark[2]) return false;
    if (r.ctstate && r.ctstate[0].some((s) => st.ct.has(s)) === r.ctstate[1]) return false;
    if (r.recentCheck) return false;
    if (r.prob !== undefined && !(this.rnd() < r.prob)) return false;
    return true;
  }

  // returns [rules evaluated, verdict]
  private chain(
    table: Chains,
    name: string,
    p: Packet,
    st: { mark: number; ct: Set<string>; dnat?: string },
    depth = 0,
  ): [number, string] {
    const rules = table[name];
    if (!rules || depth > 16) return [0, "RETURN"];
    let n = 0;
    for (const r of rules) {
      n++;
      if (!this.matches(r, p, st)) continue;
      const t = r.target;
      if (t === "RETURN") return [n, "RETURN"];
      if (t === "MARK") {
        st.mark = r.xorMark ? (st.mark ^ 0x4000) >>> 0 : (st.mark | 0x4000) >>> 0;
        continue;
      }
      if (TERMINAL.has(t)) {
        if (t === "DNAT") st.dnat = r.toDest;
        return [n, t];
      }
      const [m, v] = this.chain(table, t, p, st, depth + 1);
      n += m;
      if (v !== "RETURN") return [n, v];
    }
    return [n, "RETURN"];
  }

  walk(p: Packet): WalkResult {
    const st = { mark: 0, ct: new Set(["NEW"]), dnat: undefined as string | undefined };
    const [nat] = this.chain(this.rs.nat, "PREROUTING", p, st);
    if (st.dnat) st.ct.add("DNAT");
    const after: Packet = st.dnat
      ? { ...p, dst: ip4(st.dnat.split(":")[0]), dport: Number(st.dnat.split(":")[1] ?? p.dport) }
      : p;
    const [filter, fv] = this.chain(this.rs.filter, "FORWARD", after, st);
    const [post] = this.chain(this.rs.nat, "POSTROUTING", after, st);
    return { nat, filter, post, total: nat + filter + post, dnat: st.dnat, verdict: fv === "RETURN" ? "ACCEPT" : fv };
  }
}

export interface ServiceTarget {
  vip: string;
  port: number;
  proto: string;
  position: number;
  chain: string;
  endpoints: string[];
}

/** Every KUBE-SERVICES rule to a KUBE-SVC-/KUBE-SVL- chain, in chain order, with its endpoints (ip:port). */
export function serviceTargets(rs: Ruleset): ServiceTarget[] {
  const out: ServiceTarget[] = [];
  const svc = rs.nat["KUBE-SERVICES"] ?? [];
  svc.forEach((r, i) => {
    if (!r.dst || r.dport === undefined || !/^KUBE-SV[CL]-/.test(r.target)) return;
    const eps: string[] = [];
    for (const x of rs.nat[r.target] ?? [])
      if (x.target.startsWith("KUBE-SEP-")) {
        for (const y of rs.nat[x.target] ?? []) if (y.toDest && !eps.includes(y.toDest)) eps.push(y.toDest);
      }
    const a = r.dst.addr;
    out.push({
      vip: ntoa4(a),
      port: r.dport,
      proto: r.proto ?? "tcp",
      position: i + 1,
      chain: r.target,
      endpoints: eps,
    });
  });
  return out;
}

export const ipv4Number = ip4;
