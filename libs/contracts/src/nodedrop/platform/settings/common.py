"""Settings every service shares (NATS, the log's layout, logging, tracing), and the groups
some of them share (partition leases, listening addresses, the database)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import field_validator

from nodedrop.contracts.routing import DEFAULT_PARTITIONS, SLOTS, Layout
from nodedrop.platform import natsconnect
from nodedrop.platform.jetstream import StreamSettings
from nodedrop.platform.leases import DEFAULT_LEASE_S
from nodedrop.platform.natsconnect import NatsSettings
from nodedrop.platform.secretbox import SecretKey
from nodedrop.platform.settings.base import EnvSettings, setting

_LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost", "0.0.0.0", "::1", "::"})
_WEB = ("http", "https")


class CommonSettings(EnvSettings):
    """What every service reads: how to reach NATS, the log's layout, logs and traces."""

    nats_url: str | None = setting(
        None,
        "One NATS server URL or a comma-separated list (`nats://`, `tls://`, `ws://` or "
        '`wss://`; no credentials in a URL; see "Connecting to a cluster")',
        shown_default="embedded server",
    )
    nats_user: str | None = setting(
        None,
        'NATS user, with NODEDROP_NATS_PASSWORD (see "NATS credentials and permissions")',
        shown_default="set by `up` for its embedded server",
    )
    nats_password: str | None = setting(
        None, "Password of NODEDROP_NATS_USER (taken as given, spaces included)", verbatim=True
    )
    nats_token: str | None = setting(
        None, "A NATS authentication token, instead of a user", verbatim=True
    )
    nats_creds: Path | None = setting(
        None,
        "A `.creds` file (user JWT and nkey seed), instead of a user (needs the `nkeys` "
        "package: `pip install 'nats-py[nkeys]'`)",
    )
    nats_nkey: Path | None = setting(
        None, "An nkey seed file, instead of a user (needs the `nkeys` package)"
    )
    nats_tls_ca: Path | None = setting(
        None,
        "CA bundle the NATS servers' certificates are verified with",
        shown_default="the system's CA certificates",
    )
    nats_tls_cert: Path | None = setting(
        None, "Client certificate for servers that verify clients (with NODEDROP_NATS_TLS_KEY)"
    )
    nats_tls_key: Path | None = setting(None, "Key of NODEDROP_NATS_TLS_CERT (both or neither)")
    partitions: int = setting(
        DEFAULT_PARTITIONS,
        "Partition streams of the log: the same for every service and for the log's whole "
        'life (see "Partitions and ownership")',
        ge=1,
        le=SLOTS,
    )
    stream_replicas: int = setting(
        1,
        "Replicas of every stream, bucket and object store the services create (3 on a 3-node "
        "cluster); a start raises those of what exists, never lowers them",
        ge=1,
        le=5,
    )
    duplicate_window_s: float = setting(
        120.0,
        "Seconds the streams remember an event id, so a retried publish is stored once (the "
        "same for every service)",
        gt=0,
        allow_inf_nan=False,
    )
    runner_ack_wait_s: float = setting(
        15.0,
        "Seconds a runner may go silent before its attempts count as lost; applied by every "
        "runner to the runners' consumer, and used by whichever service creates it (see \"Crash "
        'recovery")',
        gt=0,
        allow_inf_nan=False,
    )
    log_format: Literal["text", "json"] = setting(
        "text", "Log lines as `text` or `json` (one object per line); either way redacted"
    )
    otel_exporter: str = setting(
        "none",
        "Tracing: `none` (off), `console`, `otlp` (OTLP over HTTP, `OTEL_EXPORTER_OTLP_*`) or "
        "`jsonl:PATH`",
    )
    event_loop: Literal["uvloop", "asyncio"] = setting(
        "uvloop",
        "`asyncio` runs the service on asyncio's own event loop instead of uvloop (used when "
        'installed; docs/benchmarks.md, "CPU per execution")',
    )

    @field_validator("log_format", "event_loop", mode="before")
    @classmethod
    def _any_case(cls, value: object) -> object:
        return value.lower() if isinstance(value, str) else value

    @field_validator("otel_exporter")
    @classmethod
    def _known_exporter(cls, value: str) -> str:
        if value in ("none", "console", "otlp") or (
            value.startswith("jsonl:") and value != "jsonl:"
        ):
            return value
        raise ValueError("must be none, console, otlp or jsonl:PATH")

    def check(self) -> None:
        if self.nats_url is not None:
            self.nats_settings()  # the credentials and files are checked here

    def nats_settings(self) -> NatsSettings:
        """How to connect to NATS; ValueError naming the variables when NODEDROP_NATS_URL is not
        set or the credentials or TLS files are wrong."""
        variables = {
            natsconnect.URL_ENV: self.nats_url,
            natsconnect.USER_ENV: self.nats_user,
            natsconnect.PASSWORD_ENV: self.nats_password,
            natsconnect.TOKEN_ENV: self.nats_token,
            natsconnect.CREDS_ENV: self.nats_creds,
            natsconnect.NKEY_ENV: self.nats_nkey,
            natsconnect.TLS_CA_ENV: self.nats_tls_ca,
            natsconnect.TLS_CERT_ENV: self.nats_tls_cert,
            natsconnect.TLS_KEY_ENV: self.nats_tls_key,
        }
        return NatsSettings.from_env({k: str(v) for k, v in variables.items() if v is not None})

    @property
    def layout(self) -> Layout:
        return Layout(self.partitions)

    @property
    def streams(self) -> StreamSettings:
        """The streams, consumers and buckets as this service creates and checks them."""
        return StreamSettings(
            duplicate_window_s=self.duplicate_window_s,
            runner_ack_wait_s=self.runner_ack_wait_s,
            layout=self.layout,
            replicas=self.stream_replicas,
        )


