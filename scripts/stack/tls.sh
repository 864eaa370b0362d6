# shellcheck shell=bash
# scripts/stack/tls.sh — the TLS/credential variants of the stack's components, sourced
# by scripts/stack.sh. Each runs beside the plain one, on its own ports, from the same
# installed binaries, and presents a server certificate of a throwaway CA made here
# with the openssl CLI:
#
#   mariadb-tls    a second mariadbd with require_secure_transport=ON, user ecom with
#                  its own password                                     (3307)
#   kafka-tls      a second single-node Kafka: SASL_SSL listener, SCRAM-SHA-512 and
#                  PLAIN users; a plaintext listener on loopback for the broker itself
#                  and the admin tools                                  (9094; 9096, 9095)
#   ferretdb-tls   FerretDB listening with TLS only; no authentication: FerretDB 1.24's
#                  (experimental, --test-enable-new-auth) SCRAM exchange does not
#                  complete with the Rust driver                        (27018)
#   mailpit-tls    Mailpit requiring STARTTLS and SMTP AUTH              (1587; HTTP 8026)
#   mailpit-smtps  Mailpit with implicit TLS (SMTPS) and SMTP AUTH       (1465; HTTP 8027)
#
# Certificates ($ECOM_STACK_HOME/tls): ca.pem signs server.pem, issued for the host name
# "localhost" only (so 127.0.0.1 is a wrong host name); other-ca.pem is a second CA that
# signed nothing here (a wrong CA). Made once, kept; `down --purge` leaves them.

TLS_DIR="$STACK_HOME/tls"
TLS_HOST=localhost
MYSQL_TLS_PORT="${ECOM_MYSQL_TLS_PORT:-3307}"
KAFKA_TLS_PORT="${ECOM_KAFKA_TLS_PORT:-9094}"
KAFKA_TLS_CONTROLLER_PORT="${ECOM_KAFKA_TLS_CONTROLLER_PORT:-9095}"
KAFKA_TLS_INTERNAL_PORT="${ECOM_KAFKA_TLS_INTERNAL_PORT:-9096}"
MONGO_TLS_PORT="${ECOM_MONGO_TLS_PORT:-27018}"
FERRETDB_TLS_DEBUG_PORT="${ECOM_FERRETDB_TLS_DEBUG_PORT:-28089}"
SMTP_STARTTLS_PORT="${ECOM_SMTP_STARTTLS_PORT:-1587}"
MAILPIT_TLS_HTTP_PORT="${ECOM_MAILPIT_TLS_HTTP_PORT:-8026}"
SMTPS_PORT="${ECOM_SMTPS_PORT:-1465}"
MAILPIT_SMTPS_HTTP_PORT="${ECOM_MAILPIT_SMTPS_HTTP_PORT:-8027}"

# Throwaway credentials of the TLS variants (test-only, printed by `env`).
MYSQL_TLS_PASSWORD=ecom-tls-db-secret
KAFKA_SCRAM_USER=ecom-scram
KAFKA_SCRAM_PASSWORD=ecom-scram-secret
KAFKA_PLAIN_USER=ecom-plain
KAFKA_PLAIN_PASSWORD=ecom-plain-secret
SMTP_USER=ecom-mail
SMTP_PASSWORD=ecom-mail-secret

