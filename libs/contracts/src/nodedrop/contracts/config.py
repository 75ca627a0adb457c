"""Configuration from the environment (docs/operations.md), read when a service starts."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from nodedrop.contracts.expressions.limits import MAX_EXPRESSION_LENGTH
from nodedrop.contracts.natsconnect import URL_ENV, NatsSettings


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
    #: Scheduler: at most this many node attempts of one user queued for or running on the
    #: runners at once, per scheduler (more are deferred); None: no share per user.
    max_running_nodes_per_user: int | None = None
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
        """The configuration in ``env`` (default: the process's). A wrong value is a
        ValueError naming the variable and what it must be; an empty one counts as unset."""
        env = dict(os.environ if env is None else env)
        given = {k: v.strip() for k, v in env.items() if k.startswith(_PREFIX) and v.strip()}
        try:
            scalars = _EnvSettings.model_validate(given)
        except ValidationError as error:
            raise ValueError(_named(error)) from None
        return cls(
            nats=_nats(env),  # and nats_url, its first server
            notifier_endpoints=_notifier_urls(env.get("NODEDROP_NOTIFIER_URL")),
            allowed_origins=_origins(env.get("NODEDROP_ALLOWED_ORIGINS")),
            **scalars.model_dump(),
        )

    @classmethod
    def load(cls) -> Config:
        """:meth:`from_env` for a service starting: a wrong setting ends the process with one
        line naming it (exit status 1), not a traceback."""
        try:
            return cls.from_env()
        except ValueError as error:
            raise SystemExit(f"configuration: {error}") from None


_PREFIX = "NODEDROP_"


class _EnvSettings(BaseModel):
    """The plain settings of :class:`Config`, as the environment gives them: each field read
    from its variable (the alias), typed and bounded."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    database_url: str | None = Field(None, alias="NODEDROP_DATABASE_URL")
    host: str = Field("127.0.0.1", alias="NODEDROP_HOST")
    port: int = Field(alias="NODEDROP_PORT", default=8000, ge=1, le=65535)
    notifier_port: int = Field(alias="NODEDROP_NOTIFIER_PORT", default=8001, ge=1, le=65535)
    data_dir: Path = Field(Path(".nodedrop"), alias="NODEDROP_DATA_DIR")
    admin_token: str | None = Field(None, alias="NODEDROP_ADMIN_TOKEN")
    http_allow_private: bool = Field(False, alias="NODEDROP_HTTP_ALLOW_PRIVATE")
    runner_concurrency: int = Field(
        alias="NODEDROP_RUNNER_CONCURRENCY", default=64, ge=1, le=100_000
    )
    otel_exporter: str | None = Field(None, alias="NODEDROP_OTEL_EXPORTER")
    schedule_grace_s: float = Field(
        alias="NODEDROP_SCHEDULE_GRACE_S", default=300.0, ge=0, allow_inf_nan=False
    )
    scheduler_snapshot_interval_s: float = Field(
        alias="NODEDROP_SCHEDULER_SNAPSHOT_INTERVAL_S", default=5.0, gt=0, allow_inf_nan=False
    )
    max_concurrent_per_user: int | None = Field(
        alias="NODEDROP_MAX_CONCURRENT_PER_USER", default=None, ge=0
    )
    max_running_nodes_per_user: int | None = Field(
        alias="NODEDROP_MAX_RUNNING_NODES_PER_USER", default=None, ge=0
    )
    max_body_bytes: int = Field(alias="NODEDROP_MAX_BODY_BYTES", default=8 * 1024 * 1024, ge=1)
    max_workflow_nodes: int = Field(alias="NODEDROP_MAX_WORKFLOW_NODES", default=2000, ge=1)
    max_input_items: int = Field(alias="NODEDROP_MAX_INPUT_ITEMS", default=10_000, ge=1)
    max_expression_length: int = Field(
        alias="NODEDROP_MAX_EXPRESSION_LENGTH", default=10_000, ge=1, le=MAX_EXPRESSION_LENGTH
    )

    @field_validator("max_workflow_nodes")
    @classmethod
    def _at_most_the_models_ceiling(cls, value: int) -> int:
        # Imported here: the workflow model's modules read settings from this module.
        from nodedrop.contracts.workflow import MAX_NODES  # noqa: PLC0415

        if value > MAX_NODES:
            raise ValueError(f"must be at most {MAX_NODES}")
        return value

    @field_validator("max_concurrent_per_user", "max_running_nodes_per_user")
    @classmethod
    def _zero_is_none(cls, value: int | None) -> int | None:
        return value or None


def _named(error: ValidationError) -> str:
    """One line per wrong variable: its name, what it must be, and the value given."""
    lines = []
    for problem in error.errors():
        name = str(problem["loc"][0]) if problem["loc"] else "?"
        message = problem["msg"].removeprefix("Value error, ").lower()
        secret = any(word in name for word in ("TOKEN", "URL", "PASSWORD"))
        given = "" if secret else f", not {problem.get('input')!r}"
        lines.append(f"{name}: {message}{given}")
    return "; ".join(lines)
