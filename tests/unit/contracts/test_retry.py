"""retry_unavailable: what a clustered JetStream gives during a leader election is retried with
a full-jitter exponential backoff; anything else is raised at once."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import nats.errors
import nats.js.errors
import pytest

from nodedrop.platform.retry import is_unavailable, retry_unavailable


class Flaky:
    """A call that raises the given errors in turn, then returns ``"done"``."""

    def __init__(self, *errors: BaseException) -> None:
        self.errors = list(errors)
        self.calls = 0

    async def __call__(self) -> str:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return "done"


def recording_sleep() -> tuple[list[float], Callable[[float], Awaitable[None]]]:
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    return waits, sleep


UNAVAILABLE = [
    nats.js.errors.ServiceUnavailableError(),
    nats.js.errors.ServiceUnavailableError(code=503, err_code=10008, description="unavailable"),
    nats.js.errors.APIError(code=503, description="JetStream system temporarily unavailable"),
    nats.js.errors.NoStreamResponseError(),
    nats.js.errors.BadRequestError(
        code=400, err_code=10005, description="no suitable peers for placement, peer offline"
    ),
    nats.errors.NoRespondersError(),
    nats.errors.TimeoutError(),
    TimeoutError(),
]


@pytest.mark.parametrize("error", UNAVAILABLE, ids=repr)
def test_the_errors_of_a_leader_election_count_as_unavailable(error: BaseException) -> None:
    assert is_unavailable(error)


@pytest.mark.parametrize(
    "error",
    [
        nats.js.errors.NotFoundError(code=404, description="stream not found"),
        nats.js.errors.BadRequestError(code=400),
        nats.js.errors.APIError(code=500, description="server error"),
        nats.errors.ConnectionClosedError(),
        ValueError("a bug"),
    ],
    ids=repr,
)
def test_other_errors_do_not(error: BaseException) -> None:
    assert not is_unavailable(error)


@pytest.mark.parametrize("error", UNAVAILABLE, ids=repr)
async def test_an_unavailable_call_is_made_again_until_it_succeeds(error: BaseException) -> None:
    call = Flaky(error, error)
    waits, sleep = recording_sleep()
    assert await retry_unavailable(call, what="test call", sleep=sleep) == "done"
    assert call.calls == 3
    assert len(waits) == 2


async def test_any_other_error_is_raised_at_once() -> None:
    call = Flaky(nats.errors.NoRespondersError(), nats.js.errors.NotFoundError(code=404))
    waits, sleep = recording_sleep()
    with pytest.raises(nats.js.errors.NotFoundError):
        await retry_unavailable(call, what="test call", sleep=sleep)
    assert call.calls == 2
    assert len(waits) == 1


async def test_the_last_error_is_raised_after_the_attempts() -> None:
    errors = [nats.errors.NoRespondersError() for _ in range(5)]
    call = Flaky(*errors)
    waits, sleep = recording_sleep()
    with pytest.raises(nats.errors.NoRespondersError) as raised:
        await retry_unavailable(call, what="test call", attempts=4, sleep=sleep)
    assert raised.value is errors[3]  # the call's own error, not a wrapper
    assert call.calls == 4
    assert len(waits) == 3


async def test_the_waits_are_full_jitter_exponential_and_capped(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Each wait is drawn from [0, first * 2**n] capped at max_s: with the draw at the top of
    its range the waits double from first_s up to max_s, at the bottom they are 0."""
    import random

    call = Flaky(*[nats.errors.TimeoutError() for _ in range(7)])
    waits, sleep = recording_sleep()
    monkeypatch.setattr(random, "uniform", lambda low, high: high)
    await retry_unavailable(
        call, what="test call", attempts=8, first_s=0.05, max_s=1.0, sleep=sleep
    )
    assert waits == pytest.approx([0.05, 0.1, 0.2, 0.4, 0.8, 1.0, 1.0])

    call = Flaky(*[nats.errors.TimeoutError() for _ in range(3)])
    waits, sleep = recording_sleep()
    monkeypatch.setattr(random, "uniform", lambda low, high: low)
    await retry_unavailable(call, what="test call", sleep=sleep)
    assert waits == [0, 0, 0]


async def test_the_waits_are_random() -> None:
    call = Flaky(*[nats.errors.TimeoutError() for _ in range(7)])
    waits, sleep = recording_sleep()
    await retry_unavailable(call, what="test call", first_s=1.0, max_s=100.0, sleep=sleep)
    assert all(0 <= wait <= 2**n for n, wait in enumerate(waits))
    assert len(set(waits)) > 1


async def test_it_really_sleeps_by_default() -> None:
    call = Flaky(nats.errors.NoRespondersError())
    assert await retry_unavailable(call, what="test call", first_s=0.001, max_s=0.001) == "done"
    assert call.calls == 2


async def test_each_retry_is_logged_with_what_was_called(caplog: pytest.LogCaptureFixture) -> None:
    call = Flaky(nats.errors.NoRespondersError(), nats.errors.NoRespondersError())
    _, sleep = recording_sleep()
    with caplog.at_level(logging.WARNING, logger="nodedrop.platform.retry"):
        await retry_unavailable(call, what="publish to EVENTS", attempts=5, sleep=sleep)
    messages = [record.getMessage() for record in caplog.records]
    assert len(messages) == 2
    assert all(m.startswith("publish to EVENTS: NoRespondersError") for m in messages)
    assert "attempt 1 of 5" in messages[0]
    assert "attempt 2 of 5" in messages[1]


async def test_attempts_must_be_positive() -> None:
    with pytest.raises(ValueError, match="attempts"):
        await retry_unavailable(Flaky(), what="test call", attempts=0)
