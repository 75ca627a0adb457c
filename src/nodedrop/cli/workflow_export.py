"""The file format of ``nodedrop workflows export`` / ``import``: building and reading it.

Pure: no I/O, so the format is unit-tested on its own. A file is

    {"format": "nodedrop.workflows", "format_version": 1, "exported_at": "...",
     "workflows": [{"id": "...", "name": "...", "versions": [{"version": 1,
                    "definition": {...}}, ...]}]}

with each workflow's versions oldest first and each definition as ``POST /api/workflows``
takes it (no id, owner or times), so that a file written by hand with only ``definition``s
imports too.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

FORMAT = "nodedrop.workflows"
FORMAT_VERSION = 1


class ExportFileError(ValueError):
    """The file is not an export this version reads; the message says where."""


@dataclass(frozen=True)
class ExportedWorkflow:
    id: str | None
    name: str
    #: Definitions, oldest version first.
    versions: list[dict[str, Any]]


def export_document(
    workflows: list[tuple[str, list[tuple[int, dict[str, Any]]]]], exported_at: str
) -> dict[str, Any]:
    """``workflows``: ``(id, [(version, definition), ...])`` with versions oldest first."""
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "exported_at": exported_at,
        "workflows": [
            {
                "id": workflow_id,
                "name": versions[-1][1].get("name", "") if versions else "",
                "versions": [
                    {"version": number, "definition": definition} for number, definition in versions
                ],
            }
            for workflow_id, versions in workflows
        ],
    }


def read_document(document: Any) -> list[ExportedWorkflow]:
    """The workflows of an export file's JSON; ``ExportFileError`` naming what is wrong."""
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise ExportFileError(f'not a nodedrop export: expected "format": "{FORMAT}"')
    if document.get("format_version") != FORMAT_VERSION:
        raise ExportFileError(
            f"format_version {document.get('format_version')!r} is not one this version "
            f"reads ({FORMAT_VERSION})"
        )
    entries = document.get("workflows")
    if not isinstance(entries, list):
        raise ExportFileError('"workflows" must be a list')
    return [_workflow(index, entry) for index, entry in enumerate(entries)]


def _workflow(index: int, entry: Any) -> ExportedWorkflow:
    where = f"workflows[{index}]"
    if not isinstance(entry, dict):
        raise ExportFileError(f"{where} must be an object")
    versions = entry.get("versions")
    if not isinstance(versions, list) or not versions:
        raise ExportFileError(f"{where}.versions must be a non-empty list")
    definitions = []
    for number, version in enumerate(versions):
        definition = version.get("definition") if isinstance(version, dict) else None
        if not isinstance(definition, dict):
            raise ExportFileError(f"{where}.versions[{number}].definition must be an object")
        definitions.append(definition)
    workflow_id = entry.get("id")
    if workflow_id is not None and not isinstance(workflow_id, str):
        raise ExportFileError(f"{where}.id must be a string")
    name = entry.get("name") or definitions[-1].get("name") or f"workflow {index + 1}"
    return ExportedWorkflow(workflow_id, str(name), definitions)
