#!/usr/bin/env bash
# scripts/stack.sh — the backend's real test dependencies, run natively (no
# Docker) on 127.0.0.1.
#
#   bash scripts/stack.sh up [COMPONENT...]        install what is missing, start, wait until ready
#   bash scripts/stack.sh down [--purge] [COMPONENT...]
#                                                  stop what this script started (data kept;
#                                                  --purge also deletes run/ data)
#   bash scripts/stack.sh status [COMPONENT...]    component, pid, port, health, log; exit 1 if any is down
#   bash scripts/stack.sh env                      `export` lines for the Rust tests: eval "$(bash scripts/stack.sh env)"
#   bash scripts/stack.sh selftest                 end-to-end checks (OTLP span -> Jaeger query, SMTP -> Mailpit, ...)
#
# COMPONENTs: mariadb kafka ferretdb mailpit jaeger, and their TLS/credential variants
# mariadb-tls kafka-tls ferretdb-tls mailpit-tls mailpit-smtps (default: all; the
# variants are described in scripts/stack/tls.sh).
#
# Components and what they are built from (nothing is downloaded outside the
# package registries):
#   mariadb   MariaDB 10.11, Debian package mariadb-server (apt-get)
#   kafka     Apache Kafka 4.4.0 (fallback 4.1.2), KRaft single node; jars from Maven Central
#             via scripts/stack/kafka/pom.xml, run with the machine's java (17+)
#   ferretdb  FerretDB v1.24.2 (MongoDB wire protocol) on its SQLite handler; go build
#   mailpit   Mailpit v1.33.1, SMTP sink + HTTP API; go install
#   jaeger    Jaeger v2.13.0 (Go module github.com/jaegertracing/jaeger v1.76.0, cmd/jaeger),
#             OTLP in, in-memory storage, query API; go build, config scripts/stack/jaeger.yaml
#   Known gaps: Mailpit's and Jaeger's browser UIs are not built (their JS bundles are
#   not in the Go modules); their HTTP APIs, which the tests use, are complete.
#
# First `up` on a fresh machine is dominated by the Go builds (Jaeger ~12 CPU-minutes);
# later `up`s reuse everything under $ECOM_STACK_HOME and only start processes.
#
# Where things live:
#   $ECOM_STACK_HOME (default ~/.cache/ecom-stack)
#     bin/               built binaries, versioned (ferretdb-v1.24.2, ...)
#     kafka/<ver>/libs/  Kafka broker + tools classpath
#     src/               throwaway Go modules / patched sources used to build
#     run/<component>/   runtime state: data, pid, log  <- LOOK HERE: run/<component>/log
#                        (install output: run/<component>/install.log)
#   Go's own module/build caches (go env GOMODCACHE GOCACHE) and Maven's ~/.m2
#   are reused as they are.
#
# Environment overrides (all optional):
#   ECOM_STACK_HOME              install + state root         (~/.cache/ecom-stack)
#   ECOM_MYSQL_PORT              MariaDB                      (3306)
#   ECOM_KAFKA_PORT              Kafka PLAINTEXT listener     (9092)
#   ECOM_KAFKA_CONTROLLER_PORT   Kafka KRaft controller       (9093)
#   ECOM_MONGO_PORT              FerretDB (MongoDB protocol)  (27017)
#   ECOM_FERRETDB_DEBUG_PORT     FerretDB debug/metrics HTTP  (28088; its default 8088 is too close
#                                                             to the services' 8080-8085)
#   ECOM_SMTP_PORT               Mailpit SMTP                 (1025)
#   ECOM_MAILPIT_HTTP_PORT       Mailpit HTTP API/UI          (8025)
#   ECOM_OTLP_HTTP_PORT          Jaeger OTLP/HTTP receiver    (4318)
#   ECOM_OTLP_GRPC_PORT          Jaeger OTLP/gRPC receiver    (4317)
#   ECOM_JAEGER_UI_PORT          Jaeger query HTTP API/UI     (16686)
#   ECOM_JAEGER_QUERY_GRPC_PORT  Jaeger query gRPC            (16685)
#   ECOM_JAEGER_HEALTH_PORT      Jaeger health check          (13133)
#   ECOM_JAEGER_METRICS_PORT     Jaeger own Prometheus metrics (8888)
#   ECOM_KAFKA_VERSION           Kafka version to fetch       (4.4.0; falls back to ECOM_KAFKA_FALLBACK_VERSION=4.1.2)
#   ECOM_FERRETDB_VERSION / ECOM_MAILPIT_VERSION / ECOM_JAEGER_VERSION   (v1.24.2 / v1.33.1 / v1.76.0)
#   ECOM_STACK_READY_TIMEOUT     seconds to wait for each component's readiness (120)
#   TLS variants (scripts/stack/tls.sh): ECOM_MYSQL_TLS_PORT (3307), ECOM_KAFKA_TLS_PORT (9094,
#   SASL_SSL), ECOM_KAFKA_TLS_INTERNAL_PORT (9096), ECOM_KAFKA_TLS_CONTROLLER_PORT (9095),
#   ECOM_MONGO_TLS_PORT (27018), ECOM_FERRETDB_TLS_DEBUG_PORT (28089), ECOM_SMTP_STARTTLS_PORT
#   (1587), ECOM_MAILPIT_TLS_HTTP_PORT (8026), ECOM_SMTPS_PORT (1465), ECOM_MAILPIT_SMTPS_HTTP_PORT (8027)
set -euo pipefail

# ---------------------------------------------------------------- settings --
SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
CONF_DIR="$SCRIPT_DIR/stack"

STACK_HOME="${ECOM_STACK_HOME:-$HOME/.cache/ecom-stack}"
BIN_DIR="$STACK_HOME/bin"
SRC_DIR="$STACK_HOME/src"
RUN_DIR="$STACK_HOME/run"

HOST=127.0.0.1
MYSQL_PORT="${ECOM_MYSQL_PORT:-3306}"
KAFKA_PORT="${ECOM_KAFKA_PORT:-9092}"
KAFKA_CONTROLLER_PORT="${ECOM_KAFKA_CONTROLLER_PORT:-9093}"
MONGO_PORT="${ECOM_MONGO_PORT:-27017}"
FERRETDB_DEBUG_PORT="${ECOM_FERRETDB_DEBUG_PORT:-28088}"
SMTP_PORT="${ECOM_SMTP_PORT:-1025}"
MAILPIT_HTTP_PORT="${ECOM_MAILPIT_HTTP_PORT:-8025}"
OTLP_HTTP_PORT="${ECOM_OTLP_HTTP_PORT:-4318}"
OTLP_GRPC_PORT="${ECOM_OTLP_GRPC_PORT:-4317}"
JAEGER_UI_PORT="${ECOM_JAEGER_UI_PORT:-16686}"
JAEGER_QUERY_GRPC_PORT="${ECOM_JAEGER_QUERY_GRPC_PORT:-16685}"
JAEGER_HEALTH_PORT="${ECOM_JAEGER_HEALTH_PORT:-13133}"
JAEGER_METRICS_PORT="${ECOM_JAEGER_METRICS_PORT:-8888}"

