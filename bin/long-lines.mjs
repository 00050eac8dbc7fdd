#!/usr/bin/env node
// Lists the lines longer than the formatter's width (biome.json's lineWidth, which .clang-format matches) in
// the tracked sources the formatters own: TypeScript and JavaScript (Biome) and the C and C++ (clang-format).
// Both leave alone what they cannot break (strings, template literals, regexes, comments), so this holds the
// line for those: `npm run long-lines`; exits 1 when any is listed. Width counts characters, not bytes.
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const USAGE = "usage: long-lines.mjs [--max CHARACTERS]";
const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const args = process.argv.slice(2);
if (args.includes("--help")) {
  console.log(USAGE);
  process.exit(0);
}
function usageError(why) {
  console.error(`long-lines.mjs: ${why}\n${USAGE}`);
  process.exit(2);
}
let max = JSON.parse(readFileSync(resolve(root, "biome.json"), "utf8")).formatter.lineWidth;
for (let i = 0; i < args.length; i++) {
  if (args[i] !== "--max") usageError(`unknown argument ${JSON.stringify(args[i].slice(0, 40))}`);
  max = Number(args[++i]);
  if (!Number.isInteger(max) || max < 1) usageError("--max needs a whole number of characters");
}

const patterns = ["*.ts", "*.mts", "*.cts", "*.js", "*.mjs", "*.cjs", "*.cc", "*.h", "*.c"];
const files = execFileSync("git", ["ls-files", "--", ...patterns], { cwd: root, encoding: "utf8" })
  .split("\n")
  .filter(Boolean);
const failing = [];
for (const file of files) {
  const lines = readFileSync(resolve(root, file), "utf8").split("\n");
  lines.forEach((line, i) => {
    const width = [...line].length;
    if (width <= max) return;
    failing.push(`${file}:${i + 1}: ${width} characters`);
  });
}
for (const w of failing) console.error(w);
if (failing.length) {
  console.error(`long-lines: ${failing.length} line(s) over ${max} characters: break them where a reader would`);
  process.exit(1);
}
