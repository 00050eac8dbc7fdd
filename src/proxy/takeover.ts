// Packet mode takes flows over from the kernel: AF_PACKET hands wasmvs a copy of each frame, but the
// kernel still receives the original, and for a VIP:port with no listener, or a reply to the full-NAT
// local address, it would answer with a TCP RST or an ICMP port unreachable and kill the flow. One
// nftables table drops exactly those packets in prerouting at priority -300 (raw): AF_PACKET taps run
// before netfilter, so wasmvs still sees them, and the kernel spends nothing on them (no conntrack entry,
// no routing, no socket lookup). Only the packet-mode interfaces are matched: the same VIP reached
// another way is left to the kernel. Installed and replaced atomically with one `nft -f -` transaction,
// removed on stop. Needs CAP_NET_ADMIN.
import { execFile } from "node:child_process";
import type { VirtualService } from "../model/types.ts";

export const TAKEOVER_TABLE = "wasmvs_packet";

function nft(input: string): Promise<void> {
  return new Promise((res, rej) => {
    const p = execFile("nft", ["-f", "-"], { timeout: 5000 }, (e, _o, stderr) => {
      if (!e) return res();
      const msg = String(stderr || e.message).trim();
      rej(
        new Error(
          (e as NodeJS.ErrnoException).code === "ENOENT"
            ? "nft not found (install nftables, or set proxy.suppressKernel: false and drop the traffic yourself)"
            : `nft: ${msg}`,
        ),
      );
    });
    p.stdin!.end(input);
  });
}

const l4 = (p: string | undefined) => p ?? "tcp";

// Masq real servers answer the client's own address, so their replies are not for this host: the kernel
// would forward its copy beside wasmvs's (ip_forward on), with the real server's source. A forward-hook
// chain drops those copies by their source (real server address, protocol and port; a port-0 service's,
// any port) and leaves the rest of the real servers' routed traffic alone. (An ICMP error about a masq
// connection is forwarded untranslated too; the client finds no socket for what it quotes and ignores it.)
export interface MasqDest {
  addr: string;
  protocol?: string;
  port: number; // 0: every port (a port-0 service's real server)
}

// The ruleset text; operators who set suppressKernel: false can install the same rules themselves. The
// services and local addresses are set elements behind one rule per family: a hash lookup per packet,
// whatever the number of services (one rule per service would be a linear walk for every packet, and
// every reply would walk all of it to reach the local address's rule). A port-0 service's address and protocol
// go in a set of their own, matched whatever the port.
function takeoverRuleset(
  interfaces: string[],
  services: VirtualService[],
  localAddrs: string[],
  masq: MasqDest[] = [],
): string {
  const ifs = `iifname { ${interfaces.map((i) => JSON.stringify(i)).join(", ")} }`;
  const sets: string[] = [],
    rules: string[] = [],
    fwdRules: string[] = [];
  for (const [fam, v6] of [
    ["ip", false],
    ["ip6", true],
  ] as const) {
    const addrType = v6 ? "ipv6_addr" : "ipv4_addr",
      sfx = v6 ? "6" : "4";
    const ofFamily = services.filter((s) => s.addr && !s.fwmark && s.addr.includes(":") === v6);
    const svc = [...new Set(ofFamily.filter((s) => s.port).map((s) => `${s.addr} . ${l4(s.protocol)} . ${s.port}`))];
    if (svc.length) {
      sets.push(
        `  set services${sfx} {\n    type ${addrType} . inet_proto . inet_service\n    elements = { ` +
          `${svc.join(", ")} }\n  }`,
      );
      rules.push(`${ifs} ${fam} daddr . meta l4proto . th dport @services${sfx} counter drop`);
    }
    // port-0 services take every port of their address and protocol
    const all = [...new Set(ofFamily.filter((s) => !s.port).map((s) => `${s.addr} . ${l4(s.protocol)}`))];
    if (all.length) {
      sets.push(`  set allports${sfx} {\n    type ${addrType} . inet_proto\n    elements = { ${all.join(", ")} }\n  }`);
      rules.push(`${ifs} ${fam} daddr . meta l4proto @allports${sfx} counter drop`);
    }
    const local = localAddrs.filter((a) => a.includes(":") === v6);
    if (local.length) {
      sets.push(`  set local${sfx} {\n    type ${addrType}\n    elements = { ${local.join(", ")} }\n  }`);
      rules.push(`${ifs} ${fam} daddr @local${sfx} meta l4proto { tcp, udp, sctp } counter drop`);
    }
    const mq = masq.filter((d) => d.addr.includes(":") === v6);
    const mqPort = [...new Set(mq.filter((d) => d.port).map((d) => `${d.addr} . ${l4(d.protocol)} . ${d.port}`))];
    if (mqPort.length) {
      sets.push(
        `  set masq${sfx} {\n    type ${addrType} . inet_proto . inet_service\n    elements = { ` +
          `${mqPort.join(", ")} }\n  }`,
      );
      fwdRules.push(`${ifs} ${fam} saddr . meta l4proto . th sport @masq${sfx} counter drop`);
    }
    const mqAll = [...new Set(mq.filter((d) => !d.port).map((d) => `${d.addr} . ${l4(d.protocol)}`))];
    if (mqAll.length) {
      sets.push(
        `  set masqall${sfx} {\n    type ${addrType} . inet_proto\n    elements = { ${mqAll.join(", ")} }\n  }`,
      );
      fwdRules.push(`${ifs} ${fam} saddr . meta l4proto @masqall${sfx} counter drop`);
    }
  }
  const forward = fwdRules.length
    ? `  chain forward {
    type filter hook forward priority -300; policy accept;
${fwdRules.map((r) => `    ${r}`).join("\n")}
  }
`
    : "";
  return `table inet ${TAKEOVER_TABLE} {
${sets.map((x) => x + "\n").join("")}  chain prerouting {
    type filter hook prerouting priority -300; policy accept;
${rules.map((r) => `    ${r}`).join("\n")}
  }
${forward}}
`;
}

export class Takeover {
  private installed = false;
  constructor(
    readonly interfaces: string[],
    readonly localAddrs: string[],
  ) {}

  // Replaces the table with one matching these services (an empty table is created first so the delete
  // in the same transaction never fails).
  async sync(services: VirtualService[], masq: MasqDest[] = []): Promise<void> {
    await nft(
      `table inet ${TAKEOVER_TABLE}\ndelete table inet ${TAKEOVER_TABLE}\n` +
        `${takeoverRuleset(this.interfaces, services, this.localAddrs, masq)}`,
    );
    this.installed = true;
  }

  async remove(): Promise<void> {
    if (!this.installed) return;
    this.installed = false;
    await nft(`table inet ${TAKEOVER_TABLE}\ndelete table inet ${TAKEOVER_TABLE}\n`).catch(() => {});
  }
}
