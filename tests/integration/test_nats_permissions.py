"""NATS users and permissions (nodedrop.platform.natsauth) against the real nats-server.

One server per module, started with the generated authorization (as ``nodedrop up`` starts
it), the JetStream layout set up as ``admin``. Each forbidden action is checked twice: the server
says ``Permissions Violation`` (to the client, and a denied request is never answered), and
the stream shows that nothing happened. What each service may do is shown by running the real
services under these users (tests/e2e/test_nats_auth.py).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import tempfile
import uuid
from collections.abc import AsyncIterator, Awaitable, Iterator
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import nats
import nats.errors
import pytest
from nats.aio.client import Client as NatsClient
from nats.js import JetStreamContext
from nats.js.api import AckPolicy
from nats.js.errors import NotFoundError

from nodedrop.contracts import codec, ids, subjects
from nodedrop.contracts.events import (
    ExecutionFinished,
    ExecutionRequested,
    NodeSucceeded,
)
from nodedrop.contracts.routing import (
    PARTITIONS_ENV,
    Layout,
    all_events,
    execution_subject,
    node_ready_subjects,
)
from nodedrop.embedded import EmbeddedNats
from nodedrop.platform import natsauth, schedules
from nodedrop.platform.datastore import DataStore
from nodedrop.platform.event_log import JetStreamEventLog
from nodedrop.platform.jetstream import StreamSettings, ensure_jetstream
from nodedrop.platform.notifier_consumer import rewind_consumer
from nodedrop.platform.pull import PullConsumer
from nodedrop.scheduler.active import ActiveExecutions
from nodedrop.scheduler.partitions import take_over
from nodedrop.scheduler.snapshot_store import SnapshotStore, open_bucket

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

REPO = Path(__file__).resolve().parents[2]
#: How long to wait for the answer a denied request never gets.
DENIED_WAIT_S = 0.5


@pytest.fixture(scope="module")
def server() -> Iterator[EmbeddedNats]:
    with tempfile.TemporaryDirectory(prefix="nodedrop-natsauth-") as directory:
        nats_server = EmbeddedNats(directory, port=0, passwords=natsauth.generate_passwords())
        nats_server.start()
        try:
            yield nats_server
        finally:
            nats_server.stop()


class Session:
    """A connection as one user, and the permission errors the server sent it."""

    def __init__(self, nc: NatsClient, errors: list[str]) -> None:
        self.nc = nc
        self.js = nc.jetstream(timeout=DENIED_WAIT_S)
        self.errors = errors

    def violations(self) -> list[str]:
        return [e for e in self.errors if "permissions violation" in e.lower()]

    async def refused(self, action: Awaitable[object], subject: str) -> None:
        """``action`` (a request, or a JetStream publish) gets no answer, and the server
        reports the violation for ``subject``."""
        with pytest.raises((nats.errors.TimeoutError, TimeoutError)):
            await action
        for _ in range(100):  # the -ERR may come just after the timeout
            if any(subject.lower() in v.lower() for v in self.violations()):
                return
            await asyncio.sleep(0.01)
        pytest.fail(f"no permissions violation for {subject}; errors: {self.errors}")


@asynccontextmanager
async def session(server: EmbeddedNats, user: str) -> AsyncIterator[Session]:
    errors: list[str] = []

    async def on_error(error: Exception) -> None:
        errors.append(str(error))

    nc = await nats.connect(server.url_as(user), error_cb=on_error, allow_reconnect=False)
    try:
        yield Session(nc, errors)
    finally:
        await nc.close()


@pytest.fixture(scope="module")
async def admin(server: EmbeddedNats) -> AsyncIterator[JetStreamContext]:
    """The layout the services find at start: stream, consumers, buckets."""
    async with session(server, natsauth.ADMIN) as admin_session:
        js = admin_session.nc.jetstream()
        await ensure_jetstream(js, StreamSettings.from_env())
        await schedules.open_bucket(js)
        await DataStore(js, threshold=0).offload({"main": [{"x": 1}]}, "setup")
        yield js


LAYOUT = Layout.from_env()
#: The partition streams the checks of "any stream" are made on: the first and the last.
SOME_STREAMS = sorted({LAYOUT.stream(0), LAYOUT.stream(LAYOUT.partitions - 1)})


async def stream_messages(js: JetStreamContext) -> int:
    """The messages in the log: every partition's stream."""
    return sum([(await js.stream_info(stream)).state.messages for stream in LAYOUT.streams])


