// One scheduler list (issue 17): assembly/sched/list.ts is the only place a scheduler's flag names are
// written. A grep over src/ and assembly/ fails if another file spells one (or glues a scheduler name to
// "-fallback"/"-port"); the rest walks every listed flag through each place that names or parses flags, so
// a scheduler added to the list with its flags needs nothing else for them.
import { readFileSync, readdirSync } from "node:fs";
import { join, relative } from "node:path";
import ts from "typescript";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { serviceFlagBits as codecFlagBits, serviceFlagNames } from "../src/kernel/codec.ts";
import { serviceDiff } from "../src/kernel/diff.ts";
import { schedFlagsText, serviceFlagBits as formatFlagBits } from "../src/model/format.ts";
import { IpvsadmError, parseIpvsadm } from "../src/model/ipvsadm.ts";
import { SCHEDULER_LIST, SCHED_FLAG_BITS, schedFlag, schedFlagName } from "../src/model/schedulers.ts";

const root = join(import.meta.dirname, "..");
const LIST = "assembly/sched/list.ts";
const FLAG_NAMES = SCHEDULER_LIST.flatMap((s) => s.flags);
// what follows a scheduler's name in its flags ("-fallback", "-port")
const FLAG_SUFFIXES = [...new Set(SCHEDULER_LIST.flatMap((s) => s.flags.map((f) => f.slice(s.name.length))))];
const NAME_PREFIXES = SCHEDULER_LIST.filter((s) => s.flags.length).map((s) => `${s.name}-`);

function sources(dir: string): string[] {
  return readdirSync(join(root, dir), { withFileTypes: true, recursive: true })
    .filter((e) => e.isFile() && e.name.endsWith(".ts"))
    .map((e) => relative(root, join(e.parentPath, e.name)));
}

/** Every string literal and template piece in a file, with its line. */
function literals(file: string): { text: string; line: number; kind: ts.SyntaxKind }[] {
  const src = readFileSync(join(root, file), "utf8");
  const sf = ts.createSourceFile(file, src, ts.ScriptTarget.Latest, true);
  const out: { text: string; line: number; kind: ts.SyntaxKind }[] = [];
  const visit = (n: ts.Node) => {
    if (ts.isStringLiteralLike(n) || ts.isTemplateHead(n) || ts.isTemplateMiddle(n) || ts.isTemplateTail(n))
      out.push({ text: n.text, line: sf.getLineAndCharacterOfPosition(n.getStart()).line + 1, kind: n.kind });
    ts.forEachChild(n, visit);
  };
  visit(sf);
  return out;
}

test("no file but the list spells a scheduler's flag name, or builds one from a scheduler's name", () => {
  assert.ok(FLAG_NAMES.length >= 4, "the list names sh's and mh's flags");
  const found: string[] = [];
  for (const file of [...sources("src"), ...sources("assembly")]) {
    if (file === LIST) continue;
    for (const { text, line, kind } of literals(file)) {
      const afterSubstitution = kind === ts.SyntaxKind.TemplateMiddle || kind === ts.SyntaxKind.TemplateTail;
      if (
        FLAG_NAMES.some((f) => text.includes(f)) ||
        NAME_PREFIXES.includes(text) ||
        (afterSubstitution && FLAG_SUFFIXES.some((x) => text.startsWith(x)))
      )
        found.push(`${file}:${line}: ${JSON.stringify(text)}`);
    }
  }
  assert.equal(found, [], `flag names written outside ${LIST}:\n${found.join("\n")}`);
});

test("every listed flag: its bit, its owner, its name back, and ipvsadm's -b, from the list alone", () => {
  for (const s of SCHEDULER_LIST) {
    const other = SCHEDULER_LIST.find((o) => o.name !== s.name && !o.flags.length)!.name;
    for (let i = 0; i < SCHED_FLAG_BITS.length; i++) {
      const bit = SCHED_FLAG_BITS[i];
      const name = schedFlagName(s.name, i);
      assert.is(name, s.flags[i] ?? `flag-${i + 1}`);
      assert.equal(schedFlag(name), { bit, owner: s.flags[i] ? s.name : undefined });
      assert.equal(serviceFlagNames(bit, s.name), [name], `${s.name} bit ${i}`);
      assert.is(codecFlagBits({ flags: [name] }), bit);
      assert.is(formatFlagBits({ flags: [name] }), bit);
      // ipvsadm prints a scheduler's own names only (sh has no flag-3), else flag-N
      assert.is(schedFlagsText(s.name, bit), i < s.flags.length || !s.flags.length ? name : "");
      const cmd = parseIpvsadm(["-A", "-t", "10.0.0.1:80", "-s", s.name, "-b", name]);
      // every bit reaches the service (ipvsadm sends sh's flag-3 to the kernel; only -Ln does not print it)
      assert.is(cmd.kind === "add-service" && cmd.service.flags?.includes(name), true, `-s ${s.name} -b ${name}`);
      if (s.flags[i]) {
        assert.throws(
          () => parseIpvsadm(["-A", "-t", "10.0.0.1:80", "-s", other, "-b", name]),
          (e: unknown) => e instanceof IpvsadmError && /incompatible scheduler flag/.test(e.message),
        );
      }
      const svc = { protocol: "tcp" as const, addr: "10.0.0.1", port: 80, scheduler: s.name, realServers: [] };
      assert.equal(serviceDiff({ ...svc, flags: [name] }, { ...svc, flags: [] })[0], `flags none → ${name}`);
    }
  }
});

test("prototype keys and near misses are no flags anywhere", () => {
  for (const bad of ["__proto__", "constructor", "toString", "hasOwnProperty", "", "SH-PORT", "sh-port ", "flag-4"]) {
    assert.is(schedFlag(bad), undefined, bad);
    assert.throws(() => codecFlagBits({ flags: [bad] }), /unknown service flag/, bad);
    assert.is(formatFlagBits({ flags: [bad] }), 0, bad);
    if (bad) assert.throws(() => parseIpvsadm(["-A", "-t", "10.0.0.1:80", "-b", bad]), /invalid scheduler flag/);
  }
});

test.run();
