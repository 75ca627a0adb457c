"""API keys: issuing them, and turning a presented key into the user it belongs to.

Shared by the api (every ``/api/*`` request) and the notifier (every WebSocket), so that both
accept exactly the same keys. Storage is not here: a :data:`KeyLookup` finds a key's stored
record by its public id (``nodedrop.platform.db.apikeys`` reads it from PostgreSQL).

Format: ``ndk_<key id: 16 hex>_<secret: 43 url-safe base64 chars, 256 random bits>``. The key id
is public (it names the key in listings and is the lookup's primary key); the secret is never
stored, only the SHA-256 digest of the whole key.

Why SHA-256 and not a password hash (bcrypt, scrypt, argon2): slow hashes exist to make guessing
low-entropy human passwords expensive after a database leak. A 256-bit random secret cannot be
guessed however fast the hash is, and a slow hash would cost tens of milliseconds on every
request. A digest compared in constant time after a primary-key lookup is what GitHub-style tokens
do. A key is verified against the database at most once per :data:`CACHE_TTL_S` per process;
revocation therefore takes effect everywhere within that bound (at once in the process that
revoked, which forgets the key).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

ADMIN_ID = "admin"
KEY_PREFIX = "ndk_"
#: How long a verified key is trusted without asking the database again (revocation bound).
CACHE_TTL_S = 2.0
#: Keys remembered per process; the least recently verified go first.
CACHE_ENTRIES = 10_000

_KEY = re.compile(r"^ndk_([0-9a-f]{16})_[A-Za-z0-9_-]{43}$")


@dataclass(frozen=True)
class Principal:
    """Who is calling. Admins see everything; a user sees only what it owns."""

    id: str
    is_admin: bool = False
    name: str | None = None

    def can_see(self, owner: str | None) -> bool:
        """Whether a workflow or an execution of ``owner`` is visible (else it is unknown)."""
        return self.is_admin or owner == self.id

    @property
    def owner_filter(self) -> str | None:
        """The owner to restrict listings to; ``None`` lists everyone's (admins)."""
        return None if self.is_admin else self.id


ADMIN = Principal(ADMIN_ID, is_admin=True)


@dataclass(frozen=True)
class IssuedKey:
    """A new key: ``text`` is shown to its owner once; ``digest`` is what is stored."""

    key_id: str
    text: str
    digest: str


@dataclass(frozen=True)
class StoredKey:
    """An active (not revoked) key as stored, with its user."""

    key_id: str
    digest: str
    user: Principal


#: A key id to its active stored key, or None.
KeyLookup = Callable[[str], Awaitable[StoredKey | None]]


def digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def issue() -> IssuedKey:
    key_id = secrets.token_hex(8)
    text = f"{KEY_PREFIX}{key_id}_{secrets.token_urlsafe(32)}"
    return IssuedKey(key_id=key_id, text=text, digest=digest(text))


def key_id_of(presented: str) -> str | None:
    """The public id of a well-formed key, else None (nothing to look up)."""
    match = _KEY.match(presented)
    return match.group(1) if match else None


def matches(stored_digest: str, presented: str) -> bool:
    # Constant time: the comparison must not tell how much of a guess was right.
    return hmac.compare_digest(stored_digest.encode(), digest(presented).encode())


class KeyVerifier:
    """Presented key -> :class:`Principal`: ``NODEDROP_ADMIN_TOKEN`` (the admin, no lookup) or a
    user's key (looked up, then cached for ``ttl_s``)."""

    def __init__(
        self,
        lookup: KeyLookup,
        *,
        admin_token: str | None,
        ttl_s: float = CACHE_TTL_S,
        max_entries: int = CACHE_ENTRIES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._lookup = lookup
        self._admin_token = admin_token.encode() if admin_token else None
        self._ttl_s = ttl_s
        self._max_entries = max_entries
        self._clock = clock
        self._cache: OrderedDict[str, tuple[float, StoredKey]] = OrderedDict()

    async def verify(self, presented: str | None) -> Principal | None:
        if not presented:
            return None
        if self._admin_token is not None and hmac.compare_digest(
            presented.encode(), self._admin_token
        ):
            return ADMIN
        key_id = key_id_of(presented)
        if key_id is None:
            return None
        stored = await self._stored(key_id)
        if stored is None or not matches(stored.digest, presented):
            return None
        return stored.user

    def forget(self, key_ids: list[str] | None = None) -> None:
        """Drop cached keys (all when ``key_ids`` is None): a revocation in this process then
        takes effect at once."""
        if key_ids is None:
            self._cache.clear()
        for key_id in key_ids or []:
            self._cache.pop(key_id, None)

    async def _stored(self, key_id: str) -> StoredKey | None:
        now = self._clock()
        cached = self._cache.get(key_id)
        if cached is not None and cached[0] > now:
            self._cache.move_to_end(key_id)
            return cached[1]
        stored = await self._lookup(key_id)
        if stored is None:
            # Unknown or revoked keys are not cached: nothing would bound the memory they take.
            self._cache.pop(key_id, None)
            return None
        self._cache[key_id] = (now + self._ttl_s, stored)
        self._cache.move_to_end(key_id)
        while len(self._cache) > self._max_entries:
            self._cache.popitem(last=False)
        return stored
