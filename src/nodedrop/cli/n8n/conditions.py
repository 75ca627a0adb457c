"""n8n conditions (IF, Switch: the "filter" of v2+ and the typed lists of v1) as one nodedrop
boolean expression. Pure."""

from __future__ import annotations

import json
import re
from typing import Any

from nodedrop.cli.n8n.expressions import Names, Untranslatable, translate_expression

#: A value path (``item.a["b"][0]``), which needs no parentheses around it.
_SIMPLE = re.compile(r"[\w.]+(\[[^\[\]]*\])*(\.[\w]+|\[[^\[\]]*\])*")
_WHOLE_EXPRESSION = re.compile(r"^=\s*\{\{(.*)\}\}\s*$", re.DOTALL)

#: n8n operation (v2 filter names and v1 names alike) -> nodedrop, with {l} and {r}.
_BINARY = {
    "equals": "{l} == {r}",
    "equal": "{l} == {r}",
    "notEquals": "{l} != {r}",
    "notEqual": "{l} != {r}",
    "gt": "{l} > {r}",
    "larger": "{l} > {r}",
    "lt": "{l} < {r}",
    "smaller": "{l} < {r}",
    "gte": "{l} >= {r}",
    "largerEqual": "{l} >= {r}",
    "lte": "{l} <= {r}",
    "smallerEqual": "{l} <= {r}",
    "contains": "{r} in {l}",
    "notContains": "{r} not in {l}",
    "startsWith": "{l}.startswith({r})",
    "notStartsWith": "not {l}.startswith({r})",
    "endsWith": "{l}.endswith({r})",
    "notEndsWith": "not {l}.endswith({r})",
}
_UNARY = {
    "true": "{l} == true",
    "false": "{l} == false",
    "empty": "not {l}",
    "isEmpty": "not {l}",
    "notEmpty": "bool({l})",
    "isNotEmpty": "bool({l})",
    "exists": "{l} is not None",
    "notExists": "{l} is None",
}
#: Operations that n8n applies to a missing field too: the field is read with ``.get``, so a
#: missing key is ``None`` here as well instead of an error.
_MISSING_ALLOWED = {"empty", "isEmpty", "notEmpty", "isNotEmpty", "exists", "notExists"}
_LAST_KEY = re.compile(
    r"^(?P<base>.+?)(?:\.(?P<name>[A-Za-z_]\w*)|\[(?P<quoted>\"[^\"]*\"|'[^']*')\])$"
)


def _reading_missing(expression: str) -> str:
    """``item.a.b`` as ``item.a.get("b")``: ``None`` when the key is missing."""
    match = _LAST_KEY.match(expression)
    if match is None or not _SIMPLE.fullmatch(expression):
        return expression
    key = match.group("quoted") or json.dumps(match.group("name"))
    return f"{match.group('base')}.get({key})"


def operand(value: Any, names: Names) -> str:
    """A condition's side as an expression: an n8n expression, or a literal."""
    if isinstance(value, str) and value.startswith("="):
        whole = _WHOLE_EXPRESSION.match(value)
        if whole is None:
            raise Untranslatable(f"{value[1:]!r}: text around an expression in a condition")
        translated = translate_expression(whole.group(1).strip(), names)
        return translated if _SIMPLE.fullmatch(translated) else f"({translated})"
    return json.dumps(value)


def comparison(left: Any, operation: str, right: Any, names: Names) -> str:
    if operation in _UNARY:
        side = operand(left, names)
        if operation in _MISSING_ALLOWED:
            side = _reading_missing(side)
        return _UNARY[operation].format(l=side)
    if operation in _BINARY:
        return _BINARY[operation].format(l=operand(left, names), r=operand(right, names))
    raise Untranslatable(f"the comparison {operation!r} has no equivalent")


def filter_condition(conditions: Any, names: Names) -> tuple[str, list[str]]:
    """An n8n v2+ filter (``{"conditions": [...], "combinator", "options"}``): the expression
    and notes on what it approximates."""
    if not isinstance(conditions, dict):
        raise Untranslatable("no conditions")
    notes = []
    if (conditions.get("options") or {}).get("caseSensitive") is False:
        notes.append("case-insensitive comparison: nodedrop compares case-sensitively")
    parts = []
    for entry in conditions.get("conditions") or []:
        operator = entry.get("operator") or {}
        parts.append(
            comparison(
                entry.get("leftValue", ""),
                str(operator.get("operation", "equals")),
                entry.get("rightValue", ""),
                names,
            )
        )
    if not parts:
        raise Untranslatable("no conditions")
    return _combined(parts, conditions.get("combinator") == "or"), notes


def _combined(parts: list[str], any_of: bool) -> str:
    if len(parts) == 1:
        return parts[0]
    return (" or " if any_of else " and ").join(f"({part})" for part in parts)


def typed_lists_condition(conditions: Any, combine: str, names: Names) -> str:
    """IF v1: ``{"string": [{"value1", "operation", "value2"}], "number": [...], ...}``."""
    parts = []
    for kind, entries in (conditions or {}).items():
        for entry in entries or []:
            parts.append(
                comparison(
                    entry.get("value1", ""),
                    str(entry.get("operation", "equal")),
                    entry.get("value2", False if kind == "boolean" else ""),
                    names,
                )
            )
    if not parts:
        raise Untranslatable("no conditions")
    return _combined(parts, combine == "any")
