"""The whole system as separate processes, the way `nodedrop up` runs it, for end-to-end tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

SERVICES = ("api", "scheduler", "runner", "notifier")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class System:
    """Four service processes on one nats-server and one database."""

    nats_url: str
    database_url: str
    log_dir: Path
    token: str = "e2e-admin-token"
    api_port: int = field(default_factory=free_port)
    notifier_port: int = field(default_factory=free_port)
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    #: The metrics and probes port of each scheduler and runner process, by process name.
    ops_ports: dict[str, int] = field(default_factory=dict)
    #: Extra environment for every service (e.g. tracing settings); ``{log_dir}`` in a value
    #: stands for :attr:`log_dir`.
    extra_env: dict[str, str] = field(default_factory=dict)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.api_port}"

    def ops_url(self, name: str) -> str:
        """Where process ``name`` serves /metrics, /livez and /readyz."""
        if name == "api":
            return self.base_url
        if name == "notifier":
            return f"http://127.0.0.1:{self.notifier_port}"
        return f"http://127.0.0.1:{self.ops_ports[name]}"

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "NODEDROP_NATS_URL": self.nats_url,
            "NODEDROP_DATABASE_URL": self.database_url,
            "NODEDROP_HOST": "127.0.0.1",
            "NODEDROP_PORT": str(self.api_port),
            "NODEDROP_NOTIFIER_PORT": str(self.notifier_port),
            "NODEDROP_ADMIN_TOKEN": self.token,
            **{
                key: value.replace("{log_dir}", str(self.log_dir))
                for key, value in self.extra_env.items()
            },
        }

    def start(
        self, name: str, service: str | None = None, env: dict[str, str] | None = None
    ) -> None:
        """Start ``service`` (default: ``name``) as the process called ``name``, so that several
        copies of one service (e.g. runners ``runner``, ``runner-2``) can run side by side;
        ``env`` is added to its environment."""
        log = (self.log_dir / f"{name}.log").open("ab")
        ops: dict[str, str] = {}
        if (service or name) in ("scheduler", "runner"):
            ops["NODEDROP_OPS_PORT"] = str(self.ops_ports.setdefault(name, free_port()))
        self.processes[name] = subprocess.Popen(
            [sys.executable, "-m", f"nodedrop.{service or name}"],
            env={**self.env(), **ops, **(env or {})},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def stop(self, name: str, sig: int = signal.SIGTERM, timeout_s: float = 10.0) -> None:
        process = self.processes.pop(name)
        if process.poll() is None:
            process.send_signal(sig)
            try:
                process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def start_all(self) -> None:
        for name in SERVICES:
            self.start(name)
        self.wait_healthy()

    def stop_all(self) -> None:
        for name in list(self.processes):
            self.stop(name)

    def wait_healthy(self, timeout_s: float = 30.0) -> None:
        deadline = time.monotonic() + timeout_s
        urls = [f"{self.base_url}/health", f"http://127.0.0.1:{self.notifier_port}/health"]
        while time.monotonic() < deadline:
            for name, process in self.processes.items():
                if process.poll() is not None:
                    raise RuntimeError(
                        f"{name} exited with {process.returncode}:\n" + self.logs(name)
                    )
            try:
                if all(httpx.get(url, timeout=1).status_code == 200 for url in urls):
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise RuntimeError(
            "the system did not become healthy:\n" + "\n".join(self.logs(n) for n in SERVICES)
        )

    def logs(self, name: str) -> str:
        path = self.log_dir / f"{name}.log"
        return path.read_text(errors="replace")[-4000:] if path.exists() else ""
