"""Save-time check of ``execute_workflow`` nodes: the workflow each one calls must be a saved
workflow of the same owner, with the trigger the node names. Cheap (one lookup per such node)
and caught where the user is editing; the runner checks again when the node runs, since the
called workflow may be deleted or changed in between."""

from __future__ import annotations

from typing import Any

from sqlmodel.ext.asyncio.session import AsyncSession

from nodedrop.api import workflow_store
from nodedrop.api.errors import Loc, Problem, UnprocessableError, problem
from nodedrop.contracts.workflow import Workflow

CALL_TYPE = "execute_workflow"


async def check_called_workflows(
    session: AsyncSession, workflow: Workflow, owner: str, loc: Loc, *, itself: str | None = None
) -> None:
    """Raise a 422 naming each node's ``workflow_id`` or ``trigger`` that is wrong. A call of
    ``itself`` (the workflow being saved) is checked against the definition being saved."""
    problems: list[Problem] = []
    for index, node in enumerate(workflow.nodes):
        if node.type != CALL_TYPE:
            continue
        where = [*loc, "nodes", index, "parameters"]
        called_id = node.parameters.get("workflow_id")
        trigger = node.parameters.get("trigger")
        if called_id == itself:
            nodes: list[Any] = [n.model_dump() for n in workflow.nodes]
        else:
            row = await workflow_store.get(session, str(called_id))
            if row is None or row.owner != owner:
                message = f"no saved workflow {called_id} of this workflow's owner to call"
                problems.append(problem([*where, "workflow_id"], message, "value_error"))
                continue
            nodes = row.definition.get("nodes", [])
        if not any(isinstance(n, dict) and n.get("id") == trigger for n in nodes):
            message = f"workflow {called_id} has no node {trigger!r} to start from"
            problems.append(problem([*where, "trigger"], message, "value_error"))
    if problems:
        raise UnprocessableError(problems)
