"""Stream, subject and consumer names: built here and nowhere else.

Every event of an execution goes to ``nodedrop.events.<slot>.<execution_id>.<EventType>``. The
slot (``00``-``15``) is a stable hash of the execution id: several scheduler copies can later own
disjoint slot sets through consumer filter subjects, without changing a subject or a stored event.
"""

from __future__ import annotations

import zlib

from nodedrop.contracts.events import Event, NodeReady, type_name

EVENTS_STREAM = "NODEDROP_EVENTS"
EVENTS_PREFIX = "nodedrop.events"
SLOTS = 16

SCHEDULER_CONSUMER = "scheduler"
RUNNER_CONSUMER = "runners"
NOTIFIER_CONSUMER = "notifier"

SCHEDULER_STATE_BUCKET = "nodedrop_scheduler"

#: Dead letters: JetStream's advisories about messages of the events stream that a consumer gave
#: up on (terminated as undecodable, or delivered ``max_deliver`` times), kept in a stream of
#: their own and acted on by the scheduler (docs/architecture.md, "Dead letters").
DEAD_LETTERS_STREAM = "NODEDROP_DEAD_LETTERS"
DEAD_LETTERS_CONSUMER = "scheduler"


def dead_letter_subjects() -> list[str]:
    advisories = "$JS.EVENT.ADVISORY.CONSUMER"
    return [
        f"{advisories}.MAX_DELIVERIES.{EVENTS_STREAM}.*",
        f"{advisories}.MSG_TERMINATED.{EVENTS_STREAM}.*",
    ]


def slot(execution_id: str) -> str:
    return f"{zlib.crc32(execution_id.encode()) % SLOTS:02d}"


def event_subject(event: Event) -> str:
    return f"{EVENTS_PREFIX}.{slot(event.execution_id)}.{event.execution_id}.{type_name(event)}"


def execution_subject(execution_id: str, event_type: str = ">") -> str:
    """All of one execution's events (or one type of them)."""
    return f"{EVENTS_PREFIX}.{slot(execution_id)}.{execution_id}.{event_type}"


def all_events() -> str:
    return f"{EVENTS_PREFIX}.>"


def events_of_type(event_type: type[Event] | str) -> str:
    name = event_type if isinstance(event_type, str) else type_name(event_type)
    return f"{EVENTS_PREFIX}.*.*.{name}"


def node_ready_subjects() -> str:
    return events_of_type(NodeReady)


def execution_id_of(subject: str) -> str:
    return subject.split(".")[3]


def is_event_subject(subject: str) -> bool:
    """Whether ``subject`` has the shape of an event's (anything may be published there)."""
    parts = subject.split(".")
    return len(parts) == 5 and ".".join(parts[:2]) == EVENTS_PREFIX and parts[2] == slot(parts[3])


#: The scheduler's bucket holds a snapshot of its set of unfinished executions: a head, and
#: the chunks it names (:mod:`nodedrop.scheduler.snapshot`).
SNAPSHOT_HEAD_KEY = "snapshot.head"


def snapshot_chunk_key(snapshot_slot: str, index: int) -> str:
    return f"snapshot.{snapshot_slot}.{index}"


def snapshot_keys_subject() -> str:
    """Every key of the snapshot, as a subject (what the scheduler may write)."""
    return f"$KV.{SCHEDULER_STATE_BUCKET}.snapshot.>"


def active_key(execution_id: str) -> str:
    """Key of an unfinished execution in the scheduler's bucket, as versions before the
    snapshot kept the set (one key each); read once on an upgrade, then purged."""
    return f"active.{slot(execution_id)}.{execution_id}"


#: Every key of that former layout.
ACTIVE_KEYS = "active.>"


def active_keys_subject() -> str:
    return f"$KV.{SCHEDULER_STATE_BUCKET}.{ACTIVE_KEYS}"


#: Key-value bucket of cron schedules: one entry per saved workflow with schedule_trigger nodes
#: (written by the api), and the last fired tick of each trigger (claimed by the scheduler).
#: Layout and entry format: :mod:`nodedrop.contracts.schedules`.
SCHEDULES_BUCKET = "nodedrop_schedules"

#: Object store bucket holding node outputs too large to travel inside events.
DATA_BUCKET = "nodedrop_data"
