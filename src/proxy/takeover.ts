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

// The ruleset text; operators who set suppressKernel: false can install the same rules themselves. The
// services and local addresses are set elements behind one rule per family: a hash lookup per packet,
// whatever the number of services (one rule per service would be a linear walk for every packet, and
// every reply would walk all of it to reach the local address's rule). A port-0 service's address and protocol
// go in a set of their own, matched whatever the port.
function takeoverRuleset(interfaces: string[], services: VirtualService[], localAddrs: string[]): string {
  const ifs = `iifname { ${interfaces.map((i) => JSON.stringify(i)).join(", ")} }`;
  const sets: string[] = [],
    rules: string[] = [];
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
  }
  return `table inet ${TAKEOVER_TABLE} {
${sets.map((x) => x + "\n").join("")}  chain prerouting {
    type filter hook prerouting priority -300; policy accept;
${rules.map((r) => `    ${r}`).join("\n")}
  }
}
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
  async sync(services: VirtualService[]): Promise<void> {
    await nft(
      `table inet ${TAKEOVER_TABLE}\ndelete table inet ${TAKEOVER_TABLE}\n` +
        `${takeoverRuleset(this.interfaces, services, this.localAddrs)}`,
    );
    this.installed = true;
  }

  async remove(): Promise<void> {
    if (!this.installed) return;
    this.installed = false;
    await nft(`table inet ${TAKEOVER_TABLE}\ndelete table inet ${TAKEOVER_TABLE}\n`).catch(() => {});
  }
}
