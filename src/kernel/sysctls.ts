// kube-proxy's two IPVS sysctls: read and set under /proc/sys/net/ipv4/vs.
import { readFileSync, writeFileSync } from "node:fs";
import type { Change, Failure } from "./report.ts";

const SYSCTL_DIR = "/proc/sys/net/ipv4/vs";

export function sysctl(name: string): string | undefined {
  try {
    return readFileSync(`${SYSCTL_DIR}/${name}`, "utf8").trim();
  } catch {
    return undefined;
  }
}

/** kube-proxy's two sysctls: no persistence template pins a client to a weight-0 real server, and
 * packets of connections to deleted real servers expire their entry instead of being dropped. */
export function ensureSysctls(changes: Change[], failures: Failure[]): void {
  for (const name of ["expire_quiescent_template", "expire_nodest_conn"]) {
    const v = sysctl(name);
    if (v === undefined || v === "1") continue;
    try {
      writeFileSync(`${SYSCTL_DIR}/${name}`, "1");
      changes.push({ kind: "sysctl", fields: [`net.ipv4.vs.${name} ${v} → 1`] });
    } catch (e) {
      failures.push({ kind: "sysctl", fields: [`net.ipv4.vs.${name} → 1`], error: (e as Error).message });
    }
  }
}