KAFKA_VERSION="${ECOM_KAFKA_VERSION:-4.4.0}"
KAFKA_FALLBACK_VERSION="${ECOM_KAFKA_FALLBACK_VERSION:-4.1.2}"
FERRETDB_VERSION="${ECOM_FERRETDB_VERSION:-v1.24.2}"
MAILPIT_VERSION="${ECOM_MAILPIT_VERSION:-v1.33.1}"
JAEGER_VERSION="${ECOM_JAEGER_VERSION:-v1.76.0}"

READY_TIMEOUT="${ECOM_STACK_READY_TIMEOUT:-120}"

# Each TLS variant runs from its plain component's installation: listed after it.
ALL_COMPONENTS=(mariadb kafka ferretdb mailpit jaeger mariadb-tls kafka-tls ferretdb-tls mailpit-tls mailpit-smtps)

# MariaDB credentials/databases the Rust tests expect.
MYSQL_USER=ecom
MYSQL_PASSWORD=ecom
MYSQL_DATABASES=(ecom_auth ecom_inventory ecom_orders ecom_notifications)
KAFKA_TOPICS=(orders.v1 orders.v1.dlq)

# Go builds: -trimpath keeps build-cache keys independent of paths;
# -buildvcs=false because the sources we build are not git checkouts. Any
# other GOFLAGS the machine sets are kept.
for _f in -trimpath -buildvcs=false; do
  case " ${GOFLAGS:-} " in *" $_f "*) ;; *) GOFLAGS="${GOFLAGS:+$GOFLAGS }$_f" ;; esac
done
export GOFLAGS; unset _f

# The TLS/credential variants (functions only; they use the helpers below at run time).
# shellcheck source=stack/tls.sh
source "$CONF_DIR/tls.sh"

# ----------------------------------------------------------------- helpers --
log()  { printf '[stack] %s\n' "$*" >&2; }
warn() { printf '[stack] WARNING: %s\n' "$*" >&2; }
die()  { printf '[stack] ERROR: %s\n' "$*" >&2; exit 1; }

run_dir()  { printf '%s/%s' "$RUN_DIR" "$1"; }
log_file() { printf '%s/%s/log' "$RUN_DIR" "$1"; }
pid_file() { printf '%s/%s/pid' "$RUN_DIR" "$1"; }

# Print the last lines of a file to stderr (used on every failure).
show_tail() { # file [lines]
  local f="$1" n="${2:-40}"
  if [[ -s "$f" ]]; then
    printf -- '----- last %s lines of %s -----\n' "$n" "$f" >&2
    tail -n "$n" "$f" >&2 || true
    printf -- '----- end of %s -----\n' "$f" >&2
  else
    printf '(%s is empty or missing)\n' "$f" >&2
  fi
}

# True if something accepts TCP connections on 127.0.0.1:port (bash /dev/tcp,
# no extra tools). Loopback refuses instantly, the timeout is a safety net.
port_open() { timeout 2 bash -c "exec 3<>/dev/tcp/$HOST/$1" 2>/dev/null; }

# Substring that must appear in /proc/<pid>/cmdline for a pid file to be
# trusted: protects against killing an unrelated process that reused the pid.
proc_marker() {
  case "$1" in
    mariadb*)  echo mariadbd ;;
    kafka*)    echo kafka.Kafka ;;
    ferretdb*) echo "ferretdb-" ;;
    mailpit*)  echo "mailpit-" ;;
    jaeger)    echo "jaeger-" ;;
  esac
}

# Pid from the pid file if that process is alive and is really ours, else "".
component_pid() {
  local c="$1" pf pid
  pf="$(pid_file "$c")"
  [[ -r "$pf" ]] || return 0
  pid="$(tr -dc '0-9' <"$pf")"
  [[ -n "$pid" && -r "/proc/$pid/cmdline" ]] || return 0
  if tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "$(proc_marker "$c")"; then
    echo "$pid"
  fi
}

# Start a command detached from this script: own session (setsid), SIGHUP
# ignored (nohup), stdin from /dev/null, stdout+stderr to run/<c>/log. The
# inner bash writes its own pid and then execs the program, so the pid file
# holds the real server pid whatever setsid does about forking.
start_detached() { # component command...
  local c="$1"; shift
  local lf pf
  lf="$(log_file "$c")"; pf="$(pid_file "$c")"
  [[ -f "$lf" ]] && mv -f "$lf" "$lf.1"   # keep the previous run's log once
  {
    printf '=== %s started by stack.sh at %s\n=== %s\n' "$c" "$(date -Is)" "$*"
  } >"$lf"
  # shellcheck disable=SC2016  # $$/$0/$@ are for the inner bash
  setsid nohup bash -c 'echo $$ >"$0"; exec "$@"' "$pf" "$@" >>"$lf" 2>&1 </dev/null 9>&- &
  # Wait (briefly) for the pid file so later checks see it.
  local i
  for i in $(seq 1 50); do [[ -s "$pf" ]] && break; sleep 0.1; done
}

# Poll `check_<c>` until it passes, the process dies, or the deadline passes.
wait_ready() { # component timeout_seconds
  local c="$1" timeout="$2" deadline=$((SECONDS + $2)) missing=0
  while true; do
    if "check_$c" >/dev/null 2>&1; then return 0; fi
    # Gone on two checks in a row: one miss can be a pid file not yet written on a
    # loaded machine, or /proc/<pid>/cmdline read in the middle of the exec.
    if [[ -z "$(component_pid "$c")" ]]; then
      missing=$((missing + 1))
      if ((missing >= 2)); then
        warn "$c exited during startup"
        return 1
      fi
    else
      missing=0
    fi
    if ((SECONDS >= deadline)); then
      warn "$c not ready after ${timeout}s"
      return 1
    fi
    sleep 0.5
  done
}

