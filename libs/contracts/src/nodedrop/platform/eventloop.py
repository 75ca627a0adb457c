"""Running a service's main coroutine: on uvloop where it is installed, else on asyncio's loop.

uvloop's loop (libuv, in C) costs less CPU per callback, socket read and timer than asyncio's
pure-Python selector loop; every service handles several NATS messages per node, so that
overhead is paid many times per execution (docs/benchmarks.md, "CPU per execution").
A service's ``NODEDROP_EVENT_LOOP=asyncio`` keeps asyncio's own loop (to compare, or to rule uvloop
out).
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def run(main: Coroutine[Any, Any, T], loop: str = "uvloop") -> T:
    """``asyncio.run(main)``, on uvloop when it can be imported and ``loop`` is not
    ``asyncio``."""
    if loop == "asyncio":
        return asyncio.run(main)
    try:
        import uvloop  # noqa: PLC0415 (optional: not available on every platform)
    except ImportError:
        return asyncio.run(main)
    return uvloop.run(main)
