"""Running one attempt of one node and turning what happened into its result event.

No NATS here: the worker feeds in a decoded ``NodeReady`` and records what comes out, so the
mapping from a node's behaviour to ``NodeSucceeded``/``NodeFailed`` is tested without a server.

Built-in node types run here, in the event loop; custom ones (:class:`PluginNode`) in a worker
process of ``processes`` (:mod:`nodedrop.runner.isolation`), which the timeout or a cancellation
kills. Either way the result is mapped the same way. Each attempt gets one expression work
budget for all its items (:func:`nodedrop.runner.nodes.flow.attempt_budget`); the built-ins that
evaluate expressions give the loop back every few milliseconds, which is where the timeout
stops them.
"""

from __future__ import annotations

import asyncio
import dataclasses
import traceback
from collections.abc import Sequence
from datetime import datetime
from typing import cast

import msgspec
from opentelemetry import trace

from nodedrop.contracts import ids
from nodedrop.contracts.events import (
    ErrorInfo,
    LogLine,
    NodeFailed,
    NodeLogged,
    NodeReady,
    NodeSucceeded,
)
from nodedrop.contracts.items import REF_KEY, PortItems
from nodedrop.contracts.jsonlimits import MAX_JSON_DEPTH, describe, json_problem
from nodedrop.platform import tracing
from nodedrop.platform.datastore import DataStore, DataUnavailableError
from nodedrop.runner.credentials import CredentialVault, credential_error, redact, secrets_of
from nodedrop.runner.isolation import ProcessPool, RemoteNodeError
from nodedrop.runner.nodes.api import NodeContext, NodeError
from nodedrop.runner.nodes.flow import attempt_budget
from nodedrop.runner.nodes.registry import NodeRegistry, PluginNode

#: Error texts travel in events and end up in the UI: keep a runaway message or a deep
#: recursion's traceback from making the result event too large to record.
MAX_MESSAGE_CHARS = 10_000
MAX_STACK_CHARS = 32_000

_encoder = msgspec.json.Encoder()
#: The most a node may output (as JSON). Large outputs travel through the object store, not
#: events; this only keeps a runaway node from exhausting the runner's memory.
MAX_OUTPUT_BYTES = 256 * 1024 * 1024
_tracer = trace.get_tracer("nodedrop.runner")


def context_of(task: NodeReady) -> NodeContext:
    return NodeContext(task.execution_id, task.node, task.attempt, task.trigger, task.upstream)


async def run_attempt(
    registry: NodeRegistry,
    task: NodeReady,
    *,
    ctx: NodeContext | None = None,
    processes: ProcessPool | None = None,
    store: DataStore | None = None,
    max_output_bytes: int | None = None,
    vault: CredentialVault | None = None,
) -> PortItems | ErrorInfo:
    """The node's validated output, or the error it failed with. Cancellation propagates.
    What the node logs lands in ``ctx.log`` (pass a ``ctx`` to read it afterwards), the
    credentials it used in ``ctx.credentials``.

    The credentials its parameters name are resolved from ``vault`` before it runs; their
    secret values are redacted from its error and its log lines afterwards (a second line of
    defence: nodedrop's own messages never hold them). Its output is data and is not touched.

    The attempt is a span in the trace of the request that started the execution (its context
    travels in the task), when tracing is on."""
    with _tracer.start_as_current_span(
        f"node {task.node}",
        context=tracing.attach(task.trace_context),
        attributes={
            "nodedrop.execution_id": task.execution_id,
            "nodedrop.node": task.node,
            "nodedrop.node_type": task.node_type,
            "nodedrop.attempt": task.attempt,
        },
    ) as span:
        ctx = ctx or context_of(task)
        result = await _run_with_data(
            registry,
            task,
            ctx,
            processes,
            store=store,
            max_output_bytes=max_output_bytes,
            vault=vault,
        )
        result = _redacted(result, ctx)
        if isinstance(result, ErrorInfo):
            span.set_status(trace.StatusCode.ERROR, f"{result.type}: {result.message}")
        return result