# `ready_<c>` where a component defines one (it creates topics, or checks more than
# `check_<c>`); else `check_<c>` passing within READY_TIMEOUT.
component_ready() { # component
  if declare -F "ready_$1" >/dev/null; then "ready_$1"; else wait_ready "$1" "$READY_TIMEOUT"; fi
}

# How long `down` waits for a component: `stop_timeout_<c>` where one is defined
# (a flush to disk takes longer), else 15 s.
stop_timeout() { # component
  if declare -F "stop_timeout_$1" >/dev/null; then "stop_timeout_$1"; else echo 15; fi
}

# Stop one component started by this script: TERM the process (and its
# process group, it is a session leader), wait up to a deadline, then KILL.
stop_component() { # component deadline_seconds
  local c="$1" deadline=$((SECONDS + $2)) pid
  pid="$(component_pid "$c")"
  if [[ -z "$pid" ]]; then
    rm -f "$(pid_file "$c")"
    log "$c: not running"
    return 0
  fi
  log "$c: stopping pid $pid (TERM)"
  kill -TERM "$pid" 2>/dev/null || true
  while kill -0 "$pid" 2>/dev/null; do
    if ((SECONDS >= deadline)); then
      warn "$c: pid $pid still alive after ${2}s, sending KILL"
      kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
      break
    fi
    sleep 0.2
  done
  rm -f "$(pid_file "$c")"
  log "$c: stopped"
}

# Fails (with a clear message) if a port this component needs is already
# taken by something that is not this component.
ensure_ports_free() { # component port...
  local c="$1"; shift
  local p
  for p in "$@"; do
    if port_open "$p"; then
      warn "$c: port $HOST:$p is already in use by another process (not started by stack.sh);"
      warn "  stop it or override the port (see the top of scripts/stack.sh)"
      return 1
    fi
  done
}

# go install/build need a Go toolchain; the machine image has one.
require_go() {
  command -v go >/dev/null 2>&1 || die "go not found on PATH (needed to build ferretdb/mailpit/jaeger)"
}

# Directory of a module in Go's module cache (downloads it if needed).
go_mod_dir() { # module@version
  go mod download -json "$1" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p'
}

# ----------------------------------------------------------------- mariadb --
stop_timeout_mariadb() { echo 30; }   # seconds; InnoDB flushes dirty pages on shutdown

mariadbd_bin() {
  command -v mariadbd 2>/dev/null || { [[ -x /usr/sbin/mariadbd ]] && echo /usr/sbin/mariadbd; } || true
}
installed_mariadb() { [[ -n "$(mariadbd_bin)" ]] && command -v mariadb >/dev/null && command -v mariadb-install-db >/dev/null; }

install_mariadb() {
  log "mariadb: installing Debian package mariadb-server (apt-get)"
  export DEBIAN_FRONTEND=noninteractive
  # The package's maintainer scripts would start the system service on
  # 3306; we run our own mariadbd instead. policy-rc.d (exit 101) tells
  # invoke-rc.d not to start anything; only add/remove it if absent.
  # (This runs in its own background subshell, so the EXIT trap is local.)
  local policy=/usr/sbin/policy-rc.d own_policy=0
  if [[ ! -e "$policy" ]]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy"; chmod +x "$policy"; own_policy=1
    trap 'rm -f /usr/sbin/policy-rc.d' EXIT
  fi
  # `apt-get update` only if the package lists do not know the package yet.
  if ! apt-cache policy mariadb-server 2>/dev/null | grep -q 'Candidate: [0-9]'; then
    apt-get update
  fi
  apt-get install -y --no-install-recommends mariadb-server mariadb-client
  if ((own_policy)); then rm -f "$policy"; trap - EXIT; fi
  installed_mariadb
}

mariadb_socket() { printf '%s/mysqld.sock' "$(run_dir mariadb)"; }

# root over the unix socket (unix_socket auth as OS user root).
mariadb_root() { mariadb --no-defaults --socket="$(mariadb_socket)" -uroot "$@"; }

check_mariadb() {
  mariadb --no-defaults --protocol=TCP -h "$HOST" -P "$MYSQL_PORT" \
    -u"$MYSQL_USER" -p"$MYSQL_PASSWORD" --connect-timeout=2 -N -e 'SELECT 1' 2>/dev/null | grep -qx 1
}

# Initialise a component's datadir once. The marker is written only after
# success, so a half-initialised datadir is redone instead of half-used.
mariadb_init_datadir() { # component
  local c="$1" d data; d="$(run_dir "$1")"; data="$d/data"
  if [[ ! -f "$data/.ecom-initialized" ]]; then
    log "$c: initialising datadir $data"
    rm -rf "$data"; mkdir -p "$data" "$d/tmp"
    if ! mariadb-install-db --no-defaults --datadir="$data" --user="$(id -un)" \
         --auth-root-authentication-method=socket --skip-test-db \
         --skip-name-resolve >"$d/install-db.log" 2>&1; then
      show_tail "$d/install-db.log"; return 1
    fi
    touch "$data/.ecom-initialized"
  fi
  mkdir -p "$d/tmp"
}

start_mariadb() {
  local d data; d="$(run_dir mariadb)"; data="$d/data"
  ensure_ports_free mariadb "$MYSQL_PORT" || return 1
  mariadb_init_datadir mariadb || return 1
  # --no-defaults: ignore /etc/mysql/*.cnf (the system service's socket,
  # datadir, ...). Small buffers: this is a test database on a 2-core box;
  # durability relaxed (flush once per second) because test speed matters
  # more than surviving a power cut.
  start_detached mariadb "$(mariadbd_bin)" --no-defaults \
    --user="$(id -un)" \
    --datadir="$data" --tmpdir="$d/tmp" \
    --socket="$(mariadb_socket)" --pid-file="$d/mariadbd.pid" \
    --bind-address="$HOST" --port="$MYSQL_PORT" \
    --character-set-server=utf8mb4 --collation-server=utf8mb4_unicode_ci \
    --skip-name-resolve \
    --max-connections=500 \
    --innodb-buffer-pool-size=128M --innodb-log-file-size=64M \
    --innodb-flush-log-at-trx-commit=2 --innodb-doublewrite=0 \
    --key-buffer-size=8M --performance-schema=OFF --skip-log-bin \
    --max-allowed-packet=64M
}

