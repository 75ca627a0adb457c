"""The ``nodedrop`` command (docs/operations.md, "Running").

- ``nodedrop up``: the whole system in the foreground, on embedded servers by default.
- ``nodedrop api|scheduler|runner|notifier``: one service in the foreground.
- ``nodedrop migrate``: bring the database schema up to date.
- ``nodedrop run FILE.json``: submit a workflow and show its progress live.
- ``nodedrop workflows export | import | import-n8n``: workflows in and out, through the API.
- ``nodedrop projections rebuild``, ``nodedrop prune``: operator commands (docs/operations.md).
- ``nodedrop audit EXECUTION_ID [--verify]``: an execution's history; a replay check of it.
- ``nodedrop credentials generate-key | rotate-key``: the key credentials are sealed with.

Commands import what they need only when they run, so ``nodedrop --help`` stays fast and a
service's dependencies are loaded only by that service.
"""

from __future__ import annotations

import argparse
import os
import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import NoReturn

from nodedrop.cli import settings

SERVICES = ("api", "scheduler", "runner", "notifier")
_SERVICE_HELP = {
    "api": "the REST API (and the /ws relay) on NODEDROP_HOST:NODEDROP_PORT",
    "scheduler": "the scheduler: decides what runs next",
    "runner": "a runner: executes nodes",
    "notifier": "the notifier: projections and the WebSocket event stream",
}
_ENVIRONMENT = """\
environment:
  NODEDROP_DATA_DIR       data directory of `nodedrop up` (default ./.nodedrop)
  NODEDROP_NATS_URL       use this NATS server; `up` then starts no embedded one
  NODEDROP_DATABASE_URL   use this PostgreSQL; `up` then starts no embedded one
  NODEDROP_HOST, NODEDROP_PORT, NODEDROP_NOTIFIER_PORT   where the API and the notifier listen
  NODEDROP_NATS_PORT, NODEDROP_PG_PORT   ports of the embedded servers (4250, 5440)
  NODEDROP_ADMIN_TOKEN    the admin key (`up` otherwise keeps one in the data directory)
  NODEDROP_SECRET_KEY     the credentials key (`up` otherwise keeps one in the data directory)
  NODEDROP_URL, NODEDROP_TOKEN   what `nodedrop run` and `workflows` talk to, with which key
"""


def _version() -> str:
    try:
        return version("nodedrop")
    except PackageNotFoundError:  # pragma: no cover - running from a bare checkout
        return "unknown"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="nodedrop",
        description="nodedrop: an event-sourced workflow engine.",
        epilog=_ENVIRONMENT,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"nodedrop {_version()}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    up = commands.add_parser(
        "up",
        help="start the whole system in the foreground (what `make run` runs)",
        description="Start NATS and PostgreSQL (unless NODEDROP_NATS_URL / "
        "NODEDROP_DATABASE_URL are set), run the migrations, start the services and keep "
        "them running until Ctrl-C or SIGTERM.",
        epilog=_ENVIRONMENT,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    up.add_argument("--runners", type=_positive_int, default=1, help="runner processes (1)")
    up.add_argument(
        "--stop-timeout",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="how long the services get to stop before SIGKILL (10)",
    )

    for name in SERVICES:
        commands.add_parser(
            name,
            help=f"start {_SERVICE_HELP[name]}",
            description=f"Start {_SERVICE_HELP[name]}, in the foreground, configured by the "
            "environment.",
            epilog=_ENVIRONMENT,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )

    commands.add_parser(
        "migrate",
        help="bring the schema of NODEDROP_DATABASE_URL up to date",
        description="Run the database migrations against NODEDROP_DATABASE_URL.",
    )

    run = commands.add_parser(
        "run",
        help="submit a workflow (inline) and show its progress live",
        description="POST the workflow in FILE to /api/executions and follow the execution's "
        "events until it finishes. Exit status: 0 succeeded, 1 finished otherwise, 2 rejected.",
    )
    run.add_argument("file", type=Path, metavar="FILE.json", help="the workflow definition")
    run.add_argument("--trigger", metavar="ID", help="the trigger node (if it has several)")
    run.add_argument(
        "--input",
        metavar="JSON",
        help="the trigger's input items: a JSON list of objects, one object, or @file",
    )
    _add_api_options(run)
    run.add_argument("--no-color", action="store_true", help="no colors even on a terminal")
    _add_workflow_commands(commands)
    _add_admin_commands(commands)
    return parser


def _add_api_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--url", help=f"the API's base URL (NODEDROP_URL, {settings.DEFAULT_URL})")
    parser.add_argument(
        "--token",
        help="API key (NODEDROP_TOKEN, NODEDROP_ADMIN_TOKEN, or <data dir>/admin_token)",
    )


