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