async def _run_with_data(
    registry: NodeRegistry,
    task: NodeReady,
    ctx: NodeContext,
    processes: ProcessPool | None,
    *,
    store: DataStore | None,
    max_output_bytes: int | None,
    vault: CredentialVault | None,
) -> PortItems | ErrorInfo:
    """Expand stored inputs, run, store a large output: the node itself sees only items."""
    if store is not None:
        try:
            task = msgspec.structs.replace(task, input=await store.expand(task.input))
            if task.upstream:
                upstream = {n: await store.expand(o) for n, o in task.upstream.items()}
                ctx = dataclasses.replace(ctx, upstream=upstream)
        except DataUnavailableError as error:
            return ErrorInfo(type="DataUnavailable", message=str(error), retryable=False)
        except Exception as error:  # the object store unreachable: worth another attempt
            return ErrorInfo(type="DataStoreError", message=repr(error), retryable=True)
    result = await _run(registry, task, ctx, processes, max_output_bytes, vault=vault)
    if store is None or isinstance(result, ErrorInfo):
        return result
    try:
        return await store.offload(result, f"{task.execution_id}/{task.node}/{task.attempt}")
    except Exception as error:
        return ErrorInfo(type="DataStoreError", message=repr(error), retryable=True)


async def _run(
    registry: NodeRegistry,
    task: NodeReady,
    ctx: NodeContext,
    processes: ProcessPool | None,
    max_output_bytes: int | None,
    *,
    vault: CredentialVault | None = None,
) -> PortItems | ErrorInfo:
    node = registry.get(task.node_type)
    if node is None:
        return ErrorInfo(
            type="UnknownNodeType",
            message=f"this runner has no implementation of node type {task.node_type!r}",
            retryable=False,
        )
    timeout_s = task.timeout_ms / 1000 if task.timeout_ms is not None else None
    # asyncio.timeout rather than wait_for: it tells our deadline apart from a TimeoutError the
    # node raised itself (an HTTP client's, say), which is the node's own error.
    deadline = asyncio.timeout(timeout_s)
    output: object
    try:
        async with deadline:
            # Inside the deadline: a database that does not answer costs the attempt its time.
            await _resolve_credentials(registry, task, ctx, vault)
            if isinstance(node, PluginNode) and processes is not None:
                output = await processes.run(
                    node,
                    ctx,
                    task.input,
                    task.parameters,
                    max_output_bytes=max_output_bytes,
                )
            else:
                with attempt_budget():
                    output = await node.run(ctx, task.input, task.parameters)
    except TimeoutError as error:
        if deadline.expired():
            return _timed_out(task)
        return error_info(error)
    except Exception as error:
        return error_info(error)
    if deadline.expired():  # the node swallowed its cancellation and finished late anyway
        return _timed_out(task)
    problem = output_problem(output, max_output_bytes)
    if problem is not None:
        return ErrorInfo(type="InvalidOutput", message=problem, retryable=False)
    return cast(PortItems, output)  # checked just above


async def _resolve_credentials(
    registry: NodeRegistry, task: NodeReady, ctx: NodeContext, vault: CredentialVault | None
) -> None:
    names = [n for n in registry.credential_parameters(task.node_type) if task.parameters.get(n)]
    if not names:
        return
    if vault is None:
        ids = ", ".join(repr(task.parameters[n]) for n in names)
        raise credential_error(f"credential {ids} cannot be used: this runner reads none")
    ctx.credentials.update(await vault.resolve(task, names))


def _redacted(result: PortItems | ErrorInfo, ctx: NodeContext) -> PortItems | ErrorInfo:
    """``result`` and ``ctx.log`` without the attempt's secret values (see run_attempt)."""
    secrets = secrets_of(ctx)
    if not secrets:
        return result
    ctx.log.lines[:] = [
        msgspec.structs.replace(line, message=redact(line.message, secrets))
        for line in ctx.log.lines
    ]
    if not isinstance(result, ErrorInfo):
        return result
    return msgspec.structs.replace(
        result,
        message=redact(result.message, secrets),
        stack=redact(result.stack, secrets) if result.stack is not None else None,
    )


def logged_event(task: NodeReady, lines: list[LogLine], time: datetime) -> NodeLogged:
    return NodeLogged(
        event_id=ids.node_logged(task.execution_id, task.node, task.attempt),
        execution_id=task.execution_id,
        time=time,
        node=task.node,
        attempt=task.attempt,
        lines=lines,
    )


def _timed_out(task: NodeReady) -> ErrorInfo:
    return ErrorInfo(
        type="NodeTimeout",
        message=f"node {task.node!r} did not finish within {task.timeout_ms} ms",
        retryable=True,
    )