def _add_workflow_commands(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
) -> None:
    """``workflows export | import | import-n8n``: workflows in and out, through the API."""
    workflows = commands.add_parser(
        "workflows",
        help="export workflows to JSON, import them, import n8n workflows",
        description="Move workflows between systems through the API (docs/operations.md, "
        "'Export and import'). Exit status: 0 done, 1 some workflows failed, 2 the file or "
        "the API could not be used.",
    )
    actions = workflows.add_subparsers(dest="action", required=True)
    export = actions.add_parser(
        "export",
        help="every version of workflows as JSON on standard output",
        description="Write the workflows IDS (default: all of yours), every version, as JSON "
        "to standard output: `nodedrop workflows export > workflows.json`.",
    )
    export.add_argument("ids", nargs="*", metavar="ID", help="workflow ids (default: all)")
    _add_api_options(export)
    imported = actions.add_parser(
        "import",
        help="save the workflows of an export file",
        description="Save each workflow of FILE (from `workflows export`) as a new workflow "
        "with the same versions, or, with --replace, as a new version of the workflow with the "
        "same id (created when it does not exist). Prints what became of each.",
    )
    imported.add_argument("file", type=Path, metavar="FILE.json")
    imported.add_argument(
        "--replace", action="store_true", help="update workflows with the same id in place"
    )
    _add_api_options(imported)
    n8n = actions.add_parser(
        "import-n8n",
        help="convert and save n8n workflows (from `n8n export:workflow`)",
        description="Convert the n8n workflows in FILE (one workflow, or the list that "
        "`n8n export:workflow` writes) to nodedrop workflows and save them, printing for each "
        "node what it became and what did not map. --dry-run prints the converted definitions "
        "instead of saving them.",
    )
    n8n.add_argument("file", type=Path, metavar="FILE.json")
    n8n.add_argument("--dry-run", action="store_true", help="print, do not save")
    _add_api_options(n8n)


def _workflows(args: argparse.Namespace) -> int:
    from nodedrop.cli import workflows

    try:
        if args.action == "import-n8n" and args.dry_run:
            api = workflows.Api("", "")
        else:
            api = workflows.Api(settings.client_url(args.url), settings.client_token(args.token))
        if args.action == "export":
            return workflows.export(api, args.ids, sys.stdout, sys.stderr)
        if args.action == "import":
            return workflows.import_file(api, args.file, args.replace, sys.stdout)
        return workflows.import_n8n(api, args.file, args.dry_run, sys.stdout, sys.stderr)
    except (settings.SettingError, workflows.CommandError) as error:
        print(f"nodedrop workflows {args.action}: {error}", file=sys.stderr)
        return workflows.EXIT_UNUSABLE


