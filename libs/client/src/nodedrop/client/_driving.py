"""Turning the operations of :mod:`nodedrop.client.operations` into methods of both clients.

``Client.get_workflow = sync_method(operations.get_workflow)`` gives the sync client a method
with the operation's own signature and docstring that runs it over ``httpx.Client``;
``async_method`` does the same for ``AsyncClient``. Each operation is thus written once.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Coroutine
from typing import Any, Concatenate, ParamSpec, Protocol, TypeVar

from nodedrop.client.operations import Operation

P = ParamSpec("P")
T = TypeVar("T")


class SyncRunner(Protocol):
    def run(self, operation: Operation[T]) -> T: ...


class AsyncRunner(Protocol):
    async def run(self, operation: Operation[T]) -> T: ...


def sync_method(
    operation: Callable[P, Operation[T]],
) -> Callable[Concatenate[SyncRunner, P], T]:
    @functools.wraps(operation)
    def method(self: SyncRunner, /, *args: P.args, **kwargs: P.kwargs) -> T:
        return self.run(operation(*args, **kwargs))

    return method


def async_method(
    operation: Callable[P, Operation[T]],
) -> Callable[Concatenate[AsyncRunner, P], Coroutine[Any, Any, T]]:
    @functools.wraps(operation)
    async def method(self: AsyncRunner, /, *args: P.args, **kwargs: P.kwargs) -> T:
        return await self.run(operation(*args, **kwargs))

    return method
