"""Connecting to NATS: one server or a cluster, credentials and TLS passed as connect options.

Read from the environment when a process starts (:meth:`NatsSettings.from_env`):

- ``NODEDROP_NATS_URL``: one server URL or a comma-separated list (``nats://``, ``tls://``,
  ``ws://`` or ``wss://``, each with a host). The client connects to one of them and fails over
  to the others, and to the cluster nodes the server tells it about. No credentials in a URL:
  they would apply to that server only, and a client that moved to a discovered node would
  connect there without them (``Authorization Violation``).
- credentials, at most one method: ``NODEDROP_NATS_USER`` and ``NODEDROP_NATS_PASSWORD``,
  ``NODEDROP_NATS_TOKEN``, ``NODEDROP_NATS_CREDS`` (a ``.creds`` file) or ``NODEDROP_NATS_NKEY``
  (an nkey seed file).
- TLS: ``NODEDROP_NATS_TLS_CA`` (CA bundle to verify the servers with) and
  ``NODEDROP_NATS_TLS_CERT`` with ``NODEDROP_NATS_TLS_KEY`` (a client certificate). The files are
  only checked to exist here; they are read when connecting.

Errors are :class:`ValueError` naming the variable; no message repeats a secret, and the
password and token are left out of the settings' repr.
"""

from __future__ import annotations

import importlib.util
import os
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import nats
from nats.aio.client import Client

from nodedrop.platform import natsauth

URL_ENV = "NODEDROP_NATS_URL"
USER_ENV = natsauth.USER_ENV
PASSWORD_ENV = natsauth.PASSWORD_ENV
TOKEN_ENV = "NODEDROP_NATS_TOKEN"
CREDS_ENV = "NODEDROP_NATS_CREDS"
NKEY_ENV = "NODEDROP_NATS_NKEY"
TLS_CA_ENV = "NODEDROP_NATS_TLS_CA"
TLS_CERT_ENV = "NODEDROP_NATS_TLS_CERT"
TLS_KEY_ENV = "NODEDROP_NATS_TLS_KEY"

_SCHEMES = ("nats", "tls", "ws", "wss")
_WEBSOCKET = ("ws", "wss")
_FILE_VARIABLES = (CREDS_ENV, NKEY_ENV, TLS_CA_ENV, TLS_CERT_ENV, TLS_KEY_ENV)
_CREDENTIAL_VARIABLES = f"{USER_ENV} and {PASSWORD_ENV}, {TOKEN_ENV}, {CREDS_ENV} or {NKEY_ENV}"


@dataclass(frozen=True)
class NatsSettings:
    """Where NATS is and how to authenticate. Built by :meth:`from_env`, which checks
    everything; constructed directly (tests, tools), the values are taken as they are."""

    servers: tuple[str, ...]
    user: str | None = None
    password: str | None = field(default=None, repr=False)
    token: str | None = field(default=None, repr=False)
    #: A ``.creds`` file (user JWT and nkey seed).
    creds_file: Path | None = None
    #: A file holding an nkey seed.
    nkey_seed_file: Path | None = None
    tls_ca_file: Path | None = None
    tls_cert_file: Path | None = None
    tls_key_file: Path | None = None

    def __post_init__(self) -> None:
        if not self.servers:
            raise ValueError("NatsSettings needs at least one server")

    @classmethod
    def from_env(
        cls, env: Mapping[str, str] | None = None, *, default_url: str | None = None
    ) -> NatsSettings:
        """The settings of ``env`` (default: the process environment). ``default_url`` stands
        for an unset ``NODEDROP_NATS_URL``; without one, that variable must be set."""
        env = os.environ if env is None else env
        raw_servers = _value(env, URL_ENV) or default_url
        if raw_servers is None:
            raise ValueError(f"{URL_ENV} is not set")
        servers = parse_servers(raw_servers)
        user, password = _value(env, USER_ENV), _secret(env, PASSWORD_ENV)
        if password is not None and user is None:
            raise ValueError(f"{PASSWORD_ENV} is set but {USER_ENV} is not: set both")
        if user is not None and password is None:
            raise ValueError(f"{USER_ENV} is set but {PASSWORD_ENV} is not: set both")
        token = _secret(env, TOKEN_ENV)
        creds, nkey = _value(env, CREDS_ENV), _value(env, NKEY_ENV)
        methods = [
            name
            for name, value in (
                (USER_ENV, user),
                (TOKEN_ENV, token),
                (CREDS_ENV, creds),
                (NKEY_ENV, nkey),
            )
            if value is not None
        ]
        if len(methods) > 1:
            raise ValueError(
                f"{', '.join(methods[:-1])} and {methods[-1]} are set: choose one way to "
                "authenticate to NATS"
            )
        cert, key = _value(env, TLS_CERT_ENV), _value(env, TLS_KEY_ENV)
        if (cert is None) != (key is None):
            given, missing = (
                (TLS_CERT_ENV, TLS_KEY_ENV) if key is None else (TLS_KEY_ENV, TLS_CERT_ENV)
            )
            raise ValueError(
                f"{given} is set but {missing} is not: a client certificate needs both"
            )
        files = {name: _file(env, name) for name in _FILE_VARIABLES}
        for name in (CREDS_ENV, NKEY_ENV):
            if files[name] is not None and not _nkeys_installed():
                raise ValueError(
                    f"{name} needs the Python package nkeys (pip install 'nats-py[nkeys]')"
                )
        return cls(
            servers=servers,
            user=user,
            password=password,
            token=token,
            creds_file=files[CREDS_ENV],
            nkey_seed_file=files[NKEY_ENV],
            tls_ca_file=files[TLS_CA_ENV],
            tls_cert_file=files[TLS_CERT_ENV],
            tls_key_file=files[TLS_KEY_ENV],
        )

    @property
    def has_credentials(self) -> bool:
        """Whether any way to authenticate is set (else the client connects anonymously)."""
        return any(
            value is not None
            for value in (self.user, self.token, self.creds_file, self.nkey_seed_file)
        )

    def ssl_context(self) -> ssl.SSLContext | None:
        """The TLS context of the configured files (read now), or None without any: nats-py
        then uses the system's defaults when a server requires TLS."""
        if self.tls_ca_file is None and self.tls_cert_file is None:
            return None
        context = ssl.create_default_context(
            ssl.Purpose.SERVER_AUTH,
            cafile=str(self.tls_ca_file) if self.tls_ca_file is not None else None,
        )
        if self.tls_cert_file is not None:
            context.load_cert_chain(
                str(self.tls_cert_file),
                str(self.tls_key_file) if self.tls_key_file is not None else None,
            )
        return context

    def connect_options(self) -> dict[str, Any]:
        """The keyword arguments of ``nats.connect`` for the servers, credentials and TLS."""
        return {
            "servers": list(self.servers),
            "user": self.user,
            "password": self.password,
            "token": self.token,
            "user_credentials": str(self.creds_file) if self.creds_file is not None else None,
            "nkeys_seed": str(self.nkey_seed_file) if self.nkey_seed_file is not None else None,
            "tls": self.ssl_context(),
        }


