#!/usr/bin/env bash
# Runs every check and test against the real dependencies: starts them (installing
# what is missing), then formatting, lints and the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."

started=$(date +%s)
bash scripts/stack.sh up
eval "$(bash scripts/stack.sh env)"

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets --all-features --locked -- -D warnings
for check in scripts/check/*.sh; do
  [ -e "$check" ] || continue
  echo "== $check"
  bash "$check"
done
echo "== cargo test"
cargo test --workspace --all-features --locked
echo "== all checks passed in $(( $(date +%s) - started )) s"
