#!/usr/bin/env bash
# Static checks of k8s/ (nothing is deployed):
#   1. kustomize (pinned) builds the base and every overlay;
#   2. every object validates against the OpenAPI schemas of pinned Kubernetes
#      versions, strictly (an unknown or misspelt field fails);
#   3. scripts/check/k8s_lint.py checks what schemas cannot: every ECOM_* name is read
#      by the Rust code, references resolve, probes, security context, resources,
#      shutdown timing, HPA/PDB/NetworkPolicy coverage, pinned images in prod.
# The validator is first shown a broken Deployment and must reject it.
#
# Tools install once into ~/.cache/ecom-tools (kustomize from the Go module proxy,
# kubernetes-validate from PyPI in a venv); later runs reuse them.
set -euo pipefail
cd "$(dirname "$0")/../.."

KUSTOMIZE_VERSION=v5.8.1              # a Go module; needs Go >= 1.24
KUBERNETES_VALIDATE_VERSION=1.37.0    # ships the schemas of Kubernetes 1.25 to 1.37
# What it installs from PyPI, its main dependencies pinned too.
PY_PACKAGES="kubernetes-validate==$KUBERNETES_VALIDATE_VERSION jsonschema==4.26.0 referencing==0.37.0 PyYAML==6.0.4"
# The oldest supported Kubernetes (the preStop sleep action is on by default from
# 1.30) and the newest the validator knows.
K8S_VERSIONS=(1.30.0 1.37.0)
TOOLS="${XDG_CACHE_HOME:-$HOME/.cache}/ecom-tools"

started=$(date +%s%N)
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
validate=("$venv/bin/kubernetes-validate" --strict --quiet)
python="$venv/bin/python"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# The validator must fail on a misspelt field and on a wrongly typed value.
cat >"$work/broken.yaml" <<'EOF'
apiVersion: apps/v1
kind: Deployment
metadata:
  name: broken
spec:
  selector:
    matchLabels: {app: broken}
  template:
    metadata:
      labels: {app: broken}
    spec:
      containers:
        - name: broken
          image: example
          ports:
            - containerPort: "http"
          livenessProbe:
            httpGets: {path: /, port: 80}
EOF
if "${validate[@]}" -k "${K8S_VERSIONS[0]}" "$work/broken.yaml" >"$work/broken.out" 2>&1; then
  echo "k8s: the schema validator accepted a broken Deployment; it checks nothing" >&2
  exit 1
fi

failed=0
"$python" scripts/check/k8s_lint.py vars || failed=1

# name:path:lint options
builds=(
  "base:k8s/base:--external-secrets"
  # The service client's secret is the one Secret dev does not generate: it would be
  # committed (docs/kubernetes.md, "Secrets").
  "dev:k8s/overlays/dev:--external-secret=ecom-service-client"
  "prod:k8s/overlays/prod:--pinned --external-secrets"
)
files=()
for build in "${builds[@]}"; do
  IFS=: read -r name dir options <<<"$build"
  out="$work/$name.yaml"
  if ! "$kustomize" build "$dir" >"$out" 2>"$work/$name.err"; then
    echo "k8s: kustomize build $dir failed:" >&2
    cat "$work/$name.err" >&2
    failed=1
    continue
  fi
  files+=("$out")
  # shellcheck disable=SC2086 # options are words
  "$python" scripts/check/k8s_lint.py build "$name" "$out" $options || failed=1
done

for version in "${K8S_VERSIONS[@]}"; do
  [ ${#files[@]} -gt 0 ] || break
  # pipefail: the validator's status survives the sed.
  if ! "${validate[@]}" -k "$version" "${files[@]}" 2>&1 | sed "s|$work/|k8s: |"; then
    failed=1
  fi
done

elapsed=$(( ($(date +%s%N) - started) / 1000000 ))
if [ "$failed" -ne 0 ]; then
  echo "k8s: FAILED (${elapsed} ms)" >&2
  exit 1
fi
objects=$(cat "${files[@]}" | grep -c '^kind:')
echo "k8s: ${#files[@]} builds, $objects objects valid for Kubernetes ${K8S_VERSIONS[*]} (strict), lint clean (${elapsed} ms)"
