"""Benchmarks: run one with ``.venv/bin/python -m tests.bench.<name>``."""
