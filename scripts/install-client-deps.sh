#!/usr/bin/env bash
# Installs the real Matrix clients the interop/clients tests drive, idempotently:
# Debian's matrix-nio with python-olm (for the nio scenarios). mautrix-go comes
# from the Go module proxy through interop/go.mod and needs nothing here.
set -euo pipefail
need=()
for p in python3 python3-matrix-nio python3-olm; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || need+=("$p")
done
if [ ${#need[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}"
fi

# matrix-js-sdk (Element Web's SDK) with its rust crypto, for the js-sdk
# scenario: npm packages pinned by interop/clients/jssdk/package-lock.json,
# installed only when missing or out of date.
jsdir="$(cd "$(dirname "$0")/../interop/clients/jssdk" && pwd)"
if command -v npm >/dev/null 2>&1; then
  want=$(node -e 'console.log(require(process.argv[1]).packages["node_modules/matrix-js-sdk"].version)' "$jsdir/package-lock.json")
  have=$(node -e 'try{console.log(require(process.argv[1]).version)}catch(e){console.log("")}' "$jsdir/node_modules/matrix-js-sdk/package.json")
  if [ "$want" != "$have" ]; then
    (cd "$jsdir" && npm ci --no-audit --no-fund --loglevel=error)
  fi
else
  echo "install-client-deps: npm not found; the matrix-js-sdk scenario will be skipped" >&2
fi
