"""The embedded NATS and PostgreSQL of ``nodedrop up``, hosted in a process of their own.

``nodedrop up`` starts ``python -m nodedrop.cli.servers`` in a new process group, so that the
terminal's Ctrl-C (sent to the whole foreground process group) reaches ``nodedrop up`` but not
the servers: ``nodedrop up`` stops its services first and the servers last, once nothing uses
them any more.

Protocol with the parent: progress lines on stdout, then one line
``READY {"nats_url": ..., "database_url": ..., "pids": [...]}`` once every server accepts
clients. The servers are stopped (PostgreSQL first, then NATS) on SIGTERM or SIGINT, or when
stdin reaches end of file, which is what happens when the parent exits, even if it is killed.
If a server dies on its own, this process says so and exits 1, and the parent restarts it.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import time
from pathlib import Path
from types import FrameType
from typing import Protocol

from nodedrop.embedded import EmbeddedNats, EmbeddedPostgres
from nodedrop.platform import natsauth

READY = "READY "
_CHECK_INTERVAL_S = 1.0


class _Server(Protocol):
    @property
    def running(self) -> bool: ...

    @property
    def pid(self) -> int | None: ...

    @property
    def log_file(self) -> Path: ...

    def stop(self) -> None: ...


class _Stopped(BaseException):
    """A stop signal arrived while the servers were starting."""


def _say(message: str) -> None:
    print(message, flush=True)


def _watch_stdin() -> None:
    # End of file on stdin: the parent is gone (or closed the pipe to stop us). Signal the main
    # thread, which alone may interrupt a server's start.
    # os.read on the descriptor, not sys.stdin: a daemon thread blocked inside a buffered
    # reader holds its lock, and the interpreter aborts if it finds it held at exit.
    try:
        while os.read(0, 4096):
            pass
    except OSError:
        pass
    os.kill(os.getpid(), signal.SIGTERM)


def _passwords(credentials: Path | None) -> dict[str, str] | None:
    """The NATS users' passwords in ``credentials`` (None: no authentication)."""
    if credentials is None:
        return None
    passwords = natsauth.read_passwords(credentials)
    if passwords is None:
        raise ValueError(f"no NATS credentials in {credentials}")
    return passwords


def serve(args: argparse.Namespace) -> int:
    # The handler takes no lock (setting a threading.Event from a signal handler can deadlock
    # the main thread on the event's own lock, and then the process ignores every later
    # signal): it raises, which ends a server's start or the watch loop alike.
    stopping = False

    def on_signal(signum: int, frame: FrameType | None) -> None:
        if not stopping:  # a second signal while stopping must not interrupt the stop
            raise _Stopped

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    if args.watch_stdin:
        threading.Thread(target=_watch_stdin, name="stdin-watch", daemon=True).start()

    started: list[tuple[str, _Server]] = []
    urls: dict[str, object] = {}
    try:
        if args.nats_dir is not None:
            _say(f"starting nats-server on port {args.nats_port}, data in {args.nats_dir}")
            nats = EmbeddedNats(
                args.nats_dir, port=args.nats_port, passwords=_passwords(args.nats_credentials)
            )
            nats.start()
            started.append(("nats-server", nats))
            urls["nats_url"] = nats.url
            _say(f"nats-server {nats.server_version} ready at {nats.url} (log {nats.log_file})")
        if args.pg_dir is not None:
            first = not (Path(args.pg_dir) / "data" / "PG_VERSION").is_file()
            what = "creating a PostgreSQL cluster" if first else "starting PostgreSQL"
            _say(f"{what} on port {args.pg_port}, data in {args.pg_dir}")
            postgres = EmbeddedPostgres(args.pg_dir, port=args.pg_port, database=args.database)
            postgres.start()
            started.append(("PostgreSQL", postgres))
            urls["database_url"] = postgres.url()
            _say(f"PostgreSQL ready at 127.0.0.1:{postgres.port} (log {postgres.log_file})")
        urls["pids"] = [server.pid for _, server in started if server.pid is not None]
        _say(READY + json.dumps(urls))
        while True:
            time.sleep(_CHECK_INTERVAL_S)
            for name, server in started:
                if not server.running:
                    _say(f"{name} exited unexpectedly; its log: {server.log_file}")
                    return 1
    except _Stopped:
        return 0
    except Exception as error:
        _say(f"error: {error}")
        return 1
    finally:
        stopping = True
        for name, server in reversed(started):
            if server.running:
                _say(f"stopping {name}")
            server.stop()
        if started:
            _say("servers stopped")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m nodedrop.cli.servers",
        description="Run the embedded nats-server and PostgreSQL until told to stop.",
    )
    parser.add_argument("--nats-dir", type=Path, help="start nats-server with its data here")
    parser.add_argument("--nats-port", type=int, default=0)
    parser.add_argument(
        "--nats-credentials",
        type=Path,
        help="require these users and passwords (a JSON file, nodedrop.platform.natsauth)",
    )
    parser.add_argument("--pg-dir", type=Path, help="start PostgreSQL with its files here")
    parser.add_argument("--pg-port", type=int, default=0)
    parser.add_argument("--database", default="nodedrop", help="database to create")
    parser.add_argument(
        "--watch-stdin", action="store_true", help="stop when stdin reaches end of file"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    sys.exit(serve(parse_args(argv)))


if __name__ == "__main__":
    main()
