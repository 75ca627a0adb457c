"""Configuration from the environment (docs/operations.md), read when a service starts."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from nodedrop.contracts.natsconnect import URL_ENV, NatsSettings


def _positive_or_none(env: Mapping[str, str], name: str) -> int | None:
    """A whole number from the environment: None when unset or 0, ValueError naming the
    variable unless it is a whole number >= 0."""
    value = env.get(name, "").strip()
    if not value:
        return None
    if not value.isdigit():
        raise ValueError(f"{name} must be a whole number (0: no limit), not {value!r}")
    return int(value) or None


def seconds_setting(env: Mapping[str, str], name: str) -> float | None:
    """A duration in seconds from the environment: None when unset, ValueError naming the
    variable unless it is a number > 0."""
    value = env.get(name, "").strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        seconds = 0.0
    if not seconds > 0:  # also refuses nan
        raise ValueError(f"{name} must be a number of seconds > 0, not {value!r}")
    return seconds


def _flag(value: str | None) -> bool:
    return (value or "").strip().lower() in {"1", "true", "yes", "on"}


def _origins(value: str | None) -> tuple[str, ...] | None:
    """A comma-separated list; unset means the default (the server's own base URLs)."""
    if value is None or not value.strip():
        return None
    return tuple(o.strip().rstrip("/") for o in value.split(",") if o.strip())


_WEB = ("http", "https")

_NOTIFIER_SCHEMES = {"http": "http", "https": "https", "ws": "http", "wss": "https"}


def _notifier_urls(value: str | None) -> tuple[str, ...] | None:
    """``NODEDROP_NOTIFIER_URL``: comma-separated ``http(s)://host[:port]`` (ws/wss accepted),
    normalised to http(s) without a trailing slash; unset means the notifier on this host.
    A malformed entry is a ValueError naming the variable."""
    if value is None or not value.strip():
        return None
    urls = [_notifier_url(entry) for entry in value.split(",") if entry.strip()]
    if not urls:
        raise ValueError(f"NODEDROP_NOTIFIER_URL lists no URL: {value!r}")
    return tuple(urls)


def _notifier_url(entry: str) -> str:
    entry = entry.strip()
    bad = ValueError(f"NODEDROP_NOTIFIER_URL: {entry!r} is not a URL http(s)://host[:port]")
    try:
        parts = urlsplit(entry)
        port = parts.port  # ValueError unless a number in 0-65535
    except ValueError:  # also a broken [IPv6] literal
        raise bad from None
    scheme = _NOTIFIER_SCHEMES.get(parts.scheme.lower())
    host = parts.hostname
    extra = parts.path.strip("/") or parts.query or parts.fragment or "@" in parts.netloc
    if scheme is None or not host or port == 0 or extra or any(c.isspace() for c in entry):
        raise bad
    host = f"[{host}]" if ":" in host else host
    return f"{scheme}://{host}" + ("" if port is None else f":{port}")


def _nats(env: Mapping[str, str]) -> NatsSettings | None:
    """The NATS settings when ``NODEDROP_NATS_URL`` is set (ValueError naming the variable
    for a wrong one)."""
    if not env.get(URL_ENV, "").strip():
        return None
    return NatsSettings.from_env(env)


@dataclass(frozen=True)
class Config:
    #: The first NATS server (None: NATS is not configured); connections use :attr:`nats`
    #: (:meth:`nats_settings`), which has all of them and the credentials. Left out of the
    #: repr: one given directly may have credentials in it.
    nats_url: str | None = field(default=None, repr=False)
    database_url: str | None = None
    host: str = "127.0.0.1"
    port: int = 8000
    #: Internal port of the notifier's WebSocket server (the api forwards /ws/* to it).
    notifier_port: int = 8001
    #: ``NODEDROP_NOTIFIER_URL``: the notifiers the api relays /ws/* to (any serves any
    #: execution); None: the one on this host (:attr:`notifier_urls`).
    notifier_endpoints: tuple[str, ...] | None = None
    data_dir: Path = field(default_factory=lambda: Path(".nodedrop"))
    admin_token: str | None = None
    http_allow_private: bool = False
    runner_concurrency: int = 64
    otel_exporter: str | None = None
    #: Scheduler: a missed cron tick at most this old (seconds) is still fired, once.
    schedule_grace_s: float = 300.0
    #: Scheduler: how often its set of unfinished executions is snapshotted (when it changed);
    #: a start reads the stream stored since the last snapshot.
    scheduler_snapshot_interval_s: float = 5.0
    #: Scheduler: at most this many executions of one user run at once (more are queued);
    #: None: no limit per user.
    max_concurrent_per_user: int | None = None
    #: API request limits (docs/api.md, "Limits"): a larger body is a 413, the others a 422.
    max_body_bytes: int = 8 * 1024 * 1024
    max_workflow_nodes: int = 2000
    max_input_items: int = 10_000
    #: Characters of one ``{{ }}`` expression; the evaluator's own bound (10,000) is the ceiling.
    max_expression_length: int = 10_000
    #: Origins a browser may open the WebSocket from (``Origin`` header); None: the server's
    #: own base URLs (:attr:`websocket_origins`). Requests without ``Origin`` are not browsers.
    allowed_origins: tuple[str, ...] | None = None
    #: The NATS servers, credentials and TLS files (``NODEDROP_NATS_*``,
    #: :mod:`nodedrop.contracts.natsconnect`); None: just :attr:`nats_url`, without credentials.
    nats: NatsSettings | None = None

    def __post_init__(self) -> None:
        if self.nats_url is None and self.nats is not None:  # given only the settings
            object.__setattr__(self, "nats_url", self.nats.servers[0])

    def nats_settings(self) -> NatsSettings:
        """How to connect to NATS: :attr:`nats`, else :attr:`nats_url` alone; ValueError when
        NATS is not configured."""
        if self.nats is not None:
            return self.nats
        if self.nats_url:
            return NatsSettings(servers=(self.nats_url,))
        raise ValueError(f"{URL_ENV} is not set")

    @property
    def notifier_urls(self) -> tuple[str, ...]:
        return self.notifier_endpoints or (f"http://{self.host}:{self.notifier_port}",)

    @property
    def notifier_url(self) -> str:
        return self.notifier_urls[0]

    @property
    def websocket_origins(self) -> frozenset[str]:
        """The configured allowed origins, or the API's own base URL (by the names a local
        address is reached under)."""
        if self.allowed_origins is not None:
            return frozenset(self.allowed_origins)
        local = {"127.0.0.1", "localhost", "0.0.0.0", "::1", "::"}
        hosts = {"127.0.0.1", "localhost", "[::1]"} if self.host in local else {self.host}
        return frozenset(f"{scheme}://{host}:{self.port}" for host in hosts for scheme in _WEB)

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Config:
        env = dict(os.environ if env is None else env)
        return cls(
            nats=_nats(env),  # and nats_url, its first server
            database_url=env.get("NODEDROP_DATABASE_URL") or None,
            host=env.get("NODEDROP_HOST", "127.0.0.1"),
            port=int(env.get("NODEDROP_PORT", "8000")),
            notifier_port=int(env.get("NODEDROP_NOTIFIER_PORT", "8001")),
            notifier_endpoints=_notifier_urls(env.get("NODEDROP_NOTIFIER_URL")),
            data_dir=Path(env.get("NODEDROP_DATA_DIR", ".nodedrop")),
            admin_token=env.get("NODEDROP_ADMIN_TOKEN") or None,
            http_allow_private=_flag(env.get("NODEDROP_HTTP_ALLOW_PRIVATE")),
            runner_concurrency=int(env.get("NODEDROP_RUNNER_CONCURRENCY", "64")),
            otel_exporter=env.get("NODEDROP_OTEL_EXPORTER") or None,
            schedule_grace_s=float(env.get("NODEDROP_SCHEDULE_GRACE_S", "300")),
            scheduler_snapshot_interval_s=seconds_setting(
                env, "NODEDROP_SCHEDULER_SNAPSHOT_INTERVAL_S"
            )
            or 5.0,
            max_concurrent_per_user=_positive_or_none(env, "NODEDROP_MAX_CONCURRENT_PER_USER"),
            max_body_bytes=int(env.get("NODEDROP_MAX_BODY_BYTES", str(8 * 1024 * 1024))),
            max_workflow_nodes=int(env.get("NODEDROP_MAX_WORKFLOW_NODES", "2000")),
            max_input_items=int(env.get("NODEDROP_MAX_INPUT_ITEMS", "10000")),
            max_expression_length=int(env.get("NODEDROP_MAX_EXPRESSION_LENGTH", "10000")),
            allowed_origins=_origins(env.get("NODEDROP_ALLOWED_ORIGINS")),
        )