def new_execution_id(partition: int | None = None) -> str:
    while True:
        execution_id = f"perm-{uuid.uuid4().hex}"
        if partition is None or LAYOUT.partition_of(execution_id) == partition:
            return execution_id


def requested(execution_id: str) -> ExecutionRequested:
    return ExecutionRequested(
        event_id=ids.execution_requested(execution_id),
        execution_id=execution_id,
        time=datetime.now(UTC),
        workflow={"name": "w", "nodes": [], "connections": []},
        trigger="start",
        input=[{}],
        requested_by="user",
    )


# ------------------------------------------------------------------ who may connect


async def test_anonymous_and_wrong_password_connections_are_refused(
    server: EmbeddedNats,
) -> None:
    for url in (server.url, natsauth.url_with_credentials(server.url, "runner", "wrong")):
        with pytest.raises(nats.errors.Error, match="Authorization Violation"):
            await nats.connect(url, allow_reconnect=False)
    assert "authentication error" in server.log_file.read_text()


async def test_every_user_connects_with_its_own_password(server: EmbeddedNats) -> None:
    for user in natsauth.USERS:
        nc = await nats.connect(server.url_as(user), allow_reconnect=False)
        assert nc.is_connected
        await nc.close()
    other = server.passwords["api"] if server.passwords else ""
    with pytest.raises(nats.errors.Error, match="Authorization Violation"):
        await nats.connect(
            natsauth.url_with_credentials(server.url, "runner", other), allow_reconnect=False
        )


# ------------------------------------------------------------------ events


@pytest.mark.parametrize(
    ("user", "event_type"),
    [
        ("runner", "ExecutionRequested"),
        ("api", "NodeSucceeded"),
        ("notifier", "ExecutionRequested"),
        ("notifier", "ExecutionFinished"),
        ("runner", "ExecutionFinished"),
        ("scheduler", "NodeStarted"),  # it records cancels (deadline, dead letter), not starts
    ],
)
async def test_a_service_cannot_record_events_of_another(
    server: EmbeddedNats, admin: JetStreamContext, user: str, event_type: str
) -> None:
    execution_id = new_execution_id()
    event = requested(execution_id)
    subject = execution_subject(execution_id, event_type)
    stream = LAYOUT.stream_of(execution_id)
    before = await stream_messages(admin)
    async with session(server, user) as s:
        await s.refused(s.js.publish(subject, codec.encode(event), stream=stream), subject)
    assert await stream_messages(admin) == before
    with pytest.raises(NotFoundError):
        await admin.get_last_msg(stream, subject)


@pytest.mark.parametrize(
    ("user", "event_type"),
    [
        ("api", ExecutionRequested),
        ("runner", NodeSucceeded),
        ("scheduler", ExecutionFinished),
        ("scheduler", ExecutionRequested),
    ],
)
async def test_a_service_records_its_own_events(
    server: EmbeddedNats, admin: JetStreamContext, user: str, event_type: type
) -> None:
    execution_id = new_execution_id()
    subject = execution_subject(execution_id, event_type.__name__)
    stream = LAYOUT.stream_of(execution_id)
    async with session(server, user) as s:
        ack = await s.js.publish(subject, codec.encode(requested(execution_id)), stream=stream)
        assert not s.violations()
    stored = await admin.get_last_msg(stream, subject)
    assert stored.seq == ack.seq


