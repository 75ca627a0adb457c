"""``nodedrop audit EXECUTION_ID [--verify] [--json]``: an execution's recorded history as a
timeline, a summary per node, and (``--verify``) a replay of the history through the scheduler's
core that checks every recorded decision (``nodedrop.scheduler.core.replay``).

It reads the stream directly (``NODEDROP_NATS_URL``, else the NATS of a running ``nodedrop up``,
connecting like the other operator commands, :mod:`nodedrop.cli.admin`),
so it shows exactly what was recorded, whatever the projection says.

Exit status: 0 shown (and, with ``--verify``, every decision matches), 1 ``--verify`` found a
difference, 2 unknown execution or the servers could not be reached.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import IO, Any

from nodedrop.cli import admin, settings
from nodedrop.contracts.events import (
    ChildExecutionFinished,
    ChildExecutionStarted,
    Event,
    ExecutionFinished,
    ExecutionQueued,
    ExecutionRequested,
    ExecutionStarted,
    NodeDeferred,
    NodeFailed,
    NodeFailureHandled,
    NodeLogged,
    NodeRetryScheduled,
    NodeSkipped,
    NodeSucceeded,
    NodeWaiting,
    WorkflowCalled,
    type_name,
)
from nodedrop.contracts.history_fold import NodeView, fold_history
from nodedrop.platform.natsconnect import NatsSettings
from nodedrop.scheduler.core.replay import Verification, verify

EXIT_OK = 0
EXIT_DIFFERENT = 1
EXIT_UNKNOWN = 2

History = Sequence[tuple[int, Event]]


@dataclass(frozen=True)
class AuditRequest:
    execution_id: str
    verify: bool = False
    as_json: bool = False


def audit(request: AuditRequest) -> int:
    try:
        # Credentials as for the other operator commands (NODEDROP_NATS_USER, else the
        # embedded server's admin user).
        nats_settings = admin.servers().nats
    except settings.SettingError as error:
        print(f"nodedrop audit: {error}", file=sys.stderr)
        return EXIT_UNKNOWN
    try:
        tree = asyncio.run(read_tree(nats_settings, request.execution_id))
    except Exception as error:
        print(f"nodedrop audit: failed: {type(error).__name__}: {error}", file=sys.stderr)
        return EXIT_UNKNOWN
    return report(request, tree.get(request.execution_id, []), sys.stdout, tree)


#: The most executions of one tree ``nodedrop audit`` reads (a deep each_item tree can be big).
MAX_TREE = 1000


def children_of(history: History) -> list[tuple[str, str]]:
    """(node, child execution id) of every child the execution's nodes started, in order."""
    return [(e.node, e.child) for _, e in history if isinstance(e, ChildExecutionStarted)]


async def read_tree(nats_settings: NatsSettings | str, execution_id: str) -> dict[str, History]:
    """The histories of the execution and of every execution it started, and so on down
    (``execute_workflow``), at most :data:`MAX_TREE` of them."""
    tree: dict[str, History] = {}
    waiting = [execution_id]
    while waiting and len(tree) < MAX_TREE:
        current = waiting.pop(0)
        tree[current] = await read_history(nats_settings, current)
        waiting += [child for _, child in children_of(tree[current]) if child not in tree]
    return tree


async def read_history(
    nats_settings: NatsSettings | str, execution_id: str
) -> list[tuple[int, Event]]:
    """The execution's events; ``nats_settings`` may be a bare server URL."""
    from nodedrop.contracts.routing import Layout
    from nodedrop.platform import natsconnect
    from nodedrop.platform.history import read_execution

    if isinstance(nats_settings, str):
        nats_settings = NatsSettings(servers=(nats_settings,))
    nc = await natsconnect.connect(nats_settings, name="nodedrop audit", max_reconnect_attempts=2)
    try:
        # The layout the services read from the same environment (NODEDROP_PARTITIONS).
        layout = Layout.from_env()
        return list(await read_execution(nc.jetstream(), execution_id, layout=layout))
    finally:
        await nc.close()


def report(
    request: AuditRequest,
    history: History,
    out: IO[str],
    tree: Mapping[str, History] | None = None,
) -> int:
    """Print the audit of ``history`` to ``out``; returns the exit status. ``tree``: the
    histories of the executions it started (:func:`read_tree`), shown as a tree and, with
    ``--verify``, verified too."""
    if not history:
        print(f"nodedrop audit: no events recorded for execution {request.execution_id!r}",
              file=sys.stderr)  # fmt: skip
        return EXIT_UNKNOWN
    tree = tree or {request.execution_id: history}
    nodes = summarize(history)
    verification = verify(history) if request.verify else None
    checks = {
        i: verification if i == request.execution_id else verify(h)
        for i, h in tree.items()
        if request.verify
    }
    if request.as_json:
        body = as_json(request.execution_id, history, nodes, verification)
        body["tree"] = tree_json(request.execution_id, tree, checks)
        json.dump(body, out, indent=2)
        out.write("\n")
    else:
        print_timeline(request.execution_id, history, out)
        print_nodes(nodes, out)
        if len(tree) > 1 or _parent_of(history):
            print_tree(request.execution_id, tree, checks, out)
        if verification is not None:
            print_verification(verification, out)
    if any(v is not None and not v.ok for v in checks.values()):
        return EXIT_DIFFERENT
    return EXIT_OK


