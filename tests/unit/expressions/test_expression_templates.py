"""Templates in parameter values: what renders to what, save-time checks, errors, caching."""

from __future__ import annotations

import pickle
from typing import Any

import pytest

from nodedrop.contracts.expressions import (
    Budget,
    BudgetExceeded,
    ExpressionError,
    ExpressionProblem,
    check_syntax,
    compile_expression,
    compile_template,
    contains_expression,
    evaluate,
    make_scope,
    render,
)
from nodedrop.contracts.expressions.limits import MAX_STEPS

ITEM: dict[str, Any] = {
    "total": 150,
    "name": "Ann",
    "tags": ["a", "b"],
    "body": {"total": 5, "ok": True},
    "missing": None,
    "price": 1.5,
}
SCOPE = make_scope(
    ITEM,
    nodes={"fetch": {"main": [{"x": 1}, {"x": 2}]}, "split-1": {"true": [], "false": [{}]}},
    execution={"id": "ex-1", "trigger": "start"},
)


# ---------------------------------------------------------------- one expression: its value


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{{ item.total > 100 }}", True),
        ("{{ item.total }}", 150),
        ("{{ item.price }}", 1.5),
        ("{{ item.name }}", "Ann"),
        ("{{ item.tags }}", ["a", "b"]),
        ("{{ item.body }}", {"total": 5, "ok": True}),
        ("{{ item.missing }}", None),
        ("{{item.total}}", 150),
        ("{{\titem.total\n}}", 150),
    ],
)
def test_a_single_expression_renders_to_its_value_of_any_json_type(
    template: str, expected: Any
) -> None:
    result = render(template, SCOPE)
    assert result == expected
    assert type(result) is type(expected)


# ---------------------------------------------------------------- text around: a string


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("Hello {{ item.name }}!", "Hello Ann!"),
        ("{{ item.total }} EUR", "150 EUR"),
        ("{{ item.price }}", 1.5),
        ("p={{ item.price }}", "p=1.5"),
        ("ok={{ item.body.ok }}", "ok=true"),
        ("no={{ not item.body.ok }}", "no=false"),
        ("none={{ item.missing }}", "none=null"),
        ("tags={{ item.tags }}", 'tags=["a","b"]'),
        ("body={{ item.body }}", 'body={"total":5,"ok":true}'),
        ("{{ item.name }}{{ item.total }}", "Ann150"),
        (" {{ item.total }}", " 150"),
        ("{{ 'ü' }} and {{ ['ü'] }}", 'ü and ["ü"]'),
        ("{{ 1 }}{{ 2 }}", "12"),
    ],
)
def test_text_around_expressions_renders_a_string_with_json_style_values(
    template: str, expected: Any
) -> None:
    assert render(template, SCOPE) == expected


@pytest.mark.parametrize(
    "literal", ["plain", "", "a } b", "}} only closes", "{ single }", "{x}", "price: $5"]
)
def test_strings_without_double_braces_are_literals(literal: str) -> None:
    assert render(literal, SCOPE) == literal
    assert not contains_expression(literal)


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ('{{ "}}" }}', "}}"),
        ('{{ "{{" }}', "{{"),
        ('a{{ "{{" }}b', "a{{b"),
        ('{{ {"a": {"b": 1}} }}', {"a": {"b": 1}}),
        ('{{ {"a": {"b": 1}}}}', {"a": {"b": 1}}),
        ('x{{ {"a": 1}["a"] }}y', "x1y"),
        ("{{ 1 }}}", "1}"),
    ],
)
def test_an_expression_may_contain_closing_braces(template: str, expected: Any) -> None:
    assert render(template, SCOPE) == expected


def test_nested_values_render_recursively_and_keys_never_render() -> None:
    value = {
        "values": {"big": "{{ item.total > 100 }}", "label": "n={{ item.name }}", "n": 3},
        "headers": [{"{{ item.name }}": "{{ execution.id }}"}, None, True, 2.5],
    }
    assert render(value, SCOPE) == {
        "values": {"big": True, "label": "n=Ann", "n": 3},
        "headers": [{"{{ item.name }}": "ex-1"}, None, True, 2.5],
    }


def test_rendering_copies_containers_so_the_definition_is_never_shared() -> None:
    parameters = {"values": {"a": [1, 2]}}
    rendered = render(parameters, SCOPE)
    assert rendered == parameters
    assert rendered is not parameters
    assert rendered["values"] is not parameters["values"]
    assert rendered["values"]["a"] is not parameters["values"]["a"]


