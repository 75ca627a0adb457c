"""Credentials end to end (docs/credentials.md): workflows use a credential of every type,
including a custom node type's own, and fail in every way a credential can (the server quotes
it in an error, it was deleted, it is another user's, the OAuth2 client is refused); then the
whole log (the nats-server's files: streams, buckets, object store), every PostgreSQL table,
every service's log, the exported spans and the API's answers are scanned for the planted
secret bytes. Only the credentials table's sealed rows may hold them, and there they are
encrypted, so the scan must find nothing anywhere."""

from __future__ import annotations

import asyncio
import base64
import secrets
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import asyncpg  # type: ignore[import-untyped]  # asyncpg ships no type information
import httpx
import pytest

from nodedrop.client import AsyncClient
from nodedrop.platform.secretbox import SecretKey

from .conftest import running_system
from .system import System

if TYPE_CHECKING:  # pytest gives the class as a fixture (see tests/fixtures/http_server.py)
    from tests.fixtures.http_server import LocalHttpServer, Request

pytestmark = pytest.mark.e2e


def planted(what: str) -> str:
    # Only URL-safe characters: a secret sent in a query string is then the same bytes there.
    return f"PLANTED-{what}-{secrets.token_hex(12)}"


HEADER_VALUE = planted("header")
BEARER = planted("bearer")
PASSWORD = planted("password")
QUERY_VALUE = planted("query")
CLIENT_SECRET = planted("client-secret")
ACCESS_TOKEN = planted("access-token")
SIGNING_SECRET = planted("signing-key")
BASIC = base64.b64encode(f"ann:{PASSWORD}".encode()).decode()
CLIENT_BASIC = base64.b64encode(f"app:{CLIENT_SECRET}".encode()).decode()
#: Every byte string that must appear nowhere.
SECRETS = [
    HEADER_VALUE,
    BEARER,
    PASSWORD,
    QUERY_VALUE,
    CLIENT_SECRET,
    ACCESS_TOKEN,
    SIGNING_SECRET,
    BASIC,
    CLIENT_BASIC,
]
#: A plain value that is recorded (an input item): the scans must find it, or they prove nothing.
CANARY = f"CANARY-{secrets.token_hex(8)}"


@pytest.fixture(scope="module")
async def system(pg_server_url: str, plugin_path: str) -> AsyncIterator[System]:
    env = {
        "NODEDROP_HTTP_ALLOW_PRIVATE": "true",
        "PYTHONPATH": plugin_path,
        "NODEDROP_SECRET_KEY": SecretKey.generate().text(),
        "NODEDROP_OTEL_EXPORTER": "jsonl:{log_dir}/spans.jsonl",
    }
    async with running_system(pg_server_url, env) as started:
        yield started


def api_answer(request: Request) -> tuple[int, Any]:
    """``/ok``: a plain answer; ``/fail``: a 500 that quotes every header and the query back,
    as a careless upstream does."""
    if request.path.startswith("/fail"):
        return 500, {"headers": dict(request.headers.items()), "path": request.path}
    return 200, {"ok": True}


def token_answer(request: Request) -> tuple[int, Any]:
    if request.headers.get("Authorization") != f"Basic {CLIENT_BASIC}":
        return 401, {"error": "invalid_client"}
    return 200, {"access_token": ACCESS_TOKEN, "token_type": "Bearer", "expires_in": 3600}


@pytest.fixture(scope="module")
def upstream(local_http_server: type[LocalHttpServer]) -> Iterator[LocalHttpServer]:
    with local_http_server(api_answer) as server:
        yield server


@pytest.fixture(scope="module")
def token_endpoint(local_http_server: type[LocalHttpServer]) -> Iterator[LocalHttpServer]:
    with local_http_server(token_answer, method="POST") as server:
        yield server


async def user(system: System, name: str) -> httpx.AsyncClient:
    async with httpx.AsyncClient(base_url=system.base_url, headers=system.headers) as admin:
        created = await admin.post("/api/users", json={"name": name})
        assert created.status_code == 201, created.text
        key = created.json()["api_key"]
    return httpx.AsyncClient(
        base_url=system.base_url, headers={"Authorization": f"Bearer {key}"}, timeout=10
    )


async def credential(client: httpx.AsyncClient, type: str, label: str, **data: Any) -> str:
    body = {"type": type, "name": label, "data": data}
    response = await client.post("/api/credentials", json=body)
    assert response.status_code == 201, response.text
    credential_id: str = response.json()["id"]
    return credential_id


def calling(url: str, credential_id: str, node_type: str = "http_request") -> dict[str, Any]:
    parameters: dict[str, Any] = {"credential": credential_id}
    if node_type == "http_request":
        parameters["url"] = url
    return {
        "name": "with a credential",
        "nodes": [
            {"id": "start", "type": "manual_trigger"},
            {"id": "call", "type": node_type, "parameters": parameters},
        ],
        "connections": [{"from": "start", "to": "call"}],
    }


async def run(
    client: httpx.AsyncClient, url: str, credential_id: str, node_type: str = "http_request"
) -> dict[str, Any]:
    api = AsyncClient(str(client.base_url), http=client)
    workflow = calling(url, credential_id, node_type)
    execution_id = (await api.submit(workflow=workflow, input=[{"canary": CANARY}])).id
    return (await api.wait_for(execution_id, 30)).model_dump(mode="json")


def found_in(data: bytes) -> list[str]:
    return [secret for secret in SECRETS if secret.encode() in data]


