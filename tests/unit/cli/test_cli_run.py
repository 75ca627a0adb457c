"""``nodedrop run``: the request, 422 problems, and following the event stream across drops."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest
from tests.unit.cli.public_events import PublicHistory

from nodedrop.cli import run
from nodedrop.cli.render import ExecutionView
from nodedrop.client import AsyncClient

if TYPE_CHECKING:  # pytest gives the class as a fixture (see tests/fixtures/fake_notifier.py)
    from tests.fixtures.fake_notifier import FakeNotifier

HELLO = {
    "name": "hello",
    "nodes": [{"id": "start", "type": "manual_trigger"}, {"id": "n", "type": "noop"}],
    "connections": [{"from": "start", "to": "n"}],
}


def _events() -> list[str]:
    h = PublicHistory()
    h.requested(trigger="start")
    h.queued(key="wf-1", limit=1)
    h.started("start", "n")  # the last before the drop: sent again after it
    for node in ("start", "n"):
        h.ready(node)
        h.node_started(node)
        h.succeeded(node)
    h.finished("succeeded")
    return [json.dumps(public) for public in h.events]


EVENTS = _events()


def test_input_is_json_or_a_file_and_one_object_becomes_a_list(tmp_path: Path) -> None:
    assert run.parse_input(None) is None
    assert run.parse_input('{"a": 1}') == [{"a": 1}]
    assert run.parse_input('[{"a": 1}, {"b": 2}]') == [{"a": 1}, {"b": 2}]
    (tmp_path / "in.json").write_text('{"c": 3}')
    assert run.parse_input(f"@{tmp_path / 'in.json'}") == [{"c": 3}]
    with pytest.raises(run.RunError, match="not valid JSON"):
        run.parse_input("{")


def client_over(transport: httpx.MockTransport) -> AsyncClient:
    http = httpx.AsyncClient(transport=transport, base_url="http://nodedrop.test")
    return AsyncClient("http://nodedrop.test", "k", http=http)


def _request(tmp_path: Path, url: str = "http://nodedrop.test") -> run.RunRequest:
    path = tmp_path / "hello.json"
    path.write_text(json.dumps(HELLO))
    return run.RunRequest(file=path, url=url, token="k", trigger="start", input=[{"x": 1}])


async def test_submit_posts_the_workflow_inline(tmp_path: Path) -> None:
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(202, json={"id": "ex1", "status": "queued"})

    async with client_over(httpx.MockTransport(answer)) as client:
        execution_id = await run.submit(client, _request(tmp_path), io.StringIO())

    assert execution_id == "ex1"
    assert seen[0].url.path == "/api/executions"
    assert json.loads(seen[0].content) == {
        "workflow": HELLO,
        "trigger": "start",
        "input": [{"x": 1}],
    }


async def test_a_422_is_listed_and_exits_2(tmp_path: Path) -> None:
    problems = {
        "detail": [
            {"loc": ["body", "workflow"], "msg": "cycle: a -> b -> a"},
            {"loc": ["body", "workflow", "nodes", 1, "type"], "msg": "unknown type"},
        ]
    }
    transport = httpx.MockTransport(lambda _: httpx.Response(422, json=problems))
    async with client_over(transport) as client:
        with pytest.raises(run.RunError) as raised:
            await run.submit(client, _request(tmp_path), io.StringIO())
    assert raised.value.code == 2
    assert "  workflow: cycle: a -> b -> a\n  workflow.nodes[1].type: unknown type" in str(
        raised.value
    )


async def test_an_api_out_of_reach_exits_2(tmp_path: Path) -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    async with client_over(httpx.MockTransport(refuse)) as client:
        with pytest.raises(run.RunError, match="is `nodedrop up` running") as raised:
            await run.submit(client, _request(tmp_path), io.StringIO())
    assert raised.value.code == 2


@pytest.fixture
def notifier(fake_notifier: FakeNotifier) -> FakeNotifier:
    """Drops the first connection after three events."""
    fake_notifier.events = EVENTS
    fake_notifier.drop_after = 3
    return fake_notifier


async def test_follow_reconnects_after_the_last_seq(tmp_path: Path, notifier: FakeNotifier) -> None:
    fake, url = notifier, notifier.url
    view = ExecutionView("ex1")
    out, err = io.StringIO(), io.StringIO()

    await run.follow(_request(tmp_path, url), "ex1", view, out, err)

    assert [path for path, _ in fake.requests] == [
        "/ws/executions/ex1?after_seq=0",
        "/ws/executions/ex1?after_seq=3",
    ]
    assert {auth for _, auth in fake.requests} == {"Bearer k"}
    assert view.status == "succeeded"
    assert out.getvalue().count("started") == 1  # the duplicate was not shown twice
    assert "reconnecting after seq 3" in err.getvalue()


@pytest.mark.parametrize(("code", "message"), [(4401, "refused the key"), (4404, "not found")])
async def test_follow_stops_on_a_bad_key_or_an_unknown_execution(
    tmp_path: Path, notifier: FakeNotifier, code: int, message: str
) -> None:
    fake, url = notifier, notifier.url
    fake.close_with = code
    with pytest.raises(run.RunError, match=message) as raised:
        await run.follow(
            _request(tmp_path, url), "ex1", ExecutionView("ex1"), io.StringIO(), io.StringIO()
        )
    assert raised.value.code == 1
    assert len(fake.requests) == 1
