// What kube-proxy's IPVS mode keeps beside the IPVS tables, applied to the node: its ipsets (through
// `ipset restore`, minimal adds and deletes against what the kernel holds), its iptables chains (through
// `iptables-restore --noflush`, which rewrites only the KUBE-* chains it names) with the jumps from the
// built-in chains ensured, and the service addresses on the dummy interface (src/kernel/vips.ts).
// Each step reports what it changed; a refused step is reported and retried by the next pass, and an
// unchanged input is not sent again (a triggered sync costs what changed).
import { execFile } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import type { IpsetState, JumpRule } from "../k8s/ipvs.ts";
import { ipsetCreateLine } from "../k8s/ipvs.ts";
import { VipBinder } from "./vips.ts";

export interface HostFamilyState {
  family: "IPv4" | "IPv6";
  ipsets: IpsetState[];
  iptablesRestore: string;
  iptablesJumps: JumpRule[];
  bindAddrs: string[];
}

interface HostReport {
  ipsetAdds: number;
  ipsetDels: number;
  setsCreated: string[];
  iptables: ("restored" | "reapplied" | "unchanged")[]; // reapplied: the same text again (a full pass)
  jumpsAdded: string[];
  vipsAdded: string[];
  vipsRemoved: string[];
  sysctls: string[];
  failures: { step: string; error: string }[];
  ms: number;
}

function run(cmd: string, args: string[], input?: string): Promise<{ ok: boolean; out: string; err: string }> {
  return new Promise((res) => {
    const p = execFile(cmd, args, { timeout: 60_000, maxBuffer: 1 << 28 }, (e, out, err) => {
      const missing = (e as NodeJS.ErrnoException | null)?.code === "ENOENT";
      res({
        ok: !e,
        out: String(out),
        err: missing
          ? `${cmd} is not installed (IPVS mode needs ${cmd === "ipset" ? "ipset" : "iptables"})`
          : String(err || e?.message || "").trim(),
      });
    });
    if (input !== undefined) p.stdin?.end(input);
  });
}

/** `ipset save` output -> set name -> entries (as `add` lines write them). */
export function parseIpsetSave(text: string): Map<string, Set<string>> {
  const sets = new Map<string, Set<string>>();
  for (const line of text.split("\n")) {
    const w = line.trim().split(/\s+/);
    if (w[0] === "create") sets.set(w[1], sets.get(w[1]) ?? new Set());
    else if (w[0] === "add" && w.length >= 3) (sets.get(w[1]) ?? sets.set(w[1], new Set()).get(w[1])!).add(w[2]);
  }
  return sets;
}

/** The restore input turning `have` into `want` for these sets: creates, adds and deletes only. */
function ipsetDiffText(
  want: IpsetState[],
  have: Map<string, Set<string>>,
  addOnly = false,
): { text: string; adds: number; dels: number; created: string[] } {
  const lines: string[] = [],
    created: string[] = [];
  let adds = 0,
    dels = 0;
  for (const s of want) {
    const cur = have.get(s.name);
    if (!cur) {
      lines.push(ipsetCreateLine(s));
      created.push(s.name);
    }
    const wantSet = new Set(s.entries);
    for (const e of wantSet)
      if (!cur?.has(e)) {
        lines.push(`add ${s.name} ${e} -exist`);
        adds++;
      }
    if (cur && !addOnly)
      for (const e of cur)
        if (!wantSet.has(e)) {
          lines.push(`del ${s.name} ${e} -exist`);
          dels++;
        }
  }
  return { text: lines.length ? lines.join("\n") + "\n" : "", adds, dels, created };
}

/** A jump rule as iptables arguments (the comment's restore-format quotes removed). */
const jumpArgs = (j: JumpRule) => j.args.map((a) => a.replace(/^"(.*)"$/, "$1"));

export class HostRules {
  private lastIptables = new Map<string, string>();
  private binder?: VipBinder;

  constructor(readonly o: { bindInterface?: string | null } = {}) {
    if (o.bindInterface !== null) this.binder = new VipBinder(o.bindInterface ?? "kube-ipvs0");
  }

  close(): void {
    this.binder?.close();
  }

