#!/usr/bin/env node
// Lists the exports of src/ that no other file imports (src/, test/, bench/, bin/), using the TypeScript
// compiler's parser and module resolution: `npm run unused-exports`. A name used only inside its own file is
// listed too (it need not be exported). Re-exports count as uses only when something imports the re-export.
// Namespace and dynamic imports (`import * as`, `await import()`) count as using every export. ALLOWED
// below keeps the few used from outside the program, each with its reason.
import ts from "typescript";
import { dirname, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const config = ts.getParsedCommandLineOfConfigFile(
  resolve(root, "tsconfig.json"),
  {},
  {
    ...ts.sys,
    onUnRecoverableConfigFileDiagnostic: (d) => {
      throw new Error(ts.flattenDiagnosticMessageText(d.messageText, "\n"));
    },
  },
);
const program = ts.createProgram(config.fileNames, config.options);
const files = program.getSourceFiles().filter((f) => !f.isDeclarationFile && !f.fileName.includes("node_modules"));
const rel = (f) => relative(root, f);

function resolveFrom(from, spec) {
  const r = ts.resolveModuleName(spec, from, config.options, ts.sys).resolvedModule;
  return r && !r.isExternalLibraryImport ? rel(r.resolvedFileName) : null;
}

// file -> names it exports; file -> names others use ("*": all)
const exported = new Map();
const used = new Map();
const use = (file, name) => {
  if (!used.has(file)) used.set(file, new Set());
  used.get(file).add(name);
};
// re-exports: (file, name) -> [(target file, target name)]
const reexports = [];
// exported interfaces and type aliases: a module's typed API, listed apart (they cost nothing at run time)
const types = new Set();

for (const sf of files) {
  const file = rel(sf.fileName);
  const names = new Set();
  // only a top-level statement is exported (the program's nodes have no parent links to ask)
  const top = new Set(sf.statements);
  const isExported = (n) =>
    top.has(n) && ts.canHaveModifiers(n) && ts.getModifiers(n)?.some((m) => m.kind === ts.SyntaxKind.ExportKeyword);
  const visit = (node) => {
    if (ts.isImportDeclaration(node) && ts.isStringLiteral(node.moduleSpecifier)) {
      const target = resolveFrom(sf.fileName, node.moduleSpecifier.text);
      const c = node.importClause;
      if (target && c) {
        if (c.name) use(target, "default");
        const b = c.namedBindings;
        if (b && ts.isNamespaceImport(b)) use(target, "*");
        else if (b) for (const e of b.elements) use(target, (e.propertyName ?? e.name).text);
      }
    } else if (ts.isExportDeclaration(node)) {
      const target =
        node.moduleSpecifier && ts.isStringLiteral(node.moduleSpecifier)
          ? resolveFrom(sf.fileName, node.moduleSpecifier.text)
          : null;
      if (node.exportClause && ts.isNamedExports(node.exportClause)) {
        for (const e of node.exportClause.elements) {
          names.add(e.name.text);
          if (target) reexports.push([file, e.name.text, target, (e.propertyName ?? e.name).text]);
        }
      } else if (node.exportClause && ts.isNamespaceExport(node.exportClause)) {
        names.add(node.exportClause.name.text);
        if (target) reexports.push([file, node.exportClause.name.text, target, "*"]);
      } else if (target) reexports.push([file, "*", target, "*"]);
    } else if (ts.isCallExpression(node) && node.expression.kind === ts.SyntaxKind.ImportKeyword) {
      const [a] = node.arguments;
      const target = a && ts.isStringLiteral(a) ? resolveFrom(sf.fileName, a.text) : null;
      if (target) use(target, "*");
    } else if (isExported(node)) {
      if (ts.isVariableStatement(node)) {
        for (const d of node.declarationList.declarations) if (ts.isIdentifier(d.name)) names.add(d.name.text);
      } else if (node.name && ts.isIdentifier(node.name)) {
        names.add(node.name.text);
        if (ts.isInterfaceDeclaration(node) || ts.isTypeAliasDeclaration(node)) types.add(`${file}: ${node.name.text}`);
      }
    }
    ts.forEachChild(node, visit); // import() may sit anywhere: in a condition, an assignment
  };
  visit(sf);
  exported.set(file, names);
}

// a used re-export uses what it re-exports, until nothing changes
for (let changed = true; changed; ) {
  changed = false;
  for (const [file, name, target, targetName] of reexports) {
    const u = used.get(file);
    const isUsed = u && (u.has("*") || u.has(name) || (name === "*" && u.size > 0));
    if (!isUsed) continue;
    const names = name === "*" ? [...u] : [targetName];
    for (const n of names) {
      if (!used.get(target)?.has(n)) {
        use(target, n);
        changed = true;
      }
    }
  }
}

// exports kept with nothing in src/, test/ or bench/ importing them, and why
const ALLOWED = new Map([
  ["src/cli/main.ts: main", "bin/wasmvs.js imports it (from dist/ or src/), outside the TypeScript program"],
]);

const report = [];
for (const [file, names] of exported) {
  if (!file.startsWith("src/")) continue;
  const u = used.get(file) ?? new Set();
  if (u.has("*")) continue;
  for (const n of names) if (!u.has(n) && !ALLOWED.has(`${file}: ${n}`)) report.push(`${file}: ${n}`);
}
report.sort();
const values = report.filter((r) => !types.has(r)),
  typeOnly = report.filter((r) => types.has(r));
console.log(values.join("\n"));
if (process.argv.includes("--types")) console.log(typeOnly.map((t) => `${t} (type)`).join("\n"));
console.error(
  `${values.length} values and ${typeOnly.length} types exported by src/ that no other file imports` +
    `${process.argv.includes("--types") ? "" : " (--types lists the types)"}`,
);
