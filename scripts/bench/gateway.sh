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
# req/s, p50, p99, then REPEATS short runs at RATE_PERCENT % of that target's own
# saturation rate (oha -q, with latency correction against coordinated omission)
# for p99. For the proxies each rated run is followed by the backend alone at the
# same rate, so "added p99" compares like with like (same offered rate, same moment)
# and is the median of the per-pair differences. p99 at a fixed rate is noisy on a
# shared 2-core machine: the table shows the median and the range.
#
# Nothing is pinned: the load generator, nginx and the gateway share every core
# (CPU shares per run are printed so this is visible).
#
# Usage: scripts/bench/gateway.sh            (prints a Markdown report on stdout)
# Knobs (env): BENCH_CONNECTIONS=64 BENCH_WARMUP=3s BENCH_SATURATION=15s BENCH_RATED=5s
#   BENCH_REPEATS=3 BENCH_RATE_PERCENT=50 BENCH_BUILD=1 (rebuild binaries even if present)
#   BENCH_KEEP=DIR (copy raw oha JSON and service logs there)
#   BENCH_PERF=1 (after the measurements, a 10 s perf profile of the gateway under JWT load)
# Installs what is missing: nginx, curl, jq, procps (apt); oha (cargo install --locked).
# Uses 127.0.0.1 ports 18080 (gateway), 18081 (auth), 18090 (backend), 18091 (nginx proxy).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
CONNECTIONS="${BENCH_CONNECTIONS:-64}"
WARMUP="${BENCH_WARMUP:-3s}"
SATURATION="${BENCH_SATURATION:-15s}"
RATED="${BENCH_RATED:-5s}"
REPEATS="${BENCH_REPEATS:-3}"
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
OHA_PID=""
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    [[ -n "$OHA_PID" ]] && kill -TERM "$OHA_PID" 2>/dev/null || true
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
    ECOM_ACCESS_TOKEN_TTL_SECS=3600 ECOM_SERVICE_CLIENT_SECRET="$(openssl rand -hex 32)" \
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
# LG_SECS := CPU seconds (user+system) of this shell's finished children, i.e. oha's
# runs. `times` must run in this shell, not in a subshell.
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

declare -A RPS P50 P99 RATE RP99 RP99_RANGE ADDED RP50 BASE_P50 ADDED50 BAD CPU_GW CPU_NGINX CPU_LG CPU_OTHER RATED_OTHER BASE_P99 US_GW US_NGINX
TCK="$(getconf CLK_TCK)"

