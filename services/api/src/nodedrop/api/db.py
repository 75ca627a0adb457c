"""The PostgreSQL engine: created in the app's lifespan, never at import time."""

from __future__ import annotations

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


def create_engine(database_url: str) -> AsyncEngine:
    return create_async_engine(
        async_url(database_url),
        pool_pre_ping=True,
        pool_size=10,
        max_overflow=10,
        # Fail fast when the database is down: the request gets a 503 instead of hanging.
        pool_timeout=5,
        connect_args={"timeout": 5},
    )


def session_factory(engine: AsyncEngine) -> Sessions:
    return async_sessionmaker(engine, class_=AsyncSession, expire_on_commit=False)
