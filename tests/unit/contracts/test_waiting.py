"""Waiting for an event with a timeout, and a cancel that must not be lost."""

from __future__ import annotations

import asyncio

import pytest

from nodedrop.platform.waiting import event_set


async def test_an_event_set_in_time_is_seen() -> None:
    event = asyncio.Event()
    asyncio.get_running_loop().call_soon(event.set)
    assert await event_set(event, 10.0)


async def test_an_event_not_set_in_time_is_not() -> None:
    assert not await event_set(asyncio.Event(), 0.01)


async def test_an_event_set_already_needs_no_wait() -> None:
    event = asyncio.Event()
    event.set()
    assert await event_set(event, 0)


async def test_a_cancel_that_comes_as_the_event_is_set_is_raised() -> None:
    """asyncio.wait_for on Python 3.11 returns normally here: the cancel is lost, and a reader
    being stopped reads on."""
    event = asyncio.Event()
    waiting = asyncio.create_task(event_set(event, 10.0))
    await asyncio.sleep(0)  # the task waits now
    event.set()
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
