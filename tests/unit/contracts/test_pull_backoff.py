"""PullConsumer asks again after a failed pull request only after a jittered exponential backoff
(a 503 "no responders" while a consumer leader is elected was answered by a new request at once:
16,000 warnings in 10 s), logs one warning per streak of failures, and keeps its exact credit.

Driven through ``_on_message`` with the status messages nats-server sends, on a fake connection
that records the pull requests published."""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from collections.abc import Callable
from typing import Any, cast

import pytest
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg

from nodedrop.platform.pull import PullConsumer

INBOX = "_INBOX.test"
NEXT = "$JS.API.CONSUMER.MSG.NEXT.S.c"
#: What nats-py makes of a 503 no responders status (its description is the next header line).
NO_RESPONDERS = {"Status": "503", "Description": f"\nNats-Subject: {NEXT}", "Nats-Subject": NEXT}


class FakeSubscription:
    async def unsubscribe(self) -> None:
        pass

    async def drain(self) -> None:
        pass


class FakeNats:
    """Records pull requests; ``answer`` (if set) is called with each and may return the
    headers of a status the server sends back at once."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.stats = {"reconnects": 0}
        self.answer: Callable[[dict[str, Any]], dict[str, str] | None] | None = None
        self.consumer: PullConsumer | None = None

    def new_inbox(self) -> str:
        return INBOX

    async def subscribe(self, subject: str, cb: Any) -> FakeSubscription:
        assert subject == INBOX
        return FakeSubscription()

    async def publish(self, subject: str, payload: bytes, reply: str = "") -> None:
        assert (subject, reply) == (NEXT, INBOX)
        request = json.loads(payload)
        self.requests.append(request)
        if self.answer is not None and (headers := self.answer(request)) is not None:
            consumer = self.consumer
            assert consumer is not None
            asyncio.get_running_loop().call_soon(
                lambda: asyncio.ensure_future(consumer._on_message(status(self, headers)))
            )


def status(nc: FakeNats, headers: dict[str, str]) -> Msg:
    return Msg(_client=cast(NatsClient, nc), subject=INBOX, headers=headers)


def message(nc: FakeNats) -> Msg:
    return Msg(_client=cast(NatsClient, nc), subject=INBOX, data=b"task")


async def started(capacity: int = 10) -> tuple[PullConsumer, FakeNats]:
    nc = FakeNats()
    consumer = PullConsumer(cast(NatsClient, nc), "S", "c", capacity=capacity)
    nc.consumer = consumer
    await consumer.start()
    assert [r["batch"] for r in nc.requests] == [capacity]
    return consumer, nc


async def until(check: Callable[[], bool], timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, "condition not reached"
        await asyncio.sleep(0.005)


@pytest.fixture
def bounds(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The upper bounds of the backoff's draws; each draw is its bound (the longest wait)."""
    drawn: list[float] = []

    def uniform(low: float, high: float) -> float:
        assert low == 0
        drawn.append(high)
        return high

    monkeypatch.setattr(random, "uniform", uniform)
    return drawn


def warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "nodedrop.platform.pull" and r.levelno == logging.WARNING
    ]


async def test_after_a_503_the_next_request_waits_and_the_wait_doubles_up_to_a_cap(
    bounds: list[float],
) -> None:
    consumer, nc = await started()
    consumer._backoff_first_s, consumer._backoff_max_s = 0.01, 0.08
    try:
        await consumer._on_message(status(nc, NO_RESPONDERS))
        assert len(nc.requests) == 1  # not at once
        await until(lambda: len(nc.requests) == 2)
        assert nc.requests[1]["batch"] == 10  # the 503 took the whole credit of its request

        # Failures in a row (none of these awaits lets the timer run: no request in between).
        for _ in range(5):
            await consumer._on_message(status(nc, NO_RESPONDERS))
        assert len(nc.requests) == 2
        assert bounds == pytest.approx([0.01, 0.02, 0.04, 0.08, 0.08, 0.08])
        await until(lambda: len(nc.requests) == 3)
        assert nc.requests[2]["batch"] == 10  # one request for the whole credit, not six
    finally:
        await consumer.stop()


