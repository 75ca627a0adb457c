"""Embedded development servers: a nats-server and a PostgreSQL started as child processes.

``nodedrop up`` uses them when no ``NODEDROP_NATS_URL`` / ``NODEDROP_DATABASE_URL`` is set, and
the test fixtures use them for every integration test.
"""

from nodedrop.embedded.nats import EmbeddedNats
from nodedrop.embedded.postgres import EmbeddedPostgres

__all__ = ["EmbeddedNats", "EmbeddedPostgres"]