# SQL that drops the anonymous accounts and makes $MYSQL_USER, from every host, with
# `password`, any account options ("REQUIRE SSL") and global privileges (tests create
# a database per test). Idempotent.
mariadb_users_sql() { # password [account-options]
  local h options="${2:+ $2}"
  # 10.11's install-db has no --skip-auth-anonymous-user: drop anonymous
  # accounts here (they can shadow real users on some host patterns).
  printf '%s' "DELETE FROM mysql.global_priv WHERE User='';"
  for h in '%' localhost 127.0.0.1; do
    printf '%s' "CREATE USER IF NOT EXISTS '$MYSQL_USER'@'$h' IDENTIFIED BY '$1'$options;" \
      "ALTER USER '$MYSQL_USER'@'$h' IDENTIFIED BY '$1'$options;" \
      "GRANT ALL PRIVILEGES ON *.* TO '$MYSQL_USER'@'$h' WITH GRANT OPTION;"
  done
}

# Idempotent: users, grants and databases the tests expect. Runs on every
# `up` (cheap) so a dropped database or user comes back.
bootstrap_mariadb() {
  local sql db
  sql="$(mariadb_users_sql "$MYSQL_PASSWORD")"
  # install-db adds a proxy grant for root@<hostname>, which only produces a
  # warning per connection under --skip-name-resolve.
  sql+="DELETE FROM mysql.proxies_priv WHERE Host NOT IN ('localhost', '127.0.0.1', '%');"
  for db in "${MYSQL_DATABASES[@]}"; do
    sql+="CREATE DATABASE IF NOT EXISTS \`$db\` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;"
  done
  sql+="FLUSH PRIVILEGES;"
  mariadb_root -e "$sql"
}

# Wait for the socket (root), create users/dbs, then require the real check:
# a query as ecom over TCP.
ready_mariadb() {
  local deadline=$((SECONDS + READY_TIMEOUT))
  until mariadb-admin --no-defaults --socket="$(mariadb_socket)" -uroot ping >/dev/null 2>&1; do
    [[ -n "$(component_pid mariadb)" ]] || { warn "mariadb exited during startup"; return 1; }
    ((SECONDS < deadline)) || { warn "mariadb not answering ping after ${READY_TIMEOUT}s"; return 1; }
    sleep 0.3
  done
  bootstrap_mariadb || return 1
  wait_ready mariadb 20
}

ports_mariadb() { echo "$MYSQL_PORT"; }
version_mariadb() { installed_mariadb && "$(mariadbd_bin)" --version 2>/dev/null | awk '{print $3}' || echo "not installed"; }

# ------------------------------------------------------------------- kafka --
stop_timeout_kafka() { echo 45; }   # seconds; controlled shutdown + log flush

kafka_libs_for() { printf '%s/kafka/%s/libs' "$STACK_HOME" "$1"; }
# The version whose classpath is complete: preferred first, then fallback.
kafka_installed_version() {
  local v
  for v in "$KAFKA_VERSION" "$KAFKA_FALLBACK_VERSION"; do
    [[ -f "$(kafka_libs_for "$v")/.complete" ]] && { echo "$v"; return 0; }
  done
  return 0
}
installed_kafka() { [[ -n "$(kafka_installed_version)" ]]; }

# Kafka has no single runnable artifact on Maven Central; resolve the broker
# (kafka_2.13), the CLI tools and a log4j2 binding into one libs/ directory.
install_kafka() {
  command -v java >/dev/null || die "java not found (Kafka needs Java 17+)"
  command -v mvn >/dev/null || die "mvn not found (needed to fetch Kafka jars from Maven Central)"
  local v libs
  for v in "$KAFKA_VERSION" "$KAFKA_FALLBACK_VERSION"; do
    libs="$(kafka_libs_for "$v")"
    log "kafka: resolving org.apache.kafka:kafka_2.13:$v from Maven Central"
    rm -rf "$libs"; mkdir -p "$libs"
    if mvn -B -q -f "$CONF_DIR/kafka/pom.xml" dependency:copy-dependencies \
         -Dkafka.version="$v" -DoutputDirectory="$libs" -DincludeScope=runtime; then
      touch "$libs/.complete"
      log "kafka: $v ready in $libs"
      return 0
    fi
    warn "kafka: could not resolve $v, trying fallback"
  done
  return 1
}

kafka_dir() { printf '%s/kafka/%s' "$STACK_HOME" "$(kafka_installed_version)"; }

# JVM class-data-sharing (AppCDS) for Kafka's JVMs: on a busy 2-core machine
# JVM start-up dominates (a TopicCommand run costs ~2 CPU-s cold, ~1 with a
# shared archive). The first run of a main class records an archive at JVM
# exit (-XX:ArchiveClassesAtExit), later runs map it. A stale or broken
# archive is ignored by the JVM (it then just starts slower).
cds_flags() { # archive-path
  if [[ -s "$1" ]]; then
    printf '%s\n' "-XX:SharedArchiveFile=$1" -Xshare:auto
  else
    printf '%s\n' "-XX:ArchiveClassesAtExit=$1"
  fi
}

kafka_java() { # main-class args... (CLI tools: quick-start JVM, quiet logs, bounded time)
  local libs; libs="$(kafka_libs_for "$(kafka_installed_version)")"
  timeout 60 java -Xmx256m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -Xlog:disable -Xlog:all=off \
    "${KAFKA_JAVA_EXTRA[@]}" \
    -Dlog4j2.configurationFile="$CONF_DIR/kafka/tools-log4j2.properties" \
    -cp "$libs/*" "$@"
}
# The topic tool against the broker listening on port (plaintext).
kafka_topics_on() { # port args...
  local -a KAFKA_JAVA_EXTRA
  mapfile -t KAFKA_JAVA_EXTRA < <(cds_flags "$(kafka_dir)/topic-command.jsa")
  kafka_java org.apache.kafka.tools.TopicCommand --bootstrap-server "$HOST:$1" "${@:2}"
}
kafka_topics() { kafka_topics_on "$KAFKA_PORT" "$@"; }
KAFKA_JAVA_EXTRA=()

check_kafka() {
  port_open "$KAFKA_PORT" || return 1
  # Real broker round trip: a metadata request listing topics.
  kafka_topics --list >/dev/null 2>&1
}

# Formats a broker's KRaft storage in dir/data once (meta.properties marks a formatted
# dir); extra arguments go to the format command.
kafka_format() { # component dir [format-args...]
  local c="$1" d="$2" cid; shift 2
  [[ -f "$d/data/meta.properties" ]] && return 0
  cid="$(kafka_java kafka.tools.StorageTool random-uuid)"
  log "$c: formatting KRaft storage (cluster id $cid)"
  if ! kafka_java kafka.tools.StorageTool format --config "$d/server.properties" \
       --cluster-id "$cid" --ignore-formatted "$@" >"$d/format.log" 2>&1; then
    show_tail "$d/format.log"; return 1
  fi
}

