#!/usr/bin/env bash
# Static checks of monitoring/ (nothing is started):
#   1. promtool check config on both Prometheus configurations (compose and Kubernetes);
#   2. promtool check rules and the rule unit tests (monitoring/prometheus/tests);
#   3. scripts/check/monitoring_lint.py: dashboards parse, have unique uids and use the
#      provisioned data sources; every alert has a severity, summary, description and a
#      runbook_url to a section of docs/runbook.md that exists, and is tested both
#      firing and not firing;
#   4. every PromQL query of the dashboards parses (promtool check rules on them).
# That every metric these use is exported is proven by a Rust test
# (ecom/tests/dev/metrics.rs), with the services running.
#
# Two promtools:
#   - Debian's (package prometheus), installed with apt-get when missing;
#   - the one of the Prometheus release docker-compose.yml runs, built once from the Go
#     module proxy into ~/.cache/ecom-tools: Debian builds Prometheus without the
#     Kubernetes service discovery, so only this one can check prometheus-k8s.yml.
#     It also runs the checks and unit tests, so they hold for the version deployed.
set -euo pipefail
cd "$(dirname "$0")/../.."

# Prometheus 3.15.1 (prom/prometheus:v3.15.1); its Go module is versioned v0.315.1.
PROMETHEUS_VERSION=3.15.1
PROMETHEUS_MODULE_VERSION=v0.315.1
TOOLS="${XDG_CACHE_HOME:-$HOME/.cache}/ecom-tools"
PROM=monitoring/prometheus

started=$(date +%s%N)
mkdir -p "$TOOLS"

apt_install() { # packages...
  export DEBIAN_FRONTEND=noninteractive
  # The prometheus package would start its service; policy-rc.d (exit 101) tells
  # invoke-rc.d not to. Added only if absent, and removed again.
  local policy=/usr/sbin/policy-rc.d own_policy=0
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod +x "$policy" && own_policy=1
  fi
  local status=0
  apt-get update -qq && apt-get install -y -qq --no-install-recommends "$@" >/dev/null || status=$?
  [ "$own_policy" = 1 ] && rm -f "$policy"
  return $status
}

if ! command -v promtool >/dev/null; then
  echo "installing promtool (Debian package prometheus)"
  apt_install prometheus
fi
if ! python3 -c 'import yaml' 2>/dev/null; then
  echo "installing python3-yaml (Debian package)"
  apt_install python3-yaml
fi

upstream="$TOOLS/promtool-$PROMETHEUS_MODULE_VERSION/promtool"
if [ ! -x "$upstream" ]; then
  command -v go >/dev/null || { echo "monitoring: Go is needed to build promtool $PROMETHEUS_MODULE_VERSION" >&2; exit 1; }
  echo "building promtool $PROMETHEUS_MODULE_VERSION into $TOOLS (several minutes on 2 cores, once)"
  # Not `go install ...@version`: Prometheus's go.mod has a replace directive, which go
  # install refuses. Built inside the downloaded module instead; GOWORK=off because its
  # go.work names directories the module download leaves out.
  module=$(cd "$TOOLS" && go mod download -json "github.com/prometheus/prometheus@$PROMETHEUS_MODULE_VERSION" |
    sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p')
  [ -d "$module" ] || { echo "monitoring: cannot download the Prometheus module $PROMETHEUS_MODULE_VERSION" >&2; exit 1; }
  staging="$TOOLS/promtool-$PROMETHEUS_MODULE_VERSION.tmp"
  rm -rf "$staging"
  (cd "$module" && GOWORK=off GOFLAGS=-mod=readonly go build -o "$staging/promtool" \
    -ldflags "-X github.com/prometheus/common/version.Version=$PROMETHEUS_VERSION" ./cmd/promtool)
  rm -rf "$(dirname "$upstream")"
  mv "$staging" "$(dirname "$upstream")"
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# Runs a check quietly; on failure shows its output and fails the script.
run() { # description command...
  local description=$1
  shift
  if ! "$@" >"$work/out" 2>&1; then
    cat "$work/out" >&2
    echo "monitoring: FAILED: $description" >&2
    exit 1
  fi
  echo "ok: $description"
}

debian_version=$(promtool --version 2>&1 | awk 'NR == 1 { print $3 }')
upstream_version=$("$upstream" --version 2>&1 | awk 'NR == 1 { print $3 }')

# A promtool that accepts a broken rule is no check at all.
cat >"$work/broken.yml" <<'EOF'
groups:
  - name: broken
    rules:
      - alert: Broken
        expr: sum(rate(http_server_requests_total[5m]) by (job)
EOF
for tool in promtool "$upstream"; do
  if "$tool" check rules "$work/broken.yml" >/dev/null 2>&1; then
    echo "monitoring: $tool accepted an unparsable rule" >&2
    exit 1
  fi
done

run "promtool $debian_version check config $PROM/prometheus.yml" \
  promtool check config "$PROM/prometheus.yml"
for config in "$PROM/prometheus.yml" "$PROM/prometheus-k8s.yml"; do
  run "promtool $upstream_version check config $config" "$upstream" check config "$config"
done
run "promtool $debian_version check rules" promtool check rules "$PROM"/rules/*.yml
run "promtool $upstream_version check rules" "$upstream" check rules "$PROM"/rules/*.yml
run "promtool $debian_version test rules" promtool test rules "$PROM"/tests/*.yml
run "promtool $upstream_version test rules" "$upstream" test rules "$PROM"/tests/*.yml
run "dashboards, provisioning, runbook sections, alert test coverage" \
  python3 scripts/check/monitoring_lint.py --promql-rules "$work/dashboard-queries.yml"
run "every dashboard query parses" "$upstream" check rules "$work/dashboard-queries.yml"

echo "monitoring: all checks passed in $(( ($(date +%s%N) - started) / 1000000 )) ms"
