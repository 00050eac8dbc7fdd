// fwmark services in packet mode. IPVS finds a fwmark service by the mark netfilter's mangle table gave the
// packet (`iptables -t mangle -A PREROUTING ... -j MARK --set-mark N`), but AF_PACKET and AF_XDP hand wasmvs
// its copy before netfilter runs. So marked packets come another way: one rule per mark and protocol, in a
// chain of wasmvs's own jumped to from the END of mangle PREROUTING (after the operator's MARK rules there),
// queues them to a netfilter queue the packet addon reads (native/packet/nfqueue.h) with the mark. The addon
// drops the kernel's copy once it has it, as the takeover table does for address:port services. With N I/O
// threads (`--workers N`) each reads a queue of its own, queue .. queue + N - 1, and the rule balances over them
// (`--queue-balance`: a hash of the addresses and protocol, both directions alike, so a flow keeps one queue).
//
// iptables and not nftables: nft's own `queue` statement needs the nft_queue module, which some kernels lack
// (this machine's), while the NFQUEUE target works wherever iptables does; and the operator's MARK rules for
// IPVS are iptables rules in the same mangle chain, which fixes the order (a jump appended after them). A
// packet to an address:port service's VIP is taken by the takeover table at priority -300, before any mark:
// there the address:port service wins, where the kernel would look for the fwmark service first.
import { execFile } from "node:child_process";
import type { VirtualService } from "../model/types.ts";

const FWMARK_CHAIN = "WASMVS-FWMARK";

function run(cmd: string, args: string[], input?: string): Promise<string> {
  return new Promise((res, rej) => {
    const p = execFile(cmd, args, { timeout: 5000 }, (e, out, stderr) => {
      if (!e) return res(String(out));
      rej(
        new Error(
          (e as NodeJS.ErrnoException).code === "ENOENT"
            ? `${cmd} not found: fwmark services in packet mode queue marked packets with an iptables rule ` +
                "(install iptables)"
            : `${cmd} ${args.join(" ")}: ${String(stderr || e.message).trim()}`,
        ),
      );
    });
    if (input !== undefined) p.stdin!.end(input);
  });
}

// The chain's rules for one family: each mark's TCP, UDP and SCTP packets to the queue, or balanced over
// `queues` of them from `queue` on (bypass: with no reader, say wasmvs stopped, the kernel handles them as if
// the rule were not there).
function fwmarkRules(services: VirtualService[], v6: boolean, queue: number, queues: number): string[][] {
  const marks = [
    ...new Set(services.filter((s) => s.fwmark && (s.family === "inet6") === v6).map((s) => s.fwmark!)),
  ].sort((a, b) => a - b);
  return marks.flatMap((m) =>
    ["tcp", "udp", "sctp"].map((p) => [
      "-m",
      "mark",
      "--mark",
      String(m),
      "-p",
      p,
      "-j",
      "NFQUEUE",
      ...(queues > 1 ? ["--queue-balance", `${queue}:${queue + queues - 1}`] : ["--queue-num", String(queue)]),
      "--queue-bypass",
    ]),
  );
}

export class FwmarkQueueRules {
  private installed = { v4: false, v6: false };
  constructor(
    readonly queue: number,
    readonly queues = 1,
  ) {}

  // Makes the chain hold exactly these services' marks and puts the jump to it at the end of PREROUTING
  // again, after MARK rules appended since, in one iptables-restore transaction (no moment without the
  // rules). A family with no fwmark service has no chain.
  async sync(services: VirtualService[]): Promise<void> {
    for (const v6 of [false, true]) {
      const cmd = v6 ? "ip6tables" : "iptables",
        fam = v6 ? "v6" : "v4";
      const rules = fwmarkRules(services, v6, this.queue, this.queues);
      if (!rules.length) {
        if (this.installed[fam]) await this.removeFamily(v6);
        continue;
      }
      const body = (moveJump: boolean) =>
        `*mangle\n:${FWMARK_CHAIN} - [0:0]\n${rules.map((r) => `-A ${FWMARK_CHAIN} ${r.join(" ")}\n`).join("")}` +
        `${moveJump ? `-D PREROUTING -j ${FWMARK_CHAIN}\n` : ""}-A PREROUTING -j ${FWMARK_CHAIN}\nCOMMIT\n`;
      const restore = (text: string) => run(`${cmd}-restore`, ["--noflush", "-w", "5"], text);
      if (
        this.installed[fam] &&
        (await restore(body(true)).then(
          () => true,
          () => false,
        ))
      )
        continue;
      // first time, or the jump was taken away by hand: whatever is left of the chain goes, then it is made again
      await this.removeFamily(v6);
      await restore(body(false));
      this.installed[fam] = true;
    }
  }

  private async removeFamily(v6: boolean): Promise<void> {
    const cmd = v6 ? "ip6tables" : "iptables",
      t = ["-w", "5", "-t", "mangle"];
    this.installed[v6 ? "v6" : "v4"] = false;
    // every jump to it (a killed proxy's restarts may have left several), then the chain itself
    for (let i = 0; i < 64; i++) {
      const gone = await run(cmd, [...t, "-D", "PREROUTING", "-j", FWMARK_CHAIN]).then(
        () => false,
        () => true,
      );
      if (gone) break;
    }
    await run(cmd, [...t, "-F", FWMARK_CHAIN]).catch(() => {});
    await run(cmd, [...t, "-X", FWMARK_CHAIN]).catch(() => {});
  }

  async remove(): Promise<void> {
    if (this.installed.v4) await this.removeFamily(false);
    if (this.installed.v6) await this.removeFamily(true);
  }
}
