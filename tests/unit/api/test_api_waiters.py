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
