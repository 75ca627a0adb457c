"""Retrying a JetStream call while a clustered JetStream elects a leader.

When the leader of a stream, a consumer or the meta group goes away, the cluster takes a few
seconds to elect another, and requests in that window fail with what a single server gives only
when it is down: no responders (a 503 status), a JetStream API error with code 503, or no answer
at all (a timeout). :func:`retry_unavailable` tries the call again after a full-jitter
exponential backoff (a random wait between 0 and ``first_s * 2**n``, at most ``max_s``), so that
many clients retrying at once do not do it in step; every other error is raised at once.

A retried call must be safe to make twice: a request that timed out may have been carried out
(a publish stored without its acknowledgement arriving), so publish with a ``Nats-Msg-Id``
header, which the stream deduplicates.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

import nats.errors
import nats.js.errors
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
    wait_random_exponential,
)

log = logging.getLogger(__name__)

T = TypeVar("T")


def is_unavailable(error: BaseException) -> bool:
    """Whether ``error`` is one a clustered JetStream gives while a leader is being elected."""
    if isinstance(
        error,
        (
            # A JetStream API request nobody answered (nats-py's JetStream manager turns no
            # responders into this, without a code), or the server's "temporarily unavailable".
            nats.js.errors.ServiceUnavailableError,
            # A JetStream publish nobody answered: nats-py's name for no responders there.
            nats.js.errors.NoStreamResponseError,
            # A plain request nobody answered.
            nats.errors.NoRespondersError,
            # nats.errors.TimeoutError derives from asyncio.TimeoutError, which is the builtin
            # TimeoutError since Python 3.11; both are named for whoever reads this.
            nats.errors.TimeoutError,
            asyncio.TimeoutError,
        ),
    ):
        return True
    # 10005: no peers to place a replicated stream or consumer on, while a cluster's nodes are
    # still joining (or one is restarting): answered 400, but it passes like an election.
    return isinstance(error, nats.js.errors.APIError) and (
        error.code == 503 or error.err_code == _NO_PEERS_FOR_PLACEMENT
    )


_NO_PEERS_FOR_PLACEMENT = 10005


async def retry_unavailable(
    call: Callable[[], Awaitable[T]],
    *,
    what: str,
    attempts: int = 8,
    first_s: float = 0.05,
    max_s: float = 2.0,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> T:
    """``await call()``, made again up to ``attempts`` times in all while it fails with an error
    of :func:`is_unavailable`, after a full-jitter exponential backoff; returns its result.

    Any other error is raised at once, and the last one after ``attempts`` calls. ``what``
    names the call in the warning logged before each retry. ``sleep`` waits between calls
    (tests give one that does not really wait).
    """
    if attempts < 1:
        raise ValueError(f"attempts must be at least 1, not {attempts}")

    def warn(state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome is not None else None
        delay = state.next_action.sleep if state.next_action is not None else 0.0
        log.warning(
            "%s: %r (attempt %d of %d); trying again in %.2f s",
            what,
            error,
            state.attempt_number,
            attempts,
            delay,
        )

    retrying = AsyncRetrying(
        retry=retry_if_exception(is_unavailable),
        wait=wait_random_exponential(multiplier=first_s, max=max_s),
        stop=stop_after_attempt(attempts),
        sleep=sleep,
        before_sleep=warn,
        reraise=True,  # the call's own last error, not tenacity's RetryError
    )
    async for attempt in retrying:
        with attempt:
            return await call()
    raise AssertionError("unreachable: the last attempt returns or raises")
