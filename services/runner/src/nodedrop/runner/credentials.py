"""Credentials at run time: the ids a node's parameters name, read from PostgreSQL and
decrypted with NODEDROP_SECRET_KEY for one attempt (docs/credentials.md).

Only ids travel in events; the values exist in this process's memory for the attempt (and in
the worker process of a custom node type). A credential may be used only by an execution its
owner requested (``NodeReady.requester``). Whatever goes wrong (deleted, another user's, not
decryptable, no key here) fails the node with ``CredentialError``, not retried, naming the
credential's id and never a value.
"""

from __future__ import annotations

import asyncio
import base64
import logging
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, quote_plus

import asyncpg  # type: ignore[import-untyped]  # asyncpg ships no type information

from nodedrop.contracts.credential_types import secret_strings
from nodedrop.contracts.events import NodeReady
from nodedrop.platform.db.credentials import check_secret_key, use_credential
from nodedrop.platform.secretbox import KEY_ENV, DecryptError, SecretKey, SecretKeyError
from nodedrop.runner.nodes.api import Credential, NodeContext, NodeError

log = logging.getLogger(__name__)

CREDENTIAL_ERROR = "CredentialError"
#: Shorter secret values are not redacted: replacing every "ab" in a log would garble it, and
#: such a value protects nothing anyway.
MIN_REDACTED_CHARS = 4
REDACTED = "[redacted]"


def credential_error(message: str) -> NodeError:
    return NodeError(CREDENTIAL_ERROR, message, retryable=False)


def asyncpg_dsn(database_url: str) -> str:
    """``postgresql+asyncpg://`` (SQLAlchemy's spelling) as asyncpg takes it."""
    scheme, _, rest = database_url.partition("://")
    return f"{scheme.split('+', 1)[0]}://{rest}"


#: What an unreachable (or not yet migrated) database raises: the check waits for the first use.
_UNREACHABLE = (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError)


