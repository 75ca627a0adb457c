"""The mutants of one module's source, made on its syntax tree with mutmut-like operators.

Each mutant changes one node. Its source is the module's text with only that node's span
rewritten, so its diff is the one line (or few) it changes; the splice is checked against the
tree it stands for, and the node parenthesised when the plain text would parse otherwise.
"""

from __future__ import annotations

import ast
import copy
import difflib
from collections.abc import Callable, Iterator
from dataclasses import dataclass

# A line with this comment makes no mutant (mutmut's convention, so marked lines keep working).
NO_MUTATE = "pragma: no mutate"

_COMPARE_SWAPS: dict[type[ast.cmpop], type[ast.cmpop]] = {
    ast.Eq: ast.NotEq,
    ast.NotEq: ast.Eq,
    ast.Lt: ast.LtE,
    ast.LtE: ast.Lt,
    ast.Gt: ast.GtE,
    ast.GtE: ast.Gt,
    ast.Is: ast.IsNot,
    ast.IsNot: ast.Is,
    ast.In: ast.NotIn,
    ast.NotIn: ast.In,
}
_ARITHMETIC_SWAPS: dict[type[ast.operator], type[ast.operator]] = {
    ast.Add: ast.Sub,
    ast.Sub: ast.Add,
    ast.Mult: ast.Div,
    ast.Div: ast.Mult,
    ast.FloorDiv: ast.Div,
    ast.Mod: ast.Div,
    ast.Pow: ast.Mult,
    ast.BitOr: ast.BitAnd,
    ast.BitAnd: ast.BitOr,
    ast.BitXor: ast.BitAnd,
    ast.LShift: ast.RShift,
    ast.RShift: ast.LShift,
}
_SYMBOLS: dict[type[ast.AST], str] = {
    ast.Eq: "==",
    ast.NotEq: "!=",
    ast.Lt: "<",
    ast.LtE: "<=",
    ast.Gt: ">",
    ast.GtE: ">=",
    ast.Is: "is",
    ast.IsNot: "is not",
    ast.In: "in",
    ast.NotIn: "not in",
    ast.Add: "+",
    ast.Sub: "-",
    ast.Mult: "*",
    ast.Div: "/",
    ast.FloorDiv: "//",
    ast.Mod: "%",
    ast.Pow: "**",
    ast.BitOr: "|",
    ast.BitAnd: "&",
    ast.BitXor: "^",
    ast.LShift: "<<",
    ast.RShift: ">>",
    ast.And: "and",
    ast.Or: "or",
}


@dataclass(frozen=True)
class Mutant:
    """One change to the module: where, what, the whole changed source and its diff."""

    number: int
    function: str  # the enclosing def's qualified name, or "<module>"
    line: int
    end_line: int
    description: str
    source: str
    diff: str


# A mutation: given a copy of the node, answer its replacement (None: no mutant here).
Mutation = Callable[[ast.AST], ast.AST | None]


@dataclass(frozen=True)
class _Site:
    path: tuple[tuple[str, int | None], ...]  # from the module down: (field, index in a list)
    node: ast.AST
    function: str
    description: str
    mutate: Mutation


def make_mutants(source: str, filename: str = "<module>") -> list[Mutant]:
    """Every mutant of ``source``, numbered from 1 in the order of the text."""
    tree = ast.parse(source, filename)
    lines = source.splitlines(keepends=True)
    skipped_lines = {n for n, text in enumerate(lines, start=1) if NO_MUTATE in text}
    mutants: list[Mutant] = []
    for site in _sites(tree):
        if site.node.lineno in skipped_lines:  # type: ignore[attr-defined]
            continue
        mutated_text = _splice(source, tree, site)
        if mutated_text is None:
            continue
        mutants.append(
            Mutant(
                number=len(mutants) + 1,
                function=site.function,
                line=site.node.lineno,  # type: ignore[attr-defined]
                end_line=site.node.end_lineno or site.node.lineno,  # type: ignore[attr-defined]
                description=site.description,
                source=mutated_text,
                diff=_diff(source, mutated_text, filename),
            )
        )
    return mutants


def _splice(source: str, tree: ast.Module, site: _Site) -> str | None:
    """The source with the site's node rewritten, or None when the mutation changes nothing."""
    replacement = site.mutate(copy.deepcopy(site.node))
    if replacement is None:
        return None
    expected = _dump(_replace_at(copy.deepcopy(tree), site.path, replacement))
    if expected == _dump(tree):
        return None
    text = ast.unparse(replacement)
    for candidate in (text, f"({text})"):
        spliced = _replace_span(source, site.node, candidate)
        try:
            if _dump(ast.parse(spliced)) == expected:
                return spliced
        except SyntaxError:
            continue
    # The node's span cannot carry the change (rare: an expression split over lines with comments);
    # the whole module unparsed still stands for exactly this mutant.
    return ast.unparse(_replace_at(copy.deepcopy(tree), site.path, replacement)) + "\n"


def _replace_span(source: str, node: ast.AST, text: str) -> str:
    lines = source.splitlines(keepends=True)
    start_line, end_line = node.lineno - 1, (node.end_lineno or node.lineno) - 1  # type: ignore[attr-defined]
    # Offsets are in UTF-8 bytes.
    first = lines[start_line].encode()
    last = lines[end_line].encode()
    before = first[: node.col_offset].decode()  # type: ignore[attr-defined]
    after = last[node.end_col_offset :].decode()  # type: ignore[attr-defined]
    return "".join([*lines[:start_line], before, text, after, *lines[end_line + 1 :]])


