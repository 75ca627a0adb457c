"""Who is calling: API keys to users.

Until users exist (a later issue), the only key is ``NODEDROP_ADMIN_TOKEN`` and it acts as the
user ``admin``. Everything else reaches the caller through ``deps.CurrentUser``, so swapping this
lookup for a user table changes no route.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass

ADMIN_USER_ID = "admin"


@dataclass(frozen=True)
class User:
    id: str
    is_admin: bool = False

    def can_see(self, owner: str | None) -> bool:
        """Whether a workflow or an execution of ``owner`` is visible (else it answers 404)."""
        return self.is_admin or owner == self.id

    @property
    def owner_filter(self) -> str | None:
        """The owner to restrict listings to; ``None`` lists everyone's (admins)."""
        return None if self.is_admin else self.id


def authenticate(admin_token: str | None, presented: str | None) -> User | None:
    """The user a presented key belongs to, or ``None``. Without a configured admin token no key
    is valid. The comparison takes the same time wherever the strings differ."""
    if not admin_token or not presented:
        return None
    if hmac.compare_digest(presented.encode(), admin_token.encode()):
        return User(ADMIN_USER_ID, is_admin=True)
    return None
