"""``NODEDROP_PROJECTION_LINGER_MS``: how long a projection batch collects after its first event."""

from __future__ import annotations

import pytest

from nodedrop.notifier.consumer import DEFAULT_LINGER_S
from nodedrop.notifier.settings import NotifierSettings
from nodedrop.platform.settings import SettingsError

LINGER = "NODEDROP_PROJECTION_LINGER_MS"


def test_unset_or_blank_is_the_default() -> None:
    assert NotifierSettings.from_env({}).linger_s == DEFAULT_LINGER_S
    assert NotifierSettings.from_env({LINGER: " "}).linger_s == DEFAULT_LINGER_S


@pytest.mark.parametrize(("value", "seconds"), [("0", 0.0), ("50", 0.05), ("2.5", 0.0025)])
def test_milliseconds_are_read_as_seconds(value: str, seconds: float) -> None:
    assert NotifierSettings.from_env({LINGER: value}).linger_s == pytest.approx(seconds)


@pytest.mark.parametrize("value", ["-1", "soon", "nan"])
def test_anything_but_a_number_of_milliseconds_is_refused(value: str) -> None:
    with pytest.raises(SettingsError, match=LINGER):
        NotifierSettings.from_env({LINGER: value})
