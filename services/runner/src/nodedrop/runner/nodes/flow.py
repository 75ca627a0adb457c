"""``set``, ``if``, ``switch`` and ``merge``: the nodes that shape and route items.

Their parameters may hold ``{{ expressions }}``, rendered per item by the restricted evaluator of
:mod:`nodedrop.contracts.expressions` with ``item``, ``nodes`` (the upstream outputs the
scheduler sent along) and ``execution`` in scope. An expression that fails fails the node with
``ExpressionError`` naming the expression; retrying would evaluate the same text on the same
data, so it is not retryable.

They run in the runner's event loop, so they must never hold it for long: every render of one
attempt draws on one work budget (:class:`Budget`, :data:`MAX_ATTEMPT_STEPS` steps over all
items; set per attempt by :func:`attempt_budget`), and running it out fails the node with
``ExpressionBudgetExceeded`` (not retryable either); and they go through their items with a
:class:`Pacer`, which lets the loop serve everything else (other attempts, heartbeats, claims)
every :data:`SLICE_S` of work. A pause is also where the attempt's timeout or a cancellation
stops the node. One render is bounded by its own budget (:data:`MAX_STEPS`, tens of
milliseconds), so that is the longest the loop waits for an expression-evaluating node.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from nodedrop.contracts.expressions import (
    Budget,
    BudgetExceeded,
    ExpressionError,
    make_scope,
    render,
)
from nodedrop.contracts.expressions.limits import MAX_ATTEMPT_STEPS
from nodedrop.contracts.items import MAIN_PORT, Item, PortItems
from nodedrop.contracts.nodetypes import (
    IfParameters,
    SetParameters,
    SwitchParameters,
    passthrough_items,
)
from nodedrop.runner.nodes.api import NodeContext, NodeError
from nodedrop.runner.nodes.builtins import parse_parameters

#: How long an in-loop node works before it gives the event loop back (:class:`Pacer`).
SLICE_S = 0.005

#: The work budget of the attempt running in this task (:func:`attempt_budget`).
_attempt_budget: ContextVar[Budget | None] = ContextVar("nodedrop_attempt_budget", default=None)


@contextmanager
def attempt_budget(steps: int | None = None) -> Iterator[Budget]:
    """A fresh work budget (``steps``, :data:`MAX_ATTEMPT_STEPS` unless told) for every
    :func:`rendered` of the attempt run inside; the runner wraps each attempt in one. Without
    one, each render is bounded only on its own."""
    budget = Budget(MAX_ATTEMPT_STEPS if steps is None else steps)
    token = _attempt_budget.set(budget)
    try:
        yield budget
    finally:
        _attempt_budget.reset(token)


class Pacer:
    """Keeps a loop over items from holding the event loop: ``if pacer.due(): await
    pacer.pause()`` after each item gives the loop back once :data:`SLICE_S` has passed since
    the last pause. A check costs a clock read; a cheap node never pauses at all."""

    __slots__ = ("_resume",)

    def __init__(self) -> None:
        self._resume = time.perf_counter() + SLICE_S

    def due(self) -> bool:
        return time.perf_counter() >= self._resume

    async def pause(self) -> None:
        await asyncio.sleep(0)  # where a timeout or a cancellation reaches the node
        self._resume = time.perf_counter() + SLICE_S


def rendered(value: Any, ctx: NodeContext, item: Item) -> Any:
    """``value`` with its expressions evaluated for ``item``, on the attempt's work budget."""
    scope = make_scope(
        item,
        nodes=dict(ctx.upstream),
        execution={"id": ctx.execution_id, "trigger": ctx.trigger},
    )
    try:
        return render(value, scope, _attempt_budget.get())
    except BudgetExceeded as error:
        raise NodeError("ExpressionBudgetExceeded", str(error), retryable=False) from error
    except ExpressionError as error:
        raise NodeError("ExpressionError", str(error), retryable=False) from error


class SetNode:
    type = "set"
    side_effect_free = True

    async def run(
        self, ctx: NodeContext, node_input: PortItems, parameters: dict[str, Any]
    ) -> PortItems:
        values = parse_parameters(SetParameters, parameters).values
        pacer = Pacer()
        updated: list[Item] = []
        for item in passthrough_items(node_input):
            updated.append({**item, **rendered(values, ctx, item)})
            if pacer.due():
                await pacer.pause()
        return {MAIN_PORT: updated}


class IfNode:
    type = "if"
    side_effect_free = True

    async def run(
        self, ctx: NodeContext, node_input: PortItems, parameters: dict[str, Any]
    ) -> PortItems:
        condition = parse_parameters(IfParameters, parameters).condition
        routed: PortItems = {"true": [], "false": []}
        pacer = Pacer()
        for item in passthrough_items(node_input):
            routed["true" if rendered(condition, ctx, item) else "false"].append(item)
            if pacer.due():
                await pacer.pause()
        return routed


class SwitchNode:
    type = "switch"
    side_effect_free = True

    async def run(
        self, ctx: NodeContext, node_input: PortItems, parameters: dict[str, Any]
    ) -> PortItems:
        chosen = parse_parameters(SwitchParameters, parameters)
        ports = [case.output for case in chosen.cases]
        if chosen.default_output is not None:
            ports.append(chosen.default_output)
        routed: PortItems = {port: [] for port in ports}
        pacer = Pacer()
        for item in passthrough_items(node_input):
            port = next(
                (case.output for case in chosen.cases if rendered(case.condition, ctx, item)),
                chosen.default_output,
            )
            if port is not None:  # no case matched and no default: the item goes nowhere
                routed[port].append(item)
            if pacer.due():
                await pacer.pause()
        return routed


class MergeNode:
    type = "merge"
    side_effect_free = True

    async def run(
        self, ctx: NodeContext, node_input: PortItems, parameters: dict[str, Any]
    ) -> PortItems:
        # The scheduler built the input port by port in the order of the connections.
        return {MAIN_PORT: passthrough_items(node_input)}


def flow_nodes() -> list[SetNode | IfNode | SwitchNode | MergeNode]:
    return [SetNode(), IfNode(), SwitchNode(), MergeNode()]
