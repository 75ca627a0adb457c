"""Where the operator commands (``projections``, ``prune``) find NATS and PostgreSQL.

``NODEDROP_NATS_URL`` and ``NODEDROP_DATABASE_URL`` when set, as for the services; otherwise the
embedded servers of a running ``nodedrop up`` on their ports (``NODEDROP_NATS_PORT``,
``NODEDROP_PG_PORT``) and database. They connect to NATS with the credentials of the
``NODEDROP_NATS_*`` variables when set (nodedrop.platform.natsconnect), else, on the embedded
server, as its ``admin`` user (the password ``nodedrop up`` keeps in the data directory): they
need more than any service may do (nodedrop.platform.natsauth).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass

from nodedrop.cli import settings
from nodedrop.platform import natsauth
from nodedrop.platform.natsconnect import NatsSettings


@dataclass(frozen=True)
class Servers:
    nats: NatsSettings
    database_url: str

    @property
    def nats_url(self) -> str:
        """The first NATS server (no credentials in it), for messages."""
        return self.nats.servers[0]


def servers(env: Mapping[str, str] | None = None) -> Servers:
    """Raises :class:`settings.SettingError` for a malformed port or NATS setting."""
    env = os.environ if env is None else env
    given = settings.UpSettings.read(env)
    own_server = given.nats_url is not None
    embedded = None if own_server else f"nats://127.0.0.1:{given.nats_port}"
    try:
        nats = NatsSettings.from_env(env, default_url=embedded)
    except ValueError as error:
        raise settings.SettingError(str(error)) from None
    if not own_server and not nats.has_credentials:
        stored = natsauth.read_passwords(settings.nats_credentials_path(settings.data_dir(env)))
        if stored is not None:
            nats = dataclasses.replace(nats, user=natsauth.ADMIN, password=stored[natsauth.ADMIN])
    database_url = given.database_url or (
        f"postgresql+asyncpg://postgres@127.0.0.1:{given.pg_port}/{settings.DATABASE_NAME}"
    )
    return Servers(nats, database_url)
