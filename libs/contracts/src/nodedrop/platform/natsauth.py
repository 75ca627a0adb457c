"""Who may do what on NATS: one user per service, each allowed only the subjects it uses.

The one source of the nats-server ``authorization`` block: ``nodedrop up`` appends it to the
embedded server's configuration, and ``infra/nats/nodedrop-auth.conf`` (the production example)
is this module's output (``python -m nodedrop.platform.natsauth``; a test keeps the two equal).
No password is written into a configuration: each user's is the variable
``NODEDROP_NATS_<USER>_PASSWORD``, which nats-server reads from its environment when it loads the
configuration (a bcrypt hash works there as well as plain text).

Users: ``admin`` may do everything (the command line's admin tools, and the one step that
creates and updates the JetStream layout). The services may publish only the events they record,
read and acknowledge only their own durable consumer, create only ephemeral consumers (reads of
an execution's history, ordered consumers), and never update or delete a stream, delete a
message, or touch a durable consumer of another service. NATS grants by subject; JetStream
operations are requests on ``$JS.API.<OPERATION>.<stream>[.<consumer>]``, so each grant below
names the operation and the stream. A denied request gets no reply: the client sees a timeout,
and the server logs a ``Permissions Violation``.

A client connects as a user through ``NODEDROP_NATS_USER`` and ``NODEDROP_NATS_PASSWORD``,
passed to nats-py as connect options (:mod:`nodedrop.platform.natsconnect`), never inside the
server URL; :func:`url_with_credentials` is for tests and one-off connections to one server.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from nodedrop.contracts import subjects
from nodedrop.contracts.events import (
    ChildExecutionFinished,
    ChildExecutionStarted,
    Event,
    ExecutionCancelRequested,
    ExecutionFinished,
    ExecutionQueued,
    ExecutionRequested,
    ExecutionStarted,
    NodeCancelled,
    NodeDeferred,
    NodeFailed,
    NodeFailureHandled,
    NodeLogged,
    NodeReady,
    NodeRetryScheduled,
    NodeSkipped,
    NodeStarted,
    NodeSucceeded,
    NodeWaiting,
    WorkflowCalled,
)
from nodedrop.contracts.routing import SLOTS, Layout, events_of_type

ADMIN = "admin"
API, SCHEDULER, RUNNER, NOTIFIER = "api", "scheduler", "runner", "notifier"
SERVICES = (API, SCHEDULER, RUNNER, NOTIFIER)
USERS = (ADMIN, *SERVICES)

USER_ENV = "NODEDROP_NATS_USER"
PASSWORD_ENV = "NODEDROP_NATS_PASSWORD"

#: The events each service records (anything else it publishes on the events subjects is
#: refused by the server). The scheduler records ExecutionRequested for cron ticks, and
#: NodeSucceeded/NodeFailed for nodes that do not run (pinned or reused outputs, bad input), and
#: ExecutionCancelRequested when an execution's deadline passes or one of its events was
#: dead-lettered; ExecutionRequested and ExecutionCancelRequested also for the children of
#: ``execute_workflow`` nodes.
PUBLISHED_EVENTS: Mapping[str, tuple[type[Event], ...]] = {
    API: (ExecutionRequested, ExecutionCancelRequested),
    RUNNER: (NodeStarted, NodeSucceeded, NodeFailed, NodeLogged, WorkflowCalled),
    SCHEDULER: (
        ExecutionRequested,
        ExecutionCancelRequested,
        ExecutionQueued,
        ExecutionStarted,
        NodeReady,
        NodeDeferred,
        NodeWaiting,
        NodeSucceeded,
        NodeFailed,
        NodeFailureHandled,
        NodeRetryScheduled,
        NodeSkipped,
        NodeCancelled,
        ExecutionFinished,
        ChildExecutionStarted,
        ChildExecutionFinished,
    ),
    NOTIFIER: (),
}

#: The durable consumer each service reads (the notifier also deletes and recreates its own to
#: rewind it); nobody else may pull from it, acknowledge on it, change it or delete it.
OWN_CONSUMERS: Mapping[str, tuple[str, ...]] = {
    SCHEDULER: tuple(subjects.scheduler_consumers()),
    RUNNER: (subjects.RUNNER_CONSUMER,),
    NOTIFIER: (subjects.NOTIFIER_CONSUMER,),
}
DURABLE_CONSUMERS = tuple(c for consumers in OWN_CONSUMERS.values() for c in consumers)

_JS = "$JS.API"
FORMER_STREAM = "NODEDROP_EVENTS"
INBOX = "_INBOX.>"
_SCHEDULER_KV = f"KV_{subjects.SCHEDULER_STATE_BUCKET}"
_SCHEDULES_KV = f"KV_{subjects.SCHEDULES_BUCKET}"
_LEASES_KV = f"KV_{subjects.LEASES_BUCKET}"
_DATA = f"OBJ_{subjects.DATA_BUCKET}"


@dataclass(frozen=True)
class Permissions:
    """Allow and deny lists of subjects (a deny wins over an allow)."""

    publish: tuple[str, ...]
    publish_deny: tuple[str, ...]
    subscribe: tuple[str, ...]


# ------------------------------------------------------------------ building blocks


def _stream_info(stream: str) -> list[str]:
    return [f"{_JS}.STREAM.INFO.{stream}"]


def _create_bucket(stream: str) -> list[str]:
    # Create only succeeds when the stream is missing or has this exact configuration: it can
    # neither change nor remove anything (services open their buckets lazily, creating them).
    return [f"{_JS}.STREAM.INFO.{stream}", f"{_JS}.STREAM.CREATE.{stream}"]


def _direct_get(stream: str) -> list[str]:
    """Reading single messages: by sequence, or the last on a subject."""
    return [
        f"{_JS}.DIRECT.GET.{stream}",
        f"{_JS}.DIRECT.GET.{stream}.>",
        f"{_JS}.STREAM.MSG.GET.{stream}",
    ]


def _ephemeral_reads(stream: str) -> list[str]:
    """Ordered push consumers (nats-py's, for KV watches and object reads): created without a
    name, deleted, and answering flow control on ``$JS.FC``. Only on streams without durable
    consumers: an unnamed create request may name an existing consumer in its body, and the
    server then changes that consumer."""
    return [
        f"{_JS}.CONSUMER.CREATE.{stream}",
        f"{_JS}.CONSUMER.INFO.{stream}.*",  # a KV watch asks how much is pending
        f"{_JS}.CONSUMER.DELETE.{stream}.*",
        f"$JS.FC.{stream}.>",
    ]


def _history_reads(streams: tuple[str, ...]) -> list[str]:
    """Reading an execution's events (:mod:`nodedrop.platform.history`: batch direct gets),
    and stretches of a partition: a consumer under a fresh name, whose create subject carries
    that name (so the server will not let the body name another), pulled, then deleted. The
    durables' names are denied below."""
    return [
        grant
        for stream in streams
        for grant in (
            *_direct_get(stream),
            f"{_JS}.CONSUMER.CREATE.{stream}.*.>",
            f"{_JS}.CONSUMER.MSG.NEXT.{stream}.*",
            f"{_JS}.CONSUMER.DELETE.{stream}.*",
        )
    ]


def _own_durable(streams: tuple[str, ...], consumer: str) -> list[str]:
    # Created (legacy subject) or its settings updated (the named subject, with or without the
    # filter), pulled, acknowledged.
    return [
        grant
        for stream in streams
        for grant in (
            f"{_JS}.CONSUMER.DURABLE.CREATE.{stream}.{consumer}",
            f"{_JS}.CONSUMER.CREATE.{stream}.{consumer}",
            f"{_JS}.CONSUMER.CREATE.{stream}.{consumer}.>",
            f"{_JS}.CONSUMER.MSG.NEXT.{stream}.{consumer}",
            f"$JS.ACK.{stream}.{consumer}.>",
        )
    ]


def _partition_owner(layout: Layout) -> list[str]:
    """A scheduler taking a partition over: writes its fence, creates its own consumer (one of
    the names that take turns), reads and acknowledges through it, and deletes its
    predecessor's."""
    return [
        *(layout.fence_subject(p) for p in range(layout.partitions)),
        *(
            grant
            for stream in layout.streams
            for consumer in subjects.scheduler_consumers()
            for grant in (
                f"{_JS}.CONSUMER.CREATE.{stream}.{consumer}",
                f"{_JS}.CONSUMER.CREATE.{stream}.{consumer}.>",
                f"{_JS}.CONSUMER.INFO.{stream}.{consumer}",
                f"{_JS}.CONSUMER.MSG.NEXT.{stream}.{consumer}",
                f"{_JS}.CONSUMER.DELETE.{stream}.{consumer}",
                f"$JS.ACK.{stream}.{consumer}.>",
            )
        ),
    ]


def _dead_letters(streams: tuple[str, ...]) -> list[str]:
    """The scheduler acts on dead letters: it creates their stream if missing (create only
    succeeds when the stream is missing or identical) and its durable consumer on it, pulls
    and acknowledges, and reads the message each advisory names."""
    stream, consumer = subjects.DEAD_LETTERS_STREAM, subjects.DEAD_LETTERS_CONSUMER
    return [
        *_create_bucket(stream),
        f"{_JS}.CONSUMER.INFO.{stream}.{consumer}",
        f"{_JS}.CONSUMER.DURABLE.CREATE.{stream}.{consumer}",
        f"{_JS}.CONSUMER.CREATE.{stream}.{consumer}",
        f"{_JS}.CONSUMER.CREATE.{stream}.{consumer}.>",
        f"{_JS}.CONSUMER.MSG.NEXT.{stream}.{consumer}",
        f"$JS.ACK.{stream}.{consumer}.>",
        *(grant for events in streams for grant in _direct_get(events)),
    ]


def _events_base(layout: Layout) -> list[str]:
    # Every service checks the layout at start (ensure_jetstream): the streams (and that there
    # are no more of them, nor a former single stream) and the durable consumers, read only.
    checked = (*layout.streams, FORMER_STREAM)
    if layout.partitions < SLOTS:
        checked = (*checked, layout.stream(layout.partitions))
    return [
        *(grant for stream in checked for grant in _stream_info(stream)),
        *(f"{_JS}.CONSUMER.INFO.{stream}.*" for stream in layout.streams),
    ]


def _publish_events(user: str) -> list[str]:
    return [events_of_type(t) for t in PUBLISHED_EVENTS[user]]


def _kv_keys(bucket: str, keys: str = ">") -> str:
    return f"$KV.{bucket}.{keys}"


def _leases(group: str) -> list[str]:
    """Holding partitions by lease (:mod:`nodedrop.platform.leases`): its group's keys, read
    one by one and listed (a watch)."""
    return [
        *_create_bucket(_LEASES_KV),
        _kv_keys(subjects.LEASES_BUCKET, f"{group}.>"),
        *_direct_get(_LEASES_KV),
        *_ephemeral_reads(_LEASES_KV),
    ]


def _data_read() -> list[str]:
    # Reading an object: its info, then its chunks through an ordered consumer, which nats-py
    # creates after looking the stream up by subject (STREAM.NAMES).
    return [
        *_create_bucket(_DATA),
        *_direct_get(_DATA),
        *_ephemeral_reads(_DATA),
        f"{_JS}.STREAM.NAMES",
    ]


#: What no service may do, whatever its allow list says (explicit, so that a too wide allow
#: added later cannot open it): change or remove a stream, or remove single messages.
_NEVER = (
    f"{_JS}.STREAM.DELETE.>",
    f"{_JS}.STREAM.UPDATE.>",
    f"{_JS}.STREAM.MSG.DELETE.>",
)


def _never(layout: Layout) -> list[str]:
    return [*_NEVER, *(f"{_JS}.STREAM.CREATE.{stream}" for stream in layout.streams)]


def _durables_of_others(user: str, streams: tuple[str, ...]) -> list[str]:
    """Deny creating (changing), pulling from, acknowledging on and deleting the durable
    consumers this service does not own (the allows for its own reads match any consumer
    name). The notifier deletes its own to rewind it, the scheduler its predecessor's."""
    denied = []
    own = OWN_CONSUMERS.get(user, ())
    for stream in streams:
        for consumer in DURABLE_CONSUMERS:
            if consumer not in own:
                denied += [
                    f"{_JS}.CONSUMER.CREATE.{stream}.{consumer}",
                    f"{_JS}.CONSUMER.CREATE.{stream}.{consumer}.>",
                    f"{_JS}.CONSUMER.DURABLE.CREATE.{stream}.{consumer}",
                    f"{_JS}.CONSUMER.MSG.NEXT.{stream}.{consumer}",
                    f"$JS.ACK.{stream}.{consumer}.>",
                ]
            if consumer not in own or user not in (NOTIFIER, SCHEDULER):
                denied.append(f"{_JS}.CONSUMER.DELETE.{stream}.{consumer}")
    return denied


# ------------------------------------------------------------------ the permission sets


def _allowed(user: str, layout: Layout) -> list[str]:
    streams = layout.streams
    if user == API:
        return [
            *_publish_events(API),
            *_events_base(layout),
            # the last ExecutionRequested/Finished of an execution; the events endpoint
            *_history_reads(streams),
            *_create_bucket(_SCHEDULES_KV),
            _kv_keys(subjects.SCHEDULES_BUCKET, "schedule.>"),  # the saved schedules
            *_data_read(),  # streaming a large node output
        ]
    if user == SCHEDULER:
        return [
            *_publish_events(SCHEDULER),
            *_events_base(layout),
            *_partition_owner(layout),
            *_leases("scheduler"),
            # rebuilding an execution; at takeover, the requests and ends after the snapshot
            *_history_reads(streams),
            *_dead_letters(streams),
            # the snapshot of its unfinished executions (its own bucket), complete up to its
            # consumer's ack floor (read with CONSUMER.INFO, in _events_base)
            *_create_bucket(_SCHEDULER_KV),
            subjects.snapshot_keys_subject(),
            # the running sets of the concurrency limits (compare-and-swap), same bucket
            subjects.running_keys_subject(),
            *_direct_get(_SCHEDULER_KV),
            # cron: watches the schedules, claims ticks (compare-and-swap on fired.*)
            *_create_bucket(_SCHEDULES_KV),
            _kv_keys(subjects.SCHEDULES_BUCKET, "fired.>"),
            *_direct_get(_SCHEDULES_KV),
            *_ephemeral_reads(_SCHEDULES_KV),
        ]
    if user == RUNNER:
        return [
            *_publish_events(RUNNER),
            *_events_base(layout),
            *_own_durable(streams, subjects.RUNNER_CONSUMER),
            *_history_reads(streams),  # checking a task too old for its claim to tell
            # large outputs: written, read back, and an object's old chunks purged when it is
            # written again (a runner can overwrite any object anyway)
            *_data_read(),
            f"$O.{subjects.DATA_BUCKET}.>",
            f"{_JS}.STREAM.PURGE.{_DATA}",
        ]
    if user == NOTIFIER:
        return [
            *_events_base(layout),
            *_own_durable(streams, subjects.NOTIFIER_CONSUMER),
            *_leases("notifier"),
            # rewinding it
            *(f"{_JS}.CONSUMER.DELETE.{s}.{subjects.NOTIFIER_CONSUMER}" for s in streams),
            # The WebSocket follows an execution with nats-py's ordered consumer, created
            # without a name: the one grant through which a service could change a durable
            # consumer (docs/operations.md, "NATS credentials and permissions").
            *(grant for stream in streams for grant in _ephemeral_reads(stream)),
            # retention: scanning the stream (a pull consumer), purging finished executions'
            # events and their stored outputs
            *_history_reads(streams),
            *(f"{_JS}.STREAM.PURGE.{stream}" for stream in streams),
            *_data_read(),
            f"$O.{subjects.DATA_BUCKET}.M.>",
            f"{_JS}.STREAM.PURGE.{_DATA}",
            # the ids of the executions a committed batch finished, for the api's waiters
            f"{subjects.PROJECTED_FINISHED_PREFIX}.>",
        ]
    raise ValueError(f"no permissions are defined for NATS user {user!r}")


def _subscribed(user: str) -> list[str]:
    subscribed = [INBOX]  # replies, and deliveries of pull and push consumers
    if user == RUNNER:  # stop running nodes of a cancelled or finished execution at once
        subscribed += [events_of_type(t) for t in (NodeCancelled, ExecutionFinished)]
    if user == API:  # requests that wait for their execution's end (docs/api.md, "Waiting")
        subscribed.append(subjects.projected_finished_subjects())
        # a webhook answered by a respond_to_webhook node: that execution's results only
        subscribed.append(events_of_type(NodeSucceeded))
    return subscribed


def permissions(user: str, layout: Layout | None = None) -> Permissions | None:
    """The permissions of ``user`` on a log of ``layout`` (by default one partition);
    None for the admin, who may do everything."""
    if user == ADMIN:
        return None
    layout = layout or Layout()
    return Permissions(
        publish=tuple(dict.fromkeys(_allowed(user, layout))),
        publish_deny=(*_never(layout), *_durables_of_others(user, layout.streams)),
        subscribe=tuple(_subscribed(user)),
    )


# ------------------------------------------------------------------ server configuration


def password_variable(user: str) -> str:
    return f"NODEDROP_NATS_{user.upper()}_PASSWORD"


def _subject_list(items: tuple[str, ...], indent: str) -> str:
    inner = "".join(f"{indent}  {json.dumps(item)}\n" for item in items)
    return f"[\n{inner}{indent}]"


def authorization_config(layout: Layout | None = None) -> str:
    """The nats-server ``authorization`` block for every user, passwords as variables, for a
    log of ``layout`` (by default one partition)."""
    lines = [
        "# nodedrop's NATS users and what each may do. Generated by",
        "# `python -m nodedrop.platform.natsauth` from nodedrop/platform/natsauth.py: edit that",
        "# module, not this file. The passwords come from the server's environment, each in",
        "# double quotes (the variable's value is parsed as configuration text); a bcrypt hash",
        "# works as well as plain text:",
        *(f"#   {password_variable(user)}" for user in USERS),
        "authorization {",
        "  users = [",
    ]
    for user in USERS:
        password = f"${password_variable(user)}"
        perms = permissions(user, layout)
        if perms is None:
            lines.append(f"    # {user}: every subject (admin tools and the JetStream setup)")
            lines.append(f"    {{user: {json.dumps(user)}, password: {password}}}")
            continue
        indent = "        "
        lines += [
            f"    # {user}",
            f"    {{user: {json.dumps(user)}, password: {password}, permissions: {{",
            f"      publish: {{\n{indent}allow: {_subject_list(perms.publish, indent)}",
            f"{indent}deny: {_subject_list(perms.publish_deny, indent)}\n      }}",
            f"      subscribe: {{\n{indent}allow: {_subject_list(perms.subscribe, indent)}\n"
            "      }",
            "    }}",
        ]
    lines += ["  ]", "}", ""]
    return "\n".join(lines)


# ------------------------------------------------------------------ credentials


def generate_passwords() -> dict[str, str]:
    """A new random password per user (URL-safe: they travel in connection URLs)."""
    return {user: secrets.token_urlsafe(32) for user in USERS}


def read_passwords(path: Path) -> dict[str, str] | None:
    """The passwords kept in ``path`` (JSON ``{user: password}``), if it holds every user's."""
    try:
        stored = json.loads(path.read_text())
    except (FileNotFoundError, NotADirectoryError, json.JSONDecodeError):
        return None
    if not isinstance(stored, dict) or not all(
        isinstance(stored.get(user), str) and stored[user] for user in USERS
    ):
        return None
    return {user: stored[user] for user in USERS}


def ensure_passwords(path: Path) -> tuple[dict[str, str], bool]:
    """The passwords in ``path``, generated (mode 0600) on first use. True if new."""
    existing = read_passwords(path)
    if existing is not None:
        return existing, False
    passwords = generate_passwords()
    temporary = path.with_name(f".{path.name}.{os.getpid()}")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        json.dump(passwords, out, indent=2)
        out.write("\n")
    temporary.replace(path)  # atomic: never a half-written file
    return passwords, True


def server_environment(passwords: Mapping[str, str]) -> dict[str, str]:
    """The variables nats-server reads the passwords from (see :func:`authorization_config`).

    nats-server parses a variable's value as configuration text: unquoted, a password that
    starts with digits may be read as a date or a number. Each value is therefore a quoted
    string (the quotes are not part of the password)."""
    return {password_variable(user): json.dumps(passwords[user]) for user in USERS}


def client_environment(user: str, password: str) -> dict[str, str]:
    """What a nodedrop process needs in its environment to connect as ``user``."""
    return {USER_ENV: user, PASSWORD_ENV: password}


#: Characters a password may have to travel unescaped in a URL (nats-py does not unquote).
_URL_SAFE = re.compile(r"^[A-Za-z0-9._~-]+$")


def url_with_credentials(url: str, user: str | None, password: str | None) -> str:
    """``url`` with ``user`` and ``password`` in it (nats-py reads them from there), or ``url``
    unchanged without a user. A user given here replaces one written in the URL."""
    if not user:
        return url
    for name, value in ((USER_ENV, user), (PASSWORD_ENV, password or "")):
        if not _URL_SAFE.match(value):
            raise ValueError(
                f"{name} must be non-empty and use only letters, digits and . _ ~ - "
                "(it is passed to the NATS client in the server URL)"
            )
    parts = urlsplit(url)
    host = parts.netloc.rsplit("@", 1)[-1]
    return urlunsplit(parts._replace(netloc=f"{user}:{password}@{host}"))


def without_credentials(url: str) -> str:
    """``url`` fit for a log line: the password replaced by ``***``."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rsplit("@", 1)[-1]
    return urlunsplit(parts._replace(netloc=f"{parts.username}:***@{host}"))


def main() -> None:
    """Print the authorization block (what ``infra/nats/nodedrop-auth.conf`` holds)."""
    sys.stdout.write(authorization_config())


if __name__ == "__main__":
    main()
