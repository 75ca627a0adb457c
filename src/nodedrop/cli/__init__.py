"""The ``nodedrop`` command line: ``up``, one service, ``migrate``, ``run`` (see main.py)."""
