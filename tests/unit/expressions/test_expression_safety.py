"""What must never work: escapes to Python's object graph, and unbounded time or memory.

Every case must end in an ExpressionError: not a success, not another exception, not a hang.
"""

from __future__ import annotations

import copy
import time
from typing import Any

import pytest

from nodedrop.contracts.expressions import (
    ExpressionError,
    check_syntax,
    evaluate,
    make_scope,
    render,
)
from nodedrop.contracts.expressions.limits import MAX_ITEMS, MAX_STEPS, MAX_STRING_LENGTH

ITEM: dict[str, Any] = {"x": 1, "name": "Ann", "tags": ["a"], "format": "data", "s": "a" * 600_000}
SCOPE = make_scope(ITEM, nodes={"a": {"main": [{"x": 1}]}}, execution={"id": "e", "trigger": "t"})
# Generous: these must stop at a limit, not succeed; timing is reported by the benchmark, and a
# loaded CI machine must not make this flaky.
SLOW_SECONDS = 5.0


def refused(expression: str) -> ExpressionError:
    started = time.perf_counter()
    with pytest.raises(ExpressionError) as caught:
        evaluate(expression, SCOPE)
    assert time.perf_counter() - started < SLOW_SECONDS
    return caught.value


# ---------------------------------------------------------------- escapes, refused at save time

ESCAPES = [
    "().__class__.__bases__[0].__subclasses__()",
    "[].__class__.__base__.__subclasses__()",
    "''.__class__.__mro__[1].__subclasses__()",
    "item.__class__",
    "item.__dict__",
    "item.__getattribute__('x')",
    "item.x.__class__",
    "__import__('os')",
    "__import__('os').system('true')",
    "__builtins__",
    "_",
    "item._private",
    "getattr(item, 'x')",
    "setattr(item, 'x', 1)",
    "globals()",
    "locals()",
    "vars()",
    "dir()",
    "type(item)",
    "open('/etc/passwd')",
    "eval('1')",
    "exec('1')",
    "compile('1', '', 'eval')",
    "breakpoint()",
    "help()",
    "'{0.__class__}'.format(item)",
    "'{x}'.format_map(item)",
    "''.__len__()",
    "''.__class__",
    "'a'.zfill(10)",
    "'a'.center(10)",
    "'a'.encode()",
    "item.update({'x': 2})",
    "item.pop('x')",
    "item.tags.append(1)",
    "item.tags.sort()",
    "item.clear()",
    "lambda: 1",
    "(lambda: 1)()",
    "(x := 1)",
    "[y := 1]",
    "str.upper('a')",
    "len",
    "[len][0]('a')",
    "item['x']()",
    "f'{item!r}'",
    "f'{item:>999999999}'",
    "f'{item.__class__}'",
    "{**item}",
    "[*item.tags]",
    "len(*item.tags)",
    "sorted(item.tags, key=len)",
    "{1, 2}",
    "{x for x in item.tags}",
    "b'bytes'",
    "1j",
    "...",
    "~1",
    "1 << 100",
    "1 | 2",
    "item is item",
    "[x for x in item.tags if (x := 1)]",
    "[__x for __x in item.tags]",
    "[len for len in item.tags]",
    "ｉtem.__class__",  # NFKC-normalized by the parser to item.__class__  # noqa: RUF001
    "item.＿＿class＿＿",  # fullwidth low lines normalize to "_"  # noqa: RUF001
    "(await item)",
    "[x async for x in item.tags]",
    "(yield)",
]


@pytest.mark.parametrize("expression", ESCAPES)
def test_escapes_are_refused_when_saved_and_when_run(expression: str) -> None:
    refused(expression)
    problems = check_syntax(f"{{{{ {expression} }}}}")
    assert len(problems) == 1, problems


# ---------------------------------------------------------------- refused when they run

RUNTIME_REFUSALS = [
    ("item['__class__']", "no key '__class__'"),  # a plain dict key lookup, i.e. data
    ("item.get('__class__')", None),  # same: returns None, no error (checked below)
    ("'%s' % item", "'%' formatting of strings is not supported"),
    ("'%(x)s' % item", "'%' formatting"),
    ("''.join", "'.join' reads a key of an object, but the value is a string"),
    ("(x for x in [1]).gi_frame", "'.gi_frame' reads a key of an object, but the value is a list"),
    ("item.format", None),  # a key named "format": data
]


@pytest.mark.parametrize(("expression", "message"), RUNTIME_REFUSALS)
def test_data_access_never_reaches_python_attributes(expression: str, message: str | None) -> None:
    assert check_syntax(f"{{{{ {expression} }}}}") == []
    if message is None:
        assert evaluate(expression, SCOPE) in (None, "data")
        return
    assert message in str(refused(expression))


def test_the_scope_is_never_mutated() -> None:
    before = copy.deepcopy(SCOPE)
    for expression in [
        "sorted(item.tags)",
        "reversed(item.tags)",
        "item.tags + ['b']",
        "list(item.tags)",
        "[t for t in item.tags]",
        "item.tags * 2",
        "item.keys()",
    ]:
        evaluate(expression, SCOPE)
    assert before == SCOPE


