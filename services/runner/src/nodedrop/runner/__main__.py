"""``python -m nodedrop.runner``."""

from nodedrop.runner.main import main

main()
