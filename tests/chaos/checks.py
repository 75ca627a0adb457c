"""The check every scenario ends with, and the row of the results table it fills.

1. Every submitted execution has exactly one ``ExecutionFinished`` in the stream.
2. The projection, once caught up, equals a rebuild from the stream
   (:func:`nodedrop.notifier.rebuild.rebuild_and_compare`): nothing missing (no gap), nothing
   applied twice, nothing from elsewhere. (The rebuild runs the projection's own fold: it cannot
   tell a fold that is wrong the same way each time; check 3 can.)
3. The independent oracle (:mod:`tests.chaos.oracle`): for every execution, one result per
   attempt; each side effect happened at least once and at most once per attempt (the
   side-effect server's records matched by ``Idempotency-Key`` against the attempts in the
   log); each node's final state and output are what its workflow must produce from its input
   and the far side's answers; the projection's rows (read from PostgreSQL) equal that
   expectation column by column.
4. Nothing acknowledged was lost: every request the API accepted is in the stream, and every
   message seen in a snapshot taken before a fault is still stored at its sequence.
5. No event id is stored twice (publishers' retries were deduplicated), and no service process
   ended by itself.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import asyncpg  # type: ignore[import-untyped]  # asyncpg ships no type information
from tests.chaos.cluster import Cluster, asyncpg_dsn
from tests.chaos.oracle import Projection, Submitted, verify
from tests.chaos.record import Stored, StreamRecord, read_stream

from nodedrop.notifier.rebuild import rebuild_and_compare
from nodedrop.platform.event_log import JetStreamEventLog
from nodedrop.platform.jetstream import StreamSettings


@dataclass
class Result:
    scenario: str
    load: str
    faults: str
    submitted: int = 0
    finished: int = 0
    duplicates: int = 0
    lost: int = 0
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    took_s: float = 0.0

    @property
    def passed(self) -> bool:
        return not self.problems

    def expect(self, condition: bool, problem: str) -> None:
        if not condition:
            self.problems.append(problem)


#: Oracle problems listed in the table (the count of the others follows).
MAX_LISTED = 5


@dataclass
class Expectations:
    """What a scenario submitted and what it knows about its own interference."""

    #: Execution id -> the workflow it ran.
    executions: dict[str, dict[str, Any]]
    #: Final status each execution must have (``None``: any).
    status: dict[str, str | None] = field(default_factory=dict)
    #: Messages stored before a fault: each must still be there, unchanged, afterwards.
    snapshot: Iterable[Stored] = ()
    #: (stream, sequence) of copies the scenario itself stored (republished events): left out
    #: of the counts of finishes, attempts and ids.
    injected_seqs: frozenset[tuple[str, int]] = frozenset()


async def common_check(cluster: Cluster, result: Result, expected: Expectations) -> StreamRecord:
    await cluster.settle()
    full = await read_stream(cluster.js, cluster.layout)
    record = full.without(expected.injected_seqs)
    executions = expected.executions
    result.submitted = len(executions)

    # 1. exactly one ExecutionFinished each
    finished = record.finished()
    result.finished = sum(1 for e in executions if finished[e] == 1)
    twice = {e: n for e, n in finished.items() if n > 1}
    result.duplicates += sum(n - 1 for n in twice.values())
    result.expect(not twice, f"executions finished more than once: {sorted(twice)[:5]}")
    unfinished = [e for e in executions if finished[e] == 0]
    result.expect(not unfinished, f"{len(unfinished)} executions never finished: {unfinished[:5]}")
    statuses = record.statuses()
    wrong = {
        e: statuses.get(e)
        for e, status in expected.status.items()
        if status is not None and statuses.get(e) != status
    }
    result.expect(not wrong, f"unexpected final status: {dict(list(wrong.items())[:5])}")

    # 2. projection == rebuild from the stream
    report = await rebuild_and_compare(
        JetStreamEventLog.of_context(cluster.js, StreamSettings(layout=cluster.layout)),
        cluster.database_url,
    )
    comparison = report.comparison
    result.expect(
        comparison.identical,
        f"projection differs from a rebuild in {comparison.differing_rows} rows: "
        + "; ".join(d.describe() for d in comparison.differences[:3]),
    )
    result.expect(
        report.through_seq == await cluster.last_seq(),
        f"projection checkpoint {report.through_seq} short of the stream",
    )

    # 3. the independent oracle: side effects, results, outputs, projection rows
    submitted = {e: Submitted(w, cluster.inputs.get(e)) for e, w in executions.items()}
    verdict = verify(
        submitted, record.events(), cluster.side_effects.effects(), await projection(cluster)
    )
    result.duplicates += verdict.duplicate_results + verdict.repeated_effects
    result.lost += verdict.lost_effects
    if verdict.problems:
        more = len(verdict.problems) - MAX_LISTED
        result.problems.append(
            f"oracle: {verdict.lost_effects} side effects lost, {verdict.repeated_effects} "
            f"repeated beyond their attempts, {verdict.duplicate_results} results beyond one "
            f"per attempt, {verdict.wrong_rows} projection rows wrong: "
            + "; ".join(verdict.problems[:MAX_LISTED])
            + (f" (and {more} more)" if more > 0 else "")
        )
    result.notes.append(
        f"oracle: {verdict.modelled} of {len(executions)} executions checked node by node "
        f"against their workflow, {len(cluster.side_effects.effects())} side effects matched"
        + (
            f", {verdict.retried_effects} repeated by a recorded new attempt (same key)"
            if verdict.retried_effects
            else ""
        )
    )

    # 4. nothing acknowledged lost
    requested = record.executions()
    missing = [e for e in executions if e not in requested]
    result.lost += len(missing)
    result.expect(not missing, f"accepted requests missing from the stream: {missing[:5]}")
    now = full.by_key
    gone = [s for s in expected.snapshot if (now.get(s.key) or _GONE).msg_id != s.msg_id]
    result.lost += len(gone)
    result.expect(not gone, f"{len(gone)} stored messages lost, e.g. {[s.key for s in gone[:5]]}")

    # 5. ids stored once; no process died by itself
    repeated = record.repeated_ids()
    result.duplicates += sum(n - 1 for n in repeated.values())
    result.expect(not repeated, f"event ids stored twice: {sorted(repeated)[:5]}")
    crashed = cluster.exited()
    result.expect(not crashed, f"processes exited by themselves: {crashed}")
    return record


_GONE = Stored(0, "", None, None)


_JSON_COLUMNS = ("input", "output", "error")


async def projection(cluster: Cluster) -> Projection:
    """The projection's execution and node rows, as PostgreSQL holds them."""
    connection = await asyncpg.connect(asyncpg_dsn(cluster.database_url))
    try:
        rows = Projection()
        for record in await connection.fetch("SELECT * FROM executions"):
            rows.executions[record["id"]] = _decoded(dict(record))
        for record in await connection.fetch("SELECT * FROM node_executions"):
            rows.nodes[(record["execution_id"], record["node"])] = _decoded(dict(record))
        return rows
    finally:
        await connection.close()


def _decoded(row: dict[str, Any]) -> dict[str, Any]:
    for column in _JSON_COLUMNS:
        if isinstance(row.get(column), str):
            row[column] = json.loads(row[column])
    return row
