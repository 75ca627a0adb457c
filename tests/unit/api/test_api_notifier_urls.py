"""NODEDROP_NOTIFIER_URL: the notifiers the api relays /ws/* to (any may be on another machine)."""

from __future__ import annotations

import pytest

from nodedrop.api.settings import ApiSettings


@pytest.mark.parametrize("value", [None, "", "  "])
def test_unset_is_the_notifier_on_this_host(value: str | None) -> None:
    env = {"NODEDROP_HOST": "10.0.0.5", "NODEDROP_NOTIFIER_PORT": "9001"}
    if value is not None:
        env["NODEDROP_NOTIFIER_URL"] = value
    config = ApiSettings.from_env(env)
    assert config.notifier_urls == ("http://10.0.0.5:9001",)
    assert ApiSettings().notifier_urls == ("http://127.0.0.1:8001",)


def test_a_list_is_parsed_and_normalised() -> None:
    config = ApiSettings.from_env(
        {
            "NODEDROP_NOTIFIER_URL": " http://n1.internal:8001/ ,HTTPS://N2.example,"
            "ws://10.0.0.7:81, wss://[::1]:8443,",
            "NODEDROP_NOTIFIER_PORT": "9999",  # not used when the list is given
        }
    )
    assert config.notifier_urls == (
        "http://n1.internal:8001",
        "https://n2.example",
        "http://10.0.0.7:81",
        "https://[::1]:8443",
    )


def test_one_url() -> None:
    config = ApiSettings.from_env({"NODEDROP_NOTIFIER_URL": "http://notifier:8001"})
    assert config.notifier_urls == ("http://notifier:8001",)


@pytest.mark.parametrize(
    "value",
    [
        "notifier:8001",  # no scheme
        "//notifier:8001",
        "ftp://notifier",
        "http://",
        "http://:8001",
        "http://notifier:80a",
        "http://notifier:70000",
        "http://notifier:0",
        "http://[::1:8001",
        "http://notifier:8001/ws",  # a path: the relay adds /ws/executions/... itself
        "http://notifier:8001?x=1",
        "http://notifier:8001#top",
        "http://user:secret@notifier:8001",
        "http://noti fier:8001",
        "http://good:8001, http://bad:port",
        ",",
        " , ",
    ],
)
def test_malformed_entries_are_refused_naming_the_variable(value: str) -> None:
    with pytest.raises(ValueError, match="NODEDROP_NOTIFIER_URL"):
        ApiSettings.from_env({"NODEDROP_NOTIFIER_URL": value})
