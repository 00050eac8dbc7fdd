// Records the kernel's sync messages for test/sync-codec.test.ts: boots the kernel VM, runs
// test/kernel-vm/sync-capture.sh there (a master director with services of every kind, connections in many
// states, a listener joined to the sync group) and writes what it saw to test/fixtures/sync/kernel-capture.json.
//   node --import tsx test/kernel-vm/sync-capture.ts [--from SAVED-OUTPUT]
import { readFileSync, writeFileSync } from "node:fs";
import { runInVm, vmEnv } from "../../bench/kernel-sync.ts";
import { projectRoot } from "../helpers/vm-share.ts";

export const CAPTURE_MODULES =
  "ip_vs ip_vs_rr nf_conntrack veth dummy ipip tunnel4 ip_tunnel iptable_mangle xt_mark xt_tcpudp";

export interface SyncCapture {
  kernel: string;
  phases: { version: number; lnc: string[]; proc: string[]; datagrams: { t: number; hex: string }[] }[];
}

export function parseCapture(out: string): SyncCapture {
  const part = (name: string): string[] => {
    const at = out.indexOf(`@@${name}\n`);
    if (at < 0) throw new Error(`the capture has no @@${name} section`);
    const rest = out.slice(at + name.length + 3);
    return rest.slice(0, rest.search(/^@@/m)).split("\n").filter(Boolean);
  };
  const dgrams = (name: string) => part(name).map((l) => JSON.parse(l) as { t: number; hex: string });
  return {
    kernel: (out.match(/^@@KERNEL (.*)$/m) ?? [])[1] ?? "",
    phases: [
      { version: 1, lnc: part("LNC1"), proc: part("PROC1"), datagrams: dgrams("DGRAMS1") },
      { version: 0, lnc: part("LNC2"), proc: [], datagrams: dgrams("DGRAMS2") },
    ],
  };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const from = process.argv.indexOf("--from");
  let out: string;
  if (from > 0) out = readFileSync(process.argv[from + 1], "utf8");
  else {
    const env = { ...vmEnv(), IPVSVM_MODULES: CAPTURE_MODULES, IPVSVM_TIMEOUT: "900" };
    const r = await runInVm("echo @@KERNEL $(uname -r) && bash test/kernel-vm/sync-capture.sh", env);
    if (r.code !== 0) throw new Error(`the capture failed in the VM (exit ${r.code})`);
    out = r.stdout;
  }
  const cap = parseCapture(out);
  const file = `${projectRoot}/test/fixtures/sync/kernel-capture.json`;
  writeFileSync(file, JSON.stringify(cap, null, 1) + "\n");
  console.log(`${file}: ${cap.phases.map((p) => `v${p.version} ${p.datagrams.length} datagrams`).join(", ")}`);
}
