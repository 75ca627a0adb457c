"""``python -m tests.mutation``: see :mod:`tests.mutation.cli`."""

import sys

from tests.mutation.cli import main

sys.exit(main())
