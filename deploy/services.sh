#!/usr/bin/env bash
# The six AI Mass services as background processes: pid files in var/run, logs in var/log.
#   services.sh start [NAME...]   start those not running, wait until each answers /healthz
#   services.sh stop [NAME...] | status [NAME...]
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
source "$HERE/lib/common.sh"

ALL=(ingest clean train infer fuse report)
declare -A DEFAULT_PORT=([ingest]=8101 [clean]=8102 [train]=8103 [infer]=8104 [fuse]=8105 [report]=8106)
AIMASS=$ROOT/.venv/bin/aimass

port_of() {
  local var="AIMASS_${1^^}_PORT"
  echo "${!var:-${DEFAULT_PORT[$1]}}"
}

http_code() { curl -s -o /dev/null -w '%{http_code}' --max-time 2 "http://127.0.0.1:$(port_of "$1")$2" || true; }

start_one() {
  local name=$1 pidfile=$RUN_DIR/$1.pid log=$LOG_DIR/$1.log
  pid_alive "$pidfile" && return 0
  port_open 127.0.0.1 "$(port_of "$name")" && \
    die "port $(port_of "$name") for $name is taken by another process; stop it or set AIMASS_${name^^}_PORT"
  setsid "$AIMASS" run "$name" >>"$log" 2>&1 </dev/null &
  echo $! >"$pidfile"
}

wait_healthy() {
  local name=$1 deadline=$((SECONDS + ${SERVICE_START_TIMEOUT:-60}))
  while ((SECONDS < deadline)); do
    pid_alive "$RUN_DIR/$name.pid" || die "$name exited during start-up; see $LOG_DIR/$name.log"
    [ "$(http_code "$name" /healthz)" = 200 ] && return 0
    sleep 0.3
  done
  die "$name did not answer http://127.0.0.1:$(port_of "$name")/healthz within ${SERVICE_START_TIMEOUT:-60} s; see $LOG_DIR/$name.log"
}

status_one() {
  local name=$1 pidfile=$RUN_DIR/$1.pid
  if pid_alive "$pidfile"; then
    printf '%-7s running  pid %-7s :%s  healthz %s  readyz %s  log %s\n' "$name" "$(cat "$pidfile")" \
      "$(port_of "$name")" "$(http_code "$name" /healthz)" "$(http_code "$name" /readyz)" "$LOG_DIR/$name.log"
  else
    printf '%-7s stopped\n' "$name"; return 1
  fi
}

cmd=${1:-}; shift || true
names=("$@"); [ ${#names[@]} -eq 0 ] && names=("${ALL[@]}")
case "$cmd" in
  start)
    [ -x "$AIMASS" ] || die "$AIMASS not found: run 'make deps' first"
    for n in "${names[@]}"; do start_one "$n"; done
    for n in "${names[@]}"; do wait_healthy "$n"; done ;;
  stop) for n in "${names[@]}"; do stop_pidfile "$RUN_DIR/$n.pid" "$n"; done ;;
  status) rc=0; for n in "${names[@]}"; do status_one "$n" || rc=1; done; exit $rc ;;
  *) echo "usage: $0 start|stop|status [NAME...]" >&2; exit 2 ;;
esac
