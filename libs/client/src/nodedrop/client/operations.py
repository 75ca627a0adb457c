"""Every API operation, defined once, for the sync and the async client alike.

An operation is a generator that *describes* its I/O instead of doing it: it yields a
:class:`Call` (an HTTP request) or a :class:`Pause` (a sleep) and receives the response (or
``None`` after a pause); its return value is the operation's result. ``Client`` runs it with
``httpx.Client`` and ``time.sleep``, ``AsyncClient`` with ``httpx.AsyncClient`` and
``asyncio.sleep`` (see ``_drive``), so the requests, the status checks, the parsing and the
waiting strategy exist in one place only, and unit tests can step through an operation without
any transport.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, TypedDict, TypeVar, Unpack
from urllib.parse import quote

import httpx
from pydantic import BaseModel

from nodedrop.client.errors import ValidationFailed, WaitTimedOut, error_for
from nodedrop.client.models import (
    Accepted,
    CancelRequested,
    Event,
    Execution,
    ExecutionSummary,
    LogLine,
    NodeType,
    Page,
    Workflow,
)

T = TypeVar("T")
ModelT = TypeVar("ModelT", bound=BaseModel)

#: The longest ``wait`` the API takes (docs/api.md, "Executions"); longer waits are chained.
MAX_WAIT_S = 60.0
#: Polling an api that does not long-poll: first delay, doubled up to the last.
FIRST_POLL_DELAY_S = 0.05
MAX_POLL_DELAY_S = 1.0
#: A long poll answered unfinished this much sooner than asked means the server ignores
#: ``wait`` (an api from before it); the client then polls instead.
_IGNORED_WAIT_RATIO = 0.5
#: How much longer than the wait itself a long-polling request may take to be answered.
_WAIT_SLACK_S = 10.0

Mode = Literal["trigger", "node"]


@dataclass(frozen=True)
class Call:
    """One HTTP request; ``timeout`` overrides the client's (long polls wait longer)."""

    method: str
    path: str
    params: Mapping[str, str | int | float] = field(default_factory=dict)
    json: Any = None
    timeout: float | None = None
    headers: Mapping[str, str] = field(default_factory=dict)

    def build(self, http: httpx.Client | httpx.AsyncClient) -> httpx.Request:
        params = {key: _param(value) for key, value in self.params.items()}
        headers = dict(self.headers)
        if self.timeout is None:
            return http.build_request(
                self.method, self.path, params=params, json=self.json, headers=headers
            )
        timeout = httpx.Timeout(self.timeout, connect=http.timeout.connect)
        return http.build_request(
            self.method, self.path, params=params, json=self.json, headers=headers, timeout=timeout
        )


@dataclass(frozen=True)
class Pause:
    seconds: float


Step = Call | Pause
Operation = Generator[Step, httpx.Response | None, T]


def _param(value: str | int | float) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _segment(value: str) -> str:
    """An id as one path segment: ``a/b`` must not reach another route."""
    return quote(value, safe="")


def send(call: Call) -> Generator[Step, httpx.Response | None, httpx.Response]:
    response = yield call
    assert response is not None, "the driver answers every Call with a response"
    return response


def expect(response: httpx.Response, *statuses: int) -> httpx.Response:
    """``response`` if its status is one of ``statuses``, else its error as an exception."""
    if response.status_code not in statuses:
        raise error_for(response)
    return response


def _one(call: Call, model: type[ModelT], *statuses: int) -> Operation[ModelT]:
    response = yield from send(call)
    return model.model_validate(expect(response, *statuses).json())


# ------------------------------------------------------------------------------- workflows


def create_workflow(definition: Mapping[str, Any]) -> Operation[Workflow]:
    return _one(Call("POST", "/api/workflows", json=dict(definition)), Workflow, 201)


def get_workflow(workflow_id: str, version: int | None = None) -> Operation[Workflow]:
    path = f"/api/workflows/{_segment(workflow_id)}"
    if version is not None:
        path += f"/versions/{version}"
    return _one(Call("GET", path), Workflow, 200)


def update_workflow(
    workflow_id: str, definition: Mapping[str, Any], *, if_version: int | None = None
) -> Operation[Workflow]:
    """A new version of the workflow (``version`` one higher). With ``if_version``, only if
    that is still the latest (``If-Match``): else ``Conflict``, whose ``body`` holds
    ``current_version``, and nothing is written."""
    headers = {} if if_version is None else {"If-Match": f'"{if_version}"'}
    call = Call(
        "PUT", f"/api/workflows/{_segment(workflow_id)}", json=dict(definition), headers=headers
    )
    return _one(call, Workflow, 200)


def delete_workflow(workflow_id: str) -> Operation[None]:
    response = yield from send(Call("DELETE", f"/api/workflows/{_segment(workflow_id)}"))
    expect(response, 204)


