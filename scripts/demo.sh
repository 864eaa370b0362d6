#!/usr/bin/env bash
# The README's walkthrough, runnable: a new customer registers, logs in, browses the
# catalog, orders, reads the confirmation email, cancels and reads the cancellation
# email. Needs curl and jq, and a platform with the demo catalog (the first start of
# `ecom dev` loads it; scripts/load-demo-catalog.sh loads it anywhere else).
#
#   scripts/demo.sh                                       # ecom dev on its defaults
#   ECOM_URL=http://127.0.0.1:18080 ECOM_MAIL_DIR=/tmp/d/mail scripts/demo.sh
#   MAILPIT_URL=http://127.0.0.1:8025 scripts/demo.sh      # compose: emails in Mailpit
#
#   ECOM_URL       the gateway (default http://127.0.0.1:8080)
#   ECOM_MAIL_DIR  where `ecom dev` writes emails (default ./data/mail)
#   MAILPIT_URL    read the emails from Mailpit's API instead of a directory
#   DEMO_SKU       what to order (default MUG-001, from the demo catalog)
#
# Every step prints the request it makes; any unexpected answer stops the script with
# a non-zero status, which is how scripts/check/demo.sh keeps this walkthrough true.
set -euo pipefail

ECOM_URL="${ECOM_URL:-http://127.0.0.1:8080}"
ECOM_MAIL_DIR="${ECOM_MAIL_DIR:-./data/mail}"
MAILPIT_URL="${MAILPIT_URL:-}"
DEMO_SKU="${DEMO_SKU:-MUG-001}"

for tool in curl jq; do
  command -v "$tool" >/dev/null || { echo "demo: $tool is needed (apt-get install $tool)" >&2; exit 1; }
done

step() { printf '\n== %s\n' "$*"; }
fail() { echo "demo: $*" >&2; exit 1; }

# call METHOD PATH EXPECTED-STATUS [curl arguments...]: prints the JSON answer.
call() {
  local method=$1 path=$2 expected=$3 answer status
  shift 3
  echo "> $method $path" >&2
  answer=$(curl -sS -X "$method" "$ECOM_URL$path" -H 'content-type: application/json' \
    -w '\n%{http_code}' "$@") || fail "$method $path: no answer from $ECOM_URL (is ecom dev running?)"
  status=${answer##*$'\n'}
  answer=${answer%$'\n'*}
  [ "$status" = "$expected" ] || fail "$method $path answered $status, not $expected: $answer"
  printf '%s\n' "$answer"
}

# The email for ORDER-ID whose subject contains WORD, as text; waits up to 15 s, for
# the email is sent after the answer, from the order's event.
email() {
  local order=$1 word=$2 deadline=$((SECONDS + 15)) found=
  while [ "$SECONDS" -lt "$deadline" ]; do
    if [ -n "$MAILPIT_URL" ]; then
      local id
      id=$(curl -sS "$MAILPIT_URL/api/v1/search" --get --data-urlencode "query=subject:\"$order\"" |
        jq -r --arg w "$word" '[.messages[] | select(.Subject | contains($w))][0].ID // empty')
      if [ -n "$id" ]; then
        curl -sS "$MAILPIT_URL/api/v1/message/$id" | jq -r '"Subject: \(.Subject)\nTo: \(.To[0].Address)\n\n\(.Text)"'
        return
      fi
    else
      found=$(grep -l -e "^Subject: .*$word" "$ECOM_MAIL_DIR"/*.eml 2>/dev/null | xargs -r grep -l -e "$order" | head -1)
      if [ -n "$found" ]; then
        echo "($found)"
        # The headers, then the plain-text part as written (7bit or quoted-printable).
        tr -d '\r' <"$found" | sed -n -e '/^Subject:/p' -e '/^To:/p'
        tr -d '\r' <"$found" | awk '/^Content-Type: text\/plain/ { part = 1; next }
             part && /^--/ { exit }
             part && /^Content-Transfer-Encoding/ { next }
             part { gsub(/=3D/, "="); if (sub(/=$/, "")) printf "%s", $0; else print }'
        return
      fi
    fi
    sleep 0.2
  done
  fail "no \"$word\" email for order $order after 15 s (${MAILPIT_URL:-$ECOM_MAIL_DIR})"
}

EMAIL="demo-$(date +%s)-$RANDOM@example.com"
PASSWORD="demo password $RANDOM"

step "1. Register a customer"
call POST /api/auth/register 201 --data "{\"email\": \"$EMAIL\", \"password\": \"$PASSWORD\", \"name\": \"Demo Customer\"}" | jq .

step "2. Log in: the access token goes into TOKEN"
TOKEN=$(call POST /api/auth/login 200 --data "{\"email\": \"$EMAIL\", \"password\": \"$PASSWORD\"}" | jq -r .access_token)
echo "TOKEN=${TOKEN:0:24}..."

step "3. Browse the catalog: the kitchen, cheapest first, and the stock of $DEMO_SKU"
call GET '/api/products?category=kitchen&sort=price' 200 |
  jq -r '.items[] | .price as $p
    | "\(.sku)\t\(.name)\t\($p.amount / 100 | floor).\($p.amount % 100 + 100 | tostring | .[1:]) \($p.currency)"'
AVAILABLE=$(call GET "/api/inventory/$DEMO_SKU" 200 | jq .available)
echo "$DEMO_SKU: $AVAILABLE available"
[ "$AVAILABLE" -ge 2 ] || fail "$DEMO_SKU has $AVAILABLE in stock; order something else with DEMO_SKU"

step "4. Order two (the Idempotency-Key makes a retry safe)"
ORDER=$(call POST /api/orders 201 -H "Authorization: Bearer $TOKEN" -H "Idempotency-Key: $(date +%s%N)" \
  --data "{\"lines\": [{\"sku\": \"$DEMO_SKU\", \"quantity\": 2}]}")
echo "$ORDER" | jq '{id, status, lines, total}'
ORDER_ID=$(echo "$ORDER" | jq -r .id)
[ "$(echo "$ORDER" | jq -r .status)" = CONFIRMED ] || fail "the order is not CONFIRMED"
call GET "/api/inventory/$DEMO_SKU" 200 | jq -c .

step "5. The confirmation email"
email "$ORDER_ID" confirmed

step "6. Cancel the order: the stock comes back"
call POST "/api/orders/$ORDER_ID/cancel" 200 -H "Authorization: Bearer $TOKEN" | jq '{id, status}'
LEVEL=$(call GET "/api/inventory/$DEMO_SKU" 200)
echo "$LEVEL" | jq -c .
[ "$(echo "$LEVEL" | jq .available)" = "$AVAILABLE" ] || fail "the stock of $DEMO_SKU did not come back"

step "7. The cancellation email"
email "$ORDER_ID" cancelled

printf '\ndemo: done, order %s placed and cancelled, both emails sent\n' "$ORDER_ID"