async def connect(settings: NatsSettings, *, name: str, **options: Any) -> Client:
    """``nats.connect`` to ``settings``' servers, as ``name`` (shown in the server's
    monitoring), reconnecting forever unless ``options`` say otherwise; ``options`` are
    further keyword arguments of ``nats.connect`` and win over the settings'."""
    arguments: dict[str, Any] = {
        **settings.connect_options(),
        "name": name,
        "max_reconnect_attempts": -1,
        **options,
    }
    return await nats.connect(**arguments)


def masked(settings: NatsSettings) -> str:
    """The server list for a log line (any password written into a URL shown as ``***``)."""
    return ",".join(natsauth.without_credentials(server) for server in settings.servers)


def parse_servers(value: str) -> tuple[str, ...]:
    """The URLs of a ``NODEDROP_NATS_URL`` value (one, or comma-separated); ValueError naming
    the variable for a malformed one, or one with credentials in it."""
    servers = tuple(item.strip() for item in value.split(",") if item.strip())
    if not servers:
        raise ValueError(f"{URL_ENV} names no server")
    for url in servers:
        if "@" in _split(url)[1]:
            raise ValueError(
                f"{URL_ENV}: {_shown(url)} has credentials in it; give them in "
                f"{_CREDENTIAL_VARIABLES} instead (a client that fails over to another "
                "cluster node would connect there without them)"
            )
        try:
            parts = urlsplit(url)
            valid = parts.scheme in _SCHEMES and bool(parts.hostname)
            parts.port  # noqa: B018 - raises ValueError for a malformed port
        except ValueError:
            valid = False
        if not valid:
            raise ValueError(
                f"{URL_ENV}: {_shown(url)} is not a nats://, tls://, ws:// or wss:// URL "
                "with a host"
            )
    if len({urlsplit(url).scheme in _WEBSOCKET for url in servers}) > 1:
        raise ValueError(f"{URL_ENV} mixes WebSocket (ws://, wss://) and other URLs")
    return servers


def _split(url: str) -> tuple[str, str, str]:
    """``url`` as (everything up to ``://``, the address, the rest)."""
    scheme, separator, rest = url.partition("://")
    if not separator:
        scheme, rest = "", url
    address, slash, path = rest.partition("/")
    return scheme + separator, address, slash + path


def _shown(url: str) -> str:
    """``url`` quoted for a message, anything before an ``@`` in its address hidden (a user
    and password, or a token)."""
    start, address, rest = _split(url)
    if "@" in address:
        address = "***@" + address.rsplit("@", 1)[1]
    return repr(f"{start}{address}{rest}")


def _value(env: Mapping[str, str], name: str) -> str | None:
    return env.get(name, "").strip() or None


def _secret(env: Mapping[str, str], name: str) -> str | None:
    """A password or token: as given (spaces included), None when unset or empty."""
    return env.get(name) or None


def _file(env: Mapping[str, str], name: str) -> Path | None:
    value = _value(env, name)
    if value is None:
        return None
    path = Path(value).expanduser()
    if not path.is_file():
        raise ValueError(f"{name}: no such file: {value}")
    return path


def _nkeys_installed() -> bool:
    """nats-py signs with nkeys (its ``nkeys`` extra) for .creds and nkey seed files."""
    return importlib.util.find_spec("nkeys") is not None
