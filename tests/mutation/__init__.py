"""Mutation testing that finishes: the mutants of one module, each run in-process against a
chosen pytest selection (``python -m tests.mutation``, ``make mutate``; docs/reliability.md,
"Mutation testing")."""
