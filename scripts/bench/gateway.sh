#!/usr/bin/env bash
# Gateway benchmark: the api-gateway, a tuned nginx reverse proxy and Spring Cloud Gateway
# in front of the same tiny backend, measured side by side in one run.
#
#   direct       load -> backend                                      GET /api/products/bench
#   gw-public    load -> api-gateway (public route) -> backend        GET /api/products/bench
#   gw-jwt       load -> api-gateway (JWT verified) -> backend        GET /api/orders/bench + Bearer
#   nginx        load -> nginx reverse proxy (tuned) -> backend       GET /api/products/bench
#   floor        load -> bare hyper proxy (ecom-floor) -> backend     GET /api/products/bench
#   scg-public   load -> Spring Cloud Gateway (public) -> backend     GET /api/products/bench
#   scg-jwt      load -> Spring Cloud Gateway (JWT verified) -> backend GET /api/orders/bench + Bearer
#
# The backend is an nginx answering 200 {"id":"bench","ok":true}. The reverse proxy is a
# second nginx (upstream keepalive 64, HTTP/1.1, Connection "", access_log off,
# worker_processes = nproc); the gateway likewise serves its connections on nproc
# single-threaded runtimes (ECOM_CONNECTION_THREADS, its default, set here explicitly). Spring Cloud Gateway is bench/spring-cloud-gateway (Boot
# 3.5.7, Spring Cloud 2025.0.0, Java 17, default JVM settings), verifying the same
# auth-service tokens (EdDSA) against the same JWKS with Spring Security and Nimbus + Tink.
# The floor is bench/src/floor.rs: hyper and tokio forwarding every request and nothing
# else, on the gateway's thread model, so the gap between it and the gateway is what the
# gateway's own work costs, and the gap between it and nginx what the stack costs.
#
# For each target: a warm-up (longer for the JVM), then saturation with Debian's wrk
# (CONNECTIONS connections, best of SAT_RUNS runs) for req/s, p50, p99 and CPU per
# request; then REPEATS runs at RATE_PERCENT % of that target's own saturation rate with
# ecom-rate (bench/src/rate.rs: open-loop fixed rate, no coordinated omission), each
# followed by the backend alone at the same rate, so "added" latency compares like with
# like and is the median of the per-pair differences. Then the footprint: time from exec
# to the first 200, idle and peak RSS.
#
# Nothing is pinned: the load generator, nginx and the targets share every core (CPU
# shares per run are printed so this is visible).
#
# Usage: scripts/bench/gateway.sh            (prints a Markdown report on stdout)
# Knobs (env): BENCH_CONNECTIONS=64 BENCH_WARMUP=3s BENCH_JVM_WARMUP=20s BENCH_SATURATION=8s
#   BENCH_SAT_RUNS=2 BENCH_RATED=5 (seconds) BENCH_REPEATS=3 BENCH_RATE_PERCENT=50
#   BENCH_BUILD=1 (rebuild binaries and the jar even if present) BENCH_KEEP=DIR (keep raw output
#   and logs) BENCH_PERF=1 (after the measurements, a perf profile of the gateway under load)
#   BENCH_SKIP_SCG=1 (leave Spring Cloud Gateway out)
# Installs what is missing: nginx, wrk, curl, jq, procps, openjdk-17-jdk-headless, maven (apt);
# Spring Cloud Gateway's dependencies come from Maven Central.
# Uses 127.0.0.1 ports 18080 (gateway), 18081 (auth), 18082 (SCG), 18083 (floor),
# 18090 (backend), 18091 (nginx proxy).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
CONNECTIONS="${BENCH_CONNECTIONS:-64}"
WARMUP="${BENCH_WARMUP:-3s}"
JVM_WARMUP="${BENCH_JVM_WARMUP:-20s}"
SATURATION="${BENCH_SATURATION:-8s}"
SAT_RUNS="${BENCH_SAT_RUNS:-2}"
RATED="${BENCH_RATED:-5}"
REPEATS="${BENCH_REPEATS:-3}"
RATE_PERCENT="${BENCH_RATE_PERCENT:-50}"
SKIP_SCG="${BENCH_SKIP_SCG:-0}"
GATEWAY_PORT=18080
AUTH_PORT=18081
SCG_PORT=18082
FLOOR_PORT=18083
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
command -v wrk >/dev/null || missing+=(wrk)
command -v curl >/dev/null || missing+=(curl)
command -v jq >/dev/null || missing+=(jq)
command -v pgrep >/dev/null || missing+=(procps)
if [[ $SKIP_SCG != 1 ]]; then
    command -v java >/dev/null || missing+=(openjdk-17-jdk-headless)
    command -v mvn >/dev/null || missing+=(maven)
