#!/usr/bin/env bash
# The whole local stack: Kafka, Redis and the six services.
#   stack.sh up | down | status | logs
#   stack.sh infra-up STATEFILE    start Kafka and Redis where not running; record what was started
#   stack.sh infra-down STATEFILE  stop only what infra-up recorded
# `up` runs secured unless told otherwise: KAFKA_SECURITY=sasl-ssl (TLS, SCRAM users, ACLs) and REDIS_SECURITY=acl
# (docs/security.md); KAFKA_SECURITY=plaintext REDIS_SECURITY=none gives the open stack. infra-up (`make test`,
# `make bench`) starts the open one, and refuses a running secured one: its clients carry no credentials.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
source "$HERE/lib/common.sh"

kafka_running() { "$HERE/kafka/kafka.sh" status >/dev/null 2>&1; }
redis_running() { "$HERE/redis/redis.sh" status >/dev/null 2>&1; }

case "${1:-}" in
  up)
    export KAFKA_SECURITY=${KAFKA_SECURITY:-sasl-ssl} REDIS_SECURITY=${REDIS_SECURITY:-acl}
    "$HERE/kafka/kafka.sh" start
    "$HERE/redis/redis.sh" start
    "$HERE/services.sh" start ;;
  down)
    "$HERE/services.sh" stop
    "$HERE/redis/redis.sh" stop
    "$HERE/kafka/kafka.sh" stop ;;
  status)
    rc=0
    "$HERE/kafka/kafka.sh" status || rc=1
    "$HERE/redis/redis.sh" status || rc=1
    "$HERE/services.sh" status || rc=1
    exit $rc ;;
  logs)
    for f in "$LOG_DIR"/{kafka,redis,issuer,ingest,clean,train,infer,fuse,report}.log; do
      [ -f "$f" ] || continue
      echo "==> $f <=="; tail -n "${LINES_PER_LOG:-20}" "$f"; echo
    done ;;
  infra-up)
    state=${2:?state file}; : >"$state"
    for part in kafka redis; do
      profile=$(cat "$RUN_DIR/$part.security" 2>/dev/null || true)
      case $profile in "" | plaintext | none) continue ;; esac
      pid_alive "$RUN_DIR/$part.pid" || continue  # the record of one that is gone
      die "$part runs secured ($profile, from make up) and the test and bench clients carry no credentials: \
make down first, or give this run its own stack (AIMASS_VAR_DIR, KAFKA_PORT, KAFKA_CONTROLLER_PORT, REDIS_PORT)"
    done
    export KAFKA_SECURITY=plaintext REDIS_SECURITY=none
    kafka_running || { "$HERE/kafka/kafka.sh" start; echo kafka >>"$state"; }
    redis_running || { "$HERE/redis/redis.sh" start; echo redis >>"$state"; } ;;
  infra-down)
    state=${2:?state file}; [ -f "$state" ] || exit 0
    grep -qx redis "$state" && "$HERE/redis/redis.sh" stop
    grep -qx kafka "$state" && "$HERE/kafka/kafka.sh" stop
    rm -f "$state" ;;
  *) echo "usage: $0 up|down|status|logs|infra-up STATE|infra-down STATE" >&2; exit 2 ;;
esac
