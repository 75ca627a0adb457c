"""The check every scenario ends with, and the row of the results table it fills.

1. Every submitted execution has exactly one ``ExecutionFinished`` in the stream.
2. The projection, once caught up, equals a rebuild from the stream
   (:func:`nodedrop.notifier.rebuild.rebuild_and_compare`): nothing missing (no gap), nothing
   applied twice, nothing from elsewhere.
3. No side effect happened twice for the same ``Idempotency-Key`` unless a new attempt of that
   node was recorded (a second attempt may repeat what a lost one did; the key lets the far side
   tell).
4. Nothing acknowledged was lost: every request the API accepted is in the stream, and every
   message seen in a snapshot taken before a fault is still stored at its sequence.
5. No event id is stored twice (publishers' retries were deduplicated), and no service process
   ended by itself.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from tests.chaos.cluster import Cluster
from tests.chaos.record import Stored, StreamRecord, read_stream

from nodedrop.notifier.rebuild import rebuild_and_compare
from nodedrop.runner.nodes.http_request import idempotency_key


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


def http_nodes(workflow: dict[str, Any]) -> list[str]:
    return [n["id"] for n in workflow["nodes"] if n["type"] == "http_request"]


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
    report = await rebuild_and_compare(cluster.js, cluster.database_url)
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

    # 3. side effects
    counts = cluster.side_effects.counts()
    attempts = record.attempts()
    repeated_with_retry = 0
    for execution_id, workflow in executions.items():
        for node in http_nodes(workflow):
            seen = counts.get(idempotency_key(execution_id, node, 0), 0)
            made = attempts.get((execution_id, node), 0)
            if seen > 1 and seen <= made:
                repeated_with_retry += 1
            elif seen > 1:
                result.duplicates += seen - 1
                result.problems.append(
                    f"side effect of {execution_id}/{node} happened {seen} times in {made} attempts"
                )
    if repeated_with_retry:
        result.notes.append(
            f"{repeated_with_retry} side effects repeated by a recorded new attempt (same key)"
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
