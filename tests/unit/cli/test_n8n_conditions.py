"""n8n conditions as nodedrop expressions, evaluated by nodedrop's own interpreter."""

from __future__ import annotations

from typing import Any

import pytest

from nodedrop.cli.n8n.conditions import comparison, filter_condition
from nodedrop.cli.n8n.expressions import Names, Untranslatable
from nodedrop.contracts.expressions import evaluate, make_scope

NAMES = Names({})


def holds(condition: str, item: dict[str, Any]) -> Any:
    return evaluate(condition, make_scope(item, {}, {"id": "ex1", "trigger": "start"}))


@pytest.mark.parametrize(
    ("left", "operation", "right", "item", "expected"),
    [
        ("={{ $json.total }}", "gt", 100, {"total": 150}, True),
        ("={{ $json.total }}", "lte", 100, {"total": 150}, False),
        ("={{ $json.name }}", "contains", "da", {"name": "Ada"}, True),
        ("={{ $json.name }}", "notStartsWith", "A", {"name": "Ada"}, False),
        ("={{ $json.flag }}", "true", "", {"flag": True}, True),
        # n8n asks these of fields that may be missing: so does the translation, with .get.
        ("={{ $json.email }}", "exists", "", {}, False),
        ("={{ $json.user.email }}", "exists", "", {"user": {"email": "a@b"}}, True),
        ("={{ $json['email'] }}", "notExists", "", {}, True),
        ("={{ $json.tags }}", "empty", "", {}, True),
        ("={{ $json.tags }}", "notEmpty", "", {"tags": ["x"]}, True),
    ],
)
def test_each_operation_decides_as_n8n_does(
    left: str, operation: str, right: Any, item: dict[str, Any], expected: bool
) -> None:
    assert holds(comparison(left, operation, right, NAMES), item) == expected


def test_a_filter_combines_its_conditions() -> None:
    conditions = {
        "conditions": [
            {"leftValue": "={{ $json.a }}", "rightValue": 1, "operator": {"operation": "equals"}},
            {"leftValue": "={{ $json.b }}", "rightValue": 2, "operator": {"operation": "gt"}},
        ],
        "combinator": "or",
        "options": {"caseSensitive": False},
    }
    condition, notes = filter_condition(conditions, NAMES)
    assert condition == "(item.a == 1) or (item.b > 2)"
    assert holds(condition, {"a": 0, "b": 3}) is True
    assert notes == ["case-insensitive comparison: nodedrop compares case-sensitively"]


def test_regular_expressions_do_not_map() -> None:
    with pytest.raises(Untranslatable, match="'regex' has no equivalent"):
        comparison("={{ $json.a }}", "regex", "^a", NAMES)
