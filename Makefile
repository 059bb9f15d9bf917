# AI Mass — see README.md. `make demo` and `make test` are the whole set-up on a fresh machine.
SHELL := /bin/bash
.DEFAULT_GOAL := help
PYTEST_ARGS ?=

.PHONY: help deps up down status logs test test-unit demo bench lint format chaos

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

deps: ## install what is missing (Debian packages, .venv, Kafka jars)
	@deploy/deps.sh

up: deps ## start Kafka, Redis and the six services in the background (INFER_REPLICAS=N: N infer processes)
	@INFER_REPLICAS="$(INFER_REPLICAS)" deploy/stack.sh up

down: ## stop everything `make up` started
	@deploy/stack.sh down

status: ## each part of the stack and its health
	@deploy/stack.sh status

logs: ## the last lines of every log under var/log
	@deploy/stack.sh logs

test: deps ## the whole suite against a real Kafka and Redis (started and stopped here)
	@deploy/test.sh -q $(PYTEST_ARGS)

test-unit: deps ## unit tests only: no broker needed
	@.venv/bin/python -m pytest -q -m "not integration and not e2e" $(PYTEST_ARGS)

demo: up ## the four-hospital scenario end to end; leaves the stack running
	@.venv/bin/aimass simulate

chaos: deps ## kill -9 each service, restart Kafka, stop Redis (5,000 records each, own broker); 100,000-input fuzz run
	@deploy/chaos.sh $(PYTEST_ARGS)

bench: deps ## throughput and latency; results go to docs/benchmarks.md
	@deploy/bench.sh $(BENCH)

lint: deps ## ruff check and ruff format --check: fails on a lint finding or formatting drift
	@.venv/bin/ruff check --quiet .
	@.venv/bin/ruff format --check --quiet . || { echo "make lint: the files above are not formatted; run make format"; exit 1; }

format: deps ## ruff format and the safe ruff fixes, in place
	@.venv/bin/ruff format --quiet .
	@.venv/bin/ruff check --quiet --fix .
