# nodedrop: `make run` starts the whole system, `make test` runs every test.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PACKAGES := -e libs/contracts[db] -e libs/client -e services/api -e services/scheduler -e services/runner \
            -e services/notifier -e .[test,dev]
PYPROJECTS := pyproject.toml libs/contracts/pyproject.toml libs/client/pyproject.toml $(wildcard services/*/pyproject.toml)

.PHONY: install run test test-unit test-integration lint format bench chaos mutate mutate-budget mutate-mutmut mutate-results clean web test-web

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

# PYTEST_WORKERS=2 shares the test files out to two processes (a file's tests stay together):
# about 6 minutes on 2 cores, against over 10 in one process (0), which is what CI runs: two
# end-to-end systems then start and stop side by side and their shutdown timings get tight.
PYTEST_WORKERS ?= 2
test: install
	$(BIN)/pytest -n $(PYTEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

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

# make chaos: the fault-injection scenarios of tests/chaos against the real processes (1-7 on one
# nats-server, 9a-9e on a 3-node cluster), results into docs/reliability.md (~8 min); QUICK=1:
# the smaller loads CI runs (~5 min); ONLY=1,9c: some scenarios (nothing written).
chaos: install
	$(BIN)/python -m tests.chaos $(if $(QUICK),--quick,) $(if $(ONLY),--only $(ONLY),)

# make mutate MODULE=nodedrop.scheduler.core.rules TESTS='tests/unit/scheduler/test_rules.py':
# mutation testing of one module against a chosen pytest selection (python -m tests.mutation),
# each mutant in a forked process that runs only the tests reaching its line; minutes for a core
# module. Optional: FUNCTIONS=a,b, LINES=FIRST-LAST, JOBS=N, QUIET=1 (print only survivors).
# make mutate-budget: the modules of tests/mutation/budget.toml, failing below their score or on
# a survivor the file does not explain (CI). make mutate-mutmut: the exhaustive mutmut run of
# the scheduler core and the notifier's projection (many hours); docs/reliability.md.
mutate: install
	@test -n "$(MODULE)" -a -n "$(TESTS)" || { echo "usage: make mutate MODULE=dotted.name TESTS='pytest args'" >&2; exit 2; }
	HYPOTHESIS_PROFILE=$${HYPOTHESIS_PROFILE:-dev} $(BIN)/python -m tests.mutation $(MODULE) \
	    $(if $(JOBS),--jobs $(JOBS),) $(if $(FUNCTIONS),--functions $(FUNCTIONS),) \
	    $(if $(LINES),--lines $(LINES),) $(if $(QUIET),--quiet,) -- $(TESTS)
mutate-budget: install
	HYPOTHESIS_PROFILE=$${HYPOTHESIS_PROFILE:-dev} $(BIN)/python -m tests.mutation \
	    --budget tests/mutation/budget.toml $(if $(JOBS),--jobs $(JOBS),)
MUTATE_DIR := build/mutate
mutate-mutmut: install
	rm -rf $(MUTATE_DIR) && mkdir -p $(MUTATE_DIR)/src/nodedrop $(MUTATE_DIR)/tests
	cp -r services/scheduler/src/nodedrop/scheduler services/notifier/src/nodedrop/notifier \
	    $(MUTATE_DIR)/src/nodedrop/
	cp -r tests/conftest.py tests/fixtures tests/unit $(MUTATE_DIR)/tests/
	cp pyproject.toml $(MUTATE_DIR)/
	printf '%s\n' '[mutmut]' 'source_paths = src' \
	    'only_mutate =' '    src/nodedrop/scheduler/core/*' '    src/nodedrop/notifier/projection.py' \
	    'also_copy =' '    tests' '    pyproject.toml' \
	    'pytest_add_cli_args_test_selection =' '    tests/unit/scheduler' '    tests/unit/notifier' \
	    'pytest_add_cli_args =' '    -p' '    no:cacheprovider' > $(MUTATE_DIR)/setup.cfg
	cd $(MUTATE_DIR) && $(CURDIR)/$(BIN)/mutmut run $(if $(JOBS),--max-children $(JOBS),) $(if $(ONLY),'$(ONLY)',)
	$(MAKE) --no-print-directory mutate-results
mutate-results:
	cd $(MUTATE_DIR) && $(CURDIR)/$(BIN)/mutmut results

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
