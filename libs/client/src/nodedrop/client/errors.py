"""Exceptions for the API's error answers, carrying its problem details.

The API answers an error with ``{"detail": "message"}`` or, for invalid input (422),
``{"detail": [{"loc", "msg", "type"}, ...]}``: one entry per problem. Each status has its own
exception class so that callers catch what they can handle (``except NotFound``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx


@dataclass(frozen=True)
class Problem:
    """One problem of a 422: where (``loc``, e.g. ``("body", "nodes", 1, "type")``), what."""

    loc: tuple[str | int, ...]
    message: str
    type: str = ""
    #: What the API adds for programs (``ctx``): e.g. ``{"le": 30}`` for a number over a bound.
    context: Mapping[str, Any] = field(default_factory=dict)

    @property
    def field(self) -> str:
        """``loc`` as a dotted path without the leading ``body``: ``nodes[1].type``."""
        parts: list[str] = []
        for index, part in enumerate(self.loc):
            if index == 0 and part in {"body", "query", "path"} and len(self.loc) > 1:
                continue
            if isinstance(part, int):
                parts.append(f"[{part}]")
            else:
                parts.append(f".{part}" if parts else str(part))
        return "".join(parts) or "(request)"

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"


class ClientError(Exception):
    """Base of every exception this library raises."""


class ConnectionFailed(ClientError):
    """The API could not be reached (refused, timed out, DNS)."""


class ApiError(ClientError):
    """The API answered with an error status; ``problems`` holds a 422's entries."""

    def __init__(
        self, status: int, message: str, problems: tuple[Problem, ...] = (), body: Any = None
    ) -> None:
        self.status = status
        self.message = message
        self.problems = problems
        #: The answer's JSON (e.g. a 409's ``current_version``), ``None`` if it was not JSON.
        self.body = body
        super().__init__(f"{status}: {message}")

    @property
    def field(self) -> str | None:
        """The field of the first problem (``nodes[1].type``), if the answer named one."""
        return self.problems[0].field if self.problems else None


class Unauthorized(ApiError):
    """401: missing, wrong or revoked key."""


class Forbidden(ApiError):
    """403: an admin-only route."""


class NotFound(ApiError):
    """404: unknown, or another user's."""


class Conflict(ApiError):
    """409: e.g. cancelling a finished execution, rerunning an unfinished one."""


class TooLarge(ApiError):
    """413: the request does not fit (body size, or one event)."""


class ValidationFailed(ApiError):
    """422: invalid input; ``problems`` names each field."""


class Unavailable(ApiError):
    """503: NATS or PostgreSQL unreachable; nothing was recorded."""


class WaitTimedOut(ClientError, TimeoutError):
    """The execution did not finish within the time given; ``execution`` is its last state."""

    def __init__(self, execution_id: str, timeout_s: float, execution: Any = None) -> None:
        self.execution_id = execution_id
        self.execution = execution
        super().__init__(f"execution {execution_id} did not finish within {timeout_s:g} s")


class StreamLost(ClientError):
    """Following an execution live failed for good (``code``: the last close code, if any)."""

    def __init__(self, message: str, code: int | None = None) -> None:
        self.code = code
        super().__init__(message)


_BY_STATUS: dict[int, type[ApiError]] = {
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    413: TooLarge,
    422: ValidationFailed,
    503: Unavailable,
}


def _problems(detail: list[Any]) -> tuple[Problem, ...]:
    found: list[Problem] = []
    for entry in detail:
        if isinstance(entry, dict):
            loc = entry.get("loc")
            context = entry.get("ctx")
            found.append(
                Problem(
                    loc=tuple(loc) if isinstance(loc, list) else (),
                    message=str(entry.get("msg", "")),
                    type=str(entry.get("type", "")),
                    context=context if isinstance(context, dict) else {},
                )
            )
        else:
            found.append(Problem(loc=(), message=str(entry)))
    return tuple(found)


def error_for(response: httpx.Response) -> ApiError:
    """The exception for an error answer, whatever its body (JSON problem details or not)."""
    try:
        body = response.json()
    except ValueError:
        body = None
    detail = body.get("detail") if isinstance(body, dict) else None
    problems: tuple[Problem, ...] = ()
    if isinstance(detail, list):
        problems = _problems(detail)
        message = "; ".join(str(p) for p in problems)
    elif isinstance(detail, str):
        message = detail
    else:
        message = response.text.strip()[:500] or response.reason_phrase
    kind = _BY_STATUS.get(response.status_code, ApiError)
    return kind(response.status_code, message, problems, body)
