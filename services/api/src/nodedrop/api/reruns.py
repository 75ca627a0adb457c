"""Pure rules of ``POST /api/executions/{id}/rerun``: what the first execution recorded, and which
of its outputs a rerun from one node reuses.

No I/O here: the route reads the first execution's events from the event log (the source of
truth, not the projection) and passes them in. A rerun is the same request again (the recorded
definition snapshot, mode, trigger, input and timeout), with the outputs of the nodes it does not
run again carried in its ``ExecutionRequested`` (``reused_outputs``).

Which nodes are reused: a plan node is *settled* when the rerun will give it the same result as
the first execution without running it; the settled nodes that succeeded are reused. A node is
settled when it is not ``from_node`` nor downstream of it, every plan parent of it is settled,
and in the first execution it succeeded (its recorded output is reused, or its
``pinned_output`` applies again) or was skipped for lack of input (it will be again, its parents
delivering the same). Everything else runs: a node that failed, was cancelled or never ran, and
everything downstream of it, since its output may differ this time.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from nodedrop.api.errors import UnprocessableError, problem
from nodedrop.contracts.events import AnyEvent
from nodedrop.contracts.history_fold import History, fold_history
from nodedrop.contracts.history_fold import settled as node_end
from nodedrop.contracts.items import PortItems
from nodedrop.contracts.workflow import Workflow

#: How a node ended in the first execution when the rerun gives it the same result unrun.
_SETTLED = frozenset({"succeeded", "skipped:no_input"})


def read_history(events: Iterable[AnyEvent]) -> History | None:
    """The first execution's history, read as every reader reads one
    (:mod:`nodedrop.contracts.history_fold`); ``None`` without its request."""
    return fold_history(events)


def reused_outputs(original: History, from_node: str) -> dict[str, PortItems]:
    """The recorded outputs a rerun of ``original`` from ``from_node`` reuses (see the module
    docstring). 422 naming ``body.from_node`` when the node is not in the original's plan."""
    plan = original.plan or []
    if from_node not in plan:
        raise UnprocessableError(
            [
                problem(
                    ["body", "from_node"],
                    f"{from_node!r} is not a node of execution {original.request.execution_id}'s "
                    f"plan (nodes: {', '.join(repr(n) for n in plan) or 'none'})",
                    "unknown_node",
                )
            ]
        )
    parents = _plan_parents(Workflow.model_validate(original.request.workflow), set(plan))
    children: dict[str, list[str]] = defaultdict(list)
    for child, its_parents in parents.items():
        for parent in its_parents:
            children[parent].append(child)
    rerun = _downstream(from_node, children)
    settled: dict[str, bool] = {}

    def is_settled(node_id: str) -> bool:
        if node_id not in settled:
            settled[node_id] = (
                node_id not in rerun
                and node_end(original.nodes.get(node_id)) in _SETTLED
                and all(is_settled(parent) for parent in parents[node_id])
            )
        return settled[node_id]

    reused: dict[str, PortItems] = {}
    for node_id in _topological(plan, parents):
        node = original.nodes.get(node_id)
        # A pinned node is pinned again: nothing to carry for it.
        if is_settled(node_id) and node is not None and node.output is not None and not node.pinned:
            reused[node_id] = node.output
    return reused


def _plan_parents(workflow: Workflow, plan: set[str]) -> dict[str, list[str]]:
    parents: dict[str, list[str]] = {node_id: [] for node_id in plan}
    for conn in workflow.connections:
        if conn.from_ in plan and conn.to in plan and conn.from_ not in parents[conn.to]:
            parents[conn.to].append(conn.from_)
    return parents


def _downstream(start: str, children: dict[str, list[str]]) -> set[str]:
    seen = {start}
    work = [start]
    while work:
        for child in children[work.pop()]:
            if child not in seen:
                seen.add(child)
                work.append(child)
    return seen


def _topological(plan: list[str], parents: dict[str, list[str]]) -> list[str]:
    """Plan nodes parents first (the workflow is acyclic), so ``is_settled`` recurses shallowly."""
    ordered: list[str] = []
    placed: set[str] = set()
    for node_id in plan:
        stack = [(node_id, iter(parents[node_id]))]
        while stack:
            current, pending = stack[-1]
            parent = next((p for p in pending if p not in placed), None)
            if parent is not None:
                stack.append((parent, iter(parents[parent])))
                continue
            stack.pop()
            if current not in placed:
                placed.add(current)
                ordered.append(current)
    return ordered
