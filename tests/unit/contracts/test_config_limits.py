"""Settings of issue 6: request limits and the WebSocket's allowed origins."""

from __future__ import annotations

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
