"""Redaction of a node attempt's secrets from its error and log text (the second line of
defence, docs/credentials.md)."""

from __future__ import annotations

import base64

from nodedrop.runner.credentials import REDACTED, redact, secrets_of
from nodedrop.runner.nodes.api import Credential, NodeContext

SECRET = "s3cr3t/value+with=chars"


def test_every_occurrence_is_replaced() -> None:
    assert redact(f"a {SECRET} b {SECRET}", [SECRET]) == f"a {REDACTED} b {REDACTED}"


def test_a_secret_cut_short_by_a_truncation_at_either_end_is_replaced() -> None:
    assert redact(f"body: {SECRET[:9]}", [SECRET]) == f"body: {REDACTED}"
    assert redact(f"{SECRET[-7:]} and on", [SECRET]) == f"{REDACTED} and on"
    assert redact("ends with s3c", [SECRET]) == "ends with s3c"  # too short to tell


def test_the_forms_a_secret_travels_in_are_known() -> None:
    ctx = NodeContext("e", "n", 1)
    ctx.credentials["credential"] = Credential(
        id="c",
        type="basic_auth",
        name="c",
        fields={"username": "ann", "password": SECRET},
        secret_fields=["password"],
    )
    ctx.derived_secrets.append("token-123456")
    found = secrets_of(ctx)
    assert SECRET in found
    assert "s3cr3t%2Fvalue%2Bwith%3Dchars" in found  # as a query value
    assert base64.b64encode(f"ann:{SECRET}".encode()).decode() in found
    assert "token-123456" in found
    assert "ann" not in found  # the readable fields are not secrets


def test_short_values_are_left_alone() -> None:
    ctx = NodeContext("e", "n", 1)
    ctx.credentials["credential"] = Credential(
        id="c", type="bearer_token", name="c", fields={"token": "ab"}, secret_fields=["token"]
    )
    assert secrets_of(ctx) == []
