"""Users and API keys (docs/api.md): creation by an admin, keys shown once and stored as
digests, new keys, revocation (at once here, within the cache bound elsewhere)."""

from __future__ import annotations

import asyncio
import time

import pytest
from sqlmodel import select

from nodedrop.api.app import create_app
from nodedrop.platform.apikeys import CACHE_TTL_S
from nodedrop.platform.db.tables import ApiKeyRow

from .harness import Api
from .users import client_for, create_user

pytestmark = pytest.mark.integration


async def test_an_admin_creates_a_user_whose_key_works(api: Api) -> None:
    response = await api.client.post("/api/users", json={"name": "alice"})
    assert response.status_code == 201
    body = response.json()
    assert set(body) == {"id", "name", "is_admin", "key_id", "api_key"}
    assert (body["name"], body["is_admin"]) == ("alice", False)
    async with client_for(api.app, body["api_key"]) as alice:
        me = await alice.get("/api/users/me")
    assert me.status_code == 200
    assert me.json()["id"] == body["id"]
    assert me.json()["name"] == "alice"


async def test_the_key_is_stored_only_as_a_digest(api: Api) -> None:
    alice = await create_user(api, "alice")
    async with api.session() as session:
        rows = (await session.exec(select(ApiKeyRow))).all()
    assert [row.id for row in rows] == [alice.key_id]
    stored = rows[0].model_dump()
    assert all(alice.key not in str(value) for value in stored.values())
    # Listing keys never shows them either.
    listing = await api.client.get(f"/api/users/{alice.id}/keys")
    assert alice.key not in listing.text
    assert [k["key_id"] for k in listing.json()["items"]] == [alice.key_id]


async def test_only_admins_create_or_list_users(api: Api) -> None:
    alice = await create_user(api, "alice")
    async with client_for(api.app, alice.key) as client:
        assert (await client.post("/api/users", json={"name": "mallory"})).status_code == 403
        assert (await client.get("/api/users")).status_code == 403
    listed = await api.client.get("/api/users")
    assert [u["name"] for u in listed.json()["items"]] == ["alice"]


async def test_names_are_unique_and_checked(api: Api) -> None:
    await create_user(api, "alice")
    assert (await api.client.post("/api/users", json={"name": "alice"})).status_code == 409
    bad = await api.client.post("/api/users", json={"name": "no spaces"})
    assert bad.status_code == 422
    assert bad.json()["detail"][0]["loc"] == ["body", "name"]


@pytest.mark.parametrize(
    "key", [None, "", "wrong", "ndk_0123456789abcdef_" + "A" * 43, "Basic abc"]
)
async def test_missing_or_invalid_keys_are_401(api: Api, key: str | None) -> None:
    async with client_for(api.app, key) as client:
        response = await client.get("/api/workflows")
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"


async def test_a_user_issues_a_new_key_and_revokes_the_old_ones(api: Api) -> None:
    alice = await create_user(api, "alice")
    async with client_for(api.app, alice.key) as old:
        issued = await old.post(f"/api/users/{alice.id}/keys")
        assert issued.status_code == 201
        new_key = issued.json()["api_key"]
        assert new_key != alice.key
        # Revoke one key: the old one.
        gone = await old.delete(f"/api/users/{alice.id}/keys/{alice.key_id}")
        assert gone.status_code == 204
        assert (await old.get("/api/workflows")).status_code == 401  # at once, in this process
    async with client_for(api.app, new_key) as new:
        assert (await new.get("/api/workflows")).status_code == 200
        keys = (await new.get(f"/api/users/{alice.id}/keys")).json()["items"]
        assert [k["revoked_at"] is not None for k in keys] == [True, False]
        assert (await new.delete(f"/api/users/{alice.id}/keys")).status_code == 204
        assert (await new.get("/api/workflows")).status_code == 401


async def test_another_users_keys_are_404(api: Api) -> None:
    alice = await create_user(api, "alice")
    bob = await create_user(api, "bob")
    async with client_for(api.app, bob.key) as client:
        for method, path in [
            ("GET", f"/api/users/{alice.id}/keys"),
            ("POST", f"/api/users/{alice.id}/keys"),
            ("DELETE", f"/api/users/{alice.id}/keys"),
            ("DELETE", f"/api/users/{alice.id}/keys/{alice.key_id}"),
        ]:
            assert (await client.request(method, path)).status_code == 404, (method, path)
    async with client_for(api.app, alice.key) as client:
        assert (await client.get("/api/workflows")).status_code == 200  # untouched
    # An admin manages anybody's keys.
    assert (await api.client.post(f"/api/users/{alice.id}/keys")).status_code == 201


async def test_a_revocation_reaches_another_process_within_the_cache_bound(api: Api) -> None:
    alice = await create_user(api, "alice")
    other = create_app(api.app.state.config)  # a second API process on the same database
    other.state.resources = api.resources
    async with client_for(other, alice.key) as elsewhere:
        assert (await elsewhere.get("/api/workflows")).status_code == 200  # now cached there
        revoked_at = time.monotonic()
        assert (await api.client.delete(f"/api/users/{alice.id}/keys")).status_code == 204
        while (await elsewhere.get("/api/workflows")).status_code == 200:
            assert time.monotonic() - revoked_at < CACHE_TTL_S + 0.5
            await asyncio.sleep(0.05)
    assert time.monotonic() - revoked_at <= CACHE_TTL_S + 0.5


async def test_the_admin_token_is_an_admin(api: Api) -> None:
    me = await api.client.get("/api/users/me")
    assert me.json() == {"id": "admin", "name": "admin", "is_admin": True, "created_at": None}
