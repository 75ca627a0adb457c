"""Request and response bodies of ``/api/users`` (users and their API keys)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

USER_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$"


class UserCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=USER_NAME_PATTERN, description="unique; letters, digits, _.@-")
    is_admin: bool = Field(
        default=False, strict=True, description="admins see and manage everything"
    )


class UserOut(BaseModel):
    id: str
    name: str
    is_admin: bool
    #: None for the built-in admin (``NODEDROP_ADMIN_TOKEN``), which is no stored user.
    created_at: str | None


class UserList(BaseModel):
    items: list[UserOut]


class UserCreated(BaseModel):
    """The new user and its first key. ``api_key`` is shown this once; only a digest is kept."""

    id: str
    name: str
    is_admin: bool
    key_id: str
    api_key: str


class KeyIssued(BaseModel):
    """A new key. ``api_key`` is shown this once; only a digest is kept."""

    key_id: str
    user_id: str
    api_key: str


class KeyOut(BaseModel):
    key_id: str
    created_at: str
    revoked_at: str | None


class KeyList(BaseModel):
    items: list[KeyOut]
