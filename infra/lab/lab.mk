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

.PHONY: lab-deps lab-up lab-down lab-status test-lab
