// The one command-line grammar every wasmvs command (other than the ipvsadm verbs, which follow ipvsadm's own
// popt rules in src/model/ipvsadm.ts) is parsed with. A command declares its flags once, with a check for
// each value; the whole line is parsed and checked before the command touches the kernel, a proxy or the
// disk, and anything it does not declare is refused by name. Grammar: --name VALUE, --name=VALUE, -x VALUE
// (short aliases), --flag; "--" ends the flags; -h and --help ask for the usage (stdout, exit 0).
import { isIP } from "node:net";

/** A usage error: the caller prints it with the command's usage and exits 2. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "UsageError";
  }
}

/** What is wrong with a value, or undefined when it is good: "not ..." is printed as "--flag 'value' is not
 * ...", anything else (a sentence that names what it needs) as "--flag: ...". */
export type Check = (value: string) => string | undefined;

export interface FlagSpec {
  /** flag: no value; value: one value; list: repeatable, commas split values; optional: a value when the
   * next word matches `optionalValue` (trace's -p [SECONDS]) */
  kind: "flag" | "value" | "list" | "optional";
  aliases?: string[]; // other spellings, e.g. ["-c"] for --config
  check?: Check;
  optionalValue?: RegExp;
  repeat?: boolean; // a value flag that may be given again (the last one wins)
}

export interface CommandSpec {
  /** as the command is typed, for messages: "wasmvs sync" */
  name: string;
  usage: string;
  flags: Record<string, FlagSpec>;
  /** how many words that are not flags the command takes (default none) */
  positionals?: { min?: number; max: number; check?: (value: string, index: number) => string | undefined };
  /** flags kept in the order given (commands whose meaning depends on order, such as trace's -r ... -w) */
  keepOrder?: boolean;
}

export interface Parsed {
  help: boolean;
  positionals: string[];
  /** every flag in the order given, under its declared name (only with keepOrder, or for list flags) */
  order: { name: string; value: string | undefined }[];
  has(name: string): boolean;
  /** the value of a value or optional flag (the last one given) */
  get(name: string): string | undefined;
  /** every value of a list flag, commas split */
  all(name: string): string[];
}

const HELP = new Set(["-h", "--help"]);
const clip = (s: string) => (s.length > 64 ? `${s.slice(0, 64)}...` : s);

/** A spelling → declared name index with no prototype, so "--constructor" or "--__proto__" is unknown. */
function spellings(spec: CommandSpec): Map<string, string> {
  const m = new Map<string, string>();
  for (const name of Object.keys(spec.flags)) {
    m.set(name, name);
    for (const a of spec.flags[name].aliases ?? []) m.set(a, name);
  }
  return m;
}

/** Parses and checks a whole command line; throws UsageError naming the first thing wrong. */
export function parseArgs(argv: readonly string[], spec: CommandSpec): Parsed {
  const byName = spellings(spec);
  const values = new Map<string, string[]>();
  const positionals: string[] = [];
  const order: Parsed["order"] = [];
  let help = false;
  let flagsEnded = false;
  for (let i = 0; i < argv.length; i++) {
    const word = argv[i];
    if (typeof word !== "string") throw new UsageError(`argument ${i + 1} is not a string`);
    if (flagsEnded || word === "-" || !word.startsWith("-")) {
      positionals.push(word);
      continue;
    }
    if (word === "--") {
      flagsEnded = true;
      continue;
    }
    if (HELP.has(word)) {
      help = true;
      continue;
    }
    const eq = word.startsWith("--") ? word.indexOf("=") : -1;
    const spelled = eq > 0 ? word.slice(0, eq) : word;
    const name = byName.get(spelled);
    if (name === undefined) throw new UsageError(`unknown option '${clip(spelled)}'`);
    const flag = spec.flags[name];
    let value: string | undefined;
    if (flag.kind === "flag") {
      if (eq > 0) throw new UsageError(`${spelled} takes no value`);
    } else if (eq > 0) value = word.slice(eq + 1);
    else if (flag.kind === "optional") {
      if (i + 1 < argv.length && flag.optionalValue?.test(argv[i + 1])) value = argv[++i];
    } else {
      value = argv[++i];
      // a flag where the value should be is a forgotten value, not a value
      const named = value?.startsWith("--") ? value.split("=")[0] : value;
      if (value === undefined || (value.startsWith("-") && (byName.has(named!) || HELP.has(value)))) {
        throw new UsageError(`${spelled} needs a value`);
      }
    }
    if (value !== undefined && flag.check) {
      const parts = flag.kind === "list" ? value.split(",").filter(Boolean) : [value];
      if (!parts.length) throw new UsageError(`${spelled} needs a value`);
      for (const v of parts) {
        const why = flag.check(v);
        if (why)
          throw new UsageError(why.startsWith("not ") ? `${spelled} '${clip(v)}' is ${why}` : `${spelled}: ${why}`);
      }
    }
    const seen = values.get(name);
    if (seen && flag.kind !== "list" && !flag.repeat && !spec.keepOrder) {
      throw new UsageError(`${spelled} is given more than once`);
    }
    values.set(name, [...(seen ?? []), ...(value === undefined ? [""] : [value])]);
    if (spec.keepOrder || flag.kind === "list") order.push({ name, value });
  }
  if (!help) checkPositionals(positionals, spec);
  return {
    help,
    positionals,
    order,
    has: (n) => values.has(n),
    get: (n) => values.get(n)?.at(-1),
    all: (n) => (values.get(n) ?? []).flatMap((v) => v.split(",")).filter(Boolean),
  };
}

