"""The operator commands refuse bad settings before they connect to anything."""

from __future__ import annotations

import pytest

from nodedrop.cli import main


def run(argv: list[str]) -> int:
    with pytest.raises(SystemExit) as exit_:
        main.main(argv)
    return int(exit_.value.code or 0)


def test_prune_without_days_when_retention_is_off_says_how(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("NODEDROP_RETENTION_DAYS", "0")
    assert run(["prune"]) == 2
    assert "retention is off (NODEDROP_RETENTION_DAYS=0)" in capsys.readouterr().err


def test_prune_names_a_malformed_setting(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("NODEDROP_RETENTION_DAYS", "forever")
    assert run(["prune", "--dry-run"]) == 2
    said = capsys.readouterr().err
    assert "NODEDROP_RETENTION_DAYS: input should be a valid number" in said
    assert "'forever'" in said


def test_prune_refuses_negative_days(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["prune", "--older-than", "-1"]) == 2
    assert "must be 0 or more" in capsys.readouterr().err


def test_projections_needs_an_action(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["projections"]) == 2
    assert "rebuild" in capsys.readouterr().err
