#!/usr/bin/env bash
# Commerce benchmarks on the real backends (MariaDB, FerretDB, Kafka, Mailpit from
# scripts/stack.sh), release builds of the six services, one run:
#
#   1. hot-sku reservations/s through inventory-service against the same transaction
#      run as raw SQL on the same MariaDB (the ceiling), with the books checked and a
#      drain (twice as many buyers as units: exactly the units sold);
#   2. order placements/s and p50/p99 through the gateway (closed loop);
#   3. order → email handed to SMTP latency at a steady 50 and 200 orders/s (open loop);
#   4. outbox relay throughput to Kafka with acks=all.
#
# Usage: scripts/bench/commerce.sh > report.md
# Knobs (env): BENCH_SECONDS=15 BENCH_TASKS=32 BENCH_ORDER_TASKS=32 BENCH_RATES="50 200"
#   BENCH_RELAY_EVENTS=20000 BENCH_KEEP=DIR (keep service logs)
#   BENCH_PARTS="reservations orders mail relay" (which sections to run)
#   BENCH_OTLP=1 (services export spans to the stack's trace backend, to see where time
#   goes; the placement run then prints its spans, read back by placement_spans.py)
# The closed-loop placement run also reports the CPU time each process spent per
# order sent (from /proc: the six services, the load generator, MariaDB, FerretDB,
# Kafka, Mailpit), and the machine's load average: on 2 shared cores, placements/s is
# CPU per order divided into the cores there are.
# Ports 127.0.0.1:1908x.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
SECONDS_PER_RUN="${BENCH_SECONDS:-15}"
TASKS="${BENCH_TASKS:-32}"
ORDER_TASKS="${BENCH_ORDER_TASKS:-32}"
RATES="${BENCH_RATES:-50 200}"
RELAY_EVENTS="${BENCH_RELAY_EVENTS:-20000}"
PARTS=" ${BENCH_PARTS:-reservations orders mail relay} "
part() { [[ "$PARTS" == *" $1 "* ]]; }
export ECOM_ADMIN_EMAIL="bench-admin@example.com" ECOM_ADMIN_PASSWORD="bench-admin-password"

log() { echo "[bench] $*" >&2; }
die() { log "error: $*"; exit 1; }

bash scripts/stack.sh up >&2
eval "$(bash scripts/stack.sh env)"
command -v mysql >/dev/null || die "the mysql client is missing (scripts/stack.sh installs it)"

log "building release binaries"
cargo build --release --locked -p api-gateway -p auth-service -p product-service -p inventory-service \
    -p order-service -p notification-service -p ecom-bench >&2
BIN="$ROOT/target/release"

WORK="$(mktemp -d /tmp/ecom-bench-commerce.XXXXXX)"
PIDS=()
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do
        for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    [[ -n "${BENCH_KEEP:-}" ]] && mkdir -p "$BENCH_KEEP" && cp "$WORK"/*.log "$BENCH_KEEP"/ 2>/dev/null
    rm -rf "$WORK"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

wait_ready() {
    local url=$1
    for _ in $(seq 600); do
        [[ "$(curl -s -o /dev/null -w '%{http_code}' "$url" || true)" == 200 ]] && return 0
        sleep 0.1
    done
    die "$url is not ready"
}

# Fresh databases per run.
RUN="b$(date +%s)"
MYSQL_BASE="${ECOM_TEST_MYSQL_URL%/}"
mysql_admin() {
    local rest=${MYSQL_BASE#mysql://} creds host
    creds=${rest%%@*}
    host=${rest#*@}
    mysql -u"${creds%%:*}" -p"${creds#*:}" -h"${host%%:*}" -P"${host#*:}" -e "$1"
}
for db in auth inventory orders notification relay; do
    mysql_admin "CREATE DATABASE ${RUN}_$db CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"
done
db_url() { echo "$MYSQL_BASE/${RUN}_$1"; }

TOPIC="bench.orders.$RUN"
# order-service's (and the reservations benchmark's) client secret towards auth-service.
ECOM_SERVICE_CLIENT_SECRET="$(openssl rand -hex 32)"
export ECOM_SERVICE_CLIENT_SECRET
common_env=(RUST_LOG=warn ECOM_LOG_FORMAT=json ECOM_JWKS_URL=http://127.0.0.1:19081/.well-known/jwks.json)
# BENCH_OTLP=1: export spans to the test stack's trace backend (costs some CPU; off for the numbers).
# Batches go out every 200 ms (not 5 s), so the spans are in soon after the run.
[[ "${BENCH_OTLP:-0}" == 1 ]] &&
    common_env+=(OTEL_EXPORTER_OTLP_ENDPOINT="$ECOM_TEST_OTLP_ENDPOINT" OTEL_BSP_SCHEDULE_DELAY=200)
start() {
    local name=$1 port=$2
    shift 2
    env "${common_env[@]}" ECOM_BIND_ADDR="127.0.0.1:$port" "$@" "$BIN/$name" >"$WORK/$name.log" 2>&1 &
    PIDS+=($!)
    wait_ready "http://127.0.0.1:$port/health/ready"
}

log "starting the six services (MariaDB, FerretDB, Kafka, Mailpit)"
start auth-service 19081 DATABASE_URL="$(db_url auth)" ECOM_JWT_SIGNING_KEY_FILE="$WORK/key.pem" \
    ECOM_JWT_GENERATE_KEY=true ECOM_ACCESS_TOKEN_TTL_SECS=3600 ECOM_SERVICE_TOKEN_TTL_SECS=3600
start product-service 19082 DATABASE_URL="${ECOM_TEST_MONGODB_URL%/}/${RUN}_products"
start inventory-service 19084 DATABASE_URL="$(db_url inventory)"
start order-service 19083 DATABASE_URL="$(db_url orders)" ECOM_KAFKA_BROKERS="$ECOM_TEST_KAFKA_BROKERS" \
    ECOM_ORDERS_TOPIC="$TOPIC" ECOM_PRODUCT_URL=http://127.0.0.1:19082 ECOM_INVENTORY_URL=http://127.0.0.1:19084 \
    ECOM_AUTH_URL=http://127.0.0.1:19081
start notification-service 19085 DATABASE_URL="$(db_url notification)" ECOM_KAFKA_BROKERS="$ECOM_TEST_KAFKA_BROKERS" \
    ECOM_ORDERS_TOPIC="$TOPIC" ECOM_KAFKA_GROUP="bench-$RUN" ECOM_SMTP_URL="$ECOM_TEST_SMTP_URL"
start api-gateway 19080 ECOM_AUTH_URL=http://127.0.0.1:19081 ECOM_PRODUCT_URL=http://127.0.0.1:19082 \
    ECOM_ORDER_URL=http://127.0.0.1:19083 ECOM_INVENTORY_URL=http://127.0.0.1:19084 \
    ECOM_RATE_LIMIT_PER_SECOND=1000000 ECOM_RATE_LIMIT_AUTH_PER_MINUTE=100000

cpu="$(lscpu | sed -n 's/^Model name: *//p' | head -1)"
cat <<EOF
# Commerce benchmarks

