"""``nodedrop up``: the whole system on one machine, in the foreground (what ``make run`` runs).

1. Take the data directory (``NODEDROP_DATA_DIR``, default ``./.nodedrop``) and its lock, so two
   ``nodedrop up`` never share one.
2. Start the embedded nats-server and PostgreSQL unless ``NODEDROP_NATS_URL`` /
   ``NODEDROP_DATABASE_URL`` name servers to use (see :mod:`nodedrop.cli.servers`).
3. Run the migrations, make sure there is an admin key, start the services as child processes
   (their output prefixed with their name), wait for ``GET /health``, print the URL and the key.
   The embedded NATS server requires a user per service (nodedrop.platform.natsauth; the
   passwords are generated into the data directory on first use): the JetStream layout is set
   up as ``admin`` first, then each service connects as itself and may do only what it needs.
4. Supervise: a child that exits on its own is restarted after a growing delay.
5. On SIGINT, SIGTERM or SIGHUP: SIGTERM to the services, SIGKILL after ``--stop-timeout``,
   then stop the servers; exit 0.

Each child runs in a process group of its own: a Ctrl-C in the terminal reaches this process
only, which then stops everything in order. The services also get SIGTERM should this process
die without stopping them (Linux parent-death signal), and the servers stop when their stdin,
a pipe from this process, closes.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import importlib.util
import io
import json
import os
import selectors
import shlex
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import IO, Any

from nodedrop.cli import settings
from nodedrop.cli.servers import READY
from nodedrop.platform import natsauth
from nodedrop.platform.secretbox import KEY_ENV as SECRET_KEY_ENV

SERVICES = ("api", "scheduler", "runner", "notifier")
#: The services that seal or open credentials (docs/credentials.md): the others never get the key.
_KEY_HOLDERS = frozenset({"api", "runner"})
HEALTH_HINT_EVERY_S = 30.0
SERVERS_START_TIMEOUT_S = 180.0
SERVERS_STOP_TIMEOUT_S = 90.0
RESTART_DELAY_S = 1.0
MAX_RESTART_DELAY_S = 30.0
#: A child that ran this long before exiting is restarted after the initial delay again.
STABLE_AFTER_S = 30.0
_TICK_S = 0.2
MAX_LINE_BYTES = 64 * 1024
_PR_SET_PDEATHSIG = 1


OPS_PORT_ENV = "NODEDROP_OPS_PORT"


def ops_ports(given: str | None, names: list[str]) -> dict[str, int]:
    """The metrics and probes port of each process without an HTTP server of its own, when
    ``NODEDROP_OPS_PORT`` is a port N: the scheduler on N, the runners on N+1, N+2... (one
    variable, and processes sharing one host). The api and the notifier serve theirs on their
    own ports. Unset, empty or 0: as given (off, or a free port each)."""
    port = int(given) if given and given.strip().isdigit() else 0
    if port == 0:
        return {}
    listeners = [name for name in names if name == "scheduler" or name.startswith("runner")]
    return {name: port + i for i, name in enumerate(listeners) if port + i <= 65535}


class UpError(Exception):
    """Startup failed; the message says why."""


class _Shutdown(BaseException):
    """SIGINT or SIGTERM: stop everything (raised from the signal handler)."""


# ------------------------------------------------------------------------------------ output


class Console:
    """Prints lines with a ``name |`` prefix, colored on a terminal."""

    PALETTE = ("36", "35", "33", "32", "34", "96", "95", "93")

    def __init__(self, out: IO[str], names: list[str], *, color: bool) -> None:
        self._out = out
        self._width = max(len(n) for n in names)
        self._color = color
        self._colors = {name: self.PALETTE[i % len(self.PALETTE)] for i, name in enumerate(names)}

    def prefix(self, name: str) -> str:
        label = f"{name.ljust(self._width)} |"
        code = self._colors.get(name)
        if self._color and code:
            return f"\x1b[{code}m{label}\x1b[0m"
        return label

    def line(self, name: str, text: str) -> None:
        self.block(f"{self.prefix(name)} {text}\n")

    def block(self, text: str) -> None:
        with contextlib.suppress(OSError):  # a closed terminal must not stop the shutdown
            self._out.write(text)
            self._out.flush()


# ------------------------------------------------------------------------------------ children


def _load_libc() -> Any:
    try:
        return ctypes.CDLL(None, use_errno=True)
    except OSError:  # pragma: no cover - not Linux
        return None


_LIBC = _load_libc()


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    # SIGTERM this child when the thread that started it (this process's only thread) ends.
    with contextlib.suppress(Exception):
        _LIBC.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


@dataclass
class Child:
    """One supervised child process: its output, readiness, and restart bookkeeping."""

    name: str
    argv: list[str]
    env: dict[str, str]
    console: Console
    #: The child announces readiness with a ``READY {json}`` line (the servers host).
    announces_ready: bool = False
    process: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    restarts: int = 0
    #: The delay before the next restart; doubles while the child keeps failing fast.
    delay: float = RESTART_DELAY_S
    restart_at: float | None = None
    ready_info: dict[str, Any] | None = None
    output_closed: bool = True
    _partial: bytes = b""

    def start(self) -> None:
        self.ready_info = None
        self._partial = b""
        # No thread runs in this process (output is read with a selector), so preexec_fn is
        # safe here; it is the only way to ask for a parent-death signal.
        self.process = subprocess.Popen(
            self.argv,
            stdin=subprocess.PIPE if self.announces_ready else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=self.env,
            process_group=0,
            preexec_fn=_die_with_parent if _LIBC is not None else None,  # noqa: PLW1509
        )
        self.output_closed = False
        self.started_at = time.monotonic()
        self.restart_at = None

    def feed(self, data: bytes) -> None:
        """Output read from the child; empty at end of file."""
        if not data:
            if self._partial:
                self._line(self._partial)
            self._partial = b""
            self.output_closed = True
            return
        lines = (self._partial + data).split(b"\n")
        self._partial = lines.pop()
        if len(self._partial) > MAX_LINE_BYTES:
            lines.append(self._partial)
            self._partial = b""
        for raw in lines:
            self._line(raw)

    def _line(self, raw: bytes) -> None:
        text = raw.decode(errors="replace").rstrip("\r")
        if self.announces_ready and text.startswith(READY):
            with contextlib.suppress(json.JSONDecodeError):
                info = json.loads(text[len(READY) :])
                if isinstance(info, dict):
                    self.ready_info = info
                    return
        self.console.line(self.name, text)

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def exit_description(self) -> str:
        code = self.process.returncode if self.process is not None else None
        if code is None:
            return "is running"
        if code < 0:
            try:
                return f"was killed by {signal.Signals(-code).name}"
            except ValueError:
                return f"was killed by signal {-code}"
        return f"exited with code {code}"

    def signal(self, sig: signal.Signals) -> None:
        """Signal the child's process group (it leads one), while the child lives."""
        if self.process is None or self.process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, sig)

    def close_stdin(self) -> None:
        if self.process is not None and self.process.stdin is not None:
            with contextlib.suppress(OSError):
                self.process.stdin.close()


