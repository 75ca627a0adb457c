"""``python -m tests.bench``: see :mod:`tests.bench.harness`."""

from tests.bench.harness import main

main()