fi
((${#missing[@]} == 0)) || apt_install "${missing[@]}"
NGINX="$(command -v nginx || echo /usr/sbin/nginx)"

GATEWAY_BIN="$ROOT/target/release/api-gateway"
AUTH_BIN="$ROOT/target/release/auth-service"
RATE_BIN="$ROOT/target/release/ecom-rate"
FLOOR_BIN="$ROOT/target/release/ecom-floor"
if [[ "${BENCH_BUILD:-0}" == 1 || ! -x "$GATEWAY_BIN" || ! -x "$AUTH_BIN" ]]; then
    log "building release binaries"
    (cd "$ROOT" && cargo build --release --locked -p api-gateway -p auth-service >&2)
fi
if [[ "${BENCH_BUILD:-0}" == 1 || ! -x "$RATE_BIN" || ! -x "$FLOOR_BIN" ]]; then
    log "building ecom-rate and ecom-floor"
    (cd "$ROOT" && cargo build --release --locked -p ecom-bench --no-default-features --bin ecom-rate --bin ecom-floor >&2)
fi
SCG_DIR="$ROOT/bench/spring-cloud-gateway"
SCG_JAR="$SCG_DIR/target/scg-bench.jar"
if [[ $SKIP_SCG != 1 && ("${BENCH_BUILD:-0}" == 1 || ! -f "$SCG_JAR") ]]; then
    log "building Spring Cloud Gateway (Maven Central)"
    started=$(date +%s)
    (cd "$SCG_DIR" && mvn -q -B package -DskipTests >&2)
    log "built in $(($(date +%s) - started)) s"
fi

# ---------------------------------------------------------------- processes
for port in "$GATEWAY_PORT" "$AUTH_PORT" "$SCG_PORT" "$FLOOR_PORT" "$BACKEND_PORT" "$PROXY_PORT"; do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
        die "127.0.0.1:$port is already in use"
    fi
done

WORK="$(mktemp -d /tmp/ecom-bench-gateway.XXXXXX)"
PIDS=()
LOAD_PID=""
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    [[ -n "$LOAD_PID" ]] && kill -TERM "$LOAD_PID" 2>/dev/null || true
    for pid in "${PIDS[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in "${PIDS[@]}"; do
        for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    if [[ -n "${BENCH_KEEP:-}" ]]; then
        mkdir -p "$BENCH_KEEP" && cp "$WORK"/*.out "$WORK"/*.json "$WORK"/*.log "$BENCH_KEEP"/ 2>/dev/null || true
        [[ -f "$WORK/perf.txt" ]] && cp "$WORK/perf.txt" "$BENCH_KEEP"/ || true
    fi
    rm -rf "$WORK"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

now_ms() { echo $(($(date +%s%N) / 1000000)); }
# wait_http URL STATUS SECONDS [curl args...]
wait_http() {
    local url=$1 want=$2 secs=$3 got="" deadline
    shift 3
    deadline=$(($(now_ms) + secs * 1000))
    while (($(now_ms) < deadline)); do
        got="$(curl -s -o /dev/null -w '%{http_code}' "$@" "$url" || true)"
        [[ "$got" == "$want" ]] && return 0
        sleep 0.005
    done
    die "$url answered ${got:-nothing}, expected $want"
}
# Sum of a /proc/PID/status field (kB) over pids.
status_kb() {
    local field=$1 total=0 pid v
    shift
    for pid in "$@"; do
        v="$(awk -v f="$field:" '$1 == f {print $2}' "/proc/$pid/status" 2>/dev/null || true)"
        total=$((total + ${v:-0}))
    done
    echo "$total"
}
nginx_pids() { echo "$1" $(pgrep -P "$1" || true); }

nginx_conf() { # NAME PORT BODY
    cat >"$WORK/$1.conf" <<EOF
worker_processes $CORES;
daemon off;
pid $WORK/$1.pid;
error_log $WORK/$1-error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $WORK/$1-body;
    proxy_temp_path $WORK/$1-proxy;
    fastcgi_temp_path $WORK/$1-fastcgi;
    uwsgi_temp_path $WORK/$1-uwsgi;
    scgi_temp_path $WORK/$1-scgi;
    # hyper never closes a kept-alive connection after N requests; nginx's default is 1000.
    keepalive_requests 1000000;
$3
}
EOF
    "$NGINX" -t -q -c "$WORK/$1.conf" -p "$WORK" >&2 || die "nginx configuration $1 refused"
}

# The backend.
nginx_conf backend "$BACKEND_PORT" "    server {
        listen 127.0.0.1:$BACKEND_PORT reuseport;
        default_type application/json;
        location / { return 200 '{\"id\":\"bench\",\"ok\":true}'; }
    }"
"$NGINX" -c "$WORK/backend.conf" -p "$WORK" >"$WORK/backend.log" 2>&1 &
BACKEND_PID=$!
PIDS+=("$BACKEND_PID")
BACKEND_URL="http://127.0.0.1:$BACKEND_PORT"
wait_http "$BACKEND_URL/api/products/bench" 200 10

# The reference reverse proxy, an nginx of its own so that its CPU and memory are its own.
nginx_conf proxy "$PROXY_PORT" "    upstream bench_backend {
        server 127.0.0.1:$BACKEND_PORT;
        keepalive 64;
        keepalive_requests 1000000;
    }
    server {
        listen 127.0.0.1:$PROXY_PORT reuseport;
        location / {
            proxy_pass http://bench_backend;
            proxy_http_version 1.1;
            proxy_set_header Connection \"\";
            # What the gateway adds too.
            proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto \$scheme;
        }
    }"
declare -A START_MS RSS_IDLE RSS_PEAK
t0=$(now_ms)
"$NGINX" -c "$WORK/proxy.conf" -p "$WORK" >"$WORK/proxy.log" 2>&1 &
PROXY_PID=$!
PIDS+=("$PROXY_PID")
wait_http "http://127.0.0.1:$PROXY_PORT/api/products/bench" 200 10
START_MS[nginx]=$(($(now_ms) - t0))

# Services get a clean environment: nothing from the caller (an OTLP endpoint, a log
# level) changes what is measured.
env -i PATH="$PATH" \
    DATABASE_URL="sqlite://$WORK/auth.db" \
    ECOM_JWT_SIGNING_KEY_FILE="$WORK/key.pem" ECOM_JWT_GENERATE_KEY=true \
    ECOM_ADMIN_EMAIL="$ADMIN_EMAIL" ECOM_ADMIN_PASSWORD="$ADMIN_PASSWORD" \
    ECOM_ACCESS_TOKEN_TTL_SECS=3600 ECOM_SERVICE_CLIENT_SECRET="$(openssl rand -hex 32)" \
    ECOM_BIND_ADDR="127.0.0.1:$AUTH_PORT" RUST_LOG=warn \
    "$AUTH_BIN" >"$WORK/auth.log" 2>&1 &
PIDS+=("$!")
wait_http "http://127.0.0.1:$AUTH_PORT/health/ready" 200 60

t0=$(now_ms)
env -i PATH="$PATH" \
    ECOM_BIND_ADDR="127.0.0.1:$GATEWAY_PORT" RUST_LOG=warn \
    ECOM_AUTH_URL="http://127.0.0.1:$AUTH_PORT" \
    ECOM_PRODUCT_URL="$BACKEND_URL" ECOM_ORDER_URL="$BACKEND_URL" ECOM_INVENTORY_URL="$BACKEND_URL" \
    ECOM_RATE_LIMIT_PER_SECOND=100000000 ECOM_RATE_LIMIT_AUTH_PER_MINUTE=100000 \
    ECOM_CONNECTION_THREADS="$CORES" \
    "$GATEWAY_BIN" >"$WORK/gateway.log" 2>&1 &
GATEWAY_PID=$!
PIDS+=("$GATEWAY_PID")
wait_http "http://127.0.0.1:$GATEWAY_PORT/api/products/bench" 200 30
START_MS[gw]=$(($(now_ms) - t0))

env -i PATH="$PATH" "$FLOOR_BIN" --bind "127.0.0.1:$FLOOR_PORT" --upstream "127.0.0.1:$BACKEND_PORT" \
    --threads "$CORES" >"$WORK/floor.log" 2>&1 &
FLOOR_PID=$!
PIDS+=("$FLOOR_PID")
wait_http "http://127.0.0.1:$FLOOR_PORT/api/products/bench" 200 10

SCG_PID=""
SCG_VERSION="-"
if [[ $SKIP_SCG != 1 ]]; then
    t0=$(now_ms)
    env -i PATH="$PATH" \
        SCG_PORT="$SCG_PORT" SCG_BACKEND_URL="$BACKEND_URL" \
        SCG_JWKS_URL="http://127.0.0.1:$AUTH_PORT/.well-known/jwks.json" \
        java -jar "$SCG_JAR" >"$WORK/scg.log" 2>&1 &
    SCG_PID=$!
    PIDS+=("$SCG_PID")
    wait_http "http://127.0.0.1:$SCG_PORT/api/products/bench" 200 120
    START_MS[scg]=$(($(now_ms) - t0))
    SCG_VERSION="$( (unzip -l "$SCG_JAR" 2>/dev/null || jar tf "$SCG_JAR" 2>/dev/null) | grep -oE 'spring-cloud-gateway-server-webflux-[0-9.]+\.jar' | head -1 |
        sed -E 's/.*-([0-9.]+)\.jar/\1/' || true)"
fi

sleep 1
RSS_IDLE[gw]="$(status_kb VmRSS "$GATEWAY_PID")"
RSS_IDLE[nginx]="$(status_kb VmRSS $(nginx_pids "$PROXY_PID"))"
[[ -n "$SCG_PID" ]] && RSS_IDLE[scg]="$(status_kb VmRSS "$SCG_PID")"

TOKEN="$(curl -sf -X POST -H 'content-type: application/json' \
    -d "{\"email\":\"$ADMIN_EMAIL\",\"password\":\"$ADMIN_PASSWORD\"}" \
    "http://127.0.0.1:$AUTH_PORT/api/auth/login" | jq -r .access_token)"
[[ -n "$TOKEN" && "$TOKEN" != null ]] || die "login failed"
AUTH_HEADER="Authorization: Bearer $TOKEN"

# Sanity: every path answers what the backend says, and the JWT paths really check.
check_body() {
    local body
    body="$(curl -sf "$@")" || die "request failed: $*"
    [[ "$body" == '{"id":"bench","ok":true}' ]] || die "unexpected body from $*: $body"
}
check_body "$BACKEND_URL/api/products/bench"
check_body "http://127.0.0.1:$GATEWAY_PORT/api/products/bench"
check_body "http://127.0.0.1:$PROXY_PORT/api/products/bench"
check_body "http://127.0.0.1:$FLOOR_PORT/api/products/bench"
check_body -H "$AUTH_HEADER" "http://127.0.0.1:$GATEWAY_PORT/api/orders/bench"
wait_http "http://127.0.0.1:$GATEWAY_PORT/api/orders/bench" 401 1
wait_http "http://127.0.0.1:$GATEWAY_PORT/api/orders/bench" 401 1 -H "${AUTH_HEADER}x"
if [[ -n "$SCG_PID" ]]; then
    check_body "http://127.0.0.1:$SCG_PORT/api/products/bench"
    check_body -H "$AUTH_HEADER" "http://127.0.0.1:$SCG_PORT/api/orders/bench"
    wait_http "http://127.0.0.1:$SCG_PORT/api/orders/bench" 401 1
    wait_http "http://127.0.0.1:$SCG_PORT/api/orders/bench" 401 1 -H "${AUTH_HEADER}x"
fi

# ---------------------------------------------------------------- measuring
# CPU ticks (user+system, all threads) of the given pids.
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
# LG_SECS := CPU seconds (user+system) of this shell's finished children, i.e. the load
# generators' runs. `times` must run in this shell, not in a subshell.
children_secs() {
    times >"$WORK/times"
    LG_SECS="$(awk 'NR==2{for (i=1;i<=NF;i++) {split($i, q, "m"); sub("s","",q[2]); s+=q[1]*60+q[2]}; printf "%.3f", s}' "$WORK/times")"
}
# busy and total ticks of the whole machine
machine_ticks() {
    local _cpu user nice system idle iowait irq softirq steal _rest
    read -r _cpu user nice system idle iowait irq softirq steal _rest </proc/stat
    echo "$((user + nice + system + irq + softirq + steal)) $((user + nice + system + idle + iowait + irq + softirq + steal))"
}
TCK="$(getconf CLK_TCK)"

# A wrk latency ("616.00us", "1.96ms", "1.2s") in milliseconds.
lat_ms() { awk -v v="$1" 'BEGIN{n=v+0; if (v ~ /us$/) n/=1000; else if (v ~ /ms$/) n=n; else if (v ~ /s$/) n*=1000; printf "%.3f", n}'; }

# run_load NAME COMMAND... (in the background so that a signal is handled at once)
run_load() {
    local name=$1
    shift
    "$@" >"$WORK/$name.out" 2>"$WORK/$name.err" &
    LOAD_PID=$!
    wait "$LOAD_PID" || die "load generator failed for $name: $(head -c 500 "$WORK/$name.err")"
    LOAD_PID=""
}
wrk_run() { # NAME URL DURATION [header]
    local name=$1 url=$2 duration=$3
    shift 3
    local args=(-t "$CORES" -c "$CONNECTIONS" -d "$duration" --latency)
    (($# > 0)) && args+=(-H "$1")
    run_load "$name" wrk "${args[@]}" "$url"
}
wrk_field() { # NAME what
    case $2 in
        rps) awk '/^Requests\/sec:/{printf "%d", $2}' "$WORK/$1.out" ;;
        requests) awk '/requests in/{print $1}' "$WORK/$1.out" ;;
        p50) lat_ms "$(awk '$1=="50%"{print $2}' "$WORK/$1.out")" ;;
        p99) lat_ms "$(awk '$1=="99%"{print $2}' "$WORK/$1.out")" ;;
        bad) awk '/Non-2xx/{n+=$NF} /Socket errors/{gsub(",",""); n+=$4+$6+$8+$10} END{print n+0}' "$WORK/$1.out" ;;
    esac
}
rate_run() { # NAME URL RATE [header]
    local name=$1 url=$2 rate=$3
    shift 3
    local args=(--url "$url" --rate "$rate" --seconds "$RATED" --connections "$CONNECTIONS")
    (($# > 0)) && args+=(-H "$1")
    run_load "$name" "$RATE_BIN" "${args[@]}"
}
rate_field() { jq -r ".$2" "$WORK/$1.out"; }

declare -A RPS P50 P99 BAD CORES_T CORES_B CORES_LG CORES_OTHER US RATE RP50 RP99 RP99_RANGE BASE_P50 BASE_P99 ADDED50 ADDED99 RATED_OTHER ACHIEVED
median() { printf '%s\n' "$@" | sort -g | awk '{v[NR]=$1} END{printf "%.6f", NR%2 ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2}'; }
range() { printf '%s\n' "$@" | sort -g | awk 'NR==1{lo=$1} {hi=$1} END{printf "%.2f–%.2f", lo, hi}'; }
cores_of() { awk -v t="$1" -v s="$2" 'BEGIN{printf "%.2f", s ? t/s : 0}'; }

# measure KEY URL WARMUP TARGET_PIDS... [-- header]
measure() {
    local key=$1 url=$2 warmup=$3
    shift 3
    local pids=() header=()
    while (($# > 0)); do
        if [[ $1 == -- ]]; then header=("$2"); break; fi
        pids+=("$1")
        shift
    done
    log "$key: warm-up $warmup"
    wrk_run "$key-warmup" "$url" "$warmup" "${header[@]}"
    saturate "$key" "$url"
    rated "$key" "$url"
}

# saturate KEY URL: best of SAT_RUNS wrk runs at saturation, the CPU each side spent and
# the rate of the rated runs (RATE_PERCENT of the best). Reads measure's pids and header.
saturate() {
    local key=$1 url=$2
    local best=0 best_run="" run total_requests=0 total_target=0 total_backend=0 span_total=0 other_total=0 lg_total=0
    local bm tm am ta before_t before_b before_lg
    for run in $(seq "$SAT_RUNS"); do
        log "$key: saturation $run/$SAT_RUNS, $SATURATION x $CONNECTIONS connections"
        children_secs
        before_lg="$LG_SECS"
        read -r bm tm <<<"$(machine_ticks)"
        before_t="$(proc_ticks "${pids[@]}")" before_b="$(proc_ticks $(nginx_pids "$BACKEND_PID"))"
        wrk_run "$key-sat-$run" "$url" "$SATURATION" "${header[@]}"
        local after_t after_b
        after_t="$(proc_ticks "${pids[@]}")" after_b="$(proc_ticks $(nginx_pids "$BACKEND_PID"))"
        read -r am ta <<<"$(machine_ticks)"
        children_secs
        local span=$(((ta - tm) / CORES)) lg
        ((span > 0)) || span=1
        lg="$(awk -v a="$LG_SECS" -v b="$before_lg" -v hz="$TCK" 'BEGIN{printf "%.0f", (a-b)*hz}')"
        total_requests=$((total_requests + $(wrk_field "$key-sat-$run" requests)))
        ((pids[0] == BACKEND_PID)) || total_target=$((total_target + after_t - before_t))
        total_backend=$((total_backend + after_b - before_b))
        span_total=$((span_total + span))
        lg_total=$((lg_total + lg))
        other_total=$((other_total + (am - bm) - (after_t - before_t) - lg))
        ((pids[0] == BACKEND_PID)) || other_total=$((other_total - (after_b - before_b)))
        local rps
        rps="$(wrk_field "$key-sat-$run" rps)"
        if ((rps > best)); then best=$rps best_run="$key-sat-$run"; fi
    done
    RPS[$key]=$best
    P50[$key]="$(wrk_field "$best_run" p50)"
    P99[$key]="$(wrk_field "$best_run" p99)"
    BAD[$key]=0
    for run in warmup $(seq "$SAT_RUNS"); do
        local f="$key-sat-$run"
        [[ $run == warmup ]] && f="$key-warmup"
        BAD[$key]=$((BAD[$key] + $(wrk_field "$f" bad)))
    done
    CORES_T[$key]="$(cores_of "$total_target" "$span_total")"
    CORES_B[$key]="$(cores_of "$total_backend" "$span_total")"
    CORES_LG[$key]="$(cores_of "$lg_total" "$span_total")"
    CORES_OTHER[$key]="$(awk -v o="$other_total" -v s="$span_total" 'BEGIN{o=o/s; if (o<0) o=0; printf "%.2f", o}')"
    US[$key]="$(awk -v t="$total_target" -v n="$total_requests" -v hz="$TCK" 'BEGIN{printf "%.0f", n ? t*1e6/hz/n : 0}')"
    [[ $key == direct ]] && US[$key]="$(awk -v t="$total_backend" -v n="$total_requests" -v hz="$TCK" 'BEGIN{printf "%.0f", n ? t*1e6/hz/n : 0}')"
    RATE[$key]=$((RPS[$key] * RATE_PERCENT / 100))
    ((RATE[$key] > 0)) || die "$key: no throughput"
}

# rated KEY URL: REPEATS open-loop runs at RATE[KEY], each followed by the backend alone
# at the same rate, and their medians. Reads measure's pids and header.
rated() {
    local key=$1 url=$2
    local bm tm am ta before_t before_b before_lg
    children_secs
    before_lg="$LG_SECS"
    read -r bm tm <<<"$(machine_ticks)"
    before_t="$(proc_ticks "${pids[@]}")" before_b="$(proc_ticks $(nginx_pids "$BACKEND_PID"))"
    local r p50s=() p99s=() b50s=() b99s=() d50s=() d99s=() achieved=()
    for r in $(seq "$REPEATS"); do
        log "$key: ${RPS[$key]} req/s; rated run $r/$REPEATS at ${RATE[$key]} req/s for ${RATED}s"
        rate_run "$key-rated-$r" "$url" "${RATE[$key]}" "${header[@]}"
        p50s+=("$(rate_field "$key-rated-$r" p50_ms)")
        p99s+=("$(rate_field "$key-rated-$r" p99_ms)")
        achieved+=("$(rate_field "$key-rated-$r" achieved_rate)")
        BAD[$key]=$((BAD[$key] + $(rate_field "$key-rated-$r" other_status) + $(rate_field "$key-rated-$r" errors)))
        if [[ $key != direct ]]; then
            rate_run "direct-at-$key-$r" "$BACKEND_URL/api/products/bench" "${RATE[$key]}"
            b50s+=("$(rate_field "direct-at-$key-$r" p50_ms)")
            b99s+=("$(rate_field "direct-at-$key-$r" p99_ms)")
            d50s+=("$(awk -v a="${p50s[-1]}" -v b="${b50s[-1]}" 'BEGIN{print a-b}')")
            d99s+=("$(awk -v a="${p99s[-1]}" -v b="${b99s[-1]}" 'BEGIN{print a-b}')")
        fi
    done
    # Other processes during the rated runs (these numbers are the most fragile).
    children_secs
    local after_t after_b
    after_t="$(proc_ticks "${pids[@]}")" after_b="$(proc_ticks $(nginx_pids "$BACKEND_PID"))"
    read -r am ta <<<"$(machine_ticks)"
    local span=$(((ta - tm) / CORES))
    ((span > 0)) || span=1
    RATED_OTHER[$key]="$(awk -v b=$((am - bm)) -v t=$((after_t - before_t)) -v n=$((after_b - before_b)) -v s=$span \
        -v l="$(awk -v a="$LG_SECS" -v b="$before_lg" 'BEGIN{print a-b}')" -v hz="$TCK" -v d="$([[ $key == direct ]] && echo 1 || echo 0)" \
        'BEGIN{o=(b-(d?0:t)-n)/s-l*hz/s; if (o<0) o=0; printf "%.2f", o}')"
    RP50[$key]="$(median "${p50s[@]}")"
    RP99[$key]="$(median "${p99s[@]}")"
    RP99_RANGE[$key]="$(range "${p99s[@]}")"
    ACHIEVED[$key]="$(median "${achieved[@]}")"
    if [[ $key != direct ]]; then
        BASE_P50[$key]="$(median "${b50s[@]}")"
        BASE_P99[$key]="$(median "${b99s[@]}")"
        ADDED50[$key]="$(median "${d50s[@]}")"
        ADDED99[$key]="$(median "${d99s[@]}")"
    fi
}

LOAD_BEFORE="$(cut -d' ' -f1-3 /proc/loadavg)"
# What else the machine is doing: busy cores over 2 s before the first run.
read -r b0 t0 <<<"$(machine_ticks)"
sleep 2
read -r b1 t1 <<<"$(machine_ticks)"
BACKGROUND="$(awk -v b=$((b1 - b0)) -v t=$((t1 - t0)) -v c="$CORES" 'BEGIN{printf "%.2f", t ? b*c/t : 0}')"
awk -v x="$BACKGROUND" 'BEGIN{exit !(x > 0.25)}' && log "warning: the machine is already busy ($BACKGROUND cores) before the run; numbers will be noisy"
read -r _ _ _ _ _ _ _ _ STEAL0 _ </proc/stat
read -r _ T0 <<<"$(machine_ticks)"

TARGETS=(direct gw-public gw-jwt nginx floor)
measure direct "$BACKEND_URL/api/products/bench" "$WARMUP" $(nginx_pids "$BACKEND_PID")
measure gw-public "http://127.0.0.1:$GATEWAY_PORT/api/products/bench" "$WARMUP" "$GATEWAY_PID"
measure gw-jwt "http://127.0.0.1:$GATEWAY_PORT/api/orders/bench" "$WARMUP" "$GATEWAY_PID" -- "$AUTH_HEADER"
RSS_PEAK[gw]="$(status_kb VmHWM "$GATEWAY_PID")"
measure nginx "http://127.0.0.1:$PROXY_PORT/api/products/bench" "$WARMUP" $(nginx_pids "$PROXY_PID")
RSS_PEAK[nginx]="$(status_kb VmHWM $(nginx_pids "$PROXY_PID"))"
measure floor "http://127.0.0.1:$FLOOR_PORT/api/products/bench" "$WARMUP" "$FLOOR_PID"
if [[ -n "$SCG_PID" ]]; then
    TARGETS+=(scg-public scg-jwt)
    measure scg-public "http://127.0.0.1:$SCG_PORT/api/products/bench" "$JVM_WARMUP" "$SCG_PID"
    measure scg-jwt "http://127.0.0.1:$SCG_PORT/api/orders/bench" "$JVM_WARMUP" "$SCG_PID" -- "$AUTH_HEADER"
    RSS_PEAK[scg]="$(status_kb VmHWM "$SCG_PID")"
fi

read -r _ _ _ _ _ _ _ _ STEAL1 _ </proc/stat
read -r _ T1 <<<"$(machine_ticks)"
STEAL="$(awk -v s=$((STEAL1 - STEAL0)) -v t=$((T1 - T0)) 'BEGIN{printf "%.1f", t ? 100*s/t : 0}')"

if [[ "${BENCH_PERF:-0}" == 1 ]] && command -v perf >/dev/null; then
    log "perf: profiling the gateway for 8 s under public-route load"
    wrk -t "$CORES" -c "$CONNECTIONS" -d 10s "http://127.0.0.1:$GATEWAY_PORT/api/products/bench" >/dev/null 2>&1 &
    LOAD_PID=$!
    sleep 1
    perf record -F 999 -g -p "$GATEWAY_PID" -o "$WORK/perf.data" -- sleep 8 >/dev/null 2>&1 || true
    wait "$LOAD_PID" || true
    LOAD_PID=""
    {
        echo "## perf: gateway under public-route saturation, by shared object"
        perf report -i "$WORK/perf.data" --no-children --stdio --sort dso 2>/dev/null | grep '%' | sed -E 's/ +/ /g' | head -8
        echo
        echo "## perf: top symbols (self)"
        perf report -i "$WORK/perf.data" --no-children --stdio --sort dso,symbol 2>/dev/null | grep -E '^ +[0-9.]+%' |
            sed -E 's/ +/ /g; s/ - - *$//' | cut -c1-140 | head -30
    } >"$WORK/perf.txt" 2>&1 || true
fi

# ---------------------------------------------------------------- report
GW_ERRORS="$(grep -c -E '"level":"(WARN|ERROR)"' "$WORK/gateway.log" || true)"
f2() { awk -v x="$1" 'BEGIN{printf "%.2f", x}'; }
f3() { awk -v x="$1" 'BEGIN{printf "%.3f", x}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN{printf "%.2f×", b ? a/b : 0}'; }
signed() { awk -v a="$1" 'BEGIN{printf "%+.3f", a}'; }
per_core() { awk -v r="$1" -v c="$2" 'BEGIN{printf "%.0f", (c > 0 ? r/c : 0)}'; }
mib() { awk -v k="$1" 'BEGIN{printf "%.1f", k/1024}'; }
label() {
    case $1 in
        direct) echo "direct to backend" ;;
        gw-public) echo "api-gateway, public route" ;;
        gw-jwt) echo "api-gateway, JWT route" ;;
        nginx) echo "nginx reverse proxy" ;;
        floor) echo "bare hyper proxy (the floor)" ;;
        scg-public) echo "Spring Cloud Gateway, public route" ;;
        scg-jwt) echo "Spring Cloud Gateway, JWT route" ;;
    esac
}

echo "## Gateway benchmark — $(date -u '+%Y-%m-%d %H:%M UTC')"
echo
echo "- commit: $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')$(git -C "$ROOT" diff --quiet 2>/dev/null || echo ' (work tree has changes)'); gateway built $(date -u -r "$GATEWAY_BIN" '+%Y-%m-%d %H:%M UTC')"
echo "- machine: $CORES cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')), $(awk '/MemTotal/{printf "%.1f GiB", $2/1048576}' /proc/meminfo) memory; load average before the run: $LOAD_BEFORE; busy cores in the 2 s before the run: $BACKGROUND; CPU steal during the run: $STEAL %"
echo "- versions: $("$NGINX" -v 2>&1 | sed 's/.*: //'), $(wrk -v 2>&1 | head -1 | cut -d' ' -f1-2), $(rustc -V 2>/dev/null | cut -d' ' -f1-2)$([[ -n "$SCG_PID" ]] && echo ", Spring Cloud Gateway $SCG_VERSION on $(java -version 2>&1 | head -1 | sed 's/"//g')")"
echo "- load: wrk -t$CORES -c$CONNECTIONS, warm-up $WARMUP ($JVM_WARMUP for the JVM), best of $SAT_RUNS × $SATURATION; then $REPEATS × ${RATED}s at $RATE_PERCENT % of each target's own best rate with ecom-rate ($CONNECTIONS connections, open loop), each followed by the backend alone at that rate; everything shares all $CORES cores (nothing pinned)"
echo
echo "Saturation (wrk; CPU over all saturation runs; \"per core\" = req/s ÷ cores the target itself used):"
echo
echo "| target | req/s | vs nginx | p50 ms | p99 ms | target cores | CPU µs/request | req/s per core | backend cores | wrk cores | other cores | non-2xx + errors |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
for key in "${TARGETS[@]}"; do
    t="${CORES_T[$key]}" pc="$(per_core "${RPS[$key]}" "${CORES_T[$key]}")"
    [[ $key == direct ]] && t="—" pc="—"
    echo "| $(label "$key") | ${RPS[$key]} | $(ratio "${RPS[$key]}" "${RPS[nginx]}") | $(f3 "${P50[$key]}") | $(f3 "${P99[$key]}") | $t | ${US[$key]} | $pc | ${CORES_B[$key]} | ${CORES_LG[$key]} | ${CORES_OTHER[$key]} | ${BAD[$key]} |"
done
echo
echo "At $RATE_PERCENT % of each target's own saturation rate (ecom-rate; median of $REPEATS runs; \"added\" = median of the differences to the backend alone at the same rate right after):"
echo
echo "| target | rate req/s | p50 ms | p99 ms (range) | direct p50 / p99 ms | added p50 ms | added p99 ms |"
echo "|---|---:|---:|---:|---:|---:|---:|"
for key in "${TARGETS[@]}"; do
    if [[ $key == direct ]]; then
        echo "| $(label "$key") | ${RATE[$key]} | $(f3 "${RP50[$key]}") | $(f3 "${RP99[$key]}") (${RP99_RANGE[$key]}) | — | — | — |"
    else
        echo "| $(label "$key") | ${RATE[$key]} | $(f3 "${RP50[$key]}") | $(f3 "${RP99[$key]}") (${RP99_RANGE[$key]}) | $(f3 "${BASE_P50[$key]}") / $(f3 "${BASE_P99[$key]}") | $(signed "${ADDED50[$key]}") | $(signed "${ADDED99[$key]}") |"
    fi
done
echo
echo "Footprint (RSS summed over the target's processes: nginx = master + workers):"
echo
echo "| target | exec → first 200 ms | RSS idle MiB | RSS peak MiB |"
echo "|---|---:|---:|---:|"
echo "| api-gateway | ${START_MS[gw]} | $(mib "${RSS_IDLE[gw]}") | $(mib "${RSS_PEAK[gw]}") |"
echo "| nginx reverse proxy | ${START_MS[nginx]} | $(mib "${RSS_IDLE[nginx]}") | $(mib "${RSS_PEAK[nginx]}") |"
[[ -n "$SCG_PID" ]] && echo "| Spring Cloud Gateway | ${START_MS[scg]} | $(mib "${RSS_IDLE[scg]}") | $(mib "${RSS_PEAK[scg]}") |"
echo
echo "Targets:"
echo
echo "| target | measured |"
echo "|---|---:|"
echo "| api-gateway ≥ 1.0× nginx, public route | $(ratio "${RPS[gw-public]}" "${RPS[nginx]}") |"
echo "| api-gateway ≥ 0.8× nginx, JWT route | $(ratio "${RPS[gw-jwt]}" "${RPS[nginx]}") |"
echo "| added p99 ≤ 1 ms at $RATE_PERCENT % load (public / JWT) | $(signed "${ADDED99[gw-public]}") / $(signed "${ADDED99[gw-jwt]}") ms |"
if [[ -n "$SCG_PID" ]]; then
    echo "| ≥ 6× Spring Cloud Gateway's req/s per core, public route | $(ratio "$(per_core "${RPS[gw-public]}" "${CORES_T[gw-public]}")" "$(per_core "${RPS[scg-public]}" "${CORES_T[scg-public]}")") |"
    echo "| ≥ 6× Spring Cloud Gateway's req/s per core, JWT route | $(ratio "$(per_core "${RPS[gw-jwt]}" "${CORES_T[gw-jwt]}")" "$(per_core "${RPS[scg-jwt]}" "${CORES_T[scg-jwt]}")") |"
    echo "| ≤ 0.1× Spring Cloud Gateway's peak RSS | $(ratio "${RSS_PEAK[gw]}" "${RSS_PEAK[scg]}") |"
fi
echo
echo "- CPU per request at saturation: api-gateway ${US[gw-public]} µs (public) and ${US[gw-jwt]} µs (JWT), the bare hyper proxy ${US[floor]} µs, nginx ${US[nginx]} µs"
echo "- gateway WARN/ERROR log lines during the run: $GW_ERRORS"
for key in "${TARGETS[@]}"; do
    awk -v x="${CORES_OTHER[$key]}" 'BEGIN{exit !(x > 0.15)}' &&
        echo "- warning: other processes took ${CORES_OTHER[$key]} cores during the $key saturation runs; its numbers are disturbed"
    awk -v x="${RATED_OTHER[$key]}" 'BEGIN{exit !(x > 0.15)}' &&
        echo "- warning: other processes took ${RATED_OTHER[$key]} cores during the $key rated runs; their latencies are disturbed"
done
if ((GW_ERRORS > 0)); then
    echo
    echo '```'
    grep -E '"level":"(WARN|ERROR)"' "$WORK/gateway.log" | jq -r '.message // .' 2>/dev/null | sort | uniq -c | sort -rn | head -10
    echo '```'
fi
if [[ -f "$WORK/perf.txt" ]]; then
    echo
    echo '```'
    cat "$WORK/perf.txt"
    echo '```'
fi