def test_every_event_type_is_recorded_by_some_service() -> None:
    from nodedrop.contracts.events import EVENT_TYPES

    published = {t for types in natsauth.PUBLISHED_EVENTS.values() for t in types}
    assert published == set(EVENT_TYPES)


# ------------------------------------------------------------------ the stream


@pytest.mark.parametrize("user", natsauth.SERVICES)
async def test_every_service_checks_the_layout_at_start_without_a_violation(
    server: EmbeddedNats, admin: JetStreamContext, user: str
) -> None:
    async with session(server, user) as s:
        await asyncio.wait_for(ensure_jetstream(s.js, StreamSettings.from_env()), 2 * DENIED_WAIT_S)
        assert not s.violations()


async def test_a_changed_stream_setting_is_still_applied_by_the_admin(
    server: EmbeddedNats, admin: JetStreamContext
) -> None:
    week = 7 * 24 * 3600.0
    await ensure_jetstream(admin, replace(StreamSettings.from_env(), max_age_s=week))
    for stream in LAYOUT.streams:
        assert (await admin.stream_info(stream)).config.max_age == week
    await ensure_jetstream(admin, StreamSettings.from_env())
    for stream in LAYOUT.streams:
        assert (await admin.stream_info(stream)).config.max_age == 0


@pytest.mark.parametrize("stream", SOME_STREAMS)
@pytest.mark.parametrize("user", natsauth.SERVICES)
async def test_no_service_can_delete_or_change_the_stream(
    server: EmbeddedNats, admin: JetStreamContext, user: str, stream: str
) -> None:
    before = await admin.stream_info(stream)
    async with session(server, user) as s:
        await s.refused(s.js.delete_stream(stream), f"$JS.API.STREAM.DELETE.{stream}")
        shrunk = before.config.evolve(max_msgs=1)
        await s.refused(s.js.update_stream(shrunk), f"$JS.API.STREAM.UPDATE.{stream}")
        # delete_msg has no timeout of its own (nats-py waits 5 s): bounded like the others.
        deleting = asyncio.wait_for(s.js.delete_msg(stream, 1), DENIED_WAIT_S)
        await s.refused(deleting, f"$JS.API.STREAM.MSG.DELETE.{stream}")
    after = await admin.stream_info(stream)
    assert after.config.max_msgs == before.config.max_msgs
    assert after.state.messages >= before.state.messages
    assert after.state.first_seq == before.state.first_seq


@pytest.mark.parametrize("stream", SOME_STREAMS)
@pytest.mark.parametrize("user", ["api", "scheduler", "runner"])
async def test_only_the_notifier_may_purge_events(
    server: EmbeddedNats, admin: JetStreamContext, user: str, stream: str
) -> None:
    await admin.publish(execution_subject(new_execution_id(LAYOUT.partitions - 1), "X"), b"{}")
    await admin.publish(execution_subject(new_execution_id(0), "X"), b"{}")
    before = await stream_messages(admin)
    assert (await admin.stream_info(stream)).state.messages > 0
    async with session(server, user) as s:
        await s.refused(s.js.purge_stream(stream), f"$JS.API.STREAM.PURGE.{stream}")
    assert await stream_messages(admin) >= before


async def test_the_admin_may_delete_a_stream(server: EmbeddedNats, admin: JetStreamContext) -> None:
    await admin.add_stream(name="SCRATCH", subjects=["scratch.>"])
    assert await admin.delete_stream("SCRATCH")


# ------------------------------------------------------------------ durable consumers


@pytest.fixture(scope="module")
async def scheduler_consumer(admin: JetStreamContext) -> str:
    """The consumer of partition 0's scheduler, as a takeover leaves it (made here as the admin:
    what the scheduler itself may do is checked below), named in the partition's fence."""
    ownership = await take_over(
        JetStreamEventLog(admin._nc, admin, StreamSettings.from_env()), 0, owner="perm"
    )
    fence = await admin.get_last_msg(LAYOUT.stream(0), LAYOUT.fence_subject(0))
    assert json.loads(fence.data or b"")["consumer"] == ownership.consumer
    return ownership.consumer


