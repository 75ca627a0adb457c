"""Fuzzing: whatever the text, the evaluator answers with a value or an ExpressionError.

Timing is not asserted (a loaded machine must not fail the suite); ``target`` steers hypothesis
towards slow inputs, and ``pytest --hypothesis-show-statistics`` prints the slowest it found.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from typing import Any

from hypothesis import HealthCheck, given, settings, target
from hypothesis import strategies as st

from nodedrop.contracts.expressions import (
    ExpressionError,
    check_syntax,
    evaluate,
    make_scope,
    render,
)

SCOPE = make_scope(
    {
        "total": 150,
        "name": "Ann",
        "tags": ["a", "b"],
        "body": {"n": 1.5, "ok": True},
        "s": "x" * 1000,
    },
    nodes={"fetch": {"main": [{"n": 1}, {"n": 2}]}},
    execution={"id": "e-1", "trigger": "start"},
)

# Pieces of plausible and hostile expressions, so the fuzzer gets past the parser often.
TOKENS = [
    *["item", "nodes", "execution", "x", "k", "v", "_", "__class__", "__import__"],
    *[".total", ".name", ".tags", ".body", ".s", ".main", ".fetch", ".__class__", ".keys"],
    *[".upper()", ".split(',')", ".join(item.tags)", ".get('n')", ".items()", ".format(1)"],
    *["len", "str", "int", "float", "sorted", "range", "sum", "min", "max", "from_json", "to_json"],
    *["(", ")", "[", "]", "{", "}", ",", ":", ".", "'", '"', "f'{", "}'", "{{", "}}"],
    *["+", "-", "*", "/", "//", "%", "**", "<", "==", "!=", ">=", "in", "not", "and", "or", "is"],
    *["if", "else", "for", "lambda", ":=", "*", "**", "~", "<<", "None", "True", "False"],
    *["0", "1", "2", "10", "10**9", "-1", "1.5", "1e308", "'a'", "'%s'", "'{0}'", "''"],
    *["x for x in", "range(10**6)", "range(1000)", "item.s * 1000", "[0] * 10**5"],
]

token_soup = st.lists(st.sampled_from(TOKENS), max_size=24).map(" ".join)
printable = st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=200)
anything = st.text(max_size=200)  # any Unicode, including NUL and surrogates


def check(expression: str) -> None:
    """Evaluate, render and save-check: any exception but ExpressionError fails the test."""
    started = time.perf_counter()
    attempts: list[Callable[[], object]] = [
        lambda: evaluate(expression, SCOPE),
        lambda: render("a {{" + expression + "}} b", SCOPE),
        lambda: render({"k": ["{{" + expression + "}}"]}, SCOPE),
    ]
    messages = []
    for attempt in attempts:
        try:
            attempt()
        except ExpressionError as error:
            messages.append(str(error))
    messages.extend(problem.message for problem in check_syntax("{{" + expression + "}}"))
    assert all(messages)  # an error always says something
    target(time.perf_counter() - started, label="seconds per example")


FUZZ = settings(
    max_examples=settings().max_examples * 15,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


@FUZZ
@given(token_soup)
def test_token_soup_raises_nothing_but_expression_errors(expression: str) -> None:
    check(expression)


@FUZZ
@given(printable)
def test_printable_text_raises_nothing_but_expression_errors(expression: str) -> None:
    check(expression)


@settings(max_examples=settings().max_examples * 5, deadline=None)
@given(anything)
def test_any_unicode_raises_nothing_but_expression_errors(expression: str) -> None:
    check(expression)


json_values: st.SearchStrategy[Any] = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10), children, max_size=5)
    ),
    max_leaves=30,
)
EXPRESSIONS_OVER_DATA = [
    "item.v == item.v",
    "str(item.v)",
    "to_json(item.v)",
    "sorted(item.v)",
    "len(item.v)",
    "[x for x in item.v]",
    "item.v + item.v",
    "item.v * 2",
    "item.v in item.v",
    "item.v.get('a')",
    "item.v['a']",
    "item.v[0]",
    "item.v.keys()",
    "min(item.v)",
    "sum(item.v)",
    "from_json(to_json(item.v)) == item.v",
    "f'{item.v}'",
]


@settings(max_examples=settings().max_examples * 3, deadline=None)
@given(json_values, st.sampled_from(EXPRESSIONS_OVER_DATA))
def test_any_json_data_raises_nothing_but_expression_errors(value: Any, expression: str) -> None:
    with contextlib.suppress(ExpressionError):
        evaluate(expression, make_scope({"v": value}))
