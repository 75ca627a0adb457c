"""``{{ … }}`` templates inside parameter values: splitting, rendering, save-time checks."""

from __future__ import annotations

import functools
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from nodedrop.contracts.expressions.compiler import (
    CACHED_SOURCE_CHARS,
    CompiledExpression,
    compile_expression,
)
from nodedrop.contracts.expressions.errors import ExpressionError, ExpressionProblem
from nodedrop.contracts.expressions.limits import (
    MAX_EXPRESSION_LENGTH,
    MAX_STRING_LENGTH,
    MAX_VALUE_DEPTH,
)
from nodedrop.contracts.expressions.runtime import Budget, Context

OPEN, CLOSE = "{{", "}}"
# Templates up to this size are cached compiled (see CACHED_SOURCE_CHARS); longer ones (whole
# documents) are rare, are split again on each render, and reuse their cached expressions.
_CACHED_TEMPLATE_CHARS = CACHED_SOURCE_CHARS
# "}}" tried as the end of an expression and found wrong, per template: bounds the parsing one
# hostile template can cause (each try parses up to MAX_EXPRESSION_LENGTH characters).
_MAX_FAILED_CLOSES = 64


@dataclass(frozen=True, slots=True, eq=False)
class Template:
    """A string parameter: literal text and expressions, in order."""

    source: str
    parts: tuple[str | CompiledExpression, ...]

    @property
    def expressions(self) -> tuple[CompiledExpression, ...]:
        return tuple(part for part in self.parts if isinstance(part, CompiledExpression))

    def evaluate(self, ctx: Context) -> Any:
        parts = self.parts
        if len(parts) == 1:
            only = parts[0]
            # Exactly one "{{ expr }}": the value itself, any JSON type.
            return only.evaluate(ctx) if isinstance(only, CompiledExpression) else only
        pieces: list[str] = []
        length = 0
        for part in parts:
            piece = part if isinstance(part, str) else part.evaluate(ctx, as_text=True)
            length += len(piece)
            if length > MAX_STRING_LENGTH:
                raise ExpressionError(
                    self.source, f"rendered string too long (at most {MAX_STRING_LENGTH:,})"
                )
            pieces.append(piece)
        return "".join(pieces)


def compile_template(text: str) -> Template:
    """Compile a string parameter; raises :class:`ExpressionError` for its first bad expression.

    Strings without ``{{`` compile to a literal. Compiled templates are cached by text.
    """
    if len(text) <= _CACHED_TEMPLATE_CHARS:
        return _compile_cached(text)
    return _compile(text)


@functools.lru_cache(maxsize=1024)
def _compile_cached(text: str) -> Template:
    return _compile(text)


def _compile(text: str) -> Template:
    parts: list[str | CompiledExpression] = []
    for literal, expression in _split(text):
        if literal:
            parts.append(literal)
        if expression is not None:
            parts.append(expression)
    return Template(text, tuple(parts) or ("",))


def _split(text: str) -> Iterator[tuple[str, CompiledExpression | None]]:
    """Yield (literal text, the expression after it) pairs.

    An expression may itself contain "}}" (``{{ {"a": {"b": 1}} }}``, ``{{ "}}" }}``), so each
    "{{" ends at the first "}}" before which the text parses; when none does, the error
    reported is the one for the first "}}". A literal "{{" is written ``{{ "{{" }}``.
    """
    position = 0
    failures = 0
    while True:
        start = text.find(OPEN, position)
        if start < 0:
            yield text[position:], None
            return
        body = start + len(OPEN)
        end = text.find(CLOSE, body)
        if end < 0:
            raise ExpressionError(text[body:].strip()[:200], "'{{' without a closing '}}'")
        first_error: ExpressionError | None = None
        while True:
            try:
                compiled = compile_expression(text[body:end])
                break
            except ExpressionError as error:
                if not error.syntax:
                    raise  # only a parse error can mean that a "}}" came too early
                first_error = first_error or error
                failures += 1
                end = text.find(CLOSE, end + 1)
                if end < 0 or end - body > MAX_EXPRESSION_LENGTH or failures > _MAX_FAILED_CLOSES:
                    raise first_error from None
        yield text[position:start], compiled
        position = end + len(CLOSE)


