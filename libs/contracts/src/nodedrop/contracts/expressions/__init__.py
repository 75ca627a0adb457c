"""``{{ … }}`` expressions in node parameters (docs/nodes.md), in a restricted evaluator.

Why our own evaluator and not a library such as ``simpleeval``: this is the one place where
workflow authors' text runs inside our services, and n8n's in-process sandboxes were escaped
many times (CVEs of 2025 and 2026). simpleeval allows attribute access by default and blocks
by blacklist, and has had escapes that way (through generator frames, simpleeval issue #138, and
``str.format``); it also has no overall work budget. A whitelist over ``ast`` node types, exact
value types and a fixed table of functions fits in these few modules, read in full, with no
dependency, and every refusal is ours to test.

API:

- ``render(value, scope, budget=None) -> Any``: a parameter value rendered for one item
  (below); ``budget`` (a :class:`Budget`) is shared by all the renders of one node attempt.
- ``evaluate(expression, scope) -> Any``: one bare expression, without braces.
- ``check_syntax(value) -> list[ExpressionProblem]``: save-time check; each problem has the
  ``path`` inside ``value``, the ``expression`` and a ``message``. Nothing is evaluated.
- ``compile_template(text)``, ``compile_expression(source)``: the cached compiled forms.
- ``contains_expression(value) -> bool``, ``make_scope(item, nodes, execution) -> dict``.
- ``ExpressionError(expression, message)``: every failure, compile or run; ``str()`` names the
  expression. ``BudgetExceeded``, a subclass: the shared :class:`Budget` ran out.

How it works. ``ast.parse(text, mode="eval")`` parses; :mod:`.compiler` walks the tree once,
refuses any node type, name, attribute or call outside the whitelist, and builds closures that
evaluate it. Nothing is passed to ``eval``/``exec``/``compile``, and no attribute is ever looked
up on a value: ``x.name`` reads a dict key, ``x.name(...)`` runs a method from a fixed table
chosen by the value's exact type. Compiled templates and expressions are cached by source.

Templates (:func:`render`):

- A string that is exactly ``{{ expr }}`` (no text, not even spaces, around it) renders to the
  expression's value, of any JSON type.
- A string with text around one or more ``{{ }}`` renders to a string: strings as they are,
  ``true``/``false``/``null`` for booleans and None, numbers as JSON (``3``, ``1.5``), lists and
  objects as compact JSON (``{"a":1}``). ``str(x)`` and f-strings render the same way (so
  ``str(True)`` is ``true``, unlike Python).
- Strings without ``{{`` are literals. A literal ``{{`` is written ``{{ "{{" }}``. An expression
  may contain ``}}``: each ``{{`` ends at the first ``}}`` that closes a valid expression.
- Dicts and lists are rendered recursively (values only, never keys); containers are copied.

Scope: ``item`` (the current item), ``nodes`` (``nodes["id"]["main"]``: an earlier node's
items per port), ``execution`` (``id``, ``trigger``).

Language: a Python expression subset over JSON values. Constants (strings, numbers,
``True``/``False``/``None``), lists, tuples (which are lists), objects with string keys,
``+ - * / // % **``, comparisons (``is`` only with None/True/False), ``and``/``or``/``not``,
``a if c else b``, indexing and slicing, f-strings without format specs, and list/dict
comprehensions and generator expressions (which build lists). ``obj.key`` is ``obj["key"]`` for
objects (the sugar that makes ``item.total > 100`` read well); a missing key is an error (use
``item.get("key")``). Functions: ``len str int float bool round abs min max sum sorted reversed
any all range list enumerate zip to_json from_json``. Methods: on strings ``lower upper title
capitalize strip lstrip rstrip startswith endswith split join replace find count isdigit``; on
objects ``get keys values items``; on lists ``count index``.

Refused at compile (save) time: any name other than the scope's, the functions and
comprehension variables; any name, attribute or keyword starting with ``_`` (so no dunders);
methods not listed (``format``, ``format_map``, ``__len__`` …); calling anything but a listed
function or method; lambda, ``:=``, ``*``/``**`` unpacking, sets, bitwise operators,
``yield``/``await``, f-string conversions and format specs. ``item["__class__"]`` is allowed:
it looks up that key in the item's data (objects are data), which no Python attribute can reach.
Refused when evaluated: ``%`` on strings, non-string object keys, non-finite numbers.

Bounds (:mod:`.limits`): expressions of at most 10,000 characters and 100 levels of nesting
(deeper input is refused with an :class:`ExpressionError`, never a ``RecursionError``); strings of
at most 1,000,000 characters and lists/objects of at most 100,000 elements, checked BEFORE the
result is built (``"a" * 10**9``, ``range(10**12)``, ``[0] * 10**9`` never allocate); integers
from ``*`` and ``**`` of at most 10,000 bits, sized by logarithm before computing (``2 ** 10**9``);
a budget of 100,000 steps per :func:`render` call, and one of 10,000,000 steps per
:class:`Budget`, shared by every render it is given (the runner gives one to each node attempt,
so an attempt's work is bounded whatever its number of items). Every evaluated syntax node
costs a step, a comprehension's body costs its steps on every iteration, and work proportional
to data costs with the data: a step per element copied, compared or built, a step per 64
characters of string work, deep comparisons and JSON by the full size of the values. So the
wall-clock time of any render is bounded by the budget times the cost of the costliest step,
with no timer or thread needed to stop it: the slowest expressions we found (string methods
over 1 MB strings, big integers, comprehensions of many iterations) stop with "too much work"
within about 20 ms, and a condition like ``{{ item.total > 100 }}`` renders in about 1 µs
once compiled (~20 µs to compile).
"""

from nodedrop.contracts.expressions.compiler import (
    SCOPE_NAMES,
    CompiledExpression,
    compile_expression,
)
from nodedrop.contracts.expressions.errors import (
    BudgetExceeded,
    ExpressionError,
    ExpressionProblem,
)
from nodedrop.contracts.expressions.helpers import HELPERS, METHODS
from nodedrop.contracts.expressions.references import ANY_NODE, referenced_nodes
from nodedrop.contracts.expressions.runtime import Budget
from nodedrop.contracts.expressions.templates import (
    Template,
    check_syntax,
    compile_template,
    contains_expression,
    evaluate,
    make_scope,
    render,
)

__all__ = [
    "ANY_NODE",
    "HELPERS",
    "METHODS",
    "SCOPE_NAMES",
    "Budget",
    "BudgetExceeded",
    "CompiledExpression",
    "ExpressionError",
    "ExpressionProblem",
    "Template",
    "check_syntax",
    "compile_expression",
    "compile_template",
    "contains_expression",
    "evaluate",
    "make_scope",
    "referenced_nodes",
    "render",
]
