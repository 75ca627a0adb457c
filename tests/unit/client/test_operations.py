"""The client's operations over httpx.MockTransport: requests, answers, errors, waiting, pages."""

from __future__ import annotations

import inspect
import itertools
import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from nodedrop.client import (
    ApiError,
    AsyncClient,
    Client,
    Conflict,
    NotFound,
    TooLarge,
    ValidationFailed,
    WaitTimedOut,
    operations,
)
from nodedrop.client.operations import Call, Operation, Pause

BASE = "http://nodedrop.test"
Handler = Callable[[httpx.Request], httpx.Response]


def execution(status: str = "running", **extra: Any) -> dict[str, Any]:
    finished = status in {"succeeded", "failed", "cancelled", "timed_out", "partial"}
    return {
        "id": "ex1",
        "workflow_id": None,
        "workflow_version": None,
        "mode": "trigger",
        "trigger": "start",
        "node": None,
        "status": status,
        "requested_by": "admin",
        "created_at": "2026-12-07T20:00:00.000Z",
        "started_at": "2026-12-07T20:00:00.010Z",
        "finished_at": "2026-12-07T20:00:00.020Z" if finished else None,
        "error": None,
        "last_seq": 9,
        "nodes": {"start": {"status": "succeeded", "attempts": 1, "output": {"main": [{}]}}},
        **extra,
    }


def sync_client(handler: Handler) -> Client:
    http = httpx.Client(base_url=BASE, transport=httpx.MockTransport(handler))
    return Client(BASE, "k", http=http)


def test_the_key_goes_as_a_bearer_token() -> None:
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"items": [], "next_cursor": None})

    with Client(BASE, "secret-key") as client:
        client.http._transport = httpx.MockTransport(answer)
        assert client.list_workflows().items == []
    assert seen[0].headers["Authorization"] == "Bearer secret-key"


def test_submit_sends_the_request_body_and_answers_the_id() -> None:
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(202, json={"id": "ex1", "status": "queued"})

    accepted = sync_client(answer).submit(
        workflow={"name": "w", "nodes": []}, trigger="start", input=[{"x": 1}], timeout_ms=500
    )
    assert accepted.id == "ex1"
    assert (seen[0].method, seen[0].url.path) == ("POST", "/api/executions")
    assert json.loads(seen[0].content) == {
        "workflow": {"name": "w", "nodes": []},
        "trigger": "start",
        "input": [{"x": 1}],
        "timeout_ms": 500,
    }


def test_submit_needs_exactly_one_of_a_saved_or_an_inline_workflow() -> None:
    client = sync_client(lambda _: httpx.Response(500))
    with pytest.raises(ValueError, match="either workflow_id"):
        client.submit()
    with pytest.raises(ValueError, match="either workflow_id"):
        client.submit("wf1", {"name": "w"})


@pytest.mark.parametrize(
    ("status", "kind"), [(404, NotFound), (409, Conflict), (413, TooLarge), (500, ApiError)]
)
def test_an_error_answer_is_its_exception_with_the_message(
    status: int, kind: type[ApiError]
) -> None:
    client = sync_client(lambda _: httpx.Response(status, json={"detail": "it says why"}))
    with pytest.raises(kind) as raised:
        client.get_execution("ex1")
    assert (raised.value.status, raised.value.message) == (status, "it says why")


def test_a_422_names_each_field() -> None:
    detail = [
        {"loc": ["body", "workflow", "nodes", 1, "type"], "msg": "unknown type", "type": "x"},
        {"loc": ["body", "timeout_ms"], "msg": "not an integer", "type": "int_type"},
    ]
    client = sync_client(lambda _: httpx.Response(422, json={"detail": detail}))
    with pytest.raises(ValidationFailed) as raised:
        client.submit(workflow={"name": "w"})
    error = raised.value
    assert error.field == "workflow.nodes[1].type"
    assert [p.field for p in error.problems] == ["workflow.nodes[1].type", "timeout_ms"]
    assert "workflow.nodes[1].type: unknown type" in str(error)


def test_an_error_without_json_keeps_its_text() -> None:
    client = sync_client(lambda _: httpx.Response(502, text="Bad Gateway from the proxy"))
    with pytest.raises(ApiError, match="Bad Gateway from the proxy"):
        client.cancel("ex1")


def test_a_save_from_an_older_version_is_a_conflict_naming_the_current_one() -> None:
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        body = {"detail": "workflow 'wf1' was changed meanwhile", "current_version": 3}
        return httpx.Response(409, json=body)

    with pytest.raises(Conflict) as raised:
        sync_client(answer).update_workflow("wf1", {"name": "w"}, if_version=2)
    assert seen[0].headers["If-Match"] == '"2"'
    assert raised.value.body["current_version"] == 3


