# Shared helpers for the deploy scripts: paths, pid files, quiet success and specific failure.
# shellcheck shell=bash
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
VAR=${AIMASS_VAR_DIR:-$ROOT/var}
RUN_DIR=$VAR/run
LOG_DIR=$VAR/log
mkdir -p "$RUN_DIR" "$LOG_DIR"

die() { echo "error: $*" >&2; exit 1; }
note() { [ -n "${VERBOSE:-}" ] && echo "$*"; return 0; }

# pid_alive PIDFILE -> 0 when the process in PIDFILE runs.
pid_alive() {
  local pid
  [ -f "$1" ] || return 1
  pid=$(cat "$1" 2>/dev/null) || return 1
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null
}

# stop_pidfile PIDFILE NAME: TERM, wait up to 20 s, then KILL; remove the pid file.
stop_pidfile() {
  local pidfile=$1 name=$2 pid i
  pid_alive "$pidfile" || { rm -f "$pidfile"; return 0; }
  pid=$(cat "$pidfile")
  # Services run in their own session (setsid): signal the whole group so no child survives.
  kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null
  for i in $(seq 1 100); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.2
  done
  if kill -0 "$pid" 2>/dev/null; then
    echo "warning: $name (pid $pid) ignored SIGTERM for 20 s; killing it" >&2
    kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null
  fi
  rm -f "$pidfile"
}

# port_open HOST PORT -> 0 when something accepts TCP connections there.
port_open() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }
