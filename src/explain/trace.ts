// The English of a scheduler decision: a few display lines (segments the terminal and the page colour) and
// one plain sentence, built from the data plane's trace record and the service as it stood just before
// (src/core/trace.ts gives both, as data). Shared by `wasmvs trace` (src/cli/trace.ts) and the browser page
// (src/ui/app.ts), which import the session from here to get decisions with their explanations.
import type { DestInfo, ServiceInfo } from "../core/index.ts";
import {
  TraceSession as DataSession,
  Q,
  REJECT,
  OUTCOME,
  familyOf,
  type Decision as DecisionData,
  type ConnSpec,
  type Scenario,
  type TraceRecord,
  type Tracer,
} from "../core/trace.ts";
import type { Core } from "../core/index.ts";
import { schedFlagName } from "../model/schedulers.ts";

export {
  Tracer,
  Q,
  letterName,
  familyOf,
  type Family,
  type Scenario,
  type ScenarioDest,
  type ScenarioEvent,
  type ConnSpec,
  type CloseHow,
  type LifeEvent,
} from "../core/trace.ts";

const REJECT_PHRASE = ["usable", "empty", "has weight 0", "is overloaded", "is deleted"];

// ---- explanations --------------------------------------------------------------------------------------
// A display line is a list of segments; a styled segment says what it is, the terminal and the page colour it.
export type Style = "dest" | "win" | "lose" | "dim" | "num" | "warn" | "head";
type Seg = string | { t: string; s: Style; d?: number }; // d: destination id for "dest"
export type Line = Seg[];

interface Explained {
  lines: Line[];
  sentence: string;
}

type Namer = (id: number) => string;

const fmt = (x: number) => (Number.isInteger(x) ? String(x) : x.toFixed(x < 10 ? 2 : 1));
const u32 = (x: number) => x >>> 0;

function d(id: number, name: Namer): Seg {
  return id < 0 ? { t: "none", s: "warn" } : { t: name(id), s: "dest", d: id };
}
function listNames(ids: number[], name: Namer): string {
  return ids.map((i) => name(i)).join(", ");
}
function ordinal(n: number): string {
  const s = n % 100 >= 11 && n % 100 <= 13 ? "th" : (["th", "st", "nd", "rd"][n % 10] ?? "th");
  return `${n}${s}`;
}

// The context an explanation needs besides the record: the service as it stood just before the decision.
interface ExplainContext {
  before: ServiceInfo;
  name: Namer;
  tracer?: Tracer;
  client?: string;
  sport?: number;
  dst?: string;
}

function explain(r: TraceRecord, ctx: ExplainContext): Explained {
  switch (familyOf(r.sched)) {
    case "rr":
      return explainRr(r, ctx);
    case "wrr":
      return explainWrr(r, ctx);
    case "least":
      return explainLeast(r, ctx);
    case "twos":
      return explainTwos(r, ctx);
    case "hash":
      return explainHash(r, ctx);
    case "locality":
      return explainLocality(r, ctx);
  }
}

// Why OVERLOAD is set: connections (active + inactive) reached the upper threshold; the flag stays until they
// fall below the lower threshold, or below 3/4 of the upper one when there is none (ip_vs_dest_totalconns).
function overloadWhy(x: DestInfo): string {
  const total = x.activeConns + x.inactConns;
  if (total >= x.upperThreshold && x.upperThreshold > 0)
    return `overloaded: act+inact ${total} ≥ upper ${x.upperThreshold}`;
  const below = x.lowerThreshold > 0 ? `${x.lowerThreshold}` : `3/4 of ${x.upperThreshold}`;
  return `overloaded until act+inact ${total} < ${below}`;
}

function skipWhy(x: DestInfo): string | null {
  if (x.overloaded) return overloadWhy(x);
  if (x.weight <= 0) return "weight 0";
  return null;
}

