"""Save-time check of the workflows a workflow calls: each ``execute_workflow`` node's and its
``settings.error_workflow_id``. Each must be a saved workflow of the same owner, with the
trigger a node names (an error workflow: an ``error_trigger`` node). Cheap (one lookup per
call) and caught where the user is editing; the runner checks again when it calls, since the
called workflow may be deleted or changed in between."""

from __future__ import annotations

from typing import Any

from sqlmodel.ext.asyncio.session import AsyncSession

from nodedrop.api import workflow_store
from nodedrop.api.errors import Loc, Problem, problem
from nodedrop.contracts.workflow import Workflow

CALL_TYPE = "execute_workflow"
ERROR_TRIGGER_TYPE = "error_trigger"


async def called_workflow_problems(
    session: AsyncSession, workflow: Workflow, owner: str, loc: Loc, *, itself: str | None = None
) -> list[Problem]:
    """A 422 problem naming each ``workflow_id``, ``trigger`` or ``error_workflow_id`` that is
    wrong. A call of ``itself`` (the workflow being saved) is checked against the definition
    being saved."""
    own_nodes = [n.model_dump() for n in workflow.nodes]

    async def nodes_of(called_id: object) -> list[Any] | None:
        if called_id == itself:
            return own_nodes
        row = await workflow_store.get(session, str(called_id))
        if row is None or row.owner != owner:
            return None
        nodes: list[Any] = row.definition.get("nodes", [])
        return nodes

    problems: list[Problem] = []
    for index, node in enumerate(workflow.nodes):
        if node.type != CALL_TYPE:
            continue
        where = [*loc, "nodes", index, "parameters"]
        called_id = node.parameters.get("workflow_id")
        nodes = await nodes_of(called_id)
        if nodes is None:
            message = f"no saved workflow {called_id} of this workflow's owner to call"
            problems.append(problem([*where, "workflow_id"], message, "value_error"))
            continue
        trigger = node.parameters.get("trigger")
        if trigger is not None and not any(_is(n, "id", trigger) for n in nodes):
            message = f"workflow {called_id} has no node {trigger!r} to start from"
            problems.append(problem([*where, "trigger"], message, "value_error"))
    error_workflow_id = workflow.settings.error_workflow_id
    if error_workflow_id is not None:
        where = [*loc, "settings", "error_workflow_id"]
        nodes = await nodes_of(error_workflow_id)
        if nodes is None or not any(_is(n, "type", ERROR_TRIGGER_TYPE) for n in nodes):
            message = (
                f"no saved workflow {error_workflow_id} of this workflow's owner with an "
                f"{ERROR_TRIGGER_TYPE} node"
            )
            problems.append(problem(where, message, "value_error"))
    return problems


def _is(node: object, key: str, value: object) -> bool:
    return isinstance(node, dict) and node.get(key) == value
