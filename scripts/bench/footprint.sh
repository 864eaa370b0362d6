#!/usr/bin/env bash
# Footprint: start-up time, idle memory and clean stop of the release binaries.
#
#  (a) `ecom dev --data-dir <fresh tmp>` (cold: migrations, signing key, admin
#      password hash) and again on the same data dir (warm): time from exec to the
#      "ecom is ready in N ms" line on stdout and to all six /health/ready answering
#      200, idle RSS after ~3 s, then SIGTERM: time to exit and exit code.
#      It listens on 127.0.0.1 from PORT_BASE (`--port-base`), which must be free.
#  (b) each service binary alone on SQLite (127.0.0.1, PORT_BASE + 100 to + 105): time from exec
#      to /health/live answering 200, idle RSS after ~3 s, SIGTERM, exit code.
#      order-service and notification-service get ECOM_KAFKA_BROKERS pointing at a
#      closed port (their readiness is 503 then; liveness and RSS are what count
#      here, and a real Kafka of the test stack must not be touched);
#      notification-service writes mail to files (ECOM_MAIL_DIR).
#  (c) auth-service RSS after 10 sequential and then LOGINS concurrent logins (each
#      an argon2id verification with a 19 MiB buffer), 0.5 s after each and IDLE_SECS
#      later, with the logins' status codes and latencies; the same burst against
#      the auth-service of the warm `ecom dev`, and that process's RSS;
#  and the size of each release binary.
#
# Usage: scripts/bench/footprint.sh      (prints a Markdown report on stdout)
# Knobs (env): BENCH_IDLE_SECS=3 BENCH_STARTS=3 (starts per service for the start-up
#   time) BENCH_LOGINS=100 (concurrent logins in (c)) BENCH_PORT_BASE=28080 (away from
#   the default ports a running platform may hold) BENCH_BUILD=1 (rebuild even if the
#   binaries exist)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
BIN="$ROOT/target/release"
IDLE_SECS="${BENCH_IDLE_SECS:-3}"
STARTS="${BENCH_STARTS:-3}"
LOGINS="${BENCH_LOGINS:-100}"
SERVICES=(api-gateway auth-service product-service order-service inventory-service notification-service)
PORT_BASE="${BENCH_PORT_BASE:-28080}"
DEV_PORTS=($(seq "$PORT_BASE" $((PORT_BASE + 5))) $((PORT_BASE + 1000)))
ALONE_BASE=$((PORT_BASE + 100))
CLOSED_PORT=$((PORT_BASE + 119)) # nothing listens here: upstreams, JWKS and Kafka of the lone services

log() { echo "[footprint] $*" >&2; }
die() { log "error: $*"; exit 1; }

command -v curl >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq curl >&2; }

all_built() { local s; for s in ecom "${SERVICES[@]}"; do [[ -x "$BIN/$s" ]] || return 1; done; }
if [[ "${BENCH_BUILD:-0}" == 1 ]] || ! all_built; then
    log "building release binaries"
    packages=(-p ecom)
    for s in "${SERVICES[@]}"; do packages+=(-p "$s"); done
    (cd "$ROOT" && cargo build --release --locked "${packages[@]}" >&2)
fi

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
for port in "${DEV_PORTS[@]}" $(seq "$ALONE_BASE" $((ALONE_BASE + 5))) "$CLOSED_PORT"; do
    port_in_use "$port" && die "127.0.0.1:$port is in use (another ecom dev?); stop it first"
done

WORK="$(mktemp -d /tmp/ecom-bench-footprint.XXXXXX)"
# auth- and order-service refuse to start without the service client's secret.
SERVICE_SECRET="$(openssl rand -hex 32)"
CURRENT_PID=""
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    if [[ -n "$CURRENT_PID" ]] && kill -0 "$CURRENT_PID" 2>/dev/null; then
        kill -TERM "$CURRENT_PID" 2>/dev/null || true
        for _ in $(seq 100); do kill -0 "$CURRENT_PID" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$CURRENT_PID" 2>/dev/null || true
    fi
    rm -rf "$WORK"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

