#!/usr/bin/env bash
# Runs every check and test against the real dependencies: starts them (installing
# what is missing), then formatting, lints and the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."

started=$(date +%s)
# rdkafka links the system's OpenSSL for Kafka over TLS (docs/decisions.md): its headers
# and pkg-config must be there before cargo builds anything.
if ! dpkg -s libssl-dev pkg-config >/dev/null 2>&1; then
  echo "== installing libssl-dev and pkg-config (apt-get)"
  if ! apt-cache policy libssl-dev 2>/dev/null | grep -q 'Candidate: [0-9]'; then apt-get update; fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends libssl-dev pkg-config
fi
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
