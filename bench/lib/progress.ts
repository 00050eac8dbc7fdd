// Progress for long runs, on stderr: elapsed time, the group, the step, and each figure as it lands.
const t0 = performance.now();

export function elapsed(): string {
  const s = (performance.now() - t0) / 1000;
  return `${Math.floor(s / 60)}:${(s % 60).toFixed(1).padStart(4, "0")}`;
}

export class Progress {
  private done = 0;
  constructor(
    readonly group: string,
    private total: number,
  ) {}
  // a step is starting
  step(what: string): void {
    this.done++;
    process.stderr.write(`[${elapsed()}] ${this.group} ${this.done}/${this.total} ${what}\n`);
  }
  // extra information inside a step
  note(what: string): void {
    process.stderr.write(`[${elapsed()}] ${this.group}   ${what}\n`);
  }
  grow(by: number): void {
    this.total += by;
  }
}

function unitOf(ns: number): [number, string] {
  return ns >= 1e6 ? [1e6, "ms"] : ns >= 1e3 ? [1e3, "µs"] : [1, "ns"];
}
function num(x: number): string {
  return x >= 100 ? x.toFixed(0) : x >= 10 ? x.toFixed(1) : x.toFixed(2);
}

export function fmtNs(ns: number): string {
  if (!Number.isFinite(ns)) return "-";
  const [d, u] = unitOf(ns);
  return `${num(ns / d)} ${u}`;
}

// "42.1 ns (40.3–44.0)": median with p25–p75, in the median's unit
export function fmtStat(s: { median: number; p25: number; p75: number } | undefined): string {
  if (!s) return "-";
  const [d, u] = unitOf(s.median);
  return `${num(s.median / d)} ${u} (${num(s.p25 / d)}–${num(s.p75 / d)})`;
}

export function fmtRatio(r: { median: number; lo: number; hi: number } | undefined): string {
  if (!r) return "-";
  const f = (x: number) => (x >= 10 ? x.toFixed(0) : x.toFixed(x >= 1 ? 1 : 2));
  return `${f(r.median)}× (${f(r.lo)}–${f(r.hi)})`;
}
