"""The embedded servers and the fixtures built on them really work."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import asyncpg  # type: ignore[import-untyped]  # asyncpg ships no type information
import nats
import pytest
from nats.js import JetStreamContext

from nodedrop.embedded import EmbeddedNats, EmbeddedPostgres
from nodedrop.embedded.postgres import postgres_bin_dir

pytestmark = pytest.mark.integration


def _dsn(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


async def test_jetstream_is_available_and_deduplicates(jetstream: JetStreamContext) -> None:
    await jetstream.add_stream(name="FIXTURE_CHECK", subjects=["fixture.check.>"])

    first = await jetstream.publish("fixture.check.a", b"1", headers={"Nats-Msg-Id": "m-1"})
    again = await jetstream.publish("fixture.check.a", b"1", headers={"Nats-Msg-Id": "m-1"})

    assert not first.duplicate
    assert again.duplicate
    assert again.seq == first.seq
    info = await jetstream.stream_info("FIXTURE_CHECK")
    assert info.state.messages == 1


async def test_jetstream_fixture_starts_without_streams(jetstream: JetStreamContext) -> None:
    # The previous test's stream was deleted by the fixture's teardown.
    assert await jetstream.streams_info() == []


async def test_nats_server_is_recent_enough(nats_url: str) -> None:
    nc = await nats.connect(nats_url)
    try:
        version = nc.connected_server_version
        assert (version.major, version.minor) >= (2, 11), str(version)
        assert nc.max_payload == 8 * 1024 * 1024
    finally:
        await nc.close()


async def test_database_url_answers_select_1(database_url: str) -> None:
    assert database_url.startswith("postgresql+asyncpg://")
    conn = await asyncpg.connect(_dsn(database_url))
    try:
        assert await conn.fetchval("select 1") == 1
        assert (await conn.fetchval("select current_database()")).startswith("nodedrop_test_")
        tables = await conn.fetchval(
            "select count(*) from information_schema.tables where table_schema = 'public'"
        )
        assert tables == 0
    finally:
        await conn.close()


_created: list[str] = []


async def test_database_url_is_a_new_database(pg_server_url: str, database_url: str) -> None:
    conn = await asyncpg.connect(_dsn(database_url))
    try:
        await conn.execute("create table leftover (id int)")  # gone with the database
        name = await conn.fetchval("select current_database()")
    finally:
        await conn.close()
    assert database_url.startswith(pg_server_url.rsplit("/", 1)[0] + "/")
    _created.append(name)


async def test_database_url_was_dropped_after_the_previous_test(pg_server_url: str) -> None:
    if not _created:
        pytest.skip("runs after test_database_url_is_a_new_database")
    admin = await asyncpg.connect(_dsn(pg_server_url))
    try:
        exists = "select 1 from pg_database where datname = $1"
        assert await admin.fetchval(exists, _created[0]) is None
    finally:
        await admin.close()


async def test_embedded_postgres_restart_keeps_rows(embedded_pg_dir: Path) -> None:
    server = EmbeddedPostgres(embedded_pg_dir, database="app")
    await asyncio.to_thread(server.start)
    try:
        conn = await asyncpg.connect(server.dsn())
        await conn.execute("create table t (id int primary key)")
        await conn.execute("insert into t select generate_series(1, 3)")
        await conn.close()
    finally:
        await asyncio.to_thread(server.stop)

    await asyncio.to_thread(server.start)  # existing cluster: no initdb
    try:
        conn = await asyncpg.connect(server.dsn())
        assert await conn.fetchval("select count(*) from t") == 3
        await conn.close()
    finally:
        await asyncio.to_thread(server.stop)
    assert server.pid is None


async def test_embedded_postgres_restarts_after_being_killed(embedded_pg_dir: Path) -> None:
    killed = EmbeddedPostgres(embedded_pg_dir, database="app")
    await asyncio.to_thread(killed.start)
    try:
        conn = await asyncpg.connect(killed.dsn())
        await conn.execute("create table t (id int primary key)")
        await conn.execute("insert into t values (1)")
        await conn.close()
        assert killed.pid is not None
        os.kill(killed.pid, signal.SIGKILL)  # leaves postmaster.pid behind
    finally:
        await asyncio.to_thread(killed.stop)  # reaps the killed process
    assert (embedded_pg_dir / "data" / "postmaster.pid").exists()

    server = EmbeddedPostgres(embedded_pg_dir, database="app")
    await asyncio.to_thread(server.start)
    try:
        conn = await asyncpg.connect(server.dsn())
        assert await conn.fetchval("select count(*) from t") == 1
        await conn.close()
    finally:
        await asyncio.to_thread(server.stop)


async def test_embedded_postgres_is_the_bundled_server(embedded_pg_dir: Path) -> None:
    assert (postgres_bin_dir() / "postgres").is_file()
    with EmbeddedPostgres(embedded_pg_dir, durable=False) as server:
        assert server.url("x") == f"postgresql+asyncpg://postgres@127.0.0.1:{server.port}/x"
        conn = await asyncpg.connect(server.dsn())
        try:
            assert int(await conn.fetchval("show server_version_num")) >= 170000
            assert await conn.fetchval("show listen_addresses") == "127.0.0.1"
        finally:
            await conn.close()


async def test_embedded_nats_restart_keeps_messages(tmp_path: Path) -> None:
    server = EmbeddedNats(tmp_path / "nats")
    await asyncio.to_thread(server.start)
    try:
        nc = await nats.connect(server.url)
        js = nc.jetstream()
        await js.add_stream(name="KEEP", subjects=["keep.>"])
        for i in range(3):
            await js.publish("keep.x", f"m{i}".encode())
        await nc.close()
    finally:
        await asyncio.to_thread(server.stop)

    await asyncio.to_thread(server.start)
    try:
        nc = await nats.connect(server.url)
        js = nc.jetstream()
        info = await js.stream_info("KEEP")
        assert info.state.messages == 3
        assert (await js.get_msg("KEEP", 1)).data == b"m0"
        await nc.close()
    finally:
        await asyncio.to_thread(server.stop)
    assert server.pid is None


async def test_embedded_postgres_refuses_a_second_server_on_one_cluster(
    embedded_pg_dir: Path,
) -> None:
    with EmbeddedPostgres(embedded_pg_dir, durable=False) as first:
        second = EmbeddedPostgres(embedded_pg_dir, durable=False)
        with pytest.raises(RuntimeError, match="already runs"):
            await asyncio.to_thread(second.start)
        assert first.running
        assert second.pid is None