# ---------------------------------------------------------------- material --
# A CA, a server certificate for localhost and a second, unrelated CA. EC P-256 keys
# in PKCS#8 (Kafka reads PEM keys only in that form).
ensure_tls_material() {
  [[ -s "$TLS_DIR/.complete" ]] && return 0
  command -v openssl >/dev/null || die "openssl not found (needed to make the test certificates)"
  log "tls: making a throwaway CA and a server certificate for $TLS_HOST in $TLS_DIR"
  local d="$TLS_DIR.tmp.$$"
  rm -rf "$d"; mkdir -p "$d"
  (
    cd "$d"
    for ca in ca other-ca; do
      openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 3650 \
        -keyout "$ca-key.pem" -out "$ca.pem" -subj "/CN=ecom stack test $ca" \
        -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign
    done
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
      -keyout server-key.pem -out server.csr -subj "/CN=$TLS_HOST"
    printf 'subjectAltName=DNS:%s\nbasicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n' \
      "$TLS_HOST" >server.ext
    openssl x509 -req -in server.csr -CA ca.pem -CAkey ca-key.pem -CAcreateserial -days 3650 \
      -extfile server.ext -out server.pem
    # Kafka's PEM key store: key and certificate chain in one file.
    cat server-key.pem server.pem >server-keystore.pem
    chmod 600 ./*-key.pem server-keystore.pem
  ) >"$d.log" 2>&1 || { show_tail "$d.log"; rm -rf "$d"; return 1; }
  rm -f "$d.log"
  rm -rf "$TLS_DIR"; mv "$d" "$TLS_DIR"
  date -Is >"$TLS_DIR/.complete"
}

# ------------------------------------------------------------- mariadb-tls --
stop_timeout_mariadb-tls() { echo 30; }
installed_mariadb-tls() { true; }        # the mariadb component's package
install_mariadb-tls() { true; }

mariadb_tls_socket() { printf '%s/mysqld.sock' "$(run_dir mariadb-tls)"; }

check_mariadb-tls() {
  mariadb --no-defaults --protocol=TCP -h "$HOST" -P "$MYSQL_TLS_PORT" --ssl --ssl-ca="$TLS_DIR/ca.pem" \
    -u"$MYSQL_USER" -p"$MYSQL_TLS_PASSWORD" --connect-timeout=2 -N -e 'SELECT 1' 2>/dev/null | grep -qx 1
}

start_mariadb-tls() {
  local d data; d="$(run_dir mariadb-tls)"; data="$d/data"
  installed_mariadb || { warn "mariadb-tls: MariaDB is not installed (bash scripts/stack.sh up mariadb)"; return 1; }
  ensure_tls_material || return 1
  ensure_ports_free mariadb-tls "$MYSQL_TLS_PORT" || return 1
  mariadb_init_datadir mariadb-tls || return 1
  # As the plain instance, smaller, plus TLS with this stack's certificate and no
  # connection over TCP without it.
  start_detached mariadb-tls "$(mariadbd_bin)" --no-defaults \
    --user="$(id -un)" \
    --datadir="$data" --tmpdir="$d/tmp" \
    --socket="$(mariadb_tls_socket)" --pid-file="$d/mariadbd.pid" \
    --bind-address="$HOST" --port="$MYSQL_TLS_PORT" \
    --character-set-server=utf8mb4 --collation-server=utf8mb4_unicode_ci \
    --skip-name-resolve --max-connections=200 \
    --innodb-buffer-pool-size=32M --innodb-log-file-size=16M \
    --innodb-flush-log-at-trx-commit=2 --innodb-doublewrite=0 \
    --key-buffer-size=1M --performance-schema=OFF --skip-log-bin \
    --ssl-ca="$TLS_DIR/ca.pem" --ssl-cert="$TLS_DIR/server.pem" --ssl-key="$TLS_DIR/server-key.pem" \
    --require-secure-transport=ON
}

ready_mariadb-tls() {
  local deadline=$((SECONDS + READY_TIMEOUT)) sql
  until mariadb-admin --no-defaults --socket="$(mariadb_tls_socket)" -uroot ping >/dev/null 2>&1; do
    [[ -n "$(component_pid mariadb-tls)" ]] || { warn "mariadb-tls exited during startup"; return 1; }
    ((SECONDS < deadline)) || { warn "mariadb-tls not answering ping after ${READY_TIMEOUT}s"; return 1; }
    sleep 0.3
  done
  sql="$(mariadb_users_sql "$MYSQL_TLS_PASSWORD" "REQUIRE SSL")FLUSH PRIVILEGES;"
  mariadb --no-defaults --socket="$(mariadb_tls_socket)" -uroot -e "$sql" || return 1
  wait_ready mariadb-tls 20
}

ports_mariadb-tls() { echo "$MYSQL_TLS_PORT"; }

# --------------------------------------------------------------- kafka-tls --
stop_timeout_kafka-tls() { echo 45; }
installed_kafka-tls() { true; }          # the kafka component's jars
install_kafka-tls() { true; }

kafka_tls_topics() { kafka_topics_on "$KAFKA_TLS_INTERNAL_PORT" "$@"; }

check_kafka-tls() {
  port_open "$KAFKA_TLS_PORT" || return 1
  kafka_tls_topics --list >/dev/null 2>&1
}

start_kafka-tls() {
  local d v libs
  installed_kafka || { warn "kafka-tls: Kafka is not installed (bash scripts/stack.sh up kafka)"; return 1; }
  ensure_tls_material || return 1
  d="$(run_dir kafka-tls)"; v="$(kafka_installed_version)"; libs="$(kafka_libs_for "$v")"
  ensure_ports_free kafka-tls "$KAFKA_TLS_PORT" "$KAFKA_TLS_CONTROLLER_PORT" "$KAFKA_TLS_INTERNAL_PORT" || return 1
  mkdir -p "$d/data"
  sed -e "s|@BROKER_PORT@|$KAFKA_TLS_INTERNAL_PORT|g" \
      -e "s|@CONTROLLER_PORT@|$KAFKA_TLS_CONTROLLER_PORT|g" \
      -e "s|@DATA_DIR@|$d/data|g" \
      "$CONF_DIR/kafka/server.properties.in" >"$d/server.properties"
  # The SASL_SSL listener for clients, beside the template's loopback PLAINTEXT one
  # (inter-broker and admin tools). Later keys override the template's.
  cat >>"$d/server.properties" <<EOF

# ---- TLS variant (scripts/stack/tls.sh) ----
listeners=PLAINTEXT://127.0.0.1:$KAFKA_TLS_INTERNAL_PORT,SASL_SSL://127.0.0.1:$KAFKA_TLS_PORT,CONTROLLER://127.0.0.1:$KAFKA_TLS_CONTROLLER_PORT
advertised.listeners=PLAINTEXT://127.0.0.1:$KAFKA_TLS_INTERNAL_PORT,SASL_SSL://$TLS_HOST:$KAFKA_TLS_PORT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,SASL_SSL:SASL_SSL
sasl.enabled.mechanisms=SCRAM-SHA-512,PLAIN
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
listener.name.sasl_ssl.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required user_$KAFKA_PLAIN_USER="$KAFKA_PLAIN_PASSWORD";
ssl.keystore.type=PEM
ssl.keystore.location=$TLS_DIR/server-keystore.pem
ssl.truststore.type=PEM
ssl.truststore.location=$TLS_DIR/ca.pem
ssl.client.auth=none
EOF
  # Formatted with the SCRAM user in the cluster's metadata.
  kafka_format kafka-tls "$d" \
    --add-scram "SCRAM-SHA-512=[name=$KAFKA_SCRAM_USER,password=$KAFKA_SCRAM_PASSWORD]" || return 1
  echo "$v" >"$d/version"
  start_detached kafka-tls java -Xms128m -Xmx384m -XX:+UseG1GC -XX:MaxGCPauseMillis=20 \
    -XX:TieredStopAtLevel=1 -Djava.awt.headless=true \
    -Dlog4j2.configurationFile="$CONF_DIR/kafka/log4j2.properties" \
    -Dkafka.logs.dir="$d" \
    -cp "$libs/*" kafka.Kafka "$d/server.properties"
}

ready_kafka-tls() { kafka_ready kafka-tls kafka_tls_topics "$KAFKA_TLS_INTERNAL_PORT" "$KAFKA_TLS_PORT"; }

ports_kafka-tls() { echo "$KAFKA_TLS_PORT,$KAFKA_TLS_INTERNAL_PORT,$KAFKA_TLS_CONTROLLER_PORT"; }

# ------------------------------------------------------------ ferretdb-tls --
installed_ferretdb-tls() { true; }
install_ferretdb-tls() { true; }

check_ferretdb-tls() { mongo_ping "$MONGO_TLS_PORT" tls; }

start_ferretdb-tls() {
  local d; d="$(run_dir ferretdb-tls)"
  installed_ferretdb || { warn "ferretdb-tls: FerretDB is not installed (bash scripts/stack.sh up ferretdb)"; return 1; }
  ensure_tls_material || return 1
  ensure_ports_free ferretdb-tls "$MONGO_TLS_PORT" "$FERRETDB_TLS_DEBUG_PORT" || return 1
  mkdir -p "$d/data" "$d/state"
  start_detached ferretdb-tls "$(ferretdb_bin)" \
    --handler=sqlite --sqlite-url="file:$d/data/" \
    --listen-addr="" \
    --listen-tls="$HOST:$MONGO_TLS_PORT" \
    --listen-tls-cert-file="$TLS_DIR/server.pem" --listen-tls-key-file="$TLS_DIR/server-key.pem" \
    --debug-addr="$HOST:$FERRETDB_TLS_DEBUG_PORT" \
    --state-dir="$d/state" \
    --telemetry=disable \
    --log-level=info
}

ports_ferretdb-tls() { echo "$MONGO_TLS_PORT"; }

# ------------------------------------------------- mailpit-tls, mailpit-smtps --
installed_mailpit-tls() { true; }
installed_mailpit-smtps() { true; }
install_mailpit-tls() { true; }
install_mailpit-smtps() { true; }

check_mailpit-tls() { curl -fsS -m 3 -o /dev/null "http://$HOST:$MAILPIT_TLS_HTTP_PORT/api/v1/info"; }
check_mailpit-smtps() { curl -fsS -m 3 -o /dev/null "http://$HOST:$MAILPIT_SMTPS_HTTP_PORT/api/v1/info"; }

# mode: starttls | smtps
start_mailpit_tls_variant() { # component mode smtp-port http-port
  local c="$1" mode="$2" smtp="$3" http="$4" d
  d="$(run_dir "$c")"
  installed_mailpit || { warn "$c: Mailpit is not installed (bash scripts/stack.sh up mailpit)"; return 1; }
  ensure_tls_material || return 1
  ensure_ports_free "$c" "$smtp" "$http" || return 1
  mkdir -p "$d"
  printf '%s:%s\n' "$SMTP_USER" "$SMTP_PASSWORD" >"$d/smtp-auth"
  chmod 600 "$d/smtp-auth"
  local require=--smtp-require-starttls
  [[ "$mode" == smtps ]] && require=--smtp-require-tls
  start_detached "$c" "$(mailpit_bin)" \
    --listen "$HOST:$http" \
    --smtp "$HOST:$smtp" \
    --smtp-tls-cert "$TLS_DIR/server.pem" --smtp-tls-key "$TLS_DIR/server-key.pem" "$require" \
    --smtp-auth-file "$d/smtp-auth" \
    --database "$d/mailpit.db" \
    --max 100000 \
    --disable-version-check
}
start_mailpit-tls() { start_mailpit_tls_variant mailpit-tls starttls "$SMTP_STARTTLS_PORT" "$MAILPIT_TLS_HTTP_PORT"; }
start_mailpit-smtps() { start_mailpit_tls_variant mailpit-smtps smtps "$SMTPS_PORT" "$MAILPIT_SMTPS_HTTP_PORT"; }
ports_mailpit-tls() { echo "$SMTP_STARTTLS_PORT,$MAILPIT_TLS_HTTP_PORT"; }
ports_mailpit-smtps() { echo "$SMTPS_PORT,$MAILPIT_SMTPS_HTTP_PORT"; }

# ---------------------------------------------------------------------- env --
tls_env() {
  cat <<EOF
export ECOM_TEST_TLS_CA_FILE=$TLS_DIR/ca.pem
export ECOM_TEST_TLS_OTHER_CA_FILE=$TLS_DIR/other-ca.pem
export ECOM_TEST_TLS_HOST=$TLS_HOST
export ECOM_TEST_TLS_MYSQL_URL=mysql://$MYSQL_USER:$MYSQL_TLS_PASSWORD@$TLS_HOST:$MYSQL_TLS_PORT
export ECOM_TEST_TLS_MONGODB_URL=mongodb://$TLS_HOST:$MONGO_TLS_PORT
export ECOM_TEST_TLS_KAFKA_BROKERS=$TLS_HOST:$KAFKA_TLS_PORT
export ECOM_TEST_TLS_KAFKA_SCRAM=$KAFKA_SCRAM_USER:$KAFKA_SCRAM_PASSWORD
export ECOM_TEST_TLS_KAFKA_PLAIN=$KAFKA_PLAIN_USER:$KAFKA_PLAIN_PASSWORD
export ECOM_TEST_TLS_SMTP_STARTTLS_URL='smtp://$TLS_HOST:$SMTP_STARTTLS_PORT?tls=required'
export ECOM_TEST_TLS_SMTPS_URL=smtps://$TLS_HOST:$SMTPS_PORT
export ECOM_TEST_TLS_SMTP_CREDENTIALS=$SMTP_USER:$SMTP_PASSWORD
export ECOM_TEST_TLS_MAILPIT_SMTPS_URL=http://$HOST:$MAILPIT_SMTPS_HTTP_PORT
EOF
}
