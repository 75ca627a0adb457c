"""``python -m tests.chaos``: see :mod:`tests.chaos.harness`."""

from tests.chaos.harness import main

main()