async def test_no_planted_secret_is_anywhere_after_every_kind_of_use(
    system: System, upstream: LocalHttpServer, token_endpoint: LocalHttpServer
) -> None:
    alice = await user(system, "alice")
    bob = await user(system, "bob")
    answers: list[str] = []
    async with alice, bob:
        ids = {
            "http_header": await credential(
                alice, "http_header", "hdr", name="X-Api-Key", value=HEADER_VALUE
            ),
            "bearer_token": await credential(alice, "bearer_token", "bearer", token=BEARER),
            "basic_auth": await credential(
                alice, "basic_auth", "basic", username="ann", password=PASSWORD
            ),
            "query_parameter": await credential(
                alice, "query_parameter", "query", name="api_key", value=QUERY_VALUE
            ),
            "oauth2_client_credentials": await credential(
                alice,
                "oauth2_client_credentials",
                "oauth",
                token_url=token_endpoint.url + "/token",
                client_id="app",
                client_secret=CLIENT_SECRET,
            ),
        }
        signing = await credential(
            alice, "example_signing_key", "signing", key_id="k1", secret=SIGNING_SECRET
        )
        refused = await credential(
            alice,
            "oauth2_client_credentials",
            "refused",
            token_url=token_endpoint.url + "/token",
            client_id="someone-else",
            client_secret=CLIENT_SECRET,
        )
        gone = await credential(alice, "bearer_token", "gone", token=BEARER + "-gone")
        assert (await alice.delete(f"/api/credentials/{gone}")).status_code == 204

        # each type works, and a server quoting it back in an error leaks nothing
        for type_name, credential_id in ids.items():
            ok = await run(alice, upstream.url + "/ok", credential_id)
            assert ok["status"] == "succeeded", (type_name, ok["nodes"]["call"])
            failed = await run(alice, upstream.url + "/fail", credential_id)
            error = failed["nodes"]["call"]["error"]
            assert error["type"] == "HttpServerError", (type_name, error)
            assert "[redacted]" in error["message"], (type_name, error)
            shown = await alice.get(f"/api/credentials/{credential_id}")
            assert shown.json()["last_used"]["execution_id"] == failed["id"]
            assert shown.json()["last_used"]["node"] == "call"
            events = await alice.get(f"/api/executions/{ok['id']}/events")
            [result] = [
                e
                for e in events.json()["events"]
                if e["type"] == "NodeSucceeded" and e["node"] == "call"
            ]
            assert result["data"]["credentials"] == [credential_id]
            answers += [shown.text, events.text]
        sent = {r.path: r for r in upstream.requests()}
        assert any(QUERY_VALUE in path for path in sent)  # the secrets really went out

        # a custom node type's own credential type, resolved into its context
        signed = await run(alice, "", signing, node_type="sign")
        assert signed["status"] == "succeeded", signed["nodes"]["call"]
        assert signed["nodes"]["call"]["output"]["main"][0]["key_id"] == "k1"
        wrong_type = await run(alice, "", ids["bearer_token"], node_type="sign")
        assert wrong_type["nodes"]["call"]["error"]["type"] == "TypeError"

        # what fails for the credential itself: CredentialError, not retried, naming its id
        for who, credential_id, why in [
            (alice, gone, "not found"),
            (bob, ids["bearer_token"], "not found"),
            (alice, refused, "invalid_client"),
        ]:
            execution = await run(who, upstream.url + "/ok", credential_id)
            error = execution["nodes"]["call"]["error"]
            assert error["type"] == "CredentialError", error
            assert credential_id in error["message"] or why == "invalid_client"
            assert why in error["message"]
            assert execution["nodes"]["call"]["attempts"] == 1
            answers.append(str(execution))
        # bob cannot even see alice's credential
        assert (await bob.get(f"/api/credentials/{ids['bearer_token']}")).status_code == 404
        for listing in ("/api/credentials", "/api/executions"):
            answers.append((await alice.get(listing)).text)
    await _scan(system, answers)


async def _scan(system: System, answers: list[str]) -> None:
    # The API's answers.
    assert found_in("\n".join(answers).encode()) == []
    # Every table, row by row, as text (the credentials' sealed secrets included).
    conn = await asyncpg.connect(system.database_url.replace("+asyncpg", ""))
    try:
        tables = [
            row["table_name"]
            for row in await conn.fetch(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
            )
        ]
        dump = []
        for table in tables:
            rows = await conn.fetch(f'SELECT t::text AS row FROM "{table}" t')
            dump += [row["row"] for row in rows]
    finally:
        await conn.close()
    database = "\n".join(dump).encode()
    assert "credentials" in tables
    assert "node_executions" in tables
    assert CANARY.encode() in database  # the scan sees what is stored
    assert found_in(database) == []
    contents = await asyncio.to_thread(_files_under, system.log_dir)
    assert any(path.endswith("spans.jsonl") for path in contents)
    assert any(path.endswith("runner.log") for path in contents)
    # the log's files hold events in plain text: the scan would see a secret there
    assert any(CANARY.encode() in data for data in contents.values())
    leaks = {path: found_in(data) for path, data in contents.items()}
    assert {path: found for path, found in leaks.items() if found} == {}


def _files_under(directory: Path) -> dict[str, bytes]:
    """Every file under the system's directory: the nats-server's store (streams, key-value
    buckets, object store), the services' logs, the exported spans."""
    return {str(p): p.read_bytes() for p in Path(directory).rglob("*") if p.is_file()}
