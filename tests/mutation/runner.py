"""Runs a pytest selection against each mutant of one module, a forked process per mutant.

The parent imports once what the selection needs and does not depend on the mutated module
(pytest, Hypothesis, pydantic, the contracts, ...), found by a first, traced run of the unchanged
module; each child then imports the mutated module afresh from the mutant's source (an import
hook serves it under the module's own name and file) along with everything that imports it, and
runs with ``-x`` the tests of the selection that ran the mutant's lines in the traced run (the
others cannot tell it apart). A child still running at the time limit is killed: a timeout (a
mutant that loops). Mutants on lines no test runs are reported as not covered, without a run.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import os
import signal
import sys
import tempfile
import time
from collections.abc import Callable, Generator, Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from types import FrameType, ModuleType
from typing import Any

import pytest
from tests.mutation.mutants import Mutant

# pytest's exit code when every test passed: the mutant survived.
_PASSED = 0
# pytest's exit code when no test was collected: a broken selection, not a killed mutant.
_NO_TESTS = 5


class Outcome(StrEnum):
    KILLED = "killed"
    SURVIVED = "survived"
    TIMEOUT = "timeout"
    NOT_COVERED = "not covered"


@dataclass(frozen=True)
class Result:
    mutant: Mutant
    outcome: Outcome
    seconds: float


class SelectionError(Exception):
    """The selection does not pass, or collects nothing, on the unchanged module."""


def locate(module: str) -> Path:
    """The source file of a dotted module name, found without running any package's code."""
    top, _, rest = module.partition(".")
    spec = importlib.util.find_spec(top)
    if spec is None:
        raise SelectionError(f"module {module!r}: no package {top!r} on the path")
    if not rest:
        if spec.origin is None:
            raise SelectionError(f"module {module!r} has no source file")
        return Path(spec.origin)
    locations = list(spec.submodule_search_locations or [])
    parts = rest.split(".")
    for position, part in enumerate(parts):
        last = position == len(parts) - 1
        found = _find_part(locations, part, last)
        if found is None:
            raise SelectionError(f"module {module!r}: {part!r} not found under {locations}")
        if last:
            return found
        locations = [str(found)]
    raise AssertionError("unreachable")


def _find_part(locations: Iterable[str], part: str, last: bool) -> Path | None:
    for location in locations:
        package = Path(location) / part
        if last and (package.with_suffix(".py")).is_file():
            return package.with_suffix(".py")
        if package.is_dir():
            return package / "__init__.py" if last else package
    return None


class _MutantFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Serves the mutated source under the module's name and file."""

    def __init__(self, module: str, path: Path, source: str) -> None:
        self._module, self._path, self._source = module, path, source

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname != self._module:
            return None
        spec = importlib.util.spec_from_loader(fullname, self, origin=str(self._path))
        assert spec is not None
        spec.has_location = True
        return spec

    def exec_module(self, module: ModuleType) -> None:
        exec(compile(self._source, str(self._path), "exec"), module.__dict__)