def list_workflows(
    *, limit: int | None = None, cursor: str | None = None
) -> Operation[Page[Workflow]]:
    call = Call("GET", "/api/workflows", params=_present(limit=limit, cursor=cursor))
    return _one(call, Page[Workflow], 200)


PageOf = Callable[[str | None], Operation[Page[ModelT]]]


def workflow_pages(page_size: int | None = None) -> PageOf[Workflow]:
    """The page of workflows after a cursor (``None``: the first), for ``iter_workflows``."""
    return lambda cursor: list_workflows(limit=page_size, cursor=cursor)


def workflow_versions(workflow_id: str) -> Operation[list[Workflow]]:
    """Every stored version of a workflow, oldest first."""
    latest = yield from get_workflow(workflow_id)
    versions = []
    for number in range(1, latest.version):
        versions.append((yield from get_workflow(workflow_id, number)))
    return [*versions, latest]


# ------------------------------------------------------------------------------ executions


class ExecutionOptions(TypedDict, total=False):
    """What an execution request may say besides its workflow (docs/api.md, "Endpoints")."""

    trigger: str | None  # which trigger to run from (optional when there is one)
    input: Any  # trigger mode: a list of items; node mode: {port: [items]}
    mode: Mode | None  # "trigger" (the default) or "node"
    node: str | None  # node mode: the node to run
    timeout_ms: int | None  # a deadline for the whole execution


def execution_request(
    workflow_id: str | None, workflow: Mapping[str, Any] | None, options: ExecutionOptions
) -> dict[str, Any]:
    """The body of ``POST /api/executions``: a saved workflow or an inline one, and options."""
    if (workflow_id is None) == (workflow is None):
        raise ValueError("give either workflow_id (a saved workflow) or workflow (inline)")
    inline = None if workflow is None else dict(workflow)
    return _present(workflow_id=workflow_id, workflow=inline, **options)


def submit(
    workflow_id: str | None = None,
    workflow: Mapping[str, Any] | None = None,
    **options: Unpack[ExecutionOptions],
) -> Operation[Accepted]:
    """Request an execution of a saved workflow (``workflow_id``) or an inline ``workflow``;
    answered once it is recorded, before it runs."""
    body = execution_request(workflow_id, workflow, options)
    return _one(Call("POST", "/api/executions", json=body), Accepted, 202)


def get_execution(execution_id: str) -> Operation[Execution]:
    return _one(Call("GET", f"/api/executions/{_segment(execution_id)}"), Execution, 200)


def list_executions(
    *,
    workflow_id: str | None = None,
    status: str | None = None,
    limit: int | None = None,
    cursor: str | None = None,
) -> Operation[Page[ExecutionSummary]]:
    params = _present(workflow_id=workflow_id, status=status, limit=limit, cursor=cursor)
    return _one(Call("GET", "/api/executions", params=params), Page[ExecutionSummary], 200)


def execution_pages(
    *, workflow_id: str | None = None, status: str | None = None, page_size: int | None = None
) -> PageOf[ExecutionSummary]:
    """The page of executions after a cursor, for ``iter_executions``."""
    return lambda cursor: list_executions(
        workflow_id=workflow_id, status=status, limit=page_size, cursor=cursor
    )


def cancel(execution_id: str) -> Operation[CancelRequested]:
    call = Call("POST", f"/api/executions/{_segment(execution_id)}/cancel")
    return _one(call, CancelRequested, 202)


def rerun(execution_id: str, from_node: str) -> Operation[Accepted]:
    call = Call(
        "POST", f"/api/executions/{_segment(execution_id)}/rerun", json={"from_node": from_node}
    )
    return _one(call, Accepted, 202)


def events(execution_id: str, after_seq: int = 0) -> Operation[list[Event]]:
    call = Call(
        "GET", f"/api/executions/{_segment(execution_id)}/events", params={"after_seq": after_seq}
    )
    response = yield from send(call)
    return [Event.model_validate(e) for e in expect(response, 200).json()["events"]]


def logs(execution_id: str) -> Operation[list[LogLine]]:
    response = yield from send(Call("GET", f"/api/executions/{_segment(execution_id)}/logs"))
    return [LogLine.model_validate(line) for line in expect(response, 200).json()["logs"]]


def node_output(execution_id: str, node: str) -> Operation[dict[str, list[dict[str, Any]]]]:
    """A node's whole output, ``{port: [items]}``, stored references expanded."""
    path = f"/api/executions/{_segment(execution_id)}/nodes/{_segment(node)}/output"
    response = yield from send(Call("GET", path))
    output: dict[str, list[dict[str, Any]]] = expect(response, 200).json()
    return output


def node_types() -> Operation[list[NodeType]]:
    response = yield from send(Call("GET", "/api/node-types"))
    return [NodeType.model_validate(t) for t in expect(response, 200).json()["items"]]


# --------------------------------------------------------------------------------- waiting


