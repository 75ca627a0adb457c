"""Running a service's main coroutine: on uvloop where it is installed, else on asyncio's loop.

uvloop's loop (libuv, in C) costs less CPU per callback, socket read and timer than asyncio's
pure-Python selector loop; every service handles several NATS messages per node, so that
overhead is paid many times per execution (docs/benchmarks.md, "CPU per execution").
``NODEDROP_EVENT_LOOP=asyncio`` keeps asyncio's own loop (to compare, or to rule uvloop out).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def run(main: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run(main)``, on uvloop when it can be imported and is not turned off."""
    if os.environ.get("NODEDROP_EVENT_LOOP", "uvloop") == "asyncio":
        return asyncio.run(main)
    try:
        import uvloop  # noqa: PLC0415 (optional: not available on every platform)
    except ImportError:
        return asyncio.run(main)
    return uvloop.run(main)
