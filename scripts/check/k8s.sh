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
# Tools install once (scripts/check/lib/k8s-tools.bash): kustomize from the Go module
# proxy into ~/.cache/ecom-tools, kubernetes-validate from PyPI into a pinned venv.
set -euo pipefail
cd "$(dirname "$0")/../.."

# The oldest supported Kubernetes (the preStop sleep action is on by default from
# 1.30) and the newest the validator knows.
K8S_VERSIONS=(1.30.0 1.37.0)

started=$(date +%s%N)
# shellcheck source=scripts/check/lib/k8s-tools.bash
source scripts/check/lib/k8s-tools.bash
# shellcheck source=scripts/check/lib/k8s-site.bash
source scripts/check/lib/k8s-site.bash
validate=("$venv/bin/kubernetes-validate" --strict --quiet)

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

# prod refuses to build without the operator's site.env (no placeholder gets deployed);
# with one (the test values of scripts/check/lib/k8s-site.bash) it builds below.
copy=$(site_copy "$work")
if "$kustomize" build "$copy/overlays/prod" >/dev/null 2>"$work/refused.err" || ! grep -q "site.env" "$work/refused.err"; then
  echo "k8s: the prod overlay built without a site.env (or failed for another reason):" >&2
  cat "$work/refused.err" >&2
  failed=1
fi
printf '%s\n' "$SITE_TEST_ENV" >"$copy/overlays/prod/site.env"

# name:path:lint options
builds=(
  "base:k8s/base:--external-secrets"
  # The service client's secret is the one Secret dev does not generate: it would be
  # committed (docs/kubernetes.md, "Secrets").
  "dev:k8s/overlays/dev:--external-secret=ecom-service-client"
  "prod:$copy/overlays/prod:--pinned --external-secrets --no-placeholders"
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
