# nodedrop: `make run` starts the whole system, `make test` runs every test.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PACKAGES := -e libs/contracts[db] -e services/api -e services/scheduler -e services/runner \
            -e services/notifier -e .[test,dev]
PYPROJECTS := pyproject.toml libs/contracts/pyproject.toml $(wildcard services/*/pyproject.toml)

.PHONY: install run test test-unit test-integration lint format bench clean

install: $(STAMP)

$(STAMP): $(PYPROJECTS)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet $(PACKAGES)
	touch $(STAMP)

run: install
	$(BIN)/nodedrop up

test: install
	$(BIN)/pytest $(PYTEST_ARGS)

test-unit: install
	$(BIN)/pytest tests/unit $(PYTEST_ARGS)

test-integration: install
	$(BIN)/pytest tests/integration tests/e2e $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

format: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# make bench: every scenario of tests/bench, results into docs/benchmarks.md (several minutes);
# QUICK=1: the seconds-long smoke CI runs; ONLY=S1,S4: some scenarios (nothing written).
bench: install
	$(BIN)/python -m tests.bench $(if $(QUICK),--quick,) $(if $(ONLY),--only $(ONLY),)

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
