#!/usr/bin/env bash
# Installs what the interop tests need, idempotently: libolm-dev (the C oracle,
# linked only by the separate interop/ module) and pkg-config.
set -euo pipefail
need=()
for p in libolm-dev pkg-config; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || need+=("$p")
done
if [ ${#need[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}"
fi

# The real-client scenarios (interop/clients): matrix-nio and python-olm.
bash "$(dirname "$0")/install-client-deps.sh"
