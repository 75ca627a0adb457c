"""CPU-heavy work on a big request, done in a worker thread so that the event loop goes on
serving other requests meanwhile.

A thread does not make the work cheaper, and Python code holds the GIL, but the loop gets a turn
at every switch interval (5 ms) instead of waiting for the whole job. Small inputs are handled
in place: handing them over costs more than they do.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import ParamSpec, TypeVar

#: A body larger than this is decoded and checked in a worker thread (decoding and checking
#: 64 KiB of JSON takes about 2 ms; the 0.85 MB of a 2,000-node definition about 35 ms).
OFF_LOOP_BYTES = 64 * 1024

P = ParamSpec("P")
R = TypeVar("R")


async def run_off_loop_if(
    heavy: bool, work: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs
) -> R:
    """``work(*args, **kwargs)``, in a worker thread if ``heavy``."""
    if heavy:
        return await asyncio.to_thread(work, *args, **kwargs)
    return work(*args, **kwargs)
