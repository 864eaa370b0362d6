#!/usr/bin/env bash
# Loads the demo catalog (ecom/demo-catalog.json, the one `ecom dev` loads on the first
# start of a data directory) into a running platform through the gateway's admin API:
# each product that does not exist yet is created (POST /api/products) and gets its
# stock (PUT /api/inventory/{sku}). A product whose sku exists is left as it is, so
# running it twice changes nothing. Needs curl and jq.
#
#   docker compose up -d && scripts/load-demo-catalog.sh      # admin from ./.env
#   ECOM_URL=http://127.0.0.1:18080 ECOM_ADMIN_EMAIL=admin@ecom.local \
#     ECOM_ADMIN_PASSWORD="$(head -1 data/admin-password)" scripts/load-demo-catalog.sh
#
#   ECOM_URL                                 the gateway (default http://127.0.0.1:8080)
#   ECOM_ADMIN_EMAIL / ECOM_ADMIN_PASSWORD   the admin; read from ./.env when unset
#   DEMO_CATALOG                             the catalog (default ecom/demo-catalog.json)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"

ECOM_URL="${ECOM_URL:-http://127.0.0.1:8080}"
DEMO_CATALOG="${DEMO_CATALOG:-$root/ecom/demo-catalog.json}"

fail() { echo "load-demo-catalog: $*" >&2; exit 1; }
for tool in curl jq; do
  command -v "$tool" >/dev/null || fail "$tool is needed (apt-get install $tool)"
done

# compose's .env, read (not sourced) for the two admin variables only.
from_env_file() {
  [ -f .env ] || return 0
  sed -n "s/^$1=//p" .env | tail -1
}
ECOM_ADMIN_EMAIL="${ECOM_ADMIN_EMAIL:-$(from_env_file ECOM_ADMIN_EMAIL)}"
ECOM_ADMIN_PASSWORD="${ECOM_ADMIN_PASSWORD:-$(from_env_file ECOM_ADMIN_PASSWORD)}"
[ -n "$ECOM_ADMIN_EMAIL" ] && [ -n "$ECOM_ADMIN_PASSWORD" ] ||
  fail "set ECOM_ADMIN_EMAIL and ECOM_ADMIN_PASSWORD (or run it beside compose's .env)"

# request METHOD PATH BODY [curl arguments...]: prints the status, the answer in $answer_file.
answer_file=$(mktemp)
trap 'rm -f "$answer_file"' EXIT
request() {
  local method=$1 path=$2 body=$3
  shift 3
  curl -sS -o "$answer_file" -w '%{http_code}' -X "$method" "$ECOM_URL$path" \
    -H 'content-type: application/json' --data "$body" "$@" || fail "$method $path: no answer from $ECOM_URL"
}

login=$(jq -n --arg email "$ECOM_ADMIN_EMAIL" --arg password "$ECOM_ADMIN_PASSWORD" '{$email, $password}')
status=$(request POST /api/auth/login "$login")
[ "$status" = 200 ] || fail "admin login as $ECOM_ADMIN_EMAIL answered $status: $(cat "$answer_file")"
token=$(jq -r .access_token "$answer_file")

created=0 existing=0
while IFS= read -r product; do
  sku=$(jq -r .sku <<<"$product")
  status=$(request POST /api/products "$(jq -c 'del(.stock)' <<<"$product")" -H "Authorization: Bearer $token")
  case "$status" in
    201) created=$((created + 1)) ;;
    409)
      # Stock a product without any (a load cut short between the two requests); one
      # that has stock is left as its users left it.
      existing=$((existing + 1))
      status=$(curl -sS -o /dev/null -w '%{http_code}' "$ECOM_URL/api/inventory/$sku")
      [ "$status" = 404 ] || continue
      ;;
    *) fail "creating $sku answered $status: $(cat "$answer_file")" ;;
  esac
  status=$(request PUT "/api/inventory/$sku" "$(jq -c '{available: .stock}' <<<"$product")" \
    -H "Authorization: Bearer $token")
  [ "$status" = 200 ] || fail "the stock of $sku answered $status: $(cat "$answer_file")"
done < <(jq -c '.products[]' "$DEMO_CATALOG")

echo "load-demo-catalog: $created products created with their stock, $existing already there ($ECOM_URL)"