class Runner:
    """Runs ``pytest_args`` (a selection and options) against mutants of ``module``."""

    def __init__(
        self,
        module: str,
        pytest_args: Sequence[str],
        *,
        timeout: float = 120.0,
        jobs: int = 1,
        rootdir: Path | None = None,
    ) -> None:
        self.module = module
        self.path = locate(module)
        self.source = self.path.read_text()
        self.pytest_args = [*pytest_args, "-x", "-q", "-p", "no:cacheprovider", "-p", "no:xdist"]
        self.timeout = timeout
        self.jobs = max(1, jobs)
        self.rootdir = rootdir or Path.cwd()
        self.tests_by_line: dict[int, set[str]] = {}
        self.baseline_seconds = 0.0

    def prepare(self) -> None:
        """Checks the selection on the unchanged module, notes the lines it runs, then imports
        in this process what every child can share."""
        if self.module in sys.modules:
            raise SelectionError(
                f"{self.module} is imported already: run the tool in a fresh process"
            )
        started = time.monotonic()
        code, report = self._in_child(self._baseline)
        self.baseline_seconds = time.monotonic() - started
        if code != _PASSED:
            raise SelectionError(
                f"the selection does not pass on the unchanged {self.module} "
                f"(pytest exit code {code}); run it alone to see why:\n  pytest "
                + " ".join(self.pytest_args)
            )
        self.tests_by_line, shareable = report
        for name in shareable:
            try:
                importlib.import_module(name)
            except Exception:  # a module that cannot be imported alone is imported per child
                continue
        if self.module in sys.modules:
            raise SelectionError(f"importing the shared modules imported {self.module}")

    def run(
        self, mutants: Sequence[Mutant], on_result: Callable[[Result], None] = lambda _: None
    ) -> list[Result]:
        """Each mutant's outcome, in the mutants' order; ``on_result`` hears each as it ends."""
        results: dict[int, Result] = {}
        pending = list(mutants)
        running: dict[int, tuple[Mutant, float]] = {}
        try:
            self._run_all(pending, running, results, on_result)
        finally:
            for pid in running:
                _kill(pid)
        return [results[m.number] for m in mutants]

    def _run_all(
        self,
        pending: list[Mutant],
        running: dict[int, tuple[Mutant, float]],
        results: dict[int, Result],
        on_result: Callable[[Result], None],
    ) -> None:
        while pending or running:
            while pending and len(running) < self.jobs:
                mutant = pending.pop(0)
                if not self._covered(mutant):
                    results[mutant.number] = Result(mutant, Outcome.NOT_COVERED, 0.0)
                    on_result(results[mutant.number])
                    continue
                pid = self._fork(lambda m=mutant: self._run_mutant(m))  # type: ignore[misc]
                running[pid] = (mutant, time.monotonic())
            for pid, (mutant, started) in list(running.items()):
                outcome = self._poll(pid, started)
                if outcome is not None:
                    del running[pid]
                    results[mutant.number] = Result(mutant, outcome, time.monotonic() - started)
                    on_result(results[mutant.number])
            if running:
                time.sleep(0.02)

    def _covered(self, mutant: Mutant) -> bool:
        return bool(self.tests_of(mutant))

    def _poll(self, pid: int, started: float) -> Outcome | None:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done == 0:
            if time.monotonic() - started < self.timeout:
                return None
            _kill(pid)
            return Outcome.TIMEOUT
        code = os.waitstatus_to_exitcode(status)
        if code == _NO_TESTS:
            raise SelectionError(f"a mutant's run collected no test (pytest exit code {code})")
        return Outcome.SURVIVED if code == _PASSED else Outcome.KILLED

    def tests_of(self, mutant: Mutant) -> set[str]:
        """The tests that ran the mutant's lines unchanged; all of them when one ran at import."""
        found: set[str] = set()
        for line in range(mutant.line, mutant.end_line + 1):
            found |= self.tests_by_line.get(line, set())
        return {_ALL} if _ALL in found else found

    def _run_mutant(self, mutant: Mutant) -> int:
        sys.meta_path.insert(0, _MutantFinder(self.module, self.path, mutant.source))
        return self._pytest(_Only(self.tests_of(mutant)))

    def _pytest(self, plugin: object) -> int:
        return int(pytest.main(list(self.pytest_args), plugins=[_QuietHypothesis(), plugin]))

    def _baseline(self) -> tuple[int, tuple[dict[int, set[str]], list[str]]]:
        """Runs the selection unchanged, noting which tests run each line of the module (``""``
        for a line run at import, which every test depends on), and names the modules that were
        fully imported before the module was first imported (safe to share)."""
        tests_by_line: dict[int, set[str]] = {}
        shareable: list[str] = []
        target, module = str(self.path), self.module
        tests_dir = str(self.rootdir / "tests")
        current = _CurrentTest()

        class _Watch(importlib.abc.MetaPathFinder):
            def find_spec(self, fullname: str, *_: Any) -> None:
                if fullname == module and not shareable:
                    shareable.extend(_fully_imported(tests_dir))

        def lines(frame: FrameType, event: str, arg: object) -> Any:
            if event == "line":
                tests_by_line.setdefault(frame.f_lineno, set()).add(current.nodeid)
            return lines

        def calls(frame: FrameType, event: str, arg: object) -> Any:
            if frame.f_code.co_filename != target:
                return None
            tests_by_line.setdefault(frame.f_lineno, set()).add(current.nodeid)
            return lines

        sys.meta_path.insert(0, _Watch())
        sys.settrace(calls)
        code = self._pytest(current)
        sys.settrace(None)
        return code, (tests_by_line, shareable)

    def _in_child(self, work: Callable[[], tuple[int, Any]]) -> tuple[int, Any]:
        """Runs ``work`` in a forked child; answers its exit code and the value it returned."""
        import pickle

        with tempfile.NamedTemporaryFile(suffix=".pickle") as handoff:

            def child() -> int:
                code, value = work()
                Path(handoff.name).write_bytes(pickle.dumps(value))
                return code

            pid = self._fork(child)
            _, status = os.waitpid(pid, 0)
            code = os.waitstatus_to_exitcode(status)
            data = Path(handoff.name).read_bytes()
            return code, (pickle.loads(data) if data else None)

    def _fork(self, work: Callable[[], int]) -> int:
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid:
            return pid
        code = 70  # EX_SOFTWARE: the child broke before pytest could answer
        try:
            os.setpgid(0, 0)
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            _silence()
            code = work()
        finally:
            os._exit(code)


