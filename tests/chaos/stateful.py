"""Scenario 8: the Hypothesis state machine of the scheduler core with crash-and-rebuild steps
between events (tests/unit/scheduler/test_stateful_crashes.py), run as part of the suite."""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
import time
from pathlib import Path

from tests.chaos.checks import Result

TEST = "tests/unit/scheduler/test_stateful_crashes.py"
ROOT = Path(__file__).resolve().parents[2]


def _settings() -> tuple[int, int]:
    from tests.unit.scheduler.test_stateful_crashes import CrashingScheduler

    settings = CrashingScheduler.TestCase.settings
    return settings.max_examples, settings.stateful_step_count


async def s8_stateful(env: object) -> Result:
    examples, steps = _settings()
    result = Result(
        "8. scheduler state machine",
        f"Hypothesis: {examples} examples of up to {steps} steps (`{TEST}`)",
        "crash (also halfway through recording a batch) and rebuild between any two steps; "
        "inputs republished after the duplicate window",
    )
    started = time.monotonic()
    process = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", TEST],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    result.took_s = time.monotonic() - started
    summary = process.stdout.strip().splitlines()[-1] if process.stdout.strip() else ""
    result.notes.append(f"pytest: {summary}")
    result.expect(process.returncode == 0, f"pytest exited {process.returncode}: {summary}")
    passed = re.search(r"(\d+) passed", summary)
    result.expect(passed is not None, "no test passed")
    return result
