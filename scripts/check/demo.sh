#!/usr/bin/env bash
# The first ten minutes of a new user, checked: what the README shows must work.
#
#   1. `ecom dev` on a fresh data directory (ports the system chooses, a throwaway
#      directory) loads the demo catalog and keeps its generated admin password in
#      DATA_DIR/admin-password, mode 0600; started again on it, it uses that password
#      and leaves the catalog alone;
#   2. scripts/demo.sh, the README's walkthrough, runs against it: register, log in,
#      browse, order, the confirmation email, cancel, the cancellation email; and so
#      do the README's own commands, as written (the gateway's URL substituted);
#   3. the interactive API page (/api/docs/) in Debian's chromium, headless, driven by
#      Playwright for Python (scripts/check/docs_browser.py): every operation renders,
#      Authorize takes a token, GET /api/products and GET /api/auth/me are executed
#      from the page, and no request leaves 127.0.0.1;
#   4. scripts/load-demo-catalog.sh, the compose users' way to the same catalog, loads
#      it into an `ecom dev --no-demo` (empty) and changes nothing the second time.
#
# Installs what is missing: curl, jq and chromium from Debian (apt-get; chromium is
# Debian's current build, which security updates replace, so it is not pinned), and
# Playwright, pinned in requirements-browser.txt, into a venv under
# ~/.cache/ecom-stack/venv (ECOM_STACK_HOME). Playwright downloads no browser here.
set -euo pipefail
cd "$(dirname "$0")/../.."

REQUIREMENTS=scripts/check/requirements-browser.txt
started=$(date +%s)

missing=()
command -v curl >/dev/null || missing+=(curl)
command -v jq >/dev/null || missing+=(jq)
[ -x /usr/bin/chromium ] || missing+=(chromium)
if [ "${#missing[@]}" -gt 0 ]; then
  echo "installing ${missing[*]} (apt-get)"
  export DEBIAN_FRONTEND=noninteractive
  if ! apt-cache policy "${missing[@]}" 2>/dev/null | grep -q 'Candidate: [0-9]'; then
    apt-get update
  fi
  apt-get install -y --no-install-recommends "${missing[@]}"
fi

# shellcheck source=scripts/check/lib/venv.bash
source scripts/check/lib/venv.bash
pinned_venv browser "$REQUIREMENTS"

# shellcheck source=scripts/check/lib/ecom-dev.bash
source scripts/check/lib/ecom-dev.bash
ecom_dev_prepare

# start NAME ARGS...: `ecom dev ARGS` on a fresh $work/NAME; sets $gateway once the
# banner is out. The platform's own defaults otherwise (rate limits included).
start() {
  local name=$1
  shift
  ecom_dev_start "$work/$name.banner" "$work/$name.log" -u ECOM_ADMIN_EMAIL -u ECOM_ADMIN_PASSWORD -- \
    --data-dir "$work/$name" "$@" || fail "ecom dev $* did not start"
}
fail() { echo "demo check: $*" >&2; exit 1; }

echo "== ecom dev on a fresh data directory"
start first --bind 127.0.0.1
cat "$work/first.banner"
grep -Eq '^  demo catalog +[0-9]+ products' "$work/first.banner" || fail "the banner does not report the demo catalog"
[ "$(stat -c %a "$work/first/admin-password")" = 600 ] || fail "admin-password is not mode 0600"
grep -q "admin password $(head -1 "$work/first/admin-password")  (generated, kept in $work/first/admin-password)" \
  "$work/first.banner" || fail "the banner does not show the kept admin password and its file"

echo "== scripts/demo.sh (the README's walkthrough)"
ECOM_URL="$gateway" ECOM_MAIL_DIR="$work/first/mail" bash scripts/demo.sh

echo "== the README's walkthrough, as written"
# The block under "## Your first order", run as a reader would paste it: the gateway
# line of the banner substituted, ./data being this instance's data directory.
mkdir "$work/readme"
ln -s "$work/first" "$work/readme/data"
awk '/^## Your first order/ { section = 1 } section && /^```/ { if (block) exit; block = 1; next } block' \
  README.md | sed "s|http://127.0.0.1:8080|$gateway|" >"$work/readme/walkthrough.sh"
[ -s "$work/readme/walkthrough.sh" ] || fail "no walkthrough block under '## Your first order' in README.md"
# Through a pipe: the block's `tee /dev/stderr` would reopen (and truncate) a file.
(cd "$work/readme" && bash walkthrough.sh </dev/null 2>&1 | cat >"$work/readme/out") || true
cat "$work/readme/out"
order=$(grep -o '"id":"[^"]*","user_id"' "$work/readme/out" | head -1 | cut -d'"' -f4)
[ -n "$order" ] || fail "the README's walkthrough placed no order"
grep -q "\"id\":\"$order\",\"status\":\"CANCELLED\"" "$work/readme/out" || fail "the README's walkthrough did not cancel"
for _ in $(seq 150); do
  [ "$(grep -l "$order" "$work/first/mail/"*.eml | wc -l)" = 2 ] && break
  sleep 0.1
