"""API keys: format, digests, and the verifier (admin token, lookups, cache, revocation bound)."""

from __future__ import annotations

import pytest

from nodedrop.platform import apikeys
from nodedrop.platform.apikeys import ADMIN, KeyVerifier, Principal, StoredKey

ALICE = Principal("u-alice", name="alice")


class FakeKeys:
    """An in-memory key table that counts its lookups."""

    def __init__(self) -> None:
        self.stored: dict[str, StoredKey] = {}
        self.lookups = 0

    def add(self, user: Principal) -> str:
        issued = apikeys.issue()
        self.stored[issued.key_id] = StoredKey(issued.key_id, issued.digest, user)
        return issued.text

    async def lookup(self, key_id: str) -> StoredKey | None:
        self.lookups += 1
        return self.stored.get(key_id)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_issued_keys_are_random_and_only_their_digest_is_kept() -> None:
    first, second = apikeys.issue(), apikeys.issue()
    assert first.text != second.text
    assert first.key_id != second.key_id
    assert first.text.startswith(f"ndk_{first.key_id}_")
    assert len(first.text) == len("ndk_") + 16 + 1 + 43  # 256 random bits in the secret
    assert first.digest == apikeys.digest(first.text)
    assert first.text not in first.digest
    assert apikeys.key_id_of(first.text) == first.key_id


@pytest.mark.parametrize(
    "presented",
    ["", "admin", "ndk_", "ndk_0123456789abcdef_short", "ndk_XYZ3456789abcdef_" + "a" * 43],
)
def test_malformed_keys_have_no_id(presented: str) -> None:
    assert apikeys.key_id_of(presented) is None


def test_matches_only_the_exact_key() -> None:
    issued = apikeys.issue()
    assert apikeys.matches(issued.digest, issued.text)
    assert not apikeys.matches(issued.digest, issued.text[:-1] + "x")
    assert not apikeys.matches(issued.digest, issued.text + "x")


async def test_the_admin_token_is_the_admin_without_a_lookup() -> None:
    keys = FakeKeys()
    verifier = KeyVerifier(keys.lookup, admin_token="secret-admin")
    assert await verifier.verify("secret-admin") == ADMIN
    assert await verifier.verify("secret-admi") is None
    assert await verifier.verify(None) is None
    assert await verifier.verify("") is None
    assert keys.lookups == 0
    assert await KeyVerifier(keys.lookup, admin_token=None).verify("secret-admin") is None


async def test_a_user_key_is_its_user_and_a_forged_secret_is_nobody() -> None:
    keys = FakeKeys()
    key = keys.add(ALICE)
    verifier = KeyVerifier(keys.lookup, admin_token="a")
    assert await verifier.verify(key) == ALICE
    forged = key[:-4] + ("AAAA" if not key.endswith("AAAA") else "BBBB")
    assert await verifier.verify(forged) is None  # right key id, wrong secret
    assert await verifier.verify(apikeys.issue().text) is None  # unknown key id


async def test_verified_keys_are_cached_for_the_ttl_then_revocation_shows() -> None:
    keys, clock = FakeKeys(), Clock()
    key = keys.add(ALICE)
    verifier = KeyVerifier(keys.lookup, admin_token=None, ttl_s=2.0, clock=clock)
    assert await verifier.verify(key) == ALICE
    assert await verifier.verify(key) == ALICE
    assert keys.lookups == 1
    keys.stored.clear()  # revoked in the database, by another process
    clock.now += 1.9
    assert await verifier.verify(key) == ALICE  # still within the bound
    clock.now += 0.2
    assert await verifier.verify(key) is None  # past it: asked again, gone
    assert keys.lookups == 2


async def test_forget_makes_a_revocation_immediate_in_this_process() -> None:
    keys = FakeKeys()
    key = keys.add(ALICE)
    verifier = KeyVerifier(keys.lookup, admin_token=None)
    assert await verifier.verify(key) == ALICE
    keys.stored.clear()
    verifier.forget([apikeys.key_id_of(key) or ""])
    assert await verifier.verify(key) is None


async def test_unknown_keys_are_not_cached_and_the_cache_is_bounded() -> None:
    keys = FakeKeys()
    verifier = KeyVerifier(keys.lookup, admin_token=None, max_entries=2)
    unknown = apikeys.issue().text
    assert await verifier.verify(unknown) is None
    assert await verifier.verify(unknown) is None
    assert keys.lookups == 2
    users = [keys.add(Principal(f"u{i}")) for i in range(3)]
    for key in users:
        await verifier.verify(key)
    keys.lookups = 0
    await verifier.verify(users[2])
    await verifier.verify(users[1])
    assert keys.lookups == 0
    await verifier.verify(users[0])  # the least recently verified was dropped
    assert keys.lookups == 1


def test_visibility() -> None:
    assert ALICE.can_see("u-alice")
    assert not ALICE.can_see("u-bob")
    assert ALICE.owner_filter == "u-alice"
    assert ADMIN.can_see("u-bob")
    assert ADMIN.owner_filter is None
