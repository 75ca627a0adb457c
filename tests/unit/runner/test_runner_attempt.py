"""One attempt: timeouts, output validation and the mapping of failures to ErrorInfo."""

from __future__ import annotations

import asyncio
import contextlib
import time
from datetime import UTC, datetime
from typing import Any

import pytest

from nodedrop.contracts import ids
from nodedrop.contracts.events import ErrorInfo, NodeFailed, NodeReady, NodeSucceeded
from nodedrop.contracts.items import PortItems
from nodedrop.contracts.jsonlimits import MAX_JSON_DEPTH
from nodedrop.runner.attempt import output_problem, result_event, run_attempt
from nodedrop.runner.nodes import NodeContext, NodeError, NodeRegistry
from nodedrop.runner.nodes.builtins import builtin_nodes

T0 = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)


class FakeNode:
    """Runs whatever coroutine function the test gives it."""

    def __init__(self, type_name: str, behaviour: Any) -> None:
        self.type = type_name
        self._behaviour = behaviour

    async def run(
        self, ctx: NodeContext, node_input: PortItems, parameters: dict[str, Any]
    ) -> PortItems:
        result: PortItems = await self._behaviour(ctx, node_input, parameters)
        return result


def ready(node_type: str, **fields: Any) -> NodeReady:
    defaults: dict[str, Any] = {
        "event_id": ids.node_ready("exec-1", "n", 2),
        "execution_id": "exec-1",
        "time": T0,
        "node": "n",
        "attempt": 2,
        "node_type": node_type,
        "input": {"main": [{"x": 1}]},
        "trigger": "start",
    }
    return NodeReady(**{**defaults, **fields})


def registry_with(*nodes: Any) -> NodeRegistry:
    return NodeRegistry([*builtin_nodes(), *nodes])


async def test_success_returns_the_output_and_the_context_names_the_attempt() -> None:
    seen: list[NodeContext] = []

    async def behaviour(ctx: NodeContext, node_input: PortItems, _: Any) -> PortItems:
        seen.append(ctx)
        return node_input

    outcome = await run_attempt(registry_with(FakeNode("echo", behaviour)), ready("echo"))
    assert outcome == {"main": [{"x": 1}]}
    assert seen == [NodeContext("exec-1", "n", 2, "start")]


async def test_unknown_type_fails_without_retry() -> None:
    outcome = await run_attempt(registry_with(), ready("no_such_type"))
    assert isinstance(outcome, ErrorInfo)
    assert outcome.type == "UnknownNodeType"
    assert outcome.retryable is False
    assert "no_such_type" in outcome.message


async def test_node_error_keeps_its_type_and_retryability() -> None:
    async def behaviour(*_: Any) -> PortItems:
        raise NodeError("QuotaExceeded", "try tomorrow", retryable=False)

    outcome = await run_attempt(registry_with(FakeNode("x", behaviour)), ready("x"))
    assert isinstance(outcome, ErrorInfo)
    assert (outcome.type, outcome.message, outcome.retryable) == (
        "QuotaExceeded",
        "try tomorrow",
        False,
    )
    assert outcome.stack is not None
    assert "QuotaExceeded" in outcome.stack


async def test_a_plain_exception_is_named_by_its_class_and_retryable() -> None:
    async def behaviour(*_: Any) -> PortItems:
        return {"main": [{"ratio": 1 / 0}]}

    outcome = await run_attempt(registry_with(FakeNode("x", behaviour)), ready("x"))
    assert isinstance(outcome, ErrorInfo)
    assert outcome.type == "ZeroDivisionError"
    assert outcome.message == "division by zero"
    assert outcome.retryable is True
    assert outcome.stack is not None
    assert "Traceback" in outcome.stack
    assert "behaviour" in outcome.stack  # the frame that raised


async def test_an_exception_without_message_is_described_by_its_repr() -> None:
    async def behaviour(*_: Any) -> PortItems:
        raise KeyError

    outcome = await run_attempt(registry_with(FakeNode("x", behaviour)), ready("x"))
    assert isinstance(outcome, ErrorInfo)
    assert (outcome.type, outcome.message) == ("KeyError", "KeyError()")


async def test_timeout_stops_the_node_and_fails_retryable() -> None:
    stopped = asyncio.Event()

    async def behaviour(*_: Any) -> PortItems:
        try:
            await asyncio.sleep(60)
        finally:
            stopped.set()
        return {}

    began = time.perf_counter()
    outcome = await run_attempt(
        registry_with(FakeNode("slow", behaviour)), ready("slow", timeout_ms=50)
    )
    elapsed = time.perf_counter() - began
    assert isinstance(outcome, ErrorInfo)
    assert (outcome.type, outcome.retryable) == ("NodeTimeout", True)
    assert "50 ms" in outcome.message
    assert stopped.is_set()
    assert elapsed < 30  # stopped at its timeout, not after its 60 s (a busy machine is slow)


async def test_a_timeout_error_of_the_node_itself_is_not_a_node_timeout() -> None:
    async def behaviour(*_: Any) -> PortItems:
        raise TimeoutError("upstream did not answer")

    outcome = await run_attempt(
        registry_with(FakeNode("x", behaviour)), ready("x", timeout_ms=10_000)
    )
    assert isinstance(outcome, ErrorInfo)
    assert outcome.type == "TimeoutError"


