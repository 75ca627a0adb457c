"""Where the operator commands (``projections``, ``prune``) find NATS and PostgreSQL.

``NODEDROP_NATS_URL`` and ``NODEDROP_DATABASE_URL`` when set, as for the services; otherwise the
embedded servers of a running ``nodedrop up`` on their ports (``NODEDROP_NATS_PORT``,
``NODEDROP_PG_PORT``) and database. They connect to NATS as ``NODEDROP_NATS_USER`` when set, else,
on the embedded server, as its ``admin`` user (the password ``nodedrop up`` keeps in the data
directory): they need more than any service may do (nodedrop.contracts.natsauth).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from nodedrop.cli import settings
from nodedrop.contracts import natsauth


@dataclass(frozen=True)
class Servers:
    nats_url: str
    database_url: str


def servers(env: Mapping[str, str] | None = None) -> Servers:
    """Raises :class:`settings.SettingError` for a malformed port."""
    env = os.environ if env is None else env
    nats_url = env.get("NODEDROP_NATS_URL") or (
        "nats://127.0.0.1:"
        f"{settings.env_int(env, 'NODEDROP_NATS_PORT', settings.DEFAULT_NATS_PORT)}"
    )
    user, password = env.get(natsauth.USER_ENV), env.get(natsauth.PASSWORD_ENV)
    if not user and not env.get("NODEDROP_NATS_URL"):
        stored = natsauth.read_passwords(settings.nats_credentials_path(settings.data_dir(env)))
        if stored is not None:
            user, password = natsauth.ADMIN, stored[natsauth.ADMIN]
    try:
        nats_url = natsauth.url_with_credentials(nats_url, user, password)
    except ValueError as error:
        raise settings.SettingError(str(error)) from None
    database_url = env.get("NODEDROP_DATABASE_URL") or (
        "postgresql+asyncpg://postgres@127.0.0.1:"
        f"{settings.env_int(env, 'NODEDROP_PG_PORT', settings.DEFAULT_PG_PORT)}"
        f"/{settings.DATABASE_NAME}"
    )
    return Servers(nats_url, database_url)
