#!/usr/bin/env bash
# Side-by-side benchmarks of myelin, goolm and libolm (the interop/ module),
# summarised by benchstat with one column per implementation.
#
# Usage: scripts/bench.sh [COUNT] [BENCHTIME]    (defaults: 5 1s)
# Raw output goes to bench-olm.txt at the repository root (gitignored).
set -euo pipefail
count="${1:-5}"
benchtime="${2:-1s}"
root="$(cd "$(dirname "$0")/.." && pwd)"
out="$root/bench-olm.txt"
benchstat="golang.org/x/perf/cmd/benchstat@v0.0.0-20260908200009-22c9c6c9d4da"

cd "$root/interop"
# -mod=mod: interop/go.mod goes stale whenever the root module's
# requirements change (it replaces myelin with ../); let go fix it up.
go test -mod=mod -run '^$' -bench '^Benchmark(Megolm|Olm|Floor)' -benchmem \
  -count "$count" -benchtime "$benchtime" . | tee "$out"

cd "$root"
echo
echo "== myelin vs goolm vs libolm (raw output: bench-olm.txt)"
go run "$benchstat" -col /impl -filter '-.name:/^Floor/' bench-olm.txt
echo
echo "== primitive floor (what the protocol operations cannot beat)"
go run "$benchstat" -filter '.name:/^Floor/' bench-olm.txt
