"""Root conftest: registers the shared fixtures (tests/fixtures/). Keep it small and generic."""

import os

from hypothesis import HealthCheck, settings

# tests/ is no package, so pytest imports this file as "conftest" with tests/ on sys.path, and the
# fixtures as "fixtures.*". Should tests/__init__.py appear, this becomes "tests.conftest"; follow.
_PACKAGE = __name__.rpartition(".")[0]

_FIXTURES = f"{_PACKAGE}.fixtures" if _PACKAGE else "fixtures"

pytest_plugins = [
    f"{_FIXTURES}.servers",
    f"{_FIXTURES}.http_server",
    f"{_FIXTURES}.nats_cluster",
    f"{_FIXTURES}.fake_notifier",
]

# Hypothesis profiles, chosen by HYPOTHESIS_PROFILE (.ci/run sets "ci"; nothing else needs to):
# - "dev" (the default, `make test`): fast, a fifth of CI's examples; each run explores new
#   ones, and what it finds is kept in .hypothesis/ and replayed first;
# - "ci": thorough, the property tests draw the same examples every run, so a run fails for a
#   change and not for the draw, and the blob to reproduce a failure printed.
# Tests that need more examples than the default ask for a multiple of the profile's
# (``settings().max_examples * 3``), so both profiles keep their proportions.
# Both: no per-example deadline and no "too slow" health check. The property tests check
# correctness, and a machine loaded by other work (a load average of 10 on 2 cores is seen here)
# makes an example or its generation slow, not wrong; a test about speed says so itself.
_SLOW_IS_NOT_WRONG = [HealthCheck.too_slow]
settings.register_profile(
    "dev", max_examples=20, deadline=None, suppress_health_check=_SLOW_IS_NOT_WRONG
)
settings.register_profile(
    "ci",
    max_examples=100,
    derandomize=True,
    print_blob=True,
    deadline=None,
    suppress_health_check=_SLOW_IS_NOT_WRONG,
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))