def test_ids_are_one_path_segment() -> None:
    seen: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.raw_path.decode())
        return httpx.Response(200, json={"main": [{"a": 1}]})

    assert sync_client(answer).node_output("a/b", "n?x") == {"main": [{"a": 1}]}
    assert seen == ["/api/executions/a%2Fb/nodes/n%3Fx/output"]


def test_iterating_follows_the_cursor_to_the_last_page() -> None:
    cursors: list[str | None] = []

    def answer(request: httpx.Request) -> httpx.Response:
        cursor = request.url.params.get("cursor")
        cursors.append(cursor)
        page = {None: (["a", "b"], "c1"), "c1": (["c"], "c2"), "c2": ([], None)}[cursor]
        items = [{**execution(), "id": i} for i in page[0]]
        return httpx.Response(200, json={"items": items, "next_cursor": page[1]})

    ids = [e.id for e in sync_client(answer).iter_executions(status="running", page_size=2)]
    assert ids == ["a", "b", "c"]
    assert cursors == [None, "c1", "c2"]


def test_workflow_versions_reads_every_version_oldest_first() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        path = request.url.path
        version = int(path.rsplit("/", 1)[1]) if "/versions/" in path else 3
        body = {"id": "wf1", "version": version, "name": f"v{version}", "nodes": [], "owner": "u"}
        # A draft's problems, and a field a newer server adds: neither is part of a definition.
        body |= {"problems": [{"loc": ["nodes"], "msg": "no trigger"}], "added_later": 1}
        return httpx.Response(200, json=body)

    versions = sync_client(answer).workflow_versions("wf1")
    assert [(w.version, w.name) for w in versions] == [(1, "v1"), (2, "v2"), (3, "v3")]
    assert versions[0].definition() == {
        "name": "v1",
        "nodes": [],
        "connections": [],
        "settings": {},
    }


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def drive(operation: Operation[Any], handler: Handler, clock: FakeClock) -> Any:
    """Run an operation with a handler for its calls and a fake clock its pauses advance."""
    try:
        step = next(operation)
        while True:
            if isinstance(step, Pause):
                clock.now += step.seconds
                step = operation.send(None)
            else:
                assert isinstance(step, Call)
                http = httpx.Client(base_url=BASE)
                step = operation.send(handler(step.build(http)))
    except StopIteration as done:
        return done.value


def test_submit_and_wait_takes_the_finished_execution_from_the_post() -> None:
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=execution("succeeded"))

    done = drive(
        operations.submit_and_wait("wf1", timeout_s=5, clock=FakeClock()), answer, FakeClock()
    )
    assert done.status == "succeeded"
    assert len(seen) == 1
    assert seen[0].url.params["wait"] == "5"


def test_submit_and_wait_long_polls_after_a_202() -> None:
    clock = FakeClock()
    waits: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            clock.now += 60  # the api held the request for the whole wait
            return httpx.Response(202, json={"id": "ex1", "status": "queued"})
        waits.append(request.url.params["wait"])
        clock.now += 40  # a server that honours wait answers when the execution finished
        return httpx.Response(200, json=execution("failed"))

    done = drive(operations.submit_and_wait("wf1", timeout_s=300, clock=clock), answer, clock)
    assert done.status == "failed"
    assert waits == ["60"]


