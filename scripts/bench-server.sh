#!/usr/bin/env bash
# bench-server.sh: run cmd/myelin-bench against myelind and Dendrite v0.13.8
# (SQLite) in one run, each on a free loopback port with a fresh data dir, and
# print a side-by-side table with ratios (myelind / Dendrite).
#
#   scripts/bench-server.sh [myelin-bench flags...]    e.g. --devices 200 --rooms 20
#
# Environment:
#   BENCH_TMP      work directory (default: a new mktemp -d; kept for the logs and JSON)
#   BENCH_SERVERS  which servers to run, default "myelind dendrite"
#   BENCH_REV      build myelind from this git revision (e.g. HEAD) instead of the working tree
#   DENDRITE_BIN   directory that already holds dendrite, generate-config and
#                  generate-keys (skips `go install`)
#
# Dendrite is built from the Go module proxy with cgo (mattn/go-sqlite3), so
# gcc is needed. Rate limits are turned off on both servers; Dendrite's
# federation key perspectives are emptied so nothing leaves the machine.
set -euo pipefail
cd "$(dirname "$0")/.."

GO=${GO:-go}
DENDRITE_VERSION=v0.13.8
TMP=${BENCH_TMP:-$(mktemp -d -t myelin-bench.XXXXXX)}
mkdir -p "$TMP"
SERVERS=${BENCH_SERVERS:-"myelind dendrite"}
echo "bench-server: work dir $TMP" >&2

PIDS=()
cleanup() {
	for p in "${PIDS[@]}"; do
		kill -TERM "$p" 2>/dev/null || true
	done
}
trap cleanup EXIT

if [[ -n "${BENCH_REV:-}" ]]; then
	# Build the committed state of a revision (not the working tree).
	echo "bench-server: building myelind and myelin-bench at $BENCH_REV" >&2
	rm -rf "$TMP/src"
	mkdir -p "$TMP/src"
	git archive "$BENCH_REV" | tar -x -C "$TMP/src"
	(cd "$TMP/src" && "$GO" build -o "$TMP/myelind" ./cmd/myelind && "$GO" build -o "$TMP/myelin-bench" ./cmd/myelin-bench)
else
	echo "bench-server: building myelind and myelin-bench from the working tree" >&2
	"$GO" build -o "$TMP/myelind" ./cmd/myelind
	"$GO" build -o "$TMP/myelin-bench" ./cmd/myelin-bench
fi

if [[ " $SERVERS " == *" dendrite "* ]]; then
	if [[ -n "${DENDRITE_BIN:-}" ]]; then
		DBIN=$DENDRITE_BIN
	else
		DBIN=$TMP/bin
		echo "bench-server: building Dendrite $DENDRITE_VERSION from the module proxy (cgo sqlite; slow the first time)" >&2
		GOBIN=$DBIN CGO_ENABLED=1 GOFLAGS=-mod=mod "$GO" install \
			"github.com/matrix-org/dendrite/cmd/dendrite@$DENDRITE_VERSION" \
			"github.com/matrix-org/dendrite/cmd/generate-config@$DENDRITE_VERSION" \
			"github.com/matrix-org/dendrite/cmd/generate-keys@$DENDRITE_VERSION"
	fi
fi

# wait_up URL PID LOG: wait until /versions answers (60 s at most).
wait_up() {
	local url=$1 pid=$2 log=$3
	for _ in $(seq 1 600); do
		if ! kill -0 "$pid" 2>/dev/null; then
			echo "bench-server: server exited; log:" >&2
			tail -n 30 "$log" >&2
			return 1
		fi
		if curl -fsS -o /dev/null "$url/_matrix/client/versions" 2>/dev/null; then
			return 0
		fi
		sleep 0.1
	done
	echo "bench-server: $url did not come up" >&2
	return 1
}

# stop PID: SIGTERM, then SIGKILL after 30 s.
stop() {
	local pid=$1
	kill -TERM "$pid" 2>/dev/null || return 0
	for _ in $(seq 1 300); do
		kill -0 "$pid" 2>/dev/null || return 0
		sleep 0.1
	done
	kill -KILL "$pid" 2>/dev/null || true
}