# ------------------------------------------------------------------ tree
def _parent_of(history: History) -> str | None:
    request = history[0][1] if history else None
    if isinstance(request, ExecutionRequested) and request.parent_execution:
        return f"{request.parent_execution} (node {request.parent_node})"
    return None


def _status(history: History) -> str:
    ended = [e for _, e in history if isinstance(e, ExecutionFinished)]
    return ended[-1].status if ended else "running"


def print_tree(
    root: str,
    tree: Mapping[str, History],
    verified: Mapping[str, Verification | None],
    out: IO[str],
) -> None:
    """The execution and the executions it started, indented by depth."""
    print("\ntree:", file=out)
    parent = _parent_of(tree[root])
    if parent:
        print(f"  started by {parent}", file=out)

    def show(execution_id: str, via: str, depth: int) -> None:
        history = tree.get(execution_id)
        status = _status(history) if history else "not read"
        check = verified.get(execution_id)
        mark = "" if check is None else "  verified" if check.ok else "  NOT verified"
        print(f"  {'  ' * depth}{via}{execution_id} {status}{mark}", file=out)
        for node, child in children_of(history or []):
            show(child, f"{node} -> ", depth + 1)

    show(root, "", 0)
    for execution_id, check in verified.items():
        if execution_id != root and check is not None:  # the root's are listed below
            for difference in check.differences:
                print(f"  {execution_id}: {difference}", file=out)


def tree_json(
    root: str, tree: Mapping[str, History], verified: Mapping[str, Verification | None]
) -> dict[str, Any]:
    history = tree.get(root, [])
    body: dict[str, Any] = {"execution_id": root, "status": _status(history) if history else None}
    check = verified.get(root)
    if check is not None:
        body["verified"] = check.ok
    body["children"] = [
        {"node": node, **tree_json(child, tree, verified)} for node, child in children_of(history)
    ]
    return body


# ------------------------------------------------------------------ timeline
def describe(event: Event) -> str:
    """The part of an event worth a glance on its timeline line."""
    match event:
        case ExecutionQueued():
            return f"waits for a slot: {event.scope} {event.key} has {event.limit} running"
        case ExecutionStarted():
            return f"plan: {', '.join(event.plan)}"
        case NodeSucceeded():
            counts = ", ".join(f"{port}: {len(items)}" for port, items in event.output.items())
            origin = " (pinned)" if event.pinned else ""
            origin += f" (reused from {event.reused_from})" if event.reused_from else ""
            return f"items {counts or 'none'}{origin}"
        case NodeFailed():
            return f"{event.error.type}: {event.error.message}"
        case NodeRetryScheduled():
            return f"next attempt in {event.delay_ms} ms"
        case NodeFailureHandled():
            return f"outcome: {event.outcome}"
        case NodeWaiting():
            return f"waits {_ms(event.until, event.time)} ms"
        case NodeDeferred():
            return f"waits for a runner: {event.key} has {event.limit} on them (their share)"
        case NodeSkipped():
            return event.reason
        case ExecutionFinished():
            error = f" ({event.error.type}: {event.error.message})" if event.error else ""
            return event.status + error
        case NodeLogged():
            return f"{len(event.lines)} log lines"
        case WorkflowCalled():
            children = len(event.inputs)
            called = f"{event.workflow_id} v{event.workflow_version}"
            return f"calls {called} ({event.mode}, {children} child executions)"
        case ChildExecutionStarted():
            return f"child {event.index}: {event.child}"
        case ChildExecutionFinished():
            error = f" ({event.error.type}: {event.error.message})" if event.error else ""
            return f"child {event.index}: {event.child} {event.status}{error}"
        case _:
            return ""


def print_timeline(execution_id: str, history: History, out: IO[str]) -> None:
    start = history[0][1].time
    print(f"execution {execution_id}: {len(history)} events", file=out)
    for seq, event in history:
        node = getattr(event, "node", None) or ""
        attempt = getattr(event, "attempt", None)
        where = f"{node}#{attempt}" if node and attempt is not None else node
        line = f"{_offset(event.time, start):>10}  {seq:>8}  {type_name(event):<24} {where:<20}"
        print(f"{line} {describe(event)}".rstrip(), file=out)


def _offset(time: datetime, start: datetime) -> str:
    return f"+{(time - start).total_seconds():.3f}s"


def _ms(later: datetime, earlier: datetime) -> int:
    return round((later - earlier).total_seconds() * 1000)