start_kafka() {
  local d v libs
  d="$(run_dir kafka)"; v="$(kafka_installed_version)"; libs="$(kafka_libs_for "$v")"
  ensure_ports_free kafka "$KAFKA_PORT" "$KAFKA_CONTROLLER_PORT" || return 1
  mkdir -p "$d/data"
  sed -e "s|@BROKER_PORT@|$KAFKA_PORT|g" \
      -e "s|@CONTROLLER_PORT@|$KAFKA_CONTROLLER_PORT|g" \
      -e "s|@DATA_DIR@|$d/data|g" \
      "$CONF_DIR/kafka/server.properties.in" >"$d/server.properties"
  kafka_format kafka "$d" || return 1
  echo "$v" >"$d/version"
  local -a cds; mapfile -t cds < <(cds_flags "$(kafka_dir)/broker.jsa")
  # The broker's archive is written when it exits normally (`down`).
  start_detached kafka java -Xms256m -Xmx512m -XX:+UseG1GC -XX:MaxGCPauseMillis=20 \
    "${cds[@]}" -Djava.awt.headless=true \
    -Dlog4j2.configurationFile="$CONF_DIR/kafka/log4j2.properties" \
    -Dkafka.logs.dir="$d" \
    -cp "$libs/*" kafka.Kafka "$d/server.properties"
}

# Ports open -> list topics (the broker answers metadata) -> create missing topics.
kafka_ready() { # component topics-command port...
  local c="$1" topics="$2" deadline=$((SECONDS + READY_TIMEOUT)) existing t port; shift 2
  for port in "$@"; do
    until port_open "$port"; do
      [[ -n "$(component_pid "$c")" ]] || { warn "$c exited during startup"; return 1; }
      ((SECONDS < deadline)) || { warn "$c port $port not open after ${READY_TIMEOUT}s"; return 1; }
      sleep 0.3
    done
  done
  until existing="$("$topics" --list 2>/dev/null)"; do
    [[ -n "$(component_pid "$c")" ]] || { warn "$c exited during startup"; return 1; }
    ((SECONDS < deadline)) || { warn "$c does not answer metadata after ${READY_TIMEOUT}s"; return 1; }
    sleep 1
  done
  for t in "${KAFKA_TOPICS[@]}"; do
    if ! grep -qxF -- "$t" <<<"$existing"; then
      log "$c: creating topic $t (3 partitions)"
      "$topics" --create --if-not-exists --topic "$t" --partitions 3 --replication-factor 1 >/dev/null || return 1
    fi
  done
}

ready_kafka() { kafka_ready kafka kafka_topics "$KAFKA_PORT"; }
ports_kafka() { echo "$KAFKA_PORT,$KAFKA_CONTROLLER_PORT"; }
version_kafka() { local v; v="$(kafka_installed_version)"; echo "${v:-not installed}"; }

# ---------------------------------------------------------------- ferretdb --

ferretdb_bin() { printf '%s/ferretdb-%s' "$BIN_DIR" "$FERRETDB_VERSION"; }
installed_ferretdb() { [[ -x "$(ferretdb_bin)" ]]; }

# Not a plain `go install ...@v1.24.2`: FerretDB's build/version package
# panics at start-up ("Invalid build/version/version.txt file content") when
# built as the main module without the generated version.txt, which is not in
# the module zip. So: copy the module source out of Go's module cache, write
# version.txt, and build cmd/ferretdb from there (same go.sum, same deps).
install_ferretdb() {
  require_go
  local src dir
  log "ferretdb: building github.com/FerretDB/FerretDB/cmd/ferretdb@$FERRETDB_VERSION"
  dir="$(go_mod_dir "github.com/FerretDB/FerretDB@$FERRETDB_VERSION")"
  [[ -d "$dir" ]] || { warn "ferretdb: module download failed"; return 1; }
  src="$SRC_DIR/ferretdb-$FERRETDB_VERSION"
  rm -rf "$src"; mkdir -p "$SRC_DIR" "$BIN_DIR"
  cp -r "$dir" "$src"; chmod -R u+w "$src"
  echo "$FERRETDB_VERSION" >"$src/build/version/version.txt"
  (cd "$src" && go build -o "$(ferretdb_bin).tmp" ./cmd/ferretdb)
  mv -f "$(ferretdb_bin).tmp" "$(ferretdb_bin)"
}

# Minimal MongoDB wire-protocol ping (OP_MSG {ping: 1, $db: "admin"}) with
# python3's standard library, so no mongosh is needed. Without python3 we
# fall back to "TCP port answers". With "tls", over TLS checked against the
# stack's CA for its host name.
mongo_ping() { # [port] [tls]
  local port="${1:-$MONGO_PORT}" tls="${2:-}"
  if ! command -v python3 >/dev/null 2>&1; then port_open "$port"; return; fi
  python3 - "$HOST" "$port" "$tls" "${TLS_DIR:-}/ca.pem" "${TLS_HOST:-}" <<'PY'
import socket, ssl, struct, sys
def cstr(s): return s.encode() + b"\0"
body = b"\x10" + cstr("ping") + struct.pack("<i", 1)
body += b"\x02" + cstr("$db") + struct.pack("<i", 6) + b"admin\0"
doc = struct.pack("<i", len(body) + 5) + body + b"\0"
payload = struct.pack("<I", 0) + b"\0" + doc          # flagBits, section kind 0
msg = struct.pack("<iiii", 16 + len(payload), 1, 0, 2013) + payload
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=3)
if sys.argv[3] == "tls":
    s = ssl.create_default_context(cafile=sys.argv[4]).wrap_socket(s, server_hostname=sys.argv[5])
s.sendall(msg)
def read(n):  # TLS sockets take no MSG_WAITALL
    data = b""
    while len(data) < n:
        chunk = s.recv(n - len(data))
        if not chunk: break
        data += chunk
    return data
hdr = read(16)
length, = struct.unpack("<i", hdr[:4])
rest = read(length - 16)
# {ok: 1.0} as a double (0x01) or int32 (0x10)
ok = b"\x01ok\0" + struct.pack("<d", 1.0) in rest or b"\x10ok\0" + struct.pack("<i", 1) in rest
sys.exit(0 if ok else 1)
PY
}

check_ferretdb() { mongo_ping; }

