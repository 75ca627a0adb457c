"""The expression language: operators, every function and method, the ``item.key`` sugar,
comprehensions and f-strings, and the errors user data can cause."""

from __future__ import annotations

from typing import Any

import pytest

from nodedrop.contracts.expressions import HELPERS, METHODS, ExpressionError, evaluate, make_scope

ITEM: dict[str, Any] = {
    "total": 150,
    "name": " Ann Lee ",
    "tags": ["b", "a", "c"],
    "body": {"total": 5, "items": [{"sku": "x", "qty": 2}, {"sku": "y", "qty": 3}]},
    "nothing": None,
    "flag": False,
    "csv": "a,b,,c",
    "keys": "a key named like a method",
    "_private": 7,
    "__class__": "just data",
}
SCOPE = make_scope(
    ITEM,
    nodes={"fetch": {"main": [{"n": 1}, {"n": 2}, {"n": 3}]}},
    execution={"id": "ex-1", "trigger": "start"},
)


def ev(expression: str) -> Any:
    return evaluate(expression, SCOPE)


def refused(expression: str, message: str) -> None:
    with pytest.raises(ExpressionError, match=message) as caught:
        ev(expression)
    assert caught.value.expression == expression


# ---------------------------------------------------------------- item.key sugar


def test_attribute_access_on_an_object_reads_its_key() -> None:
    assert ev("item.total") == 150
    assert ev("item.body.total") == 5
    assert ev("item.body['items'][1].sku") == "y"
    assert ev("nodes.fetch.main[-1].n") == 3


def test_attribute_access_reads_keys_even_when_they_are_method_names() -> None:
    # Not called: a key. Called: the method.
    assert ev("item.keys") == "a key named like a method"
    assert ev("item.body.items[0].qty") == 2
    assert ev("len(item.body.keys())") == 2


def test_a_missing_key_is_an_error_and_get_is_the_lenient_way() -> None:
    refused("item.nope", "no key 'nope'")
    refused("item['nope']", "no key 'nope'")
    assert ev("item.get('nope')") is None
    assert ev("item.get('nope', 0)") == 0
    assert ev("item.get('total', 0)") == 150
    assert ev("item.get(['unhashable'], 1)") == 1


def test_attribute_access_on_other_values_is_refused() -> None:
    refused("item.total.real", "'.real' reads a key of an object, but the value is a number")
    refused("item.tags.count", "but the value is a list")
    refused("item.nothing.x", "but the value is null")


def test_data_keys_that_look_like_python_internals_are_just_data() -> None:
    # Objects are data: a subscript looks the key up in the dict, never in Python's attributes.
    assert ev("item['__class__']") == "just data"
    assert ev("item['_private']") == 7
    assert ev("item.get('__class__')") == "just data"
    refused("{}['__class__']", "no key '__class__'")


