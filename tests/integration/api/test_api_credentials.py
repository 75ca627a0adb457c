"""Credentials through the API (docs/api.md, "Credentials"): stored sealed, never answered,
owned like workflows, every bad input a clear 4xx; and the api's start refuses a wrong key."""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg  # type: ignore[import-untyped]  # asyncpg ships no type information
import httpx
import pytest
from nats.js import JetStreamContext

from nodedrop.api.app import ConfigurationError, create_app
from nodedrop.platform.db.credentials import open_secret
from nodedrop.platform.secretbox import SecretKey

from .harness import TOKEN, Api, api_config
from .users import client_for, create_user

pytestmark = pytest.mark.integration

KEY = SecretKey.generate()
SECRET = "sk-live-PLANTED-0123456789abcdef"


def _dsn(url: str) -> str:
    scheme, rest = url.split("://", 1)
    return f"{scheme.split('+', 1)[0]}://{rest}"


@pytest.fixture
async def api(
    nats_url: str, migrated_database_url: str, jetstream: JetStreamContext
) -> AsyncIterator[Api]:
    app = create_app(api_config(nats_url, migrated_database_url), secret_key=KEY)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app),
            base_url="http://api",
            headers={"Authorization": f"Bearer {TOKEN}"},
        ) as client,
    ):
        yield Api(app=app, client=client, js=jetstream)


async def _create(client: httpx.AsyncClient, **body: Any) -> dict[str, Any]:
    response = await client.post("/api/credentials", json=body)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def test_a_secret_is_sealed_at_rest_and_only_masked_in_answers(
    api: Api, migrated_database_url: str
) -> None:
    created = await _create(
        api.client, type="http_header", name="stripe", data={"name": "X-Api-Key", "value": SECRET}
    )
    assert created["fields"] == {"name": "X-Api-Key"}
    assert created["secrets"] == {"value": "****cdef"}
    assert created["last_used"] is None
    for answer in (
        await api.client.get(f"/api/credentials/{created['id']}"),
        await api.client.get("/api/credentials"),
    ):
        assert answer.status_code == 200
        assert SECRET not in answer.text
        assert "0123456789abcdef" not in answer.text
    conn = await asyncpg.connect(_dsn(migrated_database_url))
    try:
        row = await conn.fetchrow("SELECT * FROM credentials WHERE id = $1", created["id"])
        dump = "".join(str(value) for value in row.values())
    finally:
        await conn.close()
    assert SECRET not in dump
    assert SECRET.encode() not in bytes(row["secret"])
    assert open_secret(KEY, created["id"], bytes(row["secret"])) == {"value": SECRET}


async def test_short_secrets_are_masked_whole(api: Api) -> None:
    created = await _create(api.client, type="bearer_token", name="short", data={"token": "abc"})
    assert created["secrets"] == {"token": "****"}


async def test_a_replacement_keeps_secrets_left_out_and_changes_given_ones(api: Api) -> None:
    created = await _create(
        api.client,
        type="basic_auth",
        name="erp",
        data={"username": "ann", "password": SECRET},
    )
    path = f"/api/credentials/{created['id']}"
    renamed = await api.client.put(path, json={"name": "erp 2", "data": {"username": "bob"}})
    assert renamed.status_code == 200, renamed.text
    assert renamed.json()["fields"] == {"username": "bob"}
    assert renamed.json()["secrets"] == {"password": "****cdef"}
    changed = await api.client.put(
        path,
        json={
            "name": "erp 2",
            "data": {"username": "bob", "password": "another-secret-value-9876"},
        },
    )
    assert changed.json()["secrets"] == {"password": "****9876"}
    assert changed.json()["fields"] == {"username": "bob"}
    # a replacement: readable fields left out are gone (here: required, so a 422)
    dropped = await api.client.put(path, json={"name": "erp 2", "data": {}})
    assert dropped.status_code == 422
    assert dropped.json()["detail"][0]["loc"] == ["body", "data", "username"]


async def test_bad_input_is_a_422_naming_the_field_never_echoing_it(api: Api) -> None:
    unknown = await api.client.post(
        "/api/credentials", json={"type": "nope", "name": "x", "data": {}}
    )
    assert unknown.status_code == 422
    assert unknown.json()["detail"][0]["loc"] == ["body", "type"]
    bad = await api.client.post(
        "/api/credentials",
        json={"type": "http_header", "name": "x", "data": {"name": "bad name", "value": SECRET}},
    )
    assert bad.status_code == 422
    assert bad.json()["detail"][0]["loc"] == ["body", "data", "name"]
    assert SECRET not in bad.text
    missing = await api.client.post(
        "/api/credentials", json={"type": "bearer_token", "name": "x", "data": {}}
    )
    assert missing.json()["detail"][0]["loc"] == ["body", "data", "token"]
    extra = await api.client.post(
        "/api/credentials",
        json={"type": "bearer_token", "name": "x", "data": {"token": "t", "other": SECRET}},
    )
    assert extra.status_code == 422
    assert SECRET not in extra.text
    not_text = await api.client.post(
        "/api/credentials", json={"type": "bearer_token", "name": "x", "data": {"token": 5}}
    )
    assert not_text.status_code == 422
    created = await _create(api.client, type="bearer_token", name="t", data={"token": SECRET})
    retyped = await api.client.put(
        f"/api/credentials/{created['id']}",
        json={"type": "basic_auth", "name": "t", "data": {}},
    )
    assert retyped.status_code == 422
    assert retyped.json()["detail"][0]["loc"] == ["body", "type"]


