"""What a failed expression looks like to the runner (a node error) and to the API (a problem)."""

from __future__ import annotations

from dataclasses import dataclass

# Error messages quote the expression; a 10,000-character one would drown the reason.
_SHOWN_CHARS = 200


def shorten(text: str, limit: int = _SHOWN_CHARS) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


class ExpressionError(Exception):
    """An expression could not be compiled or evaluated.

    ``str(error)`` names the expression (docs/nodes.md, "Expressions": the node fails with type
    ``ExpressionError`` and a message naming the expression). ``expression`` is empty only for
    problems of the parameter value around the expressions (nested too deeply).
    """

    def __init__(
        self, expression: str, message: str, *, syntax: bool = False, column: int | None = None
    ) -> None:
        # Both go to Exception.args so the error pickles and copies like any exception.
        super().__init__(expression, message)
        self.expression = expression
        self.message = message
        #: The text does not parse (in a template: perhaps a "}}" inside it ended it early).
        self.syntax = syntax
        #: Where in ``expression`` the problem is (0-based characters), when the compiler knows:
        #: an editor marks it there. None for failures of evaluation (the data's fault).
        self.column = column

    def __str__(self) -> str:
        if not self.expression:
            return self.message
        return f"{self.message} in expression {{{{ {shorten(self.expression)} }}}}"


class BudgetExceeded(ExpressionError):  # noqa: N818 - reads as what happened, like the others
    """The work budget shared by a node attempt's renders (:class:`Budget`) ran out: the
    attempt as a whole did too much work, whichever expression happened to take the last
    step."""


@dataclass(frozen=True, slots=True)
class ExpressionProblem:
    """One save-time problem: where it is inside the checked value, and what is wrong.

    ``path`` continues a FastAPI ``loc``: the API prefixes it with
    ``["nodes", i, "parameters"]``.
    """

    path: tuple[str | int, ...]
    expression: str
    message: str

    @classmethod
    def from_error(cls, path: tuple[str | int, ...], error: ExpressionError) -> ExpressionProblem:
        return cls(path, error.expression, str(error))
