#!/bin/sh
# The one reformat of the whole tree (issue 17), for the lead to run on main after every branch is merged:
# Biome's formatter over the TypeScript and JavaScript, assembly/ through scripts/format-assembly.mjs,
# clang-format over native/, then Biome's safe lint fixes; then the type check and the unit tests, so a
# reformat that changed meaning is caught before it is committed. Commits nothing: read `git diff --stat`,
# then commit it alone ("format: the whole tree, once, with Biome and clang-format; no change in behaviour").
# After it: `npm run lint` lists what needs a hand (see the README's Contributing section).
set -eu
cd "$(dirname "$0")/.."
if [ -n "$(git status --porcelain --untracked-files=no)" ]; then
  echo "format-tree: the work tree has uncommitted changes; commit or stash them first" >&2
  exit 2
fi
npx biome format --write .
node scripts/format-assembly.mjs
scripts/format-native.sh
# safe fixes only (node: import prefixes, import type, const, unused imports); nothing that changes meaning
npx biome lint --write . || true
npx tsc --noEmit
npm run build --silent && npm run build:debug --silent
npm run test:unit
echo "format-tree: done; lines still over 120 characters:"
git ls-files '*.ts' '*.cts' '*.mjs' '*.cjs' '*.js' '*.cc' | xargs awk 'length > 120 { n++ } END { print n + 0 }'