function explainRr(r: TraceRecord, { before, name }: ExplainContext): Explained {
  const ds = before.dests,
    n = ds.length;
  const c0 = r.f.W_CUR0,
    c1 = r.f.W_CUR1;
  const walk: Seg[] = [];
  const skipped: string[] = [];
  let i = c0;
  for (let steps = 0; steps < n; steps++) {
    i = i + 1 >= n ? 0 : i + 1;
    if (c0 < 0 && steps > 0 && i === 0) break;
    const x = ds[i];
    const why = skipWhy(x);
    if (walk.length) walk.push(" ");
    if (why) {
      walk.push(d(x.id, name), { t: `✗ ${why}`, s: "lose" });
      skipped.push(`${name(x.id)} (${why})`);
    } else {
      walk.push(d(x.id, name), { t: "✓", s: "win" });
      break;
    }
    if (i === c0) break;
  }
  const from = c0 < 0 ? "the head of the list" : name(ds[c0]?.id ?? -1);
  const lines: Line[] = [
    [{ t: "rr", s: "head" }, "  cursor ", c0 < 0 ? { t: "head", s: "dim" } : d(ds[c0].id, name), "  walk: ", ...walk],
  ];
  if (r.dest < 0) {
    return {
      lines,
      sentence:
        `Round robin walked the whole list from ${from} and found no destination with a weight that is ` +
        `not overloaded, so the connection is refused.`,
    };
  }
  const skip = skipped.length ? ` (skipping ${skipped.join(", ")})` : "";
  const start = c0 < 0 ? "starts at the head of the list" : `moves on from ${from}, the last one chosen,`;
  void c1;
  return {
    lines,
    sentence:
      `Round robin ${start} to the next destination in list order with a weight that is not overloaded: ` +
      `${name(r.dest)}${skip}.`,
  };
}

function explainWrr(r: TraceRecord, { before, name }: ExplainContext): Explained {
  const ds = before.dests,
    n = ds.length;
  const { W_CUR0: c0, W_CW0: cw0, W_CW1: cw1, W_MW: mw, W_DI: di } = r.f;
  // replay the walk for display (the decision is the record's; the replay must end where it did)
  const steps: Seg[] = [];
  let cw = cw0,
    i = c0,
    passes = 0,
    shown = 0,
    ok = false;
  for (let guard = 0; guard < 4 * (n + 1) * (Math.ceil(mw / Math.max(di, 1)) + 1) && mw > 0; guard++) {
    i++;
    if (i >= n) {
      i = -1;
      cw -= di;
      passes++;
      if (cw <= 0) cw = mw;
      if (shown < 14) {
        steps.push(steps.length ? " " : "", { t: `[cw=${cw}]`, s: "num" });
        shown++;
      }
      continue;
    }
    const x = ds[i];
    const good = !x.overloaded && x.weight >= cw;
    if (shown < 14) {
      steps.push(steps.length ? " " : "", d(x.id, name), {
        t: good ? "✓" : x.overloaded ? "✗ovl" : `✗${x.weight}<${cw}`,
        s: good ? "win" : "lose",
      });
      shown++;
    } else if (shown === 14) {
      steps.push(" …");
      shown++;
    }
    if (good) {
      ok = x.id === r.dest && cw === cw1;
      break;
    }
  }
  const head: Line = [
    { t: "wrr", s: "head" },
    "  cw ",
    { t: `${cw0}→${cw1}`, s: "num" },
    `  (max ${mw}, step ${di})  cursor `,
    c0 < 0 ? { t: "head", s: "dim" } : d(ds[c0].id, name),
    " → ",
    r.f.W_CUR1 < 0 ? { t: "head", s: "dim" } : d(ds[r.f.W_CUR1]?.id ?? -1, name),
  ];
  const lines: Line[] = [head];
  if (r.dest >= 0 && ok) lines.push(["  walk: ", ...steps]);
  if (r.dest < 0) {
    return {
      lines,
      sentence:
        r.f.W_FAIL === 2
          ? "Weighted round robin found every destination overloaded: the connection is refused."
          : "Weighted round robin has no destination with a positive weight: the connection is refused.",
    };
  }
  const w = ds.find((x) => x.id === r.dest)?.weight ?? 0;
  // a pass lowers cw by the gcd step; below 1 it wraps back up to the maximum weight
  const pass =
    passes === 0
      ? `in the current pass (current weight ${cw1})`
      : cw1 > cw0
        ? `after the walk passed the end of the list${passes > 1 ? ` ${passes} times` : ""} and the current ` +
          `weight went down past 1 and restarted at the maximum, ${cw1}`
        : `after ${passes} new pass${passes > 1 ? "es" : ""} lowered the current weight from ${cw0} to ${cw1}`;
  return {
    lines,
    sentence:
      `Weighted round robin takes the next destination after the cursor whose weight is at least the ` +
      `current weight; ${name(r.dest)} (weight ${w}) qualifies ${pass}, so heavier destinations appear ` +
      `in more passes.`,
  };
}