now_us() { echo "${EPOCHREALTIME/./}"; }
ms_since() { awk -v a="$1" -v b="$(now_us)" 'BEGIN{printf "%.0f", (b-a)/1000}'; }
status_kib() { awk -v k="$2:" '$1==k{print $2}' "/proc/$1/status"; }
mib() { awk -v k="$1" 'BEGIN{printf "%.1f", k/1024}'; }

# stop PID: SIGTERM, wait; sets STOP_RC (exit code) and STOP_MS (time to exit).
# Not in a subshell: only this shell can wait for its children.
stop() {
    local pid=$1 t0
    t0="$(now_us)"
    kill -TERM "$pid"
    STOP_RC=0
    wait "$pid" || STOP_RC=$?
    STOP_MS="$(ms_since "$t0")"
}

# ---------------------------------------------------------------- logins
# login PORT EMAIL PASSWORD: one login straight at an auth-service; prints "code seconds".
login() {
    curl -s -o /dev/null -w '%{http_code} %{time_total}\n' --max-time 60 -X POST -H 'content-type: application/json' \
        -d "{\"email\":\"$2\",\"password\":\"$3\"}" "http://127.0.0.1:$1/api/auth/login" || echo "000 60"
}
# login_burst PID PORT EMAIL PASSWORD PREFIX: 10 sequential logins, then LOGINS at once;
# sets LOGIN_RSS[PREFIX,start|seq|conc|idle|peak] (KiB) and LOGIN_STATS[PREFIX,...].
declare -A LOGIN_RSS LOGIN_STATS
login_burst() {
    local pid=$1 port=$2 email=$3 password=$4 key=$5 pids=() i
    LOGIN_RSS[$key,start]="$(status_kib "$pid" VmRSS)"
    for i in $(seq 10); do login "$port" "$email" "$password"; done >"$WORK/$key-seq.txt"
    sleep 0.5 # the hashing thread answers, then hands its memory back
    LOGIN_RSS[$key,seq]="$(status_kib "$pid" VmRSS)"
    for i in $(seq "$LOGINS"); do
        login "$port" "$email" "$password" >"$WORK/$key-conc-$i.txt" &
        pids+=($!)
    done
    wait "${pids[@]}" || true
    sleep 0.5
    LOGIN_RSS[$key,conc]="$(status_kib "$pid" VmRSS)"
    sleep "$IDLE_SECS"
    LOGIN_RSS[$key,idle]="$(status_kib "$pid" VmRSS)"
    LOGIN_RSS[$key,peak]="$(status_kib "$pid" VmHWM)"
    LOGIN_STATS[$key,seq]="$(awk '{s+=$2; n++} END{printf "%.0f", s/n*1000}' "$WORK/$key-seq.txt")"
    LOGIN_STATS[$key,ok]="$(cat "$WORK/$key"-conc-*.txt | awk '$1==200{n++} END{print n+0}')"
    LOGIN_STATS[$key,lat]="$(cat "$WORK/$key"-conc-*.txt | awk '{print $2*1000}' | sort -n |
        awk '{v[NR]=$1} END{i=int(NR*0.99+0.5); if (i<1) i=1; printf "%.0f / %.0f / %.0f", v[int((NR+1)/2)], v[i], v[NR]}')"
}

# ---------------------------------------------------------------- (a) ecom dev
READY_URLS=()
for port in "${DEV_PORTS[@]:0:6}"; do READY_URLS+=(-o /dev/null "http://127.0.0.1:$port/health/ready"); done

