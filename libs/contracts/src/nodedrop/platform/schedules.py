"""Cron schedules of saved workflows: the key-value layout shared by the api and the scheduler.

The api owns saved workflows (PostgreSQL); the scheduler never reads PostgreSQL. So whenever a
workflow with ``schedule_trigger`` nodes is saved, the api writes a :class:`ScheduleEntry` (a
snapshot of what to run) into the bucket ``nodedrop_schedules``, and deletes it when the
workflow is deleted or loses its last schedule trigger. Every scheduler copy watches the bucket.

Keys of the bucket:

- ``schedule.<workflow_id>``: the workflow's :class:`ScheduleEntry` (msgspec JSON);
- ``fired.<workflow_id>.<node_id>``: the last tick fired for that trigger (ISO 8601 text),
  claimed with a compare-and-swap so that one tick is fired by one scheduler copy only.

Cron expressions have five fields (minute hour day-of-month month day-of-week) and are read in
UTC. A tick's execution id is derived from the workflow, the trigger and the tick
(:func:`execution_id`), so recording a tick twice stores it once.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import msgspec
from nats.js import JetStreamContext
from nats.js.api import KeyValueConfig, StorageType
from nats.js.kv import KeyValue

from nodedrop.contracts import subjects
from nodedrop.contracts.cron import utc
from nodedrop.platform.buckets import open_key_value

SCHEDULE_TRIGGER_TYPE = "schedule_trigger"
ENTRY_PREFIX = "schedule."
FIRED_PREFIX = "fired."
#: What a watcher of schedule entries (not of claims) subscribes to.
ENTRY_KEYS = f"{ENTRY_PREFIX}>"

#: Namespace of the uuid5 in scheduled execution ids (fixed forever: ids must not change).
_ID_NAMESPACE = uuid.UUID("6f1c2a8e-5d0b-5a53-9a51-2f4c1e7b9d30")


class ScheduledTrigger(msgspec.Struct, frozen=True, kw_only=True):
    node_id: str
    cron: str


class ScheduleEntry(msgspec.Struct, frozen=True, kw_only=True):
    """What the scheduler needs to run a saved workflow on schedule, without PostgreSQL."""

    workflow_id: str
    version: int
    owner: str
    #: The definition as ``ExecutionRequested.workflow`` carries it (``Workflow.to_json()``).
    workflow: dict[str, Any]
    triggers: list[ScheduledTrigger]
    #: When this version was saved: ticks at or before it never fire for it.
    saved_at: datetime
    v: int = 1


_entry_decoder = msgspec.json.Decoder(ScheduleEntry)


def encode_entry(entry: ScheduleEntry) -> bytes:
    return msgspec.json.encode(entry)


def decode_entry(data: bytes) -> ScheduleEntry:
    """Raises ``msgspec.DecodeError`` (a ``ValueError``) on anything else."""
    return _entry_decoder.decode(data)


def entry_key(workflow_id: str) -> str:
    return f"{ENTRY_PREFIX}{workflow_id}"


def workflow_id_of(key: str) -> str:
    return key.removeprefix(ENTRY_PREFIX)


def fired_key(workflow_id: str, node_id: str) -> str:
    return f"{FIRED_PREFIX}{workflow_id}.{node_id}"


def schedule_triggers(definition: Mapping[str, Any]) -> list[ScheduledTrigger]:
    """The ``schedule_trigger`` nodes of a (validated) definition in JSON form, in node order."""
    return [
        ScheduledTrigger(node_id=node["id"], cron=node["parameters"]["cron"])
        for node in definition.get("nodes", [])
        if node.get("type") == SCHEDULE_TRIGGER_TYPE
    ]


def entry_for(
    *,
    workflow_id: str,
    version: int,
    owner: str,
    workflow: dict[str, Any],
    saved_at: datetime,
) -> ScheduleEntry | None:
    """The entry for a saved workflow, or None when it has no schedule trigger."""
    triggers = schedule_triggers(workflow)
    if not triggers:
        return None
    return ScheduleEntry(
        workflow_id=workflow_id,
        version=version,
        owner=owner,
        workflow=workflow,
        triggers=triggers,
        saved_at=saved_at.astimezone(UTC),
    )


def tick_iso(tick: datetime) -> str:
    """A tick as text: ``2026-11-26T10:00:00Z``."""
    return utc(tick).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_tick(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)


def execution_id(workflow_id: str, node_id: str, tick: datetime) -> str:
    """The execution id of one tick of one trigger: ``sched-<uuid5>``, only ``[a-z0-9-]``."""
    name = f"{workflow_id}/{node_id}/{tick_iso(tick)}"
    return f"sched-{uuid.uuid5(_ID_NAMESPACE, name)}"


# ------------------------------------------------------------------------------ bucket


async def open_bucket(js: JetStreamContext, replicas: int = 1) -> KeyValue:
    """The schedules bucket, created if missing (safe from every service at once) with
    ``replicas`` (NODEDROP_STREAM_REPLICAS)."""
    kv, _ = await open_key_value(
        js,
        KeyValueConfig(
            bucket=subjects.SCHEDULES_BUCKET,
            history=1,
            storage=StorageType.FILE,
            replicas=replicas,
            description="nodedrop: cron schedules of saved workflows and their fired ticks",
        ),
    )
    return kv