// the load a least-loaded scheduler compares, and how it says it
interface LoadRule {
  load(a: number, i: number, w: number): number;
  show(a: number, i: number, w: number): string;
  eligible(x: DestInfo): string | null;
  what: string;
  short: string;
}
function loadRule(sched: string): LoadRule {
  const oh = (a: number, i: number) => a * 256 + i;
  switch (sched) {
    case "lc":
      return {
        load: (a, i) => u32(oh(a, i)),
        show: (a, i) => `${a}×256+${i} = ${oh(a, i)}`,
        eligible: (x) => (x.overloaded ? overloadWhy(x) : x.weight === 0 ? "weight 0" : null),
        what: "the least connection overhead (active×256 + inactive; the weight only has to be non-zero)",
        short: "least active×256 + inactive (weight ≠ 0)",
      };
    case "wlc":
      return {
        load: (a, i, w) => oh(a, i) / w,
        show: (a, i, w) => `${oh(a, i)}/${w} = ${fmt(oh(a, i) / w)}`,
        eligible: (x) => (x.overloaded ? overloadWhy(x) : x.weight <= 0 ? "weight 0" : null),
        what: "the least overhead per weight, (active×256 + inactive) / weight",
        short: "least (active×256 + inactive) / weight",
      };
    case "sed":
      return {
        load: (a, _i, w) => (a + 1) / w,
        show: (a, _i, w) => `(${a}+1)/${w} = ${fmt((a + 1) / w)}`,
        eligible: (x) => (x.overloaded ? overloadWhy(x) : x.weight <= 0 ? "weight 0" : null),
        what: "the shortest expected delay, (active + 1) / weight (inactive connections do not count)",
        short: "least (active + 1) / weight",
      };
    case "nq":
      return {
        load: (a, _i, w) => (a === 0 ? -1 : (a + 1) / w),
        show: (a, _i, w) => (a === 0 ? "idle" : `(${a}+1)/${w} = ${fmt((a + 1) / w)}`),
        eligible: (x) => (x.overloaded ? overloadWhy(x) : x.weight === 0 ? "weight 0" : null),
        what:
          "an idle destination (no active connection) first, else the shortest expected delay (active + 1) " +
          "/ weight",
        short: "first idle (active 0), else least (active + 1) / weight",
      };
    case "fo":
      return {
        load: (_a, _i, w) => -w,
        show: (_a, _i, w) => `weight ${w}`,
        eligible: (x) => (x.overloaded ? overloadWhy(x) : x.weight <= 0 ? "weight 0" : null),
        what: "the highest weight among destinations that are not overloaded (failover: load plays no part)",
        short: "highest weight not overloaded",
      };
    default:
      return {
        load: (_a, _i, w) => -w,
        show: (a, _i, w) => `weight ${w}, active ${a}`, // ovf
        eligible: (x) =>
          x.overloaded
            ? overloadWhy(x)
            : x.weight === 0
              ? "weight 0"
              : x.activeConns > x.weight
                ? `active ${x.activeConns} > weight ${x.weight}`
                : null,
        what: "the highest weight among destinations that have no more active connections than their weight (overflow)",
        short: "highest weight with active ≤ weight",
      };
  }
}

