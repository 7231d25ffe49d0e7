# kailash-deploy: `make deploy` (set up + deploy the local stack), `make test`.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
VENV ?= .venv
BIN := $(CURDIR)/$(VENV)/bin
export PATH := $(BIN):$(PATH)
export ANSIBLE_CONFIG := $(CURDIR)/ansible.cfg
INVENTORY ?= inventories/local
# not root: ask for the sudo password once (unless sudo needs none)
BECOME_FLAGS := $(shell [ "$$(id -u)" = 0 ] || sudo -n true 2>/dev/null || echo --ask-become-pass)
ANSIBLE_ARGS ?=
SCENARIOS ?= $(notdir $(patsubst %/molecule.yml,%,$(wildcard molecule/*/molecule.yml)))

.PHONY: deploy test test-app venv host lint unit molecule clean lock help

help:
	@echo "make deploy   set up the control node and deploy the stack (INVENTORY=$(INVENTORY))"
	@echo "make test     lint, unit tests, host provisioning and every molecule scenario"

venv:
	@scripts/bootstrap.sh

deploy: venv
	ansible-playbook -i $(INVENTORY) site.yml $(BECOME_FLAGS) $(ANSIBLE_ARGS)

# The Docker engine and the base image the tests need, provisioned by our own role.
host: venv
	ansible-playbook -i inventories/local playbooks/dev_host.yml $(BECOME_FLAGS) $(ANSIBLE_ARGS)

lint: venv
	yamllint --strict .
	ansible-lint --offline --profile production
	ruff check .

unit: venv
	pytest -q tests/unit

molecule: venv host
	ansible-playbook -i localhost, molecule/shared/images.yml
	scripts/molecule-all.sh $(SCENARIOS)

test: lint unit host
	# Kubernetes render + offline validation (installs its tools venv on first use)
	pytest -q tests/k8s
	# every image once, and the default stack (project kailash) that tests/day2 exercises
	ansible-playbook -i inventories/local playbooks/dev_stack.yml $(BECOME_FLAGS)
	# the stack suites in two lanes at once, each lane with its own Compose projects;
	# tests/day2 uses the default project as a user does and leaves it deployed
	scripts/test-lanes.sh
	# dockerd restarted under the default stack (live-restore): alone, it restarts the engine
	pytest -q tests/engine
	# the probe tests measure their own timeouts: alone, on an idle machine
	pytest -q tests/health
	$(MAKE) --no-print-directory molecule

# The reference app image alone, against throwaway datastore containers (about 5 min;
# not part of `make test`: tests/integration/test_app_stack.py covers the same paths
# through the deployed stack, within CI's time budget).
test-app: venv host
	pytest -q tests/app

lock: venv
	{ echo "# Full pin set for Python >= 3.12 (pip freeze of a working .venv); used as constraints."; \
	  echo "# Regenerate: make lock"; $(BIN)/pip freeze --exclude-editable; } > requirements.lock

clean:
	rm -rf $(VENV) .ansible .pytest_cache .ruff_cache
