# Sourced by scripts/check/demo.sh and scripts/check/schemathesis.sh.
#
# ecom_dev_prepare: builds the ecom binary (debug) into $ecom and makes a throwaway
# directory $work; on exit, every `ecom dev` started is stopped and $work removed.
ecom_dev_prepare() {
  echo "building ecom"
  cargo build --quiet --locked -p ecom
  ecom="${CARGO_TARGET_DIR:-target}/debug/ecom"
  work=$(mktemp -d)
  trap 'ecom_dev_stop_all; rm -rf "$work"' EXIT
}

# ecom_dev_start BANNER LOG [ENV...] -- [ARGS...]: runs `$ecom dev --any-ports ARGS` in
# the background under `env ENV...` (-u VAR to unset; VAR=value to set, over the
# defaults: JSON logs at RUST_LOG, warn by default, and no trace export); its stdout (the banner) goes to
# BANNER and its stderr to LOG. Returns once the banner is out, with $gateway set to
# the gateway's URL; prints BANNER and LOG and fails when it does not come within 60 s
# or the process exits. Every process started is in $ecom_pids (ecom_dev_stop_all
# stops them); the last one is $ecom_pid.
ecom_pids=()

ecom_dev_start() {
  local banner=$1 log=$2
  shift 2
  local -a unset_args=() set_args=()
  while [ "$#" -gt 0 ] && [ "$1" != -- ]; do
    if [ "$1" = -u ]; then
      unset_args+=(-u "$2")
      shift
    else
      set_args+=("$1")
    fi
    shift
  done
  [ "$#" -gt 0 ] && shift
  # The defaults first, so that ENV given by the caller wins over them.
  env "${unset_args[@]}" RUST_LOG="${RUST_LOG:-warn}" ECOM_LOG_FORMAT=json OTEL_EXPORTER_OTLP_ENDPOINT= \
    "${set_args[@]}" "$ecom" dev --any-ports "$@" >"$banner" 2>"$log" &
  ecom_pid=$!
  ecom_pids+=("$ecom_pid")
  gateway=
  for _ in $(seq 600); do
    if grep -q 'Ctrl-C stops it' "$banner"; then
      gateway=$(awk '$1 == "gateway" && $2 ~ /^http:/ { print $2 }' "$banner")
      [ -n "$gateway" ] && return 0
    fi
    kill -0 "$ecom_pid" 2>/dev/null || break
    sleep 0.1
  done
  cat "$banner" "$log" >&2
  return 1
}

# Stops (SIGTERM) every `ecom dev` ecom_dev_start started and waits for it.
ecom_dev_stop_all() {
  local pid
  for pid in "${ecom_pids[@]}"; do
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
}
