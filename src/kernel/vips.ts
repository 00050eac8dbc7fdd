// Virtual addresses on a dummy interface, over rtnetlink, as kube-proxy keeps kube-ipvs0: IPVS hooks
// LOCAL_IN, so a service's packets reach it only when its VIP is a local address. The binder creates the
// interface (type dummy, left down like kube-ipvs0: the kernel adds the local route for an address whatever
// the link state, and a down link answers no ARP for it), adds every wanted address as a /32 or /128 and
// removes the ones on that interface nobody wants. Minimal changes, each reported; a refused one is
// reported and retried by the next pass.
import { createRtNetlink, type RtNetlinkSocket } from "netlink";
import { isIP } from "node:net";
import { constants } from "node:os";
import { addrBytes, formatAddr, AF_INET, AF_INET6 } from "../core/addr.ts";
import { canonicalAddr } from "../model/inet.ts";

const osErrno = constants.errno;

const IFLA_INFO_KIND = 1; // inside IFLA_LINKINFO, which the netlink package's `linkinfo` writes
const RT_SCOPE_HOST = 254;
const ERRNO_TEXT: Record<number, string> = {
  1: "operation not permitted (binding addresses needs CAP_NET_ADMIN)",
  17: "already exists",
  19: "no such interface",
  95: "the kernel cannot make a dummy interface (CONFIG_DUMMY unset?)",
  99: "address not available",
};

class VipError extends Error {
  constructor(
    readonly what: string,
    readonly errno: number,
  ) {
    super(`${what}: ${ERRNO_TEXT[errno] ?? `errno ${errno}`}`);
  }
}

const errnoOf = (e: unknown): number => {
  const x = e as { errno?: number; code?: string };
  if (typeof x.errno === "number") return Math.abs(x.errno);
  // the netlink package rejects with "Request rejected: ENOTSUP" (the errno's name, not its number)
  const msg = String((e as Error)?.message);
  const name = /\b(E[A-Z0-9]+)\b/.exec(msg)?.[1];
  if (name && name in osErrno) return osErrno[name as keyof typeof osErrno];
  const m = /errno[ =:]*-?(\d+)/i.exec(msg);
  return m ? Number(m[1]) : 0;
};

/** Length-prefixed netlink attribute (padded to 4 bytes). */
function attr(type: number, payload: Buffer): Buffer {
  const len = 4 + payload.length;
  const b = Buffer.alloc((len + 3) & ~3);
  b.writeUInt16LE(len, 0);
  b.writeUInt16LE(type, 2);
  payload.copy(b, 4);
  return b;
}

/** An address as rtnetlink carries it: 4 bytes for IPv4, 16 for IPv6. */
const wireBytes = (a: string): Buffer => Buffer.from(addrBytes(a).subarray(0, isIP(a) === 4 ? 4 : 16));
/** Back to text, printed as the rest of wasmvs prints addresses (inet_ntop's rules). */
const wireText = (b: Buffer): string => formatAddr(b.length === 4 ? AF_INET : AF_INET6, b);

interface VipReport {
  added: string[];
  removed: string[];
  failures: { addr: string; error: string }[];
  createdLink: boolean;
}

export class VipBinder {
  private sock: RtNetlinkSocket;
  private index = 0;
  private readonly timeout: number;

  constructor(
    readonly iface = "kube-ipvs0",
    o: { timeoutMs?: number } = {},
  ) {
    this.sock = createRtNetlink();
    this.timeout = o.timeoutMs ?? 5000;
  }

  close(): void {
    this.sock.socket.close();
  }

  private async linkIndex(): Promise<number> {
    const links = await this.sock.getLinks(undefined, undefined, { timeout: this.timeout });
    return links.find((l) => l.attrs.ifname === this.iface)?.data.index ?? 0;
  }

