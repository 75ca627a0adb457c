"""``make chaos``: fault injection against the real processes on loopback (issue 9).

    .venv/bin/python -m tests.chaos [--quick] [--only 1,3] [--write | --no-write]

See :mod:`tests.chaos.harness`; the scenarios are in :mod:`tests.chaos.scenarios`, the common
check in :mod:`tests.chaos.checks`, the results in docs/reliability.md.
"""