class Pump:
    """Reads every child's output in this one thread, line by line, as it comes."""

    def __init__(self) -> None:
        self._selector = selectors.DefaultSelector()

    def add(self, child: Child) -> None:
        assert child.process is not None
        assert child.process.stdout is not None
        stream = child.process.stdout
        os.set_blocking(stream.fileno(), False)
        self._selector.register(stream, selectors.EVENT_READ, child)

    def run(self, timeout: float) -> None:
        """Handle the output available within ``timeout`` seconds (sleeps if there is none)."""
        if not self._selector.get_map():
            time.sleep(timeout)
            return
        for key, _ in self._selector.select(timeout):
            self._read(key)

    def _read(self, key: selectors.SelectorKey) -> None:
        child: Child = key.data
        stream = key.fileobj
        assert isinstance(stream, io.BufferedReader)
        try:
            data = os.read(stream.fileno(), 65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self._selector.unregister(stream)
            stream.close()
        child.feed(data)

    def wait(self, children: list[Child], timeout: float) -> bool:
        """Pump output until every child has exited (True) or ``timeout`` passes (False)."""
        deadline = time.monotonic() + timeout
        while any(child.alive() for child in children):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            self.run(min(remaining, _TICK_S))
        return True

    def drain(self, child: Child, timeout: float = 1.0) -> None:
        """Print what an exited child left in its pipe (until end of file, or ``timeout``:
        something it started may hold the pipe open)."""
        deadline = time.monotonic() + timeout
        while not child.output_closed and time.monotonic() < deadline:
            self.run(0.05)


# ------------------------------------------------------------------------------------ helpers


def client_host(host: str) -> str:
    """Where a local client reaches a server listening on ``host``."""
    if host in {"", "0.0.0.0"}:
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    if ":" in host and not host.startswith("["):
        return f"[{host}]"
    return host


def port_free(host: str, port: int) -> bool:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does
        try:
            sock.bind((host.strip("[]"), port))
        except OSError:
            return False
    return True


@contextlib.contextmanager
def data_dir_lock(directory: Path) -> Iterator[None]:
    """Hold ``<data_dir>/up.lock`` (flock) for the duration; refuse if another process has it."""
    path = directory / "up.lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
            raise UpError(
                f"another `nodedrop up` (pid {holder}) is running on {directory}; stop it first "
                "or choose another NODEDROP_DATA_DIR"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)  # releases the lock


def missing_services(names: Iterable[str]) -> list[str]:
    missing = []
    for name in names:
        try:
            spec = importlib.util.find_spec(f"nodedrop.{name}.__main__")
        except ModuleNotFoundError:
            spec = None
        if spec is None:
            missing.append(f"nodedrop.{name}")
    return missing


def health_ok(url: str) -> bool:
    import httpx

    try:
        return httpx.get(f"{url}/health", timeout=1.0).status_code == 200
    except httpx.HTTPError:
        return False


# ------------------------------------------------------------------------------------ up


@dataclass
class Plan:
    """What ``nodedrop up`` is to start, read from the environment."""

    data_dir: Path
    host: str
    port: int
    notifier_port: int
    nats_url: str | None
    database_url: str | None
    nats_port: int
    pg_port: int
    admin_token: str | None
    runners: int
    #: ``NODEDROP_SECRET_KEY``; None: the data directory's (generated on first start).
    secret_key: str | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str], runners: int) -> Plan:
        """Raises :class:`settings.SettingError` naming a wrong variable."""
        given = settings.UpSettings.read(env)
        return cls(
            data_dir=given.data_dir.expanduser().resolve(),
            host=given.host,
            port=given.port,
            notifier_port=given.notifier_port,
            nats_url=given.nats_url,
            database_url=given.database_url,
            nats_port=given.nats_port,
            pg_port=given.pg_port,
            admin_token=given.admin_token,
            runners=runners,
            secret_key=given.secret_key,
        )

    @property
    def base_url(self) -> str:
        return f"http://{client_host(self.host)}:{self.port}"

    def service_names(self) -> list[str]:
        names = ["api", "notifier", "scheduler"]
        if self.runners == 1:
            names.append("runner")
        else:
            names += [f"runner-{i}" for i in range(1, self.runners + 1)]
        return names


