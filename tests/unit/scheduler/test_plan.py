"""Plans of an execution: what ``build_plan`` refuses, and how it says so (mutation testing found
the wording untested: docs/reliability.md, "Mutation testing")."""

from __future__ import annotations

import pytest

from nodedrop.contracts.workflow import Workflow
from nodedrop.scheduler.core.plan import PlanError, build_plan

from .harness import n, wf

WORKFLOW = Workflow.model_validate(wf([n("t", "manual_trigger"), n("a")], [("t", "a")]))


def test_an_unknown_trigger_is_named_as_a_trigger() -> None:
    with pytest.raises(PlanError) as refused:
        build_plan(WORKFLOW, "trigger", "missing")
    assert str(refused.value) == "workflow has no trigger 'missing'"


def test_an_unknown_node_is_named_as_a_node() -> None:
    with pytest.raises(PlanError) as refused:
        build_plan(WORKFLOW, "node", "missing")
    assert str(refused.value) == "workflow has no node 'missing'"


def test_a_code_nodes_source_is_not_read_for_upstream_references() -> None:
    source = 'def main(items, ctx):\n    return [{"t": "{{ nodes.load.main }}"}]\n'
    workflow = Workflow.model_validate(
        wf(
            [
                n("t", "manual_trigger"),
                n("load"),
                n("py", "code", parameters={"source": source}),
                n("shape", "set", parameters={"values": {"x": "{{ nodes.load.main }}"}}),
            ],
            [("t", "load"), ("load", "py"), ("load", "shape")],
        )
    )
    plan = build_plan(workflow, "trigger", "t")
    assert plan.nodes["py"].reads == frozenset()
    assert plan.nodes["shape"].reads == frozenset({"load"})
