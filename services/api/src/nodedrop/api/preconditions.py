"""``If-Match`` on a workflow's version: a save based on an older version is refused (409).

A workflow's entity tag is its version, ``"3"``. ``If-Match`` may carry one tag or several
(``"3", "4"``), weak ones (``W/"3"``) and bare numbers (``3``) count the same, and ``*`` matches
any version. Without the header a save is not checked, as before it existed.
"""

from __future__ import annotations

import re

from nodedrop.api.errors import UnprocessableError, problem

_LOC = ("header", "if-match")
_TAG = re.compile(r'^(?:W/)?(?:"([0-9]{1,10})"|([0-9]{1,10}))$')


def etag(version: int) -> str:
    return f'"{version}"'


def expected_versions(if_match: str | None) -> frozenset[int] | None:
    """The versions ``If-Match`` allows, or None when any version will do (no header, ``*``)."""
    if if_match is None or if_match.strip() == "*":
        return None
    versions = set()
    for tag in if_match.split(","):
        matched = _TAG.match(tag.strip())
        if matched is None:
            raise UnprocessableError(
                [
                    problem(
                        _LOC,
                        'If-Match must name the version the change is based on, e.g. "3"',
                        "value_error",
                    )
                ]
            )
        versions.add(int(matched.group(1) or matched.group(2)))
    return frozenset(versions)
