# Run by scripts/check/k8s_pods.py while every pod of the dev overlay is ready: the
# commands docs/kubernetes.md gives the operator once the port-forwards run (here the
# pods listen on their own loopback addresses, and the dev Mailpit's and Jaeger's names
# lead to the native stack's): load the demo catalog, place an order and read its
# emails, find the order's trace.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../../.."

started_us=$(( $(date +%s) * 1000000 ))
ECOM_ADMIN_PASSWORD=$(sed -n 's/^ECOM_ADMIN_PASSWORD=//p' k8s/overlays/dev/secrets/auth-service.env)
# Where the port-forward to the gateway leads (the check passes its pod's address).
gateway=${ECOM_WALK_GATEWAY:-127.0.0.1:8080}
ECOM_URL=http://$gateway ECOM_ADMIN_EMAIL=admin@ecom.local ECOM_ADMIN_PASSWORD="$ECOM_ADMIN_PASSWORD" \
  bash scripts/load-demo-catalog.sh
ECOM_URL=http://$gateway MAILPIT_URL=http://127.0.0.1:8025 bash scripts/demo.sh

# The trace of the order just placed (its placement in order-service): the services it
# crossed (this walk's, not an earlier one), from the gateway to the email. Spans leave
# in batches, so the last of them may take a few seconds to appear.
want="api-gateway auth-service inventory-service notification-service order-service product-service"
deadline=$((SECONDS + 30))
while :; do
  services=$(curl -s "http://127.0.0.1:16686/api/traces?service=order-service&operation=place_order&start=$started_us&limit=1" |
    jq -r '.data[0].processes // {} | .[].serviceName' | sort -u | tr '\n' ' ')
  [ "${services% }" = "$want" ] && break
  if [ "$SECONDS" -ge "$deadline" ]; then
    echo "walk: the order's trace crosses [${services% }], not [$want]" >&2
    exit 1
  fi
  sleep 1
done
echo "walk: catalog loaded, order placed and cancelled, both emails read, its trace crosses $want"