declare -A DEV_BANNER DEV_SELF DEV_READY DEV_RSS DEV_HWM DEV_THREADS DEV_RC DEV_STOP
dev_run() {
    local kind=$1 data=$2 t0 codes ready="" banner_at self
    log "ecom dev ($kind)"
    : >"$WORK/dev-$kind.out"
    t0="$(now_us)"
    env -i PATH="$PATH" HOME="$WORK" "$BIN/ecom" dev --data-dir "$data" --port-base "$PORT_BASE" \
        > >(while IFS= read -r line; do printf '%s %s\n' "${EPOCHREALTIME/./}" "$line"; done >"$WORK/dev-$kind.out") \
        2>"$WORK/dev-$kind.err" &
    CURRENT_PID=$!
    for _ in $(seq 6000); do
        kill -0 "$CURRENT_PID" 2>/dev/null || die "ecom dev exited: $(tail -5 "$WORK/dev-$kind.err")"
        codes="$(curl -s --max-time 2 -w '%{http_code} ' "${READY_URLS[@]}" || true)"
        if [[ "$codes" == "200 200 200 200 200 200 " ]]; then ready="$(ms_since "$t0")"; break; fi
        sleep 0.01
    done
    [[ -n "$ready" ]] || die "ecom dev not ready after 60 s: $codes"
    for _ in $(seq 500); do grep -q 'ecom is ready in' "$WORK/dev-$kind.out" && break; sleep 0.01; done
    banner_at="$(awk '/ecom is ready in/{print $1; exit}' "$WORK/dev-$kind.out")"
    [[ -n "$banner_at" ]] || die "no banner on stdout"
    self="$(sed -n 's/.*ecom is ready in \([0-9]*\) ms.*/\1/p' "$WORK/dev-$kind.out" | head -1)"
    sleep "$IDLE_SECS"
    DEV_BANNER[$kind]="$(awk -v a="$t0" -v b="$banner_at" 'BEGIN{printf "%.0f", (b-a)/1000}')"
    DEV_SELF[$kind]="$self"
    DEV_READY[$kind]="$ready"
    DEV_RSS[$kind]="$(status_kib "$CURRENT_PID" VmRSS)"
    DEV_HWM[$kind]="$(status_kib "$CURRENT_PID" VmHWM)"
    DEV_THREADS[$kind]="$(status_kib "$CURRENT_PID" Threads)"
    if [[ $kind == warm ]]; then
        log "ecom dev: 10 + $LOGINS logins at its auth-service"
        # The password ecom dev generated and keeps in the data directory (first line).
        login_burst "$CURRENT_PID" $((PORT_BASE + 1)) admin@ecom.local "$(head -n 1 "$data/admin-password")" dev
    fi
    stop "$CURRENT_PID"
    DEV_RC[$kind]=$STOP_RC DEV_STOP[$kind]=$STOP_MS
    CURRENT_PID=""
}
dev_run cold "$WORK/dev-data"
dev_run warm "$WORK/dev-data"