class LeaseSettings(EnvSettings):
    """The services that share the log's partitions by lease: the schedulers, the notifiers."""

    lease_s: float = setting(
        DEFAULT_LEASE_S,
        "Seconds a partition's lease lasts without renewal (renewed every third of it): how "
        "long a dead owner's partitions wait for another process",
        gt=0,
        allow_inf_nan=False,
    )


class ListenSettings(EnvSettings):
    """Where the api and the notifier listen (the api relays /ws/* to the notifier's port)."""

    host: str = setting("127.0.0.1", "Address the api and the notifier listen on")
    port: int = setting(
        8000,
        "Port of the api (the notifier's default allowed origins are the api's base URLs)",
        ge=1,
        le=65535,
    )
    notifier_port: int = setting(
        8001,
        "Port of the notifier's WebSocket server (the api relays `/ws/*` to it)",
        ge=1,
        le=65535,
    )


class OpsSettings(EnvSettings):
    """The listener of metrics and probes of the services without an HTTP server of their own
    (the scheduler, the runner); the api and the notifier serve them on their own port."""

    ops_host: str = setting(
        "127.0.0.1", "Address the scheduler's and the runner's metrics and probes listen on"
    )
    ops_port: int | None = setting(
        None,
        "Port of the scheduler's or the runner's `/metrics`, `/livez` and `/readyz` (0: any "
        'free port, logged; see "Metrics and probes")',
        shown_default="off",
        ge=0,
        le=65535,
    )


class DatabaseSettings(EnvSettings):
    """The PostgreSQL of the projection (the notifier writes it, the api reads it) and of the
    credentials (the api writes them, runners read them)."""

    database_url: str | None = setting(
        None, "PostgreSQL URL", secret=True, shown_default="embedded server"
    )


class AdminSettings(EnvSettings):
    admin_token: str | None = setting(
        None, "The admin's API key", secret=True, shown_default="generated by `up`"
    )


class SecretKeySettings(EnvSettings):
    """The key credentials are sealed with (docs/credentials.md): the api and the runners only."""

    secret_key: str | None = setting(
        None,
        "The key credentials are sealed with: 32 random bytes in URL-safe base64 (`nodedrop "
        "credentials generate-key`); a wrong one stops the service at start; unset, credentials "
        "are disabled unless the database holds some (then the service stops)",
        secret=True,
        shown_default="generated by `up` into `<data dir>/secret_key`",
    )

    @field_validator("secret_key")
    @classmethod
    def _a_key(cls, value: str | None) -> str | None:
        if value is not None:
            SecretKey.parse(value, source="the key")  # its error never quotes the value
        return value

    @property
    def credentials_key(self) -> SecretKey | None:
        return None if self.secret_key is None else SecretKey.parse(self.secret_key)


def own_origins(host: str, port: int) -> frozenset[str]:
    """The API's base URLs, by the names a local address is reached under: the origins a
    browser opens the WebSocket from when none are configured."""
    hosts = {"127.0.0.1", "localhost", "[::1]"} if host in _LOCAL_HOSTS else {host}
    return frozenset(f"{scheme}://{name}:{port}" for name in hosts for scheme in _WEB)
