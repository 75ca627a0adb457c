"""The bounds every evaluation runs within. One place, so the docs and the tests quote them."""

from typing import Final

#: Characters of one expression (between ``{{`` and ``}}``).
MAX_EXPRESSION_LENGTH: Final = 10_000
#: Nesting of the expression's syntax tree (brackets, operators, calls, attribute chains).
MAX_DEPTH: Final = 100
#: Generators (``for`` clauses) in one comprehension; each is one level of Python recursion.
MAX_GENERATORS: Final = 8
#: Work units per :func:`render` call (see the package docstring for what costs a step). This
#: also bounds how long one render runs without a break (tens of milliseconds).
MAX_STEPS: Final = 100_000
#: Work units per :class:`Budget`: every render of one node attempt, over all its items,
#: together (the runner gives each attempt one). Everyday expressions cost 5 to 20 steps an
#: item, so this is 100,000 items at 100 steps each, and a few seconds of CPU at most.
MAX_ATTEMPT_STEPS: Final = 10_000_000
#: Characters of any string an expression produces, including rendered templates.
MAX_STRING_LENGTH: Final = 1_000_000
#: Elements of any list or object an expression produces.
MAX_ITEMS: Final = 100_000
#: Bits of an integer produced by ``*`` or ``**`` (about 3,000 decimal digits).
MAX_INT_BITS: Final = 10_000
#: String work is charged one step per this many characters (scanning is cheap, nodes are not).
CHARS_PER_STEP: Final = 64
#: Nesting of the parameter value holding templates (dicts and lists around the strings).
MAX_VALUE_DEPTH: Final = 200
#: ``round(x, n)``: ``abs(n)`` at most this; ``round(1, -10**9)`` would build a huge power of ten.
MAX_ROUND_DIGITS: Final = 100
