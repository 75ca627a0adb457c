"""Root conftest: registers the shared fixtures (tests/fixtures/). Keep it small and generic."""

# tests/ is no package, so pytest imports this file as "conftest" with tests/ on sys.path, and the
# fixtures as "fixtures.*". Should tests/__init__.py appear, this becomes "tests.conftest"; follow.
_PACKAGE = __name__.rpartition(".")[0]

pytest_plugins = [f"{_PACKAGE}.fixtures.servers" if _PACKAGE else "fixtures.servers"]
