# Everything runs from a virtual environment made here on first use; only Python 3.11+ is needed.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: run test check format bench install install-dev lock clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Installs come from the lock files (exact versions, hashes checked); the project itself
# goes in on top without its dependencies, so nothing unpinned slips in.
$(VENV)/.installed: pyproject.toml requirements.lock | $(BIN)/python
	$(BIN)/python -m pip install --quiet -r requirements.lock
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml requirements-dev.lock | $(BIN)/python
	$(BIN)/python -m pip install --quiet -r requirements-dev.lock
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $(VENV)/.installed $@

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

## make lock: pin pyproject.toml's dependencies into requirements*.lock. Versions already
## pinned stay; LOCK_ARGS=--upgrade moves every pin, LOCK_ARGS="--upgrade-package NAME" one.
LOCK = $(BIN)/uv pip compile pyproject.toml --universal --python-version 3.11 \
	--generate-hashes --quiet --custom-compile-command 'make lock' $(LOCK_ARGS)
lock: | $(BIN)/python
	$(BIN)/python -m pip install --quiet 'uv>=0.5'  # already there after install-dev
	$(LOCK) -o requirements.lock
	$(LOCK) --extra dev -o requirements-dev.lock

## make run: migrate, create the CA on first start, serve both services and the worker.
run: install
	$(BIN)/ca-admin run

## make test: lint, type-check, then the whole suite (PostgreSQL if DATABASE_URL says so),
## measuring coverage; below pyproject.toml's fail_under it fails.
test: install-dev check
	$(BIN)/python -m pytest --cov --cov-report=term $(PYTEST_ARGS)

check: install-dev
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(BIN)/mypy

format: install-dev
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: install-dev
	$(BIN)/python -m bench $(BENCH_ARGS)

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache .coverage .coverage.*
