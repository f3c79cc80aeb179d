# The two commands: `make up` (run the platform) and `make test` (run every test).
# `make` alone lists the targets.
SHELL := /bin/bash
VENV := .venv
BIN := $(VENV)/bin
PYTEST_ARGS ?=

.DEFAULT_GOAL := help

help: ## list the targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-16s %s\n", $$1, $$2}'

deps: ## install apt packages and the Python venv (idempotent)
	@infra/host/install-deps.sh

app: deps ## run the case service on its embedded PostgreSQL (foreground)
	$(BIN)/kntc local up

up: lab-up ## the platform: both sites (DC and DR) in the Podman lab, provisioned by the real playbooks
	@echo "Demo logins (DC and DR apps): tiepdan.badinh, xuly.badinh, giaiquyet.badinh, truong.badinh,"
	@echo "  quantri.badinh, tiepdan.ngocha, truong.hanoi, toaan.hanoi, quantri.ttcp"
	@echo "  password: $$(cat infra/lab/.state/secrets/demo_password)   CA: infra/lab/.state/pki/ca.crt"

down: lab-down ## remove the lab (keeps the cached image)

stop-local: ## stop the embedded PostgreSQL started by `make app`
	$(BIN)/kntc local stop

test: ## run every test (unit, integration, lab, drills, browser) after auditing the lock
	@KNTC_WITH_LAB=1 KNTC_WITH_BROWSER=1 infra/host/install-deps.sh
	$(BIN)/python infra/host/audit-deps.py $(LOCKS)
	$(BIN)/python -m tests.run $(PYTEST_ARGS)

test-fast: deps ## unit and integration tests only (no lab, no browser)
	$(BIN)/pytest -m 'not lab and not drill and not browser' -x $(PYTEST_ARGS)

# The hash-locked requirements: all.lock for this machine's venv (every extra the venv installs),
# app.lock for the hosts (core and [app], the same versions as all.lock).
LOCKS := requirements/all.lock requirements/app.lock
UV_COMPILE := $(BIN)/uv pip compile pyproject.toml --generate-hashes --python-version 3.11 --quiet

test-security: deps ## the adversarial suite (tests/security, tests/exchange) without the lab: every attack of runbooks/security.md
	$(BIN)/pytest tests/security tests/exchange -m 'not lab' $(PYTEST_ARGS)

major-upgrade-rehearsal: deps ## PostgreSQL 15 -> 17 (Debian 13's) by logical replication and back, under officers behind PgBouncer, KNTC_UPGRADE_TRIALS times (default 5; test-output/figures.json)
	KNTC_UPGRADE_TRIALS=$${KNTC_UPGRADE_TRIALS:-5} $(BIN)/pytest tests/dr/test_major_upgrade.py -p no:cacheprovider $(PYTEST_ARGS)

lock: deps ## regenerate requirements/*.lock (pinned, with hashes) from pyproject.toml
	$(UV_COMPILE) --extra app --extra ops --extra load --extra test -o requirements/all.lock
	$(UV_COMPILE) --extra app -c requirements/all.lock -o requirements/app.lock

audit: deps ## audit the locks for known vulnerabilities (pip-audit; says when the data is unreachable)
	$(BIN)/python infra/host/audit-deps.py $(LOCKS)

lint: deps ## ruff over the Python code
	$(BIN)/ruff check core_app dr loadtests tests connect_client

.PHONY: help deps app up down stop-local test test-fast test-security major-upgrade-rehearsal lock audit lint

-include infra/lab/lab.mk
-include loadtests/load.mk
-include core_app/dedup/dedup.mk
