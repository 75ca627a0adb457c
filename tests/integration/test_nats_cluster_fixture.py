"""The three-node cluster fixture really is a cluster: an R3 stream lives on every node, a new
leader takes over from a killed one, and a node restarted on its store catches up.

Every wait is for a condition with a generous deadline (elections take seconds, longer on a busy
machine), never an assertion on how long something took."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

import nats
import pytest
from nats.aio.client import Client as NatsClient
from nats.js import JetStreamContext
from nats.js.api import StreamConfig

from nodedrop.platform.retry import retry_unavailable

if TYPE_CHECKING:  # pytest gives the factory as a fixture (see tests/fixtures/nats_cluster.py)
    from tests.fixtures.nats_cluster import NatsCluster, NatsClusterFactory

pytestmark = pytest.mark.integration

STREAM = "R3"
DEADLINE_S = 60.0


async def connect(urls: list[str]) -> NatsClient:
    return await nats.connect(
        urls, max_reconnect_attempts=-1, reconnect_time_wait=0.1, connect_timeout=2
    )


async def add_r3_stream(js: JetStreamContext) -> None:
    await retry_unavailable(
        lambda: js.add_stream(StreamConfig(name=STREAM, subjects=["r3.>"], num_replicas=3)),
        what="create stream",
        attempts=40,
        max_s=1.0,
    )


async def publish(js: JetStreamContext, number: int) -> int:
    """Publish message ``number`` (with its id: a retried publish is stored once), retried while
    the stream has no leader; its sequence."""
    ack = await retry_unavailable(
        lambda: js.publish(
            f"r3.{number}", str(number).encode(), headers={"Nats-Msg-Id": str(number)}
        ),
        what=f"publish {number}",
        attempts=60,  # a full-jitter wait of up to 1 s each: half a minute at least
        max_s=1.0,
    )
    return ack.seq


async def until(check: Callable[[], Awaitable[bool]], what: str) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while not await check():
        assert time.monotonic() < deadline, f"no {what} after {DEADLINE_S} s"
        await asyncio.sleep(0.1)


async def last_seq(cluster: NatsCluster, name: str) -> int | None:
    detail = await cluster.stream_detail(name, STREAM)
    return None if detail is None else int(detail["state"]["last_seq"])


async def until_last_seq(cluster: NatsCluster, name: str, seq: int) -> None:
    """Until node ``name`` holds the stream up to ``seq`` (its own copy, from its /jsz)."""

    async def check() -> bool:
        return await last_seq(cluster, name) == seq

    await until(check, f"last sequence {seq} on {name}")


async def test_a_client_of_all_three_nodes_creates_an_r3_stream_and_publishes(
    nats_cluster: NatsClusterFactory,
) -> None:
    async with nats_cluster() as cluster:
        assert cluster.names == ["n1", "n2", "n3"]
        assert cluster.url == ",".join(cluster.urls)
        assert await cluster.meta_leader() in cluster.names
        nc = await connect(cluster.urls)
        try:
            js = nc.jetstream(timeout=5)
            await add_r3_stream(js)
            assert [await publish(js, n) for n in range(1, 6)] == [1, 2, 3, 4, 5]

            info = await js.stream_info(STREAM)
            assert info.config.num_replicas == 3
            assert info.cluster is not None
            assert info.cluster.leader in cluster.names
            replicas = [peer.name or "" for peer in info.cluster.replicas or []]
            assert sorted([info.cluster.leader or "", *replicas]) == cluster.names
            assert await cluster.wait_stream_leader(STREAM) == info.cluster.leader
            for name in cluster.names:  # every node holds every message
                await until_last_seq(cluster, name, 5)
        finally:
            await nc.close()
        nodes = list(cluster.nodes.values())
        assert all(node.running for node in nodes)
    # The fixture stopped every process it started.
    assert not any(node.running or node.process is not None for node in nodes)


async def test_a_new_leader_takes_over_from_a_killed_one_and_publishes_go_on(
    nats_cluster: NatsClusterFactory,
) -> None:
    async with nats_cluster() as cluster:
        nc = await connect(cluster.urls)
        try:
            js = nc.jetstream(timeout=2)
            await add_r3_stream(js)
            for n in range(1, 6):
                await publish(js, n)
            leader = await cluster.wait_stream_leader(STREAM)

            cluster.kill(leader)
            assert not cluster.running(leader)
            # At once, during the election: retried until the new leader takes it.
            assert await publish(js, 6) == 6
            new_leader = await cluster.wait_stream_leader(STREAM, other_than=leader)
            assert new_leader != leader
            for n in range(7, 11):
                assert await publish(js, n) == n

            info = await js.stream_info(STREAM)
            assert info.cluster is not None
            assert info.cluster.leader == new_leader
            assert (info.state.messages, info.state.last_seq) == (10, 10)  # none lost, none twice
        finally:
            await nc.close()


async def test_a_killed_follower_restarts_on_its_store_and_catches_up(
    nats_cluster: NatsClusterFactory,
) -> None:
    async with nats_cluster() as cluster:
        nc = await connect(cluster.urls)
        try:
            js = nc.jetstream(timeout=2)
            await add_r3_stream(js)
            for n in range(1, 6):
                await publish(js, n)
            leader = await cluster.wait_stream_leader(STREAM)
            follower = next(name for name in cluster.names if name != leader)
            await until_last_seq(cluster, follower, 5)

            cluster.kill(follower)
            for n in range(6, 21):  # two of three nodes are a quorum: publishes go on
                await publish(js, n)

            await cluster.restart(follower)
            assert cluster.running(follower)
            status, body = await cluster.healthz(follower)
            assert (status, body.get("status")) == (200, "ok")
            await until_last_seq(cluster, follower, 20)
            detail = await cluster.stream_detail(follower, STREAM)
            assert detail is not None
            assert detail["state"]["messages"] == 20
            assert await cluster.stream_leader(STREAM) in cluster.names
        finally:
            await nc.close()


async def test_a_paused_follower_holds_nothing_up_and_catches_up_when_resumed(
    nats_cluster: NatsClusterFactory,
) -> None:
    async with nats_cluster() as cluster:
        nc = await connect(cluster.urls)
        try:
            js = nc.jetstream(timeout=2)
            await add_r3_stream(js)
            await publish(js, 1)
            leader = await cluster.wait_stream_leader(STREAM)
            # Not the client's node: a paused server keeps its connections open and answers
            # nothing, so its clients would wait for the ping timeout (minutes) to move on.
            assert nc.connected_url is not None
            assert nc.connected_url.port is not None
            connected = cluster.name_of_port(nc.connected_url.port)
            follower = next(name for name in cluster.names if name not in (leader, connected))

            cluster.pause(follower)
            for n in range(2, 11):
                await publish(js, n)
            cluster.resume(follower)
            await until_last_seq(cluster, follower, 10)

            await cluster.stop(follower)  # SIGTERM, waited for
            assert not cluster.running(follower)
            await publish(js, 11)
            await cluster.restart(follower)
            await until_last_seq(cluster, follower, 11)
        finally:
            await nc.close()