@pytest.mark.parametrize(
    ("user", "consumer"),
    [
        ("api", subjects.RUNNER_CONSUMER),
        ("scheduler", subjects.NOTIFIER_CONSUMER),
        ("notifier", subjects.RUNNER_CONSUMER),
    ],
)
async def test_a_service_cannot_take_or_remove_another_services_work(
    server: EmbeddedNats, admin: JetStreamContext, user: str, consumer: str
) -> None:
    await cannot_take_or_remove(server, admin, user, consumer)


@pytest.mark.parametrize("user", ["runner", "api", "notifier"])
async def test_a_service_cannot_take_or_remove_the_schedulers_work(
    server: EmbeddedNats, admin: JetStreamContext, scheduler_consumer: str, user: str
) -> None:
    """The consumer a scheduler created for itself when it took its partition over."""
    await cannot_take_or_remove(server, admin, user, scheduler_consumer)


async def cannot_take_or_remove(
    server: EmbeddedNats, admin: JetStreamContext, user: str, consumer: str
) -> None:
    stream = LAYOUT.stream(0)
    before = await admin.consumer_info(stream, consumer)
    async with session(server, user) as s:
        await s.refused(
            s.nc.request(f"$JS.API.CONSUMER.MSG.NEXT.{stream}.{consumer}", b"1", timeout=1),
            f"$JS.API.CONSUMER.MSG.NEXT.{stream}.{consumer}",
        )
        await s.refused(
            s.js.delete_consumer(stream, consumer), f"$JS.API.CONSUMER.DELETE.{stream}.{consumer}"
        )
        # Changing it, through the named create subject.
        changed = before.config.evolve(filter_subject=all_events(), filter_subjects=None)
        await s.refused(
            s.js.add_consumer(stream, changed), f"$JS.API.CONSUMER.CREATE.{stream}.{consumer}"
        )
    after = await admin.consumer_info(stream, consumer)
    assert after.config.filter_subject == before.config.filter_subject
    assert after.config.filter_subjects == before.config.filter_subjects
    assert after.delivered.stream_seq == before.delivered.stream_seq


async def test_the_notifier_recreates_pulls_from_and_acks_its_own_consumer(
    server: EmbeddedNats, admin: JetStreamContext
) -> None:
    """Its consumer as an older release left it (acked one message at a time): the notifier
    recreates it at its checkpoint with the canonical settings, pulls from it continuously, and
    acknowledges a batch with one ack (platform/notifier_consumer.py, notifier/consumer.py)."""
    stream, consumer = LAYOUT.stream(0), subjects.NOTIFIER_CONSUMER
    old = (await admin.consumer_info(stream, consumer)).config
    await admin.delete_consumer(stream, consumer)
    await admin.add_consumer(stream, old.evolve(ack_policy=AckPolicy.EXPLICIT))
    for _ in range(2):
        await admin.publish(execution_subject(new_execution_id(0), "ExecutionRequested"), b"{}")
    last = (await admin.stream_info(stream)).state.last_seq
    async with session(server, natsauth.NOTIFIER) as s:
        await rewind_consumer(s.js, stream, last - 2)
        pull = PullConsumer(s.nc, stream, consumer, capacity=10)
        await pull.start()
        batch = await pull.next_batch(10, 5)
        while len(batch) < 2:
            batch += await pull.next_batch(10, 5)
        await batch[-1].ack()
        await s.nc.flush()
        await pull.stop()
        assert not s.violations()
    assert [m.metadata.sequence.stream for m in batch] == [last - 1, last]
    info = await admin.consumer_info(stream, consumer)
    assert (info.config.ack_policy, info.num_ack_pending) == (AckPolicy.ALL, 0)


