# nodedrop: `make run` starts the whole system, `make test` runs every test.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PACKAGES := -e libs/contracts[db] -e services/api -e services/scheduler -e services/runner \
            -e services/notifier -e .[test,dev]
PYPROJECTS := pyproject.toml libs/contracts/pyproject.toml $(wildcard services/*/pyproject.toml)

.PHONY: install run test test-unit test-integration lint format bench chaos clean web test-web

install: $(STAMP)

$(STAMP): $(PYPROJECTS)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet $(PACKAGES)
	touch $(STAMP)

run: install web/dist/index.html
	$(BIN)/nodedrop up

# The web UI (web/, needs Node.js 20 and npm): built by `make run` when missing, by `make web` always.
web/dist/index.html:
	@if command -v npm >/dev/null; then $(MAKE) web; \
	else echo "warning: npm not found: the web UI is not built (install Node.js 20 and npm)"; fi
web:
	cd web && npm ci --no-audit --no-fund && npm run build
# Vitest unit tests, then the browser tests (headless Chromium) against a real `nodedrop up`.
test-web: install web
	cd web && npm test && npm run test:browser

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

# make chaos: the fault-injection scenarios of tests/chaos against the real processes, results
# into docs/reliability.md (~4 min); QUICK=1: the smaller loads CI runs (~3 min); ONLY=1,3:
# some scenarios (nothing written).
chaos: install
	$(BIN)/python -m tests.chaos $(if $(QUICK),--quick,) $(if $(ONLY),--only $(ONLY),)

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