function checkPositionals(words: string[], spec: CommandSpec): void {
  const p = spec.positionals ?? { max: 0 };
  if (words.length > p.max) {
    throw new UsageError(`unexpected argument '${clip(words[p.max])}'`);
  }
  if (words.length < (p.min ?? 0)) throw new UsageError("missing argument");
  words.forEach((w, i) => {
    const why = p.check?.(w, i);
    if (why) throw new UsageError(why.startsWith("not ") ? `'${clip(w)}' is ${why}` : why);
  });
}

interface Streams {
  out: { write(s: string): unknown };
  err: { write(s: string): unknown };
}

/**
 * Parses argv for a command and settles --help and usage errors the same way everywhere: the usage on
 * stdout with exit 0, or "NAME: what is wrong" and the usage on stderr with exit 2. Returns the parsed line,
 * or the exit status when the command should stop there.
 */
export function parseOrExit(argv: readonly string[], spec: CommandSpec, io: Streams): Parsed | number {
  let parsed: Parsed;
  try {
    parsed = parseArgs(argv, spec);
  } catch (e) {
    if (!(e instanceof UsageError)) throw e;
    return usageFailed(spec, e.message, io);
  }
  if (parsed.help) {
    io.out.write(spec.usage);
    return 0;
  }
  return parsed;
}

/** A usage error found after parsing (two flags that exclude each other, a missing source): exit 2. */
export function usageFailed(spec: Pick<CommandSpec, "name" | "usage">, message: string, io: Pick<Streams, "err">): 2 {
  io.err.write(`${spec.name}: ${message}\n${spec.usage}`);
  return 2;
}

// ---- checks shared by the commands ------------------------------------------------------------------
export const checks = {
  ip: (v: string) => (isIP(v) ? undefined : "not an IPv4 or IPv6 address"),
  /** a whole number in [lo, hi] */
  int:
    (lo: number, hi: number): Check =>
    (v) =>
      /^\d+$/.test(v) && Number(v) >= lo && Number(v) <= hi ? undefined : `not a whole number from ${lo} to ${hi}`,
  /** a number of seconds in [0, max], fractions allowed */
  seconds:
    (max: number): Check =>
    (v) =>
      /^\d+(\.\d+)?$/.test(v) && Number(v) <= max ? undefined : `not a number of seconds 0..${max}`,
  oneOf:
    (choices: readonly string[]): Check =>
    (v) =>
      choices.includes(v) ? undefined : `not one of ${choices.join(", ")}`,
  /** HOST:PORT or [V6]:PORT; an empty host means every address */
  hostPort: (v: string) => {
    const m = /^(?:\[([^\]]*)\]|([^:[\]]*)):(\d{1,5})$/.exec(v);
    if (!m || Number(m[3]) > 65535) return "not HOST:PORT";
    const host = m[1] ?? m[2];
    if (m[1] !== undefined && !isIP(host)) return `'${clip(host)}' is not an IPv6 address`;
    if (host && /^[\d.]+$/.test(host) && !isIP(host)) return `'${clip(host)}' is not an IPv4 address`;
    return undefined;
  },
  nonEmpty: (v: string) => (v.length ? undefined : "empty"),
};