async def test_a_storm_of_503s_sends_few_requests_and_logs_one_warning_per_streak(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The server answers every request with a 503 at once, as it does while the consumer has
    no leader: requests follow the backoff, not the answers."""
    consumer, nc = await started()
    consumer._backoff_first_s, consumer._backoff_max_s = 0.005, 0.04
    nc.answer = lambda request: NO_RESPONDERS
    try:
        with caplog.at_level(logging.WARNING, logger="nodedrop.platform.pull"):
            await consumer._on_message(status(nc, NO_RESPONDERS))
            await asyncio.sleep(0.5)
            # Without the backoff: one request per event loop turn, thousands in 0.5 s. With
            # it, about 0.5 s / (0.04 s / 2) once the bound is reached; fewer on a slow machine.
            failed = len(nc.requests)
            assert 2 <= failed < 100
            assert len(warnings(caplog)) == 1
            assert warnings(caplog)[0].startswith("pull request failed: 503 no responders")

            # The consumer gets a leader: the next request is served.
            nc.answer = None
            await until(lambda: len(nc.requests) > failed)
            await consumer._on_message(message(nc))
            logged = warnings(caplog)
        assert len(logged) == 2
        streak = consumer_failures(logged[1])
        assert streak >= failed  # every request of the streak failed, and the first status
        assert f"{streak} failed in a row ({streak - 1} warnings suppressed)" in logged[1]
        assert [m.data for m in await consumer.next_batch(10, wait_s=0)] == [b"task"]
    finally:
        await consumer.stop()


def consumer_failures(line: str) -> int:
    return int(line.split(" after ", 1)[1].split(" ", 1)[0])


async def test_a_message_ends_the_streak_and_the_backoff_starts_over(bounds: list[float]) -> None:
    consumer, nc = await started()
    consumer._backoff_first_s, consumer._backoff_max_s = 0.01, 1.0
    try:
        for _ in range(3):
            await consumer._on_message(status(nc, NO_RESPONDERS))
        assert bounds == pytest.approx([0.01, 0.02, 0.04])
        # A message from a request still served (another request's credit): the wait is over
        # and the lost credit is asked for at once.
        consumer._credit = 1  # the request the message comes from
        await consumer._on_message(message(nc))
        await until(lambda: len(nc.requests) == 2)
        free = consumer.capacity - consumer._held  # held counts the queued ones too
        assert nc.requests[1]["batch"] == free  # all the credit the 503s took
        await consumer._on_message(status(nc, NO_RESPONDERS))
        assert bounds[-1] == pytest.approx(0.01)
    finally:
        await consumer.stop()


async def test_an_idle_heartbeat_ends_the_streak_too(
    bounds: list[float], caplog: pytest.LogCaptureFixture
) -> None:
    consumer, nc = await started()
    consumer._backoff_first_s, consumer._backoff_max_s = 0.01, 1.0
    try:
        with caplog.at_level(logging.WARNING, logger="nodedrop.platform.pull"):
            await consumer._on_message(status(nc, NO_RESPONDERS))
            await consumer._on_message(status(nc, NO_RESPONDERS))
            await consumer._on_message(
                status(nc, {"Status": "100", "Description": "Idle Heartbeat"})
            )
        assert "after 2 failed in a row (1 warnings suppressed)" in warnings(caplog)[-1]
        await consumer._on_message(status(nc, NO_RESPONDERS))
        assert bounds == pytest.approx([0.01, 0.02, 0.01])
    finally:
        await consumer.stop()


@pytest.mark.parametrize(
    "headers",
    [
        {"Status": "408", "Description": "Request Timeout", "Nats-Pending-Messages": "10"},
        {"Status": "408", "Description": "Interest Expired", "Nats-Pending-Messages": "10"},
        {"Status": "409", "Description": "Leadership Change"},
    ],
    ids=lambda h: f"{h['Status']} {h['Description']}",
)
async def test_normal_ends_of_a_request_are_answered_at_once(
    headers: dict[str, str], bounds: list[float]
) -> None:
    consumer, nc = await started()
    try:
        await consumer._on_message(status(nc, headers))
        assert [r["batch"] for r in nc.requests] == [10, 10]  # at once, in this very call
        assert bounds == []
    finally:
        await consumer.stop()


@pytest.mark.parametrize(
    "headers",
    [
        {"Status": "409", "Description": "Exceeded MaxWaiting"},
        {"Status": "409", "Description": "Consumer Deleted"},
        {"Status": "409", "Description": "Exceeded MaxRequestBatch of 5"},
        {"Status": "400", "Description": "Bad Request - Priority Group missing"},
    ],
    ids=lambda h: f"{h['Status']} {h['Description']}",
)
async def test_other_failures_back_off_like_a_503(
    headers: dict[str, str], bounds: list[float], caplog: pytest.LogCaptureFixture
) -> None:
    consumer, nc = await started()
    consumer._backoff_first_s = 0.01
    try:
        with caplog.at_level(logging.WARNING, logger="nodedrop.platform.pull"):
            await consumer._on_message(status(nc, headers))
            await consumer._on_message(status(nc, headers))
        assert len(nc.requests) == 1
        assert bounds == pytest.approx([0.01, 0.02])
        assert len(warnings(caplog)) == 1
        assert headers["Description"] in warnings(caplog)[0]
        await until(lambda: len(nc.requests) == 2)
    finally:
        await consumer.stop()


async def test_the_credit_stays_exact_through_the_backoff(bounds: list[float]) -> None:
    """A 503 takes all the credit of its request (it never reached a consumer); what is asked
    for after the backoff is what a top-up at once would have asked for."""
    consumer, nc = await started(capacity=10)
    consumer._backoff_first_s = 0.01
    consumer.auto_release = False
    try:
        for _ in range(4):
            await consumer._on_message(message(nc))
        assert consumer._credit == 6
        await consumer._on_message(status(nc, NO_RESPONDERS))
        assert consumer._credit == 0
        free = consumer.capacity - consumer._held  # held counts the queued ones too
        assert len(nc.requests) == 1
        await until(lambda: len(nc.requests) == 2)
        assert nc.requests[1]["batch"] == free
        assert consumer._credit == free
    finally:
        await consumer.stop()


async def test_a_reconnect_asks_again_at_once_despite_the_backoff(bounds: list[float]) -> None:
    consumer, nc = await started()
    consumer._backoff_first_s, consumer._backoff_max_s = 60.0, 60.0
    try:
        await consumer._on_message(status(nc, NO_RESPONDERS))
        await asyncio.sleep(0.6)  # a keep-alive round (0.5 s): still waiting
        assert len(nc.requests) == 1
        nc.stats["reconnects"] = 1
        await until(lambda: len(nc.requests) == 2)
    finally:
        await consumer.stop()


async def test_no_request_after_a_stop_during_the_backoff(bounds: list[float]) -> None:
    consumer, nc = await started()
    consumer._backoff_first_s = 0.02
    await consumer._on_message(status(nc, NO_RESPONDERS))
    await consumer.stop()
    await asyncio.sleep(0.1)
    assert len(nc.requests) == 1