function explainLeast(r: TraceRecord, { before, name }: ExplainContext): Explained {
  const rule = loadRule(r.sched);
  const f = r.f;
  const lines: Line[] = [[{ t: r.sched, s: "head" }, `  ${rule.short}`]];
  const ds = before.dests;
  if (ds.length <= 8) {
    for (const x of ds) {
      const why = rule.eligible(x);
      const tag: Seg =
        x.id === r.dest
          ? { t: "◀ chosen", s: "win" }
          : x.id === f.W_R_ID
            ? { t: "runner-up", s: "num" }
            : why
              ? { t: `✗ ${why}`, s: "lose" }
              : "";
      lines.push([
        "  ",
        d(x.id, name),
        `  w${x.weight}  act ${x.activeConns}  inact ${x.inactConns}  `,
        { t: why && r.sched !== "ovf" ? "-" : rule.show(x.activeConns, x.inactConns, x.weight), s: "dim" },
        "  ",
        tag,
      ]);
    }
  }
  if (r.dest < 0)
    return {
      lines,
      sentence: `${r.sched} found no eligible destination (all overloaded or weight 0): the connection is refused.`,
    };
  const a = rule.show(f.W_A_ACT, f.W_A_INACT, f.W_A_W);
  if (f.W_SCAN) {
    lines.push(["  ", { t: "the kernel's scan ran (a load wrapped past 2^31)", s: "warn" }]);
    return {
      lines,
      sentence: `${r.sched} chose ${name(r.dest)} by the kernel's own scan, because a load overflowed a C int.`,
    };
  }
  if (f.W_R_ID < 0) {
    lines.push(["  only candidate: ", d(r.dest, name), ` ${a}`]);
    return { lines, sentence: `${name(r.dest)} is the only eligible destination, so ${r.sched} takes it.` };
  }
  const b = rule.show(f.W_R_ACT, f.W_R_INACT, f.W_R_W);
  const la = rule.load(f.W_A_ACT, f.W_A_INACT, f.W_A_W),
    lb = rule.load(f.W_R_ACT, f.W_R_INACT, f.W_R_W);
  const tie = la === lb;
  const op = tie ? "=" : r.sched === "fo" || r.sched === "ovf" ? ">" : "<";
  const cmp: Line = ["  ", d(r.dest, name), ` ${a}  ${op}  `, d(f.W_R_ID, name), ` ${b}`];
  if (tie) cmp.push({ t: "  tie: earlier in list wins", s: "dim" });
  lines.push(cmp);
  if (r.sched === "wlc" || r.sched === "sed" || (r.sched === "nq" && f.W_A_ACT > 0 && f.W_R_ACT > 0)) {
    const ca = r.sched === "wlc" ? f.W_A_ACT * 256 + f.W_A_INACT : f.W_A_ACT + 1;
    const cb = r.sched === "wlc" ? f.W_R_ACT * 256 + f.W_R_INACT : f.W_R_ACT + 1;
    lines.push([
      "  ",
      {
        t:
          `as the kernel compares: ${ca}×${f.W_R_W} = ${ca * f.W_R_W} ${tie ? "=" : "<"} ${cb}×${f.W_A_W} = ` +
          `${cb * f.W_A_W}`,
        s: "dim",
      },
    ]);
  }
  const rel = tie
    ? `ties with ${name(f.W_R_ID)} (${b}) and comes first in list order`
    : `beats the runner-up ${name(f.W_R_ID)} (${b})`;
  const verb = r.sched === "nq" && f.W_A_ACT === 0 ? `${name(r.dest)} is idle and` : `${name(r.dest)} has ${a} and`;
  return { lines, sentence: `${r.sched} picks ${rule.what}: ${verb} ${rel}.` };
}

function explainTwos(r: TraceRecord, { before, name }: ExplainContext): Explained {
  const f = r.f;
  if (r.dest < 0 || f.W_TOTAL === 0)
    return {
      lines: [[{ t: "twos", s: "head" }, "  no destination with weight"]],
      sentence: "twos has no usable destination with a weight: the connection is refused.",
    };
  // the weight ranges each destination covers in the draw
  const ranges: Seg[] = [];
  let acc = 0;
  for (const x of before.dests) {
    if (x.overloaded || x.weight <= 0) continue;
    const lo = acc === 0 ? 0 : acc + 1;
    acc += x.weight;
    ranges.push(ranges.length ? " " : "", d(x.id, name), { t: `[${lo}..${acc}]`, s: "dim" });
  }
  const oh1 = f.W_C1_ACT * 256 + f.W_C1_INACT,
    oh2 = f.W_C2_ACT * 256 + f.W_C2_INACT;
  const lines: Line[] = [
    [{ t: "twos", s: "head" }, `  draws in [0..${f.W_TOTAL}]: `, ...ranges],
    [
      "  r1=",
      { t: String(f.W_R1), s: "num" },
      " → ",
      d(f.W_C1, name),
      "   r2=",
      { t: String(f.W_R2), s: "num" },
      " → ",
      d(f.W_C2, name),
    ],
    [
      "  ",
      d(f.W_C1, name),
      ` ${oh1}/${f.W_C1_W}  vs  `,
      d(f.W_C2, name),
      ` ${oh2}/${f.W_C2_W}`,
      { t: `   (2nd wins only if ${f.W_C2_W}×${oh1} > ${f.W_C1_W}×${oh2})`, s: "dim" },
    ],
  ];
  const same = f.W_C1 === f.W_C2;
  const s = same
    ? `both draws (r1 = ${f.W_R1}, r2 = ${f.W_R2}) landed on ${name(f.W_C1)}, so it is chosen`
    : `the draws r1 = ${f.W_R1} and r2 = ${f.W_R2} picked ${name(f.W_C1)} and ${name(f.W_C2)}; ${name(r.dest)} ` +
      `has the ` +
      `lower overhead per weight` +
      (r.dest === f.W_C1 && oh1 * f.W_C2_W === oh2 * f.W_C1_W ? " (a tie keeps the first)" : "");
  return {
    lines,
    sentence:
      `Power of two choices draws two numbers in 0..${f.W_TOTAL} (the sum of the weights; the first ` +
      `destination's range also holds 0, one extra ticket) and keeps the less loaded of the two ` +
      `destinations they land on: ${s}.`,
  };
}

