// What a reconcile pass did: the changes applied, the ones refused, what still drains; and its text form.

export type ChangeKind =
  | "add-service"
  | "edit-service"
  | "delete-service"
  | "add-rs"
  | "edit-rs"
  | "delete-rs"
  | "drain-rs"
  | "restore-rs"
  | "timeouts"
  | "sysctl";

export interface Change {
  kind: ChangeKind;
  service?: string; // service key
  rs?: string; // real server key
  fields?: string[]; // what changed ("weight 3 → 1")
  reason?: string; // why (deletes after a drain: "drained", "drain bound reached (n conns)")
}
export interface Failure extends Change {
  error: string;
  errno?: number;
}
export interface DrainState {
  service: string;
  rs: string;
  since: number;
  activeConns: number;
  inactConns: number;
  serviceRemoved: boolean;
}

export interface ReconcileReport {
  changes: Change[]; // applied (accepted by the kernel)
  failures: Failure[]; // refused: the rest was applied; the next run retries these
  draining: DrainState[]; // real servers still draining after this run
  notes: string[]; // things worth knowing (mh without fallback, ...)
  refreshed: boolean; // the kernel was re-read
  messages: number; // netlink change messages sent
  ms: number;
}

export function describeChange(c: Change): string {
  const what = c.kind.endsWith("-rs")
    ? `real server ${c.rs} of ${c.service}`
    : c.kind.endsWith("-service")
      ? `service ${c.service}`
      : c.kind;
  const verb = (
    {
      "add-service": "add",
      "edit-service": "edit",
      "delete-service": "delete",
      "add-rs": "add",
      "edit-rs": "edit",
      "delete-rs": "delete",
      "drain-rs": "drain (weight 0)",
      "restore-rs": "restore",
      timeouts: "set",
      sysctl: "set",
    } as const
  )[c.kind];
  return `${verb} ${what}${c.fields?.length ? `: ${c.fields.join(", ")}` : ""}${c.reason ? ` (${c.reason})` : ""}`;
}

export function formatReport(r: ReconcileReport): string {
  const out: string[] = [];
  for (const c of r.changes) out.push(describeChange(c));
  for (const f of r.failures) out.push(`FAILED ${describeChange(f)}: ${f.error}`);
  for (const d of r.draining)
    out.push(`draining real server ${d.rs} of ${d.service}: ${d.activeConns} active, ${d.inactConns} inactive`);
  for (const n of r.notes) out.push(`note: ${n}`);
  out.push(
    `${r.changes.length} change(s), ${r.failures.length} failure(s), ${r.messages} message(s), ` +
      `${r.ms.toFixed(1)} ms${r.refreshed ? ", kernel re-read" : ""}`,
  );
  return out.join("\n");
}