start_ferretdb() {
  local d; d="$(run_dir ferretdb)"
  ensure_ports_free ferretdb "$MONGO_PORT" "$FERRETDB_DEBUG_PORT" || return 1
  mkdir -p "$d/data" "$d/state"
  # --sqlite-url must be a directory URI ending in "/": one .sqlite file per
  # database goes there.
  start_detached ferretdb "$(ferretdb_bin)" \
    --handler=sqlite --sqlite-url="file:$d/data/" \
    --listen-addr="$HOST:$MONGO_PORT" \
    --debug-addr="$HOST:$FERRETDB_DEBUG_PORT" \
    --state-dir="$d/state" \
    --telemetry=disable \
    --log-level=info
}

ports_ferretdb() { echo "$MONGO_PORT"; }
version_ferretdb() { installed_ferretdb && echo "$FERRETDB_VERSION" || echo "not installed"; }

# ----------------------------------------------------------------- mailpit --

mailpit_bin() { printf '%s/mailpit-%s' "$BIN_DIR" "$MAILPIT_VERSION"; }
installed_mailpit() { [[ -x "$(mailpit_bin)" ]]; }

# The HTTP API (/api/v1/...), which is what the tests use, is complete; the
# browser UI is not: its JS/CSS bundle (server/ui/dist) is built with npm in
# Mailpit's release pipeline and is not in the Go module. Building it here
# was tried: `npm ci` on the module's package-lock.json fails because the
# npm registry reachable here does not serve some of the exact locked
# versions (sass-embedded 1.108.1, rapidoc 12.1.0 -> 404). So / serves a
# page whose /dist/app.js is 404; use the API (or curl) to inspect mail.
# The version is stamped with -ldflags so /api/v1/info reports it.
install_mailpit() {
  require_go
  local tmp="$SRC_DIR/mailpit-gobin.$$"
  log "mailpit: go install github.com/axllent/mailpit@$MAILPIT_VERSION"
  mkdir -p "$tmp" "$BIN_DIR"
  GOBIN="$tmp" go install -ldflags "-X github.com/axllent/mailpit/config.Version=$MAILPIT_VERSION" \
    "github.com/axllent/mailpit@$MAILPIT_VERSION"
  mv -f "$tmp/mailpit" "$(mailpit_bin)"
  rm -rf "$tmp"
}

check_mailpit() { curl -fsS -m 3 -o /dev/null "http://$HOST:$MAILPIT_HTTP_PORT/api/v1/info"; }

start_mailpit() {
  local d; d="$(run_dir mailpit)"
  ensure_ports_free mailpit "$SMTP_PORT" "$MAILPIT_HTTP_PORT" || return 1
  mkdir -p "$d"
  # No SMTP auth required, no TLS; --smtp-auth-accept-any additionally lets a
  # client that does send credentials in (any user/password accepted).
  start_detached mailpit "$(mailpit_bin)" \
    --listen "$HOST:$MAILPIT_HTTP_PORT" \
    --smtp "$HOST:$SMTP_PORT" \
    --smtp-auth-accept-any --smtp-auth-allow-insecure \
    --database "$d/mailpit.db" \
    --max 100000 \
    --disable-version-check
}

ports_mailpit() { echo "$SMTP_PORT,$MAILPIT_HTTP_PORT"; }
version_mailpit() { installed_mailpit && echo "$MAILPIT_VERSION" || echo "not installed"; }

# ------------------------------------------------------------------ jaeger --

jaeger_bin() { printf '%s/jaeger-%s' "$BIN_DIR" "$JAEGER_VERSION"; }
installed_jaeger() { [[ -x "$(jaeger_bin)" ]]; }

# Jaeger's cmd/jaeger cannot be `go install`ed directly (its go.mod has
# replace directives), so: a throwaway module in the cache that records it as
# a tool (`go get -tool`), then `go build` it. Heaviest build of the stack.
install_jaeger() {
  require_go
  local mod="$SRC_DIR/jaeger-tool-$JAEGER_VERSION"
  mkdir -p "$mod" "$BIN_DIR"
  if ! grep -qs 'github.com/jaegertracing/jaeger/cmd/jaeger' "$mod/go.mod"; then
    log "jaeger: go get -tool github.com/jaegertracing/jaeger/cmd/jaeger@$JAEGER_VERSION"
    rm -f "$mod/go.mod" "$mod/go.sum"
    (cd "$mod" && go mod init ecom-stack/jaeger-tool >/dev/null 2>&1 &&
       go get -tool "github.com/jaegertracing/jaeger/cmd/jaeger@$JAEGER_VERSION")
  fi
  # Stamp the v2 release name (module v1.76.0 is Jaeger v2.13.0; the
  # CHANGELOG in the module maps one to the other) so `version` and the
  # start-up log say what runs.
  local v2 moddir
  moddir="$(go_mod_dir "github.com/jaegertracing/jaeger@$JAEGER_VERSION")"
  v2="$(sed -n "s|^${JAEGER_VERSION} / \(v2[0-9.]*\).*|\1|p" "$moddir/CHANGELOG.md" 2>/dev/null | head -n1)"
  log "jaeger: go build ${v2:-$JAEGER_VERSION} (several minutes on 2 cores the first time)"
  (cd "$mod" && go build -ldflags "-X github.com/jaegertracing/jaeger/internal/version.latestVersion=${v2:-$JAEGER_VERSION}" \
     -o "$(jaeger_bin).tmp" github.com/jaegertracing/jaeger/cmd/jaeger)
  mv -f "$(jaeger_bin).tmp" "$(jaeger_bin)"
}

check_jaeger() { curl -fsS -m 3 -o /dev/null "http://$HOST:$JAEGER_UI_PORT/api/services"; }

start_jaeger() {
  local d; d="$(run_dir jaeger)"
  ensure_ports_free jaeger "$OTLP_HTTP_PORT" "$OTLP_GRPC_PORT" "$JAEGER_UI_PORT" \
    "$JAEGER_QUERY_GRPC_PORT" "$JAEGER_HEALTH_PORT" "$JAEGER_METRICS_PORT" || return 1
  mkdir -p "$d"
  # Ports reach scripts/stack/jaeger.yaml through ${env:...}.
  ECOM_OTLP_HTTP_PORT="$OTLP_HTTP_PORT" ECOM_OTLP_GRPC_PORT="$OTLP_GRPC_PORT" \
  ECOM_JAEGER_UI_PORT="$JAEGER_UI_PORT" ECOM_JAEGER_QUERY_GRPC_PORT="$JAEGER_QUERY_GRPC_PORT" \
  ECOM_JAEGER_HEALTH_PORT="$JAEGER_HEALTH_PORT" ECOM_JAEGER_METRICS_PORT="$JAEGER_METRICS_PORT" \
    start_detached jaeger "$(jaeger_bin)" --config "$CONF_DIR/jaeger.yaml"
}

