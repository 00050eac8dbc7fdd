#!/usr/bin/env node
// Lists the functions longer than a limit (default 100 lines, first line to last) in the tracked TypeScript,
// AssemblyScript and JavaScript sources, longest first: `npm run long-functions [-- --max N] [-- PATH...]`.
// Uses the TypeScript compiler's parser, so it counts what a reader sees: a function's own lines, nested
// functions included. Exits 1 when any is listed (with --check), so a script can hold the line.
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import ts from "typescript";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const args = process.argv.slice(2);
const maxAt = args.indexOf("--max");
const max = maxAt >= 0 ? Number(args[maxAt + 1]) : 100;
if (!Number.isInteger(max) || max < 1) {
  console.error("usage: long-functions.mjs [--max LINES] [--check] [PATH...]");
  process.exit(2);
}
const paths = args.filter((a, i) => !a.startsWith("--") && (maxAt < 0 || i !== maxAt + 1));
const files = execFileSync("git", ["ls-files", "--", "*.ts", "*.mts", "*.cts", "*.js", "*.mjs", "*.cjs"], {
  cwd: root,
  encoding: "utf8",
})
  .split("\n")
  .filter((f) => f && !f.endsWith(".d.ts") && !f.endsWith(".d.cts"))
  .filter((f) => !paths.length || paths.some((p) => f === p || f.startsWith(p.endsWith("/") ? p : `${p}/`)));

/** What a reader calls a function: its name, the variable or property it is assigned to, or the test name. */
function nameOf(node) {
  if (node.name && (ts.isIdentifier(node.name) || ts.isStringLiteral(node.name))) {
    const cls = ts.isClassLike(node.parent) && node.parent.name ? `${node.parent.name.text}.` : "";
    return cls + node.name.text;
  }
  if (ts.isConstructorDeclaration(node)) return `${node.parent.name?.text ?? "class"}.constructor`;
  const p = node.parent;
  if (ts.isVariableDeclaration(p) && ts.isIdentifier(p.name)) return p.name.text;
  if (ts.isPropertyAssignment(p) && (ts.isIdentifier(p.name) || ts.isStringLiteral(p.name))) return p.name.text;
  if (ts.isCallExpression(p)) {
    const callee = p.expression.getText();
    const first = p.arguments[0];
    return first && ts.isStringLiteralLike(first) ? `${callee}(${JSON.stringify(first.text)})` : `${callee}(...)`;
  }
  return "(anonymous)";
}

const long = [];
for (const file of files) {
  const text = readFileSync(resolve(root, file), "utf8");
  const kind = file.endsWith("ts") ? ts.ScriptKind.TS : ts.ScriptKind.JS;
  const sf = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, true, kind);
  const visit = (node) => {
    if (ts.isFunctionLike(node) && "body" in node && node.body) {
      const first = sf.getLineAndCharacterOfPosition(node.getStart(sf)).line;
      const last = sf.getLineAndCharacterOfPosition(node.getEnd()).line;
      const lines = last - first + 1;
      if (lines > max) long.push({ where: `${file}:${first + 1}`, name: nameOf(node), lines });
    }
    ts.forEachChild(node, visit);
  };
  visit(sf);
}
long.sort((a, b) => b.lines - a.lines || a.where.localeCompare(b.where));
for (const f of long) console.log(`${String(f.lines).padStart(4)}  ${f.where}  ${f.name}`);
console.error(`${long.length} functions over ${max} lines`);
if (args.includes("--check") && long.length) process.exit(1);