# The test id noted for lines run outside any test (at import or collection): all tests.
_ALL = ""


class _CurrentTest:
    """Knows which test runs now, for the tracer of the unchanged run."""

    nodeid = _ALL

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_protocol(self, item: pytest.Item) -> Generator[None, object, object]:
        self.nodeid = item.nodeid
        try:
            return (yield)
        finally:
            self.nodeid = _ALL


class _Only:
    """Runs only the tests that reach the mutant (the others cannot tell it apart)."""

    def __init__(self, nodeids: set[str]) -> None:
        self.nodeids = nodeids

    def pytest_collection_modifyitems(
        self, config: pytest.Config, items: list[pytest.Item]
    ) -> None:
        if _ALL in self.nodeids:
            return
        kept = [item for item in items if item.nodeid in self.nodeids]
        dropped = [item for item in items if item.nodeid not in self.nodeids]
        items[:] = kept
        config.hook.pytest_deselected(items=dropped)


class _QuietHypothesis:
    """Hypothesis as the loaded profile says, but with the same examples for every mutant, no
    deadline or health check (a loaded machine is slow, not wrong) and nothing saved to the
    example database (what kills a mutant is no bug to replay later). No shrinking either: that
    a test fails is the answer, and shrinking the failing example can take minutes."""

    def pytest_configure(self) -> None:
        from hypothesis import HealthCheck, Phase, settings

        settings.register_profile(
            "mutation",
            parent=settings(),
            database=None,
            phases=[Phase.explicit, Phase.generate],
            derandomize=True,
            deadline=None,
            suppress_health_check=list(HealthCheck),
        )
        settings.load_profile("mutation")


def _fully_imported(tests_dir: str) -> list[str]:
    names = []
    for name, module in list(sys.modules.items()):
        spec = getattr(module, "__spec__", None)
        if spec is None or getattr(spec, "_initializing", False):
            continue
        file = getattr(module, "__file__", None) or ""
        if name == "__main__" or file.startswith(tests_dir):
            continue
        names.append(name)
    # Importing a submodule runs its packages first, and those may import the mutated module.
    shared = set(names)
    return [n for n in names if all(p in shared for p in _ancestors(n))]


def _ancestors(name: str) -> list[str]:
    parts = name.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


def _silence() -> None:
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.dup2(devnull, 2)
    # Under a capturing pytest (the tool's own tests) these are not the descriptors above.
    sys.stdout = sys.stderr = open(os.devnull, "w")  # noqa: SIM115 - the child's whole life


def _kill(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