@pytest.mark.parametrize("user", ["api", "scheduler", "runner"])
async def test_an_unnamed_consumer_create_cannot_redefine_a_durable(
    server: EmbeddedNats, admin: JetStreamContext, user: str
) -> None:
    """An unnamed create request may name an existing consumer in its body (and the server then
    changes it), so only the notifier's ordered consumers use that subject."""
    stream = LAYOUT.stream(0)
    body = {
        "stream_name": stream,
        "config": {
            "name": subjects.RUNNER_CONSUMER,
            "filter_subject": all_events(),
            "ack_policy": "explicit",
            "deliver_policy": "all",
        },
    }
    async with session(server, user) as s:
        await s.refused(
            s.nc.request(f"$JS.API.CONSUMER.CREATE.{stream}", json.dumps(body).encode(), 1),
            f"$JS.API.CONSUMER.CREATE.{stream}",
        )
    info = await admin.consumer_info(stream, subjects.RUNNER_CONSUMER)
    assert info.config.filter_subject == node_ready_subjects()


# ------------------------------------------------------------------ buckets


async def test_a_runner_cannot_read_or_write_the_schedules(
    server: EmbeddedNats, admin: JetStreamContext
) -> None:
    kv = await admin.key_value(subjects.SCHEDULES_BUCKET)
    await kv.put("schedule.wf1", b"{}")
    stream = f"KV_{subjects.SCHEDULES_BUCKET}"
    async with session(server, "runner") as s:
        await s.refused(s.js.key_value(subjects.SCHEDULES_BUCKET), f"$JS.API.STREAM.INFO.{stream}")
        await s.refused(
            s.nc.request(f"$JS.API.DIRECT.GET.{stream}.$KV.nodedrop_schedules.schedule.wf1", b""),
            f"$JS.API.DIRECT.GET.{stream}",
        )
        await s.refused(
            s.js.publish(f"$KV.{subjects.SCHEDULES_BUCKET}.schedule.wf1", b"forged"),
            f"$KV.{subjects.SCHEDULES_BUCKET}.schedule.wf1",
        )
    assert (await kv.get("schedule.wf1")).value == b"{}"


async def test_the_scheduler_claims_ticks_but_cannot_write_schedules(
    server: EmbeddedNats, admin: JetStreamContext
) -> None:
    async with session(server, "scheduler") as s:
        kv = await schedules.open_bucket(s.js)
        revision = await kv.create(schedules.fired_key("wf2", "cron"), b"2026-11-26T10:00:00Z")
        assert revision > 0
        await s.refused(
            kv.put(schedules.entry_key("wf2"), b"forged"),
            f"$KV.{subjects.SCHEDULES_BUCKET}.{schedules.entry_key('wf2')}",
        )
        assert not [v for v in s.violations() if "fired" in v]
    with pytest.raises(Exception, match="not found"):
        await (await admin.key_value(subjects.SCHEDULES_BUCKET)).get(schedules.entry_key("wf2"))


async def test_the_scheduler_takes_a_partition_over_and_snapshots_its_executions(
    server: EmbeddedNats, admin: JetStreamContext
) -> None:
    """Everything the scheduler does to take a partition over and with its set of unfinished
    executions, as its user: the fence, its own consumer (and its predecessor's deleted), the
    ack floor of that consumer, the scan of the stream after the snapshot, the snapshot. It may
    write no other key of its bucket."""
    partition = LAYOUT.partitions - 1
    await admin.publish(execution_subject(new_execution_id(partition), "ExecutionRequested"), b"{}")
    async with session(server, "scheduler") as s:
        event_log = JetStreamEventLog(s.nc, s.js, StreamSettings.from_env())
        # The second takes over from the first (other tests of this module may have taken the
        # partition before: the consumers' names rotate on from wherever they were).
        first = await take_over(event_log, partition, owner="perm-1")
        ownership = await take_over(event_log, partition, owner="perm-2")
        kv, _ = await open_bucket(s.js)
        active = ActiveExecutions(
            event_log,
            SnapshotStore(kv, partition, "perm"),
            partition=partition,
            consumer=ownership.consumer,
        )
        await active.open()
        active.add("ex-new")
        assert await active.snapshot()
        await active.close()
        assert "ex-new" in await active.ids()
        assert s.violations() == []
        key = "active.ex-forged"
        await s.refused(
            s.js.publish(f"$KV.{subjects.SCHEDULER_STATE_BUCKET}.{key}", b""),
            f"$KV.{subjects.SCHEDULER_STATE_BUCKET}.{key}",
        )
    names = {c.name for c in await admin.consumers_info(ownership.stream)}
    turn = subjects.scheduler_consumers().index(first.consumer)
    assert ownership.consumer == subjects.scheduler_consumer(turn + 1)
    assert ownership.consumer in names
    assert first.consumer not in names