def _add_admin_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``projections rebuild`` and ``prune``: operator commands on the stream and projection."""
    projections = commands.add_parser(
        "projections",
        help="check the PostgreSQL projection against the event stream",
        description="Commands on the projection (docs/operations.md).",
    )
    actions = projections.add_subparsers(dest="action", required=True)
    rebuild = actions.add_parser(
        "rebuild",
        help="rebuild the projection from the stream beside the live one and compare",
        description="Replay the whole event stream into fresh tables (schema rebuild_*) with "
        "the notifier's own projection code and compare them with the live projection, row by "
        "row. Exit status: 0 identical, 1 different, 2 failed. The live projection is only read.",
    )
    rebuild.add_argument(
        "--keep", action="store_true", help="keep the rebuilt schema (default: drop it)"
    )
    rebuild.add_argument(
        "--batch-size", type=_positive_int, default=1000, help="events per batch (1000)"
    )
    rebuild.add_argument(
        "--max-differences", type=_positive_int, default=20, help="differences shown (20)"
    )
    migrate_log = commands.add_parser(
        "migrate-log",
        help="copy a single-stream event log (first format) into the partitioned log, once",
        description="With every service stopped: copy the events of stream NODEDROP_EVENTS "
        "into the NODEDROP_PARTITIONS partition streams, check the copy, then delete the former "
        "stream and empty the projection (the notifier rebuilds it from the new log).",
    )
    migrate_log.add_argument(
        "--keep-former", action="store_true", help="copy and check, but keep NODEDROP_EVENTS"
    )
    prune = commands.add_parser(
        "prune",
        help="remove executions that finished long ago (stream, projection, stored data)",
        description="Remove every execution whose ExecutionFinished is older than DAYS from "
        "the event stream, the projection and the data bucket. Unfinished executions are "
        "never removed. The notifier does this periodically (NODEDROP_RETENTION_DAYS).",
    )
    prune.add_argument(
        "--older-than",
        type=_non_negative_float,
        metavar="DAYS",
        help="finished more than DAYS ago (default NODEDROP_RETENTION_DAYS, 30)",
    )
    prune.add_argument("--dry-run", action="store_true", help="only count what would be removed")
    audit = commands.add_parser(
        "audit",
        help="an execution's recorded history as a timeline; --verify replays its decisions",
        description="Read an execution's events from the stream and show them as a timeline "
        "with a summary per node. --verify replays the history through the scheduler's core "
        "and checks every recorded decision. Exit status: 0 shown / verified, 1 a decision "
        "differs, 2 unknown execution or servers unreachable (docs/operations.md).",
    )
    audit.add_argument("execution_id", metavar="EXECUTION_ID")
    audit.add_argument("--verify", action="store_true", help="check every recorded decision")
    audit.add_argument("--json", action="store_true", help="print JSON instead of text")
    credentials = commands.add_parser(
        "credentials",
        help="the key credentials are sealed with: generate one, rotate to a new one",
        description="generate-key prints a new key for NODEDROP_SECRET_KEY. rotate-key "
        "re-encrypts every credential under a new key in one transaction (the current key: "
        "NODEDROP_SECRET_KEY, else the data directory's; the new one: generated, or read from "
        "standard input with --new-key-stdin); restart the api and the runners afterwards "
        "(docs/credentials.md).",
    )
    key_actions = credentials.add_subparsers(dest="action", required=True)
    key_actions.add_parser("generate-key", help="print a new random key")
    rotate = key_actions.add_parser("rotate-key", help="re-encrypt every credential")
    rotate.add_argument(
        "--new-key-stdin", action="store_true", help="read the new key from standard input"
    )


def _non_negative_float(raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {raw!r}") from None
    if not value >= 0:
        raise argparse.ArgumentTypeError("must be 0 or more")
    return value


def _positive_int(raw: str) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {raw!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _exec_service(name: str) -> int:
    import importlib.util

    try:
        spec = importlib.util.find_spec(f"nodedrop.{name}.__main__")
    except ModuleNotFoundError:
        spec = None
    if spec is not None:
        _exec_module(f"nodedrop.{name}")
    print(f"nodedrop {name}: nodedrop.{name} is not installed (make install)", file=sys.stderr)
    return 1


def _exec_module(module: str) -> NoReturn:
    """Replace this process with ``python -m module`` (same interpreter, same environment)."""
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, [sys.executable, "-m", module])


def _migrate() -> int:
    url = os.environ.get("NODEDROP_DATABASE_URL")
    if not url:
        print("nodedrop migrate: NODEDROP_DATABASE_URL is not set", file=sys.stderr)
        return 2
    from nodedrop.platform.db.migrate import upgrade

    try:
        upgrade(url)
    except Exception as error:
        print(f"nodedrop migrate: failed: {type(error).__name__}: {error}", file=sys.stderr)
        return 1
    print("database schema is up to date")
    return 0


def _run(args: argparse.Namespace) -> int:
    from nodedrop.cli import run

    try:
        request = run.RunRequest(
            file=args.file,
            url=settings.client_url(args.url),
            token=settings.client_token(args.token),
            trigger=args.trigger,
            input=run.parse_input(args.input),
            color=not args.no_color and sys.stdout.isatty() and not os.environ.get("NO_COLOR"),
        )
    except settings.SettingError as error:
        print(f"nodedrop run: {error}", file=sys.stderr)
        return 2
    except run.RunError as error:
        print(f"nodedrop run: {error}", file=sys.stderr)
        return error.code
    return run.main(request)


def dispatch(args: argparse.Namespace) -> int:
    command: str = args.command
    if command == "up":
        from nodedrop.cli.up import up

        return up(runners=args.runners, stop_timeout=args.stop_timeout)
    if command in SERVICES:
        return _exec_service(command)
    if command == "migrate":
        return _migrate()
    if command == "run":
        return _run(args)
    if command == "workflows":
        return _workflows(args)
    if command == "projections":
        from nodedrop.cli import projections

        return projections.rebuild(
            projections.RebuildRequest(args.keep, args.batch_size, args.max_differences)
        )
    if command == "migrate-log":
        from nodedrop.cli import migrate_log

        return migrate_log.migrate(keep_former=args.keep_former)
    if command == "prune":
        from nodedrop.cli import prune

        return prune.prune(prune.PruneRequest(args.older_than, args.dry_run))
    if command == "audit":
        from nodedrop.cli import audit

        return audit.audit(audit.AuditRequest(args.execution_id, args.verify, args.json))
    if command == "credentials":
        from nodedrop.cli import credentials

        if args.action == "generate-key":
            return credentials.generate_key()
        return credentials.rotate_key(credentials.RotateRequest(args.new_key_stdin))
    raise AssertionError(command)  # pragma: no cover - argparse allows no other


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    sys.exit(dispatch(args))


if __name__ == "__main__":
    main()
