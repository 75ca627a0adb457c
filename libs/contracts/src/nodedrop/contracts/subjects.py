"""Names of consumers, buckets and the dead-letter stream: built here and nowhere else.

Where events live (slots, partitions, streams, subjects) is :mod:`nodedrop.contracts.routing`.
"""

from __future__ import annotations

import hashlib

from nodedrop.contracts.routing import Layout

SCHEDULER_CONSUMER = "scheduler"
RUNNER_CONSUMER = "runners"
NOTIFIER_CONSUMER = "notifier"

#: A partition's scheduler reads its inputs through a consumer of its own, created when it
#: takes the partition over; the names take turns, so that NATS permissions can name them all.
SCHEDULER_CONSUMER_TURNS = 4


def scheduler_consumer(turn: int) -> str:
    return f"{SCHEDULER_CONSUMER}-{turn % SCHEDULER_CONSUMER_TURNS}"


def scheduler_consumers() -> list[str]:
    return [scheduler_consumer(turn) for turn in range(SCHEDULER_CONSUMER_TURNS)]


SCHEDULER_STATE_BUCKET = "nodedrop_scheduler"

#: Dead letters: JetStream's advisories about messages of the events stream that a consumer gave
#: up on (terminated as undecodable, or delivered ``max_deliver`` times), kept in a stream of
#: their own and acted on by the scheduler (docs/architecture.md, "Dead letters").
DEAD_LETTERS_STREAM = "NODEDROP_DEAD_LETTERS"
DEAD_LETTERS_CONSUMER = "scheduler"


def dead_letter_subjects(layout: Layout) -> list[str]:
    advisories = "$JS.EVENT.ADVISORY.CONSUMER"
    return [
        f"{advisories}.{kind}.{stream}.*"
        for stream in layout.streams
        for kind in ("MAX_DELIVERIES", "MSG_TERMINATED")
    ]


#: The scheduler's bucket holds one snapshot per partition of its set of unfinished executions:
#: a head, and the chunks it names (:mod:`nodedrop.scheduler.snapshot`).
def snapshot_head_key(partition: int) -> str:
    return f"snapshot.{partition:03d}.head"


def snapshot_chunk_key(partition: int, snapshot_slot: str, index: int) -> str:
    return f"snapshot.{partition:03d}.{snapshot_slot}.{index}"


def snapshot_keys_subject() -> str:
    """Every key of the snapshots, as a subject (what the scheduler may write)."""
    return f"$KV.{SCHEDULER_STATE_BUCKET}.snapshot.>"


def running_key(scope: str, key: str) -> str:
    """The key of the running set of concurrency limit ``scope`` ``key`` (a user, a workflow)
    in the scheduler's bucket: hashed, as users and workflow ids may hold any character."""
    return f"running.{scope}.{hashlib.sha256(key.encode()).hexdigest()[:32]}"


def running_keys_subject() -> str:
    """Every key of the running sets, as a subject (what the scheduler may write)."""
    return f"$KV.{SCHEDULER_STATE_BUCKET}.running.>"


#: Leases: which process owns which partition, for the services that need one owner per
#: partition (scheduler, notifier). Keys ``<group>.<partition>`` and ``<group>.member.<id>``.
LEASES_BUCKET = "nodedrop_leases"


#: Key-value bucket of cron schedules: one entry per saved workflow with schedule_trigger nodes
#: (written by the api), and the last fired tick of each trigger (claimed by the scheduler).
#: Layout and entry format: :mod:`nodedrop.platform.schedules`.
SCHEDULES_BUCKET = "nodedrop_schedules"

#: Object store bucket holding node outputs too large to travel inside events.
DATA_BUCKET = "nodedrop_data"

#: Core NATS (not stored): after each committed projection batch that finished executions, the
#: notifier publishes the ids of those executions, a JSON list, on
#: ``nodedrop.projected.finished.<partition>``. An api answering a ``wait`` learns from it that
#: ``GET /api/executions/{id}`` now shows the end, without polling PostgreSQL. At most once:
#: a lost notice only makes a waiting request run out its wait.
PROJECTED_FINISHED_PREFIX = "nodedrop.projected.finished"


def projected_finished_subject(partition: int) -> str:
    return f"{PROJECTED_FINISHED_PREFIX}.{partition:03d}"


def projected_finished_subjects() -> str:
    """Every partition's notices, as one subscription."""
    return f"{PROJECTED_FINISHED_PREFIX}.*"
