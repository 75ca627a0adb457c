"""``POST /api/expressions/preview``: what a parameter's ``{{ }}`` template gives for one item.

The web UI's expression editor previews a field against the last run's items. The language is
a Python subset with comprehensions and f-strings (docs/nodes.md, "Expressions"), too much to
mirror faithfully in the browser, so the editor asks the real evaluator here. It is the same
pure interpreter the runner renders parameters with: no I/O, whitelisted syntax, and one
render's budget of steps, so no template can run for long; it runs in a worker thread so that
even the costliest (about 20 ms) does not hold up the event loop.
"""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, Field

from nodedrop.api.entry import CheckedJsonRoute
from nodedrop.api.errors import UnprocessableError, problem
from nodedrop.contracts.expressions import ExpressionError, make_scope, render
from nodedrop.contracts.expressions.limits import MAX_EXPRESSION_LENGTH

# CheckedJsonRoute: bodies nested too deeply or holding a NUL character are refused (a value
# too deep would also be too deep to answer with).
router = APIRouter(prefix="/expressions", tags=["expressions"], route_class=CheckedJsonRoute)

# A template may hold several expressions and text around them; this bounds the parsing one
# request can cause, far above any parameter a person types.
MAX_TEMPLATE_CHARS = 4 * MAX_EXPRESSION_LENGTH


class ExpressionPreviewIn(BaseModel):
    template: str = Field(
        max_length=MAX_TEMPLATE_CHARS,
        description='a parameter value as stored, e.g. "Total: {{ item.total * 2 }}"',
    )
    item: dict[str, Any] = Field(default_factory=dict, description="the item in scope")
    nodes: dict[str, dict[str, list[dict[str, Any]]]] = Field(
        default_factory=dict, description='earlier nodes\' output: {"id": {"port": [items]}}'
    )
    execution: dict[str, Any] = Field(
        default_factory=dict, description="`execution` in scope (`id`, `trigger`)"
    )


class ExpressionPreviewOut(BaseModel):
    value: Any = Field(description="the rendered value: any JSON value")


def error_span(template: str, error: ExpressionError) -> tuple[int, int]:
    """Where in ``template`` the error is, as a [start, end) range of characters.

    The compiler's column when it has one (a syntax error, a refused name), as one character;
    else the whole expression (evaluation failed on the data). The expression is found by its
    text: its first occurrence, which is the failing one unless the same text appears twice.
    """
    at = template.find(error.expression) if error.expression else -1
    if at < 0:
        return 0, len(template)
    if error.column is None:
        return at, at + len(error.expression)
    start = at + error.column
    return start, min(start + 1, len(template))


def preview(body: ExpressionPreviewIn) -> Any:
    """Renders ``body.template``; raises :class:`UnprocessableError` at ``template``."""
    scope = make_scope(body.item, body.nodes, body.execution)
    try:
        return render(body.template, scope)
    except ExpressionError as error:
        start, end = error_span(body.template, error)
        found = problem(["body", "template"], str(error), "expression")
        raise UnprocessableError([{**found, "ctx": {"start": start, "end": end}}]) from None


@router.post("/preview")
async def preview_expression(body: ExpressionPreviewIn) -> ExpressionPreviewOut:
    """Render a parameter template for one item with the runner's evaluator.

    422 at ``["body", "template"]`` when it does not compile or fails on these items, with
    ``ctx.start``/``ctx.end``: the characters of the template the error is about.
    """
    return ExpressionPreviewOut(value=await asyncio.to_thread(preview, body))