class Up:
    def __init__(self, plan: Plan, *, stop_timeout: float, out: IO[str] | None = None) -> None:
        self.plan = plan
        self.stop_timeout = stop_timeout
        out = out or sys.stdout
        #: Whether a person reads the output (the admin key is shown there, never in a file).
        self.on_terminal = out.isatty()
        color = self.on_terminal and not os.environ.get("NO_COLOR")
        self.console = Console(out, ["nodedrop", "servers", *plan.service_names()], color=color)
        self.servers: Child | None = None
        #: The embedded NATS server's passwords per user (None: not the embedded server).
        self.nats_passwords: dict[str, str] | None = None
        self.services: list[Child] = []
        self.server_pids: list[int] = []
        self.pump = Pump()
        self._stopping = False
        self._hurry = False

    def say(self, text: str) -> None:
        self.console.line("nodedrop", text)

    # -------------------------------------------------------------- signals

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        if self._stopping:
            # make forwards its SIGTERM to us as well: only a second Ctrl-C means "hurry".
            if signum == signal.SIGINT and not self._hurry:
                self._hurry = True
                self.say("second Ctrl-C: killing the services now")
                for child in self.services:
                    child.signal(signal.SIGKILL)
            return
        self._stopping = True
        self.say(f"{signal.Signals(signum).name} received: stopping")
        raise _Shutdown

    # -------------------------------------------------------------- main

    def run(self) -> int:
        previous = {
            sig: signal.signal(sig, self._on_signal)
            for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
        }
        try:
            with contextlib.ExitStack() as held:
                try:
                    self.plan.data_dir.mkdir(parents=True, exist_ok=True)
                    # Held until everything has stopped: no second `up` starts meanwhile.
                    held.enter_context(data_dir_lock(self.plan.data_dir))
                    self._start_and_supervise()
                except _Shutdown:
                    pass
                except (UpError, OSError) as error:
                    self._stopping = True
                    self.say(f"error: {error}")
                    return 1
                finally:
                    self._stopping = True
                    self._stop_everything()
            self.say("stopped")
            return 0
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _start_and_supervise(self) -> None:
        plan = self.plan
        missing = missing_services(SERVICES)
        if missing:
            raise UpError(f"not installed: {', '.join(missing)} (run `make install`)")
        self._check_ports()
        nats_url, database_url = self._start_servers()
        self._migrate(database_url)
        if self.nats_passwords is not None:
            self._set_up_jetstream(nats_url, self.nats_passwords)
        token = self._admin_token()
        env = self._service_env(nats_url, database_url, token)
        secret_key = self._secret_key()
        ops = ops_ports(env.get(OPS_PORT_ENV), plan.service_names())
        if ops:
            listing = ", ".join(f"{name} on {port}" for name, port in ops.items())
            self.say(f"metrics and probes ({OPS_PORT_ENV}): {listing}")
        for name in plan.service_names():
            module = "runner" if name.startswith("runner") else name
            # Only the services that seal or open credentials get their key.
            child_env = {k: v for k, v in env.items() if k != SECRET_KEY_ENV}
            if module in _KEY_HOLDERS:
                child_env[SECRET_KEY_ENV] = secret_key
            if self.nats_passwords is not None:  # each service as its own NATS user
                user = module
                child_env.update(natsauth.client_environment(user, self.nats_passwords[user]))
            if name in ops:
                child_env[OPS_PORT_ENV] = str(ops[name])
            argv = [sys.executable, "-m", f"nodedrop.{module}"]
            child = Child(name, argv, child_env, self.console)
            self.services.append(child)
            self._start(child)
        self.say(f"started {', '.join(plan.service_names())}; waiting for {plan.base_url}/health")
        self._supervise(token)

    def _start(self, child: Child) -> None:
        child.start()
        self.pump.add(child)

    def _check_ports(self) -> None:
        plan = self.plan
        wanted = [
            ("NODEDROP_PORT", plan.host, plan.port),
            ("NODEDROP_NOTIFIER_PORT", plan.host, plan.notifier_port),
        ]
        if plan.nats_url is None:
            wanted.append(("NODEDROP_NATS_PORT", "127.0.0.1", plan.nats_port))
        if plan.database_url is None:
            wanted.append(("NODEDROP_PG_PORT", "127.0.0.1", plan.pg_port))
        ops_host = os.environ.get("NODEDROP_OPS_HOST", "").strip() or "127.0.0.1"
        for name, port in ops_ports(os.environ.get(OPS_PORT_ENV), plan.service_names()).items():
            wanted.append((f"{OPS_PORT_ENV} ({name})", ops_host, port))
        ports = [port for _, _, port in wanted]
        if len(set(ports)) != len(ports):
            listing = ", ".join(f"{name}={port}" for name, _, port in wanted)
            raise UpError(f"two servers would share a port: {listing}")
        busy = [f"{port} ({name})" for name, host, port in wanted if not port_free(host, port)]
        if busy:
            raise UpError(
                f"port {', '.join(busy)} already in use: stop what listens there or choose "
                "another port with that variable"
            )

    def _start_servers(self) -> tuple[str, str]:
        plan = self.plan
        if plan.nats_url is not None:
            self.say(f"using NATS at {plan.nats_url} (NODEDROP_NATS_URL)")
        if plan.database_url is not None:
            self.say(f"using PostgreSQL at {_without_password(plan.database_url)}")
        if plan.nats_url is not None and plan.database_url is not None:
            return plan.nats_url, plan.database_url
        argv = [sys.executable, "-m", "nodedrop.cli.servers", "--watch-stdin"]
        if plan.nats_url is None:
            argv += ["--nats-dir", str(plan.data_dir / "nats"), "--nats-port", str(plan.nats_port)]
            credentials = settings.nats_credentials_path(plan.data_dir)
            self.nats_passwords, created = natsauth.ensure_passwords(credentials)
            self.say(f"{'generated' if created else 'using the'} NATS credentials in {credentials}")
            argv += ["--nats-credentials", str(credentials)]
        if plan.database_url is None:
            argv += ["--pg-dir", str(plan.data_dir / "postgres"), "--pg-port", str(plan.pg_port)]
            argv += ["--database", settings.DATABASE_NAME]
        self.servers = Child("servers", argv, dict(os.environ), self.console, announces_ready=True)
        info = self._start_server_host()
        nats_url = plan.nats_url or str(info["nats_url"])
        return nats_url, plan.database_url or str(info["database_url"])

    def _start_server_host(self) -> dict[str, Any]:
        """Start the servers host and wait for its READY line."""
        servers = self.servers
        assert servers is not None
        self._start(servers)
        deadline = time.monotonic() + SERVERS_START_TIMEOUT_S
        while servers.ready_info is None:
            if not servers.alive() and servers.output_closed:
                raise UpError(
                    f"the embedded servers failed to start ({servers.exit_description()})"
                )
            if time.monotonic() > deadline:
                raise UpError(f"the embedded servers did not start in {SERVERS_START_TIMEOUT_S} s")
            self.pump.run(_TICK_S)
        self.server_pids = [int(p) for p in servers.ready_info.get("pids", [])]
        return servers.ready_info

    def _migrate(self, database_url: str) -> None:
        self.say("running database migrations")
        from nodedrop.platform.db.migrate import upgrade

        try:
            upgrade(database_url)
        except Exception as error:
            raise UpError(f"migrations failed: {type(error).__name__}: {error}") from error
        self.say("database schema is up to date")

    def _set_up_jetstream(self, nats_url: str, passwords: Mapping[str, str]) -> None:
        """Create or update the stream and its consumers as the admin user: the services may
        only check them (nodedrop.platform.natsauth)."""
        import asyncio

        from nodedrop.platform import natsconnect
        from nodedrop.platform.jetstream import StreamSettings, ensure_jetstream

        async def ensure() -> None:
            admin = natsconnect.NatsSettings(
                servers=(nats_url,), user=natsauth.ADMIN, password=passwords[natsauth.ADMIN]
            )
            nc = await natsconnect.connect(
                admin,
                name="nodedrop up",
                connect_timeout=5,
                allow_reconnect=False,
                max_reconnect_attempts=2,  # the server has just said it is ready
            )
            try:
                # As the services it starts will, from the same environment.
                await ensure_jetstream(nc.jetstream(), StreamSettings.from_env())
            finally:
                await nc.close()

        try:
            asyncio.run(ensure())
        except Exception as error:
            raise UpError(
                f"setting up JetStream failed: {type(error).__name__}: {error}"
            ) from error
        self.say("JetStream stream and consumers are up to date")

    def _admin_token(self) -> str:
        if self.plan.admin_token is not None:
            self.say("admin key from NODEDROP_ADMIN_TOKEN")
            return self.plan.admin_token
        token, created = settings.ensure_admin_token(self.plan.data_dir)
        path = settings.admin_token_path(self.plan.data_dir)
        self.say(f"{'generated a new' if created else 'using the'} admin key in {path}")
        return token

    def _secret_key(self) -> str:
        if self.plan.secret_key is not None:
            self.say(f"credentials key from {SECRET_KEY_ENV}")
            return self.plan.secret_key
        key, created = settings.ensure_secret_key(self.plan.data_dir)
        path = settings.secret_key_path(self.plan.data_dir)
        self.say(f"{'generated a new' if created else 'using the'} credentials key in {path}")
        return key

    def _service_env(self, nats_url: str, database_url: str, token: str) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            NODEDROP_NATS_URL=nats_url,
            NODEDROP_DATABASE_URL=database_url,
            NODEDROP_ADMIN_TOKEN=token,
            NODEDROP_DATA_DIR=str(self.plan.data_dir),
            NODEDROP_HOST=self.plan.host,
            NODEDROP_PORT=str(self.plan.port),
            NODEDROP_NOTIFIER_PORT=str(self.plan.notifier_port),
            PYTHONUNBUFFERED="1",
        )
        return env

    # -------------------------------------------------------------- supervision

    def _supervise(self, token: str) -> None:
        healthy = False
        waiting_since = time.monotonic()
        next_hint = waiting_since + HEALTH_HINT_EVERY_S
        next_probe = 0.0
        while True:
            self.pump.run(_TICK_S)
            now = time.monotonic()
            for child in self._all_children():
                self._check_child(child, now)
            if not healthy and now >= next_probe:
                next_probe = now + 0.5
                if health_ok(self.plan.base_url):
                    healthy = True
                    self._banner(token, now - waiting_since)
                elif now >= next_hint:
                    next_hint = now + HEALTH_HINT_EVERY_S
                    self.say(
                        f"still waiting for {self.plan.base_url}/health "
                        f"({now - waiting_since:.0f} s); see the services' output above"
                    )

    def _all_children(self) -> list[Child]:
        return ([self.servers] if self.servers is not None else []) + self.services

    def _check_child(self, child: Child, now: float) -> None:
        if child.restart_at is not None:
            if now >= child.restart_at:
                self._restart(child)
            return
        if child.alive() or self._stopping:
            return
        self.pump.drain(child, 0.5)
        if now - child.started_at >= STABLE_AFTER_S:
            child.delay = RESTART_DELAY_S
        self._schedule_restart(child, f"{child.name} {child.exit_description()} unexpectedly")

    def _schedule_restart(self, child: Child, why: str) -> None:
        delay, child.delay = child.delay, min(child.delay * 2, MAX_RESTART_DELAY_S)
        child.restart_at = time.monotonic() + delay
        self.say(f"{why}; restarting it in {delay:.0f} s")

    def _restart(self, child: Child) -> None:
        child.restarts += 1
        self.say(f"restarting {child.name} (restart #{child.restarts})")
        if child is not self.servers:
            self._start(child)
            return
        try:
            self._start_server_host()
        except UpError as error:
            self._schedule_restart(child, str(error))

    def _banner(self, token: str, waited: float) -> None:
        url = self.plan.base_url
        key, bearer = self._where_the_key_is(token)
        lines = [
            "",
            f"nodedrop is up ({waited:.1f} s)",
            f"  URL:       {url}",
            f"  admin key: {key}",
            f'  try:       curl -H "Authorization: Bearer {bearer}" {url}/api/node-types',
            *(["  run:       nodedrop run examples/hello.json"] if _has_example() else []),
            "  stop:      Ctrl-C",
            "",
        ]
        self.console.block("\n".join(lines) + "\n")

    def _where_the_key_is(self, token: str) -> tuple[str, str]:
        """What the banner says of the admin key, and what a shell command puts in its place:
        the key itself only on a terminal, so that no log file holds it."""
        if self.plan.admin_token is not None:
            return "as given in NODEDROP_ADMIN_TOKEN", "$NODEDROP_ADMIN_TOKEN"
        path = settings.admin_token_path(self.plan.data_dir)
        if self.on_terminal:
            return token, token
        return f"in {path}", f"$(cat {shlex.quote(str(path))})"

    # -------------------------------------------------------------- shutdown

    def _stop_everything(self) -> None:
        self._stop_services()
        self._stop_servers()

    def _stop_services(self) -> None:
        running = [child for child in self.services if child.alive()]
        if running:
            self.say(f"stopping {', '.join(c.name for c in running)}")
            for child in running:
                child.signal(signal.SIGTERM)
            if not self.pump.wait(running, self.stop_timeout):
                late = [child for child in running if child.alive()]
                names = ", ".join(child.name for child in late)
                self.say(f"{names} still running after {self.stop_timeout:g} s: SIGKILL")
                for child in late:
                    child.signal(signal.SIGKILL)
                self.pump.wait(late, 5.0)
        for child in self.services:
            # Anything a service started and left behind in its process group.
            if child.pid is not None:
                _kill_group_members(child.pid)
            self.pump.drain(child)

    def _stop_servers(self) -> None:
        servers = self.servers
        if servers is None or servers.process is None:
            return
        if servers.alive():
            servers.close_stdin()
            servers.signal(signal.SIGTERM)
            if not self.pump.wait([servers], SERVERS_STOP_TIMEOUT_S):
                self.say("the embedded servers did not stop in time: SIGKILL")
                servers.signal(signal.SIGKILL)
                self.pump.wait([servers], 5.0)
        for pid in self.server_pids:  # only if their host was killed before it could stop them
            if _pid_alive(pid):
                self.say(f"server process {pid} survived its host: SIGKILL")
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
        self.pump.drain(servers)


def group_members(pgid: int) -> list[int]:
    """The live processes in process group ``pgid`` (from /proc)."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if len(fields) > 2 and fields[2] == str(pgid) and fields[0] != "Z":
            members.append(int(entry.name))
    return members


def _kill_group_members(pgid: int) -> None:
    # Only while a member exists: then the kernel cannot have reused pgid for another process.
    if group_members(pgid):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGKILL)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie is dead: only its parent (the servers host) has not reaped it yet.
    try:
        status = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return status != "Z"


def _has_example() -> bool:
    return Path("examples/hello.json").is_file()


def _without_password(url: str) -> str:
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def up(runners: int = 1, stop_timeout: float = 10.0, env: Mapping[str, str] | None = None) -> int:
    try:
        plan = Plan.from_env(os.environ if env is None else env, runners)
    except settings.SettingError as error:
        print(f"nodedrop up: {error}", file=sys.stderr)
        return 2
    return Up(plan, stop_timeout=stop_timeout).run()