async def test_the_api_cannot_touch_the_schedulers_state(server: EmbeddedNats) -> None:
    async with session(server, "api") as s:
        await s.refused(
            s.js.key_value(subjects.SCHEDULER_STATE_BUCKET),
            f"$JS.API.STREAM.INFO.KV_{subjects.SCHEDULER_STATE_BUCKET}",
        )


# ------------------------------------------------------------------ the infra example


def test_the_infra_example_is_the_generated_configuration() -> None:
    stored = (REPO / "infra" / "nats" / "nodedrop-auth.conf").read_text()
    # The example is for the default layout, whatever NODEDROP_PARTITIONS the tests run with.
    assert stored == natsauth.authorization_config(Layout()), (
        "infra/nats/nodedrop-auth.conf is out of date: "
        "python -m nodedrop.platform.natsauth > infra/nats/nodedrop-auth.conf"
    )
    printed = subprocess.run(
        [sys.executable, "-m", "nodedrop.platform.natsauth"],
        check=True,
        capture_output=True,
        text=True,
        env={k: v for k, v in os.environ.items() if k != PARTITIONS_ENV},
    ).stdout
    assert printed == stored


def start_process(command: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)


async def test_the_production_example_runs_with_these_users(tmp_path: Path) -> None:
    """infra/nats/nodedrop-production.conf, as an operator would start it (only the address,
    port and store directory overridden): passwords from the environment, users enforced."""
    from nodedrop.embedded.nats import find_nats_server
    from nodedrop.embedded.postgres import free_port

    passwords = natsauth.generate_passwords()
    port = free_port()
    log = tmp_path / "nats.log"
    config = REPO / "infra" / "nats" / "nodedrop-production.conf"
    command = [str(find_nats_server()), "-c", str(config), "-a", "127.0.0.1", "-p", str(port)]
    command += ["-sd", str(tmp_path), "-m", "0"]
    env = {"PATH": "/usr/bin:/bin", **natsauth.server_environment(passwords)}
    process = start_process(command, env, log)
    try:
        url = f"nats://127.0.0.1:{port}"
        for _ in range(500):
            if "Server is ready" in log.read_text():
                break
            assert process.poll() is None, log.read_text()
            await asyncio.sleep(0.01)
        nc = await nats.connect(natsauth.url_with_credentials(url, "admin", passwords["admin"]))
        # The example's users are those of the default layout (nodedrop-auth.conf).
        default = replace(StreamSettings.from_env(), layout=Layout())
        await ensure_jetstream(nc.jetstream(), default)
        await nc.close()
        errors: list[str] = []

        async def on_error(error: Exception) -> None:
            errors.append(str(error))

        runner_url = natsauth.url_with_credentials(url, "runner", passwords["runner"])
        runner = await nats.connect(runner_url, error_cb=on_error)
        js = runner.jetstream(timeout=DENIED_WAIT_S)
        with pytest.raises((nats.errors.TimeoutError, TimeoutError)):
            await js.delete_stream(default.layout.stream(0))
        assert (await js.stream_info(default.layout.stream(0))).config.name == "NODEDROP_EVENTS_000"
        await runner.close()
        assert any("permissions violation" in e.lower() for e in errors)
        with pytest.raises(nats.errors.Error, match="Authorization Violation"):
            await nats.connect(url, allow_reconnect=False)
    finally:
        process.terminate()
        process.wait(10)
