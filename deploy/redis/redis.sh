#!/usr/bin/env bash
# Redis (Debian's redis-server) on 127.0.0.1:6379, data and log under var/.
#   redis.sh start   reuse a Redis that already answers; else start our own
#   redis.sh stop | status
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
source "$HERE/../lib/common.sh"

REDIS_PORT=${REDIS_PORT:-6379}
PIDFILE=$RUN_DIR/redis.pid
LOG=$LOG_DIR/redis.log
DATA=$VAR/redis

answers() { [ "$(redis-cli -p "$REDIS_PORT" ping 2>/dev/null)" = "PONG" ]; }

start() {
  if pid_alive "$PIDFILE"; then note "redis already running (pid $(cat "$PIDFILE"))"; return 0; fi
  command -v redis-server >/dev/null || die "redis-server not found: run 'make deps' (installs Debian's redis-server)"
  if answers; then note "reusing the Redis that already answers on 127.0.0.1:$REDIS_PORT"; return 0; fi
  port_open 127.0.0.1 "$REDIS_PORT" && die "port $REDIS_PORT is taken by something that is not Redis; set REDIS_PORT"
  mkdir -p "$DATA"
  # --daemonize no + setsid: we own the pid, and `make down` can stop it.
  setsid redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --dir "$DATA" --logfile "$LOG" \
    --save "" --appendonly no --daemonize no </dev/null >/dev/null 2>&1 &
  echo $! >"$PIDFILE"
  for _ in $(seq 1 50); do answers && return 0; sleep 0.1; done
  die "redis-server did not answer on 127.0.0.1:$REDIS_PORT within 5 s; see $LOG"
}

case "${1:-}" in
  start) start ;;
  stop) stop_pidfile "$PIDFILE" redis ;;
  status)
    if pid_alive "$PIDFILE"; then echo "redis   running  pid $(cat "$PIDFILE")  127.0.0.1:$REDIS_PORT  log $LOG"
    elif answers; then echo "redis   external 127.0.0.1:$REDIS_PORT (not started by AI Mass)"
    else echo "redis   stopped"; exit 1; fi ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
