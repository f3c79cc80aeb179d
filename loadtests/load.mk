# Load tests, the capacity model and the application benchmark (loadtests/). Included by the Makefile.
#   make load                          busy day against the local app (its own cluster and `kntc serve`)
#   make load HOST=https://kntc.lab    the same against a running deployment (KNTC_LOAD_ADMIN_USER/PASSWORD)
#   make load LOAD_SHAPE=breakpoint    any shape: ramp typical_day busy_day spike soak breakpoint fixed
#   make bench-app                     endpoint vs pgbench ratios (not a timed test)
#   make bench-audit                   concurrent audited writers in different units (waits on each other)
LOAD_SHAPE ?= busy_day
LOAD_ARGS ?=
BENCH_ARGS ?=
LOAD_PG_ROOT ?= .data/local
LOAD_PG_PORT ?= 55432
# Only a URL counts: some shells export HOST as the machine's name.
LOAD_TARGET = $(if $(filter http://% https://%,$(HOST)),--host $(HOST),--pg-root $(LOAD_PG_ROOT) --pg-port $(LOAD_PG_PORT))

load: deps ## load run (busy day by default; HOST=https://… for the lab); report in loadtests/reports/
	$(BIN)/python -m loadtests.run --shape $(LOAD_SHAPE) $(LOAD_TARGET) $(LOAD_ARGS)

bench-app: deps ## case file, inbox, search, record: req/s and p50/p95/p99 vs pgbench of the same SQL
	$(BIN)/python -m loadtests.bench_app $(LOAD_TARGET) $(BENCH_ARGS)

bench-audit: deps ## audited writers in different units: commits/s and waits (WRITERS=8, on the local cluster)
	$(BIN)/kntc local up --no-serve >/dev/null
	@eval "$$($(BIN)/kntc local env)" && $(BIN)/python -m loadtests.bench_audit_writers \
		--dsn "$$KNTC_ADMIN_DATABASE_URL" --writers $(or $(WRITERS),8) --seconds 10

load-smoke: deps ## the load suite's smoke test against the local app (about a minute)
	$(BIN)/pytest tests/load -q $(PYTEST_ARGS)

capacity: ## print the capacity model (national users, req/s, sizing with CAPACITY_ARGS)
	$(BIN)/python -m loadtests.capacity $(CAPACITY_ARGS)

.PHONY: load bench-app bench-audit load-smoke capacity