ports_jaeger() { echo "$OTLP_HTTP_PORT,$OTLP_GRPC_PORT,$JAEGER_UI_PORT"; }
version_jaeger() { installed_jaeger && echo "$JAEGER_VERSION (= Jaeger v2 binary)" || echo "not installed"; }

# ---------------------------------------------------------------- commands --
# Validate component names given on the command line.
select_components() {
  local c ok
  if (($# == 0)); then printf '%s\n' "${ALL_COMPONENTS[@]}"; return; fi
  for c in "$@"; do
    ok=0
    for a in "${ALL_COMPONENTS[@]}"; do [[ "$c" == "$a" ]] && ok=1; done
    ((ok)) || die "unknown component '$c' (known: ${ALL_COMPONENTS[*]})"
    echo "$c"
  done
}

# Wait for a background install, saying every minute that it is still going
# (the Jaeger build is silent for many minutes on a fresh machine).
wait_install() { # component pid t0
  local c="$1" pid="$2" t0="$3" next=$((SECONDS + 60))
  while kill -0 "$pid" 2>/dev/null; do
    if ((SECONDS >= next)); then
      log "$c: still installing ($((SECONDS - t0))s so far; see $(run_dir "$c")/install.log)"
      next=$((SECONDS + 60))
    fi
    sleep 1
  done
  wait "$pid"
}

# One `up`/`down` at a time per $ECOM_STACK_HOME (several people may share a
# machine). fd 9 holds the lock; start_detached closes it for the servers.
take_lock() {
  command -v flock >/dev/null 2>&1 || return 0
  exec 9>"$STACK_HOME/.lock"
  if ! flock -n 9; then
    log "another stack.sh up/down is running on $STACK_HOME; waiting for it"
    flock -w 1800 9 || die "timed out waiting for the lock $STACK_HOME/.lock"
  fi
}

# cmd_up's step 3: waits for each of its components that did not fail already; adds
# those never ready to its `failed` (it reads cmd_up's comps, started and t0).
up_await_ready() {
  local c
  for c in "${comps[@]}"; do
    [[ " ${failed[*]} " == *" $c "* ]] && continue
    if component_ready "$c"; then
      log "$c: ready ($((SECONDS - t0))s)${started[$c]:+ [started]}"
    else
      warn "$c: NOT ready — log: $(log_file "$c")"
      show_tail "$(log_file "$c")"
      failed+=("$c")
    fi
  done
}

cmd_up() {
  local -a comps failed=()
  mapfile -t comps < <(select_components "$@")
  local t0=$SECONDS c
  mkdir -p "$BIN_DIR" "$SRC_DIR"
  take_lock
  for c in "${comps[@]}"; do mkdir -p "$(run_dir "$c")"; done

  # 1. Start every missing install at once, in the background: apt, Maven and
  #    three Go builds overlap (downloads vs. compiles). Go's module and build
  #    caches are safe for concurrent use.
  declare -A install_pid=()
  for c in "${comps[@]}"; do
    if [[ -n "$(component_pid "$c")" ]]; then continue; fi   # running: nothing to install
    if ! "installed_$c"; then
      log "$c: not installed, installing in background (output: $(run_dir "$c")/install.log)"
      ( "install_$c" ) >"$(run_dir "$c")/install.log" 2>&1 &
      install_pid[$c]=$!
    fi
  done

  # 2. As each install finishes, start its component (unless already running).
  declare -A started=()
  for c in "${comps[@]}"; do
    if [[ -n "${install_pid[$c]:-}" ]]; then
      if ! wait_install "$c" "${install_pid[$c]}" "$t0"; then
        warn "$c: install failed"; show_tail "$(run_dir "$c")/install.log"
        failed+=("$c"); continue
      fi
      log "$c: installed ($((SECONDS - t0))s)"
    fi
    if [[ -n "$(component_pid "$c")" ]]; then
      log "$c: already running (pid $(component_pid "$c"))"
      continue
    fi
    rm -f "$(pid_file "$c")"
    log "$c: starting"
    if ! "start_$c"; then
      warn "$c: failed to start"
      [[ -s "$(log_file "$c")" ]] && show_tail "$(log_file "$c")"
      failed+=("$c"); continue
    fi
    started[$c]=1
  done

  # 3. Wait for real readiness of everything (already-running ones too: a
  #    healthy one passes at once and is left alone).
  up_await_ready

  if ((${#failed[@]})); then
    warn "up finished in $((SECONDS - t0))s with FAILED components: ${failed[*]}"
    return 1
  fi
  log "up: all ready in $((SECONDS - t0))s (eval \"\$(bash scripts/stack.sh env)\" for the test variables)"
}

cmd_down() {
  local purge=0 a c i
  local -a args=() comps
  for a in "$@"; do
    if [[ "$a" == --purge ]]; then purge=1; else args+=("$a"); fi
  done
  mapfile -t comps < <(select_components "${args[@]+"${args[@]}"}")
  mkdir -p "$STACK_HOME"; take_lock
  # Reverse order of startup.
  for ((i = ${#comps[@]} - 1; i >= 0; i--)); do
    c="${comps[$i]}"
    stop_component "$c" "$(stop_timeout "$c")"
  done
  if ((purge)); then
    for c in "${comps[@]}"; do
      log "$c: purging $(run_dir "$c")"
      rm -rf "$(run_dir "$c")"
    done
  fi
}

cmd_status() {
  local -a comps
  mapfile -t comps < <(select_components "$@")
  local c pid state rc=0
  printf '%-13s %-9s %-8s %-18s %s\n' COMPONENT STATE PID PORTS LOG
  for c in "${comps[@]}"; do
    pid="$(component_pid "$c")"
    if [[ -z "$pid" ]]; then
      state=down; rc=1
    elif "check_$c" >/dev/null 2>&1; then
      state=up
    else
      state=unhealthy; rc=1
    fi
    printf '%-13s %-9s %-8s %-18s %s\n' "$c" "$state" "${pid:--}" "$("ports_$c")" "$(log_file "$c")"
  done
  echo
  printf 'versions: mariadb %s | kafka %s | ferretdb %s | mailpit %s | jaeger %s\n' \
    "$(version_mariadb || true)" "$(version_kafka)" "$(version_ferretdb)" "$(version_mailpit)" "$(version_jaeger)"
  printf 'state root: %s\n' "$STACK_HOME"
  return $rc
}

cmd_env() {
  cat <<EOF
export ECOM_TEST_MYSQL_URL=mysql://$MYSQL_USER:$MYSQL_PASSWORD@$HOST:$MYSQL_PORT
export ECOM_TEST_MONGODB_URL=mongodb://$HOST:$MONGO_PORT
export ECOM_TEST_KAFKA_BROKERS=$HOST:$KAFKA_PORT
export ECOM_TEST_SMTP_URL=smtp://$HOST:$SMTP_PORT
export ECOM_TEST_MAILPIT_URL=http://$HOST:$MAILPIT_HTTP_PORT
export ECOM_TEST_OTLP_ENDPOINT=http://$HOST:$OTLP_HTTP_PORT
export ECOM_TEST_JAEGER_URL=http://$HOST:$JAEGER_UI_PORT
EOF
  tls_env
}

# cmd_selftest's Jaeger check: an OTLP/HTTP JSON span in, the same trace out of the
# query API (reports through cmd_selftest's ok and bad).
selftest_jaeger() {
  local id span now deadline body
  id="$(hex 16)"; span="$(hex 8)"; now="$(date +%s%N)"
  body=$(cat <<JSON
{"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"ecom-stack-selftest"}}]},
 "scopeSpans":[{"scope":{"name":"stack.sh"},"spans":[{"traceId":"$id","spanId":"$span","name":"selftest-span","kind":1,
 "startTimeUnixNano":"$((now - 5000000))","endTimeUnixNano":"$now"}]}]}]}
JSON
)
  if curl -fsS -m 5 -H 'Content-Type: application/json' -d "$body" \
       "http://$HOST:$OTLP_HTTP_PORT/v1/traces" >/dev/null; then
    deadline=$((SECONDS + 15))
    until curl -fsS -m 3 "http://$HOST:$JAEGER_UI_PORT/api/traces/$id" 2>/dev/null | grep -q "$span"; do
      ((SECONDS < deadline)) || break; sleep 0.5
    done
    if ((SECONDS < deadline)) &&
       curl -fsS -m 3 "http://$HOST:$JAEGER_UI_PORT/api/traces?service=ecom-stack-selftest&limit=20" | grep -q "$id"; then
      ok "jaeger: OTLP/HTTP span $id queryable (/api/traces/<id> and ?service=)"
    else bad "jaeger: span $id not found in query API"; fi
  else bad "jaeger: OTLP/HTTP POST /v1/traces"; fi
}

# End-to-end checks through each dependency's real protocol.
cmd_selftest() {
  local fails=0 pass=0 deadline id
  ok()  { printf 'selftest: ok    %s\n' "$*"; pass=$((pass + 1)); }
  bad() { printf 'selftest: FAIL  %s\n' "$*"; fails=$((fails + 1)); }
  hex() { od -An -N"$1" -tx1 /dev/urandom | tr -d ' \n'; }

  # MariaDB: create + drop a database as ecom over TCP.
  id="selftest_$(hex 4)"
  if mariadb --no-defaults --protocol=TCP -h "$HOST" -P "$MYSQL_PORT" -u"$MYSQL_USER" -p"$MYSQL_PASSWORD" \
       -e "CREATE DATABASE $id; DROP DATABASE $id;" 2>/dev/null; then
    ok "mariadb: ecom can create/drop a database over TCP"
  else bad "mariadb: create/drop database as ecom"; fi

  # FerretDB: MongoDB OP_MSG ping.
  if mongo_ping; then ok "ferretdb: OP_MSG ping answered ok:1"; else bad "ferretdb: ping"; fi

  # Kafka: the expected topics exist with 3 partitions.
  local desc
  if desc="$(kafka_topics --describe --topic "${KAFKA_TOPICS[0]}" 2>/dev/null)" &&
     grep -q 'PartitionCount: 3' <<<"$desc"; then
    ok "kafka: ${KAFKA_TOPICS[0]} has 3 partitions"
  else bad "kafka: describe ${KAFKA_TOPICS[0]}"; fi

  # Kafka: produce one record to a fresh, auto-created topic, read it back,
  # delete the topic.
  local topic msg got
  msg="selftest-$(hex 6)"; topic="ecom.stack.selftest.$(hex 4)"
  if printf '%s\n' "$msg" | kafka_java org.apache.kafka.tools.ConsoleProducer \
       --bootstrap-server "$HOST:$KAFKA_PORT" --topic "$topic" >/dev/null 2>&1 &&
     got="$(kafka_java org.apache.kafka.tools.consumer.ConsoleConsumer --bootstrap-server "$HOST:$KAFKA_PORT" \
       --topic "$topic" --from-beginning --max-messages 1 --timeout-ms 20000 2>/dev/null)" &&
     grep -qxF "$msg" <<<"$got"; then
    ok "kafka: produced and consumed a record on auto-created topic $topic"
  else bad "kafka: produce/consume on $topic"; fi
  kafka_topics --delete --if-exists --topic "$topic" >/dev/null 2>&1 || true

  # Mailpit: send over SMTP (curl), find it through the HTTP API.
  id="stack-selftest-$(hex 6)"
  if printf 'From: selftest@example.test\r\nTo: someone@example.test\r\nSubject: %s\r\n\r\nhello\r\n' "$id" |
       curl -fsS -m 10 "smtp://$HOST:$SMTP_PORT" --mail-from selftest@example.test \
         --mail-rcpt someone@example.test -T - >/dev/null 2>&1; then
    deadline=$((SECONDS + 10))
    until curl -fsS -m 3 "http://$HOST:$MAILPIT_HTTP_PORT/api/v1/search?query=subject:$id" 2>/dev/null |
          grep -q "\"Subject\":\"$id\""; do
      ((SECONDS < deadline)) || break; sleep 0.3
    done
    if ((SECONDS < deadline)); then ok "mailpit: SMTP message visible in /api/v1/search"
    else bad "mailpit: sent message not found via API"; fi
  else bad "mailpit: SMTP send"; fi

  selftest_jaeger

  printf '%s passed, %s failed\n' "$pass" "$fails"
  ((fails == 0))
}

usage() {
  sed -n '2,15p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
}

main() {
  local cmd="${1:-}"; shift || true
  case "$cmd" in
    up)       cmd_up "$@" ;;
    down)     cmd_down "$@" ;;
    status)   cmd_status "$@" ;;
    env)      cmd_env ;;
    selftest) cmd_selftest ;;
    -h|--help|help|"") usage ;;
    *) usage >&2; exit 2 ;;
  esac
}

main "$@"
