"""EventPublisher.write_fence: a fence written while the partition's stream has no leader (a
replicated stream just created, or electing one) is written once the stream answers; any other
refusal is a PublishError naming the partition."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, cast

import nats.js.errors
import pytest
from nats.js import JetStreamContext

from nodedrop.contracts.routing import Layout
from nodedrop.platform.bus import EventPublisher, PublishError


class StreamAnswering:
    """A JetStream context whose publishes raise the given errors in turn, then are stored."""

    def __init__(self, *errors: Exception) -> None:
        self.errors = list(errors)
        self.published: list[tuple[str, bytes, str | None]] = []
        self._nc = object()

    async def publish(
        self,
        subject: str,
        payload: bytes,
        *,
        timeout: float,  # noqa: ASYNC109 (nats-py's signature)
        stream: str | None = None,
    ) -> Any:
        if self.errors:
            raise self.errors.pop(0)
        self.published.append((subject, payload, stream))
        return SimpleNamespace(seq=len(self.published) + 40)


def publisher(js: StreamAnswering) -> EventPublisher:
    return EventPublisher(cast(JetStreamContext, js), Layout(4), timeout_s=1)


async def test_a_fence_is_written_once_the_stream_has_a_leader() -> None:
    js = StreamAnswering(
        nats.js.errors.NoStreamResponseError(), nats.js.errors.ServiceUnavailableError()
    )
    seq = await publisher(js).write_fence(2, "owner")
    assert seq == 41
    layout = Layout(4)
    assert js.published == [(layout.fence_subject(2), b"owner", layout.stream(2))]
    assert js.errors == []


async def test_a_refused_fence_is_a_publish_error_naming_the_partition() -> None:
    refused = nats.js.errors.APIError(code=400, err_code=10060, description="stream mismatch")
    js = StreamAnswering(refused)
    with pytest.raises(PublishError, match="fence of partition 3"):
        await publisher(js).write_fence(3, "owner")
    assert js.published == []
