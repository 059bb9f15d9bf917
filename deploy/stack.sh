#!/usr/bin/env bash
# The whole local stack: Kafka, Redis and the six services.
#   stack.sh up | down | status | logs
#   stack.sh infra-up STATEFILE    start Kafka and Redis where not running; record what was started
#   stack.sh infra-down STATEFILE  stop only what infra-up recorded
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
source "$HERE/lib/common.sh"

kafka_running() { "$HERE/kafka/kafka.sh" status >/dev/null 2>&1; }
redis_running() { "$HERE/redis/redis.sh" status >/dev/null 2>&1; }

case "${1:-}" in
  up)
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
    for f in "$LOG_DIR"/{kafka,redis,ingest,clean,train,infer,fuse,report}.log; do
      [ -f "$f" ] || continue
      echo "==> $f <=="; tail -n "${LINES_PER_LOG:-20}" "$f"; echo
    done ;;
  infra-up)
    state=${2:?state file}; : >"$state"
    kafka_running || { "$HERE/kafka/kafka.sh" start; echo kafka >>"$state"; }
    redis_running || { "$HERE/redis/redis.sh" start; echo redis >>"$state"; } ;;
  infra-down)
    state=${2:?state file}; [ -f "$state" ] || exit 0
    grep -qx redis "$state" && "$HERE/redis/redis.sh" stop
    grep -qx kafka "$state" && "$HERE/kafka/kafka.sh" stop
    rm -f "$state" ;;
  *) echo "usage: $0 up|down|status|logs|infra-up STATE|infra-down STATE" >&2; exit 2 ;;
esac
