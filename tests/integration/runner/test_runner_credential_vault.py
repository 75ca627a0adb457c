"""The runner's credential vault against a real PostgreSQL: the key checked at start, the owner
check, the use recorded on the row, and a database that is down at start."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime

import asyncpg  # type: ignore[import-untyped]  # asyncpg ships no type information
import pytest

from nodedrop.contracts.events import NodeReady
from nodedrop.platform.db import migrate
from nodedrop.platform.db.credentials import seal_secret
from nodedrop.platform.secretbox import SecretKey, SecretKeyError
from nodedrop.runner.credentials import CredentialVault, asyncpg_dsn
from nodedrop.runner.nodes.api import NodeError

pytestmark = pytest.mark.integration

KEY = SecretKey.generate()
NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)


def task(requester: str | None, credential_id: str = "cred-1") -> NodeReady:
    return NodeReady(
        event_id="e",
        execution_id="exec-1",
        time=NOW,
        node="call",
        attempt=1,
        node_type="http_request",
        input={},
        parameters={"url": "https://x.example", "credential": credential_id},
        requester=requester,
    )


@pytest.fixture
async def stored(database_url: str) -> str:
    """A database with alice's bearer token ``cred-1``, sealed under KEY."""
    await asyncio.to_thread(migrate.upgrade, database_url)
    conn = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        await conn.execute(
            "INSERT INTO credentials (id, owner, type, name, fields, secret, key_fingerprint, "
            "created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8)",
            "cred-1",
            "alice",
            "bearer_token",
            "gh",
            json.dumps({}),
            seal_secret(KEY, "cred-1", {"token": "t0ken-value"}),
            KEY.fingerprint,
            NOW,
        )
    finally:
        await conn.close()
    return database_url


async def test_the_owners_task_gets_it_decrypted_and_the_use_is_recorded(stored: str) -> None:
    vault = await CredentialVault.open(stored, KEY)
    try:
        found = await vault.resolve(task("alice"), ["credential"], now=NOW)
    finally:
        await vault.aclose()
    credential = found["credential"]
    assert (credential.id, credential.type, credential.fields) == (
        "cred-1",
        "bearer_token",
        {"token": "t0ken-value"},
    )
    assert "t0ken" not in repr(credential)
    conn = await asyncpg.connect(asyncpg_dsn(stored))
    try:
        row = await conn.fetchrow("SELECT last_used_at, last_used_execution, last_used_node "
                                  "FROM credentials WHERE id = 'cred-1'")  # fmt: skip
    finally:
        await conn.close()
    assert tuple(row.values()) == (NOW, "exec-1", "call")


@pytest.mark.parametrize(
    ("requester", "credential_id", "said"),
    [
        ("bob", "cred-1", "not found"),
        ("alice", "cred-2", "not found"),
        (None, "cred-1", "names no requester"),
    ],
)
async def test_anyone_else_or_anything_else_is_a_credential_error(
    stored: str, requester: str | None, credential_id: str, said: str
) -> None:
    vault = await CredentialVault.open(stored, KEY)
    try:
        with pytest.raises(NodeError, match=said) as error:
            await vault.resolve(task(requester, credential_id), ["credential"])
    finally:
        await vault.aclose()
    assert (error.value.type, error.value.retryable) == ("CredentialError", False)
    assert credential_id in error.value.message


async def test_a_wrong_or_missing_key_stops_the_runner_at_start(stored: str) -> None:
    # the first service with a key records its check value
    await (await CredentialVault.open(stored, KEY)).aclose()
    with pytest.raises(SecretKeyError, match="is not the key"):
        await CredentialVault.open(stored, SecretKey.generate())
    with pytest.raises(SecretKeyError, match="is not set"):
        await CredentialVault.open(stored, None)


async def test_a_database_down_at_start_is_checked_at_the_first_use() -> None:
    vault = await CredentialVault.open("postgresql://nobody@127.0.0.1:9/none", KEY)
    try:
        with pytest.raises(NodeError, match="could not be read") as error:
            await vault.resolve(task("alice"), ["credential"])
    finally:
        await vault.aclose()
    assert error.value.retryable  # the database may be back for the next attempt
