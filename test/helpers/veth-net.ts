// Network namespaces joined by veth pairs, for the packet-mode tests: made fresh, removed on teardown and
// at exit. IPv6 DAD is off on every link so addresses answer at once.
import { execFileSync } from "node:child_process";

export function ip(args: string[]): void {
  execFileSync("ip", args, { stdio: ["ignore", "ignore", "pipe"] });
}

/** `ip netns exec NS ...`, its stdout as text. */
export function nsx(ns: string, args: string[], input?: string): string {
  return execFileSync("ip", ["netns", "exec", ns, ...args], {
    input,
    encoding: "utf8",
    stdio: ["pipe", "pipe", "pipe"],
  });
}

/** The namespaces in `names`, each link a veth pair [namespace A, device A, namespace B, device B]. */
export function vethNet(names: readonly string[]) {
  let up = false;
  const teardown = () => {
    for (const ns of names) {
      try {
        ip(["netns", "del", ns]);
      } catch {
        /* absent */
      }
    }
    up = false;
  };
  process.on("exit", () => {
    if (up) teardown();
  });
  const setup = (pairs: [string, string, string, string][]) => {
    teardown();
    for (const ns of names) {
      ip(["netns", "add", ns]);
      ip(["-n", ns, "link", "set", "lo", "up"]);
    }
    up = true;
    for (const [na, a, nb, b] of pairs) {
      ip(["link", "add", a, "netns", na, "type", "veth", "peer", "name", b, "netns", nb]);
      for (const [ns, dev] of [
        [na, a],
        [nb, b],
      ]) {
        nsx(ns, ["sysctl", "-q", "-w", `net.ipv6.conf.${dev}.accept_dad=0`]);
        ip(["-n", ns, "link", "set", dev, "up"]);
      }
    }
  };
  return { setup, teardown };
}