  /** Creates the dummy interface when missing; returns whether it was created. */
  async ensureLink(): Promise<boolean> {
    this.index = await this.linkIndex();
    if (this.index) return false;
    const linkinfo = attr(IFLA_INFO_KIND, Buffer.from("dummy\0"));
    try {
      // CREATE|EXCL
      await this.sock.newLink({}, { ifname: this.iface, linkinfo }, { flags: 0x400 | 0x200, timeout: this.timeout });
    } catch (e) {
      const n = errnoOf(e);
      if (n !== 17) throw new VipError(`creating dummy interface ${this.iface}`, n);
    }
    this.index = await this.linkIndex();
    if (!this.index) throw new VipError(`creating dummy interface ${this.iface}`, 19);
    return true;
  }

  /** The addresses now on the interface. */
  async addresses(): Promise<string[]> {
    return [...(await this.prefixes()).keys()];
  }

  /** The addresses now on the interface with their prefix lengths (a delete must name the right one). */
  private async prefixes(): Promise<Map<string, number>> {
    if (!this.index) this.index = await this.linkIndex();
    if (!this.index) return new Map();
    const all = await this.sock.getAddresses(undefined, undefined, { timeout: this.timeout });
    return new Map(
      all
        .filter((a) => a.data.index === this.index && (a.attrs.local ?? a.attrs.address))
        .map((a) => [wireText((a.attrs.local ?? a.attrs.address)!), a.data.prefixlen ?? 0]),
    );
  }

  /**
   * Makes the interface carry exactly `wanted` (addresses of other interfaces are never touched);
   * addOnly: adds what is missing and removes nothing (the first half of a pass, before the table).
   */
  async sync(wanted: Iterable<string>, o: { addOnly?: boolean } = {}): Promise<VipReport> {
    const report: VipReport = { added: [], removed: [], failures: [], createdLink: await this.ensureLink() };
    const want = new Map<string, string>();
    for (const a of wanted) {
      if (!isIP(a)) {
        report.failures.push({ addr: a, error: "not an IP address" });
        continue;
      }
      want.set(canonicalAddr(a), a);
    }
    const have = await this.prefixes();
    for (const [canon, a] of want) {
      if (have.has(canon)) continue;
      try {
        await this.change("add", a);
        report.added.push(canon);
      } catch (e) {
        report.failures.push({ addr: a, error: (e as Error).message });
      }
    }
    for (const [a, prefixlen] of have) {
      if (want.has(a) || o.addOnly) continue;
      try {
        await this.change("del", a, prefixlen);
        report.removed.push(a);
      } catch (e) {
        report.failures.push({ addr: a, error: (e as Error).message });
      }
    }
    return report;
  }

  private async change(op: "add" | "del", a: string, prefixlen?: number): Promise<void> {
    const v6 = isIP(a) === 6;
    const b = wireBytes(a);
    const data = {
      family: v6 ? AF_INET6 : AF_INET,
      prefixlen: prefixlen ?? (v6 ? 128 : 32),
      index: this.index,
      scope: v6 ? 0 : RT_SCOPE_HOST,
    };
    const attrs = { local: b, address: b, ...(v6 ? { flags: { nodad: true } as never } : {}) };
    try {
      if (op === "add") await this.sock.newAddress(data, attrs, { flags: 0x400 | 0x200, timeout: this.timeout });
      else await this.sock.delAddress(data, attrs, { timeout: this.timeout });
    } catch (e) {
      const n = errnoOf(e);
      if (op === "add" && n === 17) return; // someone added it meanwhile: the state is what we want
      if (op === "del" && n === 99) return; // already gone
      throw new VipError(
        `${op === "add" ? "adding" : "removing"} ${a} ${op === "add" ? "to" : "from"} ${this.iface}`,
        n,
      );
    }
  }

  /** Removes the interface (and with it its addresses). */
  async deleteLink(): Promise<void> {
    if (!this.index) this.index = await this.linkIndex();
    if (!this.index) return;
    await this.sock.delLink({ index: this.index }, {}, { timeout: this.timeout });
    this.index = 0;
  }
}
