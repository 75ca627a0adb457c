"""Save-time checks of a ``code`` node's Python source (docs/nodes.md, "code").

Only compiled, never run: a syntax error, or a source without a top-level ``def main``, is
refused when the workflow is saved, with the line, rather than failing every execution later.
Compiling is bounded: the source is at most :data:`MAX_SOURCE_CHARS` characters, and CPython's
compiler has its own nesting limits (deeper code is a ``SyntaxError`` or ``RecursionError``,
both reported as problems here).
"""

from __future__ import annotations

import ast

#: The file name user code runs under: its tracebacks name it, and only its frames are shown.
CODE_FILENAME = "<code>"
#: The longest source a ``code`` node may hold.
MAX_SOURCE_CHARS = 100_000
#: The function a source must define.
ENTRY_FUNCTION = "main"


def source_problem(source: str) -> str | None:
    """Why ``source`` cannot run as a ``code`` node, or None. Names the line when it can."""
    try:
        tree = ast.parse(source, CODE_FILENAME, "exec")
        # The AST alone misses errors the compiler finds later ("'return' outside function",
        # "nonlocal" misuse): compile the tree too (constant folding is bounded by CPython).
        compile(tree, CODE_FILENAME, "exec", dont_inherit=True)
    except SyntaxError as error:
        where = f"line {error.lineno}" if error.lineno else "somewhere"
        if error.offset:
            where += f", column {error.offset}"
        return f"{where}: {error.msg}"
    except (RecursionError, MemoryError, ValueError):  # ValueError: a NUL in the source
        return "the source cannot be compiled (nested too deeply, or holds a NUL character)"
    if not any(
        isinstance(statement, ast.FunctionDef) and statement.name == ENTRY_FUNCTION
        for statement in tree.body
    ):
        return f"the source must define a top-level function `def {ENTRY_FUNCTION}(...)`"
    return None
