"""What a workflow refers to outside itself, checked when it is saved: the workflows it calls
and the credentials its nodes use. Every problem is answered in one 422."""

from __future__ import annotations

from sqlmodel.ext.asyncio.session import AsyncSession

from nodedrop.api.called_workflows import called_workflow_problems
from nodedrop.api.errors import Loc, UnprocessableError
from nodedrop.api.used_credentials import credential_problems
from nodedrop.contracts.nodetypes import NodeTypeRegistry
from nodedrop.contracts.workflow import Workflow


async def check_references(
    session: AsyncSession,
    workflow: Workflow,
    owner: str,
    registry: NodeTypeRegistry,
    loc: Loc,
    *,
    itself: str | None = None,
) -> None:
    problems = [
        *await called_workflow_problems(session, workflow, owner, loc, itself=itself),
        *await credential_problems(session, workflow, owner, registry, loc),
    ]
    if problems:
        raise UnprocessableError(problems)
