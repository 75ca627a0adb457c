"""Partitions shared by lease among the members of a group. Each test runs twice, with the same
body: on the in-memory lease store (its clock moved by the test) and on a real nats-server's
key-value bucket (waiting for real expiry). The rounds are driven by the test (``renew``,
``balance``), so nothing here depends on timing but the lease expiry that a stopped member's
partitions wait for."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import cast

import nats
import pytest

from nodedrop.contracts import subjects
from nodedrop.platform.lease_store import LeaseStore, open_leases
from nodedrop.platform.leases import PartitionLeases, share
from nodedrop.platform.ops import CheckResult
from nodedrop.platform.testing.leases import ManualClock, MemoryLeaseStore

pytestmark = pytest.mark.integration

LEASE_S = 1.0


@dataclass
class Bucket:
    """A lease store, the clock its members read, and how a test lets time pass."""

    store: LeaseStore
    clock: Callable[[], float] = time.monotonic
    manual: ManualClock | None = None

    async def elapse(self, seconds: float) -> None:
        if self.manual is not None:
            self.manual.advance(seconds)
        else:
            await asyncio.sleep(seconds)


@pytest.fixture(params=["memory", "nats"])
async def bucket(request: pytest.FixtureRequest) -> AsyncIterator[Bucket]:
    if request.param == "memory":
        clock = ManualClock()
        yield Bucket(MemoryLeaseStore(LEASE_S, clock), clock=clock, manual=clock)
        return
    nc = await nats.connect(request.getfixturevalue("nats_url"))
    try:
        js = nc.jetstream()
        yield Bucket(await open_leases(js, LEASE_S))
        await js.delete_key_value(subjects.LEASES_BUCKET)
    finally:
        await nc.close()


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


def member(
    bucket: Bucket,
    name: str,
    recorder: Recorder,
    partitions: int = 4,
    store: LeaseStore | None = None,
) -> PartitionLeases:
    return PartitionLeases(
        store or bucket.store,
        group="test",
        member=name,
        partitions=partitions,
        take=recorder.take,
        give_up=recorder.give_up,
        lost=recorder.lose,
        lease_s=LEASE_S,
        clock=bucket.clock,
    )


async def lone_member_serving_partition_0(bucket: Bucket) -> tuple[PartitionLeases, Recorder]:
    recorder = Recorder()
    only = member(bucket, "a", recorder, partitions=1)
    await rounds(only)
    assert recorder.serving == {0}
    return only, recorder


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
    bucket: Bucket,
) -> None:
    a, b = Recorder(), Recorder()
    first, second = member(bucket, "a", a), member(bucket, "b", b)
    await rounds(first, second)
    assert len(a.serving) == len(b.serving) == 2
    assert a.serving.isdisjoint(b.serving)
    assert set(first.owned) == a.serving
    assert set(second.owned) == b.serving


async def test_a_member_that_leaves_gracefully_hands_its_partitions_to_the_other(
    bucket: Bucket,
) -> None:
    a, b = Recorder(), Recorder()
    first, second = member(bucket, "a", a), member(bucket, "b", b)
    await rounds(first, second)
    first.stop()
    await first.run()  # stopped already: hands everything back and returns
    assert a.serving == set()
    # It left the members as well: the other takes everything at its next round, not once the
    # leaver's announcement (still within its lease time here) expires.
    await rounds(second, times=1)
    assert b.serving == {0, 1, 2, 3}


async def test_a_dead_members_partitions_are_taken_once_its_leases_expire(
    bucket: Bucket,
) -> None:
    a, b = Recorder(), Recorder()
    first, second = member(bucket, "a", a), member(bucket, "b", b)
    await rounds(first, second)
    held_by_a = set(a.serving)
    assert len(held_by_a) == 2
    # "a" dies: it renews nothing from here on. Its keys expire with the bucket's max age.
    for _ in range(100):
        await second.renew()
        await second.balance()
        if b.serving == {0, 1, 2, 3}:
            break
        await bucket.elapse(0.1)
    assert b.serving == {0, 1, 2, 3}
    # Back from the dead, "a" finds its leases held by "b" and gives them up at once.
    await first.renew()
    assert a.serving == set()
    assert sorted(a.lost) == sorted(held_by_a)


async def test_a_lease_taken_by_another_member_is_lost_at_the_next_renewal(
    bucket: Bucket,
) -> None:
    only, a = await lone_member_serving_partition_0(bucket)
    await bucket.store.put("test.000", b"intruder")
    await only.renew()
    assert a.serving == set()
    assert a.lost == [0]


class Unannounced:
    """The lease store, but once ``failing``, storing a member's announcement times out (its
    stream busy electing a leader, say); everything else goes to the store."""

    def __init__(self, store: LeaseStore) -> None:
        self._store = store
        self.failing = False

    async def put(self, key: str, value: bytes) -> int:
        if self.failing and ".member." in key:
            raise TimeoutError(f"announcing {key} timed out")
        return await self._store.put(key, value)

    def __getattr__(self, name: str) -> object:
        return getattr(self._store, name)


async def test_a_lease_is_found_lost_even_while_announcing_fails(
    bucket: Bucket,
) -> None:
    unannounced = Unannounced(bucket.store)
    a = Recorder()
    only = member(bucket, "a", a, partitions=1, store=cast(LeaseStore, unannounced))
    await rounds(only)
    assert a.serving == {0}
    await bucket.store.put("test.000", b"intruder")
    unannounced.failing = True
    with pytest.raises(TimeoutError):
        await only.renew()
    assert a.serving == set()
    assert a.lost == [0]


async def test_leases_renewed_in_time_are_kept_across_many_lease_times(bucket: Bucket) -> None:
    a = Recorder()
    only = member(bucket, "a", a, partitions=2)
    await rounds(only)
    assert a.serving == {0, 1}
    for _ in range(6):  # 6 x 0.3 s: well past one lease time, renewed every 0.3 s
        await bucket.elapse(LEASE_S * 0.3)
        await only.renew()
        await only.balance()
    assert a.serving == {0, 1}
    assert a.lost == []


async def test_a_member_paused_past_its_lease_finds_it_lost_though_nobody_took_it(
    bucket: Bucket,
) -> None:
    only, a = await lone_member_serving_partition_0(bucket)
    for _ in range(100):  # until the key has expired in the store
        await bucket.elapse(LEASE_S * 0.6)
        if await bucket.store.live_suffixes("test", 0.2) == []:
            break
    await only.renew()
    assert a.lost == [0]
    assert a.serving == set()


async def test_readiness_says_which_partitions_are_held_and_a_standby_is_ready(
    bucket: Bucket,
) -> None:
    a, b = Recorder(), Recorder()
    only = member(bucket, "a", a, partitions=1)
    standby = member(bucket, "b", b, partitions=1)
    assert only.readiness() == CheckResult(False, "joining: no lease round yet")
    await rounds(only, standby)
    assert only.readiness() == CheckResult(True, "holds 1 of 1 partitions: 0")
    # One partition, two members: the second is a standby, ready to take over.
    assert standby.readiness() == CheckResult(True, "standby: holds none of 1 (2 members)")


async def test_a_member_whose_rounds_stopped_going_through_is_not_ready(bucket: Bucket) -> None:
    only, _ = await lone_member_serving_partition_0(bucket)
    assert only.readiness().ok
    await bucket.elapse(LEASE_S * 2.5)  # no round for more than two lease times
    late = only.readiness()
    assert not late.ok
    assert late.detail.startswith("no lease round for ")