Command: \`scripts/bench/commerce.sh\` ($(date -u +%Y-%m-%d), commit $(git rev-parse --short HEAD)).
Machine: $(nproc) cores ($cpu), $(free -g | awk '/^Mem:/{print $2}') GiB; MariaDB $(mysql --version | grep -o '[0-9]*\.[0-9]*\.[0-9]*' | head -1),
Kafka, FerretDB and Mailpit from \`scripts/stack.sh\`, all on the same machine as the services and the
load generator (nothing pinned). Release builds; every service at its defaults (pool of 10
connections) except the gateway's rate limits, raised out of the way.
EOF

if part reservations; then
cat <<EOF

## Hot-sku reservations

$TASKS concurrent requests, each reserving 1 unit of the same sku for ${SECONDS_PER_RUN} s. The raw-SQL
loop runs inventory-service's own statements (claim the order id, \`UPDATE stock SET available =
available - ? ... WHERE sku = ? AND available >= ?\`, the line) in one transaction on a pool of 10
connections, straight on the same MariaDB: the ceiling.

EOF
"$BIN/ecom-bench" reservations --inventory http://127.0.0.1:19084 --auth http://127.0.0.1:19081 \
    --mysql "$(db_url inventory)" \
    --tasks "$TASKS" --sql-connections 10 --seconds "$SECONDS_PER_RUN"
fi

if part orders; then
cat <<EOF

## Order placements through the gateway

Each order: JWT check at the gateway, order-service fetches the price from product-service
(FerretDB), writes the order \`PENDING\`, reserves at inventory-service (MariaDB), confirms with
the outbox row in one transaction; the relay publishes to Kafka; notification-service emails
through Mailpit. Latency is client-side, send to answer.

| load | orders sent | confirmed/s | p50 ms | p99 ms | max ms | non-201 |
|---|---:|---:|---:|---:|---:|---|
EOF
# CPU per order: clock ticks of each process before and after the run.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0; }
CPU_NAMES=(auth-service product-service inventory-service order-service notification-service api-gateway)
CPU_PIDS=()
for i in "${!CPU_NAMES[@]}"; do CPU_PIDS+=("${PIDS[$i]}"); done
# The backends this run uses, found by the port they listen on (the stack may run
# other instances of them beside these).
port_of() { local hostport=${1#*://}; hostport=${hostport#*@}; hostport=${hostport%%/*}; echo "${hostport##*:}"; }
for backend in "MariaDB $(port_of "$ECOM_TEST_MYSQL_URL")" "FerretDB $(port_of "$ECOM_TEST_MONGODB_URL")" \
    "Kafka $(port_of "$ECOM_TEST_KAFKA_BROKERS")" "Mailpit $(port_of "$ECOM_TEST_SMTP_URL")"; do
    pid="$(ss -ltnpH "sport = :${backend#* }" | grep -o 'pid=[0-9]*' | head -1 | cut -d= -f2 || true)"
    [[ -n "$pid" ]] && CPU_NAMES+=("${backend% *}") && CPU_PIDS+=("$pid")
done
declare -A CPU_BEFORE
for pid in "${CPU_PIDS[@]}"; do CPU_BEFORE[$pid]="$(cpu_ticks "$pid")"; done
load_before="$(cut -d' ' -f1 /proc/loadavg)"
TIMEFORMAT='%U %S'
orders_from_us="${EPOCHREALTIME/./}"
{ time "$BIN/ecom-bench" orders --gateway http://127.0.0.1:19080 --tasks "$ORDER_TASKS" --seconds "$SECONDS_PER_RUN" \
    >"$WORK/orders.md" 2>"$WORK/orders.err"; } 2>"$WORK/orders.time"
orders_to_us="${EPOCHREALTIME/./}"
cat "$WORK/orders.md"
sent="$(awk -F'|' '/closed loop/{gsub(/ /, "", $3); print $3; exit}' "$WORK/orders.md")"
ticks="$(getconf CLK_TCK)"
cat <<EOF

CPU time per order sent during that run (${sent:-?} orders; load average $load_before before,
$(cut -d' ' -f1 /proc/loadavg) after; processes of other users of the machine are not counted, but
their queries and builds compete for the same cores):

| process | CPU ms per order |
|---|---:|
EOF
total=0
for i in "${!CPU_NAMES[@]}"; do
    pid="${CPU_PIDS[$i]}"
    used=$(($(cpu_ticks "$pid") - CPU_BEFORE[$pid]))
    total=$((total + used))
    awk -v n="${CPU_NAMES[$i]}" -v u="$used" -v t="$ticks" -v c="${sent:-0}" \
        'BEGIN{if (c > 0) printf "| %s | %.2f |\n", n, u * 1000 / t / c}'
done
awk -v u="$(tail -n 1 "$WORK/orders.time")" -v c="${sent:-0}" -v total="$total" -v t="$ticks" 'BEGIN{
    split(u, a, " "); gen = (a[1] + a[2]) * 1000;
    if (c > 0) { printf "| load generator (ecom-bench) | %.2f |\n", gen / c;
                 printf "| **all of the above** | **%.2f** |\n", (total * 1000 / t + gen) / c } }'
if [[ "${BENCH_OTLP:-0}" == 1 ]]; then
    echo
    echo "Spans of the run's placements (self = duration less the time its children cover):"
    echo
    python3 scripts/bench/placement_spans.py "$ECOM_TEST_JAEGER_URL" "$orders_from_us" "$orders_to_us" 400
fi
fi

if part mail; then
cat <<EOF

## Order → email latency at a steady rate

Open loop (fixed schedule, latency from the scheduled send time). "Email handed to SMTP" is
Mailpit's receive time minus the order's send time, for every confirmed order of the run:
placement, outbox, relay, Kafka, consumer (batches of up to 64 fetched events, different
orders in parallel), dedup record, SMTP.

| load | orders sent | confirmed/s | p50 ms | p99 ms | max ms | non-201 |
|---|---:|---:|---:|---:|---:|---|
EOF
for rate in $RATES; do
    "$BIN/ecom-bench" orders --gateway http://127.0.0.1:19080 --rate "$rate" --seconds "$SECONDS_PER_RUN" \
        --mailpit "$ECOM_TEST_MAILPIT_URL" >"$WORK/rate-$rate.md"
    head -n 1 "$WORK/rate-$rate.md"
    tail -n +2 "$WORK/rate-$rate.md" >>"$WORK/mail.md"
done
cat "$WORK/mail.md"
fi

if part relay; then
cat <<EOF

## Outbox relay throughput

$RELAY_EVENTS confirmation events (~1 KiB) waiting in the outbox, relayed by
\`order_service::events::relay_once\` (claim up to 100 rows, publish with the idempotent producer,
\`acks=all\`, \`linger.ms=5\`, wait for every delivery report, mark sent, commit) until empty.

\`linger.ms=5\`: the relay hands a whole claimed batch to the producer at once, so a short
linger lets the batch share produce requests (each of which waits for every in-sync
replica under \`acks=all\`), while it adds at most 5 ms to an event that travels alone: small
against the 100 ms order-to-email budget. A longer linger only helps when events trickle in
one at a time, which the batch claim already avoids.

| events | batch | seconds | events/s |
|---:|---:|---:|---:|
EOF
"$BIN/ecom-bench" relay --mysql "$(db_url relay)" --brokers "$ECOM_TEST_KAFKA_BROKERS" --events "$RELAY_EVENTS"
fi
log "done"