run_myelind() {
	local dir=$TMP/myelind-run port pid
	rm -rf "$dir"
	mkdir -p "$dir"
	cat >"$dir/config.json" <<'EOF'
{"rate_limit": {"per_user": {"rate": 0, "burst": 0}, "per_ip": {"rate": 0, "burst": 0}}, "log": {"level": "warn"}}
EOF
	port=$("$TMP/myelin-bench" freeport) || return 1
	"$TMP/myelind" --listen "127.0.0.1:$port" --data "$dir/data" --config "$dir/config.json" >"$dir/log" 2>&1 &
	pid=$!
	PIDS+=("$pid")
	wait_up "http://127.0.0.1:$port" "$pid" "$dir/log" || return 1
	echo "bench-server: myelind pid $pid on 127.0.0.1:$port" >&2
	local rc=0
	"$TMP/myelin-bench" --hs "http://127.0.0.1:$port" --pid "$pid" --label myelind --out "$TMP/myelind.json" "$@" || rc=$?
	stop "$pid"
	return $rc
}

run_dendrite() {
	local dir=$TMP/dendrite-run port pid
	rm -rf "$dir"
	mkdir -p "$dir"
	# (set -e does not apply inside a function called with ||: check each step.)
	"$DBIN/generate-keys" --private-key "$dir/matrix_key.pem" >/dev/null || return 1
	"$DBIN/generate-config" -dir "$dir" >"$dir/dendrite.yaml.gen" || return 1
	# Patch the generated config: our key, registration on, no rate limits,
	# federation off and no key perspectives (nothing leaves loopback), quiet logs.
	awk -v key="$dir/matrix_key.pem" '
		/^  private_key:/ { print "  private_key: " key; next }
		/^  key_perspectives:/ { print "  key_perspectives: []"; skip = 1; next }
		skip && /^  [a-z_]+:/ { skip = 0 }
		skip { next }
		/^  rate_limiting:/ { print; inrl = 1; next }
		inrl && /^    enabled:/ { print "    enabled: false"; inrl = 0; next }
		/^  level: info/ { print "  level: warn"; next }
		/^  registration_disabled:/ { print "  registration_disabled: false"; next }
		/^  disable_federation:/ { print "  disable_federation: true"; next }
		{ print }
	' "$dir/dendrite.yaml.gen" >"$dir/dendrite.yaml"
	grep -q "key_perspectives: \[\]" "$dir/dendrite.yaml" || { echo "bench-server: could not patch dendrite.yaml" >&2; return 1; }
	port=$("$TMP/myelin-bench" freeport) || return 1
	(cd "$dir" && exec "$DBIN/dendrite" -config "$dir/dendrite.yaml" -http-bind-address "127.0.0.1:$port" \
		-really-enable-open-registration) >"$dir/stdout.log" 2>&1 &
	pid=$!
	PIDS+=("$pid")
	wait_up "http://127.0.0.1:$port" "$pid" "$dir/stdout.log" || return 1
	echo "bench-server: dendrite pid $pid on 127.0.0.1:$port" >&2
	local rc=0
	"$TMP/myelin-bench" --hs "http://127.0.0.1:$port" --pid "$pid" --label dendrite --out "$TMP/dendrite.json" "$@" || rc=$?
	stop "$pid"
	return $rc
}

START=$(date +%s)
echo "bench-server: myelind at ${BENCH_REV:-working tree of} $(git rev-parse --short "${BENCH_REV:-HEAD}" 2>/dev/null || echo unknown); $(nproc) CPUs; $(date -u +%FT%TZ)"
echo "bench-server: load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
rc=0
for s in $SERVERS; do
	case $s in
	myelind) run_myelind "$@" || rc=$? ;;
	dendrite) run_dendrite "$@" || rc=$? ;;
	*) echo "bench-server: unknown server $s" >&2; exit 2 ;;
	esac
	echo
done
if [[ -f "$TMP/myelind.json" && -f "$TMP/dendrite.json" ]]; then
	echo "=== myelind vs Dendrite $DENDRITE_VERSION (ratio = myelind / Dendrite) ==="
	"$TMP/myelin-bench" compare "$TMP/myelind.json" "$TMP/dendrite.json"
fi
echo "bench-server: load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "bench-server: $(($(date +%s) - START)) s; results in $TMP/{myelind,dendrite}.json" >&2
exit $rc
