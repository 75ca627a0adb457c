"""Schema migrations (Alembic), run by ``nodedrop migrate`` and ``nodedrop up``."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config(database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return config


def upgrade(database_url: str, revision: str = "head") -> None:
    """Bring the schema to ``revision``. Blocking: call it before the event loop starts, or in a
    thread (Alembic's async env runs its own loop)."""
    command.upgrade(alembic_config(database_url), revision)
