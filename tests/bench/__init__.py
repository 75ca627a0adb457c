"""Benchmarks. ``make bench`` (``python -m tests.bench``) runs the system scenarios S1-S7
(:mod:`tests.bench.harness`); micro-benchmarks run alone, e.g.
``python -m tests.bench.serialization``.
"""