# ---------------------------------------------------------------- bounded work and memory


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("'a' * 10**9", "string too long"),
        ("10**9 * 'a'", "string too long"),
        ("[0] * 10**9", "list too long"),
        ("(1, 2) * 10**9", "list too long"),
        ("range(10**12)", "list too long"),
        ("range(-10**30, 10**30)", "list too long"),
        ("[x for x in range(10**9)]", "list too long"),
        ("2 ** 10**9", "integer too large"),
        ("10**10**10", "integer too large"),
        ("(-3) ** 10**6", "integer too large"),
        ("int('9' * 4000) * int('9' * 4000)", "integer too large"),
        ("2.0 ** 10**9", "number too large"),
        ("item.s + item.s", "string too long"),
        ("item.s.replace('a', 'aa')", "string too long"),
        ("''.join([item.s, item.s])", "string too long"),
        ("('x,' * 500000).split(',')", "list too long"),
        ("('a ' * 100001).split()", "list too long"),
        ("[0] * 100001", "list too long"),
        ("f'{item.s}{item.s}'", "string too long"),
        ("str([item.s, item.s])", "string too long"),
        ("to_json([item.s, item.s])", "string too long"),
        ("[1 for a in range(100000) for b in range(100000)]", "too much work"),
        ("[[1 for a in range(1000)] for b in range(1000)]", "too much work"),
        ("[[[1 for a in range(100)] for b in range(100)] for c in range(100)]", "too much work"),
        ("sorted(range(100000))", "too much work"),
        ("sum(range(100000))", "too much work"),
        ("[item.s == item.s for i in range(1000)]", "too much work"),
        ("['a' in item.s for i in range(1000)]", "too much work"),
        ("[item.s.upper() for i in range(1000)]", "too much work"),
        ("[str(int('9' * 4000)) for i in range(1000)]", "too much work"),
        ("[len(item.s.split('b')) for i in range(1000)]", "too much work"),
        ("[item.s.strip(item.s) for i in range(100)]", "too much work"),
        ("[item.s[1:] for i in range(1000)]", "too much work"),
        ("[from_json('[' + '0,' * 90000 + '0]') for i in range(100)]", "too much work"),
    ],
)
def test_size_and_work_are_bounded(expression: str, message: str) -> None:
    assert message in str(refused(expression))


def test_a_template_is_bounded_as_a_whole() -> None:
    with pytest.raises(ExpressionError, match="rendered string too long"):
        render("{{ item.s }} and {{ item.s }}", SCOPE)


def test_the_limits_are_the_documented_ones() -> None:
    assert (MAX_STEPS, MAX_STRING_LENGTH, MAX_ITEMS) == (100_000, 1_000_000, 100_000)
    assert len(evaluate("'a' * 1000000", SCOPE)) == MAX_STRING_LENGTH
    # A list of MAX_ITEMS costs MAX_ITEMS steps to build: the budget is the tighter bound.
    assert len(evaluate("[0] * 90000", SCOPE)) == 90_000
    assert len(evaluate("str(2 ** 9999)", SCOPE)) == 3010


# ---------------------------------------------------------------- nesting and length


@pytest.mark.parametrize(
    "expression",
    [
        "(" * 1000 + "1" + ")" * 1000,
        "[" * 1000 + "]" * 1000,
        "{'a': " * 500 + "1" + "}" * 500,
        "-" * 5000 + "1",
        "not " * 2000 + "1",
        "+".join(["1"] * 4900),
        "item" + ".x" * 4000,
        "item" + "['x']" * 1500,
        "len(" * 500 + "'a'" + ")" * 500,
        "2**" * 3000 + "2",
        "1 if " * 800 + "1" + " else 1" * 800,
        "[x for x in " * 300 + "[1]" + "]" * 300,
        "not " * 101 + "1",
    ],
)
def test_deep_nesting_is_refused_cleanly(expression: str) -> None:
    error = refused(expression)
    assert "nested" in error.message or "invalid syntax" in error.message
    assert len(check_syntax("{{" + expression + "}}")) == 1


def test_nesting_up_to_the_limit_works() -> None:
    assert evaluate("(" * 90 + "1" + ")" * 90, SCOPE) == 1
    assert evaluate("-" * 95 + "1", SCOPE) == -1


@pytest.mark.parametrize("length", [10_001, 100_000, 1_000_000])
def test_very_long_expressions_are_refused(length: int) -> None:
    expression = "1" + " + 1" * (length // 4)
    assert "expression too long" in refused(expression).message


def test_deep_input_data_is_refused_not_crashed_on() -> None:
    deep: Any = 1
    for _ in range(100_000):
        deep = [deep]
    scope = make_scope({"deep": deep})
    for expression in ["item.deep == item.deep", "str(item.deep)", "sorted([item.deep])"]:
        with pytest.raises(ExpressionError):
            evaluate(expression, scope)


def test_hostile_templates_are_bounded_at_save_time() -> None:
    # Many "}}" make the splitter retry; it gives up after a fixed number of tries.
    template = "{{ (" + " }}" * 100_000
    started = time.perf_counter()
    problems = check_syntax(template)
    assert time.perf_counter() - started < SLOW_SECONDS
    assert len(problems) == 1
    assert "invalid syntax" in problems[0].message