# oha NAME URL [oha args...] -> $WORK/NAME.json
oha_run() {
    local name=$1 url=$2
    shift 2
    # In the background so that a signal to this script is handled at once.
    "$OHA" --no-tui --output-format json -w "$@" "$url" >"$WORK/$name.json" 2>"$WORK/$name.err" &
    OHA_PID=$!
    wait "$OHA_PID" || die "oha failed for $name: $(head -c 500 "$WORK/$name.err")"
    OHA_PID=""
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
    local before_lg after_lg
    children_secs
    before_lg="$LG_SECS"
    before_m="$(machine_ticks)" before_gw="$(proc_ticks "$GATEWAY_PID")" before_ng="$(nginx_ticks)"
    oha_run "$key-sat" "$url" -z "$SATURATION" -c "$CONNECTIONS" "$@"
    after_m="$(machine_ticks)" after_gw="$(proc_ticks "$GATEWAY_PID")" after_ng="$(nginx_ticks)"
    children_secs
    after_lg="$LG_SECS"
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
    CPU_LG[$key]="$(awk -v a="$after_lg" -v b="$before_lg" -v s=$span -v hz="$TCK" 'BEGIN{printf "%.2f", (a-b)*hz/s}')"
    CPU_OTHER[$key]="$(awk -v b=$((am - bm)) -v g=$((after_gw - before_gw)) -v n=$((after_ng - before_ng)) -v s=$span \
        -v l="${CPU_LG[$key]}" 'BEGIN{o=(b-g-n)/s-l; if (o<0) o=0; printf "%.2f", o}')"
    # CPU microseconds per request (ticks are 1/CLK_TCK s)
    local done_requests
    done_requests="$(jq '[.statusCodeDistribution[]] | add // 0' "$WORK/$key-sat.json")"
    US_GW[$key]="$(awk -v t=$((after_gw - before_gw)) -v n="$done_requests" -v hz="$TCK" 'BEGIN{printf "%.0f", n ? t*1e6/hz/n : 0}')"
    US_NGINX[$key]="$(awk -v t=$((after_ng - before_ng)) -v n="$done_requests" -v hz="$TCK" 'BEGIN{printf "%.0f", n ? t*1e6/hz/n : 0}')"
    RATE[$key]=$((RPS[$key] * RATE_PERCENT / 100))
    ((RATE[$key] > 0)) || die "$key: no throughput"
    BAD[$key]=$(($(bad_count "$key-warmup") + $(bad_count "$key-sat")))
    children_secs
    before_lg="$LG_SECS"
    before_m="$(machine_ticks)" before_gw="$(proc_ticks "$GATEWAY_PID")" before_ng="$(nginx_ticks)"
    local r p99s=() bases=() diffs=() p50s=() bases50=() diffs50=()
    for r in $(seq "$REPEATS"); do
        log "$key: ${RPS[$key]} req/s; rated run $r/$REPEATS at ${RATE[$key]} req/s for $RATED"
        oha_run "$key-rated-$r" "$url" -z "$RATED" -c "$CONNECTIONS" -q "${RATE[$key]}" --latency-correction "$@"
        p99s+=("$(ms "$key-rated-$r" '.latencyPercentiles.p99')")
        p50s+=("$(ms "$key-rated-$r" '.latencyPercentiles.p50')")
        BAD[$key]=$((BAD[$key] + $(bad_count "$key-rated-$r")))
        if [[ $key != direct ]]; then
            oha_run "direct-at-$key-$r" "$BACKEND_URL/api/products/bench" -z "$RATED" -c "$CONNECTIONS" \
                -q "${RATE[$key]}" --latency-correction
            bases+=("$(ms "direct-at-$key-$r" '.latencyPercentiles.p99')")
            diffs+=("$(awk -v a="${p99s[-1]}" -v b="${bases[-1]}" 'BEGIN{print a-b}')")
            bases50+=("$(ms "direct-at-$key-$r" '.latencyPercentiles.p50')")
            diffs50+=("$(awk -v a="${p50s[-1]}" -v b="${bases50[-1]}" 'BEGIN{print a-b}')")
            BAD[direct]=$((BAD[direct] + $(bad_count "direct-at-$key-$r")))
        fi
    done
    # Other processes during the rated runs (these numbers are the most fragile).
    children_secs
    after_m="$(machine_ticks)" after_gw="$(proc_ticks "$GATEWAY_PID")" after_ng="$(nginx_ticks)"
    read -r bm tm <<<"$before_m"
    read -r am ta <<<"$after_m"
    span=$(((ta - tm) / CORES))
    ((span > 0)) || span=1
    RATED_OTHER[$key]="$(awk -v b=$((am - bm)) -v g=$((after_gw - before_gw)) -v n=$((after_ng - before_ng)) -v s=$span \
        -v l="$(awk -v a="$LG_SECS" -v b="$before_lg" 'BEGIN{print a-b}')" -v hz="$TCK" \
        'BEGIN{o=(b-g-n)/s-l*hz/s; if (o<0) o=0; printf "%.2f", o}')"
    RP99[$key]="$(median "${p99s[@]}")"
    RP99_RANGE[$key]="$(range "${p99s[@]}")"
    RP50[$key]="$(median "${p50s[@]}")"
    if [[ $key != direct ]]; then
        BASE_P99[$key]="$(median "${bases[@]}")"
        ADDED[$key]="$(median "${diffs[@]}")"
        BASE_P50[$key]="$(median "${bases50[@]}")"
        ADDED50[$key]="$(median "${diffs50[@]}")"
    else
        BASE_P99[$key]="${RP99[$key]}"
        BASE_P50[$key]="${RP50[$key]}"
    fi
}
median() { printf '%s\n' "$@" | sort -g | awk '{v[NR]=$1} END{printf "%.6f", NR%2 ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2}'; }
range() { printf '%s\n' "$@" | sort -g | awk 'NR==1{lo=$1} {hi=$1} END{printf "%.1f–%.1f", lo, hi}'; }