# ---------------------------------------------------------------- literals and operators


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("1 + 2 * 3 - 4", 3),
        ("7 / 2", 3.5),
        ("7 // 2", 3),
        ("-7 % 3", 2),
        ("2 ** 10", 1024),
        ("2 ** -1", 0.5),
        ("-item.total", -150),
        ("+item.total", 150),
        ("1.5 * 2", 3.0),
        ("True + True", 2),
        ("'ab' + 'cd'", "abcd"),
        ("'ab' * 3", "ababab"),
        ("3 * 'ab'", "ababab"),
        ("'ab' * -1", ""),
        ("[1] + [2]", [1, 2]),
        ("[0] * 3", [0, 0, 0]),
        ("(1, 2)", [1, 2]),
        ("()", []),
        ("{'a': 1, 'b': [True, None]}", {"a": 1, "b": [True, None]}),
        ("'a' 'b'", "ab"),
        ("1 if item.total > 100 else 2", 1),
        ("1 if item.flag else 2", 2),
    ],
)
def test_arithmetic_and_literals(expression: str, expected: Any) -> None:
    result = ev(expression)
    assert result == expected
    assert type(result) is type(expected)


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("item.total == 150", True),
        ("item.total != 150", False),
        ("1 < 2 < 3", True),
        ("1 < 3 < 2", False),
        ("3 > 2 >= 2", True),
        ("1 <= 1.0", True),
        ("'a' < 'b'", True),
        ("[1, 2] == [1, 2]", True),
        ("item.body == {'total': 5, 'items': item.body['items']}", True),
        ("'b' in item.tags", True),
        ("'z' not in item.tags", True),
        ("'total' in item", True),
        ("1 in item", False),
        ("[1] in item", False),
        ("'nn' in 'Anna'", True),
        ("item.nothing is None", True),
        ("item.flag is not True", True),
        ("item.flag is False", True),
        ("not item.flag", True),
        ("item.flag or 'fallback'", "fallback"),
        ("item.total and 'yes'", "yes"),
        ("item.flag and 1/0", False),
        ("0 or '' or None", None),
        ("1 and 2 and 3", 3),
    ],
)
def test_comparisons_and_boolean_logic(expression: str, expected: Any) -> None:
    assert ev(expression) == expected


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("item.tags[0]", "b"),
        ("item.tags[-1]", "c"),
        ("item.tags[1:]", ["a", "c"]),
        ("item.tags[::-1]", ["c", "a", "b"]),
        ("item.tags[:10]", ["b", "a", "c"]),
        ("'hello'[1:3]", "el"),
        ("'hello'[-1]", "o"),
        ("item['body']['total']", 5),
    ],
)
def test_indexing_and_slicing(expression: str, expected: Any) -> None:
    assert ev(expression) == expected


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("1 / 0", "division by zero"),
        ("1 // 0", "by zero"),
        ("1 % 0", "modulo by zero"),
        ("'a' + 1", "cannot use \\+ with a string and a number"),
        ("[1] + 'a'", "cannot use \\+ with a list and a string"),
        ("1 - 'a'", "cannot use - with"),
        ("{} * 2", "cannot use \\* with an object and a number"),
        ("'a' < 1", "'<' not supported"),
        ("-'a'", "cannot negate a string"),
        ("+None", "cannot use unary \\+ with null"),
        ("item.tags[5]", "index 5 is out of range \\(length 3\\)"),
        ("item.tags['a']", "indexes must be integers, not a string"),
        ("item.total[0]", "cannot index a number"),
        ("item.total[0:1]", "cannot slice a number"),
        ("item.tags[::0]", "slice step cannot be zero"),
        ("item.tags[0.5:]", "slice bounds must be integers"),
        ("item[['a']]", "a list cannot be an object key"),
        ("{1: 2}", "object keys must be strings, not a number"),
        ("1 in 'abc'", "'in' a string needs a string on the left"),
        ("1 in 5", "'in' needs a list, string or object on the right"),
        ("(-8) ** 0.5", "not a real number"),
        ("1e308 * 10", "number too large"),
        ("10.0 ** 400", "number too large"),
        ("0 ** -1", "cannot be raised to a negative power"),
        ("10 ** 400 / 1", "too large"),
        ("'%s' % 1", "'%' formatting of strings is not supported"),
    ],
)
def test_operator_errors_are_expression_errors(expression: str, message: str) -> None:
    with pytest.raises(ExpressionError, match=message) as caught:
        ev(expression)
    assert caught.value.expression == expression


# ---------------------------------------------------------------- comprehensions


def test_comprehensions() -> None:
    assert ev("[t.upper() for t in item.tags if t != 'a']") == ["B", "C"]
    assert ev("[x['n'] * 10 for x in nodes.fetch.main]") == [10, 20, 30]
    assert ev("sum(x.n for x in nodes.fetch.main)") == 6
    assert ev("{i.sku: i.qty for i in item.body['items']}") == {"x": 2, "y": 3}
    assert ev("[k for k, v in item.body.items()]") == ["total", "items"]
    assert ev("[(a, b) for a in [1, 2] for b in 'xy' if a > 1]") == [[2, "x"], [2, "y"]]
    assert ev("[[a, b] for a, [b, c] in [[1, [2, 3]]]]") == [[1, 2]]
    assert ev("[k for k in item.body]") == ["total", "items"]
    assert ev("[c for c in 'ab']") == ["a", "b"]
    assert ev("[i for i, t in enumerate(item.tags) if t == 'a']") == [1]


def test_comprehension_variables_shadow_only_inside() -> None:
    assert ev("[item for item in [1, 2]] + [item.total]") == [1, 2, 150]
    assert ev("[[x for x in [x, x]] for x in [1, 2]]") == [[1, 1], [2, 2]]
    assert ev("[[x for x in [0]] + [x] for x in [1, 2]]") == [[0, 1], [0, 2]]
    assert ev("[[k for k in 'ab'] for k in [1]]") == [["a", "b"]]


def test_comprehension_errors() -> None:
    refused("[a for a, b in [[1]]]", "cannot unpack a list into 2 names")
    refused("[x for x in 5]", "'for … in' needs a list, string or object, not a number")
    refused("{x: 1 for x in [1]}", "object keys must be strings")


# ---------------------------------------------------------------- f-strings


def test_f_strings_render_values_like_templates() -> None:
    assert (
        ev("f'{item.total}-{item.flag}-{item.nothing}-{item.tags[:1]}'") == '150-false-null-["b"]'
    )
    assert ev("f'plain'") == "plain"


