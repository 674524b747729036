# Two commands a new machine needs: `make demo` and `make test`. Each installs what it uses.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEB_PACKAGES := openssl mosquitto-clients shellcheck chromium chromium-driver

.PHONY: demo test lint format bench clean deps lock web

# A new machine gets the versions the suite passed with: every package pinned in requirements.lock, installed
# as pinned (--no-deps: the lock holds every dependency, and awsiotsdk's awscrt pin is knowingly overridden,
# see pyproject.toml), then the kit itself (editable, no dependency resolution of its own).
$(STAMP): pyproject.toml requirements.lock
	@bash scripts/install-debian-packages.sh $(DEB_PACKAGES)
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet --no-deps -r requirements.lock
	$(BIN)/python -m pip install --quiet --no-deps -e .
	@touch $(STAMP)

deps: $(STAMP)

# The stack's web page in build/web: web/ and its two npm libraries (pinned by web/package-lock.json).
web:
	bash scripts/build-web.sh

demo: $(STAMP) web
	$(BIN)/jitr demo

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	for function in functions/*/; do $(BIN)/mypy "$$function" || exit 1; done
	AWS_DEFAULT_REGION=us-east-1 $(BIN)/cfn-lint sam/template.yaml
	shellcheck deploy.sh delete.sh scripts/*.sh

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

test: lint web
	bash scripts/run-tests.sh $(BIN)/python

bench: $(STAMP)
	$(BIN)/python scripts/bench_mint.py

# Re-resolve pyproject.toml's ranges in a throwaway venv and pin every transitive version.
lock:
	bash scripts/lock.sh $(PYTHON)

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
