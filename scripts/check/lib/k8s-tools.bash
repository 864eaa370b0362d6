# Sourced by scripts/check/k8s.sh and scripts/check/k8s_pods.sh: installs, once, the
# pinned kustomize (Go module proxy) and kubernetes-validate (PyPI, in a venv) into
# ~/.cache/ecom-tools, and sets $kustomize, $venv and $python. Later runs reuse them.

KUSTOMIZE_VERSION=v5.8.1              # a Go module; needs Go >= 1.24
KUBERNETES_VALIDATE_VERSION=1.37.0    # ships the schemas of Kubernetes 1.25 to 1.37
# What it installs from PyPI, its main dependencies pinned too.
PY_PACKAGES="kubernetes-validate==$KUBERNETES_VALIDATE_VERSION jsonschema==4.26.0 referencing==0.37.0 PyYAML==6.0.4"
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

venv="$TOOLS/kubernetes-validate-$KUBERNETES_VALIDATE_VERSION"
if [ "$(cat "$venv/.installed" 2>/dev/null)" != "$PY_PACKAGES" ]; then
  echo "installing kubernetes-validate $KUBERNETES_VALIDATE_VERSION into $TOOLS"
  rm -rf "$venv"
  if ! python3 -m venv "$venv" 2>/dev/null; then
    # Debian's python3 keeps venv in a package of its own.
    rm -rf "$venv"
    apt-get update -qq && apt-get install -y -qq python3-venv >/dev/null
    python3 -m venv "$venv"
  fi
  # shellcheck disable=SC2086 # one word per package
  "$venv/bin/pip" install --quiet --disable-pip-version-check $PY_PACKAGES
  echo "$PY_PACKAGES" >"$venv/.installed"
fi
python="$venv/bin/python"
