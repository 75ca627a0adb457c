"""The mutation tool run for real on a small module and its tests, in forked pytest runs: a mutant
the tests catch is killed, one they cannot tell apart survives, one that loops times out, and one
on a line no test runs is not covered; the budget check fails on an unexplained survivor."""

from __future__ import annotations

import textwrap
import uuid
from pathlib import Path

import pytest
from tests.mutation.cli import Budget, check_budget, survivor_key
from tests.mutation.mutants import Mutant, make_mutants
from tests.mutation.runner import Outcome, Runner, SelectionError

MODULE = """\
def clamp(value, limit):
    if value > limit:
        return limit
    return value


def countdown(n):
    while n > 0:
        n -= 1
    return n


def unused():
    return 1
"""

TESTS = """\
from {package}.calc import clamp, countdown


def test_clamp():
    # clamp(3, 3) is never asked: '>' and '>=' give the same answer, so that mutant survives.
    assert clamp(5, 3) == 3
    assert clamp(1, 3) == 1


def test_countdown():
    assert countdown(2) == 0
"""


@pytest.fixture
def package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[str, Path]:
    name = f"mutation_demo_{uuid.uuid4().hex}"
    (tmp_path / name).mkdir()
    (tmp_path / name / "__init__.py").write_text("")
    (tmp_path / name / "calc.py").write_text(MODULE)
    test_file = tmp_path / f"test_{name}.py"
    test_file.write_text(textwrap.dedent(TESTS.format(package=name)))
    monkeypatch.syspath_prepend(str(tmp_path))
    return f"{name}.calc", test_file


def _pick(runner: Runner, description: str, line: int) -> Mutant:
    [mutant] = [
        m for m in make_mutants(runner.source) if m.description == description and m.line == line
    ]
    return mutant


def _prepared(package: tuple[str, Path], timeout: float = 300) -> Runner:
    module, test_file = package
    runner = Runner(module, [str(test_file)], timeout=timeout, jobs=2)
    runner.prepare()
    return runner


def test_a_caught_mutant_is_killed_and_an_indistinguishable_one_survives(
    package: tuple[str, Path],
) -> None:
    runner = _prepared(package)
    killed = _pick(runner, "return None", 3)
    survivor = _pick(runner, "'>' -> '>='", 2)
    not_covered = _pick(runner, "return None", 14)

    results = runner.run([killed, survivor, not_covered])

    assert [r.outcome for r in results] == [Outcome.KILLED, Outcome.SURVIVED, Outcome.NOT_COVERED]


def test_a_mutant_that_never_ends_is_stopped_at_the_time_limit(package: tuple[str, Path]) -> None:
    # Both loop forever (n only grows, or never shrinks), so any limit is reached.
    runner = _prepared(package, timeout=5)
    grows = _pick(runner, "'-' -> '+'", 9)
    stays = _pick(runner, "remove statement", 9)

    results = runner.run([grows, stays])

    assert [r.outcome for r in results] == [Outcome.TIMEOUT, Outcome.TIMEOUT]


def test_a_selection_that_fails_unchanged_is_refused(package: tuple[str, Path]) -> None:
    module, test_file = package
    test_file.write_text(test_file.read_text() + "\n\ndef test_broken():\n    assert False\n")
    runner = Runner(module, [str(test_file)], timeout=300)

    with pytest.raises(SelectionError, match="does not pass on the unchanged"):
        runner.prepare()


def test_the_budget_fails_on_a_survivor_it_does_not_explain_and_on_a_low_score(
    package: tuple[str, Path],
) -> None:
    module = package[0]
    runner = _prepared(package)
    killed = _pick(runner, "return None", 3)
    survivor = _pick(runner, "'>' -> '>='", 2)
    results = runner.run([killed, survivor])
    key = survivor_key(survivor, runner.source)
    assert key == "clamp | '>' -> '>=' | if value > limit:"

    unexplained = check_budget(Budget(module, [], min_score=0.5), runner.source, results)
    explained = check_budget(
        Budget(module, [], min_score=0.5, explained={key: "clamp(3, 3) is 3 either way"}),
        runner.source,
        results,
    )
    too_low = check_budget(
        Budget(module, [], min_score=0.6, explained={key: "equivalent"}), runner.source, results
    )

    assert len(unexplained) == 1
    assert "not explained" in unexplained[0]
    assert explained == []
    assert too_low == [f"{module}: score 0.500 < min_score 0.6"]