class _Deadline:
    def __init__(self, timeout_s: float | None, clock: Callable[[], float]) -> None:
        self.clock = clock
        self.timeout_s = timeout_s
        self.at = math.inf if timeout_s is None else clock() + timeout_s

    def left(self) -> float:
        return self.at - self.clock()


def _ignores_wait(error: ValidationFailed) -> bool:
    """A 422 about ``wait`` itself: an api whose largest wait is smaller than asked, say."""
    return any(problem.loc[-1:] == ("wait",) for problem in error.problems)


def _largest_wait(error: ValidationFailed) -> float | None:
    """The largest ``wait`` the api said it takes (its 422's ``ctx.le``), if it said one."""
    for problem in error.problems:
        largest = problem.context.get("le") if problem.loc[-1:] == ("wait",) else None
        if isinstance(largest, int | float) and not isinstance(largest, bool) and largest > 0:
            return float(largest)
    return None


def wait_for(
    execution_id: str,
    timeout_s: float | None = None,
    *,
    clock: Callable[[], float] = time.monotonic,
) -> Operation[Execution]:
    """The execution once it finished: long-polls ``GET /api/executions/{id}?wait=``; against
    an api that does not long-poll (it answers at once, or refuses ``wait``), polls with
    backoff instead. ``WaitTimedOut`` after ``timeout_s`` (``None``: no limit)."""
    deadline = _Deadline(timeout_s, clock)
    return (yield from _wait(execution_id, deadline, long_poll=True))


def _wait(
    execution_id: str, deadline: _Deadline, *, long_poll: bool, largest_wait: float = MAX_WAIT_S
) -> Operation[Execution]:
    path = f"/api/executions/{_segment(execution_id)}"
    delay = FIRST_POLL_DELAY_S
    while True:
        if long_poll and deadline.left() > 0:
            wait = min(largest_wait, deadline.left())
            asked_at = deadline.clock()
            call = Call("GET", path, params={"wait": wait}, timeout=wait + _WAIT_SLACK_S)
            response = yield from send(call)
            try:
                execution = Execution.model_validate(expect(response, 200).json())
            except ValidationFailed as error:
                if not _ignores_wait(error):
                    raise
                # An api with a smaller largest wait says which: long-poll with that instead.
                smaller = _largest_wait(error)
                if smaller is not None and smaller < largest_wait:
                    largest_wait = smaller
                else:
                    long_poll = False
                continue
            if not execution.finished and deadline.clock() - asked_at < wait * _IGNORED_WAIT_RATIO:
                long_poll = False
        else:
            execution = yield from get_execution(execution_id)
        if execution.finished:
            return execution
        left = deadline.left()
        if left <= 0:
            raise WaitTimedOut(execution_id, deadline.timeout_s or 0.0, execution)
        if not long_poll:
            yield Pause(min(delay, left))
            delay = min(delay * 2, MAX_POLL_DELAY_S)


def submit_and_wait(
    workflow_id: str | None = None,
    workflow: Mapping[str, Any] | None = None,
    *,
    timeout_s: float | None = None,
    clock: Callable[[], float] = time.monotonic,
    **options: Unpack[ExecutionOptions],
) -> Operation[Execution]:
    """Submit as :func:`submit`, then the finished execution. ``POST /api/executions?wait=``
    answers it at once when it finishes within the wait (200); a 202 (the wait ran out, or an
    api that ignores ``wait``) goes on as :func:`wait_for`. ``WaitTimedOut`` after
    ``timeout_s`` (``None``: no limit); the execution goes on then."""
    body = execution_request(workflow_id, workflow, options)
    deadline = _Deadline(timeout_s, clock)
    largest_wait = MAX_WAIT_S
    response = yield from send(_post_waiting(body, min(largest_wait, deadline.left())))
    if response.status_code == 422 and _ignores_wait(refused := _validation(response)):
        # Nothing was recorded: send it again with the wait the api takes, or none.
        smaller = _largest_wait(refused)
        largest_wait = smaller if smaller is not None and smaller < largest_wait else 0.0
        response = yield from send(_post_waiting(body, min(largest_wait, deadline.left())))
    if expect(response, 200, 202).status_code == 200:
        execution = Execution.model_validate(response.json())
        if execution.finished:
            return execution
    execution_id = str(response.json()["id"])
    return (
        yield from _wait(
            execution_id,
            deadline,
            long_poll=largest_wait > 0,
            largest_wait=largest_wait or MAX_WAIT_S,
        )
    )


def _post_waiting(body: dict[str, Any], wait: float) -> Call:
    if wait <= 0:
        return Call("POST", "/api/executions", json=body)
    return Call(
        "POST", "/api/executions", params={"wait": wait}, json=body, timeout=wait + _WAIT_SLACK_S
    )


def _validation(response: httpx.Response) -> ValidationFailed:
    error = error_for(response)
    assert isinstance(error, ValidationFailed)
    return error


def _present(**values: Any) -> dict[str, Any]:
    """The keyword arguments that were given (not ``None``)."""
    return {key: value for key, value in values.items() if value is not None}
