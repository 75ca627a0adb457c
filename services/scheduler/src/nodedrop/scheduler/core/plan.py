"""The plan: the part of a workflow one execution may run (docs/architecture.md, "Execution
semantics", rule 1).

In trigger mode the plan is the set of nodes reachable from the chosen trigger. Edges are kept
only between plan nodes, so a node shared with another trigger's branch never waits for a parent
outside the plan: the seed's multi-trigger hang cannot be expressed here at all.
"""

from __future__ import annotations

from collections import defaultdict, deque
from dataclasses import dataclass

from nodedrop.contracts.events import ExecutionMode
from nodedrop.contracts.expressions import referenced_nodes
from nodedrop.contracts.workflow import Node, Workflow, expression_parameters


class PlanError(ValueError):
    """The request names a trigger or node the workflow does not have."""


@dataclass(frozen=True, slots=True)
class Edge:
    """One connection inside the plan, seen from either end."""

    parent: str
    output: str
    child: str
    input: str


@dataclass(frozen=True, slots=True)
class PlanNode:
    node: Node
    #: Incoming plan edges, in the order of the workflow's connections (input concatenation).
    incoming: tuple[Edge, ...]
    #: Distinct children and parents: a node waits once per parent, however many edges.
    children: tuple[str, ...]
    parent_count: int
    #: Earlier nodes whose outputs the node's expressions read (``nodes["id"]``); ``ANY_NODE``
    #: when an expression may read any of them.
    reads: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class Plan:
    root: str
    #: Plan nodes in definition order.
    nodes: dict[str, PlanNode]

    @property
    def order(self) -> list[str]:
        return list(self.nodes)


def build_plan(workflow: Workflow, mode: ExecutionMode, root: str) -> Plan:
    by_id = {node.id: node for node in workflow.nodes}
    if root not in by_id:
        what = "trigger" if mode == "trigger" else "node"
        raise PlanError(f"workflow has no {what} {root!r}")
    if mode == "node":
        # Node mode runs exactly one node with the input given in the request; there is no
        # other node whose output its expressions could read.
        return Plan(root, {root: PlanNode(by_id[root], (), (), 0)})

    children: dict[str, list[str]] = defaultdict(list)
    for conn in workflow.connections:
        children[conn.from_].append(conn.to)
    reachable = {root}
    queue = deque([root])
    while queue:
        for child in children[queue.popleft()]:
            if child not in reachable:
                reachable.add(child)
                queue.append(child)

    outgoing: dict[str, list[Edge]] = defaultdict(list)
    incoming: dict[str, list[Edge]] = defaultdict(list)
    for conn in workflow.connections:
        if conn.from_ in reachable:  # then conn.to is reachable too
            edge = Edge(conn.from_, conn.output, conn.to, conn.input)
            outgoing[conn.from_].append(edge)
            incoming[conn.to].append(edge)
    nodes = {}
    for node in workflow.nodes:
        if node.id in reachable:
            out, inc = tuple(outgoing[node.id]), tuple(incoming[node.id])
            nodes[node.id] = PlanNode(
                node,
                inc,
                tuple(dict.fromkeys(e.child for e in out)),
                len({e.parent for e in inc}),
                referenced_nodes(expression_parameters(node)),
            )
    return Plan(root, nodes)