LOAD_BEFORE="$(cut -d' ' -f1-3 /proc/loadavg)"
# What else the machine is doing: busy cores over 2 s before the first run.
read -r b0 t0 <<<"$(machine_ticks)"
sleep 2
read -r b1 t1 <<<"$(machine_ticks)"
BACKGROUND="$(awk -v b=$((b1 - b0)) -v t=$((t1 - t0)) -v c="$CORES" 'BEGIN{printf "%.2f", t ? b*c/t : 0}')"
awk -v x="$BACKGROUND" 'BEGIN{exit !(x > 0.25)}' && log "warning: the machine is already busy ($BACKGROUND cores) before the run; numbers will be noisy"
RSS_GW_IDLE="$(awk '/VmRSS/{print $2}' "/proc/$GATEWAY_PID/status")"
read -r _ _ _ _ _ _ _ _ STEAL0 _ </proc/stat
read -r _ T0 <<<"$(machine_ticks)"
AUTH_HEADER=(-H "Authorization: Bearer $TOKEN")
measure direct "$BACKEND_URL/api/products/bench"
measure gw-proxy "http://127.0.0.1:$GATEWAY_PORT/api/products/bench"
measure gw-jwt "http://127.0.0.1:$GATEWAY_PORT/api/orders/bench" "${AUTH_HEADER[@]}"
measure nginx "http://127.0.0.1:$PROXY_PORT/api/products/bench"

RSS_GW_LOADED="$(awk '/VmHWM/{print $2}' "/proc/$GATEWAY_PID/status")"
read -r _ _ _ _ _ _ _ _ STEAL1 _ </proc/stat
read -r _ T1 <<<"$(machine_ticks)"
STEAL="$(awk -v s=$((STEAL1 - STEAL0)) -v t=$((T1 - T0)) 'BEGIN{printf "%.1f", t ? 100*s/t : 0}')"

