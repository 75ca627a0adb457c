"""The PostgreSQL engine: created in the app's lifespan, never at import time."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlmodel.ext.asyncio.session import AsyncSession

Sessions = async_sessionmaker[AsyncSession]


def async_url(database_url: str) -> str:
    """``postgresql://`` (what people write) as the asyncpg flavour SQLAlchemy needs."""
    url = make_url(database_url)
    if url.drivername in {"postgresql", "postgres", "postgresql+psycopg", "postgresql+psycopg2"}:
        url = url.set(drivername="postgresql+asyncpg")
    return url.render_as_string(hide_password=False)


class EncodedJson(dict[str, Any]):
    """A JSON object that carries its text. Made off the event loop for a big definition, it
    is written as is instead of encoded on the loop again for each column it goes into (a
    2,000-node definition takes about 12 ms to encode, and is stored twice: workflow and
    version). The object must not change afterwards: the text would no longer match."""

    __slots__ = ("text",)

    def __init__(self, value: dict[str, Any]) -> None:
        super().__init__(value)
        self.text = json.dumps(value)


def encode_json(value: Any) -> str:
    """How the engine writes a JSON column: the carried text of an :class:`EncodedJson`."""
    return value.text if isinstance(value, EncodedJson) else json.dumps(value)


def create_engine(database_url: str) -> AsyncEngine:
    return create_async_engine(
        async_url(database_url),
        json_serializer=encode_json,
        pool_pre_ping=True,
        pool_size=10,
        max_overflow=10,
        # Fail fast when the database is down: the request gets a 503 instead of hanging.
        pool_timeout=5,
        connect_args={"timeout": 5},
    )


def session_factory(engine: AsyncEngine) -> Sessions:
    return async_sessionmaker(engine, class_=AsyncSession, expire_on_commit=False)
