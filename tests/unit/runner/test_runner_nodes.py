"""The built-in node types, run directly."""

from __future__ import annotations

import asyncio
import time

import pytest

from nodedrop.contracts.nodetypes import BUILTIN_SPECS
from nodedrop.runner.nodes import NodeContext, NodeError, NodeImplementation, NodeRegistry
from nodedrop.runner.nodes.builtins import builtin_nodes

CTX = NodeContext("exec-1", "n", 1, trigger="start")
BUILTINS = NodeRegistry(builtin_nodes())


def node(type_name: str) -> NodeImplementation:
    implementation = BUILTINS.get(type_name)
    assert implementation is not None
    return implementation


def test_every_builtin_has_a_spec_and_satisfies_the_protocol() -> None:
    specs = {spec.type for spec in BUILTIN_SPECS}
    for type_name in BUILTINS:
        assert type_name in specs
        assert isinstance(node(type_name), NodeImplementation)


@pytest.mark.parametrize("trigger", ["manual_trigger", "webhook_trigger", "schedule_trigger"])
async def test_triggers_output_their_input(trigger: str) -> None:
    items = [{"a": 1}, {"b": 2}]
    assert await node(trigger).run(CTX, {"main": items}, {}) == {"main": items}


async def test_a_trigger_without_input_outputs_one_empty_item() -> None:
    assert await node("manual_trigger").run(CTX, {}, {}) == {"main": [{}]}


async def test_noop_concatenates_its_ports_in_order() -> None:
    node_input = {"main": [{"a": 1}], "other": [{"b": 2}, {"c": 3}]}
    output = await node("noop").run(CTX, node_input, {})
    assert output == {"main": [{"a": 1}, {"b": 2}, {"c": 3}]}


async def test_noop_without_items_outputs_none() -> None:
    assert await node("noop").run(CTX, {}, {}) == {"main": []}


async def test_wait_sleeps_then_passes_items_through() -> None:
    began = time.perf_counter()
    output = await node("wait").run(CTX, {"main": [{"a": 1}]}, {"ms": 50})
    elapsed = time.perf_counter() - began
    assert output == {"main": [{"a": 1}]}
    assert elapsed >= 0.045  # not before its time; how soon after is the machine's speed


async def test_wait_is_cancellable() -> None:
    running = asyncio.create_task(node("wait").run(CTX, {"main": []}, {"ms": 60_000}))
    await asyncio.sleep(0.01)
    running.cancel()
    with pytest.raises(asyncio.CancelledError):
        await running


async def test_wait_with_invalid_parameters_fails_without_retry() -> None:
    with pytest.raises(NodeError) as raised:
        await node("wait").run(CTX, {"main": []}, {"ms": "soon"})
    assert raised.value.type == "InvalidParameters"
    assert raised.value.retryable is False


async def test_stop_and_error_raises_the_chosen_error() -> None:
    with pytest.raises(NodeError) as raised:
        await node("stop_and_error").run(
            CTX, {"main": [{}]}, {"error_type": "OrderMissing", "message": "no order"}
        )
    assert (raised.value.type, raised.value.message) == ("OrderMissing", "no order")
    assert raised.value.retryable is False


async def test_stop_and_error_defaults() -> None:
    with pytest.raises(NodeError) as raised:
        await node("stop_and_error").run(CTX, {"main": [{}]}, {})
    assert raised.value.type == "StopAndError"
    assert raised.value.message