# ---------------------------------------------------------------- every function


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        # len
        ("len(item.tags)", 3),
        ("len('abc')", 3),
        ("len(item.body)", 2),
        # str: strings as they are, everything else as JSON
        ("str(item.total)", "150"),
        ("str(1.5)", "1.5"),
        ("str(True)", "true"),
        ("str(None)", "null"),
        ("str(item.tags)", '["b","a","c"]'),
        ("str({'a': 1})", '{"a":1}'),
        ("str('x')", "x"),
        ("str()", ""),
        # int, float, bool
        ("int('42')", 42),
        ("int(' -7 ')", -7),
        ("int(3.9)", 3),
        ("int(True)", 1),
        ("int()", 0),
        ("float('1.5')", 1.5),
        ("float(2)", 2.0),
        ("float()", 0.0),
        ("bool('')", False),
        ("bool([0])", True),
        ("bool()", False),
        # round, abs
        ("round(2.675, 2)", 2.67),
        ("round(2.5)", 2),
        ("round(1234, -2)", 1200),
        ("abs(-3)", 3),
        ("abs(-1.5)", 1.5),
        # min, max, sum
        ("min(3, 1, 2)", 1),
        ("min(item.tags)", "a"),
        ("max([1, 5, 2])", 5),
        ("max('abc')", "c"),
        ("sum([1, 2, 3.5])", 6.5),
        ("sum([1, 2], 10)", 13),
        ("sum([])", 0),
        # sorted, reversed
        ("sorted(item.tags)", ["a", "b", "c"]),
        ("sorted(item.tags, reverse=True)", ["c", "b", "a"]),
        ("sorted({'b': 1, 'a': 2})", ["a", "b"]),
        ("reversed([1, 2, 3])", [3, 2, 1]),
        ("reversed('abc')", "cba"),
        # any, all
        ("any([0, '', 1])", True),
        ("any([])", False),
        ("all([1, 'x'])", True),
        ("all([1, 0])", False),
        # range, list, enumerate, zip
        ("range(3)", [0, 1, 2]),
        ("range(1, 7, 2)", [1, 3, 5]),
        ("range(3, 0, -1)", [3, 2, 1]),
        ("list('ab')", ["a", "b"]),
        ("list(item.body)", ["total", "items"]),
        ("list()", []),
        ("enumerate(['a', 'b'])", [[0, "a"], [1, "b"]]),
        ("enumerate(['a'], 1)", [[1, "a"]]),
        ("zip([1, 2, 3], 'ab')", [[1, "a"], [2, "b"]]),
        ("zip()", []),
        # to_json, from_json
        ("to_json('a')", '"a"'),
        ("to_json({'a': [1, None]})", '{"a":[1,null]}'),
        ("from_json('{\"a\": [1, 2.5, null, true]}')", {"a": [1, 2.5, None, True]}),
    ],
)
def test_functions(expression: str, expected: Any) -> None:
    result = ev(expression)
    assert result == expected
    assert type(result) is type(expected)


def test_every_function_is_tested() -> None:
    tested = {
        "len", "str", "int", "float", "bool", "round", "abs", "min", "max", "sum", "sorted",
        "reversed", "any", "all", "range", "list", "enumerate", "zip", "to_json", "from_json",
    }  # fmt: skip
    assert set(HELPERS) == tested


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("len(1)", "len\\(\\) needs a string, list or object, not a number"),
        ("int('1.5')", "not an integer"),
        ("int('9' * 5000)", "more than 4300 digits"),
        ("int(None)", "int\\(\\) needs a number or string"),
        ("int(float('1e308') * 10)", "number too large"),
        ("float('nan')", "not a finite number"),
        ("float('inf')", "not a finite number"),
        ("float('x')", "not a number"),
        ("float([])", "float\\(\\) needs a number or string"),
        ("round('1')", "round\\(\\) needs a number, not a string"),
        ("round(1.5, 1000)", "ndigits must be between -100 and 100"),
        ("round(1.5, 'a')", "needs an integer"),
        ("abs('a')", "abs\\(\\) needs a number"),
        ("min([])", "min\\(\\) of an empty list"),
        ("max(1)", "max\\(\\) needs a list, string or object"),
        ("sum(['a'])", "sum\\(\\) of a list needs a number"),
        ("sum([[1]], [])", "sum\\(\\)'s start needs a number"),
        ("sorted([1, 'a'])", "'<' not supported"),
        ("sorted([1], reverse=1)", "reverse must be true or false"),
        ("range()", "range\\(\\) takes 1 to 3 integers"),
        ("range(1.5)", "range\\(\\) needs an integer"),
        ("range(0, 10, 0)", "must not be zero"),
        ("enumerate([], 'a')", "start needs an integer"),
        ("from_json('{')", "from_json\\(\\): Expecting property name"),
        ("from_json('NaN')", "NaN is not JSON"),
        ("from_json(1)", "from_json\\(\\) needs a string"),
        ("to_json(from_json('[' * 5000 + ']' * 5000))", "nested too deeply"),
    ],
)
def test_function_errors(expression: str, message: str) -> None:
    refused(expression, message)


