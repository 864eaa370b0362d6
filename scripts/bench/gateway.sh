#!/usr/bin/env bash
# Gateway benchmark: the same tiny backend measured four ways in one run.
#
#   direct       oha -> backend                                   GET /api/products/bench
#   gw-proxy     oha -> api-gateway (no auth) -> backend          GET /api/products/bench
#   gw-jwt       oha -> api-gateway (JWT verified) -> backend     GET /api/orders/bench + Bearer token
#   nginx        oha -> nginx reverse proxy (tuned) -> backend    GET /api/products/bench
#
# The backend is an nginx server block answering 200 {"id":"bench","ok":true}; the
# reverse proxy is a second server block of the same nginx (one upstream block,
# keepalive 64, HTTP/1.1, Connection "", access_log off, worker_processes = nproc,
# the number of tokio worker threads the gateway uses). auth-service runs on SQLite
# with a generated key; the token comes from POST /api/auth/login.
#
# For each target: warm-up, saturation (CONNECTIONS connections, fixed time) for
# req/s, p50, p99, then a run at RATE_PERCENT % of that target's own saturation
# rate (oha -q, with latency correction against coordinated omission) for p99.
# At the end the backend alone is run again at each proxy's 50 % rate, so the
# "added p99" compares like with like (same offered rate).
#
# Nothing is pinned: the load generator, nginx and the gateway share every core
# (CPU shares per run are printed so this is visible).
#
# Usage: scripts/bench/gateway.sh            (prints a Markdown report on stdout)
# Knobs (env): BENCH_CONNECTIONS=64 BENCH_WARMUP=3s BENCH_SATURATION=15s BENCH_RATED=10s
#   BENCH_RATE_PERCENT=50 BENCH_BUILD=1 (rebuild binaries even if present)
#   BENCH_KEEP=DIR (copy raw oha JSON and service logs there)
#   BENCH_PERF=1 (after the measurements, a 10 s perf profile of the gateway under JWT load)
# Installs what is missing: nginx, curl, jq, procps (apt); oha (cargo install --locked).
# Uses 127.0.0.1 ports 18080 (gateway), 18081 (auth), 18090 (backend), 18091 (nginx proxy).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
CONNECTIONS="${BENCH_CONNECTIONS:-64}"
WARMUP="${BENCH_WARMUP:-3s}"
SATURATION="${BENCH_SATURATION:-15s}"
RATED="${BENCH_RATED:-10s}"
RATE_PERCENT="${BENCH_RATE_PERCENT:-50}"
OHA_VERSION="${OHA_VERSION:-1.16.0}"
GATEWAY_PORT=18080
AUTH_PORT=18081
BACKEND_PORT=18090
PROXY_PORT=18091
CORES="$(nproc)"
ADMIN_EMAIL="bench@example.com"
ADMIN_PASSWORD="bench-password-1"

log() { echo "[bench] $*" >&2; }
die() { log "error: $*"; exit 1; }

