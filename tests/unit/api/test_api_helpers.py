"""Small pure helpers of the API: cursors, auth, times, definitions, the relay's URL and codes."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import pytest

from nodedrop.api.auth import User
from nodedrop.api.db import encode_json
from nodedrop.api.definitions import openapi_schemas, parse_definition, stored_definition
from nodedrop.api.errors import UnprocessableError, located, problem
from nodedrop.api.pagination import InvalidCursorError, decode_cursor, encode_cursor, parse_cursor
from nodedrop.api.timefmt import iso, iso_or_none
from nodedrop.api.ws_relay import client_close_code, upstream_url
from nodedrop.contracts.nodetypes import NodeTypeRegistry

MOMENT = datetime(2026, 11, 26, 10, 0, 0, 123_456, tzinfo=UTC)


def test_cursor_round_trip() -> None:
    cursor = encode_cursor(MOMENT, "0192-abc")
    assert "=" not in cursor
    assert decode_cursor(cursor) == (MOMENT, "0192-abc")


@pytest.mark.parametrize(
    "cursor", ["", "!!!", "bm90IGpzb24", "WzEsMl0", "WyIyMDI2LTAxLTAxIiwieCJd"]
)
def test_foreign_cursors_are_refused(cursor: str) -> None:
    with pytest.raises(InvalidCursorError):
        decode_cursor(cursor)


def test_parse_cursor_names_the_query_parameter() -> None:
    assert parse_cursor(None) is None
    with pytest.raises(UnprocessableError) as caught:
        parse_cursor("garbage")
    assert caught.value.problems[0]["loc"] == ["query", "cursor"]


def test_visibility() -> None:
    alice = User("alice")
    assert alice.can_see("alice")
    assert not alice.can_see("bob")
    assert alice.owner_filter == "alice"
    admin = User("admin", is_admin=True)
    assert admin.can_see("bob")
    assert admin.owner_filter is None


def test_times_are_utc_milliseconds_with_z() -> None:
    assert iso(MOMENT) == "2026-11-26T10:00:00.123Z"
    plus_two = MOMENT.astimezone(timezone(timedelta(hours=2)))
    assert iso(plus_two) == "2026-11-26T10:00:00.123Z"
    assert iso(datetime(2026, 1, 1)) == "2026-01-01T00:00:00.000Z"
    assert iso_or_none(None) is None


def test_located_prefixes_every_loc() -> None:
    problems = [problem(["nodes", 0], "bad", "x"), problem([], "root", "y")]
    assert [p["loc"] for p in located(["body", "workflow"], problems)] == [
        ["body", "workflow", "nodes", 0],
        ["body", "workflow"],
    ]


def test_parse_definition_locates_problems() -> None:
    registry = NodeTypeRegistry()
    with pytest.raises(UnprocessableError) as caught:
        parse_definition({"nodes": [{"id": "a", "type": "nope"}]}, registry, ["body", "workflow"])
    locs = [p["loc"] for p in caught.value.problems]
    assert ["body", "workflow", "nodes", 0, "type"] in locs
    assert ["body", "workflow", "nodes"] in locs  # no trigger


def test_stored_definition_always_has_the_top_level_keys() -> None:
    workflow = parse_definition(
        {"nodes": [{"id": "s", "type": "manual_trigger"}]}, NodeTypeRegistry(), ["body"]
    )
    assert stored_definition(workflow) == {
        "name": "Untitled",
        "nodes": [{"id": "s", "type": "manual_trigger"}],
        "connections": [],
        "settings": {},
    }


def test_a_stored_definition_is_written_as_the_text_encoded_with_it() -> None:
    workflow = parse_definition(
        {"nodes": [{"id": "s", "type": "manual_trigger"}]}, NodeTypeRegistry(), ["body"]
    )
    stored = stored_definition(workflow)
    assert stored.text == json.dumps(stored)
    assert encode_json(stored) is stored.text
    assert encode_json({"a": 1}) == '{"a": 1}'


def test_openapi_schemas_reference_components() -> None:
    schemas = openapi_schemas()
    assert {"Workflow", "Node", "Connection"} <= set(schemas)
    assert "from" in schemas["Connection"]["properties"]
    assert "$defs" not in schemas["Workflow"]


def test_upstream_url() -> None:
    assert (
        upstream_url("http://127.0.0.1:8001", "/ws/executions/e1", "after_seq=3")
        == "ws://127.0.0.1:8001/ws/executions/e1?after_seq=3"
    )
    assert upstream_url("https://n.example/base/", "/ws/x", "") == "wss://n.example/base/ws/x"


@pytest.mark.parametrize(
    ("upstream", "client"),
    [(1000, 1000), (4401, 4401), (4404, 4404), (1005, 1000), (1006, 1011), (None, 1011)],
)
def test_close_codes(upstream: int | None, client: int) -> None:
    assert client_close_code(upstream) == client