async def test_a_duplicate_name_is_a_409(api: Api) -> None:
    await _create(api.client, type="bearer_token", name="same", data={"token": SECRET})
    again = await api.client.post(
        "/api/credentials", json={"type": "bearer_token", "name": "same", "data": {"token": "x"}}
    )
    assert again.status_code == 409
    other = await _create(api.client, type="bearer_token", name="other", data={"token": "y"})
    clash = await api.client.put(
        f"/api/credentials/{other['id']}", json={"name": "same", "data": {}}
    )
    assert clash.status_code == 409


async def test_another_users_credential_is_a_404_everywhere(api: Api) -> None:
    alice = await create_user(api, "alice")
    bob = await create_user(api, "bob")
    async with client_for(api.app, alice.key) as as_alice, client_for(api.app, bob.key) as as_bob:
        mine = await _create(as_alice, type="bearer_token", name="gh", data={"token": SECRET})
        path = f"/api/credentials/{mine['id']}"
        assert (await as_bob.get(path)).status_code == 404
        assert (await as_bob.put(path, json={"name": "x", "data": {}})).status_code == 404
        assert (await as_bob.delete(path)).status_code == 404
        assert (await as_bob.get("/api/credentials")).json()["items"] == []
        # bob may use the same name: names are per user
        await _create(as_bob, type="bearer_token", name="gh", data={"token": "b"})
        assert (await as_alice.get(path)).status_code == 200
        assert (await as_alice.delete(path)).status_code == 204
        assert (await as_alice.get(path)).status_code == 404


async def test_credential_types_are_listed_with_schemas(api: Api) -> None:
    response = await api.client.get("/api/credential-types")
    assert response.status_code == 200
    types = {item["type"]: item for item in response.json()["items"]}
    assert set(types) >= {
        "http_header",
        "bearer_token",
        "basic_auth",
        "query_parameter",
        "oauth2_client_credentials",
        "key_value",
    }
    oauth = types["oauth2_client_credentials"]
    assert oauth["secret_fields"] == ["client_secret"]
    assert oauth["fields_schema"]["properties"]["client_secret"]["writeOnly"] is True
    assert set(oauth["fields_schema"]["required"]) == {"token_url", "client_id", "client_secret"}


async def test_the_api_refuses_to_start_with_another_key(
    api: Api, nats_url: str, migrated_database_url: str
) -> None:
    # `api` started with KEY, which recorded its check value
    other = create_app(api_config(nats_url, migrated_database_url), secret_key=SecretKey.generate())
    with pytest.raises(ConfigurationError, match="is not the key the database's credentials"):
        async with other.router.lifespan_context(other):
            pass


