"""What PostgreSQL refuses is answered without its text, and reads refuse numbers the event log
cannot take before they reach it.

The entry points refuse what the database would (NUL characters, numbers out of range), so no
public route is known to reach the database's error handlers any more; a route added here runs
real statements that the real PostgreSQL refuses, through the app's own handlers. The database's
text may quote the value (a secret, say), the statement and its parameters: neither the answer
nor the log may carry it.
"""

from __future__ import annotations

import logging
from typing import Any

import pytest
from sqlalchemy import text

from .harness import Api

pytestmark = pytest.mark.integration

SECRET = "hunter2-SECRET"

#: (statement, parameters): each refused by PostgreSQL, and each quotes SECRET in its error.
REFUSED: dict[str, tuple[str, dict[str, Any]]] = {
    "nul_in_jsonb": ("SELECT CAST(:v AS jsonb)", {"v": f'{{"k": "{SECRET}\\u0000"}}'}),
    "nul_in_text": ("SELECT CAST(:v AS text)", {"v": f"{SECRET}\x00"}),
    "out_of_range": (
        "SELECT CAST(CAST(:v AS text) AS integer) AS {}".format(SECRET.replace("-", "_")),
        {"v": "99999999999"},
    ),
    "bad_form": ("SELECT CAST(CAST(:v AS text) AS integer)", {"v": SECRET}),
    # Refused by the driver before it is sent (the parameter is typed integer): no SQLSTATE.
    "driver_refused": ("SELECT CAST(:v AS integer)", {"v": SECRET}),
    "duplicate": (
        "INSERT INTO users (id, name, is_admin, created_at) "
        "VALUES (:id, :v, false, now()), (:id, :v, false, now())",
        {"id": "u-dup", "v": SECRET},
    ),
}


@pytest.fixture
def refusing(api: Api) -> Api:
    async def refuse(kind: str) -> dict[str, str]:
        statement, parameters = REFUSED[kind]
        async with api.resources.engine.connect() as connection:
            await connection.execute(text(statement), parameters)
        return {"ran": kind}

    api.app.add_api_route("/test-refused/{kind}", refuse, methods=["POST"])
    return api


@pytest.mark.parametrize(
    ("kind", "status", "says"),
    [
        ("nul_in_jsonb", 422, "cannot be stored (such as NUL"),
        ("nul_in_text", 422, "cannot be stored (such as NUL"),
        ("out_of_range", 422, "out of the range"),
        ("bad_form", 422, "wrong form"),
        ("driver_refused", 422, "cannot be stored as given"),
        ("duplicate", 409, "conflicts with what is stored"),
    ],
)
async def test_a_value_the_database_refuses_is_a_clean_4xx_without_its_text(
    refusing: Api, caplog: pytest.LogCaptureFixture, kind: str, status: int, says: str
) -> None:
    caplog.set_level(logging.DEBUG)
    response = await refusing.client.post(f"/test-refused/{kind}")
    assert response.status_code == status, response.text
    assert says in response.text
    for leaked in (SECRET, "SELECT", "INSERT", "asyncpg", "sqlalchemy", "DETAIL", "jsonb"):
        assert leaked not in response.text, response.text
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert SECRET not in logged
    assert "SQLSTATE" in logged
    if status == 422:
        [problem] = response.json()["detail"]
        assert problem["type"] == "value_error"
        assert problem["loc"] == ["body"]


# ------------------------------------------------------------------------------ after_seq


async def test_events_after_seq_is_bounded_by_what_a_stream_can_hold(
    api: Api, workflow: dict[str, Any]
) -> None:
    created = await api.client.post("/api/executions", json={"workflow": workflow, "input": [{}]})
    assert created.status_code == 202, created.text
    events = f"/api/executions/{created.json()['id']}/events"
    # The largest seq there can be: nothing comes after it (it was a 500: the stream was asked
    # for seq 2**64).
    last = await api.client.get(events, params={"after_seq": 2**64 - 1})
    assert last.status_code == 200, last.text
    assert last.json() == {"events": []}
    # Beyond it: a 422 naming the parameter (it was a 500, the stream's 'Malformed Request').
    for beyond in (2**64, 10**30):
        response = await api.client.get(events, params={"after_seq": beyond})
        assert response.status_code == 422, response.text
        assert response.json()["detail"][0]["loc"] == ["query", "after_seq"]