// mh: which destination's permutation filled the slot, and where the slot stands in every member's
// permutation; pushes those lines and returns the sentence's clause ("" when the owner is unknown)
function mhSlotOwner(r: TraceRecord, tracer: Tracer, name: Namer, lines: Line[]): string {
  const f = r.f;
  let why = "";
  const M = f.W_TSIZE,
    slot = f.W_BUCKET;
  const members = tracer.query(r.svc, Q.mhMembers);
  const prefs: { id: number; j: number; off: number; skip: number }[] = [];
  for (let m = 0; m < members && m < 12; m++) {
    const off = tracer.query(r.svc, Q.mhOffset, m),
      skip = tracer.query(r.svc, Q.mhSkip, m);
    // j with (off + j*skip) mod M == slot: skip is invertible mod the prime M
    const j = Number((BigInt((((slot - off) % M) + M) % M) * modInverse(BigInt(skip), BigInt(M))) % BigInt(M));
    prefs.push({ id: tracer.query(r.svc, Q.mhMember, m), j, off, skip });
  }
  const owner = prefs[f.W_MEMBER];
  if (owner) {
    const segs: Line = [
      "  filled by ",
      d(owner.id, name),
      { t: ` (offset ${owner.off}, skip ${owner.skip}): its ${ordinal(owner.j + 1)} preference`, s: "dim" },
    ];
    const others = prefs.filter((p) => p.id !== owner.id).slice(0, 4);
    if (others.length)
      lines.push(segs, [
        "  the slot's rank for the others: ",
        ...others.flatMap((p, k): Line => [k ? ", " : "", d(p.id, name), ` ${ordinal(p.j + 1)}`]),
      ]);
    else lines.push(segs);
    why =
      ` Slot ${slot} is ${name(owner.id)}'s ${ordinal(owner.j + 1)} preference` +
      (others.length
        ? ` (${others.map((p) => `${name(p.id)}'s ${ordinal(p.j + 1)}`).join(", ")}), and ${name(owner.id)} ` +
          `claimed ` +
          `it while the table was filled in turns`
        : "") +
      ".";
  }
  return why;
}

/** The fallback's probes: each slot, its destination, and why it was passed over. */
function fallbackPath(r: TraceRecord, before: ServiceInfo, name: Namer): Line {
  const f = r.f;
  const segs: Line = ["  fallback: "];
  r.path.forEach((p, k) => {
    const x = before.dests.find((y) => y.id === p.dest);
    const good = p.dest === r.dest && k === r.path.length - 1;
    segs.push(k ? ", " : "", { t: `${p.slot}`, s: "num" }, "→", d(p.dest, name), {
      t: good ? " ✓" : x ? ` ✗ ${skipWhy(x) ?? ""}`.trimEnd() : " ✗",
      s: good ? "win" : "lose",
    });
  });
  if (f.W_PROBES > r.path.length) segs.push(` … (${f.W_PROBES} probes)`);
  return segs;
}