def render(value: Any, scope: Mapping[str, Any], budget: Budget | None = None) -> Any:
    """Render a parameter value for one item: templates evaluated, everything else copied.

    ``value`` is any JSON value: strings are templates (or literals, without ``{{``), dicts and
    lists are rendered recursively (keys are never rendered), other values return as they are.
    The budget (:data:`MAX_STEPS`) is shared by every expression in ``value``; with a shared
    ``budget`` (a node attempt's, over all its items), the steps also come out of it, and
    running it out raises :class:`BudgetExceeded`. Containers are new; values that expressions
    return may be the scope's own objects: treat them as read-only.
    Raises :class:`ExpressionError`.
    """
    ctx = Context(scope, budget=budget)
    try:
        return _render(value, ctx, 0)
    finally:
        ctx.settle()


def _render(value: Any, ctx: Context, depth: int) -> Any:
    kind = type(value)
    if kind is str:
        if OPEN not in value:
            return value
        return compile_template(value).evaluate(ctx)
    if kind is dict or kind is list or kind is tuple:
        if depth >= MAX_VALUE_DEPTH:
            raise ExpressionError("", f"parameters nested deeper than {MAX_VALUE_DEPTH} levels")
        if kind is dict:
            return {key: _render(item, ctx, depth + 1) for key, item in value.items()}
        return [_render(item, ctx, depth + 1) for item in value]
    return value


def evaluate(expression: str, scope: Mapping[str, Any]) -> Any:
    """Evaluate one bare expression (no braces), e.g. ``evaluate("item.total > 100", scope)``."""
    return compile_expression(expression).evaluate(Context(scope))


def check_syntax(value: Any) -> list[ExpressionProblem]:
    """Every template in ``value`` that would not compile, with its path inside ``value``.

    For save-time validation: syntax errors, forbidden constructs, unknown names, wrong argument
    counts. Nothing is evaluated.
    """
    problems: list[ExpressionProblem] = []
    stack: list[tuple[tuple[str | int, ...], Any]] = [((), value)]
    while stack:
        path, current = stack.pop()
        kind = type(current)
        if kind is str:
            if OPEN in current:
                try:
                    compile_template(current)
                except ExpressionError as error:
                    problems.append(ExpressionProblem.from_error(path, error))
        elif kind is dict or kind is list or kind is tuple:
            if len(path) >= MAX_VALUE_DEPTH:
                problems.append(
                    ExpressionProblem(
                        path, "", f"parameters nested deeper than {MAX_VALUE_DEPTH} levels"
                    )
                )
                continue
            children = current.items() if kind is dict else enumerate(current)
            # Reversed, so problems come out in document order.
            stack.extend(((*path, key), child) for key, child in reversed(list(children)))
    return problems


def contains_expression(value: Any) -> bool:
    """Whether any string in ``value`` holds ``{{``: such parameters are checked when rendered,
    not by their JSON schema at save time."""
    stack = [value]
    while stack:
        current = stack.pop()
        kind = type(current)
        if kind is str and OPEN in current:
            return True
        if kind is dict:
            stack.extend(current.values())
        elif kind is list or kind is tuple:
            stack.extend(current)
    return False


def make_scope(
    item: Mapping[str, Any],
    nodes: Mapping[str, Mapping[str, list[Any]]] | None = None,
    execution: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The names an expression sees: ``item``, ``nodes`` (id -> {port: items}) and
    ``execution`` (``id``, ``trigger``)."""
    return {"item": item, "nodes": nodes or {}, "execution": execution or {}}
