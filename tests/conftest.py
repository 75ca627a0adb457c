"""Root conftest: registers the shared fixtures (tests/fixtures/). Keep it small and generic."""

import os

from hypothesis import settings

# tests/ is no package, so pytest imports this file as "conftest" with tests/ on sys.path, and the
# fixtures as "fixtures.*". Should tests/__init__.py appear, this becomes "tests.conftest"; follow.
_PACKAGE = __name__.rpartition(".")[0]

_FIXTURES = f"{_PACKAGE}.fixtures" if _PACKAGE else "fixtures"

pytest_plugins = [f"{_FIXTURES}.servers", f"{_FIXTURES}.http_server", f"{_FIXTURES}.nats_cluster"]

# In CI the property tests draw the same examples every run (as many as anywhere), so a run fails
# for a change and not for the draw; runs elsewhere keep exploring new examples, and what they
# find is kept in .hypothesis/ and replayed first.
settings.register_profile("ci", derandomize=True)
if os.environ.get("CI"):
    settings.load_profile("ci")
