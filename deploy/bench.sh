#!/usr/bin/env bash
# `make bench`: Kafka and Redis up if needed, run tests/bench, write docs/benchmarks.md, stop what was started.
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
source "$HERE/lib/common.sh"
state=$RUN_DIR/bench-infra.$$
trap '"$HERE/stack.sh" infra-down "$state"' EXIT
trap 'exit 130' INT TERM
"$HERE/stack.sh" infra-up "$state" || exit 1
cd "$ROOT" && .venv/bin/python -m tests.bench "$@"
