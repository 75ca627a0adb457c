"""``nodedrop workflows export | import | import-n8n``: workflows in and out of a system,
through the API with nodedrop-client (docs/operations.md, "Export and import").

Exit status: 0 done, 1 some workflows failed (each named in the report), 2 the file could not
be read or the API not reached.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from nodedrop.cli.n8n import convert_n8n
from nodedrop.cli.workflow_export import (
    ExportedWorkflow,
    ExportFileError,
    export_document,
    read_document,
)
from nodedrop.client import ApiError, Client, ClientError, NotFound

EXIT_DONE = 0
EXIT_SOME_FAILED = 1
EXIT_UNUSABLE = 2


class CommandError(Exception):
    """The command cannot go on at all (exit 2)."""


@dataclass(frozen=True)
class Api:
    url: str
    token: str

    def client(self) -> Client:
        return Client(self.url, self.token)


def _describe(error: ClientError) -> str:
    if isinstance(error, ApiError) and error.problems:
        return f"{error.status}: " + "; ".join(str(problem) for problem in error.problems)
    return str(error)


def export(api: Api, ids: list[str], out: IO[str], err: IO[str]) -> int:
    """Every version of the workflows ``ids`` (all of them when empty) as JSON on ``out``."""
    with api.client() as client:
        try:
            chosen = ids or [workflow.id for workflow in client.iter_workflows()]
            workflows = []
            for workflow_id in chosen:
                versions = client.workflow_versions(workflow_id)
                workflows.append((workflow_id, [(v.version, v.definition()) for v in versions]))
        except NotFound as error:
            raise CommandError(error.message) from None
        except ClientError as error:
            raise CommandError(_describe(error)) from None
    exported_at = datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    json.dump(export_document(workflows, exported_at), out, indent=2)
    out.write("\n")
    count = sum(len(versions) for _, versions in workflows)
    print(f"exported {len(workflows)} workflows ({count} versions)", file=err)
    return EXIT_DONE


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except OSError as error:
        raise CommandError(f"cannot read {path}: {error.strerror}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise CommandError(f"{path} is not valid JSON: {error}") from None


def import_file(api: Api, path: Path, replace: bool, out: IO[str]) -> int:
    """Each workflow of an export file saved again: a new workflow with the same versions,
    or, with ``replace``, a new version of the workflow with the same id (created if gone)."""
    try:
        workflows = read_document(read_json(path))
    except ExportFileError as error:
        raise CommandError(f"{path}: {error}") from None
    failed = 0
    with api.client() as client:
        for workflow in workflows:
            try:
                print(_import_one(client, workflow, replace), file=out)
            except ApiError as error:
                failed += 1
                print(f"failed   {workflow.name!r} ({workflow.id}): {_describe(error)}", file=out)
            except ClientError as error:
                raise CommandError(_describe(error)) from None
    print(f"{len(workflows) - failed} imported, {failed} failed", file=out)
    return EXIT_SOME_FAILED if failed else EXIT_DONE


def _import_one(client: Client, workflow: ExportedWorkflow, replace: bool) -> str:
    if replace and workflow.id is not None:
        try:
            saved = client.update_workflow(workflow.id, workflow.versions[-1])
        except NotFound:
            pass
        else:
            return f"replaced {workflow.name!r} ({workflow.id}): now version {saved.version}"
    first, *later = workflow.versions
    saved = client.create_workflow(first)
    for definition in later:
        saved = client.update_workflow(saved.id, definition)
    was = f" ({workflow.id})" if workflow.id else ""
    gone = " (not found: created)" if replace and workflow.id else ""
    return f"created  {workflow.name!r}{was} as {saved.id}{gone}: {saved.version} versions"


def import_n8n(api: Api, path: Path, dry_run: bool, out: IO[str], err: IO[str]) -> int:
    """n8n workflows (an ``n8n export:workflow`` file: one workflow or a list) translated and
    saved as nodedrop workflows, with a report of what did not map; ``dry_run`` prints the
    translated definitions on ``out`` (the report on ``err``) instead of saving them."""
    document = read_json(path)
    sources = document if isinstance(document, list) else [document]
    failed = 0
    translated = []
    report = err if dry_run else out
    for index, source in enumerate(sources):
        try:
            conversion = convert_n8n(source)
        except ValueError as error:
            raise CommandError(f"{path}: workflow {index + 1}: {error}") from None
        translated.append(conversion.definition)
        print(conversion.report(), file=report)
        if dry_run:
            continue
        try:
            with api.client() as client:
                saved = client.create_workflow(conversion.definition)
        except ApiError as error:
            failed += 1
            print(f"  not saved: {_describe(error)}", file=out)
        except ClientError as error:
            raise CommandError(_describe(error)) from None
        else:
            print(f"  saved as {saved.id}", file=out)
        if index < len(sources) - 1:
            print("", file=report)
    if dry_run:
        json.dump(translated if isinstance(document, list) else translated[0], out, indent=2)
        out.write("\n")
    return EXIT_SOME_FAILED if failed else EXIT_DONE
