"""``Client``: the API over ``httpx.Client``, for scripts and the command line."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from types import TracebackType
from typing import Final, TypeVar

import httpx
from pydantic import BaseModel
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus
from websockets.sync.client import connect

from nodedrop.client import operations
from nodedrop.client._driving import Operations
from nodedrop.client.defaults import DEFAULT_TIMEOUT_S, auth_headers
from nodedrop.client.errors import ConnectionFailed
from nodedrop.client.follow import (
    MAX_MESSAGE_BYTES,
    OPEN_TIMEOUT_S,
    FollowState,
    Reconnecting,
)
from nodedrop.client.models import Event, ExecutionSummary, Workflow
from nodedrop.client.operations import Call, Operation, PageOf

T = TypeVar("T")
ModelT = TypeVar("ModelT", bound=BaseModel)


class Client(Operations):
    """nodedrop's API at ``base_url`` with the key ``token``. Use as a context manager, or
    call :meth:`close`. ``http`` uses an ``httpx.Client`` of your own (its base URL and
    headers are left as they are)."""

    #: Which way the operations of :class:`Operations` run: here in the calling thread.
    asynchronous: Final = False

    def __init__(
        self,
        base_url: str,
        token: str | None = None,
        *,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        http: httpx.Client | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._headers = auth_headers(token, http)
        self._owned = http is None
        self.http = http or httpx.Client(
            base_url=self.base_url, headers=self._headers, timeout=timeout_s
        )

    def close(self) -> None:
        if self._owned:
            self.http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def run(self, operation: Operation[T]) -> T:
        """Carry out an operation of :mod:`nodedrop.client.operations`."""
        try:
            step = next(operation)
            while True:
                if isinstance(step, Call):
                    step = operation.send(self._send(step))
                else:
                    time.sleep(step.seconds)
                    step = operation.send(None)
        except StopIteration as done:
            result: T = done.value
            return result

    def _send(self, call: Call) -> httpx.Response:
        try:
            return self.http.send(call.build(self.http))
        except httpx.TransportError as error:
            raise ConnectionFailed(f"cannot reach {self.base_url}: {error}") from error

    def iter_workflows(self, *, page_size: int | None = None) -> Iterator[Workflow]:
        """Every saved workflow, newest first, page after page."""
        return self._every(operations.workflow_pages(page_size))

    def iter_executions(
        self,
        *,
        workflow_id: str | None = None,
        status: str | None = None,
        page_size: int | None = None,
    ) -> Iterator[ExecutionSummary]:
        """Every execution (of a workflow, in a status), newest first, page after page."""
        return self._every(
            operations.execution_pages(workflow_id=workflow_id, status=status, page_size=page_size)
        )

    def _every(self, page: PageOf[ModelT]) -> Iterator[ModelT]:
        cursor: str | None = None
        while True:
            answer = self.run(page(cursor))
            yield from answer.items
            if answer.next_cursor is None:
                return
            cursor = answer.next_cursor

    def follow(
        self,
        execution_id: str,
        *,
        after_seq: int = 0,
        on_reconnect: Callable[[Reconnecting], None] | None = None,
    ) -> Iterator[Event]:
        """The execution's events with ``seq > after_seq``, stored then live, until it
        finishes; reconnects after the last event seen when the connection drops."""
        state = FollowState(self.base_url, execution_id, after_seq, on_reconnect)
        while True:
            code: int | None = None
            reason = ""
            try:
                with connect(
                    state.url(),
                    additional_headers=self._headers,
                    open_timeout=OPEN_TIMEOUT_S,
                    max_size=MAX_MESSAGE_BYTES,
                ) as websocket:
                    try:
                        for message in websocket:
                            event = state.accept(message)
                            if event is not None:
                                yield event
                            if state.finished:
                                return
                    except ConnectionClosed:
                        pass
                    code, reason = websocket.close_code, websocket.close_reason or ""
            except InvalidStatus as refused:
                code, reason = refused.response.status_code, str(refused)
            except (OSError, TimeoutError, InvalidHandshake) as error:
                reason = str(error) or type(error).__name__
            delay = state.after_close(code, reason)
            if delay is None:
                return
            time.sleep(delay)
