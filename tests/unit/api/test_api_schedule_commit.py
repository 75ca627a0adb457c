"""A workflow change and its schedule entry are written as one unit."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import cast

import pytest
from sqlmodel.ext.asyncio.session import AsyncSession

from nodedrop.api.errors import ServiceUnavailableError
from nodedrop.api.schedules import ScheduleStore, commit_with_schedule
from nodedrop.platform.schedules import ScheduledTrigger, ScheduleEntry

OLD = ScheduleEntry(
    workflow_id="wf",
    version=1,
    owner="alice",
    workflow={"nodes": []},
    triggers=[ScheduledTrigger(node_id="t", cron="0 * * * *")],
    saved_at=datetime(2026, 1, 1, tzinfo=UTC),
)
NEW = ScheduleEntry(
    workflow_id="wf",
    version=2,
    owner="alice",
    workflow={"nodes": []},
    triggers=[ScheduledTrigger(node_id="t", cron="5 * * * *")],
    saved_at=datetime(2026, 1, 2, tzinfo=UTC),
)


class FakeSession:
    def __init__(self, *, fail: bool = False) -> None:
        self.fail = fail
        self.commits = 0

    async def commit(self) -> None:
        if self.fail:
            raise ConnectionError("database went away")
        self.commits += 1


class FakeStore(ScheduleStore):
    def __init__(self, *, fail: bool = False) -> None:
        self.fail = fail
        self.log: list[tuple[str, ScheduleEntry | None]] = []

    async def write(self, workflow_id: str, entry: ScheduleEntry | None) -> None:
        self.log.append((workflow_id, entry))
        if self.fail:
            raise ServiceUnavailableError("down")


def session(fake: FakeSession) -> AsyncSession:
    return cast(AsyncSession, fake)


async def test_entry_written_then_committed() -> None:
    db, store = FakeSession(), FakeStore()
    await commit_with_schedule(session(db), store, "wf", before=OLD, after=NEW)
    assert store.log == [("wf", NEW)]
    assert db.commits == 1


async def test_no_schedule_before_or_after_only_commits() -> None:
    db, store = FakeSession(), FakeStore(fail=True)
    await commit_with_schedule(session(db), store, "wf", before=None, after=None)
    assert store.log == []
    assert db.commits == 1


async def test_store_down_commits_nothing() -> None:
    db, store = FakeSession(), FakeStore(fail=True)
    with pytest.raises(ServiceUnavailableError):
        await commit_with_schedule(session(db), store, "wf", before=OLD, after=None)
    assert db.commits == 0
    # The write may have happened unseen (a lost acknowledgement): it is put back too.
    assert store.log == [("wf", None), ("wf", OLD)]


@pytest.mark.parametrize(("before", "after"), [(None, NEW), (OLD, NEW), (OLD, None)])
async def test_failed_commit_puts_the_entry_back(
    before: ScheduleEntry | None, after: ScheduleEntry | None
) -> None:
    db, store = FakeSession(fail=True), FakeStore()
    with pytest.raises(ConnectionError):
        await commit_with_schedule(session(db), store, "wf", before=before, after=after)
    assert store.log == [("wf", after), ("wf", before)]
