#!/usr/bin/env bash
# Apache Kafka (KRaft, single node) from Maven Central jars — no Docker needed.
#   kafka.sh fetch   download the broker jars once (Maven caches them in ~/.m2)
#   kafka.sh start   format storage if new, start the broker, wait until it answers metadata requests
#   kafka.sh secure  (KAFKA_SECURITY=sasl-ssl, broker running) set users, ACLs and topics again: after adding a
#                    hospital or rotating a password, without a restart
#   kafka.sh stop | status
# KAFKA_SECURITY picks the profile (docs/security.md):
#   plaintext  (default here; `make test`, `make bench`) no TLS, no authentication
#   sasl-ssl   (`make up`, `make demo`) TLS with the local CA (deploy/tls/certs.sh), SCRAM-SHA-512 users, ACLs: one
#              principal per service, the operator, the issuer and each hospital of deploy/hospitals; passwords made
#              once under var/secrets/, users, ACLs and topics applied after every start (deploy/lib/secure.py)
#   sasl-scram SCRAM-SHA-256 without TLS or ACLs: KAFKA_ADMIN_PASSWORD for the broker's own user,
#              KAFKA_SCRAM_USERS="name=password ..." for clients (created when the storage is formatted)
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
source "$HERE/../lib/common.sh"

KAFKA_PORT=${KAFKA_PORT:-9092}
CONTROLLER_PORT=${KAFKA_CONTROLLER_PORT:-9093}
KAFKA_HEAP=${KAFKA_HEAP:-512m}
HOME_DIR=$VAR/kafka
LIBS=$HOME_DIR/libs
DATA=$HOME_DIR/data
CONF=$HOME_DIR/server.properties
PIDFILE=$RUN_DIR/kafka.pid
LOG=$LOG_DIR/kafka.log
STAMP=$LIBS/.fetched-$(sha256sum "$HERE/pom.xml" | cut -c1-12)

fetch() {
  [ -f "$STAMP" ] && return 0
  command -v java >/dev/null || die "java not found: install OpenJDK 17 (apt-get install openjdk-17-jre-headless)"
  command -v mvn >/dev/null || die "mvn not found: install Maven (apt-get install maven)"
  rm -rf "$LIBS"; mkdir -p "$LIBS"
  mvn -q -B -f "$HERE/pom.xml" dependency:copy-dependencies -DincludeScope=runtime \
      -DoutputDirectory="$LIBS" >"$LOG_DIR/kafka-fetch.log" 2>&1 \
    || die "fetching the Kafka jars from Maven Central failed; see $LOG_DIR/kafka-fetch.log"
  touch "$STAMP"
}

JAVA_CMD=(java -Xms128m "-Xmx$KAFKA_HEAP" -XX:+UseG1GC -XX:MaxGCPauseMillis=20
  -Dlog4j2.configurationFile="$HERE/log4j2.yaml" -Dkafka.logs.dir="$LOG_DIR" -cp "$LIBS/*")
java_run() { "${JAVA_CMD[@]}" "$@"; }

KAFKA_SECURITY=${KAFKA_SECURITY:-plaintext}
case $KAFKA_SECURITY in
  plaintext | sasl-ssl | sasl-scram) ;;
  *) die "KAFKA_SECURITY must be plaintext, sasl-ssl or sasl-scram (is '$KAFKA_SECURITY')" ;;
esac
PROFILE_FILE=$RUN_DIR/kafka.security  # the profile the running broker was started with; clients read it
TLS_DIR=$VAR/tls
PYTHON=$ROOT/.venv/bin/python
SECURE=("$PYTHON" "$ROOT/deploy/lib/secure.py")

render_config() {
  local templates=("$HERE/server.properties.in") admin_password=${KAFKA_ADMIN_PASSWORD:-}
  if [ "$KAFKA_SECURITY" = sasl-scram ]; then
    [ -n "$admin_password" ] || die "KAFKA_SECURITY=sasl-scram needs KAFKA_ADMIN_PASSWORD"
    templates+=("$HERE/sasl-scram.properties.in")
  elif [ "$KAFKA_SECURITY" = sasl-ssl ]; then
    admin_password=$(<"$VAR/secrets/kafka/admin.password")
    templates+=("$HERE/sasl-ssl.properties.in")
  fi
  # Later lines override earlier ones (java.util.Properties), so the security overrides come last.
  cat "${templates[@]}" | sed -e "s#@KAFKA_PORT@#$KAFKA_PORT#g" -e "s#@CONTROLLER_PORT@#$CONTROLLER_PORT#g" \
    -e "s#@DATA_DIR@#$DATA#g" -e "s#@TLS_DIR@#$TLS_DIR#g" -e "s#@ADMIN_PASSWORD@#$admin_password#g" >"$CONF"
  chmod 600 "$CONF"
}

