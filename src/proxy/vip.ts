// Virtual addresses: the proxy's listeners need each VIP to be a local address. With CAP_NET_ADMIN it
// adds them itself, on a dummy interface it creates (default "wasmvs0") or on loopback ("lo"), and
// removes what it added when the VIP goes away or the proxy stops. Without the right it adds nothing
// and says so; the VIPs must then already be local (or be 127.0.0.0/8, ::1).
import { execFile } from "node:child_process";
import { networkInterfaces } from "node:os";
import type { Logger } from "./log.ts";

function ip(args: string[]): Promise<{ ok: boolean; err: string }> {
  return new Promise((res) =>
    execFile("ip", args, { timeout: 5000 }, (e, _o, stderr) =>
      res({ ok: !e, err: String(stderr || e?.message || "").trim() }),
    ),
  );
}

function isLocalAddress(addr: string): boolean {
  if (/^127\./.test(addr) || addr === "::1") return true;
  for (const list of Object.values(networkInterfaces()))
    for (const a of list ?? []) if (a.address === addr) return true;
  return false;
}

export class VipManager {
  private added = new Set<string>();
  private createdLink = false;
  private denied = false;
  iface: string | null;
  constructor(
    readonly wanted: string | null,
    readonly log: Logger,
  ) {
    this.iface = wanted;
  }

  // Makes each address local where possible; returns the addresses that are still not local.
  async ensure(addrs: string[]): Promise<string[]> {
    const missing: string[] = [];
    for (const a of new Set(addrs)) {
      if (isLocalAddress(a) || this.added.has(a)) continue;
      if (!this.iface || this.denied) {
        missing.push(a);
        continue;
      }
      if (this.iface !== "lo" && !this.createdLink && !(await ip(["link", "show", "dev", this.iface])).ok) {
        const r = await ip(["link", "add", this.iface, "type", "dummy"]);
        if (!r.ok && /Operation not permitted/.test(r.err)) {
          this.deny(r.err);
          missing.push(a);
          continue;
        }
        if (!r.ok) {
          // a kernel without the dummy driver: loopback carries the VIPs instead
          this.log.warn("cannot create a dummy interface; using loopback for VIPs", {
            iface: this.iface,
            error: r.err,
          });
          this.iface = "lo";
        } else this.createdLink = true;
        if (this.createdLink) this.log.info("created dummy interface for VIPs", { iface: this.iface });
      }
      await ip(["link", "set", "dev", this.iface, "up"]);
      const v6 = a.includes(":");
      const r = await ip(
        v6
          ? ["-6", "addr", "add", `${a}/128`, "dev", this.iface, "nodad"]
          : ["addr", "add", `${a}/32`, "dev", this.iface],
      );
      if (!r.ok && !/File exists/.test(r.err)) {
        if (/Operation not permitted/.test(r.err)) this.deny(r.err);
        else this.log.warn("could not add VIP", { vip: a, error: r.err });
        missing.push(a);
        continue;
      }
      this.added.add(a);
      this.log.info("added VIP", { vip: a, iface: this.iface });
    }
    return missing;
  }

  private deny(err: string) {
    this.denied = true;
    this.log.warn("no right to add VIPs (needs CAP_NET_ADMIN); they must already be local", {
      iface: this.iface,
      error: err,
    });
  }

  async release(addr: string): Promise<void> {
    if (!this.added.delete(addr) || !this.iface) return;
    await ip(
      addr.includes(":")
        ? ["-6", "addr", "del", `${addr}/128`, "dev", this.iface]
        : ["addr", "del", `${addr}/32`, "dev", this.iface],
    );
    this.log.info("removed VIP", { vip: addr });
  }

  async cleanup(): Promise<void> {
    for (const a of [...this.added]) await this.release(a);
    if (this.createdLink && this.iface && this.iface !== "lo") {
      await ip(["link", "del", this.iface]);
      this.createdLink = false;
      this.log.info("removed dummy interface", { iface: this.iface });
    }
  }
}
