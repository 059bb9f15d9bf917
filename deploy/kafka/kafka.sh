#!/usr/bin/env bash
# Apache Kafka (KRaft, single node) from Maven Central jars — no Docker needed.
#   kafka.sh fetch   download the broker jars once (Maven caches them in ~/.m2)
#   kafka.sh start   format storage if new, start the broker, wait until it answers metadata requests
#   kafka.sh stop | status
# KAFKA_SECURITY=sasl-scram starts it with SCRAM-SHA-256 authentication: KAFKA_ADMIN_PASSWORD for the broker's own
# user, KAFKA_SCRAM_USERS="name=password ..." for clients (created when the storage is formatted).
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

render_config() {
  local templates=("$HERE/server.properties.in")
  if [ "$KAFKA_SECURITY" = sasl-scram ]; then
    [ -n "${KAFKA_ADMIN_PASSWORD:-}" ] || die "KAFKA_SECURITY=sasl-scram needs KAFKA_ADMIN_PASSWORD"
    templates+=("$HERE/sasl-scram.properties.in")
  fi
  # Later lines override earlier ones (java.util.Properties), so the security overrides come last.
  cat "${templates[@]}" | sed -e "s#@KAFKA_PORT@#$KAFKA_PORT#g" -e "s#@CONTROLLER_PORT@#$CONTROLLER_PORT#g" \
    -e "s#@DATA_DIR@#$DATA#g" -e "s#@ADMIN_PASSWORD@#${KAFKA_ADMIN_PASSWORD:-}#g" >"$CONF"
  chmod 600 "$CONF"
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
       "$ROOT/.venv/bin/python" "$ROOT/deploy/lib/kafka_ready.py" "127.0.0.1:$KAFKA_PORT" 2>/dev/null; then
      return 0
    fi
    sleep 0.5
  done
  die "Kafka did not answer metadata requests on 127.0.0.1:$KAFKA_PORT within ${KAFKA_START_TIMEOUT:-90} s; see $LOG"
}

start() {
  if pid_alive "$PIDFILE"; then note "kafka already running (pid $(cat "$PIDFILE"))"; return 0; fi
  if port_open 127.0.0.1 "$KAFKA_PORT"; then
    die "port $KAFKA_PORT is taken by another process (not started by AI Mass); stop it or set KAFKA_PORT"
  fi
  fetch
  render_config
  format_storage
  setsid "${JAVA_CMD[@]}" kafka.Kafka "$CONF" >"$LOG_DIR/kafka.out" 2>&1 </dev/null &
  echo $! >"$PIDFILE"
  wait_ready
}

case "${1:-}" in
  fetch) fetch ;;
  start) start ;;
  stop) stop_pidfile "$PIDFILE" kafka ;;
  status)
    if pid_alive "$PIDFILE"; then echo "kafka   running  pid $(cat "$PIDFILE")  127.0.0.1:$KAFKA_PORT  log $LOG"
    else echo "kafka   stopped"; return 1 2>/dev/null || exit 1; fi ;;
  *) echo "usage: $0 fetch|start|stop|status" >&2; exit 2 ;;
esac