# The readiness probe and secure.py log in as the broker's own admin on the secured profile.
admin_env() {
  [ "$KAFKA_SECURITY" = sasl-ssl ] || return 0
  ADMIN_ENV=(AIMASS_KAFKA_SECURITY_PROTOCOL=SASL_SSL AIMASS_KAFKA_SASL_MECHANISM=PLAIN AIMASS_KAFKA_SASL_USERNAME=admin
    "AIMASS_KAFKA_SASL_PASSWORD=$(<"$VAR/secrets/kafka/admin.password")" "AIMASS_KAFKA_SSL_CAFILE=$TLS_DIR/ca.pem")
}
ADMIN_ENV=()

prepare_security() {
  [ "$KAFKA_SECURITY" = sasl-ssl ] || return 0
  "$ROOT/deploy/tls/certs.sh"
  "${SECURE[@]}" passwords
  admin_env
}

# Users, ACLs and topics of the table in shared/principals.py, then each principal's env file.
apply_security() {
  "${SECURE[@]}" kafka >>"$LOG_DIR/kafka-secure.log" 2>&1 \
    || die "securing Kafka failed: $(tail -n 1 "$LOG_DIR/kafka-secure.log") (log $LOG_DIR/kafka-secure.log)"
  "${SECURE[@]}" env-files
}

scram_arguments() {  # fills the array SCRAM with StorageTool's --add-scram options
  SCRAM=()
  [ "$KAFKA_SECURITY" = sasl-scram ] || return 0
  local user
  SCRAM+=(--add-scram "SCRAM-SHA-256=[name=admin,password=$KAFKA_ADMIN_PASSWORD]")
  for user in ${KAFKA_SCRAM_USERS:-}; do
    SCRAM+=(--add-scram "SCRAM-SHA-256=[name=${user%%=*},password=${user#*=}]")
  done
}

format_storage() {
  [ -f "$DATA/meta.properties" ] && return 0
  mkdir -p "$DATA"
  local cluster_id
  cluster_id=$(java_run kafka.tools.StorageTool random-uuid 2>>"$LOG_DIR/kafka-format.log")
  scram_arguments
  java_run kafka.tools.StorageTool format -t "$cluster_id" -c "$CONF" --standalone "${SCRAM[@]}" \
    >>"$LOG_DIR/kafka-format.log" 2>&1 || die "formatting Kafka storage in $DATA failed; see $LOG_DIR/kafka-format.log"
}

wait_ready() {
  local deadline=$((SECONDS + ${KAFKA_START_TIMEOUT:-90}))
  while ((SECONDS < deadline)); do
    pid_alive "$PIDFILE" || die "Kafka exited during start-up; see $LOG (and $LOG_DIR/kafka.out)"
    if port_open 127.0.0.1 "$KAFKA_PORT" && \
       env "${ADMIN_ENV[@]}" "$PYTHON" "$ROOT/deploy/lib/kafka_ready.py" "127.0.0.1:$KAFKA_PORT" 2>/dev/null; then
      return 0
    fi
    sleep 0.5
  done
  die "Kafka did not answer metadata requests on 127.0.0.1:$KAFKA_PORT within ${KAFKA_START_TIMEOUT:-90} s; see $LOG"
}

running_profile() { [ -f "$PROFILE_FILE" ] && cat "$PROFILE_FILE" || echo plaintext; }

start() {
  if pid_alive "$PIDFILE"; then
    [ "$(running_profile)" = "$KAFKA_SECURITY" ] || die "kafka runs with KAFKA_SECURITY=$(running_profile) \
(pid $(cat "$PIDFILE")), not $KAFKA_SECURITY: stop it first (make down, or deploy/kafka/kafka.sh stop)"
    note "kafka already running (pid $(cat "$PIDFILE"))"; return 0
  fi
  if port_open 127.0.0.1 "$KAFKA_PORT"; then
    die "port $KAFKA_PORT is taken by another process (not started by AI Mass); stop it or set KAFKA_PORT"
  fi
  fetch
  prepare_security
  render_config
  format_storage
  setsid "${JAVA_CMD[@]}" kafka.Kafka "$CONF" >"$LOG_DIR/kafka.out" 2>&1 </dev/null &
  echo $! >"$PIDFILE"
  echo "$KAFKA_SECURITY" >"$PROFILE_FILE"
  wait_ready
  [ "$KAFKA_SECURITY" = sasl-ssl ] && apply_security
  return 0
}

secure() {
  pid_alive "$PIDFILE" && [ "$(running_profile)" = sasl-ssl ] \
    || die "no KAFKA_SECURITY=sasl-ssl broker runs on 127.0.0.1:$KAFKA_PORT: start one first (make up)"
  "${SECURE[@]}" passwords
  apply_security
}

case "${1:-}" in
  fetch) fetch ;;
  start) start ;;
  secure) secure ;;
  stop) stop_pidfile "$PIDFILE" kafka; rm -f "$PROFILE_FILE" ;;
  status)
    if pid_alive "$PIDFILE"; then
      echo "kafka   running  pid $(cat "$PIDFILE")  127.0.0.1:$KAFKA_PORT  $(running_profile)  log $LOG"
    else echo "kafka   stopped"; return 1 2>/dev/null || exit 1; fi ;;
  *) echo "usage: $0 fetch|start|secure|stop|status" >&2; exit 2 ;;
esac
