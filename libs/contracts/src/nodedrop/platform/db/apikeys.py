"""API keys in PostgreSQL: the one query both the api and the notifier verify keys with.

asyncpg directly: the notifier has an asyncpg pool, and the api hands over the asyncpg
connection under its SQLAlchemy engine (:func:`engine_lookup`), so the SQL lives once, here.
"""

from __future__ import annotations

from typing import Any, Protocol

from sqlalchemy.ext.asyncio import AsyncEngine

from nodedrop.platform.apikeys import KeyLookup, Principal, StoredKey

_ACTIVE_KEY = (
    "SELECT k.digest, u.id AS user_id, u.name, u.is_admin "
    "FROM api_keys k JOIN users u ON u.id = k.user_id "
    "WHERE k.id = $1 AND k.revoked_at IS NULL"
)


class Fetches(Protocol):
    """An asyncpg connection or pool."""

    async def fetchrow(self, query: str, *args: Any) -> Any: ...


async def find_active_key(conn: Fetches, key_id: str) -> StoredKey | None:
    row = await conn.fetchrow(_ACTIVE_KEY, key_id)
    if row is None:
        return None
    return StoredKey(
        key_id=key_id,
        digest=row["digest"],
        user=Principal(row["user_id"], is_admin=row["is_admin"], name=row["name"]),
    )


def pool_lookup(pool: Fetches) -> KeyLookup:
    """Lookups on an asyncpg pool (the notifier's)."""

    async def lookup(key_id: str) -> StoredKey | None:
        return await find_active_key(pool, key_id)

    return lookup


def engine_lookup(engine: AsyncEngine) -> KeyLookup:
    """Lookups on a connection of a SQLAlchemy asyncpg engine (the api's)."""

    async def lookup(key_id: str) -> StoredKey | None:
        async with engine.connect() as conn:
            raw = await conn.get_raw_connection()
            driver: Fetches = raw.driver_connection  # type: ignore[assignment]
            return await find_active_key(driver, key_id)

    return lookup