if [[ "${BENCH_PERF:-0}" == 1 ]] && command -v perf >/dev/null; then
    log "perf: profiling the gateway for 8 s under JWT load"
    "$OHA" --no-tui --output-format json -z 10s -c "$CONNECTIONS" "${AUTH_HEADER[@]}" \
        "http://127.0.0.1:$GATEWAY_PORT/api/orders/bench" >/dev/null 2>&1 &
    OHA_PID=$!
    sleep 1
    perf record -F 999 -p "$GATEWAY_PID" -o "$WORK/perf.data" -- sleep 8 >/dev/null 2>&1 || true
    wait "$OHA_PID" || true
    OHA_PID=""
    {
        echo "## perf: gateway under JWT saturation, by shared object"
        perf report -i "$WORK/perf.data" --stdio --sort dso 2>/dev/null | grep '%' | sed -E 's/ +/ /g' | head -8
        echo
        echo "## perf: top symbols"
        perf report -i "$WORK/perf.data" --stdio --sort dso,symbol 2>/dev/null | grep '%' | sed -E 's/ +/ /g; s/ - - *$//' |
            cut -c1-140 | head -30
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
echo "- commit: $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')$(git -C "$ROOT" diff --quiet 2>/dev/null || echo ' (work tree has changes)'); binaries built $(date -u -r "$GATEWAY_BIN" '+%Y-%m-%d %H:%M UTC')"
echo "- machine: $CORES cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')), $(awk '/MemTotal/{printf "%.1f GiB", $2/1048576}' /proc/meminfo) memory; load average before the run: $LOAD_BEFORE; busy cores in the 2 s before the run: $BACKGROUND"
echo "- versions: $("$NGINX" -v 2>&1 | sed 's/.*: //'), $("$OHA" --version), $(rustc -V 2>/dev/null | cut -d' ' -f1-2)"
echo "- load: $CONNECTIONS connections; warm-up $WARMUP, saturation $SATURATION, then $REPEATS × $RATED at $RATE_PERCENT % of each target's own saturation rate (oha -q --latency-correction), each followed by the backend alone at that rate; load generator, nginx and gateway share all $CORES cores (nothing pinned)"
echo "- CPU steal during the run: $STEAL % of the machine"
echo
echo "| target | req/s | p50 ms | p99 ms | req/s vs nginx | rated req/s | p99 @ $RATE_PERCENT % ms, median (range) | direct p99 @ same rate ms | added p99 ms (median of pairs) | non-2xx + errors |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
for key in direct gw-proxy gw-jwt nginx; do
    case $key in
        direct) label="(a) direct to backend" ;;
        gw-proxy) label="(b) api-gateway, no auth" ;;
        gw-jwt) label="(c) api-gateway, JWT" ;;
        nginx) label="(d) nginx reverse proxy" ;;
    esac
    if [[ $key == direct ]]; then add="—"; else add="$(added "${ADDED[$key]}" 0)"; fi
    echo "| $label | ${RPS[$key]} | $(f3 "${P50[$key]}") | $(f3 "${P99[$key]}") | $(ratio "${RPS[$key]}" "${RPS[nginx]}") | ${RATE[$key]} | $(f3 "${RP99[$key]}") (${RP99_RANGE[$key]}) | $(f3 "${BASE_P99[$key]}") | $add | ${BAD[$key]} |"
done
echo
echo "Rated runs, typical request (p50, median over the runs):"
echo
echo "| target | rated req/s | p50 @ $RATE_PERCENT % ms | direct p50 @ same rate ms | added p50 ms |"
echo "|---|---:|---:|---:|---:|"
for key in gw-proxy gw-jwt nginx; do
    echo "| $key | ${RATE[$key]} | $(f3 "${RP50[$key]}") | $(f3 "${BASE_P50[$key]}") | $(added "${ADDED50[$key]}" 0) |"
done
echo
echo "CPU during saturation, in cores out of $CORES (nginx = backend + proxy workers; rest = everything else on the machine, which should be near 0):"
echo
echo "| target | gateway cores | nginx cores | oha cores | rest cores | gateway CPU µs/request | nginx CPU µs/request |"
echo "|---|---:|---:|---:|---:|---:|---:|"
for key in direct gw-proxy gw-jwt nginx; do
    echo "| $key | ${CPU_GW[$key]} | ${CPU_NGINX[$key]} | ${CPU_LG[$key]} | ${CPU_OTHER[$key]} | ${US_GW[$key]} | ${US_NGINX[$key]} |"
done
echo
echo "- gateway RSS: $((RSS_GW_IDLE / 1024)) MiB idle before load, peak $((RSS_GW_LOADED / 1024)) MiB (VmHWM)"
echo "- gateway WARN/ERROR log lines during the run: $GW_ERRORS"
for key in direct gw-proxy gw-jwt nginx; do
    awk -v x="${CPU_OTHER[$key]}" 'BEGIN{exit !(x > 0.15)}' &&
        echo "- warning: other processes took ${CPU_OTHER[$key]} cores during the $key saturation run; its numbers are disturbed"
    awk -v x="${RATED_OTHER[$key]}" 'BEGIN{exit !(x > 0.15)}' &&
        echo "- warning: other processes took ${RATED_OTHER[$key]} cores during the $key rated runs; their p99 is disturbed"
done
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
