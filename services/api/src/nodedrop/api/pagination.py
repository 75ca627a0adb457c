"""Opaque keyset cursors: the (created_at, id) of the last item of a page, newest first."""

from __future__ import annotations

import base64
import binascii
import json
from datetime import datetime

from nodedrop.api.errors import UnprocessableError, problem

Position = tuple[datetime, str]


class InvalidCursorError(ValueError):
    pass


def encode_cursor(created_at: datetime, item_id: str) -> str:
    raw = json.dumps([created_at.isoformat(), item_id], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> Position:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        created, item_id = json.loads(raw)
        moment = datetime.fromisoformat(created)
    except (binascii.Error, ValueError, TypeError) as error:
        raise InvalidCursorError("not a cursor returned by this API") from error
    if not isinstance(item_id, str) or moment.tzinfo is None:
        raise InvalidCursorError("not a cursor returned by this API")
    return moment, item_id


def parse_cursor(cursor: str | None) -> Position | None:
    """A ``cursor`` query parameter; a foreign one is a 422 naming it."""
    if cursor is None:
        return None
    try:
        return decode_cursor(cursor)
    except InvalidCursorError as error:
        raise UnprocessableError(
            [problem(["query", "cursor"], str(error), "value_error")]
        ) from None