def error_info(error: BaseException) -> ErrorInfo:
    """NodeError keeps the type and retryability the node chose; anything else is named by its
    class and may be retried (a bug stays a bug, but a flaky dependency often recovers). An
    error from a worker process keeps the stack it was raised with over there."""
    if isinstance(error, RemoteNodeError):
        return ErrorInfo(
            type=_text(error.type),
            message=_text(error.message[:MAX_MESSAGE_CHARS]),
            stack=_text(error.stack[-MAX_STACK_CHARS:]) if error.stack is not None else None,
            retryable=error.retryable,
        )
    stack = _text("".join(traceback.format_exception(error))[-MAX_STACK_CHARS:])
    if isinstance(error, NodeError):
        if error.stack is not None:
            stack = _text(error.stack[-MAX_STACK_CHARS:])
        return ErrorInfo(
            type=_text(error.type),
            message=_text(error.message[:MAX_MESSAGE_CHARS]),
            stack=stack,
            retryable=error.retryable,
        )
    return ErrorInfo(
        type=type(error).__name__,
        message=_text((str(error) or repr(error))[:MAX_MESSAGE_CHARS]),
        stack=stack,
        retryable=True,
    )


def _text(value: str) -> str:
    """``value`` without NUL characters (as U+FFFD): the projection cannot store them, and an
    error's text must read the same in the event log and the projection."""
    return value.replace("\x00", "\ufffd")


def output_problem(output: object, max_bytes: int | None = None) -> str | None:
    """Why ``output`` cannot be recorded as a node's output ``{port: [item, ...]}``, if it can't.

    Items must also encode as JSON (a node may return a set or an object by mistake), nest at
    most ``MAX_JSON_DEPTH`` levels (the whole ``{port: [items]}``), hold no NUL character (in a
    string or a key) and fit in one event; finding out here fails the node instead of failing
    the publish over and over, or recording what the projection cannot store as it is.
    """
    if not isinstance(output, dict):
        return f"a node must return {{port: [items]}}, not {type(output).__name__}"
    for port, items in output.items():
        if not isinstance(port, str):
            return f"output port names must be strings, not {type(port).__name__}"
        if not isinstance(items, list):
            return f"output port {port!r} must hold a list of items, not {type(items).__name__}"
        for index, item in enumerate(items):
            if not isinstance(item, dict):
                return (
                    f"output port {port!r} item {index} must be a JSON object, "
                    f"not {type(item).__name__}"
                )
            if REF_KEY in item:
                return f"output port {port!r} item {index} uses the reserved key {REF_KEY!r}"
    # Deeper data would be recorded and then break every read of the execution. A NUL
    # character cannot be stored by the projection (PostgreSQL's jsonb and text), so the data
    # would differ between the event log and the projection: refused as the API refuses it.
    found = json_problem(output, MAX_JSON_DEPTH)
    if found is not None:
        where = _text(describe(found.path))  # the path's keys may hold the NUL
        if found.kind == "too_deep":
            return (
                f"output is nested deeper than {MAX_JSON_DEPTH} levels of arrays and objects "
                f"(at {where})"
            )
        return f"output holds a NUL character (\\u0000), which cannot be stored (at {where})"
    try:
        size = len(_encoder.encode(output))
    except (TypeError, ValueError, OverflowError) as error:
        return f"output is not JSON: {error}"
    if max_bytes is not None and size > max_bytes:
        return f"output is {size} bytes of JSON, more than the {max_bytes} an event may carry"
    return None


def result_event(
    task: NodeReady,
    outcome: PortItems | ErrorInfo,
    time: datetime,
    credentials: Sequence[str] = (),
) -> NodeSucceeded | NodeFailed:
    """Both results share one id, so whichever is recorded first for the attempt wins.
    ``credentials``: the ids of those the attempt used (its audit record)."""
    event_id = ids.node_result(task.execution_id, task.node, task.attempt)
    if isinstance(outcome, ErrorInfo):
        return NodeFailed(
            event_id=event_id,
            execution_id=task.execution_id,
            time=time,
            node=task.node,
            attempt=task.attempt,
            error=outcome,
            credentials=list(credentials),
        )
    return NodeSucceeded(
        event_id=event_id,
        execution_id=task.execution_id,
        time=time,
        node=task.node,
        attempt=task.attempt,
        output=outcome,
        credentials=list(credentials),
    )
