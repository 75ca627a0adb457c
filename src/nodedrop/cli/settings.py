"""What the commands read from the environment and the data directory (docs/operations.md).

The services read their own settings (``nodedrop.<service>.settings``); the command line adds
the few settings only it uses: the ports of the embedded servers, the client's base URL and its
API key.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from pathlib import Path

from nodedrop.platform.settings import (
    AdminSettings,
    DatabaseSettings,
    ListenSettings,
    SecretKeySettings,
    SettingsError,
    setting,
)

#: Default ports of the embedded servers. Not NATS's well-known 4222 nor PostgreSQL's 5432: a
#: system server may run there, and ``nodedrop up`` must never mistake it for its own.
DEFAULT_NATS_PORT = 4250
DEFAULT_PG_PORT = 5440
DEFAULT_URL = "http://127.0.0.1:8000"
DEFAULT_DATA_DIR = ".nodedrop"
DATABASE_NAME = "nodedrop"
ADMIN_TOKEN_FILE = "admin_token"
#: The embedded NATS server's users and passwords (nodedrop.platform.natsauth), mode 0600.
NATS_CREDENTIALS_FILE = "nats_credentials.json"
#: The key credentials are sealed with (NODEDROP_SECRET_KEY, docs/credentials.md), mode 0600.
SECRET_KEY_FILE = "secret_key"


class SettingError(Exception):
    """A setting is missing or malformed; the message says which and what to do."""


class UpSettings(ListenSettings, DatabaseSettings, AdminSettings, SecretKeySettings):
    """What ``nodedrop up`` reads (the operator commands too, to find its embedded servers):
    where the services listen, the servers to use instead of starting its own, their ports."""

    data_dir: Path = setting(
        Path(DEFAULT_DATA_DIR),
        "The data directory of `nodedrop up` (its servers' data, keys)",
        shown_default=f"`./{DEFAULT_DATA_DIR}`",
    )
    nats_url: str | None = setting(None, "A NATS server to use instead of starting one")
    nats_port: int = setting(DEFAULT_NATS_PORT, "Port of the embedded nats-server", ge=1, le=65535)
    pg_port: int = setting(DEFAULT_PG_PORT, "Port of the embedded PostgreSQL", ge=1, le=65535)

    @classmethod
    def read(cls, env: Mapping[str, str] | None = None) -> UpSettings:
        """:meth:`from_env`, a wrong value raised as a :class:`SettingError`."""
        try:
            return cls.from_env(env)
        except SettingsError as error:
            raise SettingError(str(error)) from None


def data_dir(env: Mapping[str, str] | None = None) -> Path:
    """``NODEDROP_DATA_DIR`` (default ``./.nodedrop``), absolute."""
    env = os.environ if env is None else env
    return Path(env.get("NODEDROP_DATA_DIR") or DEFAULT_DATA_DIR).expanduser().resolve()


def admin_token_path(directory: Path) -> Path:
    return directory / ADMIN_TOKEN_FILE


def nats_credentials_path(directory: Path) -> Path:
    return directory / NATS_CREDENTIALS_FILE


def read_admin_token(directory: Path) -> str | None:
    """The admin key ``nodedrop up`` keeps in the data directory, if there is one."""
    try:
        token = admin_token_path(directory).read_text().strip()
    except (FileNotFoundError, NotADirectoryError, PermissionError):
        return None
    return token or None


def ensure_admin_token(directory: Path) -> tuple[str, bool]:
    """The data directory's admin key, generated (mode 0600) on first use. True if new."""
    existing = read_admin_token(directory)
    if existing is not None:
        return existing, False
    token = secrets.token_urlsafe(32)
    write_private(admin_token_path(directory), token)
    return token, True


def secret_key_path(directory: Path) -> Path:
    return directory / SECRET_KEY_FILE


def read_secret_key(directory: Path) -> str | None:
    """The credentials key ``nodedrop up`` keeps in the data directory, if there is one."""
    try:
        text = secret_key_path(directory).read_text().strip()
    except (FileNotFoundError, NotADirectoryError, PermissionError):
        return None
    return text or None


def ensure_secret_key(directory: Path) -> tuple[str, bool]:
    """The data directory's credentials key, generated (mode 0600) on first use. True if new."""
    from nodedrop.platform.secretbox import SecretKey

    existing = read_secret_key(directory)
    if existing is not None:
        return existing, False
    text = SecretKey.generate().text()
    write_private(secret_key_path(directory), text)
    return text, True


def write_private(path: Path, text: str) -> None:
    """``text`` into a new file only its owner can read (0600 from its creation on)."""
    # O_EXCL: two concurrent first starts cannot overwrite each other's secret unnoticed.
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # an empty file (a crash between create and write): replace it
        path.unlink()
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text + "\n")


def client_url(explicit: str | None, env: Mapping[str, str] | None = None) -> str:
    """The API's base URL: ``--url``, else ``NODEDROP_URL``, else the default."""
    env = os.environ if env is None else env
    url = explicit or env.get("NODEDROP_URL") or DEFAULT_URL
    return url.rstrip("/")


def client_token(explicit: str | None, env: Mapping[str, str] | None = None) -> str:
    """The API key: ``--token``, ``NODEDROP_TOKEN``, ``NODEDROP_ADMIN_TOKEN``, or the data
    directory's ``admin_token`` file, in that order."""
    env = os.environ if env is None else env
    for candidate in (explicit, env.get("NODEDROP_TOKEN"), env.get("NODEDROP_ADMIN_TOKEN")):
        if candidate and candidate.strip():
            return candidate.strip()
    directory = data_dir(env)
    token = read_admin_token(directory)
    if token is None:
        raise SettingError(
            "no API key: pass --token, set NODEDROP_TOKEN, or start the system with "
            f"`nodedrop up` (which keeps its admin key in {admin_token_path(directory)})"
        )
    return token
