# Sourced by scripts/check/k8s.sh and scripts/check/k8s_pods.sh: installs, once, the
# pinned kustomize (Go module proxy) into ~/.cache/ecom-tools and kubernetes-validate
# (PyPI, scripts/check/requirements-k8s.txt) into a venv under ~/.cache/ecom-stack/venv,
# and sets $kustomize, $venv and $python. Later runs reuse them.

KUSTOMIZE_VERSION=v5.8.1              # a Go module; needs Go >= 1.24
TOOLS="${XDG_CACHE_HOME:-$HOME/.cache}/ecom-tools"
mkdir -p "$TOOLS"

kustomize="$TOOLS/kustomize-$KUSTOMIZE_VERSION/kustomize"
if [ ! -x "$kustomize" ]; then
  command -v go >/dev/null || { echo "k8s: Go is needed to install kustomize" >&2; exit 1; }
  echo "installing kustomize $KUSTOMIZE_VERSION into $TOOLS"
  staging="$TOOLS/kustomize-$KUSTOMIZE_VERSION.tmp"
  rm -rf "$staging"
  if ! (cd "$TOOLS" && GOBIN="$staging" go install "sigs.k8s.io/kustomize/kustomize/v5@$KUSTOMIZE_VERSION") \
    >"$TOOLS/kustomize-install.log" 2>&1; then
    cat "$TOOLS/kustomize-install.log" >&2
    exit 1
  fi
  rm -rf "$(dirname "$kustomize")"
  mv "$staging" "$(dirname "$kustomize")"
fi

# kubernetes-validate and PyYAML, every package pinned (scripts/check/lib/venv.bash).
# shellcheck source=scripts/check/lib/venv.bash
source "$(dirname "${BASH_SOURCE[0]}")/venv.bash"
pinned_venv k8s "$(dirname "${BASH_SOURCE[0]}")/../requirements-k8s.txt"
python="$venv/bin/python"
