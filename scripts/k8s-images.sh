#!/usr/bin/env bash
# Builds the six service images and loads them into a local cluster, for the dev overlay:
#
#   bash scripts/k8s-images.sh kind [CLUSTER]    docker build, then kind load docker-image
#                                               (cluster "kind" unless named)
#   bash scripts/k8s-images.sh minikube          docker build, then minikube image load
#
# Each image is the Dockerfile's target of the same name (`docker build --target <service>`),
# tagged ghcr.io/ecom/<service>:$IMAGE_TAG (default dev): the names k8s/overlays/dev
# deploys and docker-compose.yml builds. The builder stages are shared, so the workspace
# compiles once for all six. ECOM_IMAGES_DRY_RUN=1 prints the commands instead of running
# them (scripts/check/k8s_pods.sh checks them against the overlay and compose that way).
set -euo pipefail
cd "$(dirname "$0")/.."

cluster=${1:-}
tag=${IMAGE_TAG:-dev}
services=(api-gateway auth-service product-service order-service inventory-service notification-service)

run() {
  if [ -n "${ECOM_IMAGES_DRY_RUN:-}" ]; then
    printf '%s\n' "$*"
  else
    "$@"
  fi
}

case "$cluster" in
  kind | minikube) ;;
  *)
    echo "usage: $0 kind [CLUSTER] | minikube" >&2
    exit 2
    ;;
esac

for s in "${services[@]}"; do
  run docker build --target "$s" -t "ghcr.io/ecom/$s:$tag" .
done
for s in "${services[@]}"; do
  if [ "$cluster" = kind ]; then
    run kind load docker-image --name "${2:-kind}" "ghcr.io/ecom/$s:$tag"
  else
    run minikube image load "ghcr.io/ecom/$s:$tag"
  fi
done
