"""Who is calling: API keys to users.

Keys are verified by ``nodedrop.platform.apikeys.KeyVerifier`` (shared with the notifier, so the
WebSocket accepts the same keys): ``NODEDROP_ADMIN_TOKEN`` is the admin, any other key is looked
up in PostgreSQL by its public id and cached briefly. Routes only see ``deps.CurrentUser``.
"""

from __future__ import annotations

from fastapi import FastAPI

from nodedrop.api.errors import ServiceUnavailableError
from nodedrop.platform.apikeys import ADMIN_ID, KeyVerifier, Principal, StoredKey
from nodedrop.platform.db.apikeys import engine_lookup

ADMIN_USER_ID = ADMIN_ID
#: The caller of a request: a user, or the admin.
User = Principal


def key_verifier(app: FastAPI, admin_token: str | None) -> KeyVerifier:
    """The app's verifier. The admin token works before the database is connected (health
    checks, node types); a user key then answers 503, like any request needing the database."""

    async def lookup(key_id: str) -> StoredKey | None:
        resources = getattr(app.state, "resources", None)
        if resources is None:
            raise ServiceUnavailableError("the API is starting or stopping")
        return await engine_lookup(resources.engine)(key_id)

    return KeyVerifier(lookup, admin_token=admin_token)
