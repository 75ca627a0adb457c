"""Settings: request limits, the WebSocket's allowed origins, and wrong values refused by name."""

from __future__ import annotations

import pytest

from nodedrop.contracts.config import Config


def test_limit_defaults_and_overrides() -> None:
    default = Config.from_env({})
    assert (
        default.max_body_bytes,
        default.max_workflow_nodes,
        default.max_input_items,
        default.max_expression_length,
    ) == (8 * 1024 * 1024, 2000, 10_000, 10_000)
    changed = Config.from_env(
        {
            "NODEDROP_MAX_BODY_BYTES": "100",
            "NODEDROP_MAX_WORKFLOW_NODES": "5",
            "NODEDROP_MAX_INPUT_ITEMS": "7",
            "NODEDROP_MAX_EXPRESSION_LENGTH": "50",
        }
    )
    assert (
        changed.max_body_bytes,
        changed.max_workflow_nodes,
        changed.max_input_items,
        changed.max_expression_length,
    ) == (100, 5, 7, 50)


def test_default_origins_are_the_servers_own_base_urls() -> None:
    local = Config.from_env({"NODEDROP_PORT": "9000"}).websocket_origins
    assert "http://127.0.0.1:9000" in local
    assert "http://localhost:9000" in local
    assert "http://evil.example:9000" not in local
    named = Config.from_env({"NODEDROP_HOST": "flows.internal", "NODEDROP_PORT": "80"})
    assert named.websocket_origins == {"http://flows.internal:80", "https://flows.internal:80"}


def test_configured_origins_replace_the_default() -> None:
    config = Config.from_env({"NODEDROP_ALLOWED_ORIGINS": "https://ui.example/, http://a:1"})
    assert config.websocket_origins == {"https://ui.example", "http://a:1"}


@pytest.mark.parametrize(
    ("variable", "value", "says"),
    [
        ("NODEDROP_PORT", "abc", "valid integer"),
        ("NODEDROP_PORT", "99999", "less than or equal to 65535"),
        ("NODEDROP_NOTIFIER_PORT", "0", "greater than or equal to 1"),
        ("NODEDROP_MAX_WORKFLOW_NODES", "-5", "greater than or equal to 1"),
        ("NODEDROP_MAX_WORKFLOW_NODES", "5001", "at most 5000"),
        ("NODEDROP_MAX_EXPRESSION_LENGTH", "10001", "less than or equal to 10000"),
        ("NODEDROP_SCHEDULE_GRACE_S", "-1", "greater than or equal to 0"),
        ("NODEDROP_SCHEDULER_SNAPSHOT_INTERVAL_S", "nan", "finite number"),
        ("NODEDROP_RUNNER_CONCURRENCY", "1.5", "valid integer"),
        ("NODEDROP_HTTP_ALLOW_PRIVATE", "maybe", "valid boolean"),
        ("NODEDROP_MAX_CONCURRENT_PER_USER", "-1", "greater than or equal to 0"),
    ],
)
def test_a_wrong_setting_is_refused_naming_the_variable(
    variable: str, value: str, says: str
) -> None:
    with pytest.raises(ValueError, match=variable) as refused:
        Config.from_env({variable: value})
    assert says in str(refused.value)
    assert repr(value) in str(refused.value)


def test_every_wrong_setting_is_named_at_once_and_blank_ones_are_unset() -> None:
    with pytest.raises(ValueError, match=r"NODEDROP_PORT.*NODEDROP_MAX_INPUT_ITEMS"):
        Config.from_env({"NODEDROP_PORT": "x", "NODEDROP_MAX_INPUT_ITEMS": "0"})
    blank = Config.from_env({"NODEDROP_PORT": "  ", "NODEDROP_ADMIN_TOKEN": ""})
    assert (blank.port, blank.admin_token) == (8000, None)
    assert Config.from_env({"NODEDROP_HTTP_ALLOW_PRIVATE": "yes"}).http_allow_private


def test_a_service_started_with_a_wrong_setting_exits_with_one_line(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("NODEDROP_PORT", "eighty")
    with pytest.raises(SystemExit) as stopped:
        Config.load()
    assert str(stopped.value).startswith("configuration: NODEDROP_PORT:")
    assert "\n" not in str(stopped.value)
