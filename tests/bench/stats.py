"""Percentiles and the shapes scenario results are reported in."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q`` quantile (0..1) of all samples, nearest rank; ``inf`` for no samples."""
    if not values:
        return math.inf
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else math.inf


def ms(seconds: float) -> float:
    return seconds * 1000.0


def fmt_ms(value: float) -> str:
    """A duration in milliseconds, with the precision that matters at its size."""
    if math.isinf(value) or math.isnan(value):
        return "n/a"
    if value < 10:
        return f"{value:.2f} ms"
    if value < 1000:
        return f"{value:.1f} ms"
    return f"{value / 1000:.2f} s"


@dataclass
class Row:
    """One line of the results table."""

    id: str
    scenario: str
    target: str
    result: str
    verdict: str = "-"
    peer: str = ""
    ratio: str = ""


@dataclass
class Outcome:
    """What a scenario reports: table rows, markdown detail lines, and raw numbers by name (the
    side-by-side comparison reads these)."""

    rows: list[Row] = field(default_factory=list)
    details: list[str] = field(default_factory=list)
    metrics: dict[str, float] = field(default_factory=dict)


def verdict(
    value: float, limit: float, stretch: float | None = None, *, higher: bool = False
) -> str:
    """``pass``, ``pass (stretch)`` or ``FAIL`` with how far off, for "value <= limit" (or >=)."""
    if math.isnan(value):
        return "FAIL (no result)"
    ok = value >= limit if higher else value <= limit
    if ok:
        if stretch is not None and (value >= stretch if higher else value <= stretch):
            return "pass (stretch)"
        return "pass"
    if math.isinf(value):
        return "FAIL (no result)"
    if higher:
        return f"FAIL ({value / limit:.0%} of target)" if limit else "FAIL"
    return f"FAIL ({value / limit:.1f}x the limit)"


def combine(*verdicts: str) -> str:
    """One verdict for several criteria: the failures, else the weakest pass."""
    failed = [v for v in verdicts if not v.startswith("pass")]
    if failed:
        return "; ".join(failed)
    return "pass (stretch)" if all(v == "pass (stretch)" for v in verdicts) else "pass"
