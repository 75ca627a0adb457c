"""The stream's duplicate window from the environment (``NODEDROP_DUPLICATE_WINDOW_S``)."""

from __future__ import annotations

import pytest

from nodedrop.platform.jetstream import (
    DUPLICATE_WINDOW_ENV,
    RUNNER_ACK_WAIT_ENV,
    StreamSettings,
    events_stream_config,
)


def test_the_default_window_is_two_minutes() -> None:
    assert StreamSettings.from_env({}).duplicate_window_s == 120.0


def test_the_window_and_the_ack_wait_come_from_the_environment_together() -> None:
    settings = StreamSettings.from_env({DUPLICATE_WINDOW_ENV: "10", RUNNER_ACK_WAIT_ENV: "4"})
    assert settings.duplicate_window_s == 10.0
    assert settings.runner_ack_wait_s == 4.0
    assert events_stream_config(settings).duplicate_window == 10.0


@pytest.mark.parametrize("value", ["0", "-1", "soon", "nan"])
def test_a_window_that_is_no_positive_number_is_refused(value: str) -> None:
    with pytest.raises(ValueError, match=DUPLICATE_WINDOW_ENV):
        StreamSettings.from_env({DUPLICATE_WINDOW_ENV: value})
