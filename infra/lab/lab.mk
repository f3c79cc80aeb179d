# The two-site Podman lab. Included by the top-level Makefile (-include infra/lab/lab.mk).
# Needs root, and `KNTC_WITH_LAB=1 infra/host/install-deps.sh` (podman, runc, debootstrap, nftables).
LAB := infra/lab/lab.py
LAB_PYTEST_ARGS ?=

lab-deps:
	@KNTC_WITH_LAB=1 infra/host/install-deps.sh

lab-up: lab-deps ## build, start and provision the two-site lab (prints the HTTPS addresses)
	$(LAB) up

lab-down: ## remove the lab's containers and networks (keeps the cached image)
	$(LAB) down

lab-status: ## show the lab's hosts, the app addresses and the memory in use
	$(LAB) status

test-lab: lab-deps ## infrastructure tests against the lab (brings it up if needed)
	.venv/bin/pytest -m lab tests/infra $(LAB_PYTEST_ARGS)

failover-trials: lab-deps ## ten unplanned failovers and ten planned switchovers in the DC under a writer (median, p95; test-output/figures.json)
	KNTC_LAB_TRIALS=$${KNTC_LAB_TRIALS:-10} .venv/bin/pytest -m lab tests/infra/test_failover.py $(LAB_PYTEST_ARGS)

dc-loss-trials: lab-deps ## ten unplanned losses of the DC site, each failed over to the DR and switched back, under a writer and officers at the DR (RTO, RPO: median, p95; test-output/figures.json)
	KNTC_LAB_TRIALS=$${KNTC_LAB_TRIALS:-10} .venv/bin/pytest -m lab tests/drills/test_site_failover.py $(LAB_PYTEST_ARGS)

upgrade-rehearsal: lab-deps ## a rolling minor upgrade and a PgBouncer-paused switchover in the DC under officers and a writer (write gap, failed requests)
	.venv/bin/pytest -m lab tests/infra/test_upgrade.py tests/infra/test_pgbouncer.py -s $(LAB_PYTEST_ARGS)

release: lab-deps ## roll a release of the case service over the lab's app hosts, one at a time behind a drain at the site balancers (REF=<commit>, default HEAD)
	cd infra/ansible && ../../.venv/bin/ansible-playbook -i inventories/lab release_app.yml -e app_git_ref=$${REF:-HEAD}

release-rehearsal: lab-deps ## a rolling release, a failing one that rolls back by itself and a return, under officers reading through the balancers
	.venv/bin/pytest -m lab tests/infra/test_release.py -s $(LAB_PYTEST_ARGS)

# The sites on two releases, as the move passes through them: the lab is made again from nothing in
# that shape (a DC of another shape would keep a wal_level that needs a restart). The second drill
# keeps the move, remakes the DC's hosts on Debian 13 and ends with both sites there.
MOVE_SUITE := dc=bookworm,dr=trixie
dr-first-move: lab-deps ## the DR first: remake the lab with the DR on Debian 13 and PostgreSQL 17, fill it by logical replication, move the primary role there and back under a writer, then keep it: the DC made anew on Debian 13 as its standby, the role home (reports in .data/dr-reports)
	$(LAB) down
	KNTC_LAB_SUITE=$(MOVE_SUITE) $(LAB) up
	KNTC_LAB_SUITE=$(MOVE_SUITE) .venv/bin/pytest -m move -p no:cacheprovider -s tests/drills/test_site_move.py $(LAB_PYTEST_ARGS)

.PHONY: lab-deps lab-up lab-down lab-status test-lab failover-trials dc-loss-trials upgrade-rehearsal release release-rehearsal dr-first-move
