#!/usr/bin/env bash
# No Rust function outside tests runs over 60 lines: a longer one is split into named
# steps. scripts/check/function_length.py does the counting (python3's standard library
# only; under a second).
set -euo pipefail
cd "$(dirname "$0")/../.."
python3 scripts/check/function_length.py 60
