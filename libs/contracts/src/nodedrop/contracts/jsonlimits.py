"""The shape every JSON document the engine accepts must have, checked where it comes in.

**Depth.** No document (a request body, a webhook body as the trigger's output, a node's output
``{port: [items]}``) nests more than :data:`MAX_JSON_DEPTH` levels of arrays and objects: ``{}``
is one level, ``{"a": [1]}`` two. Deeper data would be stored and then break every read (the
API's response models refuse to serialize beyond 255 levels; a JSON decoder's recursion limit
is about 1,000), so it is refused before anything is recorded. 64 is the default of common JSON
parsers (System.Text.Json), far above what real data needs, and leaves room for what the API
wraps around stored data (a response nests an output about four levels deeper).

**NUL.** No string (nor object key) in the data of a request contains the NUL character
(``\\u0000``): PostgreSQL's ``jsonb`` and ``text`` cannot store it, so the projection would
have to change it, and the data would differ between the event log and the projection.

Both checks are iterative, so any depth is safe to check.
"""

from __future__ import annotations

from typing import Any, Final, NamedTuple

MAX_JSON_DEPTH: Final = 64

Path = list[str | int]

#: (container, its depth, its key in its parent, the parent's entry): enough to rebuild the
#: path of a problem without building a path for every container.
_Entry = tuple[Any, int, "str | int | None", "_Entry | None"]


def _path(entry: _Entry | None) -> Path:
    path: Path = []
    while entry is not None and entry[3] is not None:
        key = entry[2]
        assert key is not None
        path.append(key)
        entry = entry[3]
    path.reverse()
    return path


def _walk(value: Any, max_depth: int, nul: bool) -> tuple[Path, str] | None:
    if isinstance(value, str):
        return ([], "nul") if nul and "\x00" in value else None
    if not isinstance(value, dict | list):
        return None
    stack: list[_Entry] = [(value, 1, None, None)]
    while stack:
        entry = stack.pop()
        container, depth, _, _ = entry
        if depth > max_depth:
            return _path(entry), "depth"
        pairs = container.items() if isinstance(container, dict) else enumerate(container)
        for key, child in pairs:
            if nul and isinstance(key, str) and "\x00" in key:
                return [*_path(entry), key], "nul"
            if isinstance(child, dict | list):
                stack.append((child, depth + 1, key, entry))
            elif nul and isinstance(child, str) and "\x00" in child:
                return [*_path(entry), key], "nul"
    return None


def too_deep(value: Any, max_depth: int = MAX_JSON_DEPTH) -> Path | None:
    """The path to an array or object nested deeper than ``max_depth`` levels, or None."""
    found = _walk(value, max_depth, nul=False)
    return found[0] if found is not None else None


class JsonProblem(NamedTuple):
    path: Path
    #: ``too_deep`` or ``nul_character``
    kind: str
    message: str


def json_problem(value: Any, max_depth: int = MAX_JSON_DEPTH) -> JsonProblem | None:
    """What a document from outside may not be: the first container nested deeper than
    ``max_depth`` or string (or key) holding a NUL character, or None."""
    found = _walk(value, max_depth, nul=True)
    if found is None:
        return None
    path, kind = found
    if kind == "depth":
        return JsonProblem(path, "too_deep", depth_message(max_depth))
    return JsonProblem(path, "nul_character", NUL_MESSAGE)


def depth_message(max_depth: int = MAX_JSON_DEPTH) -> str:
    return f"JSON nested deeper than {max_depth} levels of arrays and objects"


NUL_MESSAGE: Final = "contains a NUL character (\\u0000), which cannot be stored"


def describe(path: Path) -> str:
    """``path`` as text for a message: ``main[0].a.b``."""
    text = ""
    for key in path:
        text += f"[{key}]" if isinstance(key, int) else (f".{key}" if text else key)
    return text or "(top level)"
