"""The key the api seals credentials with (NODEDROP_SECRET_KEY, docs/credentials.md), checked
against the database's check value once: at start, so that a wrong key stops the api there; or,
when the database cannot be reached at start (the api starts anyway and answers 503 until it
can), at the first credential request."""

from __future__ import annotations

import asyncio
import logging

from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from nodedrop.api.errors import ServiceUnavailableError
from nodedrop.platform.db.credentials import check_secret_key
from nodedrop.platform.secretbox import KEY_ENV, SecretKey, SecretKeyError

log = logging.getLogger(__name__)

#: An unreachable database (or one not migrated yet): the check waits for the first use.
_UNREACHABLE = (OSError, TimeoutError, DBAPIError)


class SecretKeys:
    def __init__(self, key: SecretKey | None) -> None:
        self._key = key
        self._checked = False
        self._checking = asyncio.Lock()

    async def check_at_start(self, engine: AsyncEngine) -> None:
        """Raises :class:`SecretKeyError` for a wrong key, or a missing one the database needs."""
        try:
            await self._check(engine)
        except _UNREACHABLE as error:
            log.warning(
                "the database cannot be reached (%s): %s is checked at the first credential "
                "request",
                type(error).__name__,
                KEY_ENV,
            )

    async def key(self, engine: AsyncEngine) -> SecretKey:
        """The checked key; 503 without one (credentials disabled, or the key is wrong)."""
        if not self._checked:
            try:
                await self._check(engine)
            except SecretKeyError as error:  # its text holds fingerprints, never a key
                raise ServiceUnavailableError(f"credentials are unavailable: {error}") from None
        if self._key is None:
            raise ServiceUnavailableError(
                f"credentials are disabled: the api was started without {KEY_ENV}"
            )
        return self._key

    async def _check(self, engine: AsyncEngine) -> None:
        async with self._checking:
            if self._checked:
                return
            async with engine.connect() as conn:
                raw = await conn.get_raw_connection()
                usable = await check_secret_key(raw.driver_connection, self._key)  # type: ignore[arg-type]
                await conn.commit()
            self._checked = True
            if not usable:
                log.warning("%s is not set: credentials are disabled", KEY_ENV)
                self._key = None