  /**
   * One pass over every family; `full` re-sends what is unchanged (drift repair). addOnly: only the
   * ipset entries and addresses that are missing, nothing removed and no iptables: run before the IPVS
   * table pass, so a new virtual server's address is bound and matched before the service exists (a
   * first connect would otherwise get ENETUNREACH); the whole apply after the table pass then removes
   * what went, after the virtual servers that used it.
   */
  async apply(
    families: HostFamilyState[],
    o: { full?: boolean; sysctls?: Record<string, number>; addOnly?: boolean } = {},
  ): Promise<HostReport> {
    const t0 = performance.now();
    const r: HostReport = {
      ipsetAdds: 0,
      ipsetDels: 0,
      setsCreated: [],
      iptables: [],
      jumpsAdded: [],
      vipsAdded: [],
      vipsRemoved: [],
      sysctls: [],
      failures: [],
      ms: 0,
    };
    // 0. the sysctls kube-proxy's IPVS mode sets (conntrack for the masquerade rules, ip_forward, ...)
    for (const [path, want] of Object.entries(o.sysctls ?? {})) {
      const file = `/proc/sys/${path}`;
      let have: string;
      try {
        have = readFileSync(file, "utf8").trim();
      } catch (e) {
        r.failures.push({ step: `sysctl ${path}`, error: (e as Error).message });
        continue;
      }
      if (have === String(want)) continue;
      try {
        writeFileSync(file, String(want));
        r.sysctls.push(`${path.replace(/\//g, ".")} ${have} → ${want}`);
      } catch (e) {
        r.failures.push({ step: `sysctl ${path}`, error: (e as Error).message });
      }
    }
    // 1. ipsets before the rules that match on them
    const allSets = families.flatMap((f) => f.ipsets);
    if (allSets.length) {
      const saved = await run("ipset", ["save"]);
      if (!saved.ok) r.failures.push({ step: "ipset save", error: saved.err });
      else {
        const d = ipsetDiffText(allSets, parseIpsetSave(saved.out), o.addOnly);
        if (d.text) {
          const res = await run("ipset", ["restore"], d.text);
          if (!res.ok) r.failures.push({ step: "ipset restore", error: res.err });
          else {
            r.ipsetAdds += d.adds;
            r.ipsetDels += d.dels;
            r.setsCreated.push(...d.created);
          }
        }
      }
    }
    // 2. iptables: the KUBE-* chains (the restore flushes only the chains it declares) then the jumps
    for (const f of families) {
      if (!f.iptablesRestore || o.addOnly) continue;
      const v6 = f.family === "IPv6";
      const restore = v6 ? "ip6tables-restore" : "iptables-restore",
        tables = v6 ? "ip6tables" : "iptables";
      if (!o.full && this.lastIptables.get(f.family) === f.iptablesRestore) {
        r.iptables.push("unchanged");
        continue;
      } // jumps checked on full passes
      {
        const res = await run(restore, ["--noflush", "-w", "5"], f.iptablesRestore);
        if (!res.ok) {
          r.failures.push({ step: restore, error: res.err });
          this.lastIptables.delete(f.family);
          continue;
        }
        r.iptables.push(this.lastIptables.get(f.family) === f.iptablesRestore ? "reapplied" : "restored");
        this.lastIptables.set(f.family, f.iptablesRestore);
      }
      for (const j of f.iptablesJumps) {
        const args = jumpArgs(j);
        const check = await run(tables, ["-w", "5", "-t", j.table, "-C", j.chain, ...args]);
        if (check.ok) continue;
        const ins = await run(tables, ["-w", "5", "-t", j.table, "-I", j.chain, ...args]);
        if (ins.ok) r.jumpsAdded.push(`${tables} -t ${j.table} ${j.chain} -j ${args[args.length - 1]}`);
        else r.failures.push({ step: `${tables} -t ${j.table} -I ${j.chain}`, error: ins.err });
      }
    }
    // 3. the service addresses, so the node takes their packets (IPVS hooks LOCAL_IN)
    if (this.binder) {
      try {
        const v = await this.binder.sync(
          families.flatMap((f) => f.bindAddrs),
          { addOnly: o.addOnly },
        );
        r.vipsAdded = v.added;
        r.vipsRemoved = v.removed;
        for (const f of v.failures) r.failures.push({ step: `bind ${f.addr}`, error: f.error });
      } catch (e) {
        r.failures.push({ step: `bind addresses on ${this.binder.iface}`, error: (e as Error).message });
      }
    }
    r.ms = performance.now() - t0;
    return r;
  }
}

export function formatHostReport(r: HostReport): string {
  const parts: string[] = [];
  if (r.sysctls.length) parts.push(`set ${r.sysctls.join(", ")}`);
  if (r.setsCreated.length) parts.push(`created ${r.setsCreated.length} ipset(s)`);
  if (r.ipsetAdds || r.ipsetDels) parts.push(`ipset +${r.ipsetAdds} -${r.ipsetDels} entries`);
  if (r.iptables.includes("restored")) parts.push("iptables KUBE-* chains restored");
  if (r.jumpsAdded.length) parts.push(`${r.jumpsAdded.length} jump rule(s) added`);
  if (r.vipsAdded.length || r.vipsRemoved.length)
    parts.push(`addresses +${r.vipsAdded.length} -${r.vipsRemoved.length}`);
  for (const f of r.failures) parts.push(`FAILED ${f.step}: ${f.error}`);
  return parts.length ? `node: ${parts.join("; ")} (${r.ms.toFixed(0)} ms)` : "";
}
