"""The export file format: what export writes, import reads, and clear errors for the rest."""

from __future__ import annotations

from typing import Any

import pytest

from nodedrop.cli.workflow_export import ExportFileError, export_document, read_document

V1 = {"name": "w", "nodes": [{"id": "start", "type": "manual_trigger"}]}
V2 = {**V1, "name": "w renamed"}


def test_an_export_reads_back_with_its_versions_in_order() -> None:
    document = export_document([("wf1", [(1, V1), (2, V2)])], "2026-12-07T20:00:00Z")
    assert document["workflows"][0]["name"] == "w renamed"
    [workflow] = read_document(document)
    assert (workflow.id, workflow.name, workflow.versions) == ("wf1", "w renamed", [V1, V2])


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ([], "not a nodedrop export"),
        ({"format": "nodedrop.workflows", "format_version": 9}, "format_version 9"),
        ({"format": "nodedrop.workflows", "format_version": 1}, '"workflows" must be a list'),
        (
            {"format": "nodedrop.workflows", "format_version": 1, "workflows": [{"versions": []}]},
            r"workflows\[0\].versions must be a non-empty list",
        ),
        (
            {
                "format": "nodedrop.workflows",
                "format_version": 1,
                "workflows": [{"versions": [{"definition": V1}, {"version": 2}]}],
            },
            r"workflows\[0\].versions\[1\].definition must be an object",
        ),
    ],
)
def test_a_file_that_is_not_an_export_is_refused_naming_where(document: Any, message: str) -> None:
    with pytest.raises(ExportFileError, match=message):
        read_document(document)


def test_a_hand_written_file_needs_only_definitions() -> None:
    document = {
        "format": "nodedrop.workflows",
        "format_version": 1,
        "workflows": [{"versions": [{"definition": V1}]}],
    }
    [workflow] = read_document(document)
    assert (workflow.id, workflow.name) == (None, "w")
