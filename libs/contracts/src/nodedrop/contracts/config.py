"""Configuration from the environment (CONTRACT.md section 7), read when a service starts."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path


def _flag(value: str | None) -> bool:
    return (value or "").strip().lower() in {"1", "true", "yes", "on"}


@dataclass(frozen=True)
class Config:
    nats_url: str | None = None
    database_url: str | None = None
    host: str = "127.0.0.1"
    port: int = 8000
    #: Internal port of the notifier's WebSocket server (the api forwards /ws/* to it).
    notifier_port: int = 8001
    data_dir: Path = field(default_factory=lambda: Path(".nodedrop"))
    admin_token: str | None = None
    http_allow_private: bool = False
    runner_concurrency: int = 64
    otel_exporter: str | None = None
    #: Scheduler: a missed cron tick at most this old (seconds) is still fired, once.
    schedule_grace_s: float = 300.0

    @property
    def notifier_url(self) -> str:
        return f"http://{self.host}:{self.notifier_port}"

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Config:
        env = dict(os.environ if env is None else env)
        return cls(
            nats_url=env.get("NODEDROP_NATS_URL") or None,
            database_url=env.get("NODEDROP_DATABASE_URL") or None,
            host=env.get("NODEDROP_HOST", "127.0.0.1"),
            port=int(env.get("NODEDROP_PORT", "8000")),
            notifier_port=int(env.get("NODEDROP_NOTIFIER_PORT", "8001")),
            data_dir=Path(env.get("NODEDROP_DATA_DIR", ".nodedrop")),
            admin_token=env.get("NODEDROP_ADMIN_TOKEN") or None,
            http_allow_private=_flag(env.get("NODEDROP_HTTP_ALLOW_PRIVATE")),
            runner_concurrency=int(env.get("NODEDROP_RUNNER_CONCURRENCY", "64")),
            otel_exporter=env.get("NODEDROP_OTEL_EXPORTER") or None,
            schedule_grace_s=float(env.get("NODEDROP_SCHEDULE_GRACE_S", "300")),
        )
