#!/usr/bin/env bash
# Redis (Debian's redis-server) on 127.0.0.1:6379, data and log under var/.
#   redis.sh start   reuse a Redis that already answers; else start our own
#   redis.sh secure  (REDIS_SECURITY=acl, running) write the ACL file again and load it: after a password rotation
#   redis.sh stop | status
# REDIS_SECURITY picks the profile (docs/security.md):
#   none  (default here; `make test`, `make bench`) no password
#   acl   (`make up`, `make demo`) the default user is off; one ACL user per service with its own key pattern and
#         commands (shared/principals.py), an admin user for operators; passwords made once under var/secrets/redis/,
#         the ACL file (var/redis/users.acl, password hashes only) written at every start (deploy/lib/secure.py)
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
source "$HERE/../lib/common.sh"

REDIS_PORT=${REDIS_PORT:-6379}
REDIS_SECURITY=${REDIS_SECURITY:-none}
case $REDIS_SECURITY in
  none | acl) ;;
  *) die "REDIS_SECURITY must be none or acl (is '$REDIS_SECURITY')" ;;
esac
PIDFILE=$RUN_DIR/redis.pid
PROFILE_FILE=$RUN_DIR/redis.security
LOG=$LOG_DIR/redis.log
DATA=$VAR/redis
ACL_FILE=$DATA/users.acl
SECURE=("$ROOT/.venv/bin/python" "$ROOT/deploy/lib/secure.py")

# redis-cli as nobody, or as admin (the password goes through the environment, never the command line).
cli() { redis-cli -p "$REDIS_PORT" "$@" 2>/dev/null; }
admin_cli() {
  REDISCLI_AUTH=$(<"$VAR/secrets/redis/admin.password") redis-cli -p "$REDIS_PORT" --user admin "$@" 2>/dev/null
}
answers() { [ "$(cli ping)" = "PONG" ]; }
answers_admin() { [ -f "$VAR/secrets/redis/admin.password" ] && [ "$(admin_cli ping)" = "PONG" ]; }
running_profile() { [ -f "$PROFILE_FILE" ] && cat "$PROFILE_FILE" || echo none; }

write_acl() {
  mkdir -p "$DATA"
  "${SECURE[@]}" redis-acl "$ACL_FILE"
}

start() {
  if pid_alive "$PIDFILE"; then
    [ "$(running_profile)" = "$REDIS_SECURITY" ] || die "redis runs with REDIS_SECURITY=$(running_profile) \
(pid $(cat "$PIDFILE")), not $REDIS_SECURITY: stop it first (make down, or deploy/redis/redis.sh stop)"
    note "redis already running (pid $(cat "$PIDFILE"))"; return 0
  fi
  command -v redis-server >/dev/null || die "redis-server not found: run 'make deps' (installs Debian's redis-server)"
  if [ "$REDIS_SECURITY" = acl ]; then
    # Someone else's Redis cannot hold our users: a secured stack needs its own.
    answers && die "a Redis without a password answers on 127.0.0.1:$REDIS_PORT (not started by AI Mass); \
REDIS_SECURITY=acl needs its own: stop that one or set REDIS_PORT"
    answers_admin && { note "reusing the secured Redis on 127.0.0.1:$REDIS_PORT"; return 0; }
  elif answers; then
    note "reusing the Redis that already answers on 127.0.0.1:$REDIS_PORT"; return 0
  fi
  port_open 127.0.0.1 "$REDIS_PORT" && die "port $REDIS_PORT is taken by something that is not Redis; set REDIS_PORT"
  mkdir -p "$DATA"
  local security=()
  if [ "$REDIS_SECURITY" = acl ]; then
    write_acl
    security=(--aclfile "$ACL_FILE")
  fi
  # --daemonize no + setsid: we own the pid, and `make down` can stop it.
  setsid redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --dir "$DATA" --logfile "$LOG" \
    --save "" --appendonly no --daemonize no "${security[@]}" </dev/null >/dev/null 2>&1 &
  echo $! >"$PIDFILE"
  echo "$REDIS_SECURITY" >"$PROFILE_FILE"
  local probe=answers
  [ "$REDIS_SECURITY" = acl ] && probe=answers_admin
  for _ in $(seq 1 50); do
    if $probe; then
      [ "$REDIS_SECURITY" = acl ] && "${SECURE[@]}" env-files
      return 0
    fi
    sleep 0.1
  done
  die "redis-server did not answer on 127.0.0.1:$REDIS_PORT within 5 s; see $LOG"
}

secure() {
  pid_alive "$PIDFILE" && [ "$(running_profile)" = acl ] \
    || die "no REDIS_SECURITY=acl Redis runs on 127.0.0.1:$REDIS_PORT: start one first (make up)"
  write_acl
  [ "$(admin_cli acl load)" = OK ] || die "Redis on 127.0.0.1:$REDIS_PORT did not load $ACL_FILE; see $LOG"
  "${SECURE[@]}" env-files
}

case "${1:-}" in
  start) start ;;
  secure) secure ;;
  stop) stop_pidfile "$PIDFILE" redis; rm -f "$PROFILE_FILE" ;;
  status)
    if pid_alive "$PIDFILE"; then
      echo "redis   running  pid $(cat "$PIDFILE")  127.0.0.1:$REDIS_PORT  $(running_profile)  log $LOG"
    elif answers; then echo "redis   external 127.0.0.1:$REDIS_PORT (not started by AI Mass)"
    else echo "redis   stopped"; exit 1; fi ;;
  *) echo "usage: $0 start|secure|stop|status" >&2; exit 2 ;;
esac
