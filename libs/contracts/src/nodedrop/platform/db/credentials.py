"""The credentials table as the runner, the key check and the key rotation read it (asyncpg).

The api writes credentials through SQLModel (``nodedrop.api.credential_store``) but seals their
secrets with :func:`seal_secret` from here, so there is one way a secret is sealed: the secret
fields as one JSON object, bound to the credential's id.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from nodedrop.platform.secretbox import (
    KEY_ENV,
    DecryptError,
    SecretKey,
    SecretKeyError,
    opens_check,
    sealed_check,
)


class Connection(Protocol):
    """The part of an asyncpg connection used here."""

    async def fetchrow(self, query: str, *args: Any) -> Any: ...

    async def fetch(self, query: str, *args: Any) -> list[Any]: ...

    async def execute(self, query: str, *args: Any) -> str: ...

    def transaction(self) -> Any: ...


def _context(credential_id: str) -> str:
    return f"credential:{credential_id}"


def seal_secret(key: SecretKey, credential_id: str, secret: dict[str, Any]) -> bytes:
    return key.seal(json.dumps(secret, separators=(",", ":")).encode(), _context(credential_id))


def open_secret(key: SecretKey, credential_id: str, sealed: bytes) -> dict[str, Any]:
    """Raises :class:`DecryptError` for a wrong key or a value sealed for another row."""
    opened: dict[str, Any] = json.loads(key.open(sealed, _context(credential_id)))
    return opened


# ------------------------------------------------------------------------------ the key check

_CHECK = "SELECT key_fingerprint, sealed FROM secret_key_check WHERE id = 1"
_WRITE_CHECK = (
    "INSERT INTO secret_key_check (id, key_fingerprint, sealed) VALUES (1, $1, $2) "
    "ON CONFLICT (id) DO NOTHING"
)


async def check_secret_key(conn: Connection, key: SecretKey | None) -> bool:
    """Whether credentials can be used with ``key``: True when it is the key the database's
    credentials are sealed with (recorded by the first service that started with a key);
    False when there is no key and nothing was ever sealed. :class:`SecretKeyError`, with what
    to do, when the key is missing for a database that has one, or is another key."""
    row = await conn.fetchrow(_CHECK)
    if row is None:
        if key is None:
            return False
        await conn.execute(_WRITE_CHECK, key.fingerprint, sealed_check(key))
        row = await conn.fetchrow(_CHECK)  # ours, or another process's written just before
    if key is None:
        raise SecretKeyError(
            f"the database holds credentials sealed under a secret key (fingerprint "
            f"{row['key_fingerprint']}), and {KEY_ENV} is not set: set it to that key"
        )
    if not opens_check(key, bytes(row["sealed"])):
        raise SecretKeyError(
            f"{KEY_ENV} (fingerprint {key.fingerprint}) is not the key the database's "
            f"credentials are sealed with (fingerprint {row['key_fingerprint']}); give the "
            "right key, or change keys with `nodedrop credentials rotate-key`"
        )
    return True


# ------------------------------------------------------------------------------ use by runners


@dataclass(frozen=True, slots=True, repr=False)
class StoredCredential:
    id: str
    type: str
    name: str
    fields: dict[str, Any]
    secret: dict[str, Any]

    def __repr__(self) -> str:  # never the secret
        return f"StoredCredential(id={self.id!r}, type={self.type!r})"


_USE = (
    "UPDATE credentials SET last_used_at = $3, last_used_execution = $4, last_used_node = $5 "
    "WHERE id = $1 AND owner = $2 RETURNING id, type, name, fields, secret"
)


async def use_credential(
    conn: Connection,
    key: SecretKey,
    credential_id: str,
    *,
    owner: str,
    execution_id: str,
    node: str,
    now: datetime,
) -> StoredCredential | None:
    """The credential, decrypted, if ``owner`` owns it; records the use on its row. None when
    there is none of ``owner``'s (deleted, never existed, or another user's: not told apart).
    Raises :class:`DecryptError` when its secret does not open."""
    row = await conn.fetchrow(_USE, credential_id, owner, now, execution_id, node)
    if row is None:
        return None
    fields = row["fields"]
    return StoredCredential(
        id=row["id"],
        type=row["type"],
        name=row["name"],
        fields=json.loads(fields) if isinstance(fields, str) else dict(fields),
        secret=open_secret(key, row["id"], bytes(row["secret"])),
    )


# ------------------------------------------------------------------------------ key rotation


async def rotate_key(conn: Connection, old: SecretKey, new: SecretKey) -> int:
    """Re-seal every credential under ``new``, and the check value, in one transaction: it
    commits whole or not at all. Returns how many credentials. :class:`SecretKeyError` when
    ``old`` is not the key in use or a credential does not open under it (nothing changed)."""
    async with conn.transaction():
        check = await conn.fetchrow(_CHECK + " FOR UPDATE")
        if check is not None and not opens_check(old, bytes(check["sealed"])):
            raise SecretKeyError(
                f"the current key (fingerprint {old.fingerprint}) is not the one in use "
                f"(fingerprint {check['key_fingerprint']}): nothing changed"
            )
        rows = await conn.fetch("SELECT id, secret FROM credentials ORDER BY id FOR UPDATE")
        for row in rows:
            try:
                secret = open_secret(old, row["id"], bytes(row["secret"]))
            except DecryptError:
                raise SecretKeyError(
                    f"credential {row['id']} does not decrypt under the current key: "
                    "nothing changed"
                ) from None
            await conn.execute(
                "UPDATE credentials SET secret = $2, key_fingerprint = $3 WHERE id = $1",
                row["id"],
                seal_secret(new, row["id"], secret),
                new.fingerprint,
            )
        await conn.execute("DELETE FROM secret_key_check")
        await conn.execute(_WRITE_CHECK, new.fingerprint, sealed_check(new))
    return len(rows)
