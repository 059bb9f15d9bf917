#!/usr/bin/env bash
# `make chaos`: tests/chaos at full size. kill -9 each streaming service mid-stream (AIMASS_CHAOS_KILLS times, default
# 3) while AIMASS_CHAOS_RECORDS documents (default 5,000 per victim) stream through, then restart the broker and stop
# Redis under the whole pipeline; every record must come out as one fused result and one report.
# The suite runs its own Kafka and Redis on free ports (it stops and restarts them), so the shared ones `make up`
# and `make test` use are neither needed nor touched. Prints one line per scenario when good; the failure and where
# the logs are when not. Extra arguments go to pytest (e.g. -k fuse). Then the parsers' fuzz run (below).
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
source "$HERE/lib/common.sh"

[ -d "$VAR/kafka/libs" ] || die "the Kafka jars are missing: run 'make deps'"
work=$VAR/chaos  # pytest's base temp: the private broker's data and every service's log, kept until the next run
summary=$RUN_DIR/chaos-summary.$$
log=$LOG_DIR/chaos.log
trap 'rm -f "$summary"' EXIT
trap 'exit 130' INT TERM

started=$(date +%s)
cd "$ROOT" && AIMASS_CHAOS_RECORDS=${AIMASS_CHAOS_RECORDS:-5000} AIMASS_CHAOS_KILLS=${AIMASS_CHAOS_KILLS:-3} \
  AIMASS_CHAOS_SUMMARY=$summary .venv/bin/python -m pytest -q -p no:cacheprovider -o timeout=0 \
  --basetemp="$work" tests/chaos "$@" >"$log" 2>&1
status=$?
[ -f "$summary" ] && cat "$summary"
if [ "$status" -ne 0 ]; then
  grep -E "^(E |FAILED|ERROR)" "$log" | head -n 30 >&2
  echo "chaos: FAILED after $(( $(date +%s) - started )) s; pytest's output: $log; broker and service logs: $work/chaos0/log" >&2
  exit "$status"
fi
echo "chaos: passed in $(( $(date +%s) - started )) s"

# The fuzz run of the parsers (issue 11: at least 100,000 inputs), in-process, no broker; about an hour on 2 cores.
# AIMASS_FUZZ_INPUTS=0 skips it.
[ "${AIMASS_FUZZ_INPUTS:-100000}" = 0 ] && exit 0
fuzz_log=$LOG_DIR/fuzz.log
started=$(date +%s)
cd "$ROOT" && AIMASS_FUZZ_INPUTS=${AIMASS_FUZZ_INPUTS:-100000} AIMASS_FUZZ_SECONDS=${AIMASS_FUZZ_SECONDS:-5} \
  AIMASS_FUZZ_REPORT=$VAR/fuzz/report.json .venv/bin/python -m pytest -q -p no:cacheprovider --timeout=0 tests/fuzz \
  >"$fuzz_log" 2>&1 || {
  grep -E "^(E |FAILED|ERROR)" "$fuzz_log" | head -n 30 >&2
  echo "fuzz: FAILED after $(( $(date +%s) - started )) s; pytest's output: $fuzz_log; crashing inputs: $VAR/fuzz/report.json" >&2
  exit 1
}
echo "fuzz: ${AIMASS_FUZZ_INPUTS:-100000} inputs, no crash, in $(( $(date +%s) - started )) s (report: $VAR/fuzz/report.json)"
