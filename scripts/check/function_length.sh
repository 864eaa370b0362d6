#!/usr/bin/env bash
# No Rust function outside tests runs over 60 lines: a longer one is split into named
# steps. scripts/check/function_length.py does the counting (python3's standard library
# only; under a second).
set -euo pipefail
cd "$(dirname "$0")/../.."
if ! command -v python3 >/dev/null 2>&1; then
  # A fresh Debian machine may have no Python at all; the standard library is enough.
  echo "installing python3 (Debian package)"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3 >/dev/null
fi
python3 scripts/check/function_length.py 60