class CredentialVault:
    """Reads credentials for attempts. ``await CredentialVault.open(url, key)`` checks the key
    against the database: a wrong one raises ``SecretKeyError`` there, at start; when the
    database cannot be reached then, the runner starts anyway (nodes without credentials need
    no database) and the check is made at the first credential used. :meth:`disabled` is a
    vault that fails every use, for a runner without a database."""

    def __init__(self, pool: Any | None, key: SecretKey | None, why_disabled: str = "") -> None:
        self._pool = pool
        self._key = key
        self._why_disabled = why_disabled
        self._checked = pool is None  # nothing to check without a database
        self._checking = asyncio.Lock()

    @classmethod
    def disabled(cls, why: str) -> CredentialVault:
        return cls(None, None, why)

    @classmethod
    async def open(cls, database_url: str | None, key: SecretKey | None) -> CredentialVault:
        if not database_url:
            return cls.disabled("this runner has no NODEDROP_DATABASE_URL to read credentials")
        # min_size 0: no connection is opened here, only by the check and by uses.
        pool = await asyncpg.create_pool(asyncpg_dsn(database_url), min_size=0, max_size=4)
        vault = cls(pool, key)
        try:
            await vault._check()
        except _UNREACHABLE as error:
            log.warning(
                "the database cannot be reached (%s): %s is checked at the first credential used",
                type(error).__name__,
                KEY_ENV,
            )
        except BaseException:
            await pool.close()
            raise
        return vault

    async def _check(self) -> None:
        async with self._checking:
            if self._checked or self._pool is None:
                return
            async with self._pool.acquire() as conn:
                usable = await check_secret_key(conn, self._key)
            self._checked = True
            if not usable:
                log.warning("%s is not set: nodes that name a credential will fail", KEY_ENV)
                self._key = None
                self._why_disabled = f"this runner has no {KEY_ENV}"

    async def aclose(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    async def resolve(
        self, task: NodeReady, parameters: Iterable[str], *, now: datetime | None = None
    ) -> dict[str, Credential]:
        """The credentials the task's ``parameters`` name (those set), by parameter name."""
        named = {
            name: task.parameters[name]
            for name in parameters
            if task.parameters.get(name) is not None
        }
        resolved: dict[str, Credential] = {}
        for parameter, credential_id in named.items():
            resolved[parameter] = await self._one(task, str(credential_id), now)
        return resolved

    async def _one(self, task: NodeReady, credential_id: str, now: datetime | None) -> Credential:
        if not self._checked:
            try:
                await self._check()
            except SecretKeyError as error:  # only fingerprints in its text
                raise credential_error(
                    f"credential {credential_id!r} cannot be used: {error}"
                ) from None
            except _UNREACHABLE as error:
                raise NodeError(
                    CREDENTIAL_ERROR,
                    f"credential {credential_id!r} could not be read: {type(error).__name__}",
                    retryable=True,
                ) from None
        if self._pool is None or self._key is None:
            raise credential_error(
                f"credential {credential_id!r} cannot be used: {self._why_disabled}"
            )
        if task.requester is None:
            raise credential_error(
                f"credential {credential_id!r} cannot be used: the task names no requester "
                "(recorded by an older scheduler)"
            )
        try:
            async with self._pool.acquire() as conn:
                stored = await use_credential(
                    conn,
                    self._key,
                    credential_id,
                    owner=task.requester,
                    execution_id=task.execution_id,
                    node=task.node,
                    now=now or datetime.now(UTC),
                )
        except DecryptError:
            raise credential_error(
                f"credential {credential_id!r} does not decrypt under this runner's {KEY_ENV} "
                "(was the key rotated? restart the runner with the new key)"
            ) from None
        except _UNREACHABLE as error:
            # The database may be back for the next attempt: this one is worth retrying.
            raise NodeError(
                CREDENTIAL_ERROR,
                f"credential {credential_id!r} could not be read: {type(error).__name__}",
                retryable=True,
            ) from None
        if stored is None:
            raise credential_error(
                f"credential {credential_id!r} not found (deleted, or not the requester's)"
            )
        return Credential(
            id=stored.id,
            type=stored.type,
            name=stored.name,
            fields={**stored.fields, **stored.secret},
            secret_fields=sorted(stored.secret),
        )


# ------------------------------------------------------------------------------ redaction


def secrets_of(ctx: NodeContext) -> list[str]:
    """Every secret value the attempt held, in the forms it is likely to appear in text
    (as is, URL-encoded, and a Basic header's base64), longest first."""
    values: set[str] = set(ctx.derived_secrets)
    for credential in ctx.credentials.values():
        values.update(secret_strings([credential.fields.get(n) for n in credential.secret_fields]))
        user, password = credential.fields.get("username"), credential.fields.get("password")
        if credential.type == "basic_auth" and isinstance(user, str) and isinstance(password, str):
            values.add(base64.b64encode(f"{user}:{password}".encode()).decode())
    forms = {form for value in values for form in (value, quote(value, safe=""), quote_plus(value))}
    return sorted((v for v in forms if len(v) >= MIN_REDACTED_CHARS), key=len, reverse=True)


def redact(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every secret replaced, also one cut short at either end of it: error
    texts are truncated (an upstream's body to its start, a stack to its end), and a secret's
    first or last part is still a secret."""
    secrets = list(secrets)
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, REDACTED)
    for secret in secrets:
        text = _redact_cut_ends(text, secret)
    return text


def _redact_cut_ends(text: str, secret: str) -> str:
    for size in range(len(secret) - 1, MIN_REDACTED_CHARS - 1, -1):
        if text.endswith(secret[:size]):
            text = text[:-size] + REDACTED
            break
    for size in range(len(secret) - 1, MIN_REDACTED_CHARS - 1, -1):
        if text.startswith(secret[-size:]):
            text = REDACTED + text[size:]
            break
    return text
