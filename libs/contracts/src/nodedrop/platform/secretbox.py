"""Authenticated encryption of credential secrets under NODEDROP_SECRET_KEY (docs/credentials.md).

AES-256-GCM (``cryptography``'s AESGCM): a fresh random 96-bit nonce per seal, and the sealed
bytes bound to what they belong to (``context``, e.g. the credential's id) as associated data,
so a sealed value copied into another row does not open there. A wrong key, a changed byte or
another context is :class:`DecryptError`, never garbage.

Sealed layout: ``version (1 byte) | nonce (12 bytes) | ciphertext and tag``.

Nothing here prints a key or a secret: :class:`SecretKey`'s repr is its fingerprint, and every
error message names the setting, never the value.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

KEY_ENV = "NODEDROP_SECRET_KEY"
KEY_BYTES = 32
_VERSION = b"\x01"
_NONCE_BYTES = 12


class SecretKeyError(ValueError):
    """The secret key is missing, malformed, or not the one the stored data was sealed with."""


class DecryptError(Exception):
    """Sealed bytes that do not open under this key and context (wrong key, tampered, moved)."""


class SecretKey:
    """A 256-bit key. ``str``/``repr`` give only :attr:`fingerprint`."""

    __slots__ = ("_aead", "_raw", "fingerprint")

    def __init__(self, raw: bytes) -> None:
        if len(raw) != KEY_BYTES:
            raise SecretKeyError(f"a secret key is {KEY_BYTES} bytes, not {len(raw)}")
        self._raw = raw
        self._aead = AESGCM(raw)
        #: Which key this is, safe to show and store: a hash, from which the key cannot be had.
        self.fingerprint = hashlib.sha256(b"nodedrop.secret-key.v1:" + raw).hexdigest()[:16]

    @classmethod
    def generate(cls) -> SecretKey:
        return cls(os.urandom(KEY_BYTES))

    @classmethod
    def parse(cls, text: str, *, source: str = KEY_ENV) -> SecretKey:
        """A key written as URL-safe base64 (what :meth:`text` gives; padding optional).
        The error names ``source``, never the value."""
        cleaned = text.strip()
        try:
            raw = base64.urlsafe_b64decode(cleaned + "=" * (-len(cleaned) % 4))
        except (binascii.Error, ValueError):
            raise SecretKeyError(f"{source} is not URL-safe base64") from None
        if len(raw) != KEY_BYTES:
            raise SecretKeyError(
                f"{source} must be {KEY_BYTES} random bytes in URL-safe base64 "
                f"(`nodedrop credentials generate-key` makes one), not {len(raw)} bytes"
            )
        return cls(raw)

    def text(self) -> str:
        """The key as URL-safe base64: what :meth:`parse` reads."""
        return base64.urlsafe_b64encode(self._raw).decode("ascii")

    def seal(self, plaintext: bytes, context: str) -> bytes:
        nonce = os.urandom(_NONCE_BYTES)
        return _VERSION + nonce + self._aead.encrypt(nonce, plaintext, _associated(context))

    def open(self, sealed: bytes, context: str) -> bytes:
        if len(sealed) < 1 + _NONCE_BYTES + 16 or sealed[:1] != _VERSION:
            raise DecryptError("not a sealed value of a known format")
        nonce, body = sealed[1 : 1 + _NONCE_BYTES], sealed[1 + _NONCE_BYTES :]
        try:
            return self._aead.decrypt(nonce, body, _associated(context))
        except InvalidTag:
            raise DecryptError("does not decrypt under this key") from None

    def __repr__(self) -> str:
        return f"SecretKey(fingerprint={self.fingerprint!r})"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SecretKey) and other.fingerprint == self.fingerprint

    def __hash__(self) -> int:
        return hash(self.fingerprint)


def _associated(context: str) -> bytes:
    return b"nodedrop.secretbox.v1:" + context.encode()


#: A known value sealed under the key in use and stored with the data (``secret_key_check``):
#: opening it at start tells a wrong key apart from the right one before any credential is read.
CHECK_CONTEXT = "nodedrop.secret-key-check"
CHECK_PLAINTEXT = b"nodedrop secret key check v1"


def sealed_check(key: SecretKey) -> bytes:
    return key.seal(CHECK_PLAINTEXT, CHECK_CONTEXT)


def opens_check(key: SecretKey, sealed: bytes) -> bool:
    try:
        return key.open(sealed, CHECK_CONTEXT) == CHECK_PLAINTEXT
    except DecryptError:
        return False
