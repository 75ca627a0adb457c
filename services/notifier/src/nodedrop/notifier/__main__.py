"""``python -m nodedrop.notifier``."""

from nodedrop.notifier.main import main

main()
