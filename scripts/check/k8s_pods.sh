#!/usr/bin/env bash
# Starts the pods of k8s/overlays/dev and k8s/overlays/prod as a kubelet would, without
# a cluster or a container engine (scripts/check/k8s_pods.py says how): the six services
# from the same cargo build the Dockerfile puts in the images, Mailpit from the native
# stack; each under bubblewrap with its securityContext, read-only root, declared volumes
# and rendered environment, then its startup, readiness and liveness probes within their
# budgets. First it shows that the dev Mailpit without a temp volume fails this way;
# with the dev pods ready it walks docs/kubernetes.md's path (scripts/check/lib/k8s-walk.bash:
# demo catalog, an order, its emails in Mailpit, its trace in Jaeger).
#
# Needs root (to set up each pod's mounts and switch to its user, as a kubelet does) and
# the native stack (scripts/stack.sh up). Installs bubblewrap, curl, jq, openssl (Debian) if missing;
# kustomize comes from scripts/check/lib/k8s-tools.bash. ECOM_POD_CHECK_PROFILE=release
# runs the release binaries (default: debug); ECOM_POD_CHECK_BIN_DIR=DIR runs the ones
# already built in DIR without building.
set -euo pipefail
cd "$(dirname "$0")/../.."

started=$(date +%s)
if [ "$(id -u)" -ne 0 ]; then
  echo "k8s pods: needs root: each pod's mounts and its switch to the pod's user are made as a kubelet makes them" >&2
  exit 1
fi
# shellcheck source=scripts/check/lib/k8s-tools.bash
source scripts/check/lib/k8s-tools.bash
# shellcheck source=scripts/check/lib/k8s-site.bash
source scripts/check/lib/k8s-site.bash

missing=()
command -v bwrap >/dev/null || missing+=(bubblewrap)
command -v curl >/dev/null || missing+=(curl)
command -v jq >/dev/null || missing+=(jq)
command -v openssl >/dev/null || missing+=(openssl)
if [ "${#missing[@]}" -gt 0 ]; then
  echo "k8s pods: installing ${missing[*]} (Debian)"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
# --perms and --size (tmpfs modes and emptyDir size limits) need bubblewrap >= 0.8.
bwrap_version=$(bwrap --version | awk '{print $2}')
if [ "$(printf '%s\n0.8.0\n' "$bwrap_version" | sort -V | head -1)" != "0.8.0" ]; then
  echo "k8s pods: bubblewrap $bwrap_version is too old (need >= 0.8.0)" >&2
  exit 1
fi
mailpit=$(ls -d "${ECOM_STACK_HOME:-$HOME/.cache/ecom-stack}"/bin/mailpit-* 2>/dev/null | sort -V | tail -1)
[ -x "$mailpit" ] || { echo "k8s pods: no Mailpit under ~/.cache/ecom-stack (bash scripts/stack.sh up)" >&2; exit 1; }
eval "$(bash scripts/stack.sh env)"

# The binaries the Dockerfile copies into the images: the same packages and flags.
profile=${ECOM_POD_CHECK_PROFILE:-debug}
packages=(-p api-gateway -p auth-service -p product-service -p order-service -p inventory-service -p notification-service)
if [ -n "${ECOM_POD_CHECK_BIN_DIR:-}" ]; then
  bin_dir=$ECOM_POD_CHECK_BIN_DIR
else
  if [ "$profile" = release ]; then
    cargo build --release --locked "${packages[@]}"
  else
    cargo build --locked "${packages[@]}"
  fi
  bin_dir="$(cargo metadata --format-version 1 --no-deps | "$python" -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')/$profile"
fi
# A snapshot of the binaries (hard links where possible): a cargo run elsewhere that
# rebuilds target/ meanwhile does not change what the pods run.
snapshot=$(mktemp -d "$bin_dir/../pod-check.XXXXXX")
trap 'rm -rf "$snapshot"' EXIT
for s in api-gateway auth-service product-service order-service inventory-service notification-service; do
  ln "$bin_dir/$s" "$snapshot/$s" 2>/dev/null || cp "$bin_dir/$s" "$snapshot/$s"
done
bin_dir=$snapshot

work=$(mktemp -d)
trap 'rm -rf "$work" "$snapshot"' EXIT
"$kustomize" build k8s/overlays/dev >"$work/dev.yaml"
site_build prod "$work" >"$work/prod.yaml"

# The dev image path (scripts/k8s-images.sh): dry-run, its tags are the dev overlay's.
ECOM_IMAGES_DRY_RUN=1 bash scripts/k8s-images.sh kind >"$work/images.txt"
"$python" scripts/check/k8s_pods.py images "$work/images.txt" "$work/dev.yaml" docker-compose.yml

"$python" scripts/check/k8s_pods.py run --self-test --bin-dir "$bin_dir" --mailpit "$mailpit" \
  --walk dev=scripts/check/lib/k8s-walk.bash dev="$work/dev.yaml" prod="$work/prod.yaml"
# The signing-key rotation of docs/kubernetes.md, its kustomize steps as written there,
# each step's auth-service pod started from that step's build.
copy=$(site_copy "$work")
printf '%s\n' "$SITE_TEST_ENV" >"$copy/overlays/prod/site.env"
(cd "$copy/overlays/prod" && "$kustomize" edit set configmap auth-service --from-literal=ECOM_JWT_NEXT_KEY_FILES=/etc/ecom/jwt/key-2.pem)
"$kustomize" build "$copy/overlays/prod" >"$work/rotation-1.yaml"
(cd "$copy/overlays/prod" && "$kustomize" edit set configmap auth-service \
  --from-literal=ECOM_JWT_SIGNING_KEY_FILE=/etc/ecom/jwt/key-2.pem \
  --from-literal=ECOM_JWT_NEXT_KEY_FILES= \
  --from-literal=ECOM_JWT_PREVIOUS_KEY_FILES=/etc/ecom/jwt/jwt-signing-key.pem)
"$kustomize" build "$copy/overlays/prod" >"$work/rotation-2.yaml"
(cd "$copy/overlays/prod" && "$kustomize" edit set configmap auth-service --from-literal=ECOM_JWT_PREVIOUS_KEY_FILES=)
"$kustomize" build "$copy/overlays/prod" >"$work/rotation-3.yaml"
"$python" scripts/check/k8s_pods.py rotate --bin-dir "$bin_dir" "$work"/rotation-{1,2,3}.yaml

echo "k8s pods: passed in $(( $(date +%s) - started )) s"
