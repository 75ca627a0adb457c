"""The operations of :mod:`nodedrop.client.operations` as methods of both clients, listed once.

:class:`Operations` is the base of ``Client`` and ``AsyncClient``: each of its attributes is a
:class:`Method`, which, read from a client, gives the operation's own signature and docstring,
run by that client's ``run``: a value from ``Client``, an awaitable from ``AsyncClient``. Type
checkers see the same, by the client's ``asynchronous`` flag.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Coroutine
from typing import Any, Generic, Literal, ParamSpec, Protocol, TypeVar, overload

from nodedrop.client import operations
from nodedrop.client.operations import Operation

P = ParamSpec("P")
T = TypeVar("T")


class SyncRunner(Protocol):
    @property
    def asynchronous(self) -> Literal[False]: ...

    def run(self, operation: Operation[T]) -> T: ...


class AsyncRunner(Protocol):
    @property
    def asynchronous(self) -> Literal[True]: ...

    async def run(self, operation: Operation[T]) -> T: ...


class Method(Generic[P, T]):
    """An operation, as a method of whichever client it is read from."""

    def __init__(self, operation: Callable[P, Operation[T]]) -> None:
        self._operation = operation
        self.__doc__ = operation.__doc__

    @overload
    def __get__(self, client: None, owner: type[Any]) -> Method[P, T]: ...

    @overload
    def __get__(self, client: SyncRunner, owner: type[Any]) -> Callable[P, T]: ...

    @overload
    def __get__(
        self, client: AsyncRunner, owner: type[Any]
    ) -> Callable[P, Coroutine[Any, Any, T]]: ...

    def __get__(self, client: Any, owner: type[Any]) -> Any:
        if client is None:
            return self
        operation = self._operation
        if client.asynchronous:

            @functools.wraps(operation)
            async def run_async(*args: P.args, **kwargs: P.kwargs) -> T:
                result: T = await client.run(operation(*args, **kwargs))
                return result

            return run_async

        @functools.wraps(operation)
        def run(*args: P.args, **kwargs: P.kwargs) -> T:
            result: T = client.run(operation(*args, **kwargs))
            return result

        return run


class Operations:
    """Every operation both clients offer."""

    create_workflow = Method(operations.create_workflow)
    get_workflow = Method(operations.get_workflow)
    update_workflow = Method(operations.update_workflow)
    delete_workflow = Method(operations.delete_workflow)
    list_workflows = Method(operations.list_workflows)
    workflow_versions = Method(operations.workflow_versions)
    submit = Method(operations.submit)
    submit_and_wait = Method(operations.submit_and_wait)
    get_execution = Method(operations.get_execution)
    wait_for = Method(operations.wait_for)
    list_executions = Method(operations.list_executions)
    cancel = Method(operations.cancel)
    rerun = Method(operations.rerun)
    events = Method(operations.events)
    logs = Method(operations.logs)
    node_output = Method(operations.node_output)
    node_types = Method(operations.node_types)
