"""The mutation tool's mutants: one change each, mutmut's operators, the rest of the file intact."""

from __future__ import annotations

import ast
import textwrap

from tests.mutation.mutants import make_mutants

SOURCE = textwrap.dedent(
    '''\
    """A module docstring is never mutated."""

    LIMIT: int = 3


    def clamp(value: int, flag: bool = True) -> int:
        """Nor is a function's."""
        if value > LIMIT and flag:
            return LIMIT
        total = value + 1
        total -= 2
        print("counted")
        return total
    '''
)


def _by_description(source: str) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for mutant in make_mutants(source):
        changed = [
            line
            for line in mutant.diff.splitlines()
            if line.startswith("+") and not line.startswith("+++")
        ]
        found.setdefault(mutant.description, []).extend(changed)
    return found


def test_each_operator_makes_its_change_on_its_own_line() -> None:
    found = _by_description(SOURCE)
    assert found["'>' -> '>='"] == ["+    if value >= LIMIT and flag:"]
    assert found["'and' -> 'or'"] == ["+    if value > LIMIT or flag:"]
    assert found["'+' -> '-'"] == ["+    total = value - 1"]
    assert found["'-' -> '+'"] == ["+    total += 2"]
    assert found["return None"] == ["+        return None", "+    return None"]
    assert found["True -> False"] == ["+def clamp(value: int, flag: bool = False) -> int:"]
    assert found["3 -> 4"] == ["+LIMIT: int = 4"]
    assert found["1 -> 2"] == ["+    total = value + 2"]
    assert found["string -> 'XX…XX'"] == ["+    print('XXcountedXX')"]
    assert found["remove statement"] == ["+    pass", "+    pass"]  # the -= and the call


def test_docstrings_and_annotations_make_no_mutant() -> None:
    for mutant in make_mutants(SOURCE):
        assert "docstring" not in mutant.diff
        assert "mutated" not in mutant.diff
        assert "-> None:" not in mutant.diff


def test_every_mutant_parses_and_differs_from_the_module_only_where_it_says() -> None:
    original = ast.parse(SOURCE)
    for mutant in make_mutants(SOURCE):
        mutated = ast.parse(mutant.source)
        assert ast.dump(mutated) != ast.dump(original), mutant.description
        before, after = SOURCE.splitlines(), mutant.source.splitlines()
        changed = {n for n, (a, b) in enumerate(zip(before, after, strict=True), 1) if a != b}
        assert changed <= set(range(mutant.line, mutant.end_line + 1)), mutant.description


def test_a_node_whose_text_needs_brackets_gets_them() -> None:
    # `not (a and b)` -> `(a and b)`: the operand's own brackets come from outside its span.
    [mutant] = [m for m in make_mutants("x = not (a and b)\n") if m.description == "'not x' -> 'x'"]
    assert ast.dump(ast.parse(mutant.source)) == ast.dump(ast.parse("x = (a and b)\n"))


def test_a_line_marked_no_mutate_makes_no_mutant() -> None:
    mutants = make_mutants("A = 1  # pragma: no mutate\nB = 2\n")
    assert {m.line for m in mutants} == {2}


def test_mutants_name_their_function() -> None:
    source = "class C:\n    def m(self):\n        return 1\n\ndef f():\n    return 2\n"
    assert {(m.function, m.description) for m in make_mutants(source)} == {
        ("C.m", "return None"),
        ("C.m", "1 -> 2"),
        ("f", "return None"),
        ("f", "2 -> 3"),
    }
