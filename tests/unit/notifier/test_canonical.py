"""The merge-join that compares two canonical dumps, on rows in memory."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from nodedrop.notifier.canonical import Comparison, ProjectionTable, TableSummary, compare_rows

TABLE = ProjectionTable("node_executions", ("execution_id", "node"))
COLUMNS = ["execution_id", "node", "status", "attempts"]


async def rows(*items: tuple[Any, ...]) -> AsyncIterator[tuple[Any, ...]]:
    for item in items:
        yield item


async def compared(
    live: list[tuple[Any, ...]], rebuilt: list[tuple[Any, ...]], limit: int = 20
) -> tuple[Comparison, TableSummary]:
    result, summary = Comparison(), TableSummary()
    await compare_rows(
        TABLE, COLUMNS, rows(*live), rows(*rebuilt), summary=summary, result=result, limit=limit
    )
    return result, summary


async def test_equal_dumps_are_identical_with_equal_digests() -> None:
    same = [("a", "n1", "succeeded", 1), ("a", "n2", "failed", 2), ("b", "n1", "running", 1)]
    result, summary = await compared(same, list(same))
    assert result.identical
    assert (summary.rows_live, summary.rows_rebuilt) == (3, 3)
    assert summary.digest_live == summary.digest_rebuilt


async def test_rows_on_one_side_anywhere_and_changed_columns_are_each_named() -> None:
    live = [("a", "n0", "succeeded", 1), ("a", "n1", "failed", 3), ("b", "n1", "queued", 1)]
    rebuilt = [("a", "n1", "failed", 2), ("a", "n2", "skipped", 0), ("c", "n1", "queued", 1)]

    result, summary = await compared(live, rebuilt)

    assert [d.describe() for d in result.differences] == [
        "node_executions (a, n0): only in the live projection",
        "node_executions (a, n1): attempts: live 3, rebuilt 2",
        "node_executions (a, n2): only in the rebuilt projection",
        "node_executions (b, n1): only in the live projection",
        "node_executions (c, n1): only in the rebuilt projection",
    ]
    assert result.differing_rows == 5
    assert (summary.rows_live, summary.rows_rebuilt) == (3, 3)
    assert summary.digest_live != summary.digest_rebuilt


async def test_only_the_first_differences_are_kept_but_all_are_counted() -> None:
    live = [("a", f"n{i}", "succeeded", 1) for i in range(10)]
    rebuilt = [("a", f"n{i}", "failed", 2) for i in range(10)]
    result, _ = await compared(live, rebuilt, limit=3)
    assert len(result.differences) == 3
    assert result.differing_rows == 10