function explainHash(r: TraceRecord, { before, name, tracer, client, dst }: ExplainContext): Explained {
  const f = r.f;
  const sched = r.sched;
  if (f.W_TSIZE === 0)
    return {
      lines: [[{ t: sched, s: "head" }, "  empty table"]],
      sentence: `${sched} has no table (no destinations): the connection is refused.`,
    };
  const key = sched === "dh" ? `dst ${dst ?? "?"}` : `client ${client ?? "?"}${f.W_HPORT ? ` port ${f.W_HPORT}` : ""}`;
  const hashName = sched === "mh" ? "hsiphash" : "hash_32";
  const lines: Line[] = [
    [
      { t: sched, s: "head" },
      `  ${hashName}(${key}) → ${sched === "mh" ? "slot" : "bucket"} `,
      { t: `${f.W_BUCKET}`, s: "num" },
      { t: `/${f.W_TSIZE}`, s: "dim" },
      " → ",
      d(f.W_BDEST, name),
      f.W_REJECT ? { t: `  ✗ ${REJECT[f.W_REJECT]}`, s: "lose" } : "",
    ],
  ];
  let why = "";
  if (sched === "mh" && tracer && f.W_MEMBER >= 0) {
    why = mhSlotOwner(r, tracer, name, lines);
  } else if (sched === "sh") {
    const ws = before.dests.map((x) => `${name(x.id)}×${Math.max(x.weight, 1)}`).join(" ");
    lines.push(["  ", { t: `buckets dealt in list order, max(weight,1) each: ${ws}, repeated`, s: "dim" }]);
  } else if (sched === "dh") {
    const n = before.dests.length;
    if (n)
      lines.push([
        "  ",
        { t: `buckets dealt round robin over the list: bucket ${f.W_BUCKET} = list[${f.W_BUCKET} mod ${n}]`, s: "dim" },
      ]);
  }
  if (f.W_PROBES > 0) lines.push(fallbackPath(r, before, name));
  const what =
    sched === "dh"
      ? `the packet's destination address ${dst ?? ""}`.trimEnd()
      : `the client address${f.W_HPORT ? " and port" : ""}`;
  const where = `${sched === "mh" ? "slot" : "bucket"} ${f.W_BUCKET} of ${f.W_TSIZE}`;
  const family = sched === "mh" ? "Maglev hashing" : sched === "sh" ? "Source hashing" : "Destination hashing";
  if (r.dest < 0) {
    const rej = f.W_BDEST < 0 ? "is empty" : (REJECT_PHRASE[f.W_REJECT] ?? "is unusable");
    const fb =
      f.W_PROBES > 0
        ? `; the fallback probed ${f.W_PROBES} ${sched === "mh" ? "slots" : "buckets"} and found nothing usable`
        : sched === "dh"
          ? " and dh has no fallback"
          : f.W_FALLBACK
            ? ""
            : ` and the service has no ${schedFlagName(sched, 0)} flag`;
    return {
      lines,
      sentence:
        `${family} maps ${what} to ${where}, whose destination ${f.W_BDEST >= 0 ? name(f.W_BDEST) + " " : ""}` +
        `${rej}${fb}: the con` +
        `nection is refused.`,
    };
  }
  if (f.W_PROBES > 0) {
    return {
      lines,
      sentence:
        `${family} maps ${what} to ${where}, but ${name(f.W_BDEST)} there ${REJECT_PHRASE[f.W_REJECT]}; ` +
        `with the fallback flag it re-hashes and the ${ordinal(f.W_PROBES)} probe lands on ` +
        `${name(r.dest)}.${why}`,
    };
  }
  return {
    lines,
    sentence:
      `${family} maps ${what} to ${where}, which holds ${name(r.dest)}; the same ` +
      `${sched === "dh" ? "destination address" : "client"} lands there as long as the table does not ` +
      `change.${why}`,
  };
}

function modInverse(a: bigint, m: bigint): bigint {
  let [r0, r1, s0, s1] = [a % m, m, 1n, 0n];
  while (r1 !== 0n) {
    const q = r0 / r1;
    [r0, r1] = [r1, r0 - q * r1];
    [s0, s1] = [s1, s0 - q * s1];
  }
  return ((s0 % m) + m) % m;
}

// What explainLocality has worked out before the lblc/lblcr specifics, which add to head and lines.
interface LocalityParts {
  head: Line;
  lines: Line[];
  wlcPick: string;
  prev: string;
  halfIdle: string;
  out: string;
}

