#!/usr/bin/env bash
# Static checks of the container setup, without a Docker engine:
#   - docker-compose.yml against the Compose Specification (compose-go, the loader of
#     docker compose) with the variables of .env.example, plus the project's rules;
#   - the Dockerfile with BuildKit's Dockerfile linter (`docker build --check` rules),
#     warnings failing;
#   - every ECOM_*/OTEL_*/RUST_LOG variable compose sets is read by the Rust sources, and
#     every variable they read is in docs/configuration.md.
# The checker is scripts/check/composecheck (Go, dependencies pinned in its go.sum). It is
# built once into $ECOM_TOOLS_CACHE (default ~/.cache/ecom-tools), keyed by the hash of
# its sources, and reused while they do not change.
#
#   bash scripts/check/compose.sh [composecheck flags...]   (-compose FILE, -dockerfile FILE)
set -euo pipefail
cd "$(dirname "$0")/../.."

src=scripts/check/composecheck
cache="${ECOM_TOOLS_CACHE:-$HOME/.cache/ecom-tools}"

if ! command -v go >/dev/null 2>&1; then
  echo "compose.sh: installing Go (Debian package; the toolchain go.mod asks for comes from the Go module proxy)"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq golang-go >/dev/null
fi

key="$(cat "$src/go.mod" "$src/go.sum" "$src"/*.go | sha256sum | cut -c1-16)"
bin="$cache/composecheck-$key"
if [[ ! -x "$bin" ]]; then
  echo "compose.sh: building composecheck (first run only)"
  mkdir -p "$cache"
  (cd "$src" && GOTOOLCHAIN="${GOTOOLCHAIN:-auto}" GOFLAGS="-mod=readonly -buildvcs=false" go build -trimpath -o "$bin.tmp" .)
  mv -f "$bin.tmp" "$bin"
  # Older builds of the checker are of no further use.
  find "$cache" -maxdepth 1 -name 'composecheck-*' ! -name "composecheck-$key" -delete
fi

exec "$bin" -root . "$@"