async def test_the_api_refuses_to_start_without_the_key_once_one_was_used(
    api: Api, nats_url: str, migrated_database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("NODEDROP_SECRET_KEY", raising=False)
    keyless = create_app(api_config(nats_url, migrated_database_url))
    with pytest.raises(ConfigurationError, match="NODEDROP_SECRET_KEY is not set"):
        async with keyless.router.lifespan_context(keyless):
            pass


async def test_without_any_key_credentials_answer_503(
    nats_url: str, migrated_database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("NODEDROP_SECRET_KEY", raising=False)
    app = create_app(api_config(nats_url, migrated_database_url))
    async with app.router.lifespan_context(app), client_for(app, TOKEN) as client:
        response = await client.get("/api/credentials")
        assert response.status_code == 503
        assert "NODEDROP_SECRET_KEY" in response.json()["detail"]
        assert (await client.get("/api/credential-types")).status_code == 200


async def _sealed_rows(database_url: str) -> dict[str, bytes]:
    conn = await asyncpg.connect(_dsn(database_url))
    try:
        rows = await conn.fetch("SELECT id, secret FROM credentials")
    finally:
        await conn.close()
    return {row["id"]: bytes(row["secret"]) for row in rows}


async def test_rotate_key_reseals_every_credential_in_one_go(
    api: Api,
    nats_url: str,
    migrated_database_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from nodedrop.cli.credentials import RotateRequest, rotate_key

    ids = [
        (await _create(api.client, type="bearer_token", name=f"c{i}", data={"token": SECRET}))["id"]
        for i in range(3)
    ]
    new = SecretKey.generate()
    monkeypatch.setenv("NODEDROP_SECRET_KEY", KEY.text())
    monkeypatch.setenv("NODEDROP_DATABASE_URL", migrated_database_url)
    monkeypatch.setattr("sys.stdin", io.StringIO(new.text() + "\n"))
    assert await asyncio.to_thread(rotate_key, RotateRequest(new_key_stdin=True)) == 0
    assert "re-encrypted 3 credentials" in capsys.readouterr().err
    sealed = await _sealed_rows(migrated_database_url)
    for credential_id in ids:
        assert open_secret(new, credential_id, sealed[credential_id]) == {"token": SECRET}
    # the api now starts with the new key only
    rotated = create_app(api_config(nats_url, migrated_database_url), secret_key=new)
    async with rotated.router.lifespan_context(rotated), client_for(rotated, TOKEN) as client:
        shown = await client.get(f"/api/credentials/{ids[0]}")
        assert shown.json()["secrets"] == {"token": "****cdef"}
    stale = create_app(api_config(nats_url, migrated_database_url), secret_key=KEY)
    with pytest.raises(ConfigurationError):
        async with stale.router.lifespan_context(stale):
            pass


async def test_a_rotation_that_fails_on_one_row_changes_nothing(
    api: Api, migrated_database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from nodedrop.cli.credentials import RotateRequest, rotate_key

    for i in range(3):
        await _create(api.client, type="bearer_token", name=f"c{i}", data={"token": SECRET})
    before = await _sealed_rows(migrated_database_url)
    broken = sorted(before)[-1]
    conn = await asyncpg.connect(_dsn(migrated_database_url))
    try:  # the last row re-sealed under some other key: it cannot be opened any more
        await conn.execute(
            "UPDATE credentials SET secret = $2 WHERE id = $1",
            broken,
            SecretKey.generate().seal(b"{}", f"credential:{broken}"),
        )
    finally:
        await conn.close()
    before = await _sealed_rows(migrated_database_url)
    monkeypatch.setenv("NODEDROP_SECRET_KEY", KEY.text())
    monkeypatch.setenv("NODEDROP_DATABASE_URL", migrated_database_url)
    assert await asyncio.to_thread(rotate_key, RotateRequest()) == 1
    assert await _sealed_rows(migrated_database_url) == before


def test_rotate_key_with_the_data_directorys_key_replaces_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without a database the rotation fails, and the key file stays as it was."""
    from nodedrop.cli.credentials import RotateRequest, rotate_key
    from nodedrop.cli.settings import ensure_secret_key, secret_key_path

    monkeypatch.delenv("NODEDROP_SECRET_KEY", raising=False)
    monkeypatch.setenv("NODEDROP_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("NODEDROP_DATABASE_URL", "postgresql://nobody@127.0.0.1:1/none")
    key, created = ensure_secret_key(tmp_path)
    assert created
    assert secret_key_path(tmp_path).stat().st_mode & 0o777 == 0o600
    assert rotate_key(RotateRequest()) == 1
    assert secret_key_path(tmp_path).read_text().strip() == key
    assert not (tmp_path / "secret_key.new").exists()


def _using(credential_id: str) -> dict[str, Any]:
    return {
        "name": "uses a credential",
        "nodes": [
            {"id": "start", "type": "manual_trigger"},
            {
                "id": "fetch",
                "type": "http_request",
                "parameters": {"url": "https://example.com", "credential": credential_id},
            },
        ],
        "connections": [{"from": "start", "to": "fetch"}],
    }


async def test_a_workflow_may_name_only_its_owners_credentials(api: Api) -> None:
    alice, bob = await create_user(api, "alice"), await create_user(api, "bob")
    async with client_for(api.app, alice.key) as as_alice, client_for(api.app, bob.key) as as_bob:
        alices = await _create(as_alice, type="bearer_token", name="a", data={"token": SECRET})
        saved = await as_alice.post("/api/workflows", json=_using(alices["id"]))
        assert saved.status_code == 201, saved.text
        for credential_id in (alices["id"], "no-such-credential"):
            refused = await as_bob.post("/api/workflows", json=_using(credential_id))
            assert refused.status_code == 422, refused.text
            [problem] = refused.json()["detail"]
            assert problem["loc"] == ["body", "nodes", 1, "parameters", "credential"]
            assert f"no credential {credential_id}" in problem["msg"]
        bobs = await _create(as_bob, type="bearer_token", name="b", data={"token": SECRET})
        changed = await as_alice.put(
            f"/api/workflows/{saved.json()['id']}", json=_using(bobs["id"])
        )
        assert changed.status_code == 422, changed.text


async def test_a_bad_credential_and_a_bad_call_are_answered_together(api: Api) -> None:
    definition = _using("no-such-credential")
    definition["nodes"].append(
        {"id": "call", "type": "execute_workflow", "parameters": {"workflow_id": "nowhere"}}
    )
    refused = await api.client.post("/api/workflows", json=definition)
    assert refused.status_code == 422, refused.text
    assert sorted(p["loc"][-1] for p in refused.json()["detail"]) == ["credential", "workflow_id"]
