"""Secrets in node parameters: masked wherever a definition travels, kept on a save that sends
the masked value back."""

from __future__ import annotations

import copy
from typing import Any

from nodedrop.contracts.definition_secrets import keep_stored, masked

SECRET = "a-long-webhook-secret-ending-9f3c"


def definition(secret: str | None = SECRET, node_id: str = "hook") -> dict[str, Any]:
    parameters = {"secret": secret} if secret is not None else {}
    return {
        "name": "d",
        "nodes": [
            {"id": "other", "type": "http_request", "parameters": {"secret": "not-a-webhook"}},
            {"id": node_id, "type": "webhook_trigger", "parameters": parameters},
        ],
        "connections": [],
    }


def test_only_a_webhook_triggers_secret_is_masked_and_the_input_is_left_alone() -> None:
    original = definition()
    before = copy.deepcopy(original)
    shown = masked(original)
    assert shown["nodes"][1]["parameters"]["secret"] == "****9f3c"
    assert shown["nodes"][0] == original["nodes"][0]
    assert original == before


def test_a_short_secret_shows_nothing_of_itself() -> None:
    assert masked(definition("short"))["nodes"][1]["parameters"]["secret"] == "****"


def test_masking_twice_changes_nothing_more() -> None:
    once = masked(definition())
    assert masked(once) == once


def test_a_definition_without_secrets_comes_back_equal() -> None:
    plain = definition(None)
    assert masked(plain) == plain
    assert masked({"nodes": "not a list"}) == {"nodes": "not a list"}


def test_a_masked_value_sent_back_keeps_the_stored_secret() -> None:
    kept, unknown = keep_stored(masked(definition()), definition())
    assert unknown == []
    assert kept is not None
    assert kept["nodes"][1]["parameters"]["secret"] == SECRET


def test_a_new_secret_is_kept_as_sent_and_nothing_is_replaced() -> None:
    assert keep_stored(definition("brand-new"), definition()) == (None, [])


def test_a_masked_value_that_masks_nothing_stored_is_reported() -> None:
    assert keep_stored(masked(definition()), None) == (None, [(1, "secret")])
    assert keep_stored(masked(definition(node_id="renamed")), definition()) == (
        None,
        [(1, "secret")],
    )
    other_mask = definition("****0000")
    assert keep_stored(other_mask, definition()) == (None, [(1, "secret")])