done
[ "$(grep -l "$order" "$work/first/mail/"*.eml | wc -l)" = 2 ] || fail "the README's order did not get its two emails"
# The block shows the confirmation's subject, then both: three subjects (the first may
# follow the order's JSON on its line, which tee leaves without a newline).
[ "$(grep -o 'Subject: Your order' "$work/readme/out" | wc -l)" = 3 ] || fail "the README's walkthrough did not show both emails' subjects"

echo "== the API page in chromium"
email="browser-$(date +%s)@example.com"
password="browser password $RANDOM"
body=$(jq -n --arg email "$email" --arg password "$password" '{$email, $password, name: "Browser"}')
curl -sSf -o /dev/null "$gateway/api/auth/register" -H 'content-type: application/json' --data "$body"
token=$(curl -sSf "$gateway/api/auth/login" -H 'content-type: application/json' \
  --data "$(jq -c 'del(.name)' <<<"$body")" | jq -r .access_token)
"$venv/bin/python" scripts/check/docs_browser.py "$gateway" "$token" "$email"

echo "== ecom dev again on the same data directory"
first_password=$(head -1 "$work/first/admin-password")
kill "${ecom_pids[0]}"
wait "${ecom_pids[0]}" 2>/dev/null || true
mv "$work/first.log" "$work/first-run.log"
start first
grep -q "admin password $first_password  (kept in $work/first/admin-password)" "$work/first.banner" ||
  fail "the restart did not keep the admin password: $(cat "$work/first.banner")"
grep -q 'catalog        as the data directory keeps it' "$work/first.banner" ||
  fail "the restart did not leave the catalog alone"
[ "$(curl -sSf "$gateway/api/products" | jq .total)" = "$(jq '.products | length' ecom/demo-catalog.json)" ] ||
  fail "the restart changed the catalog"
login=$(jq -n --arg password "$first_password" '{email: "admin@ecom.local", $password}')
curl -sSf -o /dev/null "$gateway/api/auth/login" -H 'content-type: application/json' --data "$login" ||
  fail "the kept admin password does not log in after the restart"

echo "== scripts/load-demo-catalog.sh into an empty ecom dev"
start empty --no-demo
grep -q 'no demo catalog (--no-demo)' "$work/empty.banner" || fail "--no-demo: the banner does not say so"
[ "$(curl -sSf "$gateway/api/products" | jq .total)" = 0 ] || fail "--no-demo: the catalog is not empty"
products=$(jq '.products | length' ecom/demo-catalog.json)
# A load cut short: the first product exists, without its stock; loading completes it.
admin_login=$(jq -n --arg password "$(head -1 "$work/empty/admin-password")" '{email: "admin@ecom.local", $password}')
admin_token=$(curl -sSf "$gateway/api/auth/login" -H 'content-type: application/json' --data "$admin_login" |
  jq -r .access_token)
curl -sSf -o /dev/null "$gateway/api/products" -H 'content-type: application/json' \
  -H "Authorization: Bearer $admin_token" --data "$(jq -c '.products[0] | del(.stock)' ecom/demo-catalog.json)"
load() {
  ECOM_URL="$gateway" ECOM_ADMIN_EMAIL=admin@ecom.local ECOM_ADMIN_PASSWORD="$(head -1 "$work/empty/admin-password")" \
    bash scripts/load-demo-catalog.sh
}
load | tee "$work/load1"
grep -q "^load-demo-catalog: $((products - 1)) products created with their stock, 1 already there" "$work/load1" ||
  fail "the first load did not create $((products - 1)) and keep 1"
first_sku=$(jq -r '.products[0].sku' ecom/demo-catalog.json)
[ "$(curl -sSf "$gateway/api/inventory/$first_sku" | jq .available)" = "$(jq '.products[0].stock' ecom/demo-catalog.json)" ] ||
  fail "the product that existed without stock did not get its stock"
load | tee "$work/load2"
grep -q "0 products created with their stock, $products already there" "$work/load2" ||
  fail "the second load changed something"
[ "$(curl -sSf "$gateway/api/products" | jq .total)" = "$products" ] || fail "the loaded catalog is not $products"

if grep -h '"level":"ERROR"' "$work"/*.log "$work"/*.banner >"$work/errors"; then
  head -20 "$work/errors" >&2
  fail "the platform logged errors"
fi
echo "demo check: passed in $(( $(date +%s) - started )) s"
