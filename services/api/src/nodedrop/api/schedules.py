"""Keeping the schedules bucket in step with saved workflows.

A saved workflow with ``schedule_trigger`` nodes has an entry in the key-value bucket
``nodedrop_schedules`` (:mod:`nodedrop.platform.schedules`); the scheduler fires from there and
never reads PostgreSQL. The entry must match the latest committed version, so a workflow change
and its entry are written as one unit by :func:`commit_with_schedule`.
"""

from __future__ import annotations

import logging

import nats.errors
from nats.js import JetStreamContext
from nats.js.kv import KeyValue
from sqlmodel.ext.asyncio.session import AsyncSession

from nodedrop.api.errors import ServiceUnavailableError
from nodedrop.contracts.definition_secrets import masked
from nodedrop.platform import schedules
from nodedrop.platform.db.tables import WorkflowRow
from nodedrop.platform.schedules import ScheduleEntry

log = logging.getLogger(__name__)


def entry_of(row: WorkflowRow) -> ScheduleEntry | None:
    """The schedule entry a saved (not deleted) workflow row calls for, if any."""
    return schedules.entry_for(
        workflow_id=row.id,
        version=row.version,
        owner=row.owner,
        workflow=masked(row.definition),
        saved_at=row.updated_at,
    )


class ScheduleStore:
    def __init__(self, kv: KeyValue) -> None:
        self._kv = kv

    @classmethod
    async def open(cls, js: JetStreamContext, replicas: int = 1) -> ScheduleStore:
        return cls(await schedules.open_bucket(js, replicas))

    async def write(self, workflow_id: str, entry: ScheduleEntry | None) -> None:
        """Put the workflow's entry, or delete it (``None``). Raises ServiceUnavailableError."""
        key = schedules.entry_key(workflow_id)
        try:
            if entry is None:
                await self._kv.delete(key)
            else:
                await self._kv.put(key, schedules.encode_entry(entry))
        except (nats.errors.Error, OSError) as error:
            log.warning("writing schedule %s failed: %r", key, error)
            raise ServiceUnavailableError(
                f"the schedule store (NATS) did not accept the schedule of workflow "
                f"{workflow_id} ({type(error).__name__}); nothing was changed, try again later"
            ) from error

    async def restore(self, workflow_id: str, entry: ScheduleEntry | None) -> None:
        """Best effort: put back what the entry was before a change that did not commit."""
        try:
            await self.write(workflow_id, entry)
        except ServiceUnavailableError:
            log.error(
                "could not restore the schedule of workflow %s after a failed save: the "
                "scheduler may follow a version that was not saved until the workflow is saved "
                "again",
                workflow_id,
            )


async def commit_with_schedule(
    session: AsyncSession,
    store: ScheduleStore,
    workflow_id: str,
    *,
    before: ScheduleEntry | None,
    after: ScheduleEntry | None,
) -> None:
    """Commit the session's workflow change together with its schedule entry.

    Order: the change is staged in the open transaction (the row is locked for an update or a
    delete, so concurrent saves of one workflow pass here one at a time), then the entry is
    written, then the transaction commits.

    - The entry cannot be written (NATS down): the transaction is rolled back and the caller
      answers 503. Nothing changed anywhere.
    - The commit fails after the entry was written: the entry is put back as it was (``before``,
      which the caller took from the row as it was before the change) and the error propagates.

    Writing the entry after a commit instead could leave a saved workflow whose schedule the
    scheduler never learns of (or a deleted workflow that keeps running); writing it first makes
    the only remaining gap a commit that fails after staging succeeded, which is undone here.
    A workflow without schedule triggers before and after never touches the bucket.
    """
    if before is None and after is None:
        await session.commit()
        return
    try:
        await store.write(workflow_id, after)
        await session.commit()
    except BaseException:
        await store.restore(workflow_id, before)
        raise
