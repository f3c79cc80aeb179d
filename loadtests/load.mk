# Load tests, the capacity model and the application benchmark (loadtests/). Included by the Makefile.
#   make load                          busy day against the local app (its own cluster and `kntc serve`)
#   make load HOST=https://kntc.lab    the same against a running deployment (KNTC_LOAD_ADMIN_USER/PASSWORD)
#   make load LOAD_SHAPE=breakpoint    any shape: ramp typical_day busy_day spike soak breakpoint fixed
#   make bench-app                     endpoint vs pgbench ratios (not a timed test)
#   make bench-app BENCH_ARGS=--profile   the same, and whose code the app's CPU went to (py-spy)
#   make bench-login                   what a login costs at the chosen argon2id cost (and at the default)
#   make bench-reports                 periodic reports for the country and a province on N=1,000,000 case files
#   make bench-audit                   concurrent audited writers in different units (waits on each other)
#   make bench-notify                  citizens' notifications through the outbox: queued/s, SMS/s, e-mail/s
#                                      (BENCH_ARGS="--cases 2000 --workers 2")
#   make bench-exchange                the exchange API behind nginx with mutual TLS: submissions/s, feed and
#                                      webhook lag at 12/s and 60/s, CPU per message (BENCH_ARGS=--help)
#   make accounts-national             the national roster (162,318 accounts) imported on the lab's migrate host, timed
#   make accounts-national IMPORT_INTO=local ACCOUNTS=2000   a province's roster into the local cluster
#                                      (or into KNTC_ADMIN_DATABASE_URL's database when that is set)
#   make load-roster                   OFFICERS (10,000) distinct officers of that roster log in and work
#                                      (HOST=https://… with IMPORT_INTO=lab for the lab)
#   make national-data                 national-size data: every unit, the national roster, N=5,000,000 case files
#                                      with their timeline, time limits, assignments (database kntc_national_<N>)
#   make load LOAD_DATABASE=kntc_national_5000000   any of load, bench-app, bench-reports on that database
LOAD_SHAPE ?= busy_day
LOAD_ARGS ?=
BENCH_ARGS ?=
LOAD_PG_ROOT ?= .data/local
LOAD_PG_PORT ?= 55432
# The database of the embedded cluster to work on (default: the app's own; bench-reports: its own).
LOAD_DATABASE ?=
export KNTC_LOAD_DATABASE = $(LOAD_DATABASE)
# make national-data N=20000 for a quick one (N alone defaults to the duplicate benchmark's 1,000,000).
NATIONAL_CASES = $(if $(filter command line environment,$(origin N)),$(N),5000000)
NATIONAL_ARGS ?=
# Only a URL counts: some shells export HOST as the machine's name.
LOAD_TARGET = $(if $(filter http://% https://%,$(HOST)),--host $(HOST),--pg-root $(LOAD_PG_ROOT) --pg-port $(LOAD_PG_PORT))

load: deps ## load run (busy day by default; HOST=https://… for the lab); report in loadtests/reports/
	$(BIN)/python -m loadtests.run --shape $(LOAD_SHAPE) $(LOAD_TARGET) $(LOAD_ARGS)

bench-app: deps ## case file, inbox, search, record: req/s and p50/p95/p99 vs pgbench of the same SQL
	$(BIN)/python -m loadtests.bench_app $(LOAD_TARGET) $(BENCH_ARGS)

# Two sides alternately on one bench cluster, reads only: OTHER=<source tree> (e.g. `git archive` of a
# commit) against this tree, or MODES=1 for this tree's pipeline mode against the pooler's mode.
bench-alternate: deps ## CPU per read of two apps (OTHER=<tree>) or of the two connection modes (MODES=1), round after round
	$(BIN)/python -m loadtests.bench_alternate $(if $(MODES),--modes,--other-app $(OTHER)) $(BENCH_ARGS)

national-data: deps ## national-size data (N=5,000,000 case files, 162,318 accounts) into kntc_national_<N>, timed
	$(BIN)/python -m loadtests.national --cases $(NATIONAL_CASES) --pg-root $(LOAD_PG_ROOT) --pg-port $(LOAD_PG_PORT) \
		$(NATIONAL_ARGS)

# The lab's own database (both sites, five copies on this disk): N=300000 fits beside a CI run's lab.
national-data-lab: deps ## national roster and N case files into the lab's database through the migrate host, timed
	$(BIN)/python -m loadtests.national --lab --cases $(or $(N),300000) $(NATIONAL_ARGS)

bench-login: deps ## logins at the chosen argon2id cost vs the library default: logins/s, p50/p95/p99, CPU, memory
	$(BIN)/python -m loadtests.bench_login --pg-root $(LOAD_PG_ROOT) --pg-port $(LOAD_PG_PORT) $(BENCH_ARGS)

bench-exchange: deps ## exchange API behind nginx (mutual TLS): submissions/s, p95, feed and webhook lag, CPU per message
	$(BIN)/python -m loadtests.bench_exchange --pg-root $(LOAD_PG_ROOT) --pg-port $(LOAD_PG_PORT) $(BENCH_ARGS)
# Periodic reports at national size: its own database kntc_reports_<N> (generated once, about 40 min for
# 1,000,000 case files on 2 shared cores), or LOAD_DATABASE=kntc_national_<N> (make national-data), then
# each form as page, XLSX and PDF for the country, the busiest province and its busiest commune.
bench-reports: deps ## periodic reports: page/XLSX/PDF times per level on N synthetic case files (default 1,000,000)
	$(BIN)/python -m loadtests.bench_reports --cases $(or $(N),1000000) --root $(LOAD_PG_ROOT) --port $(LOAD_PG_PORT) \
		$(BENCH_ARGS)

bench-audit: deps ## audited writers in different units: commits/s and waits (WRITERS=8, on the local cluster)
	$(BIN)/kntc local up --no-serve >/dev/null
	@eval "$$($(BIN)/kntc local env)" && $(BIN)/python -m loadtests.bench_audit_writers \
		--dsn "$$KNTC_ADMIN_DATABASE_URL" --writers $(or $(WRITERS),8) --seconds 10

bench-notify: deps ## notifications/s through the outbox: queued, sent to the SMS simulator and to aiosmtpd
	$(BIN)/python -m loadtests.bench_notify --pg-root $(LOAD_PG_ROOT) --pg-port $(LOAD_PG_PORT) $(BENCH_ARGS)

# The roster and its import (loadtests/roster.py, loadtests/accounts_import.py); the initial passwords
# of each target's imports are kept in $(ROSTER_DIR)/credentials-<target>.csv (0600) for the first logins.
ACCOUNTS ?= 162318
ROSTER_SEED ?= 1
IMPORT_INTO ?= lab
ROSTER_DIR ?= loadtests/reports/roster
ROSTER ?= $(ROSTER_DIR)/roster-$(ACCOUNTS)-seed$(ROSTER_SEED).csv
ROSTER_ARGS ?=
IMPORT_ARGS ?=
IMPORT_TARGET = $(if $(filter lab,$(IMPORT_INTO)),--lab,--pg-root $(LOAD_PG_ROOT) --pg-port $(LOAD_PG_PORT))

accounts-national: deps ## roster of ACCOUNTS officers (162,318) imported, timed, into the lab (IMPORT_INTO=local: here)
	$(BIN)/python -m loadtests.roster --accounts $(ACCOUNTS) --seed $(ROSTER_SEED) --out $(ROSTER) $(ROSTER_ARGS)
	$(BIN)/python -m loadtests.accounts_import $(ROSTER) $(IMPORT_TARGET) \
		--credentials $(ROSTER_DIR)/credentials-$(IMPORT_INTO).csv $(IMPORT_ARGS)

# OFFICERS distinct officers of the roster imported by accounts-national (same ACCOUNTS, ROSTER_SEED and
# IMPORT_INTO): their first logins, then ROSTER_USERS users whose sessions last ROSTER_SESSION seconds,
# so that ROSTER_USERS / ROSTER_SESSION officers log in per second, until OFFICERS distinct officers
# have logged in (at most ROSTER_MINUTES).
OFFICERS ?= 10000
ROSTER_USERS ?= 300
ROSTER_SESSION ?= 30
ROSTER_MINUTES ?= 40
ROSTER_PACE ?= 5

load-roster: deps ## OFFICERS (10,000) distinct officers of the imported roster log in and work (after accounts-national)
	$(BIN)/python -m loadtests.run --shape fixed --users $(ROSTER_USERS) --run-time $(ROSTER_MINUTES)m \
		--session-seconds $(ROSTER_SESSION) --pace $(ROSTER_PACE) $(LOAD_TARGET) --officers $(OFFICERS) \
		--roster-key $(basename $(ROSTER)).key.csv --roster-credentials $(ROSTER_DIR)/credentials-$(IMPORT_INTO).csv \
		$(LOAD_ARGS)

# A run from this machine against the lab passes the lab's nginx as the lab's gateway addresses,
# limited like one office: the window (infra/ansible/capacity_window.yml) lifts that for the run.
LAB_GENERATORS ?= ["10.231.1.254", "10.231.2.254"]

lab-capacity-window: deps ## open the lab's capacity-test window for this machine (WINDOW=close closes it)
	cd infra/ansible && $(CURDIR)/$(BIN)/ansible-playbook -i inventories/lab capacity_window.yml \
		$(if $(filter close,$(WINDOW)),,-e '{"capacity_generators": $(LAB_GENERATORS)}')

load-smoke: deps ## the load suite's smoke test against the local app (about a minute)
	$(BIN)/pytest tests/load -q $(PYTEST_ARGS)

capacity: ## print the capacity model (national users, req/s, sizing with CAPACITY_ARGS)
	$(BIN)/python -m loadtests.capacity $(CAPACITY_ARGS)

.PHONY: national-data national-data-lab load bench-app bench-alternate bench-login bench-audit bench-notify bench-exchange bench-reports load-smoke capacity accounts-national load-roster lab-capacity-window

# The whole national population at once (loadtests/CAPACITY.md §10): every officer of the roster that
# `make accounts-national IMPORT_INTO=local` imported (same ACCOUNTS and ROSTER_SEED), one Locust user
# each, mostly thinking, for about 6 minutes against the local stack (one Locust worker per core); prints
# the stages' users and req/s and the load generator's own memory and CPU. LOAD_ARGS="--pace 0.001" offers more.
NATIONAL_IMPORT ?= local

load-national: deps ## every officer of the imported roster at once: users, req/s, the generator's memory and CPU
	$(BIN)/python -m loadtests.run --national $(LOAD_TARGET) --roster-key $(basename $(ROSTER)).key.csv \
		--roster-credentials $(ROSTER_DIR)/credentials-$(NATIONAL_IMPORT).csv $(LOAD_ARGS)

.PHONY: load-national
