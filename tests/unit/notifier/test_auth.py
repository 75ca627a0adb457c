"""Keys for the WebSocket: where they are read from and which are valid."""

from __future__ import annotations

import pytest

from nodedrop.notifier.auth import ADMIN_ID, Caller, admin_token_auth, presented_key


@pytest.mark.parametrize(
    ("headers", "query", "key"),
    [
        ({"authorization": "Bearer k1"}, {}, "k1"),
        ({"authorization": "bearer  k1 "}, {}, "k1"),
        ({}, {"token": "k2"}, "k2"),
        ({"authorization": "Bearer k1"}, {"token": "k2"}, "k1"),
        ({"authorization": "Basic xyz"}, {}, None),
        ({"authorization": "Bearer "}, {"token": ""}, None),
        ({}, {}, None),
    ],
)
def test_presented_key(headers: dict[str, str], query: dict[str, str], key: str | None) -> None:
    assert presented_key(headers, query) == key


async def test_the_admin_token_is_the_admin() -> None:
    authenticate = admin_token_auth("secret")
    assert await authenticate("secret") == Caller(ADMIN_ID, is_admin=True)
    assert await authenticate("secre") is None
    assert await authenticate("secret2") is None


async def test_without_an_admin_token_no_key_is_valid() -> None:
    assert await admin_token_auth(None)("") is None
    assert await admin_token_auth("")("") is None


def test_a_user_sees_only_its_own_executions() -> None:
    assert Caller("alice").can_see("alice")
    assert not Caller("alice").can_see("bob")
    assert Caller(ADMIN_ID, is_admin=True).can_see("bob")


@pytest.mark.parametrize(
    ("origin", "allowed", "ok"),
    [
        (None, set(), True),  # not a browser
        ("http://127.0.0.1:8000", {"http://127.0.0.1:8000"}, True),
        ("http://127.0.0.1:8000/", {"http://127.0.0.1:8000"}, True),
        ("https://evil.example", {"http://127.0.0.1:8000"}, False),
        ("http://127.0.0.1:8001", {"http://127.0.0.1:8000"}, False),
        ("https://evil.example", {"*"}, True),
    ],
)
def test_origin_allowed(origin: str | None, allowed: set[str], ok: bool) -> None:
    from nodedrop.notifier.auth import origin_allowed

    assert origin_allowed(origin, allowed) is ok