# ---------------------------------------------------------------- (b) alone
# Each service is started STARTS times on fresh data (start-up time is noisy on a
# shared machine: median and range); the first start also idles for the RSS.
declare -A LIVE LIVE_RANGE RSS HWM THREADS RC STOPMS READY LOGLINES LOGRATE
median() { printf '%s\n' "$@" | sort -n | awk '{v[NR]=$1} END{printf "%.0f", NR%2 ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2}'; }
i=0
for s in "${SERVICES[@]}"; do
    port=$((ALONE_BASE + i))
    i=$((i + 1))
    lives=()
    RC[$s]=0
    for run in $(seq "$STARTS"); do
        dir="$WORK/$s-$run"
        mkdir -p "$dir/mail"
        closed="http://127.0.0.1:$CLOSED_PORT"
        vars=(ECOM_BIND_ADDR="127.0.0.1:$port" RUST_LOG=warn ECOM_JWKS_URL="$closed/.well-known/jwks.json")
        case $s in
            api-gateway) vars+=(ECOM_AUTH_URL="$closed" ECOM_PRODUCT_URL="$closed" ECOM_ORDER_URL="$closed" ECOM_INVENTORY_URL="$closed") ;;
            auth-service) vars+=(DATABASE_URL="sqlite://$dir/auth.db" ECOM_JWT_SIGNING_KEY_FILE="$dir/key.pem" ECOM_JWT_GENERATE_KEY=true
                ECOM_SERVICE_CLIENT_SECRET="$SERVICE_SECRET") ;;
            product-service) vars+=(DATABASE_URL="sqlite://$dir/products.db") ;;
            order-service) vars+=(DATABASE_URL="sqlite://$dir/orders.db" ECOM_KAFKA_BROKERS="127.0.0.1:$CLOSED_PORT"
                ECOM_PRODUCT_URL="$closed" ECOM_INVENTORY_URL="$closed" ECOM_AUTH_URL="$closed"
                ECOM_SERVICE_CLIENT_SECRET="$SERVICE_SECRET") ;;
            inventory-service) vars+=(DATABASE_URL="sqlite://$dir/inventory.db") ;;
            notification-service) vars+=(DATABASE_URL="sqlite://$dir/notifications.db"
                ECOM_KAFKA_BROKERS="127.0.0.1:$CLOSED_PORT" ECOM_MAIL_DIR="$dir/mail") ;;
        esac
        log "$s alone on 127.0.0.1:$port (start $run/$STARTS)"
        logfile="$WORK/$s-$run.log"
        t0="$(now_us)"
        env -i PATH="$PATH" HOME="$dir" "${vars[@]}" "$BIN/$s" >"$logfile" 2>&1 &
        CURRENT_PID=$!
        live=""
        for _ in $(seq 3000); do
            kill -0 "$CURRENT_PID" 2>/dev/null || die "$s exited: $(tail -5 "$logfile")"
            if [[ "$(curl -s -o /dev/null --max-time 2 -w '%{http_code}' "http://127.0.0.1:$port/health/live" || true)" == 200 ]]; then
                live="$(ms_since "$t0")"
                break
            fi
            sleep 0.005
        done
        [[ -n "$live" ]] || die "$s not live after 30 s"
        lives+=("$live")
        if ((run == 1)); then
            lines_at_live="$(wc -l <"$logfile")"
            sleep "$IDLE_SECS"
            LOGRATE[$s]="$(awk -v a="$lines_at_live" -v b="$(wc -l <"$logfile")" -v t="$IDLE_SECS" 'BEGIN{printf "%.0f", (b-a)/t}')"
            READY[$s]="$(curl -s -o /dev/null --max-time 5 -w '%{http_code}' "http://127.0.0.1:$port/health/ready" || true)"
            RSS[$s]="$(status_kib "$CURRENT_PID" VmRSS)"
            HWM[$s]="$(status_kib "$CURRENT_PID" VmHWM)"
            THREADS[$s]="$(status_kib "$CURRENT_PID" Threads)"
        fi
        stop "$CURRENT_PID"
        CURRENT_PID=""
        ((STOP_RC == 0)) || RC[$s]=$STOP_RC
        if ((run == 1)); then
            STOPMS[$s]=$STOP_MS
            LOGLINES[$s]="$(wc -l <"$logfile")"
            cp "$logfile" "$WORK/$s.log"
        fi
    done
    LIVE[$s]="$(median "${lives[@]}")"
    LIVE_RANGE[$s]="$(printf '%s\n' "${lives[@]}" | sort -n | awk 'NR==1{lo=$1} {hi=$1} END{print lo "–" hi}')"
done

# ---------------------------------------------------------------- (c) auth-service after logins
# glibc's default malloc, no tunables: what a bare binary gets.
dir="$WORK/auth-logins"
mkdir -p "$dir"
log "auth-service with 10 + $LOGINS logins"
env -i PATH="$PATH" HOME="$dir" ECOM_BIND_ADDR="127.0.0.1:$((ALONE_BASE + 1))" RUST_LOG=warn \
    DATABASE_URL="sqlite://$dir/auth.db" ECOM_JWT_SIGNING_KEY_FILE="$dir/key.pem" ECOM_JWT_GENERATE_KEY=true \
    ECOM_ADMIN_EMAIL=bench@example.com ECOM_ADMIN_PASSWORD=bench-password-1 \
    ECOM_SERVICE_CLIENT_SECRET="$SERVICE_SECRET" \
    "$BIN/auth-service" >"$WORK/auth-logins.log" 2>&1 &
CURRENT_PID=$!
for _ in $(seq 3000); do
    [[ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$((ALONE_BASE + 1))/health/ready" || true)" == 200 ]] && break
    kill -0 "$CURRENT_PID" 2>/dev/null || die "auth-service exited"
    sleep 0.01
done
login_burst "$CURRENT_PID" $((ALONE_BASE + 1)) bench@example.com bench-password-1 alone
stop "$CURRENT_PID"
LOGIN_STATS[alone,rc]=$STOP_RC
CURRENT_PID=""

# ---------------------------------------------------------------- report
echo "## Footprint — $(date -u '+%Y-%m-%d %H:%M UTC')"
echo
echo "- commit: $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')$(git -C "$ROOT" diff --quiet 2>/dev/null || echo ' (work tree has changes)'); binaries built $(date -u -r "$BIN/ecom" '+%Y-%m-%d %H:%M UTC')"
echo "- machine: $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')), $(awk '/MemTotal/{printf "%.1f GiB", $2/1048576}' /proc/meminfo) memory; load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "- $(rustc -V 2>/dev/null | cut -d' ' -f1-2); release profile; idle = ${IDLE_SECS} s after ready/live, no traffic"
echo
echo "### ecom dev (six services, one process, SQLite + in-process bus + mail files)"
echo
echo "| start | exec → banner ms | banner says ms | exec → all six /health/ready 200 ms | idle RSS MiB | peak RSS MiB | threads | SIGTERM → exit ms | exit code |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|"
for kind in cold warm; do
    echo "| $kind | ${DEV_BANNER[$kind]} | ${DEV_SELF[$kind]} | ${DEV_READY[$kind]} | $(mib "${DEV_RSS[$kind]}") | $(mib "${DEV_HWM[$kind]}") | ${DEV_THREADS[$kind]} | ${DEV_STOP[$kind]} | ${DEV_RC[$kind]} |"
done
echo
echo "### Each service alone (fresh SQLite, RUST_LOG=warn; RSS, threads, stop time and logs from the first start, exit code the worst of all starts)"
echo
echo "| binary | size MiB | exec → /health/live 200 ms, median (range of $STARTS) | /health/ready | idle RSS MiB | peak RSS MiB | threads | SIGTERM → exit ms | exit code | log lines (WARN+) | of which per idle second |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
for s in "${SERVICES[@]}"; do
    size="$(stat -c %s "$BIN/$s")"
    echo "| $s | $(awk -v b="$size" 'BEGIN{printf "%.1f", b/1048576}') | ${LIVE[$s]} (${LIVE_RANGE[$s]}) | ${READY[$s]} | $(mib "${RSS[$s]}") | $(mib "${HWM[$s]}") | ${THREADS[$s]} | ${STOPMS[$s]} | ${RC[$s]} | ${LOGLINES[$s]} | ${LOGRATE[$s]} |"
done
size="$(stat -c %s "$BIN/ecom")"
echo "| ecom | $(awk -v b="$size" 'BEGIN{printf "%.1f", b/1048576}') | — | — | — | — | — | — | — | — | — |"
sum=0
for s in "${SERVICES[@]}"; do sum=$((sum + RSS[$s])); done
echo
echo "Sum of the six idle RSS: $(mib "$sum") MiB (ecom dev cold: $(mib "${DEV_RSS[cold]}") MiB)."
echo
echo "### auth-service RSS after logins (glibc malloc, no tunables; argon2id m = 19 MiB, t = 2)"
echo
echo "| process | ready MiB | after 10 sequential logins MiB | after $LOGINS concurrent MiB | ${IDLE_SECS} s later MiB | peak MiB | concurrent logins answered 200 | their latency p50 / p99 / max ms | sequential login ms (mean) |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|"
for key in alone dev; do
    label="auth-service alone"
    [[ $key == dev ]] && label="ecom dev, warm (all six)"
    echo "| $label | $(mib "${LOGIN_RSS[$key,start]}") | $(mib "${LOGIN_RSS[$key,seq]}") | $(mib "${LOGIN_RSS[$key,conc]}") | $(mib "${LOGIN_RSS[$key,idle]}") | $(mib "${LOGIN_RSS[$key,peak]}") | ${LOGIN_STATS[$key,ok]} of $LOGINS | ${LOGIN_STATS[$key,lat]} | ${LOGIN_STATS[$key,seq]} |"
done
echo
for s in "${SERVICES[@]}"; do
    if [[ "${LOGLINES[$s]}" -gt 0 ]]; then
        echo
        echo "$s log, distinct messages (count, level, message):"
        echo
        echo '```'
        if command -v jq >/dev/null; then
            jq -r '"\(.level) \(.message)"' "$WORK/$s.log" 2>/dev/null | sed -E 's/[0-9]+ms/Nms/g' | sort | uniq -c | sort -rn | head -6 | cut -c1-200
        else
            head -5 "$WORK/$s.log" | cut -c1-300
        fi
        echo '```'
    fi
done
