"""The map of requests waiting for an execution's end: resolved by a notice naming their
execution only, and emptied however a wait ends (the end, the timeout, the client leaving, an
error)."""

from __future__ import annotations

import asyncio
import json
from types import SimpleNamespace

import pytest
from starlette.requests import Request

from nodedrop.api.routes.executions import client_gone
from nodedrop.api.waiters import FinishedNotices, Waiters, wait_for


async def test_a_notice_resolves_the_waiters_of_its_executions_only() -> None:
    waiters = Waiters()
    with waiters.waiting("a") as a1, waiters.waiting("a") as a2, waiters.waiting("b") as b:
        assert len(waiters) == 3
        assert waiters.finished(["a", "c"]) == 2
        assert a1.done()
        assert a2.done()
        assert not b.done()
        assert await wait_for(a1, 1.0)
    assert len(waiters) == 0


async def test_a_wait_that_runs_out_says_so_and_leaves_no_waiter() -> None:
    waiters = Waiters()
    with waiters.waiting("a") as future:
        assert not await wait_for(future, 0.01)
    assert len(waiters) == 0
    assert waiters.finished(["a"]) == 0  # a late notice finds nobody


async def test_a_client_that_leaves_ends_the_wait_early() -> None:
    waiters = Waiters()
    left = asyncio.Event()

    async def gone() -> None:
        await left.wait()

    with waiters.waiting("a") as future:
        waiting = asyncio.create_task(wait_for(future, 3600, gone()))
        await asyncio.sleep(0)
        left.set()
        assert not await asyncio.wait_for(waiting, 5)
    assert len(waiters) == 0


async def test_the_disconnect_watch_is_cancelled_when_the_end_comes() -> None:
    waiters = Waiters()
    watching = asyncio.Event()
    cancelled = asyncio.Event()

    async def gone() -> None:
        watching.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise

    with waiters.waiting("a") as future:
        waiting = asyncio.create_task(wait_for(future, 3600, gone()))
        await watching.wait()
        waiters.finished(["a"])
        assert await asyncio.wait_for(waiting, 5)
    await asyncio.wait_for(cancelled.wait(), 5)


async def test_a_request_that_fails_while_waiting_leaves_no_waiter() -> None:
    waiters = Waiters()
    with pytest.raises(RuntimeError), waiters.waiting("a"):
        raise RuntimeError("the publish failed")
    assert len(waiters) == 0


async def test_a_cancelled_request_leaves_no_waiter() -> None:
    waiters = Waiters()

    async def request() -> None:
        with waiters.waiting("a") as future:
            await wait_for(future, 3600)

    task = asyncio.create_task(request())
    await asyncio.sleep(0.01)
    assert len(waiters) == 1
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert len(waiters) == 0


async def test_notices_resolve_waiters_and_garbage_is_ignored() -> None:
    notices = FinishedNotices(Waiters())
    with notices.waiters.waiting("a") as a:
        await notices._on_notice(SimpleNamespace(data=b"not json", subject="s"))  # type: ignore[arg-type]
        await notices._on_notice(SimpleNamespace(data=b'{"a": 1}', subject="s"))  # type: ignore[arg-type]
        await notices._on_notice(SimpleNamespace(data=b"[1, null]", subject="s"))  # type: ignore[arg-type]
        assert not a.done()
        await notices._on_notice(SimpleNamespace(data=json.dumps(["a"]).encode(), subject="s"))  # type: ignore[arg-type]
        assert a.done()


async def test_client_gone_returns_on_the_disconnect_after_the_body() -> None:
    messages: list[dict[str, object]] = [
        {"type": "http.request", "body": b"{}", "more_body": False},
        {"type": "http.disconnect"},
    ]
    received: list[str] = []

    async def receive() -> dict[str, object]:
        message = messages.pop(0)
        received.append(str(message["type"]))
        return message

    await asyncio.wait_for(client_gone(Request({"type": "http"}, receive)), 5)
    assert received == ["http.request", "http.disconnect"]