def _dump(tree: ast.AST) -> str:
    return ast.dump(tree, include_attributes=False)


def _replace_at(
    tree: ast.Module, path: tuple[tuple[str, int | None], ...], replacement: ast.AST
) -> ast.Module:
    parent: ast.AST = tree
    for field, index in path[:-1]:
        value = getattr(parent, field)
        parent = value if index is None else value[index]
    field, index = path[-1]
    if index is None:
        setattr(parent, field, replacement)
    else:
        getattr(parent, field)[index] = replacement
    return tree


def _diff(before: str, after: str, filename: str) -> str:
    return "".join(
        difflib.unified_diff(
            before.splitlines(keepends=True),
            after.splitlines(keepends=True),
            fromfile=filename,
            tofile=filename,
            n=0,
        )
    )


def _sites(tree: ast.Module) -> Iterator[_Site]:
    yield from _walk(tree, (), "<module>")


def _walk(
    node: ast.AST, path: tuple[tuple[str, int | None], ...], function: str
) -> Iterator[_Site]:
    if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
        function = node.name if function == "<module>" else f"{function}.{node.name}"
    for field, value in ast.iter_fields(node):
        if _is_not_code(node, field):
            continue
        children: list[tuple[int | None, ast.AST]] = []
        if isinstance(value, ast.AST):
            children = [(None, value)]
        if isinstance(value, list):
            children = [(i, v) for i, v in enumerate(value) if isinstance(v, ast.AST)]
        for index, child in children:
            child_path = (*path, (field, index))
            if _is_docstring(node, field, index):
                continue
            for description, mutate in _mutations(child):
                yield _Site(child_path, child, function, description, mutate)
            yield from _walk(child, child_path, function)


def _is_not_code(node: ast.AST, field: str) -> bool:
    """Type annotations, decorators and f-string parts: nothing a test could catch, or no text."""
    if field in {"annotation", "returns", "decorator_list", "type_comment"}:
        return True
    if isinstance(node, ast.JoinedStr):
        return True
    return isinstance(node, ast.If) and field == "body" and _is_type_checking(node.test)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _is_docstring(node: ast.AST, field: str, index: int | None) -> bool:
    if field != "body" or index != 0:
        return False
    if not isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
        return False
    first = node.body[0]
    return (
        isinstance(first, ast.Expr)
        and isinstance(first.value, ast.Constant)
        and isinstance(first.value.value, str)
    )


def _mutations(node: ast.AST) -> Iterator[tuple[str, Mutation]]:
    if isinstance(node, ast.Compare):
        for position, op in enumerate(node.ops):
            swapped = _COMPARE_SWAPS.get(type(op))
            if swapped is not None:
                yield _op_label(op, swapped), _compare_swap(position, swapped)
    elif isinstance(node, ast.BoolOp):
        other: type[ast.boolop] = ast.Or if isinstance(node.op, ast.And) else ast.And
        yield _op_label(node.op, other), _with(op=other())
    elif isinstance(node, ast.BinOp | ast.AugAssign):
        swapped_op = _ARITHMETIC_SWAPS.get(type(node.op))
        if swapped_op is not None:
            yield _op_label(node.op, swapped_op), _with(op=swapped_op())
    elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
        yield "'not x' -> 'x'", lambda n: n.operand  # type: ignore[attr-defined]
    elif isinstance(node, ast.Constant):
        yield from _constant_mutations(node)
    if isinstance(node, ast.Return) and node.value is not None and not _is_none(node.value):
        yield "return None", _with(value=ast.Constant(None))
    if isinstance(node, ast.Assign | ast.AnnAssign) and node.value and not _is_none(node.value):
        yield "assign None", _with(value=ast.Constant(None))
    if isinstance(node, ast.Break):
        yield "break -> continue", lambda n: ast.Continue()
    elif isinstance(node, ast.Continue):
        yield "continue -> break", lambda n: ast.Break()
    if isinstance(node, ast.AugAssign | ast.Raise | ast.Delete) or (
        isinstance(node, ast.Expr) and not isinstance(node.value, ast.Constant)  # `...`: no-op
    ):
        yield "remove statement", lambda n: ast.Pass()


def _constant_mutations(node: ast.Constant) -> Iterator[tuple[str, Mutation]]:
    value = node.value
    if isinstance(value, bool):
        yield f"{value} -> {not value}", _with(value=not value)
    elif isinstance(value, int | float):
        yield f"{value} -> {value + 1}", _with(value=value + 1)
    elif isinstance(value, str) and value:
        yield "string -> 'XX…XX'", _with(value=f"XX{value}XX")


def _is_none(node: ast.expr) -> bool:
    return isinstance(node, ast.Constant) and node.value is None


def _op_label(old: ast.AST, new: type[ast.AST]) -> str:
    return f"'{_SYMBOLS[type(old)]}' -> '{_SYMBOLS[new]}'"


def _with(**fields: object) -> Mutation:
    def mutate(node: ast.AST) -> ast.AST:
        for name, value in fields.items():
            setattr(node, name, value)
        return node

    return mutate


def _compare_swap(position: int, swapped: type[ast.cmpop]) -> Mutation:
    def mutate(node: ast.AST) -> ast.AST:
        assert isinstance(node, ast.Compare)
        node.ops[position] = swapped()
        return node

    return mutate
