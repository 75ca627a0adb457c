"""Errors the API answers with, and the handlers that turn exceptions into those answers.

Bad input is a 422 naming the field, a missing thing 404, a conflict 409, a too large body 413;
an unavailable database or event log is a 503 with a clear message, never a 500.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import nats.errors
from fastapi import FastAPI, HTTPException, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy import exc as sa_exc

log = logging.getLogger(__name__)

Problem = dict[str, Any]
Loc = Sequence[str | int]


def problem(loc: Loc, msg: str, kind: str) -> Problem:
    """One entry of a 422 body, in FastAPI's ``{"loc", "msg", "type"}`` form."""
    return {"loc": list(loc), "msg": msg, "type": kind}


def located(prefix: Loc, problems: Sequence[Problem]) -> list[Problem]:
    """``problems`` with ``prefix`` put in front of every ``loc``."""
    return [{**p, "loc": [*prefix, *p["loc"]]} for p in problems]


class UnprocessableError(Exception):
    """The request is well-formed JSON but wrong: answered 422 with every problem."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = list(problems)
        super().__init__("; ".join(str(p["msg"]) for p in self.problems))


class ServiceUnavailableError(Exception):
    """A dependency (PostgreSQL, NATS) cannot be reached: answered 503."""


class PayloadTooLargeError(HTTPException):
    """Answered 413. An HTTPException so that FastAPI's body reader lets it through unchanged
    (it turns other exceptions raised while reading a body into a 400)."""

    def __init__(self, message: str) -> None:
        super().__init__(413, message)

    def __str__(self) -> str:
        return str(self.detail)


class StaleVersionError(Exception):
    """A save based on a version that is no longer the latest (``If-Match``): answered 409 with
    the latest version, so that a client can reload it or overwrite it knowingly."""

    def __init__(self, what: str, current_version: int) -> None:
        self.current_version = current_version
        super().__init__(
            f"{what} was changed meanwhile: version {current_version} is the latest; "
            "reload it, or send If-Match with that version to overwrite it"
        )


def _detail(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"detail": message}, status_code=status, headers=headers)


async def _request_validation(_: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, RequestValidationError)
    # Only loc, msg and type: FastAPI's default also echoes the input, which can be huge.
    problems = [problem(e["loc"], e["msg"], e["type"]) for e in error.errors()]
    return JSONResponse({"detail": jsonable_encoder(problems)}, status_code=422)


async def _unprocessable(_: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, UnprocessableError)
    return JSONResponse({"detail": jsonable_encoder(error.problems)}, status_code=422)


async def _too_large(_: Request, error: Exception) -> JSONResponse:
    return _detail(413, str(error))


async def _stale_version(_: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, StaleVersionError)
    return JSONResponse(
        {"detail": str(error), "current_version": error.current_version},
        status_code=409,
        headers={"ETag": f'"{error.current_version}"'},
    )


async def _unavailable(_: Request, error: Exception) -> JSONResponse:
    return _detail(503, str(error), {"Retry-After": "1"})


async def _database_down(request: Request, error: Exception) -> JSONResponse:
    log.warning("database unavailable during %s %s: %s", request.method, request.url.path, error)
    return _detail(503, "the database is unavailable, try again later", {"Retry-After": "1"})


#: What a refused value was, by PostgreSQL's SQLSTATE, for a 422 that says what is wrong without
#: the database's own text (which can quote the value, a table or a column).
_REJECTED: dict[str, str] = {
    "22001": "a text value is too long to be stored",
    "22003": "a number is out of the range that can be stored",
    "22007": "a date or time value is not valid",
    "22008": "a date or time value is out of range",
    "22021": "a text value contains a character that cannot be stored (such as NUL, \\u0000)",
    "22P02": "a value has the wrong form for its field",
    "22P05": "a JSON value contains a character that cannot be stored (such as NUL, \\u0000)",
}
_REJECTED_OTHERWISE = "a value cannot be stored as given"
_CONFLICT = "the request conflicts with what is stored (a duplicate, or a reference that is gone)"


async def _database_rejected(request: Request, error: Exception) -> JSONResponse:
    # A value PostgreSQL refuses (e.g. a NUL character in JSON text) is bad input, not a crash.
    # Neither the answer nor the log carries the database's text: it can quote the value (a
    # secret, say), the statement and its parameters.
    state = _sqlstate(error)
    log.warning(
        "database refused a value during %s %s: %s",
        request.method,
        request.url.path,
        _summary(error),
    )
    message = _REJECTED.get(state, _REJECTED_OTHERWISE)
    return JSONResponse({"detail": [problem(["body"], message, "value_error")]}, status_code=422)


async def _database_error(request: Request, error: Exception) -> JSONResponse:
    # PostgreSQL's "data exception" class (SQLSTATE 22...: a NUL character in a text value, a
    # number out of range...) is bad input; asyncpg's errors reach SQLAlchemy's generic
    # DBAPIError rather than DataError. A unique or foreign key violation (23505, 23503,
    # 23P01) is a conflict with what is stored.
    state = _sqlstate(error)
    if state.startswith("22"):
        return await _database_rejected(request, error)
    if state in ("23505", "23503", "23P01"):
        log.warning(
            "database conflict during %s %s: %s",
            request.method,
            request.url.path,
            _summary(error),
        )
        return _detail(409, _CONFLICT)
    log.error("database error during %s %s: %s", request.method, request.url.path, _summary(error))
    return _detail(500, "internal error")


def _summary(error: Exception) -> str:
    """The driver's error class and SQLSTATE: what a log may say of a refused statement."""
    orig = getattr(error, "orig", None)
    cause = getattr(orig, "__cause__", None) or orig or error
    return f"{type(cause).__name__} (SQLSTATE {_sqlstate(error) or 'unknown'})"


def _sqlstate(error: Exception) -> str:
    orig = getattr(error, "orig", None)
    for candidate in (orig, getattr(orig, "__cause__", None)):
        state = getattr(candidate, "sqlstate", None)
        if isinstance(state, str):
            return state
    return ""


async def _connection_lost(request: Request, error: Exception) -> JSONResponse:
    log.warning("connection lost during %s %s: %r", request.method, request.url.path, error)
    return _detail(503, "a backing service is unavailable, try again later", {"Retry-After": "1"})


async def _nats_down(request: Request, error: Exception) -> JSONResponse:
    log.warning("NATS unavailable during %s %s: %r", request.method, request.url.path, error)
    return _detail(
        503, "the event log (NATS) is unavailable, try again later", {"Retry-After": "1"}
    )


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _request_validation)
    app.add_exception_handler(UnprocessableError, _unprocessable)
    app.add_exception_handler(PayloadTooLargeError, _too_large)
    app.add_exception_handler(StaleVersionError, _stale_version)
    app.add_exception_handler(ServiceUnavailableError, _unavailable)
    app.add_exception_handler(sa_exc.DataError, _database_rejected)
    app.add_exception_handler(sa_exc.DBAPIError, _database_error)
    for db_error in (
        sa_exc.OperationalError,
        sa_exc.InterfaceError,
        sa_exc.TimeoutError,
        sa_exc.DisconnectionError,
    ):
        app.add_exception_handler(db_error, _database_down)
    for os_error in (ConnectionError, TimeoutError):
        app.add_exception_handler(os_error, _connection_lost)
    app.add_exception_handler(nats.errors.Error, _nats_down)
