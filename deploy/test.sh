#!/usr/bin/env bash
# `make test`: start Kafka and Redis if they are not running, run the whole suite, stop what this run started
# (also when tests fail or the run is interrupted). Extra arguments go to pytest.
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
source "$HERE/lib/common.sh"
state=$RUN_DIR/test-infra.$$
cleanup() { "$HERE/stack.sh" infra-down "$state"; }
trap cleanup EXIT
trap 'exit 130' INT TERM

"$HERE/stack.sh" infra-up "$state" || exit 1
cd "$ROOT" && AIMASS_TEST_NO_SKIPS=1 .venv/bin/python -m pytest "$@"
