// Every scheduler, written once. asc compiles this file into the data plane (assembly/sched/registry.ts
// makes each by its name) and tsc/tsx read it as TypeScript (src/model/schedulers.ts derives the host's
// names, the CLI and k8s checks, the service flags and the trace families from it), so the two sides
// cannot disagree. Keep it to what both compilers accept: plain fields, literals, no functions.
//
// id: what crosses the boundary (svcAdd's sched argument, svcInfo's SVC_SCHED, a trace record's W_KIND);
// the ids are 0..n-1 in list order, and test/boundary.test.ts checks that they stay so.
// family: how a decision is explained (src/core/trace.ts): rr, wrr, least, twos, hash or locality.
// flags: the names ipvsadm -b gives this scheduler's flag-1, flag-2 and flag-3 (sh-fallback is flag-1).
// kernel: Linux has it (ip_vs_<name>.ko); the others exist only in wasmvs.
export class SchedulerKind {
  name: string = "";
  id: i32 = 0;
  family: string = "";
  flags: string[] = [];
  kernel: bool = true;
}

export const SCHEDULER_KINDS: SchedulerKind[] = [
  { name: "rr", id: 0, family: "rr", flags: [], kernel: true },
  { name: "wrr", id: 1, family: "wrr", flags: [], kernel: true },
  { name: "lc", id: 2, family: "least", flags: [], kernel: true },
  { name: "wlc", id: 3, family: "least", flags: [], kernel: true },
  { name: "lblc", id: 4, family: "locality", flags: [], kernel: true },
  { name: "lblcr", id: 5, family: "locality", flags: [], kernel: true },
  { name: "dh", id: 6, family: "hash", flags: [], kernel: true },
  { name: "sh", id: 7, family: "hash", flags: ["sh-fallback", "sh-port"], kernel: true },
  { name: "sed", id: 8, family: "least", flags: [], kernel: true },
  { name: "nq", id: 9, family: "least", flags: [], kernel: true },
  { name: "mh", id: 10, family: "hash", flags: ["mh-fallback", "mh-port"], kernel: true },
  { name: "fo", id: 11, family: "least", flags: [], kernel: true },
  { name: "ovf", id: 12, family: "least", flags: [], kernel: true },
  { name: "twos", id: 13, family: "twos", flags: [], kernel: false },
];