def _notice(ids: list[str]) -> SimpleNamespace:
    return SimpleNamespace(data=json.dumps(ids).encode(), subject="s")


async def test_the_bodies_of_a_notice_are_read_once_for_all_its_waiters() -> None:
    reads: list[list[str]] = []

    async def read(execution_ids: list[str]) -> dict[str, bytes]:
        reads.append(execution_ids)
        return {i: f"body of {i}".encode() for i in execution_ids}

    notices = FinishedNotices(Waiters(), read)
    waiters = notices.waiters
    with waiters.waiting("a") as a1, waiters.waiting("a") as a2, waiters.waiting("b") as b:
        await notices._on_notice(_notice(["a", "b", "c"]))  # type: ignore[arg-type]
        assert await wait_for(a1, 5)
        assert await wait_for(b, 5)
        assert a1.result() == a2.result() == b"body of a"
        assert b.result() == b"body of b"
    assert reads == [["a", "b"]]  # one read, only of what is waited for
    await notices._on_notice(_notice(["a"]))  # type: ignore[arg-type]
    assert reads == [["a", "b"]]  # nobody waits: nothing read


async def test_a_failed_read_resolves_the_waiters_without_a_body() -> None:
    async def read(execution_ids: list[str]) -> dict[str, bytes]:
        raise OSError("the database is restarting")

    notices = FinishedNotices(Waiters(), read)
    with notices.waiters.waiting("a") as a:
        await notices._on_notice(_notice(["a"]))  # type: ignore[arg-type]
        assert await wait_for(a, 5)
        assert a.result() is None


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


async def test_only_executions_still_waited_for_longer_than_asked_are_overdue() -> None:
    clock = Clock()
    waiters = Waiters(clock)
    with waiters.waiting("old"):
        clock.now += 3
        with waiters.waiting("new"), waiters.waiting("old"):
            clock.now += 1
            assert waiters.waited_longer_than(2.0) == ["old"]
            waiters.finished(["old"])
            assert waiters.waited_longer_than(0.5) == ["new"]
        assert waiters.waited_longer_than(0.5) == []
    assert waiters.waited_longer_than(0.0) == []


class NoNotices:
    """A NATS client whose subscription never delivers anything (every notice lost)."""

    async def subscribe(self, subject: str, cb: object) -> SimpleNamespace:
        async def unsubscribe() -> None:
            return None

        return SimpleNamespace(unsubscribe=unsubscribe)


async def test_the_sweep_resolves_a_finished_wait_whose_notice_was_lost() -> None:
    asked: list[list[str]] = []
    swept_thrice = asyncio.Event()

    async def finished_among(execution_ids: list[str]) -> list[str]:
        asked.append(sorted(execution_ids))
        if len(asked) >= 3:
            swept_thrice.set()
        return [i for i in execution_ids if i == "done"]

    async def read_bodies(execution_ids: list[str]) -> dict[str, bytes]:
        return {i: b'{"id": "%s"}' % i.encode() for i in execution_ids}

    waiters = Waiters()
    notices = FinishedNotices(waiters, read_bodies, finished_among, sweep_every_s=0.01)
    await notices.start(NoNotices())  # type: ignore[arg-type]
    try:
        with waiters.waiting("done") as done, waiters.waiting("running") as running:
            assert await wait_for(done, 30.0)
            assert done.result() == b'{"id": "done"}'
            await asyncio.wait_for(swept_thrice.wait(), 30.0)
            assert not running.done()
            assert asked[-1] == ["running"]  # the resolved one is no longer asked about
    finally:
        await notices.stop()


async def test_a_failing_sweep_is_tried_again() -> None:
    calls = 0

    async def finished_among(execution_ids: list[str]) -> list[str]:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise OSError("the database is away")
        return execution_ids

    waiters = Waiters()
    notices = FinishedNotices(waiters, None, finished_among, sweep_every_s=0.01)
    await notices.start(NoNotices())  # type: ignore[arg-type]
    try:
        with waiters.waiting("x") as future:
            assert await wait_for(future, 30.0)
            assert calls >= 2
    finally:
        await notices.stop()