/** lblcr: the entry's server set as it was, kept, grown by wlc, or expired; returns the sentence. */
function explainLblcrSet(r: TraceRecord, name: Namer, { head, lines, wlcPick, prev, halfIdle }: LocalityParts): string {
  const f = r.f;
  let sentence = "";
  const setSegs: Seg[] = r.set.flatMap((id, k) => [k ? " " : "", d(id, name)]);
  if (!f.W_FOUND) {
    head.push({ t: "no entry", s: "warn" }, " → wlc: ", d(f.W_WLC, name), "  new set {", ...setSegs, "}");
    sentence =
      r.dest < 0
        ? "No entry for this destination address and wlc found nothing: refused."
        : `No entry for this destination address yet, so weighted least-connection over the whole ` +
          `service picks ${wlcPick} and a new server set {${listNames(r.set, name)}} is remembered for it.`;
  } else {
    // the record holds the set after the decision: take back what it added and put back what it dropped
    const added = (f.W_OUTCOME === 5 || f.W_OUTCOME === 6) && f.W_WLC >= 0 && f.W_WLC !== f.W_PREV ? f.W_WLC : -1;
    const was = [...r.set.filter((id) => id !== added), ...(f.W_ERASED >= 0 ? [f.W_ERASED] : [])];
    const wasSegs: Seg[] = was.flatMap((id, k) => [k ? " " : "", d(id, name)]);
    head.push(
      "set {",
      ...wasSegs,
      "}  least loaded ",
      f.W_PREV >= 0 ? d(f.W_PREV, name) : { t: "none usable", s: "warn" },
    );
    if (f.W_OUTCOME === 2) {
      head.push({ t: "  ✓ kept", s: "win" });
      sentence =
        `The entry's server set holds {${listNames(r.set, name)}}; its least loaded member ${prev} (active ` +
        `${f.W_PREV_ACT}, weight ${f.W_PREV_W}) is not ` +
        `overloaded, so it serves the connection.`;
    } else if (f.W_OUTCOME === 5) {
      head.push({ t: "  ✗ overloaded", s: "lose" });
      lines.push(["  ", { t: `active ${f.W_PREV_ACT} > weight ${f.W_PREV_W} while ${halfIdle}`, s: "lose" }]);
      lines.push(["  wlc adds ", d(f.W_WLC, name), " to the set: {", ...setSegs, "}"]);
      sentence =
        `The set's least loaded member ${prev} has more active connections (${f.W_PREV_ACT}) than its` +
        ` weight (${f.W_PREV_W}) while ${halfIdle}, so wlc picks ${wlcPick} and it joins the ` +
        `set (now {${listNames(r.set, name)}}).`;
    } else if (f.W_OUTCOME === 6) {
      lines.push(["  no usable member → wlc adds ", d(f.W_WLC, name), ": {", ...setSegs, "}"]);
      sentence =
        `No member of the set is usable (deleted, weight 0 or overloaded), so wlc picks ${wlcPick} and it j` +
        `oins the set.`;
    } else sentence = "No usable member and wlc found nothing: refused.";
    if (f.W_ERASED >= 0) {
      lines.push([
        "  ",
        { t: "set unchanged for lblcr_expiration: dropped its most loaded member ", s: "dim" },
        d(f.W_ERASED, name),
      ]);
      sentence +=
        ` The set had not changed for lblcr_expiration, so its most loaded member ${name(f.W_ERASED)} was drop` +
        `ped first.`;
    }
  }
  return sentence;
}

/** lblc: the entry's one server, kept or replaced by wlc's pick; returns the sentence. */
function explainLblcEntry(r: TraceRecord, name: Namer, { head, lines, wlcPick, prev, halfIdle, out }: LocalityParts) {
  const f = r.f;
  let sentence = "";
  if (!f.W_FOUND) {
    head.push({ t: "no entry", s: "warn" }, " → wlc: ", d(f.W_WLC, name), "  (new entry)");
    sentence =
      r.dest < 0
        ? "No entry for this destination address and wlc found nothing: refused."
        : `No entry for this destination address yet, so weighted least-connection over the whole ` +
          `service picks ${wlcPick} and the table remembers it.`;
  } else if (f.W_OUTCOME === 2) {
    head.push(
      "entry → ",
      d(f.W_PREV, name),
      { t: "  ✓ kept", s: "win" },
      { t: `  (active ${f.W_PREV_ACT}, weight ${f.W_PREV_W})`, s: "dim" },
    );
    sentence =
      `The table already maps this destination address to ${prev}, which is available and not ` +
      `overloaded (active ${f.W_PREV_ACT}, weight ${f.W_PREV_W}), so the locality is kept.`;
  } else {
    const reason =
      f.W_OUTCOME === 5
        ? `overloaded: active ${f.W_PREV_ACT} > weight ${f.W_PREV_W} while ${halfIdle}`
        : f.W_OUTCOME === 4
          ? "quiesced (weight 0)"
          : f.W_OUTCOME === 3
            ? "deleted"
            : out;
    const [short, detail] = reason.split(": ");
    head.push("entry → ", d(f.W_PREV, name), { t: `  ✗ ${short}`, s: "lose" });
    if (detail) lines.push(["  ", { t: detail, s: "lose" }]);
    lines.push([
      "  wlc picks ",
      d(f.W_WLC, name),
      f.W_WLC === f.W_PREV ? "  (the same one: entry kept)" : "  (entry replaced)",
    ]);
    sentence =
      `The table maps this destination address to ${prev}, but it is ${reason}, so weighted ` +
      `least-connection picks ${wlcPick || "nothing"}` +
      (f.W_WLC === f.W_PREV ? " (the same server again)." : " and the entry now points there.");
  }
  return sentence;
}