# ---------------------------------------------------------------- every method


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("'AbC'.lower()", "abc"),
        ("'AbC'.upper()", "ABC"),
        ("'ann lee'.title()", "Ann Lee"),
        ("'ann lee'.capitalize()", "Ann lee"),
        ("item.name.strip()", "Ann Lee"),
        ("'xxaxx'.strip('x')", "a"),
        ("item.name.lstrip()", "Ann Lee "),
        ("item.name.rstrip()", " Ann Lee"),
        ("'--a'.lstrip('-')", "a"),
        ("'a--'.rstrip('-')", "a"),
        ("'hello'.startswith('he')", True),
        ("'hello'.startswith(['x', 'h'])", True),
        ("'hello'.endswith('lo')", True),
        ("'hello'.endswith(('x', 'y'))", False),
        ("item.csv.split(',')", ["a", "b", "", "c"]),
        ("item.csv.split(',', 1)", ["a", "b,,c"]),
        ("' a  b '.split()", ["a", "b"]),
        ("', '.join(item.tags)", "b, a, c"),
        ("''.join([])", ""),
        ("'a-b-c'.replace('-', '+')", "a+b+c"),
        ("'a-b-c'.replace('-', '', 1)", "ab-c"),
        ("'hello'.find('l')", 2),
        ("'hello'.find('z')", -1),
        ("'hello'.count('l')", 2),
        ("'123'.isdigit()", True),
        ("'12a'.isdigit()", False),
        ("item.body.get('total')", 5),
        ("item.body.keys()", ["total", "items"]),
        ("len(item.body.values())", 2),
        ("item.body['items'][0].items()", [["sku", "x"], ["qty", 2]]),
        ("item.tags.count('a')", 1),
        ("item.tags.index('c')", 2),
        ("(1, 2, 2).count(2)", 2),
    ],
)
def test_methods(expression: str, expected: Any) -> None:
    assert ev(expression) == expected


def test_every_method_is_tested() -> None:
    assert set(METHODS[str]) == {
        "lower", "upper", "title", "capitalize", "strip", "lstrip", "rstrip", "startswith",
        "endswith", "split", "join", "replace", "find", "count", "isdigit",
    }  # fmt: skip
    assert set(METHODS[dict]) == {"get", "keys", "values", "items"}
    assert set(METHODS[list]) == {"count", "index"}
    assert METHODS[tuple] is METHODS[list]


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("item.total.lower()", "a number has no method .lower\\(\\)"),
        ("item.tags.lower()", "a list has no method .lower\\(\\)"),
        ("'a'.keys()", "a string has no method .keys\\(\\)"),
        ("'a'.index('a')", "a string has no method .index\\(\\)"),
        ("'a,b'.split('')", "empty separator"),
        ("'a'.split(1)", "split\\(\\) needs a string"),
        ("'a'.startswith(1)", "startswith\\(\\) needs a string"),
        ("','.join([1, 2])", "join\\(\\) of a list needs a string"),
        ("'a'.replace('a', 1)", "replace\\(\\) needs a string"),
        ("item.tags.index('z')", "the value is not in the list"),
    ],
)
def test_method_errors(expression: str, message: str) -> None:
    refused(expression, message)


@pytest.mark.parametrize(
    ("expression", "column"),
    [
        ("item.total +", 12),  # the parser reports the end
        ("item.total + )", 13),
        ("item.total + secret", 13),  # an unknown name, where it starts
        ("'é' + 'é' + nope", 12),  # characters, not UTF-8 bytes
        ("(item.total +\n  bad_name)", 16),  # the second line, counted in the whole text
        ("item.format()", 0),  # a refused method: the call's node starts the expression
    ],
)
def test_a_compile_error_knows_its_character_in_the_expression(
    expression: str, column: int
) -> None:
    with pytest.raises(ExpressionError) as caught:
        ev(expression)
    assert caught.value.column == column


def test_an_evaluation_error_has_no_column() -> None:
    with pytest.raises(ExpressionError) as caught:
        ev("item.missing")
    assert caught.value.column is None
