"""What every entry point refuses before anything is stored or even validated.

- JSON nested deeper than ``MAX_JSON_DEPTH`` levels, and NUL characters in JSON strings
  (``nodedrop.contracts.jsonlimits``): a 422 naming where. A body too deep for the decoder
  itself (a ``RecursionError``) is the same 422, never a 500.
- A NUL character in the path (a 404: no resource has one) or in a query parameter (a 422
  naming the parameter): PostgreSQL cannot compare text holding one.

REST bodies go through :class:`CheckedJsonRoute` (the route class of every router that takes a
body); webhooks decode their raw body with :func:`decode_json` themselves.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine
from typing import Any
from urllib.parse import parse_qsl

import msgspec
from fastapi import HTTPException, Request, Response
from fastapi.routing import APIRoute
from starlette.types import ASGIApp, Receive, Scope, Send

from nodedrop.api.errors import Loc, problem
from nodedrop.api.offload import OFF_LOOP_BYTES, run_off_loop_if
from nodedrop.contracts.jsonlimits import (
    MAX_JSON_DEPTH,
    NUL_MESSAGE,
    depth_message,
    json_problem,
)


class BodyRefusedError(HTTPException):
    """A 422 in the API's ``{"detail": [{"loc", "msg", "type"}]}`` form. An HTTPException so
    that FastAPI's body reader lets it through unchanged (it turns other exceptions raised while
    decoding a body into a 400)."""

    def __init__(self, loc: Loc, msg: str, kind: str) -> None:
        super().__init__(422, [problem(loc, msg, kind)])


def check_json(value: Any, loc: Loc) -> None:
    """Refuse a decoded document nested too deeply or holding a NUL character."""
    found = json_problem(value, MAX_JSON_DEPTH)
    if found is not None:
        raise BodyRefusedError([*loc, *found.path], found.message, found.kind)


def decode_json(raw: bytes, loc: Loc, *, strict_library: bool = False) -> Any:
    """``raw`` decoded and checked. ``strict_library``: decode with msgspec (no NaN or
    Infinity) rather than the standard library, as FastAPI does."""
    try:
        value = msgspec.json.decode(raw) if strict_library else json.loads(raw)
    except RecursionError:
        raise BodyRefusedError(loc, depth_message(MAX_JSON_DEPTH), "too_deep") from None
    check_json(value, loc)
    return value


class _CheckedJsonRequest(Request):
    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            # A JSONDecodeError goes on to FastAPI, which answers it with a 422 (json_invalid).
            raw = await self.body()
            self._json = await run_off_loop_if(
                len(raw) > OFF_LOOP_BYTES, decode_json, raw, ["body"]
            )
        return self._json


class CheckedJsonRoute(APIRoute):
    """A route whose JSON body is checked by :func:`decode_json` as FastAPI decodes it."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def checked(request: Request) -> Response:
            return await handler(_CheckedJsonRequest(request.scope, request.receive))

        return checked


class RefuseNul:
    """ASGI middleware: a NUL character in an HTTP request's path is a 404, in its query
    string a 422 naming the parameter."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            if "\x00" in scope["path"]:
                await _answer(send, 404, {"detail": "not found"})
                return
            query: bytes = scope.get("query_string", b"")
            if b"%00" in query or b"\x00" in query:
                for name, value in parse_qsl(query.decode("latin-1"), keep_blank_values=True):
                    if "\x00" in name or "\x00" in value:
                        field = name.replace("\x00", "\\u0000")
                        detail = [
                            problem(
                                ["query", field],
                                NUL_MESSAGE,
                                "nul_character",
                            )
                        ]
                        await _answer(send, 422, {"detail": detail})
                        return
        await self.app(scope, receive, send)


async def _answer(send: Send, status: int, content: dict[str, Any]) -> None:
    body = json.dumps(content).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
