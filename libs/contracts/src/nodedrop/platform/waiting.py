"""Waiting for an :class:`asyncio.Event` with a timeout, without losing a cancel.

On Python 3.11 ``asyncio.wait_for`` can swallow a cancellation that arrives just as the awaited
event is set: the waiter then returns normally and a reader being stopped reads on (a fake pull
loop hung one run in two on it). :func:`asyncio.wait` does not, so the loops wait with this.
"""

from __future__ import annotations

import asyncio


async def event_set(event: asyncio.Event, timeout_s: float | None) -> bool:
    """Whether ``event`` is set within ``timeout_s`` seconds (``None``: as long as it takes);
    a cancel of the caller is always raised."""
    if event.is_set():
        return True
    waiter = asyncio.ensure_future(event.wait())
    try:
        await asyncio.wait({waiter}, timeout=timeout_s)
    finally:
        waiter.cancel()
    return event.is_set()
