"""nodedrop's model, shared by every service: workflow definitions and node types, the event
catalogue and its codec, ids, items, the failure rules, the expression language, and the
routing of executions to partitions and subjects.

Pure: no I/O library and nothing of :mod:`nodedrop.platform` is imported here (an import rule
checks it); every module is importable on its own.
"""
