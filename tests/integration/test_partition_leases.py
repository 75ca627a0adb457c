"""Partitions shared by lease among the members of a group, on a real nats-server. The rounds
are driven by the test (``renew``, ``balance``), so nothing here depends on timing but the
lease expiry that a stopped member's partitions wait for."""

from __future__ import annotations

import asyncio
from typing import cast

import pytest
from nats.js import JetStreamContext
from nats.js.kv import KeyValue

from nodedrop.platform.leases import PartitionLeases, open_leases, share

pytestmark = pytest.mark.integration


class Recorder:
    def __init__(self) -> None:
        self.serving: set[int] = set()
        self.lost: list[int] = []

    async def take(self, partition: int) -> None:
        self.serving.add(partition)

    async def give_up(self, partition: int) -> None:
        self.serving.discard(partition)

    async def lose(self, partition: int) -> None:
        self.serving.discard(partition)
        self.lost.append(partition)


def member(kv: KeyValue, name: str, recorder: Recorder, partitions: int = 4) -> PartitionLeases:
    return PartitionLeases(
        kv,
        group="test",
        member=name,
        partitions=partitions,
        take=recorder.take,
        give_up=recorder.give_up,
        lost=recorder.lose,
        lease_s=1.0,
    )


async def rounds(*members: PartitionLeases, times: int = 3) -> None:
    for _ in range(times):
        for m in members:
            await m.renew()
        for m in members:
            await m.balance()


def test_shares_add_up_and_differ_by_one_at_most() -> None:
    for partitions in (1, 4, 7, 256):
        for count in (1, 2, 3, 5):
            members = [f"m{i}" for i in range(count)]
            shares = [share(partitions, members, m) for m in members]
            assert sum(shares) == partitions
            assert max(shares) - min(shares) <= 1


async def test_two_members_split_the_partitions_and_none_is_served_twice(
    jetstream: JetStreamContext,
) -> None:
    kv = await open_leases(jetstream, 1.0)
    a, b = Recorder(), Recorder()
    first, second = member(kv, "a", a), member(kv, "b", b)
    await rounds(first, second)
    assert len(a.serving) == len(b.serving) == 2
    assert a.serving.isdisjoint(b.serving)
    assert set(first.owned) == a.serving
    assert set(second.owned) == b.serving


async def test_a_member_that_leaves_gracefully_hands_its_partitions_to_the_other(
    jetstream: JetStreamContext,
) -> None:
    kv = await open_leases(jetstream, 1.0)
    a, b = Recorder(), Recorder()
    first, second = member(kv, "a", a), member(kv, "b", b)
    await rounds(first, second)
    first.stop()
    await first.run()  # stopped already: hands everything back and returns
    assert a.serving == set()
    # It left the members as well: the other takes everything at its next round, not once the
    # leaver's announcement (still within its lease time here) expires.
    await rounds(second, times=1)
    assert b.serving == {0, 1, 2, 3}


async def test_a_dead_members_partitions_are_taken_once_its_leases_expire(
    jetstream: JetStreamContext,
) -> None:
    kv = await open_leases(jetstream, 1.0)
    a, b = Recorder(), Recorder()
    first, second = member(kv, "a", a), member(kv, "b", b)
    await rounds(first, second)
    held_by_a = set(a.serving)
    assert len(held_by_a) == 2
    # "a" dies: it renews nothing from here on. Its keys expire with the bucket's max age.
    for _ in range(100):
        await second.renew()
        await second.balance()
        if b.serving == {0, 1, 2, 3}:
            break
        await asyncio.sleep(0.1)
    assert b.serving == {0, 1, 2, 3}
    # Back from the dead, "a" finds its leases held by "b" and gives them up at once.
    await first.renew()
    assert a.serving == set()
    assert sorted(a.lost) == sorted(held_by_a)


async def test_a_lease_taken_by_another_member_is_lost_at_the_next_renewal(
    jetstream: JetStreamContext,
) -> None:
    kv = await open_leases(jetstream, 1.0)
    a = Recorder()
    only = member(kv, "a", a, partitions=1)
    await rounds(only)
    assert a.serving == {0}
    await kv.put("test.000", b"intruder")
    await only.renew()
    assert a.serving == set()
    assert a.lost == [0]


class Unannounced:
    """The lease bucket, but once ``failing``, storing a member's announcement times out (its
    stream busy electing a leader, say); everything else goes to the bucket."""

    def __init__(self, kv: KeyValue) -> None:
        self._kv = kv
        self.failing = False

    async def put(self, key: str, value: bytes) -> int:
        if self.failing and ".member." in key:
            raise TimeoutError(f"announcing {key} timed out")
        return await self._kv.put(key, value)

    def __getattr__(self, name: str) -> object:
        return getattr(self._kv, name)


async def test_a_lease_is_found_lost_even_while_announcing_fails(
    jetstream: JetStreamContext,
) -> None:
    kv = await open_leases(jetstream, 1.0)
    bucket = Unannounced(kv)
    a = Recorder()
    only = member(cast(KeyValue, bucket), "a", a, partitions=1)
    await rounds(only)
    assert a.serving == {0}
    await kv.put("test.000", b"intruder")
    bucket.failing = True
    with pytest.raises(TimeoutError):
        await only.renew()
    assert a.serving == set()
    assert a.lost == [0]