def test_every_expression_in_a_value_shares_one_budget() -> None:
    # About 40,000 steps each: range() builds 10,000 numbers, each iteration costs 3 nodes.
    cheap = "{{ len([x for x in range(10000)]) }}"
    assert render([cheap, cheap], SCOPE) == [10000, 10000]
    with pytest.raises(ExpressionError, match="too much work"):
        render([cheap] * 3, SCOPE)


def test_a_shared_budget_bounds_many_renders_together() -> None:
    cheap = "{{ len([x for x in range(10000)]) }}"  # about 40,000 steps
    budget = Budget(100_000)
    assert render(cheap, SCOPE, budget) == 10000
    assert render(cheap, SCOPE, budget) == 10000
    assert 80_000 <= budget.spent <= 82_000
    with pytest.raises(BudgetExceeded, match=r"more than 100,000 steps over all its items"):
        render(cheap, SCOPE, budget)
    assert budget.left == 0
    # Used up for good: even the cheapest expression is refused now, a literal is not.
    with pytest.raises(BudgetExceeded):
        render("{{ 1 }}", SCOPE, budget)
    assert render("plain text", SCOPE, budget) == "plain text"


def test_a_render_on_a_large_shared_budget_keeps_its_own_limit() -> None:
    budget = Budget()
    with pytest.raises(ExpressionError, match="too much work") as raised:
        render("{{ len([x for x in range(30000)]) }}", SCOPE, budget)
    assert not isinstance(raised.value, BudgetExceeded)  # this expression alone is too much
    assert MAX_STEPS <= budget.spent < 2 * MAX_STEPS  # and what it did is charged
    assert render("{{ 1 + 1 }}", SCOPE, budget) == 2


def test_renders_without_a_shared_budget_are_bounded_only_one_by_one() -> None:
    heavy = "{{ len([x for x in range(24000)]) }}"  # about 96,000 steps
    for _ in range(3):
        assert render(heavy, SCOPE) == 24000


def test_the_scope_names_item_nodes_and_execution() -> None:
    assert render("{{ nodes.fetch.main }}", SCOPE) == [{"x": 1}, {"x": 2}]
    assert render('{{ nodes["fetch"]["main"][1].x }}', SCOPE) == 2
    assert render('{{ nodes["split-1"]["false"] }}', SCOPE) == [{}]
    assert render("{{ execution.id }}/{{ execution.trigger }}", SCOPE) == "ex-1/start"
    assert render("{{ item }}", SCOPE) == ITEM


def test_a_name_missing_from_the_scope_is_an_error_naming_it() -> None:
    with pytest.raises(ExpressionError, match="'nodes' is not available"):
        render("{{ nodes.x }}", {"item": {}})


def test_make_scope_defaults_to_empty_nodes_and_execution() -> None:
    assert make_scope({"a": 1}) == {"item": {"a": 1}, "nodes": {}, "execution": {}}


def test_evaluate_takes_a_bare_expression() -> None:
    assert evaluate("item.total * 2", SCOPE) == 300
    assert evaluate("  item.name  ", SCOPE) == "Ann"


# ---------------------------------------------------------------- errors


def test_an_evaluation_error_names_the_expression() -> None:
    with pytest.raises(ExpressionError) as caught:
        render({"values": {"x": "total: {{ item.body.totl + 1 }}"}}, SCOPE)
    error = caught.value
    assert error.expression == "item.body.totl + 1"
    assert "no key 'totl'" in error.message
    assert "keys: total, ok" in error.message
    assert str(error) == f"{error.message} in expression {{{{ item.body.totl + 1 }}}}"


def test_errors_pickle_for_crossing_process_boundaries() -> None:
    error = ExpressionError("item.x", "no key 'x'")
    copy = pickle.loads(pickle.dumps(error))
    assert (copy.expression, copy.message, str(copy)) == (
        error.expression,
        error.message,
        str(error),
    )


def test_a_long_expression_is_shortened_in_the_message() -> None:
    error = ExpressionError("x" * 1000, "boom")
    assert len(str(error)) < 300
    assert str(error).endswith("… }}")


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("{{ item.total ", "'{{' without a closing '}}'"),
        ("{{ }}", "empty expression"),
        ("{{ item. }}", "invalid syntax"),
        ("{{ 1 + }} and {{ 2 }}", "invalid syntax"),
        ("{{ itme.total }}", "unknown name 'itme'"),
        ("{{ item.total }} {{ lambda: 1 }}", "not allowed in expressions: lambda"),
    ],
)
def test_compile_errors_are_expression_errors(template: str, message: str) -> None:
    with pytest.raises(ExpressionError, match=message):
        render(template, SCOPE)
    with pytest.raises(ExpressionError, match=message):
        compile_template(template)