async def test_a_node_that_swallows_its_timeout_still_times_out() -> None:
    async def behaviour(*_: Any) -> PortItems:
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.sleep(60)
        return {"main": []}

    outcome = await run_attempt(registry_with(FakeNode("x", behaviour)), ready("x", timeout_ms=20))
    assert isinstance(outcome, ErrorInfo)
    assert outcome.type == "NodeTimeout"


async def test_without_timeout_ms_a_node_may_take_its_time() -> None:
    outcome = await run_attempt(registry_with(), ready("wait", parameters={"ms": 30}))
    assert outcome == {"main": [{"x": 1}]}


@pytest.mark.parametrize(
    ("output", "expected"),
    [
        ([{"a": 1}], "not list"),
        ({1: []}, "port names must be strings"),
        ({"main": {"a": 1}}, "must hold a list"),
        ({"main": [{"a": 1}, "b"]}, "item 1 must be a JSON object"),
        ({"main": [{"a": 1j}]}, "not JSON"),
        ({"main": [{"a": object()}]}, "not JSON"),
    ],
)
async def test_invalid_output_fails_the_node(output: Any, expected: str) -> None:
    async def behaviour(*_: Any) -> Any:
        return output

    outcome = await run_attempt(registry_with(FakeNode("x", behaviour)), ready("x"))
    assert isinstance(outcome, ErrorInfo)
    assert outcome.type == "InvalidOutput"
    assert expected in outcome.message


def test_valid_outputs() -> None:
    assert output_problem({}) is None
    assert output_problem({"main": []}) is None
    assert output_problem({"true": [{"a": [1, {"b": None}]}], "false": [{}]}) is None


def test_an_output_larger_than_an_event_may_carry_is_invalid() -> None:
    output = {"main": [{"blob": "x" * 1000}]}
    assert output_problem(output, max_bytes=100_000) is None
    problem = output_problem(output, max_bytes=500)
    assert problem is not None
    assert "500" in problem


def test_result_events_share_the_attempts_result_id() -> None:
    task = ready("noop")
    succeeded = result_event(task, {"main": []}, T0)
    failed = result_event(task, ErrorInfo(type="E", message="m"), T0)
    assert isinstance(succeeded, NodeSucceeded)
    assert isinstance(failed, NodeFailed)
    assert succeeded.event_id == failed.event_id == ids.node_result("exec-1", "n", 2)
    assert (failed.node, failed.attempt, failed.time) == ("n", 2, T0)


def _nested_output(levels: int) -> dict[str, Any]:
    """An output ``{"main": [item]}`` nested ``levels`` levels in all."""
    item: dict[str, Any] = {}
    for _ in range(levels - 3):
        item = {"a": item}
    return {"main": [item]}


@pytest.mark.parametrize("levels", [MAX_JSON_DEPTH + 1, 5_000])
async def test_an_output_nested_too_deeply_fails_the_node(levels: int) -> None:
    # Recorded, it would break every read of the execution; 5,000 levels would also make the
    # JSON encoder raise RecursionError.
    async def behaviour(*_: Any) -> Any:
        return _nested_output(levels)

    outcome = await run_attempt(registry_with(FakeNode("x", behaviour)), ready("x"))
    assert isinstance(outcome, ErrorInfo)
    assert outcome.type == "InvalidOutput"
    assert outcome.retryable is False
    assert f"deeper than {MAX_JSON_DEPTH} levels" in outcome.message
    assert "main[0].a.a" in outcome.message


def test_an_output_at_the_depth_limit_is_valid() -> None:
    assert output_problem(_nested_output(MAX_JSON_DEPTH)) is None


@pytest.mark.parametrize(
    ("output", "where"),
    [
        ({"main": [{"a": "x\x00y"}]}, "main[0].a"),
        ({"main": [{"a\x00": 1}]}, "main[0].a\ufffd"),
        ({"main": [{"a": [{"b": "\x00"}]}]}, "main[0].a[0].b"),
    ],
)
async def test_an_output_holding_a_nul_character_fails_the_node(
    output: dict[str, Any], where: str
) -> None:
    # The projection (jsonb) cannot store it: recorded, the data would differ between /events
    # and the projection's reads.
    async def behaviour(*_: Any) -> Any:
        return output

    outcome = await run_attempt(registry_with(FakeNode("x", behaviour)), ready("x"))
    assert isinstance(outcome, ErrorInfo)
    assert (outcome.type, outcome.retryable) == ("InvalidOutput", False)
    assert "NUL character" in outcome.message
    assert where in outcome.message
    assert "\x00" not in outcome.message


async def test_nul_characters_in_errors_and_log_lines_are_recorded_as_u_fffd() -> None:
    async def behaviour(ctx: NodeContext, *_: Any) -> Any:
        ctx.log.info("log\x00line")
        raise NodeError("Bad\x00Type", "a\x00b", retryable=False)

    outcome = await run_attempt(registry_with(FakeNode("x", behaviour)), ready("x"))
    assert isinstance(outcome, ErrorInfo)
    assert (outcome.type, outcome.message) == ("Bad\ufffdType", "a\ufffdb")
    assert outcome.stack is not None
    assert "\x00" not in outcome.stack


def test_a_nul_character_in_a_log_line_is_recorded_as_u_fffd() -> None:
    from nodedrop.runner.nodes.api import NodeLog

    log = NodeLog()
    log.warning("a\x00b")
    assert log.lines[0].message == "a\ufffdb"
