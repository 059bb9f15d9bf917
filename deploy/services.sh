#!/usr/bin/env bash
# The six AI Mass services and the local token issuer as background processes: pid files in var/run, logs in var/log.
#   services.sh start [NAME...]   start those not running, wait until each answers /healthz
#   services.sh stop [NAME...] | status [NAME...]
# Replicas: <NAME>_REPLICAS=N (e.g. INFER_REPLICAS=2, `make up INFER_REPLICAS=2`) starts N processes of a service in
# the same consumer group. The first is the usual one (NAME.pid, NAME.log, its port); replica i (1..N-1) is NAME-i
# (NAME-i.pid, NAME-i.log) on port + 10*i, e.g. infer on 8104, infer-1 on 8114. stop and status cover every replica
# that has a pid file, whatever N is now.
# Credentials: when the stack runs secured (deploy/stack.sh up: Kafka sasl-ssl, Redis acl), each process starts with its
# principal's environment, var/secrets/svc-<NAME>.env (written by deploy/lib/secure.py when Kafka and Redis start).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
source "$HERE/lib/common.sh"

# The issuer first: the services verify tokens with its keys (docs/security.md; a deployment points them at its own).
ALL=(issuer ingest clean train infer fuse report)
declare -A DEFAULT_PORT=([issuer]=8107 [ingest]=8101 [clean]=8102 [train]=8103 [infer]=8104 [fuse]=8105 [report]=8106)
AIMASS=$ROOT/.venv/bin/aimass

REPLICA_PORT_STEP=10

# A process is a service name, or NAME-i for its replica i.
service_of() { echo "${1%%-*}"; }
replica_of() { [[ $1 == *-* ]] && echo "${1##*-}" || echo 0; }

port_of() {
  local service var
  service=$(service_of "$1"); var="AIMASS_${service^^}_PORT"
  echo $(( ${!var:-${DEFAULT_PORT[$service]}} + REPLICA_PORT_STEP * $(replica_of "$1") ))
}

replicas_of() { local var="${1^^}_REPLICAS"; echo "${!var:-1}"; }

# processes NAME -> NAME and the replicas asked for (<NAME>_REPLICAS), then any other replica still running.
processes() {
  local name=$1 count i pidfile
  count=$(replicas_of "$name")
  echo "$name"
  for ((i = 1; i < count; i++)); do echo "$name-$i"; done
  for pidfile in "$RUN_DIR/$name"-*.pid; do
    [ -e "$pidfile" ] || continue
    i=${pidfile##*/$name-}; i=${i%.pid}
    [[ $i =~ ^[0-9]+$ ]] && ((i >= count)) && echo "$name-$i"
  done
  return 0
}

secured() {
  grep -qx sasl-ssl "$RUN_DIR/kafka.security" 2>/dev/null || grep -qx acl "$RUN_DIR/redis.security" 2>/dev/null
}

# credentials SERVICE -> fills CREDENTIALS with the KEY=VALUE lines of the service's principal (none when unsecured).
credentials() {
  local file=$VAR/secrets/svc-$1.env
  CREDENTIALS=()
  secured || return 0
  [ -f "$file" ] || die "no credentials for $1 in $file; start Kafka and Redis first (deploy/stack.sh up)"
  mapfile -t CREDENTIALS < <(grep -v '^#' "$file")
}

http_code() { curl -s -o /dev/null -w '%{http_code}' --max-time 2 "http://127.0.0.1:$(port_of "$1")$2" || true; }

start_one() {
  local name=$1 pidfile=$RUN_DIR/$1.pid log=$LOG_DIR/$1.log service port
  service=$(service_of "$name"); port=$(port_of "$name")
  pid_alive "$pidfile" && return 0
  port_open 127.0.0.1 "$port" && \
    die "port $port for $name is taken by another process; stop it or set AIMASS_${service^^}_PORT"
  credentials "$service"
  env "${CREDENTIALS[@]}" "AIMASS_${service^^}_PORT=$port" setsid "$AIMASS" run "$service" >>"$log" 2>&1 </dev/null &
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
    printf '%-8s running  pid %-7s :%s  healthz %s  readyz %s  log %s\n' "$name" "$(cat "$pidfile")" \
      "$(port_of "$name")" "$(http_code "$name" /healthz)" "$(http_code "$name" /readyz)" "$LOG_DIR/$name.log"
  else
    printf '%-8s stopped\n' "$name"; return 1
  fi
}

cmd=${1:-}; shift || true
services=("$@"); [ ${#services[@]} -eq 0 ] && services=("${ALL[@]}")
names=()
for s in "${services[@]}"; do
  [ -n "${DEFAULT_PORT[$s]:-}" ] || die "unknown service '$s' (one of: ${ALL[*]})"
  [[ $(replicas_of "$s") =~ ^[1-9][0-9]*$ ]] || die "${s^^}_REPLICAS must be a positive whole number"
  mapfile -t -O "${#names[@]}" names < <(processes "$s")
done
case "$cmd" in
  start)
    [ -x "$AIMASS" ] || die "$AIMASS not found: run 'make deps' first"
    for n in "${names[@]}"; do start_one "$n"; done
    for n in "${names[@]}"; do wait_healthy "$n"; done ;;
  stop) for n in "${names[@]}"; do stop_pidfile "$RUN_DIR/$n.pid" "$n"; done ;;
  status) rc=0; for n in "${names[@]}"; do status_one "$n" || rc=1; done; exit $rc ;;
  *) echo "usage: $0 start|stop|status [NAME...]" >&2; exit 2 ;;
esac
