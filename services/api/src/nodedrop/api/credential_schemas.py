"""Bodies of the credential routes (docs/api.md, "Credentials").

Secret fields go in, never out: an answer has the readable ``fields`` and ``secrets`` masked
(``****`` and at most the last 4 characters), whatever the caller.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

_NAME = Field(min_length=1, max_length=200, pattern=r"^[^\x00-\x1f]*$")


class CredentialCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: str = Field(min_length=1, max_length=100, description="see GET /api/credential-types")
    name: str = _NAME
    data: dict[str, Any] = Field(description="the type's fields, secret ones included")


class CredentialUpdate(BaseModel):
    """A replacement of the name and fields. A secret field left out keeps its stored value
    (so an editor need not know it); the type cannot change."""

    model_config = ConfigDict(extra="forbid")

    type: str | None = Field(default=None, description="if given, must be the credential's")
    name: str = _NAME
    data: dict[str, Any] = Field(default_factory=dict)


class CredentialUse(BaseModel):
    at: str
    execution_id: str | None
    node: str | None


class CredentialOut(BaseModel):
    id: str
    type: str
    name: str
    owner: str
    #: The readable fields.
    fields: dict[str, Any]
    #: Each secret field, masked.
    secrets: dict[str, Any]
    created_at: str
    updated_at: str
    #: Where a runner last used it; None: never.
    last_used: CredentialUse | None = None


class CredentialPage(BaseModel):
    items: list[CredentialOut]
    next_cursor: str | None


class CredentialTypeOut(BaseModel):
    type: str
    display_name: str
    description: str
    #: JSON Schema of the fields; secret ones are ``writeOnly``.
    fields_schema: dict[str, Any]
    secret_fields: list[str]


class CredentialTypeList(BaseModel):
    items: list[CredentialTypeOut]
