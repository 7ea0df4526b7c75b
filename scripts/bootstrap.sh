#!/usr/bin/env bash
# Set up a Debian 12 machine for the kit: the Debian packages it drives, and a virtual
# environment in .venv with the kit installed (Debian's python3 refuses system-wide pip, PEP 668).
#   scripts/bootstrap.sh          SIPp + the kit: enough for the conformance run (main job)
#   scripts/bootstrap.sh --dev    also Kamailio, Chromium and the test tools: the project's tests
set -euo pipefail
cd "$(dirname "$0")/.."

dev=0
case "${1:-}" in
  --dev) dev=1 ;;
  "") ;;
  *) echo "usage: scripts/bootstrap.sh [--dev]" >&2; exit 2 ;;
esac

packages=(python3 python3-venv sip-tester)
if [ "$dev" = 1 ]; then
  # kamailio-tls-modules and openssl: the TLS target of the deployment tests (issue 14)
  packages+=(kamailio kamailio-presence-modules kamailio-sqlite-modules kamailio-tls-modules)
  packages+=(openssl chromium chromium-driver)
fi

missing=()
for p in "${packages[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  echo "bootstrap: installing Debian packages: ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
if [ "$dev" = 1 ]; then
  .venv/bin/python -m pip install -q -e ".[test]"
else
  .venv/bin/python -m pip install -q .
fi
echo "bootstrap: ready ($(.venv/bin/dialoginfo-conformance --version), $(sipp -v 2>/dev/null | grep -o 'SIPp v[0-9.]*' | head -1))"
