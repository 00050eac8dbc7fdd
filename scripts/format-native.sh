#!/bin/sh
# clang-format over the C++ addons (native/*/*.cc, *.h; never their build/ output) and the benches' C programs
# (bench/**/*.c), with .clang-format.
#   scripts/format-native.sh           rewrite in place
#   scripts/format-native.sh --check   list what would change; exit 1 if anything would
set -eu
cd "$(dirname "$0")/.."
if ! command -v clang-format >/dev/null 2>&1; then
  # as a test step (npm test runs --check) a missing tool is a counted skip, and a failure under CI=true
  if [ "${1:-}" = "--check" ]; then
    echo "SKIP scripts/format-native.sh: clang-format check: clang-format is not installed (apt-get install clang-format)" >&2
    [ "${CI:-}" = "true" ] && exit 1
    exit 0
  fi
  echo "format-native: clang-format is not installed (Debian: apt-get install clang-format)" >&2
  exit 2
fi
files=$(find native -path '*/build' -prune -o \( -name '*.cc' -o -name '*.h' \) -print)
files="$files $(find bench -name '*.c' -print)"
files=$(echo $files | tr ' ' '\n' | sort)
if [ "${1:-}" = "--check" ]; then
  # --dry-run -Werror: one diagnostic per place that would change; exit 1 if any
  clang-format --dry-run -Werror $files
else
  clang-format -i $files
fi
