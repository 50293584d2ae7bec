#!/usr/bin/env bash
# Runs every fuzz target (func FuzzXxx in a _test.go file) of the root
# module's packages for FUZZTIME each, one at a time.
#
# Usage: scripts/fuzz.sh [FUZZTIME]    (default 30s)
set -euo pipefail
fuzztime="${1:-30s}"
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"

failed=()
ran=0
# go list ./... stays inside the root module (interop/ is a module of its own).
while IFS=' ' read -r pkg dir; do
  names="$(grep -h -o -E '^func Fuzz[A-Za-z0-9_]*\(' "$dir"/*_test.go 2>/dev/null |
    sed -e 's/^func //' -e 's/($//' | sort -u || true)"
  for name in $names; do
    echo "== $pkg $name ($fuzztime)"
    ran=$((ran + 1))
    if ! go test -run '^$' -fuzz "^${name}\$" -fuzztime "$fuzztime" "$pkg"; then
      failed+=("$pkg.$name")
    fi
  done
done < <(go list -f '{{.ImportPath}} {{.Dir}}' ./...)

echo "fuzz: $ran targets run, ${#failed[@]} failed"
if [ ${#failed[@]} -gt 0 ]; then
  printf '  %s\n' "${failed[@]}"
  exit 1
fi
