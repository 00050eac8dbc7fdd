#!/usr/bin/env node
// Formats assembly/ with Biome, the formatter of the rest of the tree. Biome cannot parse AssemblyScript's
// decorators on top-level functions (`@inline` above `function`: TypeScript allows decorators on classes
// only), so each such line is turned into a marker comment, the file is formatted through Biome's stdin,
// and the marker is turned back. Decorators on class members parse as they are.
//   node scripts/format-assembly.mjs            rewrite the files that change
//   node scripts/format-assembly.mjs --check    list the files that would change; exit 1 if any
import { spawnSync } from "node:child_process";
import { readFileSync, readdirSync, writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("..", import.meta.url));
const check = process.argv.includes("--check");
const biome = `${root}node_modules/@biomejs/biome/bin/biome`;
// a decorator alone on its line, and one in front of its function on the same line (it goes back there)
const OWN_LINE = "// @as-decorator ",
  SAME_LINE = "// @as-decorator+ ";

const files = readdirSync(`${root}assembly`, { recursive: true })
  .filter((f) => f.endsWith(".ts"))
  .map((f) => `assembly/${f}`)
  .sort();
let changed = 0;
for (const file of files) {
  const text = readFileSync(root + file, "utf8");
  const masked = text
    .replace(/^(@\w+(?:\([^)\n]*\))?)[ \t]+(?=\S)/gm, `${SAME_LINE}$1\n`)
    .replace(/^(@\w+.*)$/gm, `${OWN_LINE}$1`);
  // a path Biome's configuration includes (assembly/ itself is excluded from its own walk)
  const r = spawnSync(process.execPath, [biome, "format", `--stdin-file-path=assembly-masked/${file}`], {
    input: masked,
    encoding: "utf8",
    cwd: root,
    maxBuffer: 64 << 20,
  });
  if (r.status !== 0) {
    process.stderr.write(`${file}: biome could not format it:\n${r.stderr}`);
    process.exitCode = 2;
    continue;
  }
  const formatted = r.stdout
    .replace(/^\/\/ @as-decorator\+ (.*)\n/gm, "$1 ")
    .replace(/^\/\/ @as-decorator (.*)$/gm, "$1");
  if (formatted === text) continue;
  changed++;
  if (check) process.stdout.write(`${file}: not formatted\n`);
  else writeFileSync(root + file, formatted);
}
if (check && changed) {
  process.stdout.write(`${changed} of ${files.length} assembly/ files need 'npm run format'\n`);
  process.exitCode ||= 1;
}