# ------------------------------------------------------------------ per node
@dataclass
class NodeSummary:
    node: str
    status: str = "pending"
    attempts: int = 0
    #: From the last attempt's start (NodeStarted or NodeWaiting) to its result.
    duration_ms: int | None = None
    error: str | None = None


def summarize(history: History) -> dict[str, NodeSummary]:
    """Each plan node as the one fold of a history reads it (``contracts.history_fold``)."""
    folded = fold_history(event for _, event in history)
    if folded is None:
        return {}
    # A node that succeeded in the end still shows its last failure: the reason it was retried.
    failures = {e.node: e for _, e in history if isinstance(e, NodeFailed)}
    return {
        node_id: _summary(node_id, view, failures.get(node_id))
        for node_id, view in folded.nodes.items()
    }


def _summary(node_id: str, view: NodeView, last_failure: NodeFailed | None) -> NodeSummary:
    status = view.status
    if status == "skipped":
        status = f"skipped ({view.skip_reason})"
    elif status == "running" and view.children is not None:
        status = "waiting for children"
    elif status == "running" and view.wait_until is not None:
        status = "waiting"
    elif status == "failed" and view.outcome is not None:
        status = f"failed ({view.outcome})"
    duration = None
    if view.started_at is not None and view.finished_at is not None:
        duration = _ms(view.finished_at, view.started_at)
    error = None
    if view.error is not None:
        error = f"#{view.attempts} {view.error['type']}: {view.error['message']}"
    elif last_failure is not None:
        failed = last_failure.error
        error = f"#{last_failure.attempt} {failed.type}: {failed.message}"
    return NodeSummary(node_id, status, view.attempts, duration, error)


def print_nodes(nodes: dict[str, NodeSummary], out: IO[str]) -> None:
    print("\nnodes:", file=out)
    width = max((len(node) for node in nodes), default=4)
    for summary in nodes.values():
        duration = f"{summary.duration_ms} ms" if summary.duration_ms is not None else "-"
        line = (
            f"  {summary.node:<{width}}  {summary.status:<24} attempts {summary.attempts:<3}"
            f" {duration:>10}"
        )
        if summary.error:
            line += f"  {summary.error}"
        print(line, file=out)


# ------------------------------------------------------------------ verification
def print_verification(verification: Verification, out: IO[str]) -> None:
    print("", file=out)
    if verification.ok:
        print(f"verified: {verification.matched} decisions match", file=out)
    else:
        print(f"NOT verified: {len(verification.differences)} differences "
              f"({verification.matched} decisions match)", file=out)  # fmt: skip
        for difference in verification.differences:
            print(f"  {difference}", file=out)
    if not verification.outcomes_recorded:
        print(
            "recorded before the scheduler recorded failure outcomes: those are not compared",
            file=out,
        )
    if verification.awaiting:
        kinds = ", ".join(type_name(e) for e in verification.awaiting)
        print(f"still running: the scheduler has yet to record {kinds}", file=out)
    if verification.lost:
        # Not a difference: the scheduler lost them with a publish and, rebuilt, found them moot.
        # A decision removed from the end of a batch reads the same, so they are named.
        lost = ", ".join(_decision(e) for e in verification.lost)
        print(f"lost with a publish, then moot (or removed from the stream): {lost}", file=out)


def _decision(event: Event) -> str:
    node, attempt = getattr(event, "node", None), getattr(event, "attempt", None)
    where = "" if node is None else f" {node}" if attempt is None else f" {node}#{attempt}"
    return type_name(event) + where


def as_json(
    execution_id: str,
    history: History,
    nodes: dict[str, NodeSummary],
    verification: Verification | None,
) -> dict[str, Any]:
    start = history[0][1].time
    body: dict[str, Any] = {
        "execution_id": execution_id,
        "events": [
            {
                "seq": seq,
                "offset_ms": _ms(event.time, start),
                "time": event.time.isoformat(),
                "type": type_name(event),
                "node": getattr(event, "node", None),
                "attempt": getattr(event, "attempt", None),
                "detail": describe(event),
            }
            for seq, event in history
        ],
        "nodes": {
            s.node: {
                "status": s.status,
                "attempts": s.attempts,
                "duration_ms": s.duration_ms,
                "error": s.error,
            }
            for s in nodes.values()
        },
    }
    if verification is not None:
        body["verification"] = {
            "ok": verification.ok,
            "matched": verification.matched,
            "finished": verification.finished,
            "outcomes_recorded": verification.outcomes_recorded,
            "differences": [
                {
                    "kind": d.kind,
                    "seq": d.seq,
                    "type": d.event_type,
                    "node": d.node,
                    "attempt": d.attempt,
                    "detail": d.detail,
                }
                for d in verification.differences
            ],
            "awaiting": [type_name(e) for e in verification.awaiting],
            "lost": [_decision(e) for e in verification.lost],
        }
    return body