# ---------------------------------------------------------------- tools
apt_updated=0
apt_install() {
    if ((apt_updated == 0)); then
        log "apt-get update"
        apt-get update -qq >&2
        apt_updated=1
    fi
    log "apt-get install $*"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >&2
}
missing=()
[[ -x /usr/sbin/nginx ]] || command -v nginx >/dev/null || missing+=(nginx)
command -v curl >/dev/null || missing+=(curl)
command -v jq >/dev/null || missing+=(jq)
command -v pgrep >/dev/null || missing+=(procps)
((${#missing[@]} == 0)) || apt_install "${missing[@]}"
NGINX="$(command -v nginx || echo /usr/sbin/nginx)"

OHA="$(command -v oha || true)"
[[ -n "$OHA" ]] || { [[ -x "$HOME/.cargo/bin/oha" ]] && OHA="$HOME/.cargo/bin/oha"; } || true
if [[ -z "$OHA" ]]; then
    log "cargo install oha --locked --version $OHA_VERSION (a few minutes on 2 cores)"
    cargo install oha --locked --version "$OHA_VERSION" >&2
    OHA="$HOME/.cargo/bin/oha"
fi

GATEWAY_BIN="$ROOT/target/release/api-gateway"
AUTH_BIN="$ROOT/target/release/auth-service"
if [[ "${BENCH_BUILD:-0}" == 1 || ! -x "$GATEWAY_BIN" || ! -x "$AUTH_BIN" ]]; then
    log "building release binaries"
    (cd "$ROOT" && cargo build --release --locked -p api-gateway -p auth-service >&2)
fi

# ---------------------------------------------------------------- processes
for port in "$GATEWAY_PORT" "$AUTH_PORT" "$BACKEND_PORT" "$PROXY_PORT"; do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
        die "127.0.0.1:$port is already in use"
    fi
done

WORK="$(mktemp -d /tmp/ecom-bench-gateway.XXXXXX)"
PIDS=()
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    for pid in "${PIDS[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in "${PIDS[@]}"; do
        for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    if [[ -n "${BENCH_KEEP:-}" ]]; then
        mkdir -p "$BENCH_KEEP" && cp -r "$WORK"/*.json "$WORK"/*.log "$BENCH_KEEP"/ 2>/dev/null || true
        [[ -f "$WORK/perf.txt" ]] && cp "$WORK/perf.txt" "$BENCH_KEEP"/ || true
    fi
    rm -rf "$WORK"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# wait_http URL STATUS SECONDS [curl args...]
wait_http() {
    local url=$1 want=$2 secs=$3 got=""
    shift 3
    for _ in $(seq $((secs * 10))); do
        got="$(curl -s -o /dev/null -w '%{http_code}' "$@" "$url" || true)"
        [[ "$got" == "$want" ]] && return 0
        sleep 0.1
    done
    die "$url answered ${got:-nothing}, expected $want"
}

cat >"$WORK/nginx.conf" <<EOF
worker_processes $CORES;
daemon off;
pid $WORK/nginx.pid;
error_log $WORK/nginx-error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $WORK/nginx-body;
    proxy_temp_path $WORK/nginx-proxy;
    fastcgi_temp_path $WORK/nginx-fastcgi;
    uwsgi_temp_path $WORK/nginx-uwsgi;
    scgi_temp_path $WORK/nginx-scgi;
    # hyper never closes a kept-alive connection after N requests; nginx's default is 1000.
    keepalive_requests 1000000;

    # The backend.
    server {
        listen 127.0.0.1:$BACKEND_PORT reuseport;
        default_type application/json;
        location / { return 200 '{"id":"bench","ok":true}'; }
    }

    # The reference reverse proxy.
    upstream bench_backend {
        server 127.0.0.1:$BACKEND_PORT;
        keepalive 64;
        keepalive_requests 1000000;
    }
    server {
        listen 127.0.0.1:$PROXY_PORT reuseport;
        location / {
            proxy_pass http://bench_backend;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            # What the gateway adds too.
            proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto \$scheme;
        }
    }
}
EOF
"$NGINX" -t -q -c "$WORK/nginx.conf" -p "$WORK" >&2 || die "nginx configuration refused"
"$NGINX" -c "$WORK/nginx.conf" -p "$WORK" >"$WORK/nginx.log" 2>&1 &
NGINX_PID=$!
PIDS+=("$NGINX_PID")
wait_http "http://127.0.0.1:$BACKEND_PORT/api/products/bench" 200 10
wait_http "http://127.0.0.1:$PROXY_PORT/api/products/bench" 200 10

# Services get a clean environment: nothing from the caller (an OTLP endpoint, a log
# level) changes what is measured.
env -i PATH="$PATH" \
    DATABASE_URL="sqlite://$WORK/auth.db" \
    ECOM_JWT_SIGNING_KEY_FILE="$WORK/key.pem" ECOM_JWT_GENERATE_KEY=true \
    ECOM_ADMIN_EMAIL="$ADMIN_EMAIL" ECOM_ADMIN_PASSWORD="$ADMIN_PASSWORD" \
    ECOM_ACCESS_TOKEN_TTL_SECS=3600 \
    ECOM_BIND_ADDR="127.0.0.1:$AUTH_PORT" RUST_LOG=warn \
    "$AUTH_BIN" >"$WORK/auth.log" 2>&1 &
PIDS+=("$!")
wait_http "http://127.0.0.1:$AUTH_PORT/health/ready" 200 60

BACKEND_URL="http://127.0.0.1:$BACKEND_PORT"
env -i PATH="$PATH" \
    ECOM_BIND_ADDR="127.0.0.1:$GATEWAY_PORT" RUST_LOG=warn \
    ECOM_AUTH_URL="http://127.0.0.1:$AUTH_PORT" \
    ECOM_PRODUCT_URL="$BACKEND_URL" ECOM_ORDER_URL="$BACKEND_URL" ECOM_INVENTORY_URL="$BACKEND_URL" \
    ECOM_RATE_LIMIT_PER_SECOND=100000000 ECOM_RATE_LIMIT_AUTH_PER_MINUTE=100000 \
    "$GATEWAY_BIN" >"$WORK/gateway.log" 2>&1 &
GATEWAY_PID=$!
PIDS+=("$GATEWAY_PID")
wait_http "http://127.0.0.1:$GATEWAY_PORT/health/ready" 200 30

TOKEN="$(curl -sf -X POST -H 'content-type: application/json' \
    -d "{\"email\":\"$ADMIN_EMAIL\",\"password\":\"$ADMIN_PASSWORD\"}" \
    "http://127.0.0.1:$AUTH_PORT/api/auth/login" | jq -r .access_token)"
[[ -n "$TOKEN" && "$TOKEN" != null ]] || die "login failed"

# Sanity: every path answers what the backend says, and the JWT path really checks.
check_body() {
    local body
    body="$(curl -sf "$@")" || die "request failed: $*"
    [[ "$body" == '{"id":"bench","ok":true}' ]] || die "unexpected body from $*: $body"
}
check_body "$BACKEND_URL/api/products/bench"
check_body "http://127.0.0.1:$GATEWAY_PORT/api/products/bench"
check_body "http://127.0.0.1:$PROXY_PORT/api/products/bench"
check_body -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$GATEWAY_PORT/api/orders/bench"
wait_http "http://127.0.0.1:$GATEWAY_PORT/api/orders/bench" 401 1
wait_http "http://127.0.0.1:$GATEWAY_PORT/api/orders/bench" 401 1 -H "Authorization: Bearer ${TOKEN}x"

# ---------------------------------------------------------------- measuring
# CPU ticks (user+system) of the given pids.
proc_ticks() {
    local total=0 pid line rest
    for pid in "$@"; do
        [[ -r "/proc/$pid/stat" ]] || continue
        read -r line <"/proc/$pid/stat" || continue
        rest="${line##*) }"
        read -r -a f <<<"$rest"
        total=$((total + f[11] + f[12]))
    done
    echo "$total"
}
# nginx master and workers
nginx_ticks() {
    local pids
    mapfile -t pids < <(pgrep -P "$NGINX_PID" || true)
    proc_ticks "$NGINX_PID" "${pids[@]}"
}
# busy and total ticks of the whole machine
machine_ticks() {
    local _cpu user nice system idle iowait irq softirq steal _rest
    read -r _cpu user nice system idle iowait irq softirq steal _rest </proc/stat
    echo "$((user + nice + system + irq + softirq + steal)) $((user + nice + system + idle + iowait + irq + softirq + steal))"
}

declare -A RPS P50 P99 RATE RP99 BAD CPU_GW CPU_NGINX CPU_OTHER BASE_P99

# oha NAME URL [oha args...] -> $WORK/NAME.json
oha_run() {
    local name=$1 url=$2
    shift 2
    "$OHA" --no-tui --output-format json -w "$@" "$url" >"$WORK/$name.json" 2>"$WORK/$name.err" ||
        die "oha failed for $name: $(head -c 500 "$WORK/$name.err")"
}
# non-2xx responses + transport errors of a run
bad_count() {
    jq '([.statusCodeDistribution | to_entries[] | select(.key | startswith("2") | not) | .value] | add // 0)
        + ([.errorDistribution | to_entries[] | .value] | add // 0)' "$WORK/$1.json"
}
ms() { jq -r "$2 * 1000" "$WORK/$1.json"; }

measure() {
    local key=$1 url=$2
    shift 2
    local before_m after_m before_gw after_gw before_ng after_ng
    log "$key: warm-up $WARMUP"
    oha_run "$key-warmup" "$url" -z "$WARMUP" -c "$CONNECTIONS" "$@"
    log "$key: saturation $SATURATION x $CONNECTIONS connections"
    before_m="$(machine_ticks)" before_gw="$(proc_ticks "$GATEWAY_PID")" before_ng="$(nginx_ticks)"
    oha_run "$key-sat" "$url" -z "$SATURATION" -c "$CONNECTIONS" "$@"
    after_m="$(machine_ticks)" after_gw="$(proc_ticks "$GATEWAY_PID")" after_ng="$(nginx_ticks)"
    RPS[$key]="$(jq -r '.summary.requestsPerSec | floor' "$WORK/$key-sat.json")"
    P50[$key]="$(ms "$key-sat" '.latencyPercentiles.p50')"
    P99[$key]="$(ms "$key-sat" '.latencyPercentiles.p99')"
    # CPU shares in "cores" over the run: gateway, nginx (backend + proxy), the rest
    # (load generator, auth-service idle, anything else on the machine).
    read -r bm tm <<<"$before_m"
    read -r am ta <<<"$after_m"
    local span=$(((ta - tm) / CORES))
    ((span > 0)) || span=1
    CPU_GW[$key]="$(awk -v t=$((after_gw - before_gw)) -v s=$span 'BEGIN{printf "%.2f", t/s}')"
    CPU_NGINX[$key]="$(awk -v t=$((after_ng - before_ng)) -v s=$span 'BEGIN{printf "%.2f", t/s}')"
    CPU_OTHER[$key]="$(awk -v b=$((am - bm)) -v g=$((after_gw - before_gw)) -v n=$((after_ng - before_ng)) -v s=$span \
        'BEGIN{o=(b-g-n)/s; if (o<0) o=0; printf "%.2f", o}')"
    RATE[$key]=$((RPS[$key] * RATE_PERCENT / 100))
    ((RATE[$key] > 0)) || die "$key: no throughput"
    log "$key: ${RPS[$key]} req/s; now ${RATE[$key]} req/s for $RATED"
    oha_run "$key-rated" "$url" -z "$RATED" -c "$CONNECTIONS" -q "${RATE[$key]}" --latency-correction "$@"
    RP99[$key]="$(ms "$key-rated" '.latencyPercentiles.p99')"
    BAD[$key]=$(($(bad_count "$key-warmup") + $(bad_count "$key-sat") + $(bad_count "$key-rated")))
}

LOAD_BEFORE="$(cut -d' ' -f1-3 /proc/loadavg)"
RSS_GW_IDLE="$(awk '/VmRSS/{print $2}' "/proc/$GATEWAY_PID/status")"
AUTH_HEADER=(-H "Authorization: Bearer $TOKEN")
measure direct "$BACKEND_URL/api/products/bench"
measure gw-proxy "http://127.0.0.1:$GATEWAY_PORT/api/products/bench"
measure gw-jwt "http://127.0.0.1:$GATEWAY_PORT/api/orders/bench" "${AUTH_HEADER[@]}"
measure nginx "http://127.0.0.1:$PROXY_PORT/api/products/bench"

# The backend alone at each proxy's rated load.
BASE_P99[direct]="${RP99[direct]}"
for key in gw-proxy gw-jwt nginx; do
    log "direct at ${RATE[$key]} req/s (baseline for $key)"
    oha_run "direct-at-$key" "$BACKEND_URL/api/products/bench" -z "$RATED" -c "$CONNECTIONS" \
        -q "${RATE[$key]}" --latency-correction
    BASE_P99[$key]="$(ms "direct-at-$key" '.latencyPercentiles.p99')"
    BAD[direct]=$((BAD[direct] + $(bad_count "direct-at-$key")))
done
RSS_GW_LOADED="$(awk '/VmHWM/{print $2}' "/proc/$GATEWAY_PID/status")"

if [[ "${BENCH_PERF:-0}" == 1 ]] && command -v perf >/dev/null; then
    log "perf: profiling the gateway for 8 s under JWT load"
    "$OHA" --no-tui --output-format json -z 10s -c "$CONNECTIONS" "${AUTH_HEADER[@]}" \
        "http://127.0.0.1:$GATEWAY_PORT/api/orders/bench" >/dev/null 2>&1 &
    OHA_PID=$!
    sleep 1
    perf record -F 999 -p "$GATEWAY_PID" -o "$WORK/perf.data" -- sleep 8 >/dev/null 2>&1 || true
    wait "$OHA_PID" || true
    {
        echo "## perf: gateway under JWT saturation, by shared object"
        perf report -i "$WORK/perf.data" --stdio --sort dso 2>/dev/null | grep -v '^#' | grep -v '^$' | head -15
        echo
        echo "## perf: top symbols"
        perf report -i "$WORK/perf.data" --stdio --sort dso,symbol 2>/dev/null | grep -v '^#' | grep -v '^$' | head -40
    } >"$WORK/perf.txt" 2>&1 || true
fi

# ---------------------------------------------------------------- report
GW_ERRORS="$(grep -c -E '"level":"(WARN|ERROR)"' "$WORK/gateway.log" || true)"
f2() { awk -v x="$1" 'BEGIN{printf "%.2f", x}'; }
f3() { awk -v x="$1" 'BEGIN{printf "%.3f", x}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN{printf "%.2f×", a/b}'; }
added() { awk -v a="$1" -v b="$2" 'BEGIN{printf "%+.3f", a-b}'; }

echo "## Gateway benchmark — $(date -u '+%Y-%m-%d %H:%M UTC')"
echo
echo "- commit: $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')$(git -C "$ROOT" diff --quiet 2>/dev/null || echo ' (work tree has changes)')"
echo "- machine: $CORES cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')), $(awk '/MemTotal/{printf "%.1f GiB", $2/1048576}' /proc/meminfo) memory; load average before the run: $LOAD_BEFORE"
echo "- versions: $("$NGINX" -v 2>&1 | sed 's/.*: //'), $("$OHA" --version), $(rustc -V 2>/dev/null | cut -d' ' -f1-2)"
echo "- load: $CONNECTIONS connections; warm-up $WARMUP, saturation $SATURATION, rated $RATED at $RATE_PERCENT % of each target's own saturation rate (oha -q --latency-correction); load generator, nginx and gateway share all $CORES cores (nothing pinned)"
echo
echo "| target | req/s | p50 ms | p99 ms | req/s vs nginx | rated req/s | p99 @ $RATE_PERCENT % ms | direct p99 @ same rate ms | added p99 ms | non-2xx + errors |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
for key in direct gw-proxy gw-jwt nginx; do
    case $key in
        direct) label="(a) direct to backend" ;;
        gw-proxy) label="(b) api-gateway, no auth" ;;
        gw-jwt) label="(c) api-gateway, JWT" ;;
        nginx) label="(d) nginx reverse proxy" ;;
    esac
    if [[ $key == direct ]]; then add="—"; else add="$(added "${RP99[$key]}" "${BASE_P99[$key]}")"; fi
    echo "| $label | ${RPS[$key]} | $(f3 "${P50[$key]}") | $(f3 "${P99[$key]}") | $(ratio "${RPS[$key]}" "${RPS[nginx]}") | ${RATE[$key]} | $(f3 "${RP99[$key]}") | $(f3 "${BASE_P99[$key]}") | $add | ${BAD[$key]} |"
done
echo
echo "CPU during saturation, in cores out of $CORES (nginx = backend + proxy workers; other = load generator and the rest of the machine):"
echo
echo "| target | gateway | nginx | other |"
echo "|---|---:|---:|---:|"
for key in direct gw-proxy gw-jwt nginx; do
    echo "| $key | ${CPU_GW[$key]} | ${CPU_NGINX[$key]} | ${CPU_OTHER[$key]} |"
done
echo
echo "- gateway RSS: $((RSS_GW_IDLE / 1024)) MiB idle before load, peak $((RSS_GW_LOADED / 1024)) MiB (VmHWM)"
echo "- gateway WARN/ERROR log lines during the run: $GW_ERRORS"
if ((GW_ERRORS > 0)); then
    echo
    echo '```'
    grep -E '"level":"(WARN|ERROR)"' "$WORK/gateway.log" | jq -r '.fields.message // .message // .' 2>/dev/null | sort | uniq -c | sort -rn | head -10
    echo '```'
fi
if [[ -f "$WORK/perf.txt" ]]; then
    echo
    echo '```'
    cat "$WORK/perf.txt"
    echo '```'
fi