function explainLocality(r: TraceRecord, { before, name, dst }: ExplainContext): Explained {
  const f = r.f;
  const sched = r.sched;
  const out = OUTCOME[f.W_OUTCOME] ?? "?";
  const head: Line = [
    { t: sched, s: "head" },
    `  dst ${dst ?? "?"} → bucket `,
    { t: `${f.W_LBUCKET}`, s: "num" },
    { t: "/1024", s: "dim" },
    ": ",
  ];
  const lines: Line[] = [head];
  const wlcPick = f.W_WLC >= 0 ? name(f.W_WLC) : "";
  const prev = f.W_PREV >= 0 ? name(f.W_PREV) : "";
  const halfIdle = `${f.W_HALFIDLE} destination${f.W_HALFIDLE === 1 ? " is" : "s are"} under half their weight`;
  const parts: LocalityParts = { head, lines, wlcPick, prev, halfIdle, out };
  const sentence = sched === "lblcr" ? explainLblcrSet(r, name, parts) : explainLblcEntry(r, name, parts);
  lines.push([
    "  ",
    { t: `table: ${f.W_ENTRIES} entr${f.W_ENTRIES === 1 ? "y" : "ies"}, ${f.W_EXPIRED} expired so far`, s: "dim" },
  ]);
  void before;
  return { lines, sentence };
}

// ---- decisions with their explanation -------------------------------------------------------------------
export type Decision = DecisionData & Explained;

// Any decision: the scheduler's own (from its record), a persistence template's, an existing connection's or
// a refusal.
function explainDecision(x: DecisionData, ctx: { name: Namer; tracer?: Tracer }): Explained {
  const { name } = ctx;
  if (x.record && (x.how === "scheduled" || x.how === "refused")) {
    const { before, client, sport, dst } = x;
    return explain(x.record, { before, name, tracer: ctx.tracer, client, sport, dst });
  }
  if (x.how === "refused") return { lines: [], sentence: `Refused: ${x.reason}.` };
  if (x.how === "template") {
    const net = x.template?.net ?? "?";
    return {
      lines: [
        [
          { t: "persistence", s: "head" },
          `  template ${net} → `,
          d(x.destId, name),
          { t: `  (timeout ${x.before.timeout}s, renewed)`, s: "dim" },
        ],
      ],
      sentence:
        `The service is persistent: a template for client network ${net} already points at ` +
        `${name(x.destId)}, so the scheduler is not asked.`,
    };
  }
  return {
    lines: [[{ t: "existing", s: "head" }, "  the packet belongs to a connection already in the table"]],
    sentence: `This packet belongs to an existing connection to ${name(x.destId)}; nothing is scheduled.`,
  };
}

// The scenario runner of src/core/trace.ts, each decision handed out with its lines and sentence.
export class TraceSession extends DataSession {
  static override async create(scenario: Scenario, core?: Core): Promise<TraceSession> {
    return new TraceSession(await DataSession.coreFor(core), scenario);
  }
  override connect(c: ConnSpec & { closeNow?: boolean }, events: string[] = []): Decision {
    const d = super.connect(c, events);
    return { ...d, ...explainDecision(d, { name: this.name, tracer: this.tracer }) };
  }
  override *run(): Generator<Decision> {
    for (const d of super.run()) yield d as Decision; // super.run() calls this.connect
  }
}

// Plain text of a line (no styles)
export function plain(line: Line): string {
  return line.map((s) => (typeof s === "string" ? s : s.t)).join("");
}
