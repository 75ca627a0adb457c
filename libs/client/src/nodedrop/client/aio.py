"""``AsyncClient``: the API over ``httpx.AsyncClient``, for asyncio programs and tests."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from types import TracebackType
from typing import Final, TypeVar

import httpx
from pydantic import BaseModel
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

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


class AsyncClient(Operations):
    """nodedrop's API at ``base_url`` with the key ``token``, for asyncio. Use with
    ``async with``, or await :meth:`aclose`. ``http`` uses an ``httpx.AsyncClient`` of your own
    (its base URL and headers are left as they are)."""

    #: Which way the operations of :class:`Operations` run: here awaited.
    asynchronous: Final = True

    def __init__(
        self,
        base_url: str,
        token: str | None = None,
        *,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        http: httpx.AsyncClient | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._headers = auth_headers(token, http)
        self._owned = http is None
        self.http = http or httpx.AsyncClient(
            base_url=self.base_url, headers=self._headers, timeout=timeout_s
        )

    async def aclose(self) -> None:
        if self._owned:
            await self.http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def run(self, operation: Operation[T]) -> T:
        """Carry out an operation of :mod:`nodedrop.client.operations`."""
        try:
            step = next(operation)
            while True:
                if isinstance(step, Call):
                    step = operation.send(await self._send(step))
                else:
                    await asyncio.sleep(step.seconds)
                    step = operation.send(None)
        except StopIteration as done:
            result: T = done.value
            return result

    async def _send(self, call: Call) -> httpx.Response:
        try:
            return await self.http.send(call.build(self.http))
        except httpx.TransportError as error:
            raise ConnectionFailed(f"cannot reach {self.base_url}: {error}") from error

    def iter_workflows(self, *, page_size: int | None = None) -> AsyncIterator[Workflow]:
        """Every saved workflow, newest first, page after page."""
        return self._every(operations.workflow_pages(page_size))

    def iter_executions(
        self,
        *,
        workflow_id: str | None = None,
        status: str | None = None,
        page_size: int | None = None,
    ) -> AsyncIterator[ExecutionSummary]:
        """Every execution (of a workflow, in a status), newest first, page after page."""
        return self._every(
            operations.execution_pages(workflow_id=workflow_id, status=status, page_size=page_size)
        )

    async def _every(self, page: PageOf[ModelT]) -> AsyncIterator[ModelT]:
        cursor: str | None = None
        while True:
            answer = await self.run(page(cursor))
            for item in answer.items:
                yield item
            if answer.next_cursor is None:
                return
            cursor = answer.next_cursor

    async def follow(
        self,
        execution_id: str,
        *,
        after_seq: int = 0,
        on_reconnect: Callable[[Reconnecting], None] | None = None,
    ) -> AsyncIterator[Event]:
        """The execution's events with ``seq > after_seq``, stored then live, until it
        finishes; reconnects after the last event seen when the connection drops."""
        state = FollowState(self.base_url, execution_id, after_seq, on_reconnect)
        while True:
            code: int | None = None
            reason = ""
            try:
                async with connect(
                    state.url(),
                    additional_headers=self._headers,
                    open_timeout=OPEN_TIMEOUT_S,
                    max_size=MAX_MESSAGE_BYTES,
                ) as websocket:
                    try:
                        async for message in websocket:
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
            await asyncio.sleep(delay)