def test_syntax_errors_say_where() -> None:
    with pytest.raises(ExpressionError, match=r"at column \d+"):
        compile_expression("item.total >> 2")
    with pytest.raises(ExpressionError, match=r"at line 2, column \d+"):
        compile_expression("(item.total +\n lambda: 1)")


# ---------------------------------------------------------------- save-time checks


def test_check_syntax_reports_every_bad_template_with_its_path() -> None:
    parameters = {
        "values": {"ok": "{{ item.total }}", "bad": "{{ item. }}", "n": 1},
        "cases": [
            {"output": "a", "condition": "{{ item.x > 1 }}"},
            {"output": "b", "condition": "{{ __import__('os') }}"},
        ],
        "headers": {"X-Name": "{{ len }}"},
        "literal": "no braces }}",
    }
    problems = check_syntax(parameters)
    assert [p.path for p in problems] == [
        ("values", "bad"),
        ("cases", 1, "condition"),
        ("headers", "X-Name"),
    ]
    assert all(isinstance(p, ExpressionProblem) for p in problems)
    assert problems[0].expression == "item."
    assert "invalid syntax" in problems[0].message
    assert "'__import__'" in problems[1].message
    assert "len() is a function: call it" in problems[2].message
    assert all("in expression {{" in p.message for p in problems)


def test_check_syntax_accepts_good_values_and_plain_json() -> None:
    assert check_syntax({"a": ["{{ item.x }}", 1, None, {"b": "x {{ nodes.a.main }} y"}]}) == []
    assert check_syntax("{{ item.total > 100 }}") == []
    assert check_syntax(3) == []


def test_check_syntax_reports_errors_knowable_before_running() -> None:
    problems = check_syntax(
        [
            "{{ sorted(item.tags, key=1) }}",
            "{{ len(1, 2) }}",
            "{{ item.name.zfill(3) }}",
            "{{ item.name.split(',', 1, 2) }}",
            "{{ [x for x in item.tags for y in x for z in y for a in z for b in a for c in b "
            "for d in c for e in d for f in e] }}",
        ]
    )
    assert [p.path for p in problems] == [(0,), (1,), (2,), (3,), (4,)]
    assert "unexpected keyword argument 'key'" in problems[0].message
    assert "too many positional arguments" in problems[1].message
    assert "method .zfill() is not allowed" in problems[2].message
    assert "too many positional arguments" in problems[3].message
    assert "at most 8 'for' clauses" in problems[4].message


def test_check_syntax_does_not_evaluate() -> None:
    # Errors that depend on the data (a missing key, a division by zero) are for run time.
    assert check_syntax(["{{ item.nope }}", "{{ 1 / 0 }}", "{{ 'a' * 10**9 }}"]) == []


def test_too_deep_parameter_values_are_reported_not_crashed_on() -> None:
    deep: Any = "x"
    for _ in range(300):
        deep = [deep]
    problems = check_syntax(deep)
    assert len(problems) == 1
    assert "nested deeper than 200" in problems[0].message
    with pytest.raises(ExpressionError, match="nested deeper than 200"):
        render(deep, SCOPE)


def test_contains_expression_finds_templates_anywhere() -> None:
    assert contains_expression({"a": [1, {"b": "x{{ item.y }}"}]})
    assert not contains_expression({"a": [1, {"b": "x{ item.y }"}], "{{ k }}": 1})


# ---------------------------------------------------------------- caching


def test_compiled_templates_and_expressions_are_cached() -> None:
    assert compile_template("{{ item.total > 100 }}") is compile_template("{{ item.total > 100 }}")
    assert compile_expression("item.total") is compile_expression("item.total")
    long = "x {{ item.total }} " + "y" * 2000
    assert compile_template(long) is not compile_template(long)  # long text: not cached
    assert render(long, SCOPE).startswith("x 150 y")


def test_a_template_reports_its_expressions() -> None:
    template = compile_template("a {{ item.x }} b {{ item.y }}")
    assert [e.source for e in template.expressions] == ["item.x", "item.y"]


def test_a_condition_rendered_again_is_not_compiled_again() -> None:
    # What keeps a render cheap (about 1 µs; its time is the benchmarks' to report, not a
    # check's): the compiled form is reused, so rendering an item twice parses nothing again.
    from nodedrop.contracts.expressions import compiler

    template = "{{ item.total > 100 and item.total < 1000000 }}"
    first = render(template, SCOPE)
    misses = compiler._compile_cached.cache_info().misses
    assert [render(template, SCOPE) for _ in range(100)] == [first] * 100
    assert compiler._compile_cached.cache_info().misses == misses