def test_against_an_api_that_ignores_wait_it_polls_with_backoff() -> None:
    clock = FakeClock()
    gets: list[tuple[float, str | None]] = []

    def answer(request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            return httpx.Response(202, json={"id": "ex1", "status": "queued"})
        gets.append((clock.now, request.url.params.get("wait")))
        status = "succeeded" if len(gets) == 6 else "running"
        return httpx.Response(200, json=execution(status))

    done = drive(operations.submit_and_wait("wf1", timeout_s=60, clock=clock), answer, clock)
    assert done.status == "succeeded"
    assert gets[0][1] == "60"  # tried a long poll first; answered at once: not honoured
    assert all(wait is None for _, wait in gets[1:])
    gaps = [round(later[0] - earlier[0], 3) for earlier, later in itertools.pairwise(gets)]
    assert gaps == [0.05, 0.1, 0.2, 0.4, 0.8]


def test_a_wait_the_api_refuses_falls_back_to_plain_requests() -> None:
    clock = FakeClock()
    seen: list[httpx.Request] = []
    too_long = {"detail": [{"loc": ["query", "wait"], "msg": "at most 30", "type": "x"}]}

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if "wait" in request.url.params:
            return httpx.Response(422, json=too_long)
        if request.method == "POST":
            return httpx.Response(202, json={"id": "ex1", "status": "queued"})
        return httpx.Response(200, json=execution("succeeded"))

    done = drive(operations.submit_and_wait("wf1", timeout_s=60, clock=clock), answer, clock)
    assert done.status == "succeeded"
    # Refused once without saying its largest wait: plain requests from then on.
    assert [(r.method, "wait" in r.url.params) for r in seen] == [
        ("POST", True),
        ("POST", False),
        ("GET", False),
    ]


def test_an_api_that_names_its_largest_wait_is_long_polled_with_it() -> None:
    clock = FakeClock()
    seen: list[tuple[str, str | None]] = []
    too_long = {
        "detail": [{"loc": ["query", "wait"], "msg": "at most 30", "type": "x", "ctx": {"le": 30}}]
    }

    def answer(request: httpx.Request) -> httpx.Response:
        wait = request.url.params.get("wait")
        seen.append((request.method, wait))
        if wait is not None and float(wait) > 30:
            return httpx.Response(422, json=too_long)
        if request.method == "POST":
            clock.now += 30  # held for the whole wait
            return httpx.Response(202, json={"id": "ex1", "status": "running"})
        clock.now += 30
        status = "succeeded" if len(seen) == 4 else "running"
        return httpx.Response(200, json=execution(status))

    done = drive(operations.submit_and_wait("wf1", timeout_s=300, clock=clock), answer, clock)
    assert done.status == "succeeded"
    assert seen == [("POST", "60"), ("POST", "30"), ("GET", "30"), ("GET", "30")]


def test_a_get_refused_for_its_wait_goes_on_with_the_largest_one_named() -> None:
    clock = FakeClock()
    waits: list[str | None] = []
    too_long = {"detail": [{"loc": ["query", "wait"], "msg": "m", "type": "x", "ctx": {"le": 5}}]}

    def answer(request: httpx.Request) -> httpx.Response:
        wait = request.url.params.get("wait")
        waits.append(wait)
        if wait is not None and float(wait) > 5:
            return httpx.Response(422, json=too_long)
        clock.now += 5
        return httpx.Response(200, json=execution("succeeded" if len(waits) == 3 else "running"))

    done = drive(operations.wait_for("ex1", timeout_s=100, clock=clock), answer, clock)
    assert done.status == "succeeded"
    assert waits == ["60", "5", "5"]


def test_waiting_gives_up_at_the_timeout_with_the_last_state() -> None:
    clock = FakeClock()

    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=execution("running"))

    with pytest.raises(WaitTimedOut) as raised:
        drive(operations.wait_for("ex1", timeout_s=2, clock=clock), answer, clock)
    assert raised.value.execution.status == "running"
    assert clock.now == pytest.approx(1002.0)


async def test_the_async_client_runs_the_same_operations() -> None:
    seen: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(f"{request.method} {request.url.path}")
        if request.url.path.endswith("/rerun"):
            assert json.loads(request.content) == {"from_node": "n"}
            return httpx.Response(202, json={"id": "ex2", "status": "queued", "rerun_of": "ex1"})
        if request.url.path.endswith("/cancel"):
            return httpx.Response(409, json={"detail": "execution ex1 already finished"})
        return httpx.Response(200, json=execution("succeeded"))

    http = httpx.AsyncClient(base_url=BASE, transport=httpx.MockTransport(answer))
    async with AsyncClient(BASE, "k", http=http) as client:
        assert (await client.submit_and_wait("wf1", timeout_s=5)).status == "succeeded"
        assert (await client.rerun("ex1", from_node="n")).rerun_of == "ex1"
        with pytest.raises(Conflict, match="already finished"):
            await client.cancel("ex1")
    await http.aclose()
    assert seen == [
        "POST /api/executions",
        "POST /api/executions/ex1/rerun",
        "POST /api/executions/ex1/cancel",
    ]


def test_both_clients_offer_every_operation_with_its_signature_and_docstring() -> None:
    # Listed once (nodedrop.client._driving.Operations): the sync client answers values, the
    # async one awaitables, each with the operation's own parameters and documentation.
    offered = [
        name
        for name, value in vars(operations).items()
        if inspect.isfunction(value)
        and not name.startswith("_")
        and str(inspect.signature(value).return_annotation).startswith("Operation[")
    ]
    assert len(offered) == 17
    sync, aio = sync_client(lambda _: httpx.Response(500)), AsyncClient(BASE, "k")
    for name in offered:
        operation = getattr(operations, name)
        for client in (sync, aio):
            method = getattr(client, name)
            assert inspect.signature(method) == inspect.signature(operation), name
            assert method.__doc__ == operation.__doc__, name
        assert inspect.iscoroutinefunction(getattr(aio, name)), name
        assert not inspect.iscoroutinefunction(getattr(sync, name)), name
