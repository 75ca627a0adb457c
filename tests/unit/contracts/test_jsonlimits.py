"""The depth and NUL checks every entry point applies to JSON (nodedrop.contracts.jsonlimits)."""

from __future__ import annotations

from typing import Any

from nodedrop.contracts.jsonlimits import (
    MAX_JSON_DEPTH,
    describe,
    json_problem,
    too_deep,
)


def nested(levels: int) -> Any:
    """``levels`` levels of objects: ``nested(1) == {}``, ``nested(2) == {"a": {}}``."""
    value: Any = {}
    for _ in range(levels - 1):
        value = {"a": value}
    return value


def test_the_limit_counts_levels_of_arrays_and_objects() -> None:
    assert too_deep({}, 1) is None
    assert too_deep({"a": [1, "x"]}, 2) is None
    assert too_deep({"a": [1, [2]]}, 2) == ["a", 1]
    assert too_deep("text", 0) is None
    assert too_deep(nested(MAX_JSON_DEPTH)) is None
    assert too_deep(nested(MAX_JSON_DEPTH + 1)) == ["a"] * MAX_JSON_DEPTH


def test_any_depth_is_checked_without_recursion() -> None:
    # Far deeper than Python's recursion limit: an iterative walk, no RecursionError.
    deep: Any = []
    for _ in range(100_000):
        deep = [deep]
    path = too_deep(deep)
    assert path == [0] * MAX_JSON_DEPTH


def test_a_nul_character_is_found_in_values_and_keys() -> None:
    assert json_problem({"a": ["ok", "b\x00"]}) is not None
    found = json_problem({"a": ["ok", "b\x00"]})
    assert found is not None
    assert (found.path, found.kind) == (["a", 1], "nul_character")
    found = json_problem({"a": {"k\x00": 1}})
    assert found is not None
    assert (found.path, found.kind) == (["a", "k\x00"], "nul_character")
    assert json_problem({"a": ["no nul here", 1, None, {"b": "\u00e9"}]}) is None


def test_json_problem_reports_depth_with_its_message() -> None:
    found = json_problem({"input": [nested(MAX_JSON_DEPTH)]})
    assert found is not None
    assert found.kind == "too_deep"
    assert str(MAX_JSON_DEPTH) in found.message
    assert found.path[:2] == ["input", 0]


def test_describe() -> None:
    assert describe(["main", 0, "a", "b"]) == "main[0].a.b"
    assert describe([]) == "(top level)"
