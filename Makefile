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

test: ## run every test (unit, integration, lab, drills, browser)
	@KNTC_WITH_LAB=1 KNTC_WITH_BROWSER=1 infra/host/install-deps.sh
	$(BIN)/pytest $(PYTEST_ARGS)

test-fast: deps ## unit and integration tests only (no lab, no browser)
	$(BIN)/pytest -m 'not lab and not drill and not browser' -x $(PYTEST_ARGS)

lint: deps ## ruff over the Python code
	$(BIN)/ruff check core_app dr loadtests tests

.PHONY: help deps app up down stop-local test test-fast lint

-include infra/lab/lab.mk
-include loadtests/load.mk
-include core_app/dedup/dedup.mk
