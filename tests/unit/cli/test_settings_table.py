"""The settings table of docs/operations.md is the one generated from the settings classes."""

from __future__ import annotations

from pathlib import Path

import pytest

from nodedrop.cli import settings_table


def test_the_committed_table_is_the_generated_one() -> None:
    document = settings_table.OPERATIONS.read_text()
    assert settings_table.rewritten(document) == document, (
        "docs/operations.md's settings table differs from the settings classes: run "
        "python -m nodedrop.cli.settings_table"
    )


def test_every_variable_has_a_row_with_a_description_and_a_default() -> None:
    rows = list(settings_table.rows())
    assert {row.variable for row in rows} == settings_table.variables()
    assert len({row.variable for row in rows}) == len(rows)
    for row in rows:
        assert row.description, row.variable
        assert row.default, row.variable
        assert "\n" not in row.description, row.variable


def test_the_documented_defaults_are_the_settings_defaults() -> None:
    defaults = {row.variable: row.default for row in settings_table.rows()}
    assert defaults["NODEDROP_PORT"] == "8000"
    assert defaults["NODEDROP_NOTIFIER_PORT"] == "8001"
    assert defaults["NODEDROP_RUNNER_GRACE_S"] == "8"
    assert defaults["NODEDROP_RUNNER_ACK_WAIT_S"] == "15"
    assert defaults["NODEDROP_DUPLICATE_WINDOW_S"] == "120"
    assert defaults["NODEDROP_PROJECTION_LINGER_MS"] == "20"
    assert defaults["NODEDROP_RETENTION_DAYS"] == "30"
    assert defaults["NODEDROP_PRUNE_INTERVAL_S"] == "3600"
    assert defaults["NODEDROP_LEASE_S"] == "10"
    assert defaults["NODEDROP_PARTITIONS"] == "1"
    assert defaults["NODEDROP_MAX_WORKFLOW_NODES"] == "2000"
    assert defaults["NODEDROP_LOG_FORMAT"] == "`text`"


def test_the_check_fails_on_a_stale_table(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    doc = tmp_path / "operations.md"
    doc.write_text(f"# Ops\n\n{settings_table.BEGIN}\n| old |\n{settings_table.END}\n")
    assert settings_table.main(["--check", "--doc", str(doc)]) == 1
    assert "stale" in capsys.readouterr().err
    assert settings_table.main(["--doc", str(doc)]) == 0
    assert settings_table.main(["--check", "--doc", str(doc)]) == 0
    assert "| `NODEDROP_PORT` | 8000 |" in doc.read_text()


def test_a_document_without_the_markers_is_refused() -> None:
    with pytest.raises(ValueError, match="markers"):
        settings_table.rewritten("# no table here\n")
