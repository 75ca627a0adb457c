"""The command line of the mutation tool.

``python -m tests.mutation MODULE [options] -- PYTEST_ARGS...`` mutates one module and prints
each mutant's outcome, line and diff, then the score (killed and timed out over all).

``python -m tests.mutation --budget FILE`` runs the modules a budget file lists and fails when a
module's score is below its ``min_score`` or a mutant survives that the file does not explain.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tests.mutation.mutants import Mutant, make_mutants
from tests.mutation.runner import Outcome, Result, Runner, SelectionError

# The mutants whose tests make the module's own behaviour visible: killed or timed out.
_CAUGHT = {Outcome.KILLED, Outcome.TIMEOUT}


@dataclass
class Budget:
    module: str
    tests: list[str]
    min_score: float
    explained: dict[str, str] = field(default_factory=dict)  # survivor key -> why no test fails


def survivor_key(mutant: Mutant, source: str) -> str:
    """A survivor's name that outlives edits elsewhere in the file: where, what, on which text."""
    text = source.splitlines()[mutant.line - 1].strip()
    return f"{mutant.function} | {mutant.description} | {text}"


def score(results: Sequence[Result]) -> float:
    if not results:
        return 1.0
    return sum(r.outcome in _CAUGHT for r in results) / len(results)


def mutate(
    module: str,
    pytest_args: Sequence[str],
    *,
    jobs: int,
    timeout: float,
    functions: Sequence[str] = (),
    lines: tuple[int, int] | None = None,
    verbose: bool = True,
) -> tuple[Runner, list[Result]]:
    os.environ.setdefault("HYPOTHESIS_PROFILE", "dev")
    runner = Runner(module, pytest_args, timeout=timeout, jobs=jobs)
    mutants = [
        m for m in make_mutants(runner.source, str(runner.path)) if _chosen(m, functions, lines)
    ]
    print(f"{module}: {len(mutants)} mutants; checking the selection on the unchanged module")
    runner.prepare()
    covered = [m for m in mutants if runner.tests_of(m)]
    tests = sum(len(runner.tests_of(m)) for m in covered) / max(1, len(covered))
    print(
        f"  passes in {runner.baseline_seconds:.1f} s (traced); {len(covered)} mutants on lines "
        f"it runs, each reached by {tests:.0f} tests on average",
        flush=True,
    )
    started = time.monotonic()

    done: list[Result] = []

    def report(result: Result) -> None:
        done.append(result)
        if verbose or result.outcome not in _CAUGHT:
            _print_result(result)
        elif len(done) % 10 == 0:
            print(f"  {len(done)}/{len(mutants)} done, score so far {score(done):.3f}", flush=True)

    results = runner.run(mutants, report)
    elapsed = time.monotonic() - started
    _print_summary(module, results, elapsed)
    return runner, results


def _chosen(mutant: Mutant, functions: Sequence[str], lines: tuple[int, int] | None) -> bool:
    if functions and not any(
        mutant.function == f or mutant.function.startswith(f + ".") for f in functions
    ):
        return False
    return lines is None or lines[0] <= mutant.line <= lines[1]


def _print_result(result: Result) -> None:
    mutant = result.mutant
    print(
        f"#{mutant.number} {result.outcome.value} ({result.seconds:.1f} s) line {mutant.line} "
        f"in {mutant.function}: {mutant.description}",
        flush=True,
    )
    if result.outcome not in _CAUGHT:
        print("".join(f"    {line}" for line in mutant.diff.splitlines(keepends=True)[2:]), end="")


def _print_summary(module: str, results: Sequence[Result], elapsed: float) -> None:
    counts = {o: sum(r.outcome is o for r in results) for o in Outcome}
    print(
        f"{module}: {len(results)} mutants in {elapsed:.0f} s: "
        + ", ".join(f"{counts[o]} {o.value}" for o in Outcome)
        + f"; score {score(results):.3f}",
        flush=True,
    )


def run_budget(path: Path, *, jobs: int, timeout: float) -> int:
    failures: list[str] = []
    for budget in load_budget(path):
        runner, results = mutate(
            budget.module, budget.tests, jobs=jobs, timeout=timeout, verbose=False
        )
        failures.extend(check_budget(budget, runner.source, results))
    for failure in failures:
        print(f"FAIL: {failure}", file=sys.stderr)
    return 1 if failures else 0


def check_budget(budget: Budget, source: str, results: Sequence[Result]) -> list[str]:
    """What breaks the budget: a score below its minimum, a survivor nobody explained."""
    failures = []
    achieved = score(results)
    if achieved < budget.min_score:
        failures.append(f"{budget.module}: score {achieved:.3f} < min_score {budget.min_score}")
    for result in results:
        key = survivor_key(result.mutant, source)
        if result.outcome not in _CAUGHT and key not in budget.explained:
            failures.append(
                f"{budget.module}: #{result.mutant.number} {result.outcome.value}, not explained "
                f"in the budget; kill it with a test or explain it as\n    {json.dumps(key)}"
            )
    return failures


def load_budget(path: Path) -> list[Budget]:
    data = tomllib.loads(path.read_text())
    return [
        Budget(
            module=entry["module"],
            tests=list(entry["tests"]),
            min_score=float(entry["min_score"]),
            explained=dict(entry.get("explained", {})),
        )
        for entry in data["module"]
    ]


def _lines(text: str) -> tuple[int, int]:
    first, _, last = text.partition("-")
    return int(first), int(last or first)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.mutation",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        usage="%(prog)s MODULE [options] -- PYTEST_ARGS... | --budget FILE",
    )
    parser.add_argument("module", nargs="?", help="dotted module name to mutate")
    parser.add_argument("--budget", type=Path, help="run the modules of a budget file and check")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds per mutant")
    parser.add_argument("--functions", default="", help="comma-separated qualified names")
    parser.add_argument("--lines", type=_lines, help="FIRST-LAST: only mutants starting there")
    parser.add_argument("--quiet", action="store_true", help="print only what survived")
    argv = list(sys.argv[1:] if argv is None else argv)
    split = argv.index("--") if "--" in argv else len(argv)
    args = parser.parse_args(argv[:split])
    pytest_args = argv[split + 1 :]
    # Stopped from outside, the runner still stops the mutants it started (its `finally`).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        if args.budget:
            return run_budget(args.budget, jobs=args.jobs, timeout=args.timeout)
        if not args.module or not pytest_args:
            parser.error("give a module and, after --, the pytest selection")
        functions = [f for f in args.functions.split(",") if f]
        mutate(
            args.module,
            pytest_args,
            jobs=args.jobs,
            timeout=args.timeout,
            functions=functions,
            lines=args.lines,
            verbose=not args.quiet,
        )
    except SelectionError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0
